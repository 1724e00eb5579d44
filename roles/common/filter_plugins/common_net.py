"""Filters of the common role for its SSH firewall rules, on the standard library's ipaddress
(the ansible.utils ip filters need netaddr, which ansible does not bring).

``common_ssh_source_ok``: is an SSH source ``any``, an address or a CIDR ufw accepts?
``common_ip_allowed``: would a connection from this address pass one of the sources?
``common_stale_ssh_sources``: the sources of ``ufw show added`` rules that allow the SSH port
but are no longer wanted, so the role can delete them (the policy is the list, not "the list
plus whatever an earlier run or a person allowed").
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

ANY = "any"
# `ufw show added` prints rules as commands: `ufw allow 22/tcp`, `ufw allow from 203.0.113.7 to any
# port 22 proto tcp comment 'ssh'`
_RULE = re.compile(r"^ufw allow (?:in )?(?:on \S+ )?(?:from (?P<src>\S+) to \S+ port (?P<port>\d+)"
                   r"(?: proto (?P<proto>tcp|udp))?|(?P<bare>\d+)(?:/(?P<bproto>tcp|udp))?)(?:\s|$)")


def _network(source: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(source).strip(), strict=False)
    except ValueError:
        return None


def common_ssh_source_ok(source: Any) -> bool:
    """``any``, or an IPv4/IPv6 address or network."""
    return str(source).strip() == ANY or _network(str(source)) is not None


def _same(a: str, b: str) -> bool:
    if a == ANY or b == ANY:
        return a == b
    na, nb = _network(a), _network(b)
    return na is not None and na == nb


def common_ip_allowed(address: str, sources: list[str]) -> bool:
    """Would a connection from ``address`` be let in by one of ``sources``?"""
    try:
        ip = ipaddress.ip_address(str(address).strip())
    except ValueError:
        return False
    for source in sources:
        if str(source).strip() == ANY:
            return True
        net = _network(source)
        if net is not None and ip.version == net.version and ip in net:
            return True
    return False


def common_stale_ssh_sources(lines: list[str], port: int | str, wanted: list[str]) -> list[str]:
    """Sources of the rules in ``lines`` that allow TCP ``port`` but are not in ``wanted``."""
    stale: list[str] = []
    for line in lines:
        m = _RULE.match(line.strip())
        if m is None:
            continue
        rule_port = m.group("port") or m.group("bare")
        proto = m.group("proto") or m.group("bproto") or ""
        if rule_port != str(port) or proto == "udp":
            continue
        source = m.group("src") or ANY
        if not any(_same(source, str(w).strip()) for w in wanted) and source not in stale:
            stale.append(source)
    return stale


class FilterModule:
    """The filters above, by name."""

    def filters(self) -> dict[str, Any]:
        return {"common_ssh_source_ok": common_ssh_source_ok, "common_ip_allowed": common_ip_allowed,
                "common_stale_ssh_sources": common_stale_ssh_sources}
