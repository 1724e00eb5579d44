"""Stand-in for the TensorDock v2 API (https://dashboard.tensordock.com/api/v2), for tests only.

A stdlib ``http.server`` in a background thread on ``127.0.0.1`` and a free port. It implements
the endpoints the brain uses, in the shapes the public docs and public clients show:

- ``GET /locations`` -> ``{"data": {"locations": [...]}}``
- ``GET /hostnodes`` -> ``{"data": {"hostnodes": [...]}}``, ``GET /hostnodes/{id}`` -> ``{"data": {...}}``
- ``POST /instances`` (JSON:API body) -> ``{"data": {"type": "virtualmachine", "id", "name", "status"}}``
- ``GET /instances`` -> ``{"data": {"instances": [{"type": "VM", "id", "attributes": {...}}]}}``
  (``list_shape`` switches to the other shapes public clients accept)
- ``GET /instances/{id}`` -> *unwrapped* ``{"type": "instance", "id", "name", "status", "ipAddress",
  "portForwards", "resources", "rateHourly"}`` (``wrap_get=True`` wraps it in ``{"data": ...}``)
- ``POST /instances/{id}/start|stop`` -> ``{"data": {"type": "instance", "id", "attributes": {"status"}}}``
- ``DELETE /instances/{id}`` -> ``{"data": {"type": "success", "attributes": {"message": ...}}}``

State machine: start puts a stopped VM in ``starting`` and, ``transition_delay`` seconds later,
``running``; stop goes ``stopping`` -> ``stopped_status`` (default ``"Stopped"``, mixed case as the
docs show). With ``transition_delay=0`` transitions are immediate. Creating a VM goes through
``starting`` the same way. Starting a VM that is not stopped (or stopping one that is not
running) answers HTTP 400 with an ``{"error": ...}`` body (assumed; the real API's answer is not
documented).

Failure injection (each rule fires ``times`` times on requests matching ``method``/``path``):
``fail(status)`` (e.g. 401, 429, 500, with a Retry-After header if given), ``error_in_200(msg)``,
``slow(seconds)`` (respond late, to trip client timeouts) and ``disconnect()`` (close the socket
without an answer).

Usage::

    with TensorDockStandIn(transition_delay=0.2) as td:
        client = TensorDockClient(token=td.token, base_url=td.url)
        vm_id = td.add_instance(status="Stopped")
        client.start_instance(vm_id)
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RTX_4090 = "geforcertx4090-pcie-24gb"


def default_locations() -> list[dict[str, Any]]:
    """Four locations chosen to exercise location picking.

    Frankfurt (DE) is the cheapest EU location that fits 1 x RTX 4090 with 4 vCPU / 16 GB /
    100 GB: 0.35 + 4*0.003 + 16*0.002 + 100*0.00005 = $0.399/h. Amsterdam (NL) is cheaper but has
    no 4090 free (max_count 0); Helsinki (FI) is cheaper but allows only 2 vCPU; Dallas (US) is the
    cheapest of all but not in the EU. Paris (FR) fits at a higher price ($0.469/h).
    """
    pricing = {"per_vcpu_hr": 0.003, "per_gb_ram_hr": 0.002, "per_gb_storage_hr": 0.00005}

    def gpu(price: float, max_count: int = 4, max_vcpus: int = 32) -> dict[str, Any]:
        return {
            "v0Name": RTX_4090, "displayName": "NVIDIA GeForce RTX 4090 PCIe 24GB", "max_count": max_count,
            "price_per_hr": price,
            "resources": {"max_vcpus": max_vcpus, "max_ram_gb": 128, "max_storage_gb": 2000},
            "pricing": dict(pricing),
            "network_features": {"dedicated_ip_available": True, "port_forwarding_available": True,
                                 "network_storage_available": False},
        }

    return [
        {"id": "loc-fra-0001", "city": "Frankfurt", "stateprovince": "Hesse", "country": "Germany", "tier": 3,
         "gpus": [gpu(0.35)]},
        {"id": "loc-ams-0002", "city": "Amsterdam", "stateprovince": "North Holland", "country": "Netherlands",
         "tier": 3, "gpus": [gpu(0.30, max_count=0)]},
        {"id": "loc-hel-0003", "city": "Helsinki", "stateprovince": "Uusimaa", "country": "Finland", "tier": 2,
         "gpus": [gpu(0.28, max_vcpus=2)]},
        {"id": "loc-dal-0004", "city": "Dallas", "stateprovince": "Texas", "country": "United States", "tier": 3,
         "gpus": [gpu(0.20)]},
        {"id": "loc-par-0005", "city": "Paris", "stateprovince": "Ile-de-France", "country": "France", "tier": 3,
         "gpus": [gpu(0.42)]},
    ]


def default_hostnodes() -> list[dict[str, Any]]:
    """One hostnode in Frankfurt with free public ports 20000-20009."""
    return [{
        "id": "hn-fra-0001", "location_id": "loc-fra-0001", "engine": "kvm", "uptime_percentage": 99.9,
        "available_resources": {
            "gpus": [{"v0Name": RTX_4090, "availableCount": 2, "price_per_hr": 0.35}],
            "vcpu_count": 32, "ram_gb": 128, "storage_gb": 2000, "max_vcpus_per_gpu": 16, "max_ram_per_gpu": 64,
            "max_vcpus": 32, "max_ram_gb": 128, "max_storage_gb": 2000,
            "available_ports": list(range(20000, 20010)), "has_public_ip_available": True,
        },
        "pricing": {"per_vcpu_hr": 0.003, "per_gb_ram_hr": 0.002, "per_gb_storage_hr": 0.00005},
        "location": {"uuid": "loc-fra-0001", "city": "Frankfurt", "stateprovince": "Hesse", "country": "Germany"},
    }]


@dataclass
class RecordedRequest:
    """One request as the stand-in saw it (the token itself is not kept)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorized: bool


@dataclass
class _Rule:
    kind: str  # fail | error200 | slow | disconnect
    times: int
    method: str | None
    path: str | None
    status: int = 500
    body: Any = None
    seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and (self.method is None or self.method == method) and (
            self.path is None or re.search(self.path, path) is not None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out close their socket early: not an error worth a traceback."""


class TensorDockStandIn:
    """A running stand-in for the TensorDock v2 API; see the module docstring."""

    def __init__(self, token: str = "standin-token", *, transition_delay: float = 0.0,
                 locations: list[dict[str, Any]] | None = None, hostnodes: list[dict[str, Any]] | None = None,
                 wrap_get: bool = False, list_shape: str = "instances", stopped_status: str = "Stopped"):
        if list_shape not in ("instances", "list", "attributes"):
            raise ValueError("list_shape must be instances, list or attributes")
        self.token = token
        self.transition_delay = transition_delay
        self.locations = copy.deepcopy(locations if locations is not None else default_locations())
        self.hostnodes = copy.deepcopy(hostnodes if hostnodes is not None else default_hostnodes())
        self.wrap_get = wrap_get
        self.list_shape = list_shape
        self.stopped_status = stopped_status
        self.requests: list[RecordedRequest] = []
        self.instances: dict[str, dict[str, Any]] = {}
        self._rules: list[_Rule] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._ip_counter = itertools.count(10)
        self._port_counter = itertools.count(30000)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> TensorDockStandIn:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="tensordock-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> TensorDockStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stand-in not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to give the client, like ``https://dashboard.tensordock.com/api/v2``."""
        return f"http://127.0.0.1:{self.port}/api/v2"

    # -- failure injection

    def fail(self, status: int, *, times: int = 1, body: Any = None, method: str | None = None,
             path: str | None = None, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` matching requests with HTTP ``status`` (``path`` is a regex).

        ``body`` is sent as JSON, or verbatim when it is a str (e.g. an HTML error page)."""
        if body is None:
            body = {"error": f"Injected failure {status}", "status": status}
        with self._lock:
            self._rules.append(_Rule("fail", times, method, path, status=status, body=body, headers=headers or {}))

    def error_in_200(self, message: str, *, times: int = 1, status_field: int = 400, method: str | None = None,
                     path: str | None = None) -> None:
        """Answer HTTP 200 with ``{"error": message, "status": status_field}``."""
        body = {"error": message, "status": status_field}
        with self._lock:
            self._rules.append(_Rule("error200", times, method, path, status=200, body=body))

    def slow(self, seconds: float, *, times: int = 1, method: str | None = None, path: str | None = None) -> None:
        """Wait ``seconds`` before handling the next matching requests normally."""
        with self._lock:
            self._rules.append(_Rule("slow", times, method, path, seconds=seconds))

    def disconnect(self, *, times: int = 1, method: str | None = None, path: str | None = None) -> None:
        """Close the connection without any answer."""
        with self._lock:
            self._rules.append(_Rule("disconnect", times, method, path))

    def clear_faults(self) -> None:
        with self._lock:
            self._rules.clear()

    # -- state helpers for tests

    def add_instance(self, *, name: str = "gpu", status: str = "running", location_id: str = "loc-fra-0001",
                     gpu: str = RTX_4090, gpu_count: int = 1, vcpu: int = 4, ram_gb: int = 16,
                     storage_gb: int = 100, ssh_port: int | None = None, rate_hourly: float | None = None) -> str:
        """Put an existing instance in the account (e.g. one created earlier by Pulumi); returns its id."""
        with self._lock:
            inst = self._new_instance(name=name, location_id=location_id, hostnode_id=None, gpu=gpu,
                                      gpu_count=gpu_count, vcpu=vcpu, ram_gb=ram_gb, storage_gb=storage_gb,
                                      image="ubuntu2404", forwards=[] if ssh_port is None else
                                      [{"internal_port": 22, "external_port": ssh_port}], dedicated_ip=ssh_port is None)
            inst["status"] = status
            if rate_hourly is not None:
                inst["rateHourly"] = rate_hourly
            return str(inst["id"])

    def set_status(self, instance_id: str, status: str) -> None:
        """Force a status (cancels any pending transition)."""
        with self._lock:
            self.instances[instance_id]["status"] = status
            self.instances[instance_id]["_pending"] = None

    def instance(self, instance_id: str) -> dict[str, Any]:
        """A copy of the stored instance after applying due transitions."""
        with self._lock:
            inst = self.instances[instance_id]
            self._settle(inst)
            return {k: copy.deepcopy(v) for k, v in inst.items() if not k.startswith("_")}

    def calls(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, filtered by method and a path regex."""
        with self._lock:
            return [r for r in self.requests if (method is None or r.method == method)
                    and (path is None or re.search(path, r.path))]

    # -- internals used by the handler

    def _take_rule(self, method: str, path: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.times -= 1
                    return copy.copy(rule)
        return None

    def _settle(self, inst: dict[str, Any]) -> None:
        pending = inst.get("_pending")
        if pending and time.monotonic() >= pending[1]:
            inst["status"] = pending[0]
            inst["_pending"] = None

    def _transition(self, inst: dict[str, Any], via: str, final: str) -> None:
        if self.transition_delay > 0:
            inst["status"] = via
            inst["_pending"] = (final, time.monotonic() + self.transition_delay)
        else:
            inst["status"] = final
            inst["_pending"] = None

    def _price(self, location_id: str | None, hostnode_id: str | None, gpu: str, gpu_count: int, vcpu: int,
               ram_gb: int, storage_gb: int) -> float:
        price, pricing = 0.0, {}
        if hostnode_id:
            node = next(h for h in self.hostnodes if h["id"] == hostnode_id)
            offer = next((g for g in node["available_resources"]["gpus"] if g["v0Name"] == gpu), {})
            price, pricing = offer.get("price_per_hr", 0.0), node.get("pricing", {})
        else:
            loc = next(rec for rec in self.locations if rec["id"] == location_id)
            offer = next((g for g in loc["gpus"] if g["v0Name"] == gpu), {})
            price, pricing = offer.get("price_per_hr", 0.0), offer.get("pricing", {})
        return round(price * gpu_count + pricing.get("per_vcpu_hr", 0) * vcpu + pricing.get("per_gb_ram_hr", 0)
                     * ram_gb + pricing.get("per_gb_storage_hr", 0) * storage_gb, 6)

    def _new_instance(self, *, name: str, location_id: str | None, hostnode_id: str | None, gpu: str,
                      gpu_count: int, vcpu: int, ram_gb: int, storage_gb: int, image: str,
                      forwards: list[dict[str, int]], dedicated_ip: bool) -> dict[str, Any]:
        if not dedicated_ip and not any(f["internal_port"] == 22 for f in forwards):
            forwards = [{"internal_port": 22, "external_port": next(self._port_counter)}, *forwards]
        inst = {
            "type": "instance", "id": str(uuid.uuid4()), "name": name, "status": "running",
            "ipAddress": f"203.0.113.{next(self._ip_counter)}", "portForwards": forwards,
            "resources": {"vcpu_count": vcpu, "ram_gb": ram_gb, "storage_gb": storage_gb,
                          "gpus": {gpu: {"count": gpu_count, "v0Name": gpu}}},
            "rateHourly": self._price(location_id, hostnode_id, gpu, gpu_count, vcpu, ram_gb, storage_gb),
            "image": image, "location_id": location_id or "", "hostnode_id": hostnode_id or "",
            "_pending": None,
        }
        self.instances[str(inst["id"])] = inst
        return inst

    # -- endpoint logic: each returns (status, body)

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        with self._lock:
            if method == "GET" and path == "/locations":
                return 200, {"data": {"locations": copy.deepcopy(self.locations)}}
            if method == "GET" and path == "/hostnodes":
                return 200, {"data": {"hostnodes": copy.deepcopy(self.hostnodes)}}
            m = re.fullmatch(r"/hostnodes/([^/]+)", path)
            if method == "GET" and m:
                node = next((h for h in self.hostnodes if h["id"] == m.group(1)), None)
                return (200, {"data": copy.deepcopy(node)}) if node else (404, {"error": "Hostnode not found"})
            if path == "/instances":
                if method == "POST":
                    return self._create(body)
                if method == "GET":
                    return 200, self._list()
            m = re.fullmatch(r"/instances/([^/]+)(?:/(start|stop))?", path)
            if m:
                inst = self.instances.get(m.group(1))
                if inst is None:
                    return 404, {"error": "Instance not found"}
                self._settle(inst)
                action = m.group(2)
                if method == "GET" and action is None:
                    return 200, self._get(inst)
                if method == "DELETE" and action is None:
                    del self.instances[m.group(1)]
                    return 200, {"data": {"type": "success",
                                          "attributes": {"message": "Instance deleted successfully"}}}
                if method == "POST" and action == "start":
                    return self._start(inst)
                if method == "POST" and action == "stop":
                    return self._stop(inst)
            return 404, {"error": f"No route for {method} {path}"}

    def _get(self, inst: dict[str, Any]) -> dict[str, Any]:
        view = {k: copy.deepcopy(v) for k, v in inst.items()
                if not k.startswith("_") and k not in ("image", "location_id", "hostnode_id")}
        return {"data": view} if self.wrap_get else view

    def _list(self) -> Any:
        for inst in self.instances.values():
            self._settle(inst)
        items = [{"type": "VM", "id": i["id"],
                  "attributes": {"name": i["name"], "status": i["status"], "ipAddress": i["ipAddress"],
                                 "rateHourly": i["rateHourly"]}}
                 for i in self.instances.values()]
        if self.list_shape == "list":
            return {"data": items}
        if self.list_shape == "attributes":
            return {"data": {"attributes": {"instances": items}}}
        return {"data": {"instances": items}}

    def _start(self, inst: dict[str, Any]) -> tuple[int, Any]:
        if inst["status"].lower() not in ("stopped", "stoppeddisassociated"):
            return 400, {"error": f"Instance cannot be started while {inst['status']}"}
        self._transition(inst, "starting", "running")
        return 200, {"data": {"type": "instance", "id": inst["id"], "attributes": {"status": "starting"}}}

    def _stop(self, inst: dict[str, Any]) -> tuple[int, Any]:
        if inst["status"].lower() != "running":
            return 400, {"error": f"Instance cannot be stopped while {inst['status']}"}
        self._transition(inst, "stopping", self.stopped_status)
        return 200, {"data": {"type": "instance", "id": inst["id"], "attributes": {"status": "stopping"}}}

    def _create(self, body: Any) -> tuple[int, Any]:
        attrs = body.get("data", {}).get("attributes") if isinstance(body, dict) and isinstance(
            body.get("data"), dict) else None
        if not isinstance(attrs, dict):
            return 400, {"error": "Request body must be {\"data\": {\"type\": ..., \"attributes\": {...}}}"}
        problem = self._validate_create(attrs)
        if problem:
            return 400, {"error": problem}
        res = attrs["resources"]
        gpu, spec = next(iter(res["gpus"].items()))
        inst = self._new_instance(
            name=attrs["name"], location_id=attrs.get("location_id"), hostnode_id=attrs.get("hostnode_id"),
            gpu=gpu, gpu_count=int(spec["count"]), vcpu=int(res["vcpu_count"]), ram_gb=int(res["ram_gb"]),
            storage_gb=int(res["storage_gb"]), image=attrs["image"],
            forwards=[{"internal_port": int(f["internal_port"]), "external_port": int(f["external_port"])}
                      for f in attrs.get("port_forwards") or []],
            dedicated_ip=bool(attrs.get("useDedicatedIp")))
        if attrs.get("hostnode_id"):
            node = next(h for h in self.hostnodes if h["id"] == attrs["hostnode_id"])
            used = {f["external_port"] for f in inst["portForwards"]}
            ports = node["available_resources"]["available_ports"]
            node["available_resources"]["available_ports"] = [p for p in ports if p not in used]
        self._transition(inst, "starting", "running")
        return 200, {"data": {"type": "virtualmachine", "id": inst["id"], "name": inst["name"],
                              "status": inst["status"]}}

    def _validate_create(self, attrs: dict[str, Any]) -> str | None:
        """The documented "Key Requirements" of instance creation."""
        if attrs.get("type") != "virtualmachine":
            return "type must be virtualmachine"
        if not attrs.get("name") or not attrs.get("image"):
            return "name and image are required"
        if bool(attrs.get("ssh_key")) == bool(attrs.get("ssh_key_id")):
            return "Exactly one of ssh_key or ssh_key_id is required"
        res = attrs.get("resources")
        if not isinstance(res, dict) or not all(k in res for k in ("vcpu_count", "ram_gb", "storage_gb")):
            return "resources.vcpu_count, ram_gb and storage_gb are required"
        if int(res["storage_gb"]) < 100:
            return "Minimum storage is 100GB"
        gpus = res.get("gpus")
        if not isinstance(gpus, dict) or len(gpus) != 1:
            return "At least one GPU is required"
        gpu, spec = next(iter(gpus.items()))
        count = int(spec.get("count", 0)) if isinstance(spec, dict) else 0
        if count < 1:
            return "At least one GPU is required"
        loc_id, node_id = attrs.get("location_id"), attrs.get("hostnode_id")
        if bool(loc_id) == bool(node_id):
            return "Exactly one of location_id or hostnode_id is required"
        if loc_id:
            loc = next((rec for rec in self.locations if rec["id"] == loc_id), None)
            if loc is None:
                return f"Location {loc_id} not found"
            offer = next((g for g in loc["gpus"] if g["v0Name"] == gpu), None)
            if offer is None or offer["max_count"] < count:
                return f"No available hostnodes with {count}x {gpu} in this location"
            return None
        node = next((h for h in self.hostnodes if h["id"] == node_id), None)
        if node is None:
            return f"Hostnode {node_id} not found"
        avail = node["available_resources"]
        offer = next((g for g in avail["gpus"] if g["v0Name"] == gpu), None)
        if offer is None or offer["availableCount"] < count:
            return f"Hostnode does not have {count}x {gpu} available"
        for f in attrs.get("port_forwards") or []:
            if int(f.get("external_port", 0)) not in avail["available_ports"]:
                return f"External port {f.get('external_port')} is not available on this hostnode"
        return None


class _Handler(BaseHTTPRequestHandler):
    standin: TensorDockStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def _dispatch(self) -> None:
        td = self.standin
        parts = urlsplit(self.path)
        path = parts.path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<invalid json>"
        authorized = self.headers.get("Authorization") == f"Bearer {td.token}"
        if not path.startswith("/api/v2/") and path != "/api/v2":
            self._send(404, {"error": "Not found"})
            return
        path = path[len("/api/v2"):] or "/"
        with td._lock:
            td.requests.append(RecordedRequest(self.command, path, parse_qs(parts.query), body, authorized))
        rule = td._take_rule(self.command, path)
        if rule is not None and rule.kind == "slow":
            td._stopping.wait(rule.seconds)
        elif rule is not None and rule.kind == "disconnect":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        elif rule is not None:
            self._send(rule.status, rule.body, rule.headers)
            return
        if not authorized:
            self._send(401, {"error": "Unauthorized", "message": "Invalid or missing API token"})
            return
        if body == "<invalid json>":
            self._send(400, {"error": "Request body is not valid JSON"})
            return
        status, payload = td.handle(self.command, path, body)
        self._send(status, payload)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        # A str body is sent as-is (to imitate an HTML error page); anything else as JSON.
        is_text = isinstance(body, str)
        data = body.encode() if is_text else json.dumps(body).encode() if body is not None else b""
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if is_text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = _dispatch
