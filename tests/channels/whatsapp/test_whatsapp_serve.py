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
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLPO_")}
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


def test_serve_without_a_linked_account_shows_the_qr_on_its_api(tmp_path: Path) -> None:
    config = {
        "project": "wa",
        "settings": {
            "notifications": {
                "channels": {"wa": {"type": "whatsapp", "gateway": {"enableInbound": True}}}
            }
        },
    }
    (tmp_path / ".polpo").mkdir()
    (tmp_path / ".polpo" / "polpo.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLPO_")}
    env["POLPO_WHATSAPP_WORKER"] = f"{sys.executable} {FAKE_WORKER} qr_forever"
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
            if rows and rows[0].get("qr"):
                break
            time.sleep(0.05)
        assert rows[0]["channel"] == "whatsapp" and rows[0]["qr"] is True
        assert rows[0]["state"] == "waiting_for_login"
        assert "Linked devices" in str(rows[0]["detail"])
        svg = httpx.get(
            f"{url}/api/v1/channels/whatsapp/qr.svg", timeout=5, headers=_auth(tmp_path)
        )
        assert svg.status_code == 200 and b"<svg" in svg.content
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
