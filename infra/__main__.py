"""Pulumi program: the Oracle A1 brain VM and the TensorDock RTX 4090 VM (seed plan, section B).

Only wiring: read the stack config, build the components, export what Ansible and brain-api
need. Every key is documented in ``Pulumi.example.yaml``; the runbook is ``docs/OPERATIONS.md``.
"""

from __future__ import annotations

import os
from typing import TypeVar

import pulumi
import pulumi_oci as oci
from components.brain_vm import BrainVm, BrainVmArgs
from components.gpu_vm import GpuVmArgs, GpuVmComponent
from components.network import Network, NetworkArgs, admin_networks

T = TypeVar("T")


def _list(cfg: pulumi.Config, key: str, default: list[str] | None = None) -> list[str]:
    """A list key, set as a YAML/JSON list (``--path 'k[0]'``) or as one comma-separated string."""
    raw = cfg.get(key)
    if raw is None:
        return list(default or [])
    if raw.lstrip().startswith("["):
        return [str(v) for v in cfg.get_object(key) or []]
    return [v.strip() for v in raw.split(",") if v.strip()]


def _or(value: T | None, default: T) -> T:
    """The configured value, or the default only when the key is unset (0 and false are values)."""
    return default if value is None else value


cfg = pulumi.Config()
oci_cfg = pulumi.Config("oci")

# --- Oracle Cloud -------------------------------------------------------------------------
# Compartment for every OCI resource (the tenancy OCID means the root compartment).
compartment_id = cfg.require("compartmentOcid")
# Region of the brain VM.
region = cfg.get("region") or "eu-frankfurt-1"
# Profile of ~/.oci/config holding the API key (created by `oci setup config`).
oci_profile = cfg.get("ociConfigProfile") or "DEFAULT"
# Optional: the API private key in the stack config instead of ~/.oci/config (kept secret).
oci_private_key = oci_cfg.get_secret("privateKey")
# Public SSH key(s) allowed on both VMs (text of the .pub file; several with newlines).
ssh_public_key = cfg.require("sshPublicKey")
# CIDRs allowed to SSH into the brain VM. 0.0.0.0/0 is refused unless allowSshFromAnywhere.
admin_cidrs = _list(cfg, "adminCidrs")
# Deliberately allow SSH from the whole Internet (not recommended).
allow_ssh_from_anywhere = _or(cfg.get_bool("allowSshFromAnywhere"), False)
# CIDRs allowed to reach brain-api on 443 (collectors run on laptops: default everyone).
https_cidrs = _list(cfg, "httpsCidrs", ["0.0.0.0/0"])
# Availability domain: full name, "AD-2" or "2"; default the first. Change it after "Out of host capacity".
availability_domain = cfg.get("availabilityDomain")
# A1.Flex size. The Always Free allowance has been 4 OCPU / 24 GB; some tenancies now get less.
brain_ocpus = _or(cfg.get_float("brainOcpus"), 4.0)
brain_memory_gb = _or(cfg.get_float("brainMemoryGb"), 24.0)
# Boot volume (GB). 200 GB of block storage is free in total.
brain_boot_volume_gb = _or(cfg.get_int("brainBootVolumeGb"), 100)
# Data volume (GB, at least 50) for the database, apart from the disposable boot volume; boot + data
# must stay within the 200 GB of free block storage.
brain_data_volume_gb = _or(cfg.get_int("brainDataVolumeGb"), 50)
# Pin an image OCID instead of looking up the latest Canonical Ubuntu aarch64 image.
brain_image_id = cfg.get("brainImageId")
# Ubuntu release looked up for the brain VM.
brain_image_version = cfg.get("brainImageVersion") or "24.04"
# Allow sizes beyond the Always Free allowance (they cost money).
brain_allow_beyond_free = _or(cfg.get_bool("brainAllowBeyondFree"), False)
# Login user of the brain VM image (Ansible's ansible_user).
brain_ssh_user = cfg.get("brainSshUser") or "ubuntu"

# --- TensorDock ---------------------------------------------------------------------------
# API token: `tensordock:token` (secret) or $TENSORDOCK_API_TOKEN. Only its presence is checked
# here; the provider reads it itself when it runs, so it is never a resource input or in state.
tensordock_token_set = pulumi.Config("tensordock").get_secret("token") is not None \
    or bool(os.environ.get("TENSORDOCK_API_TOKEN"))
# Create the GPU VM at all (false: brain VM only, retrieval-only answers).
gpu_enabled = _or(cfg.get_bool("gpuEnabled"), True)
# GPU model (TensorDock v0Name) and count.
gpu_type = cfg.get("gpuType") or "geforcertx4090-pcie-24gb"
gpu_count = _or(cfg.get_int("gpuCount"), 1)
# vCPUs, RAM and storage (GB; the API's minimum is 100).
gpu_vcpus = _or(cfg.get_int("gpuVcpus"), 4)
gpu_ram_gb = _or(cfg.get_int("gpuRamGb"), 16)
gpu_storage_gb = _or(cfg.get_int("gpuStorageGb"), 100)
# TensorDock image name.
gpu_image = cfg.get("gpuImage") or "ubuntu2404"
# Location id; empty = the cheapest EU location with the GPU free at creation time.
gpu_location_id = cfg.get("gpuLocationId") or ""
# Or a specific hostnode id (then port forwards must use its available ports).
gpu_hostnode_id = cfg.get("gpuHostnodeId") or ""
# Dedicated public IP (SSH on 22). Without it, set gpuPortForwards.
gpu_dedicated_ip = _or(cfg.get_bool("gpuDedicatedIp"), True)
# Port forwards: [22] or [{"internal": 22, "external": 20022}]. Never 11434 (Ollama).
gpu_port_forwards = cfg.get_object("gpuPortForwards") or []
# running or stopped after `pulumi up` (brain-api starts/stops it on demand afterwards).
gpu_power_state = cfg.get("gpuPowerState") or "running"
# Login user of the GPU VM image (Ansible's ansible_user; TensorDock images use "user"). Never
# root: root may not log in over SSH (cloud-init and the common role forbid it).
gpu_ssh_user = cfg.get("gpuSshUser") or "user"
if gpu_ssh_user == "root":
    raise ValueError("gpuSshUser: root may not log in over SSH on the GPU VM; use the image's ordinary "
                     "user (TensorDock: user), which becomes root with sudo")

provider = oci.Provider("oci", region=region, config_file_profile=oci_profile, private_key=oci_private_key)

network = Network("brain-net", NetworkArgs(
    compartment_id=compartment_id, admin_cidrs=admin_cidrs, https_cidrs=https_cidrs,
    allow_ssh_from_anywhere=allow_ssh_from_anywhere,
), pulumi.ResourceOptions(providers=[provider]))

brain = BrainVm("brain", BrainVmArgs(
    compartment_id=compartment_id, subnet_id=network.subnet.id, ssh_public_keys=ssh_public_key.splitlines(),
    availability_domain=availability_domain, ocpus=brain_ocpus, memory_gb=brain_memory_gb,
    boot_volume_gb=brain_boot_volume_gb, data_volume_gb=brain_data_volume_gb, image_id=brain_image_id,
    image_os_version=brain_image_version,
    allow_beyond_free=brain_allow_beyond_free,
), pulumi.ResourceOptions(providers=[provider]))

pulumi.export("region", region)
pulumi.export("vcn_id", network.vcn.id)
pulumi.export("subnet_id", network.subnet.id)
pulumi.export("brain_instance_id", brain.instance.id)
pulumi.export("brain_public_ip", brain.public_ip)
pulumi.export("brain_private_ip", brain.private_ip)
pulumi.export("brain_availability_domain", brain.availability_domain)
pulumi.export("brain_image_id", brain.image_id)
# The database's own block volume (protected): its OCID, and where the brain role finds it.
pulumi.export("brain_data_volume_id", brain.data_volume.id)
pulumi.export("brain_data_device", brain.data_device)
pulumi.export("brain_ssh_port", 22)
pulumi.export("brain_ssh_user", brain_ssh_user)
# SSH is allowed from these on both VMs (the inventory hands them to the GPU VM's firewall).
pulumi.export("admin_cidrs", admin_networks(admin_cidrs, allow_ssh_from_anywhere=allow_ssh_from_anywhere))

if gpu_enabled:
    if not tensordock_token_set:
        raise ValueError("no TensorDock API token: run `pulumi config set tensordock:token --secret` "
                         "or export TENSORDOCK_API_TOKEN (or set gpuEnabled false)")
    gpu = GpuVmComponent("gpu", GpuVmArgs(
        ssh_public_key=ssh_public_key.splitlines()[0], gpu=gpu_type, gpu_count=gpu_count, vcpu=gpu_vcpus,
        ram_gb=gpu_ram_gb, storage_gb=gpu_storage_gb, image=gpu_image, location_id=gpu_location_id,
        hostnode_id=gpu_hostnode_id, use_dedicated_ip=gpu_dedicated_ip, port_forwards=gpu_port_forwards,
        power_state=gpu_power_state,
        ssh_allowed_from=admin_networks(admin_cidrs, allow_ssh_from_anywhere=allow_ssh_from_anywhere),
    ))
    pulumi.export("gpu_instance_id", gpu.instance_id)
    pulumi.export("gpu_public_ip", gpu.public_ip)
    pulumi.export("gpu_ssh_port", gpu.ssh_port)
    pulumi.export("gpu_hourly_rate", gpu.hourly_rate)
    # The disk TensorDock bills while the VM is stopped (brain cost counts it: gpu.storage_gb).
    pulumi.export("gpu_storage_gb", gpu_storage_gb)
    pulumi.export("gpu_ssh_user", gpu_ssh_user)
