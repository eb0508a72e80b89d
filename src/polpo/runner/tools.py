"""The built-in task tools, confined to the project directory.

Every path a model gives is resolved (symlinks followed) and must land inside
the project root; ``../``, absolute paths elsewhere and symlinks that point
outside are refused. ``.polpo/`` (the config and the database) is off limits
too: an agent must not be able to rewrite its own gates. A refusal is not an
exception that ends the run: the model gets ``Error: …`` text back (so it can
correct itself) and the transcript records the call as refused.

``run_command`` exists only for agents that list it: a shell command in the
project directory, with the agent's ``commandTimeoutSeconds`` and an output
cap, and an environment without variables that look like secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_ai import RunContext, Tool

#: What one tool answer may hold (the model reads it on every later request).
MAX_OUTPUT = 12_000
#: What the transcript keeps of each answer.
TRANSCRIPT_OUTPUT = 2_000
MAX_READ_BYTES = 200_000
MAX_WRITE_BYTES = 2_000_000
MAX_LIST = 500
MAX_MATCHES = 200
MAX_SEARCH_FILE_BYTES = 1_000_000
#: Folders a listing or a search does not walk into (they can still be named directly, but .polpo).
SKIP_DIRS = frozenset({".git", ".polpo", ".venv", "node_modules", "__pycache__", ".mypy_cache"})
#: Names of environment variables ``run_command`` does not pass on.
SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
PROTECTED = ".polpo"


class ToolRefused(Exception):
    """A tool call the runner will not carry out (a path escape, a size limit)."""


@dataclass
class Workspace:
    """The project directory a task's tools may touch, and the run's transcript."""

    root: Path
    command_timeout: float = 60.0
    transcript: list[dict[str, Any]] = field(default_factory=list)
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.root = self.root.resolve()

    def resolve(self, path: str) -> Path:
        """The real path of ``path`` (relative to the root), or :class:`ToolRefused`."""
        if not isinstance(path, str) or not path.strip():
            raise ToolRefused("give a path relative to the project directory")
        if "\x00" in path:
            raise ToolRefused("a path cannot contain a NUL character")
        raw = Path(path.strip())
        candidate = raw if raw.is_absolute() else self.root / raw
        try:
            real = candidate.resolve()
        except (OSError, RuntimeError) as e:  # a symlink loop
            raise ToolRefused(f"cannot resolve {path!r}: {e}") from None
        if real != self.root and not real.is_relative_to(self.root):
            how = "through a symlink " if _through_symlink(candidate, self.root) else ""
            raise ToolRefused(
                f"{path!r} leads {how}outside the project directory; "
                "only paths inside the project are allowed"
            )
        rel = real.relative_to(self.root)
        if rel.parts and rel.parts[0] == PROTECTED:
            raise ToolRefused(f"{path!r} is inside .polpo/, Polpo's own folder; it is off limits")
        return real

    def rel(self, p: Path) -> str:
        r = p.relative_to(self.root).as_posix()
        return r or "."

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


def _clip(v: Any, n: int) -> Any:
    if isinstance(v, str) and len(v) > n:
        return v[:n] + f"… [{len(v) - n} more characters]"
    return v


def _through_symlink(candidate: Path, root: Path) -> bool:
    p = candidate
    while True:
        if p.is_symlink():
            return True
        if p.parent == p or p == root:
            return False
        p = p.parent


def _cap(text: str, limit: int = MAX_OUTPUT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [output cut: {len(text) - limit} more characters]"


# -- the tools ---------------------------------------------------------------------


def list_files(ws: Workspace, path: str = ".", recursive: bool = False) -> str:
    base = ws.resolve(path)
    if not base.exists():
        raise ToolRefused(f"{path!r} does not exist")
    if base.is_file():
        return ws.rel(base)
    lines: list[str] = []
    for entry in _walk(ws, base, recursive):
        lines.append(ws.rel(entry) + ("/" if entry.is_dir() else ""))
        if len(lines) > MAX_LIST:
            lines[-1] = f"… more than {MAX_LIST} entries; list a subfolder"
            break
    return "\n".join(lines) if lines else f"{ws.rel(base)} is empty"


def _walk(ws: Workspace, base: Path, recursive: bool) -> Iterator[Path]:
    try:
        entries = sorted(base.iterdir(), key=lambda p: p.name)
    except OSError as e:
        raise ToolRefused(f"cannot list {ws.rel(base)}: {e.strerror}") from None
    for entry in entries:
        if entry.name in SKIP_DIRS and entry.is_dir():
            continue
        yield entry
        if recursive and entry.is_dir() and not entry.is_symlink():
            yield from _walk(ws, entry, recursive)


def read_file(ws: Workspace, path: str) -> str:
    p = ws.resolve(path)
    if not p.is_file():
        raise ToolRefused(f"{path!r} is not a file" if p.exists() else f"{path!r} does not exist")
    with p.open("rb") as f:
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
    p = ws.resolve(path)
    if p == ws.root or p.is_dir():
        raise ToolRefused(f"{path!r} is a folder")
    p.parent.mkdir(parents=True, exist_ok=True)
    existed = p.exists()
    p.write_bytes(data)
    return f"{'updated' if existed else 'created'} {ws.rel(p)} ({len(data)} bytes)"


def search_files(ws: Workspace, pattern: str, path: str = ".", glob: str = "*") -> str:
    if not pattern:
        raise ToolRefused("give a text or regular expression to search for")
    try:
        rx = re.compile(pattern)
    except re.error:
        rx = re.compile(re.escape(pattern))
    base = ws.resolve(path)
    files = [base] if base.is_file() else [p for p in _walk(ws, base, True) if p.is_file()]
    out: list[str] = []
    for f in files:
        if not fnmatch.fnmatch(f.name, glob):
            continue
        try:
            real = f.resolve()
            if not real.is_relative_to(ws.root) or f.stat().st_size > MAX_SEARCH_FILE_BYTES:
                continue  # a symlink out of the project, or too big
            data = real.read_bytes()
        except OSError:
            continue
        if b"\x00" in data[:8000]:
            continue
        for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if rx.search(line):
                out.append(f"{ws.rel(f)}:{n}: {line.strip()[:300]}")
                if len(out) >= MAX_MATCHES:
                    out.append(f"… stopped at {MAX_MATCHES} matches; narrow the search")
                    return _cap("\n".join(out))
    return _cap("\n".join(out)) if out else "no matches"


async def run_command(ws: Workspace, command: str) -> str:
    if not command.strip():
        raise ToolRefused("give a command to run")
    env = {k: v for k, v in os.environ.items() if not SECRET_ENV.search(k)}
    proc = await asyncio.create_subprocess_shell(
        command,
        cwd=ws.root,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    chunks: list[bytes] = []
    size = 0

    async def pump() -> None:
        nonlocal size
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            if size < MAX_OUTPUT * 4:
                chunks.append(chunk)
            size += len(chunk)

    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(pump(), proc.wait()), ws.command_timeout)
    except TimeoutError:
        timed_out = True
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    text = b"".join(chunks).decode("utf-8", errors="replace")
    head = (
        f"killed after {ws.command_timeout:g} s (timeout)"
        if timed_out
        else f"exit code {proc.returncode}"
    )
    return _cap(f"{head}\n{text}" if text else head)


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
    """Run a shell command in the project directory; returns its exit code and output.

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
