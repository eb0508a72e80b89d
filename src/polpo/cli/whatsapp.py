"""``polpo whatsapp …``: link, check and unlink the WhatsApp account.

Only typer and the standard library are imported here; the worker protocol,
segno and httpx are imported when a command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from polpo.config import LoadedConfig

app = typer.Typer(
    help="The WhatsApp account: link it (QR or phone code), check it, unlink it.",
    no_args_is_help=True,
)

DEFAULT_AUTH_DIR = ".polpo/whatsapp"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="whatsapp")


def _project(ctx: typer.Context) -> tuple[LoadedConfig, Path]:
    """The config and the credentials directory. Like every command, these need a
    project (``polpo init``): credentials and the serve to ask belong to one."""
    from polpo.cli.common import load
    from polpo.config import WhatsAppChannelConfig

    loaded = load(ctx)
    found = loaded.config.channel_of_type("whatsapp")
    auth = (
        found[1].auth_dir
        if found is not None and isinstance(found[1], WhatsAppChannelConfig)
        else DEFAULT_AUTH_DIR
    )
    return loaded, loaded.resolve(auth)


def _check_lease(loaded: LoadedConfig | None, auth_dir: Path, *, linking: bool = False) -> None:
    """Refuse when another process (maybe on another machine) holds the account's
    database lease. Only checks: the file lock is what this command holds."""
    if loaded is None:
        return
    import asyncio
    import time

    from polpo.errors import LockHeldError
    from polpo.store.engine import PROCESS_ID, Store, sqlite_path
    from polpo.store.leases import Lease, current

    url = loaded.storage_url
    path = sqlite_path(url)
    if url.startswith("sqlite") and (path is None or not path.exists()):
        return  # no database yet: nobody can hold a lease in it

    name = f"whatsapp:{auth_dir.resolve()}"

    async def read() -> Lease | None:
        store = await Store.open(url)
        try:
            return await current(store, name)
        finally:
            await store.close()

    held = asyncio.run(read())
    if held is None or held.expired(time.time()) or held.holder.startswith(PROCESS_ID):
        return
    until = time.strftime("%H:%M:%S UTC", time.gmtime(held.expires_at))
    what = f"WhatsApp is held by {held.holder} (database lease, until {until} unless renewed)"
    if linking and "(polpo serve)" in held.holder:
        # serve shows the QR code itself: say where, rather than only "stop it"
        raise LockHeldError(
            f"{what}. polpo serve links the account from its dashboard: open it and scan "
            "the QR code shown under Channels, or stop polpo serve and run this again"
        )
    raise LockHeldError(f"{what}; stop it first")


@app.command()
def login(
    ctx: typer.Context,
    phone: Annotated[
        str | None,
        typer.Option(
            "--phone",
            metavar="NUMBER",
            help="Link with an 8-character code typed on this phone instead of a QR code.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Link again even if an account is linked.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", metavar="SECONDS", help="Give up after this long.", min=5),
    ] = 180.0,
) -> None:
    """Link this project to a WhatsApp account (WhatsApp → Linked devices → Link a device)."""
    import asyncio

    from polpo.channels.whatsapp.session import LoginCallbacks
    from polpo.channels.whatsapp.session import login as do_login
    from polpo.cli.common import CliUsageError

    number: str | None = None
    if phone is not None:
        from polpo.peerid import PeerIdError, normalize_phone

        try:
            number = normalize_phone(phone)
        except PeerIdError:
            raise CliUsageError(
                f"--phone: {phone!r} is not a phone number; give it with the country code, "
                "e.g. --phone +39123456789"
            ) from None
    loaded, auth_dir = _project(ctx)
    _check_lease(loaded, auth_dir, linking=True)
    screen = _LoginScreen(sys.stdout.isatty())
    callbacks = LoginCallbacks(
        on_qr=screen.qr,
        on_pair_code=screen.pair_code,
        on_paired=screen.paired,
        on_tick=screen.tick,
        on_notice=screen.notice,
    )
    account = asyncio.run(
        do_login(auth_dir, phone=number, force=force, give_up_after=timeout, callbacks=callbacks)
    )
    screen.done()
    name = f" ({account.push_name})" if account.push_name else ""
    typer.echo(f"WhatsApp linked: +{account.phone}{name}. Credentials in {auth_dir}")


class _LoginScreen:
    """The QR code (redrawn when it rotates) and a countdown, or the phone code."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.shown = 0

    def qr(self, code: str, seconds: int) -> None:
        import io

        import segno

        buf = io.StringIO()
        segno.make(code, error="l").terminal(out=buf, compact=True, border=2)
        if self.tty and self.shown:
            sys.stdout.write("\x1b[2J\x1b[H")  # clear, so the new code replaces the old
        self.shown += 1
        sys.stdout.write(
            "Scan this QR code with WhatsApp on your phone:\n"
            "  Settings → Linked devices → Link a device\n\n"
        )
        sys.stdout.write(buf.getvalue())
        sys.stdout.write(f"\nThe code changes in {seconds} s.\n")
        sys.stdout.flush()

    def tick(self, left: int) -> None:
        if self.tty:
            sys.stdout.write(f"\x1b[1A\x1b[2KThe code changes in {left} s.\n")
            sys.stdout.flush()

    def pair_code(self, code: str) -> None:
        pretty = f"{code[:4]}-{code[4:]}" if len(code) == 8 and "-" not in code else code
        sys.stdout.write(
            f"Your link code: {pretty}\n"
            "On your phone: WhatsApp → Settings → Linked devices → Link a device →\n"
            "  Link with phone number instead, then type the code.\n"
        )
        sys.stdout.flush()

    def paired(self, phone: str) -> None:
        sys.stdout.write(
            f"Phone +{phone} accepted the link; finishing (WhatsApp restarts the connection once)…\n"
        )
        sys.stdout.flush()

    def notice(self, line: str) -> None:
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()

    def done(self) -> None:
        sys.stdout.flush()


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Do not connect to WhatsApp when no polpo serve answers."),
    ] = False,
) -> None:
    """Linked or not, the number, and whether a running polpo serve is connected
    (without one: a short live connection, unless --offline)."""
    import asyncio

    from polpo.channels.whatsapp.account import linked_account, lock_holder
    from polpo.channels.whatsapp.session import live_check
    from polpo.cli.serve_client import NO_SERVE
    from polpo.errors import LockHeldError

    loaded, auth_dir = _project(ctx)
    account = linked_account(auth_dir)
    holder = lock_holder(auth_dir)
    server_url, live, server_error = _ask_server(loaded)
    check: dict[str, Any] | None = None
    if account is not None and server_error is not None and holder is None and not offline:
        try:
            probe = asyncio.run(live_check(auth_dir))
            check = {"connected": probe.connected, "detail": probe.detail}
        except LockHeldError as e:
            check = {"connected": None, "detail": e.message}
    result: dict[str, Any] = {
        "linked": account is not None,
        "phone": account.phone if account else None,
        "name": account.push_name if account else None,
        "authDir": str(auth_dir),
        "heldBy": holder,
        "serve": {"url": server_url, "reachable": server_error is None, "channel": live},
        "liveCheck": check,
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    serve_holds = live is not None or (holder is not None and "polpo serve" in holder)
    if account is None and serve_holds:
        # login would refuse: serve holds the account and shows the QR code itself
        typer.echo(
            f"Linked:   no; polpo serve is waiting to link it: open its dashboard "
            f"({server_url}/) and scan the QR code under Channels"
        )
    elif account is None:
        typer.echo(f"Linked:   no (no credentials in {auth_dir}); run `polpo whatsapp login`")
    else:
        name = f" ({account.push_name})" if account.push_name else ""
        typer.echo(f"Linked:   yes, +{account.phone}{name}")
    if server_error is None and live is not None:
        detail = f" ({live['detail']})" if live.get("detail") else ""
        typer.echo(f"Serve:    polpo serve at {server_url}: WhatsApp {live.get('state')}{detail}")
    elif server_error is None:
        typer.echo(f"Serve:    polpo serve at {server_url} runs no WhatsApp channel")
    elif server_error == NO_SERVE:
        typer.echo(f"Serve:    no polpo serve running (nothing answers at {server_url})")
    else:
        typer.echo(
            f"Serve:    no answer from this project's polpo serve at {server_url} ({server_error})"
        )
    if holder:
        typer.echo(f"In use:   by {holder}")
    elif account is not None and server_error is not None:
        typer.echo("In use:   no process holds the account right now")
    if check is not None:
        typer.echo(f"Live:     {check['detail']}")


def _ask_server(loaded: LoadedConfig | None) -> tuple[str, dict[str, Any] | None, str | None]:
    """(server url, its WhatsApp channel row, error) from ``GET /api/v1/channels``.

    A serve of another project on that address is not this project's serve."""
    from polpo.cli.serve_client import ServeUnreachable, ask_serve

    health = ask_serve(loaded, "GET", "/api/v1/health")
    if isinstance(health, ServeUnreachable):
        return health.url, None, health.reason
    other = health.body.get("project") if isinstance(health.body, dict) else None
    if loaded is not None and isinstance(other, str) and other != loaded.config.project:
        return health.url, None, f"project {other!r}'s polpo serve answers there"
    answer = ask_serve(loaded, "GET", "/api/v1/channels")
    if isinstance(answer, ServeUnreachable):
        return answer.url, None, answer.reason
    if answer.status != 200:
        return answer.url, None, f"HTTP {answer.status}"
    rows = answer.body
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("channel") == "whatsapp":
            return answer.url, row, None
    return answer.url, None, None


@app.command()
def logout(ctx: typer.Context) -> None:
    """Unlink this device on WhatsApp's side when possible; always delete the local credentials."""
    import asyncio

    from polpo.channels.whatsapp.session import logout as do_logout

    loaded, auth_dir = _project(ctx)
    _check_lease(loaded, auth_dir)
    result = asyncio.run(do_logout(auth_dir))
    if result.account is None:
        gone = f" (removed {len(result.removed)} leftover file(s))" if result.removed else ""
        typer.echo(f"WhatsApp is not linked: nothing to log out{gone}.")
        return
    number = f"+{result.account.phone}"
    if result.remote:
        typer.echo(f"Unlinked {number} on WhatsApp and deleted the local credentials.")
    else:
        typer.echo(
            f"Deleted the local credentials of {number}, but could not unlink on WhatsApp's side "
            f'({result.why_not}): remove "Polpo" under Linked devices on your phone.'
        )
