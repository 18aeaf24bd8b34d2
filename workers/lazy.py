"""One way to build a thing once, on first use, safely across threads.

A worker process may run tasks on several threads (the threads pool, celery-batches'
flushes, the lease keeper), and what is built lazily is costly and must not exist twice:
an embedded Qdrant shard opened twice by one process fails, a model loaded twice wastes
gigabytes. The first caller builds; the others wait for its result. A build that raises is
not remembered: the next caller tries again (a Redis blink at start is not fatal).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

_UNSET = object()


class Lazy(Generic[T]):
    """A value built by ``build`` the first time ``get`` is called."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: object = _UNSET
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._value is not _UNSET

    def get(self) -> T:
        value = self._value
        if value is _UNSET:
            with self._lock:
                if self._value is _UNSET:  # another thread may have built it meanwhile
                    self._value = self._build()
                value = self._value
        return value  # type: ignore[return-value]


class LazyByKey(Generic[K, T]):
    """One lazily built value per key (a provider client per provider name); ``build``
    makes a key's value the first time that key is asked for."""

    def __init__(self) -> None:
        self._values: dict[K, Lazy[T]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, build: Callable[[], T]) -> T:
        with self._lock:
            lazy = self._values.get(key)
            if lazy is None:
                lazy = self._values[key] = Lazy(build)
        return lazy.get()
