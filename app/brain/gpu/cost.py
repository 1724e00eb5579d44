"""Monthly cost report: GPU hours and dollars from the ledger, embedding spend, projection, tiers.

Why from the ledger and ``embed_usage`` and not from estimates: both are written when money is
actually spent (a start/stop of the GPU VM at its hourly rate; an embeddings call with the
tokens the API counted), so the report is what the month cost, not what it should have cost.

Projection to month end is linear: what was spent so far, times (hours in the month / hours
elapsed). It is noisy in the first days of a month, and exact once the month is over. The
plan's tiers (seed plan, section C: Weekend 32 h, Light 60 h, Medium 120 h) are priced at
``gpu.hourly_rate``; the report says which one the projected hours fit in.

A stopped GPU VM is not free: TensorDock keeps its disk and bills it by the GB-hour. The ledger
knows when the VM was stopped (from a booked stop to the next start, or to the ``replaced`` stop
that retires an instance Pulumi replaced), so those hours are counted as ``storage`` at
``gpu.storage_gb`` x ``gpu.storage_usd_per_gb_hour`` (today's rate for the whole month: the
ledger does not keep past storage prices). Time before an instance's first booked event is not
known, so not counted.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from brain.core.store import Store
from brain.shared import timeutil
from brain.shared.settings import ServerConfig

REPLACED = "replaced"  # origin of the ledger stop that retires an instance Pulumi replaced


def tiers(cfg: ServerConfig) -> list[tuple[str, float]]:
    """The plan's tiers as ``(name, hours)``, smallest first."""
    out = []
    for item in cfg.gpu.tiers:
        name, _, hours = item.partition(":")
        out.append((name, float(hours)))
    return sorted(out, key=lambda t: t[1])

_MONTH = re.compile(r"(\d{4})-(\d{2})")


def month_bounds(month: str | None, now: datetime) -> tuple[str, datetime, datetime]:
    """``("2026-03", start, end)`` for ``YYYY-MM`` (default: the month of ``now``), UTC, end exclusive.

    Raises ValueError with a message fit for a 400 naming ``month``.
    """
    if month is None or month == "":
        year, mon = now.year, now.month
    else:
        m = _MONTH.fullmatch(month.strip()) if isinstance(month, str) else None
        if m is None or not 1 <= int(m.group(2)) <= 12 or not 2000 <= int(m.group(1)) <= 2999:
            raise ValueError(f"month must be YYYY-MM, e.g. 2026-03 (got {month!r})")
        year, mon = int(m.group(1)), int(m.group(2))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return f"{year:04d}-{mon:02d}", start, end


@dataclass(frozen=True)
class Session:
    """One stretch of GPU time from the ledger: a start and its stop (None while still up)."""

    instance_id: str
    start: datetime
    end: datetime | None
    rate: float


def sessions(conn: sqlite3.Connection, until: datetime) -> list[Session]:
    """Every GPU session that began before ``until`` (its stop may lie after it, or be missing)."""
    rows = conn.execute("SELECT instance_id, at, event, rate_hourly FROM gpu_ledger WHERE at < ? "
                        "ORDER BY instance_id, id", (timeutil.fmt(until),)).fetchall()
    out: list[Session] = []
    open_: dict[str, tuple[datetime, float]] = {}
    for r in rows:
        at = timeutil.parse(r["at"])
        if r["event"] == "start":
            open_.setdefault(r["instance_id"], (at, float(r["rate_hourly"])))
        elif r["instance_id"] in open_:
            began, rate = open_.pop(r["instance_id"])
            out.append(Session(r["instance_id"], began, at, rate))
    out.extend(Session(iid, began, None, rate) for iid, (began, rate) in open_.items())
    return sorted(out, key=lambda s: s.start)


@dataclass(frozen=True)
class Stopped:
    """A stretch during which an instance existed but was stopped (its disk still billed)."""

    instance_id: str
    start: datetime
    end: datetime | None  # None: still stopped


def stopped_stretches(conn: sqlite3.Connection, until: datetime) -> list[Stopped]:
    """From each stop to the next start of the same instance; a ``replaced`` stop ends it for good."""
    rows = conn.execute("SELECT instance_id, at, event, origin FROM gpu_ledger WHERE at < ? "
                        "ORDER BY instance_id, id", (timeutil.fmt(until),)).fetchall()
    out: list[Stopped] = []
    since: dict[str, datetime] = {}
    gone: set[str] = set()
    for r in rows:
        iid, at = r["instance_id"], timeutil.parse(r["at"])
        if iid in gone:
            continue
        if r["event"] == "stop":
            began = since.pop(iid, None)
            if r["origin"] == REPLACED:
                gone.add(iid)
                if began is not None:
                    out.append(Stopped(iid, began, at))
            else:
                since[iid] = began or at
        elif iid in since:
            out.append(Stopped(iid, since.pop(iid), at))
    out.extend(Stopped(iid, began, None) for iid, began in since.items())
    return sorted(out, key=lambda s: s.start)


def storage_usage(conn: sqlite3.Connection, start: datetime, end: datetime, rate_hourly: float) -> dict[str, Any]:
    """Hours the GPU VM stood stopped within ``[start, end)`` and what its disk cost meanwhile."""
    hours = 0.0
    for s in stopped_stretches(conn, end):
        a, b = max(s.start, start), min(s.end or end, end)
        if b > a:
            hours += (b - a).total_seconds() / 3600
    return {"hours_stopped": hours, "usd": hours * rate_hourly}


def gpu_usage(conn: sqlite3.Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """GPU hours and dollars within ``[start, end)``; a session still open counts up to ``end``."""
    hours = usd = 0.0
    count = 0
    running = False
    for s in sessions(conn, end):
        a, b = max(s.start, start), min(s.end or end, end)
        if b > a:
            h = (b - a).total_seconds() / 3600
            hours += h
            usd += h * s.rate
            count += 1
        running = running or s.end is None
    return {"hours": hours, "usd": usd, "sessions": count, "running": running}


def month_report(conn: sqlite3.Connection, cfg: ServerConfig, month: str | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """The cost of ``month`` (default: this one) as of ``now`` (``GET /api/v1/cost``, ``brain cost``)."""
    now = now or datetime.now(UTC)
    label, start, end = month_bounds(month, now)
    as_of = min(max(now, start), end)
    month_h = (end - start).total_seconds() / 3600
    elapsed_h = (as_of - start).total_seconds() / 3600
    factor = month_h / elapsed_h if elapsed_h > 0 else 0.0

    gpu = gpu_usage(conn, start, as_of)
    gpu["running"] = gpu["running"] and start <= now < end
    embed = Store(conn).embed_usage(timeutil.fmt(start), timeutil.fmt(as_of))
    storage_gb, per_gb = int(cfg.gpu.storage_gb), float(cfg.gpu.storage_usd_per_gb_hour)
    storage = storage_usage(conn, start, as_of, storage_gb * per_gb)
    rate = float(cfg.gpu.hourly_rate)
    projected_h = gpu["hours"] * factor
    projected_gpu = gpu["usd"] * factor
    projected_storage = storage["usd"] * factor
    projected_embed = embed["cost_usd"] * factor
    total = gpu["usd"] + storage["usd"] + embed["cost_usd"]
    projected_total = projected_gpu + projected_storage + projected_embed

    plan = [{"name": name, "hours": hours, "gpu_usd": round(hours * rate, 2)} for name, hours in tiers(cfg)]
    fits = next((t for t in plan if projected_h <= t["hours"]), None)
    if fits is not None:
        note = (f"projected {projected_h:.1f} GPU hours in {label}: within {fits['name']} "
                f"({fits['hours']:g} h, ${fits['gpu_usd']:.2f} at ${rate:.2f}/h)")
    else:
        top = plan[-1]
        note = f"projected {projected_h:.1f} GPU hours in {label}: above {top['name']} ({top['hours']:g} h)"

    budget = float(cfg.gpu.monthly_budget_usd)
    return {
        "month": label,
        "start": timeutil.fmt(start),
        "end": timeutil.fmt(end),
        "as_of": timeutil.fmt(as_of),
        "complete": now >= end,
        "gpu": {"hours": round(gpu["hours"], 4), "usd": round(gpu["usd"], 4), "sessions": gpu["sessions"],
                "running": gpu["running"], "projected_hours": round(projected_h, 4),
                "projected_usd": round(projected_gpu, 4)},
        "storage": {"hours_stopped": round(storage["hours_stopped"], 4), "usd": round(storage["usd"], 4),
                    "gb": storage_gb, "usd_per_gb_hour": per_gb, "projected_usd": round(projected_storage, 4)},
        "embeddings": {"texts": embed["texts"], "tokens": embed["tokens"], "usd": round(embed["cost_usd"], 6),
                       "projected_usd": round(projected_embed, 6)},
        "total": {"usd": round(total, 4), "projected_usd": round(projected_total, 4)},
        "budget": None if budget <= 0 else {
            "usd": budget, "remaining_usd": round(budget - total, 4),
            "projected_over": projected_total > budget},
        "hourly_rate": rate,
        "tiers": plan,
        "tier": None if fits is None else fits["name"],
        "tier_note": note,
    }
