"""NeuroRoute: an OpenAI-compatible LLM gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

from app.settings import Settings, load_settings

if TYPE_CHECKING:
    from app.auth.service import Authenticator


def create_app(settings: Settings | None = None, *,
               authenticator: Authenticator | None = None) -> Flask:
    """Application factory: settings, services, request hooks, error handlers, blueprints.

    ``settings`` defaults to :func:`app.settings.load_settings` (environment + YAML file);
    ``authenticator`` replaces the database-backed key check (tests hand in a fake).
    Raises ``app.settings.ConfigError`` for an invalid configuration.
    """
    # Imported here, not at module level: importing any ``app.*`` module runs this package's
    # __init__, and the Gunicorn master reads ``app.settings`` before gevent patches sockets.
    from app.api import (
        admin,
        chat,
        completions,
        docs,
        embeddings,
        health,
        messages,
        models,
        register_auth_enforcement,
        register_request_hooks,
        responses,
    )
    from app.api.errors import register_error_handlers
    from app.api.headers import register_browser_headers
    from app.api.limits import AuthFailureLimit
    from app.cli import register_cli
    from app.console import session as console_session
    from app.console import views as console
    from app.gateway import build_gateway
    from app.logs import configure_logging

    settings = settings or load_settings()
    configure_logging(settings.log_level)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    api = docs.create_api(app, settings)  # the OpenAPI document, made from the blueprints
    for blueprint in (chat.bp, messages.bp, responses.bp, embeddings.bp, completions.bp,
                      models.bp, health.bp, admin.bp, docs.bp, console_session.bp):
        api.register_blueprint(blueprint)
    app.register_blueprint(docs.assets)
    app.register_blueprint(console.bp)  # the operator console's page and files (/ui)
    gw = build_gateway(app, settings, authenticator=authenticator)
    register_browser_headers(app, settings)  # 0. security headers, CORS (preflights end here)
    register_request_hooks(app, gw)  # 1. request id, observation, authentication recorded
    auth_limit = AuthFailureLimit(app, settings)  # 2. guesses counted per client address
    register_auth_enforcement(app)  # 3. a failed authentication becomes its 401 here
    register_error_handlers(app, rate_limited=auth_limit.error)
    if settings.trusted_proxy_hops:
        # Trust exactly this many proxies (e.g. nginx) for the client address and scheme.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    register_cli(app)
    return app
