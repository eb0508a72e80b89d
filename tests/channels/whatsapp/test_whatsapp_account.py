"""Credentials on disk, their permissions, the one-holder lock, and chat ids as JIDs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from wa_support import make_credentials

from polpo.channels.whatsapp.account import (
    AccountLock,
    LinkedAccount,
    linked_account,
    lock_holder,
    secure,
    wipe_credentials,
)
from polpo.channels.whatsapp.outbound import to_jid, valid_jid
from polpo.errors import LockHeldError


def test_the_linked_account_is_read_from_whatsmeows_device_row(tmp_path: Path) -> None:
    make_credentials(tmp_path, phone="393331234567", lid="123456789012345")
    assert linked_account(tmp_path) == LinkedAccount(
        phone="393331234567",
        jid="393331234567:7@s.whatsapp.net",
        lid="123456789012345",
        push_name="Owner",
        platform="SAFARI",
    )


def test_nothing_linked_for_missing_empty_or_foreign_files(tmp_path: Path) -> None:
    assert linked_account(tmp_path / "nope") is None
    (tmp_path / "neonize.db").write_bytes(b"not a database")
    assert linked_account(tmp_path) is None
    (tmp_path / "neonize.db").unlink()
    conn = sqlite3.connect(tmp_path / "neonize.db")
    conn.execute(
        "CREATE TABLE whatsmeow_device (jid TEXT, lid TEXT, push_name TEXT, platform TEXT)"
    )
    conn.commit()
    conn.close()
    assert linked_account(tmp_path) is None  # schema, but no device: not linked


def test_wipe_removes_the_database_and_its_journals_only(tmp_path: Path) -> None:
    make_credentials(tmp_path)
    for name in ("neonize.db-wal", "neonize.db-shm", "polpo.lock", "notes.txt"):
        (tmp_path / name).write_text("x")
    removed = wipe_credentials(tmp_path)
    assert sorted(p.name for p in removed) == ["neonize.db", "neonize.db-shm", "neonize.db-wal"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "polpo.lock"]


def test_secure_makes_the_directory_0700_and_files_0600(tmp_path: Path) -> None:
    d = tmp_path / "wa"
    d.mkdir(mode=0o755)
    (d / "neonize.db").write_text("x")
    (d / "neonize.db").chmod(0o644)
    secure(d)
    assert d.stat().st_mode & 0o777 == 0o700
    assert (d / "neonize.db").stat().st_mode & 0o777 == 0o600


def test_the_lock_names_its_holder_and_is_freed_when_the_holder_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from polpo.channels.whatsapp.account import AccountLock; "
            f"AccountLock(Path({str(tmp_path)!r}), 'polpo serve').acquire(); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert lock_holder(tmp_path) == f"pid {holder.pid} (polpo serve)"
        with pytest.raises(LockHeldError) as info:
            AccountLock(tmp_path, "polpo whatsapp login").acquire()
        assert f"in use by pid {holder.pid} (polpo serve)" in info.value.message
    finally:
        holder.kill()
        holder.wait()
    # the kernel released it with the process: no stale lock to clean up
    assert lock_holder(tmp_path) is None
    with AccountLock(tmp_path, "polpo whatsapp login") as lock:
        assert lock.held
        assert lock_holder(tmp_path) == f"pid {os.getpid()} (polpo whatsapp login)"
    assert (tmp_path / "polpo.lock").stat().st_mode & 0o777 == 0o600


def test_chat_ids_become_jids() -> None:
    assert to_jid("39123456789") == "39123456789@s.whatsapp.net"
    assert to_jid("+39 123 456 789") == "39123456789@s.whatsapp.net"
    assert to_jid("whatsapp:39123456789") == "39123456789@s.whatsapp.net"
    assert to_jid("lid:123456789012345") == "123456789012345@lid"
    assert to_jid("120363000000000001@g.us") == "120363000000000001@g.us"
    assert to_jid("123456789012345@lid") == "123456789012345@lid"


def test_lock_file_is_reused_by_the_same_process(tmp_path: Path) -> None:
    lock = AccountLock(tmp_path)
    lock.acquire()
    lock.acquire()  # idempotent
    lock.release()
    lock.release()
    assert os.path.exists(tmp_path / "polpo.lock")


def test_only_real_chat_ids_are_sendable() -> None:
    for good in (
        "39123456789@s.whatsapp.net",
        "123@lid",
        "120363000000000001@g.us",
        "39123-1600000000@g.us",
    ):
        assert valid_jid(good), good
    for bad in (
        "@s.whatsapp.net",
        "abc@s.whatsapp.net",
        "39123@example.com",
        "status@broadcast",
        "",
    ):
        assert not valid_jid(bad), bad
