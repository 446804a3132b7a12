"""JSON API under /api/: predictions for images or pixel lists, test digits and the model card.

Every invalid request raises InputError, which webapp/errors.py turns into
{"error": message} with the status. Messages name the field, e.g. `items[3].pixels`.
webapp/openapi.py describes these routes; keep the two in step.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time

import numpy as np
import onnxruntime as ort
from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from webapp import ops
from webapp.exceptions import InputError
from webapp.openapi import build_document
from webapp.preprocess import ACCEPTED_FORMATS_TEXT, Preprocessed, pixels_from_json, preprocess_upload
from webapp.resources import current_model, current_test_set, model_card
from webapp.views import parse_index

bp = Blueprint("api", __name__, url_prefix="/api")

JSON_TYPE = "application/json"
MULTIPART_TYPE = "multipart/form-data"
IMAGE_FIELDS = ("pixels", "image")


# ---------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------


@bp.post("/predict")
def predict():
    """Predict the digit in one image: JSON pixels, a JSON base64 image, or a multipart upload."""
    mimetype = require_content_type(JSON_TYPE, MULTIPART_TYPE)
    if mimetype == MULTIPART_TYPE:
        image = image_from_multipart()
    else:
        image = image_from_item(read_json_object(allowed_keys=IMAGE_FIELDS, description="one of 'pixels' or 'image'"), "")
    return jsonify(predictions_json(run_model([image]))[0])


@bp.post("/predict/batch")
def predict_batch():
    """Predict up to API_MAX_BATCH images sent as JSON, in one ONNX Runtime call."""
    require_content_type(JSON_TYPE)
    body = read_json_object(allowed_keys=("items",), description="'items'")
    if "items" not in body:
        raise InputError("the field 'items' is missing; send {\"items\": [{\"pixels\": [...]}, ...]}")
    items = body["items"]
    limit = current_app.config["API_MAX_BATCH"]
    if not isinstance(items, list):
        raise InputError(f"items: expected an array of objects, got {json_type(items)}")
    if not items:
        raise InputError(f"items: the array is empty; send 1 to {limit} items")
    if len(items) > limit:
        raise InputError(f"items: got {len(items)} items, the limit is {limit} (API_MAX_BATCH)", status=413)

    images = [image_from_item(item, f"items[{i}]") for i, item in enumerate(items)]
    return jsonify(predictions=predictions_json(run_model(images)))


@bp.get("/digits/<index>")
def digit(index: str):
    """Return test digit `index` with its label and the model's prediction."""
    test_set = current_test_set()
    found = test_set.digit(parse_index(index, len(test_set), url_prefix="/api/digits"), current_model())
    return jsonify(
        index=found.index,
        label=found.label,
        digit=found.predicted,
        probabilities=list(found.probabilities),
    )


@bp.get("/model")
def model():
    """Return the model card and the settings of this process's ONNX Runtime session."""
    session = current_model()
    return jsonify(card=model_card(), runtime=runtime_json(session))


@bp.get("/openapi.json")
def openapi():
    """Return the OpenAPI 3.1 document for this API, with this app's limits filled in."""
    return jsonify(build_document(current_app.config))


# ---------------------------------------------------------------------------
# Reading requests
# ---------------------------------------------------------------------------


def require_content_type(*accepted: str) -> str:
    """Return the request's media type, or raise InputError (415) unless it is one of `accepted`."""
    mimetype = request.mimetype
    if mimetype in accepted:
        return mimetype
    received = f"Content-Type {request.content_type[:100]}" if request.content_type else "no Content-Type"
    raise InputError(f"{request.path} accepts Content-Type {' or '.join(accepted)}; got {received}", status=415)


def read_json_object(allowed_keys: tuple[str, ...], description: str) -> dict:
    """Parse the body as a JSON object with no keys outside `allowed_keys`. Raises InputError."""
    with body_size_limit():
        data = request.get_data(cache=False)
        # A chunked body has no Content-Length, and Werkzeug silently stops reading it at
        # MAX_CONTENT_LENGTH, which would report a cut-off body as invalid JSON.
        # NOTE: a chunked body of exactly MAX_CONTENT_LENGTH bytes is rejected as well,
        # because the stream cannot tell whether more bytes follow.
        if request.content_length is None and len(data) >= current_app.config["MAX_CONTENT_LENGTH"]:
            raise RequestEntityTooLarge()
    body = parse_json(data)
    if not isinstance(body, dict):
        raise InputError(f"the request body must be a JSON object, got {json_type(body)}")
    unknown = [key for key in body if key not in allowed_keys]
    if unknown:
        raise InputError(f"unknown fields {quoted(unknown)} in the request body; expected {description}")
    return body


@contextlib.contextmanager
def body_size_limit():
    """Turn Werkzeug's RequestEntityTooLarge, raised while the body is read, into InputError (413)."""
    try:
        yield
    except RequestEntityTooLarge:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        raise InputError(
            f"the request body is larger than the limit of {limit} bytes (MAX_CONTENT_LENGTH); send less data",
            status=413,
        ) from None


def parse_json(data: bytes) -> object:
    """Parse JSON strictly: no NaN or Infinity, no repeated keys. Raises InputError (400)."""
    if not data:
        raise InputError("the request body is empty; expected a JSON object")
    try:
        return json.loads(data, parse_constant=reject_constant, object_pairs_hook=object_without_repeats)
    except InputError:
        raise
    except RecursionError:
        # The C parser of Python's json module raises RecursionError for arrays or
        # objects nested deeper than the interpreter's recursion limit (about 1,000).
        raise InputError("the request body is not valid JSON: it is nested too deeply") from None
    except UnicodeDecodeError:
        raise InputError("the request body is not valid JSON: it is not UTF-8 text") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            # Python refuses to parse integers of more than 4,300 digits (sys.int_info).
            raise InputError("the request body contains an integer of more than 4,300 digits; send numbers in [0, 1]") from None
        raise InputError(f"the request body is not valid JSON: {exc}") from None


def reject_constant(name: str):
    raise InputError(f"the request body is not valid JSON: {name} is not a JSON number")


def object_without_repeats(pairs: list[tuple[str, object]]) -> dict:
    result = {}
    for key, value in pairs:
        if key in result:
            raise InputError(f"the request body is not valid JSON for this API: the key {quoted([key])} appears twice")
        result[key] = value
    return result


def image_from_item(item: object, where: str) -> Preprocessed:
    """Return the model input for one JSON object with exactly one of 'pixels' or 'image'.

    `where` prefixes every message, e.g. "items[3]"; it is "" for a single prediction.
    """
    prefix = f"{where}." if where else ""
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected an object with 'pixels' or 'image', got {json_type(item)}")
    unknown = [key for key in item if key not in IMAGE_FIELDS]
    if unknown:
        raise InputError(f"unknown fields {quoted(prefix + key for key in unknown)}; expected one of 'pixels' or 'image'")
    present = [key for key in IMAGE_FIELDS if key in item]
    if len(present) != 1:
        found = "both" if present else "neither"
        raise InputError(f"{where or 'the request body'}: expected exactly one of 'pixels' or 'image', got {found}")

    try:
        if "pixels" in item:
            return pixels_from_json(item["pixels"])
        return preprocess_upload(decode_base64_image(item["image"]))
    except InputError as error:
        # pixels_from_json names the field itself ("pixels[3]: ..."); image messages do not.
        field = "" if error.message.startswith("pixels") else "image: "
        raise InputError(f"{prefix}{field}{error.message}", status=error.status) from None


def decode_base64_image(value: object) -> bytes:
    """Decode the 'image' field: standard base64 (RFC 4648) without line breaks. Raises InputError."""
    if not isinstance(value, str):
        raise InputError(f"expected a base64 string of a {ACCEPTED_FORMATS_TEXT} file, got {json_type(value)}")
    if value.startswith("data:"):
        raise InputError("expected plain base64, got a data URL; send only the part after 'base64,'")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"invalid base64 ({exc}); expected standard base64 of a {ACCEPTED_FORMATS_TEXT} file") from None
    if not data:
        raise InputError(f"the base64 string is empty; expected a {ACCEPTED_FORMATS_TEXT} file")
    return data


def image_from_multipart() -> Preprocessed:
    """Return the model input for a multipart upload with one file in the field 'image'."""
    with body_size_limit():
        fields = list(request.form.keys()) + list(request.files.keys())
    unknown = [name for name in dict.fromkeys(fields) if name != "image"]
    if unknown:
        raise InputError(f"unknown multipart fields {quoted(unknown)}; send the image file in the field 'image'")
    uploads = request.files.getlist("image")
    if "image" in request.form:
        raise InputError("the multipart field 'image' must be a file upload, not a text field")
    if not uploads:
        raise InputError(f"the multipart field 'image' is missing; send a {ACCEPTED_FORMATS_TEXT} file in it")
    if len(uploads) > 1:
        raise InputError(f"the multipart field 'image' has {len(uploads)} files; send one")
    try:
        return preprocess_upload(uploads[0].read())
    except InputError as error:
        raise InputError(f"image: {error.message}", status=error.status) from None


def json_type(value: object) -> str:
    """Return the JSON type name of a parsed value: object, array, string, number, boolean or null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def quoted(names) -> str:
    return ", ".join(f"'{name[:40]}'" for name in names)


# ---------------------------------------------------------------------------
# Running the model
# ---------------------------------------------------------------------------


def run_model(images: list[Preprocessed]) -> np.ndarray:
    """Return probabilities [N, 10] for the images, from one ONNX Runtime call."""
    batch = np.concatenate([image.model_input() for image in images]).astype(np.float32, copy=False)
    session = current_model()
    start = time.perf_counter()
    probabilities = session.predict(batch)
    ops.observe_inference(len(batch), time.perf_counter() - start)
    return probabilities


def predictions_json(probabilities: np.ndarray) -> list[dict]:
    sha256 = ops.model_sha256(current_model().path)
    return [
        {"digit": int(row.argmax()), "probabilities": [float(p) for p in row], "model_sha256": sha256}
        for row in probabilities
    ]


def runtime_json(session) -> dict:
    config = current_app.config
    return {
        "execution_providers": list(session.providers),
        "requested_providers": list(config["ORT_PROVIDERS"]),
        "provider_fallback": config["ORT_PROVIDER_FALLBACK"],
        "intra_op_threads": session.settings.intra_op_threads,
        "model_file": session.path.name,
        "model_sha256": ops.model_sha256(session.path),
        "onnxruntime_version": ort.__version__,
        "max_batch": config["API_MAX_BATCH"],
        "max_content_length": config["MAX_CONTENT_LENGTH"],
    }
