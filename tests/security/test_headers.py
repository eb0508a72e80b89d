"""Every response says: never frame me, never sniff me, send no referrer, run only my files.

A page that frames the dashboard could trick a click on "Let in"; a script
injected through a display name could act with the session. The headers
close both, on pages, files, JSON and refusals alike.
"""

from __future__ import annotations

import httpx
import pytest

from tests.security.conftest import Serve

EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
CSP_MUST_HAVE = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
]


def _requests(serve: Serve) -> list[tuple[str, httpx.Response]]:
    browser = serve.browser()
    anon = httpx.Client(base_url=serve.url, timeout=10)
    evil = {"Host": f"evil.example:{serve.port}"}
    try:
        return [
            ("dashboard", browser.get("/")),
            ("sign-in page", anon.get("/")),
            ("used link", anon.get("/?token=used")),
            ("sign-in redirect", anon.get(serve.fresh_link().removeprefix(serve.url))),
            ("app.js", anon.get("/static/app.js")),
            ("dashboard.css", anon.get("/static/dashboard.css")),
            ("API docs", browser.get("/api/v1/docs")),
            ("JSON", browser.get("/api/v1/status")),
            ("health", anon.get("/api/v1/health")),
            ("401", anon.get("/api/v1/status")),
            ("403", browser.post("/api/v1/tasks", content="x")),
            ("404", browser.get("/api/v1/tasks/nope")),
            ("421", anon.get("/", headers=evil)),
            ("422", browser.get("/api/v1/tasks?limit=0")),
        ]
    finally:
        browser.close()
        anon.close()


def test_security_headers_on_every_response(serve: Serve) -> None:
    for what, r in _requests(serve):
        for name, value in EXPECTED.items():
            assert r.headers.get(name) == value, (what, name, r.status_code)
        csp = r.headers.get("content-security-policy", "")
        for rule in CSP_MUST_HAVE:
            assert rule in csp, (what, rule)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


@pytest.mark.parametrize("page", ["/", "/api/v1/docs"])
def test_pages_have_no_inline_script_or_style(serve: Serve, page: str) -> None:
    """What the CSP forbids, the pages do not need (else they would break, not be safe)."""
    browser = serve.browser()
    try:
        html = browser.get(page).text
    finally:
        browser.close()
    assert "<style" not in html and " style=" not in html
    for chunk in html.split("<script")[1:]:
        assert chunk.lstrip().startswith("src="), chunk[:80]
        assert chunk.split(">", 1)[1].startswith("</script>")
