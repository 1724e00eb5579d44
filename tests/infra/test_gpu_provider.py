"""The TensorDock dynamic provider (infra/tensordock/provider.py) against the TensorDock stand-in.

Under Pulumi mocks dynamic resources never run their provider, so the CRUD methods are called
directly here, over real HTTP to the stand-in. The last test goes further: it starts Pulumi's
own dynamic-provider host (``python -m pulumi.dynamic``, what the engine launches) in another
directory and drives Configure/Check/Create/Diff/Update/Delete through its gRPC interface, as
``pulumi up`` would; that proves the pickled provider loads where ``infra/`` is not importable.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi import dynamic
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.rpc import UNKNOWN
from tensordock.provider import DEFAULTS, GpuVm, GpuVmProvider

from brain.gpu import tensordock as tdapi
from tests.standins.tensordock_server import TensorDockStandIn

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKey me@laptop"


def _provider(server: TensorDockStandIn, token: str | None = None) -> GpuVmProvider:
    p = GpuVmProvider(poll_interval=0.02)
    p.configure(dynamic.ConfigureRequest(dynamic.Config(
        {"tensordock:token": token or server.token, "tensordock:baseUrl": server.url}, "brain")))
    return p


def _props(**kw: Any) -> dict[str, Any]:
    return {**DEFAULTS, "name": "tensordock-gpu", "ssh_key": SSH_KEY, **kw}


@pytest.fixture
def server() -> Iterator[TensorDockStandIn]:
    with TensorDockStandIn() as s:
        yield s


@pytest.fixture
def provider(server: TensorDockStandIn) -> GpuVmProvider:
    return _provider(server)


@pytest.fixture(autouse=True)
def _no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tdapi.TOKEN_ENV, raising=False)
    monkeypatch.delenv(tdapi.BASE_URL_ENV, raising=False)


# --- check and diff


def test_check_fills_defaults_and_accepts_the_plan(provider):
    result = provider.check({}, {"name": "gpu", "ssh_key": SSH_KEY})
    assert result.failures == []
    assert result.inputs["gpu"] == "geforcertx4090-pcie-24gb"
    assert (result.inputs["vcpu"], result.inputs["ram_gb"], result.inputs["storage_gb"]) == (4, 16, 100)


@pytest.mark.parametrize(("change", "prop", "reason"), [
    ({"storage_gb": 70}, "storage_gb", ">= 100"),
    ({"gpu_count": 0}, "gpu_count", ">= 1"),
    ({"ssh_key": " "}, "ssh_key", "SSH public key"),
    ({"location_id": "loc-1", "hostnode_id": "hn-1"}, "hostnode_id", "not both"),
    ({"power_state": "paused"}, "power_state", "running or stopped"),
    ({"port_forwards": [{"internal_port": 11434, "external_port": 20000}]}, "port_forwards", "Ollama port"),
    ({"port_forwards": [{"internal_port": 22}]}, "port_forwards", "needs internal_port and external_port"),
])
def test_check_rejects_bad_inputs(provider, change, prop, reason):
    failures = provider.check({}, _props(**change)).failures
    assert [(f.property, reason in f.reason) for f in failures] == [(prop, True)]


def test_check_lets_unknown_preview_values_through(provider):
    assert provider.check({}, _props(vcpu=UNKNOWN, port_forwards=UNKNOWN)).failures == []


def test_diff_nothing_changed(provider):
    outs = {**_props(), "instance_id": "x", "public_ip": "203.0.113.1", "ssh_port": 22, "hourly_rate": 0.4}
    result = provider.diff("x", outs, _props())
    assert result.changes is False and result.replaces == []


@pytest.mark.parametrize("key,value", [("vcpu", 8), ("ram_gb", 32), ("storage_gb", 200), ("gpu_count", 2),
                                       ("gpu", "h100-sxm5-80gb"), ("image", "ubuntu2204"), ("location_id", "loc-x"),
                                       ("ssh_key", "ssh-ed25519 AAAAother x"), ("use_dedicated_ip", False),
                                       ("port_forwards", [{"internal_port": 22, "external_port": 20001}])])
def test_diff_hardware_and_create_time_changes_replace(provider, key, value):
    result = provider.diff("x", _props(), _props(**{key: value}))
    assert result.changes is True and result.replaces == [key]
    assert result.delete_before_replace is True


def test_diff_power_state_updates_in_place(provider):
    result = provider.diff("x", _props(), _props(power_state="stopped"))
    assert result.changes is True and result.replaces == []


def test_diff_new_provider_code_updates_in_place(provider):
    result = provider.diff("x", {**_props(), "__provider": "old-code"}, {**_props(), "__provider": "new-code"})
    assert result.changes is True and result.replaces == []


def test_diff_unknown_value_counts_as_change(provider):
    assert provider.diff("x", _props(), _props(vcpu=UNKNOWN)).replaces == ["vcpu"]


# --- create / read / update / delete


def test_create_picks_the_cheapest_eu_location_and_returns_outputs(provider, server):
    result = provider.create(_props())
    inst = server.instance(result.id)
    assert inst["location_id"] == "loc-fra-0001" and inst["status"] == "running"
    outs = result.outs or {}
    assert outs["instance_id"] == result.id
    assert outs["public_ip"] == inst["ipAddress"]
    assert outs["ssh_port"] == 22
    assert outs["hourly_rate"] == pytest.approx(0.399)
    assert outs["status"] == "running" and outs["placed_location_id"] == "loc-fra-0001"
    assert outs["location_id"] == ""  # the input is kept as given, so the next diff sees no change
    assert provider.diff(result.id, outs, _props()).changes is False
    (create,) = server.calls("POST", "^/instances$")
    attrs = create.body["data"]["attributes"]
    assert attrs["location_id"] == "loc-fra-0001" and attrs["useDedicatedIp"] is True
    assert attrs["resources"]["gpus"] == {"geforcertx4090-pcie-24gb": {"count": 1}}


def test_create_in_a_configured_location(provider, server):
    result = provider.create(_props(location_id="loc-par-0005"))
    assert server.instance(result.id)["location_id"] == "loc-par-0005"
    assert (result.outs or {})["hourly_rate"] == pytest.approx(0.469)


def test_create_on_a_hostnode_with_port_forwards(provider, server):
    result = provider.create(_props(hostnode_id="hn-fra-0001", use_dedicated_ip=False,
                                    port_forwards=[{"internal_port": 22, "external_port": 20005}]))
    assert (result.outs or {})["ssh_port"] == 20005


def test_create_waits_for_running():
    with TensorDockStandIn(transition_delay=0.15) as server:
        result = _provider(server).create(_props())
        assert (result.outs or {})["status"] == "running"
        assert len(server.calls("GET", f"/instances/{result.id}$")) >= 2  # polled while starting


def test_create_stopped(provider, server):
    result = provider.create(_props(power_state="stopped"))
    assert server.instance(result.id)["status"] == "Stopped"
    assert (result.outs or {})["status"] == "stopped"


def test_create_that_never_gets_running_deletes_the_orphan():
    with TensorDockStandIn(transition_delay=30) as server:
        with pytest.raises(tdapi.TensorDockTimeout, match="still 'starting'"):
            _provider(server).create(_props(wait_timeout=0.2))
        assert server.instances == {}
        assert len(server.calls("DELETE")) == 1


def test_create_error_inside_200_shows_tensordocks_message(provider, server):
    server.error_in_200("Insufficient balance", method="POST")
    with pytest.raises(tdapi.TensorDockError, match="Insufficient balance"):
        provider.create(_props())
    assert server.instances == {}


def test_create_with_no_gpu_in_the_eu_fails_before_creating(provider, server):
    for loc in server.locations:
        for gpu in loc["gpus"]:
            gpu["max_count"] = 0 if loc["country"] != "United States" else gpu["max_count"]
    with pytest.raises(tdapi.TensorDockError, match="no EU location has 1 x geforcertx4090"):
        provider.create(_props())
    assert server.calls("POST") == []


def test_create_with_a_wrong_token_is_an_auth_error(server):
    with pytest.raises(tdapi.TensorDockAuthError, match="check the API token"):
        _provider(server, token="wrong").create(_props())


def test_missing_token_names_the_config_key_or_env(server):
    p = GpuVmProvider()
    p.configure(dynamic.ConfigureRequest(dynamic.Config({"tensordock:baseUrl": server.url}, "brain")))
    with pytest.raises(tdapi.TensorDockAuthError, match="TENSORDOCK_API_TOKEN"):
        p.create(_props())


def test_token_from_environment(server, monkeypatch):
    monkeypatch.setenv(tdapi.TOKEN_ENV, server.token)
    p = GpuVmProvider(poll_interval=0.02)
    p.configure(dynamic.ConfigureRequest(dynamic.Config({"tensordock:baseUrl": server.url}, "brain")))
    assert p.create(_props()).id in server.instances


def test_update_power_state_stops_and_starts(provider, server):
    created = provider.create(_props())
    outs = created.outs or {}
    stopped = provider.update(created.id, outs, _props(power_state="stopped")).outs or {}
    assert server.instance(created.id)["status"] == "Stopped" and stopped["status"] == "stopped"
    running = provider.update(created.id, stopped, _props(power_state="running")).outs or {}
    assert server.instance(created.id)["status"] == "running" and running["status"] == "running"
    assert running["placed_location_id"] == "loc-fra-0001"


def test_update_when_already_in_the_wanted_state_makes_no_call(provider, server):
    created = provider.create(_props())
    before = len(server.calls("POST"))
    provider.update(created.id, created.outs or {}, _props())
    assert len(server.calls("POST")) == before


def test_read_refreshes_and_reports_a_vanished_vm(provider, server):
    created = provider.create(_props())
    server.set_status(created.id, "StoppedDisassociated")
    read = provider.read(created.id, created.outs or {})
    assert read.id == created.id and (read.outs or {})["status"] == "stopped_disassociated"
    del server.instances[created.id]
    assert provider.read(created.id, created.outs or {}).id is None


def test_delete_and_delete_again(provider, server):
    created = provider.create(_props())
    provider.delete(created.id, created.outs or {})
    assert server.instances == {}
    provider.delete(created.id, created.outs or {})  # already gone: not an error


def test_delete_failure_is_raised_so_pulumi_keeps_the_vm_in_state(provider, server):
    created = provider.create(_props())
    server.fail(400, method="DELETE", body={"error": "Instance is locked by a running operation"})
    with pytest.raises(tdapi.TensorDockError, match="Instance is locked"):
        provider.delete(created.id, created.outs or {})
    assert created.id in server.instances


# --- secrets and pickling


def test_token_is_never_pickled(server):
    p = _provider(server, token="td-secret-token-abcdef")
    assert p._token == "td-secret-token-abcdef"
    blob = base64.b64decode(serialize_provider(p))
    assert b"td-secret-token-abcdef" not in blob


def test_gpu_vm_rejects_unknown_inputs():
    with pytest.raises(ValueError, match="unknown inputs"):
        GpuVm("x", {"token": "oops"})


def _serialize(props: dict[str, Any]) -> Any:
    """Properties to protobuf as the engine sends them (on a private loop: the mocks need the current one)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def _deserialize(struct: Any) -> dict[str, Any]:
    return rpc.deserialize_properties(struct)


def test_pulumi_dynamic_provider_host_runs_the_full_lifecycle(server, tmp_path: Path):
    """Pulumi's real provider host, in a directory where infra/ is not importable, over gRPC."""
    import grpc
    from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", tdapi.TOKEN_ENV)}
    proc = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.dynamic"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            stub.Configure(provider_pb2.ConfigureRequest(
                args=_serialize({"tensordock:token": server.token, "tensordock:baseUrl": server.url})))
            urn = "urn:pulumi:dev::brain::brain:infra:GpuVm$pulumi-python:dynamic/tensordock:GpuVm::gpu-vm"
            news = {"name": "tensordock-gpu", "ssh_key": SSH_KEY,
                    "__provider": serialize_provider(GpuVmProvider(poll_interval=0.02))}
            checked = stub.Check(provider_pb2.CheckRequest(urn=urn, olds=_serialize({}), news=_serialize(news)))
            assert list(checked.failures) == []
            inputs = _deserialize(checked.inputs)

            created = stub.Create(provider_pb2.CreateRequest(urn=urn, properties=_serialize(inputs)))
            outs = _deserialize(created.properties)
            assert created.id in server.instances
            assert outs["public_ip"].startswith("203.0.113.") and outs["hourly_rate"] == pytest.approx(0.399)

            same = stub.Diff(provider_pb2.DiffRequest(id=created.id, urn=urn, olds=_serialize(outs),
                                                      news=_serialize(inputs)))
            assert same.changes == provider_pb2.DiffResponse.DIFF_NONE
            bigger = stub.Diff(provider_pb2.DiffRequest(id=created.id, urn=urn, olds=_serialize(outs),
                                                        news=_serialize({**inputs, "vcpu": 8})))
            assert bigger.changes == provider_pb2.DiffResponse.DIFF_SOME
            assert list(bigger.replaces) == ["vcpu"] and bigger.deleteBeforeReplace

            updated = stub.Update(provider_pb2.UpdateRequest(
                id=created.id, urn=urn, olds=_serialize(outs), news=_serialize({**inputs, "power_state": "stopped"})))
            assert _deserialize(updated.properties)["status"] == "stopped"

            stub.Delete(provider_pb2.DeleteRequest(id=created.id, urn=urn, properties=_serialize(outs)))
            assert server.instances == {}
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert "Traceback" not in stderr, stderr


def test_create_stopped_waits_through_starting_and_stopping():
    with TensorDockStandIn(transition_delay=0.1) as server:
        result = _provider(server).create(_props(power_state="stopped"))
        assert server.instance(result.id)["status"] == "Stopped"
        assert (result.outs or {})["status"] == "stopped"
        assert len(server.calls("POST", "/stop$")) == 1


def test_update_to_running_while_stopping_waits_then_starts():
    with TensorDockStandIn(transition_delay=0.1) as server:
        vm = server.add_instance(status="running")
        provider = _provider(server)
        with provider._client() as client:
            client.stop_instance(vm)  # now "stopping"
        outs = provider.update(vm, _props(), _props(power_state="running")).outs or {}
        assert outs["status"] == "running" and server.instance(vm)["status"] == "running"
