"""Helpers every ``polpo`` command shares: finding the project, opening it,
printing tables or JSON.

Only the standard library and typer are imported at module level; Rich, the
store and the services are imported inside the functions that use them, so
``polpo --help`` does not pay for them. Feature modules (``cli/simulate.py``,
``cli/whatsapp.py``, …) import these helpers from here.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from polpo.errors import ValidationError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from polpo.app import Polpo
    from polpo.config import LoadedConfig

T = TypeVar("T")

#: Who the CLI acts as in the event log and in ``resolvedBy``.
CLI_ACTOR = "cli"


class CliUsageError(ValidationError):
    """A command was called in a way it cannot work (exit code 2, like a usage error)."""

    exit_code = 2


@dataclass
class CliState:
    """What the root callback learned from global options (``--config``)."""

    config_path: str | None = None


def cli_state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliState) else CliState()


def load(ctx: typer.Context) -> LoadedConfig:
    """The validated config named by ``--config`` / ``POLPO_CONFIG`` / ``./.polpo/polpo.json``."""
    from polpo.config import load_config

    return load_config(cli_state(ctx).config_path)


def with_app(ctx: typer.Context, fn: Callable[[Polpo], Awaitable[T]]) -> T:
    """Load the config, open the project, run ``fn(app)`` to completion, close it."""
    import asyncio

    from polpo.app import Polpo

    loaded = load(ctx)

    async def runner() -> T:
        app = await Polpo.open(loaded)
        try:
            return await fn(app)
        finally:
            await app.close()

    return asyncio.run(runner())


# -- output ----------------------------------------------------------------------


def print_json(data: Any) -> None:
    """Machine output: indented JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def table(*columns: str, title: str | None = None) -> Table:
    from rich import box
    from rich.table import Table

    t = Table(
        title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, show_edge=False
    )
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


def esc(text: object) -> str:
    """Text from users and agents printed literally (Rich would read ``[x]`` as markup)."""
    from rich.markup import escape

    return escape("" if text is None else str(text))


def age(ts: float | None, now: float | None = None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``: how long ago ``ts`` was."""
    if ts is None:
        return "-"
    seconds = max(0.0, (now if now is not None else time.time()) - ts)
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def when(ts: float | None) -> str:
    """A local date and time, or ``-``."""
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def split_csv(values: list[str] | None) -> list[str] | None:
    """``--status pending,running --status done`` → ``[pending, running, done]``."""
    if not values:
        return None
    out = [v.strip() for raw in values for v in raw.split(",") if v.strip()]
    return out or None
