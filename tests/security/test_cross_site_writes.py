"""A web page in the owner's browser cannot let a stranger in or approve a pairing.

The attack as a page would send it: a POST to 127.0.0.1 with the page's own
``Origin`` and a JSON, form or text/plain body. Even with the dashboard's
session cookie attached (SameSite=Strict keeps browsers from sending it, but
the server must not rely on that), the answer is 403 and the database shows
the peer still outside.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.security.conftest import Serve
from tests.security.project_db import add_pairing_request, pairing_status, peer_allowed

EVIL = "http://evil.example"
BODIES: dict[str, dict[str, object]] = {
    "json": {"json": {"by": "dashboard"}},
    "form": {
        "content": "by=dashboard",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    },
    "text": {"content": '{"by": "dashboard"}', "headers": {"Content-Type": "text/plain"}},
    "empty form": {
        "content": "",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    },
}


@pytest.fixture
def browser(serve: Serve) -> Iterator[httpx.Client]:
    client = serve.browser()
    yield client
    client.close()


def _attack(client: httpx.Client, path: str, body: str, **extra: str) -> httpx.Response:
    spec = dict(BODIES[body])
    headers = {"Origin": EVIL, **dict(spec.pop("headers", {})), **extra}  # type: ignore[arg-type]
    return client.post(path, headers=headers, **spec)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", list(BODIES))
def test_a_foreign_page_cannot_let_a_peer_in(
    serve: Serve, browser: httpx.Client, body: str
) -> None:
    peer = f"whatsapp:155500066{list(BODIES).index(body)}"
    r = _attack(browser, f"/api/v1/peers/{peer}/allow", body)
    assert r.status_code == 403, r.text
    assert r.json()["error"].startswith("refused:")
    assert not peer_allowed(serve.root, peer)


@pytest.mark.parametrize("body", list(BODIES))
def test_a_foreign_page_cannot_approve_a_pairing(
    serve: Serve, browser: httpx.Client, body: str
) -> None:
    n = list(BODIES).index(body)
    code = f"EVLCDE{n + 2}{n + 2}"
    peer = f"whatsapp:166600066{n}"
    add_pairing_request(serve.root, code, peer)
    r = _attack(browser, f"/api/v1/pairing/{code}/approve", body)
    assert r.status_code == 403, r.text
    assert pairing_status(serve.root, code) == "pending"
    assert not peer_allowed(serve.root, peer)


def test_a_foreign_referer_or_no_origin_at_all_is_refused(
    serve: Serve, browser: httpx.Client
) -> None:
    peer = "whatsapp:15550007771"
    r = browser.post(
        f"/api/v1/peers/{peer}/allow", json={}, headers={"Referer": EVIL + "/page.html"}
    )
    assert r.status_code == 403
    r = browser.post(f"/api/v1/peers/{peer}/allow", json={})  # neither Origin nor Referer
    assert r.status_code == 403 and "without Origin or Referer" in r.json()["error"]
    r = browser.post(f"/api/v1/peers/{peer}/allow", json={}, headers={"Origin": "null"})
    assert r.status_code == 403
    assert not peer_allowed(serve.root, peer)


def test_only_the_dashboards_own_origin_writes(serve: Serve, browser: httpx.Client) -> None:
    """Another web app on this machine (another port) is another origin: refused. The
    dashboard's own JSON requests and bearer-token scripts pass."""
    peer = "whatsapp:15550008881"
    neighbour = f"http://127.0.0.1:{serve.port + 1}"
    r = browser.post(f"/api/v1/peers/{peer}/allow", json={}, headers={"Origin": neighbour})
    assert r.status_code == 403
    assert not peer_allowed(serve.root, peer)
    r = browser.post(f"/api/v1/peers/{peer}/allow", json={}, headers={"Origin": serve.url})
    assert r.status_code == 200, r.text
    assert peer_allowed(serve.root, peer)
    r = httpx.post(f"{serve.url}/api/v1/peers/{peer}/revoke", headers=serve.bearer)  # no body
    assert r.status_code == 200, r.text
    assert not peer_allowed(serve.root, peer)
