"""``polpo mission add --task A --task B``: an ordered plan, as the README says. B waits
for A (so ``mission start`` does not ask approval for both at once); ``--parallel`` and
``--after STEP=STEPS`` say otherwise."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLPO_MODEL", raising=False)


def _waits(cli: Cli, mission: str) -> list[list[int]]:
    tasks = cli("mission", "show", mission, "--json").json()["tasks"]
    position = {t["id"]: i + 1 for i, t in enumerate(tasks)}
    return [[position[d] for d in t["dependsOn"]] for t in tasks]


def test_steps_run_in_order_so_approvals_come_one_at_a_time(cli: Cli) -> None:
    # writer's tasks need approval to start (the "plan" gate of the test config)
    r = cli("mission", "add", "Docs", "-t", "Outline", "-t", "Write", "-a", "writer", "--json")
    assert r.code == 0, r.err
    mission = r.json()["shortId"]
    assert _waits(cli, mission) == [[], [1]]
    cli("mission", "start", mission)
    assert cli("run").code == 0
    pending = cli("approvals", "list", "--json").json()
    assert [a["taskTitle"] for a in pending] == ["Outline"]  # not both at once

    cli("approvals", "approve", pending[0]["shortId"])
    assert cli("run").code == 0
    assert [a["taskTitle"] for a in cli("approvals", "list", "--json").json()] == ["Write"]


def test_parallel_steps_wait_for_nothing(cli: Cli) -> None:
    r = cli("mission", "add", "Fan", "-t", "A", "-t", "B", "-t", "C", "--parallel", "--json")
    assert r.code == 0, r.err
    assert _waits(cli, r.json()["shortId"]) == [[], [], []]


def test_after_says_which_steps_a_step_waits_for(cli: Cli) -> None:
    r = cli(
        "mission", "add", "Release",
        "-t", "Build", "-t", "Test linux", "-t", "Test mac", "-t", "Release", "-t", "Tweet",
        "--after", "3=1", "--after", "4=2,3", "--after", "5=",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "  3. " in r.out and "Test mac  (after 1)" in r.out
    assert "Release  (after 2, 3)" in r.out
    mission = cli("mission", "list", "--json").json()[0]["shortId"]
    assert _waits(cli, mission) == [[], [1], [1], [2, 3], []]
    shown = cli("mission", "show", mission).out
    assert "AFTER" in shown and "2, 3" in shown


@pytest.mark.parametrize(
    ("after", "words"),
    [
        ("3", "is not STEP=STEPS"),
        ("3=1", "there is no step 3 (the plan has 2)"),
        ("2=2", "can only run after earlier steps"),
    ],
)
def test_after_mistakes_are_usage_errors(cli: Cli, after: str, words: str) -> None:
    r = cli("mission", "add", "Bad", "-t", "A", "-t", "B", "--after", after)
    assert r.code == 2
    assert r.err.startswith("Error: --after ") and words in r.err
    assert cli("mission", "list", "--json").json() == []
