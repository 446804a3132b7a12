"""Pages for browsing the test digits: full pages, htmx fragments and PNG images."""

from __future__ import annotations

import random

from flask import Blueprint, current_app, make_response, render_template, request

from webapp.exceptions import InputError
from webapp.resources import current_model, current_test_set

bp = Blueprint("digits", __name__)

# PNGs of test digits never change for a given data set, so browsers may keep them a year.
PNG_MAX_AGE = 365 * 24 * 3600
MAX_INDEX_DIGITS = 9


def wants_fragment() -> bool:
    """Return True for an htmx request that swaps part of the page.

    htmx sends HX-History-Restore-Request when Back misses its history cache and it needs
    the whole page again, so that request gets the full page.
    """
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render_page_or_fragment(page_template: str, fragment_template: str, status: int = 200, **context):
    """Render the fragment for htmx requests and the full page for any other request.

    The response varies on HX-Request, so a cache, the browser's included, never serves
    a fragment it stored for htmx in response to a normal navigation.
    """
    template = fragment_template if wants_fragment() else page_template
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def parse_index(text: str, count: int, url_prefix: str = "/digits") -> int:
    """Return text as a test digit index, or raise InputError (404) naming the valid range.

    url_prefix is the route the message suggests, so API clients get API URLs.
    """
    valid = text.isascii() and text.isdigit() and len(text) <= MAX_INDEX_DIGITS
    if not valid or int(text) >= count:
        quoted = text if len(text) <= 40 else text[:40] + "..."
        raise InputError(
            f'There is no test digit "{quoted}". Test digits are numbered 0 to {count - 1}; '
            f"try {url_prefix}/0 or {url_prefix}/{count - 1}.",
            status=404,
        )
    return int(text)


def render_digit(index: int):
    test_set = current_test_set()
    digit = test_set.digit(index, current_model())
    return render_page_or_fragment(
        "digit_page.html",
        "digit_fragment.html",
        digit=digit,
        count=len(test_set),
        next_index=random.randrange(len(test_set)),
    )


@bp.get("/")
def index():
    """Show a random test digit."""
    return render_digit(random.randrange(len(current_test_set())))


@bp.get("/digits/<index>")
def digit_page(index: str):
    """Show test digit `index`, as a full page or as an htmx fragment."""
    return render_digit(parse_index(index, len(current_test_set())))


@bp.get("/digits/<index>.png")
def digit_png(index: str):
    """Return test digit `index` as an upscaled grayscale PNG."""
    test_set = current_test_set()
    png, etag = test_set.png(parse_index(index, len(test_set)), current_app.config["PNG_SCALE"])

    response = make_response(png)
    response.mimetype = "image/png"
    response.set_etag(etag)
    response.cache_control.public = True
    response.cache_control.max_age = PNG_MAX_AGE
    response.cache_control.immutable = True
    return response.make_conditional(request)
