"""How long the ``polpo`` command takes to start: ``polpo --help`` and ``polpo task list``.

Each is run N times in a fresh subprocess (as a user's shell would), in a
temporary project holding ~200 tasks. Prints min / median / p90 wall time.
Targets: ``polpo --help`` under 300 ms; a command that reads the store
(``polpo task list --json`` with 200 tasks) at most 250 ms median (issue 10).
Also prints where ``task list --json`` spends its import time.

    python bench/cli_startup.py [N]
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASKS = 200
TARGET_HELP_MS = 300


def polpo_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "polpo"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "polpo.cli.main"]


def seed(project: Path) -> None:
    from polpo.app import Polpo
    from polpo.config import load_config, starter_config

    (project / ".polpo").mkdir()
    (project / ".polpo" / "polpo.json").write_text(starter_config("bench"))

    async def go() -> None:
        app = await Polpo.open(load_config(cwd=project))
        try:
            for i in range(TASKS):
                await app.tasks.add(f"benchmark task number {i}", description="x" * 200)
        finally:
            await app.close()

    asyncio.run(go())


def measure(args: list[str], cwd: Path, n: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLPO_")}
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(
            [*polpo_cmd(), *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL
        )
        times.append((time.perf_counter() - start) * 1000)
    return times


def report(name: str, ms: list[float]) -> float:
    ms = sorted(ms)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    median = statistics.median(ms)
    print(
        f"{name:<22} n={len(ms):<3} min {ms[0]:6.0f} ms  median {median:6.0f} ms  p90 {p90:6.0f} ms"
    )
    return median


def _script() -> list[str]:
    """``polpo`` as a script for this interpreter (so ``-X importtime`` applies to it)."""
    cmd = polpo_cmd()
    return cmd if len(cmd) == 1 else cmd[1:]


def imports(project: Path) -> None:
    """Where ``polpo task list --json`` spends its import time (``python -X importtime``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLPO_")}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", *_script(), "task", "list", "--json"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    cumulative: dict[str, int] = {}
    for line in out.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m[2]) == 1:  # imported at the top (not by another module)
            top = m[3].split(".")[0]
            cumulative[top] = cumulative.get(top, 0) + int(m[1])
    heavy: dict[str, int] = {}  # a package's own line, wherever it was first imported
    for line in out.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and m[3] in ("sqlalchemy", "pydantic", "rich", "typer") and m[3] not in heavy:
            heavy[m[3]] = int(m[1])
    total = sum(cumulative.values())
    shown = ", ".join(
        f"{name} {us / 1000:.0f} ms"
        for name, us in sorted(cumulative.items(), key=lambda kv: -kv[1])[:6]
    )
    print(f"  imports: {total / 1000:.0f} ms in all; {shown}")
    print("  of which: " + ", ".join(f"{k} {v / 1000:.0f} ms" for k, v in heavy.items()))


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        seed(project)
        measure(["--help"], project, 2)  # warm the file cache and .pyc files
        help_median = report("polpo --help", measure(["--help"], project, n))
        report(f"polpo task list ({TASKS})", measure(["task", "list"], project, n))
        report("  … --json", measure(["task", "list", "--json"], project, n))
        imports(project)
    verdict = "OK" if help_median < TARGET_HELP_MS else "OVER TARGET"
    print(f"target: polpo --help median < {TARGET_HELP_MS} ms: {verdict}")
    return 0 if help_median < TARGET_HELP_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
