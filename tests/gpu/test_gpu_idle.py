"""Idle stop with a window of a fraction of a second: after the window, never under an ask."""

from __future__ import annotations

import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import requests

from brain.cli.main import main
from brain.core import store
from brain.shared import timeutil
from tests.conftest import TOKEN

from .conftest import RATE, inflight, ledger, make_app, make_control, starts, stops

AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUESTION = {"question": "How do I stop database is locked errors?"}
WINDOW_MIN = 0.01  # 0.6 s


def _wait_for(predicate, timeout: float = 60.0) -> None:
    """Poll until ``predicate()``; the deadline only turns a hang into a failure (a loaded machine
    is slow, never wrong)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_idle_stop_never_under_an_ask_in_flight(gpu_settings, serve, td, vm, ollama, db_path) -> None:
    settings = gpu_settings | {"gpu.idle_minutes": WINDOW_MIN}
    now = [datetime.now(UTC)]  # one wall clock for the app and the idle stopper, moved by hand

    def clock() -> datetime:
        return now[0]

    app = make_app(settings, corpus=True)
    app.extensions["brain_gpu"] = make_control(settings, clock=clock)  # the control the app's asks use
    url = serve(app) + "/api/v1/ask"
    control = make_control(settings, clock=clock)
    control.start(wait=True, origin="cli")
    ollama.pieces = ["Enable", " WAL", " mode", " [1]."]
    ollama.hold()  # the answer stops after its first piece until released: in flight for sure
    result: dict = {}
    asker = threading.Thread(target=lambda: result.update(r=requests.post(url, json=QUESTION, headers=AUTH,
                                                                          timeout=60)))
    asker.start()
    try:
        _wait_for(lambda: inflight(db_path) == 1 and len(ollama.chat_requests) == 1)
        now[0] += timedelta(seconds=WINDOW_MIN * 60 + 1)  # the window has passed since the start
        assert control.idle_check() == {"action": "none", "state": "running", "reason": "1 request(s) in flight"}
    finally:
        ollama.release()
        asker.join()
    assert result["r"].status_code == 200 and result["r"].json()["answer"] == "Enable WAL mode [1]."
    quiet = control.idle_check()  # the window restarts when the answer ends
    assert quiet["action"] == "none" and quiet["reason"].startswith("quiet for 0.0 of 0.01 minutes")
    now[0] += timedelta(seconds=WINDOW_MIN * 60 - 0.1)
    assert control.idle_check()["action"] == "none"  # just inside the window that began at the answer's end
    now[0] += timedelta(seconds=0.2)
    stopped = control.idle_check()
    assert stopped["action"] == "stopped" and "gpu.idle_minutes = 0.01" in stopped["reason"]
    assert td.instance(vm)["status"] in ("stopping", "Stopped") and stops(td) == 1
    assert control.idle_check()["action"] == "none"
    assert ledger(db_path) == [("start", "cli", RATE), ("stop", "idle", RATE)]


def test_a_started_vm_gets_the_whole_window(gpu_settings, td, vm) -> None:
    now = [datetime.now(UTC)]  # the injected wall clock, moved by hand: no waiting for the window
    control = make_control(gpu_settings | {"gpu.idle_minutes": WINDOW_MIN}, clock=lambda: now[0])
    control.start(wait=True, origin="cli")
    assert control.idle_check()["action"] == "none"
    now[0] += timedelta(seconds=WINDOW_MIN * 60 - 0.1)
    assert control.idle_check()["action"] == "none"  # just inside the window
    now[0] += timedelta(seconds=0.2)
    assert control.idle_check()["action"] == "stopped" and stops(td) == 1


def test_an_idle_stopper_racing_asks_never_stops_the_vm_under_one(gpu_settings, serve, td, ollama) -> None:
    """Window 0: the stopper stops the VM whenever nothing is in flight; every ask must still get
    its answer (it restarts the VM when it finds it stopped)."""
    settings = gpu_settings | {"gpu.idle_minutes": 0.0, "gpu.start_timeout": 20.0}
    url = serve(make_app(settings, corpus=True)) + "/api/v1/ask"
    control = make_control(settings)
    ollama.token_delay = 0.05
    done = threading.Event()
    outcomes: list[str] = []

    def stopper() -> None:
        while not done.is_set():
            outcomes.append(control.idle_check()["action"])
            time.sleep(0.02)

    thread = threading.Thread(target=stopper)
    thread.start()
    def ask(_: int) -> requests.Response:
        return requests.post(url, json=QUESTION, headers=AUTH, timeout=30)

    try:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(ask, range(3)))
            # nothing in flight now: the stopper must stop the VM before the second wave, which
            # then has to start it again (within each wave the stopper still races the asks)
            _wait_for(lambda: "stopped" in outcomes)
            answers += list(pool.map(ask, range(3)))
    finally:
        done.set()
        thread.join()
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    assert {r.json()["answer"] for r in answers} == {"Enable WAL mode [1]."}
    assert "stopped" in outcomes and starts(td) >= 2  # it did stop between asks, and asks started it again


def test_an_ask_arriving_during_an_idle_stop_waits_for_it_then_starts_the_vm(gpu_settings, td, ollama,
                                                                             db_path) -> None:
    """The stop is decided (nothing in flight) and slow to happen; an ask arriving meanwhile must
    not take the still-answering Ollama for ready: it waits, sees the stop, starts the VM again."""
    settings = gpu_settings | {"gpu.idle_minutes": 0.0}
    app = make_app(settings, corpus=True)
    control = make_control(settings)
    control.start(wait=True, origin="cli")
    assert app.test_client().post("/api/v1/ask", json=QUESTION, headers=AUTH).status_code == 200  # warm the index
    ollama.pieces, ollama.token_delay = ["Enable", " WAL", " mode", " [1]."], 0.2
    deciding, arrived = threading.Event(), threading.Event()
    stop_on_tensordock = control.client.stop_instance

    def stop_once_the_ask_arrived(instance_id: str):  # TensorDock takes its time; the VM runs until then
        deciding.set()
        assert arrived.wait(60), "the ask never arrived"
        return stop_on_tensordock(instance_id)

    control.client.stop_instance = stop_once_the_ask_arrived
    result: dict = {}
    stopper = threading.Thread(target=lambda: result.update(idle=control.idle_check()))
    stopper.start()
    asker = threading.Thread(target=lambda: result.update(
        resp=app.test_client().post("/api/v1/ask", json=QUESTION, headers=AUTH)))
    try:
        assert deciding.wait(60), "the idle stop did not decide to stop"  # nothing in flight: the stop is decided
        asker.start()
        _wait_for(lambda: inflight(db_path) == 1)  # the ask is in flight while the stop is under way
    finally:
        arrived.set()
        stopper.join()
        if asker.ident is not None:
            asker.join()
    resp = result["resp"]
    assert result["idle"]["action"] == "stopped"
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["answer"] == "Enable WAL mode [1]."
    assert ledger(db_path) == [("start", "cli", RATE), ("stop", "idle", RATE), ("start", "ask", RATE)]


def test_requests_of_dead_workers_or_too_old_do_not_keep_the_vm_up(gpu_settings, td, db_path) -> None:
    control = make_control(gpu_settings | {"gpu.idle_minutes": 0.0, "gpu.inflight_max_seconds": 60})
    control.start(wait=True, origin="cli")
    dead = subprocess.Popen(["true"])
    dead.wait()
    old = timeutil.fmt(control.now().replace(year=control.now().year - 1))
    conn = store.connect(db_path)
    conn.execute("INSERT INTO gpu_inflight(started_at, host, pid, what) VALUES (?, ?, ?, 'ask')",
                 (timeutil.now(), control._host, dead.pid))
    conn.execute("INSERT INTO gpu_inflight(started_at, host, pid, what) VALUES (?, 'other-host', 1, 'ask')", (old,))
    conn.close()
    assert control.idle_check()["action"] == "stopped"
    assert inflight(db_path) == 0


def test_idle_check_cli(runner, gpu_settings, td, vm) -> None:
    env = {"BRAIN_DB": gpu_settings["server.db_path"], "BRAIN_GPU_INSTANCE_ID": vm,
           "TENSORDOCK_API_TOKEN": td.token, "TENSORDOCK_BASE_URL": td.url, "BRAIN_GPU_TENSORDOCK_RETRIES": "0",
           "BRAIN_GPU_IDLE_MINUTES": "0"}
    stopped_vm = runner.invoke(main, ["gpu", "idle-check"], env=env)
    assert stopped_vm.exit_code == 0 and stopped_vm.output == "none: the GPU VM is stopped\n"
    td.set_status(vm, "running")  # started from the dashboard, found by the check, then stopped
    first = runner.invoke(main, ["gpu", "idle-check"], env=env)
    assert first.exit_code == 0 and first.output.startswith("stopped: no ask for 0.0 minutes")
    td.fail(503, path=r"^/instances/")
    failed = runner.invoke(main, ["gpu", "idle-check"], env=env)
    assert failed.exit_code == 1 and "tensordock_error" in failed.output and td.token not in failed.output
    unmanaged = runner.invoke(main, ["gpu", "idle-check"], env={"BRAIN_DB": gpu_settings["server.db_path"]})
    assert unmanaged.exit_code == 0 and "nothing to do" in unmanaged.output
