"""The OpenAI and Anthropic adapters, through the official SDKs, against the test server."""

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from policies.tiers import load_tier_table
from queues.settings import Settings
from tests.provider_handle import POLICY, SCHEMA, ServerHandle
from workers.errors import PermanentError, ProviderUnavailable, TransientError
from workers.ml.tokenizer import BpeCounter
from workers.ports import Completion, CompletionRequest, supports_batch
from workers.providers import PROVIDERS, build_provider, has_batch_api, provider_problems
from workers.providers.anthropic_messages import message_params
from workers.testing import step

TABLE = load_tier_table(
    __import__("pathlib").Path(__file__).parents[2] / "policies" / "tables" / "providers.toml"
)
KEY = "sk-test-5f1c0ffee0ddba11"


def settings(api: ServerHandle, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        **api.settings_fields(KEY),
        "openai_compatible_base_url": api.openai_base_url,
        "retry_backoff_s": 0.01,
        "provider_timeout_s": 2.0,
    }
    return Settings.model_validate({**fields, **overrides})


def request(tier: str, turns: int = 1, **step_fields: object) -> CompletionRequest:
    messages = [{"role": "system", "content": POLICY}]
    for i in range(turns):
        messages += [{"role": "user", "content": f"question {i}"}]
        if i < turns - 1:
            messages += [{"role": "assistant", "content": f"answer {i}"}]
    s = step(messages=messages, **step_fields)
    return CompletionRequest.for_step(s, TABLE.model_of(tier), s.messages)


def one(provider_name: str, api: ServerHandle, req: CompletionRequest, **kw: object) -> object:
    provider = build_provider(provider_name, settings(api, **kw), BpeCounter())
    return provider.complete([req])[0]


@pytest.mark.parametrize(
    ("provider", "tier"),
    # openai-compatible: the loopback server stands for a user's vLLM, Ollama or llama.cpp.
    [("openai", "cheap"), ("anthropic", "mid"), ("openai-compatible", "cheap")],
)
def test_plain_answer_with_usage_priced_as_the_provider_bills(api, provider, tier):
    answer = one(provider, api, request(tier))
    assert isinstance(answer, Completion) and answer.text and answer.tokens_out > 0
    model = TABLE.model_of(tier)
    cost = model.cost(
        answer.tokens_in, answer.tokens_out, answer.tokens_cached, answer.tokens_cache_write
    )
    assert cost == pytest.approx(api.bill()["total_usd"], rel=1e-9)


def test_openai_reads_the_session_prefix_from_its_cache(api):
    first, second = (one("openai", api, request("cheap", turns=n)) for n in (1, 2))
    assert isinstance(first, Completion) and isinstance(second, Completion)
    assert first.tokens_cached == 0
    assert second.tokens_cached >= 1024 and second.tokens_cached % 128 == 0
    assert second.tokens_cached / second.tokens_in > 0.9


def test_anthropic_writes_then_reads_its_breakpoints(api):
    first, second = (one("anthropic", api, request("mid", turns=n)) for n in (1, 2))
    assert isinstance(first, Completion) and isinstance(second, Completion)
    assert first.tokens_cached == 0 and first.tokens_cache_write > 1024
    assert second.tokens_cached == first.tokens_cache_write
    model = TABLE.model_of("mid")
    ours = sum(
        model.cost(a.tokens_in, a.tokens_out, a.tokens_cached, a.tokens_cache_write)
        for a in (first, second)
    )
    assert ours == pytest.approx(api.bill()["total_usd"], rel=1e-9)


def test_without_breakpoints_anthropic_caches_nothing(api):
    answers = [
        one("anthropic", api, request("mid", turns=n), prompt_cache_breakpoints=False)
        for n in (1, 2)
    ]
    assert all(isinstance(a, Completion) and a.tokens_cached == 0 for a in answers)


def test_anthropic_prompt_puts_static_content_first_with_breakpoints():
    params = message_params(
        request("mid", tools=[{"type": "function", "function": {"name": "lookup"}}]),
        breakpoints=True,
    )
    assert params["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert params["system"][0]["text"] == POLICY and "cache_control" in params["system"][0]
    assert "cache_control" in params["messages"][-1]["content"][-1]


@pytest.mark.parametrize(("provider", "tier"), [("openai", "cheap"), ("anthropic", "mid")])
def test_structured_answer_fits_the_schema(api, provider, tier):
    answer = one(provider, api, request(tier, response_schema=SCHEMA))
    assert isinstance(answer, Completion)
    assert json.loads(answer.text)["action"] in ("refund", "rebook")


def test_429_waits_for_retry_after_then_succeeds(api):
    api.faults({"status": 429, "retry_after": 0.3, "times": 1})
    started = time.monotonic()
    answer = one("openai", api, request("cheap"))
    assert isinstance(answer, Completion)
    assert time.monotonic() - started >= 0.3
    assert api.stats()["openai.error.429"] == 1


def test_a_long_retry_after_goes_back_to_the_queue_with_the_wait(api):
    api.faults({"status": 429, "retry_after": 90, "times": 1})
    answer = one("anthropic", api, request("mid"))
    assert isinstance(answer, TransientError) and answer.retry_after_s == 90


def test_500s_exhaust_the_in_call_attempts(api):
    api.faults({"status": 500, "times": -1})
    answer = one("openai", api, request("cheap"), provider_max_attempts=3)
    assert isinstance(answer, TransientError) and "500" in str(answer)
    assert api.stats()["openai.error.500"] == 3


def test_other_4xx_are_permanent_with_the_providers_message(api):
    api.faults({"status": 400, "times": 1})
    answer = one("anthropic", api, request("mid"))
    assert isinstance(answer, PermanentError) and "scripted 400" in str(answer)
    assert api.stats()["anthropic.error.400"] == 1  # not retried


def test_a_slow_provider_times_out_as_transient(api):
    api.faults({"delay_s": 1.0, "times": -1})
    answer = one(
        "openai-compatible", api, request("cheap"), provider_timeout_s=0.2, provider_max_attempts=1
    )
    assert isinstance(answer, TransientError) and "Timeout" in str(answer)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_timed_out_tries_are_counted_because_the_provider_may_bill_them(api, provider):
    failed: list[tuple] = []

    def note(event, n, *, billed=None, error=""):
        if event == "try_failed":
            failed.append((n, billed))

    api.faults({"delay_s": 1.5, "times": 1})
    req = replace(request("cheap"), on_try=note)
    answer = one(provider, api, req, provider_timeout_s=0.8, provider_max_attempts=2)
    assert isinstance(answer, Completion) and failed == [(1, None)]  # maybe billed
    time.sleep(1.0)  # the server finishes the try the client gave up on, and bills it
    assert sum(m["calls"] for m in api.bill()["models"].values()) == 2


def test_each_retry_and_each_failed_try_is_noted_with_whether_it_was_billed(api):
    notes: list[tuple] = []

    def note(event, n, *, billed=None, error=""):
        notes.append((event, n, billed) if event == "try_failed" else (event, n))

    api.faults({"status": 429, "retry_after": 0.05, "times": 1})
    req = replace(request("cheap"), on_try=note)
    assert isinstance(one("openai", api, req), Completion)
    # Each try noted as it goes out; a 429 is not billed.
    assert notes == [("try_sent", 1), ("try_failed", 1, False), ("try_sent", 2)]
    notes.clear()
    api.faults({"delay_s": 1.5, "times": 1})
    answer = one("anthropic", api, req, provider_timeout_s=0.8, provider_max_attempts=2)
    assert isinstance(answer, Completion)
    assert notes == [("try_sent", 1), ("try_failed", 1, None), ("try_sent", 2)]  # maybe billed


def test_a_try_that_cannot_be_noted_on_the_bill_is_not_sent(api):
    failures = iter([ConnectionError("Redis is restarting")])
    notes: list[tuple] = []

    def note(event, n, *, billed=None, error=""):
        if (failure := next(failures, None)) is not None:
            raise failure
        notes.append((event, n))

    answer = one("openai", api, replace(request("cheap"), on_try=note))
    assert isinstance(answer, Completion)
    assert notes == [("try_sent", 1)]  # the try that could not be noted never went out
    assert api.bill()["models"]["gpt-4o-mini"]["calls"] == 1


def test_a_call_that_only_timed_out_notes_each_try_as_maybe_billed(api):
    failed: list[tuple] = []

    def note(event, n, *, billed=None, error=""):
        if event == "try_failed":
            failed.append((n, billed))

    api.faults({"delay_s": 0.6, "times": -1})
    req = replace(request("cheap"), on_try=note)
    answer = one("openai", api, req, provider_timeout_s=0.2, provider_max_attempts=2)
    assert isinstance(answer, TransientError) and failed == [(1, None), (2, None)]


def test_concurrency_is_capped_per_provider(api):
    api.faults({"delay_s": 0.2, "times": -1})
    provider = build_provider("openai", settings(api, provider_concurrency=2), BpeCounter())
    started = time.monotonic()
    answers = provider.complete([request("cheap") for _ in range(6)])
    assert all(isinstance(a, Completion) for a in answers)
    assert time.monotonic() - started >= 0.6  # three rounds of two


def test_a_provider_without_its_key_is_unavailable_and_named():
    bare = Settings.model_validate({})
    problems = provider_problems(bare, ["openai", "anthropic", "simulated"])
    assert problems == [
        "provider 'anthropic' is unavailable: set TIERFLEET_ANTHROPIC_API_KEY "
        "(or ANTHROPIC_API_KEY)",
        "provider 'openai' is unavailable: set TIERFLEET_OPENAI_API_KEY (or OPENAI_API_KEY)",
    ]
    with pytest.raises(ProviderUnavailable, match="TIERFLEET_OPENAI_COMPATIBLE_BASE_URL"):
        build_provider("openai-compatible", bare, BpeCounter())


def test_the_registry_says_which_providers_have_a_batch_api_and_they_do(api):
    configured = settings(api, replay_data=Path("unused.csv"))
    for name, entry in PROVIDERS.items():
        if name == "local":  # built for a model of the tier table: tests/workers/test_local
            continue
        provider = build_provider(name, configured, BpeCounter())
        assert has_batch_api(name) is entry.batch_api is supports_batch(provider), name
    assert {n for n in PROVIDERS if has_batch_api(n)} == {"openai", "anthropic"}


def test_logprobs_become_the_answers_confidence(api):
    plain = one("openai", api, request("cheap"), request_logprobs=True)
    assert isinstance(plain, Completion) and plain.confidence == pytest.approx(0.951, abs=1e-3)
    api.faults({"malformed": True})
    unsure = one("openai", api, request("cheap"), request_logprobs=True)
    assert isinstance(unsure, Completion) and unsure.confidence == pytest.approx(0.301, abs=1e-3)
    assert one("openai", api, request("cheap")).confidence is not None  # asked by default
    quiet = one("openai", api, request("cheap"), request_logprobs=False)
    assert isinstance(quiet, Completion) and quiet.confidence is None  # not asked, none given


def test_an_openai_job_is_found_by_the_job_id_it_carries(api):
    provider = build_provider("openai", settings(api), BpeCounter())
    created = provider.submit_batch("job-7", [("c1", request("cheap"))])  # type: ignore[attr-defined]
    provider.submit_batch("job-8", [("c1", request("cheap"))])  # type: ignore[attr-defined]
    assert provider.find_batch("job-7") == created  # type: ignore[attr-defined]
    assert provider.find_batch("job-9") is None  # type: ignore[attr-defined]


STRICT_SCHEMA = {**SCHEMA, "additionalProperties": False}


def test_a_closed_schema_is_sent_strict_and_an_open_one_is_not(api):
    before = api.stats().get("openai.strict", 0)
    strict = one("openai", api, request("cheap", response_schema=STRICT_SCHEMA))
    assert isinstance(strict, Completion) and json.loads(strict.text)["action"]
    assert api.stats().get("openai.strict", 0) == before + 1
    loose = one("openai", api, request("cheap", response_schema=SCHEMA))  # the server would
    assert isinstance(loose, Completion)  # refuse it strict: it went without
    assert api.stats().get("openai.strict", 0) == before + 1


@pytest.mark.parametrize(("provider", "tier"), [("openai", "cheap"), ("anthropic", "mid")])
def test_an_answer_cut_at_max_tokens_says_so(api, provider, tier):
    cut = one(provider, api, request(tier, max_output_tokens=3))
    assert isinstance(cut, Completion) and cut.finish == "length" and cut.tokens_out <= 3
    whole = one(provider, api, request(tier))
    assert isinstance(whole, Completion) and whole.finish == "stop"
