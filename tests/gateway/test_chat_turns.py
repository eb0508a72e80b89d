"""Free text through the whole pipeline to the real chat agent (pydantic-ai loop, FunctionModel)."""

from __future__ import annotations

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from polpo.llm.chat import ChatAgent
from polpo.testing import MemoryChannel, exchange, running_gateway

from .conftest import OWNER, OWNER_PEER, OpenProject


async def test_a_chat_turn_uses_a_tool_and_the_next_turn_sees_the_history(
    open_project: OpenProject, whatsapp: MemoryChannel
) -> None:
    app = await open_project()
    requests: list[list[ModelMessage]] = []

    def play(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        requests.append(list(messages))
        last = messages[-1].parts[-1]
        if isinstance(last, ToolReturnPart):
            return ModelResponse(parts=[TextPart(f"Done: {last.content}")])
        if len(requests) == 1:
            return ModelResponse(
                parts=[
                    ToolCallPart("create_task", {"title": "Write the changelog", "agent": "coder"})
                ]
            )
        return ModelResponse(parts=[TextPart(f"You said {len(messages)} things")])

    agent = ChatAgent(app, FunctionModel(play))
    async with running_gateway(app, whatsapp, responder=agent) as gw:
        [reply] = await exchange(gw, whatsapp, OWNER, "please add a task to write the changelog")
        assert reply.startswith("Done: Created task")
        [task] = await app.tasks.list()
        assert (task.title, task.created_by) == ("Write the changelog", OWNER_PEER)
        [second] = await exchange(gw, whatsapp, OWNER, "thanks")
    # the second request carried the whole first turn (prompt, tool call, tool return, answer)
    assert len(requests[-1]) > 3
    assert second.startswith("You said")


async def test_no_model_configured_still_answers_and_commands_work(
    open_project: OpenProject, whatsapp: MemoryChannel
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=ChatAgent(app)) as gw:
        [reply] = await exchange(gw, whatsapp, OWNER, "hello")
        assert "model" in reply.lower()
        [status] = await exchange(gw, whatsapp, OWNER, "/status")
        assert "demo" in status
