"""The host starts components in order and stops the started ones in reverse."""

from __future__ import annotations

import pytest

from polpo.app import Polpo
from polpo.host import Host


class Part:
    def __init__(
        self, name: str, log: list[str], fail_start: bool = False, fail_stop: bool = False
    ):
        self.name = name
        self.log = log
        self.fail_start = fail_start
        self.fail_stop = fail_stop

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} stop failed")


async def test_reverse_stop_even_when_one_stop_fails(app: Polpo) -> None:
    log: list[str] = []
    host = Host(app)
    for part in (Part("a", log), Part("b", log, fail_stop=True), Part("c", log)):
        host.add(part)
    await host.start()
    await host.stop()
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


async def test_a_failed_start_stops_only_what_started(app: Polpo) -> None:
    log: list[str] = []
    host = Host(app)
    for part in (Part("a", log), Part("b", log, fail_start=True), Part("c", log)):
        host.add(part)
    with pytest.raises(RuntimeError, match="b cannot start"):
        await host.start()
    await host.stop()
    assert log == ["start a", "stop a"]
