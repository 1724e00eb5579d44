"""brain-api: the Flask application factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from brain.api import auth, errors, items, ops, params, search
from brain.api.deps import close_db
from brain.core import store
from brain.shared import config as config_mod

log = logging.getLogger(__name__)


def create_app(test_config: dict[str, Any] | config_mod.Config | None = None) -> Flask:
    """Build the app. ``test_config`` is a Config or a dict of dotted settings overriding the loaded ones."""
    if isinstance(test_config, config_mod.Config):
        cfg = test_config
    else:
        cfg = config_mod.load(overrides=test_config or None)
    app = Flask(__name__)
    app.config["BRAIN"] = cfg
    app.config["MAX_CONTENT_LENGTH"] = cfg["server.max_body_bytes"]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    conn = store.connect(cfg["server.db_path"])
    try:
        store.migrate(conn)
    finally:
        conn.close()
    if not cfg["server.api_tokens"]:
        log.warning("no API tokens configured (server.api_tokens / BRAIN_API_TOKENS): every API call gets 401")

    errors.register(app)
    app.teardown_appcontext(close_db)
    app.before_request(auth.require_token)  # every endpoint but those in auth.PUBLIC_ENDPOINTS
    app.before_request(params.check_url_text)  # the body's NUL rule for the query string and path
    for bp in (ops.health_bp, ops.bp, items.bp, search.bp):
        app.register_blueprint(bp)
    # --- blueprints of other areas register below (auth applies to them automatically) ---
    from brain.api import ask as ask_api  # issue 4: POST /api/v1/ask (its blueprint requires the token itself)
    app.register_blueprint(ask_api.bp)
    from brain.api import gpu as gpu_api  # issue 7: /api/v1/gpu, /api/v1/gpu/start|stop, /api/v1/cost
    app.register_blueprint(gpu_api.bp)
    from brain.api import forget as forget_api  # issue 16: POST /api/v1/forget, /api/v1/tombstones (undo)
    app.register_blueprint(forget_api.bp)
    from brain.api import timeline as timeline_api  # issue 16: GET /api/v1/timeline
    app.register_blueprint(timeline_api.bp)
    from brain.api import web  # issue 16: the web page at / (its own sign-in, CSP, CSRF)
    app.register_blueprint(web.bp)
    if cfg["web.trust_proxy"]:  # Caddy in front: its X-Forwarded-Proto/-For (see web_auth.set_cookie)
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    return app
