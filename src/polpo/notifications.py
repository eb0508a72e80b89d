"""One-way alerts (SPEC §7): events → rules → the durable outbox.

The notifier reads the event log in order, from a durable cursor, and turns
each event into outbox rows — one per recipient, with ``dedupe_key =
"event:<event id>:<peer>"`` — in the same transaction that moves the cursor.
So an alert is enqueued exactly once: a crash before the commit replays the
event, a crash after it finds the cursor moved, and a replay that enqueues
again is a no-op. Events written by other processes (a CLI approval, ``polpo
run`` failing a task) are in the same log; the bus (fed by the event tail)
only wakes the notifier up. Events that happened while ``polpo serve`` was
down are sent when it starts, unless older than :data:`MAX_AGE_SECONDS`.

Routing:

* ``settings.notifications.rules``: an event whose type matches one of a
  rule's ``events`` globs goes to each of the rule's ``channels``: to the
  rule's ``to`` peers that belong to that channel, or, without ``to``, to
  the channel's admins (``admin_peers()``).
* Default, for an event no rule matches: approval requests, task and mission
  failures, pairing requests and channel disconnections go to the admins of
  every channel.
* ``channel:disconnected`` is never sent on the channel that went down.

Texts are Markdown (the dispatcher formats them per channel) with short ids
and the exact command to answer. Every string in them that came from a
stranger or a model (display names, task titles, summaries, errors, reasons)
is escaped, so it shows as the characters it is: a display name
``[Tap here](http://evil.example)`` is not a link, ``**URGENT**`` is not bold;
names are also kept to one line, so they cannot forge lines of the alert; approval alerts carry Approve/Reject
buttons and ``ref = "approval:<id>"`` (a 👍/👎 reaction to them decides).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from polpo.core.models import Event
from polpo.gateway.markdown import escape, literal_line
from polpo.host import cancel_and_wait, wake_or_timeout
from polpo.peerid import PeerIdError, default_chat_id, display_peer, normalize_peer, split_peer
from polpo.store import outbox as outbox_store
from polpo.store.engine import insert_ignore
from polpo.store.records import event_from_row
from polpo.store.tables import approvals, events, notification_cursor, pairing_requests

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.config import PolpoConfig
    from polpo.host import Host

log = logging.getLogger(__name__)

CURSOR = "notifications"
#: Events older than this when first seen (serve was down) are skipped, not sent.
MAX_AGE_SECONDS = 24 * 3600
BATCH = 200
POLL_SECONDS = 2.0
MAX_SUMMARY = 600

#: What reaches every channel's admins when no rule matches the event.
DEFAULT_EVENTS = (
    "approval:requested",
    "task:failed",
    "mission:failed",
    "peer:pairing_requested",
    "channel:disconnected",
)


class AlertChannel(Protocol):
    """A channel alerts can go to: a channel config, or an inline one (tests, ``polpo chat``)."""

    @property
    def type(self) -> str: ...

    def admin_peers(self) -> list[str]: ...


@dataclass(frozen=True)
class Alert:
    channel: str  # channel type, as the outbox wants it
    peer_id: str
    chat_id: str
    text: str
    buttons: list[dict[str, str]] | None
    ref: str | None


@dataclass(frozen=True)
class Message:
    text: str
    buttons: list[dict[str, str]] | None = None
    ref: str | None = None


# -- routing -----------------------------------------------------------------------


def config_channels(config: PolpoConfig) -> dict[str, AlertChannel]:
    return dict(config.settings.notifications.channels)


def recipients(
    config: PolpoConfig, channels: Mapping[str, AlertChannel], ev: Event
) -> list[tuple[str, str]]:
    """``(channel type, peer id)`` pairs the event goes to, in a stable order, no repeats."""
    out: list[tuple[str, str]] = []

    def add(ch: AlertChannel, peers: list[str]) -> None:
        for p in peers:
            if (ch.type, p) not in out:
                out.append((ch.type, p))

    down = str(ev.payload.get("channel") or "") if ev.type == "channel:disconnected" else ""

    def usable(key: str, ch: AlertChannel) -> bool:
        return not down or (key != down and ch.type != down)

    matched = False
    for rule in config.settings.notifications.rules:
        if not any(fnmatch.fnmatchcase(ev.type, pattern) for pattern in rule.events):
            continue
        matched = True
        for key in rule.channels:
            ch = channels.get(key)
            if ch is None or not usable(key, ch):
                continue
            if rule.to is None:
                add(ch, ch.admin_peers())
            else:
                to = [_normalized(p) for p in rule.to]
                add(ch, [p for p in to if _channel_of(p) == ch.type])
    if not matched and ev.type in DEFAULT_EVENTS:
        for key, ch in channels.items():
            if usable(key, ch):
                add(ch, ch.admin_peers())
    return out


def _normalized(peer: str) -> str:
    try:
        return normalize_peer(peer)
    except PeerIdError:
        return peer


def _channel_of(peer_id: str) -> str | None:
    try:
        return split_peer(peer_id)[0]
    except PeerIdError:
        return None


# -- texts --------------------------------------------------------------------------


def _clip(text: str, n: int = MAX_SUMMARY) -> str:
    """Untrusted text (a summary, an error, feedback), shortened and escaped."""
    text = text.strip()
    return escape(text if len(text) <= n else text[: n - 1].rstrip() + "…")


def _name(value: Any, limit: int = 80) -> str:
    """An untrusted name or title: one line, shortened, escaped."""
    return literal_line(str(value if value is not None else ""), limit)


def _id(value: Any) -> str:
    """A short id inside backticks (ours, but never trusted to hold no backtick)."""
    return str(value).replace("`", "")


def _task_line(p: Mapping[str, Any]) -> str:
    agent = f" ({_name(p['agent'])})" if p.get("agent") else ""
    return f"`{_id(p.get('shortId'))}` {_name(p.get('title', ''))}{agent}"


def render(ev: Event) -> Message:
    """The alert for ``ev``: Markdown with short ids and the command to answer."""
    p = ev.payload
    t = ev.type
    if t == "approval:requested":
        short = _id(p.get("shortId"))
        when = "before it starts" if p.get("hook") == "task:start" else "before its result counts"
        lines = [
            f"✋ **Approval needed** `{short}`",
            f"Task `{_id(p.get('taskShortId'))}` {_name(p.get('taskTitle', ''))}"
            + (f" ({_name(p['agent'])})" if p.get("agent") else ""),
            f"Gate: {_name(p.get('gate'))}, {when}",
        ]
        if p.get("summary"):
            lines += ["", _clip(str(p["summary"]))]
        lines += ["", f"Approve: `/approve {short}` · Reject: `/reject {short} reason`"]
        return Message(
            "\n".join(lines),
            buttons=[
                {"label": "Approve", "command": f"/approve {short}"},
                {"label": "Reject", "command": f"/reject {short}"},
            ],
            ref=f"approval:{p.get('approvalId')}",
        )
    if t == "approval:resolved":
        status = p.get("status")
        icon = {"approved": "👍", "rejected": "👎", "expired": "⌛"}.get(str(status), "•")
        by = f" by {_name(display_peer(str(p['by'])))}" if p.get("by") else ""
        text = (
            f"{icon} Approval `{_id(p.get('shortId'))}` {_name(status)}{by}: "
            f"task `{_id(p.get('taskShortId'))}` {_name(p.get('taskTitle', ''))}"
        )
        if p.get("feedback"):
            text += f"\nFeedback: {_clip(str(p['feedback']))}"
        return Message(text, ref=f"approval:{p.get('approvalId')}")
    if t == "task:failed":
        text = f"❌ **Task failed** {_task_line(p)}"
        if p.get("error"):
            text += f"\n{_clip(str(p['error']))}"
        text += f"\n\nRetry: `polpo task retry {_id(p.get('shortId'))}`"
        return Message(text, ref=f"task:{p.get('taskId')}")
    if t.startswith("task:"):
        icon, verb = {
            "task:created": ("🆕", "created"),
            "task:started": ("▶️", "started"),
            "task:done": ("✅", "done"),
            "task:cancelled": ("🚫", "cancelled"),
        }.get(t, ("•", t.split(":", 1)[1]))
        return Message(f"{icon} Task {verb}: {_task_line(p)}", ref=f"task:{p.get('taskId')}")
    if t.startswith("mission:"):
        progress = p.get("progress") or {}
        counts = f" ({progress.get('done', 0)}/{progress.get('total', 0)} tasks done)"
        name = f"`{_id(p.get('shortId'))}` {_name(p.get('name', ''))}"
        if t == "mission:failed":
            return Message(
                f"❌ **Mission failed** {name}{counts}\n\n"
                f"Retry its failed tasks: `polpo mission start {_id(p.get('shortId'))}`",
                ref=f"mission:{p.get('missionId')}",
            )
        icon, verb = {
            "mission:completed": ("🏁", "**Mission completed**"),
            "mission:started": ("🚀", "Mission started"),
            "mission:created": ("📝", "Mission created"),
        }.get(t, ("•", t))
        return Message(f"{icon} {verb} {name}{counts}", ref=f"mission:{p.get('missionId')}")
    if t == "peer:pairing_requested":
        code = _id(p.get("code"))
        who = _name(p.get("displayName") or "someone", 60)
        peer = _id(display_peer(str(p.get("peerId") or "")))
        return Message(
            f"🔑 **Pairing request** from {who} (`{peer}`) on {_name(p.get('channel'))}\n\n"
            f"Let them in: `/pair {code}`",
            buttons=[{"label": "Approve", "command": f"/pair {code}"}],
            ref=f"pairing:{code}",
        )
    if t == "channel:disconnected":
        detail = f": {_clip(str(p['detail']), 200)}" if p.get("detail") else ""
        state = str(p.get("state") or "disconnected")
        state = state if state.replace("_", "").isalpha() else _name(state)  # ours: logged_out
        return Message(
            f"⚠️ **Channel {_name(p.get('channel'))} {state}**{detail}\n"
            "Its messages wait in the outbox until it is back.",
            ref=f"channel:{p.get('channel')}",
        )
    if t == "channel:connected":
        return Message(
            f"🔌 Channel {_name(p.get('channel'))} connected", ref=f"channel:{p.get('channel')}"
        )
    return Message(f"• {_name(t)}")


def alerts_for(config: PolpoConfig, channels: Mapping[str, AlertChannel], ev: Event) -> list[Alert]:
    targets = recipients(config, channels, ev)
    if not targets:
        return []
    msg = render(ev)
    out = []
    for channel, peer in targets:
        try:
            chat = default_chat_id(peer)
        except PeerIdError:
            log.warning("cannot alert %r: not a peer id", peer)
            continue
        out.append(Alert(channel, peer, chat, msg.text, msg.buttons, msg.ref))
    return out


# -- the notifier ----------------------------------------------------------------------


async def _already_settled(conn: Any, ev: Event, now: float) -> bool:
    """A request that was answered before its alert went out needs no alert."""
    if ev.type == "approval:requested" and ev.payload.get("approvalId"):
        status = (
            await conn.execute(
                sa.select(approvals.c.status).where(approvals.c.id == ev.payload["approvalId"])
            )
        ).scalar()
        return status is not None and status != "pending"
    if ev.type == "peer:pairing_requested" and ev.payload.get("code"):
        row = (
            await conn.execute(
                sa.select(pairing_requests.c.status, pairing_requests.c.expires_at).where(
                    pairing_requests.c.code == ev.payload["code"]
                )
            )
        ).first()
        return row is not None and (row.status != "pending" or row.expires_at <= now)
    return False


class Notifier:
    """Follows the event log and enqueues alerts. Run one per project (``polpo serve``)."""

    def __init__(
        self,
        app: Polpo,
        *,
        channels: Mapping[str, AlertChannel]
        | Callable[[], Mapping[str, AlertChannel]]
        | None = None,
        max_age_seconds: float = MAX_AGE_SECONDS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.app = app
        self._channels = channels
        self.max_age_seconds = max_age_seconds
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.enqueued = 0

    def channels(self) -> Mapping[str, AlertChannel]:
        """The config's channels, plus (or replaced by) the ones given in code."""
        given = self._channels() if callable(self._channels) else self._channels
        merged = config_channels(self.app.config)
        merged.update(given or {})
        return merged

    async def process(self) -> int:
        """Enqueue the alerts of every event after the cursor; returns the rows enqueued."""
        total = 0
        while True:
            added, more = await self._batch()
            total += added
            if not more:
                break
        if total:
            self.app.outbox_ready.set()
        self.enqueued += total
        return total

    async def _batch(self) -> tuple[int, bool]:
        config = self.app.config
        channels = self.channels()
        now = self.app.clock.now()
        added = 0
        async with self.app.store.write() as conn:
            # the cursor row exists, then is locked: a second notifier (another serve
            # node) waits here and goes on from where this one leaves the cursor
            await conn.execute(
                insert_ignore(self.app.store, notification_cursor).values(
                    name=CURSOR, last_event_id=0, updated_at=now
                )
            )
            cursor = (
                await conn.execute(
                    sa.select(notification_cursor.c.last_event_id)
                    .where(notification_cursor.c.name == CURSOR)
                    .with_for_update()
                )
            ).scalar()
            after = int(cursor or 0)
            rows = (
                await conn.execute(
                    sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(BATCH)
                )
            ).all()
            if not rows:
                return 0, False
            for row in rows:
                ev = event_from_row(row)
                if now - ev.created_at > self.max_age_seconds:
                    continue  # happened long before we could tell anyone: stale news
                if await _already_settled(conn, ev, now):
                    continue  # e.g. approved while serve was down: nothing left to ask
                for alert in alerts_for(config, channels, ev):
                    rid = await outbox_store.enqueue(
                        conn,
                        channel=alert.channel,
                        chat_id=alert.chat_id,
                        peer_id=alert.peer_id,
                        text=alert.text,
                        buttons=alert.buttons,
                        ref=alert.ref,
                        dedupe_key=f"event:{ev.id}:{alert.peer_id}",
                        now=now,
                    )
                    added += rid is not None
            last = int(rows[-1].id)
            await conn.execute(
                sa.update(notification_cursor)
                .where(notification_cursor.c.name == CURSOR)
                .values(last_event_id=last, updated_at=now)
            )
        return added, len(rows) == BATCH

    async def _on_event(self, ev: Event) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._unsubscribe = self.app.bus.subscribe("*", self._on_event)
        self._task = asyncio.create_task(self._loop(), name="polpo-notifier")

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.process()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifications: enqueueing alerts failed; trying again")
            await wake_or_timeout(self._wake, self.poll_seconds)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await cancel_and_wait(self._task)
        self._task = None


class NotificationsComponent:
    """The notifier as a ``polpo serve`` component."""

    name = "notifications"

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    async def start(self) -> None:
        await self.notifier.start()

    async def stop(self) -> None:
        await self.notifier.stop()


def add_notifications(host: Host) -> None:
    """Add the notifier to ``polpo serve``.

    Channels given in code (an inline ``MemoryChannel`` config) may be published
    as ``host.registry["alert_channels"]`` (a mapping name → config) by the
    component that owns them; the config's channels are always included.
    """
    notifier = Notifier(host.app, channels=lambda: host.registry.get("alert_channels") or {})
    host.registry["notifier"] = notifier
    host.add(NotificationsComponent(notifier))
