"""Identity linking (SPEC §2): several peer ids of one person, as one group.

A group is a canonical peer (``peers.linked_to`` NULL) and the peers whose
``linked_to`` names it. Links never chain: when a peer joins a group, its
whole group moves, every member re-pointed at the one canonical peer. The
same rule serves ``/link CODE``, ``polpo peers link`` and the WhatsApp LID
merge (a sender first seen by LID, then with its phone number): whatever
the path, the moved peers are announced with ``peer:linked``, their pending
pairing requests follow them, and their open chat session becomes the
person's if the person has none yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkPlan:
    """What joining ``joining``'s group into ``target``'s does."""

    target: str
    #: the peers re-pointed at ``target`` (the joining group, canonical first)
    moving: tuple[str, ...]

    @property
    def already(self) -> bool:
        """Nothing to do: they are one group already."""
        return not self.moving


def plan_link(target: str, joining_canonical: str, joining_group: Sequence[str]) -> LinkPlan:
    """Join the group of ``joining_canonical`` (its members ``joining_group``) into
    ``target``'s, ``target`` being canonical."""
    if joining_canonical == target:
        return LinkPlan(target, ())
    moving = tuple(dict.fromkeys([joining_canonical, *joining_group]))
    return LinkPlan(target, tuple(p for p in moving if p != target))


def canonical_of(peer_id: str, linked_to: str | None) -> str:
    """The canonical peer of ``peer_id`` given its ``linked_to``."""
    return linked_to or peer_id
