"""``polpo simulate`` and ``polpo chat`` as a user runs them: real subprocesses, one database."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from polpo.gateway import commands
from tests.database import fetch_all, project_store_url

from ..cli.conftest import Result, polpo_exe, run_polpo, subprocess_env
from .conftest import OWNER, STRANGER, gateway_config, write_project


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    write_project(root, gateway_config(dmPolicy="pairing"))
    return root


def simulate(root: Path, sender: str, text: str, *extra: str) -> Result:
    return run_polpo(
        root, "simulate", "whatsapp", "--from", sender, *extra, text, POLPO_MODEL="test:model"
    )


def test_pairing_code_is_throttled_across_invocations(root: Path) -> None:
    first = simulate(root, f"+{STRANGER}", "hello", "--name", "Mario")
    assert first.code == 0, first.err
    code = re.search(r"/pair ([A-Z0-9]{8})", first.out)
    assert code is not None and "Mario" in first.out
    again = simulate(root, STRANGER, "hello??")
    assert (again.code, again.out) == (0, "")
    assert "code already sent" in again.err
    as_json = json.loads(simulate(root, STRANGER, "and now?", "--json").out)
    assert as_json["status"] == "ignored" and as_json["replies"] == []


def test_the_owner_chat_session_persists_between_invocations(root: Path) -> None:
    one = simulate(root, OWNER, "hello there", "--json")
    assert one.code == 0, one.err
    assert json.loads(one.out)["status"] == "done"
    simulate(root, OWNER, "second message")
    # the session holds both turns: history persisted in the project's database
    url = project_store_url(root)
    rows = fetch_all(url, "select peer_id, history, ended_at from sessions")
    owners = fetch_all(url, "select distinct owner from inbox")
    [(peer, history, ended)] = rows
    assert peer == f"whatsapp:{OWNER}" and ended is None
    prompts = [
        p["content"]
        for m in (json.loads(history) if isinstance(history, str) else history)
        for p in m.get("parts", [])
        if p.get("part_kind") == "user-prompt"
    ]
    assert prompts == ["hello there", "second message"]
    assert all(str(o[0]).startswith("simulate:") for o in owners)


def test_mistakes_are_one_line_errors(root: Path) -> None:
    bad = simulate(root, "not-a-number", "hi")
    assert bad.code == 2 and bad.err.startswith("Error: --from") and "Traceback" not in bad.err
    r = run_polpo(root, "simulate", "sms", "--from", "1", "hi")
    assert r.code == 2 and "unknown channel" in r.err


@pytest.mark.skipif(
    "pair" not in commands.COMMANDS, reason="needs the ACCESS+COMMANDS /pair command"
)
def test_pairing_then_pair_by_an_admin_then_answered(root: Path) -> None:
    first = simulate(root, STRANGER, "hello")
    code = re.search(r"/pair ([A-Z0-9]{8})", first.out)
    assert code is not None
    refused = simulate(root, "4915199999999", f"/pair {code.group(1)}")
    assert code.group(1) not in refused.out or "admin" in refused.out.lower()
    approved = simulate(root, OWNER, f"/pair {code.group(1).lower()}")
    assert approved.code == 0 and STRANGER[-4:] in approved.out.replace(" ", "")
    answered = simulate(root, STRANGER, "/help")
    assert "/status" in answered.out
    # the simulated requester's "you're in" is the simulation's too: a polpo serve
    # started later must not send it to the real number
    grants = fetch_all(
        project_store_url(root),
        "select owner from outbox where ref = :ref",
        ref=f"pairing:{code.group(1)}",
    )
    assert len(grants) == 1 and str(grants[0][0]).startswith("simulate:")


def test_polpo_chat_reads_lines_and_answers_as_the_owner(root: Path) -> None:
    p = subprocess.run(
        [*polpo_exe(), "chat"],
        cwd=root,
        input="/help\nhi\n/quit\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(POLPO_MODEL="test:model"),
    )
    assert p.returncode == 0, p.stderr
    assert "/status" in p.stdout
    assert len(p.stdout.strip().splitlines()) >= 3
