"""Browser history -> one ``browser:<profile>:<url-hash>`` item per URL.

Format: ``../shared/reference/browser-history.md``. The rules that shape this module:

* Chrome-family (Chrome, Chromium, Brave, Edge, Vivaldi; Linux and macOS paths; every profile
  with a ``History`` file) and Firefox (every profile listed in ``profiles.ini``).
* A running browser locks its database and may hold the newest rows only in the ``-wal``
  file, so the database is copied *together with* its ``-wal`` into a private temporary folder
  and the copy is read (a copy taken while the files changed is retried).
* Columns are selected by name and missing ones tolerated (older Chrome schemas).
* Times: Chrome = µs since 1601-01-01 UTC, Firefox = µs since 1970; zero, negative and
  far-future values become "unknown" instead of garbage dates.
* Incremental: a per-profile cursor on the last-visit time; only URLs visited after it are read.
* Only ``http(s)`` pages (``file://`` on request); internal pages and excluded domains never
  leave the machine. The id hashes the *redacted* URL, so no secret can hide in it.
* One bad row stops nothing: text columns are read as bytes and decoded with U+FFFD for invalid
  UTF-8 (SQLite would otherwise refuse the whole query, and with it the profile, on every run);
  such rows are collected and named in the run's ``repaired``, rows that cannot be used at all
  are named in ``dropped``.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from brain.collect import Problem, RunStats, expand, prepare
from brain.collect.outbox import Queued, Sink, State
from brain.shared import timeutil
from brain.shared.settings import LaptopConfig

CHROME_EPOCH_OFFSET_US = 11_644_473_600_000_000  # 1601-01-01 -> 1970-01-01 in µs (base/time/time.h)
FUTURE_SLACK = timedelta(days=1)
MAX_URI = 8000
PLAIN_META = ("browser", "profile", "visit_count", "typed_count", "first_visit", "last_visit", "bad_time")

# (browser, path under the Linux config dir); macOS paths under ~/Library/Application Support.
CHROME_LINUX = [("chrome", "google-chrome"), ("chrome-beta", "google-chrome-beta"),
                ("chrome-dev", "google-chrome-unstable"), ("chromium", "chromium"),
                ("brave", "BraveSoftware/Brave-Browser"), ("edge", "microsoft-edge"),
                ("edge-beta", "microsoft-edge-beta"), ("vivaldi", "vivaldi")]
CHROME_MAC = [("chrome", "Google/Chrome"), ("chrome-beta", "Google/Chrome Beta"), ("chromium", "Chromium"),
              ("brave", "BraveSoftware/Brave-Browser"), ("edge", "Microsoft Edge"), ("vivaldi", "Vivaldi")]
# snap/flatpak installs can sit beside a native one: their own names keep the item ids apart
CHROME_EXTRA = [("chromium-snap", "snap/chromium/common/chromium"),
                ("chrome-flatpak", ".var/app/com.google.Chrome/config/google-chrome"),
                ("chromium-flatpak", ".var/app/org.chromium.Chromium/config/chromium"),
                ("brave-flatpak", ".var/app/com.brave.Browser/config/BraveSoftware/Brave-Browser")]
FIREFOX_DIRS = [("firefox", ".mozilla/firefox"), ("firefox-snap", "snap/firefox/common/.mozilla/firefox"),
                ("firefox-flatpak", ".var/app/org.mozilla.firefox/.mozilla/firefox"),
                ("firefox", "Library/Application Support/Firefox")]


@dataclass
class Profile:
    browser: str
    name: str
    db: Path
    kind: str  # "chrome" (History schema) or "firefox" (places.sqlite)

    @property
    def key(self) -> str:
        return f"{self.browser}-{self.name}".replace(" ", "_").replace(":", "_")


@dataclass
class Visit:
    """One URL row, times already converted."""

    url: str
    title: str
    visit_count: int
    first: datetime | None
    last: datetime | None
    raw_last: int
    typed_count: int = 0
    hidden: bool = False
    terms: list[str] = field(default_factory=list)
    description: str = ""
    row: str = ""  # the row it came from, to name it (``urls.id=7``)


# ---------------------------------------------------------------------- discovery


def _config_home() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"


def _chrome_profiles_in(browser: str, user_data: Path) -> list[Profile]:
    if not user_data.is_dir():
        return []
    out = []
    for d in sorted(user_data.iterdir()):
        if d.is_dir() and d.name != "System Profile" and (d / "History").is_file():
            out.append(Profile(browser, d.name, d / "History", "chrome"))
    return out


def chrome_profiles(cfg: LaptopConfig) -> list[Profile]:
    home = Path.home()
    roots = [(b, _config_home() / p) for b, p in CHROME_LINUX]
    roots += [(b, home / "Library/Application Support" / p) for b, p in CHROME_MAC]
    roots += [(b, home / p) for b, p in CHROME_EXTRA]
    roots += [("chromium", p) for p in expand(cfg.collect.browser_roots)]
    out: list[Profile] = []
    seen: set[str] = set()
    for browser, root in roots:
        for prof in _chrome_profiles_in(browser, root):
            real = os.path.realpath(prof.db)
            if real not in seen:
                seen.add(real)
                out.append(prof)
    return out


def firefox_profiles() -> list[Profile]:
    """Profiles listed in each ``profiles.ini`` (Profile* sections and Install* defaults)."""
    out: list[Profile] = []
    seen: set[str] = set()
    for name, rel in FIREFOX_DIRS:
        base = Path.home() / rel
        ini = base / "profiles.ini"
        if not ini.is_file():
            continue
        parser = configparser.RawConfigParser(strict=False)
        try:
            parser.read(ini, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError, OSError):
            continue
        for section in parser.sections():
            path = parser.get(section, "Path", fallback="") if section.startswith("Profile") else \
                parser.get(section, "Default", fallback="") if section.startswith("Install") else ""
            if not path:
                continue
            relative = parser.get(section, "IsRelative", fallback="1").strip() != "0"
            if section.startswith("Install"):
                relative = not os.path.isabs(path)
            pdir = base / path if relative else Path(path)
            db = pdir / "places.sqlite"
            real = os.path.realpath(db)
            if db.is_file() and real not in seen:
                seen.add(real)
                out.append(Profile(name, pdir.name, db, "firefox"))
    return out


def all_profiles(cfg: LaptopConfig) -> list[Profile]:
    return chrome_profiles(cfg) + firefox_profiles()


# ---------------------------------------------------------------------- reading a locked database


def _sig(paths: list[Path]) -> list[tuple[int, int] | None]:
    out: list[tuple[int, int] | None] = []
    for p in paths:
        try:
            st = p.stat()
            out.append((st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return out


def snapshot(db: Path, into: Path, attempts: int = 3) -> Path:
    """Copy ``db`` with its ``-wal`` (and ``-journal``) into ``into``; retry if they changed meanwhile.

    Why copy: the browser holds an exclusive lock, and a read-only open without the ``-wal``
    misses the newest visits. ``-shm`` is not needed: SQLite rebuilds it from the ``-wal``.
    """
    sides = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-journal")]
    target = into / db.name
    for _ in range(attempts):
        before = _sig(sides)
        for src in sides:
            dst = into / src.name
            if dst.exists():
                dst.unlink()
            if src.exists():
                shutil.copyfile(src, dst)
        if _sig(sides) == before:
            break
    return target


def _open_copy(db: Path, tmp: Path) -> tuple[sqlite3.Connection, str]:
    """Open a private copy; fall back to ``immutable=1`` on the live file if copying fails."""
    try:
        copy = snapshot(db, tmp)
        conn = sqlite3.connect(copy, timeout=5)
        conn.execute("PRAGMA query_only = 1")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn, ""
    except (OSError, sqlite3.DatabaseError) as exc:
        uri = db.resolve().as_uri() + "?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, timeout=5)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn, f"copy failed ({exc}); read the live file with immutable=1 (may miss the newest visits)"


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}  # table names are constants


def _col(cols: set[str], name: str, alias: str, default: str = "NULL") -> str:
    return f"{alias}.{name}" if name in cols else default


# ---------------------------------------------------------------------- time


def _from_unix_us(us: int | None, now: datetime) -> datetime | None:
    if us is None or not isinstance(us, int) or us <= 0:
        return None
    try:
        dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    except OverflowError:
        return None
    return None if dt > now + FUTURE_SLACK else dt


def chrome_time(raw: Any, now: datetime | None = None) -> datetime | None:
    """Chrome/WebKit time (µs since 1601-01-01 UTC); 0 means "no time"."""
    if not isinstance(raw, int) or raw <= 0:
        return None
    return _from_unix_us(raw - CHROME_EPOCH_OFFSET_US, now or datetime.now(UTC))


def firefox_time(raw: Any, now: datetime | None = None) -> datetime | None:
    """Firefox PRTime (µs since 1970-01-01 UTC)."""
    return _from_unix_us(raw if isinstance(raw, int) else None, now or datetime.now(UTC))


# ---------------------------------------------------------------------- queries


@dataclass
class Rows:
    """What a query read: the visits, and the rows repaired or left out (``(row, why)``)."""

    visits: list[Visit] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)
    dropped: list[Problem] = field(default_factory=list)


def _text(value: Any, bad: list[str], column: str) -> str:
    """A text column read as bytes (``text_factory = bytes``): decoded, invalid UTF-8 replaced
    with U+FFFD (and the column noted in ``bad``). Numbers stored in a text column become text."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(column)
            return value.decode("utf-8", "replace")
    return str(value)


def _int(value: Any) -> int:
    """An integer column; a text value there (seen in damaged files) raises ValueError."""
    return int(value.decode("ascii") if isinstance(value, bytes) else value or 0)


def _visit(rows: Rows, row: str, make: Callable[..., Visit | None], *args: Any) -> None:
    """Add the visit ``make(*args, bad)`` builds from one row; a row that cannot be used is
    named, not fatal, and one with invalid UTF-8 is kept and named."""
    bad: list[str] = []
    try:
        visit = make(*args, bad)
    except (ValueError, TypeError, OverflowError, UnicodeError) as exc:
        rows.dropped.append((row, f"unreadable row: {type(exc).__name__}"))
        return
    if visit is None:
        return
    visit.row = row
    rows.visits.append(visit)
    if bad:
        rows.repaired.append((row, f"invalid UTF-8 in {', '.join(bad)} replaced with U+FFFD"))


def _chrome_visit(r: tuple[Any, ...], terms: dict[int, list[bytes]], now: datetime, bad: list[str]) -> Visit | None:
    uid, url, title, count, last, typed, hidden, first_raw = r
    if not isinstance(url, bytes):
        return None
    last_raw = _int(last)
    return Visit(_text(url, bad, "url"), _text(title, bad, "title"), _int(count),
                 chrome_time(first_raw, now) or chrome_time(last_raw, now), chrome_time(last_raw, now),
                 last_raw, _int(typed), bool(_int(hidden)),
                 sorted({_text(t, bad, "search term") for t in terms.get(uid, [])}))


def _firefox_visit(r: tuple[Any, ...], now: datetime, bad: list[str]) -> Visit | None:
    _pid, url, title, count, last, typed, hidden, desc, first_raw = r
    if not isinstance(url, bytes):
        return None
    last_raw = _int(last)
    return Visit(_text(url, bad, "url"), _text(title, bad, "title"), _int(count),
                 firefox_time(first_raw, now) or firefox_time(last_raw, now), firefox_time(last_raw, now),
                 last_raw, _int(typed), bool(_int(hidden)), description=_text(desc, bad, "description"))


def read_chrome(conn: sqlite3.Connection, after_raw: int, name: str = "chrome") -> Rows:
    """URLs whose last visit is after ``after_raw`` (Chrome time), with first visit and search terms."""
    cols = _columns(conn, "urls")
    if not {"url", "last_visit_time"} <= cols:
        raise sqlite3.DatabaseError("no urls table with url/last_visit_time: not a Chrome History file")
    has_visits = "visit_time" in _columns(conn, "visits")
    has_terms = "term" in _columns(conn, "keyword_search_terms")
    first = "(SELECT MIN(v.visit_time) FROM visits v WHERE v.url = u.id AND v.visit_time > 0)" if has_visits else "NULL"
    sql = (f"SELECT u.id, u.url, {_col(cols, 'title', 'u')}, {_col(cols, 'visit_count', 'u', '0')}, "
           f"u.last_visit_time, {_col(cols, 'typed_count', 'u', '0')}, {_col(cols, 'hidden', 'u', '0')}, {first} "
           "FROM urls u WHERE u.last_visit_time > ? ORDER BY u.last_visit_time")
    conn.text_factory = bytes  # decoded per column by _text: one bad title must not fail the query
    rows = conn.execute(sql, (after_raw,)).fetchall()
    terms: dict[int, list[bytes]] = {}
    if has_terms:
        for url_id, term in conn.execute("SELECT url_id, term FROM keyword_search_terms"):
            terms.setdefault(url_id, []).append(term)
    now = datetime.now(UTC)
    out = Rows()
    for r in rows:
        _visit(out, f"{name} urls.id={r[0]}", _chrome_visit, r, terms, now)
    return out


def read_firefox(conn: sqlite3.Connection, after_raw: int, name: str = "firefox") -> Rows:
    """Places whose last visit is after ``after_raw`` (PRTime), joined to visits on ``place_id``."""
    cols = _columns(conn, "moz_places")
    if not {"url", "last_visit_date"} <= cols:
        raise sqlite3.DatabaseError("no moz_places table: not a Firefox places.sqlite")
    sql = (f"SELECT p.id, p.url, {_col(cols, 'title', 'p')}, {_col(cols, 'visit_count', 'p', '0')}, "
           f"p.last_visit_date, {_col(cols, 'typed', 'p', '0')}, {_col(cols, 'hidden', 'p', '0')}, "
           f"{_col(cols, 'description', 'p')}, "
           "(SELECT MIN(v.visit_date) FROM moz_historyvisits v WHERE v.place_id = p.id AND v.visit_date > 0) "
           "FROM moz_places p WHERE p.last_visit_date > ? ORDER BY p.last_visit_date")
    conn.text_factory = bytes
    now = datetime.now(UTC)
    out = Rows()
    for r in conn.execute(sql, (after_raw,)).fetchall():
        _visit(out, f"{name} moz_places.id={r[0]}", _firefox_visit, r, now)
    return out


# ---------------------------------------------------------------------- filtering and items


def _idna(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return domain.lower()


def url_skip_reason(url: str, excludes: list[str], include_file: bool) -> str:
    """Why a URL is not collected ("" = keep it)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "file":
        return "" if include_file else "file url"
    if scheme not in ("http", "https"):
        return "internal page"
    try:
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return "malformed url"
    if not host:
        return "malformed url"
    for d in excludes:
        d = _idna(d.strip().lstrip("*").lstrip(".").rstrip("."))
        if d and (host == d or host.endswith("." + d)):
            return "excluded domain"
    return ""


def _merge(a: Visit, b: Visit) -> Visit:
    """Two raw URLs that redact to the same URL (e.g. different tokens) become one item."""
    newer = a if (a.raw_last >= b.raw_last) else b
    firsts = [t for t in (a.first, b.first) if t]
    lasts = [t for t in (a.last, b.last) if t]
    return Visit(newer.url, newer.title or a.title or b.title, a.visit_count + b.visit_count,
                 min(firsts) if firsts else None, max(lasts) if lasts else None, max(a.raw_last, b.raw_last),
                 a.typed_count + b.typed_count, a.hidden and b.hidden, sorted(set(a.terms) | set(b.terms)),
                 newer.description or a.description or b.description, newer.row)


def build_item(profile: Profile, v: Visit, redacted_url: str) -> dict[str, Any]:
    """The API item of one URL (redaction of title/content happens in ``prepare``)."""
    url_hash = hashlib.sha256(redacted_url.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    uri = redacted_url if len(redacted_url) <= MAX_URI else redacted_url[:MAX_URI]
    title = " ".join(v.title.split()) or uri[:200]
    lines = [title, uri]
    if v.description:
        lines.append(v.description)
    if v.terms:
        lines.append("searched: " + "; ".join(v.terms))
    try:
        domain = (urlsplit(redacted_url).hostname or "").lower()
    except ValueError:
        domain = ""
    meta: dict[str, Any] = {"browser": profile.browser, "profile": profile.name, "visit_count": v.visit_count,
                            "domain": domain}
    if v.typed_count:
        meta["typed_count"] = v.typed_count
    if v.first:
        meta["first_visit"] = timeutil.fmt(v.first)
    if v.last:
        meta["last_visit"] = timeutil.fmt(v.last)
    else:
        meta["bad_time"] = True
    if v.terms:
        meta["search_terms"] = v.terms
    return {"id": f"browser:{profile.key}:{url_hash}", "source": "browser", "title": title, "uri": uri,
            "project": None, "created_at": timeutil.fmt(v.first) if v.first else None,
            "updated_at": timeutil.fmt(v.last) if v.last else None, "content": "\n".join(lines), "meta": meta}


def _to_raw(profile: Profile, dt: datetime) -> int:
    us = int((dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
    return us + CHROME_EPOCH_OFFSET_US if profile.kind == "chrome" else us


def collect_profile(profile: Profile, cfg: LaptopConfig, state: State, sink: Sink, redactor: Any, stats: RunStats,
                    since: datetime | None) -> None:
    """Read one profile from a private copy and queue its new visits; advance its cursor."""
    cursor_name = f"browser:{profile.key}"
    cursor = int(state.get_cursor(cursor_name, "0") or 0)
    after = _to_raw(profile, since) if since else cursor
    with tempfile.TemporaryDirectory(prefix="brain-browser-") as tmp:
        os.chmod(tmp, 0o700)
        conn, warning = _open_copy(profile.db, Path(tmp))
        if warning:
            stats.warnings.append(f"browser {profile.key}: {warning}")
        try:
            rows = (read_chrome if profile.kind == "chrome" else read_firefox)(conn, after, profile.key)
        finally:
            conn.close()
    stats.repaired.extend(rows.repaired)
    stats.dropped.extend(rows.dropped)
    stats.scanned += len(rows.dropped)
    excludes = cfg.collect.browser_exclude_domains
    merged: dict[str, tuple[Visit, str]] = {}
    newest = cursor
    for v in rows.visits:
        stats.scanned += 1
        if v.last is not None:
            newest = max(newest, v.raw_last)  # a far-future time never moves the cursor
        reason = url_skip_reason(v.url, excludes, cfg.collect.browser_include_file_urls)
        if not reason and v.hidden and not cfg.collect.browser_include_hidden:
            reason = "hidden"
        if reason:
            stats.skipped[reason] += 1
            continue
        red_url = redactor.redact(v.url).text
        item_id = build_item(profile, v, red_url)["id"]
        if item_id in merged:
            v = _merge(merged[item_id][0], v)
        merged[item_id] = (v, red_url)
    for v, red_url in merged.values():
        try:
            item, counts = prepare(build_item(profile, v, red_url), redactor, cfg.collect.max_item_bytes,
                                   PLAIN_META, stats)
            queued = sink.upsert(Queued(item, counts))
        except (UnicodeError, ValueError, TypeError) as exc:
            stats.dropped.append((v.row, f"cannot be queued: {type(exc).__name__}"))
            continue
        if queued:
            stats.queued += 1
            stats.redacted.update(counts)
        else:
            stats.unchanged += 1
    state.set_cursor(cursor_name, str(newest))
    state.checkpoint()


def collect(cfg: LaptopConfig, state: State, sink: Sink, redactor: Any, since: datetime | None = None) -> RunStats:
    stats = RunStats("browser")
    profiles = all_profiles(cfg)
    if not profiles:
        stats.warnings.append("browser: no Chrome-family or Firefox profile found")
    for profile in profiles:
        try:
            collect_profile(profile, cfg, state, sink, redactor, stats, since)
        except (OSError, sqlite3.Error) as exc:
            state.rollback()
            stats.errors.append(f"browser {profile.key}: cannot read {profile.db}: {exc}")
    return stats

