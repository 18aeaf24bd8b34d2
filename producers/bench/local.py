"""``tierfleet bench local``: a local model's throughput run raw through its engine and
through the fleet (real workers, the tier's micro-batches) at each micro-batch size, the
gain of prefix caching on a session's later steps, and what its tokens cost beside the API
models' (producers/bench/local_accuracy.py adds its accuracy on multiple-choice prompts)."""

from __future__ import annotations

import json
import tempfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from policies.pricing import load_price_table
from policies.self_hosting import Throughput, self_hosting
from policies.tables import TABLES
from policies.tiers import ModelSpec, load_tier_table, shipped_or_given
from producers.bench.local_prompts import session_steps
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.recorded import DEFAULT_ROUTERBENCH, DEFAULT_TAU_BENCH
from queues.messages import StepStatus
from queues.settings import Settings
from queues.step import AgentStep, ChatMessage
from workers.engines.base import Engine, EngineRequest
from workers.providers.local import build_local, chat_of

SIZES = (1, 4, 8, 16, 32)
TABLE_OF_ENGINE = {"cpu": TABLES / "local.toml", "vllm": TABLES / "local_gpu.toml"}
# The fleet passes the benchmark's prompts on as they are: no cache answers them, nothing
# compresses them (both sides of the comparison run the same prompts).
AS_IS = {
    "semantic_cache": False,
    "keep_last_messages": 10_000,
    "history_budget_tokens": None,
    "tool_result_max_tokens": 10**7,
    "text_max_tokens": 10**7,
}


@dataclass(frozen=True)
class LocalRun:
    engine: str = "cpu"
    table: Path | None = None  # the tier table whose cheap tier is the local model
    data: Path = DEFAULT_TAU_BENCH
    sessions: int = 8
    steps_per_session: int = 4
    prompt_tokens: int = 2048  # each prompt capped to this (and to the model's context)
    max_new_tokens: int = 32
    sizes: tuple[int, ...] = SIZES
    fleet: bool = True  # False: the raw engine only
    mc_data: Path = DEFAULT_ROUTERBENCH  # multiple-choice prompts for accuracy (RouterBench)
    mc_prompts: int = 200  # per split (dev, test); 0: no accuracy figures

    @property
    def table_path(self) -> Path:
        return self.table or TABLE_OF_ENGINE[self.engine]


@dataclass
class Timed:
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    batches: list[int] = field(default_factory=list)
    tokens_cached: int = 0

    @property
    def output_tokens_per_s(self) -> float:
        return self.tokens_out / self.seconds if self.seconds else 0.0


def local_model(table_path: Path) -> tuple[ModelSpec, dict[str, Any]]:
    """The table's first local model: its spec and its raw table entry."""
    table = load_tier_table(table_path)
    for tier in table.tiers:
        spec = table.models[tier.model]
        if spec.local is not None:
            raw = tomllib.loads(shipped_or_given(table_path).read_text())["models"][spec.name]
            return spec, raw
    raise ValueError(f"{table_path} has no local model")


def requests_of(steps: Sequence[AgentStep]) -> list[EngineRequest]:
    return [EngineRequest(chat_of(s.messages), s.max_output_tokens) for s in steps]


def warm_up(step: AgentStep) -> AgentStep:
    """A prompt that shares the step's system prompt and is answered by no cache."""
    extra = ChatMessage(role="user", content="(warm-up) Hello.")
    return step.model_copy(update={"step_id": "warm-up", "messages": (*step.messages, extra)})


def run_raw(engine: Engine, steps: Sequence[AgentStep], size: int) -> Timed:
    engine.generate(requests_of([warm_up(steps[0])]))
    timed = Timed()
    requests = requests_of(steps)
    started = time.perf_counter()
    for at in range(0, len(requests), size):
        run = engine.generate(requests[at : at + size])
        timed.batches.append(len(run.generations))
        timed.tokens_in += sum(g.tokens_in for g in run.generations)
        timed.tokens_out += sum(g.tokens_out for g in run.generations)
        timed.tokens_cached += sum(g.tokens_cached for g in run.generations)
    timed.seconds = time.perf_counter() - started
    return timed


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # numbers, and strings as TOML basic strings


def bench_table(spec: ModelSpec, entry: dict[str, Any], size: int, folder: Path) -> Path:
    """A one-tier table: the local model alone, taking micro-batches of ``size``, accepting
    every answer (the benchmark measures throughput, not the cascade)."""
    lines = [
        'version = "bench-local"',
        "[tiers.local]",
        "rank = 0",
        f"model = {_toml(spec.name)}",
        "accept_min_confidence = 0.0",
        f"flush_every = {size}",
        "flush_interval_s = 5.0",
        f"[models.{_toml(spec.name)}]",
        *(f"{k} = {_toml(v)}" for k, v in entry.items()),
        "[routing]",
        'default_tier = "local"',
    ]
    path = folder / f"bench-local-{size}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_fleet(settings: Settings, table: Path, steps: Sequence[AgentStep], model: str) -> Timed:
    settings = settings.model_copy(update={**AS_IS, "tier_table": table})
    with LocalFleet(settings) as local, Fleet(local.settings) as fleet:
        fleet.wait([fleet.submit(warm_up(steps[0]))], timeout=600)
        started = time.perf_counter()
        # Polled twice a second: on two cores, polling faster takes CPU from the engine.
        results = fleet.wait(fleet.submit_many(list(steps)), timeout=3600, poll_s=0.5)
        seconds = time.perf_counter() - started
        tries = [c["try"] for c in fleet.calls() if c["event"] == "answer" and c["model"] == model]
    failed = [r for r in results if r.status is not StepStatus.ok or r.model != model]
    if failed:
        raise RuntimeError(f"{len(failed)} steps not answered by {model}: {failed[0].reason}")
    sizes: dict[str, int] = {}
    for t in tries[1:]:  # the first call was the warm-up's
        sizes[t] = sizes.get(t, 0) + 1
    return Timed(
        sum(r.tokens_in for r in results),
        sum(r.tokens_out for r in results),
        seconds,
        list(sizes.values()),
        sum(r.tokens_cached for r in results),
    )


def prefix_gain(engine: Engine, steps: Sequence[AgentStep], max_new_tokens: int) -> float:
    """Time to answer a session's later steps, one at a time, with every prompt computed
    whole ÷ with the prefixes of the session's earlier steps cached."""
    by_session: dict[str, list[AgentStep]] = {}
    for s in steps:
        by_session.setdefault(s.session_id, []).append(s)
    cached = whole = 0.0
    for session in by_session.values():
        engine.forget_prefixes()
        for k, step in enumerate(session):
            [request] = requests_of([step])
            request = replace(request, max_new_tokens=max_new_tokens)
            started = time.perf_counter()
            engine.generate([request])
            if k:  # later steps: the first one fills the cache
                cached += time.perf_counter() - started
                engine.forget_prefixes()
                started = time.perf_counter()
                engine.generate([request])
                whole += time.perf_counter() - started
                engine.generate([request])  # the session's own prefix, back in the cache
    return whole / cached if cached else 0.0


def figures(run: LocalRun, settings: Settings) -> dict[str, Any]:
    spec, entry = local_model(run.table_path)
    assert spec.local is not None
    provider = build_local(spec.local, settings.model_cache_dir)
    engine = provider.engine
    cap = min(run.prompt_tokens, engine.context_tokens - run.max_new_tokens)
    steps = session_steps(
        run.data,
        sessions=run.sessions,
        steps_per_session=run.steps_per_session,
        prompt_tokens=cap,
        max_new_tokens=run.max_new_tokens,
        count=lambda ms: engine.count_prompt(chat_of(ms)),
    )
    raw: dict[int, Timed] = {}
    fleet: dict[int, Timed] = {}
    with tempfile.TemporaryDirectory() as folder:
        for b in run.sizes:  # raw, then fleet, size by size: a shared machine drifts
            raw[b] = run_raw(engine, steps, b)
            if run.fleet:
                table = bench_table(spec, entry, b, Path(folder))
                fleet[b] = run_fleet(settings, table, steps, spec.name)
    out = summarize(run, spec, steps, raw, fleet, engine, cap)
    if run.mc_prompts:
        from producers.bench.local_accuracy import accuracy_figures

        batch = out["best_batch"]
        out["multiple_choice"] = accuracy_figures(
            engine, run.mc_data, spec.local.hourly_usd, run.mc_prompts, batch
        )
    return out


def summarize(
    run: LocalRun,
    spec: ModelSpec,
    steps: Sequence[AgentStep],
    raw: dict[int, Timed],
    fleet: dict[int, Timed],
    engine: Engine,
    cap: int,
) -> dict[str, Any]:
    assert spec.local is not None
    through = fleet or raw
    best = max(through, key=lambda b: through[b].output_tokens_per_s)
    at = through[best]
    measured = Throughput(at.tokens_in, at.tokens_out, at.seconds, at.tokens_cached)
    apis = load_price_table().prices
    hosting = self_hosting(spec.local.hourly_usd, measured, apis)

    def rates(timed: dict[int, Timed]) -> dict[str, float]:
        return {str(b): round(t.output_tokens_per_s, 2) for b, t in timed.items()}

    first = min(through)
    return {
        "engine": run.engine,
        "model": spec.name,
        "model_path": spec.local.path,
        "prompts": len(steps),
        "prompt_tokens_cap": cap,
        "prompt_tokens_mean": round(raw[first].tokens_in / len(steps), 1),
        "max_new_tokens": run.max_new_tokens,
        "tokens_per_s": rates(fleet),
        "raw_tokens_per_s": rates(raw),
        "fleet_batches": {str(b): t.batches for b, t in fleet.items()},
        "batch_gain": round(
            through[best].output_tokens_per_s / through[first].output_tokens_per_s, 2
        ),
        "best_batch": best,
        "fleet_vs_raw": {
            str(b): round(fleet[b].output_tokens_per_s / raw[b].output_tokens_per_s, 3)
            for b in fleet
        },
        "prefix_cache_gain": round(prefix_gain(engine, steps, run.max_new_tokens), 2),
        "prefix_cache_gain_first_token": round(prefix_gain(engine, steps, 1), 2),
        "speculative_gain": None,  # vLLM on a GPU only: BENCHMARKS.md
        "cost_per_mtok_usd": hosting["cost_per_mtok_usd"],
        "breakeven_tokens_per_day": {
            name: api["breakeven_tokens_per_day"] for name, api in hosting["apis"].items()
        },
        "self_hosting": hosting,
        "tokens_per_s_means": "generated tokens per second; self_hosting counts prompt and"
        " generated tokens per second at the best batch size",
    }
