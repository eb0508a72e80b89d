"""Help that shows names people read (``TITLE``, ``ID``, ``N``), never Python types.

Recent typer prints each parameter's Python type in help (``{title}``,
``title <str>``, ``--depends-on <list[str]>``, ``-n <int range>``); older
releases print click's (``TEXT``, ``INTEGER RANGE``). Options of ours name
their metavar; :func:`readable` walks the command tree once before parsing
so that arguments (which typer decorates with their type whatever their
metavar) show as their metavar alone, and an option added without one shows
its name in capitals rather than a type.
"""

from __future__ import annotations

from typing import Any

_READABLE: dict[type, type] = {}


def readable(command: Any) -> None:
    """Give every parameter under ``command`` (a click command or group) a plain metavar."""
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") == "argument":
            if param.metavar is None:
                param.metavar = (param.name or "value").upper()
            param.__class__ = _readable_argument(type(param))
        elif (
            getattr(param, "param_type_name", "") == "option"
            and param.metavar is None
            and not param.is_flag
            and not param.count
        ):
            param.metavar = (param.name or "value").upper()
    for sub in getattr(command, "commands", {}).values():
        readable(sub)


def _readable_argument(cls: type) -> type:
    """``cls`` with a usage piece of ``NAME`` / ``[NAME]`` and no type beside its name."""
    if getattr(cls, "_polpo_readable", False):
        return cls
    found = _READABLE.get(cls)
    if found is not None:
        return found

    class ReadableArgument(cls):  # type: ignore[misc]
        _polpo_readable = True

        def get_usage_pieces(self, ctx: Any) -> list[str]:
            name = str(self.metavar)
            if self.nargs != 1:
                name += "…"
            return [name if self.required else f"[{name}]"]

        def display_type_rich(self, ctx: Any) -> str | None:
            return None

    ReadableArgument.__name__ = cls.__name__
    _READABLE[cls] = ReadableArgument
    return ReadableArgument
