"""Forgetting on the server: tombstones stored in brain.db, the items they delete, undo.

Why a tombstone and not only a delete: a collector re-sends an item whenever its source changes
(a file edited, a session continued, a page visited again), so a plain delete is undone by the
next ``brain collect``. A tombstone is the rule that deleted the items (``brain.shared.tombstones``);
ingest refuses every item it matches (``Store.upsert`` drops them and counts them as
``forgotten``) and the collectors fetch the rules and skip such items before they leave the
laptop. ``remove`` (undo) stops the refusing; it does not bring back what was deleted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from brain.core.store import filter_sql, write_transaction
from brain.shared import timeutil
from brain.shared.tombstones import Rule

# columns a rule is matched on: everything but the content
_MATCH_COLUMNS = "id, source, uri, project, created_at, updated_at, meta"


def _candidates(conn: sqlite3.Connection, rule: Rule) -> Iterator[dict[str, Any]]:
    """Items the indexed columns allow (id, source, project, time window); ``Rule.matches`` decides."""
    where, args = filter_sql("items", source=rule.source, project=rule.project, since=rule.since,
                             until=rule.until)
    if rule.id is not None:
        where += " AND items.id = ?"
        args.append(rule.id)
    if rule.id_prefix is not None:
        where += " AND substr(items.id, 1, ?) = ?"
        args += [len(rule.id_prefix), rule.id_prefix]
    if rule.path_glob is not None:
        where += " AND items.source = 'file'"
    for row in conn.execute(f"SELECT {_MATCH_COLUMNS} FROM items WHERE {where}", args):
        yield {**dict(row), "meta": json.loads(row["meta"] or "{}")}


def matching_ids(conn: sqlite3.Connection, rule: Rule) -> list[str]:
    """Ids of the stored items ``rule`` forgets."""
    return [it["id"] for it in _candidates(conn, rule) if rule.matches(it)]


def _row(r: sqlite3.Row) -> dict[str, Any]:
    return {"id": r["id"], "rule": json.loads(r["rule"]), "created_at": r["created_at"], "deleted": r["deleted"]}


def forget(conn: sqlite3.Connection, rule: Rule) -> tuple[dict[str, Any], int]:
    """Record the tombstone and delete what it matches, in one transaction; return (tombstone, deleted).

    Why one transaction: an ingest running at the same moment either finishes before (and its
    items are deleted here) or starts after (and sees the tombstone); nothing slips between.
    The same rule forgotten again keeps its tombstone and adds to its count."""
    with write_transaction(conn):
        ids = matching_ids(conn, rule)
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            conn.execute(f"DELETE FROM items WHERE id IN ({','.join('?' * len(part))})", part)
        conn.execute("INSERT INTO tombstones(rule_key, rule, created_at, deleted) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT(rule_key) DO UPDATE SET deleted = deleted + excluded.deleted",
                     (rule.key(), json.dumps(rule.as_dict(), sort_keys=True), timeutil.now(), len(ids)))
        row = conn.execute("SELECT * FROM tombstones WHERE rule_key = ?", (rule.key(),)).fetchone()
    return _row(row), len(ids)


def count(conn: sqlite3.Connection, rule: Rule) -> int:
    """How many stored items ``rule`` would forget (the page's and the CLI's confirmation)."""
    return len(matching_ids(conn, rule))


def list_tombstones(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [_row(r) for r in conn.execute("SELECT * FROM tombstones ORDER BY id")]


def remove(conn: sqlite3.Connection, tombstone_id: int) -> dict[str, Any] | None:
    """Undo: drop one tombstone (items it deleted stay deleted); None when there is no such id."""
    with write_transaction(conn):
        row = conn.execute("SELECT * FROM tombstones WHERE id = ?", (tombstone_id,)).fetchone()
        if row is None:
            return None
        conn.execute("DELETE FROM tombstones WHERE id = ?", (tombstone_id,))
    return _row(row)
