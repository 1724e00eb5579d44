"""Three hosts for the production rehearsal, as systemd containers on a podman network made for the
run: "brain" and "gpu" (what Pulumi creates in production) and "laptop" (the developer's machine).

They are reached the way production hosts are: over SSH, with a key, as an unprivileged sudo user
(``admin``; ``dev`` on the laptop, who runs the collectors), at their addresses on the network. So
the common role's SSH and firewall policy applies to the run that provisions them.

Why containers and not VMs: this machine has no virtualisation, and the roles do not care; why
podman: the molecule scenarios already boot the same image (tests/ansible/build-image.sh).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/brain-test:bookworm"
CONTAINERS_CONF = REPO / "tests/ansible/containers.conf"
APT_CACHE = Path("/var/cache/brain-molecule/apt")
PIP_CACHE = Path("/var/cache/brain-molecule/pip")  # root's pip cache on each host (the roles pip-install as root)


def podman(*args: str, check: bool = True, timeout: float = 300, input: str | None = None,
           ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=env, input=input,
                          check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} ... failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc


@dataclass
class Host:
    name: str  # inventory name: brain, gpu, laptop
    container: str
    user: str
    ip: str = ""
    mounts: list[str] = field(default_factory=list)

    def sh(self, script: str, *, user: str = "root", check: bool = True, timeout: float = 300
           ) -> subprocess.CompletedProcess[str]:
        """A shell script inside the container (podman exec: the harness's own back door, used to
        set up and to observe; provisioning itself goes over SSH)."""
        args = ["exec", "--user", user]
        if user != "root":
            args += ["--workdir", f"/home/{user}", "--env", f"HOME=/home/{user}"]
        return podman(*args, self.container, "bash", "-lc", script, check=check, timeout=timeout)


class Site:
    """The network and the three containers of one run; ``destroy`` removes them all."""

    def __init__(self, work: Path, prefix: str = "brain-rehearsal"):
        self.work = work
        self.network = f"{prefix}-net"
        self.key = work / "id_ed25519"
        self.hosts = {name: Host(name, f"{prefix}-{name}", "dev" if name == "laptop" else "admin")
                      for name in ("brain", "gpu", "laptop")}
        self.gateway = ""

    def create(self, extra_mounts: dict[str, list[str]]) -> None:
        self.destroy()
        podman("network", "create", self.network)
        info = json.loads(podman("network", "inspect", self.network).stdout)[0]
        self.gateway = info["subnets"][0]["gateway"]
        if not self.key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        for host in self.hosts.values():
            host.mounts = extra_mounts.get(host.name, [])
            self._run(host)
        for host in self.hosts.values():
            self._boot(host)

    def replace(self, name: str) -> None:
        """Destroy one host and boot a blank one in its place, as a replaced VM: same name and
        role, nothing kept, an address of its own (OCI gives a new VM a new ephemeral public IP)."""
        host = self.hosts[name]
        old_ip = host.ip
        podman("rm", "-f", "-t", "5", host.container)
        # take the old address first, so podman cannot hand it straight back
        placeholder = f"{host.container}-old-address"
        podman("run", "-d", "--name", placeholder, "--network", self.network, "--ip", old_ip, IMAGE, "sleep", "600")
        try:
            self._run(host)
        finally:
            podman("rm", "-f", "-t", "0", placeholder, check=False)
        self._boot(host)

    def _run(self, host: Host) -> None:
        caches = {APT_CACHE / host.container: "/var/cache/apt/archives", PIP_CACHE / host.container: "/root/.cache/pip"}
        for cache in caches:
            cache.mkdir(parents=True, exist_ok=True)
        args = ["run", "-d", "--name", host.container, "--hostname", host.name, "--network", self.network,
                "--systemd", "always", "--cap-add", "SYS_ADMIN,NET_ADMIN,NET_RAW", "--device", "/dev/net/tun"]
        for mount in [*(f"{src}:{dst}" for src, dst in caches.items()), *host.mounts]:
            args += ["-v", mount]
        podman(*args, IMAGE, "/sbin/init")
        host.ip = json.loads(podman("inspect", host.container).stdout)[0]["NetworkSettings"]["Networks"][
            self.network]["IPAddress"]

    def attach(self) -> bool:
        """Use the containers of an earlier run kept with BRAIN_REHEARSAL_KEEP (for iterating on a
        failure); False when they are not all running."""
        for host in self.hosts.values():
            proc = podman("inspect", host.container, check=False)
            if proc.returncode != 0:
                return False
            info = json.loads(proc.stdout)[0]
            if not info["State"]["Running"]:
                return False
            host.ip = info["NetworkSettings"]["Networks"][self.network]["IPAddress"]
        self.gateway = json.loads(podman("network", "inspect", self.network).stdout)[0]["subnets"][0]["gateway"]
        return True

    def _boot(self, host: Host, deadline_s: float = 180) -> None:
        """Wait for systemd and sshd, then add the login user with the run's key (what cloud-init
        does on a real VM: a sudo user with an authorized key; root's login is the role's to lock)."""
        deadline = time.monotonic() + deadline_s
        while True:
            state = host.sh("systemctl is-system-running || true", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host.container}: systemd did not finish booting ({state!r})")
            time.sleep(1)
        pub = self.key.with_suffix(".pub").read_text().strip()
        sudo = "" if host.name == "laptop" else \
            f"echo '{host.user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{host.user}; chmod 0440 /etc/sudoers.d/{host.user}"
        host.sh(f"""set -e
            id {host.user} >/dev/null 2>&1 || useradd -m -s /bin/bash {host.user}
            {sudo}
            install -d -m 0700 -o {host.user} -g {host.user} /home/{host.user}/.ssh
            echo {shlex.quote(pub)} > /home/{host.user}/.ssh/authorized_keys
            chown {host.user}: /home/{host.user}/.ssh/authorized_keys; chmod 0600 /home/{host.user}/.ssh/authorized_keys
            systemctl enable --now ssh >/dev/null 2>&1 || systemctl enable --now sshd
        """)

    def inventory(self, extra_host_vars: dict[str, dict[str, object]]) -> Path:
        """An inventory beside the repository's own group_vars (linked, so the run uses exactly
        what production uses): the three hosts at their network addresses."""
        inv = self.work / "inventory"
        inv.mkdir(parents=True, exist_ok=True)
        link = inv / "group_vars"
        if not link.exists():
            link.symlink_to(REPO / "inventory" / "group_vars")
        ssh_args = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=20"
        groups = {"brain": "brain", "gpu": "gpu", "laptop": "collectors"}
        names = {"brain": "brain-vm", "gpu": "gpu-vm", "laptop": "laptop"}  # a host named like its group confuses
        data: dict[str, object] = {"all": {
            "vars": {"ansible_ssh_private_key_file": str(self.key), "ansible_ssh_common_args": ssh_args,
                     "ansible_python_interpreter": "/usr/bin/python3"},
            "children": {group: {"hosts": {names[name]: {"ansible_host": self.hosts[name].ip,
                                                  "ansible_user": self.hosts[name].user,
                                                  **extra_host_vars.get(name, {})}}}
                         for name, group in groups.items()}}}
        (inv / "hosts.yml").write_text(json.dumps(data, indent=2))  # JSON is YAML
        return inv

    def copy(self, name: str, src: Path, dest: str, owner: str, mode: str) -> None:
        """A file put on a host as ``scp`` by ``owner`` would leave it."""
        host = self.hosts[name]
        podman("cp", str(src), f"{host.container}:{dest}")
        host.sh(f"chown {owner}: {shlex.quote(dest)} && chmod {mode} {shlex.quote(dest)}")

    def stop(self, name: str) -> None:
        podman("stop", "-t", "5", self.hosts[name].container)

    def destroy(self) -> None:
        for host in self.hosts.values():
            podman("rm", "-f", "-t", "5", host.container, check=False)
        podman("network", "rm", "-f", self.network, check=False)
