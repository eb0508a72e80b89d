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
        {"name": "nokey", "role": "Engineer", "model": "openai:gpt-4.1-mini"},
        # an OpenAI-compatible server on this machine that is not running: the run fails
        {"name": "offline", "role": "Engineer", "model": "local:m"},
    ],
    "settings": {
        "approvalGates": [{"name": "plan", "hook": "task:start", "agents": ["writer"]}],
        "providers": {"local": {"baseUrl": "http://127.0.0.1:9/v1"}},
    },
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("POLPO_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
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
    short = cli("task", "add", "Impossible", "-a", "offline", "--json").json()["shortId"]
    r = cli("run")
    assert r.code == 1
    assert "model error" in r.out
    assert f"polpo task retry {short}" in r.out
    assert "Traceback" not in r.out + r.err


def test_without_an_api_key_tasks_stay_pending_with_one_clear_line(cli: Cli) -> None:
    first = cli("task", "add", "One", "-a", "nokey", "--json").json()["shortId"]
    cli("task", "add", "Two", "-a", "nokey")
    cli("task", "add", "Three", "-a", "nomodel")
    r = cli("run")
    assert r.code == 1
    assert r.out.startswith("Ran 0 tasks.")
    lines = [line for line in r.out.splitlines() if "stay pending" in line]
    assert lines[0] == (
        "⏸ nokey's tasks stay pending: no API key for openai:gpt-4.1-mini: set OPENAI_API_KEY"
    )
    assert len(lines) == 2 and "No model is configured for agent" in lines[1]
    assert "Traceback" not in r.out + r.err
    task = cli("task", "show", first, "--json").json()
    assert (task["status"], task["attempts"]) == ("pending", 0)
    report = cli("run", "--json").json()
    assert report["modelProblems"]["nokey"].startswith("no API key for openai:gpt-4.1-mini")


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


def test_mission_run_wait_again_after_an_approval(cli: Cli) -> None:
    m = cli("mission", "add", "Docs", "-t", "Write", "-a", "writer", "--json").json()
    first = cli("mission", "run", m["shortId"], "--wait")
    assert first.code == 0 and "wait for an approval" in first.out
    (approval,) = cli("approvals", "list", "--json").json()
    cli("approvals", "approve", approval["shortId"])
    again = cli("mission", "run", m["shortId"], "--wait")
    assert again.code == 0, again.err
    assert "is completed (1/1 done)" in again.out
