"""Admission: may this message go on, and as whom?

Before a message is routed, :class:`Admission` decides in one write
transaction: cheap checks on the message alone (:func:`precheck`), the
sender's identity (peer row touched, LID merged, linked group resolved), our
own echoes in a self-chat, and access (SPEC §3). The result is typed:

- :class:`Admitted` — go on, with the identity, the access decision and
  (for free text) the session read in the same transaction;
- :class:`Finished` — nothing more to do: the message was ignored (its
  inbox row says why), or answered here with a pairing code.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from polpo.channels.base import InboundMessage
from polpo.config import GatewayConfig, TelegramChannelConfig, WhatsAppChannelConfig
from polpo.config import _ChannelBase as ChannelBase
from polpo.gateway import commands, inbox
from polpo.gateway.echoes import is_own_message
from polpo.gateway.identity import Identity, merge_lid, peer_id_of, resolve, touch_peer
from polpo.gateway.pairing import request_pairing
from polpo.gateway.policy import Access, check_access
from polpo.gateway.sessions import Session, open_session
from polpo.gateway.writes import SyncTx
from polpo.peerid import PeerIdError
from polpo.store.tables import allowlist

if TYPE_CHECKING:
    from polpo.config import PolpoConfig

log = logging.getLogger(__name__)

#: Channel message ids of our own recent sends remembered (a self-chat echoes them back).
REMEMBER_SENT = 2_000


@dataclass(frozen=True)
class Admitted:
    """The message goes on to routing."""

    identity: Identity
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


class Admission:
    """Decides admission for the gateway's channels (their settings shared with it)."""

    def __init__(
        self,
        config: PolpoConfig,
        configs: Mapping[str, ChannelBase],
        *,
        owner: str | None,
        turns_of: Callable[[str], int],
    ) -> None:
        self._config = config
        self._configs = configs
        self._owner = owner
        self._turns_of = turns_of
        self.sent = SentIds()
        # config is fixed while running: normalise allowFrom and admins once
        self._admin_cache: frozenset[str] | None = None
        self._allowed_cache: dict[str, tuple[bool, frozenset[str]]] = {}

    def channel_changed(self, channel: str) -> None:
        """A channel was added or reconfigured: forget what was derived from settings."""
        self._admin_cache = None
        self._allowed_cache.pop(channel, None)

    def decide(self, tx: SyncTx, inbox_id: int, msg: InboundMessage) -> Admitted | Finished:
        """Identity and access, in ``tx``; a :class:`Finished` message's row is marked."""
        settings = self._configs.get(msg.channel)
        reason = precheck(msg, settings.gateway if settings is not None else None)
        peer_id = ""
        if reason is None:
            try:
                peer_id = peer_id_of(msg)
            except PeerIdError:
                reason = "invalid sender id"
        if reason is not None or settings is None:
            return self._ignore(tx, inbox_id, reason or "no gateway for this channel")
        return self._admit(tx, inbox_id, msg, peer_id, settings)

    def _admit(
        self, tx: SyncTx, inbox_id: int, msg: InboundMessage, peer_id: str, settings: ChannelBase
    ) -> Admitted | Finished:
        conn, now = tx.conn, tx.now
        touch_peer(conn, peer_id, msg.channel, msg.display_name, now)
        if msg.lid and msg.channel == "whatsapp" and ":lid:" not in peer_id:
            merge_lid(conn, peer_id, msg.lid, now)
        if msg.is_self_chat and self._is_own_echo(conn, msg):
            inbox.mark(tx, inbox_id, "ignored", "our own message")
            return Finished("ignored", "own message")
        identity = resolve(conn, peer_id)
        gw = settings.gateway
        if msg.is_self_chat:
            access = Access(True, True, "self-chat")
        else:
            allow_all, allow_from = self._allowed(msg.channel, settings)
            check = partial(
                check_access,
                policy=gw.dm_policy,
                group=identity.group,
                allow_all=allow_all,
                allow_from=allow_from,
                admins=self._admins(),
            )
            access = check(allowlisted=False)
            if not access.allowed and access.why in ("pairing", "not allowed"):
                # only then is the dynamic allowlist worth a query
                listed = conn.execute(_LISTED, {"ids": list(identity.group)}).first()
                access = check(allowlisted=listed is not None)
        if access.allowed:
            if msg.kind in ("text", "edit") and commands.parse_command(msg.text) is None:
                canonical = identity.canonical
                idle = gw.session_idle_minutes * 60
                session = open_session(conn, canonical, now, idle)
                return Admitted(identity, access, session, self._turns_of(canonical))
            return Admitted(identity, access)
        if access.why == "pairing" and not msg.is_group and msg.kind != "reaction":
            outcome = request_pairing(
                tx,
                channel=msg.channel,
                peer_id=peer_id,
                chat_id=msg.chat_id,
                display_name=msg.display_name,
                owner=self._owner,
            )
            if outcome.reply is not None:
                inbox.finish(
                    tx,
                    inbox.Finish(
                        inbox_id,
                        msg,
                        "done",
                        f"pairing: {outcome.what}",
                        inbox.Reply(outcome.reply),
                        peer_id=peer_id,
                        owner=self._owner,
                    ),
                )
                return Finished("pairing", outcome.what)
            inbox.mark(tx, inbox_id, "ignored", _PAIRING_SILENCE[outcome.what])
            return Finished("ignored", f"pairing {outcome.what}")
        return self._ignore(tx, inbox_id, access.why)

    def _ignore(self, tx: SyncTx, inbox_id: int, why: str) -> Finished:
        inbox.mark(tx, inbox_id, "ignored", why)
        return Finished("ignored", why)

    def _is_own_echo(self, conn: sa.Connection, msg: InboundMessage) -> bool:
        if msg.message_id in self.sent:
            return True
        return is_own_message(conn, msg.channel, msg.message_id)

    def _admins(self) -> frozenset[str]:
        if self._admin_cache is None:
            admins: set[str] = set()
            for settings in self._configs.values():
                admins.update(settings.admin_peers())
            for _, ch in self._config.settings.notifications.channels.items():
                if isinstance(ch, WhatsAppChannelConfig | TelegramChannelConfig):
                    admins.update(ch.admin_peers())
            self._admin_cache = frozenset(admins)
        return self._admin_cache

    def _allowed(self, channel: str, settings: ChannelBase) -> tuple[bool, frozenset[str]]:
        found = self._allowed_cache.get(channel)
        if found is None:
            found = self._allowed_cache[channel] = settings.allowed_peers()
        return found


_LISTED = sa.select(allowlist.c.peer_id).where(
    allowlist.c.peer_id.in_(sa.bindparam("ids", expanding=True))
)

_PAIRING_SILENCE = {
    "throttled": "pairing: code already sent less than 10 minutes ago",
    "full": "pairing: 3 requests already pending on this channel (told once)",
    "cooldown": "pairing: its last code expired less than 24 hours ago",
}
