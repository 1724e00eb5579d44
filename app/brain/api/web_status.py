"""What the status page shows: the store's numbers, last delivery per source, the GPU VM, the month's cost.

The chart is an inline SVG built here (no script, no chart library, nothing to fetch): this month's
GPU hours so far and projected, against the plan's tiers (``gpu.tiers``), each tier with its price.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from brain.api.deps import get_store, get_text_model_for_app
from brain.api.gpu import get_gpu
from brain.core.embed import EmbedError
from brain.gpu import control as gpu

WIDTH, BAR_Y, BAR_H = 640, 34, 26


def stats() -> dict[str, Any]:
    try:
        model = get_text_model_for_app().model_id
    except EmbedError as exc:
        model = f"unavailable: {exc}"
    return get_store().stats(model)


def last_received(conn: sqlite3.Connection) -> dict[str, str]:
    """Per source, when brain-api last stored something from it (collectors send only what changed,
    so this is the last collect that brought news)."""
    return {r[0]: r[1] for r in conn.execute("SELECT source, max(ingested_at) FROM items GROUP BY source")}


def gpu_state() -> dict[str, Any]:
    """``GET /api/v1/gpu``'s answer, or why it cannot be had (TensorDock down is not a broken page)."""
    try:
        control = get_gpu()
    except gpu.GpuError as exc:
        return {"configured": True, "state": "unknown", "error": exc.message}
    if control is None:
        return {"configured": False, "state": "unmanaged"}
    try:
        return control.status()
    except gpu.GpuError as exc:
        return {"configured": True, "state": "unknown", "error": exc.message}


@dataclass(frozen=True)
class Mark:
    x: float
    label: str
    price: str


@dataclass(frozen=True)
class Chart:
    """Geometry of the cost chart, in SVG user units (the template draws it)."""

    width: int
    used_w: float
    projected_w: float
    marks: list[Mark]
    scale_hours: float
    title: str
    desc: str


def cost_chart(report: dict[str, Any]) -> Chart:
    """Bars for hours used and projected; a line at each tier's hours."""
    used = float(report["gpu"]["hours"])
    projected = float(report["gpu"].get("projected_hours") or used)
    tiers = report.get("tiers") or []
    top = max([used, projected] + [float(t["hours"]) for t in tiers] + [1.0]) * 1.08

    def x(hours: float) -> float:
        return round(hours / top * WIDTH, 1)

    marks = [Mark(x(float(t["hours"])), f"{t['name']} {t['hours']:g} h", f"${t['gpu_usd']:.2f}") for t in tiers]
    tier = report.get("tier") or "above every tier"
    title = f"GPU hours in {report['month']}: {used:.1f} used, {projected:.1f} projected"
    desc = (f"{used:.1f} GPU hours so far (${report['gpu']['usd']:.2f}); projected {projected:.1f} h "
            f"(${report['gpu'].get('projected_usd', 0):.2f}) for the month: {tier}. Tiers: "
            + "; ".join(f"{t['name']} {t['hours']:g} h ${t['gpu_usd']:.2f}" for t in tiers))
    return Chart(WIDTH, x(used), x(projected), marks, top, title, desc)
