"""The web page over Flask's test client (issue 16, points 1-4, 6, 7): sign-in, session cookie, CSRF,
the rate limit, the bearer API unchanged, and what each page shows. The real browser drives the
same pages in ``test_browser.py``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from brain.api import create_app
from tests.conftest import TOKEN

SID = "55604662-cf2a-4331-851a-ec234028f8ca"
SPOTTER = "/home/marco/projects/spotter"
ITEMS = [
    {"id": f"claude:{SID}", "source": "claude", "title": "Fix the flaky sqlite test", "project": SPOTTER,
     "created_at": "2026-03-10T09:00:00Z", "updated_at": "2026-03-10T10:30:00Z",
     "content": "user: the sqlite test is flaky: database is locked\nassistant: set busy_timeout <b>now</b>",
     "meta": {"resume": f"claude --resume {SID}", "user_messages": 1}},
    {"id": "browser:Default:aaa", "source": "browser", "title": "WAL mode", "uri": "https://sqlite.org/wal.html",
     "created_at": "2026-03-10T11:00:00Z", "updated_at": "2026-03-10T11:00:00Z",
     "content": "Write-Ahead Logging in sqlite", "meta": {"domain": "sqlite.org", "visit_count": 3}},
    {"id": f"file:laptop:{SPOTTER}/db.py", "source": "file", "title": "spotter/db.py", "project": SPOTTER,
     "created_at": "2026-03-10T12:00:00Z", "updated_at": "2026-03-10T12:00:00Z",
     "content": "".join(f"line {n}\n" for n in range(1, 20_001)) + "def connect(): sqlite busy_timeout\n",
     "meta": {"path": f"{SPOTTER}/db.py", "line_count": 20_001, "language": "python"}},
]
WEB_PAGE = Path(__file__).resolve().parents[2] / "app" / "brain" / "api" / "web_page"


def nonce_of(html: str) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', html).group(1)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def sign_in(client, token: str = TOKEN, **kw):
    form = client.get("/signin", **kw).get_data(as_text=True)
    return client.post("/signin", data={"nonce": nonce_of(form), "token": token, "next": "/"}, **kw)


@pytest.fixture
def loaded(client, auth):
    assert client.post("/api/v1/items", json={"items": ITEMS}, headers=auth).status_code == 200
    return client


@pytest.fixture
def web(loaded):
    """A signed-in browser (its cookies) and the page's CSRF token."""
    assert sign_in(loaded).status_code == 303
    loaded.csrf = csrf_of(loaded.get("/").get_data(as_text=True))
    return loaded


# ---------------------------------------------------------------------------------------- sign-in


def test_every_page_asks_to_sign_in_first_and_the_form_is_labelled(client):
    for path in ("/", "/search?q=x", "/ask", "/timeline", "/status", "/item/note:x", "/forget?source=note"):
        r = client.get(path)
        assert r.status_code == 303 and r.headers["Location"].startswith("/signin?next=/"), path
    r = client.get("/signin")
    html = r.get_data(as_text=True)
    assert '<label for="token">' in html and 'id="token" name="token" type="password"' in html
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self'; style-src 'self'")
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"


def test_the_assets_are_served_before_sign_in(client):
    for name, kind in (("brain.css", "text/css"), ("brain.js", "text/javascript"), ("icon.svg", "image/svg+xml")):
        with client.get(f"/assets/{name}") as r:  # a file response: closed, or it warns
            assert r.status_code == 200 and r.mimetype == kind and r.get_data(), name
    assert '<script src="/assets/brain.js" defer>' in client.get("/signin").get_data(as_text=True)


def test_nothing_is_loaded_from_elsewhere():
    """Every asset ships with the package; the page and its files name no other host."""
    files = sorted(p for p in WEB_PAGE.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"brain.css", "brain.js", "icon.svg", "base.html", "search.html", "timeline.html"} <= names, names
    for path in files:
        text = path.read_text()
        assert not re.search(r"(src|href|action)=\"(https?:)?//", text), path
        assert not re.search(r"(fetch|EventSource|WebSocket)\(\s*[\"'`](https?|wss?):", text), path
        assert "@import" not in text and "url(http" not in text, path
        # CSP-clean: no inline script, style or event handler (script-src/style-src 'self' refuse them)
        assert "<script>" not in text and " style=" not in text, path
        assert not re.search(r"<[^>]+\son[a-z]+=", text), path


def test_a_wrong_token_says_so_and_repeated_failures_are_braked(client):
    r = sign_in(client, "not-the-token")
    assert r.status_code == 401 and "That is not one of this brain-api" in r.get_data(as_text=True)
    for _ in range(4):
        assert sign_in(client, "still-wrong").status_code == 401
    r = sign_in(client)  # even the right token waits out the window
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in r.get_data(as_text=True)
    assert client.get("/status").status_code == 303


def test_a_sign_in_posted_from_elsewhere_is_refused(client):
    assert client.post("/signin", data={"nonce": "forged", "token": TOKEN}).status_code == 400
    form = client.get("/signin").get_data(as_text=True)
    r = client.post("/signin", data={"nonce": nonce_of(form), "token": TOKEN}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 400 and "brain_session" not in r.headers.get("Set-Cookie", "")


def test_the_session_cookie_is_httponly_strict_and_secure_over_tls(db_path):
    plain = create_app({"server.db_path": str(db_path), "server.api_tokens": [TOKEN]}).test_client()
    cookie = sign_in(plain).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    tls = create_app({"server.db_path": str(db_path), "server.api_tokens": [TOKEN]}).test_client()
    assert "Secure" in sign_in(tls, base_url="https://brain.example").headers["Set-Cookie"]
    proxied = {"X-Forwarded-Proto": "https"}
    untrusted = create_app({"server.db_path": str(db_path), "server.api_tokens": [TOKEN]}).test_client()
    assert "Secure" not in sign_in(untrusted, headers=proxied).headers["Set-Cookie"]  # nobody said to trust it
    trusted = create_app({"server.db_path": str(db_path), "server.api_tokens": [TOKEN],
                          "web.trust_proxy": True}).test_client()
    assert "Secure" in sign_in(trusted, headers=proxied).headers["Set-Cookie"]


def test_next_never_leaves_the_site(client):
    form = client.get("/signin?next=//evil.example/x").get_data(as_text=True)
    r = client.post("/signin", data={"nonce": nonce_of(form), "token": TOKEN, "next": "//evil.example/x"})
    assert r.headers["Location"] == "/"


# ---------------------------------------------------------------------------------------- the API with the cookie


def test_the_page_calls_the_api_with_its_cookie_and_csrf_token(web):
    assert web.get("/api/v1/stats").status_code == 200
    r = web.post("/api/v1/forget", json={"id": "note:none"})
    assert r.status_code == 403 and r.json["error"]["code"] == "csrf_failed"
    r = web.post("/api/v1/forget", json={"id": "note:none"},
                 headers={"X-CSRF-Token": web.csrf, "Origin": "https://evil.example"})
    assert r.status_code == 403
    r = web.post("/api/v1/forget", json={"id": "note:none", "dry_run": True}, headers={"X-CSRF-Token": web.csrf})
    assert r.status_code == 200 and r.json["matches"] == 0
    # a bearer header is judged alone, as before: a wrong one fails even with a good cookie
    assert web.get("/api/v1/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_a_form_without_its_csrf_token_changes_nothing(web):
    assert web.post("/signout").status_code == 403
    assert web.post("/forget", data={"id": f"claude:{SID}"}).status_code == 403
    assert web.get(f"/item/claude:{SID}").status_code == 200


def test_sign_out_ends_the_session_for_good(web):
    cookie = web.get_cookie("brain_session").value
    r = web.post("/signout", data={"csrf_token": web.csrf})
    assert r.status_code == 303 and r.headers["Location"] == "/signin?signed_out=1"
    assert "You are signed out." in web.get("/signin?signed_out=1").get_data(as_text=True)
    web.set_cookie("brain_session", cookie)  # the old cookie, replayed
    assert web.get("/status").status_code == 303
    assert web.get("/api/v1/stats").status_code == 401


def test_removing_a_token_signs_out_its_browsers(db_path):
    app = create_app({"server.db_path": str(db_path), "server.api_tokens": [TOKEN]})
    c = app.test_client()
    sign_in(c)
    assert c.get("/status").status_code == 200
    app.config["BRAIN"] = app.config["BRAIN"].with_overrides(server__api_tokens=["another-token-" + "y" * 20])
    assert c.get("/status").status_code == 303


# ---------------------------------------------------------------------------------------- the pages


def test_search_shows_highlighted_snippets_icons_times_and_how_to_reopen(web):
    html = web.get("/search?q=sqlite+busy_timeout").get_data(as_text=True)
    assert "<mark>" in html and 'class="icon icon-claude"' in html
    assert f"cd {SPOTTER} &amp;&amp; claude --resume {SID}" in html and 'data-copy="cd ' in html
    assert "&lt;b&gt;now&lt;/b&gt;" in html or "<b>now</b>" not in html  # content is escaped
    assert "https://sqlite.org/wal.html" in html
    filtered = web.get("/search?q=sqlite&source=browser").get_data(as_text=True)
    assert "WAL mode" in filtered and "Fix the flaky" not in filtered
    assert 'href="/forget?source=browser"' in filtered
    dated = web.get("/search?q=sqlite&since=2026-03-11").get_data(as_text=True)
    assert "0 results" in dated


def test_an_item_is_read_whole_in_pages_with_its_lines(web):
    first = web.get(f"/item/file:laptop:{SPOTTER}/db.py").get_data(as_text=True)
    assert 'id="L1"' in first and "Next part" in first and 'id="L20001"' not in first
    assert f"{SPOTTER}/db.py" in first and "20001 lines" in first
    at = web.get(f"/item/file:laptop:{SPOTTER}/db.py?lines=20001-20001").get_data(as_text=True)
    assert 'class="line hit" id="L20001"' in at and "Previous part" in at
    session = web.get(f"/item/claude:{SID}").get_data(as_text=True)
    assert f"cd {SPOTTER} &amp;&amp; claude --resume {SID}" in session and "Forget this item" in session
    assert web.get("/item/note:missing").status_code == 404


def test_forget_from_the_page_counts_confirms_and_sticks(web, auth):
    confirm = web.get("/forget?source=browser").get_data(as_text=True)
    assert "<strong>1</strong> item match" in confirm and "browser:Default:aaa" in confirm
    assert web.get("/search?q=WAL").get_data(as_text=True).count("WAL mode") >= 1  # nothing forgotten yet
    done = web.post("/forget", data={"csrf_token": web.csrf, "source": "browser"})
    assert done.status_code == 200 and "Forgot 1 item" in done.get_data(as_text=True)
    assert "WAL mode" not in web.get("/search?q=WAL").get_data(as_text=True)
    again = web.post("/api/v1/items", json={"items": [ITEMS[1]]}, headers=auth)
    assert again.json["forgotten"] == 1
    status = web.get("/status").get_data(as_text=True)
    assert "source=browser" in status and "/undo" in status


def test_timeline_page_steps_through_days(web):
    html = web.get("/timeline?day=2026-03-10").get_data(as_text=True)
    assert "Tuesday 10 March 2026" in html and "1 session · 1 page · 1 file" in html
    assert 'href="/timeline?day=2026-03-09"' in html and 'href="/timeline?day=2026-03-11"' in html
    assert "“the sqlite test is flaky: database is locked”" in html and "1 h 30 min" in html
    assert html.index("spotter") < html.index("Web and notes")
    web.set_cookie("brain_tz", "Asia/Tokyo")  # what brain.js sets: the browser's zone
    tokyo = web.get("/timeline?day=2026-03-10").get_data(as_text=True)
    assert ">18:00–19:30<" in tokyo and "Times in Asia/Tokyo" in tokyo


def test_status_shows_sources_backlog_gpu_and_the_cost_chart(web):
    html = web.get("/status").get_data(as_text=True)
    assert "Embedding backlog" in html and "Not managed by this brain-api" in html
    assert '<svg viewBox="0 0 640 96"' in html and 'role="img"' in html
    assert html.count('class="tier"') == 3 and "Weekend 32 h" in html and "$11.20" in html


def test_ask_without_javascript_answers_whole_with_sources(web):
    r = web.post("/ask", data={"csrf_token": web.csrf, "question": "how did I fix the flaky sqlite test?"})
    html = r.get_data(as_text=True)
    # no LLM is listening in this test: the page says so and still lists what the brain found
    assert r.status_code == 503 and "LLM" in html and f"/item/claude:{SID}" in html


def test_the_cost_chart_draws_hours_used_and_projected_against_the_tiers():
    from brain.api.web_status import WIDTH, cost_chart

    report = {"month": "2026-03", "gpu": {"hours": 30.0, "usd": 10.5, "projected_hours": 90.0, "projected_usd": 31.5},
              "tier": "Medium", "tiers": [{"name": "Weekend", "hours": 32, "gpu_usd": 11.2},
                                          {"name": "Light", "hours": 60, "gpu_usd": 21.0},
                                          {"name": "Medium", "hours": 120, "gpu_usd": 42.0}]}
    chart = cost_chart(report)
    scale = WIDTH / (120 * 1.08)  # the top tier and a margin span the width
    assert chart.used_w == round(30 * scale, 1) and chart.projected_w == round(90 * scale, 1)
    assert [(m.x, m.label, m.price) for m in chart.marks] == [
        (round(32 * scale, 1), "Weekend 32 h", "$11.20"), (round(60 * scale, 1), "Light 60 h", "$21.00"),
        (round(120 * scale, 1), "Medium 120 h", "$42.00")]
    assert chart.used_w < chart.marks[0].x < chart.projected_w < chart.marks[2].x < WIDTH
    assert "30.0 GPU hours so far ($10.50); projected 90.0 h ($31.50) for the month: Medium" in chart.desc
    over = cost_chart({**report, "gpu": {**report["gpu"], "projected_hours": 200.0}, "tier": None})
    assert over.projected_w == round(200 / (200 * 1.08) * WIDTH, 1) and over.marks[2].x < over.projected_w
    assert "above every tier" in over.desc


def test_the_status_page_charts_the_hours_the_ledger_booked_this_month(web, auth, db_path):
    from datetime import UTC, datetime, timedelta

    from brain.core import store
    from brain.gpu import control, cost

    now = datetime.now(UTC)
    _, month_start, _ = cost.month_bounds(None, now)
    began = max(month_start, now - timedelta(hours=3))
    conn = store.connect(db_path)
    try:
        assert control.record(conn, "vm-1", "start", began, 0.5, "cli")
        assert control.record(conn, "vm-1", "stop", began + (now - began) / 2, 0.5, "cli")
    finally:
        conn.close()
    report = web.get("/api/v1/cost", headers=auth).json
    hours = report["gpu"]["hours"]
    assert hours > 0 and report["gpu"]["usd"] == pytest.approx(hours * 0.5)
    html = web.get("/status").get_data(as_text=True)
    used_w = float(re.search(r'<rect class="used" x="0" y="34" width="([\d.]+)"', html).group(1))
    medium_x = float(re.findall(r'<line class="tier" x1="([\d.]+)"', html)[-1])
    assert used_w == pytest.approx(hours / 120 * medium_x, abs=0.11)  # drawn to the tiers' scale (0.1 rounding)
    assert used_w > 0 or hours < 0.05  # 1.5 h, less only in a month's first three hours
    assert f"used {hours:.1f} h (${report['gpu']['usd']:.2f})" in html


def test_guessers_everywhere_do_not_lock_out_a_browser_that_signed_in_before(app):
    """Twenty failures from many addresses block new browsers, not one that signed in before (its
    ``brain_browser`` cookie); its own address's five-failure cap still holds, and a forged or
    unknown cookie counts for nothing."""
    def client_at(addr: str):
        return app.test_client(), {"environ_base": {"REMOTE_ADDR": addr}}

    owner, at_owner = client_at("192.0.2.200")
    assert sign_in(owner, **at_owner).status_code == 303
    remembered = owner.get_cookie("brain_browser")
    assert remembered is not None and remembered.http_only and remembered.same_site == "Strict"
    assert remembered.max_age == 180 * 86400
    assert owner.post("/signout", data={"csrf_token": csrf_of(owner.get("/", **at_owner).get_data(as_text=True))},
                      **at_owner).status_code == 303
    for n in range(20):
        c, at = client_at(f"198.51.100.{n}")
        assert sign_in(c, "wrong", **at).status_code == 401
    stranger, at_stranger = client_at("203.0.113.9")
    assert sign_in(stranger, **at_stranger).status_code == 429
    forged, at_forged = client_at("203.0.113.10")
    forged.set_cookie("brain_browser", "x" * 43)
    assert sign_in(forged, **at_forged).status_code == 429
    assert sign_in(owner, **at_owner).status_code == 303  # the owner's browser still gets in
    assert owner.get_cookie("brain_browser").value == remembered.value  # and stays the same browser
    # its own address's cap is not lifted
    assert owner.post("/signout", data={"csrf_token": csrf_of(owner.get("/", **at_owner).get_data(as_text=True))},
                      **at_owner).status_code == 303
    for _ in range(5):
        assert sign_in(owner, "wrong", **at_owner).status_code == 401
    assert sign_in(owner, **at_owner).status_code == 429


def test_the_brake_is_per_client_and_caps_everyone_together(app):
    """Five failures block that client only; twenty from anyone within the window block every
    sign-in, the right token too (a guesser spreading over many addresses)."""
    def client_at(addr: str):
        c = app.test_client()
        return c, {"environ_base": {"REMOTE_ADDR": addr}}

    guesser, at_guesser = client_at("192.0.2.1")
    for _ in range(5):
        assert sign_in(guesser, "wrong", **at_guesser).status_code == 401
    assert sign_in(guesser, **at_guesser).status_code == 429
    owner, at_owner = client_at("192.0.2.200")
    assert sign_in(owner, **at_owner).status_code == 303  # another address is not blocked by the guesser
    other, at_other = client_at("192.0.2.201")
    assert sign_in(other, "wrong", **at_other).status_code == 401  # 6 failures in all so far
    for n in range(2, 16):  # 14 more, from 14 addresses: 20 in all
        c, at = client_at(f"198.51.100.{n}")
        assert sign_in(c, "wrong", **at).status_code == 401
    late, at_late = client_at("203.0.113.9")
    r = sign_in(late, **at_late)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
