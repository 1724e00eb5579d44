"""The published schema (issue 14, point 5): GET /api/v1/openapi.json describes every route, the
models behind it validate the requests, and a property-based run of schemathesis against the real
server (gunicorn on loopback, a stand-in LLM) checks, for every generated request — valid ones and
ones the schema forbids — zero 5xx, every answer conforming to the document (status, content type,
body), every forbidden request refused with a 4xx, and a refused request leaving the store and its
integrity exactly as they were.

Why beside ``test_api_fuzz.py`` and not instead of it: schemathesis generates what the schema can
express (types, ranges, enums, unknown fields, missing ones); the fuzz test sends what no schema
describes (broken JSON, NaN, lone surrogates, 100,000 levels of nesting, odd request heads).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from brain.api import create_app, openapi_document
from brain.api import schema as api_schema
from brain.core import search
from brain.rag import ask as ask_core
from brain.shared import schema as shared_schema
from brain.shared import tombstones
from tests.ask.standin_llm import StandinLLM
from tests.conftest import TOKEN, ApiServer, stop_api_server
from tests.core.rawhttp import snapshot, start_server

EXAMPLES = 25  # per operation and phase: with the coverage phase ~1,200 requests over the 18 operations
DEADLINE = timedelta(seconds=20)  # one request; an ask embeds the question and packs on 2 loaded cores
TIME_BUDGET_S = 150

SEED = [{"id": f"note:schema-{i}", "source": "note", "title": f"schema {i}", "content": f"schema item {i}",
         "project": "/home/me/p", "created_at": "2026-03-10T10:00:00Z"} for i in range(5)]


@pytest.fixture(scope="module")
def llm() -> Iterator[StandinLLM]:
    server = StandinLLM().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm: StandinLLM) -> Iterator[ApiServer]:
    srv = start_server(tmp_path_factory.mktemp("schema"), {"BRAIN_LLM_BASE_URL": llm.base_url,
                                                           "BRAIN_LLM_MAX_RETRIES": "0"})
    assert requests.post(srv.url + "/api/v1/items", json={"items": SEED}, headers=srv.headers,
                         timeout=60).status_code == 200
    yield srv
    stop_api_server(srv)
    assert "Traceback" not in srv.log(), srv.log()[-5000:]


@pytest.fixture(scope="module")
def run_stats() -> Iterator[dict[str, Any]]:
    stats: dict[str, Any] = {"statuses": Counter(), "started": time.monotonic()}
    yield stats
    elapsed = time.monotonic() - stats["started"]
    sent = sum(stats["statuses"].values())
    print(f"schemathesis: {sent} requests in {elapsed:.0f} s: {dict(sorted(stats['statuses'].items()))}")
    assert elapsed < TIME_BUDGET_S, f"{sent} requests took {elapsed:.0f} s"


# The document as the server publishes it, built from the same routes without settings or a database
# (schemathesis parametrizes at import time; test_the_server_publishes_this_document checks the two agree).
published = schemathesis.openapi.from_dict(openapi_document())


@published.parametrize()
@settings(max_examples=EXAMPLES, deadline=DEADLINE, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_to_the_published_schema(case: Any, server: ApiServer,
                                                       run_stats: dict[str, Any]) -> None:
    before = snapshot(server.db_path)
    response = case.call(base_url=server.url, headers=server.headers, timeout=60)
    run_stats["statuses"][response.status_code] += 1
    # positive_data_acceptance is left out: a schema cannot say that since must not pass until, that
    # 0001-01-01T00:00:00+01:00 is year 0 in UTC, or that a forget needs one of its fields; each of
    # these is a 400 the tests of its endpoint assert
    case.validate_response(response, headers=server.headers, excluded_checks=[checks.positive_data_acceptance])
    after = snapshot(server.db_path)
    assert after[1] == "ok", after
    if response.status_code >= 400:
        assert after == before, f"a refused request ({response.status_code}) changed the store: {case.as_curl_command()}"


def test_the_server_publishes_this_document(server: ApiServer) -> None:
    r = requests.get(server.url + "/api/v1/openapi.json", headers=server.headers, timeout=30)
    assert r.status_code == 200 and r.json() == json.loads(json.dumps(openapi_document()))


# ---------------------------------------------------------------- the document itself


@pytest.fixture
def document(client, auth) -> dict[str, Any]:
    r = client.get("/api/v1/openapi.json", headers=auth)
    assert r.status_code == 200 and r.is_json
    return r.json


def test_the_document_is_openapi_3_1_and_covers_every_api_route(app, document) -> None:
    assert document["openapi"] == "3.1.0" and document["info"]["title"] == "brain-api"
    routes = {(_path(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}
              if rule.rule.startswith("/api/") or rule.rule in ("/healthz", "/readyz")}
    published = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routes == published
    assert len(published) == 18  # 16 paths: items and its id take two methods each
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and "default" in op["responses"], (method, path)
            assert any(s.startswith("2") for s in op["responses"]), (method, path)
    assert document["paths"]["/healthz"]["get"]["security"] == []


def _path(rule: str) -> str:
    import re

    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def test_the_document_needs_the_token_like_every_api_route(client) -> None:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"


def test_the_document_is_a_valid_openapi_schema(document) -> None:
    """schemathesis refuses a document that is not valid OpenAPI (it validates it on load)."""
    loaded = schemathesis.openapi.from_dict(document)
    labels = {op.ok().label for op in loaded.get_all_operations()}
    assert "POST /api/v1/items" in labels and "GET /api/v1/items/{item_id}" in labels


def test_the_item_in_the_document_is_the_shared_model(document) -> None:
    item = document["components"]["schemas"]["Item"]
    assert item["required"] == ["id", "source", "content"] and item["additionalProperties"] is False
    assert item["properties"]["source"]["enum"] == list(shared_schema.SOURCES)
    assert item["properties"]["id"]["maxLength"] == shared_schema.MAX_ID_LEN
    batch = document["paths"]["/api/v1/items"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch == {"$ref": "#/components/schemas/ItemBatch"}


def test_query_parameters_are_plain_and_say_an_empty_one_is_none(document) -> None:
    params = {p["name"]: p for p in document["paths"]["/api/v1/search"]["get"]["parameters"]}
    assert params["q"]["required"] is True and "allowEmptyValue" not in params["q"]
    assert params["k"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}
    assert params["source"]["allowEmptyValue"] is True and params["source"]["schema"]["enum"] == list(
        shared_schema.SOURCES)
    assert all("null" not in json.dumps(p["schema"]) for p in params.values())


def test_one_list_of_modes_sources_and_limits() -> None:
    assert api_schema.MODES == search.MODES and api_schema.MAX_QUESTION_CHARS == ask_core.MAX_QUESTION_CHARS
    assert tombstones.SOURCES is shared_schema.SOURCES


def test_answers_of_the_real_app_match_their_models(client, auth, drain) -> None:
    """The in-process twin of the schemathesis run, for the answers it rarely reaches (a full item,
    a forget, an undo, a timeline with entries of every kind)."""
    items = [*SEED, {"id": "claude:s1", "source": "claude", "content": "user: hi\nassistant: ho",
                     "created_at": "2026-03-10T10:00:00Z", "updated_at": "2026-03-10T11:00:00Z",
                     "project": "/home/me/p", "meta": {"resume": "claude --resume s1", "user_messages": 1}},
             {"id": "file:h:/home/me/p/x.py", "source": "file", "content": "def f():\n    pass\n",
              "created_at": "2026-03-10T09:00:00Z", "meta": {"language": "python", "path": "/home/me/p/x.py"}},
             {"id": "browser:d:1", "source": "browser", "content": "page", "uri": "https://ex.example/a",
              "created_at": "2026-03-10T08:00:00Z", "updated_at": "2026-03-10T12:00:00Z", "meta": {"visits": 3}}]
    answers = [(client.post("/api/v1/items", json={"items": items}, headers=auth), api_schema.IngestAnswer)]
    drain(client.application)
    answers += [
        (client.get("/api/v1/items?limit=2", headers=auth), api_schema.ItemList),
        (client.get("/api/v1/items/note:schema-1?offset=2&limit=3", headers=auth), api_schema.StoredItem),
        (client.get("/api/v1/search?q=schema", headers=auth), api_schema.SearchAnswer),
        (client.post("/api/v1/ask", json={"question": "schema?", "llm": False}, headers=auth), api_schema.AskAnswer),
        (client.get("/api/v1/timeline?day=2026-03-10", headers=auth), api_schema.TimelineAnswer),
        (client.get("/api/v1/timeline?since=2026-03-01&until=2026-03-31", headers=auth), api_schema.TimelineAnswer),
        (client.post("/api/v1/forget", json={"id": "note:schema-4", "dry_run": True}, headers=auth),
         api_schema.ForgetAnswer),
        (client.post("/api/v1/forget", json={"id": "note:schema-4"}, headers=auth), api_schema.ForgetAnswer),
        (client.get("/api/v1/tombstones", headers=auth), api_schema.TombstoneList),
        (client.delete("/api/v1/tombstones/1", headers=auth), api_schema.Undone),
        (client.delete("/api/v1/items/note:schema-3", headers=auth), api_schema.Deleted),
        (client.get("/api/v1/gpu", headers=auth), api_schema.GpuStatus),
        (client.get("/api/v1/cost", headers=auth), api_schema.CostAnswer),
        (client.get("/api/v1/stats", headers=auth), api_schema.Stats),
        (client.get("/readyz", headers=auth), api_schema.Ready),
        (client.get("/healthz"), api_schema.Health),
        (client.get("/api/v1/items/note:none", headers=auth), api_schema.ErrorAnswer),
        (client.post("/api/v1/gpu/start", headers=auth), api_schema.ErrorAnswer),
    ]
    for r, model in answers:
        model.model_validate(r.json)  # raises, naming the field, if the code and its model disagree
    timeline = answers[6][0].json
    assert {e["kind"] for g in timeline["groups"] for e in g["entries"]} == {"session", "file", "page", "note"}


# ---------------------------------------------------------------- the models validate the requests


@pytest.mark.parametrize("query, field, words", [
    ("q=x&k=3.0", "k", "must be an integer"), ("q=x&k=%D9%A3", "k", "must be an integer"),
    ("q=x&k=%2B3", None, None), ("q=%20%20", "q", "not only blanks"), ("q=x&mode=magic", "mode", "'bm25'"),
    ("q=x&source=", None, None), ("q=x&limit=abc", None, None),  # an empty parameter and an unknown one: ignored
])
def test_search_query_strings_are_read_by_their_model(client, auth, query, field, words) -> None:
    r = client.get(f"/api/v1/search?{query}&mode=bm25" if "mode=" not in query else f"/api/v1/search?{query}",
                   headers=auth)
    if field is None:
        assert r.status_code == 200, r.json
        return
    assert r.status_code == 400 and r.json["error"]["field"] == field and words in r.json["error"]["message"]


@pytest.mark.parametrize("body, field, words", [
    ({"question": "x", "k": 3.0}, "k", "must be a JSON integer"),
    ({"question": "x", "k": 0}, "k", "between 1 and 50"),
    ({"question": "x", "source": "note", "sorce": 1, "llm": False}, "sorce", "unknown field(s): sorce"),
    ({"question": "x" * (ask_core.MAX_QUESTION_CHARS + 1)}, "question", "longer than"),
    ({"question": "x", "until": "2026-01-01", "since": "2026-02-01"}, "since", "must not be after until"),
])
def test_ask_bodies_are_read_by_their_model(client, auth, body, field, words) -> None:
    r = client.post("/api/v1/ask", json=body, headers=auth)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_parameter"
    assert r.json["error"]["field"] == field and words in r.json["error"]["message"], r.json


def test_null_in_an_optional_body_field_means_its_default(client, auth) -> None:
    client.post("/api/v1/items", json={"items": SEED}, headers=auth)
    r = client.post("/api/v1/ask", json={"question": "schema", "llm": False, "k": None, "source": None,
                                         "stream": None, "show_thinking": None}, headers=auth)
    assert r.status_code == 200 and r.json["citations"]


@pytest.mark.parametrize("item, field, words", [
    ({"source": "fax"}, "source", "(got 'fax')"),
    ({"id": ""}, "id", "must not be empty"),
    ({"id": "claude:x"}, "id", "must start with 'note:'"),
    ({"created_at": "2026-13-45"}, "created_at", "items[1].created_at: '2026-13-45' is not an ISO-8601"),
    ({"colour": "blue", "size": 1}, "colour", "items[1] has unknown field(s): colour, size"),
    ({"meta": [1]}, "meta", "must be a JSON object"),
    ({"title": "x" * (shared_schema.MAX_TITLE_LEN + 1)}, "title", "longer than 2000 characters"),
])
def test_an_item_refusal_names_field_and_index_in_the_message(client, auth, item, field, words) -> None:
    bad = {"id": "note:bad", "source": "note", "content": "x", **item}
    r = client.post("/api/v1/items", json={"items": [SEED[0], bad]}, headers=auth)
    err = r.json["error"]
    assert r.status_code == 400 and err["code"] == "invalid_item" and err["index"] == 1 and err["field"] == field
    assert err["message"].startswith("items[1]") and words in err["message"], err


def test_an_item_that_is_not_an_object_names_only_its_index(client, auth) -> None:
    r = client.post("/api/v1/items", json={"items": [SEED[0], "note:x"]}, headers=auth)
    assert r.status_code == 400 and r.json["error"]["index"] == 1 and "field" not in r.json["error"]
    assert r.json["error"]["message"] == "items[1] must be a JSON object"


def test_an_unknown_top_level_field_is_named_before_a_bad_item(client, auth) -> None:
    r = client.post("/api/v1/items", json={"items": [{"source": "fax"}], "extra": 1}, headers=auth)
    assert r.status_code == 400 and r.json["error"] == {"code": "invalid_field", "message": "unknown field(s): extra",
                                                        "field": "extra"}


def test_the_store_refuses_a_bad_item_in_the_same_words(tmp_path) -> None:
    """Store.upsert validates with the same shared model when it is called without the API."""
    from brain.core import store

    with pytest.raises(store.ValidationError) as info:
        store.validate_item({"id": "note:a", "source": "note", "content": "x", "created_at": "soon"}, 4)
    assert (info.value.field, info.value.index) == ("created_at", 4)
    assert info.value.message == "items[4].created_at: 'soon' is not an ISO-8601 date or time"
    ok = shared_schema.Item.model_validate({"id": "note:a", "source": "note", "content": ""})
    assert store.validate_item(ok, 0) == {"id": "note:a", "source": "note", "title": "", "uri": None,
                                         "project": None, "created_at": None, "updated_at": None, "content": "",
                                         "meta": {}}


def test_a_405_says_which_methods_the_route_has(client, auth) -> None:
    r = client.put("/api/v1/items", headers=auth)
    assert r.status_code == 405 and r.json["error"]["code"] == "method_not_allowed"
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_openapi_is_built_once_per_worker(tmp_path) -> None:
    app = create_app({"server.db_path": str(tmp_path / "b.db"), "server.api_tokens": [TOKEN]})
    c, h = app.test_client(), {"Authorization": f"Bearer {TOKEN}"}
    first = c.get("/api/v1/openapi.json", headers=h).json
    assert app.extensions["brain_openapi"] == first == c.get("/api/v1/openapi.json", headers=h).json


def test_a_tombstone_id_past_sqlite_integers_is_404_not_500(client, auth) -> None:
    """Found by the schemathesis run: the id reached SQLite and overflowed (OverflowError, a 500)."""
    for tid in (str(1 << 63), "14561060341048668061696"):
        r = client.delete(f"/api/v1/tombstones/{tid}", headers=auth)
        assert r.status_code == 404 and r.json["error"]["code"] == "not_found"


def test_a_query_parameter_without_a_name_is_refused(client, auth) -> None:
    r = client.get("/api/v1/timeline?=0.0", headers=auth)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_parameter"
    assert "no name" in r.json["error"]["message"]
    assert client.get("/api/v1/timeline?source=", headers=auth).status_code == 200  # empty value: not given
