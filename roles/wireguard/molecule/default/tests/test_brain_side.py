"""From the brain side: the tunnel is up, Ollama answers through it, and not around it."""

import json

testinfra_hosts = ["wg-brain"]


def test_tunnel_is_up_and_has_a_handshake(host):
    assert host.service("wg-quick@wg0").is_running
    assert host.run("ping -c 2 -W 2 10.77.0.2").rc == 0
    handshakes = host.run("wg show wg0 latest-handshakes").stdout.split()
    assert len(handshakes) == 2 and int(handshakes[1]) > 0


def test_ollama_answers_through_the_tunnel_only(host):
    version = json.loads(host.run("curl -s -m 5 http://10.77.0.2:11434/api/version").stdout)
    assert version["version"] == "0.0.0-standin"
    peer_endpoint = host.run("wg show wg0 endpoints").stdout.split()[1]
    gpu_ip = peer_endpoint.rsplit(":", 1)[0]
    around = host.run(f"curl -s -m 5 http://{gpu_ip}:11434/api/version")
    assert around.rc != 0, "Ollama answered outside the tunnel"


def test_private_key_stays_in_a_root_only_file(host):
    key = host.file("/etc/wireguard/wg0.key")
    assert key.user == "root" and key.mode == 0o600
    conf = host.file("/etc/wireguard/wg0.conf")
    assert conf.mode == 0o600 and not conf.contains("PrivateKey")
