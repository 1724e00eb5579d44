"""HTTP client for brain-api (docs/API.md), shared by the collectors, the CLI and the MCP server.

Why one client: every caller needs the same timeouts, bounded retries with backoff, and error
messages that name the URL, so a cron mail or an MCP tool error says exactly what failed. The
retries are urllib3's, through the policy every client of the brain shares (brain.shared.http_retry).

Errors:
* ``ApiError(status, code, message)``: brain-api answered with a 4xx/5xx (after retries for
  429/5xx/507). ``code`` is the API's snake_case error code.
* ``ApiUnavailable``: no answer at all (connection refused, DNS, TLS, timeout) after retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from brain.shared import http_retry
from brain.shared.http_retry import RETRY_STATUSES
from brain.shared.settings import LaptopConfig

__all__ = ["RETRIED_METHODS", "RETRY_STATUSES", "ApiClient", "ApiError", "ApiUnavailable", "error_from"]

RETRIED_METHODS = frozenset({"GET", "POST", "DELETE"})


class ApiError(Exception):
    """brain-api answered with an error status."""

    def __init__(self, status: int, code: str, message: str, *, url: str = "", field: str | None = None,
                 index: int | None = None, attempts: int = 1):
        self.status, self.code, self.message = status, code, message
        self.url, self.field, self.index, self.attempts = url, field, index, attempts
        where = ", ".join(x for x in (url, f"after {attempts} attempts" if attempts > 1 else "") if x)
        super().__init__(f"brain-api error {status} {code}: {message}" + (f" ({where})" if where else ""))

    @property
    def retryable(self) -> bool:
        """429, 5xx and 507 (disk full) mean "try again later"; other 4xx will fail the same way again."""
        return self.status in RETRY_STATUSES


class ApiUnavailable(Exception):
    """brain-api could not be reached (connection error or timeout)."""

    def __init__(self, url: str, reason: str):
        self.url, self.reason = url, reason
        super().__init__(f"brain-api unreachable at {url}: {reason}")


def error_from(resp: requests.Response, url: str) -> ApiError:
    """The ApiError of an error answer: brain-api's ``{"error": {code, message, field, index}}`` when the
    body is one, else the status and the start of the body (a proxy's HTML page)."""
    try:
        body = resp.json()
        err = body["error"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
    except ValueError:
        err = {}
    code = str(err.get("code") or f"http_{resp.status_code}")
    message = str(err.get("message") or (resp.text[:200].strip() or resp.reason or "no message"))
    index = err.get("index") if isinstance(err.get("index"), int) else None
    return ApiError(resp.status_code, code, message, url=url, field=err.get("field"), index=index,
                    attempts=http_retry.attempts(resp))


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class ApiClient:
    """A small typed wrapper over brain-api's HTTP endpoints.

    ``retries`` bounds the extra attempts on 429/5xx/507, connection errors and timeouts; the wait
    is urllib3's backoff from ``backoff`` seconds (none before the first retry, then doubling),
    capped at ``max_backoff``, and a ``Retry-After`` is honoured within that cap.

    GET, POST and DELETE are retried (``RETRIED_METHODS``), POST too because every brain-api call is safe
    to repeat: an item upsert is idempotent on the server (same id and hash: unchanged), a forget rule is
    stored once, an ask only reads. A POST endpoint that is not idempotent must not go through this client.
    """

    def __init__(self, base_url: str, token: str, timeout: float = 60, ca_bundle: str = "", *,
                 retries: int = 3, backoff: float = 0.5, max_backoff: float = 10.0,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep):
        if not base_url:
            raise ValueError("brain-api URL is empty: set client.api_url or BRAIN_API_URL")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        # POST is retried like GET and DELETE (urllib3 would not, by default) only because every brain-api
        # POST is idempotent: an item upsert of the same id and hash is "unchanged", a forget rule is one
        # tombstone however often it is sent, an ask only reads
        retry = http_retry.policy(retries, backoff=backoff, max_backoff=max_backoff, methods=RETRIED_METHODS,
                                  sleep=sleep)
        self.session = http_retry.session(retry, timeout, into=session)
        self.session.headers["User-Agent"] = "brain-client/1"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if ca_bundle:
            self.session.verify = ca_bundle

    @classmethod
    def from_config(cls, cfg: LaptopConfig, **kw: Any) -> ApiClient:
        """Build a client from ``client.*`` settings (env BRAIN_API_URL / BRAIN_TOKEN)."""
        kw.setdefault("retries", cfg.client.max_retries)
        return cls(cfg.client.api_url, cfg.client.token, timeout=cfg.client.timeout,
                   ca_bundle=cfg.client.ca_bundle, **kw)

    # ------------------------------------------------------------------ transport

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None) -> dict[str, Any]:
        """Send one request (retried by the session's policy); return the decoded JSON body or raise."""
        url = self.base_url + path
        try:
            resp = self.session.request(method, url, params=_clean(params or {}), json=json)
        except requests.exceptions.SSLError as exc:
            raise ApiUnavailable(url, f"TLS error: {http_retry.short_reason(exc)}") from None
        except requests.RequestException as exc:
            if http_retry.is_timeout(exc):
                what = f"no answer within {self.timeout:g} s"
            else:
                what = f"connection failed ({http_retry.short_reason(exc)})"
            tries = http_retry.attempts(exc)
            raise ApiUnavailable(url, what + (f" after {tries} attempts" if tries > 1 else "")) from None
        if resp.status_code < 400:
            return self._decode(resp, url)
        raise error_from(resp, url)

    @staticmethod
    def _decode(resp: requests.Response, url: str) -> dict[str, Any]:
        try:
            data = resp.json()
        except ValueError:
            raise ApiError(resp.status_code, "bad_response", "answer is not JSON", url=url) from None
        if not isinstance(data, dict):
            raise ApiError(resp.status_code, "bad_response", "answer is not a JSON object", url=url)
        return data

    # ------------------------------------------------------------------ endpoints

    def healthz(self) -> dict[str, Any]:
        return self.request("GET", "/healthz")

    def post_items(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Upsert a batch: ``{"inserted", "updated", "unchanged", "queued"}`` (queued: texts waiting for vectors)."""
        return self.request("POST", "/api/v1/items", json={"items": items})

    def get_item(self, id: str, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        params = {"offset": offset or None, "limit": limit}
        return self.request("GET", "/api/v1/items/" + quote(id, safe=":/@"), params=params)

    def list_items(self, source: str | None = None, project: str | None = None, since: str | None = None,
                   until: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        params = {"source": source, "project": project, "since": since, "until": until, "limit": limit,
                  "offset": offset}
        return self.request("GET", "/api/v1/items", params=params)

    def delete_item(self, id: str) -> dict[str, Any]:
        return self.request("DELETE", "/api/v1/items/" + quote(id, safe=":/@"))

    def forget(self, **rule: Any) -> dict[str, Any]:
        """Forget for good: delete what the rule matches (``id``, ``source``, ``project``, ``id_prefix``,
        ``domain``, ``path_glob``, ``since``, ``until``) and refuse it from now on. ``dry_run=True``
        only counts: ``{"matches": n}``."""
        return self.request("POST", "/api/v1/forget", json=_clean(rule))

    def tombstones(self) -> list[dict[str, Any]]:
        """The forgetting rules: ``[{"id", "rule", "created_at", "deleted"}]``."""
        return self.request("GET", "/api/v1/tombstones").get("tombstones", [])

    def remove_tombstone(self, tombstone_id: int) -> dict[str, Any]:
        """Undo one forget: its items are no longer refused (they are not restored)."""
        return self.request("DELETE", f"/api/v1/tombstones/{int(tombstone_id)}")

    def search(self, q: str, k: int = 10, source: str | None = None, project: str | None = None,
               since: str | None = None, until: str | None = None, mode: str | None = None) -> dict[str, Any]:
        params = {"q": q, "k": k, "source": source, "project": project, "since": since, "until": until,
                  "mode": mode}
        return self.request("GET", "/api/v1/search", params=params)

    def stats(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/stats")

    def timeline(self, day: str | None = None, days: int | None = None, tz: str | None = None,
                 since: str | None = None, until: str | None = None, source: str | None = None,
                 project: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """A day (``day`` + ``days`` in zone ``tz``) or a ``since``/``until`` range, grouped by project."""
        params = {"day": day, "days": days, "tz": tz, "since": since, "until": until, "source": source,
                  "project": project, "limit": limit}
        return self.request("GET", "/api/v1/timeline", params=params)

    def ask(self, question: str, **kw: Any) -> dict[str, Any]:
        """Non-streaming ask: ``{"answer", "citations", "model", "timings"}``."""
        body = {"question": question, **_clean(kw)}
        body.pop("stream", None)
        return self.request("POST", "/api/v1/ask", json=body)
