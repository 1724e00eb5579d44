"""The TensorDock GPU VM (RTX 4090) for Ollama, as a component around the ``GpuVm`` dynamic resource.

Defaults follow the seed plan: 1 x RTX 4090, 4 vCPU, 16 GB RAM. Storage is 100 GB, the API's
minimum (the plan's 70 GB is below it). Location: the cheapest EU location that has the GPU
free at ``pulumi up`` time, unless one is configured. The API token is not an input here: the
provider reads it from ``tensordock:token`` (secret) when it runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from tensordock.provider import OLLAMA_PORT, GpuVm

from brain import tensordock as tdapi

DEFAULT_CLOUD_INIT: dict[str, Any] = {
    # Just enough for Ansible; the gpu playbook installs the driver check, Ollama and the model.
    "package_update": True,
    "packages": ["python3", "python3-apt"],
}


def port_forwards(spec: Sequence[Any]) -> list[dict[str, int]]:
    """Normalise config port forwards (``22`` or ``{"internal": 22, "external": 20022}``) and apply policy.

    A bare port number forwards the same external port. The Ollama port is refused: brain-api
    reaches Ollama over the private link, never over the Internet.
    """
    out = []
    for item in spec:
        if isinstance(item, Mapping):
            internal = item.get("internal", item.get("internal_port"))
            external = item.get("external", item.get("external_port", internal))
        else:
            internal = external = item
        try:
            pf = {"internal_port": int(internal), "external_port": int(external)}
        except (TypeError, ValueError):
            raise ValueError(f"gpuPortForwards: {item!r} is not a port or {{internal, external}}") from None
        if not all(1 <= p <= 65535 for p in pf.values()):
            raise ValueError(f"gpuPortForwards: {item!r} is out of range 1..65535")
        if OLLAMA_PORT in pf.values():
            raise ValueError(f"gpuPortForwards: the Ollama port {OLLAMA_PORT} must never be public")
        out.append(pf)
    return out


@dataclass
class GpuVmArgs:
    """What to rent. Empty ``location_id`` and ``hostnode_id`` mean: cheapest EU location now."""

    ssh_public_key: str
    gpu: str = tdapi.RTX_4090
    gpu_count: int = 1
    vcpu: int = 4
    ram_gb: int = 16
    storage_gb: int = tdapi.MIN_STORAGE_GB
    image: str = tdapi.DEFAULT_IMAGE
    location_id: str = ""
    hostnode_id: str = ""
    use_dedicated_ip: bool = True
    port_forwards: Sequence[Any] = field(default_factory=list)
    cloud_init: Mapping[str, Any] | None = None
    power_state: str = "running"
    vm_name: str = "tensordock-gpu"


class GpuVmComponent(pulumi.ComponentResource):
    """One TensorDock VM; outputs its id, public IP, SSH port and hourly rate."""

    vm: GpuVm
    instance_id: pulumi.Output[str]
    public_ip: pulumi.Output[str]
    ssh_port: pulumi.Output[int]
    hourly_rate: pulumi.Output[float]

    def __init__(self, name: str, args: GpuVmArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("brain:infra:GpuVm", name, None, opts)
        if args.storage_gb < tdapi.MIN_STORAGE_GB:
            raise ValueError(f"gpuStorageGb must be at least {tdapi.MIN_STORAGE_GB} (TensorDock minimum)")
        if args.location_id and args.hostnode_id:
            raise ValueError("set gpuLocationId or gpuHostnodeId, not both")
        if args.power_state not in ("running", "stopped"):
            raise ValueError("gpuPowerState must be running or stopped")
        if not args.ssh_public_key.strip():
            raise ValueError("sshPublicKey is empty")
        props: dict[str, Any] = {
            "name": args.vm_name, "gpu": args.gpu, "gpu_count": args.gpu_count, "vcpu": args.vcpu,
            "ram_gb": args.ram_gb, "storage_gb": args.storage_gb, "image": args.image,
            "location_id": args.location_id, "hostnode_id": args.hostnode_id,
            "use_dedicated_ip": args.use_dedicated_ip, "port_forwards": port_forwards(args.port_forwards),
            "ssh_key": args.ssh_public_key.strip(),
            "cloud_init": dict(args.cloud_init) if args.cloud_init is not None else dict(DEFAULT_CLOUD_INIT),
            "power_state": args.power_state,
        }
        self.vm = GpuVm(f"{name}-vm", props, pulumi.ResourceOptions(parent=self))
        self.instance_id = self.vm.instance_id
        self.public_ip = self.vm.public_ip
        self.ssh_port = self.vm.ssh_port
        self.hourly_rate = self.vm.hourly_rate
        self.register_outputs({"instance_id": self.instance_id, "public_ip": self.public_ip,
                               "ssh_port": self.ssh_port, "hourly_rate": self.hourly_rate})
