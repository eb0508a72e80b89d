"""History repair and bounding: what reaches a provider is always well-formed and fits."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from polpo.llm.history import (
    bound_history,
    dump_history,
    estimate_tokens,
    load_history,
    repair,
)


def turn(i: int, tools: int = 1, size: int = 50) -> list[ModelMessage]:
    msgs: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart(f"q{i} " + "u" * size)])]
    for k in range(tools):
        cid = f"call-{i}-{k}"
        msgs.append(
            ModelResponse(parts=[ToolCallPart("list_tasks", {"limit": k}, tool_call_id=cid)])
        )
        msgs.append(
            ModelRequest(parts=[ToolReturnPart("list_tasks", "r" * size, tool_call_id=cid)])
        )
    msgs.append(ModelResponse(parts=[TextPart(f"a{i} " + "t" * size)]))
    return msgs


def assert_well_formed(msgs: list[ModelMessage]) -> None:
    if not msgs:
        return
    assert isinstance(msgs[0], ModelRequest)
    assert any(isinstance(p, UserPromptPart) for p in msgs[0].parts)
    assert isinstance(msgs[-1], ModelResponse)
    for i, m in enumerate(msgs):
        assert m.parts, "no empty message"
        if i:
            assert type(m) is not type(msgs[i - 1]), "requests and responses alternate"
        if isinstance(m, ModelResponse):
            calls = {p.tool_call_id for p in m.parts if isinstance(p, ToolCallPart)}
            nxt = msgs[i + 1] if i + 1 < len(msgs) else None
            answered = (
                {p.tool_call_id for p in nxt.parts if isinstance(p, ToolReturnPart)}
                if nxt is not None
                else set()
            )
            assert calls <= answered, "every tool call is answered by the next message"
        else:
            returns = {p.tool_call_id for p in m.parts if isinstance(p, ToolReturnPart)}
            prev = msgs[i - 1] if i else None
            called = (
                {p.tool_call_id for p in prev.parts if isinstance(p, ToolCallPart)}
                if isinstance(prev, ModelResponse)
                else set()
            )
            assert returns <= called, "no orphan tool return"


def prompts(msgs: list[ModelMessage]) -> list[str]:
    return [
        str(p.content)
        for m in msgs
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, UserPromptPart)
    ]


def test_load_history_drops_what_does_not_validate() -> None:
    good = dump_history(turn(1))
    assert load_history(None) == []
    assert load_history({"parts": []}) == []
    assert load_history("[]") == []
    mixed: list[Any] = [good[0], {"kind": "alien"}, 7, *good[1:]]
    assert len(load_history(mixed)) == len(good)


def test_a_history_fitting_the_budget_is_kept_whole() -> None:
    msgs = turn(1) + turn(2)
    assert bound_history(msgs, 10_000) == repair(msgs)
    assert len(bound_history(msgs, 10_000)) == 8


def test_oldest_whole_turns_go_first() -> None:
    msgs = [m for i in range(10) for m in turn(i, tools=2, size=400)]
    kept = bound_history(msgs, 1500)
    assert_well_formed(kept)
    assert estimate_tokens(kept) <= 1500
    assert prompts(kept) == [p for p in prompts(msgs) if p.startswith(("q7", "q8", "q9"))]
    assert len(kept) == 3 * 6


def test_an_orphan_tool_return_is_dropped() -> None:
    msgs = turn(1)
    del msgs[1]  # the tool call, but not its return
    fixed = repair(msgs)
    assert_well_formed(fixed)
    assert not any(isinstance(p, ToolReturnPart) for m in fixed for p in m.parts)
    assert prompts(fixed) == prompts(msgs)


def test_an_unanswered_tool_call_is_dropped() -> None:
    msgs = turn(1, tools=2)
    del msgs[4]  # the second tool return
    fixed = repair(msgs)
    assert_well_formed(fixed)
    calls = [p for m in fixed for p in m.parts if isinstance(p, ToolCallPart)]
    assert [c.tool_call_id for c in calls] == ["call-1-0"]


def test_a_history_must_start_with_the_user_and_end_with_the_assistant() -> None:
    msgs = turn(1)[1:] + turn(2) + [ModelRequest(parts=[UserPromptPart("unanswered")])]
    fixed = repair(msgs)
    assert_well_formed(fixed)
    assert prompts(fixed) == [prompts(turn(2))[0]]


def test_system_prompts_and_stale_instructions_are_not_stored() -> None:
    msgs: list[ModelMessage] = [
        ModelRequest(
            parts=[SystemPromptPart("old system prompt"), UserPromptPart("hi")],
            instructions="old instructions " * 100,
        ),
        ModelResponse(parts=[TextPart("hello")]),
    ]
    fixed = repair(msgs)
    first = fixed[0]
    assert isinstance(first, ModelRequest)
    assert first.instructions is None
    assert [p.part_kind for p in first.parts] == ["user-prompt"]


def test_a_100k_message_in_the_history_is_cut() -> None:
    msgs = [
        ModelRequest(parts=[UserPromptPart("x" * 100_000)]),
        ModelResponse(parts=[TextPart("ok")]),
        *turn(2),
    ]
    kept = bound_history(msgs, 12_000)
    assert_well_formed(kept)
    assert estimate_tokens(kept) <= 12_000
    assert prompts(kept)[0].endswith("[…cut: 100000 characters in all]")


def test_one_turn_too_big_for_the_budget_is_cut_but_stays_valid() -> None:
    huge = turn(1, tools=40, size=5000)
    kept = bound_history(huge, 1000)
    assert_well_formed(kept)
    assert estimate_tokens(kept) <= 1000
    assert kept, "the newest turn is kept in some form"
    assert prompts(kept)[0].startswith("q1")


def test_tool_arguments_stay_valid_json_when_cut() -> None:
    long_args = json.dumps({"title": "t", "description": "d" * 50_000})
    msgs: list[ModelMessage] = [
        ModelRequest(parts=[UserPromptPart("make it")]),
        ModelResponse(parts=[ToolCallPart("create_task", long_args, tool_call_id="c1")]),
        ModelRequest(parts=[ToolReturnPart("create_task", "Created", tool_call_id="c1")]),
        ModelResponse(parts=[TextPart("done")]),
    ]
    kept = bound_history(msgs, 2000)
    call = next(p for m in kept for p in m.parts if isinstance(p, ToolCallPart))
    args = call.args_as_dict()
    assert args["title"] == "t"
    assert len(args["description"]) < 5000


# -- properties -------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[ModelMessage]:
    msgs: list[ModelMessage] = []
    for i in range(draw(st.integers(0, 12))):
        msgs.extend(
            turn(i, tools=draw(st.integers(0, 4)), size=draw(st.sampled_from([0, 10, 300, 6000])))
        )
    # damage: messages lost in a crash, or cut in odd places
    for _ in range(draw(st.integers(0, 3))):
        if msgs:
            del msgs[draw(st.integers(0, len(msgs) - 1))]
    return msgs


@settings(max_examples=150, deadline=None)
@given(histories(), st.integers(500, 6000))
def test_bounded_histories_are_well_formed_and_fit(msgs: list[ModelMessage], budget: int) -> None:
    kept = bound_history(msgs, budget)
    assert_well_formed(kept)
    assert estimate_tokens(kept) <= budget
    # the newest complete turn survives (perhaps cut shorter)
    full = repair(msgs)
    if full and kept:
        assert prompts(kept)[-1][:3] == prompts(full)[-1][:3]
    # stable: bounding again changes nothing, and it survives JSON
    assert bound_history(kept, budget) == kept
    assert load_history(json.loads(json.dumps(dump_history(kept)))) == kept
