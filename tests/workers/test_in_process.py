"""The in-process fleet users test their own code with: the stages' real code, no Redis,
no worker processes."""

from queues.messages import StepStatus
from workers.errors import PermanentError
from workers.ports import Completion, CompletionRequest
from workers.testing import FunctionProvider, InProcessFleet, MemoryBudgets

CHEAP, MID = "sim/gpt-4o-mini", "sim/claude-3-5-haiku"


def question(text: str = "Which is larger, A) 2 or B) 3?", **fields):
    return {
        "tenant": "t",
        "agent": "a",
        "session_id": "s",
        "task_kind": "multiple_choice",
        "messages": [{"role": "user", "content": text}],
        **fields,
    }


def test_a_step_runs_every_stage_and_is_answered_billed_and_recorded():
    fleet = InProcessFleet(FunctionProvider(lambda r: Completion("B", 50, 1)))
    [result] = fleet.run([question()])
    assert result.status is StepStatus.ok
    assert (result.answer, result.tier, result.model) == ("B", "cheap", CHEAP)
    assert [d.stage for d in result.decisions][:3] == ["cache", "compress", "classify"]
    assert result.cost_usd > 0
    [entry] = fleet.ledger
    assert entry.step_id == result.step_id and entry.cost_usd == result.cost_usd
    assert [c["model"] for c in fleet.calls if c["event"] == "answer"] == [CHEAP]


def test_an_answer_that_fails_its_check_escalates_and_both_calls_are_paid():
    def answer(request: CompletionRequest) -> Completion:
        text = "I am not sure" if request.model.name == CHEAP else "B"
        return Completion(text, 50, 1)

    fleet = InProcessFleet(FunctionProvider(answer))
    [result] = fleet.run([question()])
    assert (result.status, result.tier, result.model) == (StepStatus.ok, "mid", MID)
    assert result.escalations == 1
    paid = fleet.ledger[0].calls
    assert [(c.model, c.accepted) for c in paid] == [(CHEAP, False), (MID, True)]
    assert result.cost_usd == sum(c.cost_usd for c in paid)


def test_a_repeated_step_is_served_from_the_exact_cache():
    provider = FunctionProvider(lambda r: Completion("B", 50, 1))
    fleet = InProcessFleet(provider)
    [first] = fleet.run([question()])
    [again] = fleet.run([question()])
    assert not first.cache_hit and again.cache_hit
    assert again.cost_usd == 0 and len(provider.calls) == 1


def test_a_session_over_its_budget_stops_and_a_provider_error_is_dead_lettered():
    fleet = InProcessFleet(
        FunctionProvider(lambda r: Completion("B", 50, 1)), budgets=MemoryBudgets(limit_nano=1)
    )
    [stopped] = fleet.run([question()])
    assert stopped.status is StepStatus.budget_exceeded

    def refuse(request: CompletionRequest) -> Completion:
        raise PermanentError("this model is gone")

    broken = InProcessFleet(FunctionProvider(refuse))
    [dead] = broken.run([question()])
    assert dead.status is StepStatus.dead_lettered and "this model is gone" in dead.reason
    assert [d.reason for d in broken.dead] == [dead.reason]
