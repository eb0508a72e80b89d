"""DNS rebinding: a page whose own name resolves to 127.0.0.1 reads nothing.

The browser of such a page sends ``Host: evil.example:PORT``. Every path is
refused before any route runs — the dashboard, its files, the API, and the
WhatsApp QR (with which the attacker would link their own phone as Polpo's
account) — even with valid credentials, while the owner's names still work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.security.conftest import Serve

PATHS = [
    "/",
    "/static/app.js",
    "/api/v1/health",
    "/api/v1/status",
    "/api/v1/channels/whatsapp/qr.svg",
    "/api/v1/openapi.json",
]


def _wait_for_qr(serve: Serve) -> None:
    # not linked: serve shows QR codes once asked (what the dashboard does on opening)
    httpx.post(serve.url + "/api/v1/channels/whatsapp/login", json={}, headers=serve.bearer)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = httpx.get(serve.url + "/api/v1/channels", headers=serve.bearer).json()
        if any(r.get("qr") for r in rows):
            return
        time.sleep(0.05)
    raise AssertionError("the fake worker showed no QR code")


@pytest.fixture(scope="module")
def browser(serve: Serve) -> Iterator[httpx.Client]:
    """Signed in both ways: the dashboard's cookie and the CLI's bearer token."""
    client = serve.browser()
    client.headers.update(serve.bearer)
    yield client
    client.close()


@pytest.mark.parametrize("path", PATHS)
def test_a_foreign_host_is_refused_everywhere(
    serve: Serve, browser: httpx.Client, path: str
) -> None:
    _wait_for_qr(serve)
    ours = browser.get(path)
    assert ours.status_code == 200, (path, ours.text)  # what the attacker is after exists
    r = browser.get(path, headers={"Host": f"evil.example:{serve.port}"})
    assert r.status_code == 421, (path, r.text)
    assert r.headers["content-type"] == "application/json"
    assert "not a name this Polpo answers to" in r.json()["error"]
    assert b"<svg" not in r.content


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost", 200),
        ("127.0.0.1", 200),
        ("LOCALHOST.", 200),
        ("localhost.evil.example", 421),
        ("127.0.0.1.nip.io", 421),
    ],
)
def test_only_the_owners_names_work(serve: Serve, host: str, status: int) -> None:
    r = httpx.get(serve.url + "/api/v1/health", headers={"Host": f"{host}:{serve.port}"})
    assert r.status_code == status


def test_a_missing_or_garbled_host_is_refused(serve: Serve) -> None:
    for bad in ["", "evil.example:80@127.0.0.1", "127.0.0.1:80/x"]:
        r = httpx.get(serve.url + "/api/v1/health", headers={"Host": bad})
        assert r.status_code == 400, bad
