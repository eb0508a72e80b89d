"""``polpo run`` and ``polpo mission run``: drain the queue in the foreground."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.conftest import write_project

CONFIG = {
    "project": "demo",
    "agents": [
        {"name": "coder", "role": "Engineer", "model": "test:model"},
        {"name": "writer", "role": "Docs", "model": "test:model"},
        {"name": "nomodel", "role": "Nobody"},
    ],
    "settings": {
        "approvalGates": [{"name": "plan", "hook": "task:start", "agents": ["writer"]}],
    },
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("POLPO_MODEL", raising=False)
    root = tmp_path / "proj"
    write_project(root, CONFIG)
    return root


def test_run_does_the_ready_work_and_lists_what_waits(cli: Cli) -> None:
    cli("task", "add", "Fix the bug", "-a", "coder")
    cli("task", "add", "Write the docs", "-a", "writer")

    r = cli("run")

    assert r.code == 0, r.err
    assert "Ran 1 task: 1 done, 0 failed." in r.out
    assert "Write the docs awaits approval — approve: polpo approvals approve" in r.out
    tasks = {t["title"]: t for t in cli("task", "list", "--json").json()}
    assert tasks["Fix the bug"]["status"] == "done"
    assert tasks["Write the docs"]["status"] == "awaiting_approval"

    (approval,) = cli("approvals", "list", "--json").json()
    cli("approvals", "approve", approval["shortId"])
    again = cli("run", "--json")
    report = again.json()
    assert [t["title"] for t in report["finished"]] == ["Write the docs"]
    assert report["awaitingApproval"] == [] and report["pending"] == 0


def test_run_with_nothing_to_do(cli: Cli) -> None:
    r = cli("run")
    assert r.code == 0 and r.out.startswith("Ran 0 tasks.")


def test_a_failed_task_makes_run_exit_1_and_says_how_to_retry(cli: Cli) -> None:
    short = cli("task", "add", "Impossible", "-a", "nomodel", "--json").json()["shortId"]
    r = cli("run")
    assert r.code == 1
    assert "No model is configured" in r.out
    assert f"polpo task retry {short}" in r.out
    assert "Traceback" not in r.out + r.err


def test_mission_run_activates_and_with_wait_runs_it(cli: Cli) -> None:
    m = cli(
        "mission", "add", "Release", "-t", "Build", "-t", "Ship", "-a", "coder", "--json"
    ).json()
    assert m["status"] == "draft"
    r = cli("mission", "run", m["shortId"], "--wait")
    assert r.code == 0, r.err
    assert f"Mission {m['shortId']} is completed (2/2 done)" in r.out


def test_mission_run_without_wait_only_activates(cli: Cli) -> None:
    m = cli("mission", "add", "Release", "-t", "Build", "-a", "coder", "--json").json()
    r = cli("mission", "run", m["shortId"])
    assert r.code == 0
    assert "is active" in r.out and "polpo run" in r.out
    assert cli("task", "list", "--json").json()[0]["status"] == "pending"


def test_task_runs_shows_each_attempt(cli: Cli) -> None:
    short = cli("task", "add", "Fix the bug", "-a", "coder", "--json").json()["shortId"]
    assert "Not run yet." in cli("task", "runs", short).out
    cli("run")
    r = cli("task", "runs", short)
    assert r.code == 0
    assert "Attempt 1: done" in r.out and "model requests" in r.out and "Result:" in r.out
    (run,) = cli("task", "runs", short, "--json").json()
    assert run["status"] == "done" and run["seconds"] >= 0
    assert cli("task", "runs", "zzzz").code == 1
