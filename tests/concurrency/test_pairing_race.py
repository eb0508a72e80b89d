"""Two processes approve the same pairing codes at the same moment, 30 times: one wins each."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from polpo.app import Polpo
from polpo.store.tables import allowlist, events, outbox
from tests.concurrency.workers import approve_codes, run_processes
from tests.services.peers_helpers import loaded_for, pairing_request

ROUNDS = 30


async def test_two_approvers_of_one_code_one_wins_the_other_is_told(tmp_path: Path) -> None:
    loaded = loaded_for(tmp_path / "proj")
    app = await Polpo.open(loaded)
    try:
        codes = [f"CODE{i:04d}" for i in range(ROUNDS)]
        for i, code in enumerate(codes):
            await pairing_request(app, code, f"telegram:{1000 + i}", f"User {i}")
        config = str(loaded.path)

        outcomes = run_processes(approve_codes, [(config, "cli", codes), (config, "api", codes)])

        assert not [o for o in outcomes if o[0] == "crashed"], outcomes
        async with app.store.read() as conn:
            paired = [
                r.payload["code"]
                for r in (
                    await conn.execute(sa.select(events).where(events.c.type == "peer:paired"))
                ).all()
            ]
            granted = [r.ref for r in (await conn.execute(sa.select(outbox))).all()]
            allowed = {r.peer_id for r in (await conn.execute(sa.select(allowlist))).all()}
        for i, code in enumerate(codes):
            got = {by: (result, message) for c, by, result, message in outcomes if c == code}
            winners = [by for by, (result, _) in got.items() if result == "won"]
            assert len(winners) == 1, (code, got)
            [winner] = winners
            loser = "api" if winner == "cli" else "cli"
            assert got[loser][0] == "lost"
            assert got[loser][1].startswith(f"Code {code} was already used:")
            assert got[loser][1].endswith(f"was added by {winner}.")
            assert paired.count(code) == 1
            assert granted.count(f"pairing:{code}") == 1
            assert f"telegram:{1000 + i}" in allowed
    finally:
        await app.close()
