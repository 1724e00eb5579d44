"""GET /api/v1/gpu, POST /api/v1/gpu/start|stop against the TensorDock stand-in over real HTTP."""

from __future__ import annotations

import time

import pytest

from tests.conftest import TOKEN
from tests.standins.tensordock_server import TensorDockStandIn

from .conftest import RATE, ledger, make_app, make_control, starts, stops


def _wait_ready(client, auth, timeout: float = 60.0) -> dict:
    """Poll the status until Ollama is ready (the deadline only turns a hang into a failure)."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get("/api/v1/gpu", headers=auth).get_json()
        if body["ollama"]["ready"] or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_without_a_gpu_vm_status_says_so_and_start_stop_are_409(client, auth) -> None:
    status = client.get("/api/v1/gpu", headers=auth)
    assert status.status_code == 200
    assert status.get_json()["configured"] is False and status.get_json()["state"] == "unmanaged"
    for path in ("/api/v1/gpu/start", "/api/v1/gpu/stop"):
        resp = client.post(path, headers=auth)
        assert resp.status_code == 409, path
        assert resp.get_json()["error"]["code"] == "gpu_not_configured"
        assert "gpu.instance_id" in resp.get_json()["error"]["message"]


def test_gpu_endpoints_need_the_token(client) -> None:
    assert client.get("/api/v1/gpu").status_code == 401
    assert client.post("/api/v1/gpu/start").status_code == 401
    assert client.get("/api/v1/cost").status_code == 401


def test_instance_without_tensordock_token_is_a_clear_error(gpu_settings, auth) -> None:
    client = make_app(gpu_settings, **{"gpu.tensordock_token": ""}).test_client()
    resp = client.get("/api/v1/gpu", headers=auth)
    assert resp.status_code == 409
    assert "TENSORDOCK_API_TOKEN" in resp.get_json()["error"]["message"]


def test_start_status_stop_cycle_is_booked(gpu_settings, auth, td: TensorDockStandIn, vm: str, db_path) -> None:
    client = make_app(gpu_settings).test_client()
    before = client.get("/api/v1/gpu", headers=auth).get_json()
    assert before["state"] == "stopped" and before["instance_id"] == vm
    assert before["ip"].startswith("203.0.113.")
    assert (before["rate_hourly"], before["rate_source"]) == (RATE, "tensordock")
    assert before["up_since"] is None and before["session_seconds"] == 0 and before["ollama"]["ready"] is False

    started = client.post("/api/v1/gpu/start", headers=auth)
    assert started.status_code == 202, started.get_json()
    assert started.get_json()["action"] == "started" and started.get_json()["state"] == "starting"
    again = client.post("/api/v1/gpu/start", headers=auth)
    assert again.status_code == 200 and again.get_json()["action"] == "none"

    up = _wait_ready(client, auth)
    assert up["state"] == "running" and up["ollama"]["ready"] is True
    assert up["up_since"] is not None and up["session_seconds"] > 0
    assert up["session_usd"] == pytest.approx(up["session_seconds"] / 3600 * RATE, abs=1e-4)
    assert up["in_flight"] == 0 and up["idle_stop_at"] > up["up_since"]

    stopped = client.post("/api/v1/gpu/stop", headers=auth, json={})
    assert stopped.status_code == 200 and stopped.get_json()["action"] == "stopped"
    assert stopped.get_json()["up_since"] is None
    assert client.post("/api/v1/gpu/stop", headers=auth).get_json()["action"] == "none"
    assert (starts(td), stops(td)) == (1, 1)
    assert ledger(db_path) == [("start", "api", RATE), ("stop", "api", RATE)]


def test_start_with_wait_answers_once_ollama_does(gpu_settings, auth) -> None:
    client = make_app(gpu_settings).test_client()
    resp = client.post("/api/v1/gpu/start", headers=auth, json={"wait": True})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["action"] == "started" and body["state"] == "running" and body["ollama"]["ready"] is True


def test_stop_is_refused_while_an_ask_is_in_flight_unless_forced(gpu_settings, auth, td, db_path) -> None:
    client = make_app(gpu_settings).test_client()
    assert client.post("/api/v1/gpu/start", headers=auth, json={"wait": True}).status_code == 200
    ticket = make_control(gpu_settings).begin_request("ask")
    refused = client.post("/api/v1/gpu/stop", headers=auth)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "gpu_requests_in_flight"
    assert "1 request(s)" in refused.get_json()["error"]["message"] and stops(td) == 0
    forced = client.post("/api/v1/gpu/stop", headers=auth, json={"force": True})
    assert forced.status_code == 200 and forced.get_json()["action"] == "stopped" and stops(td) == 1
    ticket.end()
    assert ledger(db_path)[-1] == ("stop", "api", RATE)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/gpu/start", {"force": "yes"}, "force"),
    ("/api/v1/gpu/start", {"wait": 1}, "wait"),
    ("/api/v1/gpu/start", {"bogus": True}, "bogus"),
    ("/api/v1/gpu/stop", {"wait": True}, "wait"),
])
def test_bad_bodies_name_the_field(gpu_settings, auth, td, path, body, field) -> None:
    resp = make_app(gpu_settings).test_client().post(path, headers=auth, json=body)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["field"] == field
    assert starts(td) == 0 and stops(td) == 0


def test_non_json_body_is_415(gpu_settings, auth) -> None:
    resp = make_app(gpu_settings).test_client().post("/api/v1/gpu/start", headers=auth, data="force",
                                                     content_type="text/plain")
    assert resp.status_code == 415


def test_tensordock_failures_are_502_with_its_message_never_the_token(gpu_settings, auth, td) -> None:
    client = make_app(gpu_settings).test_client()
    td.fail(401, path=r"^/instances/")
    resp = client.get("/api/v1/gpu", headers=auth)
    assert resp.status_code == 502
    err = resp.get_json()["error"]
    assert err["code"] == "tensordock_error" and "check the API token" in err["message"]
    assert td.token not in resp.get_data(as_text=True)
    td.fail(500, path=r"/start$")
    resp = client.post("/api/v1/gpu/start", headers=auth)
    assert resp.status_code == 502 and "start instance" in resp.get_json()["error"]["message"]
    assert ledger_is_empty(gpu_settings)


def ledger_is_empty(settings) -> bool:
    return ledger(settings["server.db_path"]) == []


def test_stop_and_start_from_the_dashboard_are_booked_when_polled(gpu_settings, auth, td, vm, db_path) -> None:
    client = make_app(gpu_settings).test_client()
    assert client.post("/api/v1/gpu/start", headers=auth, json={"wait": True}).status_code == 200
    td.set_status(vm, "Stopped")  # someone pressed stop in TensorDock's dashboard
    assert client.get("/api/v1/gpu", headers=auth).get_json()["state"] == "stopped"
    td.set_status(vm, "running")  # ... and start again
    assert client.get("/api/v1/gpu", headers=auth).get_json()["up_since"] is not None
    client.get("/api/v1/gpu", headers=auth)  # polling again books nothing new
    assert ledger(db_path) == [("start", "api", RATE), ("stop", "observed", RATE), ("start", "observed", RATE)]


def test_a_vm_found_running_is_booked_at_the_rate_setting_when_tensordock_has_none(
        gpu_settings, auth, td: TensorDockStandIn, db_path) -> None:
    vm = td.add_instance(status="running")
    td.instances[vm].pop("rateHourly")
    client = make_app(gpu_settings, **{"gpu.instance_id": vm, "gpu.hourly_rate": 0.35}).test_client()
    body = client.get("/api/v1/gpu", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
    assert (body["state"], body["rate_hourly"], body["rate_source"]) == ("running", 0.35, "setting")
    assert ledger(db_path) == [("start", "observed", 0.35)]
