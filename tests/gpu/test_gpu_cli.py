"""``brain gpu status|start|stop`` and ``brain cost``: through brain-api over real HTTP, and --local."""

from __future__ import annotations

import json

from brain.cli.main import main
from tests.conftest import TOKEN

from .conftest import RATE, ledger, make_app, starts, stops


def test_status_start_stop_through_brain_api(runner, gpu_settings, serve, td, vm, db_path) -> None:
    env = {"BRAIN_API_URL": serve(make_app(gpu_settings)), "BRAIN_TOKEN": TOKEN, "BRAIN_GPU_POLL_INTERVAL": "0.05"}
    status = runner.invoke(main, ["gpu", "status"], env=env)
    assert status.exit_code == 0, status.output
    assert status.output.startswith(f"GPU VM {vm}: stopped at 203.0.113.")
    assert "$0.400/h (tensordock)" in status.output and "not answering" in status.output

    started = runner.invoke(main, ["gpu", "start"], env=env)
    assert started.exit_code == 0, started.output
    assert "start requested" in started.output and "Ollama" in started.output and ": ready" in started.output
    assert "running" in started.output and "this session" in started.output

    data = json.loads(runner.invoke(main, ["gpu", "status", "--json"], env=env).output)
    assert data["state"] == "running" and data["ollama"]["ready"] is True

    stopped = runner.invoke(main, ["gpu", "stop"], env=env)
    assert stopped.exit_code == 0 and "stop requested" in stopped.output
    assert (starts(td), stops(td)) == (1, 1)
    assert ledger(db_path) == [("start", "api", RATE), ("stop", "api", RATE)]

    cost = runner.invoke(main, ["cost"], env=env)
    assert cost.exit_code == 0 and cost.output.startswith("Cost ") and "1 session(s)" in cost.output
    bad = runner.invoke(main, ["cost", "--month", "2026-13"], env=env)
    assert bad.exit_code == 1 and "month must be YYYY-MM" in bad.output and "HTTP 400" in bad.output


def test_budget_refusal_reaches_the_cli_and_force_passes(runner, gpu_settings, serve, td) -> None:
    env = {"BRAIN_API_URL": serve(make_app(gpu_settings, **{"gpu.monthly_budget_usd": 0.1})), "BRAIN_TOKEN": TOKEN}
    refused = runner.invoke(main, ["gpu", "start", "--no-wait"], env=env)
    assert refused.exit_code == 1 and "gpu.monthly_budget_usd" in refused.output and "gpu_budget_exceeded" in refused.output
    forced = runner.invoke(main, ["gpu", "start", "--no-wait", "--force"], env=env)
    assert forced.exit_code == 0 and "start requested" in forced.output and starts(td) == 1


def test_local_commands_use_tensordock_directly(runner, gpu_settings, td, vm, db_path) -> None:
    env = {"BRAIN_DB": gpu_settings["server.db_path"], "BRAIN_GPU_INSTANCE_ID": vm, "TENSORDOCK_API_TOKEN": td.token,
           "TENSORDOCK_BASE_URL": td.url, "BRAIN_GPU_POLL_INTERVAL": "0.05",
           "BRAIN_LLM_BASE_URL": gpu_settings["llm.base_url"]}
    started = runner.invoke(main, ["gpu", "start", "--local"], env=env)
    assert started.exit_code == 0, started.output
    assert "starting the GPU VM ($0.400/h)" in started.output and "the LLM is ready" in started.output
    status = runner.invoke(main, ["gpu", "status", "--local"], env=env)
    assert "running" in status.output and "ready" in status.output
    stopped = runner.invoke(main, ["gpu", "stop", "--local"], env=env)
    assert stopped.exit_code == 0 and "stop requested" in stopped.output
    assert ledger(db_path) == [("start", "cli", RATE), ("stop", "cli", RATE)]
    unconfigured = runner.invoke(main, ["gpu", "start", "--local"], env={"BRAIN_DB": gpu_settings["server.db_path"]})
    assert unconfigured.exit_code == 1 and "gpu.instance_id" in unconfigured.output


def test_unreachable_brain_api_is_named(runner) -> None:
    from tests.conftest import closed_port_url

    url = closed_port_url()
    result = runner.invoke(main, ["gpu", "status"], env={"BRAIN_API_URL": url, "BRAIN_TOKEN": TOKEN,
                                                          "BRAIN_CLIENT_MAX_RETRIES": "0"})
    assert result.exit_code == 1 and url in result.output
