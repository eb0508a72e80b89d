"""/status's recent peers in memory: the order and count the database would give."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from polpo.core.recent_peers import RecentPeers


def test_newest_first_ties_by_id_and_the_window_forgets_older_ones() -> None:
    recent = RecentPeers()
    recent.load([("wa:b", 10.0), ("wa:a", 10.0), ("wa:c", 5.0)])
    assert recent.since(0.0, 5) == (3, ["wa:a", "wa:b", "wa:c"])
    recent.seen("wa:c", 12.0)
    recent.seen("wa:d", 11.0)
    recent.seen("wa:a", 3.0)  # an earlier sighting changes nothing
    assert recent.since(0.0, 2) == (4, ["wa:c", "wa:d"])
    assert recent.since(10.5, 5) == (2, ["wa:c", "wa:d"])
    recent.seen("wa:a", 13.0)
    assert recent.since(10.5, 5) == (3, ["wa:a", "wa:c", "wa:d"])


@given(
    st.lists(st.tuples(st.sampled_from("abcdefg"), st.integers(0, 20).map(float)), max_size=40),
    st.integers(0, 20).map(float),
    st.integers(1, 6),
)
def test_it_answers_as_the_query_on_the_table_would(
    sightings: list[tuple[str, float]], since: float, newest: int
) -> None:
    recent = RecentPeers()
    recent.load([])
    table: dict[str, float] = {}
    for peer, when in sightings:
        recent.seen(peer, when)
        table[peer] = max(when, table.get(peer, when))  # the gateway never moves back
    rows = sorted((-w, p) for p, w in table.items() if w >= since)
    assert recent.since(since, newest) == (len(rows), [p for _, p in rows[:newest]])
