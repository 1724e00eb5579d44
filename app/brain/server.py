"""Run brain-api: gunicorn in production, Flask's server for development."""

from __future__ import annotations

from typing import Any

from .config import Config


def run_dev(cfg: Config, host: str, port: int) -> None:
    from .api import create_app

    create_app(cfg).run(host=host, port=port, debug=False, threaded=True)


def gunicorn_options(host: str, port: int, workers: int) -> dict[str, Any]:
    """Threads per worker let a long streaming ``ask`` not block other requests."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": 4,
        "timeout": 360,
        "graceful_timeout": 30,
        "accesslog": "-",
        "errorlog": "-",
        "forwarded_allow_ips": "127.0.0.1,::1",
        # no runtime-management socket in $HOME: nothing uses it, and under systemd's
        # ProtectSystem=strict the home folder is read-only
        "control_socket_disable": True,
    }


def run_gunicorn(cfg: Config, host: str, port: int, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    from .api import create_app

    class BrainApplication(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options(host, port, workers).items():
                self.cfg.set(key, value)

        def load(self):
            return create_app(cfg)

    BrainApplication().run()
