"""run_command's sandbox: what a bubblewrap sandbox adds to one command.

Prints figures; not a test. Runs ``true`` (and ``ls -R`` of a small
project) through ``run_command`` with ``"sandbox": "bwrap"`` and with
``"sandbox": "none"``, and times the mask walk (files of /etc, /var, /opt
and /usr/local other users may not read), which is cached for a minute.

    .venv/bin/python bench/sandbox.py [CALLS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from polpo.runner.sandbox import SandboxPolicy, sandbox_problem, unreadable_masks
from polpo.runner.tools import Workspace, run_command


async def per_call(ws: Workspace, command: str, calls: int) -> list[float]:
    out: list[float] = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await run_command(ws, command)
        out.append(time.perf_counter() - t0)
    return out


async def main(calls: int) -> None:
    problem = sandbox_problem()
    if problem:
        print(f"no sandbox here: {problem}")
        return
    t0 = time.perf_counter()
    masks = unreadable_masks(fresh=True)
    print(
        f"mask walk: {(time.perf_counter() - t0) * 1000:.0f} ms, {len(masks)} masks (cached 60 s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(50):
            (root / f"f{i}.txt").write_text("x\n")
        print(f"{'command':<10}{'sandbox':<9}{'median':>10}{'p90':>10}")
        for command in ("true", "ls -R"):
            for mode in ("none", "bwrap"):
                ws = Workspace(root, sandbox=SandboxPolicy(mode=mode))  # type: ignore[arg-type]
                times = sorted(await per_call(ws, command, calls))
                p90 = times[int(len(times) * 0.9) - 1]
                print(
                    f"{command:<10}{mode:<9}{statistics.median(times) * 1000:>8.1f} ms"
                    f"{p90 * 1000:>8.1f} ms"
                )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
