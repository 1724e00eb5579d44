"""brain.gpu.tensordock against the TensorDock stand-in, over real HTTP on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from brain.gpu import tensordock as td
from brain.gpu.tensordock import (
    PortForward,
    TensorDockAuthError,
    TensorDockClient,
    TensorDockError,
    TensorDockNotFound,
    TensorDockTimeout,
)
from tests.standins.tensordock_server import RTX_4090, TensorDockStandIn


@pytest.fixture
def server() -> Iterator[TensorDockStandIn]:
    with TensorDockStandIn() as s:
        yield s


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(server: TensorDockStandIn, sleeps: list[float]) -> Iterator[TensorDockClient]:
    with TensorDockClient(token=server.token, base_url=server.url, timeout=(1.0, 2.0), max_retries=3,
                          backoff=0.5, max_backoff=4.0, sleep=sleeps.append) as c:
        yield c


def _create(client: TensorDockClient, **kw) -> td.Instance:
    args = {"name": "gpu", "ssh_key": "ssh-ed25519 AAAAtest me@laptop", "location_id": "loc-fra-0001",
            "use_dedicated_ip": True}
    args.update(kw)
    return client.create_instance(**args)


# --- happy paths and response shapes


def test_create_sends_documented_body_with_bearer_token(client, server):
    inst = _create(client, cloud_init={"package_update": True})
    assert inst.id and inst.status == "running" and inst.name == "gpu"
    (call,) = server.calls("POST", "^/instances$")
    assert call.authorized
    attrs = call.body["data"]["attributes"]
    assert call.body["data"]["type"] == "virtualmachine"
    assert attrs["resources"] == {"vcpu_count": 4, "ram_gb": 16, "storage_gb": 100,
                                  "gpus": {RTX_4090: {"count": 1}}}
    assert attrs["location_id"] == "loc-fra-0001" and "hostnode_id" not in attrs
    assert attrs["image"] == "ubuntu2404" and attrs["useDedicatedIp"] is True
    assert attrs["cloud_init"] == {"package_update": True}


@pytest.mark.parametrize("wrap_get", [False, True])
def test_get_instance_reads_wrapped_and_unwrapped_bodies(wrap_get):
    with TensorDockStandIn(wrap_get=wrap_get) as server:
        vm = server.add_instance(status="StoppedDisassociated", ssh_port=20022, rate_hourly=0.4)
        with TensorDockClient(token=server.token, base_url=server.url) as client:
            inst = client.get_instance(vm)
    assert inst.id == vm
    assert inst.status == "stopped_disassociated"
    assert inst.ip.startswith("203.0.113.")
    assert inst.ssh_port == 20022
    assert inst.port_forwards == (PortForward(22, 20022),)
    assert inst.rate_hourly == 0.4
    assert (inst.vcpu, inst.ram_gb, inst.storage_gb) == (4, 16, 100)
    assert inst.gpus == {RTX_4090: 1}


def test_ssh_port_defaults_to_22_with_a_dedicated_ip(client, server):
    inst = client.get_instance(server.add_instance())
    assert inst.port_forwards == () and inst.ssh_port == 22


@pytest.mark.parametrize("shape", ["instances", "list", "attributes"])
def test_list_instances_accepts_every_known_shape(shape):
    with TensorDockStandIn(list_shape=shape) as server:
        a = server.add_instance(name="a", status="running")
        b = server.add_instance(name="b", status="Stopped")
        with TensorDockClient(token=server.token, base_url=server.url) as client:
            found = {i.id: i for i in client.list_instances()}
    assert set(found) == {a, b}
    assert found[a].status == "running" and found[b].status == "stopped"
    assert found[a].name == "a"


def test_start_stop_state_machine_and_wait_for_status():
    with TensorDockStandIn(transition_delay=0.2) as server:
        vm = server.add_instance(status="Stopped")
        with TensorDockClient(token=server.token, base_url=server.url) as client:
            assert client.start_instance(vm) == "starting"
            seen: list[str] = []
            inst = client.wait_for_status(vm, "running", timeout=5, interval=0.05,
                                          on_poll=lambda i: seen.append(i.status))
            assert inst.status == "running"
            assert seen[0] == "starting" and seen[-1] == "running"
            assert client.stop_instance(vm) == "stopping"
            inst = client.wait_for_status(vm, ["STOPPED"], timeout=5, interval=0.05)
            assert inst.status == "stopped"
            assert server.instance(vm)["status"] == "Stopped"  # mixed case on the wire


def test_wait_for_status_times_out_naming_the_last_status():
    with TensorDockStandIn(transition_delay=30) as server:
        vm = server.add_instance(status="Stopped")
        with TensorDockClient(token=server.token, base_url=server.url) as client:
            client.start_instance(vm)
            with pytest.raises(TensorDockTimeout, match="still 'starting'"):
                client.wait_for_status(vm, "running", timeout=0.2, interval=0.05)


def test_starting_a_running_instance_shows_tensordocks_message(client, server):
    vm = server.add_instance(status="running")
    with pytest.raises(TensorDockError, match="cannot be started while running") as exc:
        client.start_instance(vm)
    assert exc.value.status == 400


def test_delete_then_get_is_not_found_and_second_delete_reports_false(client, server):
    vm = server.add_instance()
    assert client.delete_instance(vm) is True
    with pytest.raises(TensorDockNotFound):
        client.get_instance(vm)
    assert client.delete_instance(vm) is False
    with pytest.raises(TensorDockNotFound, match="Instance not found"):
        client.delete_instance(vm, missing_ok=False)


def test_locations_and_hostnodes_are_parsed(client):
    locs = {loc.city: loc for loc in client.list_locations()}
    fra = locs["Frankfurt"]
    assert fra.is_eu and not locs["Dallas"].is_eu
    offer = fra.gpu(RTX_4090)
    assert offer is not None and offer.price_per_hr == 0.35 and offer.max_vcpus == 32
    assert offer.pricing["per_vcpu_hr"] == 0.003
    (node,) = client.list_hostnodes()
    assert node.id == "hn-fra-0001" and node.location_id == "loc-fra-0001" and node.country == "Germany"
    assert node.gpus[RTX_4090] == (2, 0.35)
    assert node.available_ports[:2] == (20000, 20001)
    assert client.get_hostnode("hn-fra-0001").id == "hn-fra-0001"


def test_hostnode_create_with_port_forwards(client, server):
    inst = _create(client, location_id=None, hostnode_id="hn-fra-0001", use_dedicated_ip=None,
                   port_forwards=[{"internal_port": 22, "external_port": 20003}])
    got = client.get_instance(inst.id)
    assert got.ssh_port == 20003
    assert 20003 not in client.get_hostnode("hn-fra-0001").available_ports


def test_hostnode_create_rejected_port_shows_tensordocks_message(client):
    with pytest.raises(TensorDockError, match="External port 80 is not available"):
        _create(client, location_id=None, hostnode_id="hn-fra-0001",
                port_forwards=[PortForward(22, 80)])


# --- picking a location


def test_cheapest_eu_location_skips_unavailable_too_small_and_non_eu(client):
    best = client.cheapest_eu_location()
    # Amsterdam has no 4090 free, Helsinki allows only 2 vCPU, Dallas is not in the EU.
    assert best.location.city == "Frankfurt"
    assert best.hourly == pytest.approx(0.35 + 4 * 0.003 + 16 * 0.002 + 100 * 0.00005)


def test_cheapest_eu_location_with_two_vcpus_takes_helsinki(client):
    best = client.cheapest_eu_location(vcpu=2)
    assert best.location.city == "Helsinki"
    assert best.hourly == pytest.approx(0.28 + 2 * 0.003 + 16 * 0.002 + 100 * 0.00005)


def test_cheapest_location_with_other_countries(client):
    assert client.cheapest_eu_location(countries=["United States"]).location.city == "Dallas"


def test_no_location_with_the_gpu_is_a_clear_error(client):
    with pytest.raises(TensorDockError, match="no EU location has 8 x geforcertx4090"):
        client.cheapest_eu_location(gpu_count=8)


# --- failures


def test_401_is_an_auth_error_with_tensordocks_message_and_no_retry(server, sleeps):
    with TensorDockClient(token="wrong-token-123", base_url=server.url, sleep=sleeps.append) as client, \
            pytest.raises(TensorDockAuthError) as exc:
        client.list_instances()
    assert exc.value.status == 401
    assert "Invalid or missing API token" in str(exc.value)
    assert "wrong-token-123" not in str(exc.value)
    assert len(server.calls()) == 1 and sleeps == []


def test_429_is_retried_honouring_retry_after(client, server, sleeps):
    server.fail(429, times=2, headers={"Retry-After": "2"}, path="^/instances$")
    assert client.list_instances() == []
    assert sleeps == [2.0, 2.0]
    assert len(server.calls("GET", "^/instances$")) == 3


def test_retry_after_is_capped(client, server, sleeps):
    server.fail(429, headers={"Retry-After": "3600"})
    client.list_locations()
    assert sleeps == [4.0]


def test_500_retried_with_backoff_then_gives_up_showing_the_message(client, server, sleeps):
    server.fail(500, times=10, body={"error": "Hostnode database unavailable"})
    with pytest.raises(TensorDockError, match=r"list locations failed \(HTTP 500\): Hostnode database unavailable"):
        client.list_locations()
    assert len(server.calls()) == 4  # 1 + max_retries
    assert len(sleeps) == 3 and sleeps[0] < sleeps[1] < sleeps[2] <= 4.0


def test_500_then_success_recovers(client, server, sleeps):
    server.fail(503, times=1)
    vm = server.add_instance()
    assert client.get_instance(vm).id == vm
    assert len(sleeps) == 1


def test_create_is_not_retried_on_500(client, server, sleeps):
    server.fail(500, path="^/instances$", method="POST")
    with pytest.raises(TensorDockError, match="HTTP 500"):
        _create(client)
    assert len(server.calls("POST")) == 1 and server.instances == {}


def test_create_is_retried_on_429(client, server, sleeps):
    server.fail(429, path="^/instances$", method="POST")
    inst = _create(client)
    assert len(server.calls("POST")) == 2 and list(server.instances) == [inst.id]


def test_error_inside_http_200_is_an_error(client, server):
    server.error_in_200("Insufficient balance: minimum $1 required")
    with pytest.raises(TensorDockError, match="Insufficient balance") as exc:
        _create(client)
    assert exc.value.status == 400


def test_error_inside_http_200_with_404_is_not_found(client, server):
    server.error_in_200("Instance not found", status_field=404)
    with pytest.raises(TensorDockNotFound):
        client.get_instance("whatever")


def test_slow_response_times_out_and_is_retried(server, sleeps):
    server.slow(1.0, times=1)
    vm = server.add_instance()
    with TensorDockClient(token=server.token, base_url=server.url, timeout=(1.0, 0.2), sleep=sleeps.append) as c:
        assert c.get_instance(vm).id == vm
    assert len(sleeps) == 1


def test_persistent_timeouts_give_a_clear_error(server, sleeps):
    server.slow(1.0, times=3)
    with TensorDockClient(token=server.token, base_url=server.url, timeout=(1.0, 0.1), max_retries=2,
                          sleep=sleeps.append) as c, pytest.raises(TensorDockError, match="list instances failed: timed out"):
        c.list_instances()


def test_create_is_not_retried_after_a_read_timeout(server, sleeps):
    server.slow(1.0, method="POST")
    with TensorDockClient(token=server.token, base_url=server.url, timeout=(1.0, 0.2), sleep=sleeps.append) as c, \
            pytest.raises(TensorDockError, match="timed out"):
        _create(c)
    assert len(server.calls("POST")) == 1


def test_dropped_connection_is_retried(client, server, sleeps):
    server.disconnect(path="^/locations$")
    assert client.list_locations()
    assert len(sleeps) == 1


def test_connection_refused_names_the_url(sleeps):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/v2"
    with TensorDockClient(token="t", base_url=url, max_retries=2, sleep=sleeps.append) as c, \
            pytest.raises(TensorDockError, match=f"could not connect to {url}"):
        c.list_locations()
    assert len(sleeps) == 2


def test_non_json_success_body_is_an_error(client, server):
    server.fail(200, body="<html>maintenance</html>")
    with pytest.raises(TensorDockError, match="not JSON"):
        client.list_locations()


def test_unknown_instance_is_not_found(client):
    with pytest.raises(TensorDockNotFound, match="get instance nope failed"):
        client.get_instance("nope")


# --- setup and validation


def test_token_from_environment(server, monkeypatch):
    monkeypatch.setenv(td.TOKEN_ENV, server.token)
    monkeypatch.setenv(td.BASE_URL_ENV, server.url)
    with TensorDockClient() as client:
        assert client.list_instances() == []
        assert server.token not in repr(client)


def test_missing_token_is_an_error(monkeypatch):
    monkeypatch.delenv(td.TOKEN_ENV, raising=False)
    with pytest.raises(TensorDockAuthError, match="TENSORDOCK_API_TOKEN"):
        TensorDockClient()


def test_bad_base_url_is_an_error():
    with pytest.raises(TensorDockError, match="base URL"):
        TensorDockClient(token="t", base_url="dashboard.tensordock.com")


@pytest.mark.parametrize(("kw", "message"), [
    ({"storage_gb": 70}, "at least 100"),
    ({"ssh_key": " "}, "SSH public key"),
    ({"gpu_count": 0}, "at least one GPU"),
    ({"hostnode_id": "hn-1"}, "exactly one of location_id and hostnode_id"),
    ({"location_id": None}, "exactly one of location_id and hostnode_id"),
    ({"port_forwards": [PortForward(22, 70000)]}, "out of range"),
])
def test_create_validates_before_calling_the_api(client, server, kw, message):
    with pytest.raises(ValueError, match=message):
        _create(client, **kw)
    assert server.calls("POST") == []


@pytest.mark.parametrize(("raw", "expected"), [
    ("running", "running"), ("Stopped", "stopped"), ("RUNNING", "running"),
    ("StoppedDisassociated", "stopped_disassociated"), ("stopping", "stopping"), (None, ""),
])
def test_normalize_status(raw, expected):
    assert td.normalize_status(raw) == expected


def test_error_message_shapes():
    assert td.error_message({"error": "x"}) == "x"
    assert td.error_message({"error": {"message": "y"}}) == "y"
    assert td.error_message({"message": "z", "status": 422}) == "z"
    assert td.error_message({"errors": [{"detail": "d"}]}) == "d"
    assert td.error_message({"status": "running"}) is None
    assert td.error_message({"data": {"id": "1"}}) is None


# --- the response models


def test_instance_model_reads_every_known_shape_and_converts_values():
    inst = td.parse_instance({"type": "VM", "id": 7, "attributes": {
        "status": "StoppedDisassociated", "portForwards": {"22": "20022"}, "rateHourly": "0.4",
        "resources": {"vcpus": "4", "gpus": [{"gpuV0Name": RTX_4090, "count": "1"}]}}})
    assert (inst.id, inst.status, inst.ssh_port, inst.rate_hourly, inst.vcpu) == ("7", "stopped_disassociated",
                                                                                   20022, 0.4, 4)
    assert inst.gpus == {RTX_4090: 1}
    bare = td.parse_instance({"instanceId": "a", "state": "RUNNING", "ip": None, "resources": None})
    assert (bare.id, bare.status, bare.ip, bare.gpus, bare.port_forwards) == ("a", "running", "", {}, ())


@pytest.mark.parametrize(("body", "message"), [
    ({"data": {"name": "no id"}}, "id: Field required"),
    ({"id": "x", "rateHourly": "cheap"}, "rateHourly: Input should be a valid number"),
    ({"data": ["not", "an", "object"]}, "expected a Instance object, got list"),
])
def test_an_instance_that_is_not_what_the_contract_says_names_the_field(body, message):
    with pytest.raises(ValueError, match=message):
        td.parse_instance(body)


def test_a_malformed_answer_is_an_error_of_the_operation_and_a_bad_list_item_is_skipped(client, server):
    vm = server.add_instance()
    server.fail(200, body={"data": {"id": vm, "portForwards": [{"internal_port": "ssh"}]}}, path="^/instances/")
    with pytest.raises(TensorDockError, match=rf"get instance {vm} failed: unexpected response: portForwards\.0"):
        client.get_instance(vm)
    server.fail(200, body={"data": {"instances": [{"id": vm, "status": "running"}, {"name": "no id"}]}})
    assert [i.id for i in client.list_instances()] == [vm]
