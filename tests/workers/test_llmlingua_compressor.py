"""The LLMLingua adapter's contract with the package (the model itself runs on GPU workers):
the question and the token budget reach ``compress_prompt``; the model kind is read from the
model's config; the KV-cache shim hands llmlingua the lists it indexes and the model the
Cache objects it expects."""

import json
from types import SimpleNamespace

import pytest

from workers.ml.llmlingua import (
    LegacyKvModel,
    LlmLinguaCompressor,
    as_cache,
    as_legacy,
    is_llmlingua2,
)


class RecordingPromptCompressor:
    def __init__(self, use_llmlingua2=False):
        self.use_llmlingua2 = use_llmlingua2
        self.calls = []

    def compress_prompt(self, context, **kwargs):
        self.calls.append((context, kwargs))
        return {"compressed_prompt": context[0][:10]}


def test_the_question_and_budget_reach_llmlingua():
    inner = RecordingPromptCompressor()
    out = LlmLinguaCompressor(inner)("a long document " * 10, "what is it?", 40)
    assert out == "a long doc"
    [(context, kwargs)] = inner.calls
    assert context == ["a long document " * 10]
    assert kwargs["question"] == "what is it?" and kwargs["target_token"] == 40


def test_leading_whitespace_is_set_aside_and_put_back():
    # llmlingua's question-aware split asserts on texts that open with newlines.
    inner = RecordingPromptCompressor()
    out = LlmLinguaCompressor(inner)("\n\n  Replace license or permit", "q", 5)
    [(context, _)] = inner.calls
    assert context == ["Replace license or permit"]
    assert out == "\n\n  Replace li"


@pytest.mark.parametrize(
    ("llmlingua2", "question_aware", "conditioned"),
    [(False, True, True), (False, False, False), (True, True, False)],
)
def test_question_aware_scoring_is_asked_for_only_where_llmlingua_has_it(
    llmlingua2, question_aware, conditioned
):
    inner = RecordingPromptCompressor(use_llmlingua2=llmlingua2)
    LlmLinguaCompressor(inner, question_aware)("text", "q", 5)
    [(_, kwargs)] = inner.calls
    assert ("condition_in_question" in kwargs) is conditioned
    assert ("condition_compare" in kwargs) is conditioned
    if conditioned:
        assert kwargs["condition_in_question"] == "after_condition"


class LayeredCache:
    """The transformers 5 shape: one object per layer with ``keys`` and ``values``."""

    def __init__(self, pairs):
        self.layers = [SimpleNamespace(keys=k, values=v) for k, v in pairs]


class LegacyConvertibleCache:
    """The transformers 4 shape: ``to_legacy_cache()`` gives ((keys, values), ...)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def to_legacy_cache(self):
        return tuple(self.pairs)


@pytest.mark.parametrize("cache_type", [LayeredCache, LegacyConvertibleCache])
def test_a_cache_object_becomes_the_lists_llmlingua_slices(cache_type):
    legacy = as_legacy(cache_type([("k0", "v0"), ("k1", "v1")]))
    assert legacy == [["k0", "v0"], ["k1", "v1"]]
    legacy[0][0] = "sliced"  # llmlingua assigns into the pairs: they must be lists


@pytest.mark.parametrize("past", [None, [["k", "v"]]])
def test_absent_or_already_legacy_caches_pass_through(past):
    assert as_legacy(past) is past


def test_no_cache_reaches_the_model_as_none():
    assert as_cache(None) is None


def test_legacy_lists_become_a_transformers_cache():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    keys, values = torch.zeros(1, 2, 3, 4), torch.ones(1, 2, 3, 4)
    cache = as_cache([[keys, values], [keys, values]])
    assert isinstance(cache, transformers.DynamicCache)
    assert as_legacy(cache)[1][1].equal(values)


class RecordingCausalLm:
    config = SimpleNamespace(name="tiny")

    def __init__(self):
        self.received = []

    def __call__(self, input_ids, past_key_values=None, **kwargs):
        self.received.append(past_key_values)
        return SimpleNamespace(logits="logits", past_key_values=LayeredCache([("k", "v")]))


def test_the_wrapped_model_answers_in_legacy_lists_and_keeps_its_attributes():
    inner = RecordingCausalLm()
    model = LegacyKvModel(inner)
    response = model("ids", past_key_values=None, use_cache=True)
    assert inner.received == [None]
    assert response.logits == "logits"
    assert response.past_key_values == [["k", "v"]]
    assert model.config.name == "tiny"  # llmlingua reads the model's own attributes


@pytest.mark.parametrize(
    ("architectures", "expected"),
    [(["XLMRobertaForTokenClassification"], True), (["LlamaForCausalLM"], False), (None, False)],
)
def test_llmlingua2_is_told_apart_by_the_model_config(tmp_path, architectures, expected):
    if architectures is not None:
        (tmp_path / "config.json").write_text(json.dumps({"architectures": architectures}))
    assert is_llmlingua2(tmp_path) is expected


def test_a_missing_model_is_a_clear_error(tmp_path):
    pytest.importorskip("llmlingua")
    with pytest.raises(OSError, match="no compressor model"):
        LlmLinguaCompressor.load(tmp_path / "absent", "cpu")


def test_the_settings_choose_the_compressor_and_its_scoring(monkeypatch, tmp_path):
    from queues.settings import Settings
    from workers.runtime import build_text_compressor

    loaded = []
    monkeypatch.setattr(
        LlmLinguaCompressor, "load", staticmethod(lambda *args: loaded.append(args) or "model")
    )
    # Every field the assertions read is set here, so the caller's environment cannot leak in.
    lexical = Settings(compressor_model_path=None)
    assert build_text_compressor(lexical) is None  # no model: the lexical default
    plain = Settings(
        compressor_model_path=tmp_path, compressor_device="cuda", compressor_question_aware=False
    )
    assert build_text_compressor(plain) == "model"
    assert loaded == [(tmp_path, "cuda", False)]
