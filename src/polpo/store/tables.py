"""The schema, as SQLAlchemy Core tables (one schema for SQLite and Postgres).

Times are REAL seconds since the epoch (UTC), so an injected clock drives
everything and ordering is numeric. JSON columns hold lists and dicts.
Changing a table means adding a step to :mod:`polpo.store.migrations`.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# -- orchestration ---------------------------------------------------------

missions = sa.Table(
    "missions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("short_id", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("goal", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("short_id", sa.String(32), nullable=False, unique=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("agent", sa.Text),
    sa.Column("mission_id", sa.String(32), sa.ForeignKey("missions.id")),
    # order inside the mission's plan
    sa.Column("position", sa.Integer, nullable=False, server_default="0"),
    sa.Column("depends_on", sa.JSON, nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    # which gate a task in awaiting_approval waits on: task:start | task:complete
    sa.Column("awaiting", sa.String(24)),
    # the task:start gate has been passed (revisions do not ask again)
    sa.Column("start_approved", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("result", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("revision_count", sa.Integer, nullable=False, server_default="0"),
    # every rejection's feedback, oldest first: [{"feedback", "by", "at"}]
    sa.Column("feedback", sa.JSON, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    # runner lease: which process runs it, until when (crash detection)
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_until", sa.Float),
    sa.Index("ix_tasks_status", "status"),
    sa.Index("ix_tasks_mission", "mission_id"),
    sa.Index("ix_tasks_created", "created_at"),
)

task_runs = sa.Table(
    "task_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(32), sa.ForeignKey("tasks.id"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running|done|failed|interrupted
    sa.Column("worker", sa.Text, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("result", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("transcript", sa.JSON, nullable=False),
    sa.Index("ix_task_runs_task", "task_id"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("short_id", sa.String(32), nullable=False, unique=True),
    sa.Column("gate", sa.Text, nullable=False),
    sa.Column("hook", sa.String(24), nullable=False),
    sa.Column("task_id", sa.String(32), sa.ForeignKey("tasks.id"), nullable=False),
    sa.Column("agent", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float),
    sa.Column("resolved_at", sa.Float),
    sa.Column("resolved_by", sa.Text),
    sa.Column("feedback", sa.Text),
    sa.Index("ix_approvals_status", "status"),
    sa.Index("ix_approvals_task", "task_id"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("type", sa.String(48), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # which process wrote it, so a process tailing the log skips its own
    sa.Column("origin", sa.Text, nullable=False),
    sa.Index("ix_events_created", "created_at"),
)

# -- gateway ---------------------------------------------------------------

peers = sa.Table(
    "peers",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),  # channel:externalId
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("display_name", sa.Text),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    # canonical peer this one is linked to (None: it is canonical)
    sa.Column("linked_to", sa.Text),
    sa.Index("ix_peers_linked", "linked_to"),
    # /status counts the peers seen lately and names the newest few
    sa.Index("ix_peers_last_seen", "last_seen"),
)

allowlist = sa.Table(
    "allowlist",
    metadata,
    sa.Column("peer_id", sa.Text, primary_key=True),
    sa.Column("added_by", sa.Text, nullable=False),
    sa.Column("added_at", sa.Float, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # cli | pairing | api
)

pairing_requests = sa.Table(
    "pairing_requests",
    metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("peer_id", sa.Text, nullable=False),
    sa.Column("chat_id", sa.Text, nullable=False),
    sa.Column("display_name", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),  # pending|approved|expired
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("last_sent_at", sa.Float, nullable=False),
    sa.Column("approved_by", sa.Text),
    sa.Column("approved_at", sa.Float),
    # who created it: None for ``polpo serve``; "simulate:<pid>" for ``polpo simulate``,
    # whose requester's "you're in" must never reach a real phone
    sa.Column("owner", sa.Text),
    sa.Index("ix_pairing_peer", "peer_id"),
)

pair_failures = sa.Table(
    "pair_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("peer_id", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_pair_failures_peer", "peer_id", "at"),
)

pairing_turned_away = sa.Table(
    "pairing_turned_away",
    metadata,
    # a stranger told "no free pairing slot, try later": told once (per day), not at every
    # message. Only the peer id and when: nothing else of a stranger is kept.
    sa.Column("peer_id", sa.Text, primary_key=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("told_at", sa.Float, nullable=False),
)

link_codes = sa.Table(
    "link_codes",
    metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("peer_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float),
    sa.Column("used_by", sa.Text),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("peer_id", sa.Text, nullable=False),  # canonical peer
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_active_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float),
    # pydantic-ai message history (JSON), bounded by the chat agent
    sa.Column("history", sa.JSON, nullable=False),
    # a question the bot asked and waits an answer for, e.g. a reject reason
    sa.Column("pending", sa.JSON),
    sa.Index("ix_sessions_peer", "peer_id", "ended_at"),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("message_id", sa.Text, nullable=False),
    sa.Column("peer_id", sa.Text, nullable=False),
    sa.Column("chat_id", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),  # the whole InboundMessage
    sa.Column("sent_at", sa.Float, nullable=False),  # when the sender sent it
    sa.Column("received_at", sa.Float, nullable=False),
    # received | done | ignored | failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("outcome", sa.Text),  # why ignored / what was done
    sa.Column("processed_at", sa.Float),
    # who processes it: None for ``polpo serve``; "simulate:<pid>" etc. for a
    # one-off pipeline (``polpo simulate``) so a running server leaves it alone
    sa.Column("owner", sa.Text),
    sa.UniqueConstraint("channel", "message_id", name="uq_inbox_channel_message"),
    sa.Index("ix_inbox_status", "status"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("chat_id", sa.Text, nullable=False),
    sa.Column("peer_id", sa.Text),
    # Markdown; the dispatcher formats and splits it for the channel when sending
    sa.Column("text", sa.Text, nullable=False),
    # quick-reply buttons: [{"label": …, "command": …}] (Telegram inline keyboard)
    sa.Column("buttons", sa.JSON),
    # how many of the rendered parts already went out (a restart resumes after them)
    sa.Column("parts_sent", sa.Integer, nullable=False, server_default="0"),
    # who sends it: None for ``polpo serve``; "simulate:<pid>" for ``polpo simulate``
    sa.Column("owner", sa.Text),
    # what it answers or announces: the inbox id, or e.g. "approval:<id>"
    sa.Column("inbox_id", sa.Integer),
    sa.Column("ref", sa.Text),
    # idempotency: one row per (inbox message, part) / (event, recipient)
    sa.Column("dedupe_key", sa.Text, unique=True),
    # pending | sent | failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float),
    sa.Column("next_attempt_at", sa.Float),
    sa.Column("channel_message_id", sa.Text),
    sa.Column("error", sa.Text),
    sa.Index("ix_outbox_pending", "channel", "status", "id"),
    sa.Index("ix_outbox_channel_msg", "channel", "channel_message_id"),
)

outbox_parts = sa.Table(
    "outbox_parts",
    metadata,
    # one rendered part of an outbox row, with its channel message id: an echo of any
    # part (a self-chat) is recognised after a restart, and a part marked "sending"
    # with an id we assigned is resent with that same id after a crash
    sa.Column("outbox_id", sa.Integer, nullable=False),
    sa.Column("part", sa.Integer, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    # assigned before sending (a channel that mints ids), else what the network returned
    sa.Column("message_id", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),  # sending | sent
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float),
    sa.PrimaryKeyConstraint("outbox_id", "part", name="pk_outbox_parts"),
    sa.Index("ix_outbox_parts_message", "channel", "message_id"),
)

# -- processes ---------------------------------------------------------------

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),  # e.g. "whatsapp"
    sa.Column("holder", sa.Text, nullable=False),  # "pid 1234 on host"
    sa.Column("acquired_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

channel_state = sa.Table(
    "channel_state",
    metadata,
    sa.Column("channel", sa.String(16), primary_key=True),
    # stopped | connecting | connected | disconnected | logged_out | replaced | ...
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("account", sa.Text),  # e.g. the linked phone number
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("holder", sa.Text),
)

# -- notifications -------------------------------------------------------------

notification_cursor = sa.Table(
    "notification_cursor",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),  # "notifications"
    # the last event id whose alerts are in the outbox (a restart resumes after it)
    sa.Column("last_event_id", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
