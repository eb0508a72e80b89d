"""Replies exactly once on WhatsApp across a crash (SPEC §12): a real ``polpo serve``
is killed with SIGKILL while replies go out, then started again.

The outbox assigns each part's id before sending it and sends it again with
the same id after the crash. The fake worker's phone drops a message whose
id it already has, as WhatsApp's apps do; the real worker, which cannot send
with a chosen id through neonize, answers a resent id from its sent ledger
instead (``test_whatsapp_ledger.py``, ``test_whatsapp_engine.py``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.serve_process import serving
from wa_support import make_credentials, poll_until_sync

from polpo.channels.base import InboundMessage

FRIENDS = [f"3912345670{i}" for i in range(6)]
CONFIG = {
    "project": "crash",
    "settings": {
        "notifications": {
            "channels": {
                "whatsapp": {
                    "type": "whatsapp",
                    "gateway": {"enableInbound": True, "allowFrom": FRIENDS},
                }
            }
        }
    },
}


def _phone(auth: Path) -> list[dict[str, Any]]:
    path = auth / "fake_phone.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def test_a_serve_killed_mid_send_delivers_every_reply_once_after_a_restart(
    tmp_path: Path,
) -> None:
    root = tmp_path / "p"
    auth = root / ".polpo" / "whatsapp"
    make_credentials(auth)
    now = time.time()
    messages = [
        InboundMessage(
            channel="whatsapp",
            peer=friend,
            chat_id=f"{friend}@s.whatsapp.net",
            message_id=f"3EB0IN{i}",
            text="/help",
            timestamp=now,
        ).to_dict()
        for i, friend in enumerate(FRIENDS)
    ]
    (auth / "fake_messages.json").write_text(json.dumps(messages))
    (auth / "fake_send_delay").write_text("0.5")  # WhatsApp takes a while to answer
    with serving(root, config=CONFIG, worker="phone") as first:
        # the second reply reached the phone; serve has not heard back yet
        poll_until_sync(lambda: len(_phone(auth)) >= 2, within=60)
        first.proc.kill()  # SIGKILL: nothing orderly
        first.proc.wait(timeout=10)
    before = _phone(auth)
    with serving(root, config=CONFIG, worker="phone") as second:
        delivered = lambda: {e["chat"] for e in _phone(auth) if not e["dropped"]}  # noqa: E731
        poll_until_sync(lambda: len(delivered()) == len(FRIENDS), within=60)
        assert second.stop() == 0
    phone = _phone(auth)
    kept = [e for e in phone if not e["dropped"]]
    # every friend got the answer, once: 0 duplicates delivered
    assert sorted(e["chat"] for e in kept) == sorted(f"{f}@s.whatsapp.net" for f in FRIENDS)
    assert all("/status" in e["text"] for e in kept)
    # the part in flight at the kill was sent again, with the same id, and dropped
    again = [e for e in phone if e["dropped"]]
    assert again and all(e["run"] == 2 for e in again)
    assert {e["id"] for e in again} <= {e["id"] for e in before}
    assert all(e["id"].startswith("3EB0") and len(e["id"]) == 22 for e in phone)
