"""Who may use the API: dashboard sessions from one-time links, and the CLI's token.

As Jupyter does: ``polpo serve`` prints a URL with a one-time token; opening
it trades the token for a session cookie (``HttpOnly; SameSite=Strict``) and
redirects to the clean URL, so the token leaves the address bar and history.
A used or expired token does nothing. ``polpo dashboard`` asks the running
serve for a fresh link over the API, with the random bearer token serve
writes to ``.polpo/serve.json`` (see :mod:`polpo.servefile`).

Everything lives in this process's memory: a restart signs every browser out
(serve prints a new link). Tokens are kept as SHA-256 digests, bounded in
number, and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict

from polpo.clock import SYSTEM_CLOCK, Clock

#: How long a link from ``polpo dashboard`` stays valid (the one printed at start: until used).
LINK_TTL_SECONDS = 600.0
MAX_LINKS = 32
MAX_SESSIONS = 256


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Sessions:
    """One-time dashboard links, the session ids they become, and the CLI's bearer token."""

    def __init__(self, port: int | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        #: Bearer token for the CLI on this machine (written to ``.polpo/serve.json``).
        self.cli_token = secrets.token_urlsafe(32)
        #: Cookies are not separated by port: two serves on one machine need two names.
        self.cookie_name = f"polpo_session_{port}" if port else "polpo_session"
        self._links: OrderedDict[str, float | None] = OrderedDict()
        self._sessions: OrderedDict[str, float] = OrderedDict()

    def new_link_token(self, ttl: float | None = LINK_TTL_SECONDS) -> str:
        """A token for one sign-in; ``ttl=None``: valid until used or serve stops."""
        token = secrets.token_urlsafe(24)
        self._links[_digest(token)] = None if ttl is None else self.clock.now() + ttl
        while len(self._links) > MAX_LINKS:
            self._links.popitem(last=False)
        return token

    def redeem(self, token: str) -> str | None:
        """Spend a link token: a new session id, or None if unknown, used or expired."""
        key = _digest(token)
        if key not in self._links:
            return None
        expires = self._links.pop(key)
        if expires is not None and self.clock.now() > expires:
            return None
        session = secrets.token_urlsafe(32)
        self._sessions[_digest(session)] = self.clock.now()
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def is_session(self, session: str | None) -> bool:
        return bool(session) and _digest(session or "") in self._sessions

    def is_cli_token(self, token: str) -> bool:
        return hmac.compare_digest(_digest(token), _digest(self.cli_token))

    def cookie(self, session: str) -> str:
        """The ``Set-Cookie`` value for a new session (a browser-session cookie)."""
        return f"{self.cookie_name}={session}; HttpOnly; SameSite=Strict; Path=/"
