"""Which folders ``run_command``'s sandbox hides, and which it must never show again.

``agents[].sandboxReadOnly`` shows folders read-only that the sandbox hides
otherwise — a toolchain in the home directory. It must not undo the sandbox:
found by the audit, ``"sandboxReadOnly": ["/"]`` showed ``/etc/shadow``,
other users' files in ``/tmp``, the whole home and the machine's ``/proc``
(every process's command line) to an agent's commands. The config is
therefore checked at load (:func:`read_only_refusal`, naming the JSON path),
and :mod:`polpo.runner.sandbox` checks each entry again at every command
(what a path resolves to can change) and hides again, inside a listed
folder, Polpo's own files and what other users may not read.

Pure and standard-library only: :mod:`polpo.config` uses it, and importing
:mod:`polpo.runner` from there would load the whole runner.
"""

from __future__ import annotations

import os

#: Replaced by fresh empty tmpfs (when they exist), besides the user's home directory.
EMPTY_DIRS = ("/tmp", "/var/tmp", "/run", "/home", "/root", "/mnt", "/media", "/srv")
#: Where files other users may not read are looked for, and hidden.
MASKED_TOPS = ("/etc", "/var", "/opt", "/usr/local")
#: Fresh inside the sandbox: the machine's own must never be shown instead.
FRESH = ("/proc", "/dev")
#: Polpo's own folder: never shown, whoever's project it is.
POLPO_DIR = ".polpo"


def within(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or inside it (both normalised, absolute)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def read_only_refusal(entry: str, home: str | None = None) -> str | None:
    """Why ``entry`` of ``sandboxReadOnly`` must be refused, or None when it may be shown.

    Refused: ``/``; a folder that holds something the sandbox hides or makes
    fresh (``/tmp``, ``/home``, the home directory itself, ``/etc``, ``/var``,
    ``/proc``, ``/usr`` for ``/usr/local`` …); anything inside ``/proc`` or
    ``/dev``; any path through a ``.polpo`` folder. A folder *inside* the home
    (``~/.pyenv``) or inside ``/opt`` is fine: that is what the setting is for.
    """
    if not entry.startswith(("/", "~")):
        return f'must be an absolute path or start with "~"; got "{entry}"'
    home = home if home is not None else os.path.expanduser("~")
    path = os.path.normpath(os.path.expanduser(entry))
    real = os.path.realpath(path)
    if POLPO_DIR in path.split("/") or POLPO_DIR in real.split("/"):
        return (
            f'"{entry}" is inside a .polpo folder: Polpo\'s own files are never shown to commands'
        )
    for p in {path, real}:
        if p == "/":
            return (
                f'"{entry}" would show the whole file system to commands; list only the '
                'folders a toolchain needs (e.g. "~/.pyenv")'
            )
        for fresh in FRESH:
            if within(p, fresh) or within(fresh, p):
                return f"\"{entry}\" would replace the sandbox's own {fresh} with the machine's"
        emptied = [*EMPTY_DIRS, *([home] if home not in ("", "/") else [])]
        for h in [*emptied, *MASKED_TOPS]:
            if within(h, p):
                what = (
                    "your home directory"
                    if h == home
                    else h
                    if h in emptied
                    else f"the files of {h} other users may not read"
                )
                return (
                    f'"{entry}" would show {what}, which the sandbox hides; list '
                    'only the folders a toolchain needs (e.g. "~/.pyenv")'
                )
    return None
