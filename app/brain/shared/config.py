"""Configuration machinery: environment variables over an optional TOML file over defaults, validated
into typed settings (pydantic models; the models themselves are in ``brain.shared.settings``).

Why pydantic models with our own loader rather than pydantic-settings' sources: every bad value must
be reported with the setting's name, the value (masked when secret) and where it came from (which
file, which environment variable), all bad values at once, so a typo in a cron environment fails
loudly instead of silently running on a default. pydantic-settings merges its sources before
validating and cannot say which source a rejected value came from; so this module resolves the
precedence itself (environment > TOML file (``BRAIN_CONFIG`` or ``~/.config/brain/config.toml``) >
default), remembering each value's origin, and lets pydantic do the parsing and checking.

Each entry point composes the sections it needs (``ServerConfig`` for brain-api and the tools of its
host, ``LaptopConfig`` for the collectors, the CLI's HTTP commands and MCP) and calls ``load`` with
it; nothing registers settings by being imported. TOML keys are grouped in sections:
``[server] db_path = "..."``; a section another composition owns is left to it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError


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


def default_config_path() -> Path:
    return config_dir() / "config.toml"


# --- value types beyond pydantic's own: how a value from TOML or the environment becomes typed ---

def _split_commas(value: Any) -> Any:
    """A list from TOML stays a list; a string (the environment's only type) is comma-separated."""
    if isinstance(value, str):
        return [x.strip() for x in value.split(",") if x.strip()]
    return value


def _url(value: str) -> str:
    value = value.rstrip("/")
    if value and not (value.startswith("http://") or value.startswith("https://")):
        raise ValueError("must start with http:// or https://")
    return value


def _zone(value: str) -> str:
    from brain.shared.zones import parse_tz

    parse_tz(value)  # ValueError names the problem
    return value


def _tiers(value: list[str]) -> list[str]:
    """``["Weekend:32", ...]``, each name:hours with hours > 0, written back normalised."""
    out = []
    for item in value:
        name, sep, hours = item.partition(":")
        try:
            h = float(hours) if sep else -1.0
        except ValueError:
            h = -1.0
        if not name.strip() or h <= 0:
            raise ValueError(f"each tier is name:hours with hours > 0, e.g. Light:60 (got {item!r})")
        out.append(f"{name.strip()}:{h:g}")
    if not out:
        raise ValueError("at least one tier is needed, e.g. Weekend:32,Light:60,Medium:120")
    return out


StrList = Annotated[list[str], BeforeValidator(_split_commas)]
PathStr = Annotated[str, AfterValidator(os.path.expanduser)]
Url = Annotated[str, AfterValidator(_url)]
Zone = Annotated[str, AfterValidator(_zone)]
Tiers = Annotated[list[str], BeforeValidator(_split_commas), AfterValidator(_tiers)]


def setting(default: Any = None, help: str = "", *, factory: Any = None, env: str = "",  # noqa: A002
            secret: bool = False, ge: float | None = None, le: float | None = None) -> Any:
    """A field of a settings section: its default (or a factory evaluated at load time, for paths
    under $HOME), the help the README and ``brain init`` show, its environment variable when it is
    not ``BRAIN_<SECTION>_<KEY>``, and whether it is a secret (masked wherever it is shown)."""
    extra: dict[str, Any] = {"env": env, "secret": secret}
    if factory is not None:
        return Field(default_factory=factory, description=help, json_schema_extra=extra, ge=ge, le=le)
    return Field(default=default, description=help, json_schema_extra=extra, ge=ge, le=le)


class Section(BaseModel):
    """One TOML section's settings (``[server]``, ``[embed]`` ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Config(BaseModel):
    """Validated settings of one composition: one attribute per section, ``cfg.server.db_path``.

    ``sources`` says where each value came from (default, the file, an environment variable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _path: Path | None = PrivateAttr(default=None)

    @property
    def sources(self) -> dict[str, str]:
        return self._sources

    @property
    def path(self) -> Path | None:
        """The TOML file the values were read from, if any."""
        return self._path

    @classmethod
    def sections(cls) -> dict[str, type[Section]]:
        out = {}
        for name, f in cls.model_fields.items():
            if isinstance(f.annotation, type) and issubclass(f.annotation, Section):
                out[name] = f.annotation
        return out

    def value(self, name: str) -> Any:
        """A value by its dotted name (``"server.db_path"``), for tools that list settings."""
        section, _, key = name.partition(".")
        return getattr(getattr(self, section), key)

    def with_overrides(self, **overrides: Any) -> Any:
        """A copy with some values replaced (dotted names passed with ``__`` for ``.``), validated."""
        data = self.model_dump()
        for key, value in overrides.items():
            section, _, name = key.replace("__", ".").partition(".")
            data[section][name] = value
        copy = type(self).model_validate(data)
        copy._sources, copy._path = dict(self._sources), self._path
        return copy

    def redacted(self) -> dict[str, Any]:
        """Settings for display, secrets masked."""
        out = {}
        for doc in describe(type(self)):
            value = self.value(doc.name)
            out[doc.name] = "***" if doc.secret and value else value
        return out


C = TypeVar("C", bound=Config)


@dataclass(frozen=True)
class SettingDoc:
    """What the reference, ``brain init`` and error messages show of one setting."""

    name: str
    env_var: str
    help: str
    secret: bool
    section: type[Section]

    def default_value(self) -> Any:
        return self.section.model_fields[self.name.split(".", 1)[1]].get_default(call_default_factory=True)

    def default_doc(self) -> Any:
        """The default as the reference shows it: paths under the home folder with ``~``."""
        value = self.default_value()
        if isinstance(value, str) and value.startswith(str(Path.home())):
            value = "~" + value[len(str(Path.home())):]
        return value


def describe(cls: type[Config]) -> list[SettingDoc]:
    """Every setting of a composition, in declaration order."""
    docs = []
    for section_name, section in cls.sections().items():
        for key, f in section.model_fields.items():
            extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
            name = f"{section_name}.{key}"
            env = str(extra.get("env") or "BRAIN_" + name.replace(".", "_").upper())
            docs.append(SettingDoc(name, env, f.description or "", bool(extra.get("secret")), section))
    return docs


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not prefix:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _read_file(path: str | os.PathLike[str] | None, env: dict[str, str]) -> tuple[Path | None, dict[str, Any]]:
    explicit = path or env.get("BRAIN_CONFIG")
    candidate = Path(explicit).expanduser() if explicit else default_config_path()
    if not candidate.exists():
        if explicit:
            raise ConfigError(f"config file {candidate} (from BRAIN_CONFIG) does not exist")
        return None, {}
    try:
        return candidate, _flatten(tomllib.loads(candidate.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {candidate}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {candidate}: cannot read: {exc}") from None


_WORDING = {
    "int_parsing": "must be an integer", "int_type": "must be an integer", "int_from_float": "must be an integer",
    "float_parsing": "must be a number", "float_type": "must be a number",
    "bool_parsing": "must be true or false", "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list of strings (or a comma-separated string)",
}


def _error_text(err: Any) -> str:
    """pydantic's complaint about one value, in the words the rest of the project's messages use."""
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    if kind in _WORDING:
        return _WORDING[kind]
    if kind == "literal_error":
        options = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {options}"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"must be {'>=' if kind == 'greater_than_equal' else '<='} {ctx.get('ge', ctx.get('le'))}"
    msg = str(err.get("msg", "invalid"))
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def load(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
         overrides: dict[str, Any] | None = None, *, kind: type[C] | None = None) -> C:
    """Read, merge and validate the settings of the composition ``kind`` (default: every section,
    ``brain.shared.settings.FullConfig``); raise ConfigError listing every bad value."""
    from brain.shared.settings import ALL_SECTIONS, FullConfig

    cls: type[Any] = kind or FullConfig
    env = dict(os.environ if env is None else env)
    cfg_path, file_values = _read_file(path, env)
    docs = {d.name: d for d in describe(cls)}
    errors = [f"{name} (in {cfg_path}): unknown setting" for name in file_values
              if name not in docs and name.split(".", 1)[0] not in set(ALL_SECTIONS) - set(cls.sections())]
    errors += [f"{name} (override): unknown setting" for name in overrides or {} if name not in docs]
    data: dict[str, dict[str, Any]] = {name: {} for name in cls.sections()}
    sources: dict[str, str] = {}
    raw_of: dict[str, Any] = {}
    for name, doc in docs.items():
        raw, origin = None, "default"
        if name in file_values:
            raw, origin = file_values[name], str(cfg_path)
        if env.get(doc.env_var, "") != "":
            raw, origin = env[doc.env_var], doc.env_var
        if overrides and name in overrides:
            raw, origin = overrides[name], "override"
        sources[name] = origin
        if origin != "default":
            section, _, key = name.partition(".")
            data[section][key] = raw_of[name] = raw
    try:
        cfg = cls.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"][:2])
            doc = docs.get(name)
            shown = "***" if doc and doc.secret else repr(raw_of.get(name))
            errors.append(f"{name} = {shown} (from {sources.get(name, 'default')}): {_error_text(err)}")
        cfg = None
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    cfg._sources, cfg._path = sources, cfg_path
    return cfg


def reference_markdown(kind: type[Config] | None = None) -> str:
    """All settings as a Markdown table: TOML key, environment variable, default, meaning."""
    from brain.shared.settings import FullConfig

    rows = ["| setting (TOML `[section] key`) | environment | default | meaning |", "|---|---|---|---|"]
    for s in sorted(describe(kind or FullConfig), key=lambda x: x.name):
        default = s.default_doc()
        shown = "(secret)" if s.secret and default else f"`{default!r}`" if default not in ("", []) else ""
        rows.append(f"| `{s.name}` | `{s.env_var}` | {shown} | {s.help.replace('|', '/')} |")
    return "\n".join(rows)
