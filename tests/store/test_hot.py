"""Every hot statement stores and returns on the SQLite driver exactly what Core would.

Each case runs the same store function twice, on two fresh databases: once
as Polpo runs it (the statement's SQL on the ``sqlite3`` connection, with its
explicit conversions) and once through SQLAlchemy Core (what PostgreSQL
gets). The results and every row of every table must be equal. The last
test fails when a hot statement is declared that no case exercises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from polpo.store import Store
from polpo.store import inbox as inbox_store
from polpo.store import outbox as outbox_store
from polpo.store import peers as peer_store
from polpo.store import sessions as session_store
from polpo.store import status as status_store
from polpo.store.connection import Connection, SyncConnection
from polpo.store.hot import DECLARED, Hot, HotResult
from polpo.store.outbox import SentPart
from polpo.store.tables import metadata, peers, sessions

Case = Callable[[Connection], Awaitable[Any]]

PAYLOAD = {"text": "ciao é 👍", "n": [1, 2.5, None], "flag": True}


class CoreOnly(Connection):
    """The same SQLite connection, but every statement through Core."""

    def __init__(self, inner: SyncConnection) -> None:
        self.inner = inner

    @property
    def dialect(self) -> sa.Dialect:
        return self.inner.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return await self.inner.execute(statement, parameters)

    async def run_sync(self, fn: Any, *args: Any) -> Any:
        return await self.inner.run_sync(fn, *args)


async def _seed(conn: Connection) -> None:
    await conn.execute(
        peers.insert(),
        [
            {
                "id": "whatsapp:1",
                "channel": "whatsapp",
                "display_name": "A",
                "first_seen": 1.0,
                "last_seen": 1.0,
                "linked_to": None,
            },
            {
                "id": "telegram:2",
                "channel": "telegram",
                "display_name": None,
                "first_seen": 2.0,
                "last_seen": 2.0,
                "linked_to": "whatsapp:1",
            },
        ],
    )
    await conn.execute(
        sessions.insert(),
        {
            "id": "s1",
            "peer_id": "whatsapp:1",
            "created_at": 1.0,
            "last_active_at": 5.0,
            "history": [{"role": "user", "parts": ["é"]}],
            "pending": {"kind": "reject", "id": "x"},
        },
    )
    await inbox_store.insert(
        conn,
        channel="whatsapp",
        message_id="m0",
        peer_id="whatsapp:1",
        chat_id="c",
        text="t",
        payload=PAYLOAD,
        sent_at=1,
        now=2.0,
        status="received",
        outcome=None,
        owner=None,
    )
    await outbox_store.enqueue(conn, channel="whatsapp", chat_id="c", text="x", now=3.0)


async def _assigned_then_sent(c: Connection) -> None:
    await outbox_store.assign_part_ids(c, 1, "whatsapp", {0: "3EB0A", 1: "3EB0B"}, 5.0)
    await outbox_store.record(
        c, 1, "whatsapp", 6.0, parts_sent=1, channel_message_id="3EB0A",
        part=SentPart(0, "3EB0A", assigned=True),
    )  # fmt: skip


CASES: dict[str, Case] = {
    "inbox insert": lambda c: inbox_store.insert(
        c,
        channel="telegram",
        message_id="m1",
        peer_id="telegram:2",
        chat_id="2",
        text="hé",
        payload=PAYLOAD,
        sent_at=7,
        now=8.5,
        status="ignored",
        outcome="offline",
        owner="sim:1",
    ),
    "inbox duplicate": lambda c: inbox_store.insert(
        c,
        channel="whatsapp",
        message_id="m0",
        peer_id="whatsapp:1",
        chat_id="c",
        text="again",
        payload={},
        sent_at=1.0,
        now=9.0,
        status="received",
        outcome=None,
        owner=None,
    ),
    "inbox mark": lambda c: inbox_store.mark(c, 1, "done", "command /status", 9.25),
    "inbox forget": lambda c: inbox_store.forget(c, 1, "ignored", "not allowed", 9.25),
    "outbox enqueue": lambda c: outbox_store.enqueue(
        c,
        channel="telegram",
        chat_id="2",
        text="**hi**",
        now=4.0,
        peer_id="telegram:2",
        inbox_id=1,
        ref="approval:a",
        dedupe_key="inbox:1",
        owner="sim:1",
        buttons=[{"label": "✅", "command": "/approve a"}],
    ),
    "outbox enqueue no buttons": lambda c: outbox_store.enqueue(
        c, channel="whatsapp", chat_id="c", text="plain", now=4.5, dedupe_key="k"
    ),
    "outbox part": lambda c: outbox_store.record(
        c,
        1,
        "whatsapp",
        5.0,
        parts_sent=1,
        channel_message_id="WAMID-1",
        part=SentPart(0, "WAMID-1", assigned=False),
    ),
    "outbox sent": lambda c: outbox_store.record(
        c,
        1,
        "whatsapp",
        6.0,
        status="sent",
        parts_sent=2,
        channel_message_id="WAMID-1",
        sent=True,
        error=None,
        part=SentPart(1, "WAMID-2", assigned=False),
    ),
    "outbox sent without id": lambda c: outbox_store.record(
        c, 1, "telegram", 6.0, status="sent", parts_sent=1, sent=True, error=None
    ),
    "outbox retry later": lambda c: outbox_store.record(
        c, 1, "whatsapp", 7.0, parts_sent=0, error="down", attempt=True, retry_in=5.0
    ),
    "outbox assigned ids then sent": _assigned_then_sent,
    "peer touch named": lambda c: peer_store.touch(c, "whatsapp:1", "whatsapp", "Anna", 10.0),
    "peer touch": lambda c: peer_store.touch(c, "telegram:2", "telegram", None, 11),
    "peer touch new": lambda c: peer_store.touch(c, "telegram:3", "telegram", "New", 12.0),
    "peer group": lambda c: peer_store.group_of(c, "telegram:2"),
    "peers seen since": lambda c: status_store.seen_since(c, 1.5),
    "peers seen since 0": lambda c: status_store.seen_since(c, 0.0),
    "session open": lambda c: session_store.open_session(c, "whatsapp:1", 6.0, 3600),
    "session open idle": lambda c: session_store.open_session(c, "whatsapp:1", 9999.0, 60),
    "session save": lambda c: session_store.save(c, "s1", {"last_active_at": 7.0}),
    "session save history": lambda c: session_store.save(
        c, "s1", {"last_active_at": 7.0, "history": [{"a": "é", "b": [1.5]}]}
    ),
    "session save pending": lambda c: session_store.save(
        c, "s1", {"last_active_at": 7.0, "pending": None}
    ),
    "session save both": lambda c: session_store.save(
        c, "s1", {"last_active_at": 7.0, "history": [], "pending": {"k": "v"}}
    ),
}


async def _dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    async with store.read() as conn:
        for table in metadata.sorted_tables:
            if table.name in ("events",):
                continue
            rows = (await conn.execute(sa.select(table))).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def _normal(value: Any) -> Any:
    if isinstance(value, HotResult):
        return value.rows
    if isinstance(value, session_store.Session):
        return (value.history, value.pending)  # ids are new each time
    return value


async def _run(tmp_path: Path, name: str, case: Case, *, core: bool) -> tuple[Any, Any]:
    store = await Store.open(f"sqlite:///{tmp_path / ('core' if core else 'driver')}-{name}.db")
    try:
        async with store.write() as conn:
            await _seed(conn)
        async with store.write() as conn:
            assert isinstance(conn, SyncConnection)
            result = await case(CoreOnly(conn) if core else conn)
        return _normal(result), await _dump(store)
    finally:
        await store.close()


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_hot_statement_on_the_driver_does_what_core_does(tmp_path: Path, name: str) -> None:
    driver = await _run(tmp_path, name, CASES[name], core=False)
    core = await _run(tmp_path, name, CASES[name], core=True)
    if name.startswith("session open"):  # a new session gets a new id: compare the rest
        for dump in (driver[1], core[1]):
            dump["sessions"] = sorted((r[1:] for r in dump["sessions"]), key=repr)
    assert driver == core


async def test_every_declared_hot_statement_has_a_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: set[int] = set()
    original = Hot.run_on_driver

    def recording(self: Hot, driver: Any, values: Any) -> HotResult:
        ran.add(id(self))
        return original(self, driver, values)

    monkeypatch.setattr(Hot, "run_on_driver", recording)
    for name, case in CASES.items():
        await _run(tmp_path, f"cover-{name}", case, core=False)
    missing = [h.sql for h in DECLARED if id(h) not in ran]
    assert missing == []


async def _every_record_variant(c: Connection) -> None:
    """Each set of columns outbox.record can update (its statements are built on demand)."""
    for status in (None, "sent", "failed"):
        for mid in (None, "M-é"):
            for sent in (False, True):
                for error in (None, "down"):
                    for retry_in in (None, 5.0):
                        await outbox_store.record(
                            c, 1, "whatsapp", 9.5, status=status, parts_sent=1,
                            channel_message_id=mid, sent=sent, error=error, retry_in=retry_in,
                        )  # fmt: skip


async def test_every_variant_of_a_row_update_does_what_core_does(tmp_path: Path) -> None:
    driver = await _run(tmp_path, "record", _every_record_variant, core=False)
    core = await _run(tmp_path, "record", _every_record_variant, core=True)
    assert driver == core
