"""Test-set explorer queries: parse them from a URL, filter and sort the predictions."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from webapp.exceptions import InputError
from webapp.testset import Predictions

OUTCOMES = ("all", "correct", "wrong")
SORTS = ("index", "margin")
DEFAULT_PER_PAGE = 60
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class ExplorerQuery:
    """One explorer view. Every field has a URL parameter of the same name."""

    label: int | None = None  # true label to keep, or None for all
    predicted: int | None = None  # predicted class to keep, or None for all
    outcome: str = "all"  # "all", "correct" or "wrong"
    max_confidence: float | None = None  # keep digits whose top probability is below this
    sort: str = "index"  # "index", or "margin" for the hardest (smallest margin) first
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @classmethod
    def from_args(cls, args) -> "ExplorerQuery":
        """Parse URL query arguments; raise InputError naming the first invalid parameter."""
        return cls(
            label=_parse_class(args, "label"),
            predicted=_parse_class(args, "predicted"),
            outcome=_parse_choice(args, "outcome", OUTCOMES),
            max_confidence=_parse_confidence(args),
            sort=_parse_choice(args, "sort", SORTS),
            page=_parse_int(args, "page", 1, 1, 10**6),
            per_page=_parse_int(args, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE),
        )

    def to_args(self, **changes) -> dict:
        """Return the URL arguments for this query with `changes`, leaving out defaults."""
        defaults = asdict(ExplorerQuery())
        values = asdict(replace(self, **changes))
        return {key: value for key, value in values.items() if value != defaults[key]}


def _get(args, name: str) -> str | None:
    value = args.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def _parse_class(args, name: str) -> int | None:
    value = _get(args, name)
    if value is None or value == "any":
        return None
    if not (value.isascii() and value.isdigit() and len(value) == 1):
        raise InputError(f'{name}="{value[:20]}" is invalid: expected a digit from 0 to 9, or "any".')
    return int(value)


def _parse_choice(args, name: str, choices: tuple[str, ...]) -> str:
    value = _get(args, name)
    if value is None:
        return choices[0]
    if value not in choices:
        raise InputError(f'{name}="{value[:20]}" is invalid: expected one of {", ".join(choices)}.')
    return value


def _parse_confidence(args) -> float | None:
    value = _get(args, "max_confidence")
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 < number <= 1:
        raise InputError(
            f'max_confidence="{value[:20]}" is invalid: expected a number above 0 and at most 1, such as 0.9.'
        )
    return number


def _parse_int(args, name: str, default: int, minimum: int, maximum: int) -> int:
    value = _get(args, name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or not minimum <= int(value[:12]) <= maximum:
        raise InputError(f'{name}="{value[:20]}" is invalid: expected a whole number from {minimum} to {maximum}.')
    return int(value)


def select(predictions: Predictions, query: ExplorerQuery) -> np.ndarray:
    """Return the indexes of the test digits that match the query, in the query's order."""
    keep = np.ones(len(predictions.labels), dtype=bool)
    if query.label is not None:
        keep &= predictions.labels == query.label
    if query.predicted is not None:
        keep &= predictions.predicted == query.predicted
    if query.outcome == "correct":
        keep &= predictions.correct
    elif query.outcome == "wrong":
        keep &= ~predictions.correct
    if query.max_confidence is not None:
        keep &= predictions.confidence < query.max_confidence

    indexes = np.flatnonzero(keep)
    if query.sort == "margin":
        # A stable sort keeps equal margins in index order, so pages never reshuffle.
        indexes = indexes[np.argsort(predictions.margin[indexes], kind="stable")]
    return indexes


@dataclass(frozen=True)
class Page:
    indexes: np.ndarray
    number: int
    count: int  # pages in all
    total: int  # matching digits in all


def paginate(indexes: np.ndarray, page: int, per_page: int) -> Page:
    """Return one page of indexes; a page past the end is empty but still reports the totals."""
    count = max(1, math.ceil(len(indexes) / per_page))
    start = (page - 1) * per_page
    return Page(indexes=indexes[start : start + per_page], number=page, count=count, total=len(indexes))


def class_metrics(confusion: np.ndarray) -> list[dict]:
    """Return precision and recall per class from a confusion matrix (rows: true labels)."""
    metrics = []
    for digit in range(confusion.shape[0]):
        true_positives = int(confusion[digit, digit])
        predicted_total = int(confusion[:, digit].sum())
        actual_total = int(confusion[digit, :].sum())
        metrics.append(
            {
                "digit": digit,
                "precision": true_positives / predicted_total if predicted_total else None,
                "recall": true_positives / actual_total if actual_total else None,
                "support": actual_total,
            }
        )
    return metrics
