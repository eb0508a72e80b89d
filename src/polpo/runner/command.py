"""Running one ``run_command`` call: the process, its output cap, its timeout.

The command runs in its own process group (``bwrap`` or ``sh``) with stdin
closed and stdout+stderr in one pipe, read while it runs (at most
:data:`CAPTURE_BYTES` are kept). At the timeout, or when the run is
cancelled, the whole group is killed; inside the sandbox that also ends the
PID namespace, and with it every process the command started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

#: Output kept from one command (the tool's answer is cut further, to MAX_OUTPUT characters).
CAPTURE_BYTES = 48_000
#: How long to wait for the pipe to close once the process group was killed.
DRAIN_SECONDS = 5.0
#: Stands for the status pipe's descriptor number in an argv (see :func:`run_process`).
STATUS_FD = "{status-fd}"


@dataclass(frozen=True)
class CommandResult:
    """How a command ended and what it printed."""

    exit_code: int | None
    output: str
    timed_out: bool
    #: what the process wrote on its status pipe (bwrap's ``--json-status-fd``)
    status: str = ""


async def run_process(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    seconds: float,
) -> CommandResult:
    """Run ``argv`` to its end or for ``seconds``, whichever comes first.

    An argv item equal to :data:`STATUS_FD` is replaced by the write end of
    a pipe whose content comes back as ``CommandResult.status``.
    """
    status_r = status_w = -1
    if STATUS_FD in argv:
        status_r, status_w = os.pipe()
        argv = [str(status_w) if a == STATUS_FD else a for a in argv]
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
                pass_fds=(status_w,) if status_w >= 0 else (),
            )
        finally:
            if status_w >= 0:
                os.close(status_w)
        output, timed_out = await _collect(proc, seconds)
        status = _read_all(status_r) if status_r >= 0 else ""
    finally:
        if status_r >= 0:
            with contextlib.suppress(OSError):
                os.close(status_r)
    return CommandResult(proc.returncode, output, timed_out, status)


async def _collect(proc: asyncio.subprocess.Process, seconds: float) -> tuple[str, bool]:
    chunks: list[bytes] = []
    size = 0

    async def pump() -> None:
        nonlocal size
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            if size < CAPTURE_BYTES:
                chunks.append(chunk)
            size += len(chunk)

    reader = asyncio.create_task(pump())
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), seconds)
        # the command returned; a job it left behind (outside a sandbox) may still hold
        # the pipe: read until the timeout at most, then its group is killed
        await asyncio.wait_for(asyncio.shield(reader), max(0.0, end - loop.time()))
    except TimeoutError:
        timed_out = proc.returncode is None
    finally:
        _kill_group(proc.pid)
        if proc.returncode is None:
            await proc.wait()
        if not reader.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), DRAIN_SECONDS)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return b"".join(chunks)[:CAPTURE_BYTES].decode("utf-8", errors="replace"), timed_out


def _read_all(fd: int) -> str:
    """What is in the pipe now (its writers are gone)."""
    data = b""
    os.set_blocking(fd, False)
    while len(data) < 65536:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", errors="replace")


async def wait_exited(pid: int, seconds: float) -> bool:
    """Wait (at most ``seconds``) until process ``pid`` has exited; False if it has not.

    ``pid`` need not be our child: a pidfd tells when any process ends.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await asyncio.wait_for(gone, seconds)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
