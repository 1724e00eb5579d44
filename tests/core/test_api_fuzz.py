"""Property-based run against the real server (gunicorn + brain-api, issue 12): thousands of generated
requests, well-formed and not — hostile strings (lone surrogates, NUL), dates outside years 1-9999,
NaN, deep nesting, wrong types, unknown fields, broken JSON, odd request heads — and for every one:
no 5xx, every error in the contract's JSON shape, and a refused request leaves the store and its
integrity exactly as they were."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brain.core.store import SOURCES
from tests.conftest import ApiServer, stop_api_server
from tests.core.rawhttp import send_raw, snapshot, start_server

pytestmark = pytest.mark.slow

EXAMPLES = 1000  # each example sends 2-3 requests: well over 2,000 in all
MIN_REQUESTS = 2000
TIME_BUDGET_S = 180

NASTY = ["\ud83d", "PASSED \ud83d", "\udfff", "a\x00b", "\x00", "", " ", "é", "語" * 3, "😀", "\u202e",
         "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0999-01-01", "0001-01-01",
         "2026-01-01T00:00:00Z", "2026-13-45", "note:", "note:x", "claude:x", "file:h:/p", "../../etc/passwd",
         "%00", "\\u0000", "NaN", "' OR 1=1 --", "<script>", "\r\n", "a" * 600]
TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0999-06-01T00:00:00Z", "0001-01-01",
         "2026-01-01", "2026-02-30", "2026-01-01T25:00:00Z", "1e3", "now", "", "10000-01-01",
         "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00.123456789Z"]

texts = st.one_of(st.sampled_from(NASTY), st.text(st.characters(exclude_categories=()), max_size=40))
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
                    st.floats(allow_nan=True, allow_infinity=True), texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(texts, inner, max_size=4)),
                           max_leaves=12)
times = st.one_of(st.sampled_from(TIMES), texts, scalars)
sources = st.one_of(st.sampled_from(SOURCES), texts)


@st.composite
def items(draw: st.DrawFn) -> Any:
    """A batch item: mostly nearly valid (so validation gets past its first checks), never quite safe."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    source = draw(st.sampled_from(SOURCES))
    item: dict[str, Any] = {
        "id": draw(st.one_of(st.just(f"{source}:fuzz-{draw(st.integers(0, 30))}"),
                             texts.map(lambda t, s=source: f"{s}:{t}"), scalars)),
        "source": draw(st.one_of(st.just(source), sources, scalars)),
        "content": draw(st.one_of(texts, scalars)),
    }
    optional = {"title": st.one_of(texts, scalars), "uri": st.one_of(texts, scalars),
                "project": st.one_of(texts, scalars), "created_at": times, "updated_at": times,
                "meta": st.one_of(st.dictionaries(texts, json_values, max_size=4), json_values)}
    for name, strategy in optional.items():
        if draw(st.booleans()):
            item[name] = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        item[draw(texts)] = draw(scalars)  # an unknown field
    return item


def deep(depth: int) -> str:
    return '{"items": [{"id": "note:deep", "source": "note", "content": "", "meta": ' + '{"a": ' * depth + "1" + (
        "}" * depth) + "}]}"


@dataclass
class Req:
    method: str
    path: str  # with the query string, already percent-encoded
    body: bytes | None = None
    content_type: str = "application/json"
    raw_head: bytes | None = None  # sent as it is over a socket instead


def encode_query(params: dict[str, Any]) -> str:
    """A query string from any values, lone surrogates included (encoded as the bytes they would be)."""
    parts = []
    for key, value in params.items():
        k = quote(str(key).encode("utf-8", "surrogatepass"), safe="")
        v = quote(str(value).encode("utf-8", "surrogatepass"), safe="")
        parts.append(f"{k}={v}")
    return "&".join(parts)


def dump(value: Any) -> bytes:
    """JSON as a careless client writes it: NaN and Infinity included, lone surrogates as escapes."""
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def post_items(draw: st.DrawFn) -> Req:
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return Req("POST", "/api/v1/items", draw(st.sampled_from([deep(70), deep(3000), "[" * 100_000,
                                                                 '{"items": [', "{'items': []}", "\ufeff{}"])).encode())
    if kind == 1:
        return Req("POST", "/api/v1/items", draw(st.binary(max_size=64)))
    if kind == 2:
        return Req("POST", "/api/v1/items", dump({"items": []}), content_type=draw(st.sampled_from(
            ["text/plain", "application/x-www-form-urlencoded", "", "application/json; charset=latin-1"])))
    body: Any = {"items": draw(st.lists(items(), max_size=3))}
    if kind == 3:
        body = draw(json_values)
    elif kind == 4:
        body[draw(texts)] = draw(scalars)
    return Req("POST", "/api/v1/items", dump(body))


@st.composite
def ask(draw: st.DrawFn) -> Req:
    # never an LLM call (none runs here, and its 503 is not the point): llm is false or malformed
    body: dict[str, Any] = {"llm": draw(st.one_of(st.just(False), st.sampled_from(["false", 0, [], {}])))}
    fields = {"question": st.one_of(texts, scalars), "k": st.one_of(st.integers(-5, 60), scalars),
              "source": sources, "project": st.one_of(texts, scalars), "since": times, "until": times,
              "stream": st.one_of(st.booleans(), scalars), "show_thinking": st.one_of(st.booleans(), scalars)}
    for name, strategy in fields.items():
        if name == "question" or draw(st.booleans()):
            body[name] = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        body[draw(texts)] = draw(scalars)
    return Req("POST", "/api/v1/ask", dump(body))


@st.composite
def search(draw: st.DrawFn) -> Req:
    params: dict[str, Any] = {"q": draw(st.one_of(texts, st.text(max_size=2100)))}
    for name, strategy in {"k": st.one_of(st.integers(-5, 200), texts), "mode": st.sampled_from(
            ["bm25", "hybrid", "vector", "", "x"]), "source": sources, "project": texts, "since": times,
            "until": times}.items():
        if draw(st.booleans()):
            params[name] = draw(strategy)
    return Req("GET", "/api/v1/search?" + encode_query(params))


@st.composite
def read_items(draw: st.DrawFn) -> Req:
    if draw(st.booleans()):
        params = {name: draw(strategy) for name, strategy in {
            "limit": st.one_of(st.integers(-5, 600), texts), "offset": st.one_of(st.integers(-5, 10**12), texts),
            "source": sources, "since": times, "until": times, "project": texts}.items() if draw(st.booleans())}
        return Req("GET", "/api/v1/items?" + encode_query(params))
    item_id = quote(draw(texts).encode("utf-8", "surrogatepass"), safe=":/")
    return Req(draw(st.sampled_from(["GET", "DELETE"])), f"/api/v1/items/note:fuzz-{item_id}zz")


@st.composite
def forget(draw: st.DrawFn) -> Req:
    body = {name: draw(strategy) for name, strategy in {
        "source": st.one_of(texts, scalars), "project": st.one_of(texts, scalars), "id_prefix": st.one_of(
            texts, scalars), "since": times, "until": times}.items() if draw(st.booleans())}
    if draw(st.booleans()):
        body[draw(texts)] = draw(scalars)
    return Req("POST", "/api/v1/forget", dump(body))


header_text = st.text(st.characters(min_codepoint=0, max_codepoint=255, exclude_characters="\r\n"), max_size=30)


@st.composite
def odd_heads(draw: st.DrawFn) -> Req:
    """A complete request head with odd bytes in it; never a body (nothing for the server to wait for)."""
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "get", "G\x00T", "GET GET", "PROPFIND", "#"]))
    target = draw(st.one_of(st.sampled_from(["/healthz", "/readyz", "/api/v1/stats", "*", "http://x/healthz", ""]),
                            header_text.map(lambda t: "/api/v1/items/" + t)))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", "HTTP/1"]))
    lines = [f"{method} {target} {version}", "Connection: close"]
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(st.sampled_from(["X-A", "Host", "Authorization", "Bad Name", "", "X:Y"]), header_text))
        if name.lower().strip() in ("content-length", "transfer-encoding", "expect", "connection"):
            continue
        lines.append(f"{name}: {draw(header_text)}")
    return Req("RAW", "", raw_head=("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


any_request = st.one_of(post_items(), post_items(), ask(), search(), read_items(), forget(), odd_heads())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    srv = start_server(tmp_path_factory.mktemp("fuzz"))
    seed = [{"id": f"note:fuzz-{i}", "source": "note", "title": f"fuzz {i}", "content": f"fuzz item {i}"}
            for i in range(5)]
    assert requests.post(srv.url + "/api/v1/items", json={"items": seed}, headers=srv.headers,
                         timeout=60).status_code == 200
    yield srv
    stop_api_server(srv)
    assert "Traceback" not in srv.log(), srv.log()[-5000:]


@dataclass
class Outcome:
    status: int
    content_type: str
    body: bytes


def send(server: ApiServer, session: requests.Session, req: Req) -> Outcome:
    if req.raw_head is not None:
        answer = send_raw(server.url, req.raw_head)
        assert answer.rest == b"", answer.rest[:300]  # one answer, no error page after it
        return Outcome(answer.status, answer.headers.get("content-type", ""), answer.body)
    r = session.request(req.method, server.url + req.path, data=req.body, timeout=60,
                        headers={**server.headers, **({"Content-Type": req.content_type} if req.body is not None
                                                       else {})})
    return Outcome(r.status_code, r.headers.get("Content-Type", ""), r.content)


def check(outcome: Outcome, req: Req) -> None:
    where = f"{req.method} {req.path[:200]!r} {(req.body or req.raw_head or b'')[:300]!r}"
    assert outcome.status < 500, f"{outcome.status} for {where}: {outcome.body[:500]!r}"
    if outcome.status >= 400:
        assert outcome.content_type.startswith("application/json"), f"{outcome.content_type} for {where}"
        error = json.loads(outcome.body)["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), where


def test_generated_requests_never_get_a_5xx_and_refusals_change_nothing(server: ApiServer) -> None:
    sent = 0
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    session = requests.Session()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(any_request, min_size=2, max_size=3))
    def run(batch: list[Req]) -> None:
        nonlocal sent
        for req in batch:
            before = snapshot(server.db_path)
            outcome = send(server, session, req)
            sent += 1
            statuses[outcome.status] += 1
            check(outcome, req)
            after = snapshot(server.db_path)
            assert after[1] == "ok", after
            if outcome.status >= 400:
                assert after == before, f"a refused request ({outcome.status}) changed the store: {req}"

    try:
        run()
    finally:
        session.close()  # its kept-alive socket, or pytest's unraisable-warning check fails the run at exit
    elapsed = time.monotonic() - started
    print(f"{sent} requests in {elapsed:.0f} s: {dict(sorted(statuses.items()))}")
    assert sent >= MIN_REQUESTS, sent
    assert statuses[200] >= 100 and sum(n for s, n in statuses.items() if s >= 400) >= 1000, statuses
    assert elapsed < TIME_BUDGET_S, f"{sent} requests took {elapsed:.0f} s"
