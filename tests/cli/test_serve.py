"""``polpo serve`` as a real process: health, SIGTERM, busy ports, keys, and CLI
processes writing to the same SQLite file while it runs."""

from __future__ import annotations

import copy
import json
import queue
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from polpo.servefile import read_serve_file
from tests.cli.conftest import Result, polpo_exe, run_polpo, subprocess_env
from tests.conftest import BASE_CONFIG, write_project

LISTENING = re.compile(r"HTTP API listening on (http://\S+) ")


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)
    #: what the CLI sends: the token serve wrote to .polpo/serve.json
    auth: dict[str, str] = field(default_factory=dict)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@contextmanager
def serving(cwd: Path, *args: str, **env: str) -> Iterator[Serve]:
    proc = subprocess.Popen(
        [*polpo_exe(), "serve", "--port", "0", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(**env),
    )
    lines: list[str] = []
    found: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            m = LISTENING.search(line)
            if m:
                found.put(m.group(1))
        found.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        url = found.get(timeout=60)
        assert url, "polpo serve exited before listening:\n" + "".join(lines)
        written = read_serve_file(cwd / ".polpo")
        assert written is not None, "polpo serve wrote no .polpo/serve.json"
        yield Serve(proc, url, lines, {"Authorization": f"Bearer {written.token}"})
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_serve_answers_health_and_exits_cleanly_on_sigterm(project: Path) -> None:
    with serving(project) as s:
        r = httpx.get(s.url + "/api/v1/health", timeout=10)
        assert r.status_code == 200 and r.json()["project"] == "demo"
        assert s.stop(signal.SIGTERM) == 0
    text = "".join(s.lines)
    assert "received SIGTERM; shutting down" in text
    assert "Traceback" not in text


def test_serve_exits_cleanly_on_sigint(project: Path) -> None:
    with serving(project) as s:
        assert httpx.get(s.url + "/api/v1/health", timeout=10).status_code == 200
        assert s.stop(signal.SIGINT) == 0
    assert "Traceback" not in "".join(s.lines)


def test_busy_port_is_one_clear_line(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_polpo(project, "serve", "--port", str(port))
    assert r.code == 2
    errors = [line for line in r.err.splitlines() if line.startswith("Error: ")]
    assert errors == [
        f"Error: port {port} on 127.0.0.1 is already in use (another polpo serve?); "
        "stop it or pick another with --port"
    ]
    assert "Traceback" not in r.err


def test_public_host_needs_a_key_from_flag_or_env(project: Path) -> None:
    refused = run_polpo(project, "serve", "--host", "0.0.0.0", "--port", "0")
    assert refused.code == 2 and "without an API key" in refused.err
    # with the key in the environment it starts, and the key is enforced
    with serving(project, "--host", "0.0.0.0", POLPO_API_KEY="k3y") as s:
        url = s.url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(url + "/api/v1/health", timeout=10).status_code == 200
        assert httpx.get(url + "/api/v1/tasks", timeout=10).status_code == 401
        ok = httpx.get(url + "/api/v1/tasks", headers={"Authorization": "Bearer k3y"}, timeout=10)
        assert ok.status_code == 200
        assert s.stop() == 0


def test_cli_processes_write_while_serve_runs(project: Path) -> None:
    """Several writers on one SQLite file: serve (API) and CLI processes at once."""
    config = copy.deepcopy(BASE_CONFIG)
    config["settings"]["runner"] = {"enabled": False}  # the gates here are opened by hand
    write_project(project, config)
    with serving(project) as s:
        api = httpx.Client(base_url=s.url + "/api/v1", timeout=30, headers=s.auth)
        events: list[dict[str, object]] = []
        stream_ready = threading.Event()

        def listen() -> None:
            with httpx.stream("GET", s.url + "/api/v1/events", timeout=60, headers=s.auth) as r:
                stream_ready.set()
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                        if sum(1 for e in events if e["type"] == "approval:resolved") >= 1:
                            return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert stream_ready.wait(30)

        def cli_add(i: int) -> Result:
            return run_polpo(project, "task", "add", f"cli task {i}", "--json")

        def api_add(i: int) -> httpx.Response:
            return api.post("/tasks", json={"title": f"api task {i}"})

        with ThreadPoolExecutor(max_workers=8) as pool:
            cli_jobs = [pool.submit(cli_add, i) for i in range(5)]
            api_jobs = [pool.submit(api_add, i) for i in range(10)]
            cli_results = [j.result() for j in cli_jobs]
            api_results = [j.result() for j in api_jobs]

        for r in cli_results:
            assert r.code == 0, r.err
            assert "locked" not in r.err
        assert all(r.status_code == 201 for r in api_results)

        titles = {t["title"] for t in api.get("/tasks", params={"limit": 100}).json()}
        assert titles == {f"cli task {i}" for i in range(5)} | {f"api task {i}" for i in range(10)}

        # a gate opened here, decided by a CLI process, seen by the server
        task_id = cli_results[0].json()["id"]
        _open_gate(project, task_id)
        pending = api.get("/approvals").json()
        assert len(pending) == 1
        decided = run_polpo(project, "approvals", "approve", pending[0]["shortId"])
        assert decided.code == 0, decided.err
        assert api.get(f"/tasks/{task_id}").json()["status"] == "done"

        # the server's event bus saw the CLI's events (through the event tail)
        listener.join(timeout=30)
        types = [e["type"] for e in events]
        assert types.count("task:created") == 15
        assert "approval:resolved" in types
        assert s.stop() == 0
    assert "locked" not in "".join(s.lines)


def _open_gate(project: Path, task_id: str) -> None:
    import asyncio

    from polpo.app import Polpo
    from polpo.config import load_config

    async def go() -> None:
        app = await Polpo.open(load_config(cwd=project))
        try:
            await app.approvals.request(task_id, gate="review", hook="task:complete")
        finally:
            await app.close()

    asyncio.run(go())


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
