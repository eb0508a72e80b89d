"""Debian's Chromium driven by Playwright, against a real ``polpo serve``.

Playwright cannot download its browsers here, so it launches the system's
``/usr/bin/chromium`` (``.ci/run`` installs it); without it these tests are
skipped with the reason. Screenshots of each state go to
``tests/output/screenshots/`` (gitignored) for review; the README's come
from there.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"

CONFIG: dict[str, Any] = {
    "project": "my-app",
    "agents": [
        {"name": "writer", "role": "Docs", "model": "test:model"},
        {"name": "coder", "role": "Senior engineer", "model": "test:model"},
    ],
    "settings": {
        "runner": {"pollSeconds": 0.2},
        "approvalGates": [
            {"name": "plan", "hook": "task:start", "agents": ["writer"]},
            {"name": "review", "hook": "task:complete", "agents": ["coder"], "maxRevisions": 0},
        ],
        "notifications": {
            "channels": {
                "whatsapp": {
                    "type": "whatsapp",
                    "gateway": {"enableInbound": True, "dmPolicy": "pairing"},
                }
            }
        },
    },
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium: apt-get install chromium (.ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    from playwright.sync_api import expect

    # Live updates cross processes (a CLI, the event tail, SSE): give a busy CI time.
    expect.set_options(timeout=15_000)
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    yield tab
    context.close()
    # A CSP violation, a missing file or a script error is a bug even when the page
    # looks right. (Network errors of streams cut when the test stopped the server
    # are not: "net::ERR_…".)
    assert [e for e in errors if "net::ERR_" not in e] == []


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
