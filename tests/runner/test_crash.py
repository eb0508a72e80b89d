"""A real ``polpo run`` process killed mid-run: the task is retryable and never done twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from polpo.app import Polpo
from polpo.config import load_config
from polpo.store.tables import events, task_runs
from tests.cli.conftest import subprocess_env
from tests.runner.conftest import write_config

# ``polpo run`` with the model replaced by a FunctionModel (the only change: the model
# factory seam). "slow": writes a file, then blocks mid-run; "fast": answers at once.
SCRIPT = """
import asyncio, sys
from pathlib import Path
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import FunctionModel
import polpo.runner.runner as rr

mode, marker = sys.argv[1], Path(sys.argv[2])

def factory(agent, config):
    async def respond(messages, info):
        answered = sum(1 for m in messages if isinstance(m, ModelResponse))
        if mode == "slow":
            if answered == 0:
                return ModelResponse(parts=[ToolCallPart("write_file", {"path": "progress.txt", "content": "half"})])
            marker.write_text("mid-run")
            await asyncio.sleep(3600)
        return ModelResponse(parts=[TextPart("finished properly")])
    return FunctionModel(respond)

rr.DEFAULT_MODEL_FACTORY = factory
from polpo.cli.main import run
sys.exit(run(sys.argv[3:]))
"""


def polpo_run(
    script: Path, mode: str, marker: Path, config: Path, *args: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), mode, str(marker), "--config", str(config), "run", *args],
        cwd=config.parent.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


def wait_for(cond: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


async def test_killing_polpo_run_mid_task_leaves_it_retryable_and_never_done_twice(
    tmp_path: Path,
) -> None:
    root = tmp_path / "proj"
    config = write_config(root)
    script = tmp_path / "polpo_run_with_model.py"
    script.write_text(SCRIPT)
    marker = tmp_path / "mid-run"
    app = await Polpo.open(load_config(config))
    try:
        task = await app.tasks.add("Long job", agent="coder")

        first = polpo_run(script, "slow", marker, config)
        try:
            wait_for(lambda: marker.exists() or first.poll() is not None)
            assert marker.exists(), first.communicate()
            running = await app.tasks.get(task.id)
            assert running.status == "running" and running.lease_owner
            assert (root / "progress.txt").read_text() == "half"
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL

        # started again: the dead run is found at once and the task failed, retryable
        second = polpo_run(script, "fast", marker, config, "--json")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        report = json.loads(out)
        assert [t["id"] for t in report["interrupted"]] == [task.id]
        assert report["finished"] == []
        failed = await app.tasks.get(task.id)
        assert failed.status == "failed" and failed.error and "interrupted" in failed.error
        assert f"polpo task retry {failed.short_id}" in failed.error

        await app.tasks.retry(task.id)
        third = polpo_run(script, "fast", marker, config)
        out, err = third.communicate(timeout=60)
        assert third.returncode == 0, err
        assert "Ran 1 task: 1 done, 0 failed." in out
        # and once more: nothing is left to do, nothing runs again
        from polpo.runner import Runner

        again = Runner(app, model_factory=lambda a, c: None)  # type: ignore[arg-type,return-value]
        assert (await again.drain()).finished == []
        again.close()

        done = await app.tasks.get(task.id)
        assert done.status == "done" and done.result == "finished properly"
        assert done.attempts == 2
        async with app.store.read() as conn:
            runs = (
                await conn.execute(
                    sa.select(task_runs.c.status)
                    .where(task_runs.c.task_id == task.id)
                    .order_by(task_runs.c.id)
                )
            ).all()
            done_events = (
                await conn.execute(sa.select(events.c.payload).where(events.c.type == "task:done"))
            ).all()
        assert [r.status for r in runs] == ["interrupted", "done"]
        assert [e.payload["taskId"] for e in done_events] == [task.id]
    finally:
        await app.close()
