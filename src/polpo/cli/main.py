"""The ``polpo`` command: the Typer app, the global options and ``main()``.

Each feature adds its commands with ONE line in :data:`COMMAND_MODULES`: a
module under ``polpo.cli`` with a ``register(app: typer.Typer) -> None``
function. Modules import only typer and the standard library at module level
(heavy imports go inside the commands) so ``polpo --help`` stays fast.

``main()`` is the only place errors become output: a :class:`PolpoError` or
a usage error is one ``Error: …`` line on stderr and a non-zero exit code,
never a traceback; Ctrl-C exits 130 quietly.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from polpo.cli.common import CliState
from polpo.cli.common import with_app as with_app  # re-exported for feature modules
from polpo.errors import ConfigError, PolpoError

app = typer.Typer(
    name="polpo",
    help="Polpo: a local-first host for AI agents, steered from WhatsApp and Telegram.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            envvar="POLPO_CONFIG",
            metavar="PATH",
            help="Config file (default: ./.polpo/polpo.json).",
            show_default=False,
        ),
    ] = None,
) -> None:
    ctx.obj = CliState(config_path=config)


#: One line per feature. Each module has ``register(app)``.
COMMAND_MODULES: list[str] = [
    "polpo.cli.project",  # init, config check, status, agents
    "polpo.cli.tasks",  # task add|list|show|runs|cancel|retry
    "polpo.cli.missions",  # mission add|list|show|start|run|cancel
    "polpo.cli.run",  # run (drain the task queue once)
    "polpo.cli.approvals",  # approvals list|show|approve|reject
    "polpo.cli.serve",  # serve
    "polpo.cli.dashboard",  # dashboard (a fresh sign-in link for serve's dashboard)
    "polpo.cli.telegram",  # telegram status|delete-webhook
    "polpo.cli.peers",  # peers list|allow|revoke|link|unlink, pair list|approve
    "polpo.cli.simulate",  # simulate, chat
    "polpo.cli.whatsapp",  # whatsapp login|status|logout
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


# -- entry point -----------------------------------------------------------------


def _click_errors() -> tuple[type[BaseException], ...]:
    """The usage-error classes of the click typer runs on.

    Recent typer vendors click as ``typer._click``; older releases use click itself.
    """
    found: list[type[BaseException]] = []
    for mod in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(mod).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def error_line(exc: PolpoError) -> str:
    """One line for a deliberate error; a config error names its first path."""
    if isinstance(exc, ConfigError) and exc.issues:
        path, message = exc.issues[0]
        source = exc.source or "polpo.json"
        more = len(exc.issues) - 1
        tail = (
            f" (and {more} more problem{'s' if more > 1 else ''}; run `polpo config check`)"
            if more
            else ""
        )
        return f"{source}: {path}: {message}{tail}"
    return " ".join(exc.message.split())


def _fail(message: str) -> None:
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    from typer.main import get_command

    from polpo.cli.helptext import readable

    usage_errors = _click_errors()
    command = get_command(app)
    readable(command)
    try:
        rv: Any = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="polpo",
            standalone_mode=False,
        )
    except PolpoError as e:
        _fail(error_line(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except typer.Abort:
        return 130
    except usage_errors as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `polpo task`: show its help
            sys.stdout.write(e.format_message() + "\n")  # type: ignore[attr-defined]
            return 0
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = " ".join(e.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
        _fail(message + hint)
        return int(getattr(e, "exit_code", 2))
    except BrokenPipeError:
        return 1
    return rv if isinstance(rv, int) else 0


def main() -> None:
    """The ``polpo`` console script."""
    code = run()
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    raise SystemExit(code)
