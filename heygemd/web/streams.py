"""Server-sent events: a producer polled over the files, sent whenever what it makes changes."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse

from heygemd.web.site import version_of

EVENT_POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}}}


def sse(data: str, event: str | None = None) -> str:
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in data.split("\n")]
    return "\n".join(lines) + "\n\n"


async def event_stream(request: Request, produce: Callable[[], tuple[str, bool]], known: str | None) -> AsyncIterator[str]:
    """Send what ``produce`` makes whenever it changes (polling the files), until it says it is final.

    A stream also ends when the server stops (``app.state.stopping``), so a stop never waits for open pages.
    """
    stopping: threading.Event = request.app.state.stopping
    last, quiet = known, 0.0
    yield "retry: 2000\n\n"
    while not stopping.is_set():
        text, final = await anyio.to_thread.run_sync(produce)
        version = version_of(text)
        if version != last:
            last, quiet = version, 0.0
            yield sse(text)
        elif quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keepalive\n\n"
        if final:
            yield sse("", event="end")
            return
        if await request.is_disconnected():
            return
        await anyio.sleep(EVENT_POLL_SECONDS)
        quiet += EVENT_POLL_SECONDS


def event_response(request: Request, produce: Callable[[], tuple[str, bool]], known: str | None = None) -> StreamingResponse:
    return StreamingResponse(
        event_stream(request, produce, known),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
