"""The WhatsApp channel under the real gateway: messages from a (fake) worker are
stored, policed and answered, replies go back through the worker protocol."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from wa_support import (
    OWN_PHONE,
    Changes,
    ManualSleep,
    fake_log,
    fake_worker,
    make_credentials,
    poll_until,
)

from polpo.app import Polpo
from polpo.channels.base import InboundMessage
from polpo.channels.whatsapp.component import make_whatsapp_channel
from polpo.channels.whatsapp.timing import Timing
from polpo.clock import FakeClock
from polpo.config import load_config
from polpo.gateway.component import GatewayComponent
from polpo.gateway.routing import UNREADABLE_REPLY

FRIEND = "39123456789"
STRANGER = "39999999999"


def _project(root: Path) -> Path:
    config = {
        "project": "wa",
        "settings": {
            "notifications": {
                "channels": {
                    "whatsapp": {
                        "type": "whatsapp",
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "allowlist",
                            "allowFrom": [f"+{FRIEND}"],
                        },
                    }
                }
            }
        },
    }
    (root / ".polpo").mkdir(parents=True)
    path = root / ".polpo" / "polpo.json"
    path.write_text(json.dumps(config))
    return path


@contextlib.asynccontextmanager
async def _serving(path: Path, clock: FakeClock) -> AsyncIterator[GatewayComponent]:
    """The project's gateway over the real WhatsApp worker pipe (fake_worker "messages")."""
    app = await Polpo.open(load_config(path), clock=clock)
    channel = make_whatsapp_channel(
        app,
        worker=fake_worker("messages"),
        timing=Timing(clock=clock, sleep=ManualSleep(Changes())),
    )
    assert channel is not None
    gw = GatewayComponent(app, [channel])
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()
        await app.close()


def _msg(i: int, peer: str, text: str, ts: float, **extra: object) -> dict[str, object]:
    chat = f"{peer}@s.whatsapp.net"
    m = InboundMessage(
        channel="whatsapp",
        peer=peer,
        chat_id=chat,
        message_id=f"3EB0{i:04d}",
        text=text,
        timestamp=ts,
        display_name="Ada",
    )
    return m.to_dict() | extra


async def test_messages_are_answered_through_the_worker_and_strangers_are_not(
    tmp_path: Path,
) -> None:
    path = _project(tmp_path)
    auth = tmp_path / ".polpo" / "whatsapp"
    make_credentials(auth)
    clock = FakeClock(1_800_000_000.0)
    now = clock.now()
    messages = [
        _msg(1, FRIEND, "/help", now),
        _msg(2, STRANGER, "/help", now),
        _msg(3, OWN_PHONE, "/help", now, is_from_me=True, is_self_chat=True),
        _msg(4, FRIEND, "/help", now - 3 * 3600),  # sent while we were away, too old
        _msg(5, FRIEND, "", now, kind="undecryptable"),
        _msg(6, STRANGER, "", now, kind="undecryptable"),
    ]
    (auth / "fake_messages.json").write_text(json.dumps(messages))

    async with _serving(path, clock) as gw:
        await poll_until(lambda: sum(e["type"] == "ack" for e in fake_log(auth)) == 6)
        await gw.settle()
        await poll_until(lambda: sum(e["type"] == "send_text" for e in fake_log(auth)) >= 3)
        await poll_until(lambda: sum(e["type"] == "mark_read" for e in fake_log(auth)) >= 2)
    log = fake_log(auth)
    sends = [e for e in log if e["type"] == "send_text"]
    helps = [e for e in sends if "/status" in e["text"]]  # the help text
    # each reply quotes the message it answers
    assert sorted(e["reply_to"] for e in helps) == ["3EB00001", "3EB00003"]
    assert sorted(e["chat"] for e in helps) == [
        f"{OWN_PHONE}@s.whatsapp.net",  # the owner's self-chat is the console
        f"{FRIEND}@s.whatsapp.net",
    ]
    # a message WhatsApp could not decrypt: the friend is asked to send it again
    unreadable = [e["chat"] for e in sends if e["text"] == UNREADABLE_REPLY]
    assert unreadable == [f"{FRIEND}@s.whatsapp.net"]  # not the stranger
    assert len(sends) == 3
    reads = sorted(tuple(e["message_ids"]) for e in log if e["type"] == "mark_read")
    assert reads == [("3EB00001",), ("3EB00003",)]  # not the stranger's, not the stale one


async def test_an_admitted_voice_note_is_fetched_through_the_worker_and_transcribed(
    tmp_path: Path,
) -> None:
    from tests.llm.fake_openai import Upload, completion, fake_openai

    from polpo.channels.base import Attachment

    path = _project(tmp_path)
    auth = tmp_path / ".polpo" / "whatsapp"
    make_credentials(auth)
    clock = FakeClock(1_800_000_000.0)
    note = Attachment("voice", "audio/ogg; codecs=opus", 16, 3)
    voice = {"kind": "media", "attachment": vars(note)}
    messages = [
        _msg(1, FRIEND, "", clock.now(), **voice),
        _msg(2, STRANGER, "", clock.now(), **voice),
    ]
    (auth / "fake_messages.json").write_text(json.dumps(messages))
    with fake_openai([completion(text="On it.")], transcripts=["remind me at noon"]) as server:
        config = json.loads(path.read_text())
        config["settings"].update(
            orchestratorModel="local:m",
            providers={"local": {"baseUrl": server.base_url}},
            chat={"transcriptionModel": "local:whisper-1"},
        )
        path.write_text(json.dumps(config))
        async with _serving(path, clock) as gw:
            await poll_until(lambda: sum(e["type"] == "ack" for e in fake_log(auth)) == 2)
            await gw.settle()
            await poll_until(lambda: any(e["type"] == "send_text" for e in fake_log(auth)))
    log = fake_log(auth)
    [sent] = [e for e in log if e["type"] == "send_text"]
    assert sent["text"] == "> 🎤 remind me at noon\n\nOn it."
    assert sent["chat"] == f"{FRIEND}@s.whatsapp.net"
    # only the friend's note was downloaded (by the worker), never the stranger's
    assert [e["message_id"] for e in log if e["type"] == "download"] == ["3EB00001"]
    [upload] = [r.body["file"] for r in server.received if "audio" in r.path]
    assert isinstance(upload, Upload) and upload.data == b"fake file for 3EB00001"
