"""Exceptions for bad client input, turned into 4xx responses by the error handlers."""

from __future__ import annotations


class InputError(ValueError):
    """Invalid input from a client. The message names the field, the value and what is expected."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NoDigitFound(InputError):
    """An image with no ink in it: blank, or a single flat colour."""

    def __init__(self, message: str = "No digit found: the image is blank or a single colour. Draw or upload a digit that contrasts with its background.") -> None:
        super().__init__(message, status=422)
