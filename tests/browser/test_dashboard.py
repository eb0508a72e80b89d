"""The dashboard in a real browser: live updates, the QR code's countdown, the buttons.

Each test signs in through the link ``polpo serve`` printed, then acts as
the owner would; things happen elsewhere (the fake WhatsApp worker rotates
and links, ``polpo simulate`` brings a stranger, ``polpo task add`` starts
work) and must show up without a reload. The page's clock is Playwright's,
so the countdown is checked by moving time, not by waiting.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tests.browser.conftest import CONFIG, screenshot
from tests.cli.conftest import run_polpo
from tests.security.project_db import peer_allowed
from tests.serve_process import serving

if TYPE_CHECKING:
    from playwright.sync_api import Page

FRIEND = "15550001234"


def _expect():  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    return expect


def test_the_qr_code_counts_down_rotates_and_the_page_says_when_linked(
    tmp_path: Path, page: Page
) -> None:
    expect = _expect()
    with serving(tmp_path / "p", config=CONFIG, worker="qr_rotating") as s:
        page.clock.install()
        page.goto(s.link)
        assert page.url == s.url + "/"  # the token left the address bar
        whatsapp = page.locator('[data-channel="whatsapp"]')
        qr = whatsapp.locator(".qr img")
        expect(qr).to_be_visible()
        expect(whatsapp.locator(".summary")).to_have_text(
            "Link WhatsApp. On your phone: WhatsApp → Settings → Linked devices → Link a "
            "device, then scan this code."
        )
        assert page.get_by_text("Linked devices").count() == 1  # one instruction, not two
        countdown = whatsapp.locator(".qr .countdown")
        expect(countdown).to_have_text(re.compile(r"^This code changes in \d+ s$"))

        now = page.evaluate("Date.now()") / 1000
        page.clock.pause_at(datetime.fromtimestamp(now + 1))  # from here, time moves by hand
        left = int(countdown.inner_text().split()[-2])
        assert 50 <= left <= 60
        page.clock.run_for(5000)
        expect(countdown).to_have_text(f"This code changes in {left - 5} s")
        screenshot(page, "1-link-whatsapp")

        first = qr.get_attribute("src")
        (s.root / ".polpo" / "whatsapp" / "fake_rotate").touch()  # WhatsApp rotates the code
        expect(qr).not_to_have_attribute("src", first or "")
        # the new code's 20 s, less what the round trip took on a busy machine
        expect(countdown).to_have_text(re.compile(r"^This code changes in (1\d|20) s$"))

        (s.root / ".polpo" / "whatsapp" / "fake_link").touch()  # the phone scans it
        expect(whatsapp.locator(".summary")).to_have_text("Connected as +39000000001.")
        expect(qr).to_have_count(0)
        expect(page.locator("#notice")).to_have_text(
            "WhatsApp is linked: +39000000001. Messages to this account now reach Polpo."
        )
        screenshot(page, "2-whatsapp-linked")


def test_a_pairing_request_arrives_live_and_let_in_admits_the_peer(
    tmp_path: Path, page: Page
) -> None:
    expect = _expect()
    with serving(tmp_path / "p", config=CONFIG) as s:
        page.goto(s.link)
        expect(page.locator("#live")).to_have_text("live")
        expect(page.locator("#pairing")).to_have_text("Nobody is waiting to be let in.")

        said = run_polpo(s.root, "simulate", "whatsapp", "--from", FRIEND, "--name", "Ada", "hi")
        assert said.code == 0, said.err
        row = page.locator("#pairing tr[data-pairing]")
        expect(row).to_contain_text(f"Ada (+{FRIEND})")
        screenshot(page, "3-pairing-request")

        row.get_by_role("button", name="Let in").click()
        expect(page.locator("#notice")).to_have_text(
            f"Let in Ada (+{FRIEND}); they were told on WhatsApp."
        )
        expect(page.locator("#pairing")).to_have_text("Nobody is waiting to be let in.")
        assert peer_allowed(s.root, f"whatsapp:{FRIEND}")
        friend = page.locator(f'#peers tr[data-peer="whatsapp:{FRIEND}"]')
        expect(friend).to_contain_text("let in")
        screenshot(page, "4-let-in")

        friend.get_by_role("button", name="Revoke").click()
        expect(page.locator("#notice")).to_have_text(
            f"Revoked Ada (+{FRIEND}): their messages no longer reach Polpo."
        )
        expect(friend).to_have_count(0)
        assert not peer_allowed(s.root, f"whatsapp:{FRIEND}")


def test_an_approval_arrives_live_and_approve_runs_the_task(tmp_path: Path, page: Page) -> None:
    expect = _expect()
    with serving(tmp_path / "p", config=CONFIG) as s:
        page.goto(s.link)
        expect(page.locator("#live")).to_have_text("live")
        expect(page.locator("#approvals")).to_have_text("Nothing waits for you.")

        added = run_polpo(s.root, "task", "add", "Write the release notes", "-a", "writer")
        assert added.code == 0, added.err
        row = page.locator("#approvals tr[data-approval]")
        expect(row).to_contain_text("Write the release notes")
        expect(row).to_contain_text("plan")
        screenshot(page, "5-approval")

        row.get_by_role("button", name="Approve").click()
        expect(page.locator("#notice")).to_have_text(
            re.compile(r"^Approved \w+: “Write the release notes” goes on\.$")
        )
        task = page.locator("#tasks tr[data-task]", has_text="Write the release notes")
        expect(task.locator(".pill")).to_have_text("done", timeout=30_000)
        screenshot(page, "6-approved-and-done")


def test_reject_with_a_reason_then_retry_the_failed_task(tmp_path: Path, page: Page) -> None:
    expect = _expect()
    with serving(tmp_path / "p", config=CONFIG) as s:
        page.goto(s.link)
        expect(page.locator("#live")).to_have_text("live")
        added = run_polpo(s.root, "task", "add", "Refactor the parser", "-a", "coder")
        assert added.code == 0, added.err
        row = page.locator("#approvals tr[data-approval]")
        expect(row).to_contain_text("review")  # done, waiting for the complete gate

        row.get_by_role("button", name="Reject…").click()
        reason = page.get_by_label("Why? The agent gets this as feedback.")
        reason.fill("Keep the old error messages")
        page.get_by_role("button", name=re.compile(r"^Reject \w+$")).click()
        expect(page.locator("#notice")).to_have_text(
            re.compile(r"^Rejected \w+: “Refactor the parser”; the agent gets your reason\.$")
        )
        task = page.locator("#tasks tr[data-task]", has_text="Refactor the parser")
        expect(task.locator(".pill")).to_have_text("failed")  # maxRevisions 0

        task.get_by_role("button", name="Retry").click()
        expect(page.locator("#notice")).to_have_text(re.compile(r"^Task \w+ is queued again\.$"))
        expect(page.locator("#approvals tr[data-approval]")).to_contain_text("Refactor the parser")


def test_offline_whatsapp_is_said_in_human_words_with_the_detail_behind_a_disclosure(
    tmp_path: Path, page: Page
) -> None:
    expect = _expect()
    auth = tmp_path / "p" / ".polpo" / "whatsapp"
    auth.mkdir(parents=True)
    (auth / "fake_no_qr").touch()  # the worker cannot reach WhatsApp
    with serving(tmp_path / "p", config=CONFIG, worker="qr_run") as s:
        page.goto(s.link)
        whatsapp = page.locator('[data-channel="whatsapp"]')
        expect(whatsapp.locator(".summary")).to_have_text(
            re.compile(
                r"^Can't reach WhatsApp — check this machine's internet connection\. "
                r"Retrying in \d+ s$"
            ),
            timeout=15_000,
        )
        detail = whatsapp.locator("details")
        expect(detail.locator(".tech")).not_to_be_visible()  # behind the disclosure
        detail.locator("summary").click()
        expect(detail.locator(".tech")).to_contain_text("no route to web.whatsapp.com")
        assert "`" not in whatsapp.inner_text()  # commands are code, not backticks
        screenshot(page, "0-offline")


def test_the_api_docs_work_offline_under_the_csp(tmp_path: Path, page: Page) -> None:
    expect = _expect()
    with serving(tmp_path / "p", config=CONFIG) as s:
        page.goto(s.link)
        page.goto(s.url + "/api/v1/docs")
        expect(page.locator(".swagger-ui .title")).to_contain_text("Polpo")
        expect(page.get_by_text("/api/v1/tasks/{ref}/retry")).to_be_visible()
