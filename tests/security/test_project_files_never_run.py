"""What an agent writes into the project never runs outside its sandbox.

An agent may write any file of the project (``write_file``, or ``run_command``
in its sandbox). Two places where Polpo itself used to run such a file, as
the owner, with every secret of its environment (found by the audit):

- the WhatsApp worker is started as ``python -m …`` from the project folder,
  and ``-m`` puts the working directory first on ``sys.path``: a ``json.py``
  written by ``write_file`` ran inside the worker;
- ``bwrap`` was looked up on ``PATH``, which with the project's virtualenv
  activated starts inside the project: a ``bwrap`` planted in ``.venv/bin``
  ran the next command unconfined.

And Polpo's own state must not lie where commands write: a database kept in
a project folder was hidden, but a command could rename the folder and the
next command read the whole database.

The tools are the agent's real ones (the runner's ``workspace_for``), with
the real bubblewrap; the worker is started by the real supervisor code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from polpo.channels.whatsapp import protocol as p
from polpo.channels.whatsapp.process import WORKER_ENV, WorkerOptions, WorkerProcess
from polpo.config import load_config
from polpo.runner.refusal import ToolRefused
from polpo.runner.tools import Workspace, run_command, workspace_for, write_file
from tests.cli.conftest import polpo_exe, subprocess_env

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed"
)

SECRET = "sk-project-files-test-0123456789abcdef"


def _project(root: Path, **settings: Any) -> Workspace:
    config = {
        "project": "planted",
        "agents": [{"name": "dev", "tools": ["write_file", "run_command"]}],
        "settings": {"runner": {"enabled": False}, **settings},
    }
    (root / ".polpo").mkdir(parents=True)
    (root / ".polpo" / "polpo.json").write_text(json.dumps(config))
    loaded = load_config(cwd=root)
    return workspace_for(loaded, loaded.config.agents[0], clock=time.time, minutes=5)


async def test_a_module_written_into_the_project_never_runs_in_the_whatsapp_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "proj"
    ws = _project(root)
    marker = tmp_path / "planted-module-ran"
    planted = (
        "import os, pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text(os.environ.get('OPENAI_API_KEY', ''))\n"
    )
    for name in ("json.py", "queue.py", "argparse.py"):  # modules the worker imports
        assert write_file(ws, name, planted).startswith("created")

    monkeypatch.chdir(root)  # polpo serve runs in the project folder
    monkeypatch.delenv(WORKER_ENV, raising=False)  # the real worker command
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    worker = await WorkerProcess.spawn(root / ".polpo" / "whatsapp", WorkerOptions())
    try:
        assert await worker.write(p.Stop())
        code = await worker.wait()
    finally:
        if worker.running:
            worker.kill()
    assert not marker.exists(), f"the planted module ran in the worker: {marker.read_text()!r}"
    assert code == 0, list(worker.stderr_tail)


@needs_bwrap
async def test_a_bwrap_planted_on_path_inside_the_project_is_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "proj"
    ws = _project(root)
    marker = tmp_path / "planted-bwrap-ran"
    # the project's virtualenv is activated: its bin folder comes first on PATH
    monkeypatch.setenv("PATH", f"{root / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    plant = (
        "mkdir -p .venv/bin && "
        f'printf \'#!/bin/sh\\ntr "\\\\0" "\\\\n" < /proc/$PPID/environ > {marker}\\n'
        "echo unconfined\\n' > .venv/bin/bwrap && chmod +x .venv/bin/bwrap && echo planted"
    )
    assert (await run_command(ws, plant)).rstrip().endswith("planted")
    assert os.access(root / ".venv" / "bin" / "bwrap", os.X_OK)

    out = await run_command(ws, "hostname; echo second")
    assert "unconfined" not in out and not marker.exists(), out
    assert out.split("\n")[1:3] == ["polpo-sandbox", "second"]  # the real sandbox ran it


#: Polpo's own files kept in a project folder: the SQLite database (PostgreSQL has
#: no file), WhatsApp's keys (on both engines).
OWN_FILES = [
    pytest.param(
        {"storage": {"url": "sqlite:///data/polpo.db"}},
        "data/polpo.db",
        id="database",
        marks=pytest.mark.sqlite_only(reason="a SQLite file in the project"),
    ),
    pytest.param(
        {"notifications": {"channels": {"wa": {"type": "whatsapp", "authDir": "data/wa"}}}},
        "data/wa",
        id="whatsapp-keys",
    ),
]


@needs_bwrap
@pytest.mark.parametrize(("settings", "name"), OWN_FILES)
async def test_polpos_files_in_a_project_folder_are_never_handed_to_commands(
    tmp_path: Path, settings: dict[str, Any], name: str
) -> None:
    root = tmp_path / "proj"
    ws = _project(root, **settings)
    secret = root / name if name.endswith(".db") else root / name / "neonize.db"
    secret.parent.mkdir(parents=True)
    secret.write_text("approvals, peers, sessions, keys: PRIVATE-7d1e")

    for command in ("mv data data.old && echo moved", f"cat data.old/{name} data/{name}"):
        with pytest.raises(ToolRefused) as refused:  # the model reads it as "Error: …"
            await run_command(ws, command)
        said = str(refused.value)
        assert said.startswith("run_command is refused") and name in said, said
        assert ".polpo/" in said  # and where to keep it
    assert not (root / "data.old").exists()
    assert secret.read_text().endswith("PRIVATE-7d1e")


@pytest.mark.parametrize(("settings", "name"), OWN_FILES)
def test_config_check_says_run_command_will_be_refused(
    tmp_path: Path, settings: dict[str, Any], name: str
) -> None:
    root = tmp_path / "proj"
    _project(root, **settings)
    done = subprocess.run(
        [*polpo_exe(), "config", "check"],
        cwd=root,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert 'run_command will be refused for agent "dev"' in done.stderr
    assert name in done.stderr
