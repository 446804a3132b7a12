"""Values built once per process on first use, and rebuilt after a fork."""

from __future__ import annotations

import os
import threading
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


class ProcessCache(Generic[T]):
    """A thread-safe map from key to a value that is built on first use in each process.

    Nothing is built at import time, so gunicorn workers build their own values after
    the fork. A child forked after the parent built a value starts empty, because an ONNX
    Runtime session's thread pool does not survive a fork.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Hashable, T] = {}
        os.register_at_fork(after_in_child=self._reset_in_child)

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        value = self._values.get(key)
        if value is not None:
            return value
        with self._lock:
            value = self._values.get(key)
            if value is None:
                value = build()
                self._values[key] = value
            return value

    def peek(self, key: Hashable) -> T | None:
        """Return the value for key if this process has built it, without building it."""
        return self._values.get(key)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def _reset_in_child(self) -> None:
        # A parent thread may have held the lock during the fork; the child gets a new one.
        self._lock = threading.Lock()
        self._values = {}
