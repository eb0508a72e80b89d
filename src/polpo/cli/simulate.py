"""``polpo simulate`` and ``polpo chat``: the gateway without a phone (SPEC §13)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from polpo.cli.common import CliUsageError, print_json, with_app


def register(root: typer.Typer) -> None:
    root.command("simulate")(simulate)
    root.command("chat")(chat)


def simulate(
    ctx: typer.Context,
    channel: Annotated[
        str, typer.Argument(help="The channel it arrives on: whatsapp, telegram or memory.")
    ],
    sender: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="ID",
            help="Who sends it: a phone number, a Telegram user id or a peer id.",
        ),
    ],
    text: Annotated[
        str, typer.Argument(help="The message text (a file's caption with --audio/--image).")
    ] = "",
    name: Annotated[str | None, typer.Option("--name", help="The sender's display name.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcome and replies as JSON.")
    ] = False,
    audio: Annotated[
        Path | None,
        typer.Option("--audio", metavar="FILE", help="Send this audio file as a voice note."),
    ] = None,
    image: Annotated[
        Path | None, typer.Option("--image", metavar="FILE", help="Send this picture.")
    ] = None,
    document: Annotated[
        Path | None,
        typer.Option("--document", metavar="FILE", help="Send this file as a document."),
    ] = None,
) -> None:
    """Put one message through the real gateway (policy, pairing, commands, sessions, chat);
    print each reply it would send. Nothing goes to any network."""
    from polpo.gateway.local import SimulatedFile, simulated_file
    from polpo.gateway.local import simulate as run_simulate

    given = [(o, p) for o, p in (("audio", audio), ("image", image), ("document", document)) if p]
    if len(given) > 1:
        raise CliUsageError("give one of --audio, --image, --document")
    if not given and not text:
        raise CliUsageError("give the message text, or a file with --audio, --image or --document")
    file: SimulatedFile | None = simulated_file(*given[0]) if given else None

    result = with_app(
        ctx, lambda app: run_simulate(app, channel, sender, text, name=name, file=file)
    )
    if as_json:
        print_json(result.to_dict())
        return
    for reply in result.replies:
        typer.echo(reply.text)
    if not result.replies:
        sys.stderr.write(
            f"(no reply: {result.status}{': ' + result.outcome if result.outcome else ''})\n"
        )


def chat(ctx: typer.Context) -> None:
    """Talk to the project's agent from the terminal, as its owner (admin).
    /quit or Ctrl-D ends; Ctrl-C ends at once."""
    from polpo.cli.terminal import LineReader
    from polpo.gateway.local import chat_session

    interactive = sys.stdin.isatty()
    reader = LineReader()

    async def read_line() -> str | None:
        return await reader.read_line("you> " if interactive else "")

    def write(text: str) -> None:
        typer.echo(f"polpo> {text}" if interactive else text)

    if interactive:
        typer.echo(
            "Talking to the project's agent as its owner. /help for commands, "
            "/quit or Ctrl-D to leave."
        )
    try:
        with_app(ctx, lambda app: chat_session(app, read_line, write))
    except KeyboardInterrupt:
        if interactive:
            typer.echo("")  # the shell's prompt starts on a line of its own
        raise
    if interactive and reader.at_eof:  # Ctrl-D left the cursor after the prompt
        typer.echo("")
