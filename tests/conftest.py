"""Shared fixtures: a project directory with a real config and a real SQLite file."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from polpo.app import Polpo
from polpo.clock import FakeClock
from polpo.config import DATABASE_URL_ENV, LoadedConfig, validate_config
from tests.database import PgSchemas, test_database_url


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sqlite_only(reason): the test is about SQLite itself (its file, WAL, its driver "
        "path); skipped when POLPO_TEST_DATABASE_URL runs the suite on PostgreSQL",
    )
    config.addinivalue_line(
        "markers",
        "postgres_only(reason): the test is about PostgreSQL (races between processes, "
        "advisory locks, LISTEN/NOTIFY); skipped on SQLite",
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leave proof that the run reached its end (``make test`` checks it).

    A native library or a stray ``os._exit`` in a test's thread can end the
    process early with status 0; without this a silently truncated run would
    look green.
    """
    done = os.environ.get("POLPO_TEST_DONE_FILE")
    if done:
        Path(done).write_text(f"{exitstatus}\n", encoding="utf-8")


BASE_CONFIG: dict[str, Any] = {
    "project": "demo",
    "agents": [
        {"name": "coder", "role": "Senior engineer", "model": "test:model"},
        {"name": "writer", "role": "Docs", "model": "test:model"},
    ],
    "settings": {
        "approvalGates": [
            {
                "name": "plan",
                "hook": "task:start",
                "agents": ["writer"],
                "timeoutMinutes": 30,
                "onTimeout": "approve",
            },
            {
                "name": "review",
                "hook": "task:complete",
                "agents": ["coder"],
                "timeoutMinutes": 60,
                "onTimeout": "reject",
                "maxRevisions": 2,
            },
        ],
    },
}


def write_project(root: Path, config: dict[str, Any] | None = None) -> Path:
    """A project folder with ``.polpo/polpo.json``; returns the config path."""
    polpo_dir = root / ".polpo"
    polpo_dir.mkdir(parents=True, exist_ok=True)
    path = polpo_dir / "polpo.json"
    path.write_text(json.dumps(config or BASE_CONFIG, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root (the folder holding ``.polpo/``)."""
    root = tmp_path / "proj"
    write_project(root)
    return root


@pytest.fixture
def loaded(project: Path) -> LoadedConfig:
    path = project / ".polpo" / "polpo.json"
    return LoadedConfig(
        config=validate_config(json.loads(path.read_text())), path=path, root=project
    )


@pytest.fixture(scope="session")
def _pg_schemas() -> Iterator[PgSchemas | None]:
    admin = test_database_url()
    if admin is None:
        yield None
        return
    schemas = PgSchemas(admin)
    try:
        yield schemas
    finally:
        schemas.close()


@pytest.fixture(scope="session")
def session_database_url(_pg_schemas: PgSchemas | None) -> Iterator[str | None]:
    """A PostgreSQL schema that lives as long as the session, for session-scoped
    fixtures (a ``polpo serve`` shared by many tests); None on SQLite, where each
    project's own file is its database."""
    if _pg_schemas is None:
        yield None
        return
    name, url = _pg_schemas.create()
    try:
        yield url
    finally:
        _pg_schemas.drop(name)


@pytest.fixture(autouse=True)
def database_url(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    _pg_schemas: PgSchemas | None,
    tmp_path: Path,
) -> Iterator[str]:
    """The store every part of this test opens (``POLPO_DATABASE_URL`` for subprocesses too).

    On SQLite (the default) nothing is overridden: each project uses its own
    ``.polpo/polpo.db``; the value is a spare file for tests that open a store
    by URL. With ``POLPO_TEST_DATABASE_URL`` it is a fresh PostgreSQL schema,
    dropped after the test.
    """
    sqlite_only = request.node.get_closest_marker("sqlite_only")
    postgres_only = request.node.get_closest_marker("postgres_only")
    if _pg_schemas is None:
        monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
        if postgres_only is not None:
            pytest.skip(f"PostgreSQL only: {_reason(postgres_only)}")
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if sqlite_only is not None:
        pytest.skip(f"SQLite only: {_reason(sqlite_only)}")
    name, url = _pg_schemas.create()
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    try:
        yield url
    finally:
        monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
        _pg_schemas.drop(name)


def _reason(marker: pytest.Mark) -> str:
    return str(marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")).strip()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def app(loaded: LoadedConfig, clock: FakeClock) -> AsyncIterator[Polpo]:
    polpo = await Polpo.open(loaded, clock=clock)
    try:
        yield polpo
    finally:
        await polpo.close()
