"""The chat agent's tools: the project's services, as a model may use them.

Each tool is a thin call into the same services the CLI and the commands
use, returning short plain text (a phone-sized answer is built from it). A
:class:`PolpoError` (unknown id, ambiguous prefix, bad status, a task that
cannot be cancelled) comes back to the model as ``Error: …`` text, so it can
correct itself or tell the user; it never ends the turn.

There is deliberately **no** tool to approve, reject or pair (SPEC §5):
those are human acts, done only by command (``/approve``, ``/reject``,
``/pair``). :data:`CHAT_TOOLS` is the whole list; a test holds it to that.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Concatenate, ParamSpec

from pydantic import BaseModel, Field
from pydantic_ai import RunContext, Tool

from polpo.clock import Clock
from polpo.core.models import Approval, Mission, Task
from polpo.core.plan import step_dependencies
from polpo.errors import PolpoError, ValidationError
from polpo.services.missions import PlannedTask

if TYPE_CHECKING:
    from polpo.app import Polpo

#: A tool's answer is cut to this many characters (the model reads it every later request).
MAX_TOOL_OUTPUT = 6000
MAX_LIST = 50
TEXT_PREVIEW = 1500


@dataclass(frozen=True)
class ChatDeps:
    """What a tool call may touch: the project, who is talking, and the time."""

    app: Polpo
    peer_id: str
    clock: Clock


P = ParamSpec("P")
Ctx = RunContext[ChatDeps]


def _tool(
    fn: Callable[Concatenate[Ctx, P], Awaitable[str]],
) -> Callable[Concatenate[Ctx, P], Awaitable[str]]:
    """Turn a Polpo error into text the model reads, and keep answers short."""

    @functools.wraps(fn)
    async def wrapper(ctx: Ctx, /, *args: P.args, **kwargs: P.kwargs) -> str:
        try:
            out = await fn(ctx, *args, **kwargs)
        except PolpoError as e:
            return f"Error: {e}"
        return _clip(out, MAX_TOOL_OUTPUT)

    return wrapper


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 20].rstrip() + " …(cut)"


def _when(ts: float | None, clock: Clock) -> str:
    if ts is None:
        return "-"
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{stamp} ({_age(clock.now() - ts)} ago)"


def _age(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 90:
        return f"{s}s"
    if s < 90 * 60:
        return f"{s // 60}min"
    if s < 36 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _task_line(t: Task) -> str:
    parts = [f"{t.short_id} [{t.status}] {t.title}", f"agent {t.agent or '-'}"]
    if t.mission_id:
        parts.append(f"mission {t.mission_id[:6]}")
    return " — ".join(parts)


def _mission_line(m: Mission) -> str:
    return f"{m.short_id} [{m.status}] {m.name} — {m.progress} tasks done"


def _approval_line(a: Approval, clock: Clock) -> str:
    line = (
        f"{a.short_id} [{a.status}] gate {a.gate} ({a.hook}) on task {a.task_short_id} "
        f'"{a.task_title}", agent {a.agent or "-"}, requested {_age(clock.now() - a.requested_at)} ago'
    )
    if a.summary:
        line += f"\n  summary: {_clip(a.summary, 300)}"
    return line


def _limit(n: int) -> int:
    return max(1, min(MAX_LIST, n))


# -- project ----------------------------------------------------------------------


@_tool
async def get_status(ctx: Ctx) -> str:
    """The project at a glance: tasks by status, agents, pending approvals, channels."""
    s = await ctx.deps.app.status()
    tasks = ", ".join(f"{k} {v}" for k, v in s.tasks.items() if v) or "none"
    agents = (
        "; ".join(
            f"{a.name} {a.status}"
            + (f" ({', '.join(t.short_id for t in a.running)})" if a.running else "")
            for a in s.agents
        )
        or "none configured"
    )
    channels = ", ".join(f"{c.channel} {c.state}" for c in s.channels) or "none recorded"
    return (
        f"Project: {s.project}\nTasks: {tasks}\nAgents: {agents}\n"
        f"Pending approvals: {s.pending_approvals}\n"
        f"Peers seen in the last 5 min: {s.connected_count}\nChannels: {channels}"
    )


@_tool
async def list_agents(ctx: Ctx) -> str:
    """The project's agents: name, role, model, and whether each is idle or running tasks."""
    agents = await ctx.deps.app.agents.list()
    if not agents:
        return "No agents are configured (they are defined in .polpo/polpo.json)."
    lines = []
    for a in agents:
        line = f"{a.name} — {a.role or 'no role'} — model {a.model or '-'} — {a.status}"
        if a.running:
            line += ": " + ", ".join(f"{t.short_id} {t.title}" for t in a.running)
        lines.append(line)
    return "\n".join(lines)


# -- tasks ----------------------------------------------------------------------


@_tool
async def list_tasks(ctx: Ctx, status: str | None = None, limit: int = 20) -> str:
    """Tasks, newest first.

    Args:
        status: only tasks in this status: pending, awaiting_approval, running, done, failed or cancelled.
        limit: how many to list (at most 50).
    """
    app = ctx.deps.app
    statuses = [status] if status else None
    tasks = await app.tasks.list(status=statuses, limit=_limit(limit))
    if not tasks:
        return f"No {status} tasks." if status else "No tasks yet."
    total = await app.tasks.count(status=statuses)
    lines = [_task_line(t) for t in tasks]
    if total > len(tasks):
        lines.append(f"…and {total - len(tasks)} more")
    return "\n".join(lines)


@_tool
async def get_task(ctx: Ctx, id: str) -> str:
    """One task in full: status, agent, description, result or error, dependencies.

    Args:
        id: the task's short id or any unique prefix of 4+ characters.
    """
    t = await ctx.deps.app.tasks.get(id)
    clock = ctx.deps.clock
    lines = [
        f"Task {t.short_id} (full id {t.id}): {t.title}",
        f"Status: {t.status}" + (f" (waiting at the {t.awaiting} gate)" if t.awaiting else ""),
        f"Agent: {t.agent or '-'}",
    ]
    if t.mission_id:
        lines.append(f"Mission: {t.mission_id[:6]}")
    if t.depends_on:
        lines.append("Depends on: " + ", ".join(d[:6] for d in t.depends_on))
    lines.append(f"Created by {t.created_by}, {_when(t.created_at, clock)}")
    if t.started_at:
        lines.append(f"Started: {_when(t.started_at, clock)}")
    if t.finished_at:
        lines.append(f"Finished: {_when(t.finished_at, clock)}")
    if t.revision_count:
        lines.append(f"Revisions after rejection: {t.revision_count}")
    if t.description:
        lines.append(f"Description: {_clip(t.description, TEXT_PREVIEW)}")
    if t.result:
        lines.append(f"Result: {_clip(t.result, TEXT_PREVIEW)}")
    if t.error:
        lines.append(f"Error: {_clip(t.error, TEXT_PREVIEW // 3)}")
    return "\n".join(lines)


@_tool
async def create_task(
    ctx: Ctx,
    title: str,
    description: str = "",
    agent: str | None = None,
    mission: str | None = None,
    depends_on: list[str] | None = None,
) -> str:
    """Create a task for an agent to work on. It starts when its dependencies are done.

    Args:
        title: a short imperative title.
        description: what exactly to do, with any detail the agent needs.
        agent: the agent's name; omitted means the first configured agent.
        mission: id of a mission to add the task to.
        depends_on: ids of tasks that must be done first.
    """
    t = await ctx.deps.app.tasks.add(
        title,
        description=description,
        agent=agent,
        mission=mission,
        depends_on=depends_on or (),
        created_by=ctx.deps.peer_id,
    )
    return f"Created task {t.short_id}: {t.title} (agent {t.agent or '-'}, status {t.status})."


@_tool
async def cancel_task(ctx: Ctx, id: str, reason: str = "") -> str:
    """Cancel a task that has not finished.

    Args:
        id: the task's short id or any unique prefix of 4+ characters.
        reason: why, in a few words.
    """
    t = await ctx.deps.app.tasks.cancel(id, by=ctx.deps.peer_id, reason=reason)
    return f"Cancelled task {t.short_id}: {t.title}."


# -- missions -------------------------------------------------------------------


class PlanStep(BaseModel):
    """One task of a new mission's plan."""

    title: str = Field(description="a short imperative title")
    description: str = Field(default="", description="what exactly to do")
    agent: str | None = Field(default=None, description="agent name; omitted: the first agent")
    depends_on: list[int] | None = Field(
        default=None,
        description=(
            "0-based positions of EARLIER steps that must be done first; omitted: the step "
            "before it ([] : it waits for nothing)"
        ),
    )


@_tool
async def list_missions(ctx: Ctx, status: str | None = None, limit: int = 20) -> str:
    """Missions (named goals with a plan of tasks), newest first, with progress.

    Args:
        status: only missions in this status: draft, active, completed, failed or cancelled.
        limit: how many to list (at most 50).
    """
    missions = await ctx.deps.app.missions.list(
        status=[status] if status else None, limit=_limit(limit)
    )
    if not missions:
        return f"No {status} missions." if status else "No missions yet."
    return "\n".join(_mission_line(m) for m in missions)


@_tool
async def get_mission(ctx: Ctx, id: str) -> str:
    """One mission: goal, status, progress and its tasks in plan order.

    Args:
        id: the mission's short id or any unique prefix of 4+ characters.
    """
    app = ctx.deps.app
    m = await app.missions.get(id)
    tasks = await app.missions.tasks_of(m.id)
    lines = [
        f"Mission {m.short_id} (full id {m.id}): {m.name}",
        f"Status: {m.status}, {m.progress} tasks done",
        f"Created by {m.created_by}, {_when(m.created_at, ctx.deps.clock)}",
    ]
    if m.goal:
        lines.append(f"Goal: {_clip(m.goal, TEXT_PREVIEW)}")
    lines.extend(f"{i + 1}. {_task_line(t)}" for i, t in enumerate(tasks))
    return "\n".join(lines)


@_tool
async def create_mission(
    ctx: Ctx,
    name: str,
    goal: str,
    tasks: list[PlanStep],
    start: bool = False,
    parallel: bool = False,
) -> str:
    """Create a mission: a goal and an ordered plan of tasks for the agents.

    Each step waits for the one before it unless it says otherwise (as
    ``polpo mission add`` and the HTTP API do).

    Args:
        name: a short name.
        goal: what the mission should achieve.
        tasks: the plan, in order.
        start: true to start it now; false leaves it as a draft to review.
        parallel: true when steps without depends_on may run in any order.
    """
    if start and not tasks:
        raise ValidationError("a mission needs tasks before it can start")
    explicit = {i: s.depends_on for i, s in enumerate(tasks) if s.depends_on is not None}
    waits = step_dependencies(len(tasks), explicit, parallel=parallel)
    plan = [
        PlannedTask(title=s.title, description=s.description, agent=s.agent, depends_on=deps)
        for s, deps in zip(tasks, waits, strict=True)
    ]
    m = await ctx.deps.app.missions.add(
        name, goal=goal, plan=plan, created_by=ctx.deps.peer_id, activate=start
    )
    created = await ctx.deps.app.missions.tasks_of(m.id)
    lines = [f"Created mission {m.short_id}: {m.name} ({m.status}, {len(created)} tasks)"]
    lines.extend(f"{i + 1}. {_task_line(t)}" for i, t in enumerate(created))
    return "\n".join(lines)


# -- approvals (read only) --------------------------------------------------------


@_tool
async def list_approvals(ctx: Ctx, status: str = "pending", limit: int = 20) -> str:
    """Approval requests (gates waiting for a human). You can only look: the user decides
    with the commands /approve ID or /reject ID reason.

    Args:
        status: pending (default), approved, rejected or expired.
        limit: how many to list (at most 50).
    """
    approvals = await ctx.deps.app.approvals.list(status=[status], limit=_limit(limit))
    if not approvals:
        return f"No {status} approvals."
    lines = [_approval_line(a, ctx.deps.clock) for a in approvals]
    if status == "pending":
        lines.append("(The user decides: /approve ID, or /reject ID reason.)")
    return "\n".join(lines)


#: Every tool the chat agent has. None approves, rejects or pairs.
CHAT_TOOLS: tuple[Tool[ChatDeps], ...] = tuple(
    Tool(fn, takes_ctx=True)
    for fn in (
        get_status,
        list_tasks,
        get_task,
        create_task,
        cancel_task,
        list_missions,
        get_mission,
        create_mission,
        list_agents,
        list_approvals,
    )
)
