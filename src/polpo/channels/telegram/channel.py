"""``TelegramChannel``: a Telegram bot as a Polpo channel, over the Bot API.

Long polling runs in our own loop over ``getUpdates`` rather than PTB's
``Updater``: Telegram forgets an update once ``getUpdates`` is called with a
higher offset, and the ``Updater`` moves the offset before the update is
handled. Here the offset moves past an update only after
``listener.on_message`` has returned, i.e. after the gateway stored it; a
crash before that means Telegram delivers it again and the gateway drops the
duplicate by its message id.

Everything that waits (backoff, flood control, the typing refresh) goes
through the injected ``sleep`` and ``clock`` so tests never wait for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, Message, ReplyParameters, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import ChatMigrated, Conflict, InvalidToken, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from polpo.channels.attachments import attachment_path, write_new_file
from polpo.channels.backoff import Backoff
from polpo.channels.base import (
    ChannelListener,
    ChannelStatus,
    InboundMessage,
    OutboundMessage,
    SendResult,
    TextFormat,
)
from polpo.channels.telegram.errors import (
    is_parse_error,
    is_too_long,
    retry_after_seconds,
    to_channel_error,
    token_rejected_detail,
)
from polpo.channels.telegram.inbound import (
    inbound_from_update,
    message_ref,
    parse_message_ref,
)
from polpo.channels.telegram.outbound import MAX_TEXT, html_to_plain, inline_keyboard, split_plain
from polpo.clock import SYSTEM_CLOCK, Clock
from polpo.config import TelegramChannelConfig
from polpo.errors import ChannelError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

DEFAULT_API_BASE_URL = "https://api.telegram.org"
DEFAULT_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
#: The update types we act on; others are never fetched.
ALLOWED_UPDATES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
)
#: Added to the long-poll timeout when waiting for getUpdates' answer.
_READ_MARGIN = 10.0
_CHAT_ID = re.compile(r"^-?[0-9]+$")


def missing_token_detail(token_env: str) -> str:
    return f"set {token_env} to the bot token from @BotFather"


def conflict_detail(exc: Conflict) -> str:
    if "webhook" in exc.message.lower():
        return (
            "a webhook is set for this bot, so Polpo cannot poll it: remove it with "
            "`polpo telegram delete-webhook` (or stop the program that set it), then restart"
        )
    return (
        "another program is receiving this bot's updates (getUpdates conflict); Polpo "
        "stopped polling rather than fight over them. Stop the other program, then restart"
    )


class _Bot(Bot):
    async def get_raw_updates(
        self, *, offset: int | None, poll_seconds: int, limit: int = 100
    ) -> list[dict[str, Any]]:
        """``getUpdates`` returning the raw JSON objects.

        ``Bot.get_updates`` parses the whole batch at once, so one update PTB
        cannot read would fail every poll from then on; we parse one by one.
        """
        result = await self._post(
            "getUpdates",
            {
                "offset": offset,
                "timeout": poll_seconds,
                "limit": limit,
                "allowed_updates": list(ALLOWED_UPDATES),
            },
            read_timeout=poll_seconds + _READ_MARGIN,
        )
        if not isinstance(result, list):
            return []
        return [u for u in result if isinstance(u, dict)]


class _DeliveryFailed(Exception):
    """The listener did not take an update; it stays unacknowledged."""


class TelegramChannel:
    """A Telegram bot: inbound by long polling, outbound with ``sendMessage``.

    ``token`` is the bot token (``None`` when the environment variable named by
    ``token_env`` is unset: :meth:`start` then fails with a clear error).
    ``inbound=False`` makes a send-only channel (alerts, no polling).
    """

    name = "telegram"
    text_format: TextFormat = "telegram"
    max_text_length = MAX_TEXT

    def __init__(
        self,
        token: str | None,
        *,
        api_base_url: str = DEFAULT_API_BASE_URL,
        token_env: str = DEFAULT_TOKEN_ENV,
        inbound: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        poll_timeout: int = 25,
        request_timeout: float = 20.0,
        typing_interval: float = 4.0,
        typing_max_seconds: float = 300.0,
        flood_retries: int = 3,
        max_flood_wait: float = 60.0,
        stop_grace: float = 5.0,
    ) -> None:
        self._token = token or None
        self._api_base_url = api_base_url.rstrip("/")
        self._token_env = token_env
        self._inbound = inbound
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._poll_timeout = poll_timeout
        self._request_timeout = request_timeout
        self._typing_interval = typing_interval
        self._typing_max = typing_max_seconds
        self._flood_retries = flood_retries
        self._max_flood_wait = max_flood_wait
        self._stop_grace = stop_grace

        self._listener: ChannelListener | None = None
        self._bot: _Bot | None = None
        self._requests: tuple[HTTPXRequest, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self._typing: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._delivering = False
        #: next update id to ask for; None until the first update is taken
        self._offset: int | None = None
        #: the offset Telegram last saw (everything below it is acknowledged)
        self._acked_offset: int | None = None
        self._online_since: float | None = None
        self._last_poll_at: float | None = None
        self._state = "stopped"
        self._detail: str | None = None
        self._account: str | None = None

    @classmethod
    def from_config(
        cls,
        config: TelegramChannelConfig,
        *,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> TelegramChannel:
        environ = os.environ if env is None else env
        return cls(
            environ.get(config.bot_token_env, "").strip() or None,
            api_base_url=config.api_base_url,
            token_env=config.bot_token_env,
            inbound=config.gateway.enable_inbound,
            **options,
        )

    # -- lifecycle ---------------------------------------------------------

    async def start(self, listener: ChannelListener) -> None:
        if self._task is not None:
            return
        self._listener = listener
        if self._token is None:
            detail = missing_token_detail(self._token_env)
            await self._set_state("error", detail)
            raise ChannelError(f"telegram: {detail}", retryable=False)
        self._bot = self._make_bot(self._token)
        self._stopping = False
        self._online_since = None
        await self._set_state("connecting")
        self._task = asyncio.create_task(self._run(), name="telegram-polling")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            if self._delivering and self._stop_grace > 0:
                # Let the gateway finish storing the message in hand.
                await asyncio.wait({task}, timeout=self._stop_grace)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        typing, self._typing = list(self._typing.values()), {}
        for t in typing:
            t.cancel()
        await asyncio.gather(*typing, return_exceptions=True)
        bot, self._bot = self._bot, None
        if bot is not None:
            await self._acknowledge(bot)
            for request in self._requests:
                with contextlib.suppress(Exception):
                    await request.shutdown()
            self._requests = ()
        if self._state not in ("error", "replaced"):
            await self._set_state("stopped")

    def status(self) -> ChannelStatus:
        return ChannelStatus(
            channel=self.name,
            state=self._state,
            detail=self._detail,
            account=self._account,
            extra={"inbound": self._inbound, "lastPollAt": self._last_poll_at},
        )

    # -- outbound ----------------------------------------------------------

    async def send(self, message: OutboundMessage) -> SendResult:
        bot = self._bot
        if bot is None:
            why = missing_token_detail(self._token_env) if self._token is None else "not running"
            raise ChannelError(f"telegram: cannot send: {why}")
        chat = _chat_key(message.chat_id)
        markup = inline_keyboard(message.buttons)
        reply = _reply_parameters(message.reply_to, message.chat_id)
        action = f"send to chat {message.chat_id}"
        try:
            sent = await self._send_one(bot, chat, message.text, ParseMode.HTML, markup, reply)
        except TelegramError as e:
            if not (is_parse_error(e) or is_too_long(e)):
                raise to_channel_error(e, action=action, token_env=self._token_env) from e
            log.warning("telegram: %s; sending the message as plain text instead", e.message)
            try:
                sent = await self._send_plain(bot, chat, html_to_plain(message.text), markup, reply)
            except TelegramError as e2:
                raise to_channel_error(e2, action=action, token_env=self._token_env) from e2
        return SendResult(message_id=message_ref(sent.chat.id, sent.message_id))

    async def _send_plain(
        self,
        bot: Bot,
        chat: int | str,
        text: str,
        markup: InlineKeyboardMarkup | None,
        reply: ReplyParameters | None,
    ) -> Message:
        parts = split_plain(text, MAX_TEXT)
        sent: Message | None = None
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            sent = await self._send_one(
                bot, chat, part, None, markup if last else None, reply if i == 0 else None
            )
        assert sent is not None  # split_plain never returns an empty list
        return sent

    async def _send_one(
        self,
        bot: Bot,
        chat: int | str,
        text: str,
        parse_mode: str | None,
        markup: InlineKeyboardMarkup | None,
        reply: ReplyParameters | None,
    ) -> Message:
        """One ``sendMessage``; waits out short flood control, follows a group
        that became a supergroup."""
        floods = 0
        migrated = False
        while True:
            try:
                return await bot.send_message(
                    chat, text, parse_mode=parse_mode, reply_markup=markup, reply_parameters=reply
                )
            except RetryAfter as e:
                wait = retry_after_seconds(e)
                floods += 1
                if floods > self._flood_retries or wait > self._max_flood_wait:
                    raise
                log.info("telegram: flood control, waiting %g s before resending", wait)
                await self._sleep(wait)
            except ChatMigrated as e:
                if migrated:
                    raise
                migrated = True
                chat = e.new_chat_id

    async def typing(self, chat_id: str, on: bool) -> None:
        """Telegram shows "typing…" for about 5 s per chat action, so it is
        refreshed every ``typing_interval`` until turned off."""
        running = self._typing.get(chat_id)
        if on:
            if self._bot is None or (running is not None and not running.done()):
                return
            self._typing[chat_id] = asyncio.create_task(
                self._keep_typing(self._bot, chat_id), name=f"telegram-typing-{chat_id}"
            )
        elif running is not None:
            del self._typing[chat_id]
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    async def _keep_typing(self, bot: Bot, chat_id: str) -> None:
        started = self._clock.now()
        while self._clock.now() - started < self._typing_max:
            try:
                await bot.send_chat_action(_chat_key(chat_id), ChatAction.TYPING)
            except TelegramError as e:
                log.debug("telegram: typing in %s failed: %s", chat_id, e.message)
            await self._sleep(self._typing_interval)

    async def mark_read(self, message: InboundMessage) -> None:
        """Bots have no read receipts."""

    async def fetch_attachment(
        self, message: InboundMessage, directory: Path, *, max_bytes: int
    ) -> Path:
        """Download ``message``'s voice note, picture or file (``getFile``, then the file
        itself) into a new 0600 file in ``directory``; for admitted peers only (the
        gateway decides). Bigger than ``max_bytes`` by the size Telegram declared:
        refused before downloading. (The Bot API serves files up to 20 MB.)"""
        attachment = message.attachment
        if attachment is None or not attachment.ref:
            raise ChannelError("telegram: that message carries no file", retryable=False)
        bot = self._bot
        if bot is None:
            raise ChannelError("telegram: the channel is not running")
        path = attachment_path(directory, message)
        if path.exists():
            return path  # fetched before (a turn resumed after a restart)
        if attachment.size > max_bytes:
            raise ChannelError(_too_big(attachment.size, max_bytes), retryable=False)
        try:
            file = await bot.get_file(attachment.ref)
            if file.file_size is not None and file.file_size > max_bytes:
                raise ChannelError(_too_big(file.file_size, max_bytes), retryable=False)
            data = bytes(await file.download_as_bytearray())
        except TelegramError as e:
            raise to_channel_error(e, action="download a file", token_env=self._token_env) from None
        if len(data) > max_bytes:
            raise ChannelError(_too_big(len(data), max_bytes), retryable=False)
        write_new_file(path, data)
        return path

    # -- polling -----------------------------------------------------------

    async def _run(self) -> None:
        backoff = Backoff(rng=self._rng)
        while not self._stopping:
            try:
                await self._poll_once()
                backoff.reset()
            except InvalidToken:
                await self._set_state("error", token_rejected_detail(self._token_env))
                return
            except Conflict as e:
                await self._set_state("replaced", conflict_detail(e))
                return
            except RetryAfter as e:
                wait = retry_after_seconds(e)
                await self._set_state("disconnected", f"Telegram flood control: waiting {wait:g} s")
                await self._sleep(wait)
            except TelegramError as e:
                self._online_since = None
                delay = backoff.next_delay()
                await self._set_state(
                    "disconnected",
                    f"cannot reach Telegram ({e.message}); retrying in {delay:.0f} s",
                )
                await self._sleep(delay)
            except _DeliveryFailed as e:
                delay = backoff.next_delay()
                log.warning(
                    "telegram: update %s was not stored (%r); asking again in %.0f s",
                    e.args[0],
                    e.__cause__,
                    delay,
                )
                await self._sleep(delay)
            except Exception:
                delay = backoff.next_delay()
                log.exception("telegram: polling failed; retrying in %.0f s", delay)
                await self._sleep(delay)

    async def _poll_once(self) -> None:
        bot = self._bot
        assert bot is not None
        if self._state != "connected":
            # A quick round trip, so the status says "connected" without
            # waiting for a long poll to come back; it also checks the token.
            me = await bot.get_me()
            self._account = f"@{me.username}" if me.username else str(me.id)
            # Anything dated before this was sent while we were not listening.
            self._online_since = self._clock.now()
            if not self._inbound:
                await self._set_state("connected", "send only (gateway.enableInbound is false)")
                await asyncio.Event().wait()  # until stop() cancels us
            await self._set_state("connected")
        updates = await bot.get_raw_updates(offset=self._offset, poll_seconds=self._poll_timeout)
        self._acked_offset = self._offset
        self._last_poll_at = self._clock.now()
        await self._set_state("connected")
        for raw in updates:
            if self._stopping:
                break
            await self._deliver(bot, raw)

    async def _deliver(self, bot: Bot, raw: dict[str, Any]) -> None:
        """Hand one update to the listener; move the offset past it only after."""
        update_id = raw.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            log.warning("telegram: an update without an update_id was ignored: %.200r", raw)
            return
        update: Update | None = None
        message: InboundMessage | None = None
        try:
            update = Update.de_json(raw, bot)
            message = inbound_from_update(update, now=self._clock.now())
        except Exception:
            log.exception("telegram: update %s could not be read; skipped: %.500r", update_id, raw)
        if message is not None and self._listener is not None:
            since = self._online_since
            if since is not None and message.timestamp < since - 1:
                message = replace(message, offline=True)
            self._delivering = True
            try:
                await self._listener.on_message(message)
            except Exception as e:
                raise _DeliveryFailed(update_id) from e
            finally:
                self._delivering = False
            if update is not None and update.callback_query is not None:
                await self._answer_callback(bot, update.callback_query.id)
        if self._offset is None or update_id + 1 > self._offset:
            self._offset = update_id + 1

    async def _answer_callback(self, bot: Bot, query_id: str) -> None:
        """Stops the spinner on the pressed button; the reply comes as a message."""
        try:
            await bot.answer_callback_query(query_id)
        except TelegramError as e:  # e.g. "query is too old" after a restart
            log.debug("telegram: answerCallbackQuery failed: %s", e.message)

    async def _acknowledge(self, bot: _Bot) -> None:
        """Tell Telegram which updates we took before letting go of the bot."""
        if not self._inbound or self._offset is None or self._offset == self._acked_offset:
            return
        try:
            await asyncio.wait_for(
                bot.get_raw_updates(offset=self._offset, poll_seconds=0, limit=1), timeout=5
            )
            self._acked_offset = self._offset
        except (TelegramError, TimeoutError) as e:
            log.debug("telegram: final acknowledgement failed (will be redelivered): %s", e)

    # -- helpers -----------------------------------------------------------

    def _make_bot(self, token: str) -> _Bot:
        t = self._request_timeout
        send_request = HTTPXRequest(
            connection_pool_size=8,
            read_timeout=t,
            write_timeout=t,
            connect_timeout=t,
            pool_timeout=t,
        )
        poll_request = HTTPXRequest(
            connection_pool_size=2,
            read_timeout=_READ_MARGIN,
            write_timeout=t,
            connect_timeout=t,
            pool_timeout=t,
        )
        self._requests = (send_request, poll_request)
        return _Bot(
            token,
            base_url=f"{self._api_base_url}/bot",
            base_file_url=f"{self._api_base_url}/file/bot",
            request=send_request,
            get_updates_request=poll_request,
        )

    async def _set_state(self, state: str, detail: str | None = None) -> None:
        changed = state != self._state
        self._state, self._detail = state, detail
        if state == "error":
            log.error("telegram: %s", detail)
        elif state == "replaced":
            log.warning("telegram: %s", detail)
        if changed and self._listener is not None:
            try:
                await self._listener.on_status(self.status())
            except Exception:
                log.exception("telegram: the listener failed on a status change")


def _too_big(size: int, limit: int) -> str:
    return f"telegram: the file is too big ({size} bytes; at most {limit})"


def _chat_key(chat_id: str) -> int | str:
    """Numeric chat ids as numbers; ``@channelname`` as is."""
    return int(chat_id) if _CHAT_ID.match(chat_id) else chat_id


def _reply_parameters(reply_to: str | None, chat_id: str) -> ReplyParameters | None:
    ref = parse_message_ref(reply_to) if reply_to else None
    if ref is None or ref[0] != chat_id:
        return None
    # If the quoted message was deleted, send anyway rather than fail.
    return ReplyParameters(message_id=ref[1], allow_sending_without_reply=True)
