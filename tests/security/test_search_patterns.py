"""A pathological pattern given to ``search_files`` must not freeze Polpo.

With Python's backtracking ``re``, ``(a+)+$`` over a line of 34 ``a`` and a
``!`` runs for about an hour holding the GIL: the whole process (event loop, HTTP
API, channels) stops answering, however the search is threaded. The attack
runs in a child process so that a frozen Polpo is a failed test, not a hung
suite: a real runner drives a scripted agent whose tool call is that search,
while a heartbeat coroutine counts event-loop turns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from polpo.runner.tools import Workspace, search_files
from tests.cli.conftest import subprocess_env
from tests.runner.conftest import write_config

SCENARIO = """
import asyncio, json, sys
from pathlib import Path
from polpo.app import Polpo
from polpo.config import load_config
from polpo.runner import Runner
from tests.runner.conftest import Script

async def main(config):
    app = await Polpo.open(load_config(config))
    try:
        script = Script([[("search_files", {"pattern": "(a+)+$"})], "searched"])
        task = await app.tasks.add("Search", agent="coder")
        beats = 0
        async def heartbeat():
            nonlocal beats
            while True:
                beats += 1
                await asyncio.sleep(0.01)
        hb = asyncio.create_task(heartbeat())
        await Runner(app, model_factory=script.factory()).drain()
        hb.cancel()
        done = await app.tasks.get(task.id)
        print(json.dumps({"status": done.status, "results": script.tool_results, "beats": beats}))
    finally:
        await app.close()

asyncio.run(main(sys.argv[1]))
"""

#: Generous: the scenario takes a second or two; main froze here for about an hour.
FROZEN_AFTER = 60


def test_a_catastrophic_pattern_answers_at_once_and_polpo_stays_responsive(
    tmp_path: Path,
) -> None:
    root = tmp_path / "proj"
    config = write_config(root)
    (root / "evil.txt").write_text("a" * 34 + "!\n" + "aaa\n")
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO)
    repo = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(repo)) if p)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(script), str(config)],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=FROZEN_AFTER,
            env=subprocess_env(PYTHONPATH=path),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"Polpo froze: a search for (a+)+$ had not answered after {FROZEN_AFTER} s"
        ) from None
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "done"
    assert report["results"] == ["evil.txt:2: aaa"]
    assert report["beats"] > 0, f"the event loop never turned ({time.monotonic() - started:.1f} s)"


def test_a_search_stops_at_the_tasks_deadline(tmp_path: Path) -> None:
    root = tmp_path
    for i in range(20):
        (root / f"f{i}.txt").write_text("needle\n")
    late = Workspace(root, deadline=time.monotonic() - 1)
    out = search_files(late, "needle")
    assert out.splitlines()[-1].startswith("… stopped: the search ran out of time")
    assert "f19.txt" not in out


def test_a_search_stops_when_its_run_is_cancelled(tmp_path: Path) -> None:
    root = tmp_path
    (root / "f.txt").write_text("needle\n")
    ws = Workspace(root)
    ws.stop.set()  # what the tool wrapper does when the run is cancelled or times out
    assert search_files(ws, "needle").startswith("… stopped: the search ran out of time")


def test_back_references_and_look_around_still_work_within_a_time_limit(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x (?=y) z\nabab\nfoobar\n")
    ws = Workspace(tmp_path)
    assert search_files(ws, r"(ab)\1") == "f.txt:2: abab"
    assert search_files(ws, r"foo(?=bar)") == "f.txt:3: foobar"
    assert search_files(ws, "(?=y") == "f.txt:1: x (?=y) z"  # not a pattern: plain text
    (tmp_path / "evil.txt").write_text("a" * 40 + "!\n")
    # a backtracking pattern RE2 cannot take: stopped by the time limit, not frozen
    slow = Workspace(tmp_path, deadline=time.monotonic() + 0.5)
    out = search_files(slow, r"(a|aa)+(?=!)\1$", path="evil.txt")
    assert out.startswith("… stopped: the search ran out of time")
