"""The building blocks of the settings: a section model, a composition of sections, the value types
a TOML file or an environment variable is parsed into, and the description of each setting.

Why apart from ``config`` (which loads) and ``settings`` (which declares every section): the
declarations and the loader both build on these, and neither needs the other to do so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr


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
