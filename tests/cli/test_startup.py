"""``polpo --help`` stays fast: the CLI package imports nothing heavy at module level."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from polpo.app import Polpo
from tests.cli.conftest import Cli, subprocess_env

HEAVY = (
    "sqlalchemy",
    "fastapi",
    "uvicorn",
    "rich",
    "pydantic",
    "pydantic_ai",
    "neonize",
    "telegram",
)


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys, polpo.cli.main as m\n"
        "m.run(['--help'])\n"
        f"print('LOADED:' + ','.join(x for x in {HEAVY!r} if x in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "Usage: polpo" in out
    assert out.strip().splitlines()[-1] == "LOADED:"


def test_ctrl_c_exits_130_quietly(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    async def interrupted(*args: object, **kwargs: object) -> Polpo:
        raise KeyboardInterrupt

    monkeypatch.setattr(Polpo, "open", interrupted)
    r = cli("task", "list")
    assert r.code == 130
    assert r.err == "" and r.out == ""


@pytest.mark.sqlite_only(reason="what a command on the SQLite default imports")
def test_a_command_reading_the_store_imports_neither_the_async_engine_nor_the_orm(
    project: Path,
) -> None:
    """``polpo task list`` on SQLite runs on the ``sqlite3`` connection: importing
    SQLAlchemy's asyncio extension, the ORM or the PostgreSQL dialect would cost a
    fresh process a good part of a second (bench/cli_startup.py)."""
    code = (
        "import sys, polpo.cli.main as m\n"
        "code = m.run(['task', 'list', '--json'])\n"
        "print('CODE:%s' % code)\n"
        "print('LOADED:' + ','.join(sorted(x for x in sys.modules if x.startswith(("
        "'sqlalchemy.ext.asyncio', 'sqlalchemy.orm', 'sqlalchemy.dialects.postgresql',"
        " 'asyncpg')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=project,
        env=subprocess_env(),
    ).stdout
    lines = out.strip().splitlines()
    assert lines[-2:] == ["CODE:0", "LOADED:"], out[-2000:]
