"""``brain gpu status|start|stop|idle-check`` and ``brain cost`` (issue 7).

Why two ways to reach the GPU: on the laptop the CLI goes through brain-api (which holds the
TensorDock token and the ledger); on the brain VM ``--local`` works on the database and
TensorDock directly, and ``idle-check`` (run by a systemd timer every minute) always does.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from brain.cli import api_errors
from brain.shared.settings import FullConfig, ServerConfig

if TYPE_CHECKING:
    from brain.gpu import control as gpu_mod


def _control(cfg: ServerConfig) -> gpu_mod.GpuControl | None:
    """The GPU control on brain-api's host (``--local``, ``idle-check``): the server side, imported here."""
    from brain.core import store
    from brain.gpu import control as gpu_mod

    if not cfg.gpu.instance_id:
        return None  # and no database is created where none is needed
    conn = store.connect(cfg.server.db_path)
    try:
        store.migrate(conn)
    finally:
        conn.close()
    try:
        return gpu_mod.control_for(cfg)
    except gpu_mod.GpuError as exc:
        raise click.ClickException(exc.message) from None


def _required(cfg: ServerConfig) -> gpu_mod.GpuControl:
    control = _control(cfg)
    if control is None:
        raise click.ClickException("no GPU VM is configured: set gpu.instance_id (BRAIN_GPU_INSTANCE_ID)")
    return control


def _api(cfg: FullConfig, method: str, path: str, **kw: Any) -> dict[str, Any]:
    client = api_errors.client(cfg)
    with api_errors.reported():
        return client.request(method, path, **kw)


def _local(call: Any) -> Any:
    from brain.gpu import control as gpu_mod

    try:
        return call()
    except gpu_mod.GpuError as exc:
        raise click.ClickException(f"{exc.message} [{exc.code}]") from None


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def render_status(s: dict[str, Any]) -> str:
    """``GET /api/v1/gpu`` as a few lines."""
    if not s.get("configured"):
        return s.get("message", "no GPU VM is configured")
    where = f" at {s['ip']}" if s.get("ip") else ""
    lines = [f"GPU VM {s['instance_id']}: {s['state']}{where}, ${s['rate_hourly']:.3f}/h ({s['rate_source']})"]
    if s.get("up_since"):
        lines.append(f"  up {_duration(s['session_seconds'])} this session (since {s['up_since']}), "
                     f"${s['session_usd']:.2f} so far")
    ollama = s["ollama"]
    lines.append(f"  Ollama {ollama['url']}: {'ready' if ollama['ready'] else 'not answering'}")
    lines.append(f"  last ask {s.get('last_ask_at') or 'never'}, {s['in_flight']} in flight; auto start "
                 f"{'on' if s['auto_start'] else 'off'}")
    if s.get("idle_stop_at"):
        lines.append(f"  idle stop due at {s['idle_stop_at']} (after {s['idle_minutes']:g} min without an ask)")
    return "\n".join(lines)


def render_cost(report: dict[str, Any]) -> str:
    """``GET /api/v1/cost``'s report as a few lines for the terminal (``brain cost``)."""
    g, e, t, s = report["gpu"], report["embeddings"], report["total"], report["storage"]
    state = "complete" if report["complete"] else f"as of {report['as_of'][:16].replace('T', ' ')} UTC"
    lines = [
        f"Cost {report['month']} ({state})",
        f"  GPU         {g['hours']:8.2f} h   ${g['usd']:8.2f}   {g['sessions']} session(s)"
        + ("; running now" if g["running"] else ""),
        f"  storage     {s['hours_stopped']:8.2f} h   ${s['usd']:8.2f}   stopped ({s['gb']} GB at "
        f"${s['usd_per_gb_hour']:g}/GB-h)",
        f"  embeddings  {e['tokens']:>10,} tokens   ${e['usd']:8.4f}",
        f"  total                    ${t['usd']:8.2f}",
    ]
    if not report["complete"]:
        lines.append(f"  projected   {g['projected_hours']:8.2f} h   ${t['projected_usd']:8.2f} by month end "
                     f"(GPU ${g['projected_usd']:.2f}, storage ${s['projected_usd']:.2f}, "
                     f"embeddings ${e['projected_usd']:.4f})")
    if report["budget"]:
        b = report["budget"]
        over = "; projection is OVER budget" if b["projected_over"] else ""
        lines.append(f"  budget                   ${b['usd']:8.2f}   ${b['remaining_usd']:.2f} left{over}")
    lines.append("  tiers at ${:.2f}/h: ".format(report["hourly_rate"])
                 + " | ".join(f"{x['name']} {x['hours']:g} h ${x['gpu_usd']:.2f}" for x in report["tiers"]))
    lines.append(f"  {report['tier_note']}")
    return "\n".join(lines)


def _echo(data: dict[str, Any], as_json: bool) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else render_status(data))


@click.group("gpu")
def gpu_group() -> None:
    """Start, stop and watch the GPU VM (TensorDock) that runs the LLM."""


@gpu_group.command("status")
@click.option("--local", is_flag=True, help="Ask TensorDock directly with this host's config, not brain-api.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON of GET /api/v1/gpu.")
@click.pass_obj
def status_cmd(obj: Any, local: bool, as_json: bool) -> None:
    """Show the GPU VM's state, IP, hourly rate and this session's time and cost.

    \b
    Example:
      brain gpu status
    """
    if local:
        control = _control(obj.server)
        data = {"configured": False, "message": "no GPU VM is configured (gpu.instance_id)"} if control is None \
            else _local(control.status)
    else:
        data = _api(obj.full, "GET", "/api/v1/gpu")
    _echo(data, as_json)


@gpu_group.command("start")
@click.option("--force", is_flag=True, help="Start even past gpu.monthly_budget_usd.")
@click.option("--no-wait", is_flag=True, help="Return once TensorDock accepted the start; don't wait for Ollama.")
@click.option("--local", is_flag=True, help="Use TensorDock directly with this host's config, not brain-api.")
@click.option("--json", "as_json", is_flag=True, help="Print the final state as JSON.")
@click.pass_obj
def start_cmd(obj: Any, force: bool, no_wait: bool, local: bool, as_json: bool) -> None:
    """Start the GPU VM and wait (up to gpu.start_timeout) until Ollama answers.

    \b
    Example:
      brain gpu start
      brain gpu start --force      # past the monthly budget
    """
    if local:
        control = _required(obj.server)
        data = _local(lambda: control.start(
            force=force, wait=not no_wait, origin="cli",
            progress=lambda p: click.echo(f"[{p.elapsed_s:5.1f}s] {p.message}", err=True)))
    else:
        data = _api(obj.full, "POST", "/api/v1/gpu/start", json={"force": force, "wait": False})
        if not no_wait:
            data = _wait_remote(obj.full, data)
    if not as_json:
        click.echo("start requested" if data["action"] == "started" else "the GPU VM was already up", err=True)
    _echo(data, as_json)


def _wait_remote(cfg: FullConfig, data: dict[str, Any]) -> dict[str, Any]:
    """Poll ``GET /api/v1/gpu`` until Ollama answers, printing each change of state."""
    deadline = time.monotonic() + cfg.gpu.start_timeout
    seen = ""
    while not data["ollama"]["ready"]:
        if data["state"] != seen:
            seen = data["state"]
            click.echo(f"GPU VM is {seen}; waiting for Ollama ...", err=True)
        if time.monotonic() >= deadline:
            raise click.ClickException(f"the GPU VM is {data['state']} and Ollama does not answer after "
                                       f"{cfg.gpu.start_timeout:g} s (gpu.start_timeout)")
        time.sleep(cfg.gpu.poll_interval)
        data = {**_api(cfg, "GET", "/api/v1/gpu"), "action": data["action"]}
    return data


@gpu_group.command("stop")
@click.option("--force", is_flag=True, help="Stop even while asks are using the LLM.")
@click.option("--local", is_flag=True, help="Use TensorDock directly with this host's config, not brain-api.")
@click.option("--json", "as_json", is_flag=True, help="Print the final state as JSON.")
@click.pass_obj
def stop_cmd(obj: Any, force: bool, local: bool, as_json: bool) -> None:
    """Stop the GPU VM (its GPU billing stops); refused while asks are in flight unless --force.

    \b
    Example:
      brain gpu stop
    """
    if local:
        control = _required(obj.server)
        data = _local(lambda: control.stop(force=force, origin="cli"))
    else:
        data = _api(obj.full, "POST", "/api/v1/gpu/stop", json={"force": force})
    if not as_json:
        click.echo("stop requested" if data["action"] == "stopped" else "the GPU VM was not running", err=True)
    _echo(data, as_json)


@gpu_group.command("idle-check")
@click.pass_obj
def idle_check_cmd(obj: Any) -> None:
    """Stop the GPU VM if nothing was asked for gpu.idle_minutes and nothing is in flight.

    Runs on the brain VM (database and TensorDock directly); the brain-gpu-idle.timer runs it
    every minute. Exit status 1 only when TensorDock cannot be asked.

    \b
    Example:
      BRAIN_GPU_IDLE_MINUTES=15 brain gpu idle-check
    """
    control = _control(obj.server)
    if control is None:
        click.echo("no GPU VM is configured (gpu.instance_id): nothing to do")
        return
    result = _local(control.idle_check)
    click.echo(f"{result['action']}: {result['reason']}")


@click.command("cost")
@click.option("--month", help="YYYY-MM (default: this month, UTC).")
@click.option("--local", is_flag=True, help="Read this host's database instead of asking brain-api.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON of GET /api/v1/cost.")
@click.pass_obj
def cost_cmd(obj: Any, month: str | None, local: bool, as_json: bool) -> None:
    """GPU hours and dollars this month, projection to month end, embedding spend, the plan's tiers.

    \b
    Example:
      brain cost
      brain cost --month 2026-03 --json
    """
    if local:
        from brain.core import store
        from brain.gpu import cost

        cfg = obj.server
        conn = store.connect(cfg.server.db_path)
        try:
            store.migrate(conn)
            data = cost.month_report(conn, cfg, month)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--month") from None
        finally:
            conn.close()
    else:
        data = _api(obj.full, "GET", "/api/v1/cost", params={"month": month})
    click.echo(json.dumps(data, indent=2) if as_json else render_cost(data))
