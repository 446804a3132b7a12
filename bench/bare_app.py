"""The baseline for bench/serve.py: a Flask app whose one route returns a fixed HTML page.

The environment variable BENCH_PAGE_BYTES sets the page's size in bytes, and bench/serve.py
sets it to the size of the product's full digit page. The route takes an index like /digits/<index> and ignores it.
"""

import os

from flask import Flask

PAGE_BYTES = int(os.environ.get("BENCH_PAGE_BYTES", "4096"))


def build_page(size: int) -> str:
    """Return an ASCII HTML page of exactly `size` bytes (at least the bare markup)."""
    head = "<!doctype html>\n<html><head><title>bare</title></head><body><p>"
    tail = "</p></body></html>\n"
    return head + "x" * max(0, size - len(head) - len(tail)) + tail


PAGE = build_page(PAGE_BYTES)

app = Flask(__name__)


@app.get("/bare/<int:index>")
def bare_page(index: int) -> str:
    """Return the fixed page, as text/html."""
    return PAGE
