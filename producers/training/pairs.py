"""Labelled question pairs for the semantic cache's verifier: reading them and splitting them
the same way in every command, so a model trained by one command is never scored on its own
training pairs by another."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH_TEST_SHARE = 0.3  # `bench cache` without --train-pairs tests on this share of --pairs
CALIBRATION_SHARE = 0.2  # training keeps this share back to choose the threshold on


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    label: int


def read_pairs(path: Path) -> list[Pair]:
    """JSON lines {text_a, text_b, label}, gzip or plain; a bad line names its number."""
    opener = gzip.open if path.suffix == ".gz" else open
    pairs = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                pairs.append(Pair(str(doc["text_a"]), str(doc["text_b"]), int(doc["label"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not a labelled pair ({exc})") from exc
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


def split_pairs(
    pairs: Sequence[Pair], held_out: float, seed: int = 0
) -> tuple[list[Pair], list[Pair]]:
    """(kept, held out), split by pair with a fixed seed."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    cut = len(order) - int(len(order) * held_out)
    return [pairs[i] for i in order[:cut]], [pairs[i] for i in order[cut:]]


def bench_split(pairs: Sequence[Pair]) -> tuple[list[Pair], list[Pair]]:
    """(train, test) as `bench cache` splits one file."""
    return split_pairs(pairs, BENCH_TEST_SHARE)


def fit_split(pairs: Sequence[Pair]) -> tuple[list[Pair], list[Pair]]:
    """(fit, calibration) as training splits its pairs."""
    return split_pairs(pairs, CALIBRATION_SHARE)


def pair_id(a: str, b: str) -> int:
    """A 63-bit id of the unordered pair of texts, to prove two sets of pairs are disjoint."""
    first, second = sorted((a, b))
    digest = hashlib.blake2b(f"{first}\x00{second}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def seen_in(pairs: Sequence[Pair], trained_on: set[int]) -> int:
    """How many of ``pairs`` a model trained on ``trained_on`` (pair ids) has seen."""
    return sum(pair_id(p.a, p.b) in trained_on for p in pairs)
