"""Hot statements: the few that run for every message, straight on SQLite's driver.

Executing a Core statement costs SQLAlchemy several times what SQLite itself
needs for a short statement. So the statements of the message path are
declared here as :class:`Hot`: a Core statement (the definition, and what
runs on PostgreSQL), its SQL compiled from it once with SQLAlchemy's public
``compile()``, and explicit conversions of parameters (JSON to text) and of
result columns (text to JSON). On SQLite the SQL runs on the DB-API
connection of the current transaction (public ``driver_connection``).
``tests/store/test_hot.py`` runs every one of them both ways and compares
what ends up in the database and what comes back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from polpo.store.connection import Connection

_NAMED = sqlite_dialect.dialect(paramstyle="named")

Convert = Callable[[Any], Any]
Statement = sa.Insert | sa.Update | sa.Delete | sa.Select[Any]


def json_text(value: Any) -> str:
    """A JSON column's parameter as Core binds it (``None`` is JSON ``null``)."""
    return json.dumps(value)


def json_value(text: Any) -> Any:
    """A JSON column's value as Core reads it back."""
    return None if text is None else json.loads(text)


#: PostgreSQL twins built so far, by ``id`` of their :class:`Hot` (which lives for ever)
_PG: dict[int, Statement] = {}

#: every hot statement declared at import (``tests/store/test_hot.py`` checks each against
#: Core; the variants built on demand are checked through their store function)
DECLARED: list[Hot] = []


@dataclass(frozen=True)
class HotResult:
    rows: list[tuple[Any, ...]]
    #: rows changed (UPDATE, DELETE, INSERT without RETURNING)
    rowcount: int

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None


@dataclass(frozen=True)
class Hot:
    """A statement run on the driver on SQLite and through Core elsewhere.

    ``core`` is written for SQLite; ``params`` names every parameter it takes
    (all always given); ``convert`` maps a parameter to its conversion,
    ``columns`` a result column's position to its conversion.
    """

    core: Statement
    params: Sequence[str]
    convert: Mapping[str, Convert] = field(default_factory=dict)
    columns: Mapping[int, Convert] = field(default_factory=dict)
    #: the statement for PostgreSQL when it differs (``INSERT … ON CONFLICT`` is per
    #: dialect), built on first use: importing the PostgreSQL dialect costs a CLI on
    #: SQLite a quarter of a second
    pg: Callable[[], Statement] | None = None
    #: False for the variants a store function builds as needed (it tests them itself)
    listed: bool = True
    sql: str = field(init=False)
    #: values the statement binds itself (``LIMIT 1``, literals)
    fixed: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        compiled = self.core.compile(dialect=_NAMED, column_keys=list(self.params))
        object.__setattr__(self, "sql", compiled.string)
        fixed = {k: v for k, v in compiled.params.items() if k not in self.params}
        object.__setattr__(self, "fixed", fixed)
        if self.listed:
            DECLARED.append(self)

    async def run(self, conn: Connection, values: Mapping[str, Any]) -> HotResult:
        driver = conn.driver_connection()
        if driver is None:
            res = await conn.execute(self._core_for(conn.dialect.name), values)
            rows = [tuple(r) for r in res.all()] if res.returns_rows else []
            return HotResult(rows, res.rowcount)
        return self.run_on_driver(driver, values)

    def _core_for(self, dialect: str) -> Statement:
        if dialect == "sqlite" or self.pg is None:
            return self.core
        built = _PG.get(id(self))
        if built is None:
            built = _PG[id(self)] = self.pg()
        return built

    def run_on_driver(self, driver: Any, values: Mapping[str, Any]) -> HotResult:
        """Run on a DB-API (``sqlite3``) connection inside a transaction."""
        args = {**self.fixed, **values} if self.fixed else dict(values)
        for name, convert in self.convert.items():
            args[name] = convert(args[name])
        cur = driver.execute(self.sql, args)
        rows = cur.fetchall()
        if self.columns and rows:
            rows = [
                tuple(self.columns[i](v) if i in self.columns else v for i, v in enumerate(r))
                for r in rows
            ]
        return HotResult(rows, cur.rowcount)
