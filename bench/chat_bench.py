"""Chat agent and outbound formatting: how much time Polpo itself adds to a turn.

Prints figures; not a test. The model is a FunctionModel (no network), so a
turn's figure is the agent loop, the tools and SQLite, without the LLM.

    .venv/bin/python bench/chat_bench.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

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
from polpo.config import load_config
from polpo.gateway.format import render_parts
from polpo.llm.chat import ChatAgent
from polpo.llm.history import bound_history, dump_history, load_history


def timed(fn: object, repeat: int = 5) -> float:
    """Median milliseconds of ``fn()`` over ``repeat`` runs."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bench_format() -> None:
    reply = (
        "## Status\n\nThe **build** is _green_; see [the log](https://ci.example.com/1).\n"
        "- task `k7m2` done\n- task `p3q9` running\n\n```python\nprint('hi')\n```\n\n"
    )
    for size in (2_000, 100_000):
        text = (reply * (size // len(reply) + 1))[:size]
        for fmt, limit in (("whatsapp", 4000), ("telegram", 4096), ("plain", 4000)):
            parts = render_parts(text, fmt, limit)  # type: ignore[arg-type]
            ms = timed(lambda t=text, f=fmt, n=limit: render_parts(t, f, n))  # type: ignore[misc]
            print(f"format {fmt:8} {size:>7} chars → {len(parts):>3} parts: {ms:8.2f} ms")


def long_history(turns: int) -> list[ModelMessage]:
    msgs: list[ModelMessage] = []
    for i in range(turns):
        cid = f"c{i}"
        msgs += [
            ModelRequest(parts=[UserPromptPart(f"question {i} " + "q" * 200)]),
            ModelResponse(parts=[ToolCallPart("list_tasks", {"limit": 20}, tool_call_id=cid)]),
            ModelRequest(parts=[ToolReturnPart("list_tasks", "t" * 1500, tool_call_id=cid)]),
            ModelResponse(parts=[TextPart("answer " + "a" * 400)]),
        ]
    return msgs


def bench_history() -> None:
    for turns in (50, 500):
        stored = dump_history(long_history(turns))
        raw = json.dumps(stored)

        def run(raw: str = raw) -> None:
            dump_history(bound_history(load_history(json.loads(raw)), 12_000))

        kept = len(bound_history(load_history(stored), 12_000))
        print(
            f"history {turns:>4} turns ({len(raw) // 1024} KiB) → {kept} messages kept: "
            f"{timed(run):8.2f} ms (load + bound + dump)"
        )


async def bench_turns() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ".polpo" / "polpo.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"project": "bench", "agents": [{"name": "coder"}]}))
        app = await Polpo.open(load_config(path))
        try:

            def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
                last = messages[-1]
                if any(isinstance(p, ToolReturnPart) for p in last.parts):
                    return ModelResponse(parts=[TextPart("Created.")])
                return ModelResponse(parts=[ToolCallPart("create_task", {"title": "Bench task"})])

            agent = ChatAgent(app, FunctionModel(model))
            history: list[object] = []
            samples = []
            for _ in range(30):
                start = time.perf_counter()
                reply = await agent.respond(peer_id="bench:1", text="add a task", history=history)
                samples.append((time.perf_counter() - start) * 1000)
                history = reply.history
            print(
                f"chat turn with one create_task call (no LLM): median {statistics.median(samples):.1f} ms, "
                f"p90 {sorted(samples)[26]:.1f} ms over {len(samples)} turns"
            )
        finally:
            await app.close()


if __name__ == "__main__":
    bench_format()
    bench_history()
    asyncio.run(bench_turns())
