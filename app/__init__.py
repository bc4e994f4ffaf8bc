"""NeuroRoute: an OpenAI-compatible LLM gateway."""

from __future__ import annotations

from flask import Flask

from app.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Flask:
    """Application factory: settings, services, error handlers and blueprints; nothing else.

    ``settings`` defaults to :func:`app.settings.load_settings` (environment + YAML file).
    Raises ``app.settings.ConfigError`` for an invalid configuration.
    """
    from app.api import (
        admin,
        chat,
        docs,
        health,
        models,
        register_auth_enforcement,
        register_request_hooks,
    )
    from app.api.headers import register_browser_headers
    from app.cli import register_cli
    from app.errors import register_error_handlers
    from app.extensions import init_gateway
    from app.logs import configure_logging

    settings = settings or load_settings()
    configure_logging(settings.log_level)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    register_error_handlers(app)
    register_browser_headers(app, settings)  # 0. security headers, CORS (preflights end here)
    register_request_hooks(app)  # 1. request id, observation, authentication recorded
    api = docs.create_api(app, settings)  # the OpenAPI document, made from the blueprints
    for blueprint in (chat.bp, models.bp, health.bp, admin.bp, docs.bp):
        api.register_blueprint(blueprint)
    app.register_blueprint(docs.assets)
    init_gateway(app, settings)  # 2. services, including the rate limiter's hooks
    register_auth_enforcement(app)  # 3. a failed authentication becomes its 401 here
    if settings.trusted_proxy_hops:
        # Trust exactly this many proxies (e.g. nginx) for the client address and scheme.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    register_cli(app)
    return app
