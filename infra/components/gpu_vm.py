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

from brain.gpu import tensordock as tdapi

DEFAULT_CLOUD_INIT: dict[str, Any] = {
    # Just enough for Ansible; the gpu playbook installs the driver check, Ollama and the model.
    "package_update": True,
    "packages": ["python3", "python3-apt", "ufw"],
}
SSH_PORT = 22
WIREGUARD_PORT = 51820
# The same drop-in the common role writes later (it replaces this one with its own, equal policy).
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/10-hardening.conf"
SSHD_POLICY = ("PermitRootLogin no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
               "PermitEmptyPasswords no")


def first_boot_cloud_init(ssh_allowed_from: Sequence[str], use_dedicated_ip: bool) -> dict[str, Any]:
    """Cloud-init that closes the GPU VM before Ansible first reaches it (issue 12).

    TensorDock has no security groups: a VM with a dedicated IP answers on every port from boot.
    So the first boot already forbids root and password logins and, with a dedicated IP, lets
    SSH in only from ``ssh_allowed_from`` (the admin CIDRs; the common role adds the brain VM)
    and WireGuard from anywhere, dropping the rest. Behind TensorDock's port forwarding the
    source address SSH sees is not known here, so the firewall is left to the common role, which
    checks the address the play connects from before it restricts SSH. Only ``runcmd`` and
    ``packages``, the keys TensorDock's API documents, are used.
    """
    policy = "\\n".join(("# written at first boot by Pulumi (infra/components/gpu_vm.py)", *SSHD_POLICY))
    doc: dict[str, Any] = {
        **DEFAULT_CLOUD_INIT,
        "runcmd": [["sh", "-c", f"umask 022; printf '{policy}\\n' > {SSHD_DROP_IN} && "
                               "(systemctl reload ssh || systemctl reload sshd || true)"]],
    }
    if use_dedicated_ip and ssh_allowed_from:
        doc["runcmd"] += [
            ["ufw", "default", "deny", "incoming"],
            ["ufw", "default", "allow", "outgoing"],
            *(["ufw", "allow", "from", cidr, "to", "any", "port", str(SSH_PORT), "proto", "tcp", "comment", "ssh"]
              for cidr in ssh_allowed_from),
            ["ufw", "allow", f"{WIREGUARD_PORT}/udp", "comment", "wireguard"],
            ["ufw", "--force", "enable"],
        ]
    return doc


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
    # networks SSH is allowed from at first boot (the admin CIDRs)
    ssh_allowed_from: Sequence[str] = ()
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
            "cloud_init": dict(args.cloud_init) if args.cloud_init is not None else
            first_boot_cloud_init(args.ssh_allowed_from, args.use_dedicated_ip),
            "power_state": args.power_state,
        }
        # cloud-init runs once, at first boot; Ansible owns the policy afterwards. A changed admin
        # address must not replace (and re-bill, and re-download the model onto) a new VM.
        self.vm = GpuVm(f"{name}-vm", props, pulumi.ResourceOptions(parent=self, ignore_changes=["cloud_init"]))
        self.instance_id = self.vm.instance_id
        self.public_ip = self.vm.public_ip
        self.ssh_port = self.vm.ssh_port
        self.hourly_rate = self.vm.hourly_rate
        self.register_outputs({"instance_id": self.instance_id, "public_ip": self.public_ip,
                               "ssh_port": self.ssh_port, "hourly_rate": self.hourly_rate})
