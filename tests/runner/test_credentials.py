"""A missing API key leaves tasks pending (no attempt used) with one clear line, and
they run once the key is there — instead of every ready task failing at once."""

from __future__ import annotations

import logging

import pytest
from pydantic_ai.models import Model

from polpo.config import AgentConfig, PolpoConfig
from polpo.runner import Runner
from polpo.runner.runner import default_model

from .conftest import OpenProject, Script

OPENAI_AGENT = [{"name": "coder", "role": "Engineer", "model": "openai:gpt-4.1-mini"}]
WHY = "no API key for openai:gpt-4.1-mini: set OPENAI_API_KEY"


def _checked_factory(script: Script) -> object:
    """The real credential check (``default_model``), then a scripted model instead of
    OpenAI's servers, which this machine cannot reach."""
    scripted = script.model()

    def factory(agent: AgentConfig, config: PolpoConfig) -> Model:
        default_model(agent, config)  # raises when the key is missing
        return scripted

    return factory


async def test_no_api_key_leaves_tasks_pending_and_says_so_once(
    open_project: OpenProject, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = await open_project(agents=OPENAI_AGENT)
    ids = [(await app.tasks.add(f"Job {i}")).id for i in range(3)]
    script = Script(["done"])
    runner = Runner(app, model_factory=_checked_factory(script))  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.WARNING, logger="polpo.runner.runner"):
            report = await runner.drain()
            again = await runner.drain()
        for task_id in ids:
            task = await app.tasks.get(task_id)
            assert (task.status, task.attempts, task.error) == ("pending", 0, None)
        assert report.model_problems == {"coder": WHY}
        assert again.model_problems == {"coder": WHY} and again.finished == []
        said = [r.getMessage() for r in caplog.records if WHY in r.getMessage()]
        assert said == [f"tasks of agent coder wait: {WHY}"]  # once, not per task or tick

        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        report = await runner.drain()
    finally:
        runner.close()
    assert report.model_problems == {}
    assert sorted(t.id for t in report.finished) == sorted(ids)
    for task_id in ids:
        assert (await app.tasks.get(task_id)).status == "done"
    assert script.requests == 3


async def test_no_model_at_all_also_waits(open_project: OpenProject) -> None:
    app = await open_project(agents=[{"name": "coder"}])
    task = await app.tasks.add("Anything")
    runner = Runner(app)  # the real model resolution: no model anywhere
    try:
        report = await runner.drain()
    finally:
        runner.close()
    assert (await app.tasks.get(task.id)).status == "pending"
    assert "No model is configured" in report.model_problems["coder"]
    assert "settings.orchestratorModel" in report.model_problems["coder"]
