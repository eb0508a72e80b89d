"""``polpo config check``: long lines stay whole, and alerts with nobody to receive them
are pointed out (the starter config has none)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from polpo.config import config_warnings, parse_config
from tests.cli.conftest import Cli
from tests.conftest import BASE_CONFIG, write_project


def _with_rules(rules: list[dict[str, Any]], allow_from: list[str]) -> dict[str, Any]:
    config = json.loads(json.dumps(BASE_CONFIG))
    config["settings"]["notifications"] = {
        "channels": {"whatsapp": {"type": "whatsapp", "gateway": {"allowFrom": allow_from}}},
        "rules": rules,
    }
    return config


@pytest.mark.sqlite_only(reason="the long line is the project's SQLite path")
def test_long_lines_are_not_cut_at_80_columns(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("a-rather-long-folder-name-" * 3) / "and-a-project-inside-it"
    write_project(deep)
    os.chdir(deep)
    monkeypatch.setenv("COLUMNS", "80")
    r = cli("config", "check")
    assert r.code == 0, r.err
    url = f"sqlite:///{deep / '.polpo' / 'polpo.db'}"
    assert len(url) > 80
    assert f"  storage   {url}\n" in r.out


def test_a_rule_whose_channel_has_nobody_to_send_to_is_a_warning(cli: Cli, project: Path) -> None:
    rule = {"events": ["task:failed"], "channels": ["whatsapp"]}
    write_project(project, _with_rules([rule], allow_from=[]))
    r = cli("config", "check")
    assert r.code == 0, r.err
    assert (
        'Warning: settings.notifications.rules[0].channels[0]: "whatsapp" has nobody to send '
        'to: add its admins (gateway.allowFrom or gateway.admins), or "to" peers to the rule\n'
    ) in r.err
    as_json = cli("config", "check", "--json").json()
    assert [w.split(": ")[0] for w in as_json["warnings"]] == [
        "settings.notifications.rules[0].channels[0]"
    ]

    to_telegram_only = {**rule, "to": ["telegram:42"]}
    write_project(project, _with_rules([to_telegram_only], allow_from=[]))
    assert 'none of the rule\'s "to" peers is a whatsapp peer' in cli("config", "check").err

    write_project(project, _with_rules([rule], allow_from=["+39 123 456 789"]))
    r = cli("config", "check", "--json")
    assert r.json()["warnings"] == []
    assert "Warning" not in cli("config", "check").err


def test_the_starter_config_routes_no_alert_to_nobody(cli: Cli, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    os.chdir(fresh)
    assert cli("init").code == 0
    text = (fresh / ".polpo" / "polpo.json").read_text()
    assert config_warnings(parse_config(text)) == []
    assert cli("config", "check", "--json").json()["warnings"] == []
