"""Asking the running ``polpo serve`` of this project a question over its API.

The address and the bearer token come from ``.polpo/serve.json`` (written by
serve, see :mod:`polpo.servefile`); without that file, from
``settings.server`` and the API key variable. Every failure is a value
(:class:`ServeUnreachable`), never an exception, so commands can say it in
one line. Only the standard library is imported at module level.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polpo.servefile import read_serve_file

if TYPE_CHECKING:
    from polpo.config import LoadedConfig


#: :class:`ServeUnreachable`'s reason when nothing listens at the project's address.
NO_SERVE = "no polpo serve running"


@dataclass(frozen=True)
class ServeAnswer:
    url: str
    status: int
    body: Any


@dataclass(frozen=True)
class ServeUnreachable:
    url: str
    #: one line: why there is no answer
    reason: str


def serve_target(loaded: LoadedConfig | None) -> tuple[str, dict[str, str]]:
    """(base URL, auth headers) of this project's serve."""
    headers: dict[str, str] = {}
    if loaded is not None:
        found = read_serve_file(loaded.polpo_dir)
        if found is not None:
            return found.url.rstrip("/"), {"Authorization": f"Bearer {found.token}"}
    host, port, key_env = "127.0.0.1", 3890, "POLPO_API_KEY"
    if loaded is not None:
        server = loaded.config.settings.server
        host, port, key_env = server.host, server.port, server.api_key_env
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    key = os.environ.get(key_env, "").strip()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return f"http://{host}:{port}", headers


def ask_serve(
    loaded: LoadedConfig | None,
    method: str,
    path: str,
    *,
    json: Any = None,
    timeout: float = 2.0,
) -> ServeAnswer | ServeUnreachable:
    """``method path`` on this project's serve; JSON bodies are sent as JSON."""
    import httpx

    url, headers = serve_target(loaded)
    try:
        response = httpx.request(
            method, url + path, headers=headers, json=json, timeout=timeout, trust_env=False
        )
    except httpx.HTTPError as e:
        reason = str(e) or type(e).__name__
        if isinstance(e, httpx.ConnectError):
            reason = NO_SERVE
        return ServeUnreachable(url, reason)
    if response.status_code == 401:
        return ServeUnreachable(url, "the serve there refused our token (another project's?)")
    try:
        body = response.json()
    except ValueError:
        return ServeUnreachable(url, "not a Polpo API")
    return ServeAnswer(url, response.status_code, body)
