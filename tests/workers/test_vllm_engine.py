"""The vLLM engine against a stand-in for ``vllm.LLM`` at its own boundary (no GPU here):
the tier table's options reach vLLM, a micro-batch is one ``chat`` call, and its outputs
become generations with log-probabilities and finish reasons."""

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from policies.local_models import LocalModel
from policies.tiers import parse_tier_table
from workers.engines.base import EngineRequest
from workers.engines.vllm_engine import VllmEngine, llm_options
from workers.ports import CompletionRequest
from workers.providers.local import LocalProvider
from workers.testing import step


@dataclass
class Params:  # vllm.SamplingParams' arguments, as the engine passes them
    temperature: float
    max_tokens: int
    logprobs: int


@dataclass
class FakeLLM:
    """Answers every conversation with ``max_tokens`` tokens of log-probability -0.1, the
    last request of a batch stopping at its first token."""

    chats: list[int] = field(default_factory=list)
    resets: int = 0

    def chat(self, conversations, params, use_tqdm=True):
        assert not use_tqdm and len(conversations) == len(params)
        self.chats.append(len(conversations))
        outputs = []
        for i, (conversation, p) in enumerate(zip(conversations, params, strict=True)):
            stop = i == len(conversations) - 1
            tokens = [7] if stop else list(range(10, 10 + p.max_tokens))
            logprobs = [{t: SimpleNamespace(logprob=-0.1)} for t in tokens]
            first = SimpleNamespace(
                text=" ".join(map(str, tokens)),
                token_ids=tokens,
                logprobs=logprobs,
                finish_reason="stop" if stop else "length",
            )
            prompt = [0] * (5 * len(conversation))
            cached = 0 if i == 0 else 5  # the first runs the shared prefix, the rest reuse it
            outputs.append(
                SimpleNamespace(outputs=[first], prompt_token_ids=prompt, num_cached_tokens=cached)
            )
        return outputs

    def reset_prefix_cache(self):
        self.resets += 1

    def get_tokenizer(self):
        return SimpleNamespace(apply_chat_template=lambda msgs, **_: [0] * (5 * len(msgs)))


def test_the_tier_tables_options_reach_vllm():
    ngram = LocalModel("m", 2.5, engine="vllm", context_tokens=4096, speculative="ngram")
    options = llm_options(ngram, Path("/models/m"))
    assert options["enable_prefix_caching"] is True and options["max_model_len"] == 4096
    assert options["speculative_config"]["method"] == "ngram"
    draft = LocalModel("m", 2.5, engine="vllm", speculative="/models/draft", dtype="bfloat16")
    options = llm_options(draft, Path("/models/m"))
    assert options["speculative_config"] == {"model": "/models/draft", "num_speculative_tokens": 4}
    assert options["dtype"] == "bfloat16" and "max_model_len" not in options
    assert "speculative_config" not in llm_options(LocalModel("m", 1.0), Path("/m"))
    uncached = LocalModel("m", 1.0, engine="vllm", prefix_cache_tokens=0)
    assert llm_options(uncached, Path("/m"))["enable_prefix_caching"] is False


def test_a_micro_batch_is_one_chat_call_and_keeps_its_log_probabilities():
    llm = FakeLLM()
    engine = VllmEngine("m", llm, 4096, Params)
    run = engine.generate([EngineRequest(({"role": "user", "content": "hi"},), 3)] * 3)
    assert llm.chats == [3]
    first, _, last = run.generations
    assert (first.tokens_in, first.tokens_out, first.finish_reason) == (5, 3, "length")
    assert first.logprobs == (-0.1, -0.1, -0.1)
    assert first.confidence == pytest.approx(0.905, abs=1e-3)
    assert (last.tokens_out, last.finish_reason) == (1, "stop")
    assert [g.tokens_cached for g in run.generations] == [0, 5, 5]
    assert engine.count_prompt([{"role": "user", "content": "hi"}] * 2) == 10
    engine.forget_prefixes()
    assert llm.resets == 1


def test_the_local_provider_bills_a_vllm_batch_by_engine_time():
    table = parse_tier_table(
        {
            "version": "t",
            "tiers": {"cheap": {"rank": 0, "model": "gpu/m"}},
            "models": {
                "gpu/m": {
                    "provider": "local",
                    "path": "/models/m",
                    "engine": "vllm",
                    "hourly_usd": 3.6,
                    "input_per_mtok": 0.1,
                    "output_per_mtok": 0.4,
                }
            },
        }
    )
    model = table.models["gpu/m"]
    assert model.local is not None and model.local.engine == "vllm"
    provider = LocalProvider(VllmEngine("m", FakeLLM(), 4096, Params), model.local.hourly_usd)
    s = step(messages=[{"role": "user", "content": "hello"}])
    answers = provider.complete([CompletionRequest.for_step(s, model, s.messages, 4)] * 2)
    assert all(a.engine_s > 0 for a in answers)
    assert sum(a.billed_usd or 0 for a in answers) == pytest.approx(
        3.6 * sum(a.engine_s for a in answers) / 3600
    )
