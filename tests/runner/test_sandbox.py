"""``run_command``'s sandbox: what it lets through, what it says when it cannot run.

The attacks themselves are in ``tests/security/test_agent_sandbox.py``; here
are the configuration switches (``network``, ``sandbox: "none"``), the
refusal and the warnings without bubblewrap, and the sandbox's own shape
(its processes, its timeout).
"""

from __future__ import annotations

import http.server
import json
import logging
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest

from polpo.runner.sandbox import SandboxPolicy, bwrap_argv
from polpo.runner.tools import Workspace, run_command
from tests.cli.conftest import run_polpo
from tests.runner.conftest import OpenProject, Script, make_runner

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap (bwrap) is not installed: run_command's sandbox cannot be exercised",
)


def _agent(**extra: Any) -> list[dict[str, Any]]:
    return [{"name": "ops", "tools": ["run_command"], "commandTimeoutSeconds": 20, **extra}]


@pytest.fixture
def no_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH on which there is no ``bwrap`` (a machine without bubblewrap)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


class _Hits(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Hits.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"REACHED")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hits)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _fetch(port: int) -> str:
    return (
        f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && "
        f'printf "GET /hi HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3\'; echo tried'
    )


async def test_without_bwrap_run_command_is_refused_naming_the_package(
    open_project: OpenProject, no_bwrap: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = await open_project(agents=_agent())
    script = Script([[("run_command", {"command": "echo hello"})], "could not"])
    task = await app.tasks.add("Shell", agent="ops")

    with caplog.at_level(logging.WARNING):
        await make_runner(app, script).drain()

    (answer,) = script.tool_results
    assert answer.startswith("Error: run_command needs bubblewrap") and "\n" not in answer
    assert "install the bubblewrap package" in answer
    assert "hello" not in answer
    assert (await app.tasks.get(task.id)).status == "done"  # the model was told; the run went on
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any('run_command will be refused for agent "ops"' in w for w in warned), warned


def test_config_check_warns_when_no_sandbox_is_available(tmp_path: Path, no_bwrap: Path) -> None:
    root = tmp_path / "proj"
    (root / ".polpo").mkdir(parents=True)
    (root / ".polpo" / "polpo.json").write_text(
        json.dumps(
            {"project": "p", "agents": [*_agent(), _agent(sandbox="none")[0] | {"name": "raw"}]}
        )
    )
    r = run_polpo(root, "config", "check", PATH=str(no_bwrap))
    assert r.code == 0, r.err
    assert "is valid" in r.out
    lines = r.err.splitlines()
    assert any(
        line.startswith('Warning: run_command will be refused for agent "ops"')
        and "bubblewrap" in line
        for line in lines
    ), r.err
    assert any(
        line.startswith('Warning: agent "raw" runs run_command WITHOUT a sandbox') for line in lines
    ), r.err
    as_json = run_polpo(root, "config", "check", "--json", PATH=str(no_bwrap)).json()
    assert len(as_json["warnings"]) == 2


@needs_bwrap
async def test_an_unconfined_agent_is_logged_loudly_at_every_start(
    open_project: OpenProject, root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "beside.txt").write_text("next to the project")
    app = await open_project(agents=_agent(sandbox="none"))
    script = Script([[("run_command", {"command": "cat ../beside.txt"})], "done"])
    await app.tasks.add("Shell", agent="ops")
    with caplog.at_level(logging.WARNING):
        await make_runner(app, script).drain()
        await make_runner(app, Script(["nothing"])).drain()
    loud = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING
        and 'agent "ops" runs run_command WITHOUT a sandbox' in r.getMessage()
    ]
    assert len(loud) == 2  # once per start
    assert "next to the project" in script.tool_results[0]  # unconfined, as asked


@needs_bwrap
async def test_network_only_when_the_agent_allows_it(open_project: OpenProject, web: int) -> None:
    app = await open_project(agents=[_agent()[0], _agent(network=True)[0] | {"name": "web"}])
    closed = Script([[("run_command", {"command": _fetch(web)})], "done"])
    opened = Script([[("run_command", {"command": _fetch(web)})], "done"])
    await app.tasks.add("Fetch", agent="ops")
    await make_runner(app, closed).drain()
    assert "REACHED" not in closed.tool_results[0] and _Hits.hits == []
    await app.tasks.add("Fetch", agent="web")
    await make_runner(app, opened).drain()
    assert "REACHED" in opened.tool_results[0] and _Hits.hits == ["/hi"]


@needs_bwrap
async def test_the_sandbox_sees_only_its_own_processes_and_host_name(root: Path) -> None:
    ws = Workspace(root, command_timeout=20)
    out = await run_command(ws, "ls /proc | grep -c '^[0-9]'; hostname; id -u")
    code, count, host, uid = out.splitlines()
    assert code == "exit code 0"
    assert int(count) <= 4, out  # bwrap's init, sh, ls, grep
    assert host == "polpo-sandbox"
    assert uid != "0"


@needs_bwrap
async def test_the_whole_sandbox_is_killed_at_the_timeout(root: Path) -> None:
    ws = Workspace(root, command_timeout=0.5)
    out = await run_command(ws, "sleep 971.5 & setsid sleep 972.5 & echo before; sleep 973.5")
    assert out.startswith("killed after 0.5 s (timeout)") and "before" in out
    left = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if any(a in ("971.5", "972.5", "973.5") for a in (p.info["cmdline"] or []))
    ]
    assert left == []


@needs_bwrap
async def test_the_project_is_writable_and_polpos_own_files_are_not_there(root: Path) -> None:
    (root / ".polpo").mkdir()
    (root / ".polpo" / "polpo.json").write_text("{}")
    (root / "polpo-local.db").write_text("the database, kept in the project")
    ws = Workspace(
        root,
        sandbox=SandboxPolicy(hidden=(root / ".polpo", root / "polpo-local.db")),
        protected=(root / "polpo-local.db",),
    )
    out = await run_command(ws, "echo made > made.txt; ls -A .polpo; cat polpo-local.db; echo end")
    assert out.startswith("exit code 0") and out.rstrip().endswith("end")
    assert "database" not in out and "polpo.json" not in out
    assert (root / "made.txt").read_text() == "made\n"


def test_the_bwrap_command_line(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / ".polpo").mkdir(parents=True)
    argv = bwrap_argv("/usr/bin/bwrap", SandboxPolicy(hidden=(root / ".polpo",)), root, "make test")
    for flag in (
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-net",
    ):
        assert flag in argv
    for flag in ("--die-with-parent", "--new-session", "--clearenv"):
        assert flag in argv
    assert argv[-4:] == ["--", "/bin/sh", "-c", "make test"]
    assert argv[argv.index("--bind") + 1 : argv.index("--bind") + 3] == [str(root), str(root)]
    after_project = argv[argv.index("--bind") :]
    assert ["--tmpfs", str(root / ".polpo"), "--remount-ro", str(root / ".polpo")] == after_project[
        3:7
    ]
    env = [argv[i + 1] for i, a in enumerate(argv) if a == "--setenv"]
    assert env == ["PATH", "HOME", "LANG"]
    networked = bwrap_argv("/usr/bin/bwrap", SandboxPolicy(network=True), root, "true")
    assert "--unshare-net" not in networked


@needs_bwrap
async def test_sandbox_read_only_shows_a_hidden_toolchain_read_only(
    open_project: OpenProject, tmp_path: Path
) -> None:
    tool = tmp_path / "toolchain" / "bin" / "mytool"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    command = f"{tool}; echo x > {tool.parent}/new 2>&1 || echo not writable"
    app = await open_project(
        agents=[
            _agent()[0],
            _agent(sandboxReadOnly=[str(tmp_path / "toolchain")])[0] | {"name": "dev"},
        ]
    )
    hidden = Script([[("run_command", {"command": command})], "done"])
    shown = Script([[("run_command", {"command": command})], "done"])
    await app.tasks.add("Use the tool", agent="ops")
    await make_runner(app, hidden).drain()
    await app.tasks.add("Use the tool", agent="dev")
    await make_runner(app, shown).drain()
    assert "tool ran" not in hidden.tool_results[0]  # under /tmp: hidden by default
    assert "tool ran" in shown.tool_results[0] and "not writable" in shown.tool_results[0]
    assert not (tool.parent / "new").exists()
