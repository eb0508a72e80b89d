"""How long the ``polpo`` command takes to start: ``polpo --help`` and ``polpo task list``.

Each is run N times in a fresh subprocess (as a user's shell would), in a
temporary project holding ~200 tasks. Prints min / median / p90 wall time.
Target: ``polpo --help`` under 300 ms.

    python bench/cli_startup.py [N]
"""

from __future__ import annotations

import asyncio
import os
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


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        seed(project)
        measure(["--help"], project, 2)  # warm the file cache and .pyc files
        help_median = report("polpo --help", measure(["--help"], project, n))
        report(f"polpo task list ({TASKS})", measure(["task", "list"], project, n))
    verdict = "OK" if help_median < TARGET_HELP_MS else "OVER TARGET"
    print(f"target: polpo --help median < {TARGET_HELP_MS} ms: {verdict}")
    return 0 if help_median < TARGET_HELP_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
