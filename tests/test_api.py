"""The JSON API: good and bad requests through Flask's test client and a real gunicorn.

The table BAD_REQUESTS runs twice, once in-process and once over HTTP on 127.0.0.1, and
every response, good or bad, is validated against the app's own OpenAPI document.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from conftest import gunicorn_server
from webapp import create_app
from webapp.testset import encode_png

LIMIT = 256  # the default API_MAX_BATCH
MAX_BYTES = 4 * 1024 * 1024  # the default MAX_CONTENT_LENGTH
JSON_TYPE = "application/json"
BOUNDARY = "test-boundary-5d1c"
MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


# ---------------------------------------------------------------------------
# Requests and replies
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes = b""
    content_type: str | None = None
    # Body length for the 413 case: the test client sends that many bytes, and the HTTP
    # client sends only the Content-Length header, because gunicorn closes the connection
    # without reading the body.
    oversize: int | None = None


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def send_with_client(client, call: Call) -> Reply:
    headers = {"Content-Type": call.content_type} if call.content_type else {}
    data = b"{" * call.oversize if call.oversize is not None else call.body
    response = client.open(call.path, method=call.method, data=data, headers=headers)
    return Reply(response.status_code, response.content_type, dict(response.headers), response.get_data())


def send_over_http(base: str, call: Call) -> Reply:
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=20)
    try:
        connection.putrequest(call.method, call.path)
        if call.content_type:
            connection.putheader("Content-Type", call.content_type)
        connection.putheader("Content-Length", str(call.oversize if call.oversize is not None else len(call.body)))
        connection.endheaders(call.body if call.oversize is None and call.body else None)
        response = connection.getresponse()
        return Reply(response.status, response.getheader("Content-Type", ""), dict(response.getheaders()), response.read())
    finally:
        connection.close()


def json_call(path: str, value, content_type: str = JSON_TYPE) -> Call:
    return Call("POST", path, json.dumps(value).encode(), content_type)


def raw_call(path: str, body: bytes, content_type: str | None = JSON_TYPE) -> Call:
    return Call("POST", path, body, content_type)


def multipart_call(path: str, *parts: tuple[str, str | None, bytes]) -> Call:
    """Return a POST with a multipart body of (field name, file name or None for a text field, bytes) parts."""
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        file_type = "Content-Type: application/octet-stream\r\n" if filename else ""
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{file_type}\r\n".encode() + data + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return Call("POST", path, body, MULTIPART_TYPE)


def image_bytes(pixels: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format=image_format)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


FLAT = [0.0] * 392 + [1.0] * 392
BLANK_PNG = image_bytes(np.full((28, 28), 255), "PNG")
BMP = image_bytes(np.eye(28) * 255, "BMP")


def pixels_with(index: int, value) -> list:
    pixels = list(FLAT)
    pixels[index] = value
    return pixels


def batch_with(index: int, item: dict, count: int = 5) -> dict:
    items = [{"pixels": FLAT} for _ in range(count)]
    items[index] = item
    return {"items": items}


# ---------------------------------------------------------------------------
# The table of bad requests: (id, call, status, fragment of the error message)
# ---------------------------------------------------------------------------

PREDICT = "/api/predict"
BATCH = "/api/predict/batch"

BAD_REQUESTS = [
    # Content-Type and body syntax
    ("text-plain", raw_call(PREDICT, b"hello", "text/plain"), 415, "got Content-Type text/plain"),
    ("no-content-type", raw_call(PREDICT, b"{}", None), 415, "got no Content-Type"),
    ("xml", raw_call(PREDICT, b"<a/>", "application/xml"), 415, "accepts Content-Type application/json or multipart/form-data"),
    ("form-urlencoded", raw_call(PREDICT, b"pixels=1", "application/x-www-form-urlencoded"), 415, "application/x-www-form-urlencoded"),
    ("invalid-json", raw_call(PREDICT, b'{"pixels": ['), 400, "the request body is not valid JSON"),
    ("empty-body", raw_call(PREDICT, b""), 400, "the request body is empty"),
    ("integer-of-5000-digits", raw_call(PREDICT, b'{"pixels": [' + b"1" * 5000 + b"]}"), 400, "an integer of more than 4,300 digits"),
    ("not-utf8", raw_call(PREDICT, b'{"pixels": "\xff\xfe"}'), 400, "not valid JSON: it is not UTF-8 text"),
    ("nan-literal", raw_call(PREDICT, b'{"pixels": [NaN]}'), 400, "NaN is not a JSON number"),
    ("infinity-literal", raw_call(PREDICT, b'{"pixels": [-Infinity]}'), 400, "-Infinity is not a JSON number"),
    ("deep-nesting", raw_call(PREDICT, b'{"pixels": ' + b"[" * 100_000), 400, "nested too deeply"),
    ("repeated-key", raw_call(PREDICT, b'{"pixels": [], "pixels": []}'), 400, "the key 'pixels' appears twice"),
    ("too-large", Call("POST", PREDICT, content_type=JSON_TYPE, oversize=MAX_BYTES + 1), 413, f"larger than the limit of {MAX_BYTES} bytes"),
    # The JSON object
    ("array-body", json_call(PREDICT, [FLAT]), 400, "the request body must be a JSON object, got array"),
    ("string-body", json_call(PREDICT, "pixels"), 400, "must be a JSON object, got string"),
    ("empty-object", json_call(PREDICT, {}), 400, "expected exactly one of 'pixels' or 'image', got neither"),
    ("both-fields", json_call(PREDICT, {"pixels": FLAT, "image": b64(BLANK_PNG)}), 400, "got both"),
    ("unknown-field", json_call(PREDICT, {"pixels": FLAT, "colour": "red"}), 400, "unknown fields 'colour'"),
    # pixels
    ("783-pixels", json_call(PREDICT, {"pixels": FLAT[:-1]}), 400, "pixels: expected 784 values, got 783"),
    ("pixel-above-1", json_call(PREDICT, {"pixels": pixels_with(10, 1.5)}), 400, "pixels[10]: expected a number in [0, 1], got 1.5"),
    ("pixel-negative", json_call(PREDICT, {"pixels": pixels_with(0, -0.01)}), 400, "pixels[0]: expected a number in [0, 1], got -0.01"),
    ("pixel-string", json_call(PREDICT, {"pixels": pixels_with(3, "0.5")}), 400, 'pixels[3]: expected a number in [0, 1], got the string "0.5"'),
    ("pixel-boolean", json_call(PREDICT, {"pixels": pixels_with(4, True)}), 400, "pixels[4]: expected a number in [0, 1], got true"),
    ("pixel-null", json_call(PREDICT, {"pixels": pixels_with(5, None)}), 400, "pixels[5]: expected a number in [0, 1], got null"),
    ("pixel-overflow", raw_call(PREDICT, json.dumps({"pixels": FLAT}).replace("1.0", "1e999", 1).encode()), 400, "expected a finite number in [0, 1], got Infinity"),
    ("27-rows", json_call(PREDICT, {"pixels": [[0.0] * 28] * 27}), 400, "pixels: expected 28 rows of 28 values, got 27 rows"),
    ("short-row", json_call(PREDICT, {"pixels": [[0.0] * 28] * 5 + [[0.0] * 27] + [[0.0] * 28] * 22}), 400, "pixels[5]: expected 28 values in row 5, got 27"),
    ("pixels-object", json_call(PREDICT, {"pixels": {"0": 1}}), 400, "pixels: expected a list of 784 numbers or 28 lists of 28, got an object"),
    # image (base64)
    ("image-number", json_call(PREDICT, {"image": 7}), 400, "image: expected a base64 string of a PNG, JPEG, WebP or GIF file, got number"),
    ("image-bad-base64", json_call(PREDICT, {"image": "iVBOR$w0KGgo="}), 400, "image: invalid base64"),
    ("image-data-url", json_call(PREDICT, {"image": "data:image/png;base64," + b64(BLANK_PNG)}), 400, "image: expected plain base64, got a data URL"),
    ("image-empty", json_call(PREDICT, {"image": ""}), 400, "image: the base64 string is empty"),
    ("image-not-image", json_call(PREDICT, {"image": b64(b"just some text, not a picture")}), 400, "image: The upload is not a PNG, JPEG, WebP or GIF image"),
    ("image-blank", json_call(PREDICT, {"image": b64(BLANK_PNG)}), 422, "image: No digit found"),
    ("image-bmp", json_call(PREDICT, {"image": b64(BMP)}), 415, "image: The upload is a BMP image"),
    # multipart
    ("multipart-missing", multipart_call(PREDICT, ("file", "digit.png", BLANK_PNG)), 400, "unknown multipart fields 'file'"),
    ("multipart-empty", multipart_call(PREDICT), 400, "the multipart field 'image' is missing"),
    ("multipart-extra", multipart_call(PREDICT, ("image", "a.png", BLANK_PNG), ("note", None, b"hi")), 400, "unknown multipart fields 'note'"),
    ("multipart-text-field", multipart_call(PREDICT, ("image", None, b"iVBORw0KGgo=")), 400, "must be a file upload, not a text field"),
    ("multipart-two-files", multipart_call(PREDICT, ("image", "a.png", BLANK_PNG), ("image", "b.png", BLANK_PNG)), 400, "has 2 files"),
    ("multipart-empty-file", multipart_call(PREDICT, ("image", "a.png", b"")), 400, "image: The upload is empty"),
    ("multipart-blank", multipart_call(PREDICT, ("image", "a.png", BLANK_PNG)), 422, "image: No digit found"),
    # batch
    ("batch-multipart", multipart_call(BATCH, ("image", "a.png", BLANK_PNG)), 415, "accepts Content-Type application/json; got Content-Type multipart/form-data"),
    ("batch-array-body", json_call(BATCH, [{"pixels": FLAT}]), 400, "must be a JSON object, got array"),
    ("batch-no-items", json_call(BATCH, {"pixels": FLAT}), 400, "unknown fields 'pixels' in the request body; expected 'items'"),
    ("batch-missing-items", json_call(BATCH, {}), 400, "the field 'items' is missing"),
    ("batch-items-object", json_call(BATCH, {"items": {"pixels": FLAT}}), 400, "items: expected an array of objects, got object"),
    ("batch-empty", json_call(BATCH, {"items": []}), 400, f"items: the array is empty; send 1 to {LIMIT} items"),
    ("batch-over-limit", json_call(BATCH, {"items": [{"pixels": [0] * 784}] * (LIMIT + 1)}), 413, f"got {LIMIT + 1} items, the limit is {LIMIT}"),
    ("batch-item-783", json_call(BATCH, batch_with(3, {"pixels": FLAT[:-1]})), 400, "items[3].pixels: expected 784 values, got 783"),
    ("batch-item-pixel", json_call(BATCH, batch_with(2, {"pixels": pixels_with(7, 2)})), 400, "items[2].pixels[7]: expected a number in [0, 1], got 2"),
    ("batch-item-string", json_call(BATCH, batch_with(1, "pixels")), 400, "items[1]: expected an object with 'pixels' or 'image', got string"),
    ("batch-item-unknown", json_call(BATCH, batch_with(2, {"pixels": FLAT, "label": 3})), 400, "unknown fields 'items[2].label'"),
    ("batch-item-both", json_call(BATCH, batch_with(0, {"pixels": FLAT, "image": "x"})), 400, "items[0]: expected exactly one of 'pixels' or 'image', got both"),
    ("batch-item-neither", json_call(BATCH, batch_with(4, {})), 400, "items[4]: expected exactly one of 'pixels' or 'image', got neither"),
    ("batch-item-base64", json_call(BATCH, batch_with(3, {"image": "not base64!"})), 400, "items[3].image: invalid base64"),
    ("batch-item-blank", json_call(BATCH, batch_with(4, {"image": b64(BLANK_PNG)})), 422, "items[4].image: No digit found"),
    ("batch-deep-nesting", raw_call(BATCH, b'{"items": ' + b"[" * 100_000), 400, "nested too deeply"),
    # digits, unknown routes and methods
    ("digit-past-end", Call("GET", "/api/digits/10000"), 404, "Test digits are numbered 0 to 9999; try /api/digits/0 or /api/digits/9999."),
    ("digit-letters", Call("GET", "/api/digits/abc"), 404, 'There is no test digit "abc"'),
    ("digit-negative", Call("GET", "/api/digits/-1"), 404, 'There is no test digit "-1"'),
    ("digit-huge", Call("GET", "/api/digits/" + "9" * 30), 404, "numbered 0 to 9999"),
    ("digit-unicode-digits", Call("GET", "/api/digits/%D9%A3"), 404, "There is no test digit"),
    ("predict-get", Call("GET", PREDICT), 405, "The method is not allowed"),
    ("model-post", raw_call("/api/model", b"{}"), 405, "The method is not allowed"),
    ("unknown-route", Call("GET", "/api/nothing"), 404, "The requested URL was not found"),
]

BAD_IDS = [case[0] for case in BAD_REQUESTS]
assert len(set(BAD_IDS)) == len(BAD_IDS)


# ---------------------------------------------------------------------------
# OpenAPI validation of replies
# ---------------------------------------------------------------------------


def find_operation(document: dict, method: str, path: str) -> dict | None:
    for template, operations in document["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return operations.get(method.lower())
    return None


def check_against_openapi(document: dict, call: Call, reply: Reply) -> None:
    """Assert that the reply's status and body are what the OpenAPI document promises for the call."""
    path = urlsplit(call.path).path
    mimetype = reply.content_type.split(";")[0].strip()
    operation = find_operation(document, call.method, path)
    if operation is None:
        # Unknown routes and methods are Flask's 404 and 405, with the common error body.
        assert reply.status in (404, 405), f"{call.method} {path} is not in the OpenAPI document"
        schema = {"$ref": "#/components/schemas/Error"}
        assert mimetype == JSON_TYPE
    else:
        responses = operation["responses"]
        assert str(reply.status) in responses, f"{call.method} {path} returned {reply.status}, which the document does not list"
        content = responses[str(reply.status)]["content"]
        assert mimetype in content, f"{call.method} {path} returned {mimetype}; the document lists {list(content)}"
        schema = content[mimetype]["schema"]
    instance = json.loads(reply.body) if mimetype == JSON_TYPE else reply.body.decode()
    # The document is the root, so that "#/components/..." references resolve; its other
    # keys (openapi, info, paths) are not JSON Schema keywords and are ignored.
    Draft202012Validator({**document, **schema}).validate(instance)


@pytest.fixture(scope="module")
def openapi_document(mnist_dir, model_path) -> dict:
    app = create_app({"TESTING": True, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path)})
    return app.test_client().get("/api/openapi.json").json


def check_bad_reply(reply: Reply, status: int, fragment: str, openapi_document: dict, call: Call) -> None:
    assert reply.status == status, reply.body[:500]
    assert reply.content_type.startswith(JSON_TYPE)
    body = reply.json()
    assert set(body) == {"error"}
    assert fragment in body["error"]
    assert "Traceback" not in body["error"]
    check_against_openapi(openapi_document, call, reply)


@pytest.mark.parametrize("case_id, call, status, fragment", BAD_REQUESTS, ids=BAD_IDS)
def test_bad_request_client(client, openapi_document, case_id, call, status, fragment):
    check_bad_reply(send_with_client(client, call), status, fragment, openapi_document, call)


@pytest.fixture(scope="module")
def server(mnist_dir, model_path, tmp_path_factory):
    env = {"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "WEB_CONCURRENCY": "2"}
    with gunicorn_server(env, tmp_path_factory.mktemp("gunicorn-api") / "server.log", warm_workers=2) as running:
        yield running


@pytest.mark.parametrize("case_id, call, status, fragment", BAD_REQUESTS, ids=BAD_IDS)
def test_bad_request_gunicorn(server, openapi_document, case_id, call, status, fragment):
    check_bad_reply(send_over_http(server.base, call), status, fragment, openapi_document, call)


def test_bad_request_table_size():
    assert len(BAD_REQUESTS) >= 20
    assert {status for _, _, status, _ in BAD_REQUESTS} == {400, 404, 405, 413, 415, 422}


# ---------------------------------------------------------------------------
# Good requests
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_images(test_split) -> dict:
    """Test digits 0 to 4 as 280x280 PNGs, JPEGs and float64 pixel lists in [0, 1]."""
    images, labels = test_split
    return {
        index: {
            "label": int(labels[index]),
            "png": encode_png(images[index], 10),
            "jpeg": image_bytes(np.kron(images[index], np.ones((10, 10))), "JPEG"),
            "pixels": (images[index] / 255.0).tolist(),
        }
        for index in range(5)
    }


def model_probabilities(app, batch: np.ndarray) -> np.ndarray:
    from webapp.resources import current_model

    with app.app_context():
        return current_model().predict(batch.astype(np.float32))


def good_calls(digit_images) -> list[Call]:
    digit = digit_images[0]
    return [
        json_call(PREDICT, {"pixels": digit["pixels"]}),
        json_call(PREDICT, {"pixels": np.reshape(digit["pixels"], (28, 28)).tolist()}),
        json_call(PREDICT, {"image": b64(digit["png"])}),
        json_call(PREDICT, {"image": b64(digit["jpeg"])}),
        multipart_call(PREDICT, ("image", "digit.png", digit["png"])),
        json_call(BATCH, {"items": [{"pixels": digit["pixels"]}, {"image": b64(digit["png"])}]}),
        Call("GET", "/api/digits/0"),
        Call("GET", "/api/digits/9999"),
        Call("GET", "/api/model"),
        Call("GET", "/api/openapi.json"),
        Call("GET", "/healthz"),
        Call("GET", "/readyz"),
        Call("GET", "/metrics"),
    ]


def test_good_requests_match_openapi_client(client, openapi_document, digit_images):
    for call in good_calls(digit_images):
        reply = send_with_client(client, call)
        assert reply.status == 200, (call.path, reply.body[:300])
        check_against_openapi(openapi_document, call, reply)


def test_good_requests_match_openapi_gunicorn(server, openapi_document, digit_images):
    for call in good_calls(digit_images):
        reply = send_over_http(server.base, call)
        assert reply.status == 200, (call.path, reply.body[:300])
        check_against_openapi(openapi_document, call, reply)


def test_predict_pixels_match_model(app, client, digit_images, model_path):
    import hashlib

    pixels = digit_images[1]["pixels"]
    response = client.post(PREDICT, json={"pixels": pixels})
    expected = model_probabilities(app, np.asarray(pixels, dtype=np.float64).reshape(1, 1, 28, 28))[0]
    body = response.json
    assert response.status_code == 200
    assert body["digit"] == digit_images[1]["label"]
    assert body["digit"] == int(expected.argmax())
    np.testing.assert_allclose(body["probabilities"], expected, rtol=0, atol=1e-7)
    assert body["model_sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()


def test_predict_float64_pixels_cast_to_float32(app, client):
    # 0.1 + 1e-12 is a different float64 than 0.1 but the same float32.
    pixels = [0.0] * 784
    pixels[300:320] = [0.1 + 1e-12] * 20
    body = client.post(PREDICT, json={"pixels": pixels}).json
    reference = np.zeros(784, dtype=np.float32)
    reference[300:320] = np.float32(0.1)
    expected = model_probabilities(app, reference.reshape(1, 1, 28, 28))[0]
    assert body["probabilities"] == [float(p) for p in expected]


def test_predict_nested_equals_flat(client, digit_images):
    pixels = digit_images[2]["pixels"]
    flat = client.post(PREDICT, json={"pixels": pixels}).json
    nested = client.post(PREDICT, json={"pixels": np.reshape(pixels, (28, 28)).tolist()}).json
    assert flat == nested


def test_predict_image_forms_agree(app, client, digit_images):
    from webapp.preprocess import preprocess_upload

    for index, digit in digit_images.items():
        as_json = client.post(PREDICT, json={"image": b64(digit["png"])}).json
        upload = send_with_client(client, multipart_call(PREDICT, ("image", "digit.png", digit["png"]))).json()
        expected = model_probabilities(app, preprocess_upload(digit["png"]).model_input())[0]
        assert as_json == upload
        assert as_json["probabilities"] == [float(p) for p in expected]
        assert as_json["digit"] == digit["label"], f"test digit {index}"


def test_predict_jpeg(client, digit_images):
    for digit in digit_images.values():
        assert client.post(PREDICT, json={"image": b64(digit["jpeg"])}).json["digit"] == digit["label"]


def test_batch_matches_single_predictions_in_order(client, digit_images):
    items = []
    for digit in digit_images.values():
        items += [{"pixels": digit["pixels"]}, {"image": b64(digit["png"])}]
    items.reverse()
    response = client.post(BATCH, json={"items": items})
    assert response.status_code == 200
    predictions = response.json["predictions"]
    assert len(predictions) == len(items)
    for item, prediction in zip(items, predictions):
        single = client.post(PREDICT, json=item).json
        assert prediction["digit"] == single["digit"]
        np.testing.assert_allclose(prediction["probabilities"], single["probabilities"], rtol=0, atol=1e-6)


def test_batch_is_one_model_call(client):
    from test_ops import metric_value

    before = client.get("/metrics").text
    response = client.post(BATCH, json={"items": [{"pixels": FLAT}] * 7})
    after = client.get("/metrics").text
    assert response.status_code == 200
    assert metric_value(after, "mnist_inference_batch_size_count") - metric_value(before, "mnist_inference_batch_size_count") == 1
    assert metric_value(after, "mnist_inference_batch_size_sum") - metric_value(before, "mnist_inference_batch_size_sum") == 7


def test_batch_at_limit(client):
    response = client.post(BATCH, json={"items": [{"pixels": FLAT}] * LIMIT})
    assert response.status_code == 200
    assert len(response.json["predictions"]) == LIMIT


def test_batch_limit_setting(mnist_dir, model_path):
    app = create_app({"TESTING": True, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "API_MAX_BATCH": 2})
    client = app.test_client()
    response = client.post(BATCH, json={"items": [{"pixels": FLAT}] * 3})
    assert response.status_code == 413
    assert response.json["error"] == "items: got 3 items, the limit is 2 (API_MAX_BATCH)"
    assert client.post(BATCH, json={"items": [{"pixels": FLAT}] * 2}).status_code == 200
    document = client.get("/api/openapi.json").json
    assert document["components"]["schemas"]["BatchRequest"]["properties"]["items"]["maxItems"] == 2


def test_max_content_length_setting(mnist_dir, model_path):
    app = create_app({"TESTING": True, "MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "MAX_CONTENT_LENGTH": 1000})
    client = app.test_client()
    json_reply = client.post(PREDICT, json={"pixels": FLAT})
    upload_reply = send_with_client(client, multipart_call(PREDICT, ("image", "a.png", b"x" * 2000)))
    for reply_status, reply_body in ((json_reply.status_code, json_reply.json), (upload_reply.status, upload_reply.json())):
        assert reply_status == 413
        assert reply_body == {"error": "the request body is larger than the limit of 1000 bytes (MAX_CONTENT_LENGTH); send less data"}


def test_digit_endpoint(app, client, test_split):
    from webapp.resources import current_model, current_test_set

    images, labels = test_split
    for index in (0, 1234, 9999):
        body = client.get(f"/api/digits/{index}").json
        with app.app_context():
            digit = current_test_set().digit(index, current_model())
        assert body == {
            "index": index,
            "label": int(labels[index]),
            "digit": digit.predicted,
            "probabilities": list(digit.probabilities),
        }


def test_model_endpoint(client, model_path):
    import onnxruntime as ort

    body = client.get("/api/model").json
    assert body["card"] == json.loads(model_path.with_suffix(".json").read_text())
    assert body["runtime"] == {
        "execution_providers": ["CPUExecutionProvider"],
        "requested_providers": ["CPUExecutionProvider"],
        "provider_fallback": "cpu",
        "intra_op_threads": 1,
        "model_file": "mnist.onnx",
        "model_sha256": body["card"]["sha256"],
        "onnxruntime_version": ort.__version__,
        "max_batch": LIMIT,
        "max_content_length": MAX_BYTES,
    }


# ---------------------------------------------------------------------------
# The OpenAPI document itself
# ---------------------------------------------------------------------------


def test_openapi_document_is_valid(openapi_document):
    from openapi_spec_validator import validate

    assert openapi_document["openapi"].startswith("3.1")
    validate(openapi_document)
    for name, schema in openapi_document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)


def test_openapi_lists_every_route(app):
    document = app.test_client().get("/api/openapi.json").json
    documented = {
        (re.sub(r"\{(\w+)\}", r"<\1>", path), method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    routed = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(("api.", "ops."))
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routed


def test_openapi_examples_validate(openapi_document):
    """Requests that the API accepts validate against the request schemas, and rejected ones do not."""

    def request_validator(name):
        return Draft202012Validator({**openapi_document, "$ref": f"#/components/schemas/{name}"})

    predict, batch = request_validator("PredictRequest"), request_validator("BatchRequest")
    assert predict.is_valid({"pixels": FLAT})
    assert predict.is_valid({"pixels": [[0.5] * 28] * 28})
    assert predict.is_valid({"image": b64(BLANK_PNG)})
    assert not predict.is_valid({"pixels": FLAT[:-1]})
    assert not predict.is_valid({"pixels": FLAT, "image": "x"})
    assert not predict.is_valid({"pixels": pixels_with(0, 1.5)})
    assert not predict.is_valid({})
    assert batch.is_valid({"items": [{"pixels": FLAT}] * LIMIT})
    assert not batch.is_valid({"items": [{"pixels": FLAT}] * (LIMIT + 1)})
    assert not batch.is_valid({"items": []})


# ---------------------------------------------------------------------------
# Robustness
# ---------------------------------------------------------------------------


def mutate(body: bytes, rng) -> bytes:
    """Return body with one random change: truncated, a byte replaced, a span repeated or a value swapped."""
    choice = rng.randrange(4)
    position = rng.randrange(len(body))
    if choice == 0:
        return body[:position]
    if choice == 1:
        return body[:position] + bytes([rng.randrange(256)]) + body[position + 1 :]
    if choice == 2:
        return body[:position] + body[position : position + 50] * rng.randrange(2, 20) + body[position:]
    replacement = rng.choice([b"null", b"true", b"-1e400", b'"x"', b"{}", b"[]", b"[[[[", b"1e-400", b"12345678901234567890"])
    return body[:position] + replacement + body[position + rng.randrange(1, 6) :]


def test_mutated_bodies_never_500(client):
    import random

    rng = random.Random(20_261_204)
    seeds = [
        (PREDICT, json.dumps({"pixels": FLAT[:40] + [0.25] * 744}).encode()),
        (PREDICT, json.dumps({"pixels": [[0.5] * 28] * 28}).encode()),
        (PREDICT, json.dumps({"image": b64(BLANK_PNG)}).encode()),
        (BATCH, json.dumps({"items": [{"pixels": [0.75] * 784}, {"image": b64(BMP)}]}).encode()),
    ]
    statuses = set()
    for path, seed in seeds:
        for _ in range(60):
            body = mutate(seed, rng)
            response = client.post(path, data=body, headers={"Content-Type": JSON_TYPE})
            assert response.status_code < 500, (path, body[:200], response.text[:300])
            assert "error" in response.json or response.status_code == 200
            statuses.add(response.status_code)
    assert 400 in statuses
