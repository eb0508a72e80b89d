"""Text with a NUL character is stored on both engines (PostgreSQL's text cannot hold NUL)."""

from __future__ import annotations

from polpo.app import Polpo


async def test_a_nul_character_in_a_title_is_stored_not_a_server_error(app: Polpo) -> None:
    mission = await app.missions.add("Ship\x00it", goal="goal\x00")
    task = await app.tasks.add("Fix\x00", description="desc\x00", mission=mission.id)
    nul = "\ufffd" if app.store.dialect == "postgresql" else "\x00"
    assert (await app.missions.get(mission.id)).name == f"Ship{nul}it"
    got = await app.tasks.get(task.id)
    assert (got.title, got.description) == (f"Fix{nul}", f"desc{nul}")
