"""``polpo peers list|allow|revoke|link|unlink`` and ``polpo pair list|approve``.

The same :class:`~polpo.services.peers.PeerService` as ``/pair``, ``/link``
and the HTTP API. Approving a pairing from here queues the requester's
confirmation in the durable outbox: a running ``polpo serve`` sends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from polpo.cli.common import CLI_ACTOR, age, console, esc, print_json, table, with_app

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.services.peers import LinkResult, PairingApproved, PairingRequest, PeerInfo

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
PeerArg = Annotated[
    str,
    typer.Argument(help="Peer id: whatsapp:NUMBER, telegram:USER_ID, or a WhatsApp JID."),
]

peers_app = typer.Typer(
    help="Who may talk to Polpo: peers, the allowlist, links.", no_args_is_help=True
)
pair_app = typer.Typer(help="Pairing requests from unknown senders.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(peers_app, name="peers")
    app.add_typer(pair_app, name="pair")


def _access(p: PeerInfo) -> str:
    if not p.allowed:
        return f"no ({p.why})"
    if p.why == "linked" and p.via:
        return f"yes (linked: {p.via})"
    return f"yes ({p.why})"


@peers_app.command("list")
def list_(
    ctx: typer.Context,
    channel: Annotated[
        str | None, typer.Option("--channel", "-c", help="Only this channel (whatsapp, telegram).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Known peers (seen, allowlisted or in allowFrom) with their access, recent first."""
    from polpo.cli.common import CliUsageError
    from polpo.peerid import CHANNEL_TYPES

    if channel is not None and channel not in CHANNEL_TYPES:
        raise CliUsageError(f"--channel must be one of {', '.join(CHANNEL_TYPES)}; got {channel!r}")

    async def go(app: Polpo) -> list[PeerInfo]:
        return await app.peers.list(channel=channel)

    peers = with_app(ctx, go)
    if as_json:
        print_json([p.to_dict() for p in peers])
        return
    if not peers:
        console().print("No peers yet.")
        return
    t = table("PEER", "NAME", "ACCESS", "ADMIN", "LINKED TO", "LAST SEEN")
    for p in peers:
        t.add_row(
            esc(p.id),
            esc(p.display_name or "-"),
            esc(_access(p)),
            "yes" if p.is_admin else "",
            esc(p.linked_to or ("; ".join(p.linked) if p.linked else "-")),
            age(p.last_seen) if p.last_seen else "never",
        )
    console().print(t)


@peers_app.command("allow")
def allow(ctx: typer.Context, peer: PeerArg, as_json: JsonOpt = False) -> None:
    """Put a peer on the dynamic allowlist."""

    async def go(app: Polpo) -> PeerInfo:
        return await app.peers.allow(peer, by=CLI_ACTOR, source="cli")

    info = with_app(ctx, go)
    if as_json:
        print_json(info.to_dict())
        return
    console().print(f"Allowed {esc(info.id)} (on the allowlist).")


@peers_app.command("revoke")
def revoke(ctx: typer.Context, peer: PeerArg, as_json: JsonOpt = False) -> None:
    """Take a peer (and the peers linked with it) off the dynamic allowlist."""

    async def go(app: Polpo) -> PeerInfo:
        return await app.peers.revoke(peer, by=CLI_ACTOR)

    info = with_app(ctx, go)
    if as_json:
        print_json(info.to_dict())
        return
    console().print(f"Revoked {esc(info.id)} from the allowlist.")
    if info.allowed:
        console().print(
            f"It is still allowed ({esc(_access(info))}): change allowFrom/admins in polpo.json to stop that."
        )


@peers_app.command("link")
def link(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="The peer that stays canonical (its session is kept).")],
    b: Annotated[str, typer.Argument(help="The peer that joins it.")],
    as_json: JsonOpt = False,
) -> None:
    """Link two identities into one person: one session, one access status."""

    async def go(app: Polpo) -> LinkResult:
        return await app.peers.link(a, b, by=CLI_ACTOR)

    result = with_app(ctx, go)
    if as_json:
        print_json(result.to_dict())
        return
    verb = "Already linked" if result.already else "Linked"
    console().print(
        f"{verb}: {esc(', '.join(result.members))} (canonical {esc(result.canonical)})."
    )


@peers_app.command("unlink")
def unlink(ctx: typer.Context, peer: PeerArg, as_json: JsonOpt = False) -> None:
    """Take a peer out of its linked group."""

    async def go(app: Polpo) -> PeerInfo:
        return await app.peers.unlink(peer, by=CLI_ACTOR)

    info = with_app(ctx, go)
    if as_json:
        print_json(info.to_dict())
        return
    console().print(f"Unlinked {esc(info.id)}; its access now: {esc(_access(info))}.")


@pair_app.command("list")
def pair_list(
    ctx: typer.Context,
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Also approved and expired ones.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Pending pairing requests (codes valid 60 minutes)."""

    async def go(app: Polpo) -> tuple[list[PairingRequest], float]:
        return await app.peers.list_pairing(None if all_ else "pending"), app.clock.now()

    requests, now = with_app(ctx, go)
    if as_json:
        print_json([r.to_dict() for r in requests])
        return
    if not requests:
        console().print("No pending pairing requests." if not all_ else "No pairing requests.")
        return
    t = table("CODE", "PEER", "NAME", "STATUS", "ASKED", "EXPIRES IN")
    for r in requests:
        left = r.expires_at - now
        t.add_row(
            r.code,
            esc(r.peer_id),
            esc(r.display_name or "-"),
            r.status,
            age(r.created_at, now),
            f"{int(left // 60)}m" if r.status == "pending" else "-",
        )
    console().print(t)
    if not all_:
        console().print(f"Approve: polpo pair approve {requests[0].code}")


@pair_app.command("approve")
def pair_approve(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The 8-character code (case and dashes ignored).")],
    as_json: JsonOpt = False,
) -> None:
    """Let the requester in; they are told by the running `polpo serve`."""

    async def go(app: Polpo) -> PairingApproved:
        return await app.peers.approve_pairing(code, by=CLI_ACTOR)

    done = with_app(ctx, go)
    if as_json:
        print_json(done.to_dict())
        return
    console().print(
        f"Added {esc(done.label)} on {done.channel}. Their confirmation is queued; "
        "`polpo serve` sends it."
    )
