"""The common role's SSH firewall filters (roles/common/filter_plugins/common_net.py): which
sources are valid, whether the play's own address stays allowed, which old rules must go."""

from __future__ import annotations

import importlib.util

from ansible_helpers import REPO

_spec = importlib.util.spec_from_file_location("common_net", REPO / "roles/common/filter_plugins/common_net.py")
net = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(net)

# as `ufw show added` prints them (community.general.ufw adds the comment)
ADDED = """Added user rules (see 'ufw status' for running firewall):
ufw allow 22/tcp comment 'ssh'
ufw allow from 198.51.100.9 to any port 22 proto tcp comment 'ssh'
ufw allow from 203.0.113.7 to any port 22 proto tcp comment 'ssh'
ufw allow from 2001:db8::/64 to any port 22 proto tcp
ufw allow 51820/udp comment 'wireguard'
ufw allow in on wg0 from 10.77.0.1 to any port 11434 proto tcp
ufw allow 443/tcp comment 'caddy'
ufw allow from 192.0.2.5 to any port 22 proto udp
""".splitlines()


def test_sources_are_any_or_addresses_or_networks() -> None:
    for good in ("any", "203.0.113.7", "203.0.113.0/24", "2001:db8::/64", "10.77.0.1/32"):
        assert net.common_ssh_source_ok(good), good
    for bad in ("", "anywhere", "brain-vm.example.org", "203.0.113.300", "10.0.0.0/33"):
        assert not net.common_ssh_source_ok(bad), bad


def test_the_plays_own_address_must_stay_allowed() -> None:
    sources = ["203.0.113.0/28", "2001:db8::/64", "10.77.0.1/32"]
    assert net.common_ip_allowed("203.0.113.9", sources)
    assert net.common_ip_allowed("2001:db8::42", sources)
    assert not net.common_ip_allowed("203.0.113.16", sources)
    assert not net.common_ip_allowed("not-an-address", sources)
    assert net.common_ip_allowed("198.51.100.1", ["any"])


def test_stale_ssh_rules_are_every_ssh_allow_not_in_the_list() -> None:
    wanted = ["203.0.113.7/32", "2001:db8::/64"]
    assert net.common_stale_ssh_sources(ADDED, 22, wanted) == ["any", "198.51.100.9"]
    assert net.common_stale_ssh_sources(ADDED, "22", ["any", "198.51.100.9", "203.0.113.7", "2001:db8::/64"]) == []
    assert net.common_stale_ssh_sources(ADDED, 2222, wanted) == []  # rules of another port stay
