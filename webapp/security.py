"""Security headers on every response, and CSRF protection for the page's forms.

The CSRF token is a random value kept in Flask's signed session cookie. Forms carry it in
a hidden field named csrf_token. htmx and fetch requests send it in the X-CSRF-Token
header, which static/app.js fills from the csrf-token meta tag. The JSON API under /api/ is
exempt: it uses no cookies, so a cross-site form cannot act with a user's credentials.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from flask import Flask, request, session

from webapp.exceptions import InputError

log = logging.getLogger(__name__)

CSRF_SESSION_KEY = "csrf_token"
CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_EXEMPT_PREFIXES = ("/api/",)

# No 'unsafe-inline' and no 'unsafe-eval': every script and style is a file under
# /static, and htmx is configured not to inject styles or evaluate code. Images may be
# data: URLs, which the "your own digit" page uses for the 28x28 model input.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HSTS_MAX_AGE = 365 * 24 * 3600


def csrf_token() -> str:
    """Return this session's CSRF token, creating it on first use."""
    token = session.get(CSRF_SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def check_csrf() -> None:
    """Reject a state-changing request to the pages that lacks this session's CSRF token."""
    if request.method in SAFE_METHODS or request.path.startswith(CSRF_EXEMPT_PREFIXES):
        return
    if request.routing_exception is not None:
        return  # no such route or method: the router's 404 or 405 follows

    expected = session.get(CSRF_SESSION_KEY)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FORM_FIELD)
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        log.warning("rejected request without a valid CSRF token: %s %s", request.method, request.path)
        raise InputError(
            "The form could not be verified: it is from an old page or another site. "
            "Reload the page and try again.",
            status=400,
        )


def set_security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE}; includeSubDomains")
    return response


def init_app(app: Flask) -> None:
    app.before_request(check_csrf)
    app.after_request(set_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
