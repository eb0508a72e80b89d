"""The flood guard's sliding minute (injected clock), and the messages it drops."""

from __future__ import annotations

import logging

import pytest

from polpo.clock import FakeClock
from polpo.gateway.flood import StrangerBudget
from polpo.testing import MemoryChannel, RecordingResponder, exchange, running_gateway

from .conftest import OWNER, OpenProject, inbox_rows


def _take(budget: StrangerBudget) -> bool:
    if not budget.has_room():
        return False
    budget.spend()
    return True


def test_a_sliding_minute_of_rows() -> None:
    clock = FakeClock()
    budget = StrangerBudget(clock, per_minute=3)
    assert [_take(budget) for _ in range(3)] == [True, True, True]
    assert _take(budget) is False
    clock.advance(30)
    assert _take(budget) is False  # the first three are still within the minute
    clock.advance(30)
    assert _take(budget) is True  # exactly a minute old: out of the window
    assert _take(budget) is True and _take(budget) is True
    assert _take(budget) is False  # one spent at t=60 and two just now
    assert budget.dropped == 3


def test_checking_spends_nothing() -> None:
    # a duplicate (or a failed insert) adds no row: only spend() counts one
    budget = StrangerBudget(FakeClock(), per_minute=1)
    assert all(budget.has_room() for _ in range(10))
    budget.spend()
    assert not budget.has_room()


def test_dropping_is_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    budget = StrangerBudget(clock, per_minute=1)
    budget.spend()
    caplog.set_level(logging.WARNING, logger="polpo.gateway.flood")
    for _ in range(50):  # a flood within one minute
        assert not budget.has_room()
        clock.advance(1)
    assert len(caplog.records) == 1
    assert "more than 1 messages" in caplog.records[0].getMessage()
    budget.spend()  # at t=50
    for _ in range(30):
        assert not budget.has_room()
        clock.advance(1)
    # the second warning came a minute after the first, with the count so far
    assert len(caplog.records) == 2
    assert "(61 dropped since start" in caplog.records[1].getMessage()


async def test_own_echoes_and_admitted_peers_do_not_count(
    open_project: OpenProject, whatsapp: MemoryChannel, clock: FakeClock
) -> None:
    app = await open_project(selfChat=True)
    responder = RecordingResponder()
    async with running_gateway(app, whatsapp, responder=responder) as gw:
        gw.gateway.strangers.per_minute = 2
        for n in range(5):
            assert await exchange(gw, whatsapp, OWNER, f"hi {n}") == [f"echo: hi {n}"]
        # a self-chat echo of what Polpo sent is ignored, and costs no budget
        sent_id = whatsapp.sent[-1].message_id
        assert sent_id is not None
        for _ in range(3):
            await whatsapp.receive(
                OWNER, "echo: hi 4", message_id=sent_id, is_self_chat=True, is_from_me=True
            )
        await whatsapp.receive("4915100000001", "spam")
        await whatsapp.receive("4915100000002", "spam")
        await whatsapp.receive("4915100000003", "spam")  # the third stranger: dropped
        await gw.settle()
        assert gw.gateway.stats["dropped:flood"] == 1
        assert await exchange(gw, whatsapp, OWNER, "still here") == ["echo: still here"]
    rows = await inbox_rows(app)
    outcomes = [r.outcome for r in rows if r.status == "ignored"]
    assert outcomes == ["our own message", "not allowed", "not allowed"]
