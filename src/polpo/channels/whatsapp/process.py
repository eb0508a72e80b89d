"""One worker process: spawned, spoken to in JSON lines, stopped (or killed).

The worker (``python -m polpo.channels.whatsapp.worker``, or the command in
``POLPO_WHATSAPP_WORKER``) runs in its own session, so Ctrl-C in a terminal
reaches only the parent, which stops it in order; its stderr is drained into
the log and the last lines are kept to explain an exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from polpo.channels.whatsapp import protocol as p

log = logging.getLogger("polpo.channels.whatsapp")

#: a command line that replaces the real worker (tests, another engine); --auth-dir is appended
WORKER_ENV = "POLPO_WHATSAPP_WORKER"
#: exit code of a worker that must not be restarted (banned, outdated client)
EXIT_FATAL = 4


def default_worker_command() -> list[str]:
    override = os.environ.get(WORKER_ENV, "").strip()
    if override:
        return shlex.split(override)
    # -P: ``python -m`` would put the working directory (the project, where agents
    # write files) first on sys.path, and run a planted json.py outside the sandbox.
    return [sys.executable, "-P", "-m", "polpo.channels.whatsapp.worker"]


@dataclass(frozen=True)
class WorkerOptions:
    """How the worker process is run."""

    #: the command line (``--auth-dir DIR`` is appended); None: :func:`default_worker_command`
    command: Sequence[str] | None = None
    #: the worker's environment; None: this process's
    env: Mapping[str, str] | None = None
    #: show WhatsApp's "AI" badge on sent messages (neonize's ``NEONIZE_BOT_TAG``)
    bot_tag: bool = False
    #: a worker still running this long after ``stop`` is killed
    stop_timeout: float = 10.0
    #: a worker that says nothing about the connection this long after ``connect`` is hung
    connect_timeout: float = 120.0
    #: group messages are for Polpo (``groupPolicy`` open); else the worker drops them
    groups: bool = False

    def argv(self, auth_dir: Path, *, inbound: bool = True) -> list[str]:
        """The command line; ``inbound=False``: no message is for Polpo (send-only)."""
        command = list(self.command) if self.command else default_worker_command()
        command += ["--auth-dir", str(auth_dir)]
        if self.bot_tag:
            command.append("--bot-tag")
        if self.groups:
            command.append("--groups")
        if not inbound:
            command.append("--send-only")
        return command

    def environment(self) -> dict[str, str]:
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"
        if self.bot_tag:
            env.pop("NEONIZE_BOT_TAG", None)
        else:
            env["NEONIZE_BOT_TAG"] = "off"
        return env


class WorkerProcess:
    """A running worker: write commands, read events, stop it."""

    def __init__(self, proc: asyncio.subprocess.Process, stop_timeout: float) -> None:
        self._proc = proc
        self._stop_timeout = stop_timeout
        self._write_lock = asyncio.Lock()
        #: the last lines the worker wrote to stderr (they explain an exit)
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._stderr_task = asyncio.create_task(self._drain_stderr(), name="whatsapp-stderr")

    @classmethod
    async def spawn(
        cls, auth_dir: Path, options: WorkerOptions, *, inbound: bool = True
    ) -> WorkerProcess:
        """Start a worker for ``auth_dir``; raises ``OSError`` when it cannot be started."""
        proc = await asyncio.create_subprocess_exec(
            *options.argv(auth_dir, inbound=inbound),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=options.environment(),
            limit=p.MAX_LINE_BYTES,
            start_new_session=True,
        )
        return cls(proc, options.stop_timeout)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc.returncode is None

    async def write(self, command: p.Command) -> bool:
        """Send one command; False when the worker is gone."""
        stdin = self._proc.stdin
        if stdin is None or self._proc.returncode is not None:
            return False
        async with self._write_lock:
            try:
                stdin.write(p.encode(command).encode("utf-8"))
                await stdin.drain()
            except (BrokenPipeError, ConnectionResetError, RuntimeError):
                return False
        return True

    async def next_event(self, within: float | None) -> p.Event | None:
        """The next event the worker wrote; None once its stdout closed.

        Lines that are not protocol (or over the length limit) are logged and
        skipped. Raises ``TimeoutError`` after ``within`` seconds (None: no limit).
        """
        stdout = self._proc.stdout
        assert stdout is not None
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while True:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                line = await asyncio.wait_for(stdout.readline(), left)
            except ValueError:  # a line over the limit: skip what is left of it
                log.warning("whatsapp: an over-long line from the worker was dropped")
                continue
            if not line:
                return None
            try:
                return p.decode_event(line)
            except p.ProtocolError as e:
                log.warning("whatsapp: worker said something unreadable: %s", e)

    async def stop(self) -> None:
        """Ask the worker to stop; kill it if it has not exited within the stop timeout."""
        await self.write(p.Stop())
        with contextlib.suppress(Exception):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), self._stop_timeout)
        except TimeoutError:
            log.warning(
                "whatsapp: the worker (pid %s) did not stop within %.0f s; killing it",
                self._proc.pid,
                self._stop_timeout,
            )
            self.kill()
            await self._proc.wait()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()

    async def wait(self) -> int:
        """The exit code, once the process ended and its stderr is drained."""
        code = await self._proc.wait()
        await asyncio.gather(self._stderr_task, return_exceptions=True)
        return code

    async def _drain_stderr(self) -> None:
        stderr = self._proc.stderr
        assert stderr is not None
        while True:
            try:
                line = await stderr.readline()
            except ValueError:
                continue
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self.stderr_tail.append(text)
                log.info("whatsapp worker: %s", text)
