"""GPU VM control and the cost report over HTTP (issue 7).

- ``GET /api/v1/gpu`` → the VM's state from TensorDock, IP, hourly rate, this session's time and
  cost, Ollama readiness, requests in flight, when the idle stop is due. ``{"configured": false}``
  when no GPU VM is configured.
- ``POST /api/v1/gpu/start`` ``{"force"?: bool, "wait"?: bool}`` → ``202`` when a start was
  requested, ``200`` when the VM was already up (or, with ``wait``, once Ollama answers);
  ``409 gpu_budget_exceeded`` past ``gpu.monthly_budget_usd`` unless ``force``.
- ``POST /api/v1/gpu/stop`` ``{"force"?: bool}`` → ``200``; ``409 gpu_requests_in_flight`` while
  asks use the LLM, unless ``force``.
- ``GET /api/v1/cost?month=YYYY-MM`` → GPU hours and dollars, projection, embedding spend, tiers.

TensorDock failures answer ``502 tensordock_error`` with TensorDock's own message; no GPU VM
configured answers ``409 gpu_not_configured``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from brain.api.deps import get_config, get_db
from brain.api.errors import ApiError, error_response
from brain.api.params import body_bytes, json_body
from brain.gpu import control as gpu
from brain.gpu import cost

bp = Blueprint("gpu", __name__, url_prefix="/api/v1")


def get_gpu() -> gpu.GpuControl | None:
    """This worker's GPU control (built once), or None when no GPU VM is configured."""
    ext = current_app.extensions
    if "brain_gpu" not in ext:
        ext["brain_gpu"] = gpu.control_for(get_config())
    return ext["brain_gpu"]


def _required() -> gpu.GpuControl:
    control = get_gpu()
    if control is None:
        raise gpu.GpuNotConfigured("no GPU VM is configured on this brain-api: set gpu.instance_id "
                                   "(BRAIN_GPU_INSTANCE_ID) and the TensorDock token (TENSORDOCK_API_TOKEN)")
    return control


@bp.errorhandler(gpu.GpuError)
def _gpu_error(exc: gpu.GpuError):
    return error_response(exc.status, exc.code, exc.message, extra=exc.details)


def _options(allowed: set[str]) -> dict[str, bool]:
    """The optional JSON body of start/stop: only boolean flags from ``allowed``; no body is fine."""
    if not body_bytes():
        return {}
    body = json_body(allowed=allowed)
    out: dict[str, bool] = {}
    for name, value in body.items():
        if not isinstance(value, bool):
            raise ApiError(400, "invalid_parameter", f"{name} must be true or false", field=name)
        out[name] = value
    return out


@bp.get("/gpu")
def gpu_status():
    control = get_gpu()
    if control is None:
        return jsonify({"configured": False, "state": "unmanaged",
                        "message": "no GPU VM is configured (gpu.instance_id): asks use llm.base_url as it is"})
    return jsonify(control.status())


@bp.post("/gpu/start")
def gpu_start():
    opts = _options({"force", "wait"})
    result: dict[str, Any] = _required().start(force=opts.get("force", False), wait=opts.get("wait", False),
                                               origin="api")
    status = 202 if result["action"] == "started" and not opts.get("wait") else 200
    return jsonify(result), status


@bp.post("/gpu/stop")
def gpu_stop():
    opts = _options({"force"})
    return jsonify(_required().stop(force=opts.get("force", False), origin="api"))


@bp.get("/cost")
def cost_report():
    unknown = sorted(set(request.args) - {"month"})
    if unknown:
        raise ApiError(400, "invalid_parameter", f"unknown parameter {unknown[0]!r}", field=unknown[0])
    try:
        report = cost.month_report(get_db(), get_config(), request.args.get("month"))
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc), field="month") from None
    return jsonify(report)
