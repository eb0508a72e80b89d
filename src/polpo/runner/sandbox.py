"""``run_command``'s sandbox: bubblewrap (``bwrap``), as Flatpak uses it.

An agent's shell command must not be a way around the human: it must not
read Polpo's config or database, the owner's secrets (environment, home,
other processes), reach the network unless its agent is allowed to, write
outside the project, or leave a job behind that acts after the call (say,
approving its own work). Each command therefore runs in a fresh bubblewrap
sandbox:

- its own user, PID, IPC, UTS (and cgroup) namespaces, and network
  namespace unless the agent says ``"network": true``; under root the
  command runs as an unprivileged user (uid 1000) of its user namespace;
- the file system read-only (``--ro-bind / /``), with fresh empty tmpfs over
  ``/tmp``, ``/var/tmp``, ``/run`` (the sockets of the machine's daemons),
  ``/home``, ``/root``, ``/mnt``, ``/media``, ``/srv`` and the user's home
  directory; a fresh ``/dev`` and a fresh ``/proc`` (only the sandbox's own
  processes); every file or folder of ``/etc``, ``/var``, ``/opt`` and
  ``/usr/local`` that other users may not read is hidden too (so
  ``/etc/shadow`` stays unreadable even when Polpo runs as root);
- the project directory bound read-write, then Polpo's own files hidden in
  it: ``.polpo/`` becomes an empty read-only tmpfs, and so do the config's
  folder, the database's and the WhatsApp credentials' wherever they are;
- a fresh environment: ``PATH``, ``HOME`` (an empty folder of the sandbox)
  and ``LANG`` only. ``bwrap`` itself is started with no other variable, so
  ``/proc/1/environ`` inside holds nothing either;
- ``--die-with-parent`` and ``--new-session``; when the command returns
  (or is killed at its timeout) the PID namespace's first process exits and
  the kernel kills everything left in it: no background job survives.

No ``bwrap`` on the machine, or one that cannot create namespaces: the
command is refused with one line saying so (package ``bubblewrap``). Only an
explicit ``"sandbox": "none"`` on the agent runs commands unconfined, and
the runner logs a warning about it at every start.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from polpo.runner.refusal import ToolRefused
from polpo.sandbox_paths import EMPTY_DIRS, MASKED_TOPS, read_only_refusal
from polpo.sandbox_paths import within as _within

if TYPE_CHECKING:
    from polpo.config import LoadedConfig

log = logging.getLogger(__name__)

PACKAGE = "bubblewrap"
SandboxMode = Literal["bwrap", "none"]
#: Entries looked at when computing those masks (a few thousand on a usual system).
MASK_BUDGET = 50_000
MASK_TTL = 60.0
SANDBOX_HOSTNAME = "polpo-sandbox"
#: The user a command runs as when Polpo runs as root (inside its own user namespace).
UNPRIVILEGED_UID = 1000


@dataclass(frozen=True)
class SandboxPolicy:
    """How one agent's commands run, and what of Polpo's they must never see."""

    mode: SandboxMode = "bwrap"
    network: bool = False
    #: Polpo's own files and folders (absolute): hidden inside the sandbox.
    hidden: tuple[Path, ...] = ()
    #: Folders shown read-only though the sandbox hides them otherwise (``sandboxReadOnly``).
    read_only: tuple[Path, ...] = ()
    agent: str = ""
    #: Polpo's files a command could reach in the project (:func:`exposed_paths`): refused.
    exposed: tuple[Path, ...] = ()


# -- is a sandbox available? ---------------------------------------------------------


def find_bwrap(project: Path | None = None) -> str | None:
    """``bwrap`` on ``PATH``, never from a folder a command could have written to.

    Commands write the project; with a virtualenv of the project activated,
    ``PATH`` starts inside it (``.venv/bin``). A ``bwrap`` planted there would
    run the *next* command unconfined, as Polpo. So relative ``PATH`` entries
    (the working directory is usually the project) and entries inside
    ``project`` are skipped.
    """
    inside = os.path.realpath(project) if project is not None else None
    folders = [
        d
        for d in os.environ.get("PATH", os.defpath).split(os.pathsep)
        if os.path.isabs(d) and (inside is None or not _within(os.path.realpath(d), inside))
    ]
    return shutil.which("bwrap", path=os.pathsep.join(folders))


_probe_lock = threading.Lock()
_probed: dict[str, str | None] = {}


def sandbox_problem(project: Path | None = None) -> str | None:
    """None when bubblewrap works here; else one line saying why (naming the package)."""
    bwrap = find_bwrap(project)
    if bwrap is None:
        return (
            f"run_command needs {PACKAGE} (the bwrap command) to sandbox commands, and it is "
            f"not installed: install the {PACKAGE} package (e.g. apt install {PACKAGE})"
        )
    with _probe_lock:
        if bwrap not in _probed:
            _probed[bwrap] = _probe(bwrap)
        return _probed[bwrap]


def _probe(bwrap: str) -> str | None:
    argv = [bwrap, *_namespace_flags(bwrap, network=False), "--ro-bind", "/", "/"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--", "/bin/sh", "-c", "exit 0"]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=30, env={}, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{PACKAGE} (bwrap) is installed but cannot run here: {e}"
    if done.returncode == 0:
        return None
    why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    return (
        f"{PACKAGE} (bwrap) is installed but cannot create its sandbox here: {why} "
        "(user namespaces may be disabled)"
    )


@functools.cache
def _supports(bwrap: str, option: str) -> bool:
    try:
        out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10, env={})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in out.stdout + out.stderr


# -- what the runner says at start -----------------------------------------------------


def sandbox_warnings(loaded: LoadedConfig) -> list[str]:
    """One line per agent whose ``run_command`` is unconfined or cannot run."""
    config = loaded.config
    out: list[str] = []
    with_commands = [a for a in config.agents if "run_command" in a.tools]
    for a in with_commands:
        if a.sandbox == "none":
            out.append(
                f'agent "{a.name}" runs run_command WITHOUT a sandbox ("sandbox": "none"): '
                "its commands can read your files, secrets and Polpo's database, reach the "
                "network and outlive the call"
            )
    boxed = [a.name for a in with_commands if a.sandbox == "bwrap"]
    if boxed:
        problem = sandbox_problem(loaded.root) or exposed_problem(
            exposed_paths(loaded), loaded.root
        )
        if problem:
            who = ", ".join(f'"{n}"' for n in boxed)
            out.append(f"run_command will be refused for agent {who}: {problem}")
    return out


def log_sandbox_warnings(loaded: LoadedConfig) -> None:
    for line in sandbox_warnings(loaded):
        log.warning("%s", line)


# -- Polpo's own paths --------------------------------------------------------------------


def own_paths(loaded: LoadedConfig) -> tuple[Path, ...]:
    """What an agent must never see: ``.polpo/``, the config, the database, WhatsApp's keys."""
    from polpo.store.engine import sqlite_path

    paths: list[Path] = [loaded.polpo_dir, loaded.path]
    db = sqlite_path(loaded.storage_url)
    if db is not None:
        paths += [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))]
    for ch in loaded.config.settings.notifications.channels.values():
        auth = getattr(ch, "auth_dir", None)
        if isinstance(auth, str):
            paths.append(loaded.resolve(auth))
    out: list[Path] = []
    for p in paths:
        real = Path(os.path.realpath(p))
        if real not in out:
            out.append(real)
    return tuple(out)


def exposed_paths(loaded: LoadedConfig) -> tuple[Path, ...]:
    """Polpo's database and WhatsApp credentials when they are in the project but not
    under ``.polpo/``: a command can write there, so no sandbox can keep them safe.

    Hiding a file does not stop a command from renaming its folder (the file goes
    with it, unhidden for the next command) or from creating the database's
    ``-journal`` beside it, which SQLite would play back into the database.
    ``.polpo/`` itself is an empty read-only mount inside the sandbox: it cannot
    be renamed, and nothing can be created in it.
    """
    from polpo.store.engine import sqlite_path

    root = os.path.realpath(loaded.root)
    own_dir = os.path.realpath(loaded.polpo_dir)
    found: list[Path] = []
    db = sqlite_path(loaded.storage_url)
    candidates = [db] if db is not None else []
    for ch in loaded.config.settings.notifications.channels.values():
        auth = getattr(ch, "auth_dir", None)
        if isinstance(auth, str):
            candidates.append(loaded.resolve(auth))
    for p in candidates:
        real = os.path.realpath(p)
        if _within(real, root) and not _within(real, own_dir) and Path(real) not in found:
            found.append(Path(real))
    return tuple(found)


def exposed_problem(exposed: Iterable[Path], root: Path) -> str | None:
    """The refusal's line for :func:`exposed_paths` (None when there are none)."""
    names = [os.path.relpath(p, os.path.realpath(root)) for p in exposed]
    if not names:
        return None
    return (
        f"Polpo's own {', '.join(names)} {'is' if len(names) == 1 else 'are'} inside the "
        "project, where commands can write (they could move it aside and read it, or "
        "change the database); keep Polpo's files under .polpo/ or outside the project "
        "(settings.storage.url, authDir)"
    )


# -- the command line ---------------------------------------------------------------------


def _namespace_flags(bwrap: str, *, network: bool) -> list[str]:
    flags = ["--unshare-user"]
    if os.geteuid() == 0:
        flags += ["--uid", str(UNPRIVILEGED_UID), "--gid", str(UNPRIVILEGED_UID)]
    flags += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    flags += ["--cap-drop", "ALL"]
    if not network:
        flags.append("--unshare-net")
    if _supports(bwrap, "--disable-userns"):
        flags.append("--disable-userns")  # no nested namespaces: less kernel to attack
    return flags


def sandbox_home() -> str:
    return "/home/agent" if os.path.isdir("/home") else "/tmp/agent-home"


def bwrap_env() -> dict[str, str]:
    """The environment ``bwrap`` itself starts with (what ``/proc/1/environ`` shows inside)."""
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}


@dataclass(frozen=True)
class Mask:
    path: str
    is_dir: bool


def bwrap_argv(
    bwrap: str,
    policy: SandboxPolicy,
    root: Path,
    command: str,
    *,
    masks: Iterable[Mask] = (),
    user_home: str | None = None,
    status_fd: str | None = None,
) -> list[str]:
    """The full ``bwrap`` command line that runs ``command`` in the project ``root``.

    ``status_fd`` (a descriptor number, or a placeholder for one) receives
    bwrap's JSON status: an ``exit-code`` entry means the command did run.
    """
    root_s = str(root)
    home_in = sandbox_home()
    argv = [bwrap, *_namespace_flags(bwrap, network=policy.network)]
    if status_fd is not None:
        argv += ["--json-status-fd", status_fd]
    argv += ["--hostname", SANDBOX_HOSTNAME, "--die-with-parent", "--new-session"]
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    empty = [d for d in EMPTY_DIRS if os.path.isdir(d) and not os.path.islink(d)]
    home = user_home if user_home is not None else os.path.expanduser("~")
    if home not in ("", "/") and os.path.isdir(home) and home not in empty:
        empty.append(home)
    for d in empty:
        argv += ["--tmpfs", d]
    for m in masks:
        if not any(_within(m.path, d) for d in empty):
            argv += ["--tmpfs", m.path] if m.is_dir else ["--ro-bind", "/dev/null", m.path]
    argv += ["--dir", home_in]
    shown = shown_folders(policy, root_s, home)
    for real in shown:
        argv += ["--ro-bind-try", real, real]
    for m in masks:  # what other users may not read stays hidden inside a shown folder
        if any(_within(m.path, s) for s in shown):
            argv += ["--tmpfs", m.path] if m.is_dir else ["--ro-bind", "/dev/null", m.path]
    if policy.network:
        resolv = os.path.realpath("/etc/resolv.conf")
        if any(_within(resolv, d) for d in empty):  # e.g. systemd-resolved's file under /run
            argv += ["--ro-bind-try", resolv, resolv]
    argv += ["--bind", root_s, root_s]
    hidden_dirs: list[str] = []
    for p in policy.hidden:
        ps = str(p)
        if _within(root_s, ps) or not os.path.lexists(ps):
            continue  # the project itself (or a parent of it) cannot be hidden from itself
        if any(_within(ps, h) for h in hidden_dirs):
            continue  # already gone with its folder
        if (
            not _within(ps, root_s)
            and any(_within(ps, d) for d in empty)
            and not any(_within(ps, s) for s in shown)
        ):
            continue  # under a fresh tmpfs (and no shown folder): out of sight already
        if os.path.isdir(ps):
            argv += ["--tmpfs", ps, "--remount-ro", ps]
            hidden_dirs.append(ps)
        else:
            argv += ["--ro-bind", "/dev/null", ps]
    argv += ["--chdir", root_s, "--clearenv"]
    argv += ["--setenv", "PATH", os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")]
    argv += ["--setenv", "HOME", home_in]
    argv += ["--setenv", "LANG", os.environ.get("LANG") or "C.UTF-8"]
    argv += ["--", "/bin/sh", "-c", command]
    return argv


def shown_folders(policy: SandboxPolicy, root: str, home: str) -> list[str]:
    """The real paths of ``sandboxReadOnly`` to show, checked again at every command.

    The config is checked at load (:func:`polpo.sandbox_paths.read_only_refusal`),
    but what a path resolves to can change: a listed folder inside the project is
    the agent's to swap for a symlink (to ``/``, to ``~/.ssh``), so it is never
    shown (the project is there anyway), and an entry that now resolves to a
    folder the sandbox must hide is skipped.
    """
    out: list[str] = []
    for entry in policy.read_only:
        path = os.path.normpath(os.path.expanduser(str(entry)))
        real = os.path.realpath(path)
        why = read_only_refusal(str(entry), home)
        if why is None and (_within(path, root) or _within(real, root)):
            why = f'"{entry}" is inside the project, where commands write; it is there anyway'
        if why is not None:
            log.warning("sandbox of agent %s: sandboxReadOnly not shown: %s", policy.agent, why)
        elif real not in out:
            out.append(real)
    return out


def sandbox_pid(status: str) -> int | None:
    """The host pid of the sandbox's first process, from bwrap's JSON status.

    When that process is gone, so is every process of the sandbox: the kernel
    kills what is left in a PID namespace before its first process finishes
    exiting.
    """
    for line in status.splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict) and isinstance(doc.get("child-pid"), int):
                return int(doc["child-pid"])
    return None


# -- files other users may not read -------------------------------------------------------


@dataclass
class _MaskCache:
    lock: threading.Lock = field(default_factory=threading.Lock)
    at: float = float("-inf")
    masks: tuple[Mask, ...] = ()


_masks = _MaskCache()


def unreadable_masks(*, fresh: bool = False) -> tuple[Mask, ...]:
    """Files and folders under :data:`MASKED_TOPS` that other users may not read.

    Cached for a minute (walking ``/etc`` and ``/var`` takes a fraction of a
    second); ``fresh`` walks again (after a sandbox failed to start because a
    masked file vanished).
    """
    with _masks.lock:
        now = time.monotonic()
        if fresh or now - _masks.at > MASK_TTL:
            _masks.masks = tuple(_walk_unreadable(MASKED_TOPS, MASK_BUDGET))
            _masks.at = now
        return _masks.masks


def _walk_unreadable(tops: Iterable[str], budget: int) -> Iterator[Mask]:
    stack = [t for t in tops if os.path.isdir(t) and not os.path.islink(t)]
    seen = 0
    while stack:
        folder = stack.pop()
        if any(_within(folder, d) for d in EMPTY_DIRS):
            continue
        try:
            it = os.scandir(folder)
        except OSError:
            yield Mask(folder, True)
            continue
        with it:
            for e in it:
                seen += 1
                if seen > budget:
                    log.warning(
                        "sandbox: stopped looking for unreadable files after %d entries", budget
                    )
                    return
                try:
                    mode = e.stat(follow_symlinks=False).st_mode
                except OSError:
                    continue
                if stat.S_ISLNK(mode):
                    continue
                if stat.S_ISDIR(mode):
                    if mode & 0o005 != 0o005:
                        yield Mask(e.path, True)
                    else:
                        stack.append(e.path)
                elif not mode & 0o004:
                    yield Mask(e.path, False)


def unavailable(policy: SandboxPolicy, root: Path) -> ToolRefused | None:
    """The refusal to give when ``run_command`` cannot be sandboxed (None: it can)."""
    if policy.mode == "none":
        return None
    problem = sandbox_problem(root) or exposed_problem(policy.exposed, root)
    if problem is None:
        return None
    return ToolRefused(f"run_command is refused: {problem}" if policy.exposed else problem)
