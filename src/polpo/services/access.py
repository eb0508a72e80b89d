"""The config's access facts, read once, for :func:`polpo.core.access.decide_access`.

Both the gateway (admitting a message) and :class:`~polpo.services.peers.PeerService`
build their decisions from an :class:`AccessRules`, so the same config gives
the same answer and the same reason everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from polpo.config import PolpoConfig
from polpo.config import _ChannelBase as ChannelSettings
from polpo.core.access import Access, ChannelRules, decide_access


class AccessRules:
    """Each channel type's rules and every admin, normalised once (the config does not
    change while a project is open). ``channels`` adds or overrides channels by type
    (the gateway's own, e.g. ``polpo chat``'s console)."""

    def __init__(
        self, config: PolpoConfig, channels: Mapping[str, ChannelSettings] | None = None
    ) -> None:
        self._config = config
        self._extra: dict[str, ChannelSettings] = dict(channels or {})
        self._rules: dict[str, ChannelRules | None] = {}
        self._admins: frozenset[str] | None = None

    def set_channel(self, type_: str, settings: ChannelSettings) -> None:
        self._extra[type_] = settings
        self._rules.pop(type_, None)
        self._admins = None

    def settings_of(self, type_: str) -> ChannelSettings | None:
        if type_ in self._extra:
            return self._extra[type_]
        found = self._config.channel_of_type(type_)
        return found[1] if found is not None else None

    def rules_of(self, type_: str) -> ChannelRules | None:
        if type_ not in self._rules:
            settings = self.settings_of(type_)
            if settings is None:
                self._rules[type_] = None
            else:
                allow_all, allow_from = settings.allowed_peers()
                self._rules[type_] = ChannelRules(settings.gateway.dm_policy, allow_all, allow_from)
        return self._rules[type_]

    @property
    def admins(self) -> frozenset[str]:
        """Every channel's admins: an admin named anywhere is an admin everywhere."""
        if self._admins is None:
            out: set[str] = set()
            for ch in self._config.settings.notifications.channels.values():
                out.update(ch.admin_peers())
            for settings in self._extra.values():
                out.update(settings.admin_peers())
            self._admins = frozenset(out)
        return self._admins

    def decide(
        self, peer_id: str, group: Iterable[str], allowlisted: frozenset[str] = frozenset()
    ) -> Access:
        return decide_access(
            peer_id, group, rules_of=self.rules_of, admins=self.admins, allowlisted=allowlisted
        )
