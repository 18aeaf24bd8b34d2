"""Test doubles for the worker ports: plain in-memory classes and functions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from policies.budgets import BudgetState, Settlement
from policies.cache_verifier import Verifier
from policies.tiers import load_tier_table
from queues import keys
from queues.messages import AgentStep, Envelope, Outcome, StepResult
from queues.seal import Sealer
from queues.settings import DEFAULT_TIER_TABLE, Settings
from queues.topology import TASK_NAMES, Stage
from workers.ml.tokenizer import BpeCounter
from workers.ports import (
    BatchJob,
    BatchPoll,
    Completion,
    CompletionRequest,
    ParkedStep,
    SemanticEntry,
    SemanticMatch,
)
from workers.runtime import Runtime
from workers.semantic import SemanticLayer


@dataclass
class RecordingBus:
    sent: list[tuple[Stage, Envelope, float | None]] = field(default_factory=list)
    finalized: list[tuple[Envelope, Outcome]] = field(default_factory=list)
    remembered: list[tuple[Envelope, Outcome]] = field(default_factory=list)
    countdowns: list[tuple[str, float | None]] = field(default_factory=list)  # finalize, remember

    def send(self, stage: Stage, env: Envelope, *, countdown: float | None = None) -> None:
        self.sent.append((stage, env, countdown))

    def finalize(self, env: Envelope, outcome: Outcome, *, countdown: float | None = None) -> None:
        self.finalized.append((env, outcome))
        self.countdowns.append(("finalize", countdown))

    def remember(self, env: Envelope, outcome: Outcome, *, countdown: float | None = None) -> None:
        self.remembered.append((env, outcome))
        self.countdowns.append(("remember", countdown))


@dataclass
class MemoryBudgets:
    """The budget rules of the Lua script for one scope, in memory (the real one, with both
    scopes, is tested on Redis)."""

    limit_nano: int | None = None
    spent: int = 0
    held: dict[str, int] = field(default_factory=dict)
    limit_tokens: int | None = None
    soft_nano: int | None = None
    spent_tokens: int = 0
    held_tokens: dict[str, int] = field(default_factory=dict)

    def _state(self) -> BudgetState:
        return BudgetState(
            self.limit_nano,
            self.spent,
            sum(self.held.values()),
            self.limit_tokens,
            self.spent_tokens,
            sum(self.held_tokens.values()),
            soft_nano=self.soft_nano,
        )

    def reserve(
        self, env: Envelope, reservation: str, amount_nano: int, tokens: int = 0
    ) -> str | None:
        if reservation in self.held:
            return None
        if not self._state().admits(amount_nano, tokens):
            return "session"
        self.held[reservation] = amount_nano
        self.held_tokens[reservation] = tokens
        return None

    def settle(
        self, env: Envelope, reservation: str, actual_nano: int, tokens: int = 0
    ) -> Settlement:
        held = self.held.pop(reservation, None)
        if held is None:
            return Settlement(False, 0, actual_nano)
        self.held_tokens.pop(reservation, None)
        self.spent += actual_nano
        self.spent_tokens += tokens
        return Settlement(True, held, actual_nano)

    def release_step(self, env: Envelope) -> int:
        prefix = keys.reservation_prefix(env.step.tenant, env.step.step_id)
        mine = [k for k in self.held if k.startswith(prefix)]
        for k in mine:
            self.held_tokens.pop(k, None)
        return sum(self.held.pop(k) for k in mine)

    def state(self, tenant: str, session_id: str) -> BudgetState:
        return self._state()

    def states(self, env: Envelope) -> list[BudgetState]:
        return [self._state()]


@dataclass
class MemoryStores:
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    finalized: set[str] = field(default_factory=set)
    dead: list[dict[str, Any]] = field(default_factory=list)
    results: list[StepResult] = field(default_factory=list)
    shadow: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    summaries: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    claims: set[tuple[str, str, str]] = field(default_factory=set)


@dataclass
class MemorySummaries:
    """The summary store in memory (the Redis one is tested against Redis)."""

    stores: MemoryStores

    def get(self, tenant: str, session: str) -> dict[str, str]:
        return dict(self.stores.summaries.get((tenant, session), {}))

    def claim(self, tenant: str, session: str, key: str) -> bool:
        if (tenant, session, key) in self.stores.claims:
            return False
        self.stores.claims.add((tenant, session, key))
        return True

    def put(self, tenant: str, session: str, key: str, text: str) -> None:
        self.stores.summaries.setdefault((tenant, session), {})[key] = text


@dataclass
class MemoryBatchJobs:
    """The batch lane's store in memory (the Redis one is tested against Redis)."""

    pending_steps: dict[str, dict[str, ParkedStep]] = field(default_factory=dict)
    since: dict[str, float] = field(default_factory=dict)
    job_items: dict[str, dict[str, ParkedStep]] = field(default_factory=dict)
    metas: dict[str, BatchJob] = field(default_factory=dict)
    parked_once: set[str] = field(default_factory=set)

    def park(self, item: ParkedStep, now: float) -> int | None:
        if item.reservation in self.parked_once:
            return None
        self.parked_once.add(item.reservation)
        self.pending_steps.setdefault(item.model, {})[item.reservation] = item
        self.since.setdefault(item.model, now)
        return len(self.pending_steps[item.model])

    def due(self, older_than: float) -> list[str]:
        return [m for m, t in self.since.items() if t <= older_than]

    def pending(self, model: str) -> int:
        return len(self.pending_steps.get(model, {}))

    def take(self, model: str, provider: str, limit: int, now: float) -> BatchJob | None:
        waiting = self.pending_steps.get(model, {})
        chosen = list(waiting)[:limit]
        if not chosen:
            self.since.pop(model, None)
            return None
        job = BatchJob(f"job{len(self.metas)}", model, provider, "submitting", now)
        self.job_items[job.job_id] = {f"r{i}": waiting.pop(k) for i, k in enumerate(chosen)}
        self.metas[job.job_id] = job
        if waiting:
            self.since[model] = now
        else:
            self.since.pop(model, None)
        return job

    def items(self, job_id: str) -> dict[str, ParkedStep]:
        return dict(self.job_items.get(job_id, {}))

    def submitted(self, job: BatchJob, provider_batch_id: str, now: float) -> None:
        self.metas[job.job_id] = replace(
            job, state="submitted", provider_batch_id=provider_batch_id, submitted_at=now
        )

    def jobs(self) -> list[BatchJob]:
        return list(self.metas.values())

    def done(self, job_id: str, custom_id: str) -> None:
        self.job_items.get(job_id, {}).pop(custom_id, None)
        if not self.job_items.get(job_id):
            self.job_items.pop(job_id, None)
            self.metas.pop(job_id, None)

    @contextmanager
    def exclusive(self, ttl_s: float) -> Iterator[bool]:
        yield True


class DictCache:
    def __init__(self, data: dict[str, dict[str, Any]]) -> None:
        self.data = data

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.data[key] = entry

    def drop_prompt_version(self, prompt_version: str) -> int:
        mine = [k for k in self.data if f":{keys.part(prompt_version)}:" in k]
        for key in mine:
            del self.data[key]
        return len(mine)


class ListLedger:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def append(self, entry: dict[str, Any]) -> None:
        self.rows.append(entry)

    def append_many(self, entries: Sequence[dict[str, Any]]) -> None:
        self.rows.extend(entries)


class SetGuard:
    def __init__(self, done: set[str]) -> None:
        self._done = done
        self.claimed: set[str] = set()  # claims another finalize holds

    def done(self, tenant: str, step_id: str) -> bool:
        return keys.step_ref(tenant, step_id) in self._done

    def claim(self, tenant: str, step_id: str) -> bool:
        return keys.step_ref(tenant, step_id) not in self.claimed

    def release(self, tenant: str, step_id: str) -> None:
        self.claimed.discard(keys.step_ref(tenant, step_id))

    def mark(self, tenant: str, step_id: str) -> None:
        self._done.add(keys.step_ref(tenant, step_id))


class CountingDeliveries:
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def count(self, message_id: str, redelivered: bool) -> int:
        if not redelivered:
            return 1
        self.seen[message_id] = self.seen.get(message_id, 1) + 1
        return self.seen[message_id]


class DeadSink:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def put(self, record: dict[str, Any]) -> None:
        self.rows.append(record)


class ResultSink:
    def __init__(self, rows: list[StepResult]) -> None:
        self.rows = rows

    def store_if_absent(self, result: StepResult) -> bool:
        if any((r.tenant, r.step_id) == (result.tenant, result.step_id) for r in self.rows):
            return False
        self.rows.append(result)
        return True


Answerer = Callable[[CompletionRequest], Completion]
TEST_SEALER = Sealer(b"tierfleet test envelope key")


class FunctionProvider:
    """A provider made of a plain function, as httpx.MockTransport is made of a handler."""

    notes_tries = False

    def __init__(self, answer: Answerer, name: str = "simulated") -> None:
        self.answer = answer
        self.name = name
        self.calls: list[list[CompletionRequest]] = []

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion]:
        self.calls.append(list(requests))
        return [self.answer(r) for r in requests]


class BatchFunctionProvider(FunctionProvider):
    """A provider with a batch API made of plain functions: jobs end when ``ended`` is set;
    ``answer`` may return an exception for an item that failed."""

    def __init__(self, answer: Callable[[CompletionRequest], Completion | Exception]) -> None:
        super().__init__(lambda r: Completion("live", 1, 1), name="openai")
        self.batch_answer = answer
        self.jobs: dict[str, list[tuple[str, CompletionRequest]]] = {}
        self.ended = False
        self.job_error: str | None = None

    def submit_batch(self, job_id: str, requests: Sequence[tuple[str, CompletionRequest]]) -> str:
        self.jobs[f"batch_{job_id}"] = list(requests)
        return f"batch_{job_id}"

    def find_batch(self, job_id: str) -> str | None:
        return f"batch_{job_id}" if f"batch_{job_id}" in self.jobs else None

    def poll_batch(self, provider_batch_id: str) -> BatchPoll:
        if not self.ended:
            return BatchPoll(ended=False)
        if self.job_error:
            return BatchPoll(ended=True, error=self.job_error)
        return BatchPoll(
            ended=True,
            results={cid: self.batch_answer(r) for cid, r in self.jobs[provider_batch_id]},
        )


def make_runtime(
    provider: FunctionProvider | None = None,
    *,
    budgets: MemoryBudgets | None = None,
    tier_table: Path = DEFAULT_TIER_TABLE,
    semantic: SemanticLayer | None = None,
    **settings: Any,
) -> tuple[Runtime, RecordingBus, MemoryStores]:
    bus = RecordingBus()
    stores = MemoryStores()
    prov = provider or FunctionProvider(lambda r: Completion("ok", 10, 2, confidence=0.9))
    rt = Runtime(
        settings=Settings(tier_table=tier_table, **settings),
        table=load_tier_table(tier_table),
        counter=BpeCounter(),
        bus=bus,
        budgets=budgets or MemoryBudgets(),
        cache=DictCache(stores.cache),
        ledger=ListLedger(stores.ledger),
        finalized=SetGuard(stores.finalized),
        dead=DeadSink(stores.dead),
        results=ResultSink(stores.results),
        provider_factory=lambda name: prov,
        batch_jobs=MemoryBatchJobs(),
        shadow=ListLedger(stores.shadow),
        calls=ListLedger(stores.calls),
        summaries=MemorySummaries(stores),
        sealer=TEST_SEALER,
        deliveries=CountingDeliveries(),
        clock=lambda: 2_000_000_000.0,
        semantic_factory=lambda: (semantic, "no semantic layer in this test"),
    )
    return rt, bus, stores


def step(**overrides: Any) -> AgentStep:
    fields: dict[str, Any] = {
        "tenant": "acme",
        "agent": "support",
        "session_id": "s1",
        "messages": [
            {"role": "system", "content": "You are a careful assistant."},
            {"role": "user", "content": "What is the baggage allowance?"},
        ],
    }
    fields.update(overrides)
    return AgentStep.model_validate(fields)


def infer_hops(*envs: Envelope) -> list[list[str]]:
    """Envelopes as the inference task receives them: each sealed, as a stage sends it."""
    task = TASK_NAMES[Stage.infer]
    return [[e.to_wire(), TEST_SEALER.sign(task, e.to_wire())] for e in envs]


def envelope(**overrides: Any) -> Envelope:
    env_fields = {
        k: overrides.pop(k) for k in ("tier", "attempt", "retries", "cache_key") if k in overrides
    }
    return Envelope(step=step(**overrides), submitted_at=1_999_999_999.0, **env_fields)


# -- the semantic cache ---------------------------------------------------------------------


class WordEmbedder:
    """A plain embedder for worker tests: each word hashes to a fixed random direction, a text
    is the normalised sum, so shared words mean high cosine (the real one is MiniLM)."""

    model = "words"
    version = "1"
    dim = 64

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> Any:
        import hashlib

        import numpy as np

        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                seed = int(hashlib.sha256(word.strip("?.!,").encode()).hexdigest()[:8], 16)
                out[i] += np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)
            out[i] /= max(1e-9, float(np.linalg.norm(out[i])))
        return out


@dataclass
class MemoryVectorStore:
    """The vector store's contract in memory (the Qdrant ones are tested against Qdrant)."""

    entries: dict[str, SemanticEntry] = field(default_factory=dict)

    def upsert(self, entries: Sequence[SemanticEntry]) -> None:
        self.entries.update({e.point_id: e for e in entries})

    def nearest(
        self, vector: Any, scope: str, min_tier_rank: int, now: float, limit: int
    ) -> list[SemanticMatch]:
        import numpy as np

        live = [
            e
            for e in self.entries.values()
            if e.scope == scope and e.tier_rank >= min_tier_rank and e.expires_at > now
        ]
        found = [SemanticMatch(float(np.dot(vector, e.vector)), e.vector, e.payload) for e in live]
        return sorted(found, key=lambda m: -m.similarity)[:limit]

    def _drop(self, doomed: list[str]) -> int:
        for point_id in doomed:
            del self.entries[point_id]
        return len(doomed)

    def drop_prompt_version(self, prompt_version: str) -> int:
        return self._drop(
            [k for k, e in self.entries.items() if e.prompt_version == prompt_version]
        )

    def purge_expired(self, now: float) -> int:
        return self._drop([k for k, e in self.entries.items() if e.expires_at <= now])

    def count(self) -> int:
        return len(self.entries)


def cosine_verifier(dim: int, min_cosine: float, embedder: str = "words@1") -> Verifier:
    """A verifier whose decision is cosine >= ``min_cosine`` (score 0.5 exactly there): the
    network reads only the cosine feature. Trained verifiers are tested on real pairs."""
    import numpy as np

    from policies.cache_verifier import Calibration

    width = 2 + 15 + 2 * dim
    hidden_w = np.zeros((width, 1), dtype=np.float32)
    hidden_w[0, 0] = 1.0
    steep = 200.0
    return Verifier(
        mean=np.zeros(width, dtype=np.float32),
        scale=np.ones(width, dtype=np.float32),
        hidden_w=hidden_w,
        hidden_b=np.zeros(1, dtype=np.float32),
        out_w=np.array([steep], dtype=np.float32),
        out_b=-steep * min_cosine,
        idf={},
        default_idf=1.0,
        calibration=Calibration(0.5, 0.05, 1.0, 0.0, 0),
        embedder=embedder,
    )


def semantic_layer(min_cosine: float = 0.9, ttl_s: float = 3600) -> SemanticLayer:
    embedder = WordEmbedder()
    return SemanticLayer(
        embedder, MemoryVectorStore(), cosine_verifier(embedder.dim, min_cosine), 3, ttl_s
    )
