"""``polpo telegram status`` and ``delete-webhook`` against the fake Bot API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_bot_api import TOKEN, FakeBotApi, message

from polpo.cli.main import run as main


@pytest.fixture
def threaded_api() -> Iterator[FakeBotApi]:
    """The CLI runs its own event loop, so the server gets a thread of its own."""
    server = FakeBotApi()
    server.start_in_thread()
    yield server
    server.stop_thread()


@pytest.fixture
def project(tmp_path: Path, threaded_api: FakeBotApi) -> Path:
    polpo_dir = tmp_path / ".polpo"
    polpo_dir.mkdir()
    config = {
        "project": "demo",
        "settings": {
            "notifications": {
                "channels": {
                    "tg": {
                        "type": "telegram",
                        "botTokenEnv": "DEMO_BOT_TOKEN",
                        "apiBaseUrl": threaded_api.base_url,
                        "gateway": {"enableInbound": True, "dmPolicy": "pairing"},
                    }
                }
            }
        },
    }
    path = polpo_dir / "polpo.json"
    path.write_text(json.dumps(config))
    return path


def test_status_shows_the_bot_and_how_updates_arrive(
    project: Path,
    threaded_api: FakeBotApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DEMO_BOT_TOKEN", TOKEN)
    threaded_api.push({"message": message("hi")})
    threaded_api.push({"message": message("there", message_id=2)})

    assert main(["telegram", "status", "--config", str(project)]) == 0
    out = capsys.readouterr().out
    assert "DEMO_BOT_TOKEN is set and valid" in out
    assert "@polpo_test_bot" in out
    assert "no webhook" in out
    assert "2 update(s) waiting" in out
    assert 'channel "tg": inbound on, dmPolicy pairing' in out
    assert threaded_api.calls_to("getUpdates") == [], "status never takes updates"


def test_status_as_json(
    project: Path,
    threaded_api: FakeBotApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DEMO_BOT_TOKEN", TOKEN)
    threaded_api.webhook_url = "https://example.com/hook"

    assert main(["telegram", "status", "--config", str(project), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["username"] == "polpo_test_bot"
    assert data["webhookUrl"] == "https://example.com/hook"
    assert data["pendingUpdates"] == 0


def test_a_webhook_is_reported_and_can_be_removed(
    project: Path,
    threaded_api: FakeBotApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DEMO_BOT_TOKEN", TOKEN)
    threaded_api.webhook_url = "https://example.com/hook"
    assert main(["telegram", "status", "--config", str(project)]) == 0
    assert "polpo telegram delete-webhook" in capsys.readouterr().out

    assert main(["telegram", "delete-webhook", "--config", str(project)]) == 0
    assert "https://example.com/hook removed" in capsys.readouterr().out
    assert threaded_api.webhook_url == ""
    assert threaded_api.calls_to("deleteWebhook") == [{"drop_pending_updates": False}]


def test_missing_token_is_one_clear_line(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DEMO_BOT_TOKEN", raising=False)
    assert main(["telegram", "status", "--config", str(project)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: DEMO_BOT_TOKEN is not set")
    assert "@BotFather" in err
    assert "Traceback" not in err


def test_a_rejected_token_is_one_clear_line(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEMO_BOT_TOKEN", "1:wrong")
    assert main(["telegram", "status", "--config", str(project)]) == 1
    err = capsys.readouterr().err
    assert "rejected the bot token in DEMO_BOT_TOKEN" in err
    assert len(err.strip().splitlines()) == 1


def test_an_unreachable_api_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "polpo.json"
    config.write_text(
        json.dumps(
            {
                "project": "demo",
                "settings": {
                    "notifications": {
                        "channels": {
                            "telegram": {
                                "type": "telegram",
                                "apiBaseUrl": f"http://127.0.0.1:{port}",
                            }
                        }
                    }
                },
            }
        )
    )
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    assert main(["telegram", "status", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the Telegram Bot API at http://127.0.0.1:{port}" in err


def test_the_cli_module_does_not_import_the_bot_library() -> None:
    code = (
        "import sys, polpo.cli.telegram, polpo.cli.main; "
        "print(any(m == 'telegram' or m.startswith('telegram.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
