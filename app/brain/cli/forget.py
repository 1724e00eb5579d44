"""``brain forget``: forget for good, list what was forgotten, undo (over brain-api).

The filters are those of ``POST /api/v1/forget`` (``brain.shared.tombstones``); the page offers the same.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from brain.cli import api_errors
from brain.shared import words


def _call(fn: Any, *args: Any, **kw: Any) -> Any:
    with api_errors.reported():
        return fn(*args, **kw)


def _path_glob(value: str | None) -> str | None:
    """``~/private/*`` and ``private/*`` (from here) become absolute patterns, as files are stored."""
    if not value:
        return None
    value = os.path.expanduser(value)
    return value if value.startswith(("/", "*")) else os.path.join(os.getcwd(), value)


def describe(rule: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in rule.items())


def print_tombstones(tombstones: list[dict[str, Any]]) -> None:
    if not tombstones:
        click.echo("nothing is forgotten (no tombstones)")
        return
    for t in tombstones:
        click.echo(f"#{t['id']:<4} {t['created_at'][:16].replace('T', ' ')}  {describe(t['rule'])}  "
                   f"({t['deleted']} deleted)")


@click.command("forget")
@click.argument("item_id", required=False)
@click.option("--id", "id_", metavar="ID", help="Exactly this item (the same as the ITEM_ID argument).")
@click.option("--source", type=click.Choice(["claude", "agent", "browser", "file", "note"]), help="Every item of a source.")
@click.option("--project", help="Every item of this project (its absolute directory).")
@click.option("--id-prefix", help="Ids starting with this, e.g. agent:codex: or file:laptop:/home/me/secret/.")
@click.option("--domain", help="Pages on this domain and its subdomains, e.g. example.com.")
@click.option("--path", "path_glob", metavar="GLOB", help="Files whose path matches, e.g. '~/private/*' (* crosses /).")
@click.option("--since", help="Items active at or after this date/time (ISO-8601).")
@click.option("--until", help="Items active at or before this date/time (ISO-8601).")
@click.option("--dry-run", is_flag=True, help="Only count what would be forgotten.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--list", "list_", is_flag=True, help="Show the tombstones (what is forgotten) and their ids.")
@click.option("--undo", type=int, metavar="N", help="Remove tombstone N: its items are accepted again.")
@click.option("--json", "as_json", is_flag=True, help="Print brain-api's JSON answer.")
@click.pass_obj
def forget_cmd(obj: Any, item_id: str | None, id_: str | None, source: str | None, project: str | None,
               id_prefix: str | None, domain: str | None, path_glob: str | None, since: str | None,
               until: str | None, dry_run: bool, yes: bool, list_: bool, undo: int | None, as_json: bool) -> None:
    """Forget items for good: delete them and refuse them from now on.

    brain-api records a tombstone (the rule); the collectors learn it before their next run and
    skip matching items, so a forgotten file, page or session is not collected again. Filters
    combine (all must match). --undo N stops refusing; it does not bring back what was deleted
    (an item returns when its source changes).

    \b
    Examples:
      brain forget file:laptop:/home/me/notes/diary.md
      brain forget --domain bank.example --dry-run
      brain forget --path '~/private/*' --yes
      brain forget --source browser --since 2026-11-20 --until 2026-11-21
      brain forget --list
      brain forget --undo 3
    """
    client = api_errors.client(obj.laptop)
    if list_:
        tombstones = _call(client.tombstones)
        if as_json:
            click.echo(json.dumps(tombstones, indent=2))
        else:
            print_tombstones(tombstones)
        return
    if undo is not None:
        answer = _call(client.remove_tombstone, undo)
        if as_json:
            click.echo(json.dumps(answer, indent=2))
            return
        click.echo(f"tombstone #{undo} removed ({describe(answer['tombstone']['rule'])}): matching items are "
                   f"accepted again; the {answer['tombstone']['deleted']} it deleted stay deleted until their "
                   "source changes")
        return
    if item_id and id_ and item_id != id_:
        raise click.UsageError("give the item id once (ITEM_ID or --id)")
    rule = {"id": item_id or id_, "source": source, "project": project, "id_prefix": id_prefix,
            "domain": domain, "path_glob": _path_glob(path_glob), "since": since, "until": until}
    rule = {k: v for k, v in rule.items() if v}
    if not rule:
        raise click.UsageError("say what to forget: an ITEM_ID or at least one filter (see --help), "
                               "or --list / --undo N")
    counted = _call(client.forget, **rule, dry_run=True)
    shown = describe(counted.get("rule", rule))
    if dry_run:
        click.echo(json.dumps(counted, indent=2) if as_json else f"would forget {words.counted(counted['matches'], 'item')} ({shown})")
        return
    if not yes:
        click.confirm(f"Forget {words.counted(counted['matches'], 'item')} ({shown}) and refuse them from now on?", abort=True)
    answer = _call(client.forget, **rule)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(f"forgot {words.counted(answer['deleted'], 'item')}; tombstone #{answer['tombstone']['id']} ({shown}) refuses them "
               "from now on (undo: brain forget --undo " + str(answer["tombstone"]["id"]) + ")")
