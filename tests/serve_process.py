"""A real ``polpo serve`` process on a free port, for tests that attack or browse it.

It runs in a project folder with the given config; its WhatsApp channel (if
any) gets QR codes from the fake worker the WhatsApp tests use
(``tests/channels/whatsapp/fake_worker.py``, scenario ``worker``). The
dashboard link it prints and the CLI token it writes are at hand.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from polpo.servefile import read_serve_file
from tests.cli.conftest import polpo_exe, subprocess_env

FAKE_WORKER = Path(__file__).resolve().parent / "channels" / "whatsapp" / "fake_worker.py"
LISTENING = re.compile(r"HTTP API listening on (http://\S+) ")
DASHBOARD_LINK = re.compile(r"Dashboard: open (http://\S+)")


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    root: Path
    url: str
    #: the one-time dashboard link serve printed
    link: str
    lines: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def bearer(self) -> dict[str, str]:
        """What the CLI sends: the token from ``.polpo/serve.json``."""
        found = read_serve_file(self.root / ".polpo")
        assert found is not None
        return {"Authorization": f"Bearer {found.token}"}

    def fresh_link(self) -> str:
        r = httpx.post(self.url + "/api/v1/dashboard/link", json={}, headers=self.bearer)
        assert r.status_code == 200, r.text
        url: str = r.json()["url"]
        return url

    def browser(self) -> httpx.Client:
        """A client signed in as the dashboard is: a one-time link, then its cookie."""
        client = httpx.Client(base_url=self.url, timeout=10)
        r = client.get(self.fresh_link(), follow_redirects=True)
        assert r.status_code == 200 and len(client.cookies) == 1
        return client

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@contextmanager
def serving(
    root: Path,
    *args: str,
    config: dict[str, Any],
    worker: str = "qr_forever",
    database_url: str | None = None,
    **env: str,
) -> Iterator[Serve]:
    """``polpo serve --port 0 ARGS`` in ``root`` with ``config``; killed if still running.

    Its database is written into the project's config: ``database_url``, else
    this test's PostgreSQL schema, else (nothing written) the project's SQLite
    file. A test process opening the project by its config (``project_db``)
    reaches the same one, even when serve outlives the test that started it.
    """
    (root / ".polpo").mkdir(parents=True, exist_ok=True)
    url = database_url or os.environ.get("POLPO_DATABASE_URL")
    if url:
        config = copy.deepcopy(config)
        config.setdefault("settings", {}).setdefault("storage", {})["url"] = url
        env = {**env, "POLPO_DATABASE_URL": url}
    (root / ".polpo" / "polpo.json").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [*polpo_exe(), "serve", "--port", "0", *args],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(POLPO_WHATSAPP_WORKER=f"{sys.executable} {FAKE_WORKER} {worker}", **env),
    )
    lines: list[str] = []
    found: queue.Queue[tuple[str, str] | None] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:
            lines.append(line)
            m = LISTENING.search(line)
            if m:
                url = m.group(1)
            m = DASHBOARD_LINK.search(line)
            if m and url:
                found.put((url, m.group(1)))
        found.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        got = found.get(timeout=60)
        assert got, "polpo serve exited before printing its dashboard link:\n" + "".join(lines)
        yield Serve(proc, root, got[0], got[1], lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
