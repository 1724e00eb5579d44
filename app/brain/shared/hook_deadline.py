"""The SessionStart hook's bound: its context within ``hooks.start_budget`` of Claude Code starting
it (2 s by the issue), or nothing at all, however slowly Python starts.

Why a module of its own, with nothing but the standard library: the bound has to be armed before
the ``brain`` command's own imports (click, pydantic, the settings: 0.3 s on an idle 2-core laptop,
over 1.5 s at load 10), so the ``brain.cli`` package arms it first thing, before ``brain.cli.main``
imports anything, when the arguments end in ``hooks session-start``. The settings are not read yet then:
the first bound is ``BRAIN_HOOKS_START_BUDGET`` or the default, and the command moves it to the
configured budget once it has the settings.

Time is counted from the process's fork (``/proc/self/stat``), which an exec keeps: for
``sh -c 'brain hooks session-start'``, how Claude Code runs a hook, that is when Claude Code
started it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import NoReturn

DEFAULT_BUDGET = 1.8  # hooks.start_budget's default (a test keeps them equal)
EXIT_MARGIN = 0.3  # of the budget, kept for redacting, printing and exiting
PROCESS_AGE_MAX = 60.0  # a hook process older than this when it looks is a clock it cannot read
LOG_MAX_BYTES = 512 * 1024
COMMAND = ["hooks", "session-start"]

_armed: ExitAt | None = None


def state_dir() -> str:
    """``brain.shared.config_types.state_dir`` without its imports (the same rule; a test keeps
    them equal): ``$XDG_STATE_HOME/brain`` when that is absolute, else ``~/.local/state/brain``.
    Strings, not pathlib: importing pathlib is 20-60 ms of the hook's start."""
    value = os.environ.get("XDG_STATE_HOME", "")
    return os.path.join(value if value and os.path.isabs(value) else os.path.expanduser("~/.local/state"), "brain")


def log(event: str, message: str) -> None:
    """One line in ``<state dir>/hooks.log`` (rotated at 512 KB); never raises: a hook that
    cannot log still must not fail the session."""
    from datetime import UTC, datetime  # only when there is something to log

    folder = state_dir()
    path = os.path.join(folder, "hooks.log")
    try:
        os.makedirs(folder, exist_ok=True)
        if os.path.exists(path) and os.path.getsize(path) > LOG_MAX_BYTES:
            os.replace(path, path + ".1")
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = f"{stamp} {os.getpid()} {event}: {' '.join(message.split())[:2000]}\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line)
    except OSError:
        pass


def process_started() -> float:
    """When this process started, on ``time.monotonic()``'s clock. Now where there is no
    ``/proc`` (macOS) or the value is implausible (negative, or older than ``PROCESS_AGE_MAX``: a
    kernel counting another clock), so a deadline is never already past for a wrong reason."""
    now = time.monotonic()
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rindex(b")") + 2:].split()  # the name in parentheses may hold spaces
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - age if 0.0 <= age <= PROCESS_AGE_MAX else now


class ExitAt:
    """Ends the process with exit 0 at ``when`` (``time.monotonic()``), whatever it is doing then,
    after logging ``why``. :meth:`move` sets another time.

    Output goes through :meth:`finish` under the same lock, so the process ends either with its
    whole answer written or with nothing written, never half a JSON object."""

    def __init__(self, when: float, event: str, why: str, logger: Callable[[str, str], None] = log,
                 started: float | None = None):
        self._when, self._event, self.why, self._log = when, event, why, logger
        self.started = time.monotonic() if started is None else started  # what ``when`` counts from
        self._out = threading.Lock()
        self._moved = threading.Condition()
        threading.Thread(target=self._run, daemon=True, name="brain-hook-deadline").start()

    @property
    def when(self) -> float:
        return self._when

    def move(self, when: float, why: str) -> None:
        with self._moved:
            self._when, self.why = when, why
            self._moved.notify_all()

    def _run(self) -> None:
        with self._moved:
            while (left := self._when - time.monotonic()) > 0:
                self._moved.wait(left)
        with self._out:
            self._log(self._event, self.why)
            os._exit(0)

    def finish(self, out: str = "", why: str = "") -> NoReturn:
        """Write ``out`` (if any), log ``why`` (if any), flush, and end the process now (no
        interpreter teardown, no waiting for a thread stuck in a request). One of this and the
        deadline ends the process, and only that one logs."""
        with self._out:
            if why:
                self._log(self._event, why)
            if out:
                sys.stdout.write(out)
            sys.stdout.flush()
            os._exit(0)


def env_budget() -> float:
    """``BRAIN_HOOKS_START_BUDGET`` when it is a number, else the default (the settings, read later,
    report a bad value)."""
    try:
        return float(os.environ.get("BRAIN_HOOKS_START_BUDGET", "") or DEFAULT_BUDGET)
    except ValueError:
        return DEFAULT_BUDGET


def _guard(why: str) -> ExitAt:
    budget = env_budget()
    started = process_started()
    return ExitAt(started + budget, "session-start", f"nothing printed: {budget:g} s from the hook's start ran out{why}",
                  started=started)


def arm(argv: list[str] | None = None) -> ExitAt | None:
    """Start the bound if this process is the SessionStart hook (``argv`` ends in ``hooks
    session-start``); the armed guard. Idempotent."""
    global _armed
    if _armed is None and (sys.argv if argv is None else argv)[-2:] == COMMAND:
        _armed = _guard(" while Python started")
    return _armed


def armed() -> ExitAt:
    """The guard ``brain.cli`` armed, or one armed now (the command run another way)."""
    global _armed
    if _armed is None:
        _armed = _guard("")
    return _armed
