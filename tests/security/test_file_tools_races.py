"""The file tools against a hostile project tree: swaps mid-call, hard links, 1,100 levels.

Commands an agent runs can reshape the project while a file tool works on it
(a folder swapped for a symlink pointing out, a hard link to a file
elsewhere, a tree deeper than Python's recursion limit). None of it may let a
read or a write leave the project, and none of it may crash the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.runner.tools import (
    ToolRefused,
    Workspace,
    list_files,
    read_file,
    search_files,
    write_file,
)
from tests.runner.conftest import Script, make_runner, write_config

_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (``renameat2(RENAME_EXCHANGE)``): one always exists."""
    if _libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "proj"
    r.mkdir()
    return r


@pytest.fixture
async def app(
    root: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Polpo]:
    monkeypatch.delenv("POLPO_MODEL", raising=False)
    opened = await Polpo.open(load_config(write_config(root)), clock=clock)
    yield opened
    await opened.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text("TOP SECRET")
    return d


@pytest.fixture
def swapping(root: Path, outside: Path) -> Iterator[Counter[str]]:
    """``root/sub`` flips between a real folder and a symlink to ``outside``, non-stop."""
    (root / "sub").mkdir()
    (root / "sub" / "inside.txt").write_text("inside")
    (root / "swap").symlink_to(outside)
    try:
        exchange(root / "sub", root / "swap")
        exchange(root / "sub", root / "swap")
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.ENOSYS):
            pytest.skip("this file system cannot exchange names atomically (renameat2)")
        raise
    stop = threading.Event()
    count: Counter[str] = Counter()

    def swap() -> None:
        while not stop.is_set():
            exchange(root / "sub", root / "swap")
            count["swaps"] += 1

    t = threading.Thread(target=swap, daemon=True)
    t.start()
    try:
        yield count
    finally:
        stop.set()
        t.join()


def test_a_folder_swapped_for_a_symlink_never_lets_a_write_or_read_out(
    root: Path, outside: Path, swapping: Counter[str]
) -> None:
    ws = Workspace(root)
    outcome: Counter[str] = Counter()
    leaked: list[str] = []
    for i in range(3000):
        try:
            write_file(ws, f"sub/w{i % 20}.txt", "pwned")
            outcome["written"] += 1
        except ToolRefused:
            outcome["write refused"] += 1
        try:
            text = read_file(ws, "sub/secret.txt")
            leaked.append(text)
        except ToolRefused:
            outcome["read refused"] += 1
        with contextlib.suppress(ToolRefused):
            if "TOP SECRET" in search_files(ws, "SECRET", path="sub"):
                leaked.append("search")
        with contextlib.suppress(ToolRefused):
            if "secret.txt" in list_files(ws, "sub"):
                leaked.append("listing")

    assert sorted(os.listdir(outside)) == ["secret.txt"], "a write landed outside the project"
    assert (outside / "secret.txt").read_text() == "TOP SECRET"
    assert leaked == []
    # the race really ran both ways: writes went into the real folder, others were refused
    assert swapping["swaps"] > 100
    assert outcome["written"] > 0 and outcome["write refused"] > 0, outcome


def test_a_write_through_a_hard_link_is_refused(root: Path, outside: Path) -> None:
    os.link(outside / "secret.txt", root / "notes.txt")
    ws = Workspace(root)
    with pytest.raises(ToolRefused, match="hard links"):
        write_file(ws, "notes.txt", "pwned")
    assert (outside / "secret.txt").read_text() == "TOP SECRET"
    # a file of its own is still written as before
    assert write_file(ws, "mine.txt", "ok") == "created mine.txt (2 bytes)"
    assert write_file(ws, "mine.txt", "ok again") == "updated mine.txt (8 bytes)"


def _deep_tree(root: Path, levels: int) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        with open(os.open("bottom.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
            f.write("needle at the bottom\n")
    finally:
        os.close(fd)


def _remove_deep_tree(top: Path) -> None:
    """``shutil.rmtree`` recurses too; remove it bottom-up on descriptors."""
    fds = [os.open(top, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        while True:
            try:
                fds.append(os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
            except FileNotFoundError:
                break
        with contextlib.suppress(FileNotFoundError):
            os.unlink("bottom.txt", dir_fd=fds[-1])
        while len(fds) > 1:
            os.close(fds.pop())
            os.rmdir("d", dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)


async def test_a_tree_1100_levels_deep_is_a_clean_refusal_not_a_crash(
    app: Polpo, root: Path
) -> None:
    _deep_tree(root, 1100)
    deep = "/".join(["d"] * 1100)
    try:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("list_files", {"path": ".", "recursive": True}),
            ("search_files", {"pattern": "needle"}),
            ("read_file", {"path": f"{deep}/bottom.txt"}),
            ("write_file", {"path": f"{deep}/new.txt", "content": "x"}),
        ]
        script = Script([[c] for c in calls] + ["done"])
        task = await app.tasks.add("Walk the deep tree", agent="coder")

        await make_runner(app, script).drain()

        done = await app.tasks.get(task.id)
        assert done.status == "done", done.error
        listing, search, read, write = script.tool_results
        assert "RecursionError" not in "".join(script.tool_results)
        assert listing.splitlines()[-1] == "… folders more than 100 levels deep are not listed"
        assert search.splitlines()[-1] == "… folders more than 100 levels deep were not searched"
        assert read.startswith("Error: ") and "more than 100 folders deep" in read
        assert write.startswith("Error: ") and "more than 100 folders deep" in write
    finally:
        _remove_deep_tree(root / "d")
