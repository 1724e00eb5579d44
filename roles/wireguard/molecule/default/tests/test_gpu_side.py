"""From the GPU side: the firewall admits WireGuard and Ollama-from-the-brain, nothing else."""

testinfra_hosts = ["wg-gpu"]


def test_firewall_opens_wireguard_and_ollama_only_for_the_tunnel(host):
    rules = host.run("ufw status").stdout
    assert "51820/udp" in rules
    allow = [line for line in rules.splitlines() if "11434/tcp on wg0" in line]
    assert allow and "10.77.0.1" in allow[0], rules
    assert host.socket("tcp://10.77.0.2:11434").is_listening
    assert not host.socket("tcp://0.0.0.0:11434").is_listening
