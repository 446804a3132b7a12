"""Digit pages and fragments, assembled from pieces that each process renders once.

A digit page is the same for every request: the page frame (head, navigation, footer)
depends only on the app and the script root, and the digit's section only on the digit,
the model's output and the script root. Jinja renders each piece the first time it is
needed, and a request joins the stored pieces. Rendering costs more CPU time than all the
rest of a digit page request, Flask included (measured with bench/profile.py).

A frame is a template rendered once with a marker in each slot (the title and the
section) and split at the markers. NOTE: a frame template may therefore show only values
that are the same for every request. A CSRF token or a nonce in it would be served to
every client.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from flask import Flask, current_app, render_template, request, url_for
from markupsafe import Markup, escape

from webapp.resources import current_model, current_test_set

EXTENSION = "mnist_digit_pages"
PAGE_TEMPLATE = "digit_page.html"
FRAGMENT_TEMPLATE = "digit_fragment.html"
SECTION_TEMPLATE = "_digit.html"
SLOTS = ("title", "section")


@dataclass(frozen=True)
class SiteLinks:
    """The URLs that every page's head and navigation link to."""

    favicon: str
    stylesheet: str
    htmx: str
    script: str
    home: str
    draw: str
    explore: str
    confusion: str
    model: str
    random_digit: str


def site_links() -> SiteLinks:
    """Return the links of the page frame, built with url_for once per app and script root.

    Each url_for call costs several microseconds, and every page has ten such links.
    """
    return _build_site_links(current_app._get_current_object(), request.script_root)


@lru_cache(maxsize=64)
def _build_site_links(app: Flask, script_root: str) -> SiteLinks:
    # url_for depends on nothing else here, and both are in the cache key.
    return SiteLinks(
        favicon=url_for("static", filename="favicon.svg"),
        stylesheet=url_for("static", filename="style.css"),
        htmx=url_for("static", filename="htmx.min.js"),
        script=url_for("static", filename="app.js"),
        home=url_for("digits.index"),
        draw=url_for("draw.draw_page"),
        explore=url_for("explore.explore"),
        confusion=url_for("explore.confusion"),
        model=url_for("explore.model_page"),
        random_digit=url_for("digits.random_digit"),
    )


def digit_url(index: int, suffix: str = "") -> str:
    """Return the URL of test digit `index` (`suffix` ".png" for its image).

    The same URL that url_for("digits.digit_page", index=index) builds, formatted without
    the router; a test checks that they agree.
    """
    return f"{request.script_root}/digits/{index}{suffix}"


@dataclass(frozen=True)
class Frame:
    """A template's output split at its slots: the text before, between and after them."""

    parts: tuple[str, ...]

    def fill(self, *values: str) -> str:
        """Return the output with `values` in the slots, in the order of SLOTS."""
        pieces = [self.parts[0]]
        for value, part in zip(values, self.parts[1:], strict=True):
            pieces += (value, part)
        return "".join(pieces)


def render_frame(template: str) -> Frame:
    """Render `template` with a marker in each slot and split its output at the markers.

    Raises RuntimeError if the template does not show every slot exactly once, in order.
    """
    markers = {name: Markup(f"\x00{name}\x00") for name in SLOTS}
    html = render_template(template, **markers)
    parts = []
    for name, marker in markers.items():
        before, found, html = html.partition(marker)
        if not found or marker in html:
            raise RuntimeError(f"template {template} must show {{{{ {name} }}}} exactly once, after the slots before it")
        parts.append(before)
    parts.append(html)
    return Frame(tuple(parts))


class DigitPages:
    """This app's digit pages and fragments, with the caches of their pieces.

    The app's test set and model never change (both come from its settings), so a
    digit's index and the script root identify its section.
    """

    def __init__(self, app: Flask) -> None:
        # One frame pair per script root; a deployment has one, and the bound keeps a
        # client-controlled root (a proxy's X-Forwarded-Prefix) from growing the cache.
        self._frames = lru_cache(maxsize=16)(self._render_frames)
        self._sections = lru_cache(maxsize=app.config["DIGIT_HTML_CACHE"])(self._render_section)

    def render(self, index: int, fragment: bool) -> str:
        """Return the full page, or the htmx fragment, that shows test digit `index`."""
        script_root = request.script_root
        page_frame, fragment_frame = self._frames(script_root)
        frame = fragment_frame if fragment else page_frame
        return frame.fill(*self._sections(script_root, index))

    def prerender(self, indexes: Iterable[int]) -> int:
        """Render and keep the sections of the digits `indexes` for the current script root; return how many.

        Stops when the cache is full, so that it never evicts sections it has just
        rendered. Between digits it sleeps for 0 s, which releases the GIL, so a waiting
        request thread can run after each section (about 0.24 ms of rendering each).
        """
        script_root = request.script_root
        capacity = self._sections.cache_parameters()["maxsize"]
        rendered = 0
        for index in indexes:
            if rendered >= capacity:
                break
            self._sections(script_root, index)
            rendered += 1
            time.sleep(0)
        return rendered

    def section_cache_info(self):
        return self._sections.cache_info()

    @staticmethod
    def _render_frames(script_root: str) -> tuple[Frame, Frame]:
        return render_frame(PAGE_TEMPLATE), render_frame(FRAGMENT_TEMPLATE)

    @staticmethod
    def _render_section(script_root: str, index: int) -> tuple[Markup, Markup]:
        """Return the page title and the section of test digit `index`, the values of SLOTS."""
        test_set = current_test_set()
        digit = test_set.digit(index, current_model())
        title = escape(f"Test digit {index} · MNIST digit browser")
        return title, Markup(render_template(SECTION_TEMPLATE, digit=digit, count=len(test_set)))


def current_digit_pages() -> DigitPages:
    return current_app.extensions[EXTENSION]


def init_app(app: Flask) -> None:
    """Set up the digit pages of `app`; its DIGIT_HTML_CACHE setting bounds the section cache.

    DIGIT_HTML_CACHE is the number of digit sections kept per process, least recently
    used out first, and 0 turns the cache off. A section is about 4.5 KB of HTML, and
    all 10,000 MNIST test digits added 49 MiB to a worker's RSS (bench/startup.py).
    """
    app.extensions[EXTENSION] = DigitPages(app)
    app.add_template_global(site_links)
    app.add_template_global(digit_url)
