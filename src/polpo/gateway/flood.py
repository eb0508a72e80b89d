"""The global flood guard: how many rows a minute senders who are not admitted may add.

A message from a sender who is not admitted (a stranger under ``allowlist``
or ``pairing``, a group not for Polpo, a blocked channel…) leaves only what
dedupe needs — channel, message id, times, outcome: about a hundred bytes.
Without a bound, a flood from many numbers would still grow the inbox by
that much per message, as fast as the network delivers them.

:class:`StrangerBudget` counts, for all of them together, the rows their
messages add in a sliding minute. Past ``settings.storage.strangerRowsPerMinute``
(default :data:`STRANGER_ROWS_PER_MINUTE`), such a message is dropped without
being stored at all: counted (``Gateway.stats["dropped:flood"]``) and logged
once a minute. It was going to be ignored anyway; the cost is that a repeat
delivery of it is judged again instead of being recognised as a duplicate,
and that a stranger asking for a pairing code mid-flood gets no answer until
the flood stops (they write again). Admitted peers are never counted nor
dropped. Polpo's own echoes in the self-chat are not counted: they are bounded
by what Polpo sends. In memory, like the per-peer rate limit: a restart
starts a fresh minute.
"""

from __future__ import annotations

import logging
from collections import deque

from polpo.clock import Clock

log = logging.getLogger(__name__)

#: rows a minute the messages of senders who are not admitted may add, all together
STRANGER_ROWS_PER_MINUTE = 120
WINDOW_SECONDS = 60.0


class StrangerBudget:
    """A sliding minute of rows added for senders who are not admitted."""

    def __init__(self, clock: Clock, per_minute: int = STRANGER_ROWS_PER_MINUTE) -> None:
        self.clock = clock
        self.per_minute = per_minute
        self._spent: deque[float] = deque()
        self._warned_at: float | None = None
        #: messages dropped unstored since start
        self.dropped = 0

    def has_room(self) -> bool:
        """True if one more row fits in the last minute; False: drop the message
        (counted, and logged at most once a minute)."""
        now = self.clock.now()
        spent = self._spent
        while spent and spent[0] <= now - WINDOW_SECONDS:
            spent.popleft()
        if len(spent) < self.per_minute:
            return True
        self.dropped += 1
        if self._warned_at is None or now - self._warned_at >= WINDOW_SECONDS:
            self._warned_at = now
            log.warning(
                "flood: more than %d messages in the last minute from senders who are not "
                "admitted; dropping them unstored until the minute has room (%d dropped "
                "since start; settings.storage.strangerRowsPerMinute)",
                self.per_minute,
                self.dropped,
            )
        return False

    def spend(self) -> None:
        """A row was added for a sender who is not admitted."""
        self._spent.append(self.clock.now())
