"""Telegram's errors, read as Polpo's :class:`~polpo.errors.ChannelError`.

The outbox only needs to know whether trying again later can help:

- network trouble, Telegram's 5xx and flood control (429) → retryable;
- 400 (chat not found, message empty, bad markup) and 403 (the user blocked
  the bot) → not retryable: the same request will fail the same way;
- 401 (the token was revoked or mistyped) → retryable: nothing is wrong with
  the message, and it goes out once the token is fixed and Polpo restarted.
"""

from __future__ import annotations

import datetime as dt
import warnings

from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from polpo.errors import ChannelError

# PTB 22 warns, even when it builds RetryAfter itself, that ``retry_after``
# will become a timedelta; retry_after_seconds() reads both forms.
warnings.filterwarnings(
    "ignore", message=r".*attribute `retry_after` will be of type", module=r"telegram\."
)


class TelegramRetryAfter(ChannelError):
    """Telegram's flood control asked us to wait ``retry_after`` seconds (429)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retryable=True)
        self.retry_after = retry_after


def retry_after_seconds(exc: RetryAfter) -> float:
    """Seconds to wait, whatever form this PTB version reports it in."""
    value = exc.retry_after
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)


def is_parse_error(exc: TelegramError) -> bool:
    """Telegram refused our HTML ("Bad Request: can't parse entities: …")."""
    return isinstance(exc, BadRequest) and "parse entities" in exc.message.lower()


def is_too_long(exc: TelegramError) -> bool:
    return isinstance(exc, BadRequest) and "too long" in exc.message.lower()


def token_rejected_detail(token_env: str) -> str:
    return (
        f"Telegram rejected the bot token in {token_env} (401 Unauthorized): "
        "check it with @BotFather, then restart"
    )


def to_channel_error(exc: TelegramError, *, action: str, token_env: str) -> ChannelError:
    """``action`` says what failed, e.g. "send to chat 42"."""
    if isinstance(exc, RetryAfter):
        secs = retry_after_seconds(exc)
        return TelegramRetryAfter(
            f"telegram: {action}: flood control, retry in {secs:g} s", retry_after=secs
        )
    if isinstance(exc, InvalidToken):
        return ChannelError(f"telegram: {action}: {token_rejected_detail(token_env)}")
    if isinstance(exc, Forbidden):
        return ChannelError(
            f"telegram: {action}: {exc.message} (the user blocked the bot or never started it)",
            retryable=False,
        )
    if isinstance(exc, ChatMigrated):
        return ChannelError(
            f"telegram: {action}: the group moved to chat {exc.new_chat_id}", retryable=False
        )
    # BadRequest is a subclass of NetworkError in PTB: check it first.
    if isinstance(exc, BadRequest):
        return ChannelError(f"telegram: {action}: {exc.message}", retryable=False)
    if isinstance(exc, TimedOut):
        return ChannelError(f"telegram: {action}: timed out")
    if isinstance(exc, NetworkError):
        return ChannelError(f"telegram: {action}: cannot reach Telegram: {exc.message}")
    return ChannelError(f"telegram: {action}: {exc.message}")
