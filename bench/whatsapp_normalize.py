"""WhatsApp: how fast ``MessageEv`` → ``InboundMessage`` normalisation runs, and
how much memory the idle worker process takes.

Prints:
- normalisation throughput over a realistic mix of real neonize protobufs
  (plain and extended text, captions, wrappers, edits, reactions, LID senders,
  groups, status broadcasts), from objects and from wire bytes (what the
  worker gets from Go: parse + normalise + encode the protocol line);
- the same with the inbound journal in place (the worker's real path: parse,
  normalise, drop what is not for Polpo, append to the journal with one
  fsync per batch, encode the protocol line), on this machine's disk, for
  a burst (batches of up to 512, as the pump forms them) and for messages
  arriving one at a time (one fsync each: the latency a message pays);
- the real worker's resident memory (RSS) when idle: after start-up (neonize
  imported), and after a connect attempt (the Go runtime running; no network
  here, so the attempt fails and the process exits: measured just before).

Target: ≥ 20,000 events/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path

import psutil
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
from neonize.proto.Neonize_pb2 import Message as MessageEv
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    ContextInfo,
    ExtendedTextMessage,
    FutureProofMessage,
    ImageMessage,
    Message,
    ProtocolMessage,
    ReactionMessage,
)

from polpo.channels.whatsapp import protocol as p
from polpo.channels.whatsapp.journal import JOURNAL_NAME, Journal
from polpo.channels.whatsapp.normalize import OwnAccount, for_polpo, normalize
from polpo.channels.whatsapp.worker import MAX_BATCH

OWN = OwnAccount(phone="39000000001", lid="900000000000001")
N = 50_000


def _ev(
    i: int, message: Message, chat: JID, sender: JID | None = None, alt: JID | None = None
) -> MessageEv:
    return MessageEv(
        Info=MessageInfo(
            ID=f"3EB0{i:012X}",
            Pushname="Alice",
            Timestamp=1_800_000_000_000 + i,
            MessageSource=MessageSource(
                Chat=chat, Sender=sender or chat, SenderAlt=alt, IsGroup=chat.Server == "g.us"
            ),
        ),
        Message=message,
    )


def sample(i: int) -> MessageEv:
    phone = JID(User=f"39{3_000_000_000 + i % 1000}", Server="s.whatsapp.net")
    lid = JID(User=f"{10**14 + i % 1000}", Server="lid")
    group = JID(User="120363000000000001", Server="g.us")
    kind = i % 10
    if kind == 0:
        return _ev(i, Message(conversation=f"/status {i}"), phone)
    if kind == 1:
        ext = ExtendedTextMessage(
            text="what about task K7M2?", contextInfo=ContextInfo(stanzaID="Q1")
        )
        return _ev(i, Message(extendedTextMessage=ext), phone)
    if kind == 2:
        return _ev(i, Message(imageMessage=ImageMessage(caption="look at this")), phone)
    if kind == 3:
        inner = Message(conversation="disappearing")
        return _ev(i, Message(ephemeralMessage=FutureProofMessage(message=inner)), phone)
    if kind == 4:
        edit = ProtocolMessage(
            type=ProtocolMessage.MESSAGE_EDIT,
            key=MessageKey(ID="3EB0ORIG"),
            editedMessage=Message(conversation="fixed"),
        )
        return _ev(i, Message(protocolMessage=edit), phone)
    if kind == 5:
        reaction = ReactionMessage(key=MessageKey(ID="3EB0ALERT"), text="👍")
        return _ev(i, Message(reactionMessage=reaction), phone)
    if kind == 6:
        return _ev(i, Message(conversation="from a LID"), lid, lid, phone)
    if kind == 7:
        return _ev(i, Message(conversation="in a group"), group, phone)
    if kind == 8:
        return _ev(i, Message(conversation="status"), JID(User="status", Server="broadcast"), phone)
    return _ev(i, Message(conversation="lid, unresolved"), lid)


def bench_objects(events: list[MessageEv]) -> float:
    sent = {"3EB0SENT"}
    started = time.perf_counter()
    for ev in events:
        normalize(ev, own=OWN, sent_ids=sent, now=0.0)
    return len(events) / (time.perf_counter() - started)


def bench_wire(blobs: list[bytes]) -> float:
    sent = {"3EB0SENT"}
    started = time.perf_counter()
    for blob in blobs:
        m = normalize(MessageEv.FromString(blob), own=OWN, sent_ids=sent, now=0.0)
        if m is not None:
            p.encode(p.MessageReceived(message=p.inbound_to_wire(m)))
    return len(blobs) / (time.perf_counter() - started)


def bench_journal(blobs: list[bytes], directory: str, batch: int) -> float:
    """The worker's path with the journal: ``batch`` events per fsync."""
    sent = {"3EB0SENT"}
    journal = Journal.open(Path(directory) / JOURNAL_NAME)
    started = time.perf_counter()
    for start in range(0, len(blobs), batch):
        ready = []
        for blob in blobs[start : start + batch]:
            m = normalize(MessageEv.FromString(blob), own=OWN, sent_ids=sent, now=0.0)
            if m is not None and for_polpo(m, groups=False):
                line = p.encode(p.MessageReceived(message=p.inbound_to_wire(m)))
                ready.append((m.message_id, blob, line))
        journal.append(ready)
    took = time.perf_counter() - started
    for message_id, _raw, _wire in ready:
        journal.ack(message_id)
    journal.close()
    (Path(directory) / JOURNAL_NAME).unlink()
    return len(blobs) / took


async def worker_rss(tmp: str) -> tuple[float, float]:
    """(MB after start-up, MB while connecting) of the real worker."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "polpo.channels.whatsapp.worker",
        "--auth-dir",
        tmp,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    # an unknown command is answered once neonize is imported: the idle state
    proc.stdin.write(b'{"type":"hello"}\n')
    await proc.stdin.drain()
    await proc.stdout.readline()
    await asyncio.sleep(0.5)
    idle = psutil.Process(proc.pid).memory_info().rss / 2**20
    # now a connect (fails here: no network); sample while the Go runtime runs
    proc.stdin.write(p.encode(p.Connect()).encode())
    await proc.stdin.drain()
    peak = idle
    while proc.returncode is None:
        try:
            peak = max(peak, psutil.Process(proc.pid).memory_info().rss / 2**20)
        except psutil.Error:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.02)
    return idle, peak


def main() -> None:
    events = [sample(i) for i in range(N)]
    blobs = [e.SerializePartialToString() for e in events]
    obj = [bench_objects(events) for _ in range(3)]
    wire = [bench_wire(blobs) for _ in range(3)]
    print(
        f"normalise (objects):               {statistics.median(obj):>9,.0f} events/s  (best {max(obj):,.0f})"
    )
    print(
        f"parse + normalise + protocol line: {statistics.median(wire):>9,.0f} events/s  (best {max(wire):,.0f})"
    )
    import tempfile

    # on the project's disk (not a tmpfs): fsync costs what it costs there
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        burst = [bench_journal(blobs, tmp, MAX_BATCH) for _ in range(3)]
        single = bench_journal(blobs[:200], tmp, 1)
    print(
        f"… + journal, burst (≤{MAX_BATCH}/fsync):     {statistics.median(burst):>9,.0f} events/s  (best {max(burst):,.0f})"
    )
    print(
        f"… + journal, one at a time:        {single:>9,.0f} events/s  ({1000 / single:.1f} ms a message)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        idle, connecting = asyncio.run(worker_rss(tmp))
    print(f"worker RSS idle (neonize loaded):  {idle:>9.1f} MB")
    print(f"worker RSS peak while connecting:  {connecting:>9.1f} MB")


if __name__ == "__main__":
    main()
