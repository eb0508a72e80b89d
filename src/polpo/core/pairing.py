"""Pairing and link codes and their life (SPEC §3), as plain code over plain data.

A pairing code is 8 characters from an alphabet without look-alikes, valid
60 minutes. A sender who writes again gets the same code at most once per 10
minutes (writing never extends it). At most 3 are pending per channel; a
stranger who finds them taken is told once per day to try later, then gets
silence. After a code expires unused, its peer waits 24 hours for a new one,
so a few numbers pinging cannot hold the slots for ever. Wrong ``/pair``
codes are counted per approver: 5 within 10 minutes lock ``/pair`` for 10
minutes. The gateway (:mod:`polpo.gateway.pairing`) and the peer service
(approving, link codes) apply these rules to what the store holds.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_TTL_SECONDS = 60 * 60
MAX_PENDING_PER_CHANNEL = 3
RESEND_AFTER_SECONDS = 10 * 60
#: after a code expired unused, its peer gets no new one for this long
COOLDOWN_SECONDS = 24 * 60 * 60
#: a stranger told the slots are full is not told again for this long
TOLD_FULL_SECONDS = 24 * 60 * 60
LINK_CODE_SECONDS = 10 * 60
PAIR_FAILURE_WINDOW = 10 * 60
PAIR_FAILURE_LIMIT = 5
PAIR_LOCKOUT_SECONDS = 10 * 60

PairingStatus = Literal["pending", "approved", "expired"]
PAIRING_STATUSES: tuple[PairingStatus, ...] = ("pending", "approved", "expired")


def new_code() -> str:
    """8 characters from the unambiguous alphabet (no 0/O, 1/I)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(raw: str) -> str:
    """``k7m2-xpg9`` / ``K7M2 XPG9`` → ``K7M2XPG9`` (case-insensitive; spaces and dashes ignored)."""
    return "".join(c for c in raw.upper() if not c.isspace() and c not in "-–—_.")


def effective_status(status: str, expires_at: float, now: float) -> str:
    """A pending request past its time is expired, whatever its row says."""
    return "expired" if status == "pending" and expires_at <= now else status


@dataclass(frozen=True)
class LiveRequest:
    """A pending, unexpired request of the channel (what the decision needs of it)."""

    code: str
    peer_id: str
    last_sent_at: float


PairingStep = Literal["throttled", "resend", "cooldown", "create", "full", "tell full"]


def pairing_step(
    peer_id: str,
    live: Iterable[LiveRequest],
    *,
    now: float,
    lapsed_recently: bool,
    told_full_at: float | None,
) -> tuple[PairingStep, LiveRequest | None]:
    """What to do when an unknown sender writes on a ``pairing`` channel.

    ``live``: the channel's pending, unexpired requests; ``lapsed_recently``:
    a code of this peer expired less than :data:`COOLDOWN_SECONDS` ago;
    ``told_full_at``: when it was last told the slots were full. Returns the
    step and, for ``throttled``/``resend``, the peer's own live request.
    """
    requests = list(live)
    mine = next((r for r in requests if r.peer_id == peer_id), None)
    if mine is not None:
        if now - mine.last_sent_at < RESEND_AFTER_SECONDS:
            return "throttled", mine
        return "resend", mine
    if lapsed_recently:
        return "cooldown", None
    if len(requests) < MAX_PENDING_PER_CHANNEL:
        return "create", None
    if told_full_at is not None and now - told_full_at < TOLD_FULL_SECONDS:
        return "full", None
    return "tell full", None


def pair_locked_until(failures: Iterable[float], now: float) -> float | None:
    """Replay an approver's wrong ``/pair`` codes (times, oldest first): 5 within 10
    minutes lock ``/pair`` for 10 minutes. When the lock ends, or None if not locked."""
    locked_until = 0.0
    window: list[float] = []
    for t in failures:
        if t < locked_until:
            continue
        window = [w for w in window if w > t - PAIR_FAILURE_WINDOW] + [t]
        if len(window) >= PAIR_FAILURE_LIMIT:
            locked_until = t + PAIR_LOCKOUT_SECONDS
            window = []
    return locked_until if locked_until > now else None


#: how far back :func:`pair_locked_until` needs failures
PAIR_FAILURES_KEPT = PAIR_FAILURE_WINDOW + PAIR_LOCKOUT_SECONDS
