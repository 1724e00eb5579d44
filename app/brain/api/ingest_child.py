"""Ingest's CPU work — validating, chunking and writing a batch — in a child process at a lower
CPU priority, one per API worker process.

Why a child process: a POST of 100 whole files costs seconds of CPU (tokenizing, tree-sitter,
identifier terms, FTS rows). Done in a request thread it competes with the searches at the same
priority, and in the same worker it also holds the GIL they need: with one client ingesting, the
p95 of 8 search clients through the API rose 3.7x (docs/PERFORMANCE.md, issue 11). A niced
*thread* would not help, because a low-priority thread preempted while it holds the GIL stalls
every search thread of its worker. A child process has its own GIL, and its nice value tells the
kernel to run searches first; the request thread only waits on a pipe.

The answer is the same as before: the child runs the very same ``Store.upsert`` in one
transaction, and the request waits for it, so a 200 still means "stored". Errors come back as
the same JSON answers (400, 503, 507): the child turns them into plain tuples, because a pickled
exception would lose its fields or fail to unpickle.

Until a worker's child has started (its imports take 1-2 s after boot) and after one has died, the
batch is stored in the request thread as before, while a new child starts in the background: no
POST ever waits for a child to start. ``server.ingest_nice`` < 0 keeps every batch in the request
thread (as before this module).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from brain.api import schema
from brain.api.errors import ApiError, storage_error
from brain.core import code_units, store
from brain.core.embed import EmbedError, get_text_model
from brain.shared import priority
from brain.shared.schema import ItemBatch
from brain.shared.settings import ServerConfig

log = logging.getLogger(__name__)

# what the child sends back: ("ok", counts) or ("error", status, code, message, field, index)
Answer = tuple[Any, ...]

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_pid = 0
_ready_pid = 0  # the process whose child has answered: batches go to it
_starting_pid = 0  # the process whose child is being started in the background
stored_in: Counter[str] = Counter()  # batches stored by "child" / "thread" in this process (what tests read)


def upsert(cfg: ServerConfig, body: dict[str, Any]) -> dict[str, int]:
    """Store the batch ``body``; raise the ApiError to answer with if it cannot be stored."""
    answer = _in_child(cfg, body) if cfg.server.ingest_nice >= 0 and _child_ready(cfg) else None
    if answer is None:
        stored_in["thread"] += 1
        answer = store_batch(cfg, body)
    else:
        stored_in["child"] += 1
    if answer[0] == "ok":
        return answer[1]
    _, status, code, message, field, index = answer
    if status >= 500:  # logged here: a spawned child's log records go nowhere
        log.error("ingest: %s", message)
    raise ApiError(status, code, message, field=field, index=index)


def _in_child(cfg: ServerConfig, body: dict[str, Any]) -> Answer | None:
    """The child's answer for the batch, or None if the child died (OOM killer, SIGKILL) before it
    answered: the caller then stores the batch itself, which is safe, since the dead child's
    transaction rolled back (and a batch it had committed comes back ``unchanged``)."""
    try:
        return _executor(cfg.server.ingest_nice).submit(store_batch, cfg, body).result()
    except BrokenProcessPool:
        _reset()
        log.warning("ingest process ended; this batch is stored in the request thread, a new one starts")
        _child_ready(cfg)
        return None


def _child_ready(cfg: ServerConfig) -> bool:
    """True if this process's child can take a batch now; else start one in the background."""
    global _starting_pid
    pid = os.getpid()
    with _lock:
        if _ready_pid == pid and _pool is not None and _pool_pid == pid:
            return True
        if _starting_pid == pid:
            return False
        _starting_pid = pid
    threading.Thread(target=prestart, args=(cfg,), name="brain-ingest-start", daemon=True).start()
    return False


def prestart(cfg: ServerConfig) -> None:
    """Start this worker's child and wait until it answers (its imports take 1-2 s); from then on
    batches go to it. Called at a worker's boot by the warm-up thread, and by ``_child_ready``."""
    global _ready_pid, _starting_pid
    if cfg.server.ingest_nice < 0:
        return
    pid = os.getpid()
    with _lock:
        _starting_pid = pid
    try:
        _executor(cfg.server.ingest_nice).submit(warm, cfg).result()
    except BrokenProcessPool:
        _reset()
        log.warning("ingest process could not start; batches are stored in the request threads")
        return
    with _lock:
        _ready_pid = pid


def warm(cfg: ServerConfig) -> None:
    """Run in the child by ``prestart``: importing this module (Flask, pydantic, the store) and loading
    the tokenizer and the code grammars happen here, at the child's lower priority, not in the first
    batch; a part that cannot load is left for that batch to report."""
    try:
        get_text_model(cfg)
        for language in code_units.GRAMMARS:
            code_units.available(language)
    except Exception as exc:  # noqa: BLE001 - an optimisation: the first batch loads what failed here
        log.debug("ingest process warm-up: %s", exc)


def store_batch(cfg: ServerConfig, body: dict[str, Any]) -> Answer:
    """Validate, chunk and write one batch (in the child, or in the request thread)."""
    try:
        batch = schema.validate(ItemBatch, body, "invalid_field", {"max_content_bytes": cfg.server.max_item_bytes})
        try:
            model = get_text_model(cfg)
        except EmbedError as exc:
            raise ApiError(503, "embedder_unavailable", f"the embedding model's tokenizer is not usable, nothing "
                           f"was stored: {exc}") from None
        # a connection per batch, closed after it: a kept one would hold the database's filesystem
        # busy (an operator's remount, a test's), and opening costs milliseconds against seconds of chunking
        conn: sqlite3.Connection | None = None
        try:
            conn = store.connect(cfg.server.db_path)
            result = store.Store(conn, cfg.embed.chunk_tokens, cfg.embed.chunk_overlap).upsert(
                batch.items, model, cfg.server.max_item_bytes)
        except store.ValidationError as exc:
            raise ApiError(400, "invalid_item", exc.message, field=exc.field, index=exc.index) from None
        except (sqlite3.Error, OSError) as exc:
            failure = storage_error(exc, cfg.server.db_path)
            if failure is None:
                raise
            raise failure from None
        finally:
            if conn is not None:
                conn.close()
        return ("ok", result.as_dict())
    except ApiError as exc:
        return ("error", exc.status, exc.code, exc.message, exc.field, exc.index)


def _executor(nice: int) -> ProcessPoolExecutor:
    """This worker process's ingest child, started on first use (after gunicorn's fork)."""
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            # spawn, not fork: the worker has threads (gunicorn's, ONNX Runtime's, faiss's)
            _pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=priority.lower, initargs=(nice,))
            _pool_pid = os.getpid()
        return _pool


def _reset() -> None:
    global _pool, _ready_pid, _starting_pid
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None
        _ready_pid = _starting_pid = 0
