"""Every ``--help`` reads in names people use (``TITLE``, ``ID``, ``N``), never Python types."""

from __future__ import annotations

import re

import pytest

from tests.cli.conftest import Cli


def _command_paths() -> list[list[str]]:
    from typer.main import get_command

    from polpo.cli.main import app

    paths: list[list[str]] = [[]]

    def walk(cmd: object, path: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(get_command(app), [])
    return paths


PATHS = _command_paths()

#: What a leaked type looks like: typer's ``<str>``, ``<list[str]>``, ``<int range>``,
#: ``{title}``; click's ``TEXT``-style names are only allowed where we chose them.
LEAKS = re.compile(
    r"<\w[^>]*>|\blist\[|\{\w+\}|\b(str|int|float|bool)\b|\b(INTEGER|FLOAT|BOOLEAN|RANGE)\b"
    r"|\bint range\b"
)


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "polpo" for p in PATHS])
def test_help_shows_no_python_type(cli: Cli, path: list[str]) -> None:
    r = cli(*path, "--help")
    assert r.code == 0, r.err
    assert r.out.startswith("Usage: polpo")
    assert LEAKS.findall(r.out) == [], r.out


def test_the_usual_names(cli: Cli) -> None:
    add = cli("task", "add", "--help").out
    assert "Usage: polpo task add [OPTIONS] TITLE\n" in add
    assert "--depends-on ID " in add and "-d, --description TEXT" in add
    assert "-n, --limit N " in cli("task", "list", "--help").out
    assert (
        "Usage: polpo approvals reject [OPTIONS] ID [REASON]\n"
        in cli("approvals", "reject", "--help").out
    )
    assert "Usage: polpo simulate [OPTIONS] CHANNEL [TEXT]\n" in cli("simulate", "--help").out
