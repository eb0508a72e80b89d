"""Task tools stay inside the project: escapes are refused, told to the model and recorded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from polpo.runner.tools import (
    MAX_OUTPUT,
    ToolRefused,
    Workspace,
    list_files,
    read_file,
    run_command,
    search_files,
    tools_for,
    write_file,
)
from polpo.store.tables import task_runs
from tests.runner.conftest import OpenProject, Script, make_runner


def _real(p: Path) -> str:
    return str(p.resolve())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text("TOP SECRET")
    return d


async def test_path_escapes_by_the_model_are_refused_and_recorded(
    open_project: OpenProject, root: Path, outside: Path
) -> None:
    app = await open_project()
    (root / "link").symlink_to(outside)  # a folder symlink pointing out of the project
    (root / "leak.txt").symlink_to(outside / "secret.txt")  # a file symlink pointing out
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("read_file", {"path": "../outside/secret.txt"}),
        ("read_file", {"path": str(outside / "secret.txt")}),
        ("read_file", {"path": "link/secret.txt"}),
        ("read_file", {"path": "leak.txt"}),
        ("write_file", {"path": "../outside/secret.txt", "content": "pwned"}),
        ("write_file", {"path": "link/new.txt", "content": "pwned"}),
        ("write_file", {"path": str(outside / "abs.txt"), "content": "pwned"}),
        ("list_files", {"path": ".."}),
        ("search_files", {"pattern": "SECRET", "path": "link"}),
        ("read_file", {"path": ".polpo/polpo.json"}),
        ("write_file", {"path": ".polpo/polpo.json", "content": "{}"}),
    ]
    script = Script([attempts, "I could not get out"])
    task = await app.tasks.add("Break out", agent="coder")

    await make_runner(app, script).drain()

    assert (outside / "secret.txt").read_text() == "TOP SECRET"
    assert not (outside / "new.txt").exists()
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert "project" in (root / ".polpo" / "polpo.json").read_text()
    # the model was told, each time, and can go on
    assert len(script.tool_results) == len(attempts)
    assert all(r.startswith("Error: ") for r in script.tool_results), script.tool_results
    assert "TOP SECRET" not in "".join(script.tool_results)
    # (parallel tool calls may answer in any order)
    assert sum("outside the project directory" in r for r in script.tool_results) == 9
    assert sum("through a symlink" in r for r in script.tool_results) == 4
    assert sum("inside .polpo/" in r for r in script.tool_results) == 2
    # the task itself finished: a refusal is not a crash
    assert (await app.tasks.get(task.id)).status == "done"
    async with app.store.read() as conn:
        transcript = (
            await conn.execute(
                sa.select(task_runs.c.transcript).where(task_runs.c.task_id == task.id)
            )
        ).scalar_one()
    tools = [e for e in transcript if e["type"] == "tool"]
    assert [e["status"] for e in tools] == ["refused"] * len(attempts)
    # in call order, with every argument the tool got
    assert [e["tool"] for e in tools] == [t for t, _ in attempts]
    assert [e["args"].get("path") for e in tools] == [a.get("path", ".") for _, a in attempts]
    assert "through a symlink" in tools[2]["output"]


async def test_run_command_is_only_offered_to_agents_that_list_it(
    open_project: OpenProject,
) -> None:
    app = await open_project()
    offered: dict[str, list[str]] = {}

    def capture(agent: str) -> Any:
        def step(messages: list[Any]) -> str:
            return "ok"

        return step

    from pydantic_ai.messages import ModelResponse, TextPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    def model_for(agent: Any, config: Any) -> FunctionModel:
        def fn(messages: list[Any], info: AgentInfo) -> ModelResponse:
            offered[agent.name] = sorted(t.name for t in info.function_tools)
            return ModelResponse(parts=[TextPart("ok")])

        return FunctionModel(fn)

    await app.tasks.add("A", agent="coder")
    await app.tasks.add("B", agent="ops")
    from polpo.runner import Runner

    await Runner(app, model_factory=model_for).drain()
    assert offered["coder"] == ["list_files", "read_file", "search_files", "write_file"]
    assert offered["ops"] == ["read_file", "run_command"]
    assert [t.name for t in tools_for(["run_command"])] == ["run_command"]


async def test_run_command_runs_in_the_project_with_a_timeout_and_no_secrets(
    open_project: OpenProject, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_API_KEY", "sk-should-not-leak")
    app = await open_project()
    script = Script(
        [
            [
                ("run_command", {"command": "pwd; echo made > made.txt; echo key=$MY_API_KEY"}),
            ],
            "done",
        ]
    )
    await app.tasks.add("Shell", agent="ops")
    await make_runner(app, script).drain()
    out = script.tool_results[0]
    assert out.startswith("exit code 0")
    assert _real(root) in out
    assert (root / "made.txt").exists()
    assert "sk-should-not-leak" not in out and "key=\n" in out + "\n"


async def test_run_command_is_killed_at_its_timeout(root: Path) -> None:
    ws = Workspace(root, command_timeout=0.3)
    out = await run_command(ws, "echo before; sleep 30; echo AFTER")
    assert out.startswith("killed after 0.3 s (timeout)")
    assert "before" in out and "AFTER" not in out


async def test_run_command_output_is_capped(root: Path) -> None:
    ws = Workspace(root, command_timeout=10)
    out = await run_command(ws, "yes polpo | head -c 200000; exit 3")
    assert out.startswith("exit code 3")
    assert len(out) < MAX_OUTPUT + 200 and "output cut" in out


def test_file_tools_inside_the_project(root: Path, outside: Path) -> None:
    ws = Workspace(root)
    assert write_file(ws, "a/b/c.txt", "one\ntwo needle\n") == "created a/b/c.txt (15 bytes)"
    assert write_file(ws, "a/b/c.txt", "needle again\n").startswith("updated")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("needle")
    (root / "img.bin").write_bytes(b"\x00\x01needle")
    (root / "outlink.txt").symlink_to(outside / "secret.txt")
    assert list_files(ws, ".") == "a/\nimg.bin\noutlink.txt"
    assert list_files(ws, ".", recursive=True) == "a/\na/b/\na/b/c.txt\nimg.bin\noutlink.txt"
    assert read_file(ws, "./a/../a/b/c.txt") == "needle again\n"
    assert search_files(ws, "needle") == "a/b/c.txt:1: needle again"
    assert search_files(ws, "SECRET") == "no matches"  # the symlink out is not followed
    assert search_files(ws, "needle", glob="*.md") == "no matches"
    assert search_files(ws, "[unclosed") == "no matches"  # not a regex: searched as text
    with pytest.raises(ToolRefused, match="binary"):
        read_file(ws, "img.bin")
    with pytest.raises(ToolRefused, match="does not exist"):
        read_file(ws, "nope.txt")
    with pytest.raises(ToolRefused, match="folder"):
        write_file(ws, "a", "x")
    with pytest.raises(ToolRefused, match="outside"):
        ws.resolve("a/../../x")
    with pytest.raises(ToolRefused, match="NUL"):
        ws.resolve("a\x00b")
    with pytest.raises(ToolRefused, match="give a path"):
        ws.resolve("  ")
    assert ws.resolve(str(root / "a")) == (root / "a").resolve()  # absolute inside is fine


def test_a_symlink_loop_is_refused(root: Path) -> None:
    (root / "loop").symlink_to(root / "loop")
    ws = Workspace(root)
    with pytest.raises(ToolRefused):
        read_file(ws, "loop")


def test_the_project_root_may_itself_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    ws = Workspace(tmp_path / "alias")
    write_file(ws, "x.txt", "ok")
    assert (real / "x.txt").read_text() == "ok"
    assert os.path.samefile(ws.resolve("x.txt"), real / "x.txt")
