"""Who may talk to Polpo (SPEC §3), as one pure function over plain facts.

The gateway (admitting a message) and the peer service (``polpo peers``,
``/whoami``, the API) both call :func:`decide_access`, so they can never
disagree on the decision or its reason. The reasons, in the order they are
tried — what the config says of the person first, then of everyone, then
what was granted at run time:

``no gateway``  the peer's channel is not configured (never allowed)
``disabled``    its channel's ``dmPolicy`` is ``disabled``
``admin``       the peer itself is an admin (any channel's ``gateway.admins``)
``allowFrom``   the peer is in its channel's ``allowFrom``
``open``        ``dmPolicy: open`` or ``allowFrom: ["*"]``: everyone may
``allowlist``   the peer is on the dynamic allowlist (``polpo peers allow``, pairing)
``linked``      another identity of the same person is an admin, in its channel's
                ``allowFrom`` or on the allowlist, on an enabled channel (``via``)
``not allowed`` none of these (on a ``pairing`` channel the gateway then offers a code)

So the dynamic allowlist only matters when the config alone does not let a
peer in, and the gateway looks it up only then (:func:`needs_allowlist`).
``is_admin`` holds for the whole linked group: if one identity is an admin,
the person is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

DmPolicy = Literal["open", "allowlist", "pairing", "disabled"]
Why = Literal[
    "no gateway",
    "disabled",
    "admin",
    "allowFrom",
    "allowlist",
    "linked",
    "open",
    "not allowed",
    "self-chat",
]


@dataclass(frozen=True)
class ChannelRules:
    """What one channel's gateway config says about access."""

    policy: DmPolicy
    #: ``allowFrom`` contains ``"*"``
    allow_all: bool = False
    #: normalised ``allowFrom`` peer ids
    allow_from: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Access:
    allowed: bool
    is_admin: bool
    why: Why
    #: for ``why == "linked"``: the identity whose grant is shared
    via: str | None = None


#: The channel type of a peer id (``whatsapp:39…`` → ``whatsapp``) → its rules, or None.
RulesOf = Callable[[str], ChannelRules | None]

SELF_CHAT = Access(True, True, "self-chat")


def channel_of(peer_id: str) -> str:
    return peer_id.split(":", 1)[0]


def decide_access(
    peer_id: str,
    group: Iterable[str],
    *,
    rules_of: RulesOf,
    admins: frozenset[str],
    allowlisted: frozenset[str] = frozenset(),
) -> Access:
    """The access of ``peer_id``, a member of the linked ``group`` (itself included).

    ``allowlisted`` holds the members of ``group`` on the dynamic allowlist
    (a caller may pass none first and look them up only when that decides).
    """
    members = [m for m in dict.fromkeys([peer_id, *group])]
    is_admin = any(m in admins for m in members)
    rules = rules_of(channel_of(peer_id))
    if rules is None:
        return Access(False, is_admin, "no gateway")
    if rules.policy == "disabled":
        return Access(False, is_admin, "disabled")
    if peer_id in admins:
        return Access(True, is_admin, "admin")
    if peer_id in rules.allow_from:
        return Access(True, is_admin, "allowFrom")
    if rules.allow_all or rules.policy == "open":
        return Access(True, is_admin, "open")
    if peer_id in allowlisted:
        return Access(True, is_admin, "allowlist")
    for other in members[1:]:
        other_rules = rules_of(channel_of(other))
        if other_rules is None or other_rules.policy == "disabled":
            continue
        if other in admins or other in other_rules.allow_from or other in allowlisted:
            return Access(True, is_admin, "linked", via=other)
    return Access(False, is_admin, "not allowed")


def needs_allowlist(access: Access) -> bool:
    """Whether looking up the dynamic allowlist could change ``access``."""
    return not access.allowed and access.why == "not allowed"
