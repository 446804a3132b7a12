"""The OpenAPI 3.1 document for the JSON API and the operations endpoints.

It describes what webapp/api.py and webapp/ops.py accept and return, and tests/test_api.py
validates real responses against its schemas, so a change to a route needs a change here.
Schemas use JSON Schema 2020-12, the dialect of OpenAPI 3.1.
"""

from __future__ import annotations

IMAGE_SIZE = 28
NUM_CLASSES = 10
IMAGE_FORMATS = "PNG, JPEG, WebP or GIF"


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def error_response(description: str) -> dict:
    return {"description": description, "content": json_content(ref("Error"))}


SERVER_ERROR = error_response("Unexpected server error; the details are in the server log.")


def build_document(config) -> dict:
    """Return the OpenAPI document with the limits of this app's settings."""
    max_batch = config["API_MAX_BATCH"]
    max_bytes = config["MAX_CONTENT_LENGTH"]
    too_large = error_response(
        f"The body is larger than MAX_CONTENT_LENGTH ({max_bytes} bytes), an image declares too many "
        f"pixels, or a batch has more than API_MAX_BATCH ({max_batch}) items."
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MNIST digit classifier",
            "version": "0.1.0",
            "description": (
                "Predicts handwritten digits with a CNN trained on MNIST and served through ONNX Runtime. "
                "Every error response is a JSON object with one field, 'error', that says what was wrong."
            ),
        },
        "paths": {
            "/api/predict": {"post": predict_operation(too_large)},
            "/api/predict/batch": {"post": batch_operation(max_batch, too_large)},
            "/api/digits/{index}": {"get": digit_operation()},
            "/api/model": {"get": model_operation()},
            "/api/openapi.json": {"get": openapi_operation()},
            "/healthz": {"get": healthz_operation()},
            "/readyz": {"get": readyz_operation()},
            "/metrics": {"get": metrics_operation()},
        },
        "components": {"schemas": schemas(max_batch)},
    }


def predict_operation(too_large: dict) -> dict:
    return {
        "operationId": "predict",
        "summary": "Predict the digit in one image",
        "description": (
            "Send JSON with exactly one of 'pixels' (used as they are) or 'image' (a base64 image file, "
            "found, scaled and centred as MNIST digits were), or a multipart form with the file in the "
            "field 'image'."
        ),
        "requestBody": {
            "required": True,
            "content": {
                **json_content(ref("PredictRequest")),
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "image": {
                                "type": "string",
                                "contentMediaType": "application/octet-stream",
                                "description": f"The image file: {IMAGE_FORMATS}.",
                            }
                        },
                        "required": ["image"],
                        "additionalProperties": False,
                    },
                },
            },
        },
        "responses": {
            "200": {"description": "The prediction.", "content": json_content(ref("Prediction"))},
            "400": error_response("Invalid JSON, fields, pixel values, base64 or image file."),
            "413": too_large,
            "415": error_response(
                "The Content-Type is not application/json or multipart/form-data, or the image is in another format."
            ),
            "422": error_response("The image is blank: no digit was found in it."),
            "500": SERVER_ERROR,
        },
    }


def batch_operation(max_batch: int, too_large: dict) -> dict:
    return {
        "operationId": "predictBatch",
        "summary": "Predict the digits in up to API_MAX_BATCH images with one model call",
        "description": (
            f"Each item is an object as for /api/predict in JSON. Predictions come back in the order of "
            f"the items. Error messages name the item, e.g. 'items[3].pixels'. This app's limit is "
            f"{max_batch} items."
        ),
        "requestBody": {"required": True, "content": json_content(ref("BatchRequest"))},
        "responses": {
            "200": {"description": "One prediction per item, in order.", "content": json_content(ref("BatchPrediction"))},
            "400": error_response("Invalid JSON or an invalid item; the message names the item."),
            "413": too_large,
            "415": error_response("The Content-Type is not application/json, or an image is in another format."),
            "422": error_response("An image is blank; the message names the item."),
            "500": SERVER_ERROR,
        },
    }


def digit_operation() -> dict:
    return {
        "operationId": "getDigit",
        "summary": "Return a test digit's label and the model's prediction for it",
        "parameters": [
            {
                "name": "index",
                "in": "path",
                "required": True,
                "description": "Index into the MNIST test set, 0 to 9999; other values get 404.",
                "schema": {"type": "string"},
            }
        ],
        "responses": {
            "200": {"description": "The test digit.", "content": json_content(ref("Digit"))},
            "404": error_response("No test digit has this index; the message gives the valid range."),
            "500": SERVER_ERROR,
        },
    }


def model_operation() -> dict:
    return {
        "operationId": "getModel",
        "summary": "Return the model card and this worker's ONNX Runtime settings",
        "responses": {
            "200": {"description": "The model card and runtime settings.", "content": json_content(ref("ModelInfo"))},
            "500": SERVER_ERROR,
        },
    }


def openapi_operation() -> dict:
    return {
        "operationId": "getOpenAPI",
        "summary": "Return this document",
        "responses": {"200": {"description": "The OpenAPI 3.1 document.", "content": json_content({"type": "object"})}},
    }


def healthz_operation() -> dict:
    return {
        "operationId": "healthz",
        "summary": "Liveness probe: the process is up",
        "responses": {"200": {"description": "Always, while the process serves.", "content": json_content(ref("Health"))}},
    }


def readyz_operation() -> dict:
    return {
        "operationId": "readyz",
        "summary": "Readiness probe: this worker has loaded the model and the test set and predicted them",
        "description": "If this worker has not warmed up yet, the request warms it up first.",
        "responses": {
            "200": {"description": "Ready, with the runtime settings.", "content": json_content(ref("Ready"))},
            "503": {"description": "Not ready, with the reason.", "content": json_content(ref("NotReady"))},
        },
    }


def metrics_operation() -> dict:
    return {
        "operationId": "metrics",
        "summary": "Prometheus metrics, added up over all gunicorn workers",
        "responses": {
            "200": {
                "description": "The Prometheus text exposition format.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    }


def schemas(max_batch: int) -> dict:
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    probabilities = {
        "type": "array",
        "items": probability,
        "minItems": NUM_CLASSES,
        "maxItems": NUM_CLASSES,
        "description": "Probability of each digit 0 to 9.",
    }
    class_index = {"type": "integer", "minimum": 0, "maximum": NUM_CLASSES - 1}
    sha256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
    pixel = {"type": "number", "minimum": 0, "maximum": 1}
    provider_list = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    return {
        "Pixels": {
            "description": "White ink on black, row by row: 784 numbers in [0, 1], flat or as 28 rows of 28.",
            "oneOf": [
                {"type": "array", "items": pixel, "minItems": IMAGE_SIZE**2, "maxItems": IMAGE_SIZE**2},
                {
                    "type": "array",
                    "minItems": IMAGE_SIZE,
                    "maxItems": IMAGE_SIZE,
                    "items": {"type": "array", "items": pixel, "minItems": IMAGE_SIZE, "maxItems": IMAGE_SIZE},
                },
            ],
        },
        "PixelsInput": {
            "type": "object",
            "properties": {"pixels": ref("Pixels")},
            "required": ["pixels"],
            "additionalProperties": False,
        },
        "ImageInput": {
            "type": "object",
            "properties": {
                "image": {
                    "type": "string",
                    "minLength": 1,
                    "contentEncoding": "base64",
                    "description": (
                        f"A {IMAGE_FORMATS} file in standard base64 (RFC 4648) without line breaks or a "
                        "'data:' prefix."
                    ),
                }
            },
            "required": ["image"],
            "additionalProperties": False,
        },
        "PredictRequest": {"oneOf": [ref("PixelsInput"), ref("ImageInput")]},
        "BatchRequest": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": ref("PredictRequest"), "minItems": 1, "maxItems": max_batch}
            },
            "required": ["items"],
            "additionalProperties": False,
        },
        "Prediction": {
            "type": "object",
            "properties": {"digit": class_index, "probabilities": probabilities, "model_sha256": sha256},
            "required": ["digit", "probabilities", "model_sha256"],
            "additionalProperties": False,
        },
        "BatchPrediction": {
            "type": "object",
            "properties": {"predictions": {"type": "array", "items": ref("Prediction"), "minItems": 1}},
            "required": ["predictions"],
            "additionalProperties": False,
        },
        "Digit": {
            "type": "object",
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "label": class_index,
                "digit": class_index,
                "probabilities": probabilities,
            },
            "required": ["index", "label", "digit", "probabilities"],
            "additionalProperties": False,
        },
        "ModelInfo": {
            "type": "object",
            "properties": {
                "card": {
                    "type": "object",
                    "description": "models/mnist.json as written at export; empty if the file is missing.",
                    "properties": {"sha256": sha256, "test_accuracy": {"type": "number"}},
                },
                "runtime": ref("Runtime"),
            },
            "required": ["card", "runtime"],
            "additionalProperties": False,
        },
        "Runtime": {
            "type": "object",
            "properties": {
                "execution_providers": provider_list,
                "requested_providers": provider_list,
                "provider_fallback": {"enum": ["cpu", "fail"]},
                "intra_op_threads": {"type": "integer", "minimum": 1},
                "model_file": {"type": "string"},
                "model_sha256": sha256,
                "onnxruntime_version": {"type": "string"},
                "max_batch": {"type": "integer", "minimum": 1},
                "max_content_length": {"type": "integer", "minimum": 1},
            },
            "required": [
                "execution_providers",
                "requested_providers",
                "provider_fallback",
                "intra_op_threads",
                "model_file",
                "model_sha256",
                "onnxruntime_version",
                "max_batch",
                "max_content_length",
            ],
            "additionalProperties": False,
        },
        "Health": {
            "type": "object",
            "properties": {"status": {"const": "ok"}},
            "required": ["status"],
            "additionalProperties": False,
        },
        "Ready": {
            "type": "object",
            "properties": {
                "status": {"const": "ready"},
                "onnxruntime_version": {"type": "string"},
                "execution_providers": provider_list,
                "requested_providers": provider_list,
                "intra_op_threads": {"type": "integer", "minimum": 1},
                "gunicorn_workers": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "description": "gunicorn's configured worker count; null when not run by gunicorn.",
                },
                "pid": {"type": "integer", "description": "The process that answered."},
                "model_file": {"type": "string"},
                "model_sha256": sha256,
                "test_digits": {"type": "integer", "minimum": 0},
                "warm_up_seconds": {"type": "number", "minimum": 0},
                "digit_sections_cached": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Rendered digit page sections that this worker keeps.",
                },
            },
            "required": [
                "status",
                "onnxruntime_version",
                "execution_providers",
                "requested_providers",
                "intra_op_threads",
                "gunicorn_workers",
                "pid",
                "model_file",
                "model_sha256",
                "test_digits",
                "warm_up_seconds",
                "digit_sections_cached",
            ],
            "additionalProperties": False,
        },
        "NotReady": {
            "type": "object",
            "properties": {"status": {"const": "not ready"}, "reason": {"type": "string"}},
            "required": ["status", "reason"],
            "additionalProperties": False,
        },
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string", "description": "What was wrong and how to fix it."}},
            "required": ["error"],
            "additionalProperties": False,
        },
    }
