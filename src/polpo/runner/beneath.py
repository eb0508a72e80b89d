"""Paths resolved beneath the project directory, one component at a time.

The file tools never hand a whole path to the kernel. A path is walked from a
descriptor of the project directory: each folder is opened relative to the
one before it (``openat`` with ``O_NOFOLLOW | O_DIRECTORY``), a symlink is
read (``readlinkat``) and its target walked the same way, and ``..`` steps
back to the folder we came from — never above the project. The last
component is opened relative to its folder's descriptor with ``O_NOFOLLOW``.

So checking and using are the same operation on descriptors: a folder
swapped for a symlink while a tool runs either is not followed (the open
fails and the tool says the path changed) or was a real folder of the
project when it was opened, and the descriptor keeps pointing there.
Depth is bounded (:data:`MAX_DEPTH`) and every walk is iterative, so a tree
1,000 folders deep is a clean refusal, not a ``RecursionError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from polpo.runner.refusal import ToolRefused

#: How many folders below the project a path may go, and a walk may descend.
MAX_DEPTH = 100
#: Symlinks followed while resolving one path (the kernel's own limit is 40).
MAX_SYMLINKS = 40
#: Polpo's own folder in the project: never read, listed or written by a tool.
PROTECTED = ".polpo"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: O_NONBLOCK: opening a FIFO must not hang the tool.
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK

Kind = Literal["dir", "file", "link", "other"]


@dataclass
class Location:
    """Where a path leads: an open descriptor of its folder and the name in it.

    ``name`` is None for the project directory itself. The descriptors stay
    open until :meth:`close` (use :meth:`Beneath.locate` as a context manager).
    """

    stack: list[tuple[int, str]]
    name: str | None
    #: a symlink was followed on the way (for the refusal's wording)
    via_symlink: bool = False

    @property
    def dir_fd(self) -> int:
        return self.stack[-1][0]

    @property
    def parts(self) -> tuple[str, ...]:
        names = tuple(n for _, n in self.stack[1:])
        return (*names, self.name) if self.name is not None else names

    @property
    def rel(self) -> str:
        return "/".join(self.parts) or "."

    def close(self) -> None:
        for fd, _ in self.stack:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.stack = []

    def lstat(self) -> os.stat_result | None:
        """The last component's own status (None: it does not exist)."""
        if self.name is None:
            return os.fstat(self.dir_fd)
        try:
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open_dir(self, shown: str) -> int:
        """A new descriptor of the folder this path names."""
        if self.name is None:
            return os.dup(self.dir_fd)
        try:
            return os.open(self.name, _DIR_FLAGS, dir_fd=self.dir_fd)
        except FileNotFoundError:
            raise ToolRefused(f"{shown!r} does not exist") from None
        except OSError as e:
            if e.errno == errno.ENOTDIR:
                raise ToolRefused(f"{shown!r} is not a folder") from None
            if e.errno == errno.ELOOP:
                raise _changed(shown) from None
            raise

    def open_file(self, shown: str, flags: int, mode: int = 0o666) -> int:
        """Open the last component itself (never through a symlink)."""
        if self.name is None:
            raise ToolRefused(f"{shown!r} is a folder")
        try:
            return os.open(self.name, flags | _FILE_FLAGS, mode, dir_fd=self.dir_fd)
        except IsADirectoryError:
            raise ToolRefused(f"{shown!r} is a folder") from None
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.EMLINK):
                raise _changed(shown) from None
            if e.errno == errno.ENXIO:  # a FIFO nobody reads
                raise ToolRefused(f"{shown!r} is not a regular file") from None
            raise


def _changed(shown: str) -> ToolRefused:
    return ToolRefused(f"{shown!r} changed while it was being opened (now a symlink); try again")


@dataclass
class Beneath:
    """Resolves paths of the project directory ``root`` without leaving it.

    ``protected`` holds further paths (relative to the root, as parts) that no
    tool may touch besides ``.polpo/``: the config file or the database when
    they live elsewhere in the project.
    """

    root: Path
    protected: tuple[tuple[str, ...], ...] = ()
    _root_text: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self._root_text = str(self.root)

    # -- resolving -------------------------------------------------------------

    @contextlib.contextmanager
    def locate(self, path: str, *, create_dirs: bool = False) -> Iterator[Location]:
        """Walk ``path`` (symlinks followed inside the project); yields its :class:`Location`.

        The last component may not exist (the caller creates it or says so).
        With ``create_dirs``, missing folders on the way are created.
        """
        shown = _check_text(path)
        loc = self._walk(shown, self._parts_of(shown), create_dirs)
        try:
            yield loc
        finally:
            loc.close()

    def _parts_of(self, shown: str) -> list[str]:
        p = PurePosixPath(shown)
        if not p.is_absolute():
            return _clean(p.parts)
        inside = self._inside(shown)
        if inside is None:
            raise _outside(shown, via_symlink=False)
        return inside

    def _inside(self, absolute: str) -> list[str] | None:
        """The parts of an absolute path relative to the root, if it names a place in it."""
        p = PurePosixPath(absolute)
        with contextlib.suppress(ValueError):
            return _clean(p.relative_to(self._root_text).parts)
        # through an alias of the project (a symlinked parent folder): translate by its
        # real path; the walk that follows checks every component again
        real = os.path.realpath(absolute)
        if real == self._root_text or real.startswith(self._root_text + os.sep):
            return _clean(PurePosixPath(real).relative_to(self._root_text).parts)
        return None

    def _walk(self, shown: str, parts: list[str], create_dirs: bool) -> Location:
        loc = Location([(os.open(self.root, _DIR_FLAGS & ~os.O_NOFOLLOW), "")], None)
        pending = deque(parts)
        links = 0
        try:
            while pending:
                comp = pending.popleft()
                if comp == "..":
                    if len(loc.stack) == 1:
                        raise _outside(shown, via_symlink=loc.via_symlink)
                    fd, _ = loc.stack.pop()
                    os.close(fd)
                    continue
                fd = loc.dir_fd
                try:
                    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if not pending:
                        loc.name = comp
                        break
                    if not create_dirs:
                        raise ToolRefused(f"{shown!r} does not exist") from None
                    self._check_protected(shown, (*loc.parts, comp))
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(comp, 0o777, dir_fd=fd)
                    links += 1  # a folder that keeps vanishing must not loop for ever
                    if links > MAX_SYMLINKS:
                        raise _changed(shown) from None
                    pending.appendleft(comp)
                    continue
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise ToolRefused(f"{shown!r}: too many levels of symlinks")
                    loc.via_symlink = True
                    try:
                        target = os.readlink(comp, dir_fd=fd)
                    except OSError as e:
                        if e.errno not in (errno.EINVAL, errno.ENOENT):
                            raise
                        pending.appendleft(comp)  # no longer a symlink: look at it again
                        continue
                    if target.startswith("/"):
                        inside = self._inside(target)
                        if inside is None:
                            raise _outside(shown, via_symlink=True)
                        while len(loc.stack) > 1:
                            os.close(loc.stack.pop()[0])
                        pending.extendleft(reversed(inside))
                    else:
                        pending.extendleft(reversed(_clean(PurePosixPath(target).parts)))
                    continue
                if not pending:
                    loc.name = comp
                    break
                if not stat.S_ISDIR(st.st_mode):
                    raise ToolRefused(f"{shown!r}: {'/'.join((*loc.parts, comp))} is not a folder")
                if len(loc.stack) > MAX_DEPTH:
                    raise ToolRefused(f"{shown!r} is more than {MAX_DEPTH} folders deep")
                try:
                    sub = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                        raise
                    links += 1  # swapped since the stat: look at it again
                    if links > MAX_SYMLINKS:
                        raise _changed(shown) from None
                    pending.appendleft(comp)
                    continue
                loc.stack.append((sub, comp))
                self._check_protected(shown, loc.parts)
            self._check_protected(shown, loc.parts)
        except BaseException:
            loc.close()
            raise
        return loc

    def _check_protected(self, shown: str, parts: tuple[str, ...]) -> None:
        if parts and parts[0] == PROTECTED:
            raise ToolRefused(f"{shown!r} is inside .polpo/, Polpo's own folder; it is off limits")
        for p in self.protected:
            if parts[: len(p)] == p:
                raise ToolRefused(f"{shown!r} is Polpo's own {'/'.join(p)}; it is off limits")

    # -- walking ---------------------------------------------------------------

    def walk(self, dir_fd: int, prefix: str, *, recursive: bool, skip: frozenset[str]) -> Walk:
        """Entries below the open folder ``dir_fd`` (named ``prefix``), sorted, parents first."""
        return Walk(dir_fd, prefix, recursive=recursive, skip=skip)


@dataclass
class Entry:
    """One entry of a walk; ``dir_fd`` is its folder, open while the walk stays there."""

    dir_fd: int
    name: str
    rel: str
    kind: Kind


class Walk:
    """An iterative walk over open folder descriptors (no recursion, bounded depth).

    Symlinks are reported, never followed. ``too_deep`` counts the folders
    not entered because they were :data:`MAX_DEPTH` levels down.
    """

    def __init__(self, dir_fd: int, prefix: str, *, recursive: bool, skip: frozenset[str]) -> None:
        self.too_deep = 0
        self._recursive = recursive
        self._skip = skip
        self._start = (dir_fd, prefix)

    def __iter__(self) -> Iterator[Entry]:
        fd0, prefix = self._start
        first = os.dup(fd0)
        stack: list[tuple[int, str, Iterator[tuple[str, Kind]]]] = []
        try:
            stack.append((first, prefix, iter(_entries(first, prefix))))
            while stack:
                fd, pre, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    os.close(fd)
                    stack.pop()
                    continue
                name, kind = nxt
                if kind == "dir" and name in self._skip:
                    continue
                rel = f"{pre}/{name}" if pre and pre != "." else name
                yield Entry(fd, name, rel, kind)
                if not (self._recursive and kind == "dir"):
                    continue
                if len(stack) >= MAX_DEPTH:
                    self.too_deep += 1
                    continue
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # gone or swapped for a symlink since it was listed: not entered
                try:
                    children = _entries(sub, rel)
                except ToolRefused:
                    os.close(sub)
                    continue
                stack.append((sub, rel, iter(children)))
        finally:
            for fd, _, _ in stack:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _entries(fd: int, shown: str) -> list[tuple[str, Kind]]:
    out: list[tuple[str, Kind]] = []
    try:
        with os.scandir(fd) as it:
            for e in it:
                try:
                    kind: Kind = (
                        "link"
                        if e.is_symlink()
                        else "dir"
                        if e.is_dir(follow_symlinks=False)
                        else "file"
                        if e.is_file(follow_symlinks=False)
                        else "other"
                    )
                except OSError:
                    continue
                out.append((e.name, kind))
    except OSError as e:
        raise ToolRefused(f"cannot list {shown or '.'}: {e.strerror}") from None
    out.sort()
    return out


def _check_text(path: object) -> str:
    if not isinstance(path, str) or not path.strip():
        raise ToolRefused("give a path relative to the project directory")
    if "\x00" in path:
        raise ToolRefused("a path cannot contain a NUL character")
    return path.strip()


def _clean(parts: tuple[str, ...]) -> list[str]:
    return [p for p in parts if p not in ("", ".", "/")]


def _outside(shown: str, *, via_symlink: bool) -> ToolRefused:
    how = "through a symlink " if via_symlink else ""
    return ToolRefused(
        f"{shown!r} leads {how}outside the project directory; only paths inside the project are allowed"
    )
