"""Slash commands — STAND-IN with the contract's signatures.

The ACCESS+COMMANDS feature owns the real module (every command of SPEC §4
from one registry); this small version answers ``/help``, ``/start``,
``/status`` and ``/new`` so the gateway pipeline is testable on its own
branch. The coordinator replaces this file with the real one at merge.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from polpo.channels.base import Button, ChannelStatus
from polpo.errors import PolpoError

if TYPE_CHECKING:
    from polpo.app import Polpo

log = logging.getLogger(__name__)

_COMMAND = re.compile(r"^\s*/([A-Za-z][A-Za-z0-9_]*)(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class CommandReply:
    text: str
    buttons: tuple[Button, ...] = ()


class SessionOps(Protocol):
    async def reset(self) -> None: ...

    async def set_pending(self, pending: dict[str, Any] | None) -> None: ...


@dataclass
class CommandContext:
    app: Polpo
    peer_id: str
    channel: str
    chat_id: str
    display_name: str | None
    is_admin: bool
    now: float
    session: SessionOps
    channel_statuses: Sequence[ChannelStatus]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    admin: bool = False


COMMANDS: Mapping[str, Command] = {
    "help": Command("help", "all commands"),
    "status": Command("status", "the project at a glance"),
    "new": Command("new", "start a new conversation"),
}


def parse_command(text: str) -> tuple[str, str] | None:
    m = _COMMAND.match(text)
    if m is None:
        return None
    return m.group(1).lower(), (m.group(2) or "").strip()


def help_text(is_admin: bool) -> str:
    lines = ["*Commands*"]
    lines += [f"/{c.name} — {c.summary}" for c in COMMANDS.values() if is_admin or not c.admin]
    return "\n".join(lines)


async def dispatch(ctx: CommandContext, text: str) -> CommandReply:
    parsed = parse_command(text)
    if parsed is None:
        return CommandReply("Send /help for the commands.")
    name, _args = parsed
    try:
        if name in ("help", "start"):
            return CommandReply(help_text(ctx.is_admin))
        if name == "status":
            s = await ctx.app.status()
            tasks = ", ".join(f"{k} {v}" for k, v in s.tasks.items() if v) or "no tasks"
            chans = ", ".join(f"{c.channel} {c.state}" for c in ctx.channel_statuses)
            return CommandReply(
                f"*{s.project}*\nTasks: {tasks}\nPending approvals: {s.pending_approvals}"
                + (f"\nChannels: {chans}" if chans else "")
            )
        if name in ("approve", "reject") and _args:
            if not ctx.is_admin:
                return CommandReply("Only an admin can decide approvals.")
            ref, _, reason = _args.partition(" ")
            if name == "approve":
                a = await ctx.app.approvals.approve(ref, by=ctx.peer_id)
                return CommandReply(f"Approved {a.short_id}.")
            if not reason.strip():
                await ctx.session.set_pending(
                    {"kind": "reject_reason", "approval": ref, "expires_at": ctx.now + 600}
                )
                return CommandReply(f"Why do you reject {ref}? Your next message is the feedback.")
            a = await ctx.app.approvals.reject(ref, by=ctx.peer_id, feedback=reason)
            return CommandReply(f"Rejected {a.short_id}.")
        if name == "new":
            await ctx.session.reset()
            return CommandReply("Started a new conversation.")
    except PolpoError as e:
        return CommandReply(e.message)
    except Exception:
        log.exception("command /%s failed", name)
        return CommandReply("Sorry, that command failed. Please try again.")
    return CommandReply(f"Unknown command /{name}. Send /help.")


async def answer_pending(
    ctx: CommandContext, pending: dict[str, Any], text: str
) -> CommandReply | None:
    if pending.get("kind") != "reject_reason" or ctx.now >= float(pending.get("expires_at", 0)):
        return None
    try:
        a = await ctx.app.approvals.reject(str(pending["approval"]), by=ctx.peer_id, feedback=text)
    except PolpoError as e:
        return CommandReply(e.message)
    return CommandReply(f"Rejected {a.short_id}.")
