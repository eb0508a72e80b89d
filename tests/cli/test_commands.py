"""The CLI as a user runs it: tables by default, --json for scripts."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli


def test_init_writes_a_valid_starter_and_refuses_to_overwrite(
    cli: Cli, tmp_path: Path, monkeypatch: object
) -> None:
    fresh = tmp_path / "my-app"
    fresh.mkdir()
    import os

    os.chdir(fresh)
    r = cli("init")
    assert r.code == 0, r.err
    assert "Created .polpo/polpo.json for project 'my-app'" in r.out
    assert (fresh / ".polpo" / ".gitignore").read_text().count("polpo.db") == 1
    check = cli("config", "check", "--json")
    assert check.code == 0
    data = check.json()
    assert data["project"] == "my-app"
    assert data["channels"][0]["gateway"]["enableInbound"] is False
    before = (fresh / ".polpo" / "polpo.json").read_text()
    again = cli("init", "--project", "other")
    assert again.code == 2
    assert again.err.startswith("Error: ") and "already exists" in again.err
    assert (fresh / ".polpo" / "polpo.json").read_text() == before


def test_init_with_a_project_name_and_explicit_path(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "cfg.json"
    r = cli("--config", str(target), "init", "--project", "Named")
    assert r.code == 0, r.err
    assert json.loads(_strip_comments(target.read_text()))["project"] == "Named"
    assert cli("--config", str(target), "config", "check").code == 0


def _strip_comments(text: str) -> str:
    from polpo.config import strip_json_comments

    return strip_json_comments(text)


def test_config_check_summary(cli: Cli) -> None:
    r = cli("config", "check")
    assert r.code == 0
    assert "is valid" in r.out
    assert "project   demo" in r.out
    assert "review on task:complete (coder)" in r.out


def test_task_lifecycle(cli: Cli) -> None:
    r = cli("task", "add", "Write the docs", "-d", "All of them", "--agent", "writer")
    assert r.code == 0, r.err
    assert r.out.startswith("Created task ") and "for writer: Write the docs" in r.out
    created = cli("task", "add", "Second", "--json").json()
    assert created["status"] == "pending" and created["createdBy"] == "cli"

    table = cli("task", "list")
    assert "Write the docs" in table.out and "Second" in table.out and "⏳ pending" in table.out
    listed = cli("task", "list", "--json").json()
    assert {t["title"] for t in listed} == {"Write the docs", "Second"}
    assert len(cli("task", "list", "--limit", "1", "--json").json()) == 1
    assert "…and 1 more" in cli("task", "list", "--limit", "1").out

    short = created["shortId"]
    shown = cli("task", "show", short)
    assert "Second" in shown.out and created["id"] in shown.out
    assert cli("task", "show", short, "--json").json()["id"] == created["id"]

    cancelled = cli("task", "cancel", short, "--reason", "duplicate", "--json").json()
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "duplicate"
    assert [t["title"] for t in cli("task", "list", "-s", "cancelled", "--json").json()] == [
        "Second"
    ]


def test_task_show_prints_the_feedback_history(cli: Cli) -> None:
    task = cli("task", "add", "Code it", "--json").json()
    _request_approval(task["id"], "review", "task:complete")
    approval = cli("approvals", "list", "--json").json()[0]
    r = cli("approvals", "reject", approval["shortId"], "Add tests please")
    assert r.code == 0, r.err
    assert f"Rejected {approval['shortId']}" in r.out
    assert f"Task {task['shortId']} is now pending (revision 1)." in r.out
    shown = cli("task", "show", task["shortId"])
    assert "Feedback" in shown.out and "Add tests please" in shown.out
    assert "revisions   1" in shown.out
    assert f"{approval['shortId']} review (task:complete): rejected" in shown.out
    data = cli("task", "show", task["shortId"], "--json").json()
    assert data["feedback"][0]["feedback"] == "Add tests please"
    assert data["approvals"][0]["status"] == "rejected"


def _request_approval(task_id: str, gate: str, hook: str) -> None:
    """Open a gate the way the runner will (there is no CLI command for it)."""
    import asyncio

    from polpo.app import Polpo
    from polpo.config import load_config

    async def go() -> None:
        app = await Polpo.open(load_config())
        try:
            await app.approvals.request(task_id, gate=gate, hook=hook, summary="please look")
        finally:
            await app.close()

    asyncio.run(go())


def test_approvals_list_and_approve(cli: Cli) -> None:
    assert "No pending approvals." in cli("approvals", "list").out
    task = cli("task", "add", "Plan it", "--agent", "writer", "--json").json()
    _request_approval(task["id"], "plan", "task:start")
    table = cli("approvals", "list")
    assert "plan (task:start)" in table.out and "Plan it" in table.out
    assert "Decide: polpo approvals approve" in table.out
    approval = cli("approvals", "list", "--json").json()[0]
    r = cli("approvals", "approve", approval["shortId"], "--by", "ops")
    assert r.code == 0 and f"Approved {approval['shortId']}" in r.out
    assert f"Task {task['shortId']} is now pending." in r.out
    shown = cli("approvals", "show", approval["shortId"], "--json").json()
    assert (shown["status"], shown["resolvedBy"]) == ("approved", "ops")
    assert cli("approvals", "list", "--json").json() == []
    assert len(cli("approvals", "list", "--status", "all", "--json").json()) == 1
    assert cli("task", "show", task["id"], "--json").json()["startApproved"] is True


def test_missions(cli: Cli) -> None:
    r = cli("mission", "add", "Launch", "--goal", "ship v1", "--task", "Design", "--task", "Build")
    assert r.code == 0, r.err
    assert "with 2 tasks" in r.out and "1. " in r.out and "Next: polpo mission start" in r.out
    m = cli("mission", "list", "--json").json()[0]
    assert (m["name"], m["status"], m["progress"]) == ("Launch", "draft", {"done": 0, "total": 2})
    shown = cli("mission", "show", m["shortId"])
    assert shown.out.index("Design") < shown.out.index("Build")
    assert "ship v1" in shown.out and "0/2 done" in shown.out
    data = cli("mission", "show", m["shortId"], "--json").json()
    assert [t["title"] for t in data["tasks"]] == ["Design", "Build"]
    assert cli("mission", "start", m["shortId"], "--json").json()["status"] == "active"
    mission_tasks = cli("task", "list", "--mission", m["shortId"], "--json").json()
    assert [t["title"] for t in mission_tasks] == ["Design", "Build"]
    assert "Launch" in cli("mission", "list").out
    assert cli("mission", "cancel", m["shortId"], "--json").json()["status"] == "cancelled"


def test_status_and_agents(cli: Cli) -> None:
    cli("task", "add", "One")
    status = cli("status")
    assert status.code == 0 and "demo" in status.out and "pending 1" in status.out
    data = cli("status", "--json").json()
    assert data["tasks"]["pending"] == 1 and data["pendingApprovals"] == 0
    agents = cli("agents")
    assert "coder" in agents.out and "writer" in agents.out and "idle" in agents.out
    assert [a["name"] for a in cli("agents", "--json").json()] == ["coder", "writer"]


def test_help_lists_every_command(cli: Cli) -> None:
    r = cli("--help")
    assert r.code == 0
    for name in ("init", "config", "status", "agents", "task", "mission", "approvals", "serve"):
        assert f"  {name} " in r.out
    assert cli("task").code == 0  # a group without a subcommand shows its help
