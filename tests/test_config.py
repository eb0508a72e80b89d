"""Config loading: every bad input stops with a message naming its JSON path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polpo.config import (
    load_config,
    parse_config,
    resolve_storage_url,
    starter_config,
    validate_config,
)
from polpo.errors import ConfigError

WA = "settings.notifications.channels.whatsapp"


def _wa(gateway: dict[str, Any]) -> dict[str, Any]:
    return {
        "project": "x",
        "settings": {
            "notifications": {"channels": {"whatsapp": {"type": "whatsapp", "gateway": gateway}}}
        },
    }


BAD: list[tuple[str, dict[str, Any] | list[Any], str, str]] = [
    # (kind, config, path, words the message must contain)
    ("unknown top-level key", {"project": "x", "agentz": []}, "agentz", 'did you mean "agents"'),
    ("missing project", {}, "project", "required"),
    ("wrong type", {"project": 3}, "project", "must be a string"),
    ("empty project", {"project": "  "}, "project", "must not be empty"),
    (
        "string for integer",
        {"project": "x", "agents": [{"name": "a", "maxConcurrency": "2"}]},
        "agents[0].maxConcurrency",
        "must be an integer",
    ),
    (
        "below minimum",
        {"project": "x", "agents": [{"name": "a", "maxConcurrency": 0}]},
        "agents[0].maxConcurrency",
        "≥ 1",
    ),
    (
        "unknown tool",
        {"project": "x", "agents": [{"name": "a", "tools": ["rm_rf"]}]},
        "agents[0].tools[0]",
        "must be one of list_files, read_file",
    ),
    (
        "duplicate agent",
        {"project": "x", "agents": [{"name": "a"}, {"name": "a"}]},
        "agents[1].name",
        "duplicate agent name",
    ),
    (
        "bad model string",
        {"project": "x", "agents": [{"name": "a", "model": "gpt4"}]},
        "agents[0].model",
        "provider:model",
    ),
    (
        "bad dmPolicy",
        _wa({"dmPolicy": "allow"}),
        f"{WA}.gateway.dmPolicy",
        'must be one of open, allowlist, pairing, disabled; got "allow"',
    ),
    (
        "string for boolean",
        _wa({"enableInbound": "yes"}),
        f"{WA}.gateway.enableInbound",
        "true or false",
    ),
    (
        "misspelt gateway key",
        _wa({"allowFrm": []}),
        f"{WA}.gateway.allowFrm",
        'did you mean "allowFrom"',
    ),
    (
        "allowFrom not a list",
        _wa({"allowFrom": "39123456789"}),
        f"{WA}.gateway.allowFrom",
        "must be an array",
    ),
    (
        "allowFrom entry not a phone",
        _wa({"allowFrom": ["39123456789", "bob"]}),
        f"{WA}.gateway.allowFrom[1]",
        "not a phone number",
    ),
    (
        "negative idle minutes",
        _wa({"sessionIdleMinutes": -5}),
        f"{WA}.gateway.sessionIdleMinutes",
        "must be >",
    ),
    (
        "unknown channel type",
        {"project": "x", "settings": {"notifications": {"channels": {"sig": {"type": "signal"}}}}},
        "settings.notifications.channels.sig.type",
        "must be one of whatsapp, telegram",
    ),
    (
        "channel without type",
        {"project": "x", "settings": {"notifications": {"channels": {"sig": {}}}}},
        "settings.notifications.channels.sig.type",
        "required",
    ),
    (
        "bad gate hook",
        {"project": "x", "settings": {"approvalGates": [{"name": "r", "hook": "task:end"}]}},
        "settings.approvalGates[0].hook",
        "task:start, task:complete",
    ),
    (
        "gate names an unknown agent",
        {
            "project": "x",
            "agents": [{"name": "coder"}],
            "settings": {"approvalGates": [{"name": "r", "hook": "task:start", "agents": ["bob"]}]},
        },
        "settings.approvalGates[0].agents[0]",
        'unknown agent "bob"; defined: coder',
    ),
    (
        "unsupported storage url",
        {"project": "x", "settings": {"storage": {"url": "mysql://db"}}},
        "settings.storage.url",
        "sqlite:/// or postgresql://",
    ),
    (
        "port out of range",
        {"project": "x", "settings": {"server": {"port": 70000}}},
        "settings.server.port",
        "≤ 65535",
    ),
    (
        "rule for an unknown event",
        {
            "project": "x",
            "settings": {"notifications": {"rules": [{"events": ["task:boom"], "channels": []}]}},
        },
        "settings.notifications.rules[0].events[0]",
        "matches no event",
    ),
    (
        "rule for an unknown channel",
        {
            "project": "x",
            "settings": {"notifications": {"rules": [{"events": ["task:*"], "channels": ["sms"]}]}},
        },
        "settings.notifications.rules[0].channels[0]",
        'unknown channel "sms"',
    ),
    (
        "provider without a baseUrl",
        {"project": "x", "settings": {"orchestratorModel": "mybox:llama"}},
        "settings.orchestratorModel",
        "add settings.providers.mybox",
    ),
    (
        "env var name with a dash",
        {"project": "x", "settings": {"providers": {"p": {"apiKeyEnv": "MY-KEY"}}}},
        "settings.providers.p.apiKeyEnv",
        "environment variable name",
    ),
    (
        "transcription model without a provider",
        {"project": "x", "settings": {"chat": {"transcriptionModel": "whisper-1"}}},
        "settings.chat.transcriptionModel",
        'must look like "provider:model"',
    ),
    (
        "transcription on an unknown provider",
        {"project": "x", "settings": {"chat": {"transcriptionModel": "box:whisper"}}},
        "settings.chat.transcriptionModel",
        "add settings.providers.box",
    ),
    (
        "image models with a provider prefix",
        {"project": "x", "settings": {"providers": {"p": {"imageModels": ["p:vision"]}}}},
        "settings.providers.p.imageModels",
        "model name of this provider",
    ),
    (
        "audio cap of zero",
        {"project": "x", "settings": {"media": {"maxAudioSeconds": 0}}},
        "settings.media.maxAudioSeconds",
        "≥ 1",
    ),
    (
        "documents switched on with a string",
        {"project": "x", "settings": {"media": {"saveDocuments": "yes"}}},
        "settings.media.saveDocuments",
        "must be true or false",
    ),
    ("not an object", [1, 2], "(root)", "must be a JSON object"),
]


@pytest.mark.parametrize(("kind", "data", "path", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_its_path(kind: str, data: Any, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(data, source="polpo.json")
    paths = [p for p, _ in info.value.issues]
    assert path in paths, info.value.issues
    message = dict(info.value.issues)[path]
    assert words in message
    # the full text carries the path too, so a user sees where to look
    assert f"{path}: " in str(info.value)
    assert info.value.exit_code == 2


def test_several_problems_are_all_reported() -> None:
    data = {"project": 1, "agents": [{"name": "a", "maxConcurrency": 0, "tools": ["nope"]}]}
    with pytest.raises(ConfigError) as info:
        validate_config(data)
    paths = {p for p, _ in info.value.issues}
    assert {"project", "agents[0].maxConcurrency", "agents[0].tools[0]"} <= paths
    assert "3 config problems" in str(info.value)


def test_invalid_json_says_where() -> None:
    with pytest.raises(ConfigError, match=r"invalid JSON at line 2, column 1"):
        parse_config('{"project": "x",\n}', source="p.json")


def test_comments_are_allowed_but_not_inside_strings() -> None:
    cfg = parse_config(
        '// top\n{"project": "a // not a comment", /* block\n */ "agents": []}  // end'
    )
    assert cfg.project == "a // not a comment"


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path)
    assert "polpo init" in str(info.value)
    assert str(tmp_path / ".polpo" / "polpo.json") in str(info.value)


def test_config_path_from_env_and_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text('{"project": "from-env"}')
    b.write_text('{"project": "from-flag"}')
    monkeypatch.setenv("POLPO_CONFIG", str(a))
    assert load_config(cwd=tmp_path).config.project == "from-env"
    assert load_config(str(b), cwd=tmp_path).config.project == "from-flag"


def test_gateway_defaults_are_the_seeds() -> None:
    cfg = validate_config({"project": "x", **_wa({})})
    gw = cfg.settings.notifications.channels["whatsapp"].gateway
    assert gw.enable_inbound is False
    assert gw.dm_policy == "allowlist"
    assert gw.allow_from == []
    assert gw.session_idle_minutes == 60
    assert gw.group_policy == "disabled"
    assert gw.self_chat is True
    assert gw.offline_max_age_minutes == 60
    assert gw.send_read_receipts is True
    assert gw.rate_limit_per_minute == 20


def test_admins_default_to_concrete_allow_from_entries() -> None:
    cfg = validate_config(_wa({"allowFrom": ["*", "+39 123 456 789", "telegram:42"]}))
    ch = cfg.settings.notifications.channels["whatsapp"]
    assert ch.admin_peers() == ["whatsapp:39123456789"]
    everyone, peers = ch.allowed_peers()
    assert everyone
    assert peers == {"whatsapp:39123456789", "telegram:42"}


def test_starter_config_is_valid_with_inbound_off(tmp_path: Path) -> None:
    cfg = parse_config(starter_config('my "quoted" app'))
    assert cfg.project == 'my "quoted" app'
    wa = cfg.settings.notifications.channels["whatsapp"]
    assert wa.type == "whatsapp"
    assert wa.gateway.enable_inbound is False
    assert wa.gateway.dm_policy == "allowlist"


def test_relative_sqlite_url_is_resolved_against_the_project(tmp_path: Path) -> None:
    url = resolve_storage_url("sqlite:///.polpo/polpo.db", tmp_path)
    assert url == f"sqlite:///{tmp_path.resolve()}/.polpo/polpo.db"
    assert resolve_storage_url("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    assert resolve_storage_url("postgresql://h/db", tmp_path) == "postgresql://h/db"


def test_every_documented_shape_from_the_spec_validates() -> None:
    spec_example = {
        "project": "my-app",
        "agents": [
            {
                "name": "coder",
                "role": "Senior engineer",
                "model": "openai:gpt-4.1-mini",
                "systemPrompt": "...",
                "tools": ["read_file", "list_files", "write_file"],
                "maxConcurrency": 1,
            }
        ],
        "settings": {
            "orchestratorModel": "openai:gpt-4.1-mini",
            "providers": {
                "openai": {"baseUrl": "http://127.0.0.1:11434/v1", "apiKeyEnv": "OPENAI_API_KEY"}
            },
            "storage": {"url": "sqlite:///.polpo/polpo.db"},
            "approvalGates": [
                {
                    "name": "review",
                    "hook": "task:complete",
                    "agents": ["coder"],
                    "timeoutMinutes": 1440,
                    "onTimeout": "reject",
                    "maxRevisions": 3,
                }
            ],
            "notifications": {
                "channels": {
                    "whatsapp": {
                        "type": "whatsapp",
                        "gateway": {
                            "enableInbound": True,
                            "dmPolicy": "allowlist",
                            "allowFrom": ["39123456789"],
                            "sessionIdleMinutes": 60,
                        },
                    },
                    "telegram": {
                        "type": "telegram",
                        "botTokenEnv": "TELEGRAM_BOT_TOKEN",
                        "gateway": {"enableInbound": True, "dmPolicy": "pairing"},
                    },
                },
                "rules": [
                    {"events": ["task:failed", "approval:requested"], "channels": ["whatsapp"]}
                ],
            },
        },
    }
    cfg = validate_config(json.loads(json.dumps(spec_example)))
    assert cfg.settings.providers["openai"].base_url == "http://127.0.0.1:11434/v1"
    assert cfg.settings.approval_gates[0].max_revisions == 3
