#!/usr/bin/env python3
"""Ansible dynamic inventory from the Pulumi stack outputs: ``pulumi up && ansible-playbook site.yml``.

Groups ``brain`` (host ``brain-vm``, the Oracle A1 VM) and ``gpu`` (host ``gpu-vm``, the TensorDock
VM), each with ``ansible_host``/``ansible_port``/``ansible_user``, plus the GPU VM's TensorDock
instance id, hourly rate and disk size (brain-api's GPU control and ``brain cost`` need them:
TensorDock bills the disk while the VM is stopped), ``site_admin_cidrs``, the networks SSH is
allowed from (the GPU VM's firewall uses them), and on the brain VM ``brain_data_device``, where
the brain role finds the database's own block volume.

Where the outputs come from, first match wins:
1. ``$BRAIN_STACK_OUTPUTS``: a JSON file written by ``pulumi stack output --json > file``
   (e.g. on a machine without the Pulumi CLI or state);
2. ``pulumi stack output --json`` run in the repository root, for ``$BRAIN_PULUMI_STACK`` if set,
   else the selected stack.

Standard library only: Ansible runs this with whatever Python it has.
Usage: ``pulumi_inventory.py --list`` | ``pulumi_inventory.py --host NAME``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUTPUTS_ENV = "BRAIN_STACK_OUTPUTS"
STACK_ENV = "BRAIN_PULUMI_STACK"
PULUMI_TIMEOUT_S = 120
BRAIN_HOST = "brain-vm"
GPU_HOST = "gpu-vm"


class InventoryError(Exception):
    """Outputs could not be read or make no sense; the message says which and how to fix it."""


def _run_pulumi(stack: str | None) -> str:
    cmd = ["pulumi", "stack", "output", "--json", "--non-interactive"]
    if stack:
        cmd += ["--stack", stack]
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=PULUMI_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise InventoryError(f"the pulumi CLI is not installed; install it, or set {OUTPUTS_ENV} to a file "
                             "written by `pulumi stack output --json`") from None
    except subprocess.TimeoutExpired:
        raise InventoryError(f"`{' '.join(cmd)}` took more than {PULUMI_TIMEOUT_S}s (backend unreachable?)") from None
    if proc.returncode != 0:
        raise InventoryError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[:500] or 'no message'}")
    return proc.stdout


def load_outputs(env: Mapping[str, str], run_pulumi: Callable[[str | None], str] = _run_pulumi) -> dict[str, Any]:
    """The stack outputs as a dict, from the file named by ``$BRAIN_STACK_OUTPUTS`` or the Pulumi CLI."""
    path = env.get(OUTPUTS_ENV)
    if path:
        try:
            text, origin = Path(path).read_text(encoding="utf-8"), path
        except OSError as exc:
            raise InventoryError(f"{OUTPUTS_ENV}={path}: cannot read: {exc.strerror}") from None
    else:
        text, origin = run_pulumi(env.get(STACK_ENV) or None), "pulumi stack output --json"
    try:
        data = json.loads(text or "{}")
    except ValueError as exc:
        raise InventoryError(f"{origin}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InventoryError(f"{origin}: expected a JSON object of outputs, got {type(data).__name__}")
    return data


def _host_vars(outputs: Mapping[str, Any], prefix: str, default_user: str) -> dict[str, Any] | None:
    ip = outputs.get(f"{prefix}_public_ip")
    if ip in (None, ""):
        return None  # not created (e.g. gpuEnabled false) or no IP yet
    if not isinstance(ip, str) or ip == "[secret]":
        raise InventoryError(f"output {prefix}_public_ip is {ip!r}, expected an IP address")
    port = outputs.get(f"{prefix}_ssh_port", 22)
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise InventoryError(f"output {prefix}_ssh_port is {port!r}, expected a port number") from None
    return {"ansible_host": ip, "ansible_port": port,
            "ansible_user": str(outputs.get(f"{prefix}_ssh_user") or default_user)}


def _admin_cidrs(outputs: Mapping[str, Any]) -> list[str]:
    """The ``admin_cidrs`` output (the networks SSH is allowed from), checked to be a list of strings."""
    value = outputs.get("admin_cidrs")
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        raise InventoryError(f"output admin_cidrs is {value!r}, expected a list of CIDRs")
    return list(value)


def build_inventory(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``--list`` JSON: groups brain and gpu (possibly empty) and ``_meta.hostvars``."""
    gpu_extra = {k: outputs[k] for k in ("gpu_instance_id", "gpu_hourly_rate", "gpu_storage_gb")
                 if outputs.get(k) is not None}
    shared = {"site_admin_cidrs": _admin_cidrs(outputs)} if "admin_cidrs" in outputs else {}
    hostvars: dict[str, dict[str, Any]] = {}
    brain = _host_vars(outputs, "brain", "ubuntu")
    if brain is not None:
        brain.update({"brain_private_ip": outputs.get("brain_private_ip", ""), **gpu_extra, **shared})
        if outputs.get("brain_data_device"):  # absent on a stack from before the data volume
            brain["brain_data_device"] = str(outputs["brain_data_device"])
        hostvars[BRAIN_HOST] = brain
    gpu = _host_vars(outputs, "gpu", "user")
    if gpu is not None:
        gpu.update({**gpu_extra, **shared})
        hostvars[GPU_HOST] = gpu
    return {
        "brain": {"hosts": [BRAIN_HOST] if BRAIN_HOST in hostvars else []},
        "gpu": {"hosts": [GPU_HOST] if GPU_HOST in hostvars else []},
        "_meta": {"hostvars": hostvars},
    }


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ansible inventory from Pulumi stack outputs.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="print the whole inventory")
    mode.add_argument("--host", metavar="NAME", help="print the variables of one host")
    args = parser.parse_args(argv)
    try:
        inventory = build_inventory(load_outputs(os.environ if env is None else env))
    except InventoryError as exc:
        print(f"pulumi_inventory: {exc}", file=sys.stderr)
        return 1
    if args.list:
        print(json.dumps(inventory, indent=2, sort_keys=True))
    else:
        print(json.dumps(inventory["_meta"]["hostvars"].get(args.host, {}), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
