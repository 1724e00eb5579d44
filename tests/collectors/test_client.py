"""brain.client.http.ApiClient against the brain-api stand-in, over real HTTP."""

from __future__ import annotations

import socket

import pytest

from brain.client.http import ApiClient, ApiError, ApiUnavailable

from .standin_api import TOKEN, BrainApiStandIn

ITEM = {"id": "note:1", "source": "note", "title": "t", "content": "hello"}


def make(standin: BrainApiStandIn, sleeps: list[float] | None = None, **kw) -> ApiClient:
    return ApiClient(standin.url, TOKEN, timeout=kw.pop("timeout", 5), retries=kw.pop("retries", 3), backoff=0.01,
                     sleep=(sleeps.append if sleeps is not None else lambda s: None), **kw)


def test_post_get_list_delete_round_trip(standin: BrainApiStandIn) -> None:
    c = make(standin)
    assert c.post_items([ITEM]) == {"inserted": 1, "updated": 0, "unchanged": 0, "queued": 0}
    assert c.get_item("note:1")["content"] == "hello"
    assert c.delete_item("note:1") == {"deleted": 1}
    with pytest.raises(ApiError) as exc:
        c.get_item("note:1")
    assert (exc.value.status, exc.value.code) == (404, "not_found")


def test_ids_with_slashes_and_spaces_reach_the_server_intact(standin: BrainApiStandIn) -> None:
    c = make(standin)
    item = {"id": "file:host:/home/dev/my project/a#b?.py", "source": "file", "content": "x"}
    c.post_items([item])
    assert c.get_item(item["id"])["id"] == item["id"]


def test_429_is_retried_honouring_retry_after(standin: BrainApiStandIn) -> None:
    standin.script = ["429", "429"]
    standin.retry_after = "2"
    sleeps: list[float] = []
    assert make(standin, sleeps).post_items([ITEM])["inserted"] == 1
    assert standin.count("POST") == 3
    assert len(sleeps) == 2 and all(1.5 <= s <= 2.5 for s in sleeps)


def test_persistent_500_raises_api_error_after_bounded_retries(standin: BrainApiStandIn) -> None:
    standin.script = ["500"] * 10
    sleeps: list[float] = []
    with pytest.raises(ApiError) as exc:
        make(standin, sleeps, retries=2).post_items([ITEM])
    assert exc.value.status == 500 and exc.value.retryable
    assert standin.url in str(exc.value)
    assert standin.count("POST") == 3
    assert sleeps[1] > sleeps[0]  # exponential backoff


def test_507_disk_full_is_retried_like_a_5xx(standin: BrainApiStandIn) -> None:
    standin.script = ["507"]
    sleeps: list[float] = []
    assert make(standin, sleeps).post_items([ITEM])["inserted"] == 1
    assert standin.count("POST") == 2 and len(sleeps) == 1


def test_errors_after_retries_say_how_many_attempts(standin: BrainApiStandIn) -> None:
    standin.script = ["503"] * 3
    with pytest.raises(ApiError) as exc:
        make(standin, retries=2).stats()
    assert exc.value.attempts == 3
    assert str(exc.value).endswith(f"({standin.url}/api/v1/stats, after 3 attempts)")
    standin.script = ["503"]
    with pytest.raises(ApiError) as once:
        make(standin, retries=0).stats()
    assert once.value.attempts == 1 and str(once.value).endswith(f"({standin.url}/api/v1/stats)")


def test_4xx_is_not_retried_and_carries_the_index(standin: BrainApiStandIn) -> None:
    standin.script = ["400:1"]
    with pytest.raises(ApiError) as exc:
        make(standin).post_items([ITEM, ITEM])
    assert (exc.value.status, exc.value.index, exc.value.retryable) == (400, 1, False)
    assert standin.count("POST") == 1


def test_wrong_token_is_a_401_api_error(standin: BrainApiStandIn) -> None:
    with pytest.raises(ApiError) as exc:
        ApiClient(standin.url, "wrong", retries=0).stats()
    assert exc.value.status == 401


def test_connection_refused_is_api_unavailable_naming_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        c = ApiClient(f"http://127.0.0.1:{port}", "t", timeout=2, retries=1, backoff=0.01, sleep=lambda s: None)
        with pytest.raises(ApiUnavailable) as exc:
            c.post_items([ITEM])
    assert f"127.0.0.1:{port}/api/v1/items" in str(exc.value)
    assert "connection failed (connection refused) after 2 attempts" in str(exc.value)


def test_timeout_is_retried_then_api_unavailable(standin: BrainApiStandIn) -> None:
    standin.script = ["timeout", "timeout"]
    with pytest.raises(ApiUnavailable) as exc:
        make(standin, timeout=0.2, retries=1).post_items([ITEM])
    assert "no answer within 0.2 s" in str(exc.value)


def test_dropped_connection_then_success(standin: BrainApiStandIn) -> None:
    standin.script = ["drop"]
    assert make(standin).post_items([ITEM])["inserted"] == 1


def test_non_json_error_body_still_gives_a_clear_error(standin: BrainApiStandIn) -> None:
    standin.script = ["html"]
    with pytest.raises(ApiError) as exc:
        make(standin, retries=0).stats()
    assert (exc.value.status, exc.value.code) == (502, "http_502")
    assert "502 Bad Gateway" in exc.value.message


def test_empty_url_is_rejected_with_the_setting_name() -> None:
    with pytest.raises(ValueError, match="BRAIN_API_URL"):
        ApiClient("", "t")
