"""A one-off look at a bot, for ``polpo telegram status``: who it is and how
its updates are delivered. Separate from the channel: it never calls
``getUpdates``, so it takes no update away from a running ``polpo serve``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from telegram import Bot
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.request import HTTPXRequest

from polpo.channels.telegram.errors import token_rejected_detail
from polpo.errors import ChannelError


@dataclass(frozen=True)
class BotCheck:
    bot_id: int
    username: str | None
    name: str
    webhook_url: str
    pending_updates: int
    can_join_groups: bool | None
    reads_all_group_messages: bool | None


def missing_token_message(token_env: str) -> str:
    return (
        f"{token_env} is not set: create a bot with @BotFather (/newbot), "
        f"then export {token_env}=<the token it gives you>"
    )


@asynccontextmanager
async def _bot(
    token: str | None, api_base_url: str, token_env: str, seconds: float
) -> AsyncIterator[Bot]:
    """A bot whose Telegram errors come out as one-line ChannelErrors."""
    if not token:
        raise ChannelError(missing_token_message(token_env), retryable=False)
    base = api_base_url.rstrip("/")
    request = HTTPXRequest(
        connection_pool_size=2,
        read_timeout=seconds,
        connect_timeout=seconds,
        write_timeout=seconds,
    )
    bot = Bot(token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot", request=request)
    try:
        yield bot
    except InvalidToken as e:
        raise ChannelError(token_rejected_detail(token_env), retryable=False) from e
    except NetworkError as e:
        raise ChannelError(f"cannot reach the Telegram Bot API at {base}: {e.message}") from e
    except TelegramError as e:
        raise ChannelError(f"Telegram: {e.message}") from e
    finally:
        await request.shutdown()


async def check_bot(
    token: str | None,
    *,
    api_base_url: str,
    token_env: str,
    request_seconds: float = 10.0,
) -> BotCheck:
    async with _bot(token, api_base_url, token_env, request_seconds) as bot:
        me = await bot.get_me()
        hook = await bot.get_webhook_info()
    name = " ".join(p for p in (me.first_name, me.last_name) if p)
    return BotCheck(
        bot_id=me.id,
        username=me.username,
        name=name,
        webhook_url=hook.url or "",
        pending_updates=hook.pending_update_count,
        can_join_groups=me.can_join_groups,
        reads_all_group_messages=me.can_read_all_group_messages,
    )


async def delete_webhook(
    token: str | None, *, api_base_url: str, token_env: str, request_seconds: float = 10.0
) -> str:
    """Remove the bot's webhook (pending updates are kept); returns the URL it had."""
    async with _bot(token, api_base_url, token_env, request_seconds) as bot:
        hook = await bot.get_webhook_info()
        if hook.url:
            await bot.delete_webhook(drop_pending_updates=False)
    return hook.url or ""
