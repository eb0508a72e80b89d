"""The runner as a ``polpo serve`` component."""

from __future__ import annotations

import asyncio

from polpo.app import Polpo
from polpo.host import Host, cancel_and_wait
from polpo.runner.runner import ModelFactory, Runner


class RunnerComponent:
    """Runs ready tasks in the background for as long as ``polpo serve`` runs."""

    name = "runner"

    def __init__(self, app: Polpo, *, model_factory: ModelFactory | None = None) -> None:
        self.runner = Runner(app, model_factory=model_factory)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.runner.run_forever(), name="polpo-runner")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self.runner.close()


def add_runner(host: Host) -> None:
    """Add the runner to ``polpo serve`` unless ``settings.runner.enabled`` is false."""
    if not host.app.config.settings.runner.enabled:
        return
    component = RunnerComponent(host.app)
    host.registry["runner"] = component.runner
    host.add(component)
