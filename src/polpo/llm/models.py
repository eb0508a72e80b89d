"""``provider:model`` strings → pydantic-ai models.

A provider configured under ``settings.providers`` with a ``baseUrl`` is any
OpenAI-compatible endpoint (OpenAI, OpenRouter, Ollama, vLLM, LM Studio) and
is spoken to with the Chat Completions API (``POST {baseUrl}/chat/completions``),
the one they all implement; pydantic-ai's bare ``openai:`` prefix would pick
the Responses API. Other strings go to pydantic-ai's own provider inference.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from polpo.config import PolpoConfig
from polpo.errors import ModelNotConfiguredError

if TYPE_CHECKING:
    from pydantic_ai.models import Model

HOW_TO_CONFIGURE = (
    'Set "settings.orchestratorModel" in .polpo/polpo.json (e.g. "openai:gpt-4.1-mini") '
    "or the POLPO_MODEL environment variable, and the provider's API key variable "
    '(e.g. OPENAI_API_KEY); for a local server add "settings.providers.<name>.baseUrl".'
)


def chat_model_string(config: PolpoConfig) -> str | None:
    """The chat agent's model: ``POLPO_MODEL`` overrides ``orchestratorModel``."""
    return os.environ.get("POLPO_MODEL") or config.settings.orchestrator_model


def resolve_model(model: str | None, config: PolpoConfig) -> Model:
    """Build the pydantic-ai model for ``provider:model``.

    Raises :class:`ModelNotConfiguredError` (with what to do) when there is
    none or its API key is missing.
    """
    if not model:
        raise ModelNotConfiguredError("No model is configured. " + HOW_TO_CONFIGURE)
    provider_name, sep, model_name = model.partition(":")
    if not sep or not model_name:
        raise ModelNotConfiguredError(
            f'Model "{model}" must look like provider:model. ' + HOW_TO_CONFIGURE
        )
    provider_cfg = config.settings.providers.get(provider_name)
    if provider_cfg is not None:
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        key_env = provider_cfg.api_key_env or (
            f"{provider_name.upper()}_API_KEY" if not provider_cfg.base_url else None
        )
        api_key = os.environ.get(key_env) if key_env else None
        if not api_key:
            if provider_cfg.base_url is None:
                raise ModelNotConfiguredError(
                    f"Model {model}: set the {key_env} environment variable (the API key)."
                )
            api_key = "not-needed"  # local servers (Ollama, vLLM) ignore the key
        return OpenAIChatModel(
            model_name, provider=OpenAIProvider(base_url=provider_cfg.base_url, api_key=api_key)
        )
    from pydantic_ai.exceptions import UserError
    from pydantic_ai.models import infer_model

    try:
        return infer_model(model)
    except UserError as e:
        raise ModelNotConfiguredError(f"Model {model}: {e}".split(" See https://")[0]) from e
