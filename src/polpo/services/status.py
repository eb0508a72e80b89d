"""The project at a glance: what ``/status``, ``polpo status`` and the API show."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from polpo.core.models import AgentView, Event
from polpo.core.recent_peers import RecentPeers
from polpo.core.states import TASK_STATUSES
from polpo.services.agents import agent_views
from polpo.services.context import ServiceContext
from polpo.store import status as store

CONNECTED_WINDOW_SECONDS = 5 * 60


@dataclass(frozen=True)
class ChannelState:
    channel: str
    state: str
    detail: str | None = None
    account: str | None = None
    updated_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "state": self.state,
            "detail": self.detail,
            "account": self.account,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True)
class StatusSummary:
    project: str
    tasks: dict[str, int]
    agents: list[AgentView]
    pending_approvals: int
    #: the most recently seen peers of the last 5 minutes (at most PEERS_SHOWN)
    connected_peers: list[str]
    channels: list[ChannelState] = field(default_factory=list)
    #: how many peers were seen in the last 5 minutes
    connected_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "tasks": self.tasks,
            "agents": [a.to_dict() for a in self.agents],
            "pendingApprovals": self.pending_approvals,
            "connectedPeers": self.connected_peers,
            "connectedCount": self.connected_count,
            "channels": [c.to_dict() for c in self.channels],
        }


async def read_channel_states(ctx: ServiceContext) -> list[ChannelState]:
    async with ctx.read() as conn:
        rows = await store.channel_states(conn)
    return [ChannelState(r.channel, r.state, r.detail, r.account, r.updated_at) for r in rows]


async def write_channel_state(
    ctx: ServiceContext,
    channel: str,
    state: str,
    detail: str | None = None,
    account: str | None = None,
) -> None:
    """Record a channel's connection state durably (other processes read it)."""
    async with ctx.store.write() as conn:
        await store.write_channel_state(
            conn, channel, state, detail, account, now=ctx.clock.now(), holder=ctx.origin
        )
    status_view(ctx).invalidate()


#: How many of the peers seen recently ``/status`` names (the rest are counted).
PEERS_SHOWN = 5
#: Seconds a summary is kept when no event says it changed: what other processes write
#: without an event (a channel's state) shows within this.
KEEP_SECONDS = 2.0


@dataclass(frozen=True)
class _Base:
    """What only changes with an event (or a channel state write)."""

    tasks: dict[str, int]
    pending_approvals: int
    agents: list[AgentView]
    channels: list[ChannelState]
    #: the project clock's time of the read
    read_at: float


class StatusView:
    """``/status`` kept between calls.

    The counts, running tasks and channel states are read again only after an
    event (any task, approval or mission change emits one, also from other
    processes through the event tail) or a channel state write, or after
    :data:`KEEP_SECONDS`. The recent peers change with every message: they are
    kept in memory (:class:`~polpo.core.recent_peers.RecentPeers`), told of
    each sighting of this process's gateway (:meth:`seen`), and read again from
    the ``last_seen`` index after :data:`KEEP_SECONDS` (what other processes
    saw). A ``/status`` with nothing to read again reads nothing."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._base: _Base | None = None
        #: bumped by every change: a read that started before one is not kept
        self._generation = 0
        self._recent = RecentPeers()
        #: when the recent peers were read from the database (None: not yet)
        self._recent_at: float | None = None
        ctx.bus.subscribe("*", self._changed)

    def invalidate(self) -> None:
        self._base = None
        self._generation += 1

    def seen(self, peer_id: str, when: float) -> None:
        """The gateway saw ``peer_id`` at ``when`` (and recorded it in ``peers``)."""
        if self._recent_at is not None:
            self._recent.seen(peer_id, when)

    async def _changed(self, _event: Event) -> None:
        self.invalidate()

    async def summary(self) -> StatusSummary:
        ctx = self.ctx
        now = ctx.clock.now()
        since = now - CONNECTED_WINDOW_SECONDS
        base = self._base
        if base is not None and abs(now - base.read_at) > KEEP_SECONDS:
            base = None
        recent_at = self._recent_at
        reload_recent = recent_at is None or abs(now - recent_at) > KEEP_SECONDS
        if base is None or reload_recent:
            generation = self._generation
            async with ctx.read() as conn:
                if base is None:
                    rows = await store.channel_states(conn)
                    base = _Base(
                        await store.task_counts(conn),
                        await store.pending_approvals(conn),
                        agent_views(ctx.config, await store.running_tasks(conn)),
                        [
                            ChannelState(r.channel, r.state, r.detail, r.account, r.updated_at)
                            for r in rows
                        ],
                        now,
                    )
                if reload_recent:
                    self._recent.load(await store.seen_since(conn, since))
                    self._recent_at = now
            if generation == self._generation:
                self._base = base
        count, newest = self._recent.since(since, PEERS_SHOWN)
        return StatusSummary(
            project=ctx.config.project,
            tasks={s: base.tasks.get(s, 0) for s in TASK_STATUSES},
            agents=base.agents,
            pending_approvals=base.pending_approvals,
            connected_peers=newest,
            connected_count=count,
            channels=base.channels,
        )


def status_view(ctx: ServiceContext) -> StatusView:
    """The context's one :class:`StatusView`."""
    view = _VIEWS.get(ctx)
    if view is None:
        view = _VIEWS[ctx] = StatusView(ctx)
    return view


_VIEWS: weakref.WeakKeyDictionary[ServiceContext, StatusView] = weakref.WeakKeyDictionary()


async def project_status(ctx: ServiceContext) -> StatusSummary:
    return await status_view(ctx).summary()
