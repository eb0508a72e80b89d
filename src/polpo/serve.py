"""``polpo serve``: everything in one process, started in order, stopped in reverse.

:func:`build_serve_host` is the one place that decides what runs. Each
feature adds ONE line in the marked block; the API server comes last so
nothing answers requests before the parts behind it run.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

from polpo.app import Polpo
from polpo.config import PolpoConfig
from polpo.errors import PolpoError
from polpo.host import Host, cancel_and_wait
from polpo.notifications import add_notifications
from polpo.retention import add_retention
from polpo.runner.component import add_runner
from polpo.services.events import EventTail

log = logging.getLogger("polpo.serve")

#: How long stopping every component may take before ``polpo serve`` gives up waiting.
STOP_TIMEOUT_SECONDS = 20.0


class ServeError(PolpoError):
    """``polpo serve`` cannot start as asked (a public host without a key, a busy port)."""

    exit_code = 2


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 3890
    #: Bearer key accepted besides the dashboard session and the CLI's token;
    #: required off loopback.
    api_key: str | None = None
    #: ``Host`` names accepted besides the bound address and loopback (settings.server.allowedHosts).
    allowed_hosts: tuple[str, ...] = ()


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_options(
    config: PolpoConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    api_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServeOptions:
    """Options from flags, then config and environment; refuse a public host without a key."""
    env = os.environ if environ is None else environ
    server = config.settings.server
    host = host or server.host
    port = server.port if port is None else port
    key = api_key or env.get(server.api_key_env) or None
    if not is_loopback(host) and not key:
        raise ServeError(
            f"refusing to listen on {host} without an API key: pass --api-key or set "
            f"{server.api_key_env} (anyone who can reach the port could drive your agents)"
        )
    return ServeOptions(
        host=host, port=port, api_key=key, allowed_hosts=tuple(server.allowed_hosts)
    )


class EventTailComponent:
    """Publishes on this process's bus the events other processes (the CLI) write."""

    name = "event-tail"

    def __init__(self, app: Polpo, interval: float = 0.5) -> None:
        self.tail = EventTail(app.store, app.bus, app.ctx.origin, interval=interval)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.tail.start_at_end()
        self._task = asyncio.create_task(self.tail.run(), name="polpo-event-tail")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


async def build_serve_host(app: Polpo, options: ServeOptions) -> Host:
    """The components of ``polpo serve``, in start order."""
    from polpo.api.server import ApiServer
    from polpo.gateway.component import add_gateway

    host = Host(app)
    host.add(EventTailComponent(app))
    # -- features: ONE line each, in this order --------------------------------
    add_runner(host)  # runner (unless settings.runner.enabled is false)
    add_gateway(host)  # channels, their gateway and outbox dispatchers (registry["channels"])
    add_notifications(host)  # notifications: events → rules → outbox
    add_retention(host)  # prunes what is done with after settings.storage.retentionDays
    # ---------------------------------------------------------------------------
    host.add(ApiServer(app, host, options))
    return host


async def run_serve(app: Polpo, options: ServeOptions, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set), then stop everything in reverse order."""
    stopped = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, _on_signal, sig, stopped)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / Windows
            pass
    host = await build_serve_host(app, options)
    try:
        await host.start()
        await stopped.wait()
    finally:
        log.info("stopping")
        try:
            await asyncio.wait_for(host.stop(), timeout=STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning(
                "components did not stop within %.0f s; exiting anyway", STOP_TIMEOUT_SECONDS
            )
        for sig in installed:
            loop.remove_signal_handler(sig)


def _on_signal(sig: signal.Signals, stopped: asyncio.Event) -> None:
    if stopped.is_set():
        return
    log.info("received %s; shutting down", sig.name)
    stopped.set()
