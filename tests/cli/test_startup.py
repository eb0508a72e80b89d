"""``polpo --help`` stays fast: the CLI package imports nothing heavy at module level."""

from __future__ import annotations

import subprocess
import sys

import pytest

from polpo.app import Polpo
from tests.cli.conftest import Cli

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
