"""User mistakes: one ``Error:`` line on stderr, a non-zero exit code, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, run_polpo
from tests.conftest import BASE_CONFIG, write_project
from tests.database import project_store_url


def assert_one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in err
    return lines[0]


def test_unknown_id(cli: Cli) -> None:
    r = cli("task", "show", "zzzz")
    assert r.code == 1
    assert assert_one_error_line(r.err) == "Error: no task matches 'zzzz'"
    assert r.out == ""


def test_too_short_id(cli: Cli) -> None:
    r = cli("approvals", "approve", "ab")
    assert r.code == 1
    assert "at least 4 characters" in assert_one_error_line(r.err)


def test_ambiguous_id(cli: Cli) -> None:
    import asyncio

    import sqlalchemy as sa

    from polpo.store import Store
    from polpo.store.tables import tasks

    async def seed() -> None:
        store = await Store.open(project_store_url(Path.cwd()))
        async with store.write() as conn:
            for full, short, title in (
                ("mmmm1111aaaaaaaa", "mmmm1", "first"),
                ("mmmm2222bbbbbbbb", "mmmm2", "second"),
            ):
                await conn.execute(
                    sa.insert(tasks).values(
                        id=full,
                        short_id=short,
                        title=title,
                        depends_on=[],
                        status="pending",
                        feedback=[],
                        created_by="test",
                        created_at=1.0,
                        updated_at=1.0,
                    )
                )
        await store.close()

    asyncio.run(seed())
    r = cli("task", "cancel", "mmmm")
    assert r.code == 1
    line = assert_one_error_line(r.err)
    assert "ambiguous" in line and "mmmm1 first" in line and "mmmm2 second" in line
    assert cli("task", "cancel", "mmmm2", "--json").json()["status"] == "cancelled"


def test_missing_config(cli: Cli, tmp_path: Path) -> None:
    import os

    empty = tmp_path / "empty"
    empty.mkdir()
    os.chdir(empty)
    r = cli("task", "list")
    assert r.code == 2
    assert "Run `polpo init` to create one" in assert_one_error_line(r.err)


def test_bad_config_names_the_path(cli: Cli, project: Path) -> None:
    bad = json.loads(json.dumps(BASE_CONFIG))
    bad["agents"][0]["maxConcurrency"] = "two"
    bad["settings"]["approvalGates"][0]["hook"] = "task:end"
    write_project(project, bad)
    r = cli("task", "list")
    assert r.code == 2
    line = assert_one_error_line(r.err)
    assert "agents[0].maxConcurrency: must be an integer" in line
    assert "and 1 more problem; run `polpo config check`" in line

    check = cli("config", "check")
    assert check.code == 2
    lines = check.err.strip().splitlines()
    assert lines[0].endswith("2 config problems:")
    assert any(line.strip().startswith("agents[0].maxConcurrency:") for line in lines)
    assert any(line.strip().startswith("settings.approvalGates[0].hook:") for line in lines)
    assert "Traceback" not in check.err
    as_json = cli("config", "check", "--json")
    assert as_json.code == 2
    assert {i["path"] for i in as_json.json()["issues"]} == {
        "agents[0].maxConcurrency",
        "settings.approvalGates[0].hook",
    }


def test_invalid_json_config(cli: Cli, project: Path) -> None:
    (project / ".polpo" / "polpo.json").write_text('{"project": "x",,}')
    r = cli("status")
    assert r.code == 2
    assert "invalid JSON at line 1" in assert_one_error_line(r.err)


def test_postgres_without_its_driver_names_the_extra(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if not installed
    monkeypatch.setenv("POLPO_DATABASE_URL", "postgresql://polpo:s3cret@127.0.0.1:1/polpo")
    r = cli("task", "list")
    assert r.code == 1
    line = assert_one_error_line(r.err)
    assert "asyncpg" in line and "pip install 'polpo[postgres]'" in line
    assert "s3cret" not in r.err


def test_a_bad_database_url_in_the_environment_names_the_variable(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLPO_DATABASE_URL", "mysql://db/polpo")
    r = cli("status")
    assert r.code == 2
    line = assert_one_error_line(r.err)
    assert "POLPO_DATABASE_URL: must be a sqlite:/// or postgresql:// URL" in line


def test_reject_without_reason(cli: Cli) -> None:
    r = cli("approvals", "reject", "k7m2")
    assert r.code == 2
    line = assert_one_error_line(r.err)
    assert "needs a reason" in line and 'polpo approvals reject k7m2 "reason"' in line


def test_illegal_transition(cli: Cli) -> None:
    task = cli("task", "add", "Once", "--json").json()
    assert cli("task", "cancel", task["shortId"]).code == 0
    r = cli("task", "cancel", task["shortId"])
    assert r.code == 1
    line = assert_one_error_line(r.err)
    assert f"task {task['shortId']} is cancelled; it cannot become cancelled" in line


def test_already_decided(cli: Cli) -> None:
    from tests.cli.test_commands import _request_approval

    task = cli("task", "add", "Gate", "--json").json()
    _request_approval(task["id"], "review", "task:complete")
    approval = cli("approvals", "list", "--json").json()[0]["shortId"]
    assert cli("approvals", "approve", approval, "--by", "alice").code == 0
    r = cli("approvals", "reject", approval, "too late")
    assert r.code == 1
    assert "already approved by alice" in assert_one_error_line(r.err)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["task", "lst"], "No such command 'lst'"),
        (["task", "list", "--limit", "zero"], "Invalid value for '--limit'"),
        (["task", "add"], "Missing argument 'TITLE' (see `polpo task add --help`)"),
        (["task", "list", "--status", "todo"], "unknown task status 'todo'"),
        (["--nope"], "No such option: --nope"),
    ],
)
def test_usage_errors(cli: Cli, args: list[str], words: str) -> None:
    r = cli(*args)
    assert r.code == 2
    assert words in assert_one_error_line(r.err)


def test_real_process_prints_no_traceback(project: Path, tmp_path: Path) -> None:
    """The console script itself, not just ``run()``: what a user's terminal shows."""
    r = run_polpo(project, "task", "show", "zzzz")
    assert (r.code, r.out) == (1, "")
    assert assert_one_error_line(r.err) == "Error: no task matches 'zzzz'"
    r = run_polpo(tmp_path, "status")
    assert r.code == 2
    assert "polpo init" in assert_one_error_line(r.err)
    r = run_polpo(project, "serve", "--host", "0.0.0.0")
    assert r.code == 2
    line = assert_one_error_line(r.err)
    assert "refusing to listen on 0.0.0.0 without an API key" in line
    assert "POLPO_API_KEY" in line
