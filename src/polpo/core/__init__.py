"""The domain: tasks, missions, approvals, agents and events as plain data and rules.

Nothing here does I/O or reads the clock; services pass ``now`` in.
"""
