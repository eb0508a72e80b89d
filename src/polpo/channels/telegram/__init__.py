"""The Telegram channel: a bot on the Bot API (python-telegram-bot), long polling.

Importing this package imports python-telegram-bot; the CLI and the channel
factory import it only when a Telegram channel is used.
"""

from polpo.channels.telegram.channel import TelegramChannel

__all__ = ["TelegramChannel"]
