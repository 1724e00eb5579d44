"""brain.shared.http_retry: urllib3's Retry with an injected sleep, a capped Retry-After and a
timeout on every call, against the brain-api stand-in over real HTTP."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
from urllib3.response import HTTPResponse

from brain.shared import http_retry

from .standin_api import TOKEN, BrainApiStandIn


def _response(retry_after: str | None) -> HTTPResponse:
    return HTTPResponse(status=429, headers={"Retry-After": retry_after} if retry_after is not None else {})


def test_retry_after_in_seconds_or_as_a_date_is_honoured_within_the_cap() -> None:
    p = http_retry.policy(3, backoff=0.5, max_backoff=10.0)
    assert p.delay(_response("3")) == 3.0
    assert p.delay(_response("3600")) == 10.0
    soon = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert p.delay(_response(soon)) == 10.0


def test_a_garbled_retry_after_falls_back_to_the_backoff() -> None:
    p = http_retry.policy(3, backoff=0.5, max_backoff=10.0)
    assert p.delay(_response("soon, maybe")) == p.get_backoff_time() == 0.0


def test_waits_go_through_the_injected_sleep_and_grow(standin: BrainApiStandIn) -> None:
    sleeps: list[float] = []
    s = http_retry.session(http_retry.policy(3, backoff=0.25, max_backoff=0.75, sleep=sleeps.append), 5)
    standin.script = ["500", "502", "504"]
    resp = s.get(standin.url + "/healthz", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200 and http_retry.attempts(resp) == 4
    assert sleeps == [0.0, 0.5, 0.75]  # urllib3's backoff: at once, then doubling, capped


def test_a_status_still_failing_is_returned_with_its_attempts(standin: BrainApiStandIn) -> None:
    s = http_retry.session(http_retry.policy(1, backoff=0, max_backoff=0, sleep=lambda _: None), 5)
    standin.script = ["503", "503"]
    resp = s.get(standin.url + "/healthz")
    assert resp.status_code == 503 and http_retry.attempts(resp) == 2


def test_statuses_and_methods_limit_what_is_retried(standin: BrainApiStandIn) -> None:
    once = http_retry.session(http_retry.policy(3, backoff=0, max_backoff=0, statuses={429}, read=False,
                                                sleep=lambda _: None), 5)
    standin.script = ["500"]
    assert once.post(standin.url + "/api/v1/items", json={"items": []}).status_code == 500
    standin.script = ["drop"]
    with pytest.raises(requests.ConnectionError) as exc:
        once.post(standin.url + "/api/v1/items", json={"items": []})
    assert not http_retry.is_timeout(exc.value) and http_retry.attempts(exc.value) == 1
    assert standin.count("POST") == 2


def test_every_call_has_the_session_timeout(standin: BrainApiStandIn) -> None:
    s = http_retry.session(http_retry.policy(1, backoff=0, max_backoff=0, sleep=lambda _: None), 0.2)
    standin.script = ["timeout", "timeout"]
    with pytest.raises(requests.RequestException) as exc:
        s.get(standin.url + "/healthz")  # no timeout= here: the adapter's applies
    assert http_retry.is_timeout(exc.value) and http_retry.attempts(exc.value) == 2


def test_a_refused_connection_is_a_connect_failure_after_its_attempts() -> None:
    from tests.conftest import closed_port_url

    sleeps: list[float] = []
    s = http_retry.session(http_retry.policy(2, backoff=0.1, max_backoff=1, sleep=sleeps.append), 2)
    with pytest.raises(requests.ConnectionError) as exc:
        s.get(closed_port_url())
    assert http_retry.is_connect_failure(exc.value) and not http_retry.is_timeout(exc.value)
    assert http_retry.attempts(exc.value) == 3 and len(sleeps) == 2
    assert http_retry.short_reason(exc.value) == "connection refused"


def test_a_retry_is_logged_at_info_with_its_url_and_cause(standin: BrainApiStandIn, caplog) -> None:
    s = http_retry.session(http_retry.policy(1, backoff=0, max_backoff=0, sleep=lambda _: None), 5)
    standin.script = ["503"]
    with caplog.at_level("INFO", logger="brain.shared.http_retry"):
        assert s.get(standin.url + "/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    (record,) = caplog.records
    assert record.levelname == "INFO"
    assert record.getMessage() == f"GET {standin.url}/healthz: HTTP 503, retry 1 in 0.0 s"
