"""Security headers, CSRF protection and the SECRET_KEY requirement."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from webapp import StartupError, create_app

PAGES = ["/", "/digits/3", "/digits/3.png", "/digits/99999", "/explore", "/confusion", "/model", "/draw",
         "/static/style.css", "/api/digits/3", "/api/digits/x", "/healthz", "/no/such/page"]


def png_bytes(test_split, label: int) -> bytes:
    images, labels = test_split
    buffer = io.BytesIO()
    Image.fromarray(images[int(np.flatnonzero(labels == label)[0])]).save(buffer, format="PNG")
    return buffer.getvalue()


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the form"
    return match.group(1)


@pytest.mark.parametrize("path", PAGES)
def test_security_headers_everywhere(client, path):
    response = client.get(path)
    response.close()
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'self'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers


def test_hsts_over_https(client):
    response = client.get("/digits/3", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_pages_have_no_inline_script_or_style(client):
    for path in ("/digits/3", "/explore", "/confusion", "/model", "/draw"):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert "<style" not in html, path
        assert " style=" not in html, path
        assert " onclick=" not in html, path


def test_upload_with_form_token(client, test_split):
    token = csrf_from(client.get("/draw").text)
    response = client.post("/draw", data={"csrf_token": token, "image": (io.BytesIO(png_bytes(test_split, 3)), "3.png")})
    assert response.status_code == 200
    assert 'class="predicted">3</strong>' in response.text


def test_upload_with_header_token(client, test_split):
    token = csrf_from(client.get("/draw").text)
    response = client.post(
        "/draw",
        data={"image": (io.BytesIO(png_bytes(test_split, 5)), "5.png")},
        headers={"X-CSRF-Token": token, "HX-Request": "true", "HX-Target": "result"},
    )
    assert response.status_code == 200
    assert "<!doctype html>" not in response.text


@pytest.mark.parametrize("token", [None, "", "forged-token", "é", "\u00e9" * 43])
def test_upload_without_valid_token_rejected(client, test_split, token):
    client.get("/draw")
    data = {"image": (io.BytesIO(png_bytes(test_split, 3)), "3.png")}
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/draw", data=data)
    assert response.status_code == 400
    assert "The form could not be verified" in response.text


def test_non_ascii_header_token_rejected(client, test_split):
    client.get("/draw")
    response = client.post(
        "/draw",
        data={"image": (io.BytesIO(png_bytes(test_split, 3)), "3.png")},
        headers={"X-CSRF-Token": "éééé", "HX-Request": "true", "HX-Target": "result"},
    )
    assert response.status_code == 400
    assert "The form could not be verified" in response.text


def test_token_from_other_session_rejected(app, test_split):
    token = csrf_from(app.test_client().get("/draw").text)
    other = app.test_client()
    other.get("/draw")
    response = other.post("/draw", data={"csrf_token": token, "image": (io.BytesIO(png_bytes(test_split, 3)), "3.png")})
    assert response.status_code == 400


def test_api_is_exempt_from_csrf(client):
    response = client.post("/api/predict", json={"pixels": [0.0] * 784})
    assert response.status_code == 200


def test_session_cookie_flags(client):
    client.get("/draw")
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"


def test_digit_pages_set_no_cookie(client):
    response = client.get("/digits/3")
    assert "Set-Cookie" not in response.headers


def test_secret_key_required(monkeypatch, mnist_dir, model_path):
    monkeypatch.delenv("SECRET_KEY")
    with pytest.raises(StartupError, match="SECRET_KEY is not set; generate one with: python -c"):
        create_app({"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path)})


def test_short_secret_key_rejected(monkeypatch, mnist_dir, model_path):
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(StartupError, match="SECRET_KEY is 5 characters long; use at least 16"):
        create_app({"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path)})


def test_wsgi_app_is_not_debug(monkeypatch, mnist_dir):
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    monkeypatch.setenv("FLASK_DEBUG", "1")
    import importlib

    import wsgi

    importlib.reload(wsgi)
    assert not wsgi.app.debug
    assert not wsgi.app.testing
    response = wsgi.app.test_client().get("/digits/abc?__debugger__=yes&cmd=resource&f=style.css")
    assert response.status_code == 404
    assert "Werkzeug" not in response.text
