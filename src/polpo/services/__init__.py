"""The service layer: the operations the CLI, the HTTP API, chat commands, the
chat agent's tools and the runner all share (one code path per act).

Each operation is one transaction; events it causes are written to the event
log in that transaction and published to in-process subscribers after commit.
"""
