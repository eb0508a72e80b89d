"""A chat session's history: load it, repair it, bound it, dump it.

The gateway stores what :meth:`ChatAgent.respond` hands back (pydantic-ai
messages as JSON) and hands it back next turn. Between the two anything may
have happened: a crash mid-turn, an older Polpo, a hand-edited database. So a
history is never trusted:

* :func:`load_history` keeps what still validates and drops the rest;
* :func:`repair` keeps only the parts a chat needs (user text, a picture
  becoming a short note; assistant text; tool calls and their returns) and
  makes the sequence one a provider accepts: it starts with a user message,
  ends with an assistant message, and every tool call is answered by its
  return in the very next message and vice versa (an orphan on either side makes OpenAI-style APIs reject the
  whole request);
* :func:`bound_history` keeps it under a token budget (≈ characters / 4) by
  dropping the oldest whole turns — a turn runs from one user message to the
  next, so a tool call never loses its return — and by cutting very long
  single parts (a pasted 100k-character message).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    ModelResponsePart,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
#: Characters counted for each part and message beyond their text (roles, ids, JSON).
PART_OVERHEAD = 16
#: Parts are never cut shorter than this while fitting one oversized turn.
MIN_PART_CHARS = 200

_KEPT_REQUEST_KINDS = {"user-prompt", "tool-return", "retry-prompt"}
_KEPT_RESPONSE_KINDS = {"text", "tool-call"}


# -- JSON ↔ messages ------------------------------------------------------------


def load_history(data: Any) -> list[ModelMessage]:
    """Messages from stored JSON; whatever does not validate is dropped, never raised."""
    if not isinstance(data, list) or not data:
        return []
    try:
        return list(ModelMessagesTypeAdapter.validate_python(data))
    except Exception:  # pydantic's ValidationError, or anything odd inside the data
        pass
    kept: list[ModelMessage] = []
    for item in data:
        try:
            kept.extend(ModelMessagesTypeAdapter.validate_python([item]))
        except Exception:
            continue
    log.warning("chat history: dropped %d invalid message(s)", len(data) - len(kept))
    return kept


def dump_history(messages: Sequence[ModelMessage]) -> list[Any]:
    return list(ModelMessagesTypeAdapter.dump_python(list(messages), mode="json"))


# -- repair ---------------------------------------------------------------------


def repair(messages: Iterable[ModelMessage]) -> list[ModelMessage]:
    """A history a provider accepts (see the module docstring), built from ``messages``."""
    msgs = [m for m in (_essentials(m) for m in messages) if m is not None]
    while True:
        before = len(msgs)
        msgs = _pair_tool_calls(msgs)
        msgs = _merge_neighbours(msgs)
        while msgs and not _starts_turn(msgs[0]):
            msgs.pop(0)
        while msgs and isinstance(msgs[-1], ModelRequest):
            msgs.pop()
        if len(msgs) == before:
            return msgs


def _essentials(m: ModelMessage) -> ModelMessage | None:
    """The message with only the parts a chat needs, or None if nothing is left.

    Instructions are dropped too: the agent sends its current ones with every
    request, and a copy in every stored message would eat the budget.
    """
    if getattr(m, "state", "complete") != "complete":
        return None
    if isinstance(m, ModelRequest):
        req_parts = [p for p in m.parts if p.part_kind in _KEPT_REQUEST_KINDS]
        req_parts = [_words_only(p) for p in req_parts if not _is_loose_retry(p)]
        if not req_parts:
            return None
        return dataclasses.replace(m, parts=req_parts, instructions=None)
    resp_parts = [p for p in m.parts if p.part_kind in _KEPT_RESPONSE_KINDS]
    if not resp_parts:
        return None
    return dataclasses.replace(m, parts=resp_parts)


#: what a picture the user sent becomes in the stored history
PICTURE_NOTE = "[a picture was shown here]"


def _words_only(p: ModelRequestPart) -> ModelRequestPart:
    """A user prompt with its pictures (or other files) replaced by a short note.

    The turn that received a picture sent its bytes to the model; stored
    history keeps only words, so pictures never reach the database and never
    count against the next turns' budget."""
    if not isinstance(p, UserPromptPart) or isinstance(p.content, str):
        return p
    items = [c if isinstance(c, str) else PICTURE_NOTE for c in p.content]
    return dataclasses.replace(p, content="\n".join(items))


def _is_loose_retry(p: ModelRequestPart) -> bool:
    # A retry prompt not tied to a tool call (a rejected final answer) is run-internal noise.
    return isinstance(p, RetryPromptPart) and (p.tool_name is None or p.tool_call_id is None)


def _call_ids(m: ModelMessage) -> set[str]:
    if not isinstance(m, ModelResponse):
        return set()
    return {p.tool_call_id for p in m.parts if isinstance(p, ToolCallPart)}


def _return_ids(m: ModelMessage) -> set[str]:
    if not isinstance(m, ModelRequest):
        return set()
    return {cid for p in m.parts if (cid := _answered_call_id(p)) is not None}


def _answered_call_id(p: ModelRequestPart) -> str | None:
    """The tool call a request part answers (a tool return, or a retry for a tool), if any."""
    if isinstance(p, ToolReturnPart | RetryPromptPart):
        return p.tool_call_id
    return None


def _is_tool_answer(p: ModelRequestPart) -> bool:
    return _answered_call_id(p) is not None


def _pair_tool_calls(msgs: list[ModelMessage]) -> list[ModelMessage]:
    """Keep a tool call only if the next message answers it, and an answer only if it was called."""
    out: list[ModelMessage] = []
    for i, m in enumerate(msgs):
        if isinstance(m, ModelResponse):
            answered = _return_ids(msgs[i + 1]) if i + 1 < len(msgs) else set()
            resp_parts: list[ModelResponsePart] = [
                p for p in m.parts if not isinstance(p, ToolCallPart) or p.tool_call_id in answered
            ]
            if resp_parts:
                out.append(dataclasses.replace(m, parts=resp_parts))
        else:
            called = _call_ids(msgs[i - 1]) if i > 0 else set()
            req_parts: list[ModelRequestPart] = [
                p for p in m.parts if not _is_tool_answer(p) or _answered_call_id(p) in called
            ]
            if req_parts:
                out.append(dataclasses.replace(m, parts=req_parts))
    return out


def _merge_neighbours(msgs: list[ModelMessage]) -> list[ModelMessage]:
    """Two requests (or two responses) in a row become one, as providers expect turns to alternate."""
    out: list[ModelMessage] = []
    for m in msgs:
        prev = out[-1] if out else None
        if isinstance(prev, ModelRequest) and isinstance(m, ModelRequest):
            if any(_is_tool_answer(p) for p in m.parts):
                out.append(m)  # answers must stay right after their calls; pairing sorts it out
            else:
                out[-1] = dataclasses.replace(prev, parts=[*prev.parts, *m.parts])
        elif isinstance(prev, ModelResponse) and isinstance(m, ModelResponse):
            if _call_ids(prev):
                out.append(m)  # unanswered calls: pairing drops them on the next pass
            else:
                out[-1] = dataclasses.replace(prev, parts=[*prev.parts, *m.parts])
        else:
            out.append(m)
    return out


def _starts_turn(m: ModelMessage) -> bool:
    return isinstance(m, ModelRequest) and any(isinstance(p, UserPromptPart) for p in m.parts)


# -- sizes and cutting ------------------------------------------------------------


def estimate_tokens(messages: Iterable[ModelMessage]) -> int:
    return -(-sum(_message_chars(m) for m in messages) // CHARS_PER_TOKEN)


def text_tokens(text: str) -> int:
    return -(-(len(text) + PART_OVERHEAD) // CHARS_PER_TOKEN)


def _message_chars(m: ModelMessage) -> int:
    return PART_OVERHEAD + sum(_part_chars(p) for p in m.parts)


def _part_chars(p: ModelRequestPart | ModelResponsePart) -> int:
    n = PART_OVERHEAD + len(getattr(p, "tool_name", None) or "")
    if isinstance(p, ToolCallPart):
        return n + len(_as_text(p.args))
    return n + len(_as_text(getattr(p, "content", "")))


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def clip_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, saying so at the end."""
    if len(text) <= limit:
        return text
    note = f"\n[…cut: {len(text)} characters in all]"
    return text[: max(0, limit - len(note))] + note


def _clip_value(value: Any, limit: int) -> Any:
    """Cut long strings inside a JSON-like value (tool arguments), keeping its shape."""
    if isinstance(value, str):
        return clip_text(value, limit)
    if isinstance(value, dict):
        return {k: _clip_value(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip_value(v, limit) for v in value]
    return value


def _clip_part(p: Any, limit: int) -> Any:
    if _part_chars(p) <= limit:
        return p
    if isinstance(p, ToolCallPart):
        args: Any = p.args
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = {}
        if not isinstance(args, dict):
            args = {}
        clipped = _clip_value(args, max(MIN_PART_CHARS // 2, limit // 2))
        if len(_as_text(clipped)) > limit:
            clipped = {}
        return dataclasses.replace(p, args=clipped)
    if isinstance(p, UserPromptPart | TextPart | ToolReturnPart | RetryPromptPart):
        content = p.content
        if isinstance(p, UserPromptPart) and not isinstance(content, str):
            items = content if isinstance(content, Sequence) else [content]
            content = " ".join(c for c in items if isinstance(c, str))
        return dataclasses.replace(p, content=clip_text(_as_text(content), limit))
    return p


def _clip_message(m: ModelMessage, limit: int) -> ModelMessage:
    # Two branches only so the type checker sees one message type in each.
    if isinstance(m, ModelRequest):
        return dataclasses.replace(m, parts=[_clip_part(p, limit) for p in m.parts])
    return dataclasses.replace(m, parts=[_clip_part(p, limit) for p in m.parts])


# -- bounding ---------------------------------------------------------------------


def split_turns(msgs: Sequence[ModelMessage]) -> list[list[ModelMessage]]:
    """Turns: each starts with a message that carries the user's words."""
    turns: list[list[ModelMessage]] = []
    for m in msgs:
        if _starts_turn(m) or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    return turns


def bound_history(messages: Iterable[ModelMessage], max_tokens: int) -> list[ModelMessage]:
    """The newest whole turns of a repaired history that fit in ``max_tokens``."""
    budget = max(0, max_tokens) * CHARS_PER_TOKEN
    msgs = [_clip_message(m, budget // 2) for m in repair(messages)]
    kept: list[list[ModelMessage]] = []
    total = 0
    for turn in reversed(split_turns(msgs)):
        size = sum(_message_chars(m) for m in turn)
        if total + size <= budget:
            kept.insert(0, turn)
            total += size
            continue
        if not kept:
            kept = [_fit_turn(turn, budget)]
        break
    # The first kept message may answer a tool call of a dropped turn: repair drops that answer.
    return repair(m for turn in kept for m in turn)


def _fit_turn(turn: list[ModelMessage], budget: int) -> list[ModelMessage]:
    """One turn too big on its own: cut its parts shorter, else keep only its words."""
    limit = budget // 2
    while limit >= MIN_PART_CHARS:
        clipped = [_clip_message(m, limit) for m in turn]
        if sum(_message_chars(m) for m in clipped) <= budget:
            return clipped
        limit //= 2
    # Too many tool exchanges: keep the user's words and the final answer, without the tools.
    first, last = turn[0], turn[-1]
    if not isinstance(first, ModelRequest) or not isinstance(last, ModelResponse):
        return []
    words = [p for p in first.parts if isinstance(p, UserPromptPart)]
    answer = [p for p in last.parts if isinstance(p, TextPart)]
    if not words or not answer:
        return []
    share = max(MIN_PART_CHARS, budget // 2 - 2 * PART_OVERHEAD)
    collapsed: list[ModelMessage] = [
        dataclasses.replace(first, parts=[_clip_part(p, share // len(words)) for p in words]),
        dataclasses.replace(last, parts=[_clip_part(p, share // len(answer)) for p in answer]),
    ]
    if sum(_message_chars(m) for m in collapsed) > budget:
        return []
    return collapsed
