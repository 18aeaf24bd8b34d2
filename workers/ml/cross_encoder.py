"""A cross-encoder that reads two questions together and says whether they ask the same
thing: MiniLM-L6 fine-tuned on labelled pairs by `tierfleet train cross-encoder`, exported to
int8 ONNX so the cache worker scores candidates with onnxruntime and no torch.

A bi-encoder's cosine compares two summaries made apart; a cross-encoder attends across both
texts at once, so "learn Python" against "learn Java" turns on the one word that differs. It
costs a model call per candidate, which is why it only judges the few nearest entries.

The folder it loads holds ``model.onnx``, the ``tokenizer.json`` it was trained with,
``meta.json`` (format, base model, training settings) and ``trained_pairs.npy`` (the ids of
the pairs it learnt from, so calibration and benchmarks can prove they test on others)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from policies.cache_verifier import (
    Blend,
    Calibration,
    Floats,
    Verifier,
    load_verifier,
    read_verifier_meta,
    save_verifier,
)
from workers.semantic_ports import PairScorer

CROSS_FORMAT = "tierfleet-cross-encoder/1"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "meta.json"
TRAINED_PAIRS_FILE = "trained_pairs.npy"

Logits = npt.NDArray[np.float32]


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Token ids, attention mask and segment ids of ``[CLS] a [SEP] b [SEP]`` for each pair,
    padded to the longest; training and scoring both call this, so they tokenize alike."""
    encodings = tokenizer.encode_batch(list(pairs))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def pair_tokenizer(tokenizer_json: str, max_length: int) -> Any:
    """The WordPiece tokenizer as training and scoring both use it."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.enable_truncation(max_length)  # longest-first across the two texts
    tokenizer.enable_padding()
    return tokenizer


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_FILE
    if not path.exists():
        raise ValueError(f"{directory} holds no cross-encoder ({META_FILE} is missing)")
    meta: dict[str, Any] = json.loads(path.read_text())
    if meta.get("format") != CROSS_FORMAT:
        raise ValueError(f"{directory} is not a cross-encoder ({meta.get('format')!r})")
    return meta


def trained_pair_ids(directory: Path) -> set[int]:
    return {int(x) for x in np.load(directory / TRAINED_PAIRS_FILE, allow_pickle=False)}


class OnnxCrossEncoder:
    """Scores pairs with the exported model. Both orders of a pair are scored and averaged:
    the question asked and the one stored are interchangeable, and the model was trained on
    both orders."""

    def __init__(
        self,
        model: bytes,
        tokenizer_json: str,
        meta: dict[str, Any],
        batch_size: int = 32,
        threads: int = 0,
    ) -> None:
        import onnxruntime

        self.meta = meta
        self.model_bytes = model
        self.tokenizer_json = tokenizer_json
        self.id = f"{meta['name']}@{hashlib.sha256(model).hexdigest()[:12]}"
        self._tokenizer = pair_tokenizer(tokenizer_json, int(meta["max_length"]))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.batch_size = batch_size

    @classmethod
    def from_dir(cls, directory: Path, batch_size: int = 32) -> OnnxCrossEncoder:
        """The folder `tierfleet train cross-encoder` wrote."""
        return cls(
            (directory / MODEL_FILE).read_bytes(),
            (directory / TOKENIZER_FILE).read_text(),
            read_meta(directory),
            batch_size,
        )

    def logits(self, pairs: Sequence[tuple[str, str]]) -> Logits:
        """One logit per pair (higher: the same question)."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        both = [*pairs, *((b, a) for a, b in pairs)]
        order = sorted(range(len(both)), key=lambda i: len(both[i][0]) + len(both[i][1]))
        out = np.empty(len(both), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            feed = encode_pairs(self._tokenizer, [both[i] for i in chunk])
            (logits,) = self._session.run(
                None, {k: v for k, v in feed.items() if k in self._inputs}
            )
            out[chunk] = np.asarray(logits, dtype=np.float32).reshape(len(chunk))
        mean: Logits = ((out[: len(pairs)] + out[len(pairs) :]) / 2).astype(np.float32)
        return mean


@dataclass(frozen=True)
class CrossVerifier:
    """The feature verifier and the cross-encoder, blended, with the threshold calibrated on
    pairs neither trained on. Saved as one npz file: the feature verifier's arrays plus the
    ONNX model and its tokenizer, so the cache worker loads one path."""

    features: Verifier
    encoder: PairScorer
    blend: Blend
    calibration: Calibration

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    @property
    def embedder(self) -> str:
        return self.features.embedder

    def score_candidates(
        self, u: Floats, question: str, candidates: Sequence[tuple[Floats, str]]
    ) -> list[float]:
        if not candidates:
            return []
        cross = np.asarray(self.encoder.logits([(question, b) for _, b in candidates]))
        features = np.array(self.features.score_candidates(u, question, candidates))
        return [float(x) for x in self.blend(cross, features)]


def save_cross_verifier(verifier: CrossVerifier, encoder: OnnxCrossEncoder, path: Path) -> None:
    cross = {
        "encoder": encoder.meta,
        "encoder_id": encoder.id,
        "blend": asdict(verifier.blend),
        "calibration": asdict(verifier.calibration),
    }
    save_verifier(
        verifier.features,
        path,
        extra_meta={"cross": cross},
        extra_arrays={
            "cross_model": np.frombuffer(encoder.model_bytes, dtype=np.uint8),
            "cross_tokenizer": np.array(encoder.tokenizer_json),
        },
    )


def load_hit_verifier(path: Path) -> Verifier | CrossVerifier:
    """The verifier a `tierfleet train cache` file holds: the feature network alone, or
    blended with a cross-encoder (trained with --cross-encoder)."""
    features = load_verifier(path)
    with np.load(path, allow_pickle=False) as data:
        cross = read_verifier_meta(data, path).get("cross")
        if cross is None:
            return features
        encoder = OnnxCrossEncoder(
            data["cross_model"].tobytes(), str(data["cross_tokenizer"]), cross["encoder"]
        )
    if encoder.id != cross["encoder_id"]:
        raise ValueError(f"{path}: the cross-encoder's bytes do not match its id")
    return CrossVerifier(
        features, encoder, Blend(**cross["blend"]), Calibration(**cross["calibration"])
    )
