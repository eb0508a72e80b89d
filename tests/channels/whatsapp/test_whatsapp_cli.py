"""``polpo whatsapp login|status|logout`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.database import project_store_url
from wa_support import FAKE_WORKER, OWN_PHONE, make_credentials

from polpo.channels.whatsapp.account import AccountLock, linked_account
from polpo.channels.whatsapp.process import WORKER_ENV
from polpo.cli.main import run


@dataclass
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


def _config(port: int = 1) -> dict[str, Any]:
    return {
        "project": "demo",
        "settings": {
            "server": {"port": port},
            "notifications": {
                "channels": {"wa": {"type": "whatsapp", "gateway": {"enableInbound": True}}}
            },
        },
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".polpo").mkdir()
    (tmp_path / ".polpo" / "polpo.json").write_text(json.dumps(_config()))
    return tmp_path


@pytest.fixture
def auth(project: Path) -> Path:
    return project / ".polpo" / "whatsapp"


@pytest.fixture
def cli(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(project)
    monkeypatch.delenv("POLPO_CONFIG", raising=False)
    monkeypatch.delenv(WORKER_ENV, raising=False)

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def _fake(monkeypatch: pytest.MonkeyPatch, scenario: str) -> None:
    monkeypatch.setenv(WORKER_ENV, f"{sys.executable} {FAKE_WORKER} {scenario}")


# -- login -------------------------------------------------------------------------------


def test_login_without_network_gives_up_quickly_with_a_clear_message(project: Path) -> None:
    """The real worker, as a user runs it: no network here."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(project)}
    started = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "polpo"), "whatsapp", "login"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 60
    assert done.returncode == 1
    assert done.stderr.startswith("Error: cannot reach WhatsApp (")
    assert "check the network connection and run `polpo whatsapp login` again" in done.stderr
    assert "Traceback" not in done.stderr


def test_login_shows_each_qr_code_survives_the_restart_and_prints_the_number(
    cli: Cli, auth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake(monkeypatch, "login_qr")
    r = cli("whatsapp", "login")
    assert r.code == 0, r.err
    assert r.out.count("Scan this QR code with WhatsApp") == 2
    assert "The code changes in 60 s." in r.out and "The code changes in 20 s." in r.out
    assert f"Phone +{OWN_PHONE} accepted the link" in r.out
    assert r.out.rstrip().endswith(f"WhatsApp linked: +{OWN_PHONE} (Owner). Credentials in {auth}")
    assert (auth / "fake_runs").read_text() == "2"  # restarted once after linking
    assert auth.stat().st_mode & 0o777 == 0o700
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in auth.iterdir())


def test_login_with_a_phone_number_shows_the_link_code(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake(monkeypatch, "login_phone")
    r = cli("whatsapp", "login", "--phone", "+39 333 123 4567")
    assert r.code == 0, r.err
    assert "Your link code: K7M2-4567" in r.out
    assert "WhatsApp linked: +393331234567" in r.out


def test_login_refuses_to_relink_without_force(
    cli: Cli, auth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_credentials(auth)
    _fake(monkeypatch, "login_phone")
    r = cli("whatsapp", "login")
    assert r.code == 2  # a usage mistake: --force is missing
    assert r.err == (
        f"Error: WhatsApp is already linked to +{OWN_PHONE}; use `polpo whatsapp login --force` "
        "to link again (the current link is removed)\n"
    )
    r = cli("whatsapp", "login", "--force", "--phone", "39111222333")
    assert r.code == 0, r.err
    account = linked_account(auth)
    assert account is not None and account.phone == "39111222333"


def test_login_says_who_holds_the_account(cli: Cli, auth: Path) -> None:
    with AccountLock(auth, "polpo serve"):
        r = cli("whatsapp", "login")
    assert r.code == 1
    assert f"in use by pid {__import__('os').getpid()} (polpo serve)" in r.err
    assert "links the account from its dashboard" in r.err


def test_login_rejects_a_bad_phone_number(cli: Cli) -> None:
    r = cli("whatsapp", "login", "--phone", "call me")
    assert r.code == 2
    assert "is not a phone number" in r.err


# -- status ------------------------------------------------------------------------------


def test_status_without_credentials_or_server(cli: Cli, auth: Path) -> None:
    r = cli("whatsapp", "status")
    assert r.code == 0
    assert f"Linked:   no (no credentials in {auth}); run `polpo whatsapp login`" in r.out
    assert "Serve:    no polpo serve running (nothing answers at http://127.0.0.1:1)" in r.out


def test_status_reads_the_credentials_and_checks_live_when_no_server_runs(
    cli: Cli, auth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_credentials(auth)
    _fake(monkeypatch, "ok")
    r = cli("whatsapp", "status")
    assert f"Linked:   yes, +{OWN_PHONE} (Owner)" in r.out
    assert "In use:   no process holds the account right now" in r.out
    assert f"Live:     connected to WhatsApp as +{OWN_PHONE}" in r.out
    data = json.loads(cli("whatsapp", "status", "--json").out)
    assert data["linked"] is True and data["phone"] == OWN_PHONE
    assert data["serve"]["reachable"] is False
    assert data["liveCheck"]["connected"] is True


def test_status_live_check_says_why_it_cannot_connect(
    cli: Cli, auth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_credentials(auth)
    _fake(monkeypatch, "flaky")
    r = cli("whatsapp", "status")
    assert "Live:     cannot connect: no route to web.whatsapp.com" in r.out
    r = cli("whatsapp", "status", "--offline")
    assert "Live:" not in r.out
    assert (auth / "fake_runs").read_text() == "1"  # --offline started no worker


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                [
                    {
                        "channel": "whatsapp",
                        "state": "connected",
                        "detail": None,
                        "account": OWN_PHONE,
                    }
                ]
            ).encode()
            ok = self.path == "/api/v1/channels"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if ok else b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_status_asks_a_running_serve(
    cli: Cli, project: Path, auth: Path, server: ThreadingHTTPServer
) -> None:
    port = server.server_address[1]
    (project / ".polpo" / "polpo.json").write_text(json.dumps(_config(port)))
    make_credentials(auth)
    with AccountLock(auth, "polpo serve"):
        r = cli("whatsapp", "status")
    assert r.code == 0
    assert f"Serve:    polpo serve at http://127.0.0.1:{port}: WhatsApp connected" in r.out
    assert "In use:   by pid" in r.out and "(polpo serve)" in r.out


# -- logout ------------------------------------------------------------------------------


def test_logout_unlinks_on_whatsapp_and_wipes_local_credentials(
    cli: Cli, auth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_credentials(auth)
    _fake(monkeypatch, "ok")
    r = cli("whatsapp", "logout")
    assert r.code == 0, r.err
    assert r.out == f"Unlinked +{OWN_PHONE} on WhatsApp and deleted the local credentials.\n"
    assert linked_account(auth) is None and not (auth / "neonize.db").exists()


def test_logout_offline_still_wipes_and_says_what_to_do_on_the_phone(
    cli: Cli, auth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_credentials(auth)
    _fake(monkeypatch, "flaky")  # its first run cannot connect
    r = cli("whatsapp", "logout")
    assert r.code == 0, r.err
    assert r.out.startswith(f"Deleted the local credentials of +{OWN_PHONE}, but could not unlink")
    assert "no route to web.whatsapp.com" in r.out
    assert 'remove "Polpo" under Linked devices on your phone' in r.out
    assert not (auth / "neonize.db").exists()


def test_logout_without_credentials(cli: Cli) -> None:
    r = cli("whatsapp", "logout")
    assert r.code == 0
    assert r.out == "WhatsApp is not linked: nothing to log out.\n"


def test_neither_the_cli_nor_the_serving_side_imports_neonize() -> None:
    """neonize reconfigures logging and loads a Go runtime: only the worker may import it."""
    code = (
        "import sys, polpo.cli.main, polpo.channels.whatsapp.component, "
        "polpo.channels.whatsapp.session; print('neonize' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_login_gives_up_when_no_phone_links_in_time(auth: Path) -> None:
    from polpo.channels.whatsapp.account import lock_holder
    from polpo.channels.whatsapp.session import LoginCallbacks, LoginError, login
    from polpo.clock import FakeClock

    clock = FakeClock(start=0.0)
    shown: list[str] = []

    def on_qr(code: str, _seconds: int) -> None:
        shown.append(code)
        clock.advance(601)  # nobody scans: the ten minutes pass

    callbacks = LoginCallbacks(on_qr=on_qr, on_pair_code=shown.append, on_paired=shown.append)
    with pytest.raises(LoginError) as info:
        await login(
            auth,
            give_up_after=600,
            callbacks=callbacks,
            worker_command=[sys.executable, str(FAKE_WORKER), "qr_forever"],
            monotonic=clock.now,
        )
    assert info.value.message == (
        "gave up: no phone linked within 600 s; run `polpo whatsapp login` again "
        "when your phone is at hand"
    )
    assert shown == ["2@nobody-scans"]
    assert lock_holder(auth) is None  # released, and the worker stopped
    assert linked_account(auth) is None


def test_logout_while_serve_holds_the_account_says_so_and_keeps_the_credentials(
    cli: Cli, auth: Path
) -> None:
    make_credentials(auth)
    with AccountLock(auth, "polpo serve"):
        r = cli("whatsapp", "logout")
    assert r.code == 1
    assert "(polpo serve); stop it first" in r.err
    assert linked_account(auth) is not None


async def _hold_lease(project: Path, name: str, holder: str, expires_in: float) -> None:
    import time

    from polpo.store import Store, leases

    store = await Store.open(project_store_url(project))
    try:
        got = await leases.acquire(store, name, holder, now=time.time() - 60, ttl=60 + expires_in)
        assert got is not None
    finally:
        await store.close()


@pytest.mark.parametrize("command", ["login", "logout"])
def test_login_and_logout_respect_a_lease_held_on_another_machine(
    cli: Cli, project: Path, auth: Path, command: str
) -> None:
    import asyncio

    make_credentials(auth)
    asyncio.run(
        _hold_lease(
            project, f"whatsapp:{auth.resolve()}", "pid 7 on box2 (polpo serve)", expires_in=60
        )
    )
    r = cli("whatsapp", command)
    assert r.code == 1
    assert "WhatsApp is held by pid 7 on box2 (polpo serve)" in r.err
    # a serve holding it links from its dashboard: login says where to look
    assert ("scan the QR code shown under Channels" in r.err) == (command == "login")
    assert len(r.err.strip().splitlines()) == 1
    assert linked_account(auth) is not None  # logout kept the credentials


def test_an_expired_lease_does_not_block_logout(cli: Cli, project: Path, auth: Path) -> None:
    import asyncio

    make_credentials(auth)
    asyncio.run(
        _hold_lease(
            project, f"whatsapp:{auth.resolve()}", "pid 7 on box2 (polpo serve)", expires_in=-1
        )
    )
    r = cli("whatsapp", "logout")
    assert r.code == 0, r.err
    assert linked_account(auth) is None


def test_login_with_an_outdated_client_ends_with_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake(monkeypatch, "outdated")
    r = cli("whatsapp", "login")
    assert r.code == 1
    assert r.err.strip() == "Error: WhatsApp says this client is outdated: upgrade neonize"


async def test_login_tells_of_a_phone_without_multidevice_and_restarts_a_quiet_worker(
    auth: Path,
) -> None:
    from polpo.channels.whatsapp.session import LoginCallbacks, LoginError, login

    notices: list[str] = []
    callbacks = LoginCallbacks(
        on_qr=lambda _c, _s: None,
        on_pair_code=lambda _c: None,
        on_paired=lambda _p: None,
        on_notice=notices.append,
    )
    with pytest.raises(LoginError):
        await login(
            auth,
            give_up_after=1.0,
            callbacks=callbacks,
            worker_command=[sys.executable, str(FAKE_WORKER), "multidevice"],
        )
    assert notices == ["the phone that scanned the code cannot link devices"]
    # linked, then the reconnect WhatsApp asks for failed silently: run 2 connects
    (auth / "fake_runs").unlink()
    account = await login(
        auth,
        callbacks=callbacks,
        worker_command=[sys.executable, str(FAKE_WORKER), "login_silent"],
        connect_after_link=1.0,
    )
    assert account.phone == OWN_PHONE
    assert (auth / "fake_runs").read_text() == "2"
