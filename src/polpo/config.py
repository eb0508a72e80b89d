"""``.polpo/polpo.json``: the models, the loader, and errors that name the JSON path.

Validation is strict: an unknown key, a wrong type or a bad value stops the
program with one line per problem, each starting with the JSON path
(``settings.notifications.channels.whatsapp.gateway.dmPolicy: must be one of
open, allowlist, pairing, disabled; got "allow"``). The file may contain
``//`` and ``/* */`` comments (the starter written by ``polpo init`` has
them). Secrets never live here: API keys and bot tokens are read from the
environment variables the config names.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from polpo.errors import ConfigError
from polpo.peerid import PeerIdError, normalize_allow_entry, normalize_peer
from polpo.sandbox_paths import read_only_refusal

CONFIG_DIR = ".polpo"
CONFIG_FILE = "polpo.json"
DEFAULT_STORAGE_URL = "sqlite:///.polpo/polpo.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3890

TOOL_NAMES = ("list_files", "read_file", "write_file", "search_files", "run_command")
ToolName = Literal["list_files", "read_file", "write_file", "search_files", "run_command"]
_DEFAULT_TOOLS: tuple[ToolName, ...] = ("list_files", "read_file")

#: Every event Polpo emits (SPEC §7); notification rules match against these.
EVENT_TYPES = (
    "task:created",
    "task:started",
    "task:done",
    "task:failed",
    "task:cancelled",
    "approval:requested",
    "approval:resolved",
    "mission:created",
    "mission:started",
    "mission:completed",
    "mission:failed",
    "peer:pairing_requested",
    "channel:connected",
    "channel:disconnected",
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MODEL = re.compile(r"^[A-Za-z0-9_-]+:.+$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Model(BaseModel):
    """Strict camelCase model: unknown keys and coerced types are errors."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


def _check_model_string(v: str | None) -> str | None:
    if v is not None and not _MODEL.match(v):
        raise ValueError(f'must look like "provider:model" (e.g. "openai:gpt-4.1-mini"); got "{v}"')
    return v


def _check_env_name(v: str | None) -> str | None:
    if v is not None and not _ENV.match(v):
        raise ValueError(f'must be an environment variable name; got "{v}"')
    return v


def _read_only_entry(entry: str) -> str:
    """A ``sandboxReadOnly`` entry that would undo the sandbox (``/``, ``~``, ``/tmp``…) is an error."""
    why = read_only_refusal(entry)
    if why is not None:
        raise ValueError(why)
    return entry


class AgentConfig(_Model):
    name: str
    role: str = ""
    model: str | None = None
    system_prompt: str = ""
    tools: list[ToolName] = Field(default_factory=lambda: list(_DEFAULT_TOOLS))
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 1
    #: Seconds a ``run_command`` call may take before it is killed.
    command_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    #: How ``run_command`` is confined: a bubblewrap sandbox, or (explicitly) nothing.
    sandbox: Literal["bwrap", "none"] = "bwrap"
    #: Whether ``run_command`` may reach the network from its sandbox.
    network: bool = False
    #: Folders the sandbox shows read-only though hidden otherwise (a toolchain in the home).
    sandbox_read_only: list[Annotated[str, AfterValidator(_read_only_entry)]] = Field(
        default_factory=list
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f'must be 1-64 letters, digits, "_", "-" or "." starting with a letter or digit; got "{v}"'
            )
        return v

    @field_validator("model")
    @classmethod
    def _model_string(cls, v: str | None) -> str | None:
        return _check_model_string(v)


class ProviderConfig(_Model):
    base_url: str | None = None
    api_key_env: str | None = None
    #: This provider's models that accept pictures (names or glob patterns, ``["*"]``: all):
    #: a picture sent to the chat then reaches the model; otherwise the reply says it cannot.
    image_models: list[str] = Field(default_factory=list)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f'must be an http(s) URL; got "{v}"')
        return v.rstrip("/") if v else v

    @field_validator("api_key_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _check_env_name(v)

    @field_validator("image_models")
    @classmethod
    def _image_models(cls, v: list[str]) -> list[str]:
        for name in v:
            if not name.strip() or ":" in name:
                raise ValueError(
                    f'each entry must be a model name of this provider (no "provider:" prefix), '
                    f'like "gpt-4.1*"; got "{name}"'
                )
        return v

    def accepts_images(self, model_name: str) -> bool:
        return any(fnmatch.fnmatchcase(model_name, pattern) for pattern in self.image_models)


#: Overrides ``settings.storage.url`` (deployments keep the database password here).
DATABASE_URL_ENV = "POLPO_DATABASE_URL"
STORAGE_URL_RE = re.compile(
    r"^(sqlite|sqlite\+aiosqlite|postgresql|postgresql\+asyncpg|postgres)://"
)


class StorageConfig(_Model):
    url: str = DEFAULT_STORAGE_URL
    #: finished inbox rows, sent outbox rows and old events are pruned after this many days
    #: (at least 1: channels may redeliver a recent message, and dedupe needs its row)
    retention_days: Annotated[int, Field(ge=1, le=36500)] = 30
    #: rows a minute that messages from senders who are not admitted (strangers, groups
    #: not for Polpo…) may add to the inbox, all together; past it they are dropped
    #: unstored (the flood guard)
    stranger_rows_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] = 120

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not STORAGE_URL_RE.match(v):
            raise ValueError(f'must be a sqlite:/// or postgresql:// URL; got "{v}"')
        return v


class GateConfig(_Model):
    name: str
    hook: Literal["task:start", "task:complete"]
    agents: list[str] = Field(default_factory=list)
    timeout_minutes: Annotated[float, Field(gt=0)] | None = None
    on_timeout: Literal["approve", "reject"] = "reject"
    max_revisions: Annotated[int, Field(ge=0, le=100)] = 3

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f'must be a short name of letters, digits, "_", "-" or "."; got "{v}"')
        return v


class GatewayConfig(_Model):
    """The conversational gateway of one channel (the seed's fields plus SPEC §1 additions)."""

    enable_inbound: bool = False
    dm_policy: Literal["open", "allowlist", "pairing", "disabled"] = "allowlist"
    allow_from: list[str] = Field(default_factory=list)
    session_idle_minutes: Annotated[float, Field(gt=0)] = 60
    #: Peers allowed to run admin commands; ``None`` means the concrete entries of allowFrom.
    admins: list[str] | None = None
    group_policy: Literal["disabled", "open"] = "disabled"
    self_chat: bool = True
    offline_max_age_minutes: Annotated[float, Field(ge=0)] = 60
    send_read_receipts: bool = True
    #: Messages per peer per minute; 0 turns the limit off.
    rate_limit_per_minute: Annotated[int, Field(ge=0)] = 20


class _ChannelBase(_Model):
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)

    def admin_peers(self) -> list[str]:
        """Peer ids allowed to run admin commands and to receive default alerts.

        ``gateway.admins`` when set, else the concrete (non-"*") entries of
        ``allowFrom`` that belong to this channel.
        """
        kind = getattr(self, "type", "memory")
        if self.gateway.admins is not None:
            return [normalize_peer(a, default_channel=kind) for a in self.gateway.admins]
        out = []
        for entry in self.gateway.allow_from:
            peer = normalize_allow_entry(entry, kind)
            if peer != "*" and peer.startswith(f"{kind}:") and peer not in out:
                out.append(peer)
        return out

    def allowed_peers(self) -> tuple[bool, frozenset[str]]:
        """(everyone allowed?, normalised allowFrom peer ids)."""
        kind = getattr(self, "type", "memory")
        entries = [normalize_allow_entry(e, kind) for e in self.gateway.allow_from]
        return "*" in entries, frozenset(e for e in entries if e != "*")


class WhatsAppChannelConfig(_ChannelBase):
    type: Literal["whatsapp"] = Field(
        json_schema_extra={"defaultDoc": 'required, unless the channel is named "whatsapp"'}
    )
    #: Show WhatsApp's "AI" badge on sent messages (off unless the user opts in).
    bot_tag: bool = False
    #: Where the linked device's credentials live, relative to the project.
    auth_dir: str = ".polpo/whatsapp"


class TelegramChannelConfig(_ChannelBase):
    type: Literal["telegram"] = Field(
        json_schema_extra={"defaultDoc": 'required, unless the channel is named "telegram"'}
    )
    bot_token_env: str = "TELEGRAM_BOT_TOKEN"
    #: Bot API root; only changed for a self-hosted Bot API server or tests.
    api_base_url: str = "https://api.telegram.org"

    @field_validator("bot_token_env")
    @classmethod
    def _env(cls, v: str) -> str:
        return _check_env_name(v) or v

    @field_validator("api_base_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+(/\S*)?$", v):
            raise ValueError(f'must be an http(s) URL like "https://api.telegram.org"; got "{v}"')
        return v.rstrip("/")


ChannelConfig = Annotated[
    Union[WhatsAppChannelConfig, TelegramChannelConfig],  # noqa: UP007
    Field(discriminator="type"),
]


class RuleConfig(_Model):
    events: list[str]
    channels: list[str]
    to: list[str] | None = None


class NotificationsConfig(_Model):
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    rules: list[RuleConfig] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _type_from_name(cls, data: Any) -> Any:
        """A channel named "whatsapp" or "telegram" without a ``type`` is of that type,
        so the feature page's examples (``{"gateway": {…}}``) work as pasted."""
        if not isinstance(data, dict) or not isinstance(data.get("channels"), dict):
            return data
        channels = {
            key: {"type": key, **value}
            if key in _TAGS and isinstance(value, dict) and "type" not in value
            else value
            for key, value in data["channels"].items()
        }
        return {**data, "channels": channels}


class ServerConfig(_Model):
    host: str = DEFAULT_HOST
    port: Annotated[int, Field(ge=1, le=65535)] = DEFAULT_PORT
    api_key_env: str = "POLPO_API_KEY"
    #: Host names (besides the bound address, localhost, 127.0.0.1 and [::1]) the
    #: HTTP API answers to; any other ``Host`` header is refused (DNS rebinding).
    allowed_hosts: list[str] = Field(default_factory=list)

    @field_validator("api_key_env")
    @classmethod
    def _env(cls, v: str) -> str:
        return _check_env_name(v) or v

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", name):
                raise ValueError(
                    f'must be host names or IP addresses without a port, like "polpo.lan"; got "{name}"'
                )
        return [n.lower() for n in v]


class ChatConfig(_Model):
    """Limits of the free-text chat agent."""

    max_tool_rounds: Annotated[int, Field(ge=1, le=50)] = 8
    turn_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 120
    #: Approximate token budget for the stored history sent with each turn.
    history_max_tokens: Annotated[int, Field(ge=500)] = 12_000
    #: Transcribes voice notes (``provider:model``, e.g. ``openai:whisper-1``) through the
    #: provider's OpenAI-compatible ``/audio/transcriptions``; None: voice notes are declined.
    transcription_model: str | None = None

    @field_validator("transcription_model")
    @classmethod
    def _model_string(cls, v: str | None) -> str | None:
        return _check_model_string(v)


class MediaConfig(_Model):
    """Voice notes, pictures and files sent to the gateway (admitted peers only)."""

    #: Longest voice note or audio transcribed, in seconds (as the sender's app declares it).
    max_audio_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
    #: Largest voice note or audio downloaded (bytes).
    max_audio_bytes: Annotated[int, Field(ge=1, le=100_000_000)] = 16_000_000
    #: Largest picture downloaded and shown to the chat model (bytes).
    max_image_bytes: Annotated[int, Field(ge=1, le=100_000_000)] = 10_000_000
    #: Files (documents) sent to the gateway are saved under the project's ``inbox/``
    #: folder (never opened or run); off: the sender is told files are not taken.
    save_documents: bool = False
    #: Largest file saved under ``inbox/`` (bytes).
    max_document_bytes: Annotated[int, Field(ge=1, le=1_000_000_000)] = 25_000_000


class RunnerConfig(_Model):
    """Limits of the task runner."""

    enabled: bool = True
    max_tool_rounds: Annotated[int, Field(ge=1, le=200)] = 25
    task_timeout_minutes: Annotated[float, Field(gt=0)] = 30
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0


class Settings(_Model):
    orchestrator_model: str | None = None
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    approval_gates: list[GateConfig] = Field(default_factory=list)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)

    @field_validator("orchestrator_model")
    @classmethod
    def _model_string(cls, v: str | None) -> str | None:
        return _check_model_string(v)


class PolpoConfig(_Model):
    schema_: str | None = Field(default=None, alias="$schema")
    #: Required here; the loader fills it with the project folder's name when the file
    #: has none (as ``polpo init`` does), so the feature page's snippets work as pasted.
    project: str = Field(json_schema_extra={"defaultDoc": "the project folder's name"})
    agents: list[AgentConfig] = Field(default_factory=list)
    settings: Settings = Field(default_factory=Settings)

    @field_validator("project")
    @classmethod
    def _project(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> PolpoConfig:
        issues = list(_cross_issues(self))
        if issues:
            # Raised as one ValueError; load_config re-splits it into path-named lines.
            raise ValueError("\n".join(f"{p}\t{m}" for p, m in issues))
        return self

    # -- convenience -------------------------------------------------------

    def agent(self, name: str) -> AgentConfig | None:
        return next((a for a in self.agents if a.name == name), None)

    def channel_of_type(
        self, type_: str
    ) -> tuple[str, WhatsAppChannelConfig | TelegramChannelConfig] | None:
        for key, ch in self.settings.notifications.channels.items():
            if ch.type == type_:
                return key, ch
        return None


def _cross_issues(cfg: PolpoConfig) -> Iterator[tuple[str, str]]:
    names: dict[str, int] = {}
    for i, agent in enumerate(cfg.agents):
        if agent.name in names:
            yield (
                f"agents[{i}].name",
                f'duplicate agent name "{agent.name}" (also agents[{names[agent.name]}])',
            )
        names.setdefault(agent.name, i)
    known = ", ".join(names) or "(none defined)"
    providers = cfg.settings.providers
    for i, agent in enumerate(cfg.agents):
        if agent.model:
            yield from _provider_issue(f"agents[{i}].model", agent.model, providers)
    if cfg.settings.orchestrator_model:
        yield from _provider_issue(
            "settings.orchestratorModel", cfg.settings.orchestrator_model, providers
        )
    if cfg.settings.chat.transcription_model:
        yield from _provider_issue(
            "settings.chat.transcriptionModel", cfg.settings.chat.transcription_model, providers
        )
    gate_names: set[str] = set()
    for gi, gate in enumerate(cfg.settings.approval_gates):
        if gate.name in gate_names:
            yield f"settings.approvalGates[{gi}].name", f'duplicate gate name "{gate.name}"'
        gate_names.add(gate.name)
        for ai, a in enumerate(gate.agents):
            if a not in names:
                yield (
                    f"settings.approvalGates[{gi}].agents[{ai}]",
                    f'unknown agent "{a}"; defined: {known}',
                )
    channels = cfg.settings.notifications.channels
    seen_types: dict[str, str] = {}
    for key, ch in channels.items():
        base = f"settings.notifications.channels.{key}"
        if ch.type in seen_types:
            yield (
                f"{base}.type",
                f'only one {ch.type} channel is supported (also "{seen_types[ch.type]}")',
            )
        seen_types.setdefault(ch.type, key)
        gw = ch.gateway
        for i, entry in enumerate(gw.allow_from):
            try:
                normalize_allow_entry(entry, ch.type)
            except PeerIdError as e:
                yield f"{base}.gateway.allowFrom[{i}]", str(e)
        for i, entry in enumerate(gw.admins or []):
            try:
                normalize_peer(entry, default_channel=ch.type)
            except PeerIdError as e:
                yield f"{base}.gateway.admins[{i}]", str(e)
    for ri, rule in enumerate(cfg.settings.notifications.rules):
        for ei, pattern in enumerate(rule.events):
            if not any(fnmatch.fnmatchcase(e, pattern) for e in EVENT_TYPES):
                yield (
                    f"settings.notifications.rules[{ri}].events[{ei}]",
                    f'"{pattern}" matches no event; events are: {", ".join(EVENT_TYPES)}',
                )
        for ci, c in enumerate(rule.channels):
            if c not in channels:
                yield (
                    f"settings.notifications.rules[{ri}].channels[{ci}]",
                    f'unknown channel "{c}"; configured: {", ".join(channels) or "(none)"}',
                )
        for ti, t in enumerate(rule.to or []):
            try:
                normalize_peer(t)
            except PeerIdError as e:
                yield f"settings.notifications.rules[{ri}].to[{ti}]", str(e)


def config_warnings(cfg: PolpoConfig) -> list[tuple[str, str]]:
    """Valid but probably not meant: ``(json path, message)`` pairs ``polpo config check``
    prints without failing. Today: a notification rule's channel with nobody to send to
    (no ``to`` peer of that channel, and the channel has no admins)."""
    out: list[tuple[str, str]] = []
    channels = cfg.settings.notifications.channels
    for ri, rule in enumerate(cfg.settings.notifications.rules):
        for ci, key in enumerate(rule.channels):
            ch = channels.get(key)
            if ch is None:
                continue  # an error already
            if rule.to is not None:
                if not any(_peer_channel(p) == ch.type for p in rule.to):
                    out.append(
                        (
                            f"settings.notifications.rules[{ri}].channels[{ci}]",
                            f'"{key}" has nobody to send to: none of the rule\'s "to" peers '
                            f"is a {ch.type} peer",
                        )
                    )
            elif not ch.admin_peers():
                out.append(
                    (
                        f"settings.notifications.rules[{ri}].channels[{ci}]",
                        f'"{key}" has nobody to send to: add its admins (gateway.allowFrom '
                        'or gateway.admins), or "to" peers to the rule',
                    )
                )
    return out


def _peer_channel(peer: str) -> str | None:
    try:
        return normalize_peer(peer).split(":", 1)[0]
    except PeerIdError:
        return None


_BUILTIN_PROVIDERS = {
    "openai",
    "anthropic",
    "google-gla",
    "google-vertex",
    "groq",
    "mistral",
    "cohere",
    "deepseek",
    "openrouter",
    "ollama",
    "bedrock",
    "huggingface",
    "grok",
    "test",
}


def _provider_issue(
    path: str, model: str, providers: dict[str, ProviderConfig]
) -> Iterator[tuple[str, str]]:
    provider = model.split(":", 1)[0]
    if provider not in providers and provider not in _BUILTIN_PROVIDERS:
        yield (
            path,
            (
                f'unknown provider "{provider}": add settings.providers.{provider} with a baseUrl '
                f"or use one of {', '.join(sorted(_BUILTIN_PROVIDERS))}"
            ),
        )


# ---------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from."""

    config: PolpoConfig
    path: Path
    #: The project directory: the folder that holds ``.polpo/``.
    root: Path

    @property
    def polpo_dir(self) -> Path:
        return self.root / CONFIG_DIR

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def storage_url(self) -> str:
        """``POLPO_DATABASE_URL`` when set (keeps a password out of the file), else the config's."""
        url = os.environ.get(DATABASE_URL_ENV, "").strip()
        if url:
            if not STORAGE_URL_RE.match(url):
                raise ConfigError(
                    f'{DATABASE_URL_ENV}: must be a sqlite:/// or postgresql:// URL; got "{url}"'
                )
            return resolve_storage_url(url, self.root)
        return resolve_storage_url(self.config.settings.storage.url, self.root)


def resolve_storage_url(url: str, root: Path) -> str:
    """Make a relative ``sqlite:///`` path absolute against the project root."""
    m = re.match(r"^(sqlite(?:\+aiosqlite)?):///(.*)$", url)
    if not m:
        return url
    path = m.group(2)
    if path in ("", ":memory:") or path.startswith("/"):
        return url
    return f"{m.group(1)}:///{(root / path).resolve()}"


def find_config_path(
    explicit: str | os.PathLike[str] | None = None, cwd: Path | None = None
) -> Path:
    """``--config`` wins, then ``POLPO_CONFIG``, then ``./.polpo/polpo.json``."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("POLPO_CONFIG")
    if env:
        return Path(env).expanduser().resolve()
    return ((cwd or Path.cwd()) / CONFIG_DIR / CONFIG_FILE).resolve()


def project_root_for(config_path: Path) -> Path:
    parent = config_path.parent
    return parent.parent if parent.name == CONFIG_DIR else parent


def load_config(
    explicit: str | os.PathLike[str] | None = None, cwd: Path | None = None
) -> LoadedConfig:
    path = find_config_path(explicit, cwd)
    if not path.exists():
        raise ConfigError(
            f"No Polpo config at {path}. Run `polpo init` to create one"
            + (
                " (or check --config / POLPO_CONFIG)."
                if explicit or os.environ.get("POLPO_CONFIG")
                else "."
            )
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    root = project_root_for(path)
    config = parse_config(text, source=str(path), default_project=root.name or None)
    return LoadedConfig(config=config, path=path, root=root)


def parse_config(
    text: str, source: str = "polpo.json", *, default_project: str | None = None
) -> PolpoConfig:
    """Parse and validate config text (JSON with comments)."""
    try:
        data = json.loads(strip_json_comments(text))
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{source}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from e
    return validate_config(data, source, default_project=default_project)


def validate_config(
    data: Any, source: str = "polpo.json", *, default_project: str | None = None
) -> PolpoConfig:
    """Validate parsed config; ``default_project`` (the folder's name) fills a missing ``project``."""
    if isinstance(data, dict) and "project" not in data and default_project:
        data = {"project": default_project, **data}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: (root): must be a JSON object; got {_json_type(data)}",
            [("(root)", f"must be a JSON object; got {_json_type(data)}")],
            source=source,
        )
    try:
        return PolpoConfig.model_validate(data)
    except PydanticValidationError as e:
        issues = _issues_from(e, data)
    lines = "\n".join(f"  {p}: {m}" for p, m in issues)
    noun = "problem" if len(issues) == 1 else "problems"
    raise ConfigError(f"{source}: {len(issues)} config {noun}:\n{lines}", issues, source=source)


def strip_json_comments(text: str) -> str:
    """Remove ``//`` and ``/* */`` comments outside strings; keep line numbers."""
    out: list[str] = []
    i, n = 0, len(text)
    in_str = False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
        elif c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            block = text[i : n if j < 0 else j + 2]
            out.append("\n" * block.count("\n"))
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


# ---------------------------------------------------------------------------
# Turning pydantic errors into path-named lines

_TAGS = {"whatsapp", "telegram"}


def _issues_from(exc: PydanticValidationError, data: dict[str, Any]) -> list[tuple[str, str]]:
    issues: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = _strip_tags(list(err["loc"]))
        if err["type"] == "value_error" and "\t" in str(err.get("ctx", {}).get("error", "")):
            for line in str(err["ctx"]["error"]).splitlines():
                p, _, m = line.partition("\t")
                issues.append((p, m))
            continue
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = [*loc, "type"]
        issues.append((_format_path(loc), _message(err, loc, data)))
    # stable, de-duplicated
    seen: set[tuple[str, str]] = set()
    out = []
    for item in issues:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _strip_tags(loc: list[Any]) -> list[Any]:
    """Drop the discriminator tag pydantic inserts after a channel's key."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if part in _TAGS and i >= 2 and loc[i - 2] == "channels" and isinstance(loc[i - 1], str):
            continue
        out.append(part)
    return out


def _format_path(loc: list[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and re.match(r"^[A-Za-z_$][A-Za-z0-9_$]*$", part):
            path += f".{part}" if path else part
        else:
            path += f"[{json.dumps(part)}]"
    return path or "(root)"


def _value_at(data: Any, loc: list[Any]) -> Any:
    cur = data
    for part in loc:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return None
    return cur


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return f"the number {v}"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _message(err: Any, loc: list[Any], data: Any) -> str:
    t = err["type"]
    ctx = err.get("ctx") or {}
    got = _json_type(_value_at(data, loc))
    if t == "missing":
        return "required"
    if t == "extra_forbidden":
        key = loc[-1] if loc else ""
        hint = _did_you_mean(str(key), loc[:-1], data)
        return f"unknown key{hint}"
    if t == "literal_error":
        allowed = ", ".join(
            a.strip("'") for a in re.findall(r"'[^']*'", str(ctx.get("expected", "")))
        )
        return f"must be one of {allowed}; got {got}"
    if t == "union_tag_not_found":
        return "required (one of whatsapp, telegram)"
    if t == "union_tag_invalid":
        return f"must be one of whatsapp, telegram; got {got}"
    if t in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[t]}; got {got}"
    if t in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {
            "greater_than_equal": "≥",
            "greater_than": ">",
            "less_than_equal": "≤",
            "less_than": "<",
        }[t]
        limit = next(iter(ctx.values()), "?")
        return f"must be {op} {limit}; got {got}"
    if t == "value_error":
        return str(ctx.get("error", err["msg"]))
    return f"{err['msg']}; got {got}"


def _did_you_mean(key: str, parent_loc: list[Any], data: Any) -> str:
    keys = _keys_at(parent_loc, data)
    if not keys:
        return ""
    match = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if match:
        return f' (did you mean "{match[0]}"?)'
    return f"; allowed here: {', '.join(keys)}"


def _keys_at(loc: list[Any], data: Any = None) -> list[str]:
    """The allowed keys of the object at ``loc`` (walking the model types)."""
    tp: Any = PolpoConfig
    for i, part in enumerate(loc):
        tp = _pick_member(_unwrap(tp), _value_at(data, loc[:i]))
        tp = _step(tp, part)
        if tp is None:
            return []
    tp = _pick_member(_unwrap(tp), _value_at(data, loc))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _pick_member(tp: Any, value: Any) -> Any:
    """For a union of models told apart by ``type`` (channels), the member ``value`` is."""
    if typing.get_origin(tp) not in (Union, types.UnionType) or not isinstance(value, dict):
        return tp
    for arg in typing.get_args(tp):
        field = getattr(arg, "model_fields", {}).get("type")
        if field is not None and value.get("type") in typing.get_args(field.annotation):
            return arg
    return tp


def _step(tp: Any, part: Any) -> Any:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, f in tp.model_fields.items():
            if part in (name, f.alias):
                return f.annotation
        return None
    if origin is list and isinstance(part, int):
        return typing.get_args(tp)[0]
    if origin is dict and isinstance(part, str):
        value = _unwrap(typing.get_args(tp)[1])
        if typing.get_origin(value) in (Union, types.UnionType):
            return value  # resolved by the caller's next step when possible
        return value
    if typing.get_origin(tp) in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            found = _step(arg, part)
            if found is not None:
                return found
    return None


# ---------------------------------------------------------------------------
# Starter config


STARTER_CONFIG = """\
// Polpo project config. Comments like this one are allowed.
// Reference: README.md ("Configuration"). Secrets never go here: name the
// environment variable that holds them instead (apiKeyEnv, botTokenEnv).
{
  "project": "{project}",

  // Agents take tasks. "model" is provider:model; tools are confined to
  // the project directory. Add "run_command" to let an agent run commands.
  "agents": [
    {
      "name": "coder",
      "role": "Senior engineer",
      "model": "openai:gpt-4.1-mini",
      "systemPrompt": "You are a careful senior engineer. Keep changes small.",
      "tools": ["list_files", "read_file", "search_files", "write_file"],
      "maxConcurrency": 1
    }
  ],

  "settings": {
    // The model behind free-text chat. POLPO_MODEL overrides it.
    "orchestratorModel": "openai:gpt-4.1-mini",

    // Any OpenAI-compatible endpoint (OpenAI, OpenRouter, Ollama, vLLM,
    // LM Studio) works through a provider with a baseUrl.
    "providers": {
      "openai": {"apiKeyEnv": "OPENAI_API_KEY"}
    },

    "storage": {"url": "sqlite:///.polpo/polpo.db"},

    // Stop work until a human approves it (from the CLI, the API or chat).
    "approvalGates": [
      {"name": "review", "hook": "task:complete", "agents": ["coder"],
       "timeoutMinutes": 1440, "onTimeout": "reject", "maxRevisions": 3}
    ],

    "notifications": {
      "channels": {
        // Link the account first: polpo whatsapp login
        "whatsapp": {
          "type": "whatsapp",
          "gateway": {
            // Set to true to talk to Polpo from WhatsApp.
            "enableInbound": false,
            // open | allowlist | pairing | disabled
            "dmPolicy": "allowlist",
            // Phone numbers (digits, "+39 123...", or JIDs); "*" means everyone.
            "allowFrom": [],
            "sessionIdleMinutes": 60
          }
        }
      }
      // Approval requests, failures and pairing requests go to each channel's
      // admins (gateway.admins, else the numbers in allowFrom). Route them
      // elsewhere with rules once a channel has someone to send to:
      // "rules": [{"events": ["task:failed", "approval:requested"], "channels": ["whatsapp"]}]
    }
  }
}
"""


def starter_config(project: str) -> str:
    return STARTER_CONFIG.replace("{project}", json.dumps(project)[1:-1])
