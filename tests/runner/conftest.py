"""Projects on disk for the runner's tests, and scripted FunctionModel agents."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import AgentConfig, PolpoConfig, load_config
from polpo.runner import Runner

AGENTS: list[dict[str, Any]] = [
    {
        "name": "coder",
        "role": "Senior engineer",
        "systemPrompt": "Write small, clean changes.",
        "tools": ["list_files", "read_file", "write_file", "search_files"],
        "maxConcurrency": 1,
    },
    {
        "name": "ops",
        "role": "Operator",
        "tools": ["read_file", "run_command"],
        "maxConcurrency": 2,
        "commandTimeoutSeconds": 5,
    },
    {"name": "writer", "role": "Docs", "tools": ["read_file", "write_file"], "maxConcurrency": 3},
]


def write_config(
    root: Path, *, agents: list[dict[str, Any]] | None = None, **settings: Any
) -> Path:
    config = {
        "project": "demo",
        "agents": AGENTS if agents is None else agents,
        "settings": settings,
    }
    path = root / ".polpo" / "polpo.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("POLPO_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


OpenProject = Callable[..., Awaitable[Polpo]]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "proj"
    r.mkdir()
    return r


@pytest.fixture
async def open_project(root: Path, clock: FakeClock) -> AsyncIterator[OpenProject]:
    opened: list[Polpo] = []

    async def _open(**kwargs: Any) -> Polpo:
        path = write_config(root, **kwargs) if kwargs or not opened else root / ".polpo/polpo.json"
        app = await Polpo.open(load_config(path), clock=clock)
        opened.append(app)
        return app

    yield _open
    for app in opened:
        await app.close()


@dataclass
class Script:
    """A FunctionModel agent: ``steps`` answer the model requests of each run in turn.

    A step is a list of ``(tool, args)`` calls, or a string (the final answer), or a
    callable ``(messages) -> step``. ``prompts`` collects each run's user prompt and
    ``tool_results`` every tool answer the model was shown.
    """

    steps: list[Any]
    prompts: list[str] = field(default_factory=list)
    tool_results: list[str] = field(default_factory=list)
    requests: int = 0

    def model(self) -> FunctionModel:
        return FunctionModel(self._respond)

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        for part in last.parts:
            if isinstance(part, UserPromptPart):
                self.prompts.append(str(part.content))
            if isinstance(part, ToolReturnPart):
                self.tool_results.append(str(part.content))
        # which step of this run: count the responses since the last user prompt
        since = 0
        for m in reversed(messages):
            if isinstance(m, ModelRequest) and any(isinstance(p, UserPromptPart) for p in m.parts):
                break
            if isinstance(m, ModelResponse):
                since += 1
        self.requests += 1
        step = self.steps[min(since, len(self.steps) - 1)]
        if callable(step):
            step = await step(messages) if _is_async(step) else step(messages)
        if isinstance(step, str):
            return ModelResponse(parts=[TextPart(step)])
        return ModelResponse(
            parts=[
                ToolCallPart(tool_name=name, args=args, tool_call_id=f"c{self.requests}-{i}")
                for i, (name, args) in enumerate(step)
            ]
        )

    def factory(self) -> Callable[[AgentConfig, PolpoConfig], FunctionModel]:
        m = self.model()
        return lambda agent, config: m


def _is_async(fn: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


def make_runner(app: Polpo, script: Script, **kwargs: Any) -> Runner:
    return Runner(app, model_factory=script.factory(), **kwargs)
