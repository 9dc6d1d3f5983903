"""A small thread-safe memo: each value is built once, however many requests ask for it at the same time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Memo(Generic[V]):
    """Values by key, built on first use under a per-key lock, the least recently used dropped beyond ``maxsize``."""

    def __init__(self, maxsize: int | None = None):
        self.maxsize = maxsize
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def peek(self, key: Hashable) -> V | None:
        """The value if it is built (no build, no wait)."""
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        value = self.peek(key)
        if value is not None:
            return value
        with self._lock:
            lock = self._building.setdefault(key, threading.Lock())
        try:
            with lock:  # a second caller waits here for the first one's build
                value = self.peek(key)
                if value is None:
                    value = build()
                    self.put(key, value)
        finally:  # also when build() fails: no lock left behind per failed key
            with self._lock:
                self._building.pop(key, None)
        return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while self.maxsize is not None and len(self._values) > self.maxsize:
                self._values.popitem(last=False)

    def discard(self, predicate: Callable[[Hashable], bool]) -> None:
        with self._lock:
            for key in [k for k in self._values if predicate(k)]:
                del self._values[key]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)
