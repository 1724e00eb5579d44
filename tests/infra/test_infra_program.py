"""Policy tests of the Pulumi program (infra/__main__.py) under Pulumi's unit-test mocks."""

from __future__ import annotations

import base64
import json
import subprocess
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from components.brain_vm import pick_availability_domain, pick_image
from pulumi_harness import ADS, INFRA, ProgramRun, is_secret, run_program, unsecret

OLLAMA = 11434
INSTANCE = "oci:Core/instance:Instance"
SECURITY_LIST = "oci:Core/securityList:SecurityList"
GPU_VM = "pulumi-python:dynamic/tensordock:GpuVm"


def _ingress(run: ProgramRun) -> list[dict[str, Any]]:
    return [rule for sl in run.mocks.of_type(SECURITY_LIST) for rule in sl.inputs.get("ingressSecurityRules", [])]


def _tcp_ports(rule: dict[str, Any]) -> range:
    opts = rule.get("tcpOptions") or rule.get("udpOptions")
    if rule["protocol"] == "all" or (rule["protocol"] in ("6", "17") and not opts):
        return range(1, 65536)  # every port
    if not opts:
        return range(0)
    return range(int(opts["min"]), int(opts["max"]) + 1)


# --- the brain VM


def test_brain_vm_is_a1_flex_with_plan_sizes_and_public_ip(program_run):
    inst = program_run.mocks.one(INSTANCE).inputs
    assert inst["shape"] == "VM.Standard.A1.Flex"
    assert inst["shapeConfig"] == {"ocpus": 4, "memoryInGbs": 24}
    assert inst["sourceDetails"]["sourceType"] == "image"
    assert inst["sourceDetails"]["bootVolumeSizeInGbs"] == "100"
    assert inst["createVnicDetails"]["assignPublicIp"] == "true"
    assert inst["createVnicDetails"]["subnetId"] == "brain-net-subnet-id"
    assert inst["availabilityDomain"] == ADS[0]  # the first one when not configured


def test_image_is_the_newest_full_ubuntu_aarch64_for_the_a1_shape(program_run):
    (call,) = [c for c in program_run.mocks.calls if c.token == "oci:Core/getImages:getImages"]
    assert call.args["operatingSystem"] == "Canonical Ubuntu"
    assert call.args["operatingSystemVersion"] == "24.04"
    assert call.args["shape"] == "VM.Standard.A1.Flex"
    assert (call.args["sortBy"], call.args["sortOrder"]) == ("TIMECREATED", "DESC")
    # newest first; the Minimal build is skipped in favour of the full image
    assert program_run.mocks.one(INSTANCE).inputs["sourceDetails"]["sourceId"] == "ocid1.image.oc1.full"
    assert program_run.exports["brain_image_id"] == "ocid1.image.oc1.full"


def test_no_aarch64_image_is_a_clear_error():
    x86 = [SimpleNamespace(id="ocid1.image.x86", display_name="Canonical-Ubuntu-24.04-2025.05.20-0")]
    with pytest.raises(ValueError, match="no Canonical Ubuntu 24.04 aarch64 image"):
        pick_image(x86, "24.04")


def test_only_minimal_aarch64_image_is_used_when_nothing_else():
    minimal = [SimpleNamespace(id="ocid1.image.min", display_name="Canonical-Ubuntu-24.04-Minimal-aarch64-2025")]
    assert pick_image(minimal, "24.04") == "ocid1.image.min"


def test_pinned_image_skips_the_lookup():
    run = run_program({"brain:brainImageId": "ocid1.image.oc1.pinned"})
    assert not [c for c in run.mocks.calls if c.token == "oci:Core/getImages:getImages"]
    assert run.mocks.one(INSTANCE).inputs["sourceDetails"]["sourceId"] == "ocid1.image.oc1.pinned"


@pytest.mark.parametrize(("value", "expected"), [("2", ADS[1]), ("AD-3", ADS[2]), (ADS[1], ADS[1])])
def test_availability_domain_from_config(value, expected):
    run = run_program({"brain:availabilityDomain": value})
    assert run.mocks.one(INSTANCE).inputs["availabilityDomain"] == expected
    assert run.exports["brain_availability_domain"] == expected


def test_unknown_availability_domain_lists_the_valid_ones():
    with pytest.raises(ValueError, match="availabilityDomain '7' is not one of: Uocm:EU-FRANKFURT-1-AD-1"):
        pick_availability_domain(ADS, "7")
    with pytest.raises(ValueError, match="no availability domains"):
        pick_availability_domain([], None)


def test_smaller_free_tier_size_is_accepted():
    run = run_program({"brain:brainOcpus": "2", "brain:brainMemoryGb": "12", "brain:brainBootVolumeGb": "60"})
    inst = run.mocks.one(INSTANCE).inputs
    assert inst["shapeConfig"] == {"ocpus": 2, "memoryInGbs": 12}
    assert inst["sourceDetails"]["bootVolumeSizeInGbs"] == "60"


@pytest.mark.parametrize(("config", "message"), [
    ({"brain:brainOcpus": "8", "brain:brainMemoryGb": "48"}, "exceeds the Always Free A1 allowance"),
    ({"brain:brainBootVolumeGb": "250"}, "exceeds the 200 GB of free block storage"),
    ({"brain:brainBootVolumeGb": "20"}, "at least 50"),
    ({"brain:brainOcpus": "1", "brain:brainMemoryGb": "80"}, "1..64 GB per OCPU"),
])
def test_sizes_outside_the_free_allowance_or_the_shape_are_refused(config, message):
    with pytest.raises(ValueError, match=message):
        run_program(config)


def test_beyond_free_sizes_when_explicitly_allowed():
    run = run_program({"brain:brainOcpus": "8", "brain:brainMemoryGb": "48", "brain:brainAllowBeyondFree": "true"})
    assert run.mocks.one(INSTANCE).inputs["shapeConfig"] == {"ocpus": 8, "memoryInGbs": 48}


def test_ssh_key_and_cloud_init_in_metadata(program_run):
    meta = program_run.mocks.one(INSTANCE).inputs["metadata"]
    assert meta["ssh_authorized_keys"] == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKey me@laptop\n"
    user_data = base64.b64decode(meta["user_data"]).decode()
    assert user_data.startswith("#cloud-config\n")
    doc = yaml.safe_load(user_data)
    assert "python3" in doc["packages"]
    assert "--dport 443" in json.dumps(doc["runcmd"]) and str(OLLAMA) not in user_data


def test_bad_ssh_key_is_refused():
    with pytest.raises(ValueError, match="does not look like an OpenSSH public key"):
        run_program({"brain:sshPublicKey": "-----BEGIN OPENSSH PRIVATE KEY-----"})


# --- network policy


def test_ssh_only_from_admin_cidrs_and_https_open(program_run):
    rules = _ingress(program_run)
    ssh = [r for r in rules if 22 in _tcp_ports(r)]
    assert [r["source"] for r in ssh] == ["198.51.100.7/32"]
    https = [r for r in rules if 443 in _tcp_ports(r)]
    assert [r["source"] for r in https] == ["0.0.0.0/0"]
    opened = {p for r in rules for p in _tcp_ports(r)}
    assert opened == {22, 443}  # nothing else: ICMP path-MTU only besides
    assert {r["protocol"] for r in rules} == {"6", "1"}


def test_ollama_port_never_opened(program_run):
    for rule in _ingress(program_run):
        assert OLLAMA not in _tcp_ports(rule)
    for vm in program_run.mocks.of_type(GPU_VM):
        assert all(OLLAMA not in (pf["internal_port"], pf["external_port"]) for pf in vm.inputs["port_forwards"])


def test_ssh_from_anywhere_is_refused_unless_configured():
    with pytest.raises(ValueError, match="opens SSH to the whole Internet"):
        run_program({"brain:adminCidrs": '["0.0.0.0/0"]'})
    run = run_program({"brain:adminCidrs": '["0.0.0.0/0"]', "brain:allowSshFromAnywhere": "true"})
    assert [r["source"] for r in _ingress(run) if 22 in _tcp_ports(r)] == ["0.0.0.0/0"]


def test_admin_cidrs_as_comma_separated_string_and_https_restricted():
    run = run_program({"brain:adminCidrs": "198.51.100.7/32, 203.0.113.0/24",
                       "brain:httpsCidrs": '["192.0.2.0/24"]'})
    rules = _ingress(run)
    assert sorted(r["source"] for r in rules if 22 in _tcp_ports(r)) == ["198.51.100.7/32", "203.0.113.0/24"]
    assert [r["source"] for r in rules if 443 in _tcp_ports(r)] == ["192.0.2.0/24"]


@pytest.mark.parametrize("cidrs", ['["not-a-cidr"]', "[]"])
def test_bad_or_missing_admin_cidrs_are_refused(cidrs):
    with pytest.raises(ValueError, match="adminCidrs"):
        run_program({"brain:adminCidrs": cidrs})


def test_subnet_uses_only_the_policy_list_and_the_default_list_is_emptied(program_run):
    subnet = program_run.mocks.one("oci:Core/subnet:Subnet").inputs
    assert subnet["securityListIds"] == ["brain-net-sl-id"]
    default = program_run.mocks.one("oci:Core/defaultSecurityList:DefaultSecurityList").inputs
    assert default["manageDefaultResourceId"] == "ocid1.securitylist.default"
    assert default["ingressSecurityRules"] == []
    route = program_run.mocks.one("oci:Core/routeTable:RouteTable").inputs
    assert route["routeRules"] == [{"destination": "0.0.0.0/0", "destinationType": "CIDR_BLOCK",
                                    "networkEntityId": "brain-net-igw-id"}]


def test_oci_resources_use_the_explicit_provider_in_frankfurt(program_run):
    provider = program_run.mocks.one("pulumi:providers:oci")
    assert provider.inputs["region"] == "eu-frankfurt-1"
    assert provider.inputs["configFileProfile"] == "DEFAULT"
    for r in program_run.mocks.resources:
        if r.typ.startswith("oci:"):
            assert r.provider and "pulumi:providers:oci::oci" in r.provider, r.typ
    for call in program_run.mocks.calls:  # the look-ups ask the same region
        assert call.provider and "pulumi:providers:oci::oci" in call.provider, call.token


def test_region_from_config():
    run = run_program({"brain:region": "eu-amsterdam-1"})
    assert run.mocks.one("pulumi:providers:oci").inputs["region"] == "eu-amsterdam-1"
    assert run.exports["region"] == "eu-amsterdam-1"


# --- the GPU VM


def test_gpu_vm_inputs_follow_the_plan(program_run):
    vm = program_run.mocks.one(GPU_VM).inputs
    assert vm["gpu"] == "geforcertx4090-pcie-24gb"
    assert (vm["gpu_count"], vm["vcpu"], vm["ram_gb"], vm["storage_gb"]) == (1, 4, 16, 100)
    assert vm["image"] == "ubuntu2404"
    assert vm["location_id"] == "" and vm["hostnode_id"] == ""  # cheapest EU location at create time
    assert vm["ssh_key"].startswith("ssh-ed25519 ")
    assert vm["power_state"] == "running"


def test_gpu_port_forwards_from_config():
    run = run_program({"brain:gpuPortForwards": '[22, {"internal": 51820, "external": 20051}]',
                       "brain:gpuDedicatedIp": "false"})
    vm = run.mocks.one(GPU_VM).inputs
    assert vm["port_forwards"] == [{"internal_port": 22, "external_port": 22},
                                   {"internal_port": 51820, "external_port": 20051}]
    assert vm["use_dedicated_ip"] is False


@pytest.mark.parametrize("forwards", ["[11434]", '[{"internal": 11434, "external": 20001}]',
                                      '[{"internal": 22, "external": 11434}]'])
def test_forwarding_the_ollama_port_is_refused(forwards):
    with pytest.raises(ValueError, match="Ollama port 11434"):
        run_program({"brain:gpuPortForwards": forwards})


def test_gpu_storage_below_the_api_minimum_is_refused():
    with pytest.raises(ValueError, match="at least 100"):
        run_program({"brain:gpuStorageGb": "70"})


def test_gpu_can_be_disabled():
    run = run_program({"brain:gpuEnabled": "false"})
    assert run.mocks.of_type(GPU_VM) == []
    assert not any(k.startswith("gpu_") for k in run.exports)


# --- secrets


def test_tensordock_token_is_never_an_input_and_the_provider_is_secret():
    token = "td-secret-token-0123456789"
    run = run_program({"tensordock:token": token})
    vm = run.mocks.one(GPU_VM)
    assert is_secret(vm.inputs["__provider"])
    pickled = base64.b64decode(unsecret(vm.inputs["__provider"]))
    assert token.encode() not in pickled
    everything = json.dumps([{k: unsecret(v) for k, v in r.inputs.items()} for r in run.mocks.resources],
                            default=str)
    assert token not in everything


def test_missing_tensordock_token_fails_early(monkeypatch):
    monkeypatch.delenv("TENSORDOCK_API_TOKEN", raising=False)
    with pytest.raises(ValueError, match="no TensorDock API token"):
        run_program({"tensordock:token": None})
    monkeypatch.setenv("TENSORDOCK_API_TOKEN", "from-env")
    assert run_program({"tensordock:token": None}).mocks.of_type(GPU_VM)


def test_brain_only_stack_needs_no_tensordock_token(monkeypatch):
    monkeypatch.delenv("TENSORDOCK_API_TOKEN", raising=False)
    assert run_program({"tensordock:token": None, "brain:gpuEnabled": "false"}).mocks.of_type(INSTANCE)


def test_oci_private_key_from_config_stays_secret():
    run = run_program({"oci:privateKey": "-----BEGIN PRIVATE KEY-----\nabc\n"}, secret_keys=["oci:privateKey"])
    key = run.mocks.one("pulumi:providers:oci").inputs["privateKey"]
    assert is_secret(key) and unsecret(key).startswith("-----BEGIN PRIVATE KEY-----")


def test_no_export_is_secret_and_none_carries_a_key(program_run):
    assert program_run.secret_exports == set()
    assert "PRIVATE KEY" not in json.dumps(program_run.exports)


# --- exports (the Ansible hand-off reads them)


def test_exports_present(program_run):
    e = program_run.exports
    assert e["brain_public_ip"] == "198.51.100.20" and e["brain_private_ip"] == "10.0.1.5"
    assert (e["brain_ssh_port"], e["brain_ssh_user"]) == (22, "ubuntu")
    assert e["brain_instance_id"] == "brain-instance-id"
    assert e["gpu_instance_id"] == "td-instance-1" and e["gpu_public_ip"] == "203.0.113.5"
    assert (e["gpu_ssh_port"], e["gpu_ssh_user"], e["gpu_hourly_rate"]) == (22, "user", 0.399)
    assert e["gpu_storage_gb"] == 100  # the default gpuStorageGb: brain cost prices the stopped VM's disk
    assert e["admin_cidrs"] == ["198.51.100.7/32"]
    assert {"region", "vcn_id", "subnet_id", "brain_availability_domain", "brain_image_id"} <= set(e)


def test_components_are_registered(program_run):
    types = {r.typ for r in program_run.mocks.resources}
    assert {"brain:infra:Network", "brain:infra:BrainVm", "brain:infra:GpuVm"} <= types


def test_cloud_init_commands_are_valid_shell():
    doc = yaml.safe_load((INFRA / "cloud_init.yaml").read_text())
    for cmd in doc["runcmd"]:
        script = cmd[-1] if isinstance(cmd, list) else cmd
        proc = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (script, proc.stderr)


# --- SSH on the GPU VM (issue 12): only from the admin CIDRs (and the brain VM, added by Ansible), never as root


def _first_boot(run: ProgramRun) -> dict[str, Any]:
    return run.mocks.one(GPU_VM).inputs["cloud_init"]


def _ufw_ssh_sources(doc: dict[str, Any]) -> list[str]:
    return [cmd[3] for cmd in doc.get("runcmd", []) if cmd[:3] == ["ufw", "allow", "from"] and "22" in cmd]


def _sshd_drop_in(doc: dict[str, Any]) -> list[str]:
    """Run the first boot's sshd command with the drop-in path moved into a scratch folder; its lines."""
    import tempfile
    from pathlib import Path

    (cmd,) = [c for c in doc["runcmd"] if c[:2] == ["sh", "-c"] and "sshd_config.d" in c[2]]
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "10-hardening.conf"
        script = cmd[2].replace("/etc/ssh/sshd_config.d/10-hardening.conf", str(target)).split(" && ")[0]
        subprocess.run(["sh", "-c", script], check=True)
        assert cmd[2].split(" && ")[1].startswith("(systemctl reload ssh")
        return target.read_text().splitlines()


def test_gpu_first_boot_allows_ssh_only_from_the_admin_cidrs_and_never_as_root():
    run = run_program({"brain:adminCidrs": '["198.51.100.7/32", "203.0.113.0/28", "198.51.100.7"]'})
    doc = _first_boot(run)
    assert _ufw_ssh_sources(doc) == ["198.51.100.7/32", "203.0.113.0/28"]
    cmds = [" ".join(c) for c in doc["runcmd"]]
    assert "ufw default deny incoming" in cmds and cmds[-1] == "ufw --force enable"
    assert not [c for c in cmds if c.startswith("ufw allow 22") or "ufw allow from any" in c]
    assert not any(str(OLLAMA) in c for c in cmds)
    assert "ufw allow 51820/udp comment wireguard" in cmds  # the tunnel (the brain dials in)
    assert set(doc) <= {"package_update", "packages", "runcmd"}  # what TensorDock's API documents
    assert _sshd_drop_in(doc) == ["# written at first boot by Pulumi (infra/components/gpu_vm.py)",
                                  "PermitRootLogin no", "PasswordAuthentication no",
                                  "KbdInteractiveAuthentication no", "PermitEmptyPasswords no"]
    assert "ufw" in doc["packages"] and "python3" in doc["packages"]
    # the same networks go to the inventory, for the firewall Ansible keeps afterwards
    assert run.exports["admin_cidrs"] == ["198.51.100.7/32", "203.0.113.0/28"]


def test_gpu_first_boot_commands_are_valid_shell(program_run):
    for cmd in _first_boot(program_run)["runcmd"]:
        script = cmd[-1] if cmd[:2] == ["sh", "-c"] else " ".join(cmd)
        proc = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (script, proc.stderr)


def test_gpu_behind_port_forwarding_leaves_the_firewall_to_ansible():
    """Behind TensorDock's forwarding the source address SSH sees is unknown here: no lockout at
    boot; root and passwords are still refused, and the common role restricts SSH after checking
    the address the play comes from."""
    doc = _first_boot(run_program({"brain:gpuDedicatedIp": "false", "brain:gpuPortForwards": "[22]"}))
    assert _ufw_ssh_sources(doc) == [] and not [c for c in doc["runcmd"] if c[0] == "ufw"]
    assert "PermitRootLogin no" in _sshd_drop_in(doc)


def test_gpu_ssh_from_anywhere_is_refused_unless_configured():
    with pytest.raises(ValueError, match="whole Internet"):
        run_program({"brain:adminCidrs": '["0.0.0.0/0"]'})
    doc = _first_boot(run_program({"brain:adminCidrs": '["0.0.0.0/0"]', "brain:allowSshFromAnywhere": "true"}))
    assert _ufw_ssh_sources(doc) == ["0.0.0.0/0"]


def test_root_as_the_gpu_login_user_is_refused():
    with pytest.raises(ValueError, match="root may not log in"):
        run_program({"brain:gpuSshUser": "root"})


def test_a_changed_first_boot_config_does_not_replace_the_gpu_vm(monkeypatch):
    """cloud-init only runs at first boot: a new admin address must not buy a new GPU VM."""
    from components import gpu_vm

    seen: list[Any] = []
    real = gpu_vm.GpuVm.__init__

    def spy(self, name, props, opts=None, **kw):
        seen.append(opts)
        real(self, name, props, opts, **kw)

    monkeypatch.setattr(gpu_vm.GpuVm, "__init__", spy)
    run_program({})
    (opts,) = seen
    assert opts.ignore_changes == ["cloud_init"]


# --- the memory survives the VM (issue 15, point 5)

VOLUME = "oci:Core/volume:Volume"
ATTACHMENT = "oci:Core/volumeAttachment:VolumeAttachment"


def test_the_database_has_its_own_volume_attached_at_a_stable_path(program_run):
    vol = program_run.mocks.one(VOLUME).inputs
    assert vol["sizeInGbs"] == "50" and vol["availabilityDomain"] == ADS[0]
    att = program_run.mocks.one(ATTACHMENT).inputs
    assert att["attachmentType"] == "paravirtualized" and att["device"] == "/dev/oracleoci/oraclevdb"
    assert att["instanceId"] and att["volumeId"]
    assert program_run.mocks.one(INSTANCE).inputs["preserveBootVolume"] is False  # the boot volume is disposable
    assert program_run.exports["brain_data_device"] == "/dev/oracleoci/oraclevdb"
    assert "brain_data_volume_id" in program_run.exports


def test_the_data_volume_is_protected_and_retained():
    from components.brain_vm import data_volume_options

    opts = data_volume_options(None)  # type: ignore[arg-type]
    assert opts.protect is True and opts.retain_on_delete is True


def test_boot_and_data_volumes_stay_within_the_free_block_storage():
    with pytest.raises(Exception, match="200 GB of free block storage"):
        run_program({"brain:brainBootVolumeGb": "100", "brain:brainDataVolumeGb": "120"})
    with pytest.raises(Exception, match="brainDataVolumeGb must be at least 50"):
        run_program({"brain:brainDataVolumeGb": "20"})
