"""The task runner: tasks/s with a stub model, and what scheduling adds per task.

Prints figures; not a test. The model is a FunctionModel that answers at once
(optionally after one write_file call), so the figures are Polpo's own work:
finding ready tasks, the claim transaction, the run row, the pydantic-ai loop,
the finishing transaction and the events. "Scheduling overhead" is the time
per task through the runner minus the time of the same agent run alone.

    .venv/bin/python bench/runner.py [TASKS]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from polpo.app import Polpo
from polpo.config import load_config
from polpo.runner import Runner
from polpo.runner.tools import Workspace, tools_for


def stub(with_tool: bool) -> FunctionModel:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        answered = sum(1 for m in messages if isinstance(m, ModelResponse))
        if with_tool and answered == 0:
            return ModelResponse(
                parts=[ToolCallPart("write_file", {"path": "out/x.txt", "content": "x"})]
            )
        return ModelResponse(parts=[TextPart("done")])

    return FunctionModel(respond)


def project(root: Path, concurrency: int) -> Path:
    config = {
        "project": "bench",
        "agents": [
            {
                "name": "worker",
                "model": "test:stub",
                "tools": ["write_file"],
                "maxConcurrency": concurrency,
            }
        ],
    }
    path = root / ".polpo" / "polpo.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(config))
    return path


async def through_runner(n: int, concurrency: int, with_tool: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        app = await Polpo.open(load_config(project(Path(tmp), concurrency)))
        try:
            for i in range(n):
                await app.tasks.add(f"task {i}", agent="worker")
            model = stub(with_tool)
            runner = Runner(app, model_factory=lambda a, c: model)
            start = time.perf_counter()
            report = await runner.drain()
            elapsed = time.perf_counter() - start
            runner.close()
            statuses = [t.status for t in report.finished]
            assert statuses == ["done"] * n, (len(statuses), set(statuses), report.finished[:1])
            return elapsed
        finally:
            await app.close()


async def agent_alone(n: int, with_tool: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        model = stub(with_tool)
        start = time.perf_counter()
        for _ in range(n):
            agent: Agent[Workspace, str] = Agent(
                model, deps_type=Workspace, output_type=str, tools=tools_for(["write_file"])
            )
            await agent.run("task", deps=Workspace(Path(tmp)))
        return time.perf_counter() - start


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    rows: list[tuple[Any, ...]] = []
    for with_tool in (False, True):
        alone = await agent_alone(n, with_tool) / n
        for concurrency in (1, 8):
            total = await through_runner(n, concurrency, with_tool)
            rows.append((with_tool, concurrency, n / total, total / n * 1000, alone * 1000))
    print(f"runner bench: {n} tasks per row, SQLite file, stub model (no network)")
    print(
        f"{'tool call':>9} {'maxConc':>7} {'tasks/s':>8} {'ms/task':>8} {'agent alone':>11} {'overhead':>9}"
    )
    for with_tool, conc, tps, ms, alone_ms in rows:
        print(
            f"{'yes' if with_tool else 'no':>9} {conc:>7} {tps:>8.0f} {ms:>8.2f} "
            f"{alone_ms:>9.2f}ms {ms - alone_ms:>7.2f}ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
