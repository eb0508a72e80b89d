"""A real ``polpo serve`` process for the attacks: real sockets, real SQLite file.

One serve for the whole package (starting one costs a second or two): a project whose
WhatsApp channel is unlinked and gets its QR from the fake worker the
WhatsApp tests use, under ``dmPolicy: pairing``; the runner is off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.serve_process import Serve
from tests.serve_process import serving as serve_process

__all__ = ["CONFIG", "ENV_KEY", "Serve", "serving"]

#: The API key the shared serve gets from the environment (scripts' bearer).
ENV_KEY = "env-k3y"

CONFIG: dict[str, Any] = {
    "project": "attacked",
    "settings": {
        "runner": {"enabled": False},
        "notifications": {
            "channels": {
                "whatsapp": {
                    "type": "whatsapp",
                    "gateway": {"enableInbound": True, "dmPolicy": "pairing"},
                }
            }
        },
    },
}


def serving(
    root: Path, *args: str, database_url: str | None = None, **env: str
) -> AbstractContextManager[Serve]:
    """``polpo serve`` on the attacked project's config."""
    return serve_process(root, *args, config=CONFIG, database_url=database_url, **env)


@pytest.fixture(scope="session")
def serve(
    tmp_path_factory: pytest.TempPathFactory, session_database_url: str | None
) -> Iterator[Serve]:
    with serving(
        tmp_path_factory.mktemp("attacked"),
        database_url=session_database_url,
        POLPO_API_KEY=ENV_KEY,
    ) as s:
        yield s


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
