"""The web page at ``/``: search, read, ask, a day's timeline, status, forget (issue 16).

Why server-rendered from the same app: one origin (no CORS, no token in the browser), no build
step and nothing fetched from elsewhere; every page works with the keyboard and without
JavaScript. ``brain.js`` adds what needs it: the answer streaming in (``fetch`` of
``/api/v1/ask`` with the session cookie and its CSRF token), copy buttons, the browser's time
zone. Assets ship in the package (``app/brain/api/web_page``), under a strict Content-Security-Policy.

Sign-in exchanges a brain-api token for a session cookie (``web_auth``); every page but the
sign-in needs a live session, and every form that changes something carries its CSRF token.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, current_app, g, redirect, render_template, request
from markupsafe import Markup, escape

from brain.api import web_auth, web_status
from brain.api.deps import get_config, get_db, get_searcher
from brain.api.errors import ApiError
from brain.core import forgetting, timeline
from brain.core.embed import EmbedError
from brain.core.store import SOURCES, Store
from brain.gpu import cost
from brain.shared import timeutil
from brain.shared.resume import reopen_command
from brain.shared.tombstones import RuleError, parse_rule
from brain.shared.zones import parse_tz

WEB = Path(__file__).resolve().parent / "web_page"
# the assets live at /assets: Flask's app keeps /static for itself (its rule exists, folder or not)
bp = Blueprint("web", __name__, static_folder=str(WEB / "static"), static_url_path="/assets",
               template_folder=str(WEB / "templates"))

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PUBLIC = frozenset({"web.signin", "web.signin_post", "web.static"})
TZ_COOKIE = "brain_tz"
PAGE_CHARS = 40_000
SOURCE_NAMES = {"claude": "Claude Code session", "agent": "agent session", "browser": "web page", "file": "file",
                "note": "note"}


# ---------------------------------------------------------------------------------------- plumbing


@bp.after_request
def _headers(resp: Response) -> Response:
    """The page's security headers: nothing but this origin may run, load, frame or be sent to."""
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["X-Frame-Options"] = "DENY"
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on the page's own POSTs
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.endpoint != "web.static":
        resp.headers["Cache-Control"] = "no-store"
    return resp


def current_session() -> web_auth.WebSession | None:
    if "web_session" not in g:
        g.web_session = web_auth.find_session(get_db(), request.cookies.get(web_auth.SESSION_COOKIE),
                                              get_config().server.api_tokens)
    return g.web_session


@bp.before_request
def _require_session():
    """Every page but the sign-in needs a session; every POST its CSRF token and this Origin."""
    if request.endpoint in PUBLIC:
        return None
    session = current_session()
    if session is None:
        if request.method == "GET":
            return redirect("/signin?next=" + quote(request.full_path.rstrip("?"), safe="/?=&"), 303)
        return page("error.html", 401, title="Signed out", message="Your session has ended; sign in again.")
    if request.method == "POST" and not web_auth.csrf_ok(request, session):
        return page("error.html", 403, title="Refused", message="This form is stale or came from another site; "
                    "reload the page and try again.")
    return None


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    session = current_session()
    return render_template(f"web/{template}", csrf=session.csrf if session else "", signed_in=session is not None,
                           tz_name=tz_name(), endpoint=request.endpoint, sources=SOURCES,
                           source_names=SOURCE_NAMES, **context), status


def tz_name() -> str:
    """The browser's zone (a cookie brain.js sets), else ``web.timezone``."""
    name = request.cookies.get(TZ_COOKIE, "")
    try:
        parse_tz(name)
        return name or get_config().web.timezone
    except ValueError:
        return get_config().web.timezone


def local(ts: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC time in the page's zone."""
    if not ts:
        return ""
    return timeutil.parse(ts).astimezone(parse_tz(tz_name())).strftime(fmt)


def item_url(item_id: str, **query: Any) -> str:
    extra = "&".join(f"{k}={quote(str(v))}" for k, v in query.items() if v not in (None, ""))
    return "/item/" + quote(item_id, safe=":/@") + ("?" + extra if extra else "")


def open_command(item: dict[str, Any]) -> str | None:
    """How to reopen a session in its agent: ``cd <project> && claude --resume <id>``."""
    return reopen_command(item.get("project"), (item.get("meta") or {}).get("resume"))


@bp.app_template_filter("local")
def _local_filter(ts: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return local(ts, fmt)


@bp.app_template_global()
def item_link(item_id: str, **query: Any) -> str:
    return item_url(item_id, **query)


@bp.app_template_global()
def reopen(item: dict[str, Any]) -> str | None:
    return open_command(item)


@bp.app_template_global()
def duration(seconds: float | None) -> str:
    from brain.shared.timeline_text import duration as text_duration

    return text_duration(seconds)


def highlight(text: str, query: str) -> Markup:
    """``text`` escaped, with the query's words marked (case-insensitive).

    BM25 snippets arrive with FTS5's own ``[token]`` marks around what matched (stems included:
    ``[start]ing``); those brackets become the marks. Other snippets get the query's words marked."""
    words = sorted({w.lower() for w in re.findall(r"\w{2,}", query)}, key=len, reverse=True)
    if not words:
        return escape(text)

    def fts_mark(token: str) -> bool:
        t = token.lower()
        return any(t == w or (len(t) >= 3 and (w.startswith(t) or t.startswith(w[:3]))) for w in words)

    fts = re.compile(r"\[(\w{1,60})\]")
    if any(fts_mark(m.group(1)) for m in fts.finditer(text)):
        out, last = Markup(""), 0
        for m in fts.finditer(text):
            if fts_mark(m.group(1)):
                out += escape(text[last:m.start()]) + Markup("<mark>{}</mark>").format(m.group(1))
                last = m.end()
        return out + escape(text[last:])
    pattern = re.compile("(" + "|".join(re.escape(w) for w in words) + ")", re.IGNORECASE)
    out = Markup("")
    for i, part in enumerate(pattern.split(text)):
        out += Markup("<mark>{}</mark>").format(part) if i % 2 else escape(part)
    return out


def day_bounds(value: str | None, end: bool, tz: tzinfo) -> str | None:
    """A date field (``YYYY-MM-DD``) as the UTC start (or end) of that day in the page's zone."""
    if not value:
        return None
    try:
        d = date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{value!r} is not a date (YYYY-MM-DD)") from None
    start = datetime(d.year, d.month, d.day, tzinfo=tz)
    return timeutil.fmt(start + timedelta(days=1) - timedelta(milliseconds=1) if end else start)


def filters_from(args: Any) -> dict[str, Any]:
    """source/project/since/until of a page's query: dates in the page's zone, as the API reads them."""
    tz = parse_tz(tz_name())
    source = args.get("source") or None
    if source and source not in SOURCES:
        source = None
    project = (args.get("project") or "").strip().rstrip("/") or None
    return {"source": source, "project": project, "since": day_bounds(args.get("since"), False, tz),
            "until": day_bounds(args.get("until"), True, tz)}


def projects(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT project FROM items WHERE project IS NOT NULL "
                                       "ORDER BY project LIMIT 500")]


# ---------------------------------------------------------------------------------------- sign-in


@bp.get("/signin")
def signin():
    if current_session() is not None:
        return redirect(safe_next(request.args.get("next")), 303)
    return signin_form()


def signin_form(status: int = 200, error: str = "", retry: int = 0) -> Response:
    """The form with a fresh nonce, also in a cookie: a sign-in posted from elsewhere lacks it."""
    nonce = secrets.token_urlsafe(16)
    html, code = page("signin.html", status, nonce=nonce, error=error, next=safe_next(request.values.get("next")),
                      signed_out=request.args.get("signed_out") == "1")
    resp = current_app.make_response((html, code))
    web_auth.set_cookie(resp, request, web_auth.SIGNIN_COOKIE, nonce, 3600)
    if retry:
        resp.headers["Retry-After"] = str(retry)
    return resp


def safe_next(value: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme): no open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


@bp.post("/signin")
def signin_post():
    conn = get_db()
    if not web_auth.origin_ok(request) or not web_auth.same(request.form.get("nonce"),
                                                            request.cookies.get(web_auth.SIGNIN_COOKIE)):
        return signin_form(400, "The sign-in form had expired; it is fresh now, please try again.")
    client = web_auth.client_key(request)
    wait = web_auth.retry_after(conn, client, web_auth.known_browser(conn, request.cookies.get(web_auth.BROWSER_COOKIE)))
    if wait:
        return signin_form(429, f"Too many failed sign-ins. Try again in {max(1, round(wait / 60))} minutes.", wait)
    token = (request.form.get("token") or "").strip()
    tokens = get_config().server.api_tokens
    if not tokens:
        return signin_form(401, "This brain-api has no tokens configured (server.api_tokens), so nobody can sign in.")
    if not token or not web_auth.token_ok(token, tokens):
        web_auth.record_failure(conn, client)
        return signin_form(401, "That is not one of this brain-api's tokens (server.api_tokens). "
                           "Check for a missing character and try again.")
    web_auth.clear_failures(conn, client)
    value, _ = web_auth.open_session(conn, token, get_config().web.session_hours)
    resp = redirect(safe_next(request.form.get("next")), 303)
    web_auth.set_cookie(resp, request, web_auth.SESSION_COOKIE, value, get_config().web.session_hours * 3600)
    web_auth.clear_cookie(resp, request, web_auth.SIGNIN_COOKIE)
    browser = web_auth.remember_browser(conn, request.cookies.get(web_auth.BROWSER_COOKIE))
    web_auth.set_cookie(resp, request, web_auth.BROWSER_COOKIE, browser, web_auth.BROWSER_DAYS * 86400)
    return resp


@bp.post("/signout")
def signout():
    web_auth.close_session(get_db(), request.cookies.get(web_auth.SESSION_COOKIE))
    resp = redirect("/signin?signed_out=1", 303)
    web_auth.clear_cookie(resp, request, web_auth.SESSION_COOKIE)
    return resp


# ---------------------------------------------------------------------------------------- search and read


@bp.get("/")
@bp.get("/search")
def search():
    args = request.args
    q = (args.get("q") or "").strip()[:2000]
    try:
        f = filters_from(args)
    except ApiError as exc:
        return page("error.html", 400, title="Bad date", message=exc.message)
    results, degraded, recent = [], None, []
    if q:
        try:
            outcome = get_searcher().run(get_db(), q, k=20, mode="hybrid", **f)
            results, degraded = [h.as_result() for h in outcome.hits], outcome.degraded
        except EmbedError as exc:
            degraded = str(exc)
        for r in results:
            r["marked"] = highlight(r["snippet"], q)
    else:
        recent = Store(get_db()).list(**f, limit=20)
    filtered = any(f.values())
    return page("search.html", q=q, args=args, results=results, recent=recent, degraded=degraded,
                filtered=filtered, projects=projects(get_db()), forget_query=forget_query(args) if filtered else "")


def forget_query(args: Any) -> str:
    keep = {k: args.get(k) for k in ("source", "project", "since", "until") if args.get(k)}
    return "&".join(f"{k}={quote(v)}" for k, v in keep.items())


def _page_of(content: str, offset: int) -> tuple[str, int | None]:
    """One page of content from ``offset``, ending at a line break when there is one near the limit."""
    end = offset + PAGE_CHARS
    if end >= len(content):
        return content[offset:], None
    cut = content.rfind("\n", offset, end)
    end = cut + 1 if cut > offset + PAGE_CHARS // 2 else end
    return content[offset:end], end


def _line_start(content: str, line: int) -> int:
    """Offset of the start of ``line`` (1-based) when it lies past the first page, else 0."""
    pos = 0
    for _ in range(max(0, line - 1)):
        nxt = content.find("\n", pos)
        if nxt < 0:
            break
        pos = nxt + 1
    return pos if pos > PAGE_CHARS // 2 else 0


@bp.get("/item/<path:item_id>")
def item(item_id: str):
    found = Store(get_db()).get(item_id)
    if found is None:
        return page("error.html", 404, title="Not found", message=f"Nothing is remembered under {item_id!r} "
                    "(it may have been forgotten).")
    hit = re.fullmatch(r"(\d+)-(\d+)", request.args.get("lines") or "")
    try:
        offset = max(0, min(int(request.args.get("offset") or 0), len(found["content"])))
    except ValueError:
        offset = 0
    if hit and not request.args.get("offset"):
        offset = _line_start(found["content"], int(hit.group(1)) - 5)
    text, next_offset = _page_of(found["content"], offset)
    first_line = found["content"].count("\n", 0, offset) + 1
    lines = [(first_line + i, line) for i, line in enumerate(text.split("\n"))] if found["source"] == "file" else []
    return page("item.html", item=found, text=text, lines=lines, offset=offset, next_offset=next_offset,
                prev_offset=max(0, offset - PAGE_CHARS) if offset else None, total=len(found["content"]),
                hit=(int(hit.group(1)), int(hit.group(2))) if hit else None, open_cmd=open_command(found))


# ---------------------------------------------------------------------------------------- ask


@bp.get("/ask")
def ask():
    return page("ask.html", question="", answer=None, projects=projects(get_db()))


@bp.post("/ask")
def ask_post():
    """Without JavaScript: the API's own ask, answered whole, rendered as a page."""
    from brain.api import ask as ask_api

    body: dict[str, Any] = {"question": (request.form.get("question") or "").strip()}
    for name in ("source", "project"):
        if request.form.get(name):
            body[name] = request.form[name]
    with current_app.test_request_context("/api/v1/ask", method="POST", json=body):
        try:
            resp = current_app.make_response(ask_api.ask())
        except ApiError as exc:
            return page("ask.html", 400, question=body["question"], answer=None, error=exc.message,
                        projects=projects(get_db()))
    data = resp.get_json() or {}
    for c in data.get("citations") or []:
        c["marked"] = highlight(c.get("snippet") or "", body["question"])
    error = (data.get("error") or {}).get("message") if resp.status_code >= 400 else None
    return page("ask.html", 200 if resp.status_code < 500 else resp.status_code, question=body["question"],
                answer=data if not error else None, error=error, citations=data.get("citations") or [],
                projects=projects(get_db()))


# ---------------------------------------------------------------------------------------- timeline


@bp.get("/timeline")
def timeline_page():
    from brain.api.timeline import window_from

    args = {"day": request.args.get("day") or "", "days": request.args.get("days") or "", "tz": tz_name()}
    try:
        w = window_from(args)
    except ApiError as exc:
        return page("error.html", 400, title="Bad day", message=exc.message)
    project = (request.args.get("project") or "").strip().rstrip("/") or None
    source = request.args.get("source") if request.args.get("source") in SOURCES else None
    data = timeline.build(get_db(), w, source=source, project=project)
    assert w.day is not None
    return page("timeline.html", data=data, day=w.day, project=project or "", source=source or "",
                today=datetime.now(parse_tz(tz_name())).date(), projects=projects(get_db()))


# ---------------------------------------------------------------------------------------- status


@bp.get("/status")
def status():
    conn = get_db()
    report = cost.month_report(conn, get_config(), None)
    return page("status.html", stats=web_status.stats(), last=web_status.last_received(conn),
                gpu=web_status.gpu_state(), report=report, chart=web_status.cost_chart(report),
                tombstones=forgetting.list_tombstones(conn))


# ---------------------------------------------------------------------------------------- forget


def _rule_from_request(values: Any, dates: bool) -> dict[str, str]:
    """The forget rule of the page's query (dates in the page's zone) or of its confirm form (exact)."""
    rule: dict[str, str] = {k: values.get(k) for k in ("id", "source", "project", "domain", "path_glob", "id_prefix")
                            if values.get(k)}
    if dates:
        f = filters_from(values)
        rule.update({k: f[k] for k in ("since", "until") if f[k]})
    else:
        rule.update({k: values.get(k) for k in ("since", "until") if values.get(k)})
    return rule


@bp.get("/forget")
def forget_confirm():
    try:
        rule = parse_rule(_rule_from_request(request.args, dates=True))
    except (RuleError, ApiError) as exc:
        return page("error.html", 400, title="Nothing to forget", message=getattr(exc, "message", str(exc)))
    matches = forgetting.matching_ids(get_db(), rule)
    return page("forget.html", rule=rule.as_dict(), count=len(matches), sample=matches[:10], done=None,
                back=request.referrer or "/")


@bp.post("/forget")
def forget_post():
    try:
        rule = parse_rule(_rule_from_request(request.form, dates=False))
    except RuleError as exc:
        return page("error.html", 400, title="Nothing to forget", message=exc.message)
    tombstone, deleted = forgetting.forget(get_db(), rule)
    return page("forget.html", rule=rule.as_dict(), count=deleted, sample=[], done=tombstone, back="/")


@bp.post("/tombstones/<int:tombstone_id>/undo")
def undo(tombstone_id: int):
    if forgetting.remove(get_db(), tombstone_id) is None:
        return page("error.html", 404, title="Not found", message=f"There is no tombstone #{tombstone_id}.")
    return redirect("/status#forgotten", 303)
