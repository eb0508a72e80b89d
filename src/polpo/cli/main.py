"""The ``polpo`` command.

Sub-apps live in their own modules; ``main()`` turns any
:class:`~polpo.errors.PolpoError` into one line on stderr and its exit code.
"""

from __future__ import annotations

import click
import typer

from polpo.cli import telegram
from polpo.errors import PolpoError

app = typer.Typer(
    name="polpo",
    help="Local-first host for AI agents, steered from WhatsApp and Telegram.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(telegram.app, name="telegram")


def main(argv: list[str] | None = None) -> int:
    try:
        result = app(args=argv, prog_name="polpo", standalone_mode=False)
    except PolpoError as e:
        typer.echo(f"error: {e}", err=True)
        return e.exit_code
    except click.exceptions.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        typer.echo("Aborted.", err=True)
        return 1
    return result if isinstance(result, int) else 0
