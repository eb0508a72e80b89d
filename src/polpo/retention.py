"""The retention job of ``polpo serve``: nothing the gateway stores grows forever.

Shortly after start and then every :data:`INTERVAL_SECONDS`, it prunes what
is older than ``settings.storage.retentionDays`` (default 30) and done with:
finished inbox rows, sent or failed outbox rows and their parts, events the
notifier has passed, strangers' leftovers, and the voice notes, pictures and
files fetched into ``.polpo/media/`` (by their time on disk). The rules, and
what they trade (dedupe window, ids never reused), are in
:mod:`polpo.store.retention`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from polpo.gateway.media import media_dir, prune_media
from polpo.host import cancel_and_wait
from polpo.store.retention import Pruned, prune

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.host import Host

log = logging.getLogger(__name__)

#: seconds between two prunes
INTERVAL_SECONDS = 3600.0
#: seconds after start before the first (the start itself is busy enough)
FIRST_AFTER_SECONDS = 30.0


class RetentionJob:
    """Runs :func:`polpo.store.retention.prune` now and then, as a serve component."""

    name = "retention"

    def __init__(
        self,
        app: Polpo,
        *,
        interval: float = INTERVAL_SECONDS,
        first_after: float = FIRST_AFTER_SECONDS,
    ) -> None:
        self.app = app
        self.interval = interval
        self.first_after = first_after
        self._task: asyncio.Task[None] | None = None
        #: what the last run removed
        self.last: Pruned | None = None

    async def run_once(self) -> Pruned:
        days = self.app.config.settings.storage.retention_days
        now = self.app.clock.now()
        pruned = await prune(self.app.store, now=now, retention_days=days)
        files = await asyncio.to_thread(
            prune_media, media_dir(self.app), now=now, retention_days=days
        )
        if files:
            pruned.counts["media files"] = files
        self.last = pruned
        if pruned.total:
            detail = ", ".join(f"{n} {table}" for table, n in sorted(pruned.counts.items()))
            log.info("retention (%g days): pruned %s", days, detail)
        return pruned

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="polpo-retention")

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_after)
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("retention: pruning failed; trying again later")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


def add_retention(host: Host) -> None:
    """Add the retention job to ``polpo serve``."""
    job = RetentionJob(host.app)
    host.registry["retention"] = job
    host.add(job)
