"""Peers: who someone is, and whether they may talk to Polpo.

One code path for chat commands (``/pair``, ``/link``), the CLI (``polpo
peers …``, ``polpo pair …``) and the HTTP API:

* **Access** of a peer is decided per channel gateway (SPEC §3): admins,
  ``allowFrom`` entries, the dynamic allowlist (table ``allowlist``), or
  ``dmPolicy: open``. Linked peers share one access status: if one member of
  a linked group is allowed, all are (unless their own channel is disabled).
* **Pairing**: the gateway creates requests for unknown senders; this
  service approves them. Approving adds the requester to the allowlist and
  puts "you're in" in the durable outbox, so a running ``polpo serve`` sends
  it even when the approval came from another process (``polpo pair
  approve``). Wrong ``/pair`` codes are counted per peer; five within ten
  minutes lock that peer out of ``/pair`` for ten minutes.
* **Linking**: ``peers.linked_to`` of a joining peer points at the group's
  canonical peer (whose own ``linked_to`` is NULL). Links never chain: joining
  two groups re-points every member at one canonical peer.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from polpo.core.access import Access
from polpo.core.pairing import (
    CODE_LENGTH,
    LINK_CODE_SECONDS,
    PAIR_FAILURE_WINDOW,
    PAIR_FAILURES_KEPT,
    PAIRING_STATUSES,
    effective_status,
    new_code,
    normalize_code,
    pair_locked_until,
)
from polpo.errors import NotFoundError, PolpoError, ValidationError
from polpo.peerid import CHANNEL_TYPES, PeerIdError, display_peer, normalize_peer
from polpo.services.access import AccessRules
from polpo.services.context import ServiceContext, Tx
from polpo.store import peers as peer_store
from polpo.store.connection import Connection
from polpo.store.outbox import enqueue
from polpo.store.tables import allowlist, link_codes, pair_failures, pairing_requests, peers


class PairingError(PolpoError):
    """A pairing code cannot be approved: unknown, expired, already used, or the
    approver is locked out of ``/pair``. The message is meant for the user."""

    http_status = 409


class LinkError(PolpoError):
    """A link code or a link request cannot be used (unknown, expired, used, self)."""

    http_status = 409


def clock_time(ts: float) -> str:
    """``14:05 UTC``: a time a user in any zone can read."""
    return time.strftime("%H:%M UTC", time.gmtime(ts))


def peer_label(peer_id: str, display_name: str | None) -> str:
    """How a person is named in replies: "Mario (+39 333…)", or the number alone."""
    shown = display_peer(peer_id)
    return f"{display_name} ({shown})" if display_name else shown


@dataclass(frozen=True)
class PeerInfo:
    id: str
    channel: str
    display_name: str | None
    first_seen: float | None
    last_seen: float | None
    #: the canonical peer this one is linked to (None: it is canonical, or alone)
    linked_to: str | None
    allowed: bool
    #: why (not) allowed: admin | allowFrom | allowlist | open | linked | disabled |
    #: not allowed | no gateway
    why: str
    is_admin: bool
    #: for ``why == "linked"``: the linked peer whose access is shared
    via: str | None = None
    #: other members of its linked group
    linked: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return peer_label(self.id, self.display_name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "displayName": self.display_name,
            "firstSeen": self.first_seen,
            "lastSeen": self.last_seen,
            "linkedTo": self.linked_to,
            "linked": list(self.linked),
            "allowed": self.allowed,
            "why": self.why,
            "via": self.via,
            "isAdmin": self.is_admin,
        }


@dataclass(frozen=True)
class PairingRequest:
    code: str
    channel: str
    peer_id: str
    chat_id: str
    display_name: str | None
    #: pending | approved | expired (a pending request past ``expires_at`` is expired)
    status: str
    created_at: float
    expires_at: float
    approved_by: str | None
    approved_at: float | None
    #: None when ``polpo serve`` created it; "simulate:<pid>" from ``polpo simulate``
    owner: str | None = None

    @property
    def label(self) -> str:
        return peer_label(self.peer_id, self.display_name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "channel": self.channel,
            "peerId": self.peer_id,
            "chatId": self.chat_id,
            "displayName": self.display_name,
            "status": self.status,
            "createdAt": self.created_at,
            "expiresAt": self.expires_at,
            "approvedBy": self.approved_by,
            "approvedAt": self.approved_at,
        }


@dataclass(frozen=True)
class PairingApproved:
    """Who was added by approving a pairing code (the approver is told)."""

    code: str
    peer_id: str
    display_name: str | None
    channel: str
    #: the outbox row with the requester's confirmation (None if it was already queued)
    outbox_id: int | None

    @property
    def label(self) -> str:
        return peer_label(self.peer_id, self.display_name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "peerId": self.peer_id,
            "displayName": self.display_name,
            "channel": self.channel,
            "notified": True,
        }


@dataclass(frozen=True)
class LinkResult:
    """``peer_id`` now belongs to the group of ``canonical``."""

    peer_id: str
    canonical: str
    #: every peer of the group, canonical first
    members: tuple[str, ...]
    already: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "peerId": self.peer_id,
            "canonical": self.canonical,
            "members": list(self.members),
            "already": self.already,
        }


@dataclass(frozen=True)
class _PeerRow:
    id: str
    channel: str
    display_name: str | None
    first_seen: float | None
    last_seen: float | None
    linked_to: str | None


def confirmation_text(project: str) -> str:
    return (
        f"✅ You're in! An admin approved your access to **{project}**.\n"
        "Send /help to see what you can do, or just write."
    )


class PeerService:
    """Access, pairing approval and linking of peers (see the module doc)."""

    def __init__(self, ctx: ServiceContext, *, on_outbox: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        #: called after a commit that queued outbox rows (``app.outbox_ready.set``)
        self.on_outbox = on_outbox
        #: the config's access rules (the gateway decides with the same)
        self.rules = AccessRules(ctx.config)

    # -- reading ids ------------------------------------------------------------

    def normalize(self, raw: str) -> str:
        """A peer id as typed (``whatsapp:+39 123…``, a JID, ``telegram:42``) → canonical form.

        A bare number is accepted when exactly one channel is configured.
        """
        channels = {ch.type for ch in self.ctx.config.settings.notifications.channels.values()}
        default = next(iter(channels)) if len(channels) == 1 else None
        try:
            return normalize_peer(raw, default_channel=default)
        except PeerIdError as e:
            raise ValidationError(str(e)) from e

    # -- access -------------------------------------------------------------------

    def _info(self, row: _PeerRow, groups: dict[str, list[str]], allowlisted: set[str]) -> PeerInfo:
        canonical = row.linked_to or row.id
        members = groups.get(canonical, [canonical])
        access: Access = self.rules.decide(row.id, members, frozenset(allowlisted))
        return PeerInfo(
            id=row.id,
            channel=row.channel,
            display_name=row.display_name,
            first_seen=row.first_seen,
            last_seen=row.last_seen or None,
            linked_to=row.linked_to,
            allowed=access.allowed,
            why=access.why,
            is_admin=access.is_admin,
            via=access.via,
            linked=tuple(m for m in members if m != row.id),
        )

    async def list(self, channel: str | None = None) -> builtins.list[PeerInfo]:
        """Every known peer (seen, allowlisted or in ``allowFrom``), newest activity first."""
        async with self.ctx.read() as conn:
            rows = await _peer_rows(conn)
            allowed_ids = set((await conn.execute(sa.select(allowlist.c.peer_id))).scalars().all())
        known = {r.id for r in rows}
        extra: builtins.list[str] = [p for p in sorted(allowed_ids) if p not in known]
        for ch in self.ctx.config.settings.notifications.channels.values():
            _, from_cfg = ch.allowed_peers()
            for p in [*sorted(from_cfg), *ch.admin_peers()]:
                if p not in known and p not in extra:
                    extra.append(p)
        for p in extra:
            rows.append(_PeerRow(p, p.split(":", 1)[0], None, None, None, None))
        groups = _groups(rows)
        out = [self._info(r, groups, allowed_ids) for r in rows]
        if channel:
            out = [p for p in out if p.channel == channel]
        out.sort(key=lambda p: (-(p.last_seen or 0), p.id))
        return out

    async def get(self, peer: str) -> PeerInfo:
        peer_id = self.normalize(peer)
        for info in await self.list():
            if info.id == peer_id:
                return info
        raise NotFoundError(f"no peer {peer_id} (it has never written and is not allowed)")

    async def access(self, peer_id: str) -> PeerInfo:
        """The access status of ``peer_id`` (known or not)."""
        async with self.ctx.read() as conn:
            row = await _peer_row(conn, peer_id)
            canonical = row.linked_to if row and row.linked_to else peer_id
            member_ids = await _members(conn, canonical)
            allowed_ids = set(
                (
                    await conn.execute(
                        sa.select(allowlist.c.peer_id).where(
                            allowlist.c.peer_id.in_([*member_ids, peer_id])
                        )
                    )
                )
                .scalars()
                .all()
            )
        if row is None:
            row = _PeerRow(peer_id, peer_id.split(":", 1)[0], None, None, None, None)
        return self._info(row, {canonical: member_ids}, allowed_ids)

    async def is_allowed(self, peer_id: str) -> bool:
        return (await self.access(peer_id)).allowed

    # -- dynamic allowlist ----------------------------------------------------------

    async def allow(self, peer: str, *, by: str, source: str = "cli") -> PeerInfo:
        """Put ``peer`` on the dynamic allowlist (idempotent).

        A pending pairing request of the peer is approved with it, so the
        requester is told they are in.
        """
        peer_id = self.normalize(peer)
        queued = False
        async with self.ctx.tx() as tx:
            await _allow_in(tx, peer_id, by=by, source=source)
            # someone allowed while their pairing code waits: approve it, so they are told
            rows = (
                await tx.conn.execute(
                    sa.select(pairing_requests)
                    .where(
                        pairing_requests.c.peer_id == peer_id,
                        pairing_requests.c.status == "pending",
                        pairing_requests.c.expires_at > tx.now,
                    )
                    .with_for_update()
                )
            ).all()
            for row in rows:
                done = await self._approve_in(tx, _pairing_from_row(row, tx.now), by)
                queued = queued or done.outbox_id is not None
        if queued and self.on_outbox is not None:
            self.on_outbox()
        return await self.access(peer_id)

    async def revoke(self, peer: str, *, by: str) -> PeerInfo:
        """Take ``peer`` (and the peers linked with it) off the dynamic allowlist.

        Returns the access left afterwards: ``allowFrom`` or ``admins`` in the
        config still let a peer in; the config decides those.
        """
        peer_id = self.normalize(peer)
        async with self.ctx.tx() as tx:
            canonical = await _canonical(tx.conn, peer_id)
            members = await _members(tx.conn, canonical)
            group = sorted({peer_id, *members})
            removed = (
                (
                    await tx.conn.execute(
                        allowlist.delete()
                        .where(allowlist.c.peer_id.in_(group))
                        .returning(allowlist.c.peer_id)
                    )
                )
                .scalars()
                .all()
            )
            if not removed:
                raise NotFoundError(f"{peer_id} is not on the dynamic allowlist")
            for p in removed:
                await tx.emit("peer:revoked", {"peerId": p, "by": by})
        return await self.access(peer_id)

    # -- pairing ---------------------------------------------------------------------

    async def list_pairing(self, status: str | None = "pending") -> builtins.list[PairingRequest]:
        """Pairing requests by effective status (``None`` or ``"all"``: every one), newest first."""
        if status not in (None, "all", *PAIRING_STATUSES):
            raise ValidationError(
                f"unknown pairing status {status!r}; use one of {', '.join(PAIRING_STATUSES)}, all"
            )
        now = self.ctx.clock.now()
        async with self.ctx.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(pairing_requests).order_by(
                        pairing_requests.c.created_at.desc(), pairing_requests.c.code
                    )
                )
            ).all()
        out = [_pairing_from_row(r, now) for r in rows]
        if status not in (None, "all"):
            out = [r for r in out if r.status == status]
        return out

    async def pair_locked_until(self, peer_id: str) -> float | None:
        """When ``peer_id``'s ``/pair`` lockout ends, or None when it is not locked."""
        async with self.ctx.read() as conn:
            return await _locked_until(conn, peer_id, self.ctx.clock.now())

    async def approve_pairing(self, code: str, *, by: str) -> PairingApproved:
        """Approve the pairing request with ``code``; the requester is told they are in.

        ``by`` is who approves: a peer id for ``/pair`` (wrong codes count
        towards the lockout), else "cli" / "api".
        """
        wanted = normalize_code(code)
        counts = _is_peer(by)
        failed_lock: float | None = None
        result: PairingApproved | None = None
        async with self.ctx.tx() as tx:
            if counts:
                locked = await _locked_until(tx.conn, by, tx.now)
                if locked is not None:
                    raise PairingError(_locked_message(locked, tx.now))
            # locked: a second approver (another process) waits, then sees it approved
            row = (
                await tx.conn.execute(
                    sa.select(pairing_requests)
                    .where(pairing_requests.c.code == wanted)
                    .with_for_update()
                )
            ).first()
            if row is None:
                if counts:
                    await tx.conn.execute(pair_failures.insert().values(peer_id=by, at=tx.now))
                    await tx.conn.execute(
                        pair_failures.delete().where(
                            pair_failures.c.peer_id == by,
                            pair_failures.c.at < tx.now - 2 * PAIR_FAILURE_WINDOW,
                        )
                    )
                    failed_lock = await _locked_until(tx.conn, by, tx.now)
            else:
                req = _pairing_from_row(row, tx.now)
                _check_pairing_open(req)
                result = await self._approve_in(tx, req, by)
        if result is None:
            shown = wanted or code.strip() or "(empty)"
            message = f"No pairing request has code {shown}. Check the code: it has {CODE_LENGTH} characters."
            if failed_lock is not None:
                message += " " + _locked_message(failed_lock, self.ctx.clock.now())
            raise PairingError(message)
        if result.outbox_id is not None and self.on_outbox is not None:
            self.on_outbox()
        return result

    async def _approve_in(self, tx: Tx, req: PairingRequest, by: str) -> PairingApproved:
        res = await tx.conn.execute(
            pairing_requests.update()
            .where(pairing_requests.c.code == req.code, pairing_requests.c.status == "pending")
            .values(status="approved", approved_by=by, approved_at=tx.now)
        )
        if res.rowcount != 1:  # compare-and-set: someone else approved (or expired) it first
            row = (
                await tx.conn.execute(
                    sa.select(pairing_requests).where(pairing_requests.c.code == req.code)
                )
            ).one()
            _check_pairing_open(_pairing_from_row(row, tx.now))
        await _allow_in(tx, req.peer_id, by=by, source="pairing")
        await peer_store.paired(tx.conn, req.peer_id, req.channel, req.display_name, req.created_at)
        outbox_id = await enqueue(
            tx.conn,
            channel=req.channel,
            chat_id=req.chat_id,
            peer_id=req.peer_id,
            text=confirmation_text(self.ctx.config.project),
            now=tx.now,
            ref=f"pairing:{req.code}",
            dedupe_key=f"pairing:{req.code}:granted",
            owner=req.owner,
        )
        await tx.emit(
            "peer:paired",
            {
                "peerId": req.peer_id,
                "displayName": req.display_name,
                "code": req.code,
                "channel": req.channel,
                "by": by,
            },
        )
        return PairingApproved(req.code, req.peer_id, req.display_name, req.channel, outbox_id)

    # -- linking -------------------------------------------------------------------

    async def canonical(self, peer_id: str) -> str:
        """The canonical peer of ``peer_id``'s linked group (itself when not linked)."""
        async with self.ctx.read() as conn:
            return await _canonical(conn, peer_id)

    async def create_link_code(self, peer_id: str) -> str:
        """A one-time code (10 minutes) that links another identity to ``peer_id``'s group."""
        async with self.ctx.tx() as tx:
            await tx.conn.execute(
                link_codes.delete().where(
                    link_codes.c.peer_id == peer_id, link_codes.c.used_at.is_(None)
                )
            )
            while True:
                code = new_code()
                taken = (
                    await tx.conn.execute(
                        sa.select(link_codes.c.code).where(link_codes.c.code == code)
                    )
                ).first()
                if taken is None:
                    break
            await tx.conn.execute(
                link_codes.insert().values(
                    code=code,
                    peer_id=peer_id,
                    created_at=tx.now,
                    expires_at=tx.now + LINK_CODE_SECONDS,
                )
            )
        return code

    async def use_link_code(self, peer_id: str, code: str) -> LinkResult:
        """``peer_id`` sends ``/link CODE``: it joins the group of the code's creator."""
        wanted = normalize_code(code)
        async with self.ctx.tx() as tx:
            row = (
                await tx.conn.execute(sa.select(link_codes).where(link_codes.c.code == wanted))
            ).first()
            if row is None:
                raise LinkError(
                    f"No link code {wanted or code.strip()}. Send /link on your other channel to get one."
                )
            if row.used_at is not None:
                raise LinkError(f"Link code {wanted} was already used.")
            if row.expires_at <= tx.now:
                raise LinkError(
                    f"Link code {wanted} expired. Send /link on your other channel for a new one."
                )
            target = await _canonical(tx.conn, row.peer_id)
            if target == await _canonical(tx.conn, peer_id):
                raise LinkError(
                    "That code belongs to this identity. Send /link CODE from your other channel."
                )
            await tx.conn.execute(
                link_codes.update()
                .where(link_codes.c.code == wanted)
                .values(used_at=tx.now, used_by=peer_id)
            )
            return await _link_in(tx, target, peer_id, by=peer_id)

    async def link(self, a: str, b: str, *, by: str) -> LinkResult:
        """Link ``b`` to ``a`` (``a``'s canonical peer stays canonical); no code needed."""
        a_id, b_id = self.normalize(a), self.normalize(b)
        if a_id == b_id:
            raise ValidationError(f"cannot link {a_id} with itself")
        async with self.ctx.tx() as tx:
            return await _link_in(tx, await _canonical(tx.conn, a_id), b_id, by=by)

    async def unlink(self, peer: str, *, by: str = "cli") -> PeerInfo:
        """Take ``peer`` out of its linked group (it gets its own session and access again)."""
        peer_id = self.normalize(peer)
        async with self.ctx.tx() as tx:
            row = await _peer_row(tx.conn, peer_id)
            members = await _members(tx.conn, peer_id)
            if row is None or (row.linked_to is None and len(members) <= 1):
                raise NotFoundError(f"{peer_id} is not linked to anyone")
            if row.linked_to is not None:
                await _set_linked(tx.conn, [peer_id], None)
            else:
                # the canonical peer leaves: the next oldest member leads the rest
                rest = [m for m in members if m != peer_id]
                await _set_linked(tx.conn, [rest[0]], None)
                await _set_linked(tx.conn, rest[1:], rest[0])
            await tx.emit("peer:unlinked", {"peerId": peer_id, "by": by})
        return await self.access(peer_id)


# -- helpers over a connection ---------------------------------------------------------


def _check_pairing_open(req: PairingRequest) -> None:
    """The one error for a code that can no longer be approved."""
    if req.status == "approved":
        who = display_peer(req.approved_by or "someone")
        raise PairingError(f"Code {req.code} was already used: {req.label} was added by {who}.")
    if req.status != "pending":
        raise PairingError(
            f"Code {req.code} expired at {clock_time(req.expires_at)}. "
            f"{req.label} gets a new code when they write again."
        )


def _is_peer(by: str) -> bool:
    channel, sep, ext = by.partition(":")
    return bool(sep and ext) and channel in CHANNEL_TYPES


def _locked_message(until: float, now: float) -> str:
    minutes = max(1, int((until - now + 59) // 60))
    return (
        f"Too many wrong codes: /pair is locked for you until {clock_time(until)} "
        f"(about {minutes} min)."
    )


async def _locked_until(conn: Connection, peer_id: str, now: float) -> float | None:
    """When ``peer_id``'s ``/pair`` lockout ends (:func:`polpo.core.pairing.pair_locked_until`)."""
    times = (
        (
            await conn.execute(
                sa.select(pair_failures.c.at)
                .where(
                    pair_failures.c.peer_id == peer_id,
                    pair_failures.c.at > now - PAIR_FAILURES_KEPT,
                )
                .order_by(pair_failures.c.at)
            )
        )
        .scalars()
        .all()
    )
    return pair_locked_until(times, now)


def _pairing_from_row(row: Any, now: float) -> PairingRequest:
    m = row._mapping
    status = effective_status(m["status"], m["expires_at"], now)
    return PairingRequest(
        code=m["code"],
        channel=m["channel"],
        peer_id=m["peer_id"],
        chat_id=m["chat_id"],
        display_name=m["display_name"],
        status=status,
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        approved_by=m["approved_by"],
        approved_at=m["approved_at"],
        owner=m["owner"],
    )


async def _allow_in(tx: Tx, peer_id: str, *, by: str, source: str) -> bool:
    return await peer_store.allow(tx, peer_id, by=by, source=source)


def _row(r: Any) -> _PeerRow:
    return _PeerRow(r.id, r.channel, r.display_name, r.first_seen, r.last_seen, r.linked_to)


async def _peer_rows(conn: Connection) -> list[_PeerRow]:
    return [_row(r) for r in (await conn.execute(sa.select(peers))).all()]


async def _peer_row(conn: Connection, peer_id: str) -> _PeerRow | None:
    r = (await conn.execute(sa.select(peers).where(peers.c.id == peer_id))).first()
    return _row(r) if r is not None else None


async def _canonical(conn: Connection, peer_id: str) -> str:
    return await peer_store.canonical(conn, peer_id)


async def _members(conn: Connection, canonical: str) -> list[str]:
    """The canonical peer first, then the peers linked to it (oldest first)."""
    return await peer_store.members(conn, canonical)


def _groups(rows: Iterable[_PeerRow]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for r in rows:
        if r.linked_to:
            groups.setdefault(r.linked_to, [r.linked_to]).append(r.id)
    return groups


async def _set_linked(conn: Connection, ids: Iterable[str], to: str | None) -> None:
    await peer_store.set_linked(conn, ids, to)


async def _link_in(tx: Tx, target: str, joining: str, *, by: str) -> LinkResult:
    """Merge ``joining``'s group into ``target``'s (:func:`polpo.store.peers.link`)."""
    plan = await peer_store.link(tx, target, joining, by=by)
    members = tuple(await _members(tx.conn, target))
    return LinkResult(joining, target, members, already=plan.already)
