"""Which address ``polpo serve`` may listen on, and with which key."""

from __future__ import annotations

import pytest

from polpo.config import validate_config
from polpo.serve import ServeError, is_loopback, resolve_options


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_defaults_come_from_config() -> None:
    cfg = validate_config({"project": "x", "settings": {"server": {"port": 4000}}})
    opts = resolve_options(cfg, environ={})
    assert (opts.host, opts.port, opts.api_key) == ("127.0.0.1", 4000, None)
    assert resolve_options(cfg, port=0, environ={}).port == 0


def test_public_host_needs_a_key() -> None:
    cfg = validate_config({"project": "x", "settings": {"server": {"apiKeyEnv": "MY_KEY"}}})
    with pytest.raises(ServeError) as info:
        resolve_options(cfg, host="0.0.0.0", environ={"POLPO_API_KEY": "ignored"})
    assert "set MY_KEY" in info.value.message and info.value.exit_code == 2
    assert resolve_options(cfg, host="0.0.0.0", environ={"MY_KEY": "k"}).api_key == "k"
    assert resolve_options(cfg, host="0.0.0.0", api_key="flag", environ={}).api_key == "flag"
    # a key on loopback is honoured too
    assert resolve_options(cfg, environ={"MY_KEY": "k"}).api_key == "k"


def test_config_host_is_checked_as_well() -> None:
    cfg = validate_config({"project": "x", "settings": {"server": {"host": "0.0.0.0"}}})
    with pytest.raises(ServeError, match=r"refusing to listen on 0\.0\.0\.0"):
        resolve_options(cfg, environ={})
