"""``GpuVm``: a TensorDock virtual machine managed by a Pulumi dynamic provider.

Pulumi has no TensorDock provider, so this one drives the v2 REST API through the shared
client in ``brain.gpu.tensordock`` (brain-api's GPU control uses the same client).

How Pulumi runs it, and why the code looks the way it does:

- The provider *instance* is pickled with ``dill`` into the state (as the secret ``__provider``
  property) and unpickled by Pulumi's ``pulumi.dynamic`` host process, whose ``sys.path`` does not
  contain ``infra/``. ``dill`` pickles classes of importable modules by reference, which would make
  that host fail with ``No module named 'tensordock'``; so ``_pickle_by_value`` marks the class to be
  pickled by value. The methods therefore use only importable modules (``brain.gpu.tensordock``,
  ``pulumi.dynamic``, the standard library), plain data constants, and the class's own methods.
- The API token is never an input and never an attribute at pickling time: ``configure()`` reads
  ``tensordock:token`` (set with ``pulumi config set tensordock:token --secret``) or
  ``$TENSORDOCK_API_TOKEN`` in the host process, and ``__getstate__`` drops it should the provider
  ever be pickled after that. Rotating the token therefore needs no change to the stack state.
- During a preview, inputs not known yet arrive as the string ``pulumi.runtime.rpc.UNKNOWN``:
  ``check`` lets them through and ``diff`` counts them as changes.
- ``olds`` in ``diff`` are the previous *outputs*; outputs repeat every input so that the
  comparison is input-to-input, and computed values live under their own keys.
"""

from __future__ import annotations

import os
import types
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime.rpc import UNKNOWN

from brain.gpu import tensordock as tdapi

OLLAMA_PORT = 11434

# Inputs whose change means a new VM (TensorDock fixes them at creation), and inputs that can
# change in place. Anything else in the props is computed output.
REPLACE_KEYS = ("name", "gpu", "gpu_count", "vcpu", "ram_gb", "storage_gb", "image", "location_id",
                "hostnode_id", "use_dedicated_ip", "port_forwards", "ssh_key", "cloud_init")
UPDATE_KEYS = ("power_state", "wait_timeout")
OUTPUT_KEYS = ("instance_id", "public_ip", "ssh_port", "hourly_rate", "status", "placed_location_id")
DEFAULTS: dict[str, Any] = {
    "gpu": tdapi.RTX_4090, "gpu_count": 1, "vcpu": 4, "ram_gb": 16, "storage_gb": tdapi.MIN_STORAGE_GB,
    "image": tdapi.DEFAULT_IMAGE, "location_id": "", "hostnode_id": "", "use_dedicated_ip": True,
    "port_forwards": [], "cloud_init": None, "power_state": "running", "wait_timeout": 900,
}


def _pickle_by_value(cls: type) -> type:
    """Make ``dill`` serialise ``cls`` and its methods by value (see the module docstring).

    ``dill`` pickles an object by value when its ``__module__`` is ``__main__``; Pulumi's own
    SDK used the same rewrite for providers defined outside ``__main__`` (pulumi/pulumi#7755).
    """
    cls.__module__ = "__main__"
    for value in vars(cls).values():
        func = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        if isinstance(func, types.FunctionType):
            func.__module__ = "__main__"
    return cls


@_pickle_by_value
class GpuVmProvider(dynamic.ResourceProvider):
    """CRUD for one TensorDock VM. ``poll_interval``: seconds between status polls."""

    serialize_as_secret_always = True

    def __init__(self, poll_interval: float = 5.0) -> None:
        self.poll_interval = poll_interval
        self._token: str | None = None
        self._base_url: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_token"] = None  # never into the state file, whatever happens
        return state

    def configure(self, req: dynamic.ConfigureRequest) -> None:
        """Read the token and base URL from stack config (host process only), env as fallback."""
        self._token = req.config.get("tensordock:token") or os.environ.get(tdapi.TOKEN_ENV) or None
        self._base_url = req.config.get("tensordock:baseUrl") or os.environ.get(tdapi.BASE_URL_ENV) or None

    def _client(self) -> tdapi.TensorDockClient:
        return tdapi.TensorDockClient(token=self._token, base_url=self._base_url)

    # -- validation and planning

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        """Fill defaults and reject what TensorDock (or our policy) would refuse."""
        inputs = {**DEFAULTS, **{k: v for k, v in news.items() if v is not None}}
        failures = [dynamic.CheckFailure(prop, reason) for prop, reason in self._problems(inputs)]
        return dynamic.CheckResult(inputs, failures)

    @staticmethod
    def _problems(props: dict[str, Any]) -> list[tuple[str, str]]:
        def known(v: Any) -> bool:  # values still unknown during preview are checked at update time
            return not (isinstance(v, str) and v == UNKNOWN)

        out: list[tuple[str, str]] = []
        for key, low in (("gpu_count", 1), ("vcpu", 1), ("ram_gb", 1), ("storage_gb", tdapi.MIN_STORAGE_GB)):
            value = props.get(key)
            if known(value) and (not isinstance(value, (int, float)) or value < low):
                out.append((key, f"must be a number >= {low}, got {value!r}"))
        if known(props.get("ssh_key")) and not str(props.get("ssh_key") or "").strip():
            out.append(("ssh_key", "an SSH public key is required"))
        if known(props.get("location_id")) and known(props.get("hostnode_id")) and \
                props.get("location_id") and props.get("hostnode_id"):
            out.append(("hostnode_id", "set location_id or hostnode_id, not both"))
        if props.get("power_state") not in ("running", "stopped") and known(props.get("power_state")):
            out.append(("power_state", "must be running or stopped"))
        forwards = props.get("port_forwards")
        if known(forwards):
            for pf in forwards or []:
                if not isinstance(pf, dict) or not {"internal_port", "external_port"} <= set(pf):
                    out.append(("port_forwards", f"each forward needs internal_port and external_port: {pf!r}"))
                elif pf["internal_port"] == OLLAMA_PORT or pf["external_port"] == OLLAMA_PORT:
                    out.append(("port_forwards", f"the Ollama port {OLLAMA_PORT} must never be public; "
                                                 "brain-api reaches Ollama over the private link"))
        return out

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        """Hardware, image, placement, network and SSH key changes replace the VM; power state does not."""
        def differs(key: str) -> bool:
            old, new = olds.get(key, DEFAULTS.get(key)), news.get(key, DEFAULTS.get(key))
            return new == UNKNOWN or old != new

        replaces = [k for k in REPLACE_KEYS if differs(k)]
        # New provider code (a changed pickled ``__provider``) is an in-place update, so the
        # state carries the code that will later delete the VM.
        changed = bool(replaces) or any(differs(k) for k in UPDATE_KEYS) or \
            olds.get("__provider") != news.get("__provider")
        # Delete first: a second 4090 may not be available, and two would be billed.
        return dynamic.DiffResult(changes=changed, replaces=replaces, stables=[],
                                  delete_before_replace=True)

    # -- CRUD

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        """Create the VM, wait until it runs (then stop it if ``power_state`` says so)."""
        props = {**DEFAULTS, **{k: v for k, v in props.items() if v is not None}}
        with self._client() as client:
            location_id, hostnode_id = props["location_id"] or None, props["hostnode_id"] or None
            if not location_id and not hostnode_id:
                location_id = client.cheapest_eu_location(
                    props["gpu"], gpu_count=int(props["gpu_count"]), vcpu=int(props["vcpu"]),
                    ram_gb=int(props["ram_gb"]), storage_gb=int(props["storage_gb"])).location.id
            created = client.create_instance(
                name=props["name"], ssh_key=props["ssh_key"], gpu=props["gpu"], gpu_count=int(props["gpu_count"]),
                vcpu=int(props["vcpu"]), ram_gb=int(props["ram_gb"]), storage_gb=int(props["storage_gb"]),
                image=props["image"], location_id=location_id, hostnode_id=hostnode_id,
                use_dedicated_ip=bool(props["use_dedicated_ip"]),
                port_forwards=[{"internal_port": int(pf["internal_port"]), "external_port": int(pf["external_port"])}
                               for pf in props["port_forwards"] or []],
                cloud_init=props["cloud_init"])
            try:
                inst = self._settle_power(client, created.id, props)
            except tdapi.TensorDockError as exc:
                # Pulumi records nothing for a failed create, so do not leave a billed orphan behind.
                try:
                    client.delete_instance(created.id)
                except tdapi.TensorDockError as cleanup:
                    raise tdapi.TensorDockError(
                        "create", f"{exc}; deleting the half-created instance {created.id} also failed "
                                  f"({cleanup}): delete it in the TensorDock dashboard") from None
                raise
        outs = self._outputs(props, inst, location_id or "")
        return dynamic.CreateResult(inst.id, outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        """Only ``power_state``/``wait_timeout`` reach here (everything else replaces)."""
        props = {**DEFAULTS, **{k: v for k, v in news.items() if v is not None}}
        with self._client() as client:
            inst = self._settle_power(client, id_, props)
        return dynamic.UpdateResult(self._outputs(props, inst, olds.get("placed_location_id") or ""))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        """Refresh computed outputs; an instance deleted in the dashboard reads as gone."""
        with self._client() as client:
            try:
                inst = client.get_instance(id_)
            except tdapi.TensorDockNotFound:
                return dynamic.ReadResult(None, {})
        return dynamic.ReadResult(id_, self._outputs(props, inst, props.get("placed_location_id") or ""))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Delete the VM; one that is already gone counts as deleted."""
        with self._client() as client:
            client.delete_instance(id_, missing_ok=True)

    # -- helpers (they travel with the pickled class)

    def _settle_power(self, client: tdapi.TensorDockClient, id_: str, props: dict[str, Any]) -> tdapi.Instance:
        """Bring the VM to ``power_state`` and return its final state.

        A VM in a transitional state (``starting``, ``stopping``, anything unknown) is first
        waited for, because TensorDock refuses start/stop in the middle of a transition.
        """
        timeout, interval = float(props["wait_timeout"]), self.poll_interval
        stopped = ("stopped", "stopped_disassociated")
        inst = client.get_instance(id_)
        if props["power_state"] == "running":
            if inst.status == "running":
                return inst
            if inst.status not in stopped:
                inst = client.wait_for_status(id_, ("running", *stopped), timeout=timeout, interval=interval)
            if inst.status in stopped:
                client.start_instance(id_)
                inst = client.wait_for_status(id_, "running", timeout=timeout, interval=interval)
            return inst
        if inst.status in stopped:
            return inst
        if inst.status != "running":
            inst = client.wait_for_status(id_, ("running", *stopped), timeout=timeout, interval=interval)
        if inst.status == "running":
            client.stop_instance(id_)
            inst = client.wait_for_status(id_, stopped, timeout=timeout, interval=interval)
        return inst

    @staticmethod
    def _outputs(props: dict[str, Any], inst: tdapi.Instance, placed_location_id: str) -> dict[str, Any]:
        outs = {k: v for k, v in props.items() if k != "__provider"}
        outs.update({
            "instance_id": inst.id,
            "public_ip": inst.ip,
            "ssh_port": inst.ssh_port,
            "hourly_rate": inst.rate_hourly,
            "status": inst.status,
            "placed_location_id": placed_location_id or inst.location_id,
        })
        return outs


class GpuVm(dynamic.Resource, module="tensordock", name="GpuVm"):
    """A TensorDock VM. Inputs as in ``DEFAULTS`` plus ``name`` and ``ssh_key``; outputs below."""

    instance_id: pulumi.Output[str]
    public_ip: pulumi.Output[str]
    ssh_port: pulumi.Output[int]
    hourly_rate: pulumi.Output[float]
    status: pulumi.Output[str]
    placed_location_id: pulumi.Output[str]

    def __init__(self, resource_name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None,
                 poll_interval: float = 5.0) -> None:
        unknown = set(props) - set(REPLACE_KEYS) - set(UPDATE_KEYS)
        if unknown:
            raise ValueError(f"GpuVm: unknown inputs {sorted(unknown)}")
        all_props: dict[str, Any] = {**DEFAULTS, **props, **dict.fromkeys(OUTPUT_KEYS)}
        super().__init__(GpuVmProvider(poll_interval), resource_name, all_props, opts)
