"""The worker's sent ledger: a part sent again with its pre-assigned id is not sent twice."""

from __future__ import annotations

import re
from pathlib import Path

from polpo.channels.whatsapp.ledger import KEEP, LEDGER_NAME, SentLedger, SentPart
from polpo.channels.whatsapp.outbound import mint_message_id


def test_a_recorded_part_is_found_again_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    ledger = SentLedger.open(path)
    assert ledger.get("3EB0AAA") is None
    ledger.record("3EB0AAA", SentPart("3EB0WA1", 1_800_000_000.5))
    assert ledger.get("3EB0AAA") == SentPart("3EB0WA1", 1_800_000_000.5)
    assert SentLedger.open(path).get("3EB0AAA") == SentPart("3EB0WA1", 1_800_000_000.5)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_part_another_worker_recorded_meanwhile_is_found(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    mine = SentLedger.open(path)  # the new worker, started while the old one still sends
    SentLedger.open(path).record("3EB0OLD", SentPart("3EB0WA9", 1.0))  # the old one finishes
    assert mine.get("3EB0OLD") == SentPart("3EB0WA9", 1.0)


def test_a_torn_line_is_ignored_and_the_ledger_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    ledger = SentLedger.open(path)
    for i in range(2 * KEEP + 10):
        ledger.record(f"A{i}", SentPart(f"W{i}", float(i)))
    with path.open("ab") as f:
        f.write(b"A-torn W-torn")  # the process died mid-line
    again = SentLedger.open(path)
    assert again.get("A-torn") is None
    assert again.get(f"A{2 * KEEP + 9}") == SentPart(f"W{2 * KEEP + 9}", float(2 * KEEP + 9))
    assert again.get("A0") is None  # the oldest were let go
    assert len(path.read_text().splitlines()) == KEEP


def test_minted_ids_look_like_whatsapps_own() -> None:
    ids = {
        mint_message_id("39000000001", now=1_800_000_000.0, random_bytes=bytes([i] * 16))
        for i in range(50)
    }
    assert len(ids) == 50
    assert all(re.fullmatch(r"3EB0[0-9A-F]{18}", i) for i in ids)
