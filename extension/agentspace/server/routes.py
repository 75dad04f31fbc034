"""URL patterns of the extension (imported when the server loads it; cheap)."""

from __future__ import annotations

from typing import Any

SID = r"(?P<session_id>[^/]+)"


def routes() -> list[tuple[str, Any]]:
    from agentspace.server.files import (
        FilesHandler,
        ProcessesHandler,
        ProcessOutputHandler,
        ProcessRestartHandler,
        ProcessStopHandler,
    )

    from .chat.handlers import ChatsHandler
    from .links import LinkHandler, LinksHandler
    from .openapi import OpenApiHandler
    from .preview import PreviewHandler
    from .sessions import (
        ApprovalHandler,
        MessagesHandler,
        ResumeHandler,
        SessionHandler,
        SessionsHandler,
        StopHandler,
        ToolsHandler,
    )
    from .status import StatusHandler
    from .streams import AguiHandler, EventsHandler

    api = r"/agentspace/api"
    return [
        (rf"{api}/openapi\.json", OpenApiHandler),
        (rf"{api}/status/?", StatusHandler),
        (rf"{api}/chats/?", ChatsHandler),
        (rf"{api}/notebooks/link/?", LinkHandler),
        (rf"{api}/notebooks/links/?", LinksHandler),
        (rf"{api}/sessions/?", SessionsHandler),
        (rf"{api}/sessions/{SID}/?", SessionHandler),
        (rf"{api}/sessions/{SID}/messages/?", MessagesHandler),
        (rf"{api}/sessions/{SID}/events/?", EventsHandler),
        (rf"{api}/sessions/{SID}/stop/?", StopHandler),
        (rf"{api}/sessions/{SID}/resume/?", ResumeHandler),
        (rf"{api}/sessions/{SID}/approvals/(?P<tool_call_id>[^/]+)/?", ApprovalHandler),
        (rf"{api}/sessions/{SID}/tools/?", ToolsHandler),
        (rf"{api}/sessions/{SID}/agui/?", AguiHandler),
        (rf"{api}/sessions/{SID}/files/?", FilesHandler),
        (rf"{api}/sessions/{SID}/files/(?P<path>.+)", FilesHandler),
        (rf"{api}/sessions/{SID}/processes/?", ProcessesHandler),
        (rf"{api}/sessions/{SID}/processes/(?P<name>[^/]+)/output/?", ProcessOutputHandler),
        (rf"{api}/sessions/{SID}/processes/(?P<name>[^/]+)/stop/?", ProcessStopHandler),
        (rf"{api}/sessions/{SID}/processes/(?P<name>[^/]+)/restart/?", ProcessRestartHandler),
        (rf"/agentspace/preview/{SID}/(?P<port>[0-9]{{1,5}})(?P<path>/.*)?", PreviewHandler),
    ]
