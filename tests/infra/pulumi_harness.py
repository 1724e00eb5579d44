"""Run the Pulumi program (infra/__main__.py) under Pulumi's unit-test mocks.

No Pulumi CLI, no cloud: ``pulumi.runtime.set_mocks`` replaces the engine, ``ProgramMocks``
records every resource the program registers (with its inputs, as they would go to the
provider) and answers the two OCI look-ups the program makes (availability domains, images).
"""

from __future__ import annotations

import asyncio
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import rpc, settings

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
if str(INFRA) not in sys.path:  # the program's own imports (components.*, tensordock.*) as Pulumi runs them
    sys.path.insert(0, str(INFRA))

ADS = ["Uocm:EU-FRANKFURT-1-AD-1", "Uocm:EU-FRANKFURT-1-AD-2", "Uocm:EU-FRANKFURT-1-AD-3"]
IMAGES = [  # what get_images returns for the A1 shape, newest first
    {"id": "ocid1.image.oc1.minimal", "displayName": "Canonical-Ubuntu-24.04-Minimal-aarch64-2025.05.20-0",
     "operatingSystem": "Canonical Ubuntu", "operatingSystemVersion": "24.04"},
    {"id": "ocid1.image.oc1.full", "displayName": "Canonical-Ubuntu-24.04-aarch64-2025.05.20-0",
     "operatingSystem": "Canonical Ubuntu", "operatingSystemVersion": "24.04"},
    {"id": "ocid1.image.oc1.older", "displayName": "Canonical-Ubuntu-24.04-aarch64-2025.04.01-0",
     "operatingSystem": "Canonical Ubuntu", "operatingSystemVersion": "24.04"},
]
BASE_CONFIG = {
    "brain:compartmentOcid": "ocid1.compartment.oc1..test",
    "brain:sshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKey me@laptop",
    "brain:adminCidrs": '["198.51.100.7/32"]',
    "tensordock:token": "td-test-token-0123456789",
}
SECRET_KEYS = ["tensordock:token"]


class ProgramMocks(pulumi.runtime.Mocks):
    """Records resources and invokes; gives each resource plausible computed outputs."""

    def __init__(self, images: list[dict[str, Any]] | None = None) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []
        self.calls: list[pulumi.runtime.MockCallArgs] = []
        self.images = IMAGES if images is None else images

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        outs = dict(args.inputs)
        if args.typ == "oci:Core/vcn:Vcn":
            outs["defaultSecurityListId"] = "ocid1.securitylist.default"
        elif args.typ == "oci:Core/instance:Instance":
            outs.update(publicIp="198.51.100.20", privateIp="10.0.1.5")
        elif args.typ == "pulumi-python:dynamic/tensordock:GpuVm":
            outs.update(instance_id="td-instance-1", public_ip="203.0.113.5", ssh_port=22, hourly_rate=0.399,
                        status="running")
        return f"{args.name}-id", outs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        self.calls.append(args)
        if args.token == "oci:Identity/getAvailabilityDomains:getAvailabilityDomains":
            return {"availabilityDomains": [{"name": n, "compartmentId": args.args.get("compartmentId")} for n in ADS]}
        if args.token == "oci:Core/getImages:getImages":
            return {"images": self.images}
        return {}

    def of_type(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> pulumi.runtime.MockResourceArgs:
        (found,) = self.of_type(typ)
        return found


@dataclass
class ProgramRun:
    mocks: ProgramMocks
    exports: dict[str, Any] = field(default_factory=dict)
    secret_exports: set[str] = field(default_factory=set)


def _ensure_event_loop() -> None:
    """Pulumi's mock runtime needs a current event loop; an earlier ``asyncio.run`` may have unset it."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
        if not loop.is_closed():
            return
    except RuntimeError:
        pass
    asyncio.set_event_loop(asyncio.new_event_loop())


def run_program(config: dict[str, str | None], secret_keys: list[str] | None = None,
                images: list[dict[str, Any]] | None = None) -> ProgramRun:
    """Run ``infra/__main__.py`` under mocks with ``BASE_CONFIG`` + ``config`` (None removes a key);
    resolve every export."""
    _ensure_event_loop()
    pulumi.runtime.set_all_config({k: v for k, v in {**BASE_CONFIG, **config}.items() if v is not None},
                                   secret_keys=SECRET_KEYS + (secret_keys or []))
    settings.ROOT.set(None)  # a fresh stack, so exports of an earlier run do not leak in
    run = ProgramRun(ProgramMocks(images))
    pulumi.runtime.set_mocks(run.mocks, project="brain", stack="test", preview=False)

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        runpy.run_path(str(INFRA / "__main__.py"), run_name="__pulumi_program__")
        outputs = settings.get_root_resource().outputs  # type: ignore[union-attr]

        async def collect() -> None:
            for name, value in outputs.items():
                out = pulumi.Output.from_input(value)
                run.exports[name] = await out.future()
                if await out.is_secret():
                    run.secret_exports.add(name)

        return pulumi.Output.from_input(collect())

    program()
    return run


def is_secret(value: Any) -> bool:
    """True when a mock-recorded input was sent to the engine marked secret."""
    return rpc.is_rpc_secret(value)


def unsecret(value: Any) -> Any:
    return rpc.unwrap_rpc_secret(value)
