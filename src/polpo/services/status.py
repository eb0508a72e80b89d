"""The project at a glance: what ``/status``, ``polpo status`` and the API show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from polpo.config import PolpoConfig
from polpo.core.models import AgentView
from polpo.core.states import TASK_STATUSES
from polpo.services.agents import agent_views
from polpo.services.context import ServiceContext
from polpo.store import records
from polpo.store.engine import upsert
from polpo.store.tables import approvals, channel_state, peers, tasks

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
    connected_peers: list[str]
    channels: list[ChannelState] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "tasks": self.tasks,
            "agents": [a.to_dict() for a in self.agents],
            "pendingApprovals": self.pending_approvals,
            "connectedPeers": self.connected_peers,
            "channels": [c.to_dict() for c in self.channels],
        }


async def read_channel_states(ctx: ServiceContext) -> list[ChannelState]:
    async with ctx.read() as conn:
        rows = (
            await conn.execute(sa.select(channel_state).order_by(channel_state.c.channel))
        ).all()
    return [ChannelState(r.channel, r.state, r.detail, r.account, r.updated_at) for r in rows]


async def write_channel_state(
    ctx: ServiceContext,
    channel: str,
    state: str,
    detail: str | None = None,
    account: str | None = None,
) -> None:
    """Record a channel's connection state durably (other processes read it)."""
    now = ctx.clock.now()
    async with ctx.store.write() as conn:
        # one statement: two processes reporting at once both succeed
        await conn.execute(
            upsert(
                conn.dialect.name,
                channel_state,
                ["channel"],
                ["state", "detail", "account", "updated_at", "holder"],
            ).values(
                channel=channel,
                state=state,
                detail=detail,
                account=account,
                updated_at=now,
                holder=ctx.origin,
            )
        )


# Built once: /status runs these on every call.
_TASK_COUNTS = sa.select(tasks.c.status, sa.func.count()).group_by(tasks.c.status)
_PENDING_APPROVALS = (
    sa.select(sa.func.count()).select_from(approvals).where(approvals.c.status == "pending")
)
_RECENT_PEERS = (
    sa.select(peers.c.id)
    .where(peers.c.last_seen >= sa.bindparam("since"))
    .order_by(peers.c.last_seen.desc())
)
_RUNNING_TASKS = (
    sa.select(tasks).where(tasks.c.status == "running").order_by(tasks.c.created_at, tasks.c.id)
)
_CHANNEL_STATES = sa.select(channel_state).order_by(channel_state.c.channel)


def read_status(conn: sa.Connection, config: PolpoConfig, now: float) -> StatusSummary:
    """The whole summary from one read transaction on a synchronous connection.

    ``Polpo.status()`` runs it through the async engine; the gateway runs it
    on its own SQLite connection (one call instead of a dozen thread hops),
    which is what keeps ``/status`` cheap under load.
    """
    counts = {r[0]: int(r[1]) for r in conn.execute(_TASK_COUNTS).all()}
    pending = int(conn.execute(_PENDING_APPROVALS).scalar() or 0)
    since = now - CONNECTED_WINDOW_SECONDS
    recent = [r[0] for r in conn.execute(_RECENT_PEERS, {"since": since}).all()]
    running = [records.task_from_row(r) for r in conn.execute(_RUNNING_TASKS).all()]
    states = conn.execute(_CHANNEL_STATES).all()
    return StatusSummary(
        project=config.project,
        tasks={s: counts.get(s, 0) for s in TASK_STATUSES},
        agents=agent_views(config, running),
        pending_approvals=pending,
        connected_peers=recent,
        channels=[
            ChannelState(r.channel, r.state, r.detail, r.account, r.updated_at) for r in states
        ],
    )


async def project_status(ctx: ServiceContext) -> StatusSummary:
    now = ctx.clock.now()
    config = ctx.config
    async with ctx.read() as conn:
        return await conn.run_sync(lambda c: read_status(c, config, now))
