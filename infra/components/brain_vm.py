"""The Oracle Cloud brain VM: an Ampere A1 (arm64) instance running Ubuntu, for brain-api.

Sizes default to the seed plan (4 OCPU, 24 GB, 100 GB boot volume), which is the whole monthly
Always Free A1 allowance as Oracle documented it (3,000 OCPU-hours and 18,000 GB-hours a month).
Reports from 2026 say new tenancies may get less; larger values are refused unless
``allow_beyond_free`` says paying is fine, so a typo cannot start billing.

The memory lives on its own block volume, not on the boot volume (issue 15): the boot volume is
disposable (``preserve_boot_volume=False``; a new SSH key or image replaces the instance), while
the data volume is ``protect=True`` (``pulumi destroy`` and a replacement refuse to delete it) and
``retain_on_delete=True`` (even an unprotected delete leaves it in OCI). It is attached
paravirtualized at the consistent device path ``/dev/oracleoci/oraclevdb``, which the brain role
formats once and mounts. Boot + data stay inside the 200 GB of Always Free block storage.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_oci as oci

SHAPE = "VM.Standard.A1.Flex"
FREE_OCPUS = 4
FREE_MEMORY_GB = 24
FREE_BLOCK_STORAGE_GB = 200
MIN_BOOT_VOLUME_GB = 50
MIN_BLOCK_VOLUME_GB = 50  # OCI's smallest block volume
DATA_DEVICE = "/dev/oracleoci/oraclevdb"  # OCI's consistent device path for the first attached volume
DEFAULT_CLOUD_INIT = Path(__file__).resolve().parent.parent / "cloud_init.yaml"


@dataclass
class BrainVmArgs:
    """Inputs of the brain VM. ``availability_domain``: a full name, ``AD-2``, ``2``, or None (the first)."""

    compartment_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    ssh_public_keys: Sequence[str]
    availability_domain: str | None = None
    ocpus: float = FREE_OCPUS
    memory_gb: float = FREE_MEMORY_GB
    boot_volume_gb: int = 100
    data_volume_gb: int = MIN_BLOCK_VOLUME_GB
    image_os: str = "Canonical Ubuntu"
    image_os_version: str = "24.04"
    image_id: str | None = None
    cloud_init: str | None = None
    display_name: str = "oracle-brain"
    hostname_label: str = "brain"
    allow_beyond_free: bool = False


def check_size(ocpus: float, memory_gb: float, boot_volume_gb: int, *, allow_beyond_free: bool = False,
               data_volume_gb: int = MIN_BLOCK_VOLUME_GB) -> None:
    """Refuse sizes A1.Flex cannot have, and (unless allowed) sizes beyond the Always Free allowance."""
    problems = []
    if data_volume_gb < MIN_BLOCK_VOLUME_GB:
        problems.append(f"brainDataVolumeGb must be at least {MIN_BLOCK_VOLUME_GB}, got {data_volume_gb}")
    if ocpus < 1 or ocpus > 80:
        problems.append(f"brainOcpus must be 1..80 for {SHAPE}, got {ocpus}")
    if memory_gb < ocpus or memory_gb > 64 * ocpus:
        problems.append(f"brainMemoryGb must be 1..64 GB per OCPU for {SHAPE}, got {memory_gb} for {ocpus} OCPU")
    if boot_volume_gb < MIN_BOOT_VOLUME_GB:
        problems.append(f"brainBootVolumeGb must be at least {MIN_BOOT_VOLUME_GB}, got {boot_volume_gb}")
    if not allow_beyond_free:
        if ocpus > FREE_OCPUS or memory_gb > FREE_MEMORY_GB:
            problems.append(f"{ocpus} OCPU / {memory_gb} GB exceeds the Always Free A1 allowance "
                            f"({FREE_OCPUS} OCPU / {FREE_MEMORY_GB} GB); set brainAllowBeyondFree true to pay for it")
        if boot_volume_gb + data_volume_gb > FREE_BLOCK_STORAGE_GB:
            problems.append(f"a {boot_volume_gb} GB boot volume plus a {data_volume_gb} GB data volume exceeds the "
                            f"{FREE_BLOCK_STORAGE_GB} GB of free block storage; set brainAllowBeyondFree true to "
                            "pay for it")
    if problems:
        raise ValueError("; ".join(problems))


def pick_availability_domain(names: Sequence[str], wanted: str | None) -> str:
    """Resolve the configured domain against the region's list; the first one when unset.

    Accepts the full name (``Uocm:EU-FRANKFURT-1-AD-2``), its suffix (``AD-2``) or a number
    (``2``), so retrying elsewhere after "Out of host capacity" is one short config change.
    """
    if not names:
        raise ValueError("this tenancy sees no availability domains in the region (check the compartment OCID)")
    if not wanted:
        return names[0]
    w = wanted.strip()
    if w.isdigit():
        w = f"AD-{int(w)}"
    for name in names:
        if name == w or name.upper().endswith(f"-{w.upper()}") or name.upper().endswith(f":{w.upper()}"):
            return name
    raise ValueError(f"availabilityDomain {wanted!r} is not one of: {', '.join(names)}")


def pick_image(images: Sequence[Any], os_version: str) -> str:
    """The newest aarch64 image from a ``get_images`` result (sorted newest first), not Minimal if possible."""
    arm = [i for i in images if "aarch64" in (getattr(i, "display_name", "") or "")]
    if not arm:
        raise ValueError(f"no Canonical Ubuntu {os_version} aarch64 image for {SHAPE} in this region; "
                         "set brainImageId to an image OCID")
    full = [i for i in arm if "minimal" not in i.display_name.lower()]
    return str((full or arm)[0].id)


def ssh_authorized_keys(keys: Sequence[str]) -> str:
    """OCI's ``ssh_authorized_keys`` metadata: one key per line, stable byte for byte.

    Changing instance metadata replaces the VM, so the text must not vary between runs.
    """
    clean = [k.strip() for k in keys if k and k.strip()]
    if not clean:
        raise ValueError("sshPublicKey is empty: give the public key (the .pub file's content)")
    for key in clean:
        if not re.match(r"^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp\d+|sk-\S+) \S+", key):
            raise ValueError(f"sshPublicKey does not look like an OpenSSH public key: {key[:30]!r}...")
    return "\n".join(clean) + "\n"


class BrainVm(pulumi.ComponentResource):
    """One A1.Flex instance with a public IP in the given subnet."""

    instance: oci.core.Instance
    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    availability_domain: pulumi.Output[str]
    image_id: pulumi.Output[str]

    def __init__(self, name: str, args: BrainVmArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("brain:infra:BrainVm", name, None, opts)
        check_size(args.ocpus, args.memory_gb, args.boot_volume_gb, allow_beyond_free=args.allow_beyond_free,
                   data_volume_gb=args.data_volume_gb)
        keys = ssh_authorized_keys(args.ssh_public_keys)
        cloud_init = args.cloud_init if args.cloud_init is not None else DEFAULT_CLOUD_INIT.read_text("utf-8")
        invoke = pulumi.InvokeOutputOptions(parent=self)

        self.availability_domain = oci.identity.get_availability_domains_output(
            compartment_id=args.compartment_id, opts=invoke,
        ).apply(lambda r: pick_availability_domain([d.name for d in r.availability_domains],
                                                   args.availability_domain))
        if args.image_id:
            self.image_id = pulumi.Output.from_input(args.image_id)
        else:
            self.image_id = oci.core.get_images_output(
                compartment_id=args.compartment_id, operating_system=args.image_os,
                operating_system_version=args.image_os_version, shape=SHAPE, state="AVAILABLE",
                sort_by="TIMECREATED", sort_order="DESC", opts=invoke,
            ).apply(lambda r: pick_image(r.images, args.image_os_version))

        self.instance = oci.core.Instance(
            f"{name}-instance",
            compartment_id=args.compartment_id,
            availability_domain=self.availability_domain,
            display_name=args.display_name,
            shape=SHAPE,
            shape_config=oci.core.InstanceShapeConfigArgs(ocpus=args.ocpus, memory_in_gbs=args.memory_gb),
            source_details=oci.core.InstanceSourceDetailsArgs(
                source_type="image", source_id=self.image_id, boot_volume_size_in_gbs=str(args.boot_volume_gb)),
            create_vnic_details=oci.core.InstanceCreateVnicDetailsArgs(
                subnet_id=args.subnet_id, assign_public_ip="true", hostname_label=args.hostname_label),
            metadata={"ssh_authorized_keys": keys,
                      "user_data": base64.b64encode(cloud_init.encode("utf-8")).decode("ascii")},
            preserve_boot_volume=False,
            # A newer Ubuntu image must not rebuild a running brain: the image is looked up at
            # creation only. Upgrades happen in place (unattended-upgrades, Ansible).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["source_details"]),
        )
        self.data_volume = oci.core.Volume(
            f"{name}-data",
            compartment_id=args.compartment_id,
            availability_domain=self.availability_domain,
            display_name=f"{args.display_name}-data",
            size_in_gbs=str(args.data_volume_gb),
            opts=data_volume_options(self),
        )
        self.data_attachment = oci.core.VolumeAttachment(
            f"{name}-data-attachment",
            attachment_type="paravirtualized",
            instance_id=self.instance.id,
            volume_id=self.data_volume.id,
            device=DATA_DEVICE,
            display_name=f"{args.display_name}-data",
            # a new instance needs the volume the old attachment holds: detach first, then attach
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.public_ip = self.instance.public_ip
        self.private_ip = self.instance.private_ip
        self.data_device = pulumi.Output.from_input(DATA_DEVICE)
        self.register_outputs({"instance_id": self.instance.id, "public_ip": self.public_ip,
                               "private_ip": self.private_ip, "availability_domain": self.availability_domain,
                               "image_id": self.image_id, "data_volume_id": self.data_volume.id,
                               "data_device": self.data_device})


def data_volume_options(parent: pulumi.Resource) -> pulumi.ResourceOptions:
    """The data volume outlives the VM: never deleted by Pulumi, never replaced for a new instance
    (an instance replacement only re-creates the attachment)."""
    return pulumi.ResourceOptions(parent=parent, protect=True, retain_on_delete=True)
