"""Hostile and broken requests to every route, through Flask's test client and a real gunicorn.

BAD_REQUESTS covers the pages, /draw uploads, static files, the ops endpoints and the API
cases that tests/test_api.py leaves out. Each row pins the exact status and a fragment of
the message. Every reply is checked for the same things: no 500, no traceback, a 405
names the allowed methods, API errors are JSON and page errors are this app's HTML, not
Werkzeug's default page. RAW_REQUESTS are malformed at the HTTP level, so only a raw
socket can send them, and only gunicorn receives them. The Hypothesis tests at the end send
random uploads, JSON and query strings.
"""

from __future__ import annotations

import base64
import html
import http.client
import io
import json
import re
import socket
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import gunicorn_server
from webapp import create_app
from webapp.testset import encode_png

MAX_BYTES = 4 * 1024 * 1024  # the default MAX_CONTENT_LENGTH
OVER_LIMIT = 5 * 1024 * 1024
BOUNDARY = "bad-input-boundary-7f3a"
MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
JSON_TYPE = "application/json"
HTMX = {"HX-Request": "true", "HX-Target": "result"}
# Placeholder for the session's CSRF token in a header, replaced when the request is sent.
CSRF = "<csrf token>"
# A decoded 20000x20000 image would take 400 MB as grayscale. Rejecting it from the
# header takes milliseconds; this bound leaves room for a busy machine.
HEADER_REJECT_SECONDS = 2.0

# Test digit 0 of MNIST, a 7, is the picture in the valid uploads below.
SEVEN = 'class="predicted">7</strong>'
NO_DIGIT = "No digit found: the image is blank"


# ---------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A multipart POST body: the file `payload` in the field `field`, and the CSRF token unless csrf=False.

    `payload` names an entry of the `payloads` fixture, or is None for no file part.
    `text_fields` are extra (name, value) text parts.
    """

    payload: str | None
    filename: str = "digit.png"
    field: str = "image"
    csrf: bool = True
    text_fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Base64Image:
    """A JSON body {"image": base64 of the file `payload`} for the API."""

    payload: str


@dataclass(frozen=True)
class Oversize:
    """A body of `size` bytes. Over HTTP only the Content-Length is sent, because the server replies 413 without reading the body."""

    size: int


def multipart_body(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """Encode (field name, file name or None for a text field, bytes) parts as multipart/form-data."""
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        file_type = "Content-Type: application/octet-stream\r\n" if filename else ""
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{file_type}\r\n".encode() + data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """Return a tiny grayscale PNG whose IHDR declares width x height, with a valid CRC and almost no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def build_payloads(images: np.ndarray) -> dict[str, bytes]:
    """Return the upload files by name, made from test digits 0, 1 and 2 (a 7, a 2 and a 1)."""
    seven = images[0]
    large = np.kron(seven, np.ones((4, 4), dtype=np.uint8))  # 112x112
    png = encode_png(seven, 10)
    strip = np.zeros((10, 10_000), dtype=np.uint8)
    strip[3:7, 2000:8000] = 255  # a dash along the middle of a long black strip
    frames = [Image.fromarray(np.kron(images[i], np.ones((4, 4), dtype=np.uint8))) for i in range(3)]
    return {
        "png": png,
        "truncated-png": png[: int(len(png) * 0.6)],
        "text": b"This is a text file, saved with a .png name.\n" * 3,
        "declares-20000": png_declaring(20_000, 20_000),
        "declares-8000": png_declaring(8000, 8000),
        "one-pixel": encode(Image.new("L", (1, 1), 0), "PNG"),
        "strip": encode(Image.fromarray(strip), "PNG"),
        "animated-gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
        "png-16-bit": encode(Image.fromarray(large.astype(np.uint16) * 257), "PNG"),
        "cmyk-jpeg": encode(Image.fromarray(255 - large).convert("CMYK"), "JPEG", quality=95),
        # Palette index 0 is the black background, and it is transparent.
        "palette-transparent": encode(Image.fromarray(large).convert("P"), "PNG", transparency=0),
    }


# ---------------------------------------------------------------------------
# The table: (id, method, path, headers, body, status, message fragment)
# ---------------------------------------------------------------------------

DIGIT_RANGE = "Test digits are numbered 0 to 9999"
NOT_FOUND = "The requested URL was not found on the server"
NOT_ALLOWED = "The method is not allowed for the requested URL"
NO_IMAGE = "No image received: choose a file"
TOO_LARGE_PAGE = f"The upload is larger than the limit of {MAX_BYTES:,} bytes (4.0 MiB)"
TOO_LARGE_API = f"the request body is larger than the limit of {MAX_BYTES} bytes (MAX_CONTENT_LENGTH)"
PREDICT = "/api/predict"
BATCH = "/api/predict/batch"
FLAT = [0.0] * 392 + [1.0] * 392

BAD_REQUESTS = [
    # Digit pages and PNGs: out of range, negative, huge, non-numeric, encoded tricks
    ("digit-past-end", "GET", "/digits/10000", {}, None, 404, f'no test digit "10000". {DIGIT_RANGE}'),
    ("digit-negative", "GET", "/digits/-1", {}, None, 404, 'There is no test digit "-1"'),
    ("digit-20-digits", "GET", "/digits/" + "9" * 20, {}, None, 404, 'no test digit "99999999999999999999"'),
    ("digit-ten-digits", "GET", "/digits/1000000000", {}, None, 404, 'no test digit "1000000000"'),
    ("digit-letters", "GET", "/digits/abc", {}, None, 404, 'There is no test digit "abc"'),
    ("digit-plus-sign", "GET", "/digits/+1", {}, None, 404, 'There is no test digit "+1"'),
    ("digit-exponent", "GET", "/digits/1e3", {}, None, 404, 'There is no test digit "1e3"'),
    ("digit-trailing-space", "GET", "/digits/7%20", {}, None, 404, 'There is no test digit "7 "'),
    ("digit-encoded-dots", "GET", "/digits/%2e%2e", {}, None, 404, 'There is no test digit ".."'),
    ("digit-nul", "GET", "/digits/%00", {}, None, 404, f'There is no test digit "?". {DIGIT_RANGE}'),
    ("digit-arabic-indic-3", "GET", "/digits/%D9%A3", {}, None, 404, 'There is no test digit "\u0663"'),
    ("digit-fullwidth-1", "GET", "/digits/%EF%BC%91", {}, None, 404, 'There is no test digit "\uff11"'),
    ("digit-encoded-traversal", "GET", "/digits/..%2F..%2Fetc%2Fpasswd", {}, None, 404, NOT_FOUND),
    ("fragment-past-end", "GET", "/digits/10000", {"HX-Request": "true", "HX-Target": '"><script>x()</script>'}, None, 404, '<section id="digit" class="error"'),
    ("png-past-end", "GET", "/digits/10000.png", {}, None, 404, DIGIT_RANGE),
    ("png-negative", "GET", "/digits/-1.png", {}, None, 404, 'There is no test digit "-1"'),
    ("png-double-extension", "GET", "/digits/0.png.png", {}, None, 404, 'There is no test digit "0.png"'),
    ("png-nul", "GET", "/digits/%00.png", {}, None, 404, DIGIT_RANGE),
    ("png-post", "POST", "/digits/0.png", {}, None, 405, NOT_ALLOWED),
    ("digit-post", "POST", "/digits/0", {}, None, 405, NOT_ALLOWED),
    ("digit-trace", "TRACE", "/digits/0", {}, None, 405, NOT_ALLOWED),
    ("digit-unknown-method", "FROB", "/digits/0", {}, None, 405, NOT_ALLOWED),
    ("index-delete", "DELETE", "/", {}, None, 405, NOT_ALLOWED),
    # Static files: traversal, encoded separators, NUL
    ("static-traversal", "GET", "/static/../README.md", {}, None, 404, NOT_FOUND),
    ("static-encoded-dots", "GET", "/static/%2e%2e/%2e%2e/wsgi.py", {}, None, 404, NOT_FOUND),
    ("static-encoded-slash", "GET", "/static/..%2F..%2Fwsgi.py", {}, None, 404, NOT_FOUND),
    ("static-backslash", "GET", "/static/..%5Cwsgi.py", {}, None, 404, NOT_FOUND),
    ("static-nul", "GET", "/static/style.css%00.js", {}, None, 404, NOT_FOUND),
    ("static-missing", "GET", "/static/nothing.css", {}, None, 404, NOT_FOUND),
    ("static-put", "PUT", "/static/style.css", {}, None, 405, NOT_ALLOWED),
    # Explorer query parameters
    ("explore-nul-label", "GET", "/explore?label=%00", {}, None, 400, 'label="\x00" is invalid: expected a digit from 0 to 9'),
    ("explore-long-label", "GET", "/explore?label=" + "9" * 3000, {}, None, 400, 'label="99999999999999999999" is invalid'),
    ("explore-emoji-page", "GET", "/explore?page=%F0%9F%98%80", {}, None, 400, 'page="\U0001f600" is invalid: expected a whole number from 1 to 1000000'),
    ("explore-fullwidth-page", "GET", "/explore?page=%EF%BC%91", {}, None, 400, 'page="\uff11" is invalid'),
    ("explore-invalid-utf8", "GET", "/explore?outcome=%ff", {}, None, 400, "is invalid: expected one of all, correct, wrong"),
    ("explore-underflow", "GET", "/explore?max_confidence=1e-400", {}, None, 400, 'max_confidence="1e-400" is invalid'),
    ("explore-infinity", "GET", "/explore?max_confidence=inf", {}, None, 400, 'max_confidence="inf" is invalid'),
    ("explore-hex-float", "GET", "/explore?max_confidence=0x1p-3", {}, None, 400, 'max_confidence="0x1p-3" is invalid'),
    ("explore-per-page-zero", "GET", "/explore?per_page=0", {}, None, 400, 'per_page="0" is invalid: expected a whole number from 1 to 200'),
    ("explore-fragment-error", "GET", "/explore?sort=%3Cb%3E", {"HX-Request": "true", "HX-Target": "results"}, None, 400, '<section id="results" class="error"'),
    ("explore-repeated-label", "GET", "/explore?label=1&label=x", {}, None, 302, 'href="/explore?label=1"'),
    ("explore-unknown-parameter", "GET", "/explore?label=1&debug=%00", {}, None, 302, 'href="/explore?label=1"'),
    ("explore-page-past-end", "GET", "/explore?page=1000000", {}, None, 200, "Page 1000000 of 167"),
    ("explore-post", "POST", "/explore", {}, None, 405, NOT_ALLOWED),
    # Whole-test-set pages and ops endpoints
    ("confusion-post", "POST", "/confusion", {}, None, 405, NOT_ALLOWED),
    ("model-delete", "DELETE", "/model", {}, None, 405, NOT_ALLOWED),
    ("healthz-post", "POST", "/healthz", {}, None, 405, NOT_ALLOWED),
    ("readyz-put", "PUT", "/readyz", {}, None, 405, NOT_ALLOWED),
    ("metrics-post", "POST", "/metrics", {}, None, 405, NOT_ALLOWED),
    ("metrics-odd-query", "GET", "/metrics?name%5B%5D=%00&format=protobuf", {}, None, 200, "mnist_http_requests_total"),
    ("readyz-odd-query", "GET", "/readyz?verbose=%ff", {}, None, 200, '"status":"ready"'),
    # /draw: method, CSRF token and form shape
    ("draw-put", "PUT", "/draw", {}, None, 405, NOT_ALLOWED),
    ("draw-without-token", "POST", "/draw", {}, Upload("png", csrf=False), 400, "The form could not be verified"),
    ("draw-wrong-token-header", "POST", "/draw", {"X-CSRF-Token": "forged"}, Upload("png", csrf=False), 400, "The form could not be verified"),
    ("draw-no-image-field", "POST", "/draw", {}, Upload(None, text_fields=(("file", "x"),)), 400, NO_IMAGE),
    ("draw-image-as-text", "POST", "/draw", {}, Upload(None, text_fields=(("image", "iVBORw0KGgo="),)), 400, NO_IMAGE),
    ("draw-urlencoded", "POST", "/draw", {"Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": CSRF}, b"image=abc", 400, NO_IMAGE),
    ("draw-json", "POST", "/draw", {"Content-Type": JSON_TYPE, "X-CSRF-Token": CSRF}, b'{"image": "iVBORw0KGgo="}', 400, NO_IMAGE),
    ("draw-multipart-unterminated", "POST", "/draw", {"Content-Type": MULTIPART_TYPE, "X-CSRF-Token": CSRF}, f"--{BOUNDARY}\r\nContent-Disposition: form-data".encode(), 400, NO_IMAGE),
    ("draw-multipart-no-boundary", "POST", "/draw", {"Content-Type": "multipart/form-data", "X-CSRF-Token": CSRF}, b"abc", 400, NO_IMAGE),
    ("draw-too-large-htmx", "POST", "/draw", {**HTMX, "Content-Type": MULTIPART_TYPE}, Oversize(OVER_LIMIT), 413, TOO_LARGE_PAGE),
    ("draw-too-large-page", "POST", "/draw", {"Content-Type": MULTIPART_TYPE}, Oversize(OVER_LIMIT), 413, TOO_LARGE_PAGE),
    # /draw uploads: broken files
    ("upload-empty", "POST", "/draw", {}, Upload("empty"), 400, "The upload is empty"),
    ("upload-truncated-60", "POST", "/draw", {}, Upload("truncated-png"), 400, "The PNG image is truncated or corrupt"),
    ("upload-text-named-png", "POST", "/draw", {}, Upload("text"), 400, "The upload is not a PNG, JPEG, WebP or GIF image: its 135 bytes"),
    ("upload-declares-20000", "POST", "/draw", {}, Upload("declares-20000"), 413, "The image declares more than 178,956,970 pixels; the limit is 52,000,000"),
    ("upload-declares-8000", "POST", "/draw", {}, Upload("declares-8000"), 413, "The image declares 8000x8000 pixels (64,000,000); the limit is 52,000,000"),
    ("upload-one-pixel", "POST", "/draw", {}, Upload("one-pixel"), 422, NO_DIGIT),
    # /draw uploads: valid but unusual files. The strip contains a dash, which the model
    # takes for a 2 (see test_strip_upload_becomes_a_line); the others show test digit 0.
    ("upload-strip-10000x10", "POST", "/draw", {}, Upload("strip"), 200, 'class="predicted">2</strong>'),
    ("upload-animated-gif", "POST", "/draw", {}, Upload("animated-gif", "digit.gif"), 200, SEVEN),
    ("upload-png-16-bit", "POST", "/draw", {}, Upload("png-16-bit"), 200, SEVEN),
    ("upload-cmyk-jpeg", "POST", "/draw", {}, Upload("cmyk-jpeg", "digit.jpg"), 200, SEVEN),
    ("upload-palette-transparent", "POST", "/draw", {}, Upload("palette-transparent"), 200, SEVEN),
    ("upload-htmx-fragment", "POST", "/draw", HTMX, Upload("one-pixel"), 422, '<section id="result" class="draw-result"'),
    # API cases that tests/test_api.py does not have
    ("api-nested-objects", "POST", PREDICT, {"Content-Type": JSON_TYPE}, b'{"pixels": ' + b'{"a": ' * 100_000, 400, "nested too deeply"),
    ("api-batch-nan", "POST", BATCH, {"Content-Type": JSON_TYPE}, b'{"items": [{"pixels": [NaN]}]}', 400, "NaN is not a JSON number"),
    ("api-batch-text-plain", "POST", BATCH, {"Content-Type": "text/plain"}, b"{}", 415, "accepts Content-Type application/json; got Content-Type text/plain"),
    ("api-batch-too-large", "POST", BATCH, {"Content-Type": JSON_TYPE}, Oversize(OVER_LIMIT), 413, TOO_LARGE_API),
    ("api-multipart-too-large", "POST", PREDICT, {"Content-Type": MULTIPART_TYPE}, Oversize(OVER_LIMIT), 413, TOO_LARGE_API),
    ("api-image-declares-20000", "POST", PREDICT, {"Content-Type": JSON_TYPE}, Base64Image("declares-20000"), 413, "image: The image declares more than"),
    ("api-predict-put", "PUT", PREDICT, {}, None, 405, NOT_ALLOWED),
    ("api-openapi-post", "POST", "/api/openapi.json", {}, None, 405, NOT_ALLOWED),
    ("api-digit-nul", "GET", "/api/digits/%00", {}, None, 404, "There is no test digit"),
    ("api-digit-traversal", "GET", "/api/digits/..%2F..%2Fmodel", {}, None, 404, NOT_FOUND),
]

BAD_IDS = [row[0] for row in BAD_REQUESTS]
assert len(set(BAD_IDS)) == len(BAD_IDS)

# Rows that must be rejected from the image header, before any pixel is decoded.
HEADER_REJECTED = {"upload-declares-20000", "upload-declares-8000", "api-image-declares-20000"}


# ---------------------------------------------------------------------------
# Sending a row through the test client or over HTTP
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict  # names in lower case
    body: bytes
    seconds: float

    @property
    def text(self) -> str:
        return html.unescape(self.body.decode("utf-8", errors="replace"))


def request_parts(row: tuple, token: str, payloads: dict[str, bytes]) -> tuple[dict, bytes | None, int | None]:
    """Return the headers, the body and any declared oversize length for a table row."""
    _, _, _, headers, body, _, _ = row
    headers = {name: token if value == CSRF else value for name, value in headers.items()}
    if isinstance(body, Upload):
        parts = [(name, None, value.encode()) for name, value in body.text_fields]
        if body.csrf:
            parts.append(("csrf_token", None, token.encode()))
        if body.payload is not None:
            parts.append((body.field, body.filename, payloads[body.payload]))
        return {**headers, "Content-Type": MULTIPART_TYPE}, multipart_body(parts), None
    if isinstance(body, Oversize):
        return headers, None, body.size
    if isinstance(body, Base64Image):
        encoded = base64.b64encode(payloads[body.payload]).decode("ascii")
        return headers, json.dumps({"image": encoded}).encode(), None
    return headers, body, None


class ClientSender:
    """Sends rows through Flask's test client, whose cookie jar keeps the session of GET /draw."""

    def __init__(self, client) -> None:
        self.client = client
        self.token = csrf_token_from(client.get("/draw").get_data(as_text=True))

    def send(self, row: tuple, payloads: dict[str, bytes]) -> Reply:
        _, method, path, *_ = row
        headers, body, oversize = request_parts(row, self.token, payloads)
        if oversize is not None:
            body = b"x" * oversize
        start = time.perf_counter()
        response = self.client.open(path, method=method, headers=headers, data=body or b"")
        seconds = time.perf_counter() - start
        reply_headers = {name.lower(): value for name, value in response.headers.items()}
        return Reply(response.status_code, reply_headers, response.get_data(), seconds)


class HttpSender:
    """Sends rows with http.client to a server on 127.0.0.1, with the session cookie of GET /draw."""

    def __init__(self, base: str) -> None:
        address = urlsplit(base)
        self.host, self.port = address.hostname, address.port
        self.cookie: str | None = None
        reply = self.request("GET", "/draw", {}, None, None)
        self.cookie = reply.headers["set-cookie"].split(";")[0]
        self.token = csrf_token_from(reply.body.decode())

    def request(self, method: str, path: str, headers: dict, body: bytes | None, oversize: int | None) -> Reply:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            start = time.perf_counter()
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            if self.cookie:
                connection.putheader("Cookie", self.cookie)
            length = oversize if oversize is not None else len(body or b"")
            if length or method in ("POST", "PUT"):
                connection.putheader("Content-Length", str(length))
            connection.endheaders(body if body else None)
            response = connection.getresponse()
            data = response.read()
            seconds = time.perf_counter() - start
            reply_headers = {name.lower(): value for name, value in response.getheaders()}
            return Reply(response.status, reply_headers, data, seconds)
        finally:
            connection.close()

    def send(self, row: tuple, payloads: dict[str, bytes]) -> Reply:
        _, method, path, *_ = row
        headers, body, oversize = request_parts(row, self.token, payloads)
        return self.request(method, path, headers, body, oversize)


def csrf_token_from(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "GET /draw has no csrf_token field"
    return match.group(1)


# ---------------------------------------------------------------------------
# Checks on every reply
# ---------------------------------------------------------------------------


def check_reply(row: tuple, reply: Reply) -> None:
    row_id, method, path, headers, _, status, fragment = row
    text = reply.text
    assert reply.status == status, text[:500]
    assert fragment in text
    assert "Traceback" not in text
    assert 'File "' not in text  # a traceback's frame lines

    content_type = reply.headers.get("content-type", "")
    if status == 405:
        allowed = {name.strip() for name in reply.headers["allow"].split(",")}
        assert "GET" in allowed or "POST" in allowed
        assert method not in allowed
    if row_id in HEADER_REJECTED:
        assert reply.seconds < HEADER_REJECT_SECONDS

    if status < 400:
        return
    if path.startswith("/api/"):
        assert content_type.startswith(JSON_TYPE)
        assert set(json.loads(reply.body)) == {"error"}
        return
    # Page errors are this app's HTML: a page, or a fragment for htmx. Werkzeug's
    # default error page contains "<html lang=en>", without quotes, and no app markup.
    assert content_type.startswith("text/html")
    assert "<html lang=en>" not in text
    assert not text.lstrip().startswith("{")
    if headers.get("HX-Request") == "true":
        # A fragment that htmx swaps in place of its target, so it keeps the target's id.
        target = headers.get("HX-Target", "")
        assert "<!doctype html>" not in text
        assert text.lstrip().startswith(f'<section id="{target}"' if target.isidentifier() else "<section id=")
    else:
        assert text.startswith("<!doctype html>")
    assert 'role="alert"' in text


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def payloads(test_split) -> dict[str, bytes]:
    files = build_payloads(test_split[0])
    files["empty"] = b""
    return files


@pytest.fixture(scope="module")
def module_app(mnist_dir, model_path):
    return create_app({"TESTING": True, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path)})


@pytest.fixture(scope="module")
def client_sender(module_app) -> ClientSender:
    return ClientSender(module_app.test_client())


@pytest.fixture(scope="module")
def server(mnist_dir, model_path, tmp_path_factory):
    env = {"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "WEB_CONCURRENCY": "2"}
    with gunicorn_server(env, tmp_path_factory.mktemp("gunicorn-bad-input") / "server.log", warm_workers=2) as running:
        running.worker_pids_at_start = worker_pids(running.process.pid)
        yield running


@pytest.fixture(scope="module")
def http_sender(server) -> HttpSender:
    return HttpSender(server.base)


def worker_pids(master_pid: int) -> set[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return {int(pid) for pid in children}


# ---------------------------------------------------------------------------
# The table through the test client, then through gunicorn
# ---------------------------------------------------------------------------


def test_table_size_and_statuses():
    assert len(BAD_REQUESTS) >= 40
    assert {row[5] for row in BAD_REQUESTS} >= {200, 400, 404, 405, 413, 415, 422}


@pytest.mark.parametrize("row", BAD_REQUESTS, ids=BAD_IDS)
def test_bad_request_client(client_sender, payloads, row):
    check_reply(row, client_sender.send(row, payloads))


def test_client_still_serves_after_table(client_sender):
    response = client_sender.client.get("/digits/0")
    assert response.status_code == 200
    assert '<img src="/digits/0.png"' in response.get_data(as_text=True)


@pytest.mark.parametrize("row", BAD_REQUESTS, ids=BAD_IDS)
def test_bad_request_gunicorn(http_sender, payloads, row):
    check_reply(row, http_sender.send(row, payloads))


# Malformed at the HTTP level: (id, raw request bytes, status, fragment of the reply).
# gunicorn rejects the first ones itself, and the chunked bodies reach the app.
RAW_REQUESTS = [
    ("garbage-request-line", b"GARBAGE\r\n\r\n", 400, "Invalid Request Line"),
    ("non-ascii-query", b"GET /explore?label=\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Invalid Request Line"),
    ("http-version-9", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400, "Invalid HTTP Version"),
    ("raw-nul-in-path", b"GET /digits/\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Invalid Request Line"),
    ("bare-lf-line-ends", b"GET /healthz HTTP/1.1\nHost: x\n\n", 400, "Invalid Request Line"),
    ("url-5000-bytes", b"GET /digits/" + b"9" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "Request Line is too large"),
    ("header-9000-bytes", b"GET /digits/0 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431, "Request Header Fields Too Large"),
    ("header-without-colon", b"GET /digits/0 HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, "Invalid HTTP Header"),
    ("content-length-text", b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n", 400, "CONTENT-LENGTH"),
    ("content-length-and-chunked", b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "CONTENT-LENGTH"),
    ("api-invalid-chunk-size", b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n", 400, "the request body could not be read (Invalid chunk size"),
    ("draw-invalid-chunk-size", f"POST /draw HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART_TYPE}\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n".encode(), 400, "The request could not be read (Invalid chunk size"),
    ("api-chunked-over-limit", "chunked /api/predict", 413, TOO_LARGE_API),
    ("draw-chunked-over-limit", "chunked /draw", 413, TOO_LARGE_PAGE),
]


def send_raw(host: str, port: int, data: bytes) -> bytes:
    """Send bytes on a new connection and return everything the server sends until it closes (at most 10 s)."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        received += chunk
    return received


def send_chunked(host: str, port: int, path: str, content_type: str, size: int) -> bytes:
    """Send a chunked body of `size` bytes of "[" and return the reply, which may come before the body ends."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    piece = b"[" * 65536
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head.encode())
        try:
            for _ in range(size // len(piece)):
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server sent 413 and closed the connection before the end of the body
        return read_until_closed(sock)


@pytest.mark.parametrize("case_id, data, status, fragment", RAW_REQUESTS, ids=[case[0] for case in RAW_REQUESTS])
def test_raw_request_gunicorn(server, case_id, data, status, fragment):
    address = urlsplit(server.base)
    if isinstance(data, str):  # "chunked <path>": a chunked body over MAX_CONTENT_LENGTH
        path = data.split()[1]
        content_type = JSON_TYPE if path.startswith("/api/") else MULTIPART_TYPE
        received = send_chunked(address.hostname, address.port, path, content_type, OVER_LIMIT)
    else:
        received = send_raw(address.hostname, address.port, data)
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.split(b" ")[:2] == [b"HTTP/1.1", str(status).encode()], received[:300]
    assert fragment in html.unescape(rest.decode("utf-8", errors="replace"))
    assert b"Traceback" not in received


def test_gunicorn_still_serves_after_table(server, http_sender):
    reply = http_sender.request("GET", "/digits/0", {}, None, None)
    assert reply.status == 200
    # No worker crashed or was replaced, and the app logged no unhandled error.
    assert worker_pids(server.process.pid) == server.worker_pids_at_start
    log = server.log()
    assert "unhandled error" not in log
    assert "status=500" not in log


# ---------------------------------------------------------------------------
# What the valid unusual uploads turned into
# ---------------------------------------------------------------------------


def model_input_preview(page: str) -> np.ndarray:
    """Decode the 28x28 model input that the /draw result shows, upscaled 5 times, back to 28x28."""
    match = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert match, "the result shows no model input"
    image = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
    return np.asarray(image)[::5, ::5]


def test_strip_upload_becomes_a_line(client_sender, payloads):
    reply = client_sender.send(("strip", "POST", "/draw", {}, Upload("strip"), 200, ""), payloads)
    pixels = model_input_preview(reply.text)
    rows = np.flatnonzero(pixels.max(axis=1) > 0)
    cols = np.flatnonzero(pixels.max(axis=0) > 0)
    # The 6000x4 dash is scaled to 20 pixels long and at most 1 pixel thick, then centred.
    assert len(cols) == 20
    assert len(rows) <= 2
    assert abs(rows.mean() - 14) <= 1


@pytest.mark.parametrize(
    "name, min_overlap",
    # The GIF's first frame and the 16-bit PNG are lossless copies. JPEG blurs the strokes,
    # and in the palette PNG only the black background is transparent, so every grey edge
    # pixel counts as fully opaque ink and the strokes come out thicker.
    [("animated-gif", 0.95), ("png-16-bit", 0.95), ("cmyk-jpeg", 0.6), ("palette-transparent", 0.6)],
)
def test_unusual_upload_matches_png(client_sender, payloads, name, min_overlap):
    reference = model_input_preview(client_sender.send(("png", "POST", "/draw", {}, Upload("png"), 200, ""), payloads).text)
    pixels = model_input_preview(client_sender.send((name, "POST", "/draw", {}, Upload(name), 200, ""), payloads).text)
    ink, reference_ink = pixels > 64, reference > 64
    assert (ink & reference_ink).sum() / (ink | reference_ink).sum() > min_overlap


# ---------------------------------------------------------------------------
# Random input at the HTTP level (Hypothesis)
# ---------------------------------------------------------------------------

FUZZ_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=30) | st.dictionaries(st.text(max_size=6), children, max_size=5),
    max_leaves=80,
)
# Objects shaped like the API's requests, with any values inside.
API_OBJECTS = (
    st.fixed_dictionaries({"pixels": JSON_VALUES})
    | st.fixed_dictionaries({"image": st.text(max_size=40) | JSON_VALUES})
    | st.fixed_dictionaries({"items": st.lists(st.fixed_dictionaries({"pixels": JSON_VALUES}) | JSON_VALUES, max_size=5)})
    | JSON_VALUES
)
IMAGE_HEADERS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP"]


def check_fuzz_reply(response) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code < 500, text[:300]
    assert "Traceback" not in text


@FUZZ_SETTINGS
@given(header=st.sampled_from(IMAGE_HEADERS), data=st.binary(max_size=3000))
def test_fuzz_draw_upload(client_sender, header, data):
    reply = client_sender.send(("fuzz", "POST", "/draw", {}, Upload("fuzz"), 0, ""), {"fuzz": header + data})
    assert reply.status < 500, reply.text[:300]
    assert "Traceback" not in reply.text


@FUZZ_SETTINGS
@given(header=st.sampled_from(IMAGE_HEADERS), data=st.binary(max_size=3000))
def test_fuzz_api_upload(client_sender, header, data):
    body = multipart_body([("image", "upload.png", header + data)])
    response = client_sender.client.post(PREDICT, data=body, headers={"Content-Type": MULTIPART_TYPE})
    check_fuzz_reply(response)


@FUZZ_SETTINGS
@given(value=API_OBJECTS)
def test_fuzz_api_predict_json(client_sender, value):
    response = client_sender.client.post(PREDICT, data=json.dumps(value), headers={"Content-Type": JSON_TYPE})
    check_fuzz_reply(response)


@FUZZ_SETTINGS
@given(value=API_OBJECTS)
def test_fuzz_api_batch_json(client_sender, value):
    response = client_sender.client.post(BATCH, data=json.dumps(value), headers={"Content-Type": JSON_TYPE})
    check_fuzz_reply(response)


EXPLORE_KEYS = ["label", "predicted", "outcome", "max_confidence", "sort", "page", "per_page"]
# gunicorn rejects a request line with non-ASCII bytes or control characters with 400 (RAW_REQUESTS,
# "non-ascii-query"), so visible ASCII is all that the app receives in a raw query string.
VISIBLE_ASCII = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=200)


@FUZZ_SETTINGS
@given(
    query=st.lists(st.tuples(st.sampled_from(EXPLORE_KEYS) | st.text(max_size=8), st.text(max_size=30)), max_size=8).map(urlencode)
    | VISIBLE_ASCII,
    htmx=st.booleans(),
)
def test_fuzz_explore_query(client_sender, query, htmx):
    headers = {"HX-Request": "true"} if htmx else {}
    # Set QUERY_STRING directly, so that stray %, & and = reach the app as sent.
    response = client_sender.client.get("/explore", headers=headers, environ_overrides={"QUERY_STRING": query})
    check_fuzz_reply(response)
    if response.status_code == 302:
        # A page redirects to its one canonical URL, which is served without another redirect.
        location = response.headers["Location"]
        assert location.startswith("/explore")
        canonical = client_sender.client.get(location, headers=headers)
        check_fuzz_reply(canonical)
        assert canonical.status_code != 302
