"""The web page in a real browser (issue 16, point 8): headless Chromium from Debian's packages,
driven by Selenium through Debian's chromedriver (nothing is downloaded), against the real
brain-api (gunicorn) on loopback, filled by the real collectors from a fake home, with the
LLM a stand-in speaking the OpenAI streaming protocol.

One person's visit, with the keyboard: sign in (a wrong token first), search with a filter, open
an item, ask (the answer streams in, citations link to items; then the LLM down), the timeline of
a fixture day and the next one, the status page, forget a file and see it stay gone after a
re-collect, sign out. Every field on every page has a label, and the browser logs no CSP refusal.
One screenshot per page goes to ``artifacts/screenshots`` (``BRAIN_ARTIFACTS`` to move it).

Without Chromium or chromedriver the module is skipped (reported as skipped, never as passed),
and under CI (``CI`` set) it fails instead: scripts/test.sh installs both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.ask.standin_llm import Behaviour, StandinLLM
from tests.collectors.fakehome import CHROME_ROWS, UrlRow, copy_real_claude, write_chrome_history
from tests.conftest import REPO, ApiServer, start_api_server, stop_api_server, wait_for_vectors
from tests.standins.openai_embeddings import EmbeddingsStandIn

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SID = "55604662-cf2a-4331-851a-ec234028f8ca"
SPOTTER = "/home/marco/projects/spotter"
DAY = "2026-02-10"
SHOTS = Path(os.environ.get("BRAIN_ARTIFACTS") or REPO / "artifacts") / "screenshots"
PAGES = [UrlRow("https://hexdocs.pm/phoenix/up_and_running.html", "Up and Running — Phoenix",
                ["2026-02-10T21:05:00Z"]),
         UrlRow("https://elixirforum.com/t/mix-phx-server-does-not-start/4242", "mix phx.server does not start",
                ["2026-02-10T21:40:00Z", "2026-02-10T22:30:00Z"])]
ANSWER = ["Run `mix deps.get` first, ", "then start it with ", "`mix phx.server` [1]; ", "the port was taken [2]."]


def _browser_or_skip() -> Any:
    """Selenium's webdriver module, or a skip (a failure under CI) saying what is missing."""
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not path]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("the selenium package (requirements-dev.txt)")
        webdriver = None
    if missing:
        why = f"no {', '.join(missing)}: apt-get install chromium chromium-driver (scripts/test.sh does)"
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests must run in CI: {why}")
        pytest.skip(why)
    return webdriver


# ---------------------------------------------------------------------------------------- the brain


class Site:
    """The real brain-api with the collectors' data, and how to collect again."""

    def __init__(self, server: ApiServer, llm: StandinLLM, home: Path, env: dict[str, str]):
        self.server, self.llm, self.home, self.env = server, llm, home, env
        self.url = server.url

    def collect(self) -> str:
        done = subprocess.run([sys.executable, "-m", "brain", "collect", "all"], env=self.env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def _home(tmp: Path) -> tuple[Path, Path]:
    home = tmp / "home"
    copy_real_claude(home / ".claude" / "projects")
    write_chrome_history(home / ".config" / "google-chrome" / "Default" / "History", CHROME_ROWS + PAGES)
    code = home / "code" / "spotter"
    (code / ".git").mkdir(parents=True)
    (code / "config").mkdir()
    files = {code / "config" / "dev.exs": ("config :spotter, SpotterWeb.Endpoint,\n  http: [port: 4001],\n"
                                           "  debug_errors: true\n", "2026-02-10T21:30:00"),
             code / "notes.md": ("# Notes\n\nThe dev server failed because port 4000 was taken.\n",
                                 "2026-02-10T22:10:00")}
    for path, (text, when) in files.items():
        path.write_text(text)
        stamp = _epoch(when)
        os.utime(path, (stamp, stamp))
    return home, code


def _epoch(iso: str) -> float:
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _browser_or_skip()
    tmp = tmp_path_factory.mktemp("browser")
    home, code = _home(tmp)
    llm = StandinLLM().start()
    llm.play(Behaviour(pieces=ANSWER))
    embed = EmbeddingsStandIn(dim=64).start()
    isolated = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".state"),
                "XDG_DATA_HOME": str(home / ".share"), "XDG_CACHE_HOME": str(home / ".cache"), "TZ": "UTC",
                "BRAIN_CONFIG": ""}
    server = start_api_server(tmp, {**isolated, "BRAIN_EMBED_PROVIDER": "openai", "OPENAI_API_KEY": embed.expected_key,
                                    "BRAIN_EMBED_BASE_URL": embed.url, "BRAIN_LLM_BASE_URL": llm.base_url,
                                    "BRAIN_LLM_MAX_RETRIES": "0"})
    env = {**server.env, **isolated, "BRAIN_API_URL": server.url, "BRAIN_TOKEN": server.token,
           "BRAIN_COLLECT_FILES_ROOTS": str(home / "code"), "BRAIN_COLLECT_HOST": "devbox"}
    try:
        s = Site(server, llm, home, env)
        s.code = code  # type: ignore[attr-defined]
        s.collect()
        wait_for_vectors(server)
        yield s
    finally:
        stop_api_server(server)
        embed.stop()
        llm.close()


@pytest.fixture(scope="module")
def driver(site: Site) -> Iterator[Any]:
    webdriver = _browser_or_skip()
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--lang=en-US", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield d
    finally:
        d.quit()


# ---------------------------------------------------------------------------------------- helpers


def wait(d: Any, what: Callable[[Any], Any], timeout: float = 30) -> Any:
    """Poll the page until ``what`` is truthy (WebDriverWait: a deadline, no fixed sleep)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout, poll_frequency=0.1).until(what)


def css(d: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return d.find_element(By.CSS_SELECTOR, selector)


def all_css(d: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return d.find_elements(By.CSS_SELECTOR, selector)


def keys() -> Any:
    from selenium.webdriver.common.keys import Keys

    return Keys


def press(d: Any, *sequence: str) -> None:
    """Keys sent to whatever has the focus, as a person types them."""
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(d)
    for k in sequence:
        chain.send_keys(k)
    chain.perform()


def chord(d: Any, modifier: str, key: str) -> None:
    """A key with a modifier held (Shift+Tab, Ctrl+Enter), released after."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(d).key_down(modifier).send_keys(key).key_up(modifier).perform()


def focused(d: Any) -> Any:
    return d.switch_to.active_element


def shot(d: Any, name: str) -> None:
    """One screenshot per page, the whole page tall."""
    height = d.execute_script("return Math.max(document.body.scrollHeight, 700)")
    d.set_window_size(1280, min(int(height) + 40, 2400))
    d.save_screenshot(str(SHOTS / f"{name}.png"))
    d.set_window_size(1280, 1000)


def unlabelled(d: Any) -> list[str]:
    """Form fields a screen reader could not name."""
    return d.execute_script(
        "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
        ".filter(e => !e.labels || e.labels.length === 0).map(e => e.outerHTML)")


def page_ok(d: Any) -> None:
    assert unlabelled(d) == [], d.current_url
    refused = [e["message"] for e in d.get_log("browser") if "Content Security Policy" in e["message"]
               or "Refused to" in e["message"] or ("/assets/" in e["message"] and "Failed to load" in e["message"])]
    assert refused == [], refused


def tab_to(d: Any, matches: Callable[[Any], bool], limit: int = 40, back: bool = False) -> Any:
    """Press Tab (Shift+Tab with ``back``) until the focused element matches (keyboard-only navigation)."""
    for _ in range(limit):
        if back:
            chord(d, keys().SHIFT, keys().TAB)
        else:
            press(d, keys().TAB)
        el = focused(d)
        if matches(el):
            return el
    raise AssertionError("the element was never reached with Tab")


# ---------------------------------------------------------------------------------------- the visit


def test_a_person_uses_the_page_with_the_keyboard(site: Site, driver: Any) -> None:
    d, url = driver, site.url
    K = keys()

    # sign in: a wrong token says so, the right one opens the search page
    d.get(url + "/")
    wait(d, lambda d: "/signin" in d.current_url)
    assert focused(d).get_attribute("id") == "token"  # autofocus: type at once
    press(d, "not-the-token", K.ENTER)
    error = wait(d, lambda d: all_css(d, "#signin-error"))[0]
    assert "not one of this brain-api's tokens" in error.text
    page_ok(d)
    shot(d, "signin")
    press(d, site.server.token, K.ENTER)  # the field keeps the focus after the failed try
    wait(d, lambda d: all_css(d, "#q"))
    assert d.current_url.rstrip("/") == url

    # search with a filter, by keyboard: "/" to the box, Tab to the source, Enter on the button
    press(d, K.TAB)  # away from the box (it has the focus on arrival), then "/" brings it back
    assert focused(d).get_attribute("id") != "q"
    press(d, "/")
    assert focused(d).get_attribute("id") == "q" and css(d, "#q").get_attribute("value") == ""
    press(d, "phx server does not start")
    tab_to(d, lambda e: e.get_attribute("id") == "source")
    press(d, "Cl")  # a select takes the first option starting with what is typed
    assert css(d, "#source").get_attribute("value") == "claude"
    chord(d, K.SHIFT, K.TAB)
    chord(d, K.SHIFT, K.TAB)
    assert focused(d).get_attribute("id") == "q"
    press(d, K.ENTER)
    wait(d, lambda d: "source=claude" in d.current_url and all_css(d, "ol.results li.result"))
    results = all_css(d, "ol.results li.result")
    assert all("icon-claude" in r.get_attribute("innerHTML") for r in results)
    assert all_css(d, "li.result mark") and all_css(d, "li.result time")
    assert f"claude --resume {SID}" in d.page_source
    page_ok(d)
    shot(d, "search")

    # open the session by keyboard
    tab_to(d, lambda e: e.tag_name == "a" and SID in (e.get_attribute("href") or ""))
    press(d, K.ENTER)
    wait(d, lambda d: "/item/claude:" in d.current_url)
    resume = css(d, ".copyline code").text
    assert resume == f"cd {SPOTTER} && claude --resume {SID}"
    copy = tab_to(d, lambda e: "copy" in (e.get_attribute("class") or ""))
    press(d, K.ENTER)
    wait(d, lambda d: copy.text in ("Copied", "Selected: press Ctrl+C"))
    assert "mix phx.server" in css(d, "pre.content").text
    page_ok(d)
    shot(d, "item")

    # ask, by keyboard: Tab to the Ask link, Enter, type (the question has the focus), Ctrl+Enter;
    # the answer streams in; [n] link to the items; the sources are listed
    tab_to(d, lambda e: e.tag_name == "a" and e.text == "Ask", back=True)
    press(d, K.ENTER)
    wait(d, lambda d: d.current_url.endswith("/ask"))
    assert focused(d).get_attribute("id") == "question"
    press(d, "How did I get mix phx.server to start?")
    chord(d, K.CONTROL, K.ENTER)
    wait(d, lambda d: "Answered by standin-model" in css(d, "#ask-status").text, 60)
    answer = css(d, "#ask-answer")
    assert answer.text == "".join(ANSWER)
    cites = all_css(d, "#ask-answer a.cite")
    assert [c.text for c in cites] == ["[1]", "[2]"] and "/item/" in cites[0].get_attribute("href")
    assert len(all_css(d, "#ask-sources li")) >= 2
    request = site.llm.requests[-1]
    assert request["stream"] is True
    page_ok(d)
    shot(d, "ask")

    # the LLM down: the page says so and still shows the sources
    site.llm.play(Behaviour(kind="status", status=500))
    question = css(d, "#question")
    question.clear()
    question.send_keys("phx server port taken")
    chord(d, K.CONTROL, K.ENTER)
    wait(d, lambda d: "The LLM is not answering" in css(d, "#ask-status").text, 60)
    assert all_css(d, "#ask-sources li") and css(d, "#ask-answer").text == ""
    shot(d, "ask-llm-down")
    site.llm.play(Behaviour(pieces=ANSWER))

    # the timeline of the fixture day, then the next day by keyboard
    d.get(f"{url}/timeline?day={DAY}")
    assert css(d, "h1").text == "Tuesday 10 February 2026"
    groups = [g.text for g in all_css(d, "section.group h2")]
    assert any(SPOTTER in g for g in groups) and any("no project" in g for g in groups)
    spotter = next(g for g in all_css(d, "section.group") if SPOTTER in g.text)
    assert spotter.text.count("claude session") == 2 and "21:11" in spotter.text
    assert "Up and Running — Phoenix" in d.page_source and "dev.exs" in d.page_source
    page_ok(d)
    shot(d, "timeline")
    tab_to(d, lambda e: e.get_attribute("rel") == "next")
    press(d, K.ENTER)
    wait(d, lambda d: "day=2026-02-11" in d.current_url)
    assert "Nothing recorded on this day" in css(d, "main").text

    # status: stats, backlog, the GPU VM, the cost chart
    d.get(url + "/status")
    assert all_css(d, "figure.chart svg[role=img] line.tier") and "Embedding backlog" in d.page_source
    page_ok(d)
    shot(d, "status")

    # forget a file from its page, confirm, re-collect after editing it: it stays gone
    notes = site.code / "notes.md"  # type: ignore[attr-defined]
    d.get(url + "/item/" + f"file:devbox:{notes}")
    tab_to(d, lambda e: e.text == "Forget this item…")
    press(d, K.ENTER)
    wait(d, lambda d: "/forget?" in d.current_url)
    assert "1 item match" in css(d, "main").text
    page_ok(d)
    shot(d, "forget")
    tab_to(d, lambda e: e.get_attribute("id") == "confirm-forget")
    press(d, K.ENTER)
    wait(d, lambda d: "Forgot 1 item" in css(d, "main").text)
    notes.write_text("# Notes\n\nThe dev server failed because port 4000 was taken. Edited.\n")
    os.utime(notes, (_epoch("2026-02-11T09:00:00"), _epoch("2026-02-11T09:00:00")))
    assert "skipped forgotten 1" in site.collect()
    d.get(url + "/item/" + f"file:devbox:{notes}")
    assert "Nothing is remembered" in css(d, "main").text
    d.get(url + "/search?q=port+4000+was+taken")
    assert str(notes) not in d.page_source

    # sign out: the session is over, for the page and for the API
    cookie = d.get_cookie("brain_session")["value"]
    tab_to(d, lambda e: e.text == "Sign out", back=True)
    press(d, K.ENTER)
    wait(d, lambda d: "signed_out=1" in d.current_url)
    assert "You are signed out." in css(d, "main").text
    d.get(url + "/status")
    wait(d, lambda d: "/signin" in d.current_url)
    assert requests.get(url + "/api/v1/stats", cookies={"brain_session": cookie}, timeout=10).status_code == 401


# ---------------------------------------------------------------------------------------- the GPU VM starting


@pytest.fixture(scope="module")
def gpu_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, Any]]:
    """brain-api managing a stopped GPU VM (TensorDock stand-in whose VM boots only when the test
    says so; Ollama stand-in that answers once the VM runs), with one start measured before: 75 s."""
    _browser_or_skip()
    from brain.core import store
    from brain.gpu import starts as gpu_starts
    from tests.gpu.standin_ollama import OllamaStandIn
    from tests.standins.tensordock_server import TensorDockStandIn

    tmp = tmp_path_factory.mktemp("browser-gpu")
    embed = EmbeddingsStandIn(dim=64).start()
    with TensorDockStandIn(transition_delay=3600) as td:  # "starting" until set_status
        vm = td.add_instance(status="Stopped", rate_hourly=0.4)
        ollama = OllamaStandIn(lambda: td.instance(vm)["status"] == "running",
                               pieces=["Port 4000 ", "was taken [1]."]).start()
        home = tmp / "home"
        home.mkdir()
        server = start_api_server(tmp, {
            "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "BRAIN_CONFIG": "", "TZ": "UTC",
            "BRAIN_EMBED_PROVIDER": "openai", "OPENAI_API_KEY": embed.expected_key, "BRAIN_EMBED_BASE_URL": embed.url,
            "BRAIN_GPU_INSTANCE_ID": vm, "TENSORDOCK_API_TOKEN": td.token, "TENSORDOCK_BASE_URL": td.url,
            "BRAIN_GPU_TENSORDOCK_RETRIES": "0", "BRAIN_GPU_POLL_INTERVAL": "0.1", "BRAIN_GPU_START_TIMEOUT": "60",
            "BRAIN_LLM_BASE_URL": ollama.url + "/v1", "BRAIN_LLM_MAX_RETRIES": "0"})
        try:
            note = {"id": "note:port", "source": "note", "title": "Why the dev server failed",
                    "content": "The phoenix dev server failed because port 4000 was taken."}
            r = requests.post(server.url + "/api/v1/items", json={"items": [note]}, headers=server.headers, timeout=60)
            assert r.status_code == 200, r.text
            conn = store.connect(server.db_path)
            try:
                gpu_starts.record(conn, 75)
            finally:
                conn.close()
            yield server, td, vm
        finally:
            stop_api_server(server)
            ollama.close()
            embed.stop()


def test_the_ask_page_says_the_gpu_vm_is_starting_and_how_long_that_usually_takes(gpu_site, driver) -> None:
    server, td, vm = gpu_site
    d, K = driver, keys()
    d.get(server.url + "/signin")
    wait(d, lambda d: all_css(d, "#token"))
    press(d, server.token, K.ENTER)
    wait(d, lambda d: all_css(d, "#q"))
    d.get(server.url + "/ask")
    # every text the status line shows, kept as it changes (it moves on once the VM is up)
    d.execute_script("window.seen = []; new MutationObserver(() => window.seen.push("
                     "document.getElementById('ask-status').textContent)).observe("
                     "document.getElementById('ask-status'), {childList: true, characterData: true, subtree: true});")
    css(d, "#question").send_keys("why did the phoenix dev server fail?")
    chord(d, K.CONTROL, K.ENTER)
    wait(d, lambda d: "The GPU VM is starting" in css(d, "#ask-status").text, 30)
    assert "this usually takes 75 seconds" in css(d, "#ask-status").text
    page_ok(d)
    shot(d, "ask-gpu-starting")
    td.set_status(vm, "running")  # the VM has booted
    wait(d, lambda d: "Answered by" in css(d, "#ask-status").text, 60)
    assert css(d, "#ask-answer").text == "Port 4000 was taken [1]."
    seen = d.execute_script("return window.seen")
    assert any(s.startswith("The GPU VM is starting — this usually takes 75 seconds") for s in seen), seen
    assert len(td.calls("POST", r"/start$")) == 1
