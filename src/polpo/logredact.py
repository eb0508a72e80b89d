"""Secrets never reach a log line, at any level.

Libraries log what they see: at ``--log-level debug`` an HTTP client logs
the URLs it calls, and a Telegram Bot API URL carries the bot token
(``…/bot123456:AA…/getUpdates``). Polpo therefore rewrites every log record
as it is made, whatever logger it comes from and whatever handler shows it:

- every value of an environment variable whose name looks secret (``KEY``,
  ``TOKEN``, ``SECRET``, ``PASSWORD``, ``PASSWD``, ``CREDENTIAL``) and any
  value given to :func:`install_log_redaction` is replaced by ``[redacted]``;
- anything shaped like a Telegram bot token (``digits:35 characters``) is
  too, even if it came from elsewhere;
- ``polpo serve`` adds the values its config names (``botTokenEnv``, …),
  the ``--api-key`` and the database URL's password.

:func:`install_log_redaction` is called wherever Polpo configures logging
(``polpo serve``); :class:`RedactSecrets` is also a plain
:class:`logging.Filter` for a handler of one's own.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
#: Names of environment variables whose values are secrets.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
#: A Telegram bot token: the bot's id, a colon, 35 characters (Bot API URLs carry it).
BOT_TOKEN = re.compile(r"(?<![0-9])[0-9]{5,}:[A-Za-z0-9_-]{30,}")
#: Shorter values are not redacted (they would blank ordinary words).
MIN_SECRET = 8


class RedactSecrets(logging.Filter):
    """Rewrites a record's message (and its traceback) without the secrets; never drops it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets |= {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET}
            longest_first = sorted(self._secrets, key=len, reverse=True)
            self._pattern = (
                re.compile("|".join(re.escape(s) for s in longest_first)) if longest_first else None
            )

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        return BOT_TOKEN.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own error path
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_installed: RedactSecrets | None = None
_install_lock = threading.Lock()


def secrets_from_environment() -> list[str]:
    return [v for k, v in os.environ.items() if SECRET_NAME.search(k)]


def secrets_in_url(url: str) -> list[str]:
    """The password of a URL (``postgresql://user:PASSWORD@host/db``), as written and decoded.

    The database URL comes from ``POLPO_DATABASE_URL``, a name that does not
    look secret, and drivers may put it in an error.
    """
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


def secrets_named_by(config: Any) -> list[str]:
    """Values of the environment variables a config names (``botTokenEnv``, ``apiKeyEnv``, …).

    Any field whose name ends in ``Env`` names a variable holding a secret,
    whatever that variable is called.
    """
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.endswith("Env") and isinstance(value, str):
                    secret = os.environ.get(value)
                    if secret:
                        found.append(secret)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config.model_dump(by_alias=True) if hasattr(config, "model_dump") else config)
    return found


def install_log_redaction(extra: Iterable[str] = ()) -> RedactSecrets:
    """Redact every log record of this process from now on (idempotent; adds ``extra``)."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = RedactSecrets(secrets_from_environment())
            previous = logging.getLogRecordFactory()
            redactor = _installed

            def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                redactor.filter(record)
                return record

            logging.setLogRecordFactory(make_record)
        _installed.add(extra)
        return _installed
