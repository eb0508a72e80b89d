"""``agents[].sandboxReadOnly`` shows a toolchain; it must never undo the sandbox.

The setting binds listed folders read-only into ``run_command``'s sandbox (a
toolchain in the home directory: ``~/.local``, ``~/.pyenv``). Found by the
audit, each of these undid part of the sandbox:

- Polpo's own files under a listed folder were shown: WhatsApp's keys in
  ``~/.local/share/…`` with ``["~/.local"]`` (where ``pip --user`` puts
  tools) were readable by every command — the sandbox skipped hiding them
  because the home directory is an empty tmpfs anyway;
- files other users may not read inside a listed folder were shown again
  (the bind went over the masks);
- a listed folder inside the project is the agent's to swap for a symlink:
  the next command's sandbox showed whatever it pointed to (``/``: the
  machine's ``/proc``, every process's command line; or ``~/.ssh``);
- ``["/"]``, ``["~"]``, ``["/tmp"]``, ``["/proc"]`` … showed what the sandbox
  exists to hide. They are now refused at load, naming the JSON path.

The tools are the agent's real ones (the runner's ``workspace_for``) over the
real bubblewrap.
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

from polpo.config import load_config
from polpo.runner.sandbox import Mask, SandboxPolicy, bwrap_argv, bwrap_env, find_bwrap
from polpo.runner.tools import Workspace, run_command, workspace_for
from tests.cli.conftest import polpo_exe, subprocess_env

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed"
)

KEYS = "whatsapp identity keys: PRIVATE-3f9a"


def _write_config(root: Path, agent: dict[str, Any], **settings: Any) -> None:
    config = {
        "project": "shown",
        "agents": [{"name": "dev", "tools": ["run_command"], **agent}],
        "settings": {"runner": {"enabled": False}, **settings},
    }
    (root / ".polpo").mkdir(parents=True, exist_ok=True)
    (root / ".polpo" / "polpo.json").write_text(json.dumps(config))


def _workspace(root: Path, agent: dict[str, Any], **settings: Any) -> Workspace:
    _write_config(root, agent, **settings)
    loaded = load_config(cwd=root)
    return workspace_for(loaded, loaded.config.agents[0], clock=time.time, minutes=5)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The owner's home directory, with a tool in ``~/.local/bin``."""
    home = tmp_path / "home"
    tool = home / ".local" / "bin" / "mytool"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho the tool ran\n")
    tool.chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    return home


@needs_bwrap
async def test_polpos_own_files_under_a_shown_folder_stay_hidden(
    tmp_path: Path, home: Path
) -> None:
    keys = home / ".local" / "share" / "polpo" / "whatsapp" / "neonize.db"
    keys.parent.mkdir(parents=True)
    keys.write_text(KEYS)
    whatsapp = {"type": "whatsapp", "authDir": "~/.local/share/polpo/whatsapp"}
    ws = _workspace(
        tmp_path / "proj",
        {"sandboxReadOnly": ["~/.local"]},
        notifications={"channels": {"wa": whatsapp}},
    )

    out = await run_command(
        ws, f"{home}/.local/bin/mytool; cat {keys}; echo listed:; ls -A {keys.parent}"
    )
    assert "the tool ran" in out  # the folder is shown…
    assert "PRIVATE-3f9a" not in out, out  # …but not Polpo's keys
    assert out.rstrip().endswith("listed:"), out


@needs_bwrap
def test_what_other_users_may_not_read_stays_hidden_inside_a_shown_folder(
    tmp_path: Path,
) -> None:
    # the sandbox hides unreadable files of /etc, /var, /opt (an /opt/tool/secret.key,
    # root-only); a test cannot plant one there, so the mask list is given here
    shown = tmp_path / "opt-tool"
    (shown / "bin").mkdir(parents=True)
    (shown / "bin" / "run").write_text("public\n")
    (shown / "secret.key").write_text("ROOT-ONLY-KEY\n")
    (shown / "private").mkdir()
    (shown / "private" / "x").write_text("ROOT-ONLY-DIR\n")
    root = tmp_path / "proj"
    root.mkdir()
    bwrap = find_bwrap()
    assert bwrap is not None
    argv = bwrap_argv(
        bwrap,
        SandboxPolicy(read_only=(shown,)),
        root,
        f"cat {shown}/bin/run {shown}/secret.key {shown}/private/x",
        masks=[Mask(str(shown / "secret.key"), False), Mask(str(shown / "private"), True)],
    )
    done = subprocess.run(argv, env=bwrap_env(), capture_output=True, text=True, timeout=30)
    assert "public" in done.stdout
    assert "ROOT-ONLY" not in done.stdout, done.stdout


@needs_bwrap
async def test_a_shown_folder_in_the_project_cannot_be_swapped_for_a_symlink(
    tmp_path: Path, home: Path
) -> None:
    ssh = home / ".ssh"
    ssh.mkdir()
    (ssh / "id_ed25519").write_text("OWNER-SSH-KEY\n")
    root = tmp_path / "proj"
    (root / "tools").mkdir(parents=True)
    ws = _workspace(root, {"sandboxReadOnly": [str(root / "tools")]})

    assert "swapped" in await run_command(ws, f"rm -r tools && ln -s {ssh} tools && echo swapped")
    out = await run_command(ws, f"cat {ssh}/id_ed25519")
    assert "OWNER-SSH-KEY" not in out, out

    assert "swapped" in await run_command(ws, "rm tools && ln -s / tools && echo swapped")
    out = await run_command(ws, f"tr '\\0' ' ' < /proc/{os.getpid()}/cmdline; echo; ls /proc")
    assert "pytest" not in out, out  # the machine's /proc stays out of sight
    assert len([p for p in out.split() if p.isdigit()]) < 10, out


@pytest.mark.parametrize(
    "entry",
    ["/", "~", "/home", "/tmp", "/run", "/proc", "/proc/1", "/dev", "/etc", "/var", "~/.polpo"],
)
def test_a_folder_that_would_undo_the_sandbox_is_refused_at_load(
    tmp_path: Path, home: Path, entry: str
) -> None:
    root = tmp_path / "proj"
    _write_config(root, {"sandboxReadOnly": ["~/.local", entry]})
    done = subprocess.run(
        [*polpo_exe(), "config", "check"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**subprocess_env(), "HOME": str(home)},
        timeout=60,
    )
    assert done.returncode == 2, done.stdout
    assert "Traceback" not in done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if "sandboxReadOnly" in ln]
    assert line.strip().startswith("agents[0].sandboxReadOnly[1]:"), done.stderr
    assert f'"{entry}"' in line
