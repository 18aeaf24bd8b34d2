"""The one failure path: any exception becomes Transient or Permanent, a wait is always
schedulable, and in a micro-batch one step's failure is its own."""

import math
from unittest.mock import patch

import kombu.exceptions
import pytest
import redis

from policies.retry import clamp_delay
from queues.messages import StepStatus
from queues.topology import Stage
from workers.batching import RequeueingBatches
from workers.errors import GateClosed, PermanentError, TransientError, as_fleet_error
from workers.infer import handle_batch
from workers.ports import Completion
from workers.providers.calls import MAX_RETRY_AFTER_S, retry_after_s
from workers.stage import retry_delay
from workers.testing import FunctionProvider, envelope, infer_hops, make_runtime


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (RecursionError("maximum recursion depth exceeded"), PermanentError),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), PermanentError),
        (OverflowError("date value out of range"), PermanentError),
        (KeyError("nope"), PermanentError),
        (redis.exceptions.ResponseError("WRONGTYPE Operation against a key"), PermanentError),
        (redis.exceptions.OutOfMemoryError("command not allowed"), TransientError),
        (redis.exceptions.ReadOnlyError("You can't write against a replica"), TransientError),
        (redis.exceptions.ResponseError("BUSY Redis is busy running a script"), TransientError),
        (redis.exceptions.ConnectionError("reset"), TransientError),
        (kombu.exceptions.OperationalError("broker gone"), TransientError),
        (ConnectionResetError("peer"), TransientError),
    ],
)
def test_every_exception_is_transient_or_permanent(exc, kind):
    assert isinstance(as_fleet_error(exc), kind)


@pytest.mark.parametrize(
    ("asked", "scheduled"),
    [(math.nan, 0.0), (-5.0, 0.0), (math.inf, 100.0), (1e308, 100.0), (7.5, 7.5), (None, None)],
)
def test_a_wait_is_never_nan_negative_infinite_or_past_the_ceiling(asked, scheduled):
    assert clamp_delay(asked, 100.0) == scheduled


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "inf"}, MAX_RETRY_AFTER_S),
        ({"retry-after": "nan"}, 0.0),
        ({"retry-after": "-30"}, 0.0),
        ({"retry-after": "1e400"}, MAX_RETRY_AFTER_S),
        ({"retry-after-ms": "-1"}, 0.0),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, MAX_RETRY_AFTER_S),
        ({"retry-after": "12"}, 12.0),
    ],
)
def test_retry_after_headers_are_clamped(headers, seconds):
    assert retry_after_s(headers) == seconds


def test_a_countdown_is_never_longer_than_the_cap():
    rt, _, _ = make_runtime(max_countdown_s=120)
    assert retry_delay(rt, 0, retry_after_s=math.inf) == 120.0
    assert retry_delay(rt, 0, retry_after_s=math.nan) <= 1.0  # NaN asks for nothing
    assert retry_delay(rt, 50) <= 120.0  # 2**50 backoff would overflow a countdown


def test_one_steps_bad_answer_fails_alone_and_its_batch_mates_are_answered():
    def answer(r):
        if r.step_id == "poison":  # a bill no price table can hold
            return Completion("ok", 100, 10, billed_usd=math.nan, simulated=True)
        return Completion("fine", 100, 10, confidence=0.9, correct=True, simulated=True)

    rt, bus, _ = make_runtime(FunctionProvider(answer))
    envs = [envelope(step_id=s, tier="cheap") for s in ("a", "poison", "b")]
    handle_batch(infer_hops(*envs), rt)
    outcomes = {e.step.step_id: o for e, o in bus.finalized}
    assert outcomes["a"].status is outcomes["b"].status is StepStatus.ok
    assert outcomes["poison"].status is StepStatus.dead_lettered
    assert "bill" in outcomes["poison"].reason


def test_a_step_that_cannot_be_admitted_fails_alone():
    rt, bus, _ = make_runtime(
        FunctionProvider(lambda r: Completion("fine", 100, 10, confidence=0.9, simulated=True))
    )
    envs = [envelope(step_id="a", tier="cheap"), envelope(step_id="lost", tier="no-such-tier")]
    handle_batch([*infer_hops(*envs), ["x", "y", "z"]], rt)  # and a message of wrong arity
    outcomes = {e.step.step_id: o for e, o in bus.finalized}
    assert outcomes["a"].status is StepStatus.ok
    assert outcomes["lost"].status is StepStatus.dead_lettered
    assert "internal error: KeyError" in outcomes["lost"].reason


def test_a_transient_failure_while_concluding_retries_that_step_only():
    calls = {"n": 0}

    class FlakyBus:
        def __init__(self, inner):
            self.inner = inner

        def finalize(self, env, outcome, countdown=None):
            if env.step.step_id == "flaky" and calls["n"] == 0:
                calls["n"] += 1
                raise redis.exceptions.ConnectionError("reset while finalizing")
            self.inner.finalize(env, outcome, countdown=countdown)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    rt, bus, _ = make_runtime(
        FunctionProvider(lambda r: Completion("fine", 100, 10, confidence=0.9, simulated=True))
    )
    rt.bus = FlakyBus(bus)
    handle_batch(infer_hops(*(envelope(step_id=s, tier="cheap") for s in ("a", "flaky"))), rt)
    assert [e.step.step_id for e, _ in bus.finalized] == ["a"]
    [(stage, retried, countdown)] = bus.sent
    assert (stage, retried.step.step_id, retried.retries) == (Stage.infer, "flaky", 1)
    assert countdown is not None and countdown > 0
    assert rt.budgets.held == {}  # nothing stays reserved: the retry reserves again


def test_a_closed_gate_waits_without_spending_retries_then_gives_up():
    def closed(requests):
        raise GateClosed("openai: circuit open after repeated failures", 12.0)

    provider = FunctionProvider(lambda r: Completion("x", 1, 1))
    provider.complete = closed  # type: ignore[method-assign]
    rt, bus, _ = make_runtime(provider, max_gate_waits=2)
    handle_batch(infer_hops(envelope(step_id="w", tier="cheap", retries=3)), rt)
    [(stage, waiting, countdown)] = bus.sent
    assert stage is Stage.infer and waiting.retries == 3  # no retry spent
    assert waiting.decisions[-1].what == "wait" and 12.0 <= countdown <= 13.0
    handle_batch(infer_hops(waiting), rt)
    handle_batch(infer_hops(bus.sent[-1][1]), rt)  # a third closed gate: past max_gate_waits
    [(_, outcome)] = bus.finalized
    assert outcome.status is StepStatus.dead_lettered
    assert "waited 2 times for a closed gate" in outcome.reason


def test_a_redelivered_step_says_so_on_its_record():
    rt, bus, _ = make_runtime(
        FunctionProvider(lambda r: Completion("fine", 100, 10, confidence=0.9, simulated=True))
    )
    handle_batch(infer_hops(envelope(step_id="back", tier="cheap")), rt, deliveries=[2])
    [(env, outcome)] = bus.finalized
    assert outcome.status is StepStatus.ok
    assert any(d.what == "redelivered" and "delivery 2" in d.why for d in env.decisions)


def test_a_step_whose_failure_path_also_fails_is_handed_back_not_acknowledged():
    """Redis or the broker down: the step can neither answer nor retry through its queue,
    so its message must go back to the broker (workers/batching.py), never be acked."""

    def answer(r):
        if r.step_id == "unlucky":
            return TransientError("503")
        return Completion("fine", 100, 10, confidence=0.9, simulated=True)

    rt, bus, _ = make_runtime(FunctionProvider(answer))

    def broker_down(stage, env, countdown=None):
        raise kombu.exceptions.OperationalError("Error 111 connecting: Connection refused")

    bus.send = broker_down  # type: ignore[method-assign]
    envs = [envelope(step_id=s, tier="cheap") for s in ("a", "unlucky", "b")]
    assert handle_batch(infer_hops(*envs), rt) == [1]
    assert {e.step.step_id for e, _ in bus.finalized} == {"a", "b"}


def test_stranded_requests_are_put_back_and_the_rest_acknowledged():
    class Request:
        name, argsrepr, kwargsrepr, root_id, parent_id = "infer", "<step>", "{}", None, None

        def __init__(self, rid: str) -> None:
            self.id, self.acked, self.requeued = rid, False, False
            self.task = type("Task", (), {"acks_late": True})()
            self.delivery_info: dict = {}
            self.request_dict: dict = {}
            self.events: list[str] = []

        def acknowledge(self) -> None:
            self.acked = True

        def reject(self, requeue: bool = False) -> None:
            self.requeued = requeue

        def send_event(self, kind: str, **fields) -> None:
            self.events.append(kind)

    class Pool:  # runs the batch at once and hands back what the task returned
        def apply_async(self, fn, args, accept_callback, callback, error_callback):
            callback(["r2"])

    batches = RequeueingBatches.__new__(RequeueingBatches)
    batches._pool = Pool()
    requests = [Request("r1"), Request("r2"), Request("r3")]
    with patch("workers.batching.SimpleRequest.from_request", lambda r: r):
        batches._flush_together(requests)  # type: ignore[arg-type]
    assert [(r.acked, r.requeued) for r in requests] == [
        (True, False),
        (False, True),
        (True, False),
    ]
    # Each is announced; only those answered are reported succeeded (celery's reject
    # reports the one put back).
    assert [r.events for r in requests] == [
        ["task-received", "task-succeeded"],
        ["task-received"],
        ["task-received", "task-succeeded"],
    ]
