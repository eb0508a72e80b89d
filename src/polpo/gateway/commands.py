"""Slash commands (SPEC §4): one registry, one dispatcher, replies in Markdown.

:data:`COMMANDS` holds every command with its usage and one-line help;
``/help``, the README's "Chat commands" table and ``docs/access.md`` come
from it. :func:`dispatch` runs one command for a peer the gateway already let
in, and never raises: a user mistake (a :class:`~polpo.errors.PolpoError`)
becomes the reply, anything else is logged and answered with a short apology.

Every act goes through the services (``app.approvals.approve/reject``,
``app.peers.approve_pairing``…), the same code path as the CLI and the API.
Replies are short and phone-friendly: one line per item, short ids in
backticks so they can be copied.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from polpo.channels.base import Button, ChannelStatus
from polpo.core.states import TASK_STATUSES
from polpo.errors import AlreadyDecidedError, AmbiguousIdError, PolpoError, ValidationError
from polpo.gateway.markdown import escape
from polpo.peerid import display_peer
from polpo.services.peers import peer_label
from polpo.store import pairing as pairing_store

if TYPE_CHECKING:
    from polpo.app import Polpo
    from polpo.core.models import Approval

T = TypeVar("T")


log = logging.getLogger(__name__)

#: ``/tasks`` shows at most this many, then "…and N more"
TASKS_SHOWN = 20
#: ``/approve`` lists at most this many pending approvals (with buttons)
APPROVALS_SHOWN = 10
#: how long ``/reject ID`` waits for the reason
REASON_WAIT_SECONDS = 10 * 60
#: the longest command name echoed back in "Unknown command"
MAX_ECHOED_NAME = 32

_COMMAND = re.compile(r"\s*/([A-Za-z]\S*)(.*)", re.DOTALL)


@dataclass(frozen=True)
class CommandReply:
    text: str  # Markdown; the gateway formats it
    buttons: tuple[Button, ...] = ()


class SessionOps(Protocol):
    """The peer's chat session, as commands need it (implemented by the gateway)."""

    async def reset(self) -> None: ...  # /new

    async def set_pending(self, pending: dict[str, Any] | None) -> None: ...  # sessions.pending


@dataclass
class CommandContext:
    app: Polpo
    peer_id: str  # canonical peer id
    channel: str  # channel type: "whatsapp" | "telegram" | "memory"
    chat_id: str
    display_name: str | None
    is_admin: bool
    now: float  # app.clock.now()
    session: SessionOps
    channel_statuses: Sequence[ChannelStatus] = ()  # live states, for /status


Handler = Callable[[CommandContext, str], Awaitable[CommandReply]]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    handler: Handler
    admin_only: bool = False
    #: it only reads (never opens a write transaction): the gateway may answer it inside
    #: the transaction that stores its message
    reads_only: bool = False


# -- parsing ---------------------------------------------------------------------------


def parse_command(text: str) -> tuple[str, str] | None:
    """``"/Reject@polpobot  K7M2 too long"`` → ``("reject", "K7M2 too long")``.

    A command is a message whose first non-blank character is "/" followed by
    a letter; anything else is None. The name is lower-cased and a Telegram
    ``@botname`` suffix dropped; the arguments are stripped.
    """
    m = _COMMAND.match(text)
    if m is None:
        return None
    word, rest = m.group(1), m.group(2)
    name = word.split("@", 1)[0].lower()
    return name, rest.strip()


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def md(text: str) -> str:
    """User or agent text shown literally inside Markdown (no accidental bold)."""
    return escape(text)


@functools.lru_cache(maxsize=4096)
def _peer_shown(peer_id: str) -> str:
    """A peer as ``/status`` names it (the same few peers, over and over)."""
    return md(display_peer(peer_id))


def ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "?"
    s = max(0.0, now - ts)
    if s < 60:
        return "just now"
    if s < 3600:
        return f"{int(s // 60)} min ago"
    if s < 86400:
        return f"{int(s // 3600)} h ago"
    return f"{int(s // 86400)} d ago"


async def _who(app: Polpo, by: str | None) -> str:
    """A name for ``resolvedBy`` / ``approvedBy``: ``Mario (+39123…)``, ``the CLI``…"""
    if not by:
        return "someone"
    fixed = {"cli": "the CLI", "api": "the HTTP API", "timeout": "the gate's timeout"}
    if by in fixed:
        return fixed[by]
    try:
        info = await app.peers.access(by)
    except PolpoError:
        return md(display_peer(by))
    return md(info.label)


# -- commands ----------------------------------------------------------------------------


async def cmd_help(ctx: CommandContext, args: str) -> CommandReply:
    return CommandReply(help_text(ctx.is_admin))


def help_text(is_admin: bool) -> str:
    lines = ["**Commands**"]
    for c in COMMANDS.values():
        if c.admin_only and not is_admin:
            continue
        lines.append(f"{md(c.usage)} — {c.help}")
    lines.append("")
    lines.append("Anything else you write goes to the agent.")
    return "\n".join(lines)


def _channel_line(states: Mapping[str, tuple[str, str | None]]) -> list[str]:
    icons = {"connected": "✅", "connecting": "⏳", "starting": "⏳", "waiting_for_login": "📷"}
    out = []
    for name, (state, detail) in states.items():
        icon = icons.get(state, "⚠️")
        extra = f" ({md(_short(detail, 40))})" if detail and state != "connected" else ""
        out.append(f"{icon} {md(name)}: {state.replace('_', ' ')}{extra}")
    return out


async def cmd_status(ctx: CommandContext, args: str) -> CommandReply:
    app = ctx.app
    s = await app.status()  # kept between calls until something changes (StatusView)
    lines = [f"📊 **{md(s.project)}**"]
    counts = [f"{n} {status.replace('_', ' ')}" for status, n in s.tasks.items() if n]
    lines.append("Tasks: " + (", ".join(counts) if counts else "none yet"))
    if s.agents:
        active = [a for a in s.agents if a.running]
        idle = [a for a in s.agents if not a.running]
        parts = [f"{len(active)} active", f"{len(idle)} idle"]
        names = ", ".join(md(a.name) for a in active)
        lines.append("Agents: " + ", ".join(parts) + (f" ({names})" if names else ""))
    else:
        lines.append("Agents: none configured")
    pending = s.pending_approvals
    lines.append(
        f"Approvals pending: {pending}" + (" — send /approve to see them" if pending else "")
    )
    if ctx.is_admin:
        lines += await _pairing_lines(ctx)
    peers, count = s.connected_peers, s.connected_count
    shown = ", ".join(_peer_shown(p) for p in peers[:5]) + (" …" if count > 5 else "")
    lines.append(f"Peers seen (last 5 min): {count}" + (f" — {shown}" if peers else ""))
    states: dict[str, tuple[str, str | None]] = {}
    for ch in app.config.settings.notifications.channels.values():
        states[ch.type] = ("not running", None)
    for cs in s.channels:
        states[cs.channel] = (cs.state, cs.detail)
    for live in ctx.channel_statuses:
        states[live.channel] = (live.state, live.detail)
    if states:
        lines.append("Channels:")
        lines += _channel_line(states)
    return CommandReply("\n".join(lines))


async def _pairing_lines(ctx: CommandContext) -> list[str]:
    """For admins: who is waiting for access (each holds one of the few pending slots)."""
    now = ctx.now
    async with ctx.app.store.read() as conn:
        pending = await pairing_store.pending(conn, now, 6)
    if not pending:
        return ["Pairing requests pending: none"]
    more = " or more" if len(pending) > 5 else ""
    lines = [f"Pairing requests pending: {len(pending[:5])}{more} — approve with /pair CODE"]
    for r in pending[:5]:
        who = md(_short(peer_label(r.peer_id, r.display_name), 40))
        lines.append(f"• `{r.code}` {who} on {md(r.channel)}, {ago(r.created_at, now)}")
    return lines


async def cmd_tasks(ctx: CommandContext, args: str) -> CommandReply:
    app = ctx.app
    wanted = args.split()[0].lower() if args.split() else ""
    aliases = {
        "awaiting": "awaiting_approval",
        "approval": "awaiting_approval",
        "active": "running",
    }
    status = aliases.get(wanted, wanted)
    if status and status not in TASK_STATUSES and status != "all":
        return CommandReply(
            f"Unknown status “{md(_short(wanted, 30))}”. Use one of: {', '.join(TASK_STATUSES)}."
        )
    filt = [status] if status and status != "all" else None
    tasks = await app.tasks.list(status=filt, limit=TASKS_SHOWN)
    if not tasks:
        return CommandReply(
            f"No {status.replace('_', ' ')} tasks."
            if filt
            else "No tasks yet. Ask me to create one."
        )
    total = await app.tasks.count(status=filt)
    title = f"**Tasks** ({status.replace('_', ' ')})" if filt else "**Tasks** (newest first)"
    lines = [title]
    for t in tasks:
        agent = f" — {md(t.agent)}" if t.agent else ""
        lines.append(f"{t.icon} `{t.short_id}` {md(_short(t.title))}{agent}")
    if total > len(tasks):
        lines.append(f"…and {total - len(tasks)} more")
    return CommandReply("\n".join(lines))


async def cmd_missions(ctx: CommandContext, args: str) -> CommandReply:
    missions = await ctx.app.missions.list(limit=TASKS_SHOWN)
    if not missions:
        return CommandReply("No missions yet.")
    lines = ["**Missions**"]
    for m in missions:
        lines.append(
            f"{m.icon} **{md(_short(m.name, 50))}** — {m.status}, {m.done_count}/{m.task_count} done · `{m.short_id}`"
        )
    return CommandReply("\n".join(lines))


async def cmd_agents(ctx: CommandContext, args: str) -> CommandReply:
    agents = await ctx.app.agents.list()
    if not agents:
        return CommandReply("No agents configured. Add them under `agents` in .polpo/polpo.json.")
    lines = ["**Agents**"]
    for a in agents:
        if a.running:
            work = ", ".join(f"`{t.short_id}` {md(_short(t.title, 40))}" for t in a.running)
            lines.append(f"🔄 **{md(a.name)}** — active: {work}")
        else:
            lines.append(f"💤 **{md(a.name)}** — idle")
    return CommandReply("\n".join(lines))


async def _ambiguous(ctx: CommandContext, e: AmbiguousIdError, ref: str, cmd: str) -> CommandReply:
    lines = [f"`{ref.replace('`', '')}` matches several approvals:"]
    for full in e.candidates[:APPROVALS_SHOWN]:
        try:
            a = await ctx.app.approvals.get(full)
        except PolpoError:
            continue
        lines.append(f"• `{a.short_id}` {md(_short(a.task_title, 40))} ({a.status})")
    lines.append(f"Send {cmd} again with one of these ids.")
    return CommandReply("\n".join(lines))


async def _decided(ctx: CommandContext, e: AlreadyDecidedError, short_id: str) -> CommandReply:
    who = await _who(ctx.app, e.resolved_by)
    return CommandReply(
        f"`{short_id}` was already {e.status} by {who}, {ago(e.resolved_at, ctx.now)}."
    )


def _approval_line(a: Approval, now: float) -> str:
    agent = f" · {md(a.agent)}" if a.agent else ""
    return (
        f"✋ `{a.short_id}` — task `{a.task_short_id}` {md(_short(a.task_title, 40))}"
        f"{agent} · gate {md(a.gate)} · {ago(a.requested_at, now)}"
    )


async def cmd_approve(ctx: CommandContext, args: str) -> CommandReply:
    app = ctx.app
    if not args:
        pending = await app.approvals.list(status=["pending"])
        if not pending:
            return CommandReply("No pending approvals.")
        lines = [f"**Pending approvals** ({len(pending)})"]
        buttons: list[Button] = []
        for a in pending[:APPROVALS_SHOWN]:
            lines.append(_approval_line(a, ctx.now))
            buttons.append(Button(f"✅ Approve {a.short_id}", f"/approve {a.short_id}"))
            buttons.append(Button(f"❌ Reject {a.short_id}", f"/reject {a.short_id}"))
        if len(pending) > APPROVALS_SHOWN:
            lines.append(f"…and {len(pending) - APPROVALS_SHOWN} more")
        first = pending[0].short_id
        lines.append(f"Reply /approve {first} or /reject {first} reason")
        return CommandReply("\n".join(lines), tuple(buttons))
    ref = args.split()[0]
    try:
        a = await app.approvals.approve(ref, by=ctx.peer_id)
    except AmbiguousIdError as e:
        return await _ambiguous(ctx, e, ref, "/approve")
    except AlreadyDecidedError as e:
        return await _decided(ctx, e, (await app.approvals.get(ref)).short_id)
    task = await app.tasks.get(a.task_id)
    return CommandReply(
        f"✅ Approved `{a.short_id}` ({md(a.gate)}): task `{task.short_id}` "
        f"{md(_short(task.title, 50))} is now {task.status.replace('_', ' ')}."
    )


async def _reject(ctx: CommandContext, ref: str, reason: str) -> CommandReply:
    app = ctx.app
    try:
        a = await app.approvals.reject(ref, by=ctx.peer_id, feedback=reason)
    except AmbiguousIdError as e:
        return await _ambiguous(ctx, e, ref, "/reject")
    except AlreadyDecidedError as e:
        return await _decided(ctx, e, (await app.approvals.get(ref)).short_id)
    task = await app.tasks.get(a.task_id)
    if task.status == "pending":
        then = f"goes back to {md(task.agent or 'its agent')} with your feedback (revision {task.revision_count})"
    else:
        then = f"is now {task.status}"
    return CommandReply(
        f"❌ Rejected `{a.short_id}` ({md(a.gate)}): task `{task.short_id}` "
        f"{md(_short(task.title, 50))} {then}."
    )


async def cmd_reject(ctx: CommandContext, args: str) -> CommandReply:
    if not args:
        return CommandReply("Usage: /reject ID reason — send /approve to see the pending ids.")
    ref, _, reason = args.partition(" ")
    reason = reason.strip()
    if reason:
        return await _reject(ctx, ref, reason)
    try:
        a = await ctx.app.approvals.get(ref)
    except AmbiguousIdError as e:
        return await _ambiguous(ctx, e, ref, "/reject")
    if a.status != "pending":
        who = await _who(ctx.app, a.resolved_by)
        return CommandReply(
            f"`{a.short_id}` was already {a.status} by {who}, {ago(a.resolved_at, ctx.now)}."
        )
    await ctx.session.set_pending(
        {"kind": "reject_reason", "approval": a.id, "expires_at": ctx.now + REASON_WAIT_SECONDS}
    )
    return CommandReply(
        f"Why reject `{a.short_id}` (task `{a.task_short_id}` {md(_short(a.task_title, 40))})? "
        "Your next message is the feedback for the agent (within 10 min)."
    )


async def cmd_new(ctx: CommandContext, args: str) -> CommandReply:
    await ctx.session.reset()
    return CommandReply("🆕 New conversation started. I've forgotten what we said before.")


async def cmd_pair(ctx: CommandContext, args: str) -> CommandReply:
    app = ctx.app
    if not args:
        pending = await app.peers.list_pairing("pending")
        if not pending:
            return CommandReply("No pending pairing requests. Usage: /pair CODE")
        lines = ["**Pairing requests**"]
        for r in pending:
            lines.append(
                f"• `{r.code}` — {md(r.label)} on {r.channel}, {ago(r.created_at, ctx.now)}"
            )
        lines.append(f"Approve with /pair {pending[0].code}")
        return CommandReply("\n".join(lines))
    done = await app.peers.approve_pairing(args, by=ctx.peer_id)
    return CommandReply(
        f"✅ Added {md(done.label)} on {done.channel}. They've been told they're in."
    )


async def cmd_link(ctx: CommandContext, args: str) -> CommandReply:
    peers = ctx.app.peers
    if not args:
        code = await peers.create_link_code(ctx.peer_id)
        return CommandReply(
            f"🔗 Your link code: `{code}` (valid 10 min, once).\n"
            f"From your other chat app, send: /link {code}"
        )
    result = await peers.use_link_code(ctx.peer_id, args)
    others = [p for p in result.members if p != ctx.peer_id]
    names = ", ".join(md(display_peer(p)) for p in others) or md(display_peer(result.canonical))
    return CommandReply(f"🔗 Linked with {names}. One conversation and one access for all of them.")


COMMANDS: Mapping[str, Command] = {
    c.name: c
    for c in (
        Command("help", "/help", "all commands", cmd_help, reads_only=True),
        Command(
            "status",
            "/status",
            "project status: tasks, agents, approvals, peers, channels",
            cmd_status,
            reads_only=True,
        ),
        Command(
            "tasks",
            "/tasks [status]",
            f"newest tasks (up to {TASKS_SHOWN}), optionally only one status",
            cmd_tasks,
            reads_only=True,
        ),
        Command(
            "missions", "/missions", "missions with their progress", cmd_missions, reads_only=True
        ),
        Command("agents", "/agents", "each agent, active or idle", cmd_agents, reads_only=True),
        # Deciding is for admins only (docs/security.md): an admitted peer chats and
        # reads, and a Telegram button or a WhatsApp reaction is dispatched as these.
        Command(
            "approve",
            "/approve [ID]",
            "list pending approvals, or approve one (admin only)",
            cmd_approve,
            True,
        ),
        Command(
            "reject",
            "/reject ID [reason]",
            "reject with feedback, asked for when missing (admin only)",
            cmd_reject,
            True,
        ),
        Command("new", "/new", "start a new conversation", cmd_new),
        Command("pair", "/pair CODE", "approve a pairing request (admin only)", cmd_pair, True),
        Command(
            "link",
            "/link [CODE]",
            "link this chat with your identity on another channel",
            cmd_link,
        ),
    )
}

#: other names of a command (Telegram sends /start when a chat with the bot opens)
ALIASES: Mapping[str, str] = {"start": "help"}


def find(name: str) -> Command | None:
    return COMMANDS.get(ALIASES.get(name, name))


def _error_text(e: PolpoError) -> str:
    """An error as one reply line; escaped, since it may quote names and titles."""
    text = " ".join(e.message.split())
    return md(text[:1].upper() + text[1:])


async def dispatch(ctx: CommandContext, text: str) -> CommandReply:
    """Run the command in ``text`` for ``ctx``'s peer. Never raises."""
    parsed = parse_command(text)
    if parsed is None:
        return CommandReply("That is not a command. Send /help to see them.")
    name, args = parsed
    command = find(name)
    if command is None:
        shown = name if len(name) <= MAX_ECHOED_NAME else name[:MAX_ECHOED_NAME] + "…"
        return CommandReply(f"Unknown command /{md(shown)}. Send /help.")
    if command.admin_only and not ctx.is_admin:
        return CommandReply(f"Only an admin can use /{command.name}.")
    try:
        return await command.handler(ctx, args)
    except PolpoError as e:
        return CommandReply(_error_text(e))
    except Exception:
        log.exception("command /%s failed for %s", command.name, ctx.peer_id)
        return CommandReply(f"Sorry, /{command.name} failed on my side. Please try again.")


async def answer_pending(
    ctx: CommandContext, pending: dict[str, Any], text: str
) -> CommandReply | None:
    """The peer's next non-command message after a command asked a question.

    Returns None when the question expired or is not one this module asked
    (the gateway then treats ``text`` as chat). Never raises.
    """
    try:
        if pending.get("kind") != "reject_reason" or not ctx.is_admin:
            return None  # (a peer no longer an admin: the text is chat)
        expires = pending.get("expires_at")
        if not isinstance(expires, int | float) or expires <= ctx.now:
            return None
        ref = pending.get("approval")
        if not isinstance(ref, str) or not text.strip():
            return None
        try:
            return await _reject(ctx, ref, text)
        except ValidationError as e:
            # e.g. a reason over the length limit: keep asking
            await ctx.session.set_pending(pending)
            return CommandReply(_error_text(e) + " Send the reason again.")
    except PolpoError as e:
        return CommandReply(_error_text(e))
    except Exception:
        log.exception("answering a pending %r failed for %s", pending.get("kind"), ctx.peer_id)
        return CommandReply("Sorry, that failed on my side. Please try again.")


def commands_markdown_table() -> str:
    """The README's "Chat commands" table, generated from :data:`COMMANDS`."""
    rows = ["| command | what it does |", "|---|---|"]
    for c in COMMANDS.values():
        rows.append(f"| `{c.usage}` | {c.help} |")
    return "\n".join(rows)
