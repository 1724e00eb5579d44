"""``brain recent``: what happened today, yesterday or on a given day, across sources, by project."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from typing import Any

import click

from brain.cli import api_errors
from brain.shared.timeline_text import now_in, render
from brain.shared.zones import local_tz_name, parse_tz


def _day(today: bool, yesterday: bool, day: str | None, tz_name: str) -> str:
    if sum(bool(x) for x in (today, yesterday, day)) > 1:
        raise click.UsageError("give one of --today, --yesterday, --day")
    if day:
        try:
            return date.fromisoformat(day).isoformat()
        except ValueError:
            raise click.BadParameter(f"{day!r} is not YYYY-MM-DD", param_hint="--day") from None
    d = now_in(tz_name).date()
    return (d - timedelta(days=1)).isoformat() if yesterday else d.isoformat()


@click.command("recent")
@click.option("--today", is_flag=True, help="Today (the default).")
@click.option("--yesterday", is_flag=True, help="Yesterday.")
@click.option("--day", metavar="YYYY-MM-DD", help="That day.")
@click.option("--days", type=click.IntRange(1, 31), default=1, show_default=True, help="Days from the day on.")
@click.option("--project", help="Only this project (its absolute directory).")
@click.option("--source", type=click.Choice(["claude", "agent", "browser", "file", "note"]), help="Only this source.")
@click.option("--tz", "tz_name", metavar="ZONE", help="Cut days in this zone (default: this machine's).")
@click.option("--json", "as_json", is_flag=True, help="Print brain-api's JSON answer.")
@click.pass_obj
def recent_cmd(obj: Any, today: bool, yesterday: bool, day: str | None, days: int, project: str | None,
               source: str | None, tz_name: str | None, as_json: bool) -> None:
    """A day's timeline: sessions with their first prompt and duration, pages visited, files changed.

    Grouped by project, in time order, in this machine's time zone (GET /api/v1/timeline).

    \b
    Examples:
      brain recent                       # today
      brain recent --yesterday --project ~/projects/spotter
      brain recent --day 2026-03-10 --days 7
    """
    tz_name = tz_name or local_tz_name()
    try:
        parse_tz(tz_name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tz") from None
    the_day = _day(today, yesterday, day, tz_name)
    project = (os.path.abspath(os.path.expanduser(project)).rstrip("/") or "/") if project else None
    client = api_errors.client(obj.laptop)
    with api_errors.reported():
        data = client.timeline(day=the_day, days=days, tz=tz_name, source=source, project=project)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(render(data))
    click.echo(f"\nprevious: brain recent --day {data['prev_day']}   next: brain recent --day {data['next_day']}")
