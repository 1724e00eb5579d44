"""How long the GPU VM usually takes to start: measured, so the page can say so while it waits.

Why measured and not a constant: it depends on the host TensorDock gives the VM and on the model
Ollama loads; the last few starts that an ask waited for are the best guess for the next one.
Kept in brain.db's ``kv`` table (shared by every worker) as the last ``KEEP`` durations.
"""

from __future__ import annotations

import json
import sqlite3
import statistics

from brain.core.store import write_transaction

KEY = "gpu_start_seconds"
KEEP = 10


def record(conn: sqlite3.Connection, seconds: float) -> None:
    """Add one start's duration (from the ask's first status to the LLM answering)."""
    with write_transaction(conn):
        row = conn.execute("SELECT value FROM kv WHERE key = ?", (KEY,)).fetchone()
        past = json.loads(row[0]) if row else []
        past = [*past, round(float(seconds), 1)][-KEEP:]
        conn.execute("INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     (KEY, json.dumps(past)))


def usual(conn: sqlite3.Connection) -> float | None:
    """The median of the recorded starts, or None before the first one."""
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (KEY,)).fetchone()
    past = json.loads(row[0]) if row else []
    return round(statistics.median(past), 1) if past else None
