"""Every bad request gets a JSON 4xx from the real server (gunicorn + brain-api), never a 500 or an
HTML page, and leaves the store as it was; slow and abandoned clients hold no worker (issue 12)."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from brain.core import store
from brain.shared import timeutil
from tests.conftest import ApiServer, stop_api_server
from tests.core.rawhttp import address, assert_json_error, request_bytes, send_raw, snapshot, start_server

HEAD_TIMEOUT = 2.0
READ_TIMEOUT = 2.0
GOOD = {"id": "note:good", "source": "note", "title": "Good", "content": "a good item",
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z", "meta": {"k": "v"}}
EARLY = "0001-01-01T00:00:00+01:00"  # year 0 in UTC
LATE = "9999-12-31T23:59:59-01:00"  # year 10000 in UTC


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    srv = start_server(tmp_path_factory.mktemp("hardening"), {
        "BRAIN_SERVER_HEAD_TIMEOUT": str(HEAD_TIMEOUT), "BRAIN_SERVER_READ_TIMEOUT": str(READ_TIMEOUT)})
    r = requests.post(srv.url + "/api/v1/items", json={"items": [GOOD]}, headers=srv.headers, timeout=60)
    assert r.status_code == 200, r.text
    yield srv
    stop_api_server(srv)
    assert "Traceback" not in srv.log(), srv.log()[-5000:]


@pytest.fixture
def unchanged(server: ApiServer) -> Iterator[None]:
    """The test's requests are all refused: the store and its integrity are as they were."""
    before = snapshot(server.db_path)
    yield
    assert snapshot(server.db_path) == before
    assert before[1] == "ok"


def post_json_text(server: ApiServer, path: str, text: str) -> requests.Response:
    """POST a JSON document given as text (escapes such as ``\\ud83d`` stay as the client wrote them)."""
    return requests.post(server.url + path, data=text.encode(), timeout=60,
                         headers={**server.headers, "Content-Type": "application/json"})


def assert_error(r: requests.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    error = r.json()["error"]
    assert set(error) >= {"code", "message"}, error
    if code:
        assert error["code"] == code, error
    return error


def item_text(field: str, raw_value: str) -> str:
    """A batch of one good item whose ``field`` is the JSON text ``raw_value``."""
    fields = {k: json.dumps(v) for k, v in {**GOOD, "id": "note:bad"}.items()}
    fields[field] = raw_value
    return '{"items": [' + json.dumps(GOOD) + ", {" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}]}"


# ---------------------------------------------------------------- one rule for text: no NUL, no lone surrogate

BAD_TEXT = {"lone surrogate": r'"PASSED \ud83d"', "low surrogate": r'"x\udc00y"', "NUL": r'"a\u0000b"'}
ITEM_FIELDS = ["id", "source", "title", "uri", "project", "created_at", "content"]


@pytest.mark.parametrize("field", ITEM_FIELDS)
@pytest.mark.parametrize("kind", list(BAD_TEXT))
def test_bad_text_in_any_item_field_is_400_naming_field_and_index(server, unchanged, field, kind):
    error = assert_error(post_json_text(server, "/api/v1/items", item_text(field, BAD_TEXT[kind])), 400,
                         "invalid_item")
    assert error["field"] == field and error["index"] == 1


@pytest.mark.parametrize("kind", list(BAD_TEXT))
@pytest.mark.parametrize("where", ["value", "key", "deep value"])
def test_bad_text_anywhere_in_meta_is_400(server, unchanged, kind, where):
    bad = BAD_TEXT[kind]
    meta = {"value": '{"a": ' + bad + "}", "key": "{" + bad + ": 1}",
            "deep value": '{"a": [{"b": [1, ' + bad + "]}]}"}[where]
    error = assert_error(post_json_text(server, "/api/v1/items", item_text("meta", meta)), 400, "invalid_item")
    assert error["field"] == "meta" and error["index"] == 1


@pytest.mark.parametrize("kind", list(BAD_TEXT))
def test_bad_text_in_the_question_or_a_filter_of_ask_is_400(server, unchanged, kind):
    for field in ("question", "project", "source"):
        body = {"question": "what?", "llm": False}
        text = json.dumps(body)[:-1] + f', "{field}": {BAD_TEXT[kind]}}}'
        if field == "question":
            text = text.replace('"question": "what?", ', "")
        assert assert_error(post_json_text(server, "/api/v1/ask", text), 400)["field"] == field


@pytest.mark.parametrize("kind", list(BAD_TEXT))
def test_bad_text_in_a_top_level_key_is_400(server, unchanged, kind):
    assert_error(post_json_text(server, "/api/v1/items", '{"items": [], ' + BAD_TEXT[kind] + ": 1}"), 400)


def test_nul_in_the_query_string_or_the_path_is_400(server, unchanged):
    h = server.headers
    for path, params in (("/api/v1/search", {"q": "a\x00b"}), ("/api/v1/items", {"project": "p\x00"}),
                         ("/api/v1/items", {"source\x00": "note"})):
        assert_error(requests.get(server.url + path, params=params, headers=h, timeout=30), 400, "invalid_parameter")
    assert_error(requests.get(server.url + "/api/v1/items/note:a%00b", headers=h, timeout=30), 400)
    assert_error(requests.delete(server.url + "/api/v1/items/note:good%00", headers=h, timeout=30), 400)


def test_invalid_utf8_in_the_query_string_is_replaced_not_a_500(server, unchanged):
    r = requests.get(server.url + "/api/v1/search?q=%ED%A0%BD%FF&mode=bm25", headers=server.headers, timeout=30)
    assert r.status_code == 200
    r.json()["query"].encode("utf-8")  # whatever werkzeug made of it, it is valid Unicode


def test_body_that_is_not_utf8_is_400(server, unchanged):
    r = requests.post(server.url + "/api/v1/items", data=b'{"items": ["\xff"]}', timeout=30,
                      headers={**server.headers, "Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")


# ---------------------------------------------------------------- numbers and nesting


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_nan_and_infinity_are_refused(server, unchanged, number):
    assert_error(post_json_text(server, "/api/v1/items", item_text("meta", '{"x": ' + number + "}")), 400,
                 "invalid_json")


def test_json_nested_100000_deep_is_400(server, unchanged):
    for doc in ("[" * 100_000 + "]" * 100_000, '{"items": ' + "[" * 100_000 + "]" * 100_000 + "}",
                '{"a": ' * 100_000 + "1" + "}" * 100_000):
        assert_error(post_json_text(server, "/api/v1/items", doc), 400, "invalid_json")


@pytest.mark.parametrize("depth", [3000, 900, 65])
def test_meta_nested_too_deep_is_400(server, unchanged, depth):
    meta = '{"a": ' * depth + "1" + "}" * depth
    assert_error(post_json_text(server, "/api/v1/items", item_text("meta", meta)), 400)


def test_meta_nested_a_little_is_stored_and_served_back(server):
    meta = {"a": {"b": [{"c": [1, 2.5, None, True, "ü"]}]}}
    item = {**GOOD, "id": "note:nested", "meta": meta}
    assert requests.post(server.url + "/api/v1/items", json={"items": [item]}, headers=server.headers,
                         timeout=60).status_code == 200
    assert requests.get(server.url + "/api/v1/items/note:nested", headers=server.headers,
                        timeout=30).json()["meta"] == meta


# ---------------------------------------------------------------- dates


@pytest.mark.parametrize("value", [EARLY, LATE, "10000-01-01", "0000-01-01", "2026-13-01", "yesterday"])
def test_times_outside_years_1_to_9999_in_utc_are_400_everywhere(server, unchanged, value):
    h, url = server.headers, server.url
    for field in ("created_at", "updated_at"):
        error = assert_error(post_json_text(server, "/api/v1/items", item_text(field, json.dumps(value))), 400,
                             "invalid_item")
        assert error["field"] == field
    for name in ("since", "until"):
        assert_error(requests.get(url + "/api/v1/items", params={name: value}, headers=h, timeout=30), 400)
        assert_error(requests.get(url + "/api/v1/search", params={"q": "x", name: value}, headers=h, timeout=30),
                     400)
        assert_error(requests.post(url + "/api/v1/ask", json={"question": "x", "llm": False, name: value},
                                   headers=h, timeout=30), 400)
        assert_error(requests.post(url + "/api/v1/forget", json={name: value}, headers=h, timeout=30), 400)


def test_created_after_updated_is_400(server, unchanged):
    item = {**GOOD, "id": "note:backwards", "created_at": "2026-02-01T00:00:00Z", "updated_at": "2026-01-01"}
    r = requests.post(server.url + "/api/v1/items", json={"items": [item]}, headers=server.headers, timeout=30)
    assert assert_error(r, 400, "invalid_item")["field"] == "created_at"


def test_years_before_1000_are_stored_zero_padded_and_compared_correctly(server):
    h, url = server.headers, server.url
    old = [{**GOOD, "id": f"note:year{y}", "created_at": f"{y:04d}-06-01T00:00:00Z",
            "updated_at": f"{y:04d}-06-02T00:00:00+01:00"} for y in (1, 999)]
    old.append({**GOOD, "id": "note:year1-offset", "created_at": "0001-01-01T00:30:00+00:30",
                "updated_at": "0001-01-01T00:30:00+00:30"})
    assert requests.post(url + "/api/v1/items", json={"items": old}, headers=h, timeout=60).status_code == 200
    got = requests.get(url + "/api/v1/items/note:year1", headers=h, timeout=30).json()
    assert got["created_at"] == "0001-06-01T00:00:00.000Z" and got["updated_at"] == "0001-06-01T23:00:00.000Z"
    assert requests.get(url + "/api/v1/items/note:year1-offset", headers=h,
                        timeout=30).json()["created_at"] == "0001-01-01T00:00:00.000Z"
    window = requests.get(url + "/api/v1/items", params={"since": "0999-01-01", "until": "0999-12-31"},
                          headers=h, timeout=30).json()["items"]
    assert [i["id"] for i in window] == ["note:year999"]
    newest_first = [i["id"] for i in requests.get(url + "/api/v1/items", params={"limit": 500}, headers=h,
                                                  timeout=30).json()["items"]]
    assert newest_first.index("note:good") < newest_first.index("note:year999") < newest_first.index("note:year1")


def test_the_migration_pads_years_stored_before_it(tmp_path):
    db = tmp_path / "old.db"
    conn = store.connect(db)
    store.migrate(conn)
    conn.execute("INSERT INTO items(id, source, created_at, updated_at, content, content_hash, ingested_at) "
                 "VALUES ('note:y1', 'note', '1-01-01T00:00:00.000Z', '999-01-01T00:00:00.000Z', '', '', ?)",
                 (timeutil.now(),))
    conn.execute("DELETE FROM schema_migrations WHERE name = 'zero-padded years'")
    assert store.migrate(conn)
    row = conn.execute("SELECT created_at, updated_at FROM items").fetchone()
    assert tuple(row) == ("0001-01-01T00:00:00.000Z", "0999-01-01T00:00:00.000Z")
    conn.close()


# ---------------------------------------------------------------- strict types, unknown fields


@pytest.mark.parametrize("body, field", [
    ({"question": "x", "k": 1.9}, "k"), ({"question": "x", "k": "3"}, "k"), ({"question": "x", "k": True}, "k"),
    ({"question": "x", "k": 0}, "k"), ({"question": "x", "k": 51}, "k"), ({"question": "x", "k": 10**30}, "k"),
    ({"question": 5}, "question"), ({"question": ["x"]}, "question"), ({"question": " "}, "question"),
    ({"question": "x", "stream": "yes"}, "stream"), ({"question": "x", "llm": 0}, "llm"),
    ({"question": "x", "show_thinking": None, "llm": "false"}, "llm"),
    ({"question": "x", "source": ["note"]}, "source"), ({"question": "x", "source": "nope"}, "source"),
    ({"question": "x", "project": 7}, "project"), ({"question": "x", "since": 20260101}, "since"),
    ({"question": "x", "llm": False, "top_k": 3}, "top_k"),
])
def test_ask_body_types_are_strict(server, unchanged, body, field):
    r = requests.post(server.url + "/api/v1/ask", json=body, headers=server.headers, timeout=30)
    assert assert_error(r, 400)["field"] == field


def test_ask_with_valid_types_answers(server):
    r = requests.post(server.url + "/api/v1/ask", json={"question": "good item", "k": 3, "llm": False,
                                                        "stream": False, "source": "note"},
                      headers=server.headers, timeout=60)
    assert r.status_code == 200 and r.json()["citations"][0]["id"] == "note:good"


@pytest.mark.parametrize("path, body", [
    ("/api/v1/items", {"items": [], "itmes": [], "dry": 1}),
    ("/api/v1/ask", {"question": "x", "llm": False, "questoin": "y"}),
    ("/api/v1/forget", {"source": "note", "sorce": "x"}),
])
def test_unknown_top_level_fields_are_400_naming_them(server, unchanged, path, body):
    error = assert_error(requests.post(server.url + path, json=body, headers=server.headers, timeout=30), 400)
    unknown = sorted(set(body) - {"items", "question", "llm", "source"})
    assert error["field"] == unknown[0] and all(name in error["message"] for name in unknown)


@pytest.mark.parametrize("body", ["[]", '"items"', "null", "3", "{"])
def test_a_body_that_is_not_an_object_is_400(server, unchanged, body):
    assert_error(post_json_text(server, "/api/v1/items", body), 400)


# ---------------------------------------------------------------- the HTTP layer: gunicorn's own errors as JSON


def raw(server: ApiServer, method: str, target: str, body: bytes | None = None, **headers: str):
    return send_raw(server.url, request_bytes(method, target, server.token, body, headers))


def chunked(*pieces: bytes) -> bytes:
    return b"".join(pieces)


def test_chunked_body_with_a_bad_size_line_is_400_json(server, unchanged):
    for body in (b"zz\r\n{}\r\n0\r\n\r\n", b"5\r\n{}\r\n0\r\n\r\n", b"-1\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX"):
        answer = raw(server, "POST", "/api/v1/items", body, **{"Transfer-Encoding": "chunked",
                                                                "Content-Type": "application/json"})
        assert_json_error(answer, 400)
        assert answer.rest == b"", answer.rest[:200]


def test_a_bad_chunked_body_nobody_reads_adds_no_error_page_after_the_answer(server):
    answer = raw(server, "GET", "/healthz", b"zz\r\n", **{"Transfer-Encoding": "chunked"})
    assert answer.status == 200 and answer.rest == b""


def test_a_good_chunked_body_is_read(server):
    doc = json.dumps({"items": [{**GOOD, "id": "note:chunked"}]}).encode()
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(doc), doc)
    answer = raw(server, "POST", "/api/v1/items", body, **{"Transfer-Encoding": "chunked",
                                                            "Content-Type": "application/json"})
    assert answer.status == 200 and answer.json()["inserted"] == 1


@pytest.mark.parametrize("request_head, status, code", [
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "headers_too_large"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(150)) + b"\r\n",
     431, "headers_too_large"),
    (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 8000) for i in range(20)) + b"\r\n",
     431, "headers_too_large"),
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\nHost: x\n\n", 400, "bad_request"),
    (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, "bad_request"),
    (b"G\x00T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", 400, "bad_request"),
    (b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}", 400,
     "bad_request"),
    (b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "bad_request"),
    (b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: br, chunked\r\n\r\n", 501,
     "not_implemented"),
])
def test_gunicorns_own_errors_are_json(server, unchanged, request_head, status, code):
    answer = send_raw(server.url, request_head)
    assert_json_error(answer, status, code)


@pytest.mark.parametrize("char", ["語", "😀", "é"])
def test_the_documented_2000_character_q_works_in_any_script(server, char):
    q = char * 2000
    assert len(quote(q)) >= 2000 * 6  # 18 kB in CJK, 24 kB in 4-byte characters
    r = requests.get(server.url + "/api/v1/search", params={"q": q, "mode": "bm25"}, headers=server.headers,
                     timeout=60)
    assert r.status_code == 200 and r.json()["query"] == q
    too_long = requests.get(server.url + "/api/v1/search", params={"q": q + char, "mode": "bm25"},
                            headers=server.headers, timeout=60)
    assert assert_error(too_long, 400, "invalid_parameter")["field"] == "q"


def test_a_body_over_the_limit_is_413_json(server, unchanged):
    answer = raw(server, "POST", "/api/v1/items", b"{}", **{"Content-Length": str(50 * 1024 * 1024)})
    assert_json_error(answer, 413)


# ---------------------------------------------------------------- slow and abandoned clients


def stalled_socket(server: ApiServer, data: bytes) -> socket.socket:
    sock = socket.create_connection(address(server.url), timeout=30)
    sock.sendall(data)
    return sock


def test_16_stalled_heads_leave_healthz_answering_within_a_second(server):
    half_heads = [b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-", b"GET /api/v1/sea", b"G"]
    stalled = [stalled_socket(server, half_heads[i % len(half_heads)]) for i in range(16)]
    try:
        for _ in range(10):
            started = time.monotonic()
            r = requests.get(server.url + "/healthz", timeout=1)
            assert r.status_code == 200 and time.monotonic() - started < 1.0
    finally:
        for sock in stalled:
            sock.close()


def read_answer(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes, waiting at most ``within`` seconds."""
    deadline = time.monotonic() + within
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_a_stalled_head_is_answered_408_json_and_closed(server):
    with stalled_socket(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n") as sock:
        started = time.monotonic()
        data = read_answer(sock, HEAD_TIMEOUT + 10)
        assert time.monotonic() - started >= HEAD_TIMEOUT - 0.5
    assert data.startswith(b"HTTP/1.1 408 ")
    assert json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


def test_a_stalled_body_is_answered_408_json_and_stores_nothing(server, unchanged):
    doc = json.dumps({"items": [{**GOOD, "id": "note:stalled"}]}).encode()
    head = request_bytes("POST", "/api/v1/items", server.token, doc)
    with stalled_socket(server, head[:-len(doc) // 2]) as sock:
        data = read_answer(sock, READ_TIMEOUT + 10)
    assert data.startswith(b"HTTP/1.1 408 "), data[:300]
    assert json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


def test_a_client_gone_mid_body_stores_nothing(server, unchanged):
    doc = json.dumps({"items": [{**GOOD, "id": "note:gone"}]}).encode()
    head = request_bytes("POST", "/api/v1/items", server.token, doc)
    stalled_socket(server, head[:-10]).close()
    # the next request on a fresh connection is served normally, and the item is not there
    assert requests.get(server.url + "/api/v1/items/note:gone", headers=server.headers, timeout=30).status_code == 404


def test_a_resent_batch_is_a_no_op(server):
    items = [{**GOOD, "id": f"note:resent{i}", "content": f"resent item {i}"} for i in range(20)]
    url, h = server.url + "/api/v1/items", server.headers
    first = requests.post(url, json={"items": items}, headers=h, timeout=60).json()
    assert first["inserted"] == 20
    before = snapshot(server.db_path)
    with sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True) as conn:
        stamps = conn.execute("SELECT id, ingested_at FROM items WHERE id LIKE 'note:resent%' ORDER BY id").fetchall()
    for _ in range(3):  # a collector killed after sending re-sends the same batch on each restart
        again = requests.post(url, json={"items": items}, headers=h, timeout=60).json()
        assert again == {**again, "inserted": 0, "updated": 0, "unchanged": 20, "queued": 0}
    assert snapshot(server.db_path) == before
    with sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT id, ingested_at FROM items WHERE id LIKE 'note:resent%' "
                            "ORDER BY id").fetchall() == stamps
