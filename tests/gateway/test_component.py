"""``polpo serve`` runs the gateway: its component, the registry, outbox alerts from others."""

from __future__ import annotations

from polpo.serve import ServeOptions, build_serve_host
from polpo.store.outbox import enqueue
from polpo.testing import MemoryChannel, RecordingResponder, running_gateway

from .conftest import OWNER, OpenProject, outbox_rows


async def test_serve_host_runs_the_gateway_and_publishes_its_channels(
    open_project: OpenProject,
) -> None:
    app = await open_project()
    host = await build_serve_host(app, ServeOptions(port=0))
    assert "gateway" in [c.name for c in host.components]
    assert host.registry["gateway"] is not None
    assert isinstance(host.registry["channels"], list)


async def test_rows_others_enqueue_are_sent_when_outbox_ready_is_set(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    app = await open_project()
    async with running_gateway(app, whatsapp, responder=responder, poll_seconds=3600):
        async with (
            app.store.write() as conn
        ):  # e.g. the notifications feature, or /pair's "you're in"
            await enqueue(
                conn,
                channel="whatsapp",
                chat_id=f"{OWNER}@s.whatsapp.net",
                text="**Task failed**: build",
                now=app.clock.now(),
                buttons=[{"label": "Retry", "command": "/retry x"}],
            )
        app.outbox_ready.set()
        [sent] = await whatsapp.wait_sent(1)
    assert sent.text == "*Task failed*: build"  # rendered for WhatsApp
    assert [(b.label, b.command) for b in sent.message.buttons] == [("Retry", "/retry x")]
    [row] = await outbox_rows(app)
    assert (row.status, row.channel_message_id) == ("sent", sent.message_id)


async def test_a_channel_going_down_is_recorded_and_announced(
    open_project: OpenProject, whatsapp: MemoryChannel, responder: RecordingResponder
) -> None:
    from polpo.core.models import Event
    from polpo.services.status import read_channel_states

    app = await open_project()
    seen: list[Event] = []

    async def on(e: Event) -> None:
        seen.append(e)

    app.bus.subscribe("channel:*", on)
    async with running_gateway(app, whatsapp, responder=responder):
        await whatsapp.disconnect("logged_out", detail="unlinked from the phone")
        [state] = await read_channel_states(app.ctx)
        assert (state.channel, state.state, state.detail) == (
            "whatsapp",
            "logged_out",
            "unlinked from the phone",
        )
    assert [(e.type, e.payload) for e in seen] == [
        (
            "channel:disconnected",
            {"channel": "whatsapp", "state": "logged_out", "detail": "unlinked from the phone"},
        )
    ]


async def test_sends_to_one_whatsapp_chat_are_paced(
    open_project: OpenProject, responder: RecordingResponder
) -> None:
    app = await open_project()
    whatsapp = MemoryChannel("whatsapp", max_text_length=1000)
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:  # injected: the test never waits
        pauses.append(seconds)

    long = "\n\n".join(f"Paragraph {i} " + "word " * 150 for i in range(3))
    responder.answer = lambda text: long if text == "long" else "short"
    async with running_gateway(app, whatsapp, responder=responder, sleep=sleep) as gw:
        await whatsapp.disconnect()
        await whatsapp.receive(OWNER, "long")
        await whatsapp.receive(OWNER, "hi")
        await gw.gateway.wait_idle(5)
        await whatsapp.reconnect()
        await whatsapp.wait_sent(3)
        await gw.settle()
    assert len(whatsapp.sent) >= 3 and whatsapp.sent[-1].text == "short"
    # one pause between parts and between messages to the same chat
    assert pauses and set(pauses) == {0.3} and len(pauses) == len(whatsapp.sent) - 1
