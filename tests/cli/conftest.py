"""Running the CLI in-process (``polpo.cli.main.run``) and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from polpo.cli.main import run


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]


@pytest.fixture
def cli(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("task", "list")`` runs in the project directory and returns code/out/err."""
    monkeypatch.chdir(project)
    monkeypatch.delenv("POLPO_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def polpo_exe() -> list[str]:
    exe = Path(sys.executable).parent / "polpo"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "polpo.cli.main"]


def subprocess_env(**extra: str) -> dict[str, str]:
    # POLPO_DATABASE_URL stays: on PostgreSQL it points at this test's schema
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("POLPO_") or k == "POLPO_DATABASE_URL"
    }
    env.update(COLUMNS="200", PYTHONUNBUFFERED="1", **extra)
    return env


def run_polpo(cwd: Path, *args: str, timeout: float = 60, **env: str) -> Result:
    p = subprocess.run(
        [*polpo_exe(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(**env),
        stdin=subprocess.DEVNULL,
    )
    return Result(p.returncode, p.stdout, p.stderr)
