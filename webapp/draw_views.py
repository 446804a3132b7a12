"""The "your own digit" page: draw on a canvas or upload an image, and see the prediction."""

from __future__ import annotations

import base64

from flask import Blueprint, request

from webapp.exceptions import InputError
from webapp.resources import current_model
from webapp.testset import encode_png
from webapp.views import render_page_or_fragment

bp = Blueprint("draw", __name__)

# The 28x28 image the model received is shown 5 times larger, like MNIST digits elsewhere.
INPUT_PREVIEW_SCALE = 5


def render_draw(status: int = 200, **context):
    return render_page_or_fragment("draw_page.html", "draw_result_fragment.html", status=status, **context)


@bp.get("/draw")
def draw_page():
    """Show the canvas and the upload form."""
    return render_draw()


@bp.post("/draw")
def predict_upload():
    """Predict the digit in the uploaded or drawn image (form field `image`)."""
    from webapp.preprocess import preprocess_upload

    upload = request.files.get("image")
    try:
        if upload is None:
            raise InputError("No image received: choose a file (PNG, JPEG, WebP or GIF) or draw a digit first.")
        preprocessed = preprocess_upload(upload.read())
    except InputError as error:
        return render_draw(status=error.status, error=error.message)

    probabilities = current_model().predict(preprocessed.model_input())[0]
    preview = encode_png(preprocessed.pixels, INPUT_PREVIEW_SCALE)
    return render_draw(
        result={
            "probabilities": [float(p) for p in probabilities],
            "predicted": int(probabilities.argmax()),
            "confidence": float(probabilities.max()),
            "preview": "data:image/png;base64," + base64.b64encode(preview).decode("ascii"),
        }
    )
