"""Behaviour of the collectors role for the user `dev`: cron runs `brain collect all` through a
runner that locks, logs and rotates the log; the config carries the URL and token, owner-only."""

RUNNER = "/home/dev/.local/share/brain/cron-run.sh"
LOG = "/home/dev/.local/state/brain/collect.log"


def _as_dev(host, command: str):
    return host.run(f"runuser -u dev -- bash -c {command!r}")


def test_crontab_runs_the_collectors_through_the_runner(host):
    crontab = host.run("crontab -l -u dev").stdout
    assert "#Ansible: brain collect all" in crontab
    assert f"*/30 * * * * {RUNNER} collect all" in crontab
    assert host.service("cron").is_running


def test_config_is_owner_only_and_read_by_brain(host):
    config = host.file("/home/dev/.config/brain/config.toml")
    assert config.user == "dev" and config.mode == 0o600
    shown = _as_dev(host, "~/.local/bin/brain --config ~/.config/brain/config.toml config show")
    assert shown.rc == 0, shown.stderr
    assert "client.api_url = 'https://127.0.0.1:9'" in shown.stdout
    assert "client.token = '***'" in shown.stdout
    assert "collect.files_roots" in shown.stdout


def test_runner_logs_each_run_and_rotates_the_log(host):
    _as_dev(host, f"head -c 4096 /dev/zero > {LOG}")  # past the 1 KB limit set in converge
    run = _as_dev(host, f"{RUNNER} config show")
    assert run.rc == 0
    log = host.file(LOG).content_string
    assert "brain config show" in log and "client.api_url" in log and "=== exit 0" in log
    assert host.file(LOG + ".1").size == 4096


def test_runner_skips_while_a_previous_run_holds_the_lock(host):
    run = _as_dev(host, f"(flock ~/.local/state/brain/cron.lock sleep 6 &); sleep 1; {RUNNER} config show")
    assert run.rc == 75
    assert "skipped: the previous run still holds the lock" in host.file(LOG).content_string


def test_the_crontab_line_itself_runs_brain_collect_under_the_runner(host):
    line = next(x for x in host.run("crontab -l -u dev").stdout.splitlines() if x.startswith("*/30"))
    command = line.split(None, 5)[5]
    _as_dev(host, command)
    log = host.file(LOG).content_string.split("=== ")
    started = [chunk for chunk in log if "brain collect all" in chunk]
    assert started, log[-3:]
    assert any(chunk.startswith("exit ") for chunk in log[log.index(started[-1]):])


def test_claude_code_hooks_are_installed_and_run_this_install(host):
    """collectors_claude_hooks: true in converge; the idempotence step checks a second install
    reports no change."""
    import json

    settings = json.loads(host.file("/home/dev/.claude/settings.json").content_string)
    commands = [h["command"] for event in ("SessionStart", "Stop", "SessionEnd")
                for group in settings["hooks"][event] for h in group["hooks"]]
    assert len(commands) == 3
    assert all(c.startswith("/home/dev/.local/share/brain/venv/bin/brain --config /home/dev/.config/brain/config.toml hooks ")
               for c in commands), commands
    status = _as_dev(host, "~/.local/bin/brain --config ~/.config/brain/config.toml hooks status")
    assert status.rc == 0 and "NOT RUNNABLE" not in status.stdout and "not installed" not in status.stdout
