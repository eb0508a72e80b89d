"""The README stays true: every config field is in its reference, every command in its CLI table."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_config_field_is_documented() -> None:
    reference = runpy.run_path(str(ROOT / "tools" / "config_reference.py"))
    missing = [p for p, _, _ in reference["rows"]() if p != "$schema" and f"`{p}`" not in README]
    assert missing == [], missing


def test_quickstart_is_exactly_two_commands() -> None:
    quick = README.split("## Quickstart", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["make serve", "make test"]


def test_every_cli_command_is_documented() -> None:
    from typer.main import get_command

    from polpo.cli.main import app

    root = get_command(app)
    names = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        names += [f"polpo {name} {s}" for s in subs] if subs else [f"polpo {name}"]
    missing = [n for n in names if n not in README]
    assert missing == [], missing


def test_chat_commands_table_is_the_registry() -> None:
    from polpo.gateway.commands import COMMANDS, commands_markdown_table

    section = README.split("<!-- chat-commands:start -->", 1)[1].split(
        "<!-- chat-commands:end -->"
    )[0]
    assert section.strip() == commands_markdown_table()
    assert all(f"`{c.usage}`" in section for c in COMMANDS.values())


def test_cli_reference_names_every_option_of_each_command() -> None:
    """README's CLI table and ``--help`` agree: each command's options are in its row
    (``--json`` aside: the table says once that listings take it)."""
    from typer.main import get_command

    from polpo.cli.main import app

    rows = {}
    for line in README.split("## CLI reference", 1)[1].split("\n## ", 1)[0].splitlines():
        if line.startswith("| `polpo "):
            synopsis = line.split("`")[1]
            rows[synopsis] = synopsis
    root = get_command(app)
    missing = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None) or {"": cmd}
        for sub_name, sub in subs.items():
            path = f"polpo {name} {sub_name}".strip()
            row = " ".join(s for s in rows if s == path or s.startswith(path + " "))
            assert row, f"no README row for {path}"
            for param in sub.params:
                longs = [o for o in getattr(param, "opts", []) if o.startswith("--")]
                if param.param_type_name != "option" or longs in (["--help"], ["--json"]):
                    continue
                if not any(
                    re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", row) for o in param.opts
                ):
                    missing.append(f"{path} {longs[0]}")
    assert missing == [], missing


def test_the_suite_time_is_stated_honestly() -> None:
    """On two cores the suite takes minutes; the README shows what the end looks like."""
    dev = README.split("## Development", 1)[1]
    assert "about a minute" not in dev
    assert "2–5 minutes on two cores" in dev
    assert re.search(r"\n\d+ passed in \d+\.\d+s \(\d+:\d\d:\d\d\)\n```", dev)
