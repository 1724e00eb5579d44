"""Run brain-api: gunicorn in production, Flask's server for development."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from brain.shared.settings import ServerConfig

log = logging.getLogger(__name__)


@contextmanager
def embed_worker_process(cfg: ServerConfig) -> Iterator[subprocess.Popen[bytes] | None]:
    """Run ``brain embed-worker`` beside the server (unless ``server.embed_worker`` is false).

    Why a child process and not a thread of a gunicorn worker: one worker per database, whatever
    the number of gunicorn processes, and its CPU-bound batches never hold up request threads.
    It exits with the server: stopped here, and by itself if this process dies (--exit-with-parent)."""
    if not cfg.server.embed_worker:
        yield None
        return
    cmd = [sys.executable, "-m", "brain"]
    if cfg.path:
        cmd += ["--config", str(cfg.path)]
    proc = subprocess.Popen([*cmd, "embed-worker", "--exit-with-parent"])
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def warm_up(app: Any) -> threading.Thread | None:
    """Start the ingest child and load the search indexes and the embedding model in a background
    thread of this worker process (``server.warm_start``), so neither the first POST nor the first
    search after a start waits for them. Requests are served meanwhile; one that needs a part still
    loading waits for that part only. A failure is logged and changes nothing: the first request
    then loads what it needs."""
    cfg: ServerConfig = app.config["BRAIN"]
    if not cfg.server.warm_start:
        return None

    def run() -> None:
        from brain.api import ingest_child
        from brain.api.deps import get_searcher
        from brain.core import store

        started = time.monotonic()
        try:
            ingest_child.prestart(cfg)
            with app.app_context():
                conn = store.connect(cfg.server.db_path, readonly=True)
                try:
                    loaded = get_searcher().warm(conn)
                finally:
                    conn.close()
        except Exception as exc:  # noqa: BLE001 - a warm-up is an optimisation, never a failure
            log.warning("search warm-up failed (the first search loads what it needs): %s", exc)
            return
        # in gunicorn's own log (at info there): the brain's loggers stay at warning in the API,
        # because some of their info lines hold a query's words
        logging.getLogger("gunicorn.error").info("search warm in %.1f s: %s", time.monotonic() - started, loaded)

    thread = threading.Thread(target=run, name="brain-warm-up", daemon=True)
    thread.start()
    return thread


def run_dev(cfg: ServerConfig, host: str, port: int) -> None:
    from brain.api import create_app

    app = create_app(cfg)
    warm_up(app)
    with embed_worker_process(cfg):
        app.run(host=host, port=port, debug=False, threaded=True)


# gunicorn's default with "%(m)s %(U)s %(H)s" (no query string) for "%(r)s" and without "%(f)s" (Referer)
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"'


def gunicorn_options(cfg: ServerConfig, host: str, port: int, workers: int) -> dict[str, Any]:
    """Threads per worker let a long streaming ``ask`` not block other requests.

    The worker is gthread reading request heads off its threads, with read/write timeouts and
    JSON errors (``brain.api.gunicorn_worker``); it bounds the request line itself, so gunicorn's
    ``limit_request_line`` (at most 8190 bytes, too short for a 2,000-character CJK ``q``) is off."""
    from brain.api.gunicorn_worker import BrainThreadWorker

    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": BrainThreadWorker.with_timeouts(cfg.server.head_timeout, cfg.server.read_timeout),
        "threads": 4,
        "limit_request_line": 0,
        "timeout": 360,
        "graceful_timeout": 30,
        "accesslog": "-",
        # the path without its query string, and no Referer (the page's own URL): a search's words
        # (?q=...) and the page's filters stay out of the log, as they do out of Caddy's
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        # X-Forwarded-Proto from the proxy on loopback only when configured (web.trust_proxy): it makes
        # the page's session cookie Secure; otherwise nobody may claim TLS for a plain connection
        "forwarded_allow_ips": "127.0.0.1,::1" if cfg.web.trust_proxy else "",
        # no runtime-management socket in $HOME: nothing uses it, and under systemd's
        # ProtectSystem=strict the home folder is read-only
        "control_socket_disable": True,
    }


def run_gunicorn(cfg: ServerConfig, host: str, port: int, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    from brain.api import create_app

    class BrainApplication(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options(cfg, host, port, workers).items():
                self.cfg.set(key, value)

        def load(self):
            app = create_app(cfg)  # in each worker, after the fork: its threads are its own
            warm_up(app)
            return app

    with embed_worker_process(cfg):
        BrainApplication().run()
