"""Explorer, confusion matrix and model page, over the real test set and committed model."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from werkzeug.datastructures import MultiDict

from webapp.explorer import ExplorerQuery, class_metrics, paginate, select
from webapp.testset import Predictions


@pytest.fixture
def predictions(app):
    from webapp.resources import current_model, current_test_set

    with app.app_context():
        return current_test_set().predictions(current_model())


@pytest.fixture
def card(model_path):
    return json.loads(model_path.with_suffix(".json").read_text())


def grid_indexes(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li class="(?:correct|wrong)">\s*<a href="/digits/(\d+)"', html)]


def test_misclassified_filter_lists_all_errors(client, predictions, card):
    expected = np.flatnonzero(predictions.predicted != predictions.labels).tolist()
    html = client.get("/explore?outcome=wrong&per_page=200").text
    assert grid_indexes(html) == expected
    assert len(expected) == card["test_count"] - card["test_correct"]
    assert f"{len(expected)} digits match" in html


def test_confusion_matrix_sums_to_test_set(client, predictions, card):
    matrix = predictions.confusion_matrix()
    assert matrix.sum() == 10_000
    assert matrix.trace() == card["test_correct"]
    html = client.get("/confusion").text
    assert f"{card['test_correct']:,} correct" in html
    cells = re.findall(r'aria-label="(\d+) digits? labelled (\d) predicted as (\d)"', html)
    assert sum(int(count) for count, _, _ in cells) == 10_000
    for count, label, predicted in cells:
        assert int(count) == matrix[int(label), int(predicted)]


def test_confusion_cell_opens_pair(client, predictions):
    matrix = predictions.confusion_matrix()
    np.fill_diagonal(matrix, 0)
    label, predicted = np.unravel_index(matrix.argmax(), matrix.shape)
    html = client.get("/confusion").text
    link = f"/explore?label={label}&amp;predicted={predicted}"
    assert link in html
    indexes = grid_indexes(client.get(link.replace("&amp;", "&")).text)
    assert len(indexes) == matrix[label, predicted]
    assert all(predictions.labels[i] == label and predictions.predicted[i] == predicted for i in indexes)


def test_filters_combine(predictions):
    query = ExplorerQuery(label=9, outcome="correct", max_confidence=0.99)
    indexes = select(predictions, query)
    assert len(indexes) > 0
    assert (predictions.labels[indexes] == 9).all()
    assert (predictions.predicted[indexes] == 9).all()
    assert (predictions.confidence[indexes] < 0.99).all()


def test_margin_sort_hardest_first(predictions):
    indexes = select(predictions, ExplorerQuery(sort="margin"))
    margins = predictions.margin[indexes]
    assert len(indexes) == 10_000
    assert (np.diff(margins) >= 0).all()


def test_pagination_pages_and_past_end():
    indexes = np.arange(130)
    assert paginate(indexes, 1, 60).indexes.tolist() == list(range(60))
    assert paginate(indexes, 3, 60).indexes.tolist() == list(range(120, 130))
    assert paginate(indexes, 3, 60).count == 3
    assert paginate(indexes, 4, 60).indexes.size == 0
    assert paginate(np.arange(0), 1, 60).count == 1


def test_page_links_keep_filters(client):
    html = client.get("/explore?label=7&sort=margin").text
    assert 'href="/explore?label=7&amp;sort=margin&amp;page=2"' in html


def test_explore_fragment_for_htmx(client):
    response = client.get("/explore?label=3", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<!doctype html>" not in response.text
    assert '<section id="results"' in response.text
    assert "HX-Request" in response.headers["Vary"]


def test_explore_form_selected_values(client):
    html = client.get("/explore?label=4&predicted=9&outcome=wrong&max_confidence=0.9&sort=margin").text
    assert '<option value="4" selected>4</option>' in html
    assert '<option value="9" selected>9</option>' in html
    assert '<option value="wrong" selected>misclassified</option>' in html
    assert '<option value="0.9" selected>90%</option>' in html
    assert '<option value="margin" selected>hardest first</option>' in html


@pytest.mark.parametrize(
    "query, message",
    [
        ("label=x", 'label="x" is invalid: expected a digit from 0 to 9'),
        ("label=10", 'label="10" is invalid'),
        ("predicted=-1", 'predicted="-1" is invalid'),
        ("outcome=maybe", 'outcome="maybe" is invalid: expected one of all, correct, wrong'),
        ("sort=random", 'sort="random" is invalid: expected one of index, margin'),
        ("max_confidence=0", 'max_confidence="0" is invalid'),
        ("max_confidence=1.5", 'max_confidence="1.5" is invalid'),
        ("max_confidence=nan", 'max_confidence="nan" is invalid'),
        ("page=0", 'page="0" is invalid: expected a whole number from 1 to 1000000'),
        ("page=99999999999999999999", 'page="99999999999999999999" is invalid'),
        ("per_page=500", 'per_page="500" is invalid: expected a whole number from 1 to 200'),
    ],
)
def test_bad_explorer_query_is_400(client, query, message):
    response = client.get(f"/explore?{query}")
    assert response.status_code == 400
    assert message in response.text.replace("&#34;", '"')


def test_error_fragment_keeps_target_id(client):
    response = client.get("/explore?label=x", headers={"HX-Request": "true", "HX-Target": "results"})
    assert response.status_code == 400
    assert response.text.lstrip().startswith('<section id="results"')


def test_query_round_trip():
    args = MultiDict({"label": "3", "outcome": "wrong", "sort": "margin", "page": "2"})
    query = ExplorerQuery.from_args(args)
    assert query.to_args() == {"label": 3, "outcome": "wrong", "sort": "margin", "page": 2}
    as_strings = {key: str(value) for key, value in query.to_args().items()}
    assert ExplorerQuery.from_args(MultiDict(as_strings)) == query


def test_empty_values_mean_any():
    query = ExplorerQuery.from_args(MultiDict({"label": "", "predicted": "any", "max_confidence": ""}))
    assert query == ExplorerQuery()


def test_class_metrics_from_matrix():
    matrix = np.zeros((10, 10), dtype=np.int64)
    matrix[0, 0], matrix[0, 1], matrix[1, 1] = 8, 2, 5
    metrics = class_metrics(matrix)
    assert metrics[0]["recall"] == 0.8
    assert metrics[0]["precision"] == 1.0
    assert metrics[1]["precision"] == 5 / 7
    assert metrics[2]["precision"] is None


def test_predictions_margin_and_confidence():
    probabilities = np.array([[0.7, 0.2, 0.1] + [0.0] * 7, [0.1, 0.45, 0.45] + [0.0] * 7], np.float32)
    predictions = Predictions.from_probabilities(np.array([0, 2]), probabilities)
    np.testing.assert_allclose(predictions.confidence, [0.7, 0.45])
    np.testing.assert_allclose(predictions.margin, [0.5, 0.0], atol=1e-7)
    assert predictions.correct.tolist() == [True, False]


def test_model_page_shows_card(client, card):
    html = client.get("/model").text
    assert card["sha256"] in html
    assert f"{card['parameters']:,}" in html
    assert "CPUExecutionProvider" in html
    assert "1 intra-op thread" in html
    assert f"{10_000 - card['test_correct']:,} <a href=\"/explore?outcome=wrong\">misclassified</a>" in html
    assert "<code>input</code> tensor(float)" in html
    assert f"{100 * card['test_accuracy']:.2f}%" in html


def test_digit_page_has_probability_bars(client, predictions):
    html = client.get("/digits/8").text
    widths = [float(w) for w in re.findall(r'<rect class="fill" x="24" y="3" width="([\d.]+)"', html)]
    assert len(widths) == 10
    assert abs(sum(widths) - 220) < 1.0
    predicted = int(predictions.predicted[8])
    assert re.search(rf'class="bar predicted[^"]*" transform="translate\(0 {22 * predicted}\)"', html)
    label = int(predictions.labels[8])
    assert re.search(rf'class="bar[^"]* label" transform="translate\(0 {22 * label}\)"', html)


def test_wrong_digit_has_wrong_badge(client, predictions):
    wrong = int(np.flatnonzero(~predictions.correct)[0])
    html = client.get(f"/digits/{wrong}").text
    assert '<span class="badge wrong">wrong</span>' in html
    assert f"predicted as {int(predictions.predicted[wrong])}" in html


def test_form_submission_redirects_to_canonical_url(client):
    response = client.get("/explore?label=&predicted=&outcome=wrong&max_confidence=&sort=index")
    assert response.status_code == 302
    assert response.headers["Location"] == "/explore?outcome=wrong"


def test_htmx_filter_pushes_canonical_url(client):
    response = client.get("/explore?label=3&predicted=&sort=index", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.headers["HX-Push-Url"] == "/explore?label=3"


def test_page_past_end_links_to_last_page(client):
    html = client.get("/explore?label=3&page=999").text
    assert "This page is past the end." in html
    assert 'rel="prev" href="/explore?label=3&amp;page=17"' in html
