"""``polpo telegram …``: check the bot before (or beside) ``polpo serve``.

Only typer and the standard library are imported here; the Bot API client is
imported when a command runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Annotated

import typer

app = typer.Typer(
    help="The Telegram bot: is its token good, and can Polpo receive its updates?",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="telegram")


ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        metavar="PATH",
        help="Path to polpo.json (default: .polpo/polpo.json, POLPO_CONFIG).",
    ),
]


@dataclass(frozen=True)
class _Settings:
    token_env: str
    api_base_url: str
    #: how the config uses the bot, or None without a telegram channel in polpo.json
    summary: str | None


def _settings(config_path: str | None) -> _Settings:
    """The token variable and API root from polpo.json, or the defaults when
    there is no config (so a bot can be checked before ``polpo init``)."""
    from polpo.config import TelegramChannelConfig, find_config_path, load_config

    if config_path is None and not find_config_path().exists():
        return _Settings("TELEGRAM_BOT_TOKEN", "https://api.telegram.org", None)
    loaded = load_config(config_path)
    found = loaded.config.channel_of_type("telegram")
    if found is None or not isinstance(found[1], TelegramChannelConfig):
        return _Settings("TELEGRAM_BOT_TOKEN", "https://api.telegram.org", None)
    key, ch = found[0], found[1]
    gw = ch.gateway
    inbound = (
        f"inbound on, dmPolicy {gw.dm_policy}" if gw.enable_inbound else "inbound off (alerts only)"
    )
    return _Settings(ch.bot_token_env, ch.api_base_url, f'channel "{key}": {inbound}')


@app.command()
def status(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check the bot token (getMe) and how updates are delivered (webhook, pending count)."""
    import asyncio

    from polpo.channels.telegram.check import check_bot

    s = _settings(config)
    token = os.environ.get(s.token_env, "").strip() or None
    result = asyncio.run(check_bot(token, api_base_url=s.api_base_url, token_env=s.token_env))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "tokenEnv": s.token_env,
                    "botId": result.bot_id,
                    "username": result.username,
                    "name": result.name,
                    "webhookUrl": result.webhook_url or None,
                    "pendingUpdates": result.pending_updates,
                    "config": s.summary,
                }
            )
        )
        return
    handle = f"@{result.username}" if result.username else f"id {result.bot_id}"
    typer.echo(f"Token:    {s.token_env} is set and valid")
    typer.echo(f'Bot:      {handle} (id {result.bot_id}, "{result.name}")')
    if result.webhook_url:
        typer.echo(
            f"Updates:  a webhook is set ({result.webhook_url}): polpo serve cannot poll "
            "while it is; remove it with `polpo telegram delete-webhook`"
        )
    else:
        typer.echo("Updates:  no webhook, ready for long polling")
    typer.echo(f"Pending:  {result.pending_updates} update(s) waiting at Telegram")
    typer.echo(f"Config:   {s.summary or 'no telegram channel in polpo.json'}")


@app.command("delete-webhook")
def delete_webhook_command(config: ConfigOption = None) -> None:
    """Remove the bot's webhook so polpo serve can poll (pending updates are kept)."""
    import asyncio

    from polpo.channels.telegram.check import delete_webhook

    s = _settings(config)
    token = os.environ.get(s.token_env, "").strip() or None
    url = asyncio.run(delete_webhook(token, api_base_url=s.api_base_url, token_env=s.token_env))
    if url:
        typer.echo(f"Webhook {url} removed; polpo serve can poll the bot now.")
    else:
        typer.echo("No webhook was set; nothing to do.")
