"""Reading lines from standard input inside asyncio, so Ctrl-C works at a prompt.

``input()`` in ``asyncio.to_thread`` cannot be interrupted: Ctrl-C cancels the
main task, but ``asyncio.run`` then waits for the reading thread, which sits
in ``input()`` until Enter. Here the event loop itself watches the file
descriptor (``loop.add_reader``): nothing blocks, Ctrl-C cancels the wait at
once, and Ctrl-D (end of input) is an empty read. The terminal keeps doing
the line editing (canonical mode), as it does for ``input()`` without
readline.

Standard input that the loop cannot watch (a regular file, ``/dev/null``) is
read directly: such reads never block.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TextIO


class LineReader:
    """``await reader.read_line()``: the next line without its newline, or None at the end."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self._buffer = b""
        self._eof = False

    @property
    def at_eof(self) -> bool:
        """True once the input has ended (Ctrl-D at a terminal)."""
        return self._eof

    async def read_line(self, prompt: str = "") -> str | None:
        if prompt:
            self.stdout.write(prompt)
            self.stdout.flush()
        while True:
            line = self._take_line()
            if line is not None:
                return line
            if self._eof:
                return None
            chunk = await self._read_chunk()
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True

    def _take_line(self) -> str | None:
        newline = self._buffer.find(b"\n")
        if newline >= 0:
            raw, self._buffer = self._buffer[:newline], self._buffer[newline + 1 :]
        elif self._eof and self._buffer:  # the last line had no newline
            raw, self._buffer = self._buffer, b""
        else:
            return None
        return raw.decode("utf-8", errors="replace").rstrip("\r")

    async def _read_chunk(self) -> bytes:
        fd = self.stdin.fileno()
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def on_readable() -> None:
            if not ready.done():
                ready.set_result(None)

        try:
            loop.add_reader(fd, on_readable)
        except (OSError, ValueError, NotImplementedError):
            return os.read(fd, 65536)  # not pollable (a file, /dev/null): never blocks
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            return await self._read_chunk()
