"""The dashboard's session: one-time links, the cookie they set, and 401 without one.

As Jupyter does: serve prints a link with a one-time token; opening it sets
an ``HttpOnly; SameSite=Strict; Path=/`` cookie and redirects to the clean
URL. Without the cookie or a bearer token nothing but ``/api/v1/health``
answers; ``polpo dashboard`` asks a running serve for a fresh link.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx

from tests.cli.conftest import run_polpo
from tests.security.conftest import Serve, serving

PROTECTED = [
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/tasks"),
    ("GET", "/api/v1/peers"),
    ("GET", "/api/v1/pairing"),
    ("GET", "/api/v1/channels"),
    ("GET", "/api/v1/channels/whatsapp/qr.svg"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/docs"),
    ("POST", "/api/v1/dashboard/link"),
    ("POST", "/api/v1/peers/whatsapp:15550009991/allow"),
]


def test_without_cookie_or_bearer_only_health_answers(serve: Serve) -> None:
    with httpx.Client(base_url=serve.url, timeout=10) as anon:
        assert anon.get("/api/v1/health").status_code == 200
        for method, path in PROTECTED:
            # a same-origin JSON request: only the missing credentials stop it
            r = anon.request(method, path, json={}, headers={"Origin": serve.url})
            assert r.status_code == 401, path
            assert "polpo dashboard" in r.json()["error"]
        forged = anon.get(
            "/api/v1/status", headers={"Cookie": f"polpo_session_{serve.port}=forged"}
        )
        assert forged.status_code == 401
        page = anon.get("/")
        assert page.status_code == 401
        assert "use the link <code>polpo serve</code> printed" in page.text
        assert "<code>polpo dashboard</code>" in page.text
        assert '<section id="pairing">' not in page.text  # not the dashboard


def test_the_printed_link_signs_in_once(serve: Serve) -> None:
    with httpx.Client(timeout=10) as browser:
        r = browser.get(serve.link)
        assert r.status_code == 303
        assert r.headers["location"] == "/"  # the token leaves the address bar
        assert r.headers["cache-control"] == "no-store"
        cookie = r.headers["set-cookie"]
        name, _, rest = cookie.partition("=")
        assert name == f"polpo_session_{serve.port}"
        attrs = {a.strip() for a in rest.split(";")[1:]}
        assert attrs == {"HttpOnly", "SameSite=Strict", "Path=/"}
        page = browser.get(serve.url + "/")
        assert page.status_code == 200 and '<section id="pairing">' in page.text
        assert browser.get(serve.url + "/api/v1/status").json()["project"] == "attacked"

    with httpx.Client(timeout=10) as someone_else:
        again = someone_else.get(serve.link)
        assert again.status_code == 401
        assert "set-cookie" not in again.headers
        assert "already used or has expired" in again.text
        assert someone_else.get(serve.url + "/api/v1/status").status_code == 401


def test_a_made_up_token_does_nothing(serve: Serve) -> None:
    r = httpx.get(serve.url + "/?token=guessed-token")
    assert r.status_code == 401 and "set-cookie" not in r.headers


def test_polpo_dashboard_prints_a_fresh_link(serve: Serve) -> None:
    r = run_polpo(serve.root, "dashboard")
    assert r.code == 0, r.err
    link = r.out.strip()
    assert link.startswith(serve.url + "/?token=") and link != serve.link
    with httpx.Client(timeout=10) as browser:
        assert browser.get(link).status_code == 303
        assert browser.get(serve.url + "/api/v1/status").status_code == 200
    assert httpx.get(link).status_code == 401  # once


def test_polpo_dashboard_without_a_serve_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "idle"
    (root / ".polpo").mkdir(parents=True)
    (root / ".polpo" / "polpo.json").write_text(
        json.dumps({"project": "idle", "settings": {"server": {"port": 1}}})
    )
    r = run_polpo(root, "dashboard")
    assert r.code == 1
    assert r.err.strip().splitlines() == [
        "Error: no polpo serve of this project answers at http://127.0.0.1:1 (no polpo serve "
        "running); start it with polpo serve, which prints a sign-in link itself"
    ]
    # a file left by a serve that crashed: the same line, never a traceback
    (root / ".polpo" / "serve.json").write_text(
        json.dumps({"url": "http://127.0.0.1:1", "token": "dead", "pid": 999999})
    )
    r = run_polpo(root, "dashboard")
    assert r.code == 1 and "no polpo serve running" in r.err and "Traceback" not in r.err
    (root / ".polpo" / "serve.json").write_text("{garbled")
    r = run_polpo(root, "dashboard")
    assert r.code == 1 and "Traceback" not in r.err


def test_serve_json_is_private_and_gone_after_a_clean_stop(tmp_path: Path) -> None:
    with serving(tmp_path / "p") as s:
        path = s.root / ".polpo" / "serve.json"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert json.loads(path.read_text())["url"] == s.url
        assert s.stop() == 0
    assert not path.exists()


def test_the_cli_asks_the_running_serve_with_its_token(serve: Serve) -> None:
    """``polpo whatsapp status`` reaches the serve through ``.polpo/serve.json``."""
    r = run_polpo(serve.root, "whatsapp", "status", "--json", "--offline")
    assert r.code == 0, r.err
    reached = r.json()["serve"]
    assert reached["url"] == serve.url and reached["reachable"] is True
    assert reached["channel"]["state"] == "waiting_for_login"
