"""Agents come from config; their status is derived from the tasks they run."""

from __future__ import annotations

from polpo.config import PolpoConfig
from polpo.core.models import AgentView, Task
from polpo.services.context import ServiceContext
from polpo.store import records


class AgentService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def list(self) -> list[AgentView]:
        async with self.ctx.read() as conn:
            running = await records.list_tasks(conn, status=["running"], oldest_first=True)
        return agent_views(self.ctx.config, running)


def agent_views(config: PolpoConfig, running: list[Task]) -> list[AgentView]:
    """The config's agents, each with the running tasks assigned to it (oldest first)."""
    return [
        AgentView(
            name=a.name,
            role=a.role,
            model=a.model or config.settings.orchestrator_model,
            tools=list(a.tools),
            max_concurrency=a.max_concurrency,
            running=[t for t in running if t.agent == a.name],
        )
        for a in config.agents
    ]
