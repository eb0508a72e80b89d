"""``polpo chat`` at a real terminal: a pseudo-terminal, a real process, real keys.

Ctrl-C and Ctrl-D must end it at once (not after the next Enter), leaving
the shell's prompt on a line of its own.
"""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import polpo_exe, run_polpo, subprocess_env
from tests.conftest import write_project

#: Generous limits for a busy 2-core machine; a working chat ends in well under a second.
START_WITHIN = 30.0
EXIT_WITHIN = 10.0


class Terminal:
    """A ``polpo chat`` process whose controlling terminal is a pty we hold."""

    def __init__(self, root: Path) -> None:
        self.master, slave = os.openpty()

        def own_terminal() -> None:  # runs in the child after setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [*polpo_exe(), "chat"],
            cwd=root,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=own_terminal,
            env=subprocess_env(POLPO_MODEL="test:model", TERM="dumb"),
        )
        os.close(slave)
        self.output = b""
        #: where the next read_until starts looking (what was seen before is used up)
        self._seen = 0

    def read_until(self, text: bytes, within: float) -> None:
        """Wait for ``text`` to appear after what earlier calls already matched."""
        deadline = time.monotonic() + within
        while text not in self.output[self._seen :]:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}; got {self.output!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                assert chunk, f"the terminal closed before {text!r}; got {self.output!r}"
                self.output += chunk
        self._seen = self.output.index(text, self._seen) + len(text)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def exit_code(self, within: float) -> int:
        try:
            code = self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"polpo chat still runs {within} s later; it printed {self.output!r}")
        self._drain()
        return code

    def _drain(self) -> None:
        while select.select([self.master], [], [], 0.5)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    root = tmp_path / "proj"
    write_project(root)
    term = Terminal(root)
    try:
        yield term
    finally:
        term.close()


def test_ctrl_c_at_the_prompt_ends_chat_at_once(terminal: Terminal) -> None:
    terminal.read_until(b"you> ", START_WITHIN)
    terminal.type(b"/help\r")
    terminal.read_until(b"/status", START_WITHIN)
    terminal.read_until(b"you> ", START_WITHIN)
    terminal.type(b"\x03")
    assert terminal.exit_code(EXIT_WITHIN) == 130
    tail = terminal.output.rsplit(b"you> ", 1)[1]
    assert tail.endswith(b"\n"), terminal.output
    assert b"Traceback" not in terminal.output and b"Aborted" not in terminal.output


def test_ctrl_d_at_the_prompt_ends_chat_at_once(terminal: Terminal) -> None:
    terminal.read_until(b"you> ", START_WITHIN)
    terminal.type(b"\x04")
    assert terminal.exit_code(EXIT_WITHIN) == 0
    tail = terminal.output.rsplit(b"you> ", 1)[1]
    assert tail.endswith(b"\n"), terminal.output
    assert b"Traceback" not in terminal.output


def test_the_owner_shows_as_you_in_status(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    write_project(root)
    p = subprocess.run(
        [*polpo_exe(), "chat"],
        cwd=root,
        input="/status\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(POLPO_MODEL="test:model"),
    )
    assert p.returncode == 0, p.stderr
    assert "Peers seen (last 5 min): 1 — you (terminal)" in p.stdout
    assert "memory:owner" not in p.stdout
    assert run_polpo(root, "status").out.count("you (terminal)") == 1
