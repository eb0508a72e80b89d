"""``pip install`` stays quiet: pyproject.toml uses the current metadata forms."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads(
    (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
)


def test_license_is_an_spdx_string() -> None:
    """A ``{text = …}`` table makes setuptools print a deprecation box on every install."""
    assert PYPROJECT["project"]["license"] == "MIT"
    [setuptools] = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    floor = re.search(r">=(\d+)", setuptools)
    assert floor is not None and int(floor.group(1)) >= 77  # the first to read SPDX strings
