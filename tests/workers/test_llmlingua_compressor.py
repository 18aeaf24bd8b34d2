"""The LLMLingua adapter's contract with the package (the model itself runs on GPU workers):
the question and the token budget reach ``compress_prompt``; the model kind is read from the
model's config."""

import json

import pytest

from workers.llmlingua_compressor import LlmLinguaCompressor, is_llmlingua2


class RecordingPromptCompressor:
    def __init__(self):
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
