"""Admission: may this message go on, and as whom?

Before a message is stored, :meth:`Admission.judge` decides in the write
transaction that will store it: cheap checks on the message alone
(:func:`precheck`), the sender's identity (LID merged, linked group
resolved), our own echoes in a self-chat, and access (SPEC §3). A message
whose sender is not admitted is stored as a trace only (channel, message
id, times, outcome) and finished there; an admitted one is stored whole.
:meth:`Admission.decide` then settles it (for a queued message, judged again
in its turn). The result is typed:

- :class:`Admitted` — go on, with the identity (its peer row touched: only
  admitted senders get one), the access decision and (for free text) the
  session read in the same transaction;
- :class:`Finished` — nothing more to do: the message was ignored (its
  inbox row says why), or answered here with a pairing code.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from polpo.channels.base import InboundMessage
from polpo.config import GatewayConfig
from polpo.core.access import SELF_CHAT, Access, needs_allowlist
from polpo.gateway import commands, inbox
from polpo.gateway.identity import Group, group_of, merge_lid, peer_id_of, touch
from polpo.gateway.pairing import request_pairing
from polpo.gateway.sessions import Session, open_session
from polpo.peerid import PeerIdError
from polpo.services.access import AccessRules
from polpo.store import outbox, peers
from polpo.store.tx import Tx

log = logging.getLogger(__name__)

#: Channel message ids of our own recent sends remembered (a self-chat echoes them back).
REMEMBER_SENT = 2_000


@dataclass(frozen=True)
class Admitted:
    """The message goes on to routing."""

    identity: Group
    access: Access
    #: the session, read in the same transaction for free text (saves a round trip)
    session: Session | None = None
    #: turns finished for this person when it was read; changed → read again
    turns_seen: int = 0


@dataclass(frozen=True)
class Finished:
    """Admission settled the message; its inbox row is already marked."""

    #: "ignored": nothing sent; "pairing": a pairing code is in the outbox
    kind: Literal["ignored", "pairing"]
    #: why it was ignored, or what happened to the pairing request
    why: str
    #: the access decision, when access is what finished it
    access: Access | None = None

    @property
    def stat(self) -> str:
        """The :attr:`Gateway.stats` key."""
        return f"{self.kind}:{self.why}"


def precheck(msg: InboundMessage, gw: GatewayConfig | None) -> str | None:
    """Why a message is ignored before anyone is looked up, or None to go on."""
    if gw is None:
        return "no gateway for this channel"
    if not gw.enable_inbound:
        return "inbound disabled"
    if gw.dm_policy == "disabled":
        return "disabled"
    if msg.is_group and gw.group_policy != "open":
        return "group"
    if msg.is_self_chat:
        if not gw.self_chat:
            return "self-chat off"
    elif msg.is_from_me:
        return "from me"
    if msg.kind not in ("text", "edit", "reaction", "media", "undecryptable"):
        return "unsupported message type"
    if msg.kind == "reaction" and not msg.reaction:
        return "reaction removed"
    return None


class SentIds:
    """Channel message ids of our recent sends: a self-chat echoes them back as input."""

    def __init__(self, size: int = REMEMBER_SENT) -> None:
        self._order: deque[str] = deque(maxlen=size)
        self._set: set[str] = set()

    def add(self, message_id: str) -> None:
        if len(self._order) == self._order.maxlen:
            self._set.discard(self._order[0])
        self._order.append(message_id)
        self._set.add(message_id)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._set


@dataclass(frozen=True)
class Judged:
    """Who sent a message and whether they may come in, decided before it is stored:
    of a sender who is not admitted only what dedupe needs is kept."""

    peer_id: str
    #: why it is ignored before access is looked at (precheck, our own echo), or None
    refused: str | None = None
    #: the :attr:`Gateway.stats` reason when it differs from ``refused``
    stat: str | None = None
    identity: Group | None = None
    access: Access | None = None
    #: a self-chat echo of a message Polpo sent
    echo: bool = False

    @property
    def admitted(self) -> bool:
        return self.refused is None and self.access is not None and self.access.allowed


class Admission:
    """Decides admission for the gateway's channels (their settings in ``rules``)."""

    def __init__(
        self,
        rules: AccessRules,
        *,
        owner: str | None,
        turns_of: Callable[[str], int],
        on_seen: Callable[[str, float], None] | None = None,
    ) -> None:
        self.rules = rules
        self._owner = owner
        self._turns_of = turns_of
        #: told of every sender seen (``/status``'s recent peers)
        self._on_seen = on_seen
        self.sent = SentIds()

    async def judge(self, tx: Tx, msg: InboundMessage) -> Judged:
        """Identity and access of ``msg``'s sender, in ``tx``, before anything of the
        message is stored. Writes only to merge a WhatsApp LID identity (SPEC §2)."""
        settings = self.rules.settings_of(msg.channel)
        reason = precheck(msg, settings.gateway if settings is not None else None)
        peer_id = ""
        if reason is None:
            try:
                peer_id = peer_id_of(msg)
            except PeerIdError:
                reason = "invalid sender id"
        if reason is not None or settings is None:
            return Judged(peer_id, reason or "no gateway for this channel")
        conn = tx.conn
        if msg.lid and msg.channel == "whatsapp" and ":lid:" not in peer_id:
            await merge_lid(tx, peer_id, msg.lid)
        if msg.is_self_chat and await self._is_own_echo(tx, msg):
            return Judged(peer_id, "our own message", stat="own message", echo=True)
        identity = await group_of(conn, peer_id)
        if msg.is_self_chat:
            access = SELF_CHAT
        else:
            access = self.rules.decide(peer_id, identity.members)
            if needs_allowlist(access):
                # only then is the dynamic allowlist worth a query
                listed = await peers.allowlisted(conn, identity.members)
                access = self.rules.decide(peer_id, identity.members, listed)
        return Judged(peer_id, identity=identity, access=access)

    async def decide(
        self, tx: Tx, inbox_id: int, msg: InboundMessage, judged: Judged | None = None
    ) -> Admitted | Finished:
        """Identity and access, in ``tx`` (``judged``: already judged in it); a
        :class:`Finished` message's row is marked, and keeps only what dedupe needs."""
        if judged is None:
            judged = await self.judge(tx, msg)
        settings = self.rules.settings_of(msg.channel)
        if judged.refused is not None or settings is None:
            why = judged.refused or "no gateway for this channel"
            await inbox.forget(tx, inbox_id, "ignored", why)
            return Finished("ignored", judged.stat or why)
        identity, access, gw = judged.identity, judged.access, settings.gateway
        assert identity is not None and access is not None  # judged with no refusal
        if access.allowed:
            return await self._admit(tx, msg, identity, access, gw)
        return await self._refuse(tx, inbox_id, msg, judged.peer_id, access, gw)

    async def _admit(
        self, tx: Tx, msg: InboundMessage, identity: Group, access: Access, gw: GatewayConfig
    ) -> Admitted:
        """Only an admitted sender gets a peer row (name, last seen)."""
        conn, now = tx.conn, tx.now
        await touch(conn, identity.peer_id, msg.channel, msg.display_name, now)
        if self._on_seen is not None:
            self._on_seen(identity.peer_id, now)
        if msg.kind in ("text", "edit") and commands.parse_command(msg.text) is None:
            canonical = identity.canonical
            idle = gw.session_idle_minutes * 60
            session = await open_session(conn, canonical, now, idle)
            return Admitted(identity, access, session, self._turns_of(canonical))
        return Admitted(identity, access)

    async def _refuse(
        self,
        tx: Tx,
        inbox_id: int,
        msg: InboundMessage,
        peer_id: str,
        access: Access,
        gw: GatewayConfig,
    ) -> Finished:
        """A sender who is not admitted: a pairing code (policy ``pairing``) or silence."""
        if gw.dm_policy == "pairing" and not msg.is_group and msg.kind != "reaction":
            outcome = await request_pairing(
                tx,
                channel=msg.channel,
                peer_id=peer_id,
                chat_id=msg.chat_id,
                display_name=msg.display_name,
                owner=self._owner,
            )
            if outcome.reply is not None:
                await inbox.finish(
                    tx,
                    inbox.Finish(
                        inbox_id,
                        msg,
                        "done",
                        f"pairing: {outcome.what}",
                        inbox.Reply(outcome.reply),
                        peer_id=peer_id,
                        owner=self._owner,
                        forget=True,
                    ),
                )
                return Finished("pairing", outcome.what, access)
            await inbox.forget(tx, inbox_id, "ignored", _PAIRING_SILENCE[outcome.what])
            return Finished("ignored", f"pairing {outcome.what}", access)
        await inbox.forget(tx, inbox_id, "ignored", access.why)
        return Finished("ignored", access.why, access)

    async def _is_own_echo(self, tx: Tx, msg: InboundMessage) -> bool:
        if msg.message_id in self.sent:
            return True
        return await outbox.was_sent_as(tx.conn, msg.channel, msg.message_id)


_PAIRING_SILENCE = {
    "throttled": "pairing: code already sent less than 10 minutes ago",
    "full": "pairing: 3 requests already pending on this channel (told once)",
    "cooldown": "pairing: its last code expired less than 24 hours ago",
}
