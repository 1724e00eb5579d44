"""The embedding worker: drains the embedding queue that ingest fills, one process per database.

Why a separate process: ingest only stores (so a collector's POST never waits for a model), and
embedding is CPU-bound work that should use every core without stealing them from the API's
request threads in a burst. The worker takes the oldest queued texts, embeds them in one call
and stores the vectors and takes the texts off the queue in one short transaction, so:

- a SIGKILL at any point loses nothing and stores nothing twice: the batch in flight is still
  queued and is simply embedded again by the next worker;
- a transient embedder failure (API 503, timeout) is retried with exponential backoff, capped,
  for as long as it lasts; a text the embedder refuses for good (e.g. an API's 400) is found by
  halving the batch, counted against that text alone and parked after ``MAX_EMBED_ATTEMPTS``;
- one worker per database holds ``<db>.embed-worker.lock`` (``flock``); a second one waits for
  the lock, so starting one from ``brain serve`` and one from systemd is harmless;
- the worker also keeps the database's search indexes (brain.core.search_index) in step, in a
  thread of its own: being the one process per database makes it their one writer.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from brain.core import store
from brain.core.embed import Embedder, EmbedError
from brain.core.search_index import start_keeper
from brain.shared import priority
from brain.shared.settings import ServerConfig

log = logging.getLogger(__name__)

Wait = Callable[[float], bool]  # sleeps up to n seconds; True when asked to stop


@dataclass
class WorkerStats:
    embedded: int = 0
    batches: int = 0
    failures: int = 0
    dropped: int = 0
    delays: list[float] = field(default_factory=list)


class EmbedWorker:
    """Embeds queued chunk texts of one model into one database.

    ``embedder`` is built lazily by ``make_embedder`` (loading a model takes seconds and may fail;
    the worker keeps retrying). ``wait`` is how the worker sleeps: by default on its stop event, so
    ``stop()`` ends any wait at once; tests pass one that records the delays and returns at once."""

    def __init__(self, db_path: str | Path, model_id: str, make_embedder: Callable[[], Embedder], *,
                 batch: int = 64, idle_poll: float = 1.0, max_backoff: float = 60.0, wait: Wait | None = None,
                 exit_with_parent: bool = False, chunk_tokens: int = 200, chunk_overlap: int = 32):
        self.db_path = Path(db_path)
        self.model_id = model_id
        self._make_embedder = make_embedder
        self._embedder: Embedder | None = None
        self.batch = batch
        self.idle_poll = idle_poll
        self.max_backoff = max_backoff
        self._stop = threading.Event()
        self._wait: Wait = wait or self._stop.wait
        self._parent = os.getppid() if exit_with_parent else None
        self.stats = WorkerStats()
        self._conn = store.connect(self.db_path)
        store.migrate(self._conn)
        self._store = store.Store(self._conn, chunk_tokens, chunk_overlap)

    # -- control -------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() or (self._parent is not None and os.getppid() != self._parent)

    def close(self) -> None:
        self._conn.close()

    # -- work ----------------------------------------------------------------------

    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._make_embedder()
            if self._embedder.model_id != self.model_id:
                raise EmbedError(f"the embedder gives {self._embedder.model_id!r} vectors, the queue is for "
                                 f"{self.model_id!r}", transient=False)
        return self._embedder

    def run_once(self) -> int:
        """Embed one batch; return how many queued texts it took off the queue (0: queue empty).

        Raises EmbedError when the embedder failed transiently (the caller backs off)."""
        batch = self._store.claim(self.model_id, self.batch)
        if not batch:
            return 0
        dropped = [q for q in batch if q.text is None]
        todo = [q for q in batch if q.text is not None]
        if not todo:
            self._store.store_vectors(self.model_id, [], dropped, 0, 0.0)
            self.stats.dropped += len(dropped)
            return len(dropped)
        taken = self._embed_and_store(todo, dropped)
        return taken

    def _embed_and_store(self, todo: list[store.QueuedText], dropped: list[store.QueuedText]) -> int:
        embedder = self.embedder()
        try:
            res = embedder.embed([q.text or "" for q in todo])
        except EmbedError as exc:
            if exc.transient:
                raise
            if len(todo) > 1:  # find the text the embedder refuses: halve until it stands alone
                half = len(todo) // 2
                return (self._embed_and_store(todo[:half], dropped) + self._embed_and_store(todo[half:], []))
            log.warning("embedder refused a queued text (%s): %s", todo[0].text_hash[:12], exc)
            self._store.mark_failed(self.model_id, todo, str(exc))
            self.stats.failures += 1
            if dropped:
                self._store.store_vectors(self.model_id, [], dropped, 0, 0.0)
            return len(dropped)
        self._store.store_vectors(self.model_id, list(zip(todo, res.vectors)), dropped, res.tokens,
                                  embedder.price_per_mtok)
        self.stats.embedded += len(todo)
        self.stats.dropped += len(dropped)
        self.stats.batches += 1
        return len(todo) + len(dropped)

    def drain(self, progress: Callable[[int], None] | None = None) -> int:
        """Embed until the queue of this model is empty or the worker is stopped; transient
        failures back off and retry. Returns the number of texts taken off the queue.

        A database that cannot be written (disk full, read-only, I/O error) is transient too: the
        batch's transaction rolled back, and the worker carries on by itself once the disk is
        writable again, without a restart."""
        total = 0
        backoff = 0.0
        while not self.stopping:
            try:
                n = self.run_once()
            except (EmbedError, sqlite3.OperationalError) as exc:
                backoff = min(self.max_backoff, backoff * 2 if backoff else 1.0)
                self.stats.failures += 1
                self.stats.delays.append(backoff)
                what = "embedding" if isinstance(exc, EmbedError) else "storing vectors"
                log.warning("%s failed, retrying in %.0f s: %s", what, backoff, exc)
                if self._wait(backoff):
                    break
                continue
            backoff = 0.0
            if n == 0:
                return total
            total += n
            if progress:
                progress(total)
        return total

    def rechunk_step(self, limit: int = 20) -> int:
        """Chunk again a few items an older chunker cut (``Store.rechunk``); 0 when none is left or
        the embedder (whose tokenizer counts the chunks) cannot load now."""
        try:
            return self._store.rechunk(self.embedder(), limit)
        except (EmbedError, sqlite3.OperationalError) as exc:
            log.info("items left to chunk again wait: %s", exc)
            return 0

    def run_forever(self) -> None:
        """Drain, then chunk again what an older chunker cut (a little at a time, new texts first),
        then poll the queue every ``idle_poll`` seconds, until stopped."""
        while not self.stopping:
            self.drain()
            if self.stopping:
                break
            if self.rechunk_step():
                continue
            if self._wait(self.idle_poll):
                break


class WorkerLock:
    """The per-database lock that makes one worker the only one embedding into a database."""

    def __init__(self, db_path: str | Path):
        self.path = Path(str(db_path) + ".embed-worker.lock")
        self._fh: IO[str] | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the worker's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def is_held_elsewhere(self) -> bool:
        if self._fh is not None:
            return False
        if self.try_acquire():
            self.release()
            return False
        return True


def wait_for_lock(lock: WorkerLock, wait: Wait, poll: float, stopping: Callable[[], bool]) -> bool:
    """Wait until this process holds the lock (True) or it is asked to stop (False)."""
    announced = False
    while not lock.try_acquire():
        if not announced:
            log.info("another embed worker (pid %s) holds %s; waiting for it", lock.holder(), lock.path)
            announced = True
        if stopping() or wait(poll):
            return False
    return True


def run_worker(cfg: ServerConfig, *, once: bool = False, exit_with_parent: bool = False,
               progress: Callable[[int], None] | None = None, lower_priority: bool = True) -> int:
    """The ``brain embed-worker`` process: hold the database's lock, then drain (``once``) or run until
    SIGTERM/SIGINT. Returns the number of texts taken off the queue.

    ``lower_priority``: the process's own worker runs niced; a caller that drains in its own
    process for a person waiting on it (``brain reindex``) passes False, since a nice value cannot
    be raised back and would stay on that process (and on everything it starts afterwards)."""
    from brain.core.embed import get_embedder, get_text_model

    if lower_priority:
        # background work: brain-api's request threads (search), then its ingest children (nice
        # 10, server.ingest_nice), get the cores first: at nice 10 beside them, the worker took half
        # the CPU a POST needed and put its p95 over 1 s (docs/PERFORMANCE.md). embed.worker_nice,
        # 15 by default; the systemd unit sets 15 itself, this covers `brain serve` and a hand-started worker
        priority.lower(max(0, cfg.embed.worker_nice - os.nice(0)))
    model_id = get_text_model(cfg).model_id
    worker = EmbedWorker(cfg.server.db_path, model_id, lambda: get_embedder(cfg, threads=cfg.embed.threads),
                         batch=cfg.embed.worker_batch, exit_with_parent=exit_with_parent,
                         chunk_tokens=cfg.embed.chunk_tokens, chunk_overlap=cfg.embed.chunk_overlap)
    previous = {sig: signal.signal(sig, lambda *_: worker.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    lock = WorkerLock(cfg.server.db_path)
    try:
        if not wait_for_lock(lock, worker._wait, worker.idle_poll, lambda: worker.stopping):
            return 0
        log.info("embed worker %s: embedding %s vectors into %s", os.getpid(), model_id, cfg.server.db_path)
        if once:
            return worker.drain(progress)
        # the search indexes beside the database follow it from this process, the one writer per database
        keeper = start_keeper(cfg.server.db_path, model_id, worker._stop)
        worker.run_forever()
        worker.stop()
        if keeper is not None:
            keeper.join(timeout=30)
        return worker.stats.embedded + worker.stats.dropped
    finally:
        lock.release()
        worker.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
