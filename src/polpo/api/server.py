"""The HTTP API as a Host component: uvicorn on a socket we bind ourselves.

Binding first turns "port in use" into one clear error before anything
starts (uvicorn itself would log and ``sys.exit``), and lets tests ask for
port 0 and read the real port back from :attr:`ApiServer.port`.

Once listening, it writes ``.polpo/serve.json`` (the URL and the CLI's bearer
token, see :mod:`polpo.servefile`) and logs the dashboard's one-time sign-in
link — unless the log goes to a file agents' commands or other users can
read (:mod:`polpo.api.log_readers`); a clean stop removes the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn

from polpo.api.hosts import WILDCARDS, bracketed
from polpo.api.log_readers import log_readers
from polpo.errors import PolpoError
from polpo.servefile import remove_serve_file, write_serve_file

if TYPE_CHECKING:
    from polpo.api.sessions import Sessions
    from polpo.app import Polpo
    from polpo.host import Host
    from polpo.serve import ServeOptions

log = logging.getLogger("polpo.api")

STARTUP_TIMEOUT_SECONDS = 10.0
#: Open requests (SSE streams) get this long to finish when the server stops.
GRACEFUL_SECONDS = 3


class PortInUseError(PolpoError):
    """Another process already listens on the address ``polpo serve`` was asked to use."""

    exit_code = 2


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (IPv4 or IPv6)."""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise PortInUseError(f"cannot listen on {host}: {e.strerror}") from e
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use (another polpo serve?); "
                "stop it or pick another with --port"
            ) from e
        raise PortInUseError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``polpo serve`` owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """uvicorn serving :func:`polpo.api.app.create_app` in a background task."""

    name = "api"

    def __init__(self, app: Polpo, host: Host | None, options: ServeOptions) -> None:
        self.app = app
        self.host = host
        self.options = options
        self.port: int = options.port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        #: Set at start: the dashboard's sign-in links and the CLI's bearer token.
        self.sessions: Sessions | None = None

    @property
    def url(self) -> str:
        return f"http://{bracketed(self.options.host)}:{self.port}"

    @property
    def local_url(self) -> str:
        """The URL a browser on this machine opens (a wildcard bind answers on loopback)."""
        h = bracketed(self.options.host)
        if h in WILDCARDS:
            h = "[::1]" if ":" in h else "127.0.0.1"
        return f"http://{h}:{self.port}"

    @property
    def cli_token(self) -> str:
        """The bearer token ``polpo serve`` hands its CLI (also in ``.polpo/serve.json``)."""
        if self.sessions is None:
            raise RuntimeError("the API server has not started")
        return self.sessions.cli_token

    async def start(self) -> None:
        from polpo.api.app import create_app
        from polpo.api.sessions import Sessions

        sock = bind_socket(self.options.host, self.options.port)
        self.port = int(sock.getsockname()[1])
        self.sessions = Sessions(self.port)
        api = create_app(
            self.app,
            self.host,
            api_key=self.options.api_key,
            sessions=self.sessions,
            bound=self.options.host,
            allowed_hosts=self.options.allowed_hosts,
        )
        api.state.stopping = self._stopping
        config = uvicorn.Config(
            api,
            lifespan="off",
            log_level="warning",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
            server_header=False,
        )
        server = _Server(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="polpo-api")
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
                while not server.started:
                    if self._task.done():
                        break
                    await asyncio.sleep(0.01)
        except TimeoutError:
            pass
        if not server.started:
            await self.stop()
            sock.close()
            raise PortInUseError(f"the HTTP API did not start on {self.url}")
        self._write_serve_file()  # before the line below: tests and scripts wait for it
        log.info("HTTP API listening on %s (API docs at %s/api/v1/docs)", self.url, self.url)
        readers = log_readers(log, self.app.loaded.root)
        if readers is not None:  # a link there would sign them in
            log.info(
                "Dashboard: run polpo dashboard for a sign-in link (none is printed here: "
                "this log goes to %s, which %s can read)",
                readers.path,
                readers.who,
            )
            return
        link = f"{self.local_url}/?token={self.sessions.new_link_token(ttl=None)}"
        log.info(
            "Dashboard: open %s (a one-time sign-in link; polpo dashboard prints a fresh one)", link
        )

    def _write_serve_file(self) -> None:
        assert self.sessions is not None
        try:
            write_serve_file(self.app.loaded.polpo_dir, self.local_url, self.sessions.cli_token)
        except OSError as e:  # the API works without it; only the CLI's questions do not
            log.warning("cannot write %s/serve.json: %s", self.app.loaded.polpo_dir, e.strerror)

    async def stop(self) -> None:
        self._stopping.set()
        if self.sessions is not None:
            remove_serve_file(self.app.loaded.polpo_dir, self.sessions.cli_token)
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=GRACEFUL_SECONDS + 2)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception:
            log.exception("the HTTP API stopped with an error")
        self._server = None
        self._task = None
