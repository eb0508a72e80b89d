"""The dashboard link ``polpo serve`` prints is never written where others read it.

The link signs a browser in, and it stays valid until used. Found by the
audit: with serve's output written into the project (``nohup polpo serve &``
writes ``nohup.out`` there), an agent whose commands have network access read
the link, signed in and could approve its own work or let anyone in; a log
file other users may read gives it to them. In both cases serve now prints
how to get a link (``polpo dashboard``) instead of one.

A real ``polpo serve`` writes its output into the project; the agent's
command runs with the runner's real tools in the real bubblewrap sandbox.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from polpo.config import load_config
from polpo.runner.tools import run_command, workspace_for
from tests.cli.conftest import polpo_exe, subprocess_env

LINK = re.compile(r"https?://\S+/\?token=\S+")

# what the agent runs: find the link in serve's output, sign in, read the tasks
SIGN_IN = """
import http.cookiejar, re, sys, urllib.request
text = open("nohup.out").read()
found = re.findall(r"(http://[^ ]+)/[?]token=([^ ]+)", text)
if not found:
    sys.exit("no link in nohup.out")
base, token = found[-1]
jar = http.cookiejar.CookieJar()
web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
web.open(f"{base}/?token={token}")
try:
    print("API answered", web.open(f"{base}/api/v1/tasks").status)
except urllib.error.HTTPError as e:
    print("API answered", e.code)
"""


def _serve(root: Path, out: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*polpo_exe(), "serve", "--port", "0"],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_env(),
    )


def _wait_listening(log: Path) -> None:
    deadline = time.monotonic() + 60
    while "HTTP API listening" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    time.sleep(0.3)  # the dashboard line comes right after


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "proj"
    (root / ".polpo").mkdir(parents=True)
    config = {
        "project": "printed",
        "agents": [{"name": "dev", "tools": ["run_command"], "network": True}],
        "settings": {"runner": {"enabled": False}},
    }
    (root / ".polpo" / "polpo.json").write_text(json.dumps(config))
    yield root


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
async def test_an_agent_cannot_sign_in_with_the_link_serve_wrote_into_the_project(
    project: Path,
) -> None:
    log = project / "nohup.out"
    with log.open("w") as out:
        serve = _serve(project, out)
    try:
        _wait_listening(log)
        loaded = load_config(cwd=project)
        ws = workspace_for(loaded, loaded.config.agents[0], clock=time.time, minutes=5)
        tried = await run_command(ws, f"python3 - <<'EOF'\n{SIGN_IN}\nEOF")
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    printed = log.read_text()
    assert "API answered 200" not in tried, tried
    assert not LINK.search(printed), printed
    said = next(ln for ln in printed.splitlines() if "Dashboard" in ln)
    assert "polpo dashboard" in said and str(log) in said  # how to get one, and why


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder other users can reach (pytest's own temporary folder is private)."""
    folder = Path(tempfile.mkdtemp(prefix="polpo-log-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_no_link_in_a_log_file_other_users_may_read(shared_folder: Path, project: Path) -> None:
    log = shared_folder / "polpo.log"
    with log.open("w") as out:
        os.chmod(log, 0o644)
        serve = _serve(project, out)
    try:
        _wait_listening(log)
        link = subprocess.run(
            [*polpo_exe(), "dashboard"],
            cwd=project,
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=60,
        )
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    assert not LINK.search(log.read_text()), log.read_text()
    assert LINK.search(link.stdout), link.stdout + link.stderr  # the way to get one still works


def test_a_private_log_file_still_gets_the_link(shared_folder: Path, project: Path) -> None:
    log = shared_folder / "polpo.log"
    with log.open("w") as out:
        os.chmod(log, 0o600)
        serve = _serve(project, out)
    try:
        _wait_listening(log)
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    assert LINK.search(log.read_text()), log.read_text()
