"""inventory/pulumi_inventory.py: the Ansible hand-off, run as Ansible runs it (an executable script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "inventory" / "pulumi_inventory.py"

# What `pulumi stack output --json` prints for this project (numbers come back as JSON numbers).
SAMPLE = {
    "region": "eu-frankfurt-1",
    "vcn_id": "ocid1.vcn.oc1.eu-frankfurt-1.aaaa",
    "subnet_id": "ocid1.subnet.oc1.eu-frankfurt-1.aaaa",
    "brain_instance_id": "ocid1.instance.oc1.eu-frankfurt-1.aaaa",
    "brain_public_ip": "198.51.100.20",
    "brain_private_ip": "10.0.1.5",
    "brain_availability_domain": "Uocm:EU-FRANKFURT-1-AD-2",
    "brain_image_id": "ocid1.image.oc1.eu-frankfurt-1.aaaa",
    "brain_data_volume_id": "ocid1.volume.oc1.eu-frankfurt-1.aaaa",
    "brain_data_device": "/dev/oracleoci/oraclevdb",
    "brain_ssh_port": 22,
    "brain_ssh_user": "ubuntu",
    "gpu_instance_id": "5c4f6a1e-0000-4000-8000-000000000001",
    "gpu_public_ip": "203.0.113.5",
    "gpu_ssh_port": 20022.0,
    "gpu_hourly_rate": 0.399,
    "gpu_storage_gb": 200,
    "gpu_ssh_user": "user",
    "admin_cidrs": ["203.0.113.7/32", "2001:db8::/64"],
}


def _run(*args: str, outputs: Any = None, env: dict[str, str] | None = None,
         tmp_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("BRAIN_STACK_OUTPUTS", "BRAIN_PULUMI_STACK")}
    if outputs is not None and tmp_path is not None:
        path = tmp_path / "outputs.json"
        path.write_text(outputs if isinstance(outputs, str) else json.dumps(outputs))
        full_env["BRAIN_STACK_OUTPUTS"] = str(path)
    full_env.update(env or {})
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=full_env, timeout=30,
                          check=False)


def test_script_is_executable_with_a_shebang():
    assert os.access(SCRIPT, os.X_OK)
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")


def test_list_from_a_sample_outputs_file(tmp_path):
    proc = _run("--list", outputs=SAMPLE, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    assert inv["brain"] == {"hosts": ["brain-vm"]}
    assert inv["gpu"] == {"hosts": ["gpu-vm"]}
    brain = inv["_meta"]["hostvars"]["brain-vm"]
    assert (brain["ansible_host"], brain["ansible_port"], brain["ansible_user"]) == ("198.51.100.20", 22, "ubuntu")
    assert brain["brain_private_ip"] == "10.0.1.5"
    assert brain["gpu_instance_id"] == SAMPLE["gpu_instance_id"]  # brain-api controls the GPU VM
    assert brain["gpu_storage_gb"] == 200  # brain cost: TensorDock bills the disk of the stopped VM
    assert brain["brain_data_device"] == "/dev/oracleoci/oraclevdb"  # the brain role mounts the database's volume
    assert "brain_data_device" not in inv["_meta"]["hostvars"]["gpu-vm"]
    gpu = inv["_meta"]["hostvars"]["gpu-vm"]
    assert (gpu["ansible_host"], gpu["ansible_port"], gpu["ansible_user"]) == ("203.0.113.5", 20022, "user")
    assert gpu["gpu_hourly_rate"] == 0.399
    # the GPU VM's firewall allows SSH from these (group_vars/gpu adds the brain VM)
    assert gpu["site_admin_cidrs"] == brain["site_admin_cidrs"] == ["203.0.113.7/32", "2001:db8::/64"]


def test_host_mode(tmp_path):
    proc = _run("--host", "gpu-vm", outputs=SAMPLE, tmp_path=tmp_path)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["ansible_port"] == 20022
    assert json.loads(_run("--host", "nope", outputs=SAMPLE, tmp_path=tmp_path).stdout) == {}


def test_brain_only_stack_leaves_gpu_group_empty(tmp_path):
    brain_only = {k: v for k, v in SAMPLE.items() if not k.startswith("gpu_")}
    inv = json.loads(_run("--list", outputs=brain_only, tmp_path=tmp_path).stdout)
    assert inv["gpu"] == {"hosts": []} and "gpu-vm" not in inv["_meta"]["hostvars"]
    assert inv["brain"] == {"hosts": ["brain-vm"]}
    assert "gpu_instance_id" not in inv["_meta"]["hostvars"]["brain-vm"]


def test_defaults_when_port_and_user_are_missing(tmp_path):
    minimal = {"brain_public_ip": "198.51.100.20", "gpu_public_ip": "203.0.113.5"}
    hv = json.loads(_run("--list", outputs=minimal, tmp_path=tmp_path).stdout)["_meta"]["hostvars"]
    assert (hv["brain-vm"]["ansible_port"], hv["brain-vm"]["ansible_user"]) == (22, "ubuntu")
    assert (hv["gpu-vm"]["ansible_port"], hv["gpu-vm"]["ansible_user"]) == (22, "user")
    assert "brain_data_device" not in hv["brain-vm"]  # a stack from before the data volume: boot volume


@pytest.mark.parametrize(("outputs", "message"), [
    ("{not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({**SAMPLE, "gpu_public_ip": "[secret]"}, "gpu_public_ip is '[secret]'"),
    ({**SAMPLE, "brain_ssh_port": "ssh"}, "brain_ssh_port is 'ssh'"),
    ({**SAMPLE, "admin_cidrs": "[secret]"}, "admin_cidrs is '[secret]'"),
])
def test_bad_outputs_fail_with_a_clear_message(tmp_path, outputs, message):
    proc = _run("--list", outputs=outputs, tmp_path=tmp_path)
    assert proc.returncode == 1 and message in proc.stderr and proc.stdout == ""


def test_missing_outputs_file(tmp_path):
    proc = _run("--list", env={"BRAIN_STACK_OUTPUTS": str(tmp_path / "missing.json")})
    assert proc.returncode == 1 and "cannot read" in proc.stderr


def test_mode_is_required():
    assert _run().returncode == 2


def _fake_pulumi(tmp_path: Path, body: str) -> dict[str, str]:
    """A `pulumi` on PATH that logs its arguments and working directory, then runs ``body``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "pulumi"
    fake.write_text(f'#!/bin/sh\necho "$PWD $*" > "{tmp_path}/args"\n{body}\n')
    fake.chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}


def test_reads_the_pulumi_cli_in_the_repo_root(tmp_path):
    env = _fake_pulumi(tmp_path, f"cat <<'EOF'\n{json.dumps(SAMPLE)}\nEOF")
    proc = _run("--list", env={**env, "BRAIN_PULUMI_STACK": "prod"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["brain"] == {"hosts": ["brain-vm"]}
    cwd, args = (tmp_path / "args").read_text().strip().split(" ", 1)
    assert Path(cwd) == REPO
    assert args == "stack output --json --non-interactive --stack prod"


def test_pulumi_cli_failure_is_reported(tmp_path):
    env = _fake_pulumi(tmp_path, "echo 'error: no stack selected' >&2; exit 255")
    proc = _run("--list", env=env)
    assert proc.returncode == 1 and "no stack selected" in proc.stderr


def test_no_pulumi_cli_suggests_the_outputs_file(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True,
                          env={"PATH": str(tmp_path)}, timeout=30, check=False)  # no pulumi on PATH
    assert proc.returncode == 1
    assert "pulumi CLI is not installed" in proc.stderr and "BRAIN_STACK_OUTPUTS" in proc.stderr
