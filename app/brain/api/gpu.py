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

from flask import Blueprint, current_app, jsonify

from brain.api import schema
from brain.api.deps import get_config, get_db
from brain.api.errors import ApiError, error_response
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


GPU_ERRORS = {409: "No GPU VM configured (`gpu_not_configured`), past the budget (`gpu_budget_exceeded`), asks "
                   "in flight (`gpu_requests_in_flight`) or the VM still starting (`gpu_state_conflict`).",
              502: "TensorDock failed (`tensordock_error`, with its own message).",
              503: "Another start or stop holds the lock (`gpu_busy`).",
              504: "The GPU VM did not come up within gpu.start_timeout (`gpu_start_timeout`)."}


@bp.get("/gpu")
@schema.operation("The GPU VM as TensorDock reports it now (`configured: false` without one)", schema.GpuStatus,
                  errors={502: "TensorDock failed (`tensordock_error`)."})
def gpu_status():
    control = get_gpu()
    if control is None:
        return jsonify({"configured": False, "state": "unmanaged",
                        "message": "no GPU VM is configured (gpu.instance_id): asks use llm.base_url as it is"})
    return jsonify(control.status())


@bp.post("/gpu/start")
@schema.operation("Start the GPU VM (202 when a start was requested, 200 when it was up or, with wait, is ready)",
                  schema.GpuAction, body=schema.GpuStartRequest, body_required=False, ok_status=(200, 202),
                  errors=GPU_ERRORS)
def gpu_start(body: schema.GpuStartRequest):
    result: dict[str, Any] = _required().start(force=body.force, wait=body.wait, origin="api")
    status = 202 if result["action"] == "started" and not body.wait else 200
    return jsonify(result), status


@bp.post("/gpu/stop")
@schema.operation("Stop the GPU VM", schema.GpuAction, body=schema.GpuStopRequest, body_required=False,
                  errors=GPU_ERRORS)
def gpu_stop(body: schema.GpuStopRequest):
    return jsonify(_required().stop(force=body.force, origin="api"))


@bp.get("/cost")
@schema.operation("GPU hours and dollars of a month, the projection, embedding spend and the tiers",
                  schema.CostAnswer, query=schema.CostQuery)
def cost_report(query: schema.CostQuery):
    try:
        report = cost.month_report(get_db(), get_config(), query.month)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc), field="month") from None
    return jsonify(report)
