"""Error responses: a page or htmx fragment for browsers, JSON for the API under /api/."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

from webapp.exceptions import InputError
from webapp.views import render_page_or_fragment

log = logging.getLogger(__name__)


def wants_json() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, title: str, message: str):
    if wants_json():
        response = jsonify(error=message)
        response.status_code = status
        return response
    # htmx names the element it will replace in HX-Target; the error fragment takes that
    # id so that the next request from the page still finds its target.
    target = request.headers.get("HX-Target") or "digit"
    if not target.replace("-", "").replace("_", "").isalnum():
        target = "digit"
    return render_page_or_fragment(
        "error_page.html",
        "error_fragment.html",
        status=status,
        title=title,
        message=message,
        status_code=status,
        target_id=target,
    )


def handle_http_error(error: HTTPException):
    if error.code and error.code < 400:
        return error  # redirects and 304 pass through unchanged
    response = error_response(error.code or 500, error.name, error.description or error.name)
    if error.code == 405 and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def handle_input_error(error: InputError):
    log.info("rejected input on %s %s: %s", request.method, request.path, error.message)
    return error_response(error.status, "Invalid input", error.message)


def handle_unexpected(error: Exception):
    # Log the traceback for the operator; the response shows no internals.
    log.exception("unhandled error on %s %s", request.method, request.path)
    server_error = InternalServerError()
    return error_response(500, server_error.name, "Something went wrong on the server. The error has been logged.")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InputError, handle_input_error)
    app.register_error_handler(Exception, handle_unexpected)
