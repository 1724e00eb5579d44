"""Fast checks of the Ansible code that run in CI without containers: syntax, lint, the
inventory wiring, templates rendered with the roles' real defaults and read back by the real
brain config loader, the cron runner's lock and log, the GPU check, and the wheel build the
brain role's idempotence relies on. The molecule scenarios (tests/ansible/run-molecule.sh)
cover the roles on booted systems."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_helpers import REPO, ansible_env, find_tool, run_playbook

import brain.cli.main  # noqa: F401 - registers every area's settings, as the `brain` command does
from brain.shared import config as config_mod

HERE = Path(__file__).resolve().parent


def _render(tmp_path: Path, role: str, templates: list[str], **extra) -> dict[str, str]:
    out = tmp_path / f"out-{role}-{len(list(tmp_path.glob('out-*')))}"
    out.mkdir()
    run_playbook(tmp_path, HERE / "render.yml",
                 {"repo": str(REPO), "role": role, "out": str(out), "templates": templates, **extra})
    return {p.name: p.read_text() for p in out.iterdir()}


# --- syntax, lint, inventory -------------------------------------------------------------------

def test_site_yml_passes_the_syntax_check(tmp_path: Path, tool) -> None:
    # the static inventory only: the Pulumi script would call the pulumi CLI, which may wait on a backend
    proc = subprocess.run([tool("ansible-playbook"), "--syntax-check", "-i", "inventory/hosts.yml", "site.yml"], cwd=REPO,
                          env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production_profile_is_clean(tmp_path: Path, tool) -> None:
    env = {**ansible_env(tmp_path), "NO_COLOR": "1"}
    proc = subprocess.run([tool("ansible-lint"), "--offline", "--profile", "production"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


def test_inventory_wires_the_tunnel_addresses_and_secrets_from_the_environment(tmp_path: Path, tool) -> None:
    inv = tmp_path / "inventory"
    shutil.copytree(REPO / "inventory", inv, ignore=shutil.ignore_patterns("pulumi_inventory.py"))
    (inv / "test-hosts.yml").write_text(
        "brain:\n  hosts:\n    brain-vm: {ansible_host: 192.0.2.10}\n"
        "gpu:\n  hosts:\n    gpu-vm: {ansible_host: 192.0.2.20, site_admin_cidrs: [203.0.113.7/32]}\n")
    env = {**ansible_env(tmp_path), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "BRAIN_API_TOKENS": "new-token-0123456789abcdef,old-token-0123456789abcdef"}
    env.pop("BRAIN_API_URL", None)
    proc = subprocess.run([tool("ansible-playbook"), "-i", str(inv), "-c", "local", str(HERE / "show-vars.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    hosts = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]
    brain, gpu, local = hosts["brain-vm"]["msg"], hosts["gpu-vm"]["msg"], hosts["localhost"]["msg"]
    assert brain["wireguard_address"] == "10.77.0.1" and gpu["wireguard_address"] == "10.77.0.2"
    assert brain["brain_llm_base_url"] == "http://10.77.0.2:11434/v1"
    assert brain["brain_api_tokens"] == ["new-token-0123456789abcdef", "old-token-0123456789abcdef"]
    assert gpu["ollama_listen_address"] == "10.77.0.2" and gpu["ollama_allowed_clients"] == ["10.77.0.1"]
    assert local["collectors_api_url"].strip() == "https://192.0.2.10"
    # SSH to the GPU VM: the admin networks and the brain VM (public and tunnel address) only
    assert gpu["common_firewall_ssh_from"] == ["203.0.113.7/32", "192.0.2.10/32", "10.77.0.1/32"]
    assert brain["common_firewall_ssh_from"] == "any"  # the OCI security list is the brain's SSH policy


# --- brain role templates ----------------------------------------------------------------------

BRAIN_VARS = {"brain_api_tokens": ["tok-a-0123456789abcdef", "tok-b-0123456789abcdef"],
              "brain_llm_base_url": "http://10.77.0.2:11434/v1"}


def test_brain_config_is_read_by_the_real_config_loader(tmp_path: Path) -> None:
    files = _render(tmp_path, "brain", ["config.toml.j2"], **BRAIN_VARS,
                    brain_data_dir='/srv/brain "data"',
                    brain_extra_config={"server": {"max_batch_items": 100}, "llm": {"read_timeout": 120.5}})
    path = tmp_path / "config.toml"
    path.write_text(files["config.toml"])
    cfg = config_mod.load(path, env={})
    assert cfg.server.db_path == '/srv/brain "data"/brain.db'
    assert cfg.server.port == 8000 and cfg.server.host == "127.0.0.1"
    assert cfg.server.max_batch_items == 100 and cfg.llm.read_timeout == 120.5
    assert cfg.llm.base_url == "http://10.77.0.2:11434/v1"
    assert cfg.backup.dir == "/var/backups/brain" and cfg.backup.keep == 7
    assert cfg.server.api_tokens == []  # secrets never in the config file


def test_brain_unknown_extra_setting_is_caught_by_the_loader(tmp_path: Path) -> None:
    files = _render(tmp_path, "brain", ["config.toml.j2"], **BRAIN_VARS,
                    brain_extra_config={"server": {"db_pth": "/typo"}})
    path = tmp_path / "config.toml"
    path.write_text(files["config.toml"])
    with pytest.raises(config_mod.ConfigError, match="server.db_pth"):
        config_mod.load(path, env={})


def test_brain_secrets_file_and_hardened_unit(tmp_path: Path) -> None:
    files = _render(tmp_path, "brain", ["brain.env.j2", "brain.service.j2"], **BRAIN_VARS)
    env_lines = [line for line in files["brain.env"].splitlines() if not line.startswith("#")]
    assert env_lines == ["BRAIN_API_TOKENS=tok-a-0123456789abcdef,tok-b-0123456789abcdef"]
    with_key = _render(tmp_path, "brain", ["brain.env.j2"], **BRAIN_VARS, brain_openai_api_key="sk-test_123")
    assert "OPENAI_API_KEY=sk-test_123" in with_key["brain.env"]
    unit = files["brain.service"]
    for line in ("User=brain", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/brain",
                 "EnvironmentFile=/etc/brain/brain.env", "Environment=BRAIN_CONFIG=/etc/brain/config.toml",
                 "ExecStart=/opt/brain/venv/bin/brain serve"):
        assert line in unit.splitlines(), line


def test_caddyfile_uses_the_internal_ca_only_without_a_domain(tmp_path: Path) -> None:
    internal = _render(tmp_path, "brain", ["Caddyfile.j2"], brain_public_address="192.0.2.10")["Caddyfile"]
    assert "192.0.2.10, localhost {" in internal and "tls internal" in internal
    assert "reverse_proxy 127.0.0.1:8000" in internal and "flush_interval -1" in internal
    public = _render(tmp_path, "brain", ["Caddyfile.j2"], brain_domain="brain.example.org",
                     brain_acme_email="ops@example.org")["Caddyfile"]
    assert "brain.example.org {" in public and "tls internal" not in public
    assert "email ops@example.org" in public


def test_caddy_admin_is_a_unix_socket_and_logs_drop_query_strings(tmp_path: Path) -> None:
    files = _render(tmp_path, "brain", ["Caddyfile.j2", "caddy-override.conf.j2"], brain_public_address="192.0.2.10")
    caddyfile = files["Caddyfile"]
    assert "admin unix//run/caddy/admin.sock" in caddyfile and "2019" not in caddyfile
    assert "RuntimeDirectory=caddy" in files["caddy-override.conf"].splitlines()
    assert "RuntimeDirectoryMode=0750" in files["caddy-override.conf"].splitlines()
    for line in ("read_header 10s", "read_body 1m", "write 15m", "idle 2m"):
        assert line in caddyfile, line
    # the filter on both the access log and Caddy's own log
    assert caddyfile.count("request>uri regexp \\?.*$ \"\"") == 2
    assert caddyfile.count("request>headers>Referer delete") == 2


def _caddy() -> str:
    found = shutil.which("caddy")
    if found is None:
        pytest.fail("caddy is not installed: apt-get install caddy (scripts/test.sh does)")
    return found


def test_rendered_caddyfiles_pass_the_real_caddy_validate(tmp_path: Path) -> None:
    caddy = _caddy()
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    for extra in ({"brain_public_address": "192.0.2.10"},
                  {"brain_domain": "brain.example.org", "brain_acme_email": "ops@example.org"}):
        path = tmp_path / f"Caddyfile-{len(list(tmp_path.glob('Caddyfile-*')))}"
        path.write_text(_render(tmp_path, "brain", ["Caddyfile.j2"], **extra)["Caddyfile"])
        proc = subprocess.run([caddy, "validate", "--adapter", "caddyfile", "--config", str(path)], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _local_caddyfile(rendered: str, admin: Path, port: int, upstream: int) -> str:
    """The rendered Caddyfile with only its addresses moved onto this machine: the admin socket
    into the test's folder, the site onto plain HTTP on a free port, the upstream onto a stand-in."""
    out = rendered.replace("unix//run/caddy/admin.sock", f"unix/{admin}")
    out = out.replace("192.0.2.10, localhost {", f"http://127.0.0.1:{port} {{").replace("\ttls internal\n", "")
    out = out.replace("reverse_proxy 127.0.0.1:8000", f"reverse_proxy 127.0.0.1:{upstream}")
    assert f"unix/{admin}" in out and f"127.0.0.1:{port}" in out and f":{upstream}" in out
    return out


def test_caddy_keeps_queries_out_of_its_log_reloads_over_its_socket_and_drops_slow_clients(tmp_path: Path) -> None:
    """The rendered Caddyfile in a real Caddy: a request with a query and a Referer is logged
    without either; `caddy reload --config` (what Debian's unit runs) reaches the admin API on its
    socket while nothing listens on localhost:2019; a client that stops in the middle of its
    headers is disconnected after read_header."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    caddy = _caddy()

    class Upstream(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port, admin = _free_port(), tmp_path / "run" / "admin.sock"
    admin.parent.mkdir(mode=0o750)
    rendered = _render(tmp_path, "brain", ["Caddyfile.j2"], brain_public_address="192.0.2.10",
                       brain_caddy_timeouts={"read_header": "1s", "read_body": "5s", "write": "30s", "idle": "30s"})
    config = tmp_path / "Caddyfile"
    config.write_text(_local_caddyfile(rendered["Caddyfile"], admin, port, upstream.server_address[1]))
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    log = tmp_path / "caddy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([caddy, "run", "--config", str(config)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not admin.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert admin.is_socket(), log.read_text()[-3000:]
        # Caddy opens its admin socket before the site's listener: wait for the listener too (at
        # load 10 the first request came in between and was refused)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline + 60, log.read_text()[-3000:]
                time.sleep(0.05)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", 2019), timeout=2).close()

        import urllib.request

        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/search?q=needle-in-the-query",
                                     headers={"Referer": f"http://127.0.0.1:{port}/?q=needle-in-the-referer"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.read() == b"ok"

        # Caddy writes the access log line after the response: wait for it, not for a fixed time
        deadline = time.monotonic() + 10
        while '"uri":"/api/v1/search"' not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = log.read_text()
        assert '"uri":"/api/v1/search"' in text, text[-3000:]
        assert "needle" not in text

        config.write_text(config.read_text().replace("idle 30s", "idle 31s"))
        reload = subprocess.run([caddy, "reload", "--config", str(config), "--force"], env=env,
                                capture_output=True, text=True, timeout=60, check=False)
        assert reload.returncode == 0, reload.stderr[-2000:]

        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            started = time.monotonic()
            while slow.recv(1024):  # Caddy may answer 408 before it closes; our 10 s timeout would raise
                pass
            assert time.monotonic() - started < 9
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        upstream.shutdown()
        upstream.server_close()


def test_backup_timer_runs_a_command_the_real_cli_accepts(tmp_path: Path, runner, monkeypatch) -> None:
    """Render the timer's service unit, then run its ExecStart through the brain CLI."""
    import sqlite3

    from brain.cli.main import main
    from brain.core.backup import backup_files

    dest = tmp_path / "backups"
    timer = {"name": "brain-backup", "description": "backup", "command": "", "on_calendar": "daily",
             "read_write_paths": ["/var/lib/brain", str(dest)]}
    files = _render(tmp_path, "brain", ["brain-timer.service.j2", "brain-timer.timer.j2"],
                    brain_backup_dir=str(dest), brain_backup_keep=2,
                    item={**timer, "command": "{{ _brain_timers[0].command }}"})
    exec_start = next(line for line in files["brain-timer.service"].splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[0] == "/opt/brain/venv/bin/brain" and argv[1] == "backup"
    assert "Persistent=true" in files["brain-timer.timer"] and "OnCalendar=daily" in files["brain-timer.timer"]

    db = tmp_path / "brain.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    monkeypatch.setenv("BRAIN_DB", str(db))
    for _ in range(3):
        result = runner.invoke(main, argv[1:])
        assert result.exit_code == 0, result.output
    assert len(backup_files(dest)) == 2


# --- ollama role -------------------------------------------------------------------------------

def test_ollama_drop_in_binds_the_tunnel_address_after_the_tunnel(tmp_path: Path) -> None:
    files = _render(tmp_path, "ollama", ["override.conf.j2", "ollama.service.j2"],
                    ollama_listen_address="10.77.0.2", ollama_context_length="16384",
                    ollama_extra_env={"OLLAMA_FLASH_ATTENTION": "1"})
    drop_in = files["override.conf"].splitlines()
    assert 'Environment="OLLAMA_HOST=10.77.0.2:11434"' in drop_in
    assert 'Environment="OLLAMA_KEEP_ALIVE=15m"' in drop_in
    assert 'Environment="OLLAMA_MODELS=/usr/share/ollama/.ollama/models"' in drop_in
    assert [line for line in drop_in if "OLLAMA_CONTEXT_LENGTH" in line] == ['Environment="OLLAMA_CONTEXT_LENGTH=16384"']
    assert 'Environment="OLLAMA_FLASH_ATTENTION=1"' in drop_in
    assert "After=wg-quick@wg0.service" in drop_in
    assert "ExecStart=/opt/ollama/0.8.0/bin/ollama serve" in files["ollama.service"]
    local = _render(tmp_path, "ollama", ["override.conf.j2"])["override.conf"]
    assert "wg-quick" not in local and 'OLLAMA_HOST=127.0.0.1:11434' in local
    assert 'OLLAMA_CONTEXT_LENGTH=8192' in local  # set even by default: never Ollama's VRAM-dependent guess


# --- the whole site: settings two hosts must agree on ------------------------------------------

_SITE_TEMPLATES = {"brain": ["config.toml.j2", "brain.env.j2"], "ollama": ["override.conf.j2"],
                   "collectors": ["config.toml.j2"]}
_SITE_VARS = {"brain": ["wireguard_address", "brain_caddy_ca_fetch_dest"],
              "ollama": ["wireguard_address", "ollama_models", "ollama_allowed_clients", "ollama_listen_address"],
              "collectors": ["collectors_ca_bundle_src"]}


def _render_site(tmp_path: Path, tool, **extra: object) -> dict[str, dict[str, str]]:
    """site.yml's files for a brain, a GPU and a laptop host from the real inventory: each role is
    copied with a tasks/main.yml that renders its templates and records a few variables, so role
    defaults, role vars and group_vars take their real precedence."""
    import yaml

    out, roles = tmp_path / "site-out", tmp_path / "site-roles"
    for role, templates in _SITE_TEMPLATES.items():
        copy = roles / role
        copy.mkdir(parents=True)
        for part in ("defaults", "vars", "templates"):
            (copy / part).symlink_to(REPO / "roles" / role / part)
        (copy / "tasks").mkdir()
        dest = f"{out}/{{{{ inventory_hostname }}}}"
        names = repr(_SITE_VARS[role])
        (copy / "tasks/main.yml").write_text(yaml.safe_dump([
            {"name": "Output folder", "ansible.builtin.file": {"path": dest, "state": "directory", "mode": "0700"}},
            {"name": "Render", "loop": templates, "ansible.builtin.template": {
                "src": "{{ item }}", "dest": f"{dest}/{role}-{{{{ item | regex_replace('\\.j2$', '') }}}}",
                "mode": "0600"}},
            {"name": "Record", "ansible.builtin.copy": {
                "dest": f"{dest}/{role}-vars.json", "mode": "0600",
                "content": "{{ dict(" + names + " | zip(query('ansible.builtin.vars', *" + names + "))) | to_json }}"}},
        ]))
    inv = tmp_path / "inventory"
    shutil.copytree(REPO / "inventory", inv, ignore=shutil.ignore_patterns("pulumi_inventory.py"))
    (inv / "test-hosts.yml").write_text(
        "brain:\n  hosts:\n    brain-vm: {ansible_host: 192.0.2.10}\n"
        "gpu:\n  hosts:\n    gpu-vm: {ansible_host: 192.0.2.20}\n")
    env = {**ansible_env(tmp_path), "ANSIBLE_ROLES_PATH": str(roles),
           "BRAIN_API_TOKENS": "site-token-0123456789abcdef,old-token-0123456789abcdef"}
    for var in ("BRAIN_API_URL", "BRAIN_TOKEN", "OPENAI_API_KEY"):
        env.pop(var, None)
    args = [tool("ansible-playbook"), "-i", str(inv), "-c", "local", str(HERE / "render-site.yml"),
            "-e", json.dumps({"collectors_home": str(tmp_path / "home"), **extra})]
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return {host.name: {p.name: p.read_text() for p in host.iterdir()} for host in out.iterdir()}


def _drop_in_env(text: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r'^Environment="([A-Z_]+)=(.*)"$', text, re.M))


def _agreement(tmp_path: Path, files: dict[str, dict[str, str]]) -> tuple[config_mod.Config, dict[str, str]]:
    """Load both config files with the real loader and check every pair that must agree."""
    brain, gpu, laptop = files["brain-vm"], files["gpu-vm"], files["localhost"]
    (tmp_path / "brain.toml").write_text(brain["brain-config.toml"])
    (tmp_path / "laptop.toml").write_text(laptop["collectors-config.toml"])
    server = config_mod.load(tmp_path / "brain.toml", env={})
    client = config_mod.load(tmp_path / "laptop.toml", env={})
    ollama_env = _drop_in_env(gpu["ollama-override.conf"])
    gpu_vars, brain_vars = json.loads(gpu["ollama-vars.json"]), json.loads(brain["brain-vars.json"])
    tunnel_host, _, port = ollama_env["OLLAMA_HOST"].partition(":")
    # the model: what Ollama pulls is what brain-api asks for
    assert gpu_vars["ollama_models"] == [server.llm.model]
    # the context: Ollama allocates what brain-api packs
    assert int(ollama_env["OLLAMA_CONTEXT_LENGTH"]) == server.llm.context_tokens
    # the tunnel: Ollama binds the GPU's tunnel address, which brain-api calls, and admits the brain's
    assert tunnel_host == gpu_vars["wireguard_address"] == gpu_vars["ollama_listen_address"]
    assert server.llm.base_url == f"http://{tunnel_host}:{port}/v1"
    assert server.gpu.ollama_url in ("", f"http://{tunnel_host}:{port}")
    assert gpu_vars["ollama_allowed_clients"] == [brain_vars["wireguard_address"]]
    # the tokens: the laptop's (which its collectors, CLI and MCP server all read) is one brain-api accepts
    accepted = re.search(r"^BRAIN_API_TOKENS=(.*)$", brain["brain-brain.env"], re.M).group(1).split(",")
    assert client.client.token in accepted and server.server.api_tokens == []
    # the internal CA: the laptop trusts the certificate the brain role fetched
    laptop_vars = json.loads(laptop["collectors-vars.json"])
    assert laptop_vars["collectors_ca_bundle_src"].strip() == brain_vars["brain_caddy_ca_fetch_dest"] != ""
    assert client.client.ca_bundle.endswith("/.config/brain/brain-ca.crt")
    return server, ollama_env


def test_settings_two_hosts_must_agree_on_are_derived_once(tmp_path: Path, tool) -> None:
    server, ollama_env = _agreement(tmp_path, _render_site(tmp_path, tool))
    assert (server.llm.model, server.llm.context_tokens) == ("deepseek-coder-v2:16b", 8192)
    assert ollama_env["OLLAMA_HOST"] == "10.77.0.2:11434"


def test_changing_a_site_value_moves_both_sides(tmp_path: Path, tool) -> None:
    """One value changed in one place reaches both hosts: they agree because they are derived."""
    files = _render_site(tmp_path, tool, site_llm_context_tokens=16384, site_llm_model="qwen2.5-coder:7b",
                         site_ollama_port=11500, site_gpu_tunnel_ip="10.88.0.2", site_brain_tunnel_ip="10.88.0.1")
    server, ollama_env = _agreement(tmp_path, files)
    assert (server.llm.model, server.llm.context_tokens) == ("qwen2.5-coder:7b", 16384)
    assert ollama_env["OLLAMA_HOST"] == "10.88.0.2:11500"
    assert server.llm.base_url == "http://10.88.0.2:11500/v1"


def test_gpu_check_fails_clearly_without_nvidia_smi_and_passes_with_it(tmp_path: Path) -> None:
    bare = tmp_path / "bin-bare"
    bare.mkdir()
    path_without = f"{bare}:/usr/bin:/bin"
    assert shutil.which("nvidia-smi", path=path_without) is None
    failed = run_playbook(tmp_path, HERE / "gpu-check.yml", env={"PATH": f"{Path(sys.executable).parent}:{path_without}"},
                          check=False)
    assert failed.returncode != 0
    assert "No working NVIDIA driver" in failed.stdout and "ollama_require_gpu: false" in failed.stdout

    fake = tmp_path / "bin-gpu"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA GeForce RTX 4090, 550.54.14, 24564 MiB'\n")
    smi.chmod(0o755)
    ok = run_playbook(tmp_path, HERE / "gpu-check.yml",
                      env={"PATH": f"{fake}:{Path(sys.executable).parent}:{path_without}"})
    assert "GPU: NVIDIA GeForce RTX 4090" in ok.stdout


# --- collectors role ---------------------------------------------------------------------------

def _collectors_vars(tmp_path: Path) -> dict:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fake_brain = venv / "bin" / "brain"
    # stand-in for the installed `brain`: records its arguments, and can be told to run long
    fake_brain.write_text("#!/bin/sh\necho \"args: $*\"\n[ -n \"$SLOW\" ] && sleep \"$SLOW\"\nexit 0\n")
    fake_brain.chmod(0o755)
    return {"collectors_home": str(tmp_path / "home"), "collectors_venv": str(venv),
            "collectors_api_url": "https://192.0.2.10", "collectors_api_token": "tok-0123456789abcdef",
            "collectors_ca_bundle": "/home/dev/brain-ca.crt", "collectors_log_max_kb": 1,
            "collectors_config": {"collect": {"files_roots": ["~/projects"]}, "client": {"timeout": 30}}}


def test_collectors_config_is_read_by_the_real_config_loader(tmp_path: Path) -> None:
    import brain.collect  # noqa: F401 - registers the collect.* settings

    files = _render(tmp_path, "collectors", ["config.toml.j2"], **_collectors_vars(tmp_path))
    path = tmp_path / "config.toml"
    path.write_text(files["config.toml"])
    cfg = config_mod.load(path, env={})
    assert cfg.client.api_url == "https://192.0.2.10" and cfg.client.token == "tok-0123456789abcdef"
    assert cfg.client.ca_bundle == "/home/dev/brain-ca.crt" and cfg.client.timeout == 30
    assert cfg.collect.files_roots == ["~/projects"]


def test_cron_runner_locks_logs_and_rotates(tmp_path: Path) -> None:
    if shutil.which("flock") is None:
        pytest.fail("flock (util-linux) is required")
    extra = _collectors_vars(tmp_path)
    runner_script = tmp_path / "cron-run.sh"
    runner_script.write_text(_render(tmp_path, "collectors", ["cron-run.sh.j2"], **extra)["cron-run.sh"])
    runner_script.chmod(0o755)
    log = Path(extra["collectors_home"]) / ".local/state/brain/collect.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"x" * 4096)  # past the 1 KB limit

    done = subprocess.run([str(runner_script), "collect", "all"], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert log.with_name("collect.log.1").stat().st_size == 4096
    text = log.read_text()
    assert "brain collect all" in text and "args: collect all" in text and "=== exit 0" in text

    slow = subprocess.Popen([str(runner_script), "collect", "all"], env={**os.environ, "SLOW": "5"})
    try:
        deadline = time.monotonic() + 5
        while "args: collect all" not in log.read_text().split("=== exit 0")[-1] and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run([str(runner_script), "collect", "all"], capture_output=True, timeout=30, check=False)
        assert second.returncode == 75
        assert "skipped: the previous run still holds the lock" in log.read_text()
    finally:
        slow.wait(timeout=30)


# --- packaging ---------------------------------------------------------------------------------

def test_wheel_build_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    """The brain role reinstalls (and restarts) only when the copied wheel changes."""
    script = REPO / "roles/brain/files/build_wheel.py"
    digests = []
    for n in range(2):
        out = subprocess.run([sys.executable, str(script), str(REPO), str(tmp_path / f"w{n}")],
                             capture_output=True, text=True, timeout=600, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        digests.append(hashlib.sha256(Path(out.stdout.strip()).read_bytes()).hexdigest())
        time.sleep(1.1)  # a timestamp leaking into the wheel would now differ
    assert digests[0] == digests[1]


# --- secrets stay out of the output --------------------------------------------------------------

# The variables holding secrets. WireGuard's private key is no variable: it is made on the host and
# only its file's path travels (the key generation task has no_log all the same).
SECRET_NAMES = {"collectors_api_token", "brain_api_tokens", "brain_openai_api_key", "brain_tensordock_api_token"}


def _secret_vars(role: Path) -> set[str]:
    """The secret variables plus every role variable whose definition uses one (derived secrets)."""
    import yaml

    names = set(SECRET_NAMES)
    defs: dict[str, str] = {}
    for part in ("defaults", "vars"):
        data = yaml.safe_load((role / part / "main.yml").read_text()) or {}
        defs.update({k: yaml.safe_dump(v) for k, v in data.items()})
    changed = True
    while changed:
        changed = False
        for name, text in defs.items():
            if name not in names and any(re.search(rf"\b{re.escape(s)}\b", text) for s in names):
                names.add(name)
                changed = True
    return names


def _tasks(items: list) -> list[dict]:
    """Every task of a task file, blocks opened."""
    out = []
    for task in items or []:
        if "block" in task:
            out += _tasks(task["block"]) + _tasks(task.get("rescue", [])) + _tasks(task.get("always", []))
        else:
            out.append(task)
    return out


def test_every_task_that_handles_a_secret_has_no_log() -> None:
    """A task whose arguments (or whose template) use a secret variable keeps its output to itself:
    without no_log, `ansible-playbook --diff` prints a rendered template line by line. Conditions
    (`when`) are left out: they print no value."""
    import yaml

    offenders = []
    for role in sorted((REPO / "roles").iterdir()):
        secrets = _secret_vars(role)
        for task_file in sorted((role / "tasks").glob("*.yml")):
            for task in _tasks(yaml.safe_load(task_file.read_text())):
                body = {k: v for k, v in task.items() if k not in ("when", "name", "no_log", "notify")}
                text = yaml.safe_dump(body)
                src = (task.get("ansible.builtin.template") or {}).get("src")
                if src:  # a looped src (``{{ item }}.j2``) stands for every template it can name
                    for path in (role / "templates").glob(re.sub(r"\{\{.*?\}\}", "*", src)):
                        text += path.read_text()
                used = sorted(s for s in secrets if re.search(rf"\b{re.escape(s)}\b", text))
                if used and task.get("no_log") is not True:
                    offenders.append(f"{task_file.relative_to(REPO)}: {task.get('name')} uses {', '.join(used)}")
    assert not offenders, "\n".join(offenders)


def _role_with_standin_handlers(tmp_path: Path, role: str) -> Path:
    """A roles folder holding ``role`` as it is (linked) but with handlers that only print their
    names, so a task file can run on this machine without restarting anything."""
    import yaml

    roles = tmp_path / "roles"
    copy = roles / role
    if not copy.exists():
        copy.mkdir(parents=True)
        for part in ("defaults", "vars", "tasks", "templates", "meta", "files"):
            if (REPO / "roles" / role / part).exists():
                (copy / part).symlink_to(REPO / "roles" / role / part)
        names = [h["name"] for h in yaml.safe_load((REPO / "roles" / role / "handlers/main.yml").read_text())
                 if "name" in h and "ansible.builtin.import_tasks" not in h] \
            if (REPO / "roles" / role / "handlers/main.yml").exists() else []
        (copy / "handlers").mkdir()
        (copy / "handlers/main.yml").write_text(yaml.safe_dump(
            [{"name": n, "ansible.builtin.debug": {"msg": f"stand-in handler: {n}"}} for n in names]))
    return roles


def _run_with_diff(tmp_path: Path, role: str, task_file: str, extra: dict,
                   check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run one task file of a role with --diff (and -v): what an operator's terminal shows.
    ``check``: --check as well (nothing changes on this machine; the diffs are printed all the same)."""
    roles = _role_with_standin_handlers(tmp_path, role)
    vars_file = tmp_path / f"vars-{role}-{len(list(tmp_path.glob('vars-*')))}.json"
    vars_file.write_text(json.dumps({"role": role, "task_file": task_file, **extra}))
    args = [find_tool("ansible-playbook"), "-i", "localhost,", "-c", "local", "--diff", "-v",
            str(HERE / "secret-tasks.yml"), "-e", f"@{vars_file}"]
    if check:
        args.append("--check")
    env = {**ansible_env(tmp_path), "ANSIBLE_ROLES_PATH": str(roles)}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc


def test_diff_of_the_collectors_config_never_shows_the_token(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = home / ".config/brain/config.toml"
    config.parent.mkdir(parents=True)
    extra = {"collectors_home": str(home), "collectors_api_url": "https://192.0.2.10"}
    for token in ("tok-first-0123456789abcdef", "tok-rotated-0123456789abcdef"):  # create, then change
        out = _run_with_diff(tmp_path, "collectors", "config.yml", {**extra, "collectors_api_token": token})
        assert "changed=1" in out.stdout, out.stdout[-2000:]
        assert "tok-" not in out.stdout + out.stderr
        if os.geteuid() == 0:
            assert f'token = "{token}"' in config.read_text()
            assert config.stat().st_mode & 0o777 == 0o600


def test_collectors_install_the_claude_code_hooks_once_and_keep_the_users(tmp_path: Path) -> None:
    """tasks/hooks.yml with this checkout's own `brain` as the installed one: the hooks merged into
    the home's ~/.claude/settings.json beside the user's own, changed the first time only (the
    molecule scenario turns collectors_claude_hooks on as well; not run here)."""
    home = tmp_path / "home"
    settings = home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    own = {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]}}
    settings.write_text(json.dumps(own))
    extra = {"collectors_home": str(home), "collectors_venv": str(Path(sys.executable).parent.parent),
             "collectors_claude_hooks": True}
    first = _run_with_diff(tmp_path, "collectors", "hooks.yml", extra)
    assert "changed=1" in first.stdout and "added SessionStart, added Stop, added SessionEnd" in first.stdout
    again = _run_with_diff(tmp_path, "collectors", "hooks.yml", extra)
    assert "changed=0" in again.stdout and "already installed, nothing changed" in again.stdout
    data = json.loads(settings.read_text())
    assert data["hooks"]["Stop"][0] == own["hooks"]["Stop"][0]
    config = str(home / ".config/brain/config.toml")
    for event, command in (("SessionStart", "session-start"), ("Stop", "session-end"), ("SessionEnd", "session-end")):
        ours = data["hooks"][event][-1]["hooks"][0]["command"]
        assert shlex.split(ours) == [str(Path(sys.executable).parent / "brain"), "--config", config, "hooks", command]


def test_the_collectors_role_installs_the_hooks_only_when_asked() -> None:
    import yaml

    defaults = yaml.safe_load((REPO / "roles/collectors/defaults/main.yml").read_text())
    assert defaults["collectors_claude_hooks"] is False
    task = next(t for t in yaml.safe_load((REPO / "roles/collectors/tasks/main.yml").read_text())
                if t.get("ansible.builtin.import_tasks") == "hooks.yml")
    assert task["when"] == "collectors_claude_hooks | bool"
    assert "`collectors_claude_hooks`" in (REPO / "roles/collectors/README.md").read_text()


def test_diff_of_the_brain_config_and_secrets_never_shows_a_secret(tmp_path: Path) -> None:
    """In check mode: the task file also creates the service account and root-owned files, which
    a test must not do to this machine; check mode computes and prints the same diffs."""
    secrets = {"brain_api_tokens": ["tok-api-0123456789abcdef"], "brain_openai_api_key": "sk-test-openai-0123456789",
               "brain_tensordock_api_token": "tdtok-0123456789abcdef"}
    extra = {"brain_config_dir": str(tmp_path / "etc-brain"), "brain_data_dir": str(tmp_path / "var-lib-brain"),
             "brain_user": "brain-difftest", **secrets}
    out = _run_with_diff(tmp_path, "brain", "config.yml", extra, check=True)
    assert "changed=4" in out.stdout and "failed=0" in out.stdout, out.stdout[-2000:]
    assert "Write the secrets file read by systemd" in out.stdout and "Write the configuration" in out.stdout
    for value in ("tok-api-", "sk-test-openai-", "tdtok-"):
        assert value not in out.stdout + out.stderr, value
    assert not (tmp_path / "etc-brain").exists()
