"""Sign-in for the web page: a session cookie for a brain-api token, CSRF, and a brake on guessing.

Why a server-side session and not the token in the browser: the page must never hold the token
where a script could read it. Signing in exchanges it once for a random cookie value (HttpOnly,
SameSite=Strict, Secure over TLS); brain.db keeps only its sha256, the CSRF token, and a
fingerprint of the API token it was opened with, so signing out ends the session for good and
removing a token from ``server.api_tokens`` signs out every browser that used it.

CSRF: every state-changing request of a session (the page's forms, and its ``fetch`` calls to
``/api/v1``) must carry the session's CSRF token (a form field or ``X-CSRF-Token``), and an
``Origin`` header, when the browser sends one, must be this site. The bearer API is unchanged.

Failed sign-ins are counted in brain.db (shared by every gunicorn worker): five from one client
within 15 minutes, or twenty from anyone, and sign-in answers 429 until the window has passed.
The cap on everyone would let a guesser spread over many addresses lock the owner out too, so a
browser that has signed in before (a ``brain_browser`` cookie whose sha256 brain.db keeps, for
180 days from its last sign-in) is held back only by its own address's five: the device-cookie
scheme of OWASP's guidance on blocking brute-force sign-ins. The cookie grants nothing else; a
sign-in from it still needs a token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import Request
from werkzeug.wrappers import Response

from brain.core.store import write_transaction
from brain.shared import timeutil

SESSION_COOKIE = "brain_session"
SIGNIN_COOKIE = "brain_signin"
BROWSER_COOKIE = "brain_browser"
BROWSER_DAYS = 180
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_CLIENT = 5
MAX_FAILURES_ALL = 20


@dataclass(frozen=True)
class WebSession:
    key: str  # sha256 of the cookie value
    csrf: str
    expires_at: str


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(token: str) -> str:
    """What a session remembers of the token it was opened with (not the token)."""
    return _sha("brain-web-session:" + token)


def token_ok(given: str, tokens: list[str]) -> bool:
    """Constant-time comparison against every configured token (like the bearer check)."""
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode())
    return ok and bool(tokens)


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


# ---------------------------------------------------------------------------------------- sessions


def open_session(conn: sqlite3.Connection, token: str, hours: int) -> tuple[str, WebSession]:
    """A new session for a verified token: (cookie value, session). Expired sessions are dropped."""
    value = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session = WebSession(_sha(value), secrets.token_urlsafe(32), timeutil.fmt(now + timedelta(hours=hours)))
    with write_transaction(conn):
        conn.execute("DELETE FROM web_sessions WHERE expires_at < ?", (timeutil.fmt(now),))
        conn.execute("INSERT INTO web_sessions(key, csrf, token_fp, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                     (session.key, session.csrf, fingerprint(token), timeutil.fmt(now), session.expires_at))
    return value, session


def find_session(conn: sqlite3.Connection, cookie_value: str | None, tokens: list[str]) -> WebSession | None:
    """The live session of a cookie: known, not expired, and its token still configured."""
    if not cookie_value or len(cookie_value) > 200:
        return None
    row = conn.execute("SELECT key, csrf, token_fp, expires_at FROM web_sessions WHERE key = ?",
                       (_sha(cookie_value),)).fetchone()
    if row is None or row["expires_at"] < timeutil.now():
        return None
    if not any(hmac.compare_digest(row["token_fp"], fingerprint(t)) for t in tokens):
        return None
    return WebSession(row["key"], row["csrf"], row["expires_at"])


def close_session(conn: sqlite3.Connection, cookie_value: str | None) -> None:
    if cookie_value:
        with write_transaction(conn):
            conn.execute("DELETE FROM web_sessions WHERE key = ?", (_sha(cookie_value),))


def set_cookie(resp: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, path /, and Secure whenever the request came over TLS.

    ``request.is_secure`` is true for TLS to this process, or, with ``web.trust_proxy``, when the
    proxy in front (Caddy) says so in X-Forwarded-Proto; otherwise that header is ignored."""
    resp.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Strict", secure=request.is_secure,
                    path="/")


def clear_cookie(resp: Response, request: Request, name: str) -> None:
    resp.delete_cookie(name, path="/", httponly=True, samesite="Strict", secure=request.is_secure)


# ---------------------------------------------------------------------------------------- CSRF


def origin_ok(request: Request) -> bool:
    """A browser's Origin (or, without it, Referer) must be this site; requests without either
    (curl, old browsers on same-origin forms) pass: the CSRF token is the check that always runs."""
    origin = request.headers.get("Origin") or ""
    if not origin:
        referer = request.headers.get("Referer") or ""
        if not referer:
            return True
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin == "null":
        return False
    return origin.rstrip("/") == request.host_url.rstrip("/")


def csrf_ok(request: Request, session: WebSession) -> bool:
    given = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    return origin_ok(request) and same(given, session.csrf)


# ---------------------------------------------------------------------------------------- the brake


def client_key(request: Request) -> str:
    """Who is signing in: the peer address (the real client's with ``web.trust_proxy``, via ProxyFix)."""
    return (request.remote_addr or "unknown")[:100]


def retry_after(conn: sqlite3.Connection, client: str, known_browser: bool = False) -> int:
    """Seconds until sign-in is allowed again for ``client`` (0: now); a ``known_browser`` is not held
    back by the cap on everyone's failures."""
    now = datetime.now(UTC)
    since = timeutil.fmt(now - FAILURE_WINDOW)
    mine = conn.execute("SELECT count(*), min(at) FROM web_signin_failures WHERE client = ? AND at >= ?",
                        (client, since)).fetchone()
    caps = [(mine, MAX_FAILURES_PER_CLIENT)]
    if not known_browser:
        caps.append((conn.execute("SELECT count(*), min(at) FROM web_signin_failures WHERE at >= ?",
                                  (since,)).fetchone(), MAX_FAILURES_ALL))
    blocked = [row[1] for row, cap in caps if row[0] >= cap]
    if not blocked:
        return 0
    free_at = timeutil.parse(min(blocked)) + FAILURE_WINDOW
    return max(1, int((free_at - now).total_seconds()) + 1)


def record_failure(conn: sqlite3.Connection, client: str) -> None:
    now = datetime.now(UTC)
    with write_transaction(conn):
        conn.execute("DELETE FROM web_signin_failures WHERE at < ?", (timeutil.fmt(now - FAILURE_WINDOW),))
        conn.execute("INSERT INTO web_signin_failures(at, client) VALUES (?, ?)", (timeutil.fmt(now), client))


def known_browser(conn: sqlite3.Connection, cookie_value: str | None) -> bool:
    """True if this browser signed in within the last ``BROWSER_DAYS`` days."""
    if not cookie_value or len(cookie_value) > 200:
        return False
    since = timeutil.fmt(datetime.now(UTC) - timedelta(days=BROWSER_DAYS))
    return conn.execute("SELECT 1 FROM web_browsers WHERE key = ? AND seen_at >= ?",
                        (_sha(cookie_value), since)).fetchone() is not None


def remember_browser(conn: sqlite3.Connection, cookie_value: str | None) -> str:
    """After a successful sign-in: the browser's cookie value (its old one if known, else a new one),
    seen now; browsers unseen for ``BROWSER_DAYS`` are forgotten."""
    now = datetime.now(UTC)
    value = cookie_value if cookie_value and known_browser(conn, cookie_value) else secrets.token_urlsafe(32)
    with write_transaction(conn):
        conn.execute("DELETE FROM web_browsers WHERE seen_at < ?", (timeutil.fmt(now - timedelta(days=BROWSER_DAYS)),))
        conn.execute("INSERT INTO web_browsers(key, created_at, seen_at) VALUES (?, ?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET seen_at = excluded.seen_at",
                     (_sha(value), timeutil.fmt(now), timeutil.fmt(now)))
    return value


def clear_failures(conn: sqlite3.Connection, client: str) -> None:
    with write_transaction(conn):
        conn.execute("DELETE FROM web_signin_failures WHERE client = ?", (client,))
