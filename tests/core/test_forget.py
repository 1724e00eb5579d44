"""Forgetting that sticks (issue 16, point 7), on the API: tombstones by id and by rule, refused on
ingest and counted, a dry-run count, the list and undo; the rules as both sides read them."""

from __future__ import annotations

import pytest

from brain.core import store
from brain.shared import tombstones
from brain.shared.tombstones import Rule, RuleError, parse_rule

PAGE = {"id": "browser:chrome-default:1a2b", "source": "browser", "title": "Statement", "uri":
        "https://online.bank.example/statements?id=7", "created_at": "2026-03-09T08:00:00Z",
        "updated_at": "2026-03-10T09:00:00Z", "content": "Statement March", "meta": {"domain": "online.bank.example"}}
OTHER_PAGE = dict(PAGE, id="browser:chrome-default:9f9f", uri="https://docs.python.org/3/", title="Python docs",
                  content="Python docs")
FILE = {"id": "file:laptop:/home/me/private/diary.md", "source": "file", "title": "private/diary.md",
        "uri": "file://laptop/home/me/private/diary.md", "project": "/home/me/private",
        "created_at": "2026-03-10T10:00:00Z", "updated_at": "2026-03-10T10:00:00Z", "content": "dear diary",
        "meta": {"path": "/home/me/private/diary.md"}}
CODE = dict(FILE, id="file:laptop:/home/me/code/app.py", uri="file://laptop/home/me/code/app.py",
            project="/home/me/code", title="code/app.py", content="def app(): pass",
            meta={"path": "/home/me/code/app.py"})
SESSION = {"id": "claude:55604662-cf2a-4331-851a-ec234028f8ca", "source": "claude", "title": "Fix the test",
           "project": "/home/me/code", "created_at": "2026-03-10T14:00:00Z", "updated_at": "2026-03-10T15:00:00Z",
           "content": "user: the test is flaky\nassistant: let us look", "meta": {}}
ALL = [PAGE, OTHER_PAGE, FILE, CODE, SESSION]


def post(client, auth, items):
    r = client.post("/api/v1/items", json={"items": items}, headers=auth)
    assert r.status_code == 200, r.json
    return r.json


def forget(client, auth, **body):
    r = client.post("/api/v1/forget", json=body, headers=auth)
    assert r.status_code == 200, r.json
    return r.json


def ids(client, auth) -> set[str]:
    return {it["id"] for it in client.get("/api/v1/items?limit=500", headers=auth).json["items"]}


@pytest.mark.parametrize("rule,gone", [
    ({"id": SESSION["id"]}, {SESSION["id"]}),
    ({"domain": "bank.example"}, {PAGE["id"]}),
    ({"domain": "https://Online.Bank.Example/x"}, {PAGE["id"]}),
    ({"path_glob": "/home/me/private/*"}, {FILE["id"]}),
    ({"path_glob": "*.py"}, {CODE["id"]}),
    ({"project": "/home/me/code/"}, {CODE["id"], SESSION["id"]}),
    ({"source": "file", "project": "/home/me/code"}, {CODE["id"]}),
    ({"id_prefix": "browser:"}, {PAGE["id"], OTHER_PAGE["id"]}),
    ({"since": "2026-03-10T13:00:00Z"}, {SESSION["id"]}),
])
def test_a_forgotten_item_is_deleted_and_refused_when_sent_again(client, auth, rule, gone):
    post(client, auth, ALL)
    assert client.post("/api/v1/forget", json={**rule, "dry_run": True}, headers=auth).json["matches"] == len(gone)
    assert ids(client, auth) == {it["id"] for it in ALL}  # a dry run changes nothing
    answer = forget(client, auth, **rule)
    assert answer["deleted"] == len(gone)
    assert ids(client, auth) == {it["id"] for it in ALL} - gone
    # a collector sends everything again, changed: the forgotten ones are dropped and counted, the rest stored
    changed = [dict(it, content=it["content"] + " (edited)") for it in ALL]
    again = post(client, auth, changed)
    assert again["forgotten"] == len(gone) and again["updated"] == len(ALL) - len(gone)
    assert ids(client, auth) == {it["id"] for it in ALL} - gone
    for item_id in gone:
        assert client.get(f"/api/v1/items/{item_id}", headers=auth).status_code == 404
    hits = client.get("/api/v1/search?q=diary statement flaky&mode=bm25", headers=auth).json["results"]
    assert not gone & {h["id"] for h in hits}


def test_tombstones_are_listed_once_per_rule_and_undo_lets_items_in_again(client, auth):
    post(client, auth, ALL)
    first = forget(client, auth, domain="bank.example")
    again = forget(client, auth, domain="BANK.example.")  # the same rule, written differently
    assert again["tombstone"]["id"] == first["tombstone"]["id"] and again["deleted"] == 0
    forget(client, auth, id=SESSION["id"])
    listed = client.get("/api/v1/tombstones", headers=auth).json["tombstones"]
    assert [t["rule"] for t in listed] == [{"domain": "bank.example"}, {"id": SESSION["id"]}]
    assert listed[0]["deleted"] == 1 and listed[0]["created_at"].endswith("Z")

    r = client.delete(f"/api/v1/tombstones/{first['tombstone']['id']}", headers=auth)
    assert r.status_code == 200 and r.json["tombstone"]["rule"] == {"domain": "bank.example"}
    assert client.delete(f"/api/v1/tombstones/{first['tombstone']['id']}", headers=auth).status_code == 404
    assert PAGE["id"] not in ids(client, auth)  # undo does not restore ...
    assert post(client, auth, [PAGE, SESSION])["forgotten"] == 1  # ... but accepts the page again
    assert PAGE["id"] in ids(client, auth) and SESSION["id"] not in ids(client, auth)


@pytest.mark.parametrize("body,field,code", [
    ({}, None, "missing_filter"),
    ({"dry_run": True}, None, "missing_filter"),
    ({"domain": "a b"}, "domain", "invalid_parameter"),
    ({"path_glob": "relative/*"}, "path_glob", "invalid_parameter"),
    ({"source": "fax"}, "source", "invalid_parameter"),
    ({"id": 7}, "id", "invalid_parameter"),
    ({"since": "2026-03-11", "until": "2026-03-10"}, "since", "invalid_parameter"),
    ({"id": "note:x", "dry_run": "yes"}, "dry_run", "invalid_parameter"),
    ({"url": "https://x.example"}, "url", "invalid_parameter"),
])
def test_bad_forget_bodies_name_the_field_and_store_no_tombstone(client, auth, body, field, code):
    r = client.post("/api/v1/forget", json=body, headers=auth)
    assert r.status_code == 400
    assert r.json["error"]["code"] in (code, "invalid_field") and r.json["error"].get("field") == field
    assert client.get("/api/v1/tombstones", headers=auth).json["tombstones"] == []


def test_forget_and_tombstones_need_the_token(client):
    assert client.post("/api/v1/forget", json={"source": "note"}).status_code == 401
    assert client.get("/api/v1/tombstones").status_code == 401
    assert client.delete("/api/v1/tombstones/1").status_code == 401


def test_a_rule_matches_as_the_store_filters_do():
    """The window reads like the item filters: active in it (updated at or after since, created at
    or before until); an item without times counts as now."""
    rule = parse_rule({"since": "2026-03-10", "until": "2026-03-10T23:59:59Z"})
    assert rule.matches(SESSION) and rule.matches(PAGE)  # the page's visits span the 10th
    assert not rule.matches(dict(PAGE, created_at="2026-03-11T00:00:01Z", updated_at="2026-03-12T00:00:00Z"))
    assert not rule.matches({"id": "note:new", "source": "note"})  # created now, not on the 10th
    assert Rule(path_glob="/home/me/*").matches(FILE)  # * crosses folders
    assert not Rule(path_glob="/home/me/*").matches(dict(PAGE, uri="https://x.example/home/me/a"))
    assert not Rule(domain="example.com").matches(dict(PAGE, uri="https://notexample.com/"))
    assert Rule(domain="example.com").matches(dict(PAGE, uri="https://a.b.example.com:8443/x"))
    with pytest.raises(RuleError) as exc:
        parse_rule({"source": "claude", "colour": "red"})
    assert exc.value.field == "colour"


def test_both_sides_know_the_same_sources():
    assert tombstones.SOURCES == store.SOURCES
