"""Routes through Flask's test client, with the committed model and the real test set."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from webapp import StartupError, create_app

HX = {"HX-Request": "true"}


def shown_index(html: str) -> int:
    match = re.search(r'<img src="/digits/(\d+)\.png"', html)
    assert match, "no digit image in the response"
    return int(match.group(1))


def next_link(html: str) -> str:
    match = re.search(r'id="next"[^>]*\s+href="([^"]+)"', html, re.S)
    assert match, "no Next link in the response"
    return match.group(1)


def test_index_shows_random_digit(client):
    indexes = set()
    for _ in range(8):
        response = client.get("/")
        assert response.status_code == 200
        assert "<!doctype html>" in response.text
        indexes.add(shown_index(response.text))
    assert len(indexes) > 1


def test_digit_page_shows_label_and_prediction(client, test_split, app):
    images, labels = test_split
    response = client.get("/digits/0")
    assert response.status_code == 200
    html = response.text
    assert shown_index(html) == 0
    assert "<!doctype html>" in html
    assert f'True label</span> <strong>{labels[0]}</strong>' in html
    assert re.search(r'class="predicted">\d</strong>', html)
    assert re.search(r'class="confidence">\d+\.\d%</span>', html)
    assert f"a handwritten {labels[0]}, predicted as" in html


def test_digit_page_prediction_matches_model(client, app):
    from webapp.resources import current_model, current_test_set

    with app.app_context():
        digit = current_test_set().digit(1234, current_model())
    html = client.get("/digits/1234").text
    assert f'class="predicted">{digit.predicted}</strong>' in html
    assert f"{100 * digit.confidence:.1f}%" in html


def test_fragment_for_htmx_request(client):
    response = client.get("/digits/7", headers=HX)
    assert response.status_code == 200
    assert "<!doctype html>" not in response.text
    assert "<html" not in response.text
    assert response.text.lstrip().startswith("<title>Test digit 7")
    assert '<section id="digit"' in response.text
    assert shown_index(response.text) == 7


def test_history_restore_gets_full_page(client):
    response = client.get("/digits/7", headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<!doctype html>" in response.text


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
@pytest.mark.parametrize("path", ["/", "/digits/3", "/digits/99999"])
def test_vary_on_hx_request(client, path, headers):
    response = client.get(path, headers=headers)
    assert "HX-Request" in response.headers.get("Vary", "")


def test_next_link_works_without_javascript(client):
    html = client.get("/digits/3").text
    href = next_link(html)
    assert href == "/digits/random"
    assert f'hx-get="{href}"' in html
    assert 'hx-target="#digit"' in html
    response = client.get(href)
    assert response.status_code == 302
    assert re.fullmatch(r"/digits/\d+", response.headers["Location"])
    assert client.get(response.headers["Location"]).status_code == 200


def test_random_digit_redirects_to_varying_digits(client):
    locations = set()
    for _ in range(8):
        response = client.get("/digits/random")
        assert response.status_code == 302
        assert response.headers["Cache-Control"] == "no-store"
        assert "HX-Request" in response.headers["Vary"]
        locations.add(response.headers["Location"])
    assert len(locations) > 1


def test_random_digit_fragment_pushes_its_url(client):
    response = client.get("/digits/random", headers=HX)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "<!doctype html>" not in response.text
    pushed = response.headers["HX-Push-Url"]
    assert pushed == f"/digits/{shown_index(response.text)}"
    assert response.text.lstrip().startswith(f"<title>Test digit {shown_index(response.text)} ")


def test_random_digit_history_restore_redirects(client):
    headers = {**HX, "HX-History-Restore-Request": "true"}
    assert client.get("/digits/random", headers=headers).status_code == 302


def test_digit_page_is_same_on_every_request(client):
    first = client.get("/digits/3")
    second = client.get("/digits/3")
    assert first.text == second.text
    assert client.get("/digits/3", headers=HX).text == client.get("/digits/3", headers=HX).text


def test_digit_section_cache_matches_uncached(mnist_dir, model_path):
    cached = create_app({"TESTING": True, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path)})
    uncached = create_app(
        {"TESTING": True, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "DIGIT_HTML_CACHE": 0}
    )
    for path in ["/digits/0", "/digits/9999", "/digits/0"]:
        for headers in [{}, HX]:
            assert cached.test_client().get(path, headers=headers).text == uncached.test_client().get(path, headers=headers).text
    assert cached.extensions["mnist_digit_pages"].section_cache_info().hits >= 2
    assert uncached.extensions["mnist_digit_pages"].section_cache_info().currsize == 0


def test_digit_links_follow_script_root(client):
    html = client.get("/digits/3", base_url="http://localhost/mnist").text
    assert '<img src="/mnist/digits/3.png"' in html
    assert 'href="/mnist/digits/random"' in html
    assert 'href="/mnist/digits/3">Link to this digit' in html
    assert 'href="/mnist/static/style.css"' in html
    # The same digit at the root still links to root URLs, though its section is cached.
    html = client.get("/digits/3").text
    assert '<img src="/digits/3.png"' in html
    assert 'href="/static/style.css"' in html


def test_digit_url_matches_url_for(app):
    from flask import url_for

    from webapp.digit_pages import digit_url

    for script_root in ["", "/mnist", "/a/b"]:
        with app.test_request_context("/", base_url=f"http://localhost{script_root}"):
            assert digit_url(0).startswith(f"{script_root}/digits/")
            assert digit_url(42) == url_for("digits.digit_page", index=42)
            assert digit_url(42, ".png") == url_for("digits.digit_png", index="42")


@pytest.mark.parametrize("value", [-1, "many", True])
def test_invalid_digit_cache_setting_stops_startup(mnist_dir, model_path, value):
    with pytest.raises(StartupError, match="DIGIT_HTML_CACHE"):
        create_app({"TESTING": True, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "DIGIT_HTML_CACHE": value})


def test_png_is_upscaled_digit(client, test_split):
    images, _ = test_split
    response = client.get("/digits/42.png")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    image = Image.open(io.BytesIO(response.data))
    assert image.size == (280, 280)
    assert image.mode == "L"
    pixels = np.asarray(image)
    np.testing.assert_array_equal(pixels[::10, ::10], images[42])
    np.testing.assert_array_equal(pixels, np.kron(images[42], np.ones((10, 10), np.uint8)))


def test_png_is_cacheable(client):
    response = client.get("/digits/42.png")
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag = response.headers["ETag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    again = client.get("/digits/42.png", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""


def test_png_differs_per_digit(client):
    assert client.get("/digits/1.png").headers["ETag"] != client.get("/digits/2.png").headers["ETag"]


def test_png_scale_setting(mnist_dir, model_path):
    app = create_app({"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "PNG_SCALE": 4})
    image = Image.open(io.BytesIO(app.test_client().get("/digits/0.png").data))
    assert image.size == (112, 112)


@pytest.mark.parametrize(
    "index",
    ["10000", "99999", "-1", "abc", "1.5", "12345678901234567890", "%E2%91%A0", "0x10", " 1", "1e3"],
)
@pytest.mark.parametrize("suffix", ["", ".png"])
def test_bad_index_is_404_with_range(client, index, suffix):
    response = client.get(f"/digits/{index}{suffix}")
    assert response.status_code == 404
    assert "Test digits are numbered 0 to 9999" in response.text
    assert "Traceback" not in response.text


def test_bad_index_fragment_for_htmx(client):
    response = client.get("/digits/10000", headers=HX)
    assert response.status_code == 404
    assert "<!doctype html>" not in response.text
    assert "numbered 0 to 9999" in response.text


@pytest.mark.parametrize("index", ["0", "9999", "007"])
def test_edge_indexes_are_found(client, index):
    response = client.get(f"/digits/{index}")
    assert response.status_code == 200
    assert shown_index(response.text) == int(index)


def test_unknown_path_is_404_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "<!doctype html>" in response.text


def test_post_to_digit_is_405(client):
    assert client.post("/digits/1").status_code == 405


def test_footer_shows_model_accuracy(client, model_path):
    import json

    card = json.loads(model_path.with_suffix(".json").read_text())
    html = client.get("/digits/1").text
    assert f"{100 * card['test_accuracy']:.2f}% accurate on the 10,000 MNIST test digits" in html


def test_static_htmx_is_served(client):
    with client.get("/static/htmx.min.js") as response:
        assert response.status_code == 200
        assert b'version:"2.0.11"' in response.data


def test_missing_model_stops_startup(mnist_dir, tmp_path):
    missing = tmp_path / "absent.onnx"
    with pytest.raises(StartupError, match=rf"{re.escape(str(missing))} not found; train one with: python -m train"):
        create_app({"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(missing)})


def test_missing_data_stops_startup(model_path, tmp_path):
    with pytest.raises(StartupError, match=r"t10k-images-idx3-ubyte.gz: file not found.*python -m train.data download"):
        create_app({"MNIST_DIR": str(tmp_path), "MODEL_PATH": str(model_path)})


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_invalid_thread_setting_stops_startup(monkeypatch, mnist_dir, model_path, value):
    monkeypatch.setenv("ORT_INTRA_OP_THREADS", value)
    with pytest.raises(StartupError, match="ORT_INTRA_OP_THREADS"):
        create_app({"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path)})


def test_environment_sets_paths(monkeypatch, mnist_dir, model_path):
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    monkeypatch.setenv("MODEL_PATH", str(model_path))
    app = create_app()
    assert app.config["MNIST_DIR"] == str(mnist_dir)
    assert app.config["MODEL_PATH"] == str(model_path)


@pytest.mark.parametrize(
    "source",
    [
        "<title>{{ title }}</title>",  # no section slot
        "{{ section }} {{ title }}",  # slots out of order
        "{{ title }} {{ section }} {{ section }}",  # a slot twice
    ],
    ids=["missing", "out-of-order", "twice"],
)
def test_frame_rejects_bad_slots(app, source):
    from jinja2 import ChoiceLoader, DictLoader

    from webapp.digit_pages import render_frame

    app.jinja_env.loader = ChoiceLoader([DictLoader({"bad_frame.html": source}), app.jinja_env.loader])
    with app.test_request_context("/"), pytest.raises(RuntimeError, match="bad_frame.html must show"):
        render_frame("bad_frame.html")


def test_frame_fills_slots_in_order(app):
    from webapp.digit_pages import render_frame

    with app.test_request_context("/"):
        frame = render_frame("digit_fragment.html")
    assert len(frame.parts) == 3
    assert frame.fill("T", "<p>S</p>") == "<title>T</title>\n<p>S</p>"


def test_leading_zeros_do_not_count_towards_limit(client):
    response = client.get("/digits/0000000005")
    assert response.status_code == 200
    assert shown_index(response.text) == 5
    assert client.get("/digits/" + "0" * 50 + "5").status_code == 200
    assert client.get("/digits/1" + "0" * 9).status_code == 404


def test_unprintable_index_shown_safely(client):
    response = client.get("/digits/5%00x")
    assert response.status_code == 404
    assert "\x00" not in response.text
    assert "There is no test digit &#34;5?x&#34;" in response.text


def test_random_index_page_is_not_cached(client):
    assert client.get("/").headers["Cache-Control"] == "no-store"


def test_random_digit_push_url_is_percent_encoded(client):
    response = client.get("/digits/random", headers=HX, base_url="http://localhost/m%C3%BC")
    assert response.headers["HX-Push-Url"] == f"/m%C3%BC/digits/{shown_index_under(response.text, '/mü')}"


def shown_index_under(html: str, script_root: str) -> int:
    match = re.search(rf'<img src="{re.escape(script_root)}/digits/(\d+)\.png"', html)
    assert match, "no digit image in the response"
    return int(match.group(1))
