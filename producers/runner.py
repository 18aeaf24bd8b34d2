"""Runs a workload against a fleet wave by wave (a session's next step waits for its previous
answer), with a progress bar."""

from __future__ import annotations

from collections.abc import Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producers.fleet import Fleet
from producers.workloads import Workload
from queues.messages import StepResult


def run_workload(
    fleet: Fleet,
    workload: Workload,
    *,
    timeout_s: float = 600.0,
    on_result: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    for (tenant, session_id), usd in workload.budgets.items():
        fleet.set_session_budget(tenant, session_id, usd)
    results: list[StepResult] = []
    for wave in workload.waves():
        handles = fleet.submit_many(wave)
        results += fleet.wait(handles, timeout=timeout_s, on_result=on_result)
    return results


def run_with_progress(
    fleet: Fleet, workload: Workload, *, transient: bool = False
) -> list[StepResult]:
    columns = (TextColumn("[bold]steps"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=transient) as progress:
        task = progress.add_task("steps", total=len(workload.steps))
        return run_workload(fleet, workload, on_result=lambda _: progress.advance(task))
