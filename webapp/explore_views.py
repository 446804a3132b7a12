"""Pages that look at the whole test set: explorer, confusion matrix and model page."""

from __future__ import annotations

import math

import onnxruntime as ort
from flask import Blueprint, redirect, render_template, request, url_for

from webapp.explorer import ExplorerQuery, class_metrics, paginate, select
from webapp.resources import current_model, current_test_set, model_card
from webapp.views import render_page_or_fragment, wants_fragment

bp = Blueprint("explore", __name__)


@bp.get("/explore")
def explore():
    """Show a filtered, sorted, paginated grid of test digits."""
    query = ExplorerQuery.from_args(request.args)
    canonical_url = url_for("explore.explore", **query.to_args())
    # A form submission sends every field, empty ones included; one view gets one URL.
    if not wants_fragment() and request.full_path.rstrip("?") != canonical_url:
        return redirect(canonical_url, code=302)

    test_set = current_test_set()
    predictions = test_set.predictions(current_model())
    page = paginate(select(predictions, query), query.page, query.per_page)

    digits = [
        {
            "index": int(index),
            "label": int(predictions.labels[index]),
            "predicted": int(predictions.predicted[index]),
            "confidence": float(predictions.confidence[index]),
            "margin": float(predictions.margin[index]),
        }
        for index in page.indexes
    ]
    response = render_page_or_fragment(
        "explore_page.html",
        "explore_fragment.html",
        query=query,
        page=page,
        digits=digits,
        url_for_page=lambda number: url_for("explore.explore", **query.to_args(page=number)),
    )
    if wants_fragment():
        response.headers["HX-Push-Url"] = canonical_url
    return response


@bp.get("/confusion")
def confusion():
    """Show the confusion matrix over the whole test set, with precision and recall per class."""
    predictions = current_test_set().predictions(current_model())
    matrix = predictions.confusion_matrix()
    # Shade each off-diagonal cell by the order of magnitude of its count (CSS classes,
    # because the Content-Security-Policy forbids inline styles).
    shades = [[0 if count == 0 else min(4, 1 + int(math.log10(count))) for count in row] for row in matrix]
    return render_template(
        "confusion.html",
        matrix=matrix.tolist(),
        shades=shades,
        metrics=class_metrics(matrix),
        total=int(matrix.sum()),
        correct=int(matrix.trace()),
    )


@bp.get("/model")
def model_page():
    """Show what is being served: the model card and the runtime settings."""
    model = current_model()
    predictions = current_test_set().predictions(model)
    session = model.session
    return render_template(
        "model.html",
        model_card=model_card(),
        model=model,
        onnxruntime_version=ort.__version__,
        inputs=session.get_inputs(),
        outputs=session.get_outputs(),
        threads=session.get_session_options().intra_op_num_threads,
        served_correct=int(predictions.correct.sum()),
        served_total=len(predictions.labels),
    )
