"""brain-api: the Flask application factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask

from brain.api import auth, errors, items, ops, params, schema, search
from brain.api.deps import close_db
from brain.core import store
from brain.shared import config as config_mod
from brain.shared.settings import ServerConfig

log = logging.getLogger(__name__)


def create_app(test_config: dict[str, Any] | ServerConfig | None = None) -> Flask:
    """Build the app. ``test_config`` is a ServerConfig or a dict of dotted settings overriding the loaded ones."""
    if isinstance(test_config, ServerConfig):
        cfg = test_config
    else:
        cfg = config_mod.load(overrides=test_config or None, kind=ServerConfig)
    app = Flask(__name__)
    app.config["BRAIN"] = cfg
    app.config["MAX_CONTENT_LENGTH"] = cfg.server.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    conn = store.connect(cfg.server.db_path)
    try:
        store.migrate(conn)
    finally:
        conn.close()
    if not cfg.server.api_tokens:
        log.warning("no API tokens configured (server.api_tokens / BRAIN_API_TOKENS): every API call gets 401")

    errors.register(app)
    app.teardown_appcontext(close_db)
    app.before_request(auth.require_token)  # every endpoint but those in auth.PUBLIC_ENDPOINTS
    app.before_request(params.check_url_text)  # the body's NUL rule for the query string and path
    for bp in blueprints():
        app.register_blueprint(bp)  # auth applies to them all (the page checks its own sessions)
    if cfg.web.trust_proxy:  # Caddy in front: its X-Forwarded-Proto/-For (see web_auth.set_cookie)
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    return app


def blueprints() -> list[Blueprint]:
    """Every blueprint of brain-api: the API's routes (each declares its models, ``brain.api.schema``)
    and the web page at / (its own sign-in, CSP, CSRF)."""
    from brain.api import ask, forget, gpu, timeline, web

    return [ops.health_bp, ops.bp, items.bp, search.bp, ask.bp, gpu.bp, forget.bp, timeline.bp, web.bp]


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document ``GET /api/v1/openapi.json`` serves, without settings or a database
    (for tests and tools: ``python -c "from brain.api import openapi_document; ..."``)."""
    from brain import __version__

    app = Flask(__name__)
    for bp in blueprints():
        app.register_blueprint(bp)
    return schema.openapi(app, __version__)
