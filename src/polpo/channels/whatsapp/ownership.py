"""Who may run the account: the credentials file lock and the database lease.

Two connections with one account make WhatsApp drop one of them
("replaced"), so exactly one process runs the worker (SPEC §11):

- the file lock ``<authDir>/polpo.lock`` (:class:`AccountLock`) keeps a second
  process on this machine away from the credentials;
- the database lease ``whatsapp:<auth dir>`` (:mod:`polpo.store.leases`) does
  the same across machines sharing a database. It is taken for ``lease_ttl``
  seconds and renewed every ``lease_renew``; a renewal that finds it taken by
  another process calls ``on_lost`` (the channel stops its worker: no fight).
  A holder that was a process of this machine and is gone (``polpo serve``
  killed) is taken over at once rather than after its lease expires.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from polpo.channels.whatsapp.account import AccountLock
from polpo.channels.whatsapp.timing import Timing
from polpo.store import leases
from polpo.store.engine import PROCESS_ID, Store

log = logging.getLogger("polpo.channels.whatsapp")


@dataclass(frozen=True)
class OwnershipOptions:
    """The lock and lease settings."""

    #: the database holding the lease (None: the file lock alone)
    store: Store | None = None
    #: what this process is, as the lock and lease name it (``pid N (polpo serve)``)
    holder: str = "polpo serve"
    lease_ttl: float = 60.0
    lease_renew: float = 20.0


@dataclass(frozen=True)
class LeaseRefused:
    """The lease is held elsewhere (``other``), or the database could not be asked."""

    why: str
    other: leases.Lease | None = None


_HOLDER = re.compile(r"^pid (\d+) on (\S+)")


def holder_is_dead(holder: str) -> bool:
    """A lease holder (``pid N on HOST (…)``) that is a process of this machine no
    longer running. Holders elsewhere, or unreadable ones, are never taken for dead."""
    found = _HOLDER.match(holder)
    if found is None or found.group(2) != socket.gethostname():
        return False
    pid = int(found.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, but not ours to signal
        return False
    return False


class Ownership:
    """The file lock and the database lease of one account, held together."""

    def __init__(self, auth_dir: Path, options: OwnershipOptions, timing: Timing) -> None:
        self.options = options
        self._timing = timing
        self.lock = AccountLock(auth_dir, options.holder)
        self.lease_name = f"whatsapp:{auth_dir.resolve()}"
        self.lease_holder = f"{PROCESS_ID} ({options.holder})"
        #: the lease's holder while another process has it
        self.other: leases.Lease | None = None
        #: another process took the lease from under us (we stalled past its expiry)
        self.lost = False
        self._held = False
        self._renewer: asyncio.Task[None] | None = None

    async def take_lease(self, on_lost: Callable[[], Awaitable[None]]) -> LeaseRefused | None:
        """Hold the lease (and keep renewing it); None when held, else why not."""
        store = self.options.store
        if store is None or self._held:
            return None
        now = self._timing.clock.now()
        try:
            got = await leases.acquire(
                store, self.lease_name, self.lease_holder, now=now, ttl=self.options.lease_ttl
            )
            other = None if got is not None else await leases.current(store, self.lease_name)
        except Exception as e:
            return LeaseRefused(f"cannot take the WhatsApp lease in the database ({e})")
        if got is None and other is not None and holder_is_dead(other.holder):
            # It crashed on this machine: waiting out its lease (a minute) would only
            # keep WhatsApp down after a restart.
            try:
                got = await leases.take_over(
                    store,
                    self.lease_name,
                    self.lease_holder,
                    dead=other.holder,
                    now=now,
                    ttl=self.options.lease_ttl,
                )
            except Exception as e:
                return LeaseRefused(f"cannot take the WhatsApp lease in the database ({e})")
            if got is not None:
                log.warning("whatsapp: took over the lease of %s (no longer running)", other.holder)
        if got is not None:
            self._held, self.lost, self.other = True, False, None
            self._renewer = asyncio.create_task(self._renew(on_lost), name="whatsapp-lease")
            return None
        if other is None:
            return LeaseRefused("the WhatsApp lease is held elsewhere")
        self.other = other
        until = time.strftime("%H:%M:%S UTC", time.gmtime(other.expires_at))
        return LeaseRefused(
            f"WhatsApp is held by {other.holder} (database lease, until {until} unless renewed)",
            other,
        )

    async def _renew(self, on_lost: Callable[[], Awaitable[None]]) -> None:
        store = self.options.store
        assert store is not None
        while True:
            await self._timing.sleep(self.options.lease_renew)
            try:
                ours = await leases.renew(
                    store,
                    self.lease_name,
                    self.lease_holder,
                    now=self._timing.clock.now(),
                    ttl=self.options.lease_ttl,
                )
            except Exception as e:  # the database is away: keep the worker, try again
                log.warning("whatsapp: cannot renew the lease: %s", e)
                continue
            if ours:
                continue
            log.warning("whatsapp: another process took the WhatsApp lease; stopping the worker")
            self.lost = True
            self._held = False
            await on_lost()
            return

    async def drop_lease(self) -> None:
        """Stop renewing (the lease is gone, or about to be given back)."""
        task, self._renewer = self._renewer, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._held = False
        self.lost = False

    async def release(self) -> None:
        """Let go of both: the file lock, and the lease when it is still ours."""
        self.lock.release()
        held = self._held
        await self.drop_lease()
        store = self.options.store
        if held and store is not None:
            try:
                await leases.release(store, self.lease_name, self.lease_holder)
            except Exception as e:
                log.warning("whatsapp: cannot release the lease: %s", e)
