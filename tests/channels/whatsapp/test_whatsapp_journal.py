"""The worker's inbound journal: what it keeps, what an ack trims, what a restart replays."""

from __future__ import annotations

from pathlib import Path

from polpo.channels.whatsapp.journal import COMPACT_BYTES, JOURNAL_NAME, TRIM_BYTES, Journal


def _msg(i: int) -> str:
    return f'{{"type":"message","message":{{"message_id":"M{i}","text":"hello {i}"}}}}\n'


def test_unacknowledged_entries_survive_a_reopen_in_order(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    j = Journal.open(path)
    j.append([(f"M{i}", f"raw{i}".encode(), _msg(i)) for i in range(1, 4)])
    assert j.ack("M2") and not j.ack("M2") and not j.ack("never")
    j.close()  # the process ends here without acknowledging M1 and M3
    again = Journal.open(path)
    assert [(e.message_id, e.raw, e.line) for e in again.unacked()] == [
        ("M1", b"raw1", _msg(1)),
        ("M3", b"raw3", _msg(3)),
    ]
    assert again.pending == 2
    # reopening rewrote it with only those two
    assert path.read_bytes().count(b"\n") == 2
    assert path.stat().st_mode & 0o777 == 0o600


def test_new_entries_after_a_reopen_get_new_sequence_numbers(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    j = Journal.open(path)
    j.append([("A", b"a", _msg(1))])
    j.close()
    j = Journal.open(path)
    j.append([("B", b"b", _msg(2))])
    assert j.ack("A")
    j.close()
    assert [e.message_id for e in Journal.open(path).unacked()] == ["B"]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    j = Journal.open(path)
    j.append([("A", b"a", _msg(1))])
    j.close()
    with path.open("ab") as f:
        f.write(b'{"s":2,"id":"B","raw":"Yg=')  # the process died mid-write
    assert [e.message_id for e in Journal.open(path).unacked()] == ["A"]


def test_once_everything_is_acknowledged_a_big_journal_is_emptied(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    j = Journal.open(path)
    big = b"x" * 4096
    for i in range(TRIM_BYTES // 4096 + 2):
        j.append([(f"M{i}", big, _msg(i))])
        if i % 2:
            assert j.ack(f"M{i - 1}") and j.ack(f"M{i}")
    assert j.pending == 0
    assert path.stat().st_size < TRIM_BYTES
    j.append([("last", b"z", _msg(0))])
    j.close()
    assert [e.message_id for e in Journal.open(path).unacked()] == ["last"]


def test_a_steady_flood_never_grows_the_journal_without_bound(tmp_path: Path) -> None:
    """Strangers writing non-stop: one message always waits for the gateway, so the
    journal is never all acknowledged; it is compacted to what is pending instead."""
    path = tmp_path / JOURNAL_NAME
    j = Journal.open(path, sync=False)
    big = b"x" * 4096
    j.append([("M0", big, _msg(0))])
    largest = 0
    rounds = 3 * COMPACT_BYTES // 4096
    for i in range(1, rounds):
        j.append([(f"M{i}", big, _msg(i))])
        assert j.ack(f"M{i - 1}")
        largest = max(largest, path.stat().st_size)
    assert j.pending == 1
    assert largest < COMPACT_BYTES + 16 * 1024  # ~9 MB without compaction
    j.close()
    kept = Journal.open(path).unacked()
    assert [(e.message_id, e.raw, e.line) for e in kept] == [
        (f"M{rounds - 1}", big, _msg(rounds - 1))
    ]
