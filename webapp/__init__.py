"""Flask app that shows MNIST test digits with the ONNX model's predictions."""

from __future__ import annotations

from flask import Flask

from webapp.settings import REPO_ROOT, StartupError, load_settings

__all__ = ["StartupError", "create_app"]


def create_app(test_config: dict | None = None) -> Flask:
    """Create the app; settings come from defaults, then the environment, then test_config.

    Raises StartupError when a setting is invalid or the model or test files are missing.
    Neither the model nor the data is loaded here: each process does that on first use.
    """
    app = Flask(
        __name__,
        template_folder=str(REPO_ROOT / "templates"),
        static_folder=str(REPO_ROOT / "static"),
    )
    app.config.from_mapping(load_settings(test_config))
    # The session cookie only carries the CSRF token; keep it away from scripts and
    # from cross-site requests.
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")

    # Imported here, not at module level: these import onnxruntime, which must stay out
    # of a gunicorn master that only checks the settings (see gunicorn.conf.py).
    from webapp import api, charts, digit_pages, draw_views, errors, explore_views, ops, resources, security, views

    app.register_blueprint(views.bp)
    digit_pages.init_app(app)
    app.register_blueprint(explore_views.bp)
    app.register_blueprint(draw_views.bp)
    app.register_blueprint(api.bp)
    ops.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    app.context_processor(lambda: {"card": resources.model_card()})
    app.jinja_env.globals["bar_chart"] = charts.bar_chart
    return app
