"""Error responses: a page or htmx fragment for browsers, JSON for the API under /api/."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

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
    # htmx names the element it will replace in HX-Target. The error fragment takes that
    # id, so the next request from the page still finds its target.
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
    message = error.description or error.name
    if error.code == 413:
        message = too_large_message()
    response = error_response(error.code or 500, error.name, message)
    if error.code == 405 and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def too_large_message() -> str:
    """Return the 413 message with the configured limit, which Werkzeug's default description leaves out."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if wants_json():
        # The wording of webapp/api.py, which reports the bodies that the API reads itself.
        return f"the request body is larger than the limit of {limit} bytes (MAX_CONTENT_LENGTH); send less data"
    return f"The upload is larger than the limit of {limit:,} bytes ({limit / 2**20:.1f} MiB). Choose a smaller image file."


def handle_input_error(error: InputError):
    log.info("rejected input on %s %s: %s", request.method, request.path, error.message)
    return error_response(error.status, HTTP_STATUS_CODES.get(error.status, "Invalid input"), error.message)


def server_body_errors() -> tuple[type[Exception], ...]:
    """Return gunicorn's exceptions for a malformed request body, raised while the app reads it.

    gunicorn parses chunked bodies lazily, so an invalid chunk size or terminator surfaces
    from request.get_data() or the form parser, in the app's own thread.
    """
    try:
        from gunicorn.http.errors import ParseException
    except ImportError:  # gunicorn is not installed: another WSGI server
        return ()
    return (ParseException,)


def handle_unreadable_body(error: Exception):
    log.info("unreadable request body on %s %s: %s", request.method, request.path, error)
    detail = str(error)[:100]
    if wants_json():
        message = f"the request body could not be read ({detail}); send a complete, well-formed body"
    else:
        message = f"The request could not be read ({detail}). Reload the page and try again."
    return error_response(400, "Bad Request", message)


def handle_unexpected(error: Exception):
    # Log the traceback for the operator; the response shows no internals.
    log.exception("unhandled error on %s %s", request.method, request.path)
    server_error = InternalServerError()
    return error_response(500, server_error.name, "Something went wrong on the server. The error has been logged.")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InputError, handle_input_error)
    for error_type in server_body_errors():
        app.register_error_handler(error_type, handle_unreadable_body)
    app.register_error_handler(Exception, handle_unexpected)
