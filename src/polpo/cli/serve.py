"""``polpo serve``: the orchestrator, the channels and the HTTP API in one process."""

from __future__ import annotations

from typing import Annotated

import typer

from polpo.cli.common import load

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on (default: settings.server.host)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            help="Port (default: settings.server.port, 3890; 0 picks a free one).",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            metavar="KEY",
            help="Also accept Authorization: Bearer KEY (for scripts; required off loopback). "
            "Prefer $POLPO_API_KEY (or the variable settings.server.apiKeyEnv names): "
            "a key on the command line is visible to every user in ps.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option("--log-level", metavar="LEVEL", help="debug, info, warning or error."),
    ] = "info",
) -> None:
    """Run Polpo: the task runner, the WhatsApp/Telegram gateway, alerts, the HTTP API and dashboard.

    It prints a one-time link that signs your browser in to the dashboard
    (polpo dashboard prints a fresh one). The API answers only to this
    machine's names and settings.server.allowedHosts, refuses cross-site
    writes, and wants the dashboard's session, the CLI's token from
    .polpo/serve.json, or the API key.
    """
    import asyncio
    import logging

    from polpo.app import Polpo
    from polpo.cli.common import CliUsageError
    from polpo.logredact import install_log_redaction, secrets_in_url, secrets_named_by
    from polpo.serve import resolve_options, run_serve
    from polpo.store.engine import display_url

    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise CliUsageError(f"--log-level must be debug, info, warning or error; got {log_level!r}")
    loaded = load(ctx)
    options = resolve_options(loaded.config, host=host, port=port, api_key=api_key)
    if api_key is not None:
        env = loaded.config.settings.server.api_key_env
        typer.echo(
            f"Warning: --api-key is visible to every user of this machine (ps, /proc); "
            f"set {env} in the environment instead.",
            err=True,
        )
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S")
    # at debug, libraries log Bot API URLs (they carry the token): no secret in any line
    install_log_redaction(
        [
            *secrets_named_by(loaded.config),
            *([api_key] if api_key else []),
            *secrets_in_url(loaded.storage_url),  # POLPO_DATABASE_URL's password
        ]
    )
    for noisy in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))

    async def go() -> None:
        app = await Polpo.open(loaded)
        try:
            logging.getLogger("polpo.serve").info(
                "project %s, database %s", loaded.config.project, display_url(app.store.url)
            )
            await run_serve(app, options)
        finally:
            await app.close()

    asyncio.run(go())
