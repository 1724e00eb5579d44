"""The Claude Code hooks, run exactly as Claude Code runs them.

``brain hooks install`` writes the hooks into a fake home's ``~/.claude/settings.json``; each test
then takes the hook's ``command`` from that file and runs it through the shell with the hook input
as JSON on stdin and Claude Code's environment (``CLAUDE_PROJECT_DIR``), checking the exit code,
stdout and time, against a real brain-api (gunicorn) on loopback. Transcripts are the real ones of
``tests/fixtures/claude-projects``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from brain.client.http import ApiClient
from brain.collect import hooks, session_context
from brain.collect.outbox import RunLock
from brain.shared import config as config_mod
from brain.shared import hook_deadline
from tests.conftest import ApiServer, closed_port_url, start_api_server, stop_api_server

from .fakehome import copy_real_claude

BRAIN = str(Path(sys.executable).parent / "brain")
PROJECT = "/home/marco/projects/spotter"
FOLDER = "-home-marco-projects-spotter"
FIRST = "55604662-cf2a-4331-851a-ec234028f8ca"  # "mix phx.server doesnt seem to start", 21:11
LAST = "d6e0bada-1959-4eec-a9d2-0bfade768d8f"  # "start phoenix in background", 22:57, interrupted at the end
CODEX = "019a1b2c-3d4e-7f60-8a9b-0c1d2e3f4a5b"
SECRET = "sk-" + "Zq7RtX2vLp9Wm4Ns8Kd3Hf6Jb1Gc5Ya0Ue"
USER_SETTINGS: dict[str, Any] = {
    "permissions": {"allow": ["Bash(git:*)"]},
    "hooks": {
        "SessionStart": [{"matcher": "startup", "hooks": [{"type": "command", "command": "bd prime"}]}],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "~/bin/guard.sh", "timeout": 5}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
    },
    "env": {"BASH_DEFAULT_TIMEOUT_MS": "300000"},
}


# ---------------------------------------------------------------------- helpers


def run(args: list[str], env: dict[str, str] | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BRAIN, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=60, **kw)


def hook_command(settings: Path, event: str) -> str:
    """The brain's command for ``event`` as Claude Code will read it from the settings file."""
    found = hooks.installed(json.loads(settings.read_text()))[event]
    assert len(found) == 1, found
    return found[0]


def run_hook(command: str, payload: dict[str, Any], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str],
                                                                                  float]:
    """Run a hook command as Claude Code does: through the shell, the input on stdin; (result, seconds)."""
    started = time.monotonic()
    done = subprocess.run(command, shell=True, input=json.dumps(payload), capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=30, cwd=os.environ["HOME"])
    return done, time.monotonic() - started


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something truthy (never a bare sleep for a result)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; hook log:\n{hook_log()[-3000:]}")
        time.sleep(0.1)


def hook_log() -> str:
    path = config_mod.state_dir() / "hooks.log"
    return path.read_text() if path.exists() else ""


def start_payload(home: Path, session_id: str = "new-session") -> dict[str, Any]:
    return {"session_id": session_id, "transcript_path": str(home / ".claude" / "projects" / FOLDER /
                                                             f"{session_id}.jsonl"),
            "cwd": PROJECT, "permission_mode": "default", "hook_event_name": "SessionStart", "source": "startup",
            "model": "claude-opus-4-6"}


def end_payload(home: Path, session_id: str, event: str = "SessionEnd") -> dict[str, Any]:
    payload = {"session_id": session_id, "transcript_path": str(home / ".claude" / "projects" / FOLDER /
                                                                f"{session_id}.jsonl"),
               "cwd": PROJECT, "permission_mode": "default", "hook_event_name": event}
    payload.update({"reason": "prompt_input_exit"} if event == "SessionEnd" else {"stop_hook_active": False})
    return payload


@pytest.fixture
def home() -> Path:
    return Path(os.environ["HOME"])


@pytest.fixture
def settings(home: Path) -> Path:
    """The user settings with the brain's hooks installed next to the user's own."""
    path = home / ".claude" / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(USER_SETTINGS, indent=2))
    assert run(["hooks", "install"]).returncode == 0
    return path


@pytest.fixture(scope="module")
def brain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A real brain-api (gunicorn), embedding through the OpenAI stand-in, isolated from any config."""
    from tests.standins.openai_embeddings import EmbeddingsStandIn

    tmp = tmp_path_factory.mktemp("hooks-api")
    embed = EmbeddingsStandIn(dim=64).start()
    env = {"HOME": str(tmp / "home"), "XDG_CONFIG_HOME": str(tmp / "home" / ".config"),
           "XDG_STATE_HOME": str(tmp / "home" / ".state"), "XDG_DATA_HOME": str(tmp / "home" / ".share"),
           "BRAIN_CONFIG": "", "BRAIN_EMBED_PROVIDER": "openai", "OPENAI_API_KEY": embed.expected_key,
           "BRAIN_EMBED_BASE_URL": embed.url}
    server = start_api_server(tmp, env)
    yield server
    stop_api_server(server)
    embed.stop()


def api_env(server: ApiServer, **extra: str) -> dict[str, str]:
    return {"BRAIN_API_URL": server.url, "BRAIN_TOKEN": server.token, "CLAUDE_PROJECT_DIR": PROJECT, **extra}


# ---------------------------------------------------------------------- install / uninstall / status


def test_install_merges_with_the_users_hooks_and_twice_is_once(settings: Path) -> None:
    data = json.loads(settings.read_text())
    for key in ("permissions", "env"):
        assert data[key] == USER_SETTINGS[key]
    for event, groups in USER_SETTINGS["hooks"].items():  # the user's groups first, untouched, in order
        assert data["hooks"][event][:len(groups)] == groups
    assert data["hooks"]["PreToolUse"] == USER_SETTINGS["hooks"]["PreToolUse"]
    start = data["hooks"]["SessionStart"][-1]
    assert start == {"matcher": "startup|clear|compact", "hooks": [
        {"type": "command", "command": f"{BRAIN} hooks session-start", "timeout": 10}]}
    for event in ("Stop", "SessionEnd"):
        assert data["hooks"][event][-1] == {"matcher": "", "hooks": [
            {"type": "command", "command": f"{BRAIN} hooks session-end", "timeout": 10}]}

    before = settings.read_bytes()
    again = run(["hooks", "install"])
    assert again.returncode == 0 and "already installed, nothing changed" in again.stdout
    assert settings.read_bytes() == before

    status = run(["hooks", "status"])
    assert status.returncode == 0
    assert f"SessionStart: {BRAIN} hooks session-start" in status.stdout
    assert f"SessionEnd: {BRAIN} hooks session-end" in status.stdout

    gone = run(["hooks", "uninstall"])
    assert gone.returncode == 0 and "removed SessionStart" in gone.stdout
    assert json.loads(settings.read_text()) == USER_SETTINGS  # only ours removed, and the events only we added
    assert "SessionStart: not installed" in run(["hooks", "status"]).stdout


def test_a_moved_install_is_updated_in_place_and_duplicates_removed(home: Path) -> None:
    old = "/old/venv/bin/brain --config /old/brain.toml hooks session-start"
    data = {"hooks": {"SessionStart": [
        {"matcher": "", "hooks": [{"type": "command", "command": "bd prime"}, {"type": "command", "command": old}]},
        {"matcher": "startup", "hooks": [{"type": "command", "command": "python3 -m brain hooks session-start"}]},
    ]}}
    changes = hooks.merge_install(data)
    assert changes[:2] == ["updated SessionStart", "removed a duplicate SessionStart"]
    assert data["hooks"]["SessionStart"] == [{"matcher": "", "hooks": [
        {"type": "command", "command": "bd prime"},
        {"type": "command", "command": f"{BRAIN} hooks session-start", "timeout": 10}]}]
    assert hooks.merge_install(data) == []
    # the user's own empty group equal to the one uninstall empties stays
    data["hooks"]["Stop"].insert(0, {"matcher": "", "hooks": []})
    assert hooks.merge_uninstall(data) == ["removed SessionStart", "removed Stop", "removed SessionEnd"]
    assert data == {"hooks": {"SessionStart": [{"matcher": "", "hooks": [{"type": "command", "command": "bd prime"}]}],
                              "Stop": [{"matcher": "", "hooks": []}]}}
    # a command that merely mentions the words is the user's, never ours
    assert not hooks.is_ours({"type": "command", "command": "echo brain hooks session-start"}, "session-start")
    assert not hooks.is_ours({"type": "command", "command": "mybrain hooks session-end"}, "session-end")


def test_claude_config_dir_and_project_settings(home: Path, tmp_path: Path) -> None:
    dirs = [tmp_path / "work-claude", tmp_path / "personal-claude"]
    done = run(["hooks", "install"], env={"CLAUDE_CONFIG_DIR": f"{dirs[0]}, {dirs[1]}"})
    assert done.returncode == 0, done.stderr
    for d in dirs:
        assert hooks.installed(json.loads((d / "settings.json").read_text())).keys() == {
            "SessionStart", "Stop", "SessionEnd"}
        assert (d / "settings.json").stat().st_mode & 0o777 == 0o600
    assert not (home / ".claude" / "settings.json").exists()

    project = tmp_path / "app"
    (project / ".claude").mkdir(parents=True)
    (project / ".claude" / "settings.json").write_text('{"model": "opus"}')
    assert run(["hooks", "install", "--project", str(project)]).returncode == 0
    data = json.loads((project / ".claude" / "settings.json").read_text())
    assert data["model"] == "opus" and set(data["hooks"]) == {"SessionStart", "Stop", "SessionEnd"}
    assert run(["hooks", "uninstall", "--project", str(project)]).returncode == 0
    assert json.loads((project / ".claude" / "settings.json").read_text()) == {"model": "opus"}


def test_settings_it_cannot_read_are_left_alone(home: Path) -> None:
    path = home / ".claude" / "settings.json"
    path.parent.mkdir(parents=True)
    for text in ('{"hooks": {"Stop": [}', '{"hooks": {"Stop": {"command": "x"}}}'):
        path.write_text(text)
        done = run(["hooks", "install"])
        assert done.returncode == 1 and "nothing was changed" in done.stderr
        assert path.read_text() == text


# ---------------------------------------------------------------------- SessionStart


def blackhole() -> tuple[socket.socket, str]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s, f"http://127.0.0.1:{s.getsockname()[1]}"


BOUND = 2.0  # the bound: the context within 2 s of Claude Code starting the hook, or nothing


def test_session_start_says_nothing_when_brain_api_is_unreachable(settings: Path, home: Path) -> None:
    command = hook_command(settings, "SessionStart")
    refused, _ = run_hook(command, start_payload(home), {"BRAIN_API_URL": closed_port_url(),
                                                         "BRAIN_TOKEN": "t" * 30, "CLAUDE_PROJECT_DIR": PROJECT})
    assert (refused.returncode, refused.stdout, refused.stderr) == (0, "", "")
    sock, url = blackhole()
    try:  # the default budget: a brain-api that accepts and never answers costs the session < 2 s
        silent, seconds = run_hook(command, start_payload(home), {"BRAIN_API_URL": url, "BRAIN_TOKEN": "t" * 30,
                                                                  "CLAUDE_PROJECT_DIR": PROJECT})
    finally:
        sock.close()
    assert (silent.returncode, silent.stdout, silent.stderr) == (0, "", "")
    assert seconds < BOUND, seconds
    log = hook_log()
    # on a loaded machine Python's start-up alone can pass the deadline: then it says so instead
    assert ("nothing printed, no session list from brain-api: claude sessions: brain-api unreachable" in log
            or "nothing printed: the process took" in log or "ran out while Python started" in log), log
    assert log.count("nothing printed") == 2, log  # one line each


def test_session_start_counts_python_start_up_in_its_budget(brain: ApiServer, settings: Path, home: Path) -> None:
    """A budget that Python's start-up has used up before the command runs (0.3 s, all of it the
    margin kept for printing): nothing is asked, nothing printed, exit 0 at once, even with a
    brain-api that would answer."""
    post(brain, other_items())
    done, seconds = run_hook(hook_command(settings, "SessionStart"), start_payload(home),
                             api_env(brain, BRAIN_HOOKS_START_BUDGET="0.3"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    log = hook_log()
    assert log.count("nothing printed") == 1, log
    assert ("nothing printed: the process took" in log and "less 0.3 s to print" in log  # found in the command
            or "nothing printed: 0.3 s from the hook's start ran out while Python started" in log), log  # or before
    assert seconds < BOUND, seconds


def test_the_deadline_ends_a_hook_stuck_anywhere(home: Path) -> None:
    """ExitAt ends the process with exit 0 at its time, whatever the main thread is waiting for."""
    code = ("import threading, time\n"
            "from brain.shared import hook_deadline as d\n"
            "d.ExitAt(d.process_started() + 0.5, 'session-start', 'stuck, ended by the deadline')\n"
            "threading.Event().wait()  # a call that never returns\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert time.monotonic() - started < BOUND
    assert "session-start: stuck, ended by the deadline" in hook_log()


def test_process_started_is_before_the_imports() -> None:
    """The fork time from /proc: earlier than now by the child's own start-up, and exec keeps it
    (``sh -c 'exec ...'`` reports the shell's start). A process older than a minute (pytest's)
    reads as just started: a clock it cannot trust."""
    code = "import time; from brain.shared import hook_deadline as d; print(time.monotonic() - d.process_started())"
    child = subprocess.run(["sh", "-c", f"exec {sys.executable} -c '{code}'"], capture_output=True, text=True,
                           check=True, timeout=30)
    assert 0.0 < float(child.stdout) < 30.0 if Path("/proc/self/stat").exists() else float(child.stdout) == 0.0


def test_the_early_bound_agrees_with_the_settings(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """What the bound uses before the settings are read: their default and their state folder."""
    from brain.shared.settings import HooksSettings

    assert HooksSettings.model_fields["start_budget"].default == hook_deadline.DEFAULT_BUDGET
    assert Path(hook_deadline.state_dir()) == config_mod.state_dir()
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    assert Path(hook_deadline.state_dir()) == config_mod.state_dir() == home / ".local" / "state" / "brain"
    assert hook_deadline.arm(["brain", "hooks", "session-end"]) is None  # only the SessionStart hook is bounded


def test_session_start_never_waits_for_a_stdin_left_open(settings: Path) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(hook_command(settings, "SessionStart"), shell=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "BRAIN_API_URL": closed_port_url(), "BRAIN_HOOKS_START_BUDGET": "1.0"})
    try:
        proc.stdin.write('{"session_id": "s1", "hook_event_name": "SessionStart"')  # never finished nor closed
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0 and proc.stdout.read() == ""
    finally:
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
    assert time.monotonic() - started < 5  # the 1 s budget, and start-up on a busy machine


def test_session_start_without_config_or_input_still_exits_0(settings: Path) -> None:
    command = hook_command(settings, "SessionStart")
    done = subprocess.run(command, shell=True, input="not json", capture_output=True, text=True, timeout=30,
                          env={**os.environ, "BRAIN_HOOKS_CONTEXT_TOKENS": "lots", "BRAIN_HOOKS_START_BUDGET": "10"})
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert "failed: ClickException: invalid configuration" in hook_log()


# ---------------------------------------------------------------------- the whole loop, as Claude Code runs it


def post(server: ApiServer, items: list[dict[str, Any]]) -> None:
    ApiClient(server.url, server.token).post_items(items)


def other_items() -> list[dict[str, Any]]:
    """A Codex session and a note in the project (the note holds a secret), and a note elsewhere."""
    return [
        {"id": f"agent:codex:{CODEX}", "source": "agent", "title": "phoenix live reload breaks xterm scroll",
         "uri": f"codex://session/{CODEX}", "project": PROJECT, "created_at": "2026-02-11T08:00:00Z",
         "updated_at": "2026-02-11T09:00:00Z", "content": "user: why does live reload break xterm scrolling\n"
                                                          "assistant: the socket reconnect re-renders the terminal",
         "meta": {"agent": "codex", "resume": f"codex resume {CODEX}", "session_id": CODEX}},
        {"id": "note:spotter-deploy", "source": "note", "title": f"spotter phoenix deploy key {SECRET}",
         "project": PROJECT, "updated_at": "2026-01-05T10:00:00Z",
         "content": f"spotter phoenix deploy: the OpenAI key is {SECRET} and mix release builds it."},
        {"id": "note:elsewhere", "source": "note", "title": "spotter phoenix in another checkout",
         "project": "/home/marco/projects/other", "updated_at": "2026-02-12T10:00:00Z",
         "content": "spotter phoenix elsewhere"},
    ]


def search_ids(server: ApiServer, query: str, **kw: Any) -> set[str]:
    return {r["id"] for r in ApiClient(server.url, server.token).search(query, **kw)["results"]}


def test_session_end_then_session_start(brain: ApiServer, settings: Path, home: Path) -> None:
    copy_real_claude(home / ".claude" / "projects")
    env = api_env(brain)
    end = hook_command(settings, "SessionEnd")
    stop = hook_command(settings, "Stop")

    # a cron `brain collect` holds the lock: the hook still returns at once, its child waits its turn
    with RunLock(config_mod.state_dir() / "collect.lock"):
        done, seconds = run_hook(end, end_payload(home, FIRST), env)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        again, _ = run_hook(stop, end_payload(home, FIRST, "Stop"), env)
        assert (again.returncode, again.stdout) == (0, "")
        wait_until("the second collection of the session stands down",
                   lambda: "skipped: a collection of this session is already waiting its turn" in hook_log())
        assert f"claude:{FIRST}" not in search_ids(brain, "mix phx.server", source="claude")
    wait_until("the session is searchable", lambda: f"claude:{FIRST}" in search_ids(
        brain, "mix phx.server doesnt seem to start", source="claude"))
    assert "claude (one session): 1 scanned, 1 queued" in hook_log()

    done, _ = run_hook(stop, end_payload(home, LAST, "Stop"), env)
    assert done.returncode == 0
    wait_until("the last session is searchable", lambda: f"claude:{LAST}" in search_ids(
        brain, "start phoenix in background", source="claude"))
    item = ApiClient(brain.url, brain.token).get_item(f"claude:{LAST}")
    assert item["project"] == PROJECT and item["meta"]["resume"] == f"claude --resume {LAST}"
    # collected as cron collects: the next full run finds both sessions unchanged
    dry = run(["collect", "claude", "--dry-run"], env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"claude:{FIRST}" not in dry.stdout and f"claude:{LAST}" not in dry.stdout

    post(brain, other_items())
    start = hook_command(settings, "SessionStart")
    env = {**env, "BRAIN_HOOKS_START_BUDGET": "10"}  # what it says; the bound is checked below, on its own
    done, _ = run_hook(start, start_payload(home), env)
    assert done.returncode == 0 and done.stderr == ""
    out = json.loads(done.stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "SessionStart"
    text = out["additionalContext"]
    lines = text.splitlines()
    sessions = lines[lines.index("Recent sessions in this project (newest first):") + 1:][:3]
    assert "Codex CLI" in sessions[0] and f"resume: cd {PROJECT} && codex resume {CODEX}" in sessions[0]
    assert "Claude Code · start phoenix in background" in sessions[1]
    assert sessions[1].endswith(f"resume: cd {PROJECT} && claude --resume {LAST}")
    assert sessions[2].endswith(f"resume: cd {PROJECT} && claude --resume {FIRST}")
    assert ('  last prompt: "scrolling back in xterm.js still does not work (maybe because outer web catches '
            'it)? websearch xterm.js tmux interactions"') in lines
    assert "  (the user interrupted it before any answer)" in lines
    assert any(line.startswith("- [note] spotter phoenix deploy key [REDACTED:openai] (id note:spotter-deploy): ")
               for line in lines), text
    assert SECRET not in text and "another checkout" not in text
    assert session_context.token_estimate(text) <= 1000

    # the default budget, as installed: the same context in under 2 s from the hook's start, or nothing
    timed, seconds = run_hook(start, start_payload(home), api_env(brain))
    assert (timed.returncode, timed.stderr) == (0, "") and seconds < BOUND, seconds
    if timed.stdout:
        assert json.loads(timed.stdout)["hookSpecificOutput"]["additionalContext"] == text
    else:  # this machine's start-up (or brain-api) took the budget: the log says which
        assert "nothing printed" in hook_log()

    small, _ = run_hook(start, start_payload(home), {**env, "BRAIN_HOOKS_CONTEXT_TOKENS": "100"})
    brief = json.loads(small.stdout)["hookSpecificOutput"]["additionalContext"]
    assert len(brief) <= 400 and "Codex CLI" in brief and "Related memories" not in brief

    resumed, _ = run_hook(start, {**start_payload(home, LAST), "source": "resume"}, env)
    listed = json.loads(resumed.stdout)["hookSpecificOutput"]["additionalContext"]
    assert f"claude --resume {LAST}" not in listed  # the session being resumed is not listed as another one
    assert "sessions, " in hook_log() and " tokens in " in hook_log()

    # a session the user told the brain to forget is not sent again when it goes on
    ApiClient(brain.url, brain.token).forget(id=f"claude:{FIRST}")
    transcript = home / ".claude" / "projects" / FOLDER / f"{FIRST}.jsonl"
    with open(transcript, "a") as fh:
        fh.write(json.dumps({"type": "user", "sessionId": FIRST, "cwd": PROJECT, "uuid": "late-1",
                             "timestamp": "2026-02-11T08:00:00.000Z",
                             "message": {"role": "user", "content": "one more thing about phx.server"}}) + "\n")
    done, _ = run_hook(stop, end_payload(home, FIRST, "Stop"), env)
    assert done.returncode == 0
    wait_until("the forgotten session is skipped", lambda: "1 scanned, 0 queued, 0 unchanged, skipped forgotten 1"
               in hook_log())
    assert f"claude:{FIRST}" not in search_ids(brain, "mix phx.server doesnt seem to start", source="claude")


def test_session_end_without_a_transcript_does_nothing(settings: Path, home: Path) -> None:
    done, seconds = run_hook(hook_command(settings, "SessionEnd"),
                             {"session_id": "x", "hook_event_name": "SessionEnd", "reason": "clear"}, {})
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert "SessionEnd (clear): no transcript_path in the hook input" in hook_log()


def test_compose_keeps_whole_lines_within_the_budget() -> None:
    sessions = [{"id": f"claude:s{n}", "source": "claude", "title": f"session {n}", "project": PROJECT,
                 "updated_at": f"2026-02-1{n}T10:00:00.000Z", "meta": {"session_id": f"s{n}"}} for n in range(5)]
    parts = session_context.Parts(PROJECT, sessions=sessions, memories=[])
    full = session_context.compose(parts, 1000)
    assert len(full.splitlines()) == 7
    cut = session_context.compose(parts, 90)
    assert len(cut) <= 360 and full.startswith(cut) and len(cut.splitlines()) >= 3
    assert session_context.compose(parts, 30) == ""  # a heading alone is not worth a token
    assert session_context.compose(session_context.Parts(PROJECT, sessions=[]), 1000) == ""


def test_last_exchange_skips_interruptions_and_slash_commands() -> None:
    lines = ["user: fix the login test", "assistant: done, the fixture was stale", "user: /clear",
             "user: [Request interrupted by user]", "user: /home/me/app is it the right path?", "tool Bash: ls"]
    assert session_context.last_exchange(lines) == ("/home/me/app is it the right path?", "", False)
    assert session_context.last_exchange(lines[:3]) == ("fix the login test", "done, the fixture was stale", False)
    assert session_context.last_exchange(["user: /mcp"]) is None


@pytest.mark.parametrize("cmd", ["install", "uninstall", "status", "session-start", "session-end", "collect"])
def test_every_hooks_command_has_help_with_an_example(runner, cmd: str) -> None:
    from brain.cli.main import main

    r = runner.invoke(main, ["hooks", cmd, "--help"])
    assert r.exit_code == 0 and "Example" in r.output


def test_brain_init_documents_the_hooks_settings(runner, home: Path) -> None:
    from brain.cli.main import main

    assert runner.invoke(main, ["init"]).exit_code == 0
    text = (home / ".config" / "brain" / "config.toml").read_text()
    assert "[hooks]" in text and "# context_tokens = 1000" in text and "(env BRAIN_HOOKS_START_BUDGET)" in text
    assert config_mod.load().hooks.start_budget == 1.8
