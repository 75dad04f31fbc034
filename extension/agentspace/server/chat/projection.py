"""A session's events, folded into chat messages: a pure state machine, tested by feeding it.

Each event (AG-UI's wire JSON, as the store keeps it) gives the operations that bring the chat
up to date: ``Post`` a message, ``Revise`` one (``streaming`` when more text comes soon: the
writer batches those), or say whether the agent is ``Writing``. Messages are named by keys that
survive a rebuild: ``user:<message id>``, ``text:<message id>``, ``tool:<tool call id>``,
``note:<seq>``. Replaying a session's events from the start gives the chat as it should be;
the writer compares that with the chat file and changes only what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import cards

AGENT = "agentspace-agent"
"""The chat username of the agent (a bot user)."""
KERNEL = "agentspace-kernel"
"""The chat username of turns a notebook's kernel sent (``%%agent`` cells)."""
EDIT_NOTE = "Note: the user edited the arguments of this call"  # the model is told; cards not


@dataclass
class Post:
    """A new message (or, if its key is in the chat already, that message as it should be)."""

    key: str
    sender: str
    body: str
    mime: dict[str, Any] | None = None
    time: float | None = None  # the event's time (a rebuilt chat keeps the original times)


@dataclass
class Revise:
    key: str
    body: str | None = None
    mime: dict[str, Any] | None = None
    streaming: bool = False  # more is coming: the writer may hold it back a little
    attach: dict[str, Any] | None = None  # the notebook context sent with a prompt


@dataclass
class Writing:
    on: bool


@dataclass
class Answer:
    """A kernel call that needs no approval, in a turn no ``%%agent`` cell follows (the chat's):
    the server has the notebook's kernel answer it."""

    tool_call_id: str


Op = Post | Revise | Writing | Answer


def sender_of(name: str | None) -> str:
    """The chat user a prompt is shown as coming from (the server stamped ``name``)."""
    if not name or name == "kernel" or name.startswith("kernel:"):
        return KERNEL
    return name


@dataclass
class ChatProjection:
    session: str
    base_url: str = "/"
    seq: int = 0
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    senders: dict[str, str] = field(default_factory=dict)  # user message id -> chat user
    posted: set[str] = field(default_factory=set)
    running: str | None = None  # the call whose process and preview links go on its card
    run: dict[str, Any] | None = None  # the run card of the run going now
    paused: dict[str, Any] | None = None  # the card of a turn paused for a decision
    origin: str | None = None  # who sent the prompt being answered (KERNEL: a cell follows)

    def apply(self, seq: int, event: dict[str, Any]) -> list[Op]:
        self.seq = max(self.seq, seq)
        handler = _HANDLERS.get(str(event.get("type")))
        return handler(self, seq, event) if handler else []

    # -- words ----------------------------------------------------------------
    def _text_start(self, seq: int, e: dict[str, Any]) -> list[Op]:
        mid = str(e.get("messageId"))
        self.texts[mid] = ""
        if e.get("role") == "user":
            self.senders[mid] = sender_of(e.get("name"))
        return []

    def _text_content(self, seq: int, e: dict[str, Any]) -> list[Op]:
        mid = str(e.get("messageId"))
        if mid not in self.texts:
            return []
        self.texts[mid] += str(e.get("delta", ""))
        if mid in self.senders or not self.texts[mid]:
            return []  # a prompt is posted whole, at its end
        key = f"text:{mid}"
        if key not in self.posted:
            self.posted.add(key)
            return [Post(key, AGENT, self.texts[mid], time=_time(e))]
        return [Revise(key, body=self.texts[mid], streaming=True)]

    def _text_end(self, seq: int, e: dict[str, Any]) -> list[Op]:
        mid = str(e.get("messageId"))
        text = self.texts.pop(mid, "")
        if mid in self.senders:
            self.origin = self.senders.pop(mid)
            return [Post(f"user:{mid}", self.origin, text, time=_time(e))]
        key = f"text:{mid}"
        return [Revise(key, body=text)] if key in self.posted else []

    # -- tool calls -------------------------------------------------------------
    def _card(self, call_id: str, tool: str = "?") -> dict[str, Any]:
        card = self.cards.get(call_id)
        if card is None:
            card = self.cards[call_id] = cards.new_card(self.session, call_id, tool)
        return card

    def _show(self, card: dict[str, Any], e: dict[str, Any], streaming: bool = False) -> list[Op]:
        key = f"tool:{card['tool_call_id']}"
        if key not in self.posted:
            self.posted.add(key)
            return [Post(key, AGENT, cards.fallback(card), cards.bundle(card), time=_time(e))]
        return [Revise(key, cards.fallback(card), cards.bundle(card), streaming=streaming)]

    def _tool_start(self, seq: int, e: dict[str, Any]) -> list[Op]:
        card = self._card(str(e.get("toolCallId")), str(e.get("toolCallName", "?")))
        return self._show(card, e)

    def _tool_args(self, seq: int, e: dict[str, Any]) -> list[Op]:
        card = self.cards.get(str(e.get("toolCallId")))
        if card is None:
            return []
        cards.set_arguments(card, card["arguments_text"] + str(e.get("delta", "")))
        return self._show(card, e, streaming=True)

    def _tool_end(self, seq: int, e: dict[str, Any]) -> list[Op]:
        card = self.cards.get(str(e.get("toolCallId")))
        return self._show(card, e) if card is not None else []

    def _tool_result(self, seq: int, e: dict[str, Any]) -> list[Op]:
        card = self.cards.get(str(e.get("toolCallId")))
        if card is None:
            return []
        result = str(e.get("content", ""))
        if result.startswith(EDIT_NOTE):
            result = result.split("\n", 1)[1] if "\n" in result else ""
        cards.set_result(card, result)
        rejected = (card.get("decision") or {}).get("decision") == "reject"
        card["is_error"] = result.startswith("Error:") and not rejected
        card["status"] = "rejected" if rejected else "failed" if card["is_error"] else "done"
        card["preview"] = None if rejected else card["preview"]
        if self.running == card["tool_call_id"]:
            self.running = None
        return self._show(card, e)

    def _decision(self, e: dict[str, Any], value: dict[str, Any]) -> list[Op]:
        card = self.cards.get(str(value.get("tool_call_id")))
        if card is None:
            return []
        card["decision"] = {k: v for k, v in value.items() if k not in ("tool_call_id", "output")}
        if value.get("decision") == "edit" and isinstance(value.get("arguments"), dict):
            card["arguments"] = value["arguments"]
            card["preview"] = None  # the diff was of the arguments before the edit
        if value.get("decision") == "reject":
            card["status"] = "rejected"
        elif card["status"] in ("calling", "pending"):
            card["status"] = "running"
            self.running = card["tool_call_id"]
        return self._show(card, e)

    # -- runs ----------------------------------------------------------------
    def _run_started(self, seq: int, e: dict[str, Any]) -> list[Op]:
        paused = self.paused
        if paused is not None:  # the paused turn goes on (a decision resumed it): its card
            self.run, self.paused = paused, None
            paused["status"] = "running"
            key = f"run:{paused['run_id']}"
            return [Writing(True), Revise(key, cards.run_text(paused), cards.run_bundle(paused))]
        self.run = cards.new_run(self.session, str(e.get("runId") or seq))
        key = f"run:{self.run['run_id']}"
        self.posted.add(key)
        return [Writing(True), Post(key, AGENT, cards.run_text(self.run),
                                    cards.run_bundle(self.run), time=_time(e))]  # fmt: skip

    def _end_run(self, status: str, e: dict[str, Any], message: str | None = None) -> list[Op]:
        run, self.run = self.run, None
        if run is None:
            return []
        run["status"], run["message"] = status, message
        self.paused = run if status == "paused" else None
        for usage in e.get("usage") or []:
            run["input_tokens"] += int(usage.get("inputTokens") or 0)
            run["output_tokens"] += int(usage.get("outputTokens") or 0)
        key = f"run:{run['run_id']}"
        return [Revise(key, cards.run_text(run), cards.run_bundle(run))]

    def _run_finished(self, seq: int, e: dict[str, Any]) -> list[Op]:
        outcome = e.get("outcome") or {"type": "success"}
        ops: list[Op] = [Writing(False)]
        if outcome.get("type") == "interrupt":
            for interrupt in outcome.get("interrupts") or []:
                ops += self._pending(e, interrupt)
            return ops + self._end_run("paused", e)
        if outcome.get("type") == "cancelled":
            ops += self._end_open(e, "cancelled")
            return ops + self._end_run("stopped", e)
        return ops + self._end_run("finished", e)

    def _pending(self, e: dict[str, Any], interrupt: dict[str, Any]) -> list[Op]:
        meta = interrupt.get("metadata") or {}
        call_id = str(interrupt.get("toolCallId") or interrupt.get("id"))
        card = self._card(call_id, str(meta.get("tool", "?")))
        if card["arguments"] is None and isinstance(meta.get("arguments"), dict):
            card["arguments"] = meta["arguments"]
        kernel = interrupt.get("reason") == "kernel_tool"
        answer: list[Op] = []
        if kernel and not meta.get("needs_approval"):
            card["status"] = "running"  # allowed: the notebook's kernel runs it
            if self.origin != KERNEL:
                answer.append(Answer(call_id))
        else:
            card["status"] = "pending"
        preview = meta.get("preview")
        card["preview"] = preview if isinstance(preview, str) and preview.strip() else None
        card["can_remember"] = not kernel or bool(meta.get("needs_approval"))
        return self._show(card, e) + answer

    def _end_open(self, e: dict[str, Any], status: str) -> list[Op]:
        ops: list[Op] = []
        for card in self.cards.values():
            if card["status"] in ("calling", "running"):
                card["status"] = status
                ops += self._show(card, e)
        self.running = None
        return ops

    def _run_error(self, seq: int, e: dict[str, Any]) -> list[Op]:
        message = str(e.get("message") or "the run failed")
        self.posted.add(f"note:{seq}")
        note = Post(f"note:{seq}", AGENT, f"⚠️ **The run failed:** {message}", time=_time(e))
        return [Writing(False), *self._end_open(e, "failed"), *self._end_run("failed", e), note]

    def _custom(self, seq: int, e: dict[str, Any]) -> list[Op]:
        name, value = e.get("name"), e.get("value") or {}
        if not isinstance(value, dict):
            return []
        if name == "agentspace.decision":
            return self._decision(e, value)
        if name == "agentspace.context" and value.get("message_id"):
            return [Revise(f"user:{value['message_id']}", attach=value)]
        if name == "agentspace.warning" and value.get("message"):
            self.posted.add(f"note:{seq}")
            return [Post(f"note:{seq}", AGENT, f"⚠️ {value['message']}", time=_time(e))]
        if name == "agentspace.process" and value.get("event") == "started":
            path = f"agentspace/api/sessions/{self.session}/processes/{value.get('name')}/output"
            return self._link(e, f"output of {value.get('name')}", path)
        if name == "agentspace.preview" and value.get("url"):
            url = str(value["url"])
            base = self.base_url.rstrip("/") + "/"
            path = url[len(base) :] if url.startswith(base) else url.lstrip("/")
            return self._link(e, f"preview :{value.get('port')}", path)
        return []

    def _link(self, e: dict[str, Any], label: str, path: str) -> list[Op]:
        card = self.cards.get(self.running or "")
        if card is None:
            return []
        link = {"label": label, "path": path}
        if link not in card["links"]:
            card["links"].append(link)
        return self._show(card, e)


def _time(e: dict[str, Any]) -> float | None:
    stamp = e.get("timestamp")
    return stamp / 1000 if isinstance(stamp, int | float) else None


_HANDLERS = {
    "TEXT_MESSAGE_START": ChatProjection._text_start,
    "TEXT_MESSAGE_CONTENT": ChatProjection._text_content,
    "TEXT_MESSAGE_END": ChatProjection._text_end,
    "TOOL_CALL_START": ChatProjection._tool_start,
    "TOOL_CALL_ARGS": ChatProjection._tool_args,
    "TOOL_CALL_END": ChatProjection._tool_end,
    "TOOL_CALL_RESULT": ChatProjection._tool_result,
    "RUN_STARTED": ChatProjection._run_started,
    "RUN_FINISHED": ChatProjection._run_finished,
    "RUN_ERROR": ChatProjection._run_error,
    "CUSTOM": ChatProjection._custom,
}
