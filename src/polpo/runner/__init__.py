"""Task execution: the runner, its tools, approval gates and revisions (SPEC §6)."""

from __future__ import annotations

from polpo.runner.runner import DrainReport, Runner, gate_for

__all__ = ["DrainReport", "Runner", "gate_for"]
