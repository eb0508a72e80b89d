"""``polpo serve`` runs the WhatsApp channel from the config, shows it in the
API, and stops its worker on SIGTERM (the worker: a fake one, over real pipes)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from tests.cli.conftest import subprocess_env
from wa_support import FAKE_WORKER, OWN_PHONE, make_credentials

from polpo.servefile import read_serve_file

LISTENING = re.compile(r"HTTP API listening on (http://\S+) ")


def _auth(project: Path) -> dict[str, str]:
    """What the CLI sends: the token serve wrote to .polpo/serve.json."""
    written = read_serve_file(project / ".polpo")
    assert written is not None
    return {"Authorization": f"Bearer {written.token}"}


def test_serve_connects_whatsapp_reports_it_and_stops_the_worker(tmp_path: Path) -> None:
    config = {
        "project": "wa",
        "settings": {
            "notifications": {
                "channels": {
                    "wa": {
                        "type": "whatsapp",
                        "gateway": {"enableInbound": True, "allowFrom": [OWN_PHONE]},
                    }
                }
            }
        },
    }
    (tmp_path / ".polpo").mkdir()
    (tmp_path / ".polpo" / "polpo.json").write_text(json.dumps(config))
    auth = tmp_path / ".polpo" / "whatsapp"
    make_credentials(auth)
    env = subprocess_env()
    env["POLPO_WHATSAPP_WORKER"] = f"{sys.executable} {FAKE_WORKER} ok"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "polpo"), "serve", "--port", "0"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    found: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            m = LISTENING.search(line)
            if m:
                found.put(m.group(1))
        found.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        url = found.get(timeout=60)
        assert url, "polpo serve exited before listening"
        deadline = time.monotonic() + 30
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            rows = httpx.get(f"{url}/api/v1/channels", timeout=5, headers=_auth(tmp_path)).json()
            if rows and rows[0].get("state") == "connected":
                break
            time.sleep(0.05)
        assert rows[0]["channel"] == "whatsapp"
        assert rows[0]["state"] == "connected" and rows[0]["account"] == OWN_PHONE
        live = rows[0]["live"]
        assert isinstance(live, dict)
        worker_pid = int(str(live["workerPid"]))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    try:
        os.kill(worker_pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the worker outlived polpo serve"
    stops = [e for e in map(json.loads, (auth / "fake_log.jsonl").read_text().splitlines())]
    assert stops[-1]["type"] == "stop"  # asked to stop, not just killed


def test_an_unlinked_account_runs_no_worker_until_the_owner_asks_to_link(tmp_path: Path) -> None:
    """`make serve` on a project whose WhatsApp was never linked (maybe offline): no
    worker, no QR churn, no warnings — until the dashboard asks (POST …/login)."""
    from tests.serve_process import serving

    root = tmp_path / "p"
    # the feature page's setup snippet, as pasted
    config = {
        "settings": {
            "notifications": {
                "channels": {
                    "whatsapp": {
                        "type": "whatsapp",
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "allowlist",
                            "allowFrom": ["39123456789"],
                        },
                    }
                }
            }
        }
    }
    with serving(root, config=config, worker="qr_forever") as s:
        deadline = time.monotonic() + 30
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            rows = httpx.get(f"{s.url}/api/v1/channels", headers=s.bearer, timeout=5).json()
            live = rows[0].get("live") if rows else None
            if isinstance(live, dict) and live.get("login") == "idle":
                break
            time.sleep(0.05)
        assert rows[0]["state"] == "waiting_for_login" and rows[0]["qr"] is False
        live = rows[0]["live"]
        assert isinstance(live, dict) and "workerPid" not in live
        auth = root / ".polpo" / "whatsapp"
        assert not (auth / "fake_runs").exists()  # no worker ever started
        asked = httpx.post(
            f"{s.url}/api/v1/channels/whatsapp/login", json={}, headers=s.bearer, timeout=5
        )
        assert asked.status_code == 200 and asked.json()["requested"] is True
        while time.monotonic() < deadline:
            rows = httpx.get(f"{s.url}/api/v1/channels", headers=s.bearer, timeout=5).json()
            if rows[0].get("qr"):
                break
            time.sleep(0.05)
        assert rows[0]["qr"] is True and "Linked devices" in str(rows[0]["detail"])
        svg = httpx.get(f"{s.url}/api/v1/channels/whatsapp/qr.svg", headers=s.bearer, timeout=5)
        assert svg.status_code == 200 and b"<svg" in svg.content
        assert s.stop() == 0
    assert not any("WARNING" in line for line in s.lines), "".join(s.lines)
