"""Behaviour of the ollama role against the STAND-IN executable (see ../standin/ollama): the
service runs as `ollama` with the drop-in's environment, listens on the tunnel address only,
the firewall admits only the brain through the tunnel, and models are pulled only once."""

import json


def test_service_runs_as_ollama_with_the_drop_in_environment(host):
    service = host.service("ollama")
    assert service.is_running and service.is_enabled
    props = host.run("systemctl show ollama -p User -p Environment").stdout
    assert "User=ollama" in props
    assert "OLLAMA_HOST=10.77.0.2:11434" in props
    assert "OLLAMA_KEEP_ALIVE=15m" in props
    assert "OLLAMA_MODELS=/usr/share/ollama/.ollama/models" in props
    assert host.file("/usr/local/bin/ollama").linked_to == "/opt/ollama/0.8.0/bin/ollama"
    assert host.file("/opt/ollama/0.8.0/lib/ollama/STAND-IN.txt").exists


def test_listens_only_on_the_tunnel_address(host):
    assert host.socket("tcp://10.77.0.2:11434").is_listening
    assert not host.socket("tcp://0.0.0.0:11434").is_listening
    assert host.run("curl -s -m 3 http://127.0.0.1:11434/api/version").rc != 0
    version = json.loads(host.run("curl -s -m 3 http://10.77.0.2:11434/api/version").stdout)
    assert version["version"] == "0.0.0-standin"


def test_firewall_admits_the_brain_through_the_tunnel_only(host):
    rules = host.run("ufw status verbose").stdout
    assert "deny (incoming)" in rules
    port_rules = [line for line in rules.splitlines() if line.startswith("11434")]
    assert len(port_rules) == 1, rules
    assert "on wg0" in port_rules[0] and "ALLOW IN" in port_rules[0] and "10.77.0.1" in port_rules[0]


def test_models_are_pulled_once_and_answer(host):
    tags = json.loads(host.run("curl -s http://10.77.0.2:11434/api/tags").stdout)
    assert sorted(m["name"] for m in tags["models"]) == ["deepseek-coder-v2:16b", "tinyllama:latest"]
    state = json.loads(host.file("/usr/share/ollama/.ollama/models/standin-state.json").content_string)
    # converge pulled each model once; the idempotence run saw them in /api/tags and pulled none
    assert state["pulls"] == 2
    # and every run checked each model with a one-token generate
    assert state["generates"] == 4
