"""``POST /api/v1/missions`` agrees with ``polpo mission add``: steps run in order unless
a step's ``dependsOn`` or the plan's ``parallel`` says otherwise."""

from __future__ import annotations

from typing import Any

import httpx


def _waits(mission: dict[str, Any]) -> list[list[int]]:
    """Each task's dependencies as 0-based positions in the plan."""
    position = {t["id"]: i for i, t in enumerate(mission["tasks"])}
    return [[position[d] for d in t["dependsOn"]] for t in mission["tasks"]]


async def test_titles_run_one_after_another(api: httpx.AsyncClient) -> None:
    r = await api.post("/missions", json={"name": "Release", "tasks": ["Build", "Test", "Ship"]})
    assert r.status_code == 201, r.text
    assert _waits(r.json()) == [[], [0], [1]]


async def test_parallel_and_explicit_dependencies(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/missions", json={"name": "Fan", "tasks": ["A", "B", "C"], "parallel": True}
    )
    assert _waits(r.json()) == [[], [], []]
    steps = [
        "Build",
        {"title": "Test linux"},
        {"title": "Test mac", "dependsOn": [0]},
        {"title": "Release", "dependsOn": [1, 2]},
        {"title": "Tweet", "dependsOn": []},
    ]
    r = await api.post("/missions", json={"name": "Ship", "tasks": steps})
    assert r.status_code == 201, r.text
    assert _waits(r.json()) == [[], [0], [0], [1, 2], []]
