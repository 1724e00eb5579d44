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
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from brain.shared.config_types import (  # noqa: F401 - the configuration's public names, used across the code
    C,
    Config,
    ConfigError,
    SettingDoc,
    config_dir,
    data_dir,
    default_config_path,
    describe,
    state_dir,
)
from brain.shared.settings import ALL_SECTIONS, FullConfig


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
    cls: type[Any] = kind or FullConfig
    env = dict(os.environ if env is None else env)
    cfg_path, file_values = _read_file(path, env)
    docs = {d.name: d for d in describe(cls)}
    others = set(ALL_SECTIONS) - set(cls.sections())  # sections another composition owns: left to it
    errors = [f"{name} (in {cfg_path}): unknown setting" for name in file_values
              if name not in docs and name.split(".", 1)[0] not in others]
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
            bad_doc = docs.get(name)
            shown = "***" if bad_doc and bad_doc.secret else repr(raw_of.get(name))
            errors.append(f"{name} = {shown} (from {sources.get(name, 'default')}): {_error_text(err)}")
        cfg = None
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    cfg._sources, cfg._path = sources, cfg_path
    return cfg


def reference_markdown(kind: type[Config] | None = None) -> str:
    """All settings as a Markdown table: TOML key, environment variable, default, meaning."""
    rows = ["| setting (TOML `[section] key`) | environment | default | meaning |", "|---|---|---|---|"]
    for s in sorted(describe(kind or FullConfig), key=lambda x: x.name):
        default = s.default_doc()
        shown = "(secret)" if s.secret and default else f"`{default!r}`" if default not in ("", []) else ""
        rows.append(f"| `{s.name}` | `{s.env_var}` | {shown} | {s.help.replace('|', '/')} |")
    return "\n".join(rows)
