"""Behaviour of the common role in a booted container: SSH policy in force, firewall dropping
unlisted ports, upgrades scheduled, deploy user usable. Checks are grouped because each remote
command costs a `podman exec`."""

import socket

PROBE_PORT = 9999


def _connects(ip: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def test_sshd_runs_with_key_only_policy(host):
    assert host.service("ssh").is_running
    effective = host.run("/usr/sbin/sshd -T").stdout.lower()
    assert "passwordauthentication no" in effective
    assert "kbdinteractiveauthentication no" in effective
    assert "permitrootlogin no" in effective  # root never logs in over SSH (issue 12)
    assert host.socket("tcp://0.0.0.0:22").is_listening


def test_deploy_user_has_key_and_passwordless_sudo_but_no_password(host):
    user = host.user("deploy")
    assert user.exists
    keys = host.file("/home/deploy/.ssh/authorized_keys")
    assert keys.contains("molecule-test")
    assert keys.mode == 0o600
    assert host.run("passwd -S deploy").stdout.split()[1] == "L"
    sudo = host.run("sudo -u deploy sudo -n true")
    assert sudo.rc == 0, sudo.stderr


def test_firewall_denies_by_default_and_allows_listed_ports(host):
    status = host.run("ufw status verbose").stdout
    assert "Status: active" in status
    assert "deny (incoming)" in status
    assert "22/tcp" in status and "51820/udp" in status


def test_ssh_is_allowed_only_from_the_listed_sources_and_stale_rules_are_gone(host):
    """prepare.yml left `allow 22/tcp from any` and one from 198.51.100.9: converge removed both."""
    gateway = host.run("ip route show default").stdout.split()[2]
    added = host.run("ufw show added").stdout
    ssh_rules = sorted(line for line in added.splitlines() if " 22" in line and "/udp" not in line)
    assert ssh_rules == sorted([f"ufw allow from {gateway} to any port 22 proto tcp comment 'ssh'",
                                "ufw allow from 192.0.2.0/24 to any port 22 proto tcp comment 'ssh'"]), added
    assert "198.51.100.9" not in added


def test_firewall_drops_an_unlisted_port_but_not_ssh(host):
    """Open a listener on an unlisted port and reach it from outside the container."""
    ip = host.interface("eth0").addresses[0]
    host.run(f"systemd-run --unit probe-listener python3 -m http.server {PROBE_PORT}")
    try:
        inside = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' --retry 5 --retry-connrefused "
                          f"--retry-delay 1 http://127.0.0.1:{PROBE_PORT}/")
        assert inside.stdout == "200", "the probe listener did not start"
        assert not _connects(ip, PROBE_PORT), "an unlisted port is reachable from outside"
        assert _connects(ip, 22), "ssh is not reachable from outside"
    finally:
        host.run("systemctl stop probe-listener")


def test_security_upgrades_are_scheduled(host):
    dump = host.run("apt-config dump APT::Periodic").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert 'APT::Periodic::Update-Package-Lists "1";' in dump
    assert host.service("apt-daily-upgrade.timer").is_enabled
    assert host.service("systemd-timesyncd").is_enabled
