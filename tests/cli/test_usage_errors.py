"""A usage mistake exits 2 on every command, with one ``Error:`` line, whether the
parser catches it (an unknown option) or the command does (an unknown status)."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli

MISTAKES: list[tuple[list[str], str]] = [
    (["task", "list", "-s", "bogus"], "unknown task status 'bogus'"),
    (["task", "list", "--status", "pending,bogus"], "unknown task status 'bogus'"),
    (["task", "list", "-n", "0"], "--limit"),
    (["task", "list", "-n", "many"], "--limit"),
    (["task", "add"], "Missing argument"),
    (["task", "add", "  "], "a task needs a title"),
    (["task", "add", "Write docs", "-a", "nobody"], "unknown agent 'nobody'"),
    (["task", "show"], "Missing argument"),
    (["task", "lst"], "No such command 'lst'"),
    (["mission", "list", "-s", "bogus"], "unknown mission status 'bogus'"),
    (["mission", "add", "  "], "a mission needs a name"),
    (["mission", "add", "Ship", "-t", "one", "-a", "nobody"], "unknown agent 'nobody'"),
    (["approvals", "list", "-s", "bogus"], "unknown approval status 'bogus'"),
    (["approvals", "reject", "abcd"], "needs a reason"),
    (["peers", "allow", "bob"], "not a peer id"),
    (["peers", "list", "--channel", "bogus"], "--channel must be one of"),
    (["pair", "approve"], "Missing argument"),
    (["simulate", "bogus", "hi", "--from", "1"], 'unknown channel "bogus"'),
    (["serve", "--log-level", "loud"], "--log-level"),
    (["whatsapp", "login", "--phone", "abc"], "not a phone number"),
    (["whatsapp", "status", "--bogus"], "No such option: --bogus"),
    (["telegram", "status", "--bogus"], "No such option: --bogus"),
    (["run", "--bogus"], "No such option: --bogus"),
    (["--nope"], "No such option: --nope"),
]


@pytest.mark.parametrize(("args", "words"), MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_usage_mistakes_exit_2_with_one_line(cli: Cli, args: list[str], words: str) -> None:
    r = cli(*args)
    lines = r.err.strip().splitlines()
    assert r.code == 2, r.err
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.err
    assert words in lines[0]
    assert "Traceback" not in r.err
