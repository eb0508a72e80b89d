"""End to end over HTTP: ChatAgent → pydantic-ai → OpenAI SDK → a local fake server."""

from __future__ import annotations

import json

import pytest
from openai import AsyncOpenAI
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from polpo.llm import chat as chat_module
from polpo.llm.chat import ChatAgent

from .conftest import OpenProject
from .fake_openai import CLOSE, completion, fake_openai

PEER = "telegram:4242"


async def test_a_local_openai_compatible_server_creates_a_task(open_project: OpenProject) -> None:
    replies = [
        completion(tool_calls=[("call_1", "create_task", {"title": "Rotate the logs"})]),
        completion(text="Created **task** for you."),
    ]
    with fake_openai(replies) as server:
        app = await open_project(
            orchestratorModel="local:some-model",
            providers={"local": {"baseUrl": server.base_url}},
        )
        reply = await ChatAgent(app).respond(peer_id=PEER, text="rotate the logs", history=[])

    assert reply.error is None
    assert reply.text == "Created **task** for you."
    [task] = await app.tasks.list()
    assert (task.title, task.created_by) == ("Rotate the logs", PEER)

    first, second = server.received
    assert first.path == second.path == "/v1/chat/completions"
    assert first.body["model"] == "some-model"
    offered = {t["function"]["name"] for t in first.body["tools"]}
    assert "create_task" in offered and not any("approve" in n for n in offered)
    roles = [m["role"] for m in first.body["messages"]]
    assert roles[0] == "system" and "demo-app" in first.body["messages"][0]["content"]
    assert first.body["messages"][-1] == {"role": "user", "content": "rotate the logs"}
    # the second request carries the assistant's tool call and the tool's result
    tool_msg = second.body["messages"][-1]
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == "call_1"
    assert tool_msg["content"].startswith(f"Created task {task.short_id}: Rotate the logs")
    call = second.body["messages"][-2]["tool_calls"][0]
    assert call["id"] == "call_1" and json.loads(call["function"]["arguments"]) == {
        "title": "Rotate the logs"
    }


async def test_the_next_turn_sends_the_stored_tool_call_back(open_project: OpenProject) -> None:
    replies = [
        completion(tool_calls=[("call_9", "list_tasks", {})]),
        completion(text="No tasks."),
        completion(text="Still none."),
    ]
    with fake_openai(replies) as server:
        app = await open_project(
            orchestratorModel="local:m", providers={"local": {"baseUrl": server.base_url}}
        )
        agent = ChatAgent(app)
        turn1 = await agent.respond(peer_id=PEER, text="tasks?", history=[])
        stored = json.loads(json.dumps(turn1.history))
        turn2 = await agent.respond(peer_id=PEER, text="and now?", history=stored)

    assert turn2.text == "Still none."
    sent = server.received[2].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[2]["tool_calls"][0]["id"] == "call_9"
    assert sent[3]["tool_call_id"] == "call_9"


async def test_openai_prefix_with_a_base_url_uses_chat_completions(
    open_project: OpenProject,
) -> None:
    with fake_openai([completion(text="hello from chat completions")]) as server:
        app = await open_project(
            orchestratorModel="openai:gpt-4.1-mini",
            providers={"openai": {"baseUrl": server.base_url}},
        )
        reply = await ChatAgent(app).respond(peer_id=PEER, text="hi", history=[])

    assert reply.text == "hello from chat completions"
    assert [r.path for r in server.received] == ["/v1/chat/completions"]


async def test_bare_openai_prefix_uses_chat_completions_too(
    open_project: OpenProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_openai([completion(text="hi")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        app = await open_project(orchestratorModel="openai:gpt-4.1-mini")
        reply = await ChatAgent(app).respond(peer_id=PEER, text="hi", history=[])

    assert reply.text == "hi"
    assert [r.path for r in server.received] == ["/v1/chat/completions"]
    assert server.received[0].headers["authorization"] == "Bearer sk-test"


async def test_a_named_api_key_is_sent(
    open_project: OpenProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_ROUTER_KEY", "sk-router")
    with fake_openai([completion(text="ok")]) as server:
        app = await open_project(
            orchestratorModel="router:vendor/model",
            providers={"router": {"baseUrl": server.base_url, "apiKeyEnv": "MY_ROUTER_KEY"}},
        )
        await ChatAgent(app).respond(peer_id=PEER, text="hi", history=[])
    assert server.received[0].headers["authorization"] == "Bearer sk-router"
    assert server.received[0].body["model"] == "vendor/model"


async def test_a_server_error_gives_an_apology(open_project: OpenProject) -> None:
    with fake_openai([500]) as server:
        app = await open_project(
            orchestratorModel="local:m", providers={"local": {"baseUrl": server.base_url}}
        )
        reply = await ChatAgent(app).respond(peer_id=PEER, text="hi", history=[])
    assert reply.text == chat_module.APOLOGY_MODEL
    assert reply.error is not None and "500" in reply.error
    assert len(server.received) >= 1


async def test_a_rejected_key_says_so(open_project: OpenProject) -> None:
    with fake_openai([401]) as server:
        app = await open_project(
            orchestratorModel="local:m", providers={"local": {"baseUrl": server.base_url}}
        )
        reply = await ChatAgent(app).respond(peer_id=PEER, text="hi", history=[])
    assert reply.text == chat_module.APOLOGY_AUTH


async def test_a_closed_connection_gives_an_apology(open_project: OpenProject) -> None:
    with fake_openai([CLOSE]) as server:
        app = await open_project()
        # no SDK retries, so the test does not wait on the SDK's backoff
        client = AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        model = OpenAIChatModel("m", provider=OpenAIProvider(openai_client=client))
        reply = await ChatAgent(app, model).respond(peer_id=PEER, text="hi", history=[])
        await client.close()
    assert reply.text == chat_module.APOLOGY_MODEL
    assert reply.error is not None
    assert len(server.received) == 1


async def test_a_picture_reaches_the_model_as_an_image_part_and_not_the_history(
    open_project: OpenProject,
) -> None:
    import base64

    from polpo.llm.base import Picture
    from polpo.llm.history import PICTURE_NOTE

    jpeg = b"\xff\xd8\xff\xe0" + bytes(64)
    with fake_openai([completion(text="A red bicycle."), completion(text="Yes.")]) as server:
        app = await open_project(
            orchestratorModel="local:vision", providers={"local": {"baseUrl": server.base_url}}
        )
        agent = ChatAgent(app)
        reply = await agent.respond(
            peer_id=PEER,
            text="what is this?",
            history=[],
            pictures=[Picture(jpeg, "image/jpeg")],
        )
        stored = json.loads(json.dumps(reply.history))
        await agent.respond(peer_id=PEER, text="is it mine?", history=stored)

    assert reply.text == "A red bicycle."
    content = server.received[0].body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "what is this?"}
    image = content[1]
    assert image["type"] == "image_url"
    assert image["image_url"]["url"] == "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    # the stored history holds words only: no picture bytes in the database
    assert base64.b64encode(jpeg).decode()[:20] not in json.dumps(stored)
    assert PICTURE_NOTE in json.dumps(stored)
    later = server.received[1].body["messages"][1]
    assert later["role"] == "user" and "what is this?" in json.dumps(later)
    assert "image_url" not in json.dumps(server.received[1].body)
