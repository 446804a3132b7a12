"""Error pages: every HTTP error gets a page (or an htmx fragment) with a plain message."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.exceptions import HTTPException, InternalServerError

from webapp.views import render_page_or_fragment

log = logging.getLogger(__name__)


def render_error(error: HTTPException):
    return render_page_or_fragment(
        "error_page.html", "error_fragment.html", status=error.code or 500, error=error
    )


def handle_unexpected(error: Exception):
    # Log the traceback for the operator; the response shows no internals.
    log.exception("unhandled error: %s", error)
    return render_error(InternalServerError("Something went wrong on the server. The error has been logged."))


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, render_error)
    app.register_error_handler(Exception, handle_unexpected)
