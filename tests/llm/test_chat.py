"""The chat agent over the real pydantic-ai loop, a real SQLite project and FunctionModel."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic_ai.exceptions import ModelHTTPError
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
from polpo.llm import chat as chat_module
from polpo.llm.base import Responder
from polpo.llm.chat import ChatAgent
from polpo.llm.history import estimate_tokens, load_history

from .conftest import OpenProject

PEER = "whatsapp:39123456789"

Step = Callable[[list[ModelMessage], AgentInfo], ModelResponse]


@dataclass
class Script:
    """A FunctionModel that plays ``steps`` in order and records what each request carried."""

    steps: list[Step]
    seen: list[list[ModelMessage]] = field(default_factory=list)
    infos: list[AgentInfo] = field(default_factory=list)

    def model(self) -> FunctionModel:
        def play(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            self.seen.append(list(messages))
            self.infos.append(info)
            if len(self.seen) > len(self.steps):
                raise AssertionError(f"unexpected model request #{len(self.seen)}")
            return self.steps[len(self.seen) - 1](messages, info)

        return FunctionModel(play)


def call(tool: str, **args: Any) -> Step:
    return lambda messages, info: ModelResponse(parts=[ToolCallPart(tool, args)])


def say(text: str) -> Step:
    return lambda messages, info: ModelResponse(parts=[TextPart(text)])


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    last = messages[-1]
    assert isinstance(last, ModelRequest)
    return [p for p in last.parts if isinstance(p, ToolReturnPart)]


def last_return_text(messages: list[ModelMessage]) -> str:
    returns = tool_returns(messages)
    assert returns, "the request after a tool call must carry its return"
    return str(returns[-1].content)


def answer_with_tool_result(prefix: str) -> Step:
    """The final answer quotes the tool's result, as a model would."""
    return lambda messages, info: ModelResponse(
        parts=[TextPart(f"{prefix} {last_return_text(messages)}")]
    )


async def test_is_a_responder(app: Polpo) -> None:
    agent: Responder = ChatAgent(app, Script([say("hi")]).model())
    reply = await agent.respond(peer_id=PEER, text="hello", history=[])
    assert reply.text == "hi"
    assert reply.error is None


async def test_model_creates_a_task_through_the_tool(app: Polpo) -> None:
    script = Script(
        [
            call(
                "create_task",
                title="Write the release notes",
                description="For version 1.2",
                agent="writer",
            ),
            answer_with_tool_result("Done:"),
        ]
    )
    reply = await ChatAgent(app, script.model()).respond(
        peer_id=PEER, text="please get the release notes written", history=[]
    )

    tasks = await app.tasks.list()
    assert len(tasks) == 1
    task = tasks[0]
    assert (task.title, task.description, task.agent) == (
        "Write the release notes",
        "For version 1.2",
        "writer",
    )
    assert task.created_by == PEER
    assert task.status == "pending"
    # the second request saw the tool's return, and the answer passed it on
    assert f"Created task {task.short_id}" in last_return_text(script.seen[1])
    assert reply.text.startswith("Done: Created task " + task.short_id)
    assert reply.error is None


async def test_the_tools_offered_include_none_that_approves_rejects_or_pairs(app: Polpo) -> None:
    script = Script([say("ok")])
    await ChatAgent(app, script.model()).respond(peer_id=PEER, text="what can you do?", history=[])
    names = {t.name for t in script.infos[0].function_tools}
    assert names == {
        "get_status",
        "list_tasks",
        "get_task",
        "create_task",
        "cancel_task",
        "list_missions",
        "get_mission",
        "create_mission",
        "list_agents",
        "list_approvals",
    }
    assert not [n for n in names if re.search(r"approve|reject|pair|decide|resolve", n)]
    assert set(ChatAgent(app).tool_names) == names


async def test_a_model_that_tries_to_approve_cannot(app: Polpo) -> None:
    task = await app.tasks.add("Deploy", created_by="cli")
    approval = await app.approvals.request(task.id, gate="review", hook="task:start")
    script = Script(
        [
            call("approve", id=approval.short_id),
            call("approve_approval", id=approval.short_id),
            say(f"I can't approve; send /approve {approval.short_id}"),
        ]
    )
    reply = await ChatAgent(app, script.model()).respond(
        peer_id=PEER, text=f"approve {approval.short_id}", history=[]
    )
    assert (await app.approvals.get(approval.id)).status == "pending"
    # the model is told the tool does not exist
    assert "Unknown tool name: 'approve'" in last_return_text(script.seen[1])
    assert reply.text == f"I can't approve; send /approve {approval.short_id}"


async def test_the_instructions_name_the_project_agents_and_the_human_only_commands(
    app: Polpo,
) -> None:
    script = Script([say("ok")])
    await ChatAgent(app, script.model()).respond(peer_id=PEER, text="hi", history=[])
    instructions = script.infos[0].instructions or ""
    assert "demo-app" in instructions
    assert "coder: Senior engineer" in instructions
    assert "writer: Technical writer" in instructions
    for command in ("/approve ID", "/reject ID reason", "/pair CODE"):
        assert command in instructions
    assert "phone" in instructions and "Markdown" in instructions


async def test_a_tool_error_goes_back_to_the_model_as_text(app: Polpo) -> None:
    script = Script(
        [
            call("get_task", id="zzzz"),
            call("create_task", title="x", agent="nobody"),
            answer_with_tool_result("Hmm:"),
        ]
    )
    reply = await ChatAgent(app, script.model()).respond(
        peer_id=PEER, text="show me task zzzz", history=[]
    )
    assert last_return_text(script.seen[1]) == "Error: no task matches 'zzzz'"
    assert last_return_text(script.seen[2]).startswith("Error: unknown agent 'nobody'")
    assert reply.error is None
    assert await app.tasks.list() == []


async def test_tools_accept_short_ids_and_prefixes(app: Polpo) -> None:
    first = await app.tasks.add("Fix the login page", created_by="cli")
    second = await app.tasks.add("Add a dark mode", created_by="cli")
    script = Script(
        [
            call("get_task", id=first.short_id.upper()),
            call("cancel_task", id=second.id[:7], reason="not now"),
            call("list_tasks", status="cancelled"),
            say("ok"),
        ]
    )
    await ChatAgent(app, script.model()).respond(peer_id=PEER, text="tidy up", history=[])
    assert "Fix the login page" in last_return_text(script.seen[1])
    assert f"Task {first.short_id}" in last_return_text(script.seen[1])
    assert last_return_text(script.seen[2]) == f"Cancelled task {second.short_id}: Add a dark mode."
    assert last_return_text(script.seen[3]).startswith(f"{second.short_id} [cancelled]")
    cancelled = await app.tasks.get(second.id)
    assert cancelled.status == "cancelled"
    assert (await app.tasks.get(first.id)).status == "pending"


async def test_a_plan_from_the_model_runs_in_order_unless_it_says_otherwise(app: Polpo) -> None:
    """Missions are an ordered plan in chat too, as with ``polpo mission add``."""
    steps = [{"title": "Design"}, {"title": "Build"}, {"title": "Announce", "depends_on": []}]
    script = Script(
        [
            call("create_mission", name="Ordered", goal="g", tasks=steps),
            call("create_mission", name="Loose", goal="g", tasks=steps[:2], parallel=True),
            say("done"),
        ]
    )
    await ChatAgent(app, script.model()).respond(peer_id=PEER, text="plan", history=[])
    by_name = {m.name: m for m in await app.missions.list()}
    design, build, announce = await app.missions.tasks_of(by_name["Ordered"].id)
    assert (design.depends_on, build.depends_on, announce.depends_on) == ([], [design.id], [])
    loose = await app.missions.tasks_of(by_name["Loose"].id)
    assert [t.depends_on for t in loose] == [[], []]


async def test_the_model_plans_and_starts_a_mission(app: Polpo) -> None:
    script = Script(
        [
            call(
                "create_mission",
                name="Launch",
                goal="Ship v2",
                tasks=[
                    {"title": "Write code", "agent": "coder"},
                    {"title": "Write docs", "agent": "writer", "depends_on": [0]},
                ],
                start=True,
            ),
            lambda messages, info: ModelResponse(
                parts=[
                    ToolCallPart(
                        "get_mission",
                        {"id": last_return_text(messages).split()[2].rstrip(":")},
                    )
                ]
            ),
            say("Mission started."),
        ]
    )
    reply = await ChatAgent(app, script.model()).respond(
        peer_id=PEER, text="plan the launch", history=[]
    )
    missions = await app.missions.list()
    assert len(missions) == 1
    mission = missions[0]
    assert (mission.name, mission.goal, mission.status, mission.created_by) == (
        "Launch",
        "Ship v2",
        "active",
        PEER,
    )
    code, docs = await app.missions.tasks_of(mission.id)
    assert (code.title, code.agent, docs.title, docs.agent) == (
        "Write code",
        "coder",
        "Write docs",
        "writer",
    )
    assert docs.depends_on == [code.id]
    assert docs.created_by == PEER
    shown = last_return_text(script.seen[2])
    assert f"Mission {mission.short_id}" in shown and "0/2 tasks done" in shown
    assert reply.text == "Mission started."


async def test_the_read_tools_describe_the_project(app: Polpo) -> None:
    task = await app.tasks.add("Review the API", agent="coder", created_by="cli")
    await app.approvals.request(task.id, gate="review", hook="task:start", summary="ready?")
    await app.missions.add("Docs", goal="Better docs")
    script = Script(
        [
            call("get_status"),
            call("list_agents"),
            call("list_missions"),
            call("list_approvals"),
            call("list_tasks", status="bogus"),
            say("ok"),
        ]
    )
    await ChatAgent(app, script.model()).respond(peer_id=PEER, text="overview", history=[])
    status, agents, missions, approvals, bad = (
        last_return_text(script.seen[i]) for i in range(1, 6)
    )
    assert "Project: demo-app" in status and "awaiting_approval 1" in status
    assert "Pending approvals: 1" in status
    assert "coder — Senior engineer" in agents and "idle" in agents
    assert "[draft] Docs — 0/0 tasks done" in missions
    assert "gate review (task:start)" in approvals and "Review the API" in approvals
    assert "/approve ID" in approvals
    assert bad.startswith("Error: unknown task status 'bogus'")


async def test_history_round_trips_through_json_with_its_tool_calls(app: Polpo) -> None:
    first = Script([call("create_task", title="Fix the build"), answer_with_tool_result("OK.")])
    turn1 = await ChatAgent(app, first.model()).respond(
        peer_id=PEER, text="fix the build please", history=[]
    )
    stored = json.loads(json.dumps(turn1.history))  # what a database column gives back

    def recall(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls = [
            p
            for m in messages
            if isinstance(m, ModelResponse)
            for p in m.parts
            if isinstance(p, ToolCallPart)
        ]
        returns = [
            p
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        ]
        assert [c.tool_name for c in calls] == ["create_task"]
        assert calls[0].args_as_dict() == {"title": "Fix the build"}
        assert returns[0].tool_call_id == calls[0].tool_call_id
        prompts = [
            p.content
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, UserPromptPart)
        ]
        assert prompts == ["fix the build please", "which task was that?"]
        return ModelResponse(parts=[TextPart(f"It was: {returns[0].content}")])

    second = Script([recall])
    turn2 = await ChatAgent(app, second.model()).respond(
        peer_id=PEER, text="which task was that?", history=stored
    )
    task = (await app.tasks.list())[0]
    assert (
        turn2.text
        == f"It was: Created task {task.short_id}: Fix the build (agent coder, status pending)."
    )
    assert turn2.error is None
    # the new history holds both turns
    assert len(load_history(turn2.history)) == len(load_history(stored)) + 2


async def test_a_corrupt_history_starts_fresh_instead_of_crashing(app: Polpo) -> None:
    script = Script([lambda messages, info: ModelResponse(parts=[TextPart(str(len(messages)))])])
    garbage: list[Any] = [
        {"kind": "nonsense"},
        42,
        "text",
        {"parts": [{"part_kind": "tool-return", "tool_name": "x", "content": "orphan"}]},
    ]
    reply = await ChatAgent(app, script.model()).respond(peer_id=PEER, text="hi", history=garbage)
    assert reply.text == "1"  # only the new message reached the model
    assert reply.error is None
    assert len(load_history(reply.history)) == 2


async def test_an_orphan_tool_return_in_the_history_never_reaches_the_model(app: Polpo) -> None:
    first = Script([call("list_tasks"), say("none")])
    turn1 = await ChatAgent(app, first.model()).respond(peer_id=PEER, text="tasks?", history=[])
    # a history cut in the wrong place: the assistant's tool call is gone, its return is not
    cut = [
        m
        for m in turn1.history
        if not (m["kind"] == "response" and m["parts"][0]["part_kind"] == "tool-call")
    ]

    def check(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        for m in messages:
            assert not any(isinstance(p, ToolReturnPart) for p in m.parts)
        return ModelResponse(parts=[TextPart("fine")])

    reply = await ChatAgent(app, Script([check]).model()).respond(
        peer_id=PEER, text="again", history=cut
    )
    assert reply.text == "fine"


async def test_a_long_history_is_cut_at_turn_boundaries(open_project: OpenProject) -> None:
    app = await open_project(chat={"historyMaxTokens": 1000})
    history: list[Any] = []
    for i in range(30):
        script = Script([call("list_tasks"), say(f"answer {i} " + "x" * 200)])
        reply = await ChatAgent(app, script.model()).respond(
            peer_id=PEER, text=f"question {i}", history=history
        )
        history = reply.history
        messages = load_history(history)
        assert estimate_tokens(messages) <= 1000
    messages = load_history(history)
    first = messages[0]
    assert isinstance(first, ModelRequest) and isinstance(first.parts[0], UserPromptPart)
    # whole turns: each kept question still has its tool call, tool return and answer
    prompts = [
        m
        for m in messages
        if isinstance(m, ModelRequest) and isinstance(m.parts[0], UserPromptPart)
    ]
    assert 1 < len(prompts) < 30
    assert len(messages) == 4 * len(prompts)
    assert prompts[-1].parts[0].content == "question 29"


async def test_a_huge_message_is_cut_to_fit_the_budget(open_project: OpenProject) -> None:
    app = await open_project(chat={"historyMaxTokens": 2000})
    seen: list[str] = []

    def echo_size(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompt = messages[-1].parts[0]
        assert isinstance(prompt, UserPromptPart) and isinstance(prompt.content, str)
        seen.append(prompt.content)
        return ModelResponse(parts=[TextPart("that is long")])

    reply = await ChatAgent(app, FunctionModel(echo_size)).respond(
        peer_id=PEER, text="a" * 100_000, history=[]
    )
    assert reply.text == "that is long"
    assert len(seen[0]) <= 2000 * 4 // 2
    assert seen[0].endswith("[…cut: 100000 characters in all]")
    assert estimate_tokens(load_history(reply.history)) <= 2000


async def test_endless_tool_calls_stop_at_max_tool_rounds(open_project: OpenProject) -> None:
    app = await open_project(chat={"maxToolRounds": 3})
    requests: list[int] = []

    def forever(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        requests.append(1)
        return ModelResponse(parts=[ToolCallPart("list_tasks", {})])

    reply = await ChatAgent(app, FunctionModel(forever)).respond(
        peer_id=PEER, text="loop", history=[]
    )
    assert reply.text == chat_module.APOLOGY_LIMIT.format(rounds=3)
    assert reply.error is not None and reply.error.startswith("limit")
    assert len(requests) == 4  # three rounds of tools, then the request that would answer
    # the stored history holds the question and the apology, and no dangling call
    messages = load_history(reply.history)
    assert isinstance(messages[-1], ModelResponse)
    assert messages[-1].parts == [TextPart(reply.text)]


async def test_a_model_that_hangs_times_out(open_project: OpenProject) -> None:
    app = await open_project(chat={"turnTimeoutSeconds": 0.05})

    async def hang(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    reply = await asyncio.wait_for(
        ChatAgent(app, FunctionModel(hang)).respond(peer_id=PEER, text="hi", history=[]),
        timeout=5,
    )
    assert reply.text == chat_module.APOLOGY_TIMEOUT.format(seconds=0.05)
    assert reply.error is not None and reply.error.startswith("timeout")
    prompts = [
        p for m in load_history(reply.history) for p in m.parts if isinstance(p, UserPromptPart)
    ]
    assert [p.content for p in prompts] == ["hi"]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (RuntimeError("boom"), chat_module.APOLOGY_MODEL),
        (ConnectionError("network down"), chat_module.APOLOGY_MODEL),
        (ModelHTTPError(500, "m", {"error": "oops"}), chat_module.APOLOGY_MODEL),
    ],
)
async def test_a_failing_model_gives_a_short_apology(
    app: Polpo, failure: Exception, expected: str
) -> None:
    def fail(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise failure

    reply = await ChatAgent(app, FunctionModel(fail)).respond(peer_id=PEER, text="hi", history=[])
    assert reply.text == expected
    assert reply.error is not None and type(failure).__name__ in reply.error


async def test_a_failure_after_a_tool_keeps_the_work_in_the_history(app: Polpo) -> None:
    def fail(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelHTTPError(503, "m", "unavailable")

    script = Script([call("create_task", title="Keep me"), fail])
    reply = await ChatAgent(app, script.model()).respond(peer_id=PEER, text="add it", history=[])
    assert reply.text == chat_module.APOLOGY_MODEL
    kinds = [[p.part_kind for p in m.parts] for m in load_history(reply.history)]
    assert kinds == [["user-prompt"], ["tool-call"], ["tool-return"], ["text"]]
    assert [t.title for t in await app.tasks.list()] == ["Keep me"]


async def test_no_model_configured_says_how_to_configure_one(app: Polpo) -> None:
    reply = await ChatAgent(app).respond(peer_id=PEER, text="hello", history=[])
    assert reply.error is not None and "not configured" in reply.error
    assert "orchestratorModel" in reply.text and "/help" in reply.text
    assert len(reply.text) < 400  # fits a phone screen


async def test_a_missing_api_key_names_the_variable(open_project: OpenProject) -> None:
    app = await open_project(orchestratorModel="openai:gpt-4.1-mini")
    reply = await ChatAgent(app).respond(peer_id=PEER, text="hello", history=[])
    assert reply.error is not None
    assert "OPENAI_API_KEY" in reply.text


async def test_polpo_model_overrides_the_config(
    open_project: OpenProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await open_project(orchestratorModel="openai:gpt-4.1-mini")
    monkeypatch.setenv("POLPO_MODEL", "test:offline")
    reply = await ChatAgent(app).respond(peer_id=PEER, text="hello", history=[])
    assert reply.error is None
    assert reply.text  # the offline test model answers without a key


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
async def test_an_empty_message_gets_a_gentle_prompt_without_a_model_call(
    app: Polpo, text: str
) -> None:
    script = Script([])
    reply = await ChatAgent(app, script.model()).respond(peer_id=PEER, text=text, history=[])
    assert reply.text == chat_module.EMPTY_PROMPT
    assert reply.error is None
    assert script.seen == []


async def test_an_empty_model_answer_is_never_silence(app: Polpo) -> None:
    reply = await ChatAgent(app, Script([say("  ")]).model()).respond(
        peer_id=PEER, text="hi", history=[]
    )
    assert reply.text == chat_module.NO_ANSWER


async def test_an_unexpected_tool_failure_gives_an_apology(
    app: Polpo, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(app, "status", broken)
    script = Script([call("get_status"), say("unreachable")])
    reply = await ChatAgent(app, script.model()).respond(peer_id=PEER, text="status?", history=[])
    assert reply.text == chat_module.APOLOGY_MODEL
    assert reply.error is not None and "disk I/O error" in reply.error


async def test_a_bug_in_the_turn_still_answers_and_keeps_the_session(
    app: Polpo, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await ChatAgent(app, Script([say("hello")]).model()).respond(
        peer_id=PEER, text="hi", history=[]
    )

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(chat_module, "bound_history", broken)
    reply = await ChatAgent(app, Script([say("x")]).model()).respond(
        peer_id=PEER, text="again", history=first.history
    )
    assert reply.text == chat_module.APOLOGY_MODEL
    assert reply.history == first.history
    assert reply.error is not None and "internal error" in reply.error
