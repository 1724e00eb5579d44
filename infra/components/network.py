"""The brain VM's network on Oracle Cloud: VCN, internet gateway, route table, firewall, subnet.

The firewall (a security list) is the policy that matters: SSH only from the admin CIDRs,
HTTPS (443) for brain-api, nothing else. In particular the Ollama port (11434) is never opened:
brain-api talks to Ollama over the private link, and an open Ollama answers anyone.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_oci as oci

SSH_PORT = 22
HTTPS_PORT = 443
OLLAMA_PORT = 11434
TCP, ICMP = "6", "1"  # OCI protocol numbers, as strings
ANYWHERE = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class IngressRule:
    """One allowed inbound flow; ``port`` is None for ICMP."""

    protocol: str
    source: str
    port: int | None
    description: str
    icmp_type: int | None = None
    icmp_code: int | None = None


def _cidr(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not a CIDR like 203.0.113.7/32") from None


def admin_networks(admin_cidrs: list[str], *, allow_ssh_from_anywhere: bool = False) -> list[str]:
    """The networks SSH is allowed from (both VMs), normalised, without repeats. Raises ValueError
    naming the bad value; SSH from the whole Internet is refused unless ``allow_ssh_from_anywhere``
    says it is meant."""
    admins = [_cidr(c, "adminCidrs") for c in admin_cidrs]
    if not admins:
        raise ValueError("adminCidrs: at least one CIDR must be allowed to SSH in (Ansible needs it)")
    wide = [c for c in admins if c in ANYWHERE]
    if wide and not allow_ssh_from_anywhere:
        raise ValueError(f"adminCidrs: {', '.join(wide)} opens SSH to the whole Internet; "
                         "use your own address (curl ifconfig.me)/32, or set allowSshFromAnywhere true")
    return list(dict.fromkeys(admins))


def ingress_rules(admin_cidrs: list[str], https_cidrs: list[str], *,
                  allow_ssh_from_anywhere: bool = False) -> list[IngressRule]:
    """The complete inbound policy, validated. Raises ValueError naming the bad value."""
    admins = admin_networks(admin_cidrs, allow_ssh_from_anywhere=allow_ssh_from_anywhere)
    rules = [IngressRule(TCP, c, SSH_PORT, "SSH from an admin network") for c in admins]
    rules += [IngressRule(TCP, _cidr(c, "httpsCidrs"), HTTPS_PORT, "HTTPS to brain-api")
              for c in dict.fromkeys(https_cidrs)]
    # Path-MTU discovery ("fragmentation needed"): not a port, and without it large TLS
    # responses can stall. Oracle's default security list carries the same rule.
    rules.append(IngressRule(ICMP, "0.0.0.0/0", None, "ICMP path MTU discovery", icmp_type=3, icmp_code=4))
    return rules


def _to_oci(rule: IngressRule) -> oci.core.SecurityListIngressSecurityRuleArgs:
    if rule.protocol == ICMP:
        return oci.core.SecurityListIngressSecurityRuleArgs(
            protocol=ICMP, source=rule.source, source_type="CIDR_BLOCK", description=rule.description,
            icmp_options=oci.core.SecurityListIngressSecurityRuleIcmpOptionsArgs(type=rule.icmp_type,
                                                                                  code=rule.icmp_code))
    return oci.core.SecurityListIngressSecurityRuleArgs(
        protocol=TCP, source=rule.source, source_type="CIDR_BLOCK", description=rule.description,
        tcp_options=oci.core.SecurityListIngressSecurityRuleTcpOptionsArgs(min=rule.port, max=rule.port))


@dataclass
class NetworkArgs:
    """Where and what to open. ``https_cidrs`` defaults to everyone: collectors run on laptops."""

    compartment_id: pulumi.Input[str]
    admin_cidrs: list[str]
    https_cidrs: list[str] = field(default_factory=lambda: ["0.0.0.0/0"])
    allow_ssh_from_anywhere: bool = False
    vcn_cidr: str = "10.0.0.0/16"
    subnet_cidr: str = "10.0.1.0/24"


class Network(pulumi.ComponentResource):
    """A VCN with one public subnet whose only firewall is the policy of ``ingress_rules``."""

    vcn: oci.core.Vcn
    subnet: oci.core.Subnet
    security_list: oci.core.SecurityList

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("brain:infra:Network", name, None, opts)
        rules = ingress_rules(args.admin_cidrs, args.https_cidrs,
                              allow_ssh_from_anywhere=args.allow_ssh_from_anywhere)
        child = pulumi.ResourceOptions(parent=self)
        cid = args.compartment_id

        self.vcn = oci.core.Vcn(f"{name}-vcn", compartment_id=cid, cidr_blocks=[args.vcn_cidr],
                                display_name="brain-vcn", dns_label="brainvcn", opts=child)
        # The VCN's default security list opens SSH to 0.0.0.0/0. Our subnet does not use it,
        # but strip it anyway so attaching it by mistake cannot undo the policy.
        self.default_security_list = oci.core.DefaultSecurityList(
            f"{name}-default-sl", manage_default_resource_id=self.vcn.default_security_list_id,
            compartment_id=cid, display_name="brain-default-closed", ingress_security_rules=[],
            egress_security_rules=[], opts=child)
        self.internet_gateway = oci.core.InternetGateway(f"{name}-igw", compartment_id=cid, vcn_id=self.vcn.id,
                                                         enabled=True, display_name="brain-igw", opts=child)
        self.route_table = oci.core.RouteTable(
            f"{name}-rt", compartment_id=cid, vcn_id=self.vcn.id, display_name="brain-public-rt",
            route_rules=[oci.core.RouteTableRouteRuleArgs(network_entity_id=self.internet_gateway.id,
                                                          destination="0.0.0.0/0", destination_type="CIDR_BLOCK")],
            opts=child)
        self.security_list = oci.core.SecurityList(
            f"{name}-sl", compartment_id=cid, vcn_id=self.vcn.id, display_name="brain-public-sl",
            ingress_security_rules=[_to_oci(r) for r in rules],
            egress_security_rules=[oci.core.SecurityListEgressSecurityRuleArgs(
                protocol="all", destination="0.0.0.0/0", destination_type="CIDR_BLOCK",
                description="updates, OpenAI embeddings, the GPU VM")],
            opts=child)
        self.subnet = oci.core.Subnet(
            f"{name}-subnet", compartment_id=cid, vcn_id=self.vcn.id, cidr_block=args.subnet_cidr,
            display_name="brain-public-subnet", dns_label="pub", route_table_id=self.route_table.id,
            security_list_ids=[self.security_list.id], prohibit_public_ip_on_vnic=False, opts=child)

        self.register_outputs({"vcn_id": self.vcn.id, "subnet_id": self.subnet.id,
                               "security_list_id": self.security_list.id})
