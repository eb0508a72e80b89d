"""``GET /api/v1/events``: the event log as Server-Sent Events.

``?after=ID`` (or the ``Last-Event-ID`` header a reconnecting browser sends)
replays the log from there first; then live events follow. The stream is
always read from the log, in id order, after the last id sent: ids become
visible in increasing order on both engines (:mod:`polpo.store.event_order`),
so nothing committed late is skipped and a reconnect resumes exactly. The
bus only says when to read again (events other processes write reach it
through the event tail). Each event is ``id``/``event``/``data`` (JSON of
:meth:`Event.to_dict`); a comment line every 15 s keeps proxies from closing
an idle stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from polpo.api.deps import PolpoDep
from polpo.core.models import Event
from polpo.store.records import events_after
from polpo.store.records import last_event_id as newest_event_id

router = APIRouter(tags=["events"])

KEEPALIVE_SECONDS = 15.0
#: Event ids fit a signed 64-bit column; larger ``after`` values are a 422 (never a 500).
MAX_EVENT_ID = 2**63 - 1


def sse(ev: Event) -> str:
    data = json.dumps(ev.to_dict(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {ev.id}\nevent: {ev.type}\ndata: {data}\n\n"


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    request: Request,
    app: PolpoDep,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_EVENT_ID, description="Replay events after this id")
    ] = None,
    types: Annotated[str, Query(description="Glob of event types, e.g. approval:*")] = "*",
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    start = after
    if start is None and last_event_id and last_event_id.isascii() and last_event_id.isdigit():
        start = min(int(last_event_id), MAX_EVENT_ID)
    # any event wakes the stream: it then reads the log (the filter applies to what it sends)
    queue, unsubscribe = app.bus.queue("*")
    stopping: asyncio.Event = getattr(request.app.state, "stopping", None) or asyncio.Event()

    async def stream() -> AsyncIterator[str]:
        import fnmatch

        try:
            yield ": polpo events\n\n"
            if start is not None:
                last = start
            else:
                async with app.store.read() as conn:
                    last = await newest_event_id(conn)
            # One pending get() lives across keepalives, so no wake-up is lost to a cancel.
            getter: asyncio.Future[Event] | None = None
            try:
                while not stopping.is_set():
                    while True:
                        async with app.store.read() as conn:
                            batch = await events_after(conn, last)
                        for ev in batch:
                            last = ev.id
                            if fnmatch.fnmatchcase(ev.type, types):
                                yield sse(ev)
                        if len(batch) < 500:
                            break
                    if getter is None:
                        getter = asyncio.ensure_future(queue.get())
                    stopper = asyncio.ensure_future(stopping.wait())
                    waiting: set[asyncio.Future[Any]] = {getter, stopper}
                    done, _ = await asyncio.wait(
                        waiting,
                        timeout=KEEPALIVE_SECONDS,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    stopper.cancel()
                    if getter in done:
                        getter = None
                        while not queue.empty():  # one read covers every wake-up so far
                            queue.get_nowait()
                        continue
                    if stopping.is_set() or await request.is_disconnected():
                        break
                    yield ": keepalive\n\n"
            finally:
                if getter is not None:
                    getter.cancel()
        finally:
            unsubscribe()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
