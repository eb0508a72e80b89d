"""The task runner: finds ready tasks, claims them, runs them with their agent.

A task is *ready* when it is ``pending``, every task it depends on is
``done``, it has no mission or its mission is ``active``, and its agent has a
free slot (``maxConcurrency``, counted over every process using the
database). Before it runs, a ``task:start`` gate that applies to its agent
opens an approval (the task waits in ``awaiting_approval``; approving puts it
back to ``pending`` with the gate passed). After it runs, a ``task:complete``
gate holds the result for a human; without one the task is ``done``.

Claiming is one write transaction with a conditional update
(``… WHERE status = 'pending'``), so two runners on one database (``polpo
serve`` and ``polpo run``) never start the same task. The claim writes a
lease (``tasks.lease_owner``/``lease_until``) that a heartbeat extends, and a
``task_runs`` row that ends up holding the result or error, the tool-call
transcript and the timing.

A run whose process died (its lease ran out, or its process is gone on this
machine) is *interrupted*: the run row says so and the task becomes
``failed`` with an "interrupted" error, so a human retries it (``polpo task
retry``) — the runner never re-runs half-done work by itself, and a late
answer from a runner that lost its lease is discarded, so a task is never
finished twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from polpo.config import AgentConfig, GateConfig, PolpoConfig
from polpo.core.models import Event, Task
from polpo.errors import ModelNotConfiguredError
from polpo.host import cancel_and_wait, wake_or_timeout
from polpo.runner.sandbox import log_sandbox_warnings
from polpo.runner.tools import Workspace, tools_for, workspace_for
from polpo.services.context import Tx
from polpo.store import PROCESS_ID, records
from polpo.store.engine import advisory_lock
from polpo.store.tables import missions, task_runs, tasks

if TYPE_CHECKING:
    from pydantic_ai.models import Model

    from polpo.app import Polpo

log = logging.getLogger(__name__)

#: Builds the pydantic-ai model an agent runs with (tests pass a FunctionModel).
ModelFactory = Callable[[AgentConfig, PolpoConfig], "Model"]

#: Used when a Runner is built without ``model_factory`` (a test seam for subprocesses).
DEFAULT_MODEL_FACTORY: ModelFactory | None = None

LEASE_SECONDS = 60.0
#: How often a runner looks for runs left behind by dead processes (seconds).
RECOVER_EVERY = 10.0
MAX_RESULT = 20_000
MAX_CANDIDATES = 500

#: Worker ids of the runners alive in this process (a dead one's runs are interrupted).
LIVE_WORKERS: set[str] = set()

NO_AGENT = (
    "No agent can run this task: none is configured. Add one under "
    '"agents" in .polpo/polpo.json (name, role, model, tools).'
)


def default_model(agent: AgentConfig, config: PolpoConfig) -> Model:
    """The agent's ``model``, else ``POLPO_MODEL`` / ``settings.orchestratorModel``."""
    from polpo.llm.models import chat_model_string, resolve_model

    wanted = agent.model or chat_model_string(config)
    if not wanted:
        raise ModelNotConfiguredError(
            f'No model is configured for agent "{agent.name}". Set "model" on the agent '
            '(e.g. "openai:gpt-4.1-mini") or "settings.orchestratorModel" in .polpo/polpo.json '
            "(or the POLPO_MODEL environment variable), and the provider's API key variable."
        )
    return resolve_model(wanted, config)


def gate_for(config: PolpoConfig, agent: str | None, hook: str) -> GateConfig | None:
    """The first gate on ``hook`` that applies to ``agent`` (a gate without agents applies to all)."""
    for g in config.settings.approval_gates:
        if g.hook == hook and (not g.agents or (agent is not None and agent in g.agents)):
            return g
    return None


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` (a lease holder) is a runner of this machine that no longer runs."""
    if not owner:
        return True
    m = re.match(r"^pid (\d+) on (.+?) runner [0-9a-f]+$", owner)
    if not m or m.group(2) != socket.gethostname():
        return False  # another machine: only its lease running out tells
    pid = int(m.group(1))
    if pid == os.getpid():
        return owner not in LIVE_WORKERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed process its parent has not reaped yet is a zombie: dead all the same
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@dataclass
class DrainReport:
    """What ``polpo run`` did and what is left."""

    finished: list[Task] = field(default_factory=list)
    awaiting: list[Task] = field(default_factory=list)
    running_elsewhere: list[Task] = field(default_factory=list)
    #: runs of dead runners found and marked interrupted (their tasks failed, retryable)
    interrupted: list[Task] = field(default_factory=list)
    blocked: int = 0
    #: agents whose model cannot be used (no API key…) → why; their tasks stay pending
    model_problems: dict[str, str] = field(default_factory=dict)


@dataclass
class _Run:
    task: Task
    run_id: int
    agent: AgentConfig
    job: asyncio.Task[None] | None = None
    cancelled_by_user: bool = False


class Runner:
    """Runs the project's ready tasks. One per process is enough; more are safe."""

    def __init__(
        self,
        app: Polpo,
        *,
        model_factory: ModelFactory | None = None,
        lease_seconds: float = LEASE_SECONDS,
        heartbeat_seconds: float | None = None,
    ) -> None:
        self.app = app
        self.ctx = app.ctx
        self.worker = f"{PROCESS_ID} runner {uuid.uuid4().hex[:8]}"
        self.model_factory: ModelFactory = model_factory or DEFAULT_MODEL_FACTORY or default_model
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds or lease_seconds / 3
        self._inflight: dict[str, _Run] = {}
        self._models: dict[str, Model] = {}
        self._wake = asyncio.Event()
        self._unsubscribe: list[Callable[[], None]] = []
        self._last_recover = float("-inf")
        self._last_expire = float("-inf")
        self._finished: list[str] = []
        self._interrupted: list[str] = []
        #: a task failed or was cancelled: its dependents must be failed too (full scan)
        self._failures_seen = True
        #: agents whose model cannot be built now (no API key…) → why, said once each
        self.model_problems: dict[str, str] = {}
        LIVE_WORKERS.add(self.worker)

    # -- wiring ----------------------------------------------------------------

    def attach(self) -> None:
        """Wake on the events that can make a task ready (from here or, via the tail, elsewhere)."""
        if self._unsubscribe:
            return
        for pattern in ("task:*", "approval:*", "mission:*"):
            self._unsubscribe.append(self.app.bus.subscribe(pattern, self._on_event))

    def detach(self) -> None:
        for u in self._unsubscribe:
            u()
        self._unsubscribe.clear()

    async def _on_event(self, ev: Event) -> None:
        if ev.type in ("task:failed", "task:cancelled"):
            self._failures_seen = True
        if ev.type == "task:cancelled":
            run = self._inflight.get(str(ev.payload.get("taskId")))
            if run is not None and run.job is not None and not run.job.done():
                run.cancelled_by_user = True
                run.job.cancel()
        self._wake.set()

    @property
    def inflight(self) -> list[Task]:
        return [r.task for r in self._inflight.values()]

    # -- the loop ----------------------------------------------------------------

    async def run_forever(self) -> None:
        """Serve mode: tick on every relevant event and every ``pollSeconds``."""
        self.attach()
        await asyncio.to_thread(log_sandbox_warnings, self.app.loaded)
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="polpo-runner-heartbeat")
        try:
            await self.recover()
            while True:
                self._wake.clear()
                try:
                    await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("runner tick failed; trying again")
                await self._sleep()
        finally:
            await cancel_and_wait(heartbeat)
            await self.stop_runs()
            self.detach()

    async def drain(self, *, wait: bool = False) -> DrainReport:
        """Run what is runnable until nothing is; with ``wait``, also wait for open approvals."""
        self.attach()
        await asyncio.to_thread(log_sandbox_warnings, self.app.loaded)
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="polpo-runner-heartbeat")
        try:
            await self.recover()
            while True:
                self._wake.clear()
                changed = await self.tick()
                # a run that ended (or an event that came) during the tick sets the wake:
                # look again before deciding there is nothing left
                if self._inflight or changed or self._wake.is_set():
                    if self._inflight and not changed:
                        await self._sleep()
                    continue
                if not wait:
                    break
                if not await self._anything_to_wait_for():
                    # an approval given elsewhere between the tick and that look made its
                    # task pending, not awaited: one more tick runs it before we stop
                    if await self.tick():
                        continue
                    break
                await self._sleep()
        finally:
            await cancel_and_wait(heartbeat)
            await self.stop_runs()
            self.detach()
        return await self._report()

    async def _sleep(self) -> None:
        await wake_or_timeout(self._wake, self.ctx.config.settings.runner.poll_seconds)

    async def wait_idle(self) -> None:
        """Until every run this runner started has finished (tests, shutdown)."""
        while self._inflight:
            jobs = [r.job for r in self._inflight.values() if r.job is not None]
            if jobs:
                await asyncio.wait(jobs)
            else:
                await asyncio.sleep(0)

    async def stop_runs(self) -> None:
        """Cancel the runs in flight; each is recorded as interrupted."""
        jobs = [r.job for r in self._inflight.values() if r.job is not None and not r.job.done()]
        for j in jobs:
            j.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)

    def close(self) -> None:
        self.detach()
        LIVE_WORKERS.discard(self.worker)

    # -- one pass -----------------------------------------------------------------

    async def tick(self) -> int:
        """Expire due approvals, recover dead runs, start ready tasks; returns how much changed."""
        changed = 0
        now = self.ctx.clock.now()
        if now - self._last_expire >= 1.0:  # timeouts are minutes: once a second is plenty
            self._last_expire = now
            changed += len(await self.app.approvals.expire_due())
        if self.ctx.clock.now() - self._last_recover >= RECOVER_EVERY:
            changed += len(await self.recover())
        cfg = self.ctx.config
        async with self.ctx.read() as conn:
            running: dict[str | None, int] = dict(
                (
                    await conn.execute(
                        sa.select(tasks.c.agent, sa.func.count())
                        .where(tasks.c.status == "running")
                        .group_by(tasks.c.agent)
                    )
                ).all()
            )
            # only tasks an agent with a free slot could take, unless a failure may
            # have broken some dependencies (then every pending task is looked at)
            full_scan = self._failures_seen or not cfg.agents
            self._failures_seen = False
            free = [a.name for a in cfg.agents if running.get(a.name, 0) < a.max_concurrency]
            # a start gate is asked for as soon as the task is ready, busy agent or not
            gated = [a.name for a in cfg.agents if gate_for(cfg, a.name, "task:start")]
            if not full_scan and not free and not gated:
                return changed
            candidates = await self._candidates(
                conn, None if full_scan else free, [a.name for a in cfg.agents], gated
            )
            dep_ids = {d for t in candidates for d in t.depends_on}
            dep_status: dict[str, tuple[str, str]] = {}
            if dep_ids:
                rows = await conn.execute(
                    sa.select(tasks.c.id, tasks.c.status, tasks.c.short_id).where(
                        tasks.c.id.in_(list(dep_ids))
                    )
                )
                dep_status = {r.id: (r.status, r.short_id) for r in rows}
        for task in candidates:
            broken = [(dep_status.get(d, ("missing", d[:8]))) for d in task.depends_on]
            bad = [(s, short) for s, short in broken if s in ("failed", "cancelled", "missing")]
            if bad:
                status, short = bad[0]
                changed += await self._fail_pending(
                    task, f"dependency {short} {'is ' if status == 'missing' else ''}{status}"
                )
                continue
            if any(s != "done" for s, _ in broken):
                continue
            agent = self._agent_for(task)
            if agent is None:
                reason = (
                    NO_AGENT
                    if not cfg.agents
                    else f'Agent "{task.agent}" is not configured any more; '
                    "cancel the task or add the agent back to .polpo/polpo.json."
                )
                changed += await self._fail_pending(task, reason)
                continue
            needs_start_gate = not task.start_approved and gate_for(cfg, agent.name, "task:start")
            if not needs_start_gate and running.get(agent.name, 0) >= agent.max_concurrency:
                continue
            if not needs_start_gate and not self._model_usable(agent):
                continue  # stays pending, no attempt used: runs once the key is there
            outcome = await self._claim(task, agent)
            if outcome == "started":
                running[agent.name] = running.get(agent.name, 0) + 1
                changed += 1
            elif outcome == "gated":
                changed += 1
        return changed

    async def _candidates(
        self, conn: Any, free: list[str] | None, configured: list[str], gated: list[str]
    ) -> list[Task]:
        q = (
            sa.select(tasks)
            .outerjoin(missions, missions.c.id == tasks.c.mission_id)
            .where(
                tasks.c.status == "pending",
                sa.or_(tasks.c.mission_id.is_(None), missions.c.status == "active"),
            )
        )
        if free is not None:
            default = configured[0] if configured else None
            q = q.where(
                sa.or_(
                    tasks.c.agent.in_(free),
                    tasks.c.agent.not_in(configured),  # to fail them clearly
                    tasks.c.agent.is_(None) if default in free else sa.false(),
                    sa.and_(
                        sa.or_(
                            tasks.c.agent.in_(gated),
                            tasks.c.agent.is_(None) if default in gated else sa.false(),
                        ),
                        tasks.c.start_approved.is_(False),
                    ),
                )
            )
        # NULLS FIRST said explicitly: SQLite puts NULL first, PostgreSQL last by default;
        # tasks without a mission come first on both
        q = q.order_by(
            tasks.c.mission_id.asc().nulls_first(), tasks.c.position, tasks.c.created_at, tasks.c.id
        )
        return [
            records.task_from_row(r) for r in (await conn.execute(q.limit(MAX_CANDIDATES))).all()
        ]

    def _agent_for(self, task: Task) -> AgentConfig | None:
        cfg = self.ctx.config
        if task.agent is None:
            return cfg.agents[0] if cfg.agents else None
        return cfg.agent(task.agent)

    async def _lock_pending(self, tx: Tx, task_id: str) -> Task | None:
        """Take the row if it is still pending and nobody is taking it, else None.

        ``FOR UPDATE SKIP LOCKED``: on PostgreSQL a task another worker (any
        machine) is claiming right now is skipped at once instead of waited for;
        one it already claimed is no longer pending. SQLite's writers take
        turns, so there the row is simply read.
        """
        row = (
            await tx.conn.execute(
                sa.select(tasks)
                .where(tasks.c.id == task_id, tasks.c.status == "pending")
                .with_for_update(skip_locked=True)
            )
        ).first()
        return None if row is None else records.task_from_row(row)

    async def _free_slot(self, tx: Tx, agent: AgentConfig) -> bool:
        """Whether ``agent`` runs fewer than ``maxConcurrency`` tasks, counted in this claim.

        Workers in other processes claim at the same time: on PostgreSQL a
        per-agent advisory lock, held until this claim commits, makes each count
        see every claim before it (SQLite's write transactions already do).
        """
        await advisory_lock(tx.conn, f"runner-agent:{agent.name}")
        running = (
            await tx.conn.execute(
                sa.select(sa.func.count())
                .select_from(tasks)
                .where(tasks.c.status == "running", tasks.c.agent == agent.name)
            )
        ).scalar()
        return int(running or 0) < agent.max_concurrency

    async def _fail_pending(self, task: Task, error: str) -> int:
        async with self.ctx.tx() as tx:
            fresh = await self._lock_pending(tx, task.id)
            if fresh is None:
                return 0
            await self.app.tasks.transition(tx, fresh, "failed", by="runner", error=error)
        return 1

    async def _claim(self, task: Task, agent: AgentConfig) -> str:
        """``started`` (a run began here), ``gated`` (start approval asked) or ``skipped``."""
        cfg = self.ctx.config
        async with self.ctx.tx() as tx:
            fresh = await self._lock_pending(tx, task.id)
            if fresh is None:
                return "skipped"
            gate = gate_for(cfg, agent.name, "task:start")
            if (gate is None or fresh.start_approved) and not await self._free_slot(tx, agent):
                return "skipped"
            if gate is not None and not fresh.start_approved:
                await self.app.approvals.request_in(
                    tx,
                    fresh,
                    gate=gate.name,
                    hook="task:start",
                    summary=_start_summary(fresh, agent),
                    timeout_minutes=gate.timeout_minutes,
                )
                return "gated"
            attempt = fresh.attempts + 1
            started = await self.app.tasks.transition(
                tx,
                fresh,
                "running",
                by=agent.name,
                agent=agent.name,
                started_at=tx.now,
                attempts=attempt,
                error=None,
                lease_owner=self.worker,
                lease_until=tx.now + self.lease_seconds,
            )
            res = await tx.conn.execute(
                task_runs.insert()
                .values(
                    task_id=task.id,
                    attempt=attempt,
                    status="running",
                    worker=self.worker,
                    started_at=tx.now,
                    transcript=[],
                )
                .returning(task_runs.c.id)
            )
            run = _Run(task=started, run_id=int(res.scalar_one()), agent=agent)
        self._inflight[task.id] = run
        run.job = asyncio.create_task(self._execute(run), name=f"polpo-task-{started.short_id}")
        return "started"

    # -- executing one run --------------------------------------------------------

    async def _execute(self, run: _Run) -> None:
        ws = workspace_for(
            self.app.loaded, run.agent, clock=self.ctx.clock.now, minutes=self._timeout_minutes()
        )
        outcome: str
        text: str
        usage: dict[str, int] = {}
        try:
            try:
                output, usage = await self._run_agent(run, ws)
                outcome, text = "ok", output
            except ModelNotConfiguredError as e:
                outcome, text = "error", e.message
            except asyncio.CancelledError:
                if run.cancelled_by_user:
                    outcome, text = "cancelled", "the task was cancelled during the run"
                else:
                    outcome, text = (
                        "interrupted",
                        "interrupted: Polpo stopped during the run; "
                        f"retry with `polpo task retry {run.task.short_id}`",
                    )
            except (
                Exception
            ) as e:  # the model, the network, a limit: the task fails, the runner goes on
                outcome, text = "error", self._describe(e)
            try:
                await self._finish(run, ws, outcome, text, usage)
            except Exception:
                log.exception("recording the end of task %s failed", run.task.short_id)
        finally:
            self._inflight.pop(run.task.id, None)
            self._finished.append(run.task.id)
            self._wake.set()

    async def _run_agent(self, run: _Run, ws: Workspace) -> tuple[str, dict[str, int]]:
        from pydantic_ai import Agent, UsageLimits

        limits = self.ctx.config.settings.runner
        model = self._model(run.agent)
        agent: Agent[Workspace, str] = Agent(
            model,
            deps_type=Workspace,
            output_type=str,
            instructions=agent_instructions(run.agent, self.ctx.config.project),
            tools=tools_for(list(run.agent.tools)),
            name=run.agent.name,
            retries=2,
        )
        prompt = await self._prompt(run.task)
        async with asyncio.timeout(limits.task_timeout_minutes * 60):
            result = await agent.run(
                prompt,
                deps=ws,
                usage_limits=UsageLimits(request_limit=limits.max_tool_rounds + 1),
            )
        u = result.usage
        usage = {
            "requests": u.requests,
            "inputTokens": u.input_tokens or 0,
            "outputTokens": u.output_tokens or 0,
        }
        return (result.output or "").strip() or "(the agent gave no summary)", usage

    def _timeout_minutes(self) -> float:
        return self.ctx.config.settings.runner.task_timeout_minutes

    def _model_usable(self, agent: AgentConfig) -> bool:
        """Can the agent's model be built (credentials present)? Checked before claiming,
        so a missing API key leaves tasks pending instead of failing them one by one."""
        try:
            self._model(agent)
        except ModelNotConfiguredError as e:
            if self.model_problems.get(agent.name) != e.message:
                log.warning("tasks of agent %s wait: %s", agent.name, e.message)
            self.model_problems[agent.name] = e.message
            return False
        if self.model_problems.pop(agent.name, None) is not None:
            log.info("agent %s's model is usable now; running its tasks", agent.name)
        return True

    def _model(self, agent: AgentConfig) -> Model:
        if agent.name not in self._models:
            self._models[agent.name] = self.model_factory(agent, self.ctx.config)
        return self._models[agent.name]

    def _describe(self, e: Exception) -> str:
        from pydantic_ai.exceptions import UsageLimitExceeded

        limits = self.ctx.config.settings.runner
        if isinstance(e, UsageLimitExceeded):
            return (
                f"stopped: the agent needed more than {limits.max_tool_rounds} rounds of tool "
                "calls (settings.runner.maxToolRounds)"
            )
        if isinstance(e, TimeoutError):
            return (
                f"timed out after {limits.task_timeout_minutes:g} minutes "
                "(settings.runner.taskTimeoutMinutes)"
            )
        log.warning("task run failed: %s: %s", type(e).__name__, e)
        return f"model error: {type(e).__name__}: {e}"[:2000]

    async def _prompt(self, task: Task) -> str:
        parts = [f"Task {task.short_id}: {task.title}"]
        if task.description:
            parts.append(task.description)
        if task.depends_on:
            async with self.ctx.read() as conn:
                rows = (
                    await conn.execute(
                        sa.select(tasks.c.short_id, tasks.c.title, tasks.c.result).where(
                            tasks.c.id.in_(task.depends_on)
                        )
                    )
                ).all()
            done = [f"- {r.short_id} {r.title}: {(r.result or '')[:1500]}" for r in rows]
            parts.append("It builds on these finished tasks:\n" + "\n".join(done))
        complete_feedback = [f for f in task.feedback if f.get("feedback")]
        if task.revision_count and complete_feedback:
            parts.append(
                f"This is revision {task.revision_count}. Your previous result was:\n"
                f"{task.result or '(none)'}\n\nA reviewer rejected it with this feedback "
                "(oldest first); address all of it:\n"
                + "\n".join(f"- {f['feedback']}" for f in complete_feedback)
            )
        parts.append("When you have finished, answer with a short summary of what you did.")
        return "\n\n".join(parts)

    async def _finish(
        self, run: _Run, ws: Workspace, outcome: str, text: str, usage: dict[str, int]
    ) -> None:
        cfg = self.ctx.config
        transcript = [*ws.transcript]
        if usage:
            transcript.append({"type": "usage", **usage})
        async with self.ctx.tx() as tx:
            # locked: a recovery (or cancel) elsewhere either happened before, and we see
            # it, or waits for this to commit
            task = await records.get_task(tx.conn, run.task.id, lock=True)
            mine = task.status == "running" and task.lease_owner == self.worker
            run_status = {"ok": "done", "error": "failed"}.get(outcome, outcome)
            if not mine and outcome == "ok":
                run_status = "discarded"
            await tx.conn.execute(
                sa.update(task_runs)
                .where(task_runs.c.id == run.run_id)
                .values(
                    status=run_status,
                    finished_at=tx.now,
                    result=text[:MAX_RESULT] if outcome == "ok" else None,
                    error=None if outcome == "ok" else text,
                    transcript=transcript,
                )
            )
            if not mine:
                # cancelled meanwhile, or our lease ran out and the run was declared
                # interrupted: the result is kept on the run row only
                return
            if outcome != "ok":
                await self.app.tasks.transition(tx, task, "failed", by=run.agent.name, error=text)
                return
            result = text[:MAX_RESULT]
            gate = gate_for(cfg, run.agent.name, "task:complete")
            if gate is None:
                await self.app.tasks.transition(tx, task, "done", by=run.agent.name, result=result)
                return
            await records.update_task(
                tx.conn, task.id, result=result, lease_owner=None, lease_until=None
            )
            task = await records.get_task(tx.conn, task.id)
            await self.app.approvals.request_in(
                tx,
                task,
                gate=gate.name,
                hook="task:complete",
                summary=result,
                timeout_minutes=gate.timeout_minutes,
            )

    # -- leases and crashed runs --------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("runner heartbeat failed")

    async def heartbeat(self) -> None:
        """Extend the leases of the runs in flight."""
        ids = list(self._inflight)
        if not ids:
            return
        async with self.ctx.store.write() as conn:
            await conn.execute(
                sa.update(tasks)
                .where(
                    tasks.c.id.in_(ids),
                    tasks.c.lease_owner == self.worker,
                    tasks.c.status == "running",
                )
                .values(lease_until=self.ctx.clock.now() + self.lease_seconds)
            )

    async def recover(self) -> list[Task]:
        """Mark runs whose runner died as interrupted; their tasks fail, retryable."""
        now = self.ctx.clock.now()
        self._last_recover = now
        async with self.ctx.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(tasks.c.id, tasks.c.lease_owner, tasks.c.lease_until).where(
                        tasks.c.status == "running"
                    )
                )
            ).all()
        suspects = [
            r
            for r in rows
            if r.lease_owner != self.worker
            and (r.lease_until is None or r.lease_until < now or owner_is_dead(r.lease_owner))
        ]
        out: list[Task] = []
        for r in suspects:
            async with self.ctx.tx() as tx:
                # compare-and-set on the lease as it was read: a heartbeat that renewed it
                # meanwhile (the runner is alive after all) makes this a no-op
                res = await tx.conn.execute(
                    sa.update(tasks)
                    .where(
                        tasks.c.id == r.id,
                        tasks.c.status == "running",
                        tasks.c.lease_owner.is_(None)
                        if r.lease_owner is None
                        else tasks.c.lease_owner == r.lease_owner,
                        tasks.c.lease_until.is_(None)
                        if r.lease_until is None
                        else tasks.c.lease_until == r.lease_until,
                    )
                    .values(updated_at=tx.now)
                )
                if res.rowcount != 1:
                    continue
                task = await records.get_task(tx.conn, r.id)
                who = r.lease_owner.split(" runner ")[0] if r.lease_owner else "a runner"
                error = (
                    f"interrupted: the runner ({who}) stopped during attempt {task.attempts}; "
                    f"the work may be half done. Retry with `polpo task retry {task.short_id}`"
                )
                await tx.conn.execute(
                    sa.update(task_runs)
                    .where(task_runs.c.task_id == r.id, task_runs.c.status == "running")
                    .values(status="interrupted", finished_at=tx.now, error=error)
                )
                out.append(
                    await self.app.tasks.transition(tx, task, "failed", by="runner", error=error)
                )
                self._interrupted.append(task.id)
                log.warning("task %s was interrupted (%s); marked failed", task.short_id, who)
        return out

    # -- reporting ------------------------------------------------------------------

    async def _anything_to_wait_for(self) -> bool:
        async with self.ctx.read() as conn:
            n = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(tasks)
                    .where(tasks.c.status.in_(["awaiting_approval", "running"]))
                )
            ).scalar()
        return bool(n)

    async def _report(self) -> DrainReport:
        report = DrainReport()
        async with self.ctx.read() as conn:
            for task_id in dict.fromkeys(self._finished):
                report.finished.append(await records.get_task(conn, task_id))
            for task_id in dict.fromkeys(self._interrupted):
                report.interrupted.append(await records.get_task(conn, task_id))
            report.awaiting = await records.list_tasks(
                conn, status=["awaiting_approval"], oldest_first=True
            )
            report.running_elsewhere = await records.list_tasks(
                conn, status=["running"], oldest_first=True
            )
            report.blocked = await records.count_tasks(conn, status=["pending"])
        report.model_problems = dict(self.model_problems)
        return report


def agent_instructions(agent: AgentConfig, project: str) -> str:
    who = f"You are {agent.name}" + (f", {agent.role}" if agent.role else "") + "."
    lines = [
        who,
        f'You work on the project "{project}". Your tools act on its directory; '
        "paths are relative to it and cannot leave it.",
    ]
    if agent.system_prompt:
        lines.append(agent.system_prompt)
    return "\n\n".join(lines)


def _start_summary(task: Task, agent: AgentConfig) -> str:
    text = f"{agent.name} wants to start: {task.title}"
    if task.description:
        text += "\n" + task.description[:1500]
    return text
