"""The built-in task tools, confined to the project directory.

File tools resolve every path a model gives beneath the project directory,
one component at a time on directory descriptors (:mod:`polpo.runner.beneath`):
``../``, absolute paths elsewhere and symlinks that point outside are
refused, and no folder swapped for a symlink mid-call can lead a read or a
write out. ``.polpo/`` (the config and the database) is off limits too: an
agent must not be able to rewrite its own gates. A refusal is not an
exception that ends the run: the model gets ``Error: …`` text back (so it
can correct itself) and the transcript records the call as refused.

``run_command`` exists only for agents that list it: a shell command in the
project directory, run inside a bubblewrap sandbox
(:mod:`polpo.runner.sandbox`), with the agent's ``commandTimeoutSeconds`` and
an output cap. Long calls (a search, a command) also stop when the task's
own timeout comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_ai import RunContext, Tool

from polpo.runner.beneath import MAX_DEPTH, PROTECTED, Beneath
from polpo.runner.command import STATUS_FD, CommandResult, run_process, wait_exited
from polpo.runner.pattern import MAX_PATTERN, LinePattern
from polpo.runner.refusal import ToolRefused
from polpo.runner.sandbox import (
    SandboxPolicy,
    bwrap_argv,
    bwrap_env,
    exposed_paths,
    find_bwrap,
    own_paths,
    sandbox_pid,
    unavailable,
    unreadable_masks,
)

if TYPE_CHECKING:
    from polpo.config import AgentConfig, LoadedConfig

__all__ = ["PROTECTED", "ToolRefused", "Workspace", "tools_for"]

log = logging.getLogger(__name__)

#: What one tool answer may hold (the model reads it on every later request).
MAX_OUTPUT = 12_000
#: What the transcript keeps of each answer.
TRANSCRIPT_OUTPUT = 2_000
MAX_READ_BYTES = 200_000
MAX_WRITE_BYTES = 2_000_000
MAX_LIST = 500
MAX_MATCHES = 200
MAX_SEARCH_FILE_BYTES = 1_000_000
MAX_SEARCH_FILES = 20_000
#: A search stops after this long (or sooner, when the task's own time is up).
SEARCH_SECONDS = 30.0
MAX_GLOB = 200
#: How long a finished command's sandbox may take to be torn down (it is usually milliseconds).
SANDBOX_EXIT_SECONDS = 10.0
#: Folders a listing or a search does not walk into (they can still be named directly, but .polpo).
SKIP_DIRS = frozenset({".git", ".polpo", ".venv", "node_modules", "__pycache__", ".mypy_cache"})
#: Names of environment variables an unconfined ``run_command`` does not pass on.
SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


@dataclass
class Workspace:
    """The project directory a task's tools may touch, and the run's transcript."""

    root: Path
    command_timeout: float = 60.0
    transcript: list[dict[str, Any]] = field(default_factory=list)
    clock: Callable[[], float] = time.time
    #: how ``run_command`` is confined (and what of Polpo's it must never see)
    sandbox: SandboxPolicy = field(default_factory=SandboxPolicy)
    #: further paths no tool may touch: Polpo's config and database when in the project
    protected: tuple[Path, ...] = ()
    #: ``time.monotonic()`` by which the run must end (the task's timeout)
    deadline: float | None = None
    #: set when the run is cancelled or timed out: a call still working in a thread stops
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        inside: list[tuple[str, ...]] = []
        for p in self.protected:
            with contextlib.suppress(ValueError):
                parts = Path(os.path.realpath(p)).relative_to(self.root).parts
                if parts and parts[0] != PROTECTED:
                    inside.append(parts)
        self.fs = Beneath(self.root, tuple(inside))

    def resolve(self, path: str) -> Path:
        """The real path ``path`` leads to inside the project, or :class:`ToolRefused`."""
        with self.fs.locate(path) as loc:
            return self.root.joinpath(*loc.parts)

    def seconds_left(self, cap: float) -> float:
        """``cap``, or less when the task's timeout comes first."""
        if self.deadline is None:
            return cap
        return min(cap, self.deadline - time.monotonic())

    def begin(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        """A transcript entry for a call, in call order (parallel calls may end in any order)."""
        entry: dict[str, Any] = {
            "type": "tool",
            "tool": tool,
            "args": {k: _clip(v, 500) for k, v in args.items()},
            "status": "running",
            "output": "",
            "at": self.clock(),
        }
        self.transcript.append(entry)
        return entry

    def record(self, tool: str, args: dict[str, Any], *, output: str, status: str) -> None:
        self.end(self.begin(tool, args), output=output, status=status)

    @staticmethod
    def end(entry: dict[str, Any], *, output: str, status: str) -> None:
        entry["status"] = status  # ok | refused | error
        entry["output"] = _clip(output, TRANSCRIPT_OUTPUT)


def workspace_for(
    loaded: LoadedConfig, agent: AgentConfig, *, clock: Callable[[], float], minutes: float
) -> Workspace:
    """The workspace of one run of ``agent``: its sandbox, Polpo's own paths, its deadline."""
    own = own_paths(loaded)
    return Workspace(
        loaded.root,
        command_timeout=agent.command_timeout_seconds,
        clock=clock,
        sandbox=SandboxPolicy(
            mode=agent.sandbox,
            network=agent.network,
            hidden=own,
            read_only=tuple(Path(p) for p in agent.sandbox_read_only),
            agent=agent.name,
            exposed=exposed_paths(loaded),
        ),
        protected=own,
        deadline=time.monotonic() + minutes * 60,
    )


def _clip(v: Any, n: int) -> Any:
    if isinstance(v, str) and len(v) > n:
        return v[:n] + f"… [{len(v) - n} more characters]"
    return v


def _cap(text: str, limit: int = MAX_OUTPUT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [output cut: {len(text) - limit} more characters]"


# -- the tools ---------------------------------------------------------------------


def list_files(ws: Workspace, path: str = ".", recursive: bool = False) -> str:
    with ws.fs.locate(path) as loc:
        st = loc.lstat()
        if st is None:
            raise ToolRefused(f"{path!r} does not exist")
        if not stat.S_ISDIR(st.st_mode):
            return loc.rel
        fd = loc.open_dir(path)
        try:
            walk = ws.fs.walk(fd, _prefix(loc.rel), recursive=recursive, skip=SKIP_DIRS)
            lines: list[str] = []
            for e in walk:
                lines.append(e.rel + ("/" if e.kind == "dir" else ""))
                if len(lines) > MAX_LIST:
                    lines[-1] = f"… more than {MAX_LIST} entries; list a subfolder"
                    break
            if walk.too_deep:
                lines.append(f"… folders more than {MAX_DEPTH} levels deep are not listed")
        finally:
            os.close(fd)
        return "\n".join(lines) if lines else f"{loc.rel} is empty"


def _prefix(rel: str) -> str:
    return "" if rel == "." else rel


def read_file(ws: Workspace, path: str) -> str:
    with ws.fs.locate(path) as loc:
        try:
            fd = loc.open_file(path, os.O_RDONLY)
        except FileNotFoundError:
            raise ToolRefused(f"{path!r} does not exist") from None
        with os.fdopen(fd, "rb") as f:
            kind = os.fstat(f.fileno()).st_mode
            if stat.S_ISDIR(kind):
                raise ToolRefused(f"{path!r} is not a file")
            if not stat.S_ISREG(kind):
                raise ToolRefused(f"{path!r} is not a regular file")
            data = f.read(MAX_READ_BYTES + 1)
    if b"\x00" in data[:8000]:
        raise ToolRefused(f"{path!r} is a binary file")
    text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
    if len(data) > MAX_READ_BYTES:
        text += f"\n… [file cut at {MAX_READ_BYTES} bytes]"
    return _cap(text)


def write_file(ws: Workspace, path: str, content: str) -> str:
    data = content.encode("utf-8")
    if len(data) > MAX_WRITE_BYTES:
        raise ToolRefused(f"content too large ({len(data)} bytes; at most {MAX_WRITE_BYTES})")
    with ws.fs.locate(path, create_dirs=True) as loc:
        if loc.name is None:
            raise ToolRefused(f"{path!r} is a folder")
        created = True
        try:
            fd = loc.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            created = False
            fd = loc.open_file(path, os.O_WRONLY)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ToolRefused(f"{path!r} is not a regular file")
            if st.st_nlink > 1:
                raise ToolRefused(
                    f"{path!r} has {st.st_nlink} hard links: writing it would change the "
                    "other copies too (maybe outside the project); write a new file instead"
                )
            os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        return f"{'created' if created else 'updated'} {loc.rel} ({len(data)} bytes)"


def search_files(ws: Workspace, pattern: str, path: str = ".", glob: str = "*") -> str:
    if not pattern:
        raise ToolRefused("give a text or regular expression to search for")
    if len(pattern) > MAX_PATTERN:
        raise ToolRefused(
            f"the pattern is too long ({len(pattern)} characters; at most {MAX_PATTERN})"
        )
    if len(glob) > MAX_GLOB:
        raise ToolRefused(f"the glob is too long ({len(glob)} characters; at most {MAX_GLOB})")
    rx = LinePattern(pattern)
    budget = ws.seconds_left(SEARCH_SECONDS)
    end = time.monotonic() + budget
    out: list[str] = []

    def out_of_time() -> bool:
        return ws.stop.is_set() or time.monotonic() > end

    with ws.fs.locate(path) as loc:
        st = loc.lstat()
        if st is None:
            raise ToolRefused(f"{path!r} does not exist")
        walk = None
        dir_fd = -1
        try:
            if stat.S_ISDIR(st.st_mode):
                dir_fd = loc.open_dir(path)
                walk = ws.fs.walk(dir_fd, _prefix(loc.rel), recursive=True, skip=SKIP_DIRS)
                files: Iterator[tuple[int, str, str]] = (
                    (e.dir_fd, e.name, e.rel) for e in walk if e.kind == "file"
                )
            else:
                assert loc.name is not None
                files = iter([(loc.dir_fd, loc.name, loc.rel)])
            for n_files, (folder, name, rel) in enumerate(files, 1):
                if n_files > MAX_SEARCH_FILES:
                    out.append(f"… stopped after {MAX_SEARCH_FILES} files; search a subfolder")
                    break
                if out_of_time():
                    out.append(_timed_out(budget))
                    break
                if not fnmatch.fnmatch(name, glob):
                    continue
                data = _read_small(folder, name)
                if data is None or b"\x00" in data[:8000]:
                    continue
                for n, line in enumerate(data.splitlines(), 1):
                    if n % 512 == 0 and out_of_time():
                        break
                    try:
                        hit = rx.search(line, seconds=end - time.monotonic())
                    except TimeoutError:
                        break  # said below: the search ran out of time
                    if hit:
                        text = line.decode("utf-8", errors="replace").strip()[:300]
                        out.append(f"{rel}:{n}: {text}")
                        if len(out) >= MAX_MATCHES:
                            out.append(f"… stopped at {MAX_MATCHES} matches; narrow the search")
                            return _cap("\n".join(out))
            else:
                if walk is not None and walk.too_deep:
                    out.append(f"… folders more than {MAX_DEPTH} levels deep were not searched")
            if out_of_time() and (not out or out[-1] != _timed_out(budget)):
                out.append(_timed_out(budget))
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)
    return _cap("\n".join(out)) if out else "no matches"


def _timed_out(budget: float) -> str:
    return (
        f"… stopped: the search ran out of time ({max(budget, 0):.0f} s); "
        "search a subfolder or a narrower pattern"
    )


def _read_small(folder: int, name: str) -> bytes | None:
    """A regular file's bytes, if it is small enough to search (never through a symlink)."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder
        )
    except OSError:
        return None
    st = os.fstat(fd)
    # listed as a file, maybe swapped for a folder since: only regular files are read
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SEARCH_FILE_BYTES:
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            return f.read(MAX_SEARCH_FILE_BYTES + 1)
        except OSError:
            return None


async def run_command(ws: Workspace, command: str) -> str:
    if not command.strip():
        raise ToolRefused("give a command to run")
    timeout = ws.seconds_left(ws.command_timeout)
    if timeout <= 0:
        raise ToolRefused("the task has no time left to run a command")
    if ws.sandbox.mode == "none":
        env = {k: v for k, v in os.environ.items() if not SECRET_ENV.search(k)}
        result = await run_process(
            ["/bin/sh", "-c", command], cwd=ws.root, env=env, seconds=timeout
        )
    else:
        result = await _run_sandboxed(ws, command, timeout)
    head = (
        f"killed after {timeout:g} s (timeout)"
        if result.timed_out
        else f"exit code {result.exit_code}"
    )
    return _cap(f"{head}\n{result.output}" if result.output else head)


async def _run_sandboxed(ws: Workspace, command: str, seconds: float) -> CommandResult:
    refusal = await asyncio.to_thread(unavailable, ws.sandbox, ws.root)
    bwrap = find_bwrap(ws.root)
    if refusal is not None or bwrap is None:
        raise refusal or ToolRefused("bubblewrap (bwrap) is not installed")
    for fresh in (False, True):
        masks = await asyncio.to_thread(unreadable_masks, fresh=fresh)
        argv = bwrap_argv(bwrap, ws.sandbox, ws.root, command, masks=masks, status_fd=STATUS_FD)
        result = await run_process(argv, cwd=ws.root, env=bwrap_env(), seconds=seconds)
        pid1 = sandbox_pid(result.status)
        if pid1 is not None and not await wait_exited(pid1, SANDBOX_EXIT_SECONDS):
            log.warning("the sandbox of a command (pid %d) is still running after it ended", pid1)
        started = '"exit-code"' in result.status or result.timed_out
        if started or not result.output.startswith("bwrap: "):
            return result
        # the sandbox itself could not be set up (say, a hidden file vanished): the
        # command never ran, so it is safe to try once more with fresh masks
    why = result.output.strip().splitlines()[0] if result.output.strip() else "unknown error"
    raise ToolRefused(f"the sandbox could not start: {why}")


# -- as pydantic-ai tools ------------------------------------------------------------

ToolFn = Callable[..., Any]


def _wrap(name: str, fn: ToolFn) -> Callable[..., Awaitable[str]]:
    async def call(ctx: RunContext[Workspace], **kwargs: Any) -> str:
        ws = ctx.deps
        entry = ws.begin(name, kwargs)
        try:
            if asyncio.iscoroutinefunction(fn):
                out = await fn(ws, **kwargs)
            else:  # file walks and reads off the event loop: serve keeps answering meanwhile
                out = await asyncio.to_thread(fn, ws, **kwargs)
        except asyncio.CancelledError:
            ws.stop.set()  # the run is over (cancelled, timed out): a thread still at work stops
            ws.end(entry, output="stopped: the run ended during the call", status="error")
            raise
        except ToolRefused as e:
            ws.end(entry, output=str(e), status="refused")
            return f"Error: {e}"
        except OSError as e:
            msg = f"{e.strerror or e}"
            ws.end(entry, output=msg, status="error")
            return f"Error: {msg}"
        ws.end(entry, output=str(out), status="ok")
        return str(out)

    return call


async def _list_files(ctx: RunContext[Workspace], path: str = ".", recursive: bool = False) -> str:
    """List the files and folders at a path of the project (folders end with "/").

    Args:
        path: a folder relative to the project directory; "." is the project itself.
        recursive: also list everything below it.
    """
    return await _wrap("list_files", list_files)(ctx, path=path, recursive=recursive)


async def _read_file(ctx: RunContext[Workspace], path: str) -> str:
    """Read a text file of the project.

    Args:
        path: the file, relative to the project directory.
    """
    return await _wrap("read_file", read_file)(ctx, path=path)


async def _write_file(ctx: RunContext[Workspace], path: str, content: str) -> str:
    """Create or overwrite a text file of the project (folders are created as needed).

    Args:
        path: the file, relative to the project directory.
        content: the whole new content of the file.
    """
    return await _wrap("write_file", write_file)(ctx, path=path, content=content)


async def _search_files(
    ctx: RunContext[Workspace], pattern: str, path: str = ".", glob: str = "*"
) -> str:
    """Search the project's text files for lines matching a regular expression.

    Args:
        pattern: a regular expression (or plain text).
        path: a folder or file to search in, relative to the project directory.
        glob: only files whose name matches this pattern, e.g. "*.py".
    """
    return await _wrap("search_files", search_files)(ctx, pattern=pattern, path=path, glob=glob)


async def _run_command(ctx: RunContext[Workspace], command: str) -> str:
    """Run a shell command in the project directory (in a sandbox); returns its exit code and output.

    The command sees the project read-write and the system read-only; it has no
    network unless the agent allows it, and nothing it starts outlives the call.

    Args:
        command: the command line, e.g. "pytest -q".
    """
    return await _wrap("run_command", run_command)(ctx, command=command)


TASK_TOOLS: dict[str, Tool[Workspace]] = {
    "list_files": Tool(_list_files, name="list_files"),
    "read_file": Tool(_read_file, name="read_file"),
    "write_file": Tool(_write_file, name="write_file"),
    "search_files": Tool(_search_files, name="search_files"),
    "run_command": Tool(_run_command, name="run_command"),
}


def tools_for(names: list[str]) -> list[Tool[Workspace]]:
    """The tools an agent lists, in the order of :data:`TASK_TOOLS`."""
    return [t for n, t in TASK_TOOLS.items() if n in names]
