"""``provider:model`` → pydantic-ai model, and every way of not having one."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.models.test import TestModel

from polpo.config import validate_config
from polpo.errors import ModelNotConfiguredError
from polpo.llm.models import chat_model_string, resolve_model


def config(**settings: Any) -> Any:
    return validate_config({"project": "p", "settings": settings})


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "POLPO_MODEL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENROUTER_API_KEY",
        "OLLAMA_BASE_URL",
        "LOCAL_API_KEY",
        "VLLM_API_KEY",
    ):
        monkeypatch.delenv(var, raising=False)


def test_polpo_model_overrides_the_orchestrator_model(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(orchestratorModel="openai:gpt-4.1-mini")
    assert chat_model_string(cfg) == "openai:gpt-4.1-mini"
    monkeypatch.setenv("POLPO_MODEL", "ollama:llama3.2")
    assert chat_model_string(cfg) == "ollama:llama3.2"
    assert chat_model_string(config()) == "ollama:llama3.2"


def test_a_configured_base_url_speaks_chat_completions() -> None:
    cfg = config(providers={"lmstudio": {"baseUrl": "http://127.0.0.1:1234/v1"}})
    model = resolve_model("lmstudio:qwen2.5-7b-instruct", cfg)
    assert isinstance(model, OpenAIChatModel)
    assert model.model_name == "qwen2.5-7b-instruct"
    assert model.base_url == "http://127.0.0.1:1234/v1/"


def test_openai_with_a_base_url_is_chat_completions_not_responses() -> None:
    cfg = config(providers={"openai": {"baseUrl": "http://localhost:11434/v1"}})
    model = resolve_model("openai:llama3.2", cfg)
    assert type(model) is OpenAIChatModel
    assert model.base_url == "http://localhost:11434/v1/"


def test_bare_openai_uses_chat_completions_with_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    model = resolve_model("openai:gpt-4.1-mini", config())
    assert type(model) is OpenAIChatModel
    assert model.base_url.startswith("https://api.openai.com/v1")


def test_known_endpoints_need_no_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or")
    router = resolve_model("openrouter:anthropic/claude-sonnet-4", config())
    assert isinstance(router, OpenAIChatModel)
    assert router.base_url == "https://openrouter.ai/api/v1/"
    ollama = resolve_model("ollama:llama3.2", config())  # local: no key needed
    assert ollama.base_url == "http://127.0.0.1:11434/v1/"


@pytest.mark.parametrize(
    ("model", "settings", "message"),
    [
        (None, {}, "No model is configured"),
        ("", {}, "No model is configured"),
        ("gpt-4.1-mini", {}, "must look like provider:model"),
        ("openai:gpt-4.1-mini", {}, "no API key for openai:gpt-4.1-mini: set OPENAI_API_KEY"),
        (
            "openrouter:openai/gpt-4.1",
            {},
            "no API key for openrouter:openai/gpt-4.1: set OPENROUTER_API_KEY",
        ),
        (
            "vllm:m",
            {
                "providers": {
                    "vllm": {"baseUrl": "https://gpu.example.com/v1", "apiKeyEnv": "VLLM_API_KEY"}
                }
            },
            "set VLLM_API_KEY",
        ),
        ("custom:m", {"providers": {"custom": {"apiKeyEnv": "LOCAL_API_KEY"}}}, "baseUrl"),
        ("nosuch:m", {}, "Unknown model"),
        ("anthropic:claude-sonnet-4", {}, "not installed"),
    ],
)
def test_every_way_of_not_having_a_model_says_what_to_do(
    model: str | None, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ModelNotConfiguredError) as e:
        resolve_model(model, config(**settings))
    assert message in str(e.value)
    assert "Traceback" not in str(e.value) and "https://pydantic" not in str(e.value)


def test_a_local_server_needs_no_key_even_when_a_variable_is_named() -> None:
    cfg = config(
        providers={
            "openai": {"baseUrl": "http://127.0.0.1:11434/v1", "apiKeyEnv": "OPENAI_API_KEY"}
        }
    )
    assert isinstance(resolve_model("openai:llama3.2", cfg), OpenAIChatModel)


def test_a_remote_server_without_a_named_key_is_used_without_one() -> None:
    cfg = config(providers={"lan": {"baseUrl": "http://192.168.1.20:8000/v1"}})
    assert isinstance(resolve_model("lan:m", cfg), OpenAIChatModel)


def test_the_test_provider_is_offline_and_calls_no_tools() -> None:
    model = resolve_model("test:demo", config())
    assert isinstance(model, TestModel)
    assert model.call_tools == []


def test_a_native_provider_takes_its_key_from_the_named_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_DEEPSEEK", "sk-ds")
    cfg = config(providers={"deepseek": {"apiKeyEnv": "MY_DEEPSEEK"}})
    model = resolve_model("deepseek:deepseek-chat", cfg)
    assert isinstance(model, OpenAIChatModel)
    assert model.base_url.startswith("https://api.deepseek.com")
    assert model.client.api_key == "sk-ds"
    monkeypatch.delenv("MY_DEEPSEEK")
    with pytest.raises(ModelNotConfiguredError, match="set MY_DEEPSEEK"):
        resolve_model("deepseek:deepseek-chat", cfg)
