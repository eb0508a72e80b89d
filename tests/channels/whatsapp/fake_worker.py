"""A stand-in for the neonize worker that speaks the real protocol over real pipes.

``python fake_worker.py SCENARIO --auth-dir DIR``. Each run appends its
commands to ``DIR/fake_log.jsonl`` (``{"run": n, ...command}``) and counts
runs in ``DIR/fake_runs``, so a test can script "fail twice, then connect".

Scenarios:
  flaky        runs 1-2: connect fails (exit 3); later runs connect and send
  ok           connects, answers send_text with sent (ids M<run>-<n>)
  crash        connects, then dies abruptly (exit 1) on the first send_text
  hang_on_stop connects, ignores stop and SIGTERM
  logged_out   says logged_out right after connect
  replaced     connects, then says replaced
  fatal        connect refused for good (temp ban, exit 4)
  messages     connects, then sends the messages in DIR/fake_messages.json one by
               one, each after the previous one was acked
  garbage      writes lines that are not protocol, then connects
  login_qr     run 1: two QR codes, then linked (credentials written) and exits for
               the restart WhatsApp asks for; run 2 connects
  login_phone  a pairing code for the number in connect, then linked and connected
  qr_forever   shows a QR code and waits for a phone that never comes
  qr_run       like qr_forever, the code naming the run (``2@run<n>``); without
               any QR when DIR/fake_no_qr exists (a worker that gets none)
  silent       runs 1: never answers connect (a hung engine); later runs connect
  qr_rotating  shows ``2@code-1``; each time the test creates DIR/fake_rotate, the
               next code (``2@code-2``, 20 s); when it creates DIR/fake_link, the
               phone links: credentials written, paired, connected
  keepalive    connects, then degraded (missed keepalives); answers send_text, then says
               restored
  login_silent run 1: a QR code, then linked (credentials written), then silent (the
               reconnect after linking failed); run 2 connects
  outdated     a QR code, then WhatsApp refuses this client as outdated (exit 4)
  multidevice  a QR code, then "scanned without multidevice" (the worker goes on)
  phone        connects; run 1 sends all of DIR/fake_messages.json at once; each
               send_text reaches a phone (DIR/fake_phone.jsonl) that drops a message
               whose id it already has, like WhatsApp's apps; answers ``sent`` after
               DIR/fake_send_delay seconds (default 0)

Every scenario answers logout with logged_out, and download with a small file.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from wa_support import make_credentials

from polpo.channels.whatsapp import protocol as p


def main() -> int:
    scenario = sys.argv[1]
    auth_dir = Path(sys.argv[sys.argv.index("--auth-dir") + 1])
    runs_file = auth_dir / "fake_runs"
    run = int(runs_file.read_text()) + 1 if runs_file.exists() else 1
    runs_file.write_text(str(run))
    log_file = auth_dir / "fake_log.jsonl"
    env_line = {"run": run, "type": "env", "bot_tag": os.environ.get("NEONIZE_BOT_TAG")}
    with log_file.open("a") as f:
        f.write(json.dumps(env_line) + "\n")

    writing = threading.Lock()

    def emit(event: p.Event) -> None:
        with writing:
            sys.stdout.write(p.encode(event))
            sys.stdout.flush()

    def rotate_and_link() -> None:
        """qr_rotating: the test steers the phone through files in the auth dir."""
        shown = 1
        while True:
            if (auth_dir / "fake_rotate").exists():
                (auth_dir / "fake_rotate").unlink()
                shown += 1
                emit(p.Qr(code=f"2@code-{shown}", seconds=20))
            if (auth_dir / "fake_link").exists():
                (auth_dir / "fake_link").unlink()
                make_credentials(auth_dir)
                emit(p.Paired(phone="39000000001", jid="39000000001:7@s.whatsapp.net"))
                emit(p.Connected(phone="39000000001", jid="39000000001:7@s.whatsapp.net"))
                return
            time.sleep(0.05)

    def record(command: p.Command) -> None:
        with log_file.open("a") as f:
            f.write(json.dumps({"run": run, "type": command.TYPE, **command.__dict__}) + "\n")

    if scenario == "hang_on_stop":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    messages: list[dict[str, object]] = []
    if scenario == "messages":
        messages = json.loads((auth_dir / "fake_messages.json").read_text())

    sent = 0
    for raw in sys.stdin:
        command = p.decode_command(raw)
        record(command)
        if isinstance(command, p.Connect) and scenario == "login_qr" and run == 1:
            emit(p.Qr(code="2@first-code", seconds=60))
            emit(p.Qr(code="2@second-code", seconds=20))
            make_credentials(auth_dir)
            emit(p.Paired(phone="39000000001", jid="39000000001:7@s.whatsapp.net"))
            return 3
        if isinstance(command, p.Connect) and scenario == "login_phone":
            emit(p.PairCode(code=f"K7M2{(command.phone or '')[-4:]}"))
            make_credentials(auth_dir, phone=command.phone or "39000000001")
            emit(p.Paired(phone=command.phone or "", jid=""))
            emit(p.Connected(phone=command.phone or "", jid=""))
            continue
        if isinstance(command, p.Connect) and scenario == "silent" and run == 1:
            continue
        if isinstance(command, p.Connect) and scenario == "login_silent" and run == 1:
            emit(p.Qr(code="2@only-code", seconds=60))
            make_credentials(auth_dir)
            emit(p.Paired(phone="39000000001", jid="39000000001:7@s.whatsapp.net"))
            continue
        if isinstance(command, p.Connect) and scenario == "outdated":
            emit(p.Qr(code="2@old", seconds=60))
            emit(
                p.Error(
                    message="WhatsApp says this client is outdated: upgrade neonize",
                    code="client_outdated",
                    retryable=False,
                    fatal=True,
                )
            )
            return 4
        if isinstance(command, p.Connect) and scenario == "multidevice":
            emit(p.Qr(code="2@scan-me", seconds=60))
            emit(
                p.Error(
                    message="the phone that scanned the code cannot link devices",
                    code="scanned_without_multidevice",
                )
            )
            continue
        if isinstance(command, p.Connect) and scenario == "qr_run":
            if (auth_dir / "fake_no_qr").exists():
                emit(
                    p.Error(
                        message="no route to web.whatsapp.com", code="connect_failed", fatal=True
                    )
                )
                return 3
            emit(p.Qr(code=f"2@run{run}", seconds=60))
            continue
        if isinstance(command, p.Connect) and scenario == "qr_rotating":
            emit(p.Qr(code="2@code-1", seconds=60))
            threading.Thread(target=rotate_and_link, daemon=True).start()
            continue
        if isinstance(command, p.Connect) and scenario == "qr_forever":
            emit(p.Qr(code="2@nobody-scans", seconds=60))
            continue
        if isinstance(command, p.Logout):
            emit(p.LoggedOut(reason="logged out by polpo", ref=command.ref))
            return 0
        if isinstance(command, p.Connect):
            if scenario == "flaky" and run <= 2:
                emit(
                    p.Error(
                        message="no route to web.whatsapp.com", code="connect_failed", fatal=True
                    )
                )
                return 3
            if scenario == "fatal":
                emit(
                    p.Error(
                        message="temporarily banned",
                        code="temp_banned",
                        retryable=False,
                        fatal=True,
                    )
                )
                return 4
            if scenario == "garbage":
                sys.stdout.write('not json at all\n{"type":"bogus"}\n')
                sys.stdout.flush()
            emit(p.Connected(phone="39000000001", jid="39000000001:7@s.whatsapp.net", lid="900001"))
            if scenario == "logged_out":
                emit(p.LoggedOut(reason="unlinked on WhatsApp (LOGGED_OUT)"))
                return 0
            if scenario == "replaced":
                emit(p.Replaced())
                return 0
            if scenario == "messages" and messages:
                emit(p.MessageReceived(message=messages.pop(0)))
            if scenario == "keepalive":
                emit(p.Degraded(reason="WhatsApp missed 1 keepalive ping(s) since 12:00:00"))
            if scenario == "phone" and run == 1:
                for m in json.loads((auth_dir / "fake_messages.json").read_text()):
                    emit(p.MessageReceived(message=m))
        elif isinstance(command, p.Download):
            data = b"fake file for " + command.message_id.encode()
            Path(command.path).parent.mkdir(parents=True, exist_ok=True)
            Path(command.path).write_bytes(data)
            emit(p.Downloaded(ref=command.ref, path=command.path, size=len(data)))
        elif isinstance(command, p.Ack):
            if messages:
                emit(p.MessageReceived(message=messages.pop(0)))
        elif isinstance(command, p.SendText) and scenario == "phone":
            sent += 1
            message_id = command.message_id or f"M{run}-{sent}"
            phone = auth_dir / "fake_phone.jsonl"
            seen = (
                {json.loads(line)["id"] for line in phone.read_text().splitlines()}
                if phone.exists()
                else set()
            )
            with phone.open("a") as f:
                entry = {"id": message_id, "chat": command.chat, "text": command.text}
                f.write(json.dumps(entry | {"dropped": message_id in seen, "run": run}) + "\n")
            delay = auth_dir / "fake_send_delay"
            if delay.exists():
                time.sleep(float(delay.read_text()))
            emit(p.Sent(ref=command.ref, message_id=message_id, timestamp=time.time()))
        elif isinstance(command, p.SendText):
            if scenario == "crash":
                os._exit(1)
            sent += 1
            emit(p.Sent(ref=command.ref, message_id=f"M{run}-{sent}", timestamp=time.time()))
            if scenario == "keepalive":
                emit(p.Restored())
        elif isinstance(command, p.Stop):
            if scenario == "hang_on_stop":
                while True:
                    time.sleep(3600)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
