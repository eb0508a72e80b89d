"""Identifiers: full ids, short ids and prefix matching.

Full ids are 16 characters from an alphabet without look-alikes (no 0/O,
1/I/L), so a short prefix read off a phone screen can be typed back without
doubt. Every task, mission and approval also stores a *short id*: the
shortest prefix (at least 4 characters) of its full id not already used as a
short id of the same kind. Lookups accept the short id or any unique prefix of
4+ characters of the full id, case-insensitively.
"""

from __future__ import annotations

import secrets

ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
ID_LENGTH = 16
MIN_PREFIX = 4


def new_id() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(ID_LENGTH))


def normalize_ref(ref: str) -> str:
    """Lower-case and strip a user-typed id or prefix (``#K7M2`` → ``k7m2``)."""
    return ref.strip().lstrip("#").lower()


def short_id_for(full_id: str, taken: set[str]) -> str:
    """The shortest prefix of ``full_id`` (≥ 4 chars) that is not in ``taken``."""
    for n in range(MIN_PREFIX, len(full_id) + 1):
        candidate = full_id[:n]
        if candidate not in taken:
            return candidate
    return full_id


def is_plausible_ref(ref: str) -> bool:
    """True when ``ref`` could be an id or prefix (long enough, right alphabet)."""
    r = normalize_ref(ref)
    return len(r) >= MIN_PREFIX and all(c in ALPHABET for c in r)
