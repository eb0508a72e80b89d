"""``Polpo``: one project opened — config, database, clock, event bus and services.

The CLI, the HTTP API, the gateway and the runner all work through one of
these, so every act has one code path.
"""

from __future__ import annotations

import asyncio

from polpo.clock import SYSTEM_CLOCK, Clock
from polpo.config import LoadedConfig
from polpo.core.events import EventBus
from polpo.services.agents import AgentService
from polpo.services.approvals import ApprovalService
from polpo.services.context import ServiceContext
from polpo.services.missions import MissionService
from polpo.services.peers import PeerService
from polpo.services.status import StatusSummary, project_status
from polpo.services.tasks import TaskService
from polpo.store import Store


class Polpo:
    def __init__(self, loaded: LoadedConfig, store: Store, clock: Clock, bus: EventBus) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.store = store
        self.clock = clock
        self.bus = bus
        self.ctx = ServiceContext(store=store, clock=clock, bus=bus, config=loaded.config)
        self.tasks = TaskService(self.ctx)
        self.missions = MissionService(self.ctx)
        self.approvals = ApprovalService(self.ctx)
        self.agents = AgentService(self.ctx)
        #: set after committing outbox rows (see :func:`polpo.store.outbox.enqueue`);
        #: the gateway's dispatcher waits on it between polls
        self.outbox_ready = asyncio.Event()
        self.peers = PeerService(self.ctx, on_outbox=self.outbox_ready.set)

    @classmethod
    async def open(
        cls,
        loaded: LoadedConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        store_url: str | None = None,
        bus: EventBus | None = None,
    ) -> Polpo:
        store = await Store.open(store_url or loaded.storage_url)
        return cls(loaded, store, clock, bus or EventBus())

    async def status(self) -> StatusSummary:
        return await project_status(self.ctx)

    async def close(self) -> None:
        await self.store.close()
