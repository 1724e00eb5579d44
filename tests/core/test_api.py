"""brain-api over Flask's test client: auth, ingest, read, delete, forget, stats, and every bad input."""

from __future__ import annotations

import sqlite3

import pytest

from brain.api import create_app

ITEMS = [
    {"id": "note:git", "source": "note", "title": "Git tips", "project": "/src/brain",
     "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-02T10:00:00Z",
     "content": "To undo the last commit but keep the changes: git reset --soft HEAD~1.\n\n"
                "To throw local work away: git reset --hard origin/main."},
    {"id": "note:cook", "source": "note", "title": "Cooking", "project": "/home/kitchen",
     "created_at": "2026-10-01T10:00:00Z", "content": "Pasta needs plenty of salted boiling water."},
    {"id": "file:host:/src/brain/db.py", "source": "file", "title": "db.py", "project": "/src/brain",
     "uri": "file://host/src/brain/db.py", "meta": {"language": "python"},
     "created_at": "2026-11-20T09:00:00Z",
     "content": "import sqlite3\n\n\ndef connect(path):\n    conn = sqlite3.connect(path)\n"
                "    conn.execute('PRAGMA journal_mode=WAL')\n    return conn\n"},
]


def post(client, auth, items):
    return client.post("/api/v1/items", json={"items": items}, headers=auth)


def count_items(db_path) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT count(*) FROM items").fetchone()[0]


# ---------------------------------------------------------------- auth


def test_healthz_needs_no_token(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json == {"status": "ok"}


@pytest.mark.parametrize("path", ["/readyz", "/api/v1/stats", "/api/v1/search?q=x", "/api/v1/items/note:x"])
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer "])
def test_missing_or_wrong_token_is_401_json(client, path, header):
    headers = {"Authorization": header} if header else {}
    r = client.get(path, headers=headers)
    assert r.status_code == 401
    assert r.json["error"]["code"] == "unauthorized"


def test_post_without_token_stores_nothing(client, db_path):
    r = client.post("/api/v1/items", json={"items": ITEMS})
    assert r.status_code == 401
    assert count_items(db_path) == 0


def test_server_without_tokens_refuses_everything(db_path):
    c = create_app({"server.db_path": str(db_path)}).test_client()
    r = c.get("/api/v1/stats", headers={"Authorization": "Bearer anything"})
    assert r.status_code == 401
    assert "no API tokens" in r.json["error"]["message"]


# ---------------------------------------------------------------- ingest


def test_ingest_counts_inserted_updated_unchanged(client, auth):
    r = post(client, auth, ITEMS)
    assert r.status_code == 200
    assert r.json["inserted"] == 3 and r.json["updated"] == 0 and r.json["unchanged"] == 0
    assert r.json["queued"] >= 3  # every chunk text waits for its vector
    r = post(client, auth, ITEMS)
    assert r.json == {"inserted": 0, "updated": 0, "unchanged": 3, "queued": 0, "forgotten": 0}
    changed = dict(ITEMS[1], content="Pasta needs plenty of salted boiling water. Stir often.")
    r = post(client, auth, [changed, ITEMS[0]])
    assert r.json["updated"] == 1 and r.json["unchanged"] == 1 and r.json["inserted"] == 0


def test_item_without_times_is_unchanged_when_resent(client, auth):
    item = {"id": "note:plain", "source": "note", "content": "no timestamps given"}
    assert post(client, auth, [item]).json["inserted"] == 1
    assert post(client, auth, [item]).json["unchanged"] == 1


def test_get_item_returns_everything_and_pages_content(client, auth):
    post(client, auth, ITEMS)
    r = client.get("/api/v1/items/note:git", headers=auth)
    assert r.status_code == 200
    body = r.json
    assert body["title"] == "Git tips" and body["project"] == "/src/brain"
    assert body["created_at"] == "2026-11-01T10:00:00.000Z" and body["updated_at"] == "2026-11-02T10:00:00.000Z"
    assert body["content"] == ITEMS[0]["content"] and len(body["content_hash"]) == 64 and body["chunks"] >= 1
    page = client.get("/api/v1/items/note:git?offset=0&limit=20", headers=auth).json
    assert page["content"] == ITEMS[0]["content"][:20] and page["next_offset"] == 20
    assert page["content_total"] == len(ITEMS[0]["content"])
    last = client.get(f"/api/v1/items/note:git?offset=20&limit={10**6}", headers=auth).json
    assert page["content"] + last["content"] == ITEMS[0]["content"] and last["next_offset"] is None


def test_item_id_with_slashes_round_trips(client, auth):
    post(client, auth, ITEMS)
    r = client.get("/api/v1/items/file:host:/src/brain/db.py", headers=auth)
    assert r.status_code == 200 and r.json["meta"] == {"language": "python"}


def test_list_items_newest_first_with_filters(client, auth):
    post(client, auth, ITEMS)
    r = client.get("/api/v1/items?project=/src/brain", headers=auth).json
    assert [i["id"] for i in r["items"]] == ["file:host:/src/brain/db.py", "note:git"]
    assert "content" not in r["items"][0]
    r = client.get("/api/v1/items?limit=1", headers=auth).json
    assert len(r["items"]) == 1 and r["next_offset"] == 1
    r = client.get("/api/v1/items?since=2026-11-10", headers=auth).json
    assert [i["id"] for i in r["items"]] == ["file:host:/src/brain/db.py"]


def test_delete_item_removes_it_and_its_chunks_from_search(client, auth, db_path):
    post(client, auth, ITEMS)
    assert client.delete("/api/v1/items/note:cook", headers=auth).json == {"deleted": 1}
    assert client.get("/api/v1/items/note:cook", headers=auth).status_code == 404
    assert client.delete("/api/v1/items/note:cook", headers=auth).status_code == 404
    hits = client.get("/api/v1/search?q=pasta salted water", headers=auth).json["results"]
    assert "note:cook" not in [h["id"] for h in hits]
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM chunks WHERE item_id = 'note:cook'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'pasta'").fetchone()[0] == 0


def test_forget_by_project_prefix_and_time_and_it_sticks(client, auth):
    post(client, auth, ITEMS)
    assert client.post("/api/v1/forget", json={"project": "/home/kitchen"}, headers=auth).json["deleted"] == 1
    assert client.post("/api/v1/forget", json={"id_prefix": "file:host:/src/"}, headers=auth).json["deleted"] == 1
    again = post(client, auth, ITEMS).json  # a collector re-sending them: refused, and said so
    assert again["forgotten"] == 2 and again["unchanged"] == 1 and again["inserted"] == 0
    r = client.post("/api/v1/forget", json={"source": "note", "until": "2026-11-01T12:00:00Z"}, headers=auth)
    assert r.json["deleted"] == 1 and r.json["tombstone"]["rule"] == {"source": "note",
                                                                       "until": "2026-11-01T12:00:00.000Z"}
    assert client.get("/api/v1/items", headers=auth).json["items"] == []


def test_stats_counts_per_source_and_the_backlog(app, client, auth, drain):
    queued = post(client, auth, ITEMS).json["queued"]
    s = client.get("/api/v1/stats", headers=auth).json
    assert s["items"] == {"note": 2, "file": 1}
    backlog = s["embedding"]["local/all-MiniLM-L6-v2"]
    assert backlog["queued"] == queued == s["missing_vectors"] and s["vectors"] == 0
    assert backlog["rate_per_min"] == 0 and backlog["eta_seconds"] is None  # nothing done yet: no estimate
    assert client.get("/readyz", headers=auth).json["queued"] == queued  # ready while a backlog exists
    assert drain(app) == queued
    s = client.get("/api/v1/stats", headers=auth).json
    backlog = s["embedding"]["local/all-MiniLM-L6-v2"]
    assert s["total_chunks"] == s["vectors"] >= 3 and s["missing_vectors"] == 0
    assert backlog == {"queued": 0, "failed": 0, "embedded": queued, "rate_per_min": queued, "eta_seconds": 0,
                       "last_error": None}
    assert s["embedding_model"] == "local/all-MiniLM-L6-v2"
    assert s["db_bytes"] > 0 and s["last_ingest_at"].endswith("Z")


def test_readyz_reports_db_and_embedder(client, auth):
    r = client.get("/readyz", headers=auth)
    assert r.status_code == 200
    assert r.json == {"status": "ready", "db": "ok", "embedder": "local/all-MiniLM-L6-v2", "queued": 0}


def test_readyz_is_503_when_embedder_unusable(db_path, auth, tmp_path):
    app = create_app({"server.db_path": str(db_path), "server.api_tokens": [auth["Authorization"][7:]],
                      "embed.provider": "local", "embed.local_model": str(tmp_path / "missing-model")})
    r = app.test_client().get("/readyz", headers=auth)
    assert r.status_code == 503 and "embedding model" in r.json["error"]["message"]


# ---------------------------------------------------------------- bad input: 4xx JSON, store untouched


def _bad(field, **changes):
    item = dict(ITEMS[0], **changes)
    return item, field


BAD_ITEMS = [
    _bad("source", source="fax"),
    _bad("source", source=None),
    _bad("id", id=""),
    _bad("id", id=123),
    _bad("id", id="claude:abc"),
    _bad("id", id="note:" + "x" * 600),
    _bad("content", content=None),
    _bad("content", content=["not", "a", "string"]),
    _bad("title", title=42),
    _bad("meta", meta="not an object"),
    _bad("created_at", created_at="yesterday"),
    _bad("updated_at", updated_at="2026-13-45"),
    _bad("uri", uri={"x": 1}),
    _bad("colour", colour="blue"),
]


@pytest.mark.parametrize("item,field", BAD_ITEMS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_ITEMS)])
def test_bad_item_rejects_whole_batch_naming_field_and_index(client, auth, db_path, item, field):
    r = post(client, auth, [ITEMS[1], ITEMS[2], item])
    assert r.status_code == 400, r.json
    err = r.json["error"]
    assert err["code"] == "invalid_item" and err["field"] == field and err["index"] == 2
    assert "items[2]" in err["message"]
    assert count_items(db_path) == 0


def test_missing_item_field_is_named(client, auth):
    item = {k: v for k, v in ITEMS[0].items() if k != "content"}
    r = post(client, auth, [item])
    assert r.status_code == 400 and r.json["error"]["field"] == "content" and r.json["error"]["index"] == 0


def test_duplicate_ids_in_one_batch_are_rejected(client, auth, db_path):
    r = post(client, auth, [ITEMS[0], ITEMS[1], ITEMS[0]])
    assert r.status_code == 400 and r.json["error"]["index"] == 2 and r.json["error"]["field"] == "id"
    assert count_items(db_path) == 0


def test_failed_batch_leaves_existing_items_as_they_were(client, auth):
    post(client, auth, ITEMS)
    before = client.get("/api/v1/items/note:git", headers=auth).json
    changed = dict(ITEMS[0], content="overwritten")
    r = post(client, auth, [changed, dict(ITEMS[1], source="bogus")])
    assert r.status_code == 400
    assert client.get("/api/v1/items/note:git", headers=auth).json == before


@pytest.mark.parametrize("body,code,status", [
    (b"{not json", "invalid_json", 400),
    (b"[1, 2, 3]", "invalid_body", 400),
    (b'{"items": "nope"}', "invalid_field", 400),
    (b'{"things": []}', "invalid_field", 400),
])
def test_malformed_bodies(client, auth, body, code, status):
    r = client.post("/api/v1/items", data=body, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == status and r.json["error"]["code"] == code


def test_non_json_content_type_is_415(client, auth):
    r = client.post("/api/v1/items", data="items=1", headers={**auth, "Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json["error"]["code"] == "unsupported_media_type"


def test_oversize_body_is_413(db_path, auth, tmp_path):
    app = create_app({"server.db_path": str(db_path), "server.api_tokens": [auth["Authorization"][7:]],
                      "server.max_body_bytes": 4096})
    big = dict(ITEMS[0], content="x" * 10_000)
    r = app.test_client().post("/api/v1/items", json={"items": [big]}, headers=auth)
    assert r.status_code == 413 and r.json["error"]["code"] == "request_entity_too_large"
    assert count_items(db_path) == 0


def test_too_many_items_is_413(db_path, auth):
    app = create_app({"server.db_path": str(db_path), "server.api_tokens": [auth["Authorization"][7:]],
                      "server.max_batch_items": 2})
    r = app.test_client().post("/api/v1/items", json={"items": ITEMS}, headers=auth)
    assert r.status_code == 413 and r.json["error"]["code"] == "too_many_items"


def test_item_content_over_limit_is_rejected(db_path, auth):
    app = create_app({"server.db_path": str(db_path), "server.api_tokens": [auth["Authorization"][7:]],
                      "server.max_item_bytes": 1024})
    r = app.test_client().post("/api/v1/items", json={"items": [dict(ITEMS[0], content="é" * 600)]}, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "content"


@pytest.mark.parametrize("query,field", [
    ("q=", "q"), ("k=5", "q"), ("q=x&k=0", "k"), ("q=x&k=101", "k"), ("q=x&k=ten", "k"),
    ("q=x&source=fax", "source"), ("q=x&since=last-week", "since"), ("q=x&until=2026-02-30", "until"),
    ("q=x&since=2026-11-02&until=2026-11-01", "since"), ("q=x&mode=magic", "mode"),
])
def test_bad_search_parameters(client, auth, query, field):
    r = client.get(f"/api/v1/search?{query}", headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == field


@pytest.mark.parametrize("body,field", [
    ({}, None), ({"source": "fax"}, "source"), ({"since": "soon"}, "since"), ({"everything": True}, "everything"),
])
def test_bad_forget_requests(client, auth, body, field):
    post(client, auth, ITEMS)
    r = client.post("/api/v1/forget", json=body, headers=auth)
    assert r.status_code == 400 and r.json["error"].get("field") == field
    assert len(client.get("/api/v1/items", headers=auth).json["items"]) == 3


def test_unknown_route_and_method_are_json(client, auth):
    r = client.get("/api/v1/nothing-here", headers=auth)
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    r = client.put("/api/v1/items", headers=auth)
    assert r.status_code == 405 and "error" in r.json
