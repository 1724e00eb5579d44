"""Client for the TensorDock v2 REST API: the GPU VM that runs the LLM.

Why it lives in the deployable package: two programs drive the same VM. The Pulumi dynamic
provider (``infra/tensordock/provider.py``) creates and deletes it; brain-api's GPU control
starts and stops it on demand. Both must share one client, with one set of rules for retries
and for TensorDock's uneven response shapes, rather than two copies that drift apart.

What the API looks like (``shared/reference`` contract, ``docs/OPERATIONS.md``): JSON over HTTPS,
``Authorization: Bearer <token>``, base ``https://dashboard.tensordock.com/api/v2``. Responses
are sometimes wrapped in ``{"data": ...}`` and sometimes not, sometimes JSON:API style with an
``attributes`` object, statuses come in mixed case (``running``, ``Stopped``), and an error can
arrive inside an HTTP 200 as ``{"error": "...", "status": 400}``. The answers are typed models
(pydantic dataclasses whose fields list every name and place a value has been seen under, with
AliasChoices and AliasPath), the envelope is taken apart in one place, and every error names the
operation and shows TensorDock's own message (never the token).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, TypeVar

import requests
from pydantic import AliasChoices, AliasPath, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from brain.shared import http_retry
from brain.shared.settings import TENSORDOCK_TOKEN_ENV, TENSORDOCK_URL, TENSORDOCK_URL_ENV

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = TENSORDOCK_URL
TOKEN_ENV = TENSORDOCK_TOKEN_ENV
BASE_URL_ENV = TENSORDOCK_URL_ENV
RTX_4090 = "geforcertx4090-pcie-24gb"
MIN_STORAGE_GB = 100  # documented minimum for a new instance
DEFAULT_IMAGE = "ubuntu2404"

# Countries (names and ISO 3166 alpha-2 codes, compared case-insensitively) counted as "EU"
# when picking a location: EU member states plus the EEA, Switzerland and the UK, which are
# close enough in latency and law for a private LLM box.
_EU_NAMES_AND_CODES = (
    ("Austria", "AT"), ("Belgium", "BE"), ("Bulgaria", "BG"), ("Croatia", "HR"), ("Cyprus", "CY"),
    ("Czechia", "CZ"), ("Czech Republic", "CZ"), ("Denmark", "DK"), ("Estonia", "EE"), ("Finland", "FI"),
    ("France", "FR"), ("Germany", "DE"), ("Greece", "GR"), ("Hungary", "HU"), ("Ireland", "IE"),
    ("Italy", "IT"), ("Latvia", "LV"), ("Lithuania", "LT"), ("Luxembourg", "LU"), ("Malta", "MT"),
    ("Netherlands", "NL"), ("The Netherlands", "NL"), ("Poland", "PL"), ("Portugal", "PT"),
    ("Romania", "RO"), ("Slovakia", "SK"), ("Slovenia", "SI"), ("Spain", "ES"), ("Sweden", "SE"),
    ("Norway", "NO"), ("Iceland", "IS"), ("Switzerland", "CH"), ("United Kingdom", "GB"), ("UK", "GB"),
)
EU_COUNTRIES = frozenset(x.lower() for pair in _EU_NAMES_AND_CODES for x in pair)

_MAX_MESSAGE = 300


class TensorDockError(RuntimeError):
    """A TensorDock call failed; ``operation`` says which, ``status`` is the HTTP status if any."""

    def __init__(self, operation: str, message: str, status: int | None = None):
        self.operation = operation
        self.message = message
        self.status = status
        where = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"TensorDock {operation} failed{where}: {message}")


class TensorDockAuthError(TensorDockError):
    """401/403: the token is missing, wrong or lacks permission. Never retried."""


class TensorDockNotFound(TensorDockError):
    """404: the instance (or hostnode) does not exist, e.g. it was deleted in the dashboard."""


class TensorDockTimeout(TensorDockError):
    """``wait_for_status`` gave up before the instance reached the wanted status."""


def normalize_status(value: Any) -> str:
    """``"StoppedDisassociated"`` -> ``"stopped_disassociated"``, ``"RUNNING"`` -> ``"running"``.

    Why: the API mixes ``running`` and ``Stopped``; callers compare against one spelling.
    """
    text = str(value or "").strip()
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    return re.sub(r"[\s\-]+", "_", text).lower()


# --- what the API answers, as typed models --------------------------------------------------------
#
# Each field lists where TensorDock (or a public client of it) has put it: AliasChoices of names, and
# AliasPath for a field inside a nested object (``resources.vcpu_count``); the first one present wins,
# and pydantic converts the value ("0.4" -> 0.4, an id of 5 -> "5"). A JSON:API ``{"data": ...}``
# envelope and ``attributes`` object are taken apart once, in ``_jsonapi``, before a model sees the
# body. A body that is not what the contract says is a ValueError naming the field and why.

_WIRE = ConfigDict(populate_by_name=True, coerce_numbers_to_str=True, extra="ignore")
T = TypeVar("T")


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


def _none_is_blank(value: Any) -> Any:
    return "" if value is None else value


def _none_is_zero(value: Any) -> Any:
    return 0 if value is None or value == "" else value


Text = Annotated[str, BeforeValidator(_none_is_blank)]
Count = Annotated[int, BeforeValidator(_none_is_zero)]
OptInt = Annotated[int | None, BeforeValidator(_blank_is_none)]
OptFloat = Annotated[float | None, BeforeValidator(_blank_is_none)]
Status = Annotated[str, BeforeValidator(lambda v: normalize_status(v))]


def _names(*names: str | AliasPath) -> AliasChoices:
    return AliasChoices(*names)


@dataclass(frozen=True, config=_WIRE)
class PortForward:
    """One forwarded port: traffic to ``external_port`` on the public IP reaches ``internal_port``."""

    internal_port: int = Field(validation_alias=_names("internal_port", "internalPort", "internal"))
    external_port: int = Field(validation_alias=_names("external_port", "externalPort", "external"))


def _port_forwards(value: Any) -> Any:
    """``[{"internal_port", "external_port"}]``, or the ``{"22": 20022}`` form some answers use."""
    if isinstance(value, dict):
        return [{"internal_port": k, "external_port": v} for k, v in value.items()]
    return () if value is None else value


@dataclass(frozen=True, config=_WIRE)
class _GpuCount:
    name: str = Field(validation_alias=_names("v0Name", "gpuV0Name", "name"))
    count: Count = 0


def _gpu_counts(value: Any) -> Any:
    """``{v0Name: {"count": n}}`` (the documented form), ``{v0Name: n}`` or ``[{"v0Name", "count"}]``."""
    if isinstance(value, list):
        counts = TypeAdapter(list[_GpuCount]).validate_python([g for g in value if isinstance(g, dict)])
        return {g.name: g.count for g in counts}
    if isinstance(value, dict):
        return {k: (v.get("count") if isinstance(v, dict) else v) or 0 for k, v in value.items()}
    return {} if value is None else value


@dataclass(frozen=True, config=_WIRE)
class Instance:
    """An instance as a get, create, list or start answer describes it."""

    id: str = Field(min_length=1, validation_alias=_names("id", "instance_id", "instanceId"))
    name: Text = ""
    status: Status = Field(default="", validation_alias=_names("status", "state"))
    ip: Text = Field(default="", validation_alias=_names("ipAddress", "ip_address", "ip", "public_ip"))
    port_forwards: Annotated[tuple[PortForward, ...], BeforeValidator(_port_forwards)] = Field(
        default=(), validation_alias=_names("portForwards", "port_forwards"))
    rate_hourly: OptFloat = Field(default=None, validation_alias=_names("rateHourly", "rate_hourly", "hourlyRate",
                                                                        "price_per_hr"))
    vcpu: OptInt = Field(default=None, validation_alias=_names(AliasPath("resources", "vcpu_count"),
                                                       AliasPath("resources", "vcpus"), "vcpu"))
    ram_gb: OptInt = Field(default=None, validation_alias=_names(AliasPath("resources", "ram_gb"), "ram_gb"))
    storage_gb: OptInt = Field(default=None, validation_alias=_names(AliasPath("resources", "storage_gb"), "storage_gb"))
    gpus: Annotated[dict[str, int], BeforeValidator(_gpu_counts)] = Field(
        default_factory=dict, validation_alias=_names(AliasPath("resources", "gpus"), "gpus"))
    location_id: Text = Field(default="", validation_alias=_names("location_id", "locationId"))

    @property
    def ssh_port(self) -> int:
        """The public port that reaches sshd: the forward of internal port 22, else 22 (dedicated IP)."""
        for pf in self.port_forwards:
            if pf.internal_port == 22:
                return pf.external_port
        return 22


@dataclass(frozen=True, config=_WIRE)
class LocationGpu:
    """A GPU model offered at a location, with its hourly price and the limits that go with it."""

    v0_name: str = Field(validation_alias=_names("v0Name", "gpuV0Name", "v0_name"))
    display_name: Text = Field(default="", validation_alias=_names("displayName", "display_name"))
    max_count: Count = Field(default=0, validation_alias=_names("max_count", "maxCount"))
    price_per_hr: OptFloat = Field(default=None, validation_alias=_names("price_per_hr", "pricePerHr"))
    max_vcpus: OptInt = Field(default=None, validation_alias=_names(AliasPath("resources", "max_vcpus"), "max_vcpus"))
    max_ram_gb: OptInt = Field(default=None, validation_alias=_names(AliasPath("resources", "max_ram_gb"), "max_ram_gb"))
    max_storage_gb: OptInt = Field(default=None, validation_alias=_names(AliasPath("resources", "max_storage_gb"),
                                                                 "max_storage_gb"))
    pricing: dict[str, float] = Field(default_factory=dict)  # per_vcpu_hr, per_gb_ram_hr, per_gb_storage_hr
    dedicated_ip_available: bool | None = Field(default=None, validation_alias=_names(
        AliasPath("network_features", "dedicated_ip_available"), "dedicated_ip_available"))
    port_forwarding_available: bool | None = Field(default=None, validation_alias=_names(
        AliasPath("network_features", "port_forwarding_available"), "port_forwarding_available"))


@dataclass(frozen=True, config=_WIRE)
class Location:
    """A TensorDock location (a city) and the GPUs it can deploy now (one item of ``GET /locations``)."""

    id: Text = Field(default="", validation_alias=_names("id", "uuid"))
    city: Text = ""
    stateprovince: Text = ""
    country: Text = ""
    tier: Any = None
    gpus: tuple[LocationGpu, ...] = ()

    def gpu(self, v0_name: str) -> LocationGpu | None:
        """The offer for ``v0_name`` here, or None."""
        return next((g for g in self.gpus if g.v0_name == v0_name), None)

    @property
    def is_eu(self) -> bool:
        return self.country.strip().lower() in EU_COUNTRIES


@dataclass(frozen=True, config=_WIRE)
class HostnodeGpu:
    """A GPU model free on a hostnode now."""

    v0_name: str = Field(validation_alias=_names("v0Name", "v0_name"))
    available_count: Count = Field(default=0, validation_alias=_names("availableCount", "available_count"))
    price_per_hr: OptFloat = None


def _in_available(name: str) -> AliasChoices:
    return _names(AliasPath("available_resources", name), name)


@dataclass(frozen=True, config=_WIRE)
class Hostnode:
    """A physical host (``GET /hostnodes`` item or ``GET /hostnodes/{id}``): what it has free now."""

    id: Text = ""
    location_id: Text = Field(default="", validation_alias=_names("location_id", "locationId", AliasPath("location", "uuid")))
    country: Text = Field(default="", validation_alias=_names(AliasPath("location", "country"), "country"))
    city: Text = Field(default="", validation_alias=_names(AliasPath("location", "city"), "city"))
    free_gpus: tuple[HostnodeGpu, ...] = Field(default=(), validation_alias=_in_available("gpus"))
    available_ports: tuple[int, ...] = Field(default=(), validation_alias=_in_available("available_ports"))
    vcpu_count: OptInt = Field(default=None, validation_alias=_in_available("vcpu_count"))
    ram_gb: OptInt = Field(default=None, validation_alias=_in_available("ram_gb"))
    storage_gb: OptInt = Field(default=None, validation_alias=_in_available("storage_gb"))
    has_public_ip_available: bool | None = Field(default=None, validation_alias=_in_available("has_public_ip_available"))

    @property
    def gpus(self) -> dict[str, tuple[int, float | None]]:
        """v0Name -> (count free, $/hr)."""
        return {g.v0_name: (g.available_count, g.price_per_hr) for g in self.free_gpus}


@dataclass(frozen=True)
class EstimatedPrice:
    """Hourly price of a configuration at a location: the GPU plus per-resource charges."""

    location: Location
    gpu: LocationGpu
    hourly: float


def _jsonapi(body: Any) -> Any:
    """The object inside a ``{"data": ...}`` envelope, its ``attributes`` merged in (the object's own
    keys win), so a model reads its fields the same way from every shape the API answers in."""
    if isinstance(body, dict) and isinstance(body.get("data"), (dict, list)):
        body = body["data"]
    if isinstance(body, dict) and isinstance(body.get("attributes"), dict):
        body = {**body["attributes"], **{k: v for k, v in body.items() if k != "attributes"}}
    return body


def _parse(model: type[T], body: Any) -> T:
    """``body`` (any envelope) as ``model``; ValueError naming each bad field.

    A TypeAdapter per call (43 us) rather than a module-level cache: the Pulumi provider is pickled
    with dill, which would carry such a dict of classes along (and fails to sort its keys)."""
    inner = _jsonapi(body)
    if not isinstance(inner, dict):
        raise ValueError(f"expected a {model.__name__} object, got {type(inner).__name__}")
    try:
        return TypeAdapter(model).validate_python(inner)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                                   for e in exc.errors())) from None


def parse_instance(body: Any) -> Instance:
    """An Instance from a get/create/list item, wrapped or not, JSON:API or flat."""
    return _parse(Instance, body)


def _parsed_items(body: Any, key: str, model: type[T], what: str) -> list[T]:
    """The items of a listing (``data.<key>`` as documented; ``data`` as a list or
    ``data.attributes.<key>`` as public clients accept) that are what the contract says; the others
    are logged and skipped."""
    inner = _jsonapi(body)
    items = inner if isinstance(inner, list) else inner.get(key) if isinstance(inner, dict) else None
    out: list[T] = []
    for item in items if isinstance(items, list) else []:
        try:
            out.append(_parse(model, item))
        except ValueError as exc:
            log.warning("TensorDock %s: skipped an item that is not a %s (%s)", what, model.__name__, exc)
    return out


@dataclass(frozen=True, config=_WIRE)
class _ErrorDetail:
    text: Text = Field(default="", validation_alias=_names("message", "detail", "title"))


@dataclass(frozen=True, config=_WIRE)
class _ErrorBody:
    """What an error answer can hold: ``{"error": "..."}``, ``{"error": {"message": ...}}``,
    ``{"message": ..., "status": 4xx}`` or JSON:API ``{"errors": [{"detail": ...}]}``."""

    error: _ErrorDetail | str | None = None
    errors: tuple[_ErrorDetail | str, ...] = ()
    status: Any = None  # an HTTP status when it is an int; also a VM's status in a normal answer
    message: Text = ""

    @property
    def http_status(self) -> int | None:
        return self.status if isinstance(self.status, int) and not isinstance(self.status, bool) else None


def error_message(body: Any) -> str | None:
    """TensorDock's own error text from a body, or None when the body is not an error."""
    if not isinstance(body, dict):
        return None
    try:
        err = TypeAdapter(_ErrorBody).validate_python(body)
    except ValidationError:
        return None
    status = err.http_status
    if not (err.error or (status is not None and status >= 400) or err.errors):
        return None
    parts = [e.text if isinstance(e, _ErrorDetail) else e for e in (err.error, *err.errors) if e]
    parts = [p for p in parts if p]
    if err.message and err.message not in parts:
        parts.append(err.message)
    return "; ".join(parts) or f"status {err.status}"


@dataclass(frozen=True, config=_WIRE)
class _Status:
    status: Status = Field(default="", validation_alias=_names("status", "state"))


# --- the client ---------------------------------------------------------------------------

class TensorDockClient:
    """Talks to the TensorDock v2 API with timeouts and bounded retries.

    ``token``: the API token; default ``$TENSORDOCK_API_TOKEN``. ``base_url``: default
    ``$TENSORDOCK_BASE_URL`` or the public API. ``timeout``: (connect, read) seconds per request.
    ``max_retries``: extra attempts after a 429, 5xx, 507, timeout or connection error, with
    urllib3's exponential backoff from ``backoff`` seconds (capped at ``max_backoff``; a
    ``Retry-After`` is honoured within that cap), through the shared ``brain.shared.http_retry``.

    Instance creation is not idempotent, so ``create_instance`` retries only when TensorDock
    certainly did not act: a 429, or a connection that was never established.

    Use as a context manager (or call ``close()``) to release the HTTP connection pool.
    """

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        max_retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ):
        token = token or os.environ.get(TOKEN_ENV, "")
        if not token:
            raise TensorDockAuthError("setup", f"no API token: pass token= or set {TOKEN_ENV}")
        self._token = token
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise TensorDockError("setup", f"base URL must start with http:// or https://, got {self.base_url!r}")
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self._sleep = sleep
        backoff, max_backoff = max(0.0, float(backoff)), max(0.0, float(max_backoff))
        self._session = http_retry.session(
            http_retry.policy(self.max_retries, backoff=backoff, max_backoff=max_backoff, sleep=sleep),
            timeout, into=session)
        # a create is not idempotent: retried only when TensorDock certainly did not act on it
        self._once = http_retry.session(
            http_retry.policy(self.max_retries, backoff=backoff, max_backoff=max_backoff, statuses={429},
                              read=False, sleep=sleep), timeout)
        for each in (self._session, self._once):
            each.headers.update({"Accept": "application/json", "User-Agent": "brain-tensordock/1"})

    def __repr__(self) -> str:  # never show the token
        return f"TensorDockClient(base_url={self.base_url!r})"

    def __enter__(self) -> TensorDockClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()
        self._once.close()

    # -- transport

    def request(self, method: str, path: str, operation: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None, idempotent: bool = True) -> Any:
        """Send one API call and return the decoded JSON body (None when empty).

        Raises TensorDockAuthError (401/403), TensorDockNotFound (404) or TensorDockError for
        anything else, after the retries allowed (the shared urllib3 policy). ``idempotent=False``
        limits retries to cases where TensorDock certainly did not act (429, a connection never
        established): the answer of a lost create may be a VM that is already billed.
        """
        url = f"{self.base_url}/{path.lstrip('/')}"
        session = self._session if idempotent else self._once
        try:
            resp = session.request(method, url, json=json, params=params,
                                   headers={"Authorization": f"Bearer {self._token}"})
        except (requests.ConnectionError, requests.Timeout) as exc:
            kind = "timed out" if http_retry.is_timeout(exc) or isinstance(exc, requests.ConnectTimeout) \
                else "could not connect"
            tries = http_retry.attempts(exc)
            after = f", {tries} attempts" if tries > 1 else ""
            raise TensorDockError(operation, f"{kind} to {self.base_url} ({type(exc).__name__}{after})") from None
        log.debug("TensorDock %s %s -> %s", method, path, resp.status_code)
        return self._decode(resp, operation)

    def _one(self, model: type[T], method: str, path: str, operation: str, **kw: Any) -> T:
        """The ``model`` a call answers with; an answer that is not one is an error of the operation."""
        body = self.request(method, path, operation, **kw)
        try:
            return _parse(model, body)
        except ValueError as exc:
            raise TensorDockError(operation, f"unexpected response: {exc}") from None

    def _decode(self, resp: requests.Response, operation: str) -> Any:
        body: Any = None
        text = resp.text or ""
        if text.strip():
            try:
                body = resp.json()
            except ValueError:
                body = None
        status = resp.status_code
        if status >= 400:
            msg = error_message(body) or (text.strip()[:_MAX_MESSAGE] if text.strip() else resp.reason or "no body")
            msg = msg[:_MAX_MESSAGE]
            if (tries := http_retry.attempts(resp)) > 1:
                msg += f" (after {tries} attempts)"
            if status in (401, 403):
                raise TensorDockAuthError(operation, f"{msg} (check the API token)", status)
            if status == 404:
                raise TensorDockNotFound(operation, msg, status)
            raise TensorDockError(operation, msg, status)
        if text.strip() and body is None:
            raise TensorDockError(operation, f"response is not JSON: {text.strip()[:120]!r}", status)
        inner_msg = error_message(body)
        if inner_msg is not None:  # an error inside an HTTP 2xx
            inner = body.get("status") if isinstance(body, dict) else None
            inner_status = inner if isinstance(inner, int) and not isinstance(inner, bool) else None
            exc_type = {401: TensorDockAuthError, 403: TensorDockAuthError, 404: TensorDockNotFound}.get(
                inner_status or 0, TensorDockError)
            raise exc_type(operation, inner_msg[:_MAX_MESSAGE], inner_status)
        return body

    # -- discovery

    def list_locations(self) -> list[Location]:
        """All locations with the GPUs they can deploy now (``GET /locations``)."""
        body = self.request("GET", "/locations", "list locations")
        return _parsed_items(body, "locations", Location, "list locations")

    def list_hostnodes(self, **filters: Any) -> list[Hostnode]:
        """Hostnodes with free resources (``GET /hostnodes``); ``filters`` become query parameters."""
        body = self.request("GET", "/hostnodes", "list hostnodes", params=filters or None)
        return _parsed_items(body, "hostnodes", Hostnode, "list hostnodes")

    def get_hostnode(self, hostnode_id: str) -> Hostnode:
        """One hostnode (``GET /hostnodes/{id}``)."""
        return self._one(Hostnode, "GET", f"/hostnodes/{hostnode_id}", f"get hostnode {hostnode_id}")

    # -- instances

    def create_instance(
        self,
        *,
        name: str,
        ssh_key: str,
        gpu: str = RTX_4090,
        gpu_count: int = 1,
        vcpu: int = 4,
        ram_gb: int = 16,
        storage_gb: int = MIN_STORAGE_GB,
        image: str = DEFAULT_IMAGE,
        location_id: str | None = None,
        hostnode_id: str | None = None,
        use_dedicated_ip: bool | None = None,
        port_forwards: Iterable[PortForward | Mapping[str, int]] | None = None,
        cloud_init: Mapping[str, Any] | None = None,
    ) -> Instance:
        """Create a VM (``POST /instances``) and return what the response says (id, status).

        Exactly one of ``location_id``/``hostnode_id``. Validates the documented rules first
        (storage >= 100 GB, an SSH key, at least one GPU) so a typo fails before money is spent.
        """
        body = build_create_body(name=name, ssh_key=ssh_key, gpu=gpu, gpu_count=gpu_count, vcpu=vcpu,
                                 ram_gb=ram_gb, storage_gb=storage_gb, image=image, location_id=location_id,
                                 hostnode_id=hostnode_id, use_dedicated_ip=use_dedicated_ip,
                                 port_forwards=port_forwards, cloud_init=cloud_init)
        return self._one(Instance, "POST", "/instances", f"create instance {name!r}", json=body, idempotent=False)

    def get_instance(self, instance_id: str) -> Instance:
        """Current state of one instance (``GET /instances/{id}``); TensorDockNotFound if gone."""
        return self._one(Instance, "GET", f"/instances/{instance_id}", f"get instance {instance_id}")

    def list_instances(self) -> list[Instance]:
        """All instances of the account (``GET /instances``)."""
        body = self.request("GET", "/instances", "list instances")
        return _parsed_items(body, "instances", Instance, "list instances")

    def start_instance(self, instance_id: str) -> str:
        """Ask TensorDock to start the VM; returns the (normalised) status it reports, e.g. ``starting``."""
        body = self.request("POST", f"/instances/{instance_id}/start", f"start instance {instance_id}")
        return _status_of(body)

    def stop_instance(self, instance_id: str) -> str:
        """Ask TensorDock to stop the VM (billing of the GPU stops); returns the reported status."""
        body = self.request("POST", f"/instances/{instance_id}/stop", f"stop instance {instance_id}")
        return _status_of(body)

    def delete_instance(self, instance_id: str, *, missing_ok: bool = True) -> bool:
        """Delete the VM. Returns False if it was already gone (and ``missing_ok``)."""
        try:
            self.request("DELETE", f"/instances/{instance_id}", f"delete instance {instance_id}")
        except TensorDockNotFound:
            if missing_ok:
                return False
            raise
        return True

    def wait_for_status(
        self,
        instance_id: str,
        targets: str | Iterable[str],
        *,
        timeout: float = 600.0,
        interval: float = 5.0,
        on_poll: Callable[[Instance], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Instance:
        """Poll ``GET /instances/{id}`` until its status is one of ``targets`` (normalised).

        ``on_poll`` sees every observed state (progress reporting). Waits with the client's
        ``sleep`` and measures with ``clock``, so tests can pass fakes for both. Raises
        TensorDockTimeout naming the last status seen, so "stuck in starting" is
        distinguishable from "gone" (TensorDockNotFound).
        """
        wanted = {normalize_status(t) for t in ([targets] if isinstance(targets, str) else targets)}
        deadline = clock() + timeout
        while True:
            inst = self.get_instance(instance_id)
            if on_poll is not None:
                on_poll(inst)
            if inst.status in wanted:
                return inst
            remaining = deadline - clock()
            if remaining <= 0:
                raise TensorDockTimeout(
                    f"wait for instance {instance_id}",
                    f"still {inst.status or 'unknown'!r} after {timeout:.0f}s (wanted {', '.join(sorted(wanted))})")
            self._sleep(min(interval, remaining))

    # -- choosing where to deploy

    def cheapest_eu_location(self, gpu: str = RTX_4090, *, gpu_count: int = 1, vcpu: int = 4, ram_gb: int = 16,
                             storage_gb: int = MIN_STORAGE_GB,
                             countries: Iterable[str] | None = None) -> EstimatedPrice:
        """The EU location where ``gpu_count`` x ``gpu`` is available now at the lowest hourly price.

        Price = GPU price x count + per-vCPU, per-GB-RAM and per-GB-storage charges when the
        location lists them. Raises TensorDockError naming the GPU when no EU location has it.
        """
        return pick_cheapest(self.list_locations(), gpu, gpu_count=gpu_count, vcpu=vcpu, ram_gb=ram_gb,
                             storage_gb=storage_gb, countries=countries)


def _status_of(body: Any) -> str:
    """The (normalised) status a start or stop answer reports, "" when it reports none."""
    try:
        return _parse(_Status, body).status
    except ValueError:
        return ""


def estimate_hourly(gpu: LocationGpu, gpu_count: int, vcpu: int, ram_gb: int, storage_gb: int) -> float | None:
    """Hourly price of a configuration from a location's offer; None when the GPU has no price."""
    if gpu.price_per_hr is None:
        return None
    p = gpu.pricing
    return round(gpu.price_per_hr * gpu_count + p.get("per_vcpu_hr", 0.0) * vcpu
                 + p.get("per_gb_ram_hr", 0.0) * ram_gb + p.get("per_gb_storage_hr", 0.0) * storage_gb, 6)


def pick_cheapest(locations: Iterable[Location], gpu: str = RTX_4090, *, gpu_count: int = 1, vcpu: int = 4,
                  ram_gb: int = 16, storage_gb: int = MIN_STORAGE_GB,
                  countries: Iterable[str] | None = None) -> EstimatedPrice:
    """Pure part of ``cheapest_eu_location``: filter by country, availability and limits, then price."""
    allowed = EU_COUNTRIES if countries is None else frozenset(c.lower() for c in countries)
    best: EstimatedPrice | None = None
    for loc in locations:
        if loc.country.strip().lower() not in allowed:
            continue
        offer = loc.gpu(gpu)
        if offer is None or offer.max_count < gpu_count:
            continue
        if any(limit is not None and want > limit for want, limit in
               ((vcpu, offer.max_vcpus), (ram_gb, offer.max_ram_gb), (storage_gb, offer.max_storage_gb))):
            continue
        hourly = estimate_hourly(offer, gpu_count, vcpu, ram_gb, storage_gb)
        if hourly is None:
            continue
        if best is None or hourly < best.hourly:
            best = EstimatedPrice(loc, offer, hourly)
    if best is None:
        raise TensorDockError("choose location",
                              f"no EU location has {gpu_count} x {gpu} available with {vcpu} vCPU, {ram_gb} GB RAM, "
                              f"{storage_gb} GB storage right now; set a location id or try later")
    return best


def build_create_body(
    *,
    name: str,
    ssh_key: str,
    gpu: str = RTX_4090,
    gpu_count: int = 1,
    vcpu: int = 4,
    ram_gb: int = 16,
    storage_gb: int = MIN_STORAGE_GB,
    image: str = DEFAULT_IMAGE,
    location_id: str | None = None,
    hostnode_id: str | None = None,
    use_dedicated_ip: bool | None = None,
    port_forwards: Iterable[PortForward | Mapping[str, int]] | None = None,
    cloud_init: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The documented ``POST /instances`` body; raises ValueError on rules the API would reject."""
    problems = []
    if not name.strip():
        problems.append("name is empty")
    if not ssh_key.strip():
        problems.append("an SSH public key is required")
    if gpu_count < 1 or not gpu:
        problems.append("at least one GPU is required")
    if vcpu < 1 or ram_gb < 1:
        problems.append("vcpu and ram_gb must be positive")
    if storage_gb < MIN_STORAGE_GB:
        problems.append(f"storage_gb must be at least {MIN_STORAGE_GB} (TensorDock minimum), got {storage_gb}")
    if bool(location_id) == bool(hostnode_id):
        problems.append("exactly one of location_id and hostnode_id is required")
    forwards = [pf if isinstance(pf, PortForward) else PortForward(int(pf["internal_port"]), int(pf["external_port"]))
                for pf in (port_forwards or [])]
    for pf in forwards:
        if not (1 <= pf.internal_port <= 65535 and 1 <= pf.external_port <= 65535):
            problems.append(f"port forward {pf.internal_port}->{pf.external_port} is out of range")
    if problems:
        raise ValueError("; ".join(problems))
    attrs: dict[str, Any] = {
        "name": name,
        "type": "virtualmachine",
        "image": image,
        "resources": {"vcpu_count": vcpu, "ram_gb": ram_gb, "storage_gb": storage_gb,
                      "gpus": {gpu: {"count": gpu_count}}},
        "ssh_key": ssh_key.strip(),
    }
    if location_id:
        attrs["location_id"] = location_id
    else:
        attrs["hostnode_id"] = hostnode_id
    if use_dedicated_ip is not None:
        attrs["useDedicatedIp"] = bool(use_dedicated_ip)
    if forwards:
        attrs["port_forwards"] = [{"internal_port": pf.internal_port, "external_port": pf.external_port}
                                  for pf in forwards]
    if cloud_init:
        attrs["cloud_init"] = dict(cloud_init)
    return {"data": {"type": "virtualmachine", "attributes": attrs}}
