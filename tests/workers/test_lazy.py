"""Built once, on first use, whichever thread comes first: the semantic layer, providers,
artifacts and the runtime itself."""

import threading
import time
from dataclasses import replace

import pytest

from workers.lazy import Lazy, LazyByKey
from workers.testing import make_runtime


def _race(get, threads: int = 8) -> list[object]:
    start = threading.Barrier(threads)
    got: list[object] = []

    def run() -> None:
        start.wait()
        got.append(get())

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return got


def test_a_slow_build_raced_by_eight_threads_runs_once_and_all_get_its_value():
    calls = []

    def build() -> object:
        calls.append(1)
        time.sleep(0.05)  # long enough for every thread to arrive while it builds
        return object()

    lazy = Lazy(build)
    got = _race(lazy.get)
    assert len(calls) == 1
    assert len(got) == 8 and all(g is got[0] for g in got)
    assert lazy.built


def test_a_failed_build_is_not_remembered():
    attempts = []

    def build() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("blink")
        return "up"

    lazy = Lazy(build)
    with pytest.raises(ConnectionError):
        lazy.get()
    assert not lazy.built
    assert lazy.get() == "up"


def test_one_value_per_key():
    built: list[str] = []

    def build(key: str):
        return lambda: built.append(key) or key.upper()

    by_key: LazyByKey[str, str] = LazyByKey()
    assert _race(lambda: by_key.get("openai", build("openai"))) == ["OPENAI"] * 8
    assert by_key.get("anthropic", build("anthropic")) == "ANTHROPIC"
    assert built == ["openai", "anthropic"]


def test_the_semantic_layer_is_opened_once_when_threads_race_for_it():
    opened = []

    def open_layer():
        opened.append(1)
        time.sleep(0.05)
        return None, "off in this test"

    rt, _, _ = make_runtime()
    rt = replace(rt, semantic_factory=open_layer)
    assert _race(lambda: rt.semantic) == [None] * 8
    assert len(opened) == 1
