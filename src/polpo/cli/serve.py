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
            help="Require Authorization: Bearer KEY on /api/v1 (default: $POLPO_API_KEY, "
            "or the variable settings.server.apiKeyEnv names). Needed off loopback.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option("--log-level", help="debug, info, warning or error."),
    ] = "info",
) -> None:
    """Run Polpo: the task runner, the WhatsApp/Telegram gateway, alerts, the HTTP API and dashboard."""
    import asyncio
    import logging

    from polpo.app import Polpo
    from polpo.cli.common import CliUsageError
    from polpo.serve import resolve_options, run_serve

    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise CliUsageError(f"--log-level must be debug, info, warning or error; got {log_level!r}")
    loaded = load(ctx)
    options = resolve_options(loaded.config, host=host, port=port, api_key=api_key)
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S")
    for noisy in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))

    async def go() -> None:
        app = await Polpo.open(loaded)
        try:
            logging.getLogger("polpo.serve").info(
                "project %s, database %s", loaded.config.project, app.store.url
            )
            await run_serve(app, options)
        finally:
            await app.close()

    asyncio.run(go())
