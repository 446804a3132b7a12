"""Pages for browsing the test digits: full pages, htmx fragments and PNG images."""

from __future__ import annotations

import random

from flask import Blueprint, current_app, redirect, render_template, request
from werkzeug.urls import iri_to_uri

from webapp.digit_pages import current_digit_pages, digit_url
from webapp.exceptions import InputError
from webapp.resources import current_test_set

bp = Blueprint("digits", __name__)


# PNGs of test digits never change for a given data set, so browsers may keep them a year.
PNG_MAX_AGE = 365 * 24 * 3600
PNG_CACHE_CONTROL = f"public, max-age={PNG_MAX_AGE}, immutable"
MAX_INDEX_DIGITS = 9


def wants_fragment() -> bool:
    """Return True for an htmx request that swaps part of the page.

    htmx sends HX-History-Restore-Request when Back misses its history cache and it needs
    the whole page again, so that request gets the full page.
    """
    environ = request.environ  # the raw headers: cheaper than request.headers on every page
    return environ.get("HTTP_HX_REQUEST") == "true" and environ.get("HTTP_HX_HISTORY_RESTORE_REQUEST") != "true"


def render_page_or_fragment(page_template: str, fragment_template: str, status: int = 200, **context):
    """Render the fragment for htmx requests and the full page for any other request.

    The response varies on HX-Request, so a cache, the browser's included, never serves
    a fragment it stored for htmx in response to a normal navigation.
    """
    template = fragment_template if wants_fragment() else page_template
    return html_response(render_template(template, **context), status)


def html_response(html: str, status: int = 200):
    """Return an HTML response that varies on HX-Request, as every page and fragment does."""
    response = current_app.response_class(html, status=status, mimetype="text/html")
    response.headers["Vary"] = "HX-Request"  # a new response has no Vary header yet
    return response


def parse_index(text: str, count: int, url_prefix: str = "/digits") -> int:
    """Return text as a test digit index, or raise InputError (404) naming the valid range.

    url_prefix is the route the message suggests, so API clients get API URLs.
    """
    # Leading zeros do not count towards the length limit, which keeps int() cheap.
    valid = text.isascii() and text.isdigit() and len(text.lstrip("0")) <= MAX_INDEX_DIGITS
    if not valid or int(text) >= count:
        printable = "".join(character if character.isprintable() else "?" for character in text[:40])
        quoted = printable if len(text) <= 40 else printable + "..."
        raise InputError(
            f'There is no test digit "{quoted}". Test digits are numbered 0 to {count - 1}; '
            f"try {url_prefix}/0 or {url_prefix}/{count - 1}.",
            status=404,
        )
    return int(text)


def render_digit(index: int):
    """Return the page or htmx fragment of test digit `index`, built from stored pieces."""
    return html_response(current_digit_pages().render(index, fragment=wants_fragment()))


@bp.get("/")
def index():
    """Show a random test digit."""
    response = render_digit(random.randrange(len(current_test_set())))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/digits/random")
def random_digit():
    """Show a random test digit: htmx gets its fragment and the URL to push, others a redirect.

    The digit pages link here for "Next digit", so that each digit's page is the same
    for every request, which lets the app render its section once.
    """
    index = random.randrange(len(current_test_set()))
    if wants_fragment():
        response = render_digit(index)
        # Percent-encoded like the Location header of the redirect below.
        response.headers["HX-Push-Url"] = iri_to_uri(digit_url(index))
    else:
        response = redirect(digit_url(index))
        response.headers["Vary"] = "HX-Request"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/digits/<index>")
def digit_page(index: str):
    """Show test digit `index`, as a full page or as an htmx fragment."""
    return render_digit(parse_index(index, len(current_test_set())))


@bp.get("/digits/<index>.png")
def digit_png(index: str):
    """Return test digit `index` as an upscaled grayscale PNG."""
    test_set = current_test_set()
    png, etag = test_set.png(parse_index(index, len(test_set)), current_app.config["PNG_SCALE"])

    response = current_app.response_class(png, mimetype="image/png")
    # Plain header values: the typed Cache-Control and ETag accessors of Werkzeug parse
    # and rewrite the header on every change, which cost more than the rest of the view.
    response.headers["Cache-Control"] = PNG_CACHE_CONTROL
    response.headers["ETag"] = etag
    if request.environ.get("HTTP_IF_NONE_MATCH") or request.environ.get("HTTP_IF_MODIFIED_SINCE"):
        return response.make_conditional(request)
    return response
