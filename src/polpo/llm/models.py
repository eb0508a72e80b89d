"""``provider:model`` strings → pydantic-ai models.

Any OpenAI-compatible endpoint (OpenAI, OpenRouter, Ollama, vLLM, LM Studio)
is spoken to with the Chat Completions API (``POST {baseUrl}/chat/completions``),
the one they all implement. That covers:

* a provider configured under ``settings.providers.<name>`` with a ``baseUrl``;
* the ``openai:``, ``openrouter:`` and ``ollama:`` prefixes, whose usual
  endpoints are known (overridable by ``baseUrl`` or ``<NAME>_BASE_URL``).
  For ``openai:`` pydantic-ai would pick the Responses API; Chat Completions
  means a user who points ``OPENAI_BASE_URL`` at a local server gets what
  they expect, and OpenAI itself serves it for every chat model.

Other strings (``anthropic:…``, ``deepseek:…``) go to pydantic-ai's own
provider inference, with the key from ``apiKeyEnv`` when one is named;
``test:…`` is pydantic-ai's offline test model. Every way of not having a
usable model ends in :class:`ModelNotConfiguredError` with one short
sentence of what to do.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from polpo.config import PolpoConfig, ProviderConfig
from polpo.errors import ModelNotConfiguredError

if TYPE_CHECKING:
    from pydantic_ai.models import Model

HOW_TO_CONFIGURE = (
    'Set "settings.orchestratorModel" in .polpo/polpo.json (e.g. "openai:gpt-4.1-mini") '
    "or the POLPO_MODEL environment variable, and the provider's API key variable "
    '(e.g. OPENAI_API_KEY); for a local server add "settings.providers.<name>.baseUrl".'
)

#: OpenAI-compatible providers whose endpoint is known when no baseUrl is configured
#: (``None``: the OpenAI SDK's default, which honours ``OPENAI_BASE_URL``).
KNOWN_ENDPOINTS: dict[str, str | None] = {
    "openai": None,
    "openrouter": "https://openrouter.ai/api/v1",
    "ollama": "http://127.0.0.1:11434/v1",
}

#: Placeholder key for endpoints that need none (Ollama, vLLM, LM Studio on this machine).
NO_KEY = "not-needed"


def chat_model_string(config: PolpoConfig) -> str | None:
    """The chat agent's model: ``POLPO_MODEL`` overrides ``orchestratorModel``."""
    return os.environ.get("POLPO_MODEL") or config.settings.orchestrator_model


def resolve_model(model: str | None, config: PolpoConfig) -> Model:
    """Build the pydantic-ai model for ``provider:model``.

    Raises :class:`ModelNotConfiguredError` (with what to do) when there is
    none, the string is malformed, the provider is unknown, or its API key is
    missing.
    """
    if not model or not model.strip():
        raise ModelNotConfiguredError("No model is configured. " + HOW_TO_CONFIGURE)
    model = model.strip()
    provider_name, sep, model_name = model.partition(":")
    if not sep or not provider_name or not model_name:
        raise ModelNotConfiguredError(
            f'Model "{model}" must look like provider:model (e.g. "openai:gpt-4.1-mini").'
        )
    if provider_name == "test":
        # pydantic-ai's offline test model, for demos and smoke tests: it answers
        # without calling tools (so it never creates or cancels anything).
        from pydantic_ai.models.test import TestModel

        return TestModel(call_tools=[], model_name=model_name)
    provider_cfg = config.settings.providers.get(provider_name)
    if provider_name in KNOWN_ENDPOINTS or (
        provider_cfg is not None and provider_cfg.base_url is not None
    ):
        return _chat_completions_model(model, provider_name, model_name, provider_cfg)
    if provider_cfg is None:
        return _inferred_model(model)
    if not _known_to_pydantic_ai(provider_name):
        raise ModelNotConfiguredError(
            f"Model {model}: set settings.providers.{provider_name}.baseUrl "
            "(the server's OpenAI-compatible URL, e.g. http://127.0.0.1:8000/v1)."
        )
    key = _api_key(model, provider_name, provider_cfg, None) if provider_cfg.api_key_env else None
    return _inferred_model(model, key)


def _chat_completions_model(
    model: str, provider_name: str, model_name: str, cfg: ProviderConfig | None
) -> Model:
    base_url = _base_url(provider_name, cfg)
    api_key = _api_key(model, provider_name, cfg, base_url)

    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    return OpenAIChatModel(model_name, provider=OpenAIProvider(base_url=base_url, api_key=api_key))


def _base_url(provider_name: str, cfg: ProviderConfig | None) -> str | None:
    base_url = cfg.base_url if cfg is not None else None
    if base_url is None:
        base_url = os.environ.get(f"{_env_prefix(provider_name)}_BASE_URL") or KNOWN_ENDPOINTS.get(
            provider_name
        )
    return base_url


@dataclass(frozen=True)
class Endpoint:
    """Where an OpenAI-compatible model is spoken to, and with which key."""

    #: None: the OpenAI SDK's default (which honours ``OPENAI_BASE_URL``)
    base_url: str | None
    api_key: str
    model_name: str


def openai_endpoint(model: str | None, config: PolpoConfig, *, purpose: str) -> Endpoint:
    """The OpenAI-compatible endpoint of ``provider:model``, for APIs beyond chat
    (``/audio/transcriptions``): a known prefix (``openai``, ``openrouter``,
    ``ollama``) or a provider with a ``baseUrl``. ``purpose`` names the setting in
    errors. Raises :class:`ModelNotConfiguredError` with what to do."""
    provider_name, sep, model_name = (model or "").strip().partition(":")
    if not sep or not provider_name or not model_name:
        raise ModelNotConfiguredError(f'{purpose} must look like provider:model; got "{model}".')
    cfg = config.settings.providers.get(provider_name)
    if provider_name not in KNOWN_ENDPOINTS and (cfg is None or cfg.base_url is None):
        raise ModelNotConfiguredError(
            f"{purpose} {model} needs an OpenAI-compatible endpoint: set "
            f"settings.providers.{provider_name}.baseUrl (e.g. http://127.0.0.1:8000/v1)."
        )
    base_url = _base_url(provider_name, cfg)
    return Endpoint(base_url, _api_key(model or "", provider_name, cfg, base_url), model_name)


def accepts_images(model: str | None, config: PolpoConfig) -> bool:
    """Whether ``provider:model`` takes pictures, as ``settings.providers.<name>.imageModels``
    says (nothing is assumed: a model not listed gets no pictures)."""
    provider_name, sep, model_name = (model or "").strip().partition(":")
    cfg = config.settings.providers.get(provider_name)
    return bool(sep) and cfg is not None and cfg.accepts_images(model_name)


def _api_key(
    model: str, provider_name: str, cfg: ProviderConfig | None, base_url: str | None
) -> str:
    """The key from the named (or conventional) variable.

    A missing key is an error unless the endpoint is on this machine, or a
    baseUrl was configured without naming a key variable (a server without
    authentication).
    """
    named = cfg.api_key_env if cfg is not None else None
    env = named or f"{_env_prefix(provider_name)}_API_KEY"
    key = os.environ.get(env)
    if key:
        return key
    if base_url is not None and _is_loopback(base_url):
        return NO_KEY
    if named is None and cfg is not None and cfg.base_url is not None:
        return NO_KEY
    raise ModelNotConfiguredError(f"no API key for {model}: set {env}")


def _env_prefix(provider_name: str) -> str:
    return provider_name.upper().replace("-", "_")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _known_to_pydantic_ai(provider_name: str) -> bool:
    from pydantic_ai.providers import infer_provider_class

    try:
        infer_provider_class(provider_name)
    except ImportError:
        return True  # known, but its client library is missing: said when it is used
    except ValueError:
        return False
    return True


def _inferred_model(model: str, api_key: str | None = None) -> Model:
    """pydantic-ai's own provider for ``model`` (with the configured key, if one is named)."""
    from pydantic_ai.exceptions import UserError
    from pydantic_ai.models import infer_model
    from pydantic_ai.providers import Provider, infer_provider, infer_provider_class

    def provider_with_key(name: str) -> Provider[Any]:
        cls: Any = infer_provider_class(name)
        return cast("Provider[Any]", cls(api_key=api_key))

    try:
        return infer_model(model, provider_with_key if api_key else infer_provider)
    except ImportError:
        provider = model.partition(":")[0]
        raise ModelNotConfiguredError(
            f"Model {model}: the {provider} client library is not installed "
            f'(pip install "pydantic-ai-slim[{provider}]").'
        ) from None
    except (UserError, ValueError, TypeError) as e:
        first = str(e).split(" See https://")[0].split(" To try Pydantic AI")[0]
        raise ModelNotConfiguredError(f"Model {model}: {first}") from None
