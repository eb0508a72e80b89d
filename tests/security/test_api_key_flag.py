"""``--api-key`` on the command line is visible to every local user in ``ps``: serve says so."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.security.conftest import ENV_KEY, Serve, serving

WARNING = (
    "Warning: --api-key is visible to every user of this machine (ps, /proc); "
    "set POLPO_API_KEY in the environment instead."
)


def test_api_key_on_the_command_line_warns(tmp_path: Path, serve: Serve) -> None:
    # the shared serve has its key from POLPO_API_KEY: no warning there, and the key works
    assert not any("--api-key" in line for line in serve.lines)
    r = httpx.get(serve.url + "/api/v1/status", headers={"Authorization": f"Bearer {ENV_KEY}"})
    assert r.status_code == 200
    with serving(tmp_path / "p", "--api-key", "k3y") as s:
        assert WARNING + "\n" in s.lines
        ok = httpx.get(s.url + "/api/v1/status", headers={"Authorization": "Bearer k3y"})
        assert ok.status_code == 200  # and the key works, beside the CLI's token
        assert s.stop() == 0
