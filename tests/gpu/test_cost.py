"""The cost ledger and report: a simulated month checked against hand-computed totals, the budget,
and the embedding spend of real ingests."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from brain.api import create_app
from brain.cli.gpu import render_cost
from brain.cli.main import main
from brain.core import store
from brain.gpu import cost
from brain.gpu.control import BudgetExceeded
from brain.shared import config as config_mod
from tests.ask.helpers import CORPUS
from tests.conftest import TOKEN, drain_embeddings
from tests.standins.openai_embeddings import EmbeddingsStandIn
from tests.standins.tensordock_server import TensorDockStandIn

from .conftest import RATE, ledger, make_app, make_control, starts

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Clock:
    """The injected wall clock of the simulated month."""

    def __init__(self) -> None:
        self.now = datetime(2026, 2, 1, tzinfo=UTC)

    def at(self, day: int, hour: int, minute: int = 0, month: int = 3) -> None:
        self.now = datetime(2026, month, day, hour, minute, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def instant_td(db_path) -> TensorDockStandIn:
    with TensorDockStandIn(transition_delay=0) as server:
        yield server


def _simulate_march(settings: dict, td: TensorDockStandIn) -> tuple:
    """Five sessions, booked by every path the ledger has (cli, api, idle, observed):

    =====  ==============================  =====  ======  ======
    #      from → to (UTC)                 rate   h (Mar) $ (Mar)
    =====  ==============================  =====  ======  ======
    1      Feb 28 22:00 → Mar 1 02:00      0.40   2       0.80    (2 h fall in February)
    2      Mar 7 10:00 → 18:00             0.40   8       3.20
    3      Mar 8 09:30 → 13:45             0.40   4.25    1.70
    4      Mar 14 20:00 → seen stopped Mar 15 01:00 (dashboard)   0.50  5  2.50
    5      seen running Mar 16 12:00 (dashboard) → now Mar 16 15:00  0.50  3  1.50
    =====  ==============================  =====  ======  ======

    March so far: 22.25 h, $9.70. Elapsed 15 d 15 h = 375 h of 744: projection x 744/375 = 1.984
    → 44.144 h, $19.2448: within Light (60 h).

    Stopped in March (the disk still billed): Mar 1 02:00 → 7 10:00 (152 h), 7 18:00 → 8 09:30
    (15.5 h), 8 13:45 → 14 20:00 (150.25 h), 15 01:00 → 16 12:00 (35 h) = 352.75 h (= 375 - 22.25),
    at 100 GB x $0.00005 = $0.005/h → $1.76375.
    """
    vm = td.add_instance(status="Stopped", rate_hourly=RATE)
    clock = Clock()
    control = make_control(settings | {"gpu.instance_id": vm, "gpu.tensordock_url": td.url}, clock=clock)
    clock.at(28, 22, month=2)
    control.start(origin="cli")
    clock.at(1, 2)
    assert control.idle_check()["action"] == "stopped"  # 4 h without an ask
    clock.at(7, 10)
    control.start()
    clock.at(7, 18)
    control.stop()
    clock.at(8, 9, 30)
    control.start()
    clock.at(8, 13, 45)
    control.stop()
    td.instances[vm]["rateHourly"] = 0.50  # TensorDock changed its price
    clock.at(14, 20)
    control.start()
    td.set_status(vm, "Stopped")  # stopped from the dashboard ...
    clock.at(15, 1)
    assert control.status()["state"] == "stopped"  # ... seen at the next poll
    td.set_status(vm, "running")  # started from the dashboard
    clock.at(16, 12)
    control.status()
    clock.at(16, 15)
    return control, clock


def test_a_simulated_month_matches_hand_computed_totals(gpu_settings, instant_td, db_path) -> None:
    control, clock = _simulate_march(gpu_settings, instant_td)
    assert [(e, o) for e, o, _ in ledger(db_path)] == [
        ("start", "cli"), ("stop", "idle"), ("start", "api"), ("stop", "api"), ("start", "api"), ("stop", "api"),
        ("start", "api"), ("stop", "observed"), ("start", "observed")]
    conn = store.connect(db_path)
    march = cost.month_report(conn, control.cfg, "2026-03", now=clock.now)
    feb = cost.month_report(conn, control.cfg, "2026-02", now=clock.now)
    april = cost.month_report(conn, control.cfg, "2026-04", now=clock.now)
    conn.close()

    g = march["gpu"]
    assert g["hours"] == pytest.approx(22.25) and g["usd"] == pytest.approx(9.70)
    assert g["sessions"] == 5 and g["running"] is True
    assert g["projected_hours"] == pytest.approx(22.25 * 744 / 375) == pytest.approx(44.144)
    assert g["projected_usd"] == pytest.approx(19.2448)
    assert march["tier"] == "Light" and "within Light (60 h, $21.00 at $0.35/h)" in march["tier_note"]
    assert [(t["name"], t["hours"], t["gpu_usd"]) for t in march["tiers"]] == [
        ("Weekend", 32, 11.2), ("Light", 60, 21.0), ("Medium", 120, 42.0)]
    assert march["complete"] is False and march["as_of"] == "2026-03-16T15:00:00.000Z"
    st = march["storage"]
    assert st["hours_stopped"] == pytest.approx(352.75) and st["usd"] == pytest.approx(1.76375, abs=1e-4)
    assert (st["gb"], st["usd_per_gb_hour"]) == (100, 0.00005)
    assert st["projected_usd"] == pytest.approx(1.76375 * 744 / 375, abs=1e-4)
    assert march["embeddings"]["usd"] == 0 and march["total"]["usd"] == pytest.approx(9.70 + 1.76375, abs=1e-4)
    assert "storage       352.75 h   $    1.76   stopped (100 GB at $5e-05/GB-h)" in render_cost(march)
    assert control.status()["session_usd"] == pytest.approx(1.50)  # session 5: 3 h at $0.50

    assert feb["complete"] is True and feb["gpu"]["hours"] == pytest.approx(2.0)
    assert feb["gpu"]["usd"] == pytest.approx(0.80) and feb["gpu"]["projected_usd"] == pytest.approx(0.80)
    assert feb["gpu"]["running"] is False and feb["tier"] == "Weekend"
    assert april["gpu"]["hours"] == 0 and april["gpu"]["projected_hours"] == 0 and april["complete"] is False


def test_budget_refuses_a_start_past_it_unless_forced(gpu_settings, instant_td, db_path) -> None:
    # $9.70 spent by Mar 16 15:00; one more session is 1 h x $0.50 → $10.20 > $10 (storage priced 0 here)
    control, clock = _simulate_march(gpu_settings | {"gpu.monthly_budget_usd": 10.0,
                                                     "gpu.storage_usd_per_gb_hour": 0}, instant_td)
    control.stop()
    clock.at(17, 9)
    with pytest.raises(BudgetExceeded) as refused:
        control.start()
    msg = str(refused.value)
    assert "monthly budget of $10.00 (gpu.monthly_budget_usd)" in msg and "$9.70 spent in 2026-03" in msg
    assert "~$0.50 for one session (1 h at $0.500/h)" in msg and "force" in msg
    assert refused.value.details["budget"]["spent_usd"] == pytest.approx(9.70)
    assert control.start(force=True)["action"] == "started"
    assert ledger(db_path)[-1][:2] == ("start", "api")


def test_budget_over_the_api_is_409_then_force_starts(gpu_settings, td, db_path) -> None:
    # nothing spent yet; one session (1 h x $0.40) is over a $0.30 budget
    client = make_app(gpu_settings, **{"gpu.monthly_budget_usd": 0.30}).test_client()
    refused = client.post("/api/v1/gpu/start", headers=AUTH)
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["error"]["code"] == "gpu_budget_exceeded" and "gpu.monthly_budget_usd" in body["error"]["message"]
    assert body["budget"]["usd"] == 0.30 and body["budget"]["session_usd"] == pytest.approx(0.40)
    assert starts(td) == 0
    forced = client.post("/api/v1/gpu/start", headers=AUTH, json={"force": True})
    assert forced.status_code == 202 and starts(td) == 1
    assert ledger(db_path) == [("start", "api", RATE)]


def test_embedding_spend_comes_from_the_embedding_calls_made(db_path) -> None:
    embed = EmbeddingsStandIn(dim=64).start()
    try:
        app = create_app({"server.db_path": str(db_path), "server.api_tokens": [TOKEN],
                          "embed.provider": "openai", "embed.openai_api_key": embed.expected_key,
                          "embed.openai_base_url": embed.url, "embed.openai_price_per_mtok": 2.0})
        client = app.test_client()
        assert client.post("/api/v1/items", json={"items": CORPUS}, headers=AUTH).get_json()["queued"] > 0
        assert drain_embeddings(app) > 0  # the embedding worker makes the calls, and books them
        first = client.get("/api/v1/cost", headers=AUTH).get_json()
        # the same items again: unchanged, no embedding call, no new spend
        assert client.post("/api/v1/items", json={"items": CORPUS}, headers=AUTH).get_json()["unchanged"] == 3
        assert drain_embeddings(app) == 0
        second = client.get("/api/v1/cost", headers=AUTH).get_json()
    finally:
        embed.stop()
    inputs = [t for r in embed.requests for t in r["body"]["input"]]
    tokens = sum(len(t.split()) for t in inputs)  # what the stand-in reported as usage
    assert tokens > 0 and first["embeddings"]["tokens"] == tokens and first["embeddings"]["texts"] == len(inputs)
    assert first["embeddings"]["usd"] == pytest.approx(tokens * 2.0 / 1e6)
    assert first["total"]["usd"] == pytest.approx(first["gpu"]["usd"] + tokens * 2.0 / 1e6, abs=1e-4)
    assert second["embeddings"] == first["embeddings"]
    now = datetime.now(UTC)
    assert first["month"] == f"{now.year:04d}-{now.month:02d}" and first["gpu"]["hours"] == 0


@pytest.mark.parametrize("month", ["2026-13", "2026-3", "March", "1999-01", "2026-00", "2026-03-01"])
def test_a_bad_month_is_400_naming_it(client, auth, month) -> None:
    resp = client.get("/api/v1/cost", query_string={"month": month}, headers=auth)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["field"] == "month" and "YYYY-MM" in resp.get_json()["error"]["message"]


def test_unknown_cost_parameter_is_400(client, auth) -> None:
    resp = client.get("/api/v1/cost?months=2026-03", headers=auth)
    assert resp.status_code == 400 and resp.get_json()["error"]["field"] == "months"


def test_december_ends_at_new_year() -> None:
    label, start, end = cost.month_bounds("2026-12", datetime(2026, 5, 1, tzinfo=UTC))
    assert (label, start.isoformat(), end.isoformat()) == (
        "2026-12", "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00")


def test_tiers_setting_is_validated() -> None:
    cfg = config_mod.load(env={}, overrides={"gpu.tiers": "Big:200, Tiny:10"})
    assert cfg.gpu.tiers == ["Big:200", "Tiny:10"]
    with pytest.raises(config_mod.ConfigError, match="gpu.tiers"):
        config_mod.load(env={}, overrides={"gpu.tiers": "Light=60"})


def test_cost_cli_local_and_json(runner, gpu_settings, instant_td, db_path) -> None:
    _simulate_march(gpu_settings, instant_td)
    env = {"BRAIN_DB": str(db_path)}
    text = runner.invoke(main, ["cost", "--local", "--month", "2026-02"], env=env)
    assert text.exit_code == 0, text.output
    assert text.output.startswith("Cost 2026-02 (complete)")
    assert "2.00 h   $    0.80   1 session(s)" in text.output and "within Weekend" in text.output
    data = json.loads(runner.invoke(main, ["cost", "--local", "--month", "2026-02", "--json"], env=env).output)
    assert data["gpu"]["usd"] == pytest.approx(0.80) and data["complete"] is True and data["tier"] == "Weekend"
    bad = runner.invoke(main, ["cost", "--local", "--month", "03/2026"], env=env)
    assert bad.exit_code == 2 and "--month" in bad.output and "YYYY-MM" in bad.output


def test_stopped_storage_counts_toward_the_budget(gpu_settings, instant_td) -> None:
    # $9.70 GPU + $1.76375 storage by Mar 16 15:00, + 1 h x $0.50: $11.96 > $11.50 (without storage: $10.20)
    control, clock = _simulate_march(gpu_settings | {"gpu.monthly_budget_usd": 11.50}, instant_td)
    control.stop()
    with pytest.raises(BudgetExceeded) as refused:
        control.start()
    assert "stopped storage $1.76" in str(refused.value)
    assert refused.value.details["budget"]["storage_usd"] == pytest.approx(1.76375, abs=1e-4)


def _replaced(gpu_settings, td: TensorDockStandIn, old_stops_at: int | None) -> tuple:
    """VM ``old`` runs from Mar 2 10:00 (and stops at ``old_stops_at`` o'clock if given); Pulumi
    replaces it; brain-api, now configured with ``new``, first polls at 14:00."""
    old = td.add_instance(status="Stopped", rate_hourly=0.40)
    clock = Clock()
    first = make_control(gpu_settings | {"gpu.instance_id": old, "gpu.tensordock_url": td.url}, clock=clock)
    clock.at(2, 10)
    first.start()
    if old_stops_at is not None:
        clock.at(2, old_stops_at)
        first.stop()
    new = td.add_instance(status="Stopped", rate_hourly=0.50)
    clock.at(2, 14)
    second = make_control(gpu_settings | {"gpu.instance_id": new, "gpu.tensordock_url": td.url}, clock=clock)
    second.status()
    return old, new, second, clock


def test_a_replaced_vm_closes_the_old_instances_open_session(gpu_settings, instant_td, db_path) -> None:
    old, new, control, clock = _replaced(gpu_settings, instant_td, old_stops_at=None)
    conn = store.connect(db_path)
    rows = conn.execute("SELECT instance_id, event, origin, at, note FROM gpu_ledger ORDER BY id").fetchall()
    assert [(r["instance_id"], r["event"], r["origin"]) for r in rows] == [(old, "start", "api"),
                                                                          (old, "stop", "replaced")]
    assert rows[-1]["at"] == "2026-03-02T14:00:00.000Z" and new in rows[-1]["note"]
    control.start()
    clock.at(2, 15)
    control.stop()
    control.status()  # polled again: nothing more to retire
    clock.at(2, 16)
    report = cost.month_report(conn, control.cfg, "2026-03", now=clock.now)
    conn.close()
    assert len(ledger(db_path)) == 4
    g = report["gpu"]
    assert g["sessions"] == 2 and g["running"] is False
    assert g["hours"] == pytest.approx(4 + 1) and g["usd"] == pytest.approx(4 * 0.40 + 1 * 0.50)
    # the old VM's disk went with it; the new one is stopped since 15:00
    assert report["storage"]["hours_stopped"] == pytest.approx(1)


def test_a_replaced_vm_that_was_stopped_stops_paying_storage(gpu_settings, instant_td, db_path) -> None:
    old, new, control, clock = _replaced(gpu_settings, instant_td, old_stops_at=12)
    clock.at(2, 20)
    conn = store.connect(db_path)
    report = cost.month_report(conn, control.cfg, "2026-03", now=clock.now)
    conn.close()
    assert [(e, o) for e, o, _ in ledger(db_path)] == [("start", "api"), ("stop", "api"), ("stop", "replaced")]
    assert report["gpu"]["hours"] == pytest.approx(2) and report["gpu"]["sessions"] == 1
    # old: stopped 12:00 → replaced 14:00 (2 h); new: never booked, so not counted
    assert report["storage"]["hours_stopped"] == pytest.approx(2)
    assert report["storage"]["usd"] == pytest.approx(2 * 100 * 0.00005)
