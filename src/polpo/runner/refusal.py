"""The one exception a task tool raises to say no (told to the model, not a crash)."""

from __future__ import annotations


class ToolRefused(Exception):
    """A tool call the runner will not carry out (a path escape, a size limit).

    The model gets ``Error: <message>`` back and may correct itself; the run goes
    on and the transcript records the call as ``refused``.
    """
