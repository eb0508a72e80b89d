"""Access control (SPEC §3) as plain code over plain data: who may talk, who is admin.

The pipeline gathers the facts (the sender's linked group, the channel's
config, the dynamic allowlist) and :func:`check_access` decides. Linked
peers share one access status: if one identity is allowed, all are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

DmPolicy = Literal["open", "allowlist", "pairing", "disabled"]


@dataclass(frozen=True)
class Access:
    allowed: bool
    is_admin: bool
    #: why: "open", "allowFrom", "allowlist", "admin", "disabled", "pairing", "not allowed"
    why: str


def check_access(
    *,
    policy: DmPolicy,
    group: Iterable[str],
    allow_all: bool,
    allow_from: frozenset[str],
    admins: frozenset[str],
    allowlisted: bool,
) -> Access:
    ids = set(group)
    is_admin = bool(ids & admins)
    if policy == "disabled":
        return Access(False, is_admin, "disabled")
    if policy == "open":
        return Access(True, is_admin, "open")
    if allow_all or ids & allow_from:
        return Access(True, is_admin, "allowFrom")
    if allowlisted:
        return Access(True, is_admin, "allowlist")
    if is_admin:
        return Access(True, True, "admin")
    return Access(False, False, "pairing" if policy == "pairing" else "not allowed")
