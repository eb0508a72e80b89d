"""``polpo dashboard``: a fresh one-time sign-in link for the running serve's dashboard.

``polpo serve`` prints one link when it starts; this is how to get another
(a new browser, a lost terminal, a link already used). It asks the serve over
its API with the CLI's token from ``.polpo/serve.json``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from polpo.errors import PolpoError


class NoServeError(PolpoError):
    """No ``polpo serve`` of this project answers (not started, or stopped)."""


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)


def dashboard(
    ctx: typer.Context,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Also open the link in the default browser.")
    ] = False,
) -> None:
    """Print a one-time link that signs a browser in to the running serve's dashboard
    (valid 10 minutes, for one use)."""
    from polpo.cli.common import load
    from polpo.cli.serve_client import ServeUnreachable, ask_serve

    answer = ask_serve(load(ctx), "POST", "/api/v1/dashboard/link", json={})
    if isinstance(answer, ServeUnreachable):
        raise NoServeError(
            f"no polpo serve of this project answers at {answer.url} ({answer.reason}); "
            "start it with polpo serve, which prints a sign-in link itself"
        )
    url = answer.body.get("url") if isinstance(answer.body, dict) else None
    if answer.status != 200 or not isinstance(url, str):
        error = answer.body.get("error") if isinstance(answer.body, dict) else None
        raise NoServeError(f"polpo serve at {answer.url} gave no link: {error or answer.status}")
    typer.echo(url)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
