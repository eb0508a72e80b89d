"""Linking from the dashboard: ``polpo serve`` with an unlinked account runs the
worker in login mode and serves its QR code (fake workers over real pipes, the
API over a real socket)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import client_for, running_api
from wa_support import (
    OWN_PHONE,
    Changes,
    ManualSleep,
    RecordingListener,
    fake_worker,
    make_credentials,
)

from polpo.api.server import ApiServer
from polpo.app import Polpo
from polpo.channels.whatsapp.account import AccountLock, lock_holder
from polpo.channels.whatsapp.channel import WhatsAppChannel
from polpo.channels.whatsapp.login import NOT_LINKED, QR_EXPIRED, LoginOptions
from polpo.channels.whatsapp.process import WorkerOptions
from polpo.channels.whatsapp.timing import Timing
from polpo.clock import FakeClock
from polpo.host import Host

Factory = Callable[..., WhatsAppChannel]
STATIC = Path(__file__).parents[3] / "src" / "polpo" / "api" / "static"


@pytest.fixture
def unlinked(tmp_path: Path) -> Path:
    return tmp_path / ".polpo" / "whatsapp"


@pytest.fixture
async def make_unlinked(unlinked: Path, changes: Changes) -> AsyncIterator[Factory]:
    made: list[WhatsAppChannel] = []

    def factory(
        scenario: str,
        *,
        sleep: ManualSleep | None = None,
        worker: WorkerOptions | None = None,
        **options: Any,
    ) -> WhatsAppChannel:
        ch = WhatsAppChannel(
            unlinked,
            worker=worker or fake_worker(scenario),
            timing=Timing(
                clock=FakeClock(1_800_000_000.0),
                sleep=sleep or ManualSleep(changes, gated=True),
                rng=lambda: 1.0,
            ),
            **options,
        )
        made.append(ch)
        return ch

    yield factory
    for ch in made:
        await ch.stop()


def _api(app: Polpo, ch: WhatsAppChannel) -> Any:
    host = Host(app)
    host.registry["channels"] = {"whatsapp": ch}
    return running_api(app, host=host)


async def _client(server: ApiServer) -> httpx.AsyncClient:
    return client_for(server)


async def ask(ch: WhatsAppChannel, changes: Changes) -> None:
    """What the dashboard does for the owner: not linked, so ask for QR codes."""
    await changes.wait_for(lambda: ch.status().extra.get("login") == "idle")
    assert ch.request_login()


async def test_an_unlinked_channel_serves_its_qr_code_over_the_api(
    app: Polpo, make_unlinked: Factory, listener: RecordingListener, changes: Changes
) -> None:
    ch = make_unlinked("qr_run")
    await ch.start(listener)
    await ask(ch, changes)
    await changes.wait_for(lambda: ch.status().extra.get("qr") == "2@run1")
    st = ch.status()
    assert st.state == "waiting_for_login"
    assert "WhatsApp" in (st.detail or "") and "Linked devices" in (st.detail or "")
    assert "expires in 60 s" in (st.detail or "")
    assert st.extra["qrExpiresAt"] == 1_800_000_060.0
    # the listener heard of it (the gateway records it; the dashboard reads it)
    assert any(s.extra.get("qr") == "2@run1" for s in listener.statuses)
    async with _api(app, ch) as server, await _client(server) as client:
        rows = (await client.get("/channels")).json()
        assert rows[0]["channel"] == "whatsapp" and rows[0]["qr"] is True
        assert rows[0]["state"] == "waiting_for_login"
        assert rows[0]["live"]["login"] == "qr"
        svg = await client.get("/channels/whatsapp/qr.svg")
        assert svg.status_code == 200
        assert svg.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in svg.content
    assert lock_holder(ch.auth_dir) is not None  # serve holds the account while linking


async def test_rotation_then_pairing_reaches_connected_and_the_qr_goes(
    make_unlinked: Factory, listener: RecordingListener, changes: Changes, unlinked: Path
) -> None:
    # login_qr: two codes, then a phone links and WhatsApp restarts the connection
    ch = make_unlinked("login_qr", sleep=ManualSleep(changes))
    await ch.start(listener)
    await ask(ch, changes)
    await changes.wait_for(lambda: ch.status().state == "connected")
    shown = [s.extra["qr"] for s in listener.statuses if "qr" in s.extra]
    assert shown == ["2@first-code", "2@second-code"]
    expiring = [s.detail for s in listener.statuses if "qr" in s.extra]
    assert "expires in 20 s" in (expiring[1] or "")
    st = ch.status()
    assert "qr" not in st.extra and "login" not in st.extra
    assert st.account == OWN_PHONE
    assert int((unlinked / "fake_runs").read_text()) == 2  # the restart after linking
    linked = [s.detail for s in listener.statuses if s.detail and "linked to +" in s.detail]
    assert linked == [f"linked to +{OWN_PHONE}; connecting"]


async def test_when_the_codes_run_out_it_waits_until_the_dashboard_asks_again(
    app: Polpo, make_unlinked: Factory, listener: RecordingListener, changes: Changes
) -> None:
    sleep = ManualSleep(changes, gated=True)
    ch = make_unlinked("qr_run", sleep=sleep, login=LoginOptions(window=180.0))
    await ch.start(listener)
    await ask(ch, changes)
    await changes.wait_for(lambda: ch.status().extra.get("qr") == "2@run1")
    assert sleep.delays[-1] == 180.0  # the login window, on the injected sleep
    sleep.release()  # nobody scanned within the window
    await changes.wait_for(lambda: ch.status().detail == QR_EXPIRED)
    st = ch.status()
    assert st.state == "waiting_for_login" and "qr" not in st.extra
    assert st.extra["login"] == "expired"
    assert lock_holder(ch.auth_dir) is None  # `polpo whatsapp login` may take it now
    assert ch.worker_pids and "workerPid" not in st.extra
    async with _api(app, ch) as server, await _client(server) as client:
        gone = await client.get("/channels/whatsapp/qr.svg")
        assert gone.status_code == 404
        rows = (await client.get("/channels")).json()
        assert rows[0]["qr"] is False and rows[0]["live"]["login"] == "expired"
        asked = (await client.post("/channels/whatsapp/login")).json()
        assert asked["requested"] is True
        await changes.wait_for(lambda: ch.status().extra.get("qr") == "2@run2")
        svg = await client.get("/channels/whatsapp/qr.svg")
        assert svg.status_code == 200
        again = (await client.post("/channels/whatsapp/login")).json()
        assert again["requested"] is False  # codes are showing: nothing to restart
        missing = await client.post("/channels/telegram/login")
        assert missing.status_code == 404


def _no_qr(auth_dir: Path, on: bool) -> None:
    """Make the fake worker fail before any QR code (no network), or not."""
    auth_dir.mkdir(parents=True, exist_ok=True)
    if on:
        (auth_dir / "fake_no_qr").write_text("")
    else:
        (auth_dir / "fake_no_qr").unlink()


async def test_no_qr_at_all_is_retried_with_backoff(
    make_unlinked: Factory, listener: RecordingListener, changes: Changes, unlinked: Path
) -> None:
    _no_qr(unlinked, True)
    sleep = ManualSleep(changes, gated=True)
    ch = make_unlinked("qr_run", sleep=sleep)
    await ch.start(listener)
    await ask(ch, changes)
    await changes.wait_for(lambda: 1.0 in sleep.delays)
    st = ch.status()
    assert st.state == "waiting_for_login"
    assert st.detail == "cannot get a QR code: no route to web.whatsapp.com; retrying in 1 s"
    _no_qr(unlinked, False)
    # the watchdog of run 1 was cancelled; release the backoff wait
    sleep.release()
    await changes.wait_for(lambda: ch.status().extra.get("qr") == "2@run2")


async def test_a_cli_login_in_progress_is_waited_for(
    make_unlinked: Factory, listener: RecordingListener, changes: Changes, unlinked: Path
) -> None:
    login = AccountLock(unlinked, "polpo whatsapp login")
    login.acquire()
    try:
        ch = make_unlinked("qr_run")
        await ch.start(listener)
        await ask(ch, changes)
        await changes.wait_for(lambda: "(polpo whatsapp login)" in (ch.status().detail or ""))
        assert ch.status().state == "waiting_for_login" and ch.worker_pids == []
    finally:
        login.release()


def test_the_dashboard_shows_the_qr_and_asks_for_a_new_one() -> None:
    js = (STATIC / "app.js").read_text()
    # the image is an <img src> the dashboard's session cookie authenticates
    assert "qr.svg" in js and "c.qr" in js
    assert "/login" in js and 'live.login === "expired"' in js
    assert 'live.login === "idle"' in js  # "Link WhatsApp", and opening the page asks


async def test_restarting_the_channel_shows_new_codes_after_they_expired(
    make_unlinked: Factory, listener: RecordingListener, changes: Changes
) -> None:
    sleep = ManualSleep(changes, gated=True)
    ch = make_unlinked("qr_run", sleep=sleep)
    await ch.start(listener)
    await ask(ch, changes)
    await changes.wait_for(lambda: ch.status().extra.get("qr") == "2@run1")
    sleep.release()
    await changes.wait_for(lambda: ch.status().detail == QR_EXPIRED)
    await ch.stop()
    await ch.start(listener)
    await ask(ch, changes)
    await changes.wait_for(lambda: ch.status().extra.get("qr") == "2@run2")


async def test_a_worker_silent_after_linking_is_restarted_with_the_new_credentials(
    make_unlinked: Factory, listener: RecordingListener, changes: Changes, unlinked: Path
) -> None:
    # whatsmeow does not retry a failed reconnect after linking (the 515 restart)
    ch = make_unlinked(
        "login_silent", sleep=ManualSleep(changes), worker=fake_worker("login_silent", _quick())
    )
    await ch.start(listener)
    await ask(ch, changes)
    await changes.wait_for(lambda: ch.status().state == "connected", within=20)
    assert int((unlinked / "fake_runs").read_text()) == 2
    assert ch.status().account == OWN_PHONE
    details = [s.detail or "" for s in listener.statuses]
    assert f"linked to +{OWN_PHONE}; connecting" in details


def _quick() -> WorkerOptions:
    # 2 s: long enough for a loaded machine to start the next (talking) fake worker
    return WorkerOptions(stop_timeout=5.0, connect_timeout=2.0)


async def test_an_outdated_client_says_so_and_stops(
    make_unlinked: Factory, listener: RecordingListener, changes: Changes
) -> None:
    ch = make_unlinked("outdated", sleep=ManualSleep(changes))
    await ch.start(listener)
    await ask(ch, changes)
    await changes.wait_for(lambda: ch.status().state == "error")
    assert ch.status().detail == "WhatsApp says this client is outdated: upgrade neonize"
    assert len(ch.worker_pids) == 1  # not retried


async def test_a_phone_without_multidevice_is_told_beside_the_qr(
    make_unlinked: Factory, listener: RecordingListener, changes: Changes
) -> None:
    ch = make_unlinked("multidevice")
    await ch.start(listener)
    await ask(ch, changes)
    await changes.wait_for(lambda: "cannot link devices" in (ch.status().detail or ""))
    st = ch.status()
    assert st.state == "waiting_for_login" and st.extra["qr"] == "2@scan-me"
    assert any("cannot link devices" in (s.detail or "") for s in listener.statuses)


async def test_an_unlinked_account_starts_no_worker_until_the_owner_asks(
    app: Polpo, make_unlinked: Factory, listener: RecordingListener, changes: Changes
) -> None:
    # `make serve` with the starter config, offline: no worker, no QR codes, no warnings
    ch = make_unlinked("qr_run")
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().extra.get("login") == "idle")
    st = ch.status()
    assert (st.state, st.detail) == ("waiting_for_login", NOT_LINKED)
    assert ch.worker_pids == [] and "qr" not in st.extra
    assert lock_holder(ch.auth_dir) is None  # `polpo whatsapp login` may link meanwhile
    async with _api(app, ch) as server, await _client(server) as client:
        rows = (await client.get("/channels")).json()
        assert rows[0]["live"]["login"] == "idle" and rows[0]["qr"] is False
        assert ch.worker_pids == []
        asked = (await client.post("/channels/whatsapp/login")).json()  # "Link WhatsApp"
        assert asked["requested"] is True
        await changes.wait_for(lambda: ch.status().extra.get("qr") == "2@run1")
    assert len(ch.worker_pids) == 1


async def test_an_account_linked_from_the_terminal_meanwhile_is_connected_without_asking(
    make_unlinked: Factory, listener: RecordingListener, changes: Changes, unlinked: Path
) -> None:
    sleep = ManualSleep(changes, gated=True)
    ch = make_unlinked("ok", sleep=sleep)
    await ch.start(listener)
    await changes.wait_for(lambda: ch.status().extra.get("login") == "idle")
    make_credentials(unlinked)  # `polpo whatsapp login` linked it
    sleep.release()  # the next look for credentials
    await changes.wait_for(lambda: ch.status().state == "connected")
    assert len(ch.worker_pids) == 1
