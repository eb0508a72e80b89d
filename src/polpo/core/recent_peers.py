"""The peers seen lately, newest first, kept in memory for ``/status``.

``/status`` shows how many peers wrote in the last five minutes and names the
newest few. Asking the database each time costs two statements per command
(a count over every recent peer on the ``last_seen`` index, and the newest
five); under load every message is a ``/status``. This keeps the same
answer in memory: loaded from the database, then told of every sighting the
gateway makes, in the order the database would give (``last_seen``
descending, then peer id), so the reply text stays the same between two
sightings and its rendering stays memoised.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable


class RecentPeers:
    """Peer ids by when they were last seen, newest first (ties: by id)."""

    def __init__(self) -> None:
        #: (-last_seen, peer id), sorted: the newest first
        self._keys: list[tuple[float, str]] = []
        self._when: dict[str, float] = {}

    def load(self, seen: Iterable[tuple[str, float]]) -> None:
        """Start again from ``seen`` (peer id, last seen), as the database has it."""
        self._when = {peer: float(when) for peer, when in seen}
        self._keys = sorted((-when, peer) for peer, when in self._when.items())

    def seen(self, peer_id: str, when: float) -> None:
        """``peer_id`` was seen at ``when`` (an earlier sighting changes nothing)."""
        old = self._when.get(peer_id)
        if old is not None:
            if old >= when:
                return
            del self._keys[bisect_left(self._keys, (-old, peer_id))]
        self._when[peer_id] = when
        insort(self._keys, (-when, peer_id))

    def since(self, since: float, newest: int) -> tuple[int, list[str]]:
        """How many were seen at ``since`` or later, and the ``newest`` most recent.

        Those seen before ``since`` are forgotten (the window only moves on)."""
        keys = self._keys
        cut = bisect_right(keys, (-since, _AFTER_ANY_ID))
        if cut < len(keys):
            for _, peer in keys[cut:]:
                del self._when[peer]
            del keys[cut:]
        return len(keys), [peer for _, peer in keys[:newest]]


#: sorts after every peer id (ids are ``channel:…`` text)
_AFTER_ANY_ID = chr(0x10FFFF)
