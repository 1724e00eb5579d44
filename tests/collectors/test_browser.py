"""Browser collector on Chrome/Firefox databases built from the real schemas, in a fake home."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from brain.collect import browser
from brain.shared import timeutil

from .conftest import RecordingSink
from .fakehome import (
    CHROME_ROWS,
    LiveFirefox,
    UrlRow,
    add_chrome_rows,
    chrome_us,
    unix_us,
    write_chrome_history,
    write_profiles_ini,
)


@pytest.fixture
def chrome(home: Path) -> Path:
    db = home / ".config" / "google-chrome" / "Default" / "History"
    write_chrome_history(db)
    return db


@pytest.fixture
def firefox(home: Path):
    base = home / ".mozilla" / "firefox"
    write_profiles_ini(base, {"default-release": "abcd1234.default-release"}, default="abcd1234.default-release")
    live = LiveFirefox(base / "abcd1234.default-release")
    yield live
    live.close()


def run(cfg, state, redactor, since=None) -> tuple[RecordingSink, browser.RunStats]:
    sink = RecordingSink(state)
    return sink, browser.collect(cfg, state, sink, redactor, since)


def by_uri(sink: RecordingSink) -> dict[str, dict]:
    return {it["uri"]: it for it in sink.items.values()}


def test_time_conversions() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    assert browser.chrome_time(13_411_699_200_000_000, now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert browser.chrome_time(chrome_us("2026-01-10T09:00:00Z"), now) == datetime(2026, 1, 10, 9, tzinfo=UTC)
    assert browser.firefox_time(unix_us("2026-01-05T12:00:00.250000Z"), now) == \
        datetime(2026, 1, 5, 12, 0, 0, 250000, tzinfo=UTC)
    for bad in (0, -5, None, "x", chrome_us("2099-01-01T00:00:00Z")):
        assert browser.chrome_time(bad, now) is None
    assert browser.chrome_time(5, now) is None  # before 1970 once converted
    assert browser.firefox_time(unix_us("2099-01-01T00:00:00Z"), now) is None


def test_chrome_history_items(chrome, make_cfg, state, redactor) -> None:
    sink, stats = run(make_cfg(), state, redactor)
    items = by_uri(sink)
    doc = items["https://docs.python.org/3/library/sqlite3.html"]
    assert doc["id"].startswith("browser:chrome-Default:") and len(doc["id"].split(":")[-1]) == 16
    assert doc["title"] == "sqlite3 — DB-API 2.0 interface"
    assert (doc["created_at"], doc["updated_at"]) == ("2026-01-10T09:00:00.000Z", "2026-01-12T10:30:00.000Z")
    assert doc["meta"]["visit_count"] == 2 and doc["meta"]["typed_count"] == 1
    assert doc["meta"]["browser"] == "chrome" and doc["meta"]["profile"] == "Default"
    search = items["https://www.google.com/search?q=sqlite+wal+mode"]
    assert search["meta"]["search_terms"] == ["sqlite wal mode"] and "searched: sqlite wal mode" in search["content"]
    # secrets in URLs are redacted everywhere, including what the id is derived from
    assert "https://example.com/reset?token=[REDACTED:url_param]&lang=en" in items
    assert "https://admin:[REDACTED:url_userinfo]@intranet.example.org/dashboard" in items
    assert not any("EXAMPLE" in repr(it) for it in sink.items.values())
    # internal pages, file://, excluded domains and hidden redirect hops stay on the machine
    assert not any(u.startswith(("chrome:", "chrome-extension:", "file:")) or "localhost" in u for u in items)
    assert "https://redirect.example.com/hop" not in items
    assert stats.skipped == {"internal page": 2, "file url": 1, "excluded domain": 1, "hidden": 1}
    # unicode title kept; empty title falls back to the URL; future time -> unknown, not year 2099
    assert items["https://xn--bcher-kva.example/"]["title"] == "Bücher ✓ — عربي 🎉"
    assert items["https://empty-title.example.com/page"]["title"] == "https://empty-title.example.com/page"
    future = items["https://future.example.com/"]
    assert future["updated_at"] is None and future["meta"]["bad_time"] is True
    assert "https://zero.example.com/" not in items  # zero time: never visited as far as Chrome knows
    assert len(items) == 8 and stats.errors == []


def test_options_include_file_urls_hidden_and_exclude_domains(chrome, make_cfg, state, redactor) -> None:
    cfg = make_cfg(browser_include_file_urls=True, browser_include_hidden=True,
                   browser_exclude_domains=["bank.example", "*.python.org"])
    items = by_uri(run(cfg, state, redactor)[0])
    assert "file:///home/dev/notes.html" in items and "https://redirect.example.com/hop" in items
    assert "http://localhost:3000/" in items
    assert "https://mail.bank.example/inbox" not in items
    assert "https://docs.python.org/3/library/sqlite3.html" not in items


def test_cursor_makes_runs_incremental(chrome, make_cfg, state, redactor) -> None:
    cfg = make_cfg()
    run(cfg, state, redactor)
    cursor = int(state.get_cursor("browser:chrome-Default"))
    assert cursor == chrome_us("2026-01-12T10:30:00Z")  # the far-future visit did not move it
    conn = sqlite3.connect(chrome)
    add_chrome_rows(conn, [UrlRow("https://new.example.com/", "New", ["2026-02-01T00:00:00Z"])])
    conn.execute("UPDATE urls SET visit_count = 3, last_visit_time = ? WHERE url LIKE 'https://docs.python.org/%'",
                 (chrome_us("2026-02-02T00:00:00Z"),))
    conn.commit()
    conn.close()
    sink, _ = run(cfg, state, redactor)
    items = by_uri(sink)
    assert set(items) == {"https://new.example.com/", "https://docs.python.org/3/library/sqlite3.html",
                          "https://future.example.com/"}  # the future row is re-read, but...
    assert items["https://docs.python.org/3/library/sqlite3.html"]["meta"]["visit_count"] == 3
    # --since reads again from that date whatever the cursor says
    sink, _ = run(cfg, state, redactor, since=timeutil.parse("2026-01-11"))
    assert len(sink.items) == 9


def test_a_locked_chrome_database_is_read_from_a_copy(chrome, make_cfg, state, redactor) -> None:
    holder = sqlite3.connect(chrome)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("UPDATE meta SET value = value WHERE key = 'version'")
    holder.commit()  # the exclusive lock is now held until the connection closes, like a running Chrome
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            ro = sqlite3.connect(f"file:{chrome}?mode=ro", uri=True, timeout=0.1)
            try:
                ro.execute("SELECT count(*) FROM urls").fetchone()
            finally:
                ro.close()
        sink, stats = run(make_cfg(), state, redactor)
        assert len(sink.items) == 8 and stats.errors == [] and stats.warnings == []
    finally:
        holder.close()


def test_firefox_profile_with_newest_rows_only_in_the_wal(firefox, make_cfg, state, redactor) -> None:
    wal = firefox.path.with_name("places.sqlite-wal")
    assert wal.stat().st_size > 0
    sink, stats = run(make_cfg(), state, redactor)
    items = by_uri(sink)
    assert "https://news.ycombinator.com/item?id=1" in items  # only in places.sqlite-wal
    assert "https://example.org/callback#access_token=[REDACTED:url_param]&token_type=bearer" in items
    assert "https://github.com/login/oauth/callback?code=[REDACTED:url_param]&state=abc" in items
    mdn = items["https://developer.mozilla.org/en-US/docs/Web/API/Fetch_API"]
    assert mdn["id"].startswith("browser:firefox-abcd1234.default-release:")
    assert (mdn["created_at"], mdn["updated_at"]) == ("2026-01-05T12:00:00.000Z", "2026-01-06T12:00:00.000Z")
    assert stats.skipped["internal page"] == 3  # about:, moz-extension:, place:
    assert "https://bookmark.example/" not in items  # never visited
    assert len(items) == 4
    assert wal.stat().st_size > 0  # the live database was not checkpointed by the collector
    firefox.add([UrlRow("https://later.example/", "Later", ["2026-01-08T00:00:00Z"])])
    assert set(by_uri(run(make_cfg(), state, redactor)[0])) == {"https://later.example/"}


def test_profiles_ini_relative_absolute_and_install_sections(home: Path, tmp_path: Path) -> None:
    base = home / ".mozilla" / "firefox"
    elsewhere = tmp_path / "abs-profile"
    write_profiles_ini(base, {"rel": "rel.default", "abs": str(elsewhere), "missing": "nothing-here"},
                       default="inst.default")
    for d in (base / "rel.default", elsewhere, base / "inst.default"):
        d.mkdir(parents=True)
        sqlite3.connect(d / "places.sqlite").close()
    names = sorted(p.name for p in browser.firefox_profiles())
    assert names == ["abs-profile", "inst.default", "rel.default"]


def test_every_chrome_family_browser_and_profile_is_found(home: Path, make_cfg) -> None:
    for rel in (".config/google-chrome/Default", ".config/google-chrome/Profile 1", ".config/chromium/Default",
                ".config/BraveSoftware/Brave-Browser/Default", ".config/microsoft-edge/Default",
                ".config/vivaldi/Default", "Library/Application Support/Google/Chrome/Default",
                ".var/app/com.google.Chrome/config/google-chrome/Default", ".config/google-chrome/System Profile"):
        write_chrome_history(home / rel / "History", [])
    keys = sorted(p.key for p in browser.chrome_profiles(make_cfg()))
    # (a macOS and a Linux Chrome never share one home; a flatpak beside a native install can)
    assert keys == ["brave-Default", "chrome-Default", "chrome-Default", "chrome-Profile_1", "chrome-flatpak-Default",
                    "chromium-Default", "edge-Default", "vivaldi-Default"]


def test_a_broken_profile_is_reported_and_the_others_still_collected(chrome, home, make_cfg, state,
                                                                     redactor) -> None:
    bad = home / ".config" / "chromium" / "Default" / "History"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"this is not a database" * 100)
    sink, stats = run(make_cfg(), state, redactor)
    assert len(sink.items) == 8
    assert len(stats.errors) == 1 and "chromium-Default" in stats.errors[0] and str(bad) in stats.errors[0]


def test_older_chrome_schema_without_optional_columns(home: Path, make_cfg, state, redactor) -> None:
    db = home / ".config" / "google-chrome" / "Default" / "History"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE urls(id INTEGER PRIMARY KEY, url LONGVARCHAR, title LONGVARCHAR, "
                 "visit_count INTEGER DEFAULT 0 NOT NULL, last_visit_time INTEGER NOT NULL)")
    conn.execute("INSERT INTO urls(url, title, visit_count, last_visit_time) VALUES (?, ?, 1, ?)",
                 ("https://old.example/", "Old schema", chrome_us("2020-05-05T05:05:05Z")))
    conn.commit()
    conn.close()
    sink, stats = run(make_cfg(), state, redactor)
    [item] = sink.items.values()
    assert item["updated_at"] == "2020-05-05T05:05:05.000Z" and stats.errors == []


def test_urls_that_redact_to_the_same_url_become_one_item(home: Path, make_cfg, state, redactor) -> None:
    rows = [UrlRow("https://x.example/a?token=EXAMPLEaaaa", "A", ["2026-01-01T00:00:00Z"]),
            UrlRow("https://x.example/a?token=EXAMPLEbbbb", "A", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"])]
    write_chrome_history(home / ".config" / "google-chrome" / "Default" / "History", rows)
    [item] = run(make_cfg(), state, redactor)[0].items.values()
    assert item["meta"]["visit_count"] == 3
    assert (item["created_at"], item["updated_at"]) == ("2026-01-01T00:00:00.000Z", "2026-01-03T00:00:00.000Z")


def test_fixture_rows_cover_the_reference_cases() -> None:
    urls = [r.url for r in CHROME_ROWS]
    assert any(u.startswith("chrome://") for u in urls) and any(u.startswith("file://") for u in urls)
    assert any(r.hidden for r in CHROME_ROWS) and any(v == "0" for r in CHROME_ROWS for v in r.visits)


def test_an_invalid_utf8_title_does_not_disable_the_profile(chrome: Path, home: Path, make_cfg, state, redactor) -> None:
    """Issue 12: SQLite refused the whole query ("Could not decode to UTF-8 column 'title'")."""
    conn = sqlite3.connect(chrome)
    t = chrome_us("2026-01-13T09:00:00Z")
    cur = conn.execute("INSERT INTO urls(url, title, visit_count, last_visit_time) VALUES (?, CAST(? AS TEXT), 1, ?)",
                       ("https://latin1.example/page", b"caf\xe9 cr\xe8me", t))
    bad_id = cur.lastrowid
    conn.execute("INSERT INTO keyword_search_terms VALUES (2, ?, CAST(? AS TEXT), 'x')", (bad_id, b"cr\xe8me"))
    # a visit_count that is text: the row cannot be used, the others can
    cur = conn.execute("INSERT INTO urls(url, title, visit_count, last_visit_time) VALUES (?, 'broken', 'many', ?)",
                       ("https://broken-row.example/", t))
    broken_id = cur.lastrowid
    conn.commit()
    with pytest.raises(sqlite3.OperationalError, match="Could not decode to UTF-8"):
        conn.execute("SELECT title FROM urls").fetchall()  # what a plain read meets
    conn.close()
    sink, stats = run(make_cfg(), state, redactor)
    assert stats.errors == []
    items = by_uri(sink)
    assert len(items) == 8 + 1  # the fixture's 8 plus the repaired row; the broken row left out
    latin = items["https://latin1.example/page"]
    assert latin["title"] == "caf\ufffd cr\ufffdme" and "searched: cr\ufffdme" in latin["content"]
    assert stats.repaired == [(f"chrome-Default urls.id={bad_id}",
                               "invalid UTF-8 in title, search term replaced with U+FFFD")]
    assert stats.dropped == [(f"chrome-Default urls.id={broken_id}", "unreadable row: ValueError")]
    assert "repaired 1 (chrome-Default urls.id=" in stats.summary()


def test_an_invalid_utf8_firefox_row_is_repaired(home: Path, make_cfg, state, redactor) -> None:
    base = home / ".mozilla" / "firefox"
    write_profiles_ini(base, {"default": "p1.default"})
    live = LiveFirefox(base / "p1.default")
    live.conn.execute("INSERT INTO moz_places(url, title, rev_host, visit_count, frecency, last_visit_date, guid, "
                      "description) VALUES ('https://bad.example/', CAST(? AS TEXT), '', 1, 1, ?, 'badguid00001', "
                      "CAST(? AS TEXT))", (b"\xff\xfe title", unix_us("2026-01-08T08:00:00Z"), b"desc \xc3"))
    live.conn.commit()
    try:
        sink, stats = run(make_cfg(), state, redactor)
    finally:
        live.close()
    assert stats.errors == [] and len(sink.items) == 5
    assert by_uri(sink)["https://bad.example/"]["title"] == "\ufffd\ufffd title"
    [(row, why)] = stats.repaired
    assert row.startswith("firefox-p1.default moz_places.id=") and why == \
        "invalid UTF-8 in title, description replaced with U+FFFD"
