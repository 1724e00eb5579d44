"""GPU control: start the TensorDock VM when an ask needs it, stop it when nobody does, keep a ledger.

Why: the seed plan's monthly cost ($12, $22 or $43) assumes the RTX 4090 VM runs only while
it is used. This module makes that true by machine:

- **State** comes from the TensorDock API (the shared :class:`~brain.gpu.tensordock.TensorDockClient`,
  the same one Pulumi uses). Every time it is polled, what it says is reconciled with the
  ledger, so a VM stopped (or started) from TensorDock's dashboard is booked too.
- **Start once.** An ask finds the LLM down → one start, however many asks arrive at once, in
  however many gunicorn workers: the check-then-start runs under an exclusive ``flock`` on a
  file next to the database (``<db>.gpu.lock``), which every thread and process of the host
  shares. The slow part (VM boot, Ollama coming up) is waited for outside the lock.
- **Never stop under a request.** Each ask that may use the LLM writes a row in
  ``gpu_inflight`` *before* it checks the GPU (under the shared lock); the idle stopper reads
  those rows under the exclusive lock. Either it sees the ask and leaves the VM alone, or the ask
  waits for the stop to finish, sees the VM down and starts it again. Rows of crashed workers
  (dead pid on this host) or older than ``gpu.inflight_max_seconds`` do not count.
- **Idle stop.** ``brain gpu idle-check`` (a systemd timer on the brain VM, every minute) stops
  the VM once nothing was asked for ``gpu.idle_minutes`` and nothing is in flight. The window
  counts from the last ask or from the session's start, whichever is later, so a VM started by
  hand still gets its window.
- **Ledger.** Every start and stop is a row of ``gpu_ledger`` with its time and hourly rate
  (TensorDock's ``rateHourly``, else ``gpu.hourly_rate``); ``brain.gpu.cost`` turns it into hours
  and dollars. A stop or start seen only by polling is booked at the time it was seen: a stop
  from the dashboard is therefore counted a little late, never early, which errs on the side of
  the budget.
- **Storage while stopped.** TensorDock keeps billing a stopped VM's disk (its locations price it as
  ``per_gb_storage_hr``); ``brain.gpu.cost`` counts every stretch between a booked stop and the next
  start at ``gpu.storage_gb`` x ``gpu.storage_usd_per_gb_hour``.
- **Replaced VMs.** When Pulumi replaces the GPU VM, ``gpu.instance_id`` names the new one. The
  first poll under the new id books a ``stop`` with origin ``replaced`` for every other instance in
  the ledger that has none yet: its open session (if any) ends there, and so does its storage.
- **Budget.** A start that would take this month's spend (GPU + storage + embeddings) plus one session
  (``gpu.session_hours`` at the VM's rate) past ``gpu.monthly_budget_usd`` is refused unless
  forced.

When ``gpu.instance_id`` is empty nothing here runs: ask talks to ``llm.base_url`` as before.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from brain.core import store
from brain.gpu.cost import REPLACED, month_report
from brain.gpu.tensordock import TOKEN_ENV, Instance, TensorDockClient, TensorDockError
from brain.shared import timeutil
from brain.shared.settings import ServerConfig

log = logging.getLogger(__name__)



RUNNING = "running"
STARTING = frozenset({"starting", "provisioning", "restarting", "booting", "resuming", "creating"})
STOPPING = frozenset({"stopping"})
STOPPED = frozenset({"stopped", "stopped_disassociated", "stoppeddisassociated", "offline"})
UP = STARTING | {RUNNING}  # billed as GPU time
DOWN = STOPPED | STOPPING

OLLAMA_TIMEOUT = (2.0, 5.0)  # connect, read: a stopped VM behind WireGuard never refuses, it just hangs
STATUS_LOCK_TIMEOUT = 60.0


# --- errors ---------------------------------------------------------------------------------

class GpuError(RuntimeError):
    """GPU control failed; ``status``/``code`` say how brain-api answers it, ``details`` adds JSON."""

    status = 502
    code = "gpu_error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details or {}


class GpuNotConfigured(GpuError):
    status, code = 409, "gpu_not_configured"


class GpuBusy(GpuError):
    status, code = 503, "gpu_busy"


class GpuTimeout(GpuError):
    status, code = 504, "gpu_start_timeout"


class GpuRefused(GpuError):
    """The request conflicts with the VM's state or a rule; nothing was done."""

    status, code = 409, "gpu_conflict"


class CannotStart(GpuRefused):
    """The VM is stopped and may not be started now; an ask answers from retrieval only."""


class AutoStartOff(CannotStart):
    code = "gpu_auto_start_off"


class BudgetExceeded(CannotStart):
    code = "gpu_budget_exceeded"


class RequestsInFlight(GpuRefused):
    code = "gpu_requests_in_flight"


def _td_error(exc: TensorDockError) -> GpuError:
    """TensorDock's failure as a GpuError; the message names the operation, never the token."""
    return GpuError(str(exc), code="tensordock_error", status=502)


# --- small pieces ---------------------------------------------------------------------------

def ollama_url(cfg: ServerConfig) -> str:
    """``gpu.ollama_url``, else ``llm.base_url`` with its OpenAI ``/v1`` suffix removed."""
    explicit = cfg.gpu.ollama_url
    if explicit:
        return explicit.rstrip("/")
    base = cfg.llm.base_url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@dataclass(frozen=True)
class Progress:
    """One step of bringing the GPU up, sent to the asker as an SSE ``status`` event."""

    stage: str  # checking | vm_starting | waiting_ollama | ready
    message: str
    state: str
    elapsed_s: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- the ledger (also read by brain.gpu.cost) ------------------------------------------------------

def last_event(conn: sqlite3.Connection, instance_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM gpu_ledger WHERE instance_id = ? ORDER BY id DESC LIMIT 1",
                        (instance_id,)).fetchone()


def record(conn: sqlite3.Connection, instance_id: str, event: str, at: datetime, rate: float, origin: str,
           note: str = "") -> bool:
    """Book a start or stop if it changes the booked state; False when it would repeat the last one.

    Check and insert are one write transaction, so two processes observing the same change
    book it once.
    """
    with store.write_transaction(conn):
        last = last_event(conn, instance_id)
        booked_up = last is not None and last["event"] == "start"
        if (event == "start") == booked_up:
            return False  # nothing written: the transaction just ends
        conn.execute("INSERT INTO gpu_ledger(at, instance_id, event, rate_hourly, origin, note) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (timeutil.fmt(at), instance_id, event, rate, origin, note))
    log.info("GPU %s %s booked at %s ($%.4f/h, %s%s)", instance_id, event, timeutil.fmt(at), rate, origin,
             f": {note}" if note else "")
    return True




def retire_replaced(conn: sqlite3.Connection, current: str, at: datetime) -> list[str]:
    """Book a ``replaced`` stop for every instance other than ``current`` that has none yet.

    Why also for an instance already stopped: the stop ends its storage too (the VM is deleted
    with the replacement), so a stopped instance is not billed storage for ever. One write
    transaction, so two workers seeing the new id at once retire each old instance once."""
    retired = []
    with store.write_transaction(conn):
        others = conn.execute("SELECT DISTINCT instance_id FROM gpu_ledger WHERE instance_id != ?",
                              (current,)).fetchall()
        for row in others:
            last = last_event(conn, row["instance_id"])
            if last is None or (last["event"] == "stop" and last["origin"] == REPLACED):
                continue
            conn.execute("INSERT INTO gpu_ledger(at, instance_id, event, rate_hourly, origin, note) "
                         "VALUES (?, ?, 'stop', ?, ?, ?)",
                         (timeutil.fmt(at), row["instance_id"], last["rate_hourly"], REPLACED,
                          f"gpu.instance_id is now {current}"))
            retired.append(row["instance_id"])
    for old in retired:
        log.warning("GPU %s replaced by %s: its session and storage end at %s", old, current, timeutil.fmt(at))
    return retired


# --- requests in flight ------------------------------------------------------------------------

class Ticket:
    """An ask in flight: its row keeps the idle stop away until :meth:`end` (idempotent)."""

    def __init__(self, control: GpuControl, row_id: int):
        self._control = control
        self._row_id = row_id
        self._ended = False

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            self._control._end_request(self._row_id)
        except sqlite3.Error:  # the row stays; the idle stop ignores it after gpu.inflight_max_seconds
            log.exception("could not clear in-flight request %d", self._row_id)


# --- the control ----------------------------------------------------------------------------

class GpuControl:
    """Start, stop, watch and book the GPU VM ``gpu.instance_id``; see the module docstring.

    ``clock`` gives the wall-clock time booked in the ledger (tests inject one); ``monotonic``
    and ``sleep`` drive the bounded waits.
    """

    def __init__(self, cfg: ServerConfig, *, client: TensorDockClient | None = None,
                 clock: Callable[[], datetime] = _utcnow, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.cfg = cfg
        self.instance_id: str = cfg.gpu.instance_id
        if not self.instance_id:
            raise GpuNotConfigured("no GPU VM is configured: set gpu.instance_id (BRAIN_GPU_INSTANCE_ID)")
        if client is None:
            token = cfg.gpu.tensordock_token
            if not token:
                raise GpuNotConfigured(f"gpu.instance_id is set but no TensorDock token: set {TOKEN_ENV}")
            client = TensorDockClient(token, cfg.gpu.tensordock_url, max_retries=cfg.gpu.tensordock_retries)
        self.client = client
        self.db_path = str(cfg.server.db_path)
        self.lock_path = self.db_path + ".gpu.lock"
        self.ollama_url = ollama_url(cfg)
        self.start_timeout: float = cfg.gpu.start_timeout
        self.poll_interval: float = cfg.gpu.poll_interval
        self._clock = clock
        self._mono = monotonic
        self._sleep = sleep
        self._host = socket.gethostname()

    # -- plumbing

    def now(self) -> datetime:
        return self._clock()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = store.connect(self.db_path)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _lock(self, *, exclusive: bool, timeout: float) -> Iterator[None]:
        """``flock`` on ``<db>.gpu.lock``: shared for checks, exclusive for start/stop decisions.

        Each call opens its own descriptor, so threads of one process exclude each other as
        processes do. Waits at most ``timeout`` seconds, then raises GpuBusy.
        """
        Path(self.lock_path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
            deadline = time.monotonic() + max(timeout, 0.0)
            while True:
                try:
                    fcntl.flock(fd, mode)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise GpuBusy(f"another start or stop of the GPU VM is still running after {timeout:g} s "
                                      f"(lock {self.lock_path})") from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _rate(self, inst: Instance | None) -> tuple[float, str]:
        if inst is not None and inst.rate_hourly is not None and inst.rate_hourly > 0:
            return float(inst.rate_hourly), "tensordock"
        return float(self.cfg.gpu.hourly_rate), "setting"

    def _get(self) -> Instance:
        try:
            return self.client.get_instance(self.instance_id)
        except TensorDockError as exc:
            raise _td_error(exc) from None

    def _observe(self, inst: Instance) -> None:
        """Save what TensorDock says and book a start/stop the ledger does not know about yet."""
        now = self.now()
        rate, _ = self._rate(inst)
        with self._db() as conn:
            conn.execute(
                "INSERT INTO gpu_state(instance_id, status, ip, rate_hourly, observed_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(instance_id) DO UPDATE SET status = excluded.status, ip = excluded.ip, "
                "rate_hourly = coalesce(excluded.rate_hourly, gpu_state.rate_hourly), "
                "observed_at = excluded.observed_at",
                (self.instance_id, inst.status, inst.ip, inst.rate_hourly, timeutil.fmt(now)))
            retire_replaced(conn, self.instance_id, now)
            if inst.status in UP:
                record(conn, self.instance_id, "start", now, rate, "observed", f"TensorDock reported {inst.status}")
            elif inst.status in DOWN:
                record(conn, self.instance_id, "stop", now, rate, "observed", f"TensorDock reported {inst.status}")

    def _poll(self) -> Instance:
        """Get and reconcile, under the shared lock (never between another's check and start)."""
        with self._lock(exclusive=False, timeout=STATUS_LOCK_TIMEOUT):
            inst = self._get()
            self._observe(inst)
        return inst

    def ollama_ready(self) -> bool:
        """Whether Ollama on the GPU VM answers ``GET /api/version`` (one bounded try)."""
        try:
            resp = requests.get(f"{self.ollama_url}/api/version", timeout=OLLAMA_TIMEOUT)
            return resp.status_code == 200 and "version" in resp.json()
        except (requests.RequestException, ValueError):
            return False

    def _inflight(self, conn: sqlite3.Connection, purge: bool = False) -> int:
        """Requests in flight, not counting those of dead workers or older than the limit."""
        cutoff = timeutil.fmt(self.now() - timedelta(seconds=self.cfg.gpu.inflight_max_seconds))
        rows = conn.execute("SELECT id, started_at, host, pid FROM gpu_inflight").fetchall()
        stale = [r["id"] for r in rows
                 if r["started_at"] < cutoff or (r["host"] == self._host and not _pid_alive(r["pid"]))]
        if purge and stale:
            conn.executemany("DELETE FROM gpu_inflight WHERE id = ?", [(i,) for i in stale])
            log.warning("dropped %d stale in-flight request(s) (dead worker or older than %gs)", len(stale),
                        self.cfg.gpu.inflight_max_seconds)
        return len(rows) - len(stale)

    # -- requests in flight

    def begin_request(self, what: str = "ask") -> Ticket:
        """Mark a request that may use the LLM as in flight and as the latest ask."""
        now = timeutil.fmt(self.now())
        with self._db() as conn, store.write_transaction(conn):
            cur = conn.execute("INSERT INTO gpu_inflight(started_at, host, pid, what) VALUES (?, ?, ?, ?)",
                               (now, self._host, os.getpid(), what))
            self._touch(conn, now)
        return Ticket(self, int(cur.lastrowid or 0))

    def _touch(self, conn: sqlite3.Connection, at: str) -> None:
        conn.execute("INSERT INTO gpu_state(instance_id, last_ask_at) VALUES (?, ?) ON CONFLICT(instance_id) "
                     "DO UPDATE SET last_ask_at = max(coalesce(gpu_state.last_ask_at, ''), excluded.last_ask_at)",
                     (self.instance_id, at))

    def _end_request(self, row_id: int) -> None:
        with self._db() as conn, store.write_transaction(conn):
            conn.execute("DELETE FROM gpu_inflight WHERE id = ?", (row_id,))
            self._touch(conn, timeutil.fmt(self.now()))  # the idle window starts when the answer ends

    # -- state

    def ready_now(self) -> bool:
        """Fast path of an ask: booked as up and Ollama answers. No TensorDock call.

        Runs under the shared lock, after the ask's in-flight row exists: an idle stop either saw
        that row, or has finished and booked the stop, which makes this False.
        """
        with self._lock(exclusive=False, timeout=self.start_timeout):
            with self._db() as conn:
                last = last_event(conn, self.instance_id)
            if last is None or last["event"] != "start":
                return False
            return self.ollama_ready()

    def status(self) -> dict[str, Any]:
        """The VM as TensorDock sees it now, with this session's time and cost (``GET /api/v1/gpu``)."""
        return self.describe(self._poll())

    def describe(self, inst: Instance) -> dict[str, Any]:
        now = self.now()
        with self._db() as conn:
            last = last_event(conn, self.instance_id)
            state = conn.execute("SELECT * FROM gpu_state WHERE instance_id = ?", (self.instance_id,)).fetchone()
            inflight = self._inflight(conn)
        rate, rate_source = self._rate(inst)
        up_since = last["at"] if last is not None and last["event"] == "start" else None
        session_s = max(0.0, (now - timeutil.parse(up_since)).total_seconds()) if up_since else 0.0
        session_rate = float(last["rate_hourly"]) if up_since and last is not None else rate
        last_ask = state["last_ask_at"] if state is not None else None
        idle_stop_at = None
        if up_since:
            anchor = max(x for x in (up_since, last_ask, state["start_requested_at"] if state else None) if x)
            idle_stop_at = timeutil.fmt(timeutil.parse(anchor) + timedelta(minutes=self.cfg.gpu.idle_minutes))
        return {
            "configured": True,
            "instance_id": self.instance_id,
            "state": inst.status or "unknown",
            "ip": inst.ip,
            "rate_hourly": rate,
            "rate_source": rate_source,
            "up_since": up_since,
            "session_seconds": round(session_s, 1),
            "session_usd": round(session_s / 3600 * session_rate, 4),
            "ollama": {"url": self.ollama_url, "ready": inst.status == RUNNING and self.ollama_ready()},
            "in_flight": inflight,
            "last_ask_at": last_ask,
            "idle_minutes": self.cfg.gpu.idle_minutes,
            "idle_stop_at": idle_stop_at,
            "auto_start": self.cfg.gpu.auto_start,
            "monthly_budget_usd": self.cfg.gpu.monthly_budget_usd or None,
        }

    # -- budget

    def check_budget(self, rate: float) -> None:
        """Raise BudgetExceeded when this month's spend plus one session would pass the budget."""
        budget = self.cfg.gpu.monthly_budget_usd
        if budget <= 0:
            return

        with self._db() as conn:
            report = month_report(conn, self.cfg, now=self.now())
        gpu_usd, embed_usd = report["gpu"]["usd"], report["embeddings"]["usd"]
        storage_usd = report["storage"]["usd"]
        session = self.cfg.gpu.session_hours * rate
        spent = gpu_usd + storage_usd + embed_usd
        if spent + session <= budget:
            return
        storage = f" + stopped storage ${storage_usd:.2f}" if storage_usd else ""
        raise BudgetExceeded(
            f"starting the GPU VM would pass the monthly budget of ${budget:.2f} (gpu.monthly_budget_usd): "
            f"${spent:.2f} spent in {report['month']} (GPU ${gpu_usd:.2f}{storage} + embeddings ${embed_usd:.2f}) + "
            f"~${session:.2f} for one session ({self.cfg.gpu.session_hours:g} h at ${rate:.3f}/h); "
            "start it anyway with force (`brain gpu start --force`, or POST /api/v1/gpu/start {\"force\": true}) "
            "or raise the budget",
            details={"budget": {"usd": budget, "spent_usd": round(spent, 4), "gpu_usd": round(gpu_usd, 4),
                                "storage_usd": round(storage_usd, 4),
                                "embeddings_usd": round(embed_usd, 4), "session_usd": round(session, 4)}})

    # -- start

    def _request_start(self, *, force: bool, auto_start: bool, origin: str, deadline: float) -> tuple[str, Instance]:
        """Under the exclusive lock: look, and start the VM only if it is stopped. Returns
        ``(action, instance)`` with action ``started`` or ``none``."""
        with self._lock(exclusive=True, timeout=max(deadline - self._mono(), 0.0)):
            inst = self._get()
            self._observe(inst)
            while inst.status in STOPPING:  # stopped a moment ago: let it finish, then start again
                if self._mono() >= deadline:
                    raise GpuTimeout(f"the GPU VM is still {inst.status!r} after {self.start_timeout:g} s "
                                     "(gpu.start_timeout)")
                self._sleep(min(self.poll_interval, max(deadline - self._mono(), 0.0)))
                inst = self._get()
                self._observe(inst)
            if inst.status in UP:
                return "none", inst
            if inst.status not in STOPPED:
                raise GpuRefused(f"the GPU VM is in state {inst.status or 'unknown'!r} on TensorDock; "
                                 "it cannot be started from here", code="gpu_state_conflict")
            if not auto_start:
                raise AutoStartOff("the GPU VM is stopped and gpu.auto_start is off")
            rate, _ = self._rate(inst)
            if not force:
                self.check_budget(rate)
            try:
                status = self.client.start_instance(self.instance_id)
            except TensorDockError as exc:
                raise _td_error(exc) from None
            now = self.now()
            with self._db() as conn:
                record(conn, self.instance_id, "start", now, rate, origin, "forced past the budget" if force else "")
                conn.execute("INSERT INTO gpu_state(instance_id, start_requested_at) VALUES (?, ?) "
                             "ON CONFLICT(instance_id) DO UPDATE SET start_requested_at = excluded.start_requested_at",
                             (self.instance_id, timeutil.fmt(now)))
            return "started", dataclasses.replace(inst, status=status or "starting")

    def start_events(self, *, force: bool = False, auto_start: bool = True, origin: str = "ask",
                     wait: bool = True) -> Iterator[Progress]:
        """Start the VM if needed (once, see the module docstring), then wait for Ollama.

        Yields progress at every poll; bounded by ``gpu.start_timeout``. Raises CannotStart
        (auto start off, budget), GpuTimeout, or GpuError (TensorDock failed, VM in a bad state).
        """
        t0 = self._mono()
        deadline = t0 + self.start_timeout
        yield Progress("checking", "checking the GPU VM on TensorDock", "", 0.0)
        action, inst = self._request_start(force=force, auto_start=auto_start, origin=origin, deadline=deadline)
        if action == "started":
            yield self._started(inst, t0)
        if wait:
            yield from self._wait_ready(inst, t0, deadline)

    def _started(self, inst: Instance, t0: float) -> Progress:
        rate, _ = self._rate(inst)
        return Progress("vm_starting", f"starting the GPU VM (${rate:.3f}/h)", inst.status,
                        round(self._mono() - t0, 1))

    def _wait_ready(self, inst: Instance, t0: float, deadline: float) -> Iterator[Progress]:
        """Poll TensorDock until the VM runs, then Ollama until it answers; progress at each poll."""

        def step(stage: str, message: str, state: str) -> Progress:
            return Progress(stage, message, state, round(self._mono() - t0, 1))

        def pause(what: str) -> None:
            if self._mono() >= deadline:
                raise GpuTimeout(f"{what} after {self.start_timeout:g} s (gpu.start_timeout)")
            self._sleep(min(self.poll_interval, max(deadline - self._mono(), 0.0)))

        while inst.status != RUNNING:
            if inst.status in DOWN:
                raise GpuError(f"the GPU VM went {inst.status!r} while starting (stopped from the dashboard?)",
                               code="gpu_stopped_while_starting")
            if inst.status not in STARTING:
                raise GpuError(f"the GPU VM is in state {inst.status or 'unknown'!r} while starting",
                               code="gpu_state_conflict")
            pause(f"the GPU VM is still {inst.status!r}")
            inst = self._poll()
            yield step("vm_starting", f"the GPU VM is {inst.status}", inst.status)
        yield step("waiting_ollama", f"the GPU VM is running; waiting for Ollama at {self.ollama_url}", RUNNING)
        while not self.ollama_ready():
            pause(f"Ollama at {self.ollama_url} does not answer")
            yield step("waiting_ollama", f"waiting for Ollama at {self.ollama_url}", RUNNING)
        yield step("ready", "the LLM is ready", RUNNING)

    def ensure_ready(self, *, force: bool = False, auto_start: bool = True, origin: str = "ask",
                     progress: Callable[[Progress], None] | None = None) -> None:
        """:meth:`start_events` for callers that only want the end (progress via a callback)."""
        for p in self.start_events(force=force, auto_start=auto_start, origin=origin):
            if progress is not None:
                progress(p)

    def start(self, *, force: bool = False, wait: bool = False, origin: str = "api",
              progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
        """``POST /api/v1/gpu/start``: ``action`` is ``started``, or ``none`` when it was up already.

        ``wait``: also wait (bounded) until Ollama answers, reporting each poll to ``progress``.
        """
        t0 = self._mono()
        deadline = t0 + self.start_timeout
        action, inst = self._request_start(force=force, auto_start=True, origin=origin, deadline=deadline)
        if action == "started" and progress is not None:
            progress(self._started(inst, t0))
        if wait:
            for p in self._wait_ready(inst, t0, deadline):
                if progress is not None:
                    progress(p)
            return {"action": action, **self.status()}
        return {"action": action, **self.describe(inst)}

    # -- stop

    def stop(self, *, force: bool = False, origin: str = "api") -> dict[str, Any]:
        """``POST /api/v1/gpu/stop``: refuses while requests are in flight unless ``force``."""
        with self._lock(exclusive=True, timeout=STATUS_LOCK_TIMEOUT):
            with self._db() as conn:
                inflight = self._inflight(conn, purge=True)
            if inflight and not force:
                raise RequestsInFlight(f"{inflight} request(s) are using the LLM; stop anyway with force "
                                       "(`brain gpu stop --force`, or {\"force\": true})")
            inst = self._get()
            self._observe(inst)
            if inst.status in DOWN:
                return {"action": "none", **self.describe(inst)}
            if inst.status != RUNNING:
                raise GpuRefused(f"the GPU VM is {inst.status or 'unknown'!r}; stop it once it is running",
                                 code="gpu_state_conflict")
            inst = self._stop(inst, origin, "forced with requests in flight" if inflight else "")
        return {"action": "stopped", **self.describe(inst)}

    def _stop(self, inst: Instance, origin: str, note: str) -> Instance:
        """Call stop and book it (the caller holds the exclusive lock)."""
        rate, _ = self._rate(inst)
        try:
            status = self.client.stop_instance(self.instance_id)
        except TensorDockError as exc:
            raise _td_error(exc) from None
        with self._db() as conn:
            record(conn, self.instance_id, "stop", self.now(), rate, origin, note)
        return dataclasses.replace(inst, status=status or "stopping")

    # -- idle stop

    def idle_check(self) -> dict[str, Any]:
        """Stop the VM if it runs, nothing is in flight and nothing was asked for ``gpu.idle_minutes``.

        Returns ``{"action": "stopped"|"none", "reason": ...}``.
        """
        idle_s = self.cfg.gpu.idle_minutes * 60
        with self._lock(exclusive=True, timeout=STATUS_LOCK_TIMEOUT):
            inst = self._get()
            self._observe(inst)
            if inst.status != RUNNING:
                return {"action": "none", "state": inst.status, "reason": f"the GPU VM is {inst.status or 'unknown'}"}
            now = self.now()
            with self._db() as conn:
                inflight = self._inflight(conn, purge=True)
                last = last_event(conn, self.instance_id)
                state = conn.execute("SELECT last_ask_at, start_requested_at FROM gpu_state WHERE instance_id = ?",
                                     (self.instance_id,)).fetchone()
            if inflight:
                return {"action": "none", "state": inst.status, "reason": f"{inflight} request(s) in flight"}
            marks = [last["at"] if last is not None else None]
            if state is not None:
                marks += [state["last_ask_at"], state["start_requested_at"]]
            anchor = max((m for m in marks if m), default=None)
            quiet = (now - timeutil.parse(anchor)).total_seconds() if anchor else idle_s
            if quiet < idle_s:
                return {"action": "none", "state": inst.status,
                        "reason": f"quiet for {quiet / 60:.1f} of {idle_s / 60:g} minutes"}
            inst = self._stop(inst, "idle", f"no ask for {quiet / 60:.1f} min")
        return {"action": "stopped", "state": inst.status,
                "reason": f"no ask for {quiet / 60:.1f} minutes (gpu.idle_minutes = {idle_s / 60:g})"}


def control_for(cfg: ServerConfig, **kw: Any) -> GpuControl | None:
    """The GPU control, or None when no GPU VM is configured (local use: ask works as before)."""
    if not cfg.gpu.instance_id:
        return None
    return GpuControl(cfg, **kw)
