"""``polpo whatsapp login|status|logout`` belong to a project, and ``status`` speaks plainly
about the project's ``polpo serve``: not running, holding the account, or another project's."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli
from tests.conftest import write_project


@pytest.fixture(autouse=True)
def _no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from polpo.channels.whatsapp.process import WORKER_ENV

    monkeypatch.delenv(WORKER_ENV, raising=False)
    monkeypatch.delenv("POLPO_API_KEY", raising=False)


@pytest.mark.parametrize("command", ["login", "status", "logout"])
def test_outside_a_project_they_say_run_polpo_init_and_create_nothing(
    cli: Cli, tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "not-a-project"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = cli("whatsapp", command)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: No Polpo config at ")
    assert "Run `polpo init` to create one" in lines[0]
    assert list(elsewhere.iterdir()) == []  # no .polpo/whatsapp/ left behind


def _whatsapp_project(root: Path, port: int) -> None:
    write_project(
        root,
        {
            "project": "demo",
            "settings": {
                "server": {"port": port},
                "notifications": {"channels": {"whatsapp": {"gateway": {"enableInbound": True}}}},
            },
        },
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_without_a_serve_says_so_plainly(cli: Cli, project: Path) -> None:
    port = _free_port()
    _whatsapp_project(project, port)
    r = cli("whatsapp", "status", "--offline")
    assert r.code == 0, r.err
    assert f"Serve:    no polpo serve running (nothing answers at http://127.0.0.1:{port})" in r.out
    assert "Errno" not in r.out and "refused" not in r.out
    assert "run `polpo whatsapp login`" in r.out  # nothing else holds the account


Serve = Callable[[str, dict[str, Any]], int]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """A stand-in ``polpo serve`` API: health names its project, channels its WhatsApp row."""
    servers: list[ThreadingHTTPServer] = []

    def start(project: str, whatsapp: dict[str, Any]) -> int:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                bodies: dict[str, Any] = {
                    "/api/v1/health": {"ok": True, "project": project},
                    "/api/v1/channels": [{"channel": "whatsapp", **whatsapp}],
                }
                body = bodies.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body or {}).encode())

            def log_message(self, *args: Any) -> None:
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return int(srv.server_address[1])

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_status_while_serve_waits_for_a_scan_points_to_its_dashboard(
    cli: Cli, project: Path, serve: Serve
) -> None:
    port = serve("demo", {"state": "waiting_for_qr", "detail": "scan the QR code"})
    _whatsapp_project(project, port)
    r = cli("whatsapp", "status")
    assert r.code == 0, r.err
    assert (
        f"Linked:   no; polpo serve is waiting to link it: open its dashboard "
        f"(http://127.0.0.1:{port}/) and scan the QR code under Channels"
    ) in r.out
    assert "polpo whatsapp login" not in r.out  # it would refuse while serve holds it


def test_another_projects_serve_is_not_taken_for_this_ones(
    cli: Cli, project: Path, serve: Serve
) -> None:
    port = serve("someone-else", {"state": "connected", "detail": None, "account": "39111"})
    _whatsapp_project(project, port)
    r = cli("whatsapp", "status", "--offline")
    assert r.code == 0, r.err
    assert (
        f"Serve:    no answer from this project's polpo serve at http://127.0.0.1:{port} "
        "(project 'someone-else''s polpo serve answers there)"
    ) in r.out
    assert "WhatsApp connected" not in r.out
    data = json.loads(cli("whatsapp", "status", "--json", "--offline").out)
    assert data["serve"]["reachable"] is False and data["serve"]["channel"] is None
