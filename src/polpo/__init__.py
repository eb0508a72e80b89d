"""Polpo: a local-first host for AI agents, steered from WhatsApp and Telegram."""

__version__ = "0.1.0"
