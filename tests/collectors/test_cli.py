"""``brain collect`` and ``brain init`` through the real CLI, against the brain-api stand-in."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from brain.cli.main import main
from brain.collect.archive import Archive
from brain.collect.outbox import RunLock, State
from brain.shared import config as config_mod

from .standin_api import TOKEN, BrainApiStandIn


def env(standin: BrainApiStandIn | None = None, url: str = "", token: str = TOKEN) -> dict[str, str]:
    return {"BRAIN_API_URL": standin.url if standin else url, "BRAIN_TOKEN": token, "BRAIN_CLIENT_MAX_RETRIES": "1"}


def pending() -> dict[str, int]:
    st = State(config_mod.state_dir() / "collect.db")
    try:
        return st.pending()
    finally:
        st.close()


def test_dry_run_prints_and_sends_nothing(projects, runner: CliRunner, standin: BrainApiStandIn) -> None:
    result = runner.invoke(main, ["collect", "claude", "--dry-run"], env=env(standin))
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("upsert ")]
    assert len(lines) == 6
    short = next(ln for ln in lines if "55604662" in ln)
    assert '"mix phx.server doesnt seem to start"  831 bytes  redacted: nothing' in short
    assert any("redacted: openai x1" in ln for ln in lines)
    assert "dry run: nothing was sent" in result.stdout
    assert standin.requests == []
    assert pending() == {"upsert": 0, "delete": 0, "failed": 0}
    assert not (config_mod.data_dir() / "claude-archive").exists()
    # the real run afterwards still has everything to do
    result = runner.invoke(main, ["collect", "claude"], env=env(standin))
    assert result.exit_code == 0, result.output
    assert "sent: 6 items in 1 batch" in result.stdout and len(standin.items) == 6


def test_api_down_fails_with_one_clear_line_and_keeps_items(projects, runner, standin) -> None:
    result = runner.invoke(main, ["collect", "claude"], env=env(url="http://127.0.0.1:9"))
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("brain collect failed: brain-api unreachable at http://127.0.0.1:9/api/v1/items")
    assert last.endswith("6 items kept in the outbox for the next run")
    assert pending()["upsert"] == 6
    # the next run (API back) delivers what was kept, though nothing changed locally
    result = runner.invoke(main, ["collect", "claude"], env=env(standin))
    assert result.exit_code == 0, result.output
    assert "claude: 0 scanned, 0 queued, 6 unchanged" in result.stdout
    assert len(standin.items) == 6 and pending()["upsert"] == 0


def test_rejected_items_fail_the_run_and_show_in_status(projects, runner, standin) -> None:
    standin.script = ["400:2"]
    result = runner.invoke(main, ["collect", "claude"], env=env(standin))
    assert result.exit_code == 1
    assert "error: item rejected: claude:" in result.stderr
    assert "brain-api rejected 1 item" in result.stderr
    status = runner.invoke(main, ["collect", "status"], env=env(standin))
    assert "0 upserts and 0 deletes pending, 1 rejected" in status.stdout
    assert "scripted failure 400" in status.stdout
    assert runner.invoke(main, ["collect", "retry"], env=env(standin)).stdout.startswith("1 rejected items")
    assert runner.invoke(main, ["collect", "claude"], env=env(standin)).exit_code == 0
    assert len(standin.items) == 6


def test_missing_token_keeps_items_and_says_how_to_fix(projects, runner, standin) -> None:
    result = runner.invoke(main, ["collect", "claude", "--quiet"], env=env(standin, token=""))
    assert result.exit_code == 1 and result.stdout == ""
    assert "client.token is not set (BRAIN_TOKEN" in result.stderr
    assert pending()["upsert"] == 6


def test_wrong_token_aborts_without_losing_anything(projects, runner, standin) -> None:
    result = runner.invoke(main, ["collect", "claude"], env=env(standin, token="nope"))
    assert result.exit_code == 1 and "401" in result.stderr and "check client.token" in result.stderr
    assert pending()["upsert"] == 6


def test_a_second_run_while_one_holds_the_lock_exits_75(projects, runner, standin) -> None:
    with RunLock(config_mod.state_dir() / "collect.lock"):
        result = runner.invoke(main, ["collect", "all"], env=env(standin))
    assert result.exit_code == 75
    assert "another brain collect run holds" in result.stderr
    assert standin.requests == []


def test_a_run_that_finds_a_hooks_collection_skips_quietly(projects, runner, standin) -> None:
    """A Claude Code hook's collection of one session holds the lock past collect.lock_wait: the
    cron run is skipped with exit 0 and one line (the hook sends what it collected)."""
    with RunLock(config_mod.state_dir() / "collect.lock", holder="hook"):
        result = runner.invoke(main, ["collect", "all", "-q"], env={**env(standin), "BRAIN_COLLECT_LOCK_WAIT": "0"})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"brain collect: skipped, another brain collect run holds {config_mod.state_dir()}")
    assert "a Claude Code hook's collection of one session) for longer than collect.lock_wait (0 s)" in result.stdout
    assert result.stderr == "" and standin.requests == []


def test_a_run_waits_for_a_hooks_collection_then_collects(projects, standin) -> None:
    """As cron runs it (a process of its own): it says it waits, and runs once the hook's lock is
    released (the holder exits when the test closes its stdin: no sleeping on either side)."""
    lock = config_mod.state_dir() / "collect.lock"
    code = ("import sys; from pathlib import Path; from brain.collect.outbox import RunLock\n"
            "RunLock(Path(sys.argv[1]), holder='hook').__enter__(); print('locked', flush=True); sys.stdin.read()")
    with subprocess.Popen([sys.executable, "-c", code, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        run = subprocess.Popen([str(Path(sys.executable).parent / "brain"), "collect", "claude"], text=True,
                               env={**os.environ, **env(standin), "BRAIN_COLLECT_LOCK_WAIT": "120"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert run.stdout is not None
        waiting = run.stdout.readline()
        holder.stdin.close()  # the hook's collection ends
    assert waiting.startswith("waiting up to 120 s: another brain collect run holds"), waiting
    assert f"(pid {holder.pid}, a Claude Code hook's collection of one session)" in waiting
    with run:
        out, errs = run.communicate(timeout=300)
    assert run.returncode == 0, errs
    assert "sent: 6 items in 1 batch" in out and len(standin.items) == 6


def test_invalid_since_is_a_usage_error(runner) -> None:
    result = runner.invoke(main, ["collect", "files", "--since", "last tuesday"])
    assert result.exit_code == 2 and "--since" in result.output


def test_collect_all_runs_files_only_when_roots_are_configured(projects, home, runner, standin) -> None:
    (home / "code").mkdir()
    (home / "code" / "a.py").write_text("print(1)\n")
    result = runner.invoke(main, ["collect", "all"], env=env(standin))
    assert result.exit_code == 0, result.output
    assert "files:" not in result.stdout and "browser: 0 scanned" in result.stdout
    assert "warning: browser: no Chrome-family or Firefox profile found" in result.stderr
    result = runner.invoke(main, ["collect", "all"], env={**env(standin), "BRAIN_COLLECT_FILES_ROOTS": str(home / "code")})
    assert result.exit_code == 0, result.output
    assert "files: 1 scanned, 1 queued" in result.stdout
    assert sum(1 for i in standin.items if i.startswith("file:")) == 1


def test_claude_from_archive_rebuilds_after_the_originals_are_gone(projects, runner, standin) -> None:
    assert runner.invoke(main, ["collect", "claude"], env=env(standin)).exit_code == 0
    first = dict(standin.items)
    for f in list(projects.rglob("*.jsonl")):
        f.unlink()
    standin.items.clear()
    result = runner.invoke(main, ["collect", "claude", "--from-archive"], env=env(standin))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("claude (archive): 6 scanned, 0 queued, 6 unchanged")  # all known: not resent
    # a brain wiped meanwhile: retry is not needed, a fresh state resends everything from the archive
    os.remove(config_mod.state_dir() / "collect.db")
    result = runner.invoke(main, ["collect", "claude", "--from-archive"], env=env(standin))
    assert result.exit_code == 0, result.output
    assert standin.items == first


def test_init_writes_a_commented_config_that_loads(runner, home) -> None:
    result = runner.invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    path = home / ".config" / "brain" / "config.toml"
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "[client]" in text and "[collect]" in text
    assert "# api_url = \"http://127.0.0.1:8000\"" in text and "(env BRAIN_TOKEN)" in text
    assert "# files_roots = []" in text
    cfg = config_mod.load()
    assert cfg.path == path and cfg.collect.files_max_bytes == 1_048_576
    # uncommenting a value works as documented
    path.write_text(text.replace('# files_roots = []', 'files_roots = ["~/projects"]'))
    assert config_mod.load().collect.files_roots == ["~/projects"]
    again = runner.invoke(main, ["init"])
    assert again.exit_code == 1 and "exists; use --force" in again.output
    assert runner.invoke(main, ["init", "--force"]).exit_code == 0
    assert stat.S_IMODE(config_mod.state_dir().stat().st_mode) == 0o700


def test_a_failing_collector_does_not_stop_the_others(projects, home, runner, standin) -> None:
    result = runner.invoke(main, ["collect", "all"], env={**env(standin), "BRAIN_COLLECT_FILES_ROOTS": str(home / "nope")})
    assert result.exit_code == 1
    assert f"error: files: root {home / 'nope'} is not a folder; nothing deleted for it" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("brain collect failed: files: root")
    assert len(standin.items) == 6  # the Claude sessions were still delivered


def test_claude_from_archive_reads_only_claude_transcripts(projects, home, runner, standin) -> None:
    """The other agents' files share the archive, each agent under agents/<agent>/ (readable, and
    never a Claude root's name): rebuilding Claude sessions from it reads only Claude's."""
    from .agent_homes import AIDER_HISTORY, write_codex, write_cursor, write_gemini, write_opencode_db

    write_codex(home)
    write_gemini(home)
    write_opencode_db(home)
    write_cursor(home)
    (home / "code" / "tool").mkdir(parents=True)
    (home / "code" / "tool" / ".aider.chat.history.md").write_text(AIDER_HISTORY)
    result = runner.invoke(main, ["collect", "all"], env={**env(standin), "BRAIN_COLLECT_AIDER_ROOTS": str(home / "code")})
    assert result.exit_code == 0, result.output
    claude_items = {k: v for k, v in standin.items.items() if k.startswith("claude:")}
    assert len(claude_items) == 6 and len(standin.items) > 6
    keys = {key for key, _ in Archive(config_mod.data_dir() / "claude-archive").files()}
    agents = {tuple(k.split("/")[1:3]) for k in keys if k.startswith("agents/")}
    assert {(a, re.sub(r"-[0-9a-f]{10}$", "", r)) for a, r in agents} == {
        ("codex", "codex-sessions"), ("gemini", "gemini-tmp"), ("opencode", "share-opencode"),
        ("cursor", "Cursor-User"), ("aider", "code-tool")}, keys
    assert len([k for k in keys if not k.startswith("agents/")]) == 1  # the one Claude projects root
    os.remove(config_mod.state_dir() / "collect.db")
    standin.items.clear()
    result = runner.invoke(main, ["collect", "claude", "--from-archive"], env=env(standin))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("claude (archive): 6 scanned, 6 queued"), result.stdout
    assert standin.items == claude_items
