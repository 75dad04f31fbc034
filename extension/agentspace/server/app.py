"""The Jupyter server extension: settings as traitlets, the engine started on first use.

Loading this module and the handler modules adds little to the server's start
(bench/RESULTS.md, server section, 4.; traitlets, tornado and jupyter_server are
already imported by the server): the engine, pydantic, ag-ui, litellm and docker
are imported when the first request needs them (tests/extension/test_lazy.py
holds that line). Every setting is a trait with help
text: ``c.AgentspaceApp.model = "openai/gpt-4o-mini"`` in jupyter_server_config.py
or ``--AgentspaceApp.model=...`` on the command line.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Enum, Float, Int, Unicode, default

from agentspace.server.links import Links

if TYPE_CHECKING:
    from agentspace.engine.config import EngineConfig
    from agentspace.engine.engine import Engine
    from agentspace.server.chat.bridge import ChatBridge
    from agentspace.server.collector import QuietCollector
    from agentspace.server.kernelcalls import KernelCalls
    from agentspace.server.notebooks import ServerNotebooks


class AgentspaceApp(ExtensionApp):
    """One AI agent session per notebook, served over REST, SSE and AG-UI."""

    name = "agentspace"
    description = "Jupyter-native agent workspace"
    extension_url = "/agentspace/api/sessions"
    load_other_extensions = True

    model = Unicode(
        help="Default litellm model string for new sessions, e.g. 'openai/gpt-4o-mini' or "
        "'ollama_chat/llama3.1'. Defaults to a provider whose API key is set in the server's "
        "environment, else the offline 'scripted/echo' demo model.",
    ).tag(config=True)
    model_params = Dict(
        help="Extra litellm parameters for every call (temperature, api_base, ...)."
    ).tag(config=True)
    system_prompt = Unicode(
        "", help="System prompt for every session (empty: the built-in one)."
    ).tag(config=True)
    state_dir = Unicode(
        "", help="Where the SQLite store and workspaces live (empty: the Jupyter data dir)."
    ).tag(config=True)
    policies = Dict(
        help="Approval policy per tool name: 'allow', 'ask' or 'deny' ('*' for all tools). "
        "Defaults: reading tools allow, everything that changes something asks."
    ).tag(config=True)
    sandbox = Enum(
        ["auto", "bubblewrap", "docker", "local"],
        "auto",
        help="Where agent commands run: bubblewrap, docker, local (no isolation) or auto "
        "(bubblewrap, else docker; never local unless chosen).",
    ).tag(config=True)
    network = Enum(
        ["none", "host"], "none", help="Sandbox network: 'none' (loopback only) or 'host'."
    ).tag(config=True)
    memory_mb = Int(2048, allow_none=True, help="Memory per sandbox (MB).").tag(config=True)
    cpus = Float(1.0, allow_none=True, help="CPU share per sandbox (1.0 = a core).").tag(
        config=True
    )
    pids = Int(512, allow_none=True, help="Processes per sandbox.").tag(config=True)
    command_timeout = Float(120.0, help="Default wall time of a shell command (s).").tag(
        config=True
    )
    quota_mb = Int(10_240, allow_none=True, help="Workspace size quota (MB).").tag(config=True)
    docker_image = Unicode("agentspace-sandbox:latest", help="Image of the docker sandbox.").tag(
        config=True
    )
    docker_host = Unicode("", help="Docker engine URL (empty: DOCKER_HOST).").tag(config=True)
    max_model_calls = Int(20, help="Model calls in one run.").tag(config=True)
    token_budget = Int(None, allow_none=True, help="Tokens a session may use.").tag(config=True)
    cost_ceiling = Float(None, allow_none=True, help="USD a session may spend.").tag(config=True)
    context_window = Int(
        None, allow_none=True, help="Override the model's context window (tokens)."
    ).tag(config=True)
    first_byte_timeout = Float(
        60.0, help="Seconds a model call may take to send its first chunk before it fails."
    ).tag(config=True)
    chunk_timeout = Float(
        60.0, help="Seconds a model's stream may go quiet between two chunks before it fails."
    ).tag(config=True)
    max_queue = Int(32, help="Messages waiting per session.").tag(config=True)
    max_message_bytes = Int(256_000, help="Largest user message (bytes).").tag(config=True)
    max_request_bytes = Int(
        50_000_000, help="Largest request body (file uploads included), in bytes."
    ).tag(config=True)
    messages_per_minute = Int(
        60, help="Messages a user may send per minute (all sessions); 0 = unlimited."
    ).tag(config=True)
    heartbeat_seconds = Float(15.0, help="Seconds between SSE keep-alive comments.").tag(
        config=True
    )
    preview_requires_xsrf = Bool(
        False, help="Require the XSRF check on non-GET preview requests made with cookies."
    ).tag(config=True)
    quiet_collections = Bool(
        True,
        help="Hold the server's full garbage collections until no run is streaming (at most "
        "30 s), so they do not pause every request in a burst of runs (server/collector.py).",
    ).tag(config=True)

    link_timeout = Float(
        2.0,
        help="Seconds a browser that has a notebook open (the labextension's notebook link, "
        "docs/notebook-link.md) may take to answer a read or an edit; a read it does not "
        "answer in time is made from the file instead, an edit fails.",
    ).tag(config=True)

    pace_requests = Bool(
        True,
        help="Let a burst of requests to this Jupyter server take turns with streaming runs "
        "(each request is routed in its turn, agentspace.server.admission) instead of all in "
        "one event-loop turn. Applies to every request of the server; off restores tornado's "
        "behaviour.",
    ).tag(config=True)

    attach_context = Bool(
        True,
        help="Attach the notebook context to each prompt: the notebook's path, the cell the "
        "prompt came from with its neighbours and the last error, each truncated (every view "
        "shows what was attached). False attaches none, whatever a client asks.",
    ).tag(config=True)

    chat_dir = Unicode(
        "agent-chats",
        help="Folder (relative to the server's root, not hidden: the contents API refuses "
        "hidden ones) for the notebooks' agent chats (jupyterlab-chat .chat files, one per "
        "notebook, mirroring the notebooks' paths). The session's store is the truth: a chat "
        "file removed or damaged is rebuilt from it when the chat opens again.",
    ).tag(config=True)

    @default("model")
    def _default_model(self) -> str:
        from agentspace.engine.defaults import default_model

        return default_model()

    def initialize_settings(self) -> None:
        self.settings["agentspace"] = ServerState(self)

    def initialize_handlers(self) -> None:
        from agentspace.server.routes import routes

        self.handlers.extend(routes())

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Once the server's loop runs (its HTTPServer exists by then): pace its requests."""
        if self.pace_requests:
            from agentspace.server.admission import pace

            pace(getattr(serverapp, "http_server", None))
        self.settings["agentspace"].hook_chats()

    async def stop_extension(self) -> None:
        """Server shutdown: stop runs, commit events, stop sandboxes."""
        state: ServerState | None = self.settings.get("agentspace")
        if state is not None:
            await state.close()

    def engine_config(self) -> EngineConfig:
        from pathlib import Path

        from agentspace.engine.config import EngineConfig, Limits, default_state_dir
        from agentspace.sandbox.base import SandboxPolicy

        base_url = self.serverapp.base_url if self.serverapp is not None else "/"
        values: dict[str, Any] = {
            "state_dir": Path(self.state_dir) if self.state_dir else default_state_dir(),
            "model": self.model,
            "model_params": dict(self.model_params),
            "policies": dict(self.policies),
            "sandbox": self.sandbox,
            "docker_host": self.docker_host or None,
            "preview_url": base_url.rstrip("/") + "/agentspace/preview/{session_id}/{port}/",
            "attach_context": self.attach_context,
            "limits": Limits(
                max_queue=self.max_queue,
                max_message_bytes=self.max_message_bytes,
                max_model_calls=self.max_model_calls,
                token_budget=self.token_budget,
                cost_ceiling=self.cost_ceiling,
                context_window=self.context_window,
                first_byte_timeout=self.first_byte_timeout,
                chunk_timeout=self.chunk_timeout,
            ),
            "sandbox_policy": SandboxPolicy(
                network=self.network,
                memory_mb=self.memory_mb,
                cpus=self.cpus,
                pids=self.pids,
                timeout=self.command_timeout,
                quota_mb=self.quota_mb,
                image=self.docker_image,
            ),
        }
        if self.system_prompt:
            values["system_prompt"] = self.system_prompt
        return EngineConfig(**values)


log = logging.getLogger(__name__)

# What the first request imports (pydantic, ag-ui, the engine: slow, bench/RESULTS.md,
# server section), off the loop.
HEAVY = ("agentspace.engine.engine", "agentspace.engine.requests")


class ServerState:
    """What handlers share: the engine (made on first use) and the per-user rate limiter."""

    def __init__(self, app: AgentspaceApp) -> None:
        self.app = app
        self._engine: Engine | None = None
        self._collector: QuietCollector | None = None
        self._lock = asyncio.Lock()
        self._sent: dict[str, list[float]] = {}
        self._listening = False
        self._imports: asyncio.Future[None] | None = None
        self._refused: tuple[Exception, tuple[int, ...]] | None = None  # a damaged store
        self.links = Links(timeout=app.link_timeout)  # browsers that have a notebook open
        self._chats: ChatBridge | None = None
        self._hooked = False
        self._kernel_calls: KernelCalls | None = None

    async def imported(self) -> None:
        """The engine's modules, imported once in a thread (fairness.imports), not on the loop."""
        if self._imports is None:
            from agentspace.fairness.imports import import_off_loop

            self._imports = asyncio.ensure_future(import_off_loop(*HEAVY))
        if not self._imports.done():
            await asyncio.shield(self._imports)
        self._imports.result()

    async def engine(self, *, damaged: bool = False) -> Engine:
        """The engine; a damaged store raises StoreDamaged (503) unless ``damaged`` (status)."""
        if self._engine is not None and not damaged and self._engine.damaged is not None:
            raise self._engine.damaged
        if self._engine is None:
            await self.imported()
            async with self._lock:
                if self._engine is None:
                    from agentspace.engine.engine import Engine
                    from agentspace.errors import StoreDamaged

                    config = self.app.engine_config()
                    db = config.state_dir / "agentspace.db"
                    if self._refused is not None and self._refused[1] == _identity(db):
                        raise self._refused[0]  # the same damaged file: not checked again
                    try:
                        engine = Engine(config, notebooks=self.notebooks())
                        self._engine = await engine.start(preload_model=True)
                    except StoreDamaged as exc:  # tried again once the file is replaced
                        self._refused = (exc, _identity(db))
                        raise
                    self._refused = None
                    self._follow_renames()
                    if self.app.quiet_collections:
                        from agentspace.server.collector import QuietCollector

                        self._collector = QuietCollector()
                        self._collector.start()
        return self._engine

    def notebooks(self) -> ServerNotebooks | None:
        """The engine's notebook ports: the linked browser's document, else the file."""
        contents = getattr(self.app.serverapp, "contents_manager", None)
        if contents is None:
            return None
        from agentspace.server.notebooks import ServerNotebooks

        return ServerNotebooks(self.links, contents)

    def _follow_renames(self) -> None:
        """Keep a notebook's session when the notebook is renamed or moved."""
        logger = getattr(self.app.serverapp, "event_logger", None)
        if logger is None or self._listening:
            return
        from agentspace.server.renames import CONTENTS_SCHEMA, on_contents_event

        logger.add_listener(schema_id=CONTENTS_SCHEMA, listener=on_contents_event(self))
        self._listening = True

    def kernel_calls(self) -> KernelCalls:
        """Kernel calls the server answers (a chat's turns; an approval from outside a cell)."""
        if self._kernel_calls is None:
            from agentspace.server.kernelcalls import KernelCalls

            self._kernel_calls = KernelCalls(self.app.serverapp, self.links)
        return self._kernel_calls

    def hook_chats(self) -> None:
        """With jupyterlab-chat enabled: stamp its messages with the server's identity and
        hear when a chat opens (cheap: nothing is imported that the server has not)."""
        serverapp = self.app.serverapp
        manager = serverapp.web_app.settings.get("chat_manager") if serverapp else None
        if manager is None or serverapp is None or self._hooked:
            return
        from agentspace.server.chat.identity import install

        install(serverapp.web_app)
        manager.observe_chats(self.on_chat_event)
        self._hooked = True

    async def chats(self) -> ChatBridge | None:
        """The chat bridge, started on the first chat (None without jupyterlab-chat)."""
        self.hook_chats()  # the server's start hook does it; an in-process test server not
        if self._chats is None:
            serverapp = self.app.serverapp
            manager = serverapp.web_app.settings.get("chat_manager") if serverapp else None
            if manager is None or serverapp is None:
                return None
            engine = await self.engine()
            if self._chats is None:
                from agentspace.server.chat.bridge import ChatBridge

                root = _root(serverapp.root_dir)
                self._chats = ChatBridge(
                    engine,
                    manager,
                    root,
                    self.app.chat_dir,
                    self.links,
                    serverapp.base_url,
                    self.kernel_calls(),
                    getattr(serverapp, "contents_manager", None),
                )
        return self._chats

    async def on_chat_event(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        """jupyterlab-chat opened or closed a chat: mirror ours (the bridge starts then)."""
        from agentspace.server.chat.paths import notebook_of

        path = str(data.get("path") or "")
        if self._chats is None and notebook_of(self.app.chat_dir, path) is None:
            return  # not one of ours: nothing is started for it
        try:
            bridge = await self.chats()
            if bridge is not None:
                await bridge.on_chat_event(data)
        except Exception:
            log.exception("agentspace: the chat %s could not be mirrored", path)

    def allow_message(self, user: str, now: float) -> float | None:
        """Record a message from ``user``; None if allowed, else seconds until allowed."""
        limit = self.app.messages_per_minute
        if limit <= 0:
            return None
        recent = [t for t in self._sent.get(user, []) if now - t < 60.0]
        if len(recent) >= limit:
            self._sent[user] = recent
            return 60.0 - (now - recent[0])
        recent.append(now)
        self._sent[user] = recent
        return None

    async def close(self) -> None:
        if self._chats is not None:
            chats, self._chats = self._chats, None
            await chats.close()
        if self._kernel_calls is not None:
            self._kernel_calls.close()
        if self._collector is not None:
            collector, self._collector = self._collector, None
            await collector.stop()
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.close()


def _root(root_dir: str) -> Path:
    return Path(root_dir).expanduser().resolve()


def _identity(path: Path) -> tuple[int, ...]:
    """Which file is there now (a repair puts a new one in place)."""
    try:
        st = path.stat()
    except OSError:
        return ()
    return (st.st_ino, st.st_size, st.st_mtime_ns)
