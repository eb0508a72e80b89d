"""The original feature page's examples work as written.

People copy them from the page (shared/seed/whatsapp-channel-gateway.txt);
they are reproduced here verbatim, whitespace and all. The setup snippet is a
whole ``polpo.json``; the "Example Configurations" are the WhatsApp channel
object the page is about, pasted under ``channels.whatsapp``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, run_polpo

SETUP = """\
{
  "settings": {
    "notifications": {
      "channels": {
        "whatsapp": {
          "type": "whatsapp",
          "gateway": {
            "enableInbound": true,
            "dmPolicy": "allowlist",
            "allowFrom": ["39123456789"]
          }
        }
      }
    }
  }
}
"""

PERSONAL_USE_OPEN = """\
{
  "gateway": {
    "enableInbound": true,
    "dmPolicy": "open"
  }
}
"""

ALLOWLIST = """\
{
  "gateway": {
    "enableInbound": true,
    "dmPolicy": "allowlist",
    "allowFrom": ["39123456789", "44987654321"]
  }
}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "my-app"
    (root / ".polpo").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root


def _as_channel(example: str) -> str:
    """The setup snippet with its WhatsApp channel object replaced by ``example``."""
    indented = "\n".join("        " + line for line in example.strip().splitlines()).lstrip()
    head, tail = SETUP.split('"whatsapp": {', 1)
    return head + '"whatsapp": ' + indented + "\n" + tail.split("\n        }\n", 1)[1]


def test_the_setup_snippet_is_a_whole_config(cli: Cli, folder: Path) -> None:
    (folder / ".polpo" / "polpo.json").write_text(SETUP)
    r = cli("config", "check", "--json")
    assert r.code == 0, r.err
    data = r.json()
    assert data["project"] == "my-app"  # the folder's name, as polpo init would say
    [channel] = data["channels"]
    assert channel["type"] == "whatsapp"
    assert channel["gateway"]["enableInbound"] is True
    assert channel["admins"] == ["whatsapp:39123456789"]
    assert cli("status").code == 0


@pytest.mark.parametrize(
    ("example", "policy", "allowed"),
    [
        (PERSONAL_USE_OPEN, "open", []),
        (ALLOWLIST, "allowlist", ["39123456789", "44987654321"]),
    ],
    ids=["personal-use-open", "allowlist"],
)
def test_each_example_configuration_works_as_the_whatsapp_channel(
    cli: Cli, folder: Path, example: str, policy: str, allowed: list[str]
) -> None:
    text = _as_channel(example)
    assert example.strip().splitlines()[1] in text  # pasted as it is on the page
    (folder / ".polpo" / "polpo.json").write_text(text)
    r = cli("config", "check", "--json")
    assert r.code == 0, r.err
    [channel] = r.json()["channels"]
    assert channel["type"] == "whatsapp"
    assert (channel["gateway"]["dmPolicy"], channel["gateway"]["allowFrom"]) == (policy, allowed)


def test_the_gateway_answers_with_the_setup_snippet(folder: Path) -> None:
    """Past validation: the real gateway takes the allowlisted number's message."""
    (folder / ".polpo" / "polpo.json").write_text(SETUP)
    r = run_polpo(folder, "simulate", "whatsapp", "--from", "+39 123 456 789", "/status", "--json")
    assert r.code == 0, r.err
    replies = json.loads(r.out)["replies"]
    assert replies and "my-app" in replies[0]["text"]


def test_a_channel_under_another_name_still_needs_its_type(cli: Cli, folder: Path) -> None:
    config = {"settings": {"notifications": {"channels": {"phone": {"gateway": {}}}}}}
    (folder / ".polpo" / "polpo.json").write_text(json.dumps(config))
    r = cli("config", "check")
    assert r.code == 2
    assert "settings.notifications.channels.phone.type: required" in r.err
