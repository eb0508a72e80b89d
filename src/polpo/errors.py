"""One exception hierarchy for everything Polpo raises on purpose.

The CLI turns any :class:`PolpoError` into one line on stderr and a non-zero
exit code; the HTTP API turns it into a JSON error with a status code; a chat
command turns it into a short reply. Anything else escaping is a bug.
"""

from __future__ import annotations


class PolpoError(Exception):
    """Base class of every error Polpo raises deliberately.

    ``exit_code`` is what the CLI exits with; ``http_status`` what the API
    answers with.
    """

    exit_code: int = 1
    http_status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(PolpoError):
    """The config file is missing, is not valid JSON, or fails validation.

    ``issues`` holds one ``(json_path, message)`` pair per problem; ``source``
    is the file they are in (for one-line reports such as the CLI's).
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        issues: list[tuple[str, str]] | None = None,
        *,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.issues = issues or []
        self.source = source


class StoreError(PolpoError):
    """The database cannot be opened, migrated or written."""

    http_status = 503


class NotFoundError(PolpoError):
    """No task, mission, approval or peer matches the id or prefix given."""

    http_status = 404


class AmbiguousIdError(PolpoError):
    """An id prefix matches more than one record; ``candidates`` lists them."""

    http_status = 409

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


class InvalidTransitionError(PolpoError):
    """A state change the domain does not allow (e.g. approving a rejected approval)."""

    http_status = 409


class AlreadyDecidedError(InvalidTransitionError):
    """An approval was already approved, rejected or expired.

    Carries who decided and when so a caller can tell the user.
    """

    def __init__(
        self, message: str, status: str, resolved_by: str | None, resolved_at: float | None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.resolved_by = resolved_by
        self.resolved_at = resolved_at


class ValidationError(PolpoError):
    """User input to a service (a title, a reason, an agent name) is not acceptable.

    For the CLI that is a usage error: exit code 2, like a bad option.
    """

    exit_code = 2
    http_status = 422


class ChannelError(PolpoError):
    """A channel cannot start, send, or reach its network.

    ``retryable`` tells the outbox whether trying again later may succeed
    (disconnected) or not (the chat does not exist).
    """

    http_status = 502

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class LockHeldError(PolpoError):
    """Another process holds a resource that only one may hold (a WhatsApp account)."""

    http_status = 409


class ModelNotConfiguredError(PolpoError):
    """No model is configured for the chat agent or a task's agent."""
