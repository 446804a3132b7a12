"""Security headers on every response, and CSRF protection for the page's forms.

The headers are added by a WSGI middleware around the Flask app, as constant (name, value)
pairs. That costs about a microsecond per response, where setting six headers through
Werkzeug's Headers in an after_request hook cost about 35 (measured with bench/profile.py).

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
from flask.sessions import SecureCookieSessionInterface

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
    # Compared as bytes: compare_digest raises TypeError for str with non-ASCII characters.
    if not expected or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        log.warning("rejected request without a valid CSRF token: %s %s", request.method, request.path)
        raise InputError(
            "The form could not be verified: it is from an old page or another site. "
            "Reload the page and try again.",
            status=400,
        )


SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
HTTPS_HEADERS = (("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE}; includeSubDomains"),)


class SecurityHeaders:
    """WSGI middleware that adds the security headers to every response the app starts.

    A header that the response already has is left as the app set it. HSTS is sent only
    on HTTPS, as wsgi.url_scheme reports it (behind a proxy, after ProxyFix has set it).
    """

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        added = SECURITY_HEADERS + HTTPS_HEADERS if environ.get("wsgi.url_scheme") == "https" else SECURITY_HEADERS

        def start_response_with_headers(status, headers, exc_info=None):
            present = {name.lower() for name, _ in headers}
            headers.extend(header for header in added if header[0].lower() not in present)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start_response_with_headers)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, with less work for requests that carry no session.

    Flask builds a new signing serializer for every request. This one builds it once per
    secret key, a request without a session cookie gets an empty session without it, and
    a session that the request did not use is not saved.
    """

    def __init__(self) -> None:
        self._serializers: dict[tuple, object] = {}

    def get_signing_serializer(self, app: Flask):
        key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        serializer = self._serializers.get(key)
        if serializer is None:
            serializer = super().get_signing_serializer(app)
            self._serializers[key] = serializer
        return serializer

    def open_session(self, app: Flask, request):
        # Checking the raw header skips parsing cookies for the common request that has none.
        if not request.environ.get("HTTP_COOKIE"):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        # A session that the request neither read nor changed needs no cookie and no
        # Vary: Cookie. Flask's own method reads seven settings before it finds that out.
        if not (session.accessed or session.modified or session.permanent):
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
    app.wsgi_app = SecurityHeaders(app.wsgi_app)
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
