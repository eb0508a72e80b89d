"""The real neonize worker, offline (no network exists here): it fails to connect
cleanly and quickly, the supervisor retries, and no file descriptor leaks."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

from wa_support import Changes, RecordingListener

from polpo.channels.whatsapp import protocol as p
from polpo.channels.whatsapp.account import linked_account
from polpo.channels.whatsapp.channel import WhatsAppChannel
from polpo.channels.whatsapp.process import WorkerOptions
from polpo.channels.whatsapp.timing import Timing

WORKER = [sys.executable, "-m", "polpo.channels.whatsapp.worker"]


async def _talk(auth_dir: Path, *commands: p.Command) -> tuple[list[p.Event], int, float]:
    """Run the real worker with ``commands``; its events, exit code and run time."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *WORKER,
        "--auth-dir",
        str(auth_dir),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    for c in commands:
        proc.stdin.write(p.encode(c).encode())
    await proc.stdin.drain()
    out, _err = await asyncio.wait_for(proc.communicate(), 30)
    events = [p.decode_event(line) for line in out.splitlines() if line.strip()]
    return events, proc.returncode or 0, time.monotonic() - started


def _fake_device(auth_dir: Path) -> None:
    """A device row in whatsmeow's own schema, as if linked (keys are dummies)."""
    conn = sqlite3.connect(auth_dir / "neonize.db")
    conn.execute(
        "INSERT INTO whatsmeow_device (jid, lid, registration_id, noise_key, identity_key,"
        " signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details,"
        " adv_account_sig, adv_account_sig_key, adv_device_sig, platform, push_name)"
        " VALUES (?, ?, 1, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, 'SAFARI', 'Owner')",
        (
            "39000000001:7@s.whatsapp.net",
            "900001:7@lid",
            b"n" * 32,
            b"i" * 32,
            b"s" * 32,
            b"g" * 64,
            b"a",
            b"d",
            b"x" * 64,
            b"k" * 32,
            b"v" * 64,
        ),
    )
    conn.commit()
    conn.close()


async def test_the_real_worker_fails_to_connect_quickly_with_a_clear_error(tmp_path: Path) -> None:
    auth_dir = tmp_path / "whatsapp"
    events, code, took = await _talk(auth_dir, p.Connect())
    assert took < 20
    assert code == 3  # transient: the supervisor retries
    assert len(events) == 1 and isinstance(events[0], p.Error)
    assert events[0].code == "connect_failed" and events[0].fatal and events[0].retryable
    assert "web.whatsapp.com" in events[0].message
    # credentials are private even when nothing is linked yet
    assert auth_dir.stat().st_mode & 0o777 == 0o700
    assert (auth_dir / "neonize.db").stat().st_mode & 0o777 == 0o600
    assert linked_account(auth_dir) is None


async def test_the_real_worker_answers_bad_commands_and_stops_on_request(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *WORKER,
        "--auth-dir",
        str(tmp_path / "wa"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(b'{"type":"dance"}\n{"type":"stop"}\n'), 30)
    events = [p.decode_event(line) for line in out.splitlines()]
    assert proc.returncode == 0
    assert len(events) == 1 and isinstance(events[0], p.Error)
    assert 'unknown command type "dance"' in events[0].message


async def test_the_supervisor_retries_the_real_worker_without_leaking_descriptors(
    tmp_path: Path,
) -> None:
    auth_dir = tmp_path / "whatsapp"
    await _talk(auth_dir, p.Connect())  # creates whatsmeow's schema
    _fake_device(auth_dir)
    assert linked_account(auth_dir) is not None

    changes = Changes()
    listener = RecordingListener(changes)
    fds: list[int] = []
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        fds.append(len(os.listdir("/proc/self/fd")))
        changes.notify()
        await asyncio.sleep(0)

    ch = WhatsAppChannel(
        auth_dir,
        worker=WorkerOptions(command=WORKER),
        timing=Timing(sleep=sleep, rng=lambda: 1.0),
    )
    started = time.monotonic()
    await ch.start(listener)
    try:
        await changes.wait_for(lambda: len(delays) >= 4, within=60)
    finally:
        await ch.stop()
    took = time.monotonic() - started
    assert took < 40, f"four failed connects took {took:.1f} s"
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(fds) == min(fds), f"descriptors grew across retries: {fds}"
    details = [s.detail or "" for s in listener.statuses if s.state == "disconnected"]
    assert details and "web.whatsapp.com" in details[0]
    assert ch.status().state == "stopped"
