"""The ``brain`` command line. Each area keeps its commands in its own module and registers here."""

from __future__ import annotations

import secrets
import sys

import click

from . import config as config_mod


class Ctx:
    """Lazily loaded configuration shared by sub-commands."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._cfg: config_mod.Config | None = None

    @property
    def cfg(self) -> config_mod.Config:
        if self._cfg is None:
            try:
                self._cfg = config_mod.load(self.config_path)
            except config_mod.ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._cfg


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="BRAIN_CONFIG", type=click.Path(dir_okay=False),
              help="TOML config file (default ~/.config/brain/config.toml).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """brain: remember what you did, search it, ask about it.

    \b
    Example:
      brain serve --dev            # run brain-api locally
      brain search "sqlite wal"    # hybrid search
    """
    ctx.obj = Ctx(config_path)


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("new")
def token_new() -> None:
    """Print a new random API token and the config lines that use it.

    \b
    Example:
      brain token new
    """
    value = secrets.token_urlsafe(32)
    click.echo(value)
    click.echo("# server side (brain-api):", err=True)
    click.echo(f"#   export BRAIN_API_TOKENS={value}", err=True)
    click.echo("#   or in config.toml: [server] api_tokens = [\"" + value + "\"]", err=True)
    click.echo("# client side (collectors, CLI, MCP):", err=True)
    click.echo(f"#   export BRAIN_TOKEN={value}", err=True)


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@pass_ctx
def config_show(obj: Ctx) -> None:
    """Print every setting with where it came from (secrets masked).

    \b
    Example:
      BRAIN_DB=/tmp/b.db brain config show
    """
    cfg = obj.cfg
    for name, value in cfg.redacted().items():
        click.echo(f"{name} = {value!r}    # {cfg.sources.get(name, 'default')}")


# --- commands of each area register below --------------------------------------------------------


def run() -> None:  # pragma: no cover - console entry for `python -m brain`
    sys.exit(main())
