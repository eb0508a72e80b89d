"""Issue 8 §4: the bot token in no log line; ``.polpo/`` and the database the owner's alone.

The Telegram token used to be logged at ``--log-level debug`` (python-telegram-bot
logs the Bot API URL, which carries it). A real ``polpo serve`` at debug level
talks to the local fake Bot API and receives a message; its whole output is
then searched for the token. The files are checked after a real ``polpo
init`` and a real database opened under ``umask 000``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "channels" / "telegram"))
from fake_bot_api import FakeBotApi, message

from polpo.app import Polpo
from polpo.config import load_config
from tests.cli.conftest import polpo_exe, subprocess_env

#: Shaped like a real token (bot id, colon, 35 characters).
TOKEN = "7012345678:AAH4kq_SZ9c8fakeFAKEfake-0123456789ab"


def _wait(cond: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def bot_api() -> Iterator[FakeBotApi]:
    api = FakeBotApi(token=TOKEN)
    api.start_in_thread()
    yield api
    api.stop_thread()


def test_the_bot_token_is_in_no_line_of_a_debug_log(tmp_path: Path, bot_api: FakeBotApi) -> None:
    root = tmp_path / "proj"
    (root / ".polpo").mkdir(parents=True)
    config = {
        "project": "tg",
        "settings": {
            "runner": {"enabled": False},
            "notifications": {
                "channels": {
                    "tg": {
                        "type": "telegram",
                        # a name that does not look secret: the config says it is
                        "botTokenEnv": "TG_BOT",
                        "apiBaseUrl": bot_api.base_url,
                        "gateway": {"enableInbound": True, "dmPolicy": "pairing"},
                    }
                }
            },
        },
    }
    (root / ".polpo" / "polpo.json").write_text(json.dumps(config))
    serve = subprocess.Popen(
        [*polpo_exe(), "serve", "--port", "0", "--log-level", "debug"],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_env(TG_BOT=TOKEN),
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(serve.stdout or []), daemon=True)
    reader.start()
    try:
        _wait(lambda: len(bot_api.calls_to("getUpdates")) >= 2, "serve to poll the Bot API")
        bot_api.push({"message": message("hello, who is this?")})
        _wait(lambda: bool(bot_api.sent), "the pairing answer")
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=60)
        reader.join(timeout=10)
    out = "".join(lines)
    assert "DEBUG" in out  # it did log at debug level
    assert "Bot API URL" in out  # the very line that used to carry the token
    assert TOKEN not in out
    assert TOKEN.split(":")[1] not in out
    assert "[redacted]" in out


@pytest.mark.postgres_only(reason="the password is part of PostgreSQL's URL")
def test_the_database_password_is_in_no_line_of_a_debug_log(
    tmp_path: Path, database_url: str
) -> None:
    # POLPO_DATABASE_URL (the suite's, for this test's schema) holds the role's password;
    # serve used to log the whole URL at start, at the default level
    import sqlalchemy as sa

    password = sa.engine.make_url(database_url).password
    assert password
    root = tmp_path / "proj"
    (root / ".polpo").mkdir(parents=True)
    config = {"project": "pg", "settings": {"runner": {"enabled": False}}}
    (root / ".polpo" / "polpo.json").write_text(json.dumps(config))
    serve = subprocess.Popen(
        [*polpo_exe(), "serve", "--port", "0", "--log-level", "debug"],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_env(),
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(serve.stdout or []), daemon=True)
    reader.start()
    try:
        _wait(lambda: any("HTTP API listening" in ln for ln in lines), "serve to listen")
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=60)
        reader.join(timeout=10)
    out = "".join(lines)
    assert "database postgresql://" in out  # the very line that used to carry it
    assert password not in out


def test_the_filter_redacts_messages_arguments_and_tracebacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOME_SERVICE_PASSWORD", "hunter2-hunter2")
    from polpo.logredact import REDACTED, RedactSecrets, secrets_from_environment

    f = RedactSecrets([*secrets_from_environment(), "given-secret-value"])
    try:
        raise RuntimeError(f"failed calling https://api.telegram.org/bot{TOKEN}/getMe")
    except RuntimeError:
        record = logging.LogRecord(
            "any",
            logging.DEBUG,
            __file__,
            1,
            "pw=%s key=%s",
            ("hunter2-hunter2", "given-secret-value"),
            sys.exc_info(),
        )
    assert f.filter(record) is True
    assert record.getMessage() == f"pw={REDACTED} key={REDACTED}"
    assert record.exc_text is not None
    assert TOKEN not in record.exc_text and "getMe" in record.exc_text


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.sqlite_only(reason="the SQLite database file's mode")
def test_polpo_dir_and_database_are_private_whatever_the_umask(
    tmp_path: Path, umask_000: None
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    init = subprocess.run(
        [*polpo_exe(), "init"],
        cwd=root,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
        umask=0,
    )
    assert init.returncode == 0, init.stderr
    assert _mode(root / ".polpo") == 0o700
    added = subprocess.run(
        [*polpo_exe(), "task", "add", "Something"],
        cwd=root,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
        umask=0,
    )
    assert added.returncode == 0, added.stderr
    assert _mode(root / ".polpo" / "polpo.db") == 0o600


@pytest.mark.sqlite_only(reason="the SQLite database, WAL and shm files' modes")
async def test_the_wal_and_shm_files_are_private_and_old_wide_files_are_narrowed(
    tmp_path: Path, umask_000: None
) -> None:
    root = tmp_path / "proj"
    (root / ".polpo").mkdir(parents=True, mode=0o777)
    os.chmod(root / ".polpo", 0o755)  # as an older Polpo left it
    (root / ".polpo" / "polpo.json").write_text('{"project": "p"}')
    app = await Polpo.open(load_config(root / ".polpo" / "polpo.json"))
    try:
        await app.tasks.add("Write something")  # the WAL and its index exist while open
        db = root / ".polpo" / "polpo.db"
        assert _mode(root / ".polpo") == 0o700
        for f in (db, db.with_name("polpo.db-wal"), db.with_name("polpo.db-shm")):
            assert f.exists() and _mode(f) == 0o600, f
    finally:
        await app.close()
    os.chmod(db, 0o644)
    again = await Polpo.open(load_config(root / ".polpo" / "polpo.json"))
    await again.close()
    assert _mode(db) == 0o600
