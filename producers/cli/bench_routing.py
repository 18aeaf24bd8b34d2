"""``tierfleet bench routing`` and ``bench routing-tune``: the router and the cascade replayed
on recorded real-model answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from producers.cli.common import OutOption, console, write_figures
from producers.recorded import DEFAULT_ROUTELLM, DEFAULT_ROUTERBENCH
from queues.settings import Settings

RouterOption = Annotated[
    str | None,
    typer.Option(
        help="rules (the table's own routing) or learned (at --target); "
        "default: rules for routerbench, learned for routellm"
    ),
]
CrossCheckOption = Annotated[
    str | None,
    typer.Option(
        help="the cheap tier accepts only when this model's answer agrees; none: on its "
        "checks alone (default: the table's own acceptance)"
    ),
]
AcceptanceOption = Annotated[
    float | None,
    typer.Option(
        help="train the learned acceptance check too; tiers below the top accept an "
        "answer only when its predicted success is at least this"
    ),
]


def bench_routing_cmd(
    train: Annotated[
        Path | None,
        typer.Option(help="CSV file or folder to train on (default: the format's shared data)"),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="routerbench (11 models) or routellm (MMLU, 2 models)")
    ] = "routerbench",
    test: Annotated[
        Path | None,
        typer.Option(help="data to test on; default: a held-out share of --train, by prompt"),
    ] = None,
    router: RouterOption = None,
    target: Annotated[
        float, typer.Option(help="the learned router's success target (the knob)")
    ] = 0.8,
    test_share: Annotated[float, typer.Option(help="held-out share without --test")] = 0.3,
    png: Annotated[Path | None, typer.Option(help="draw the cost-quality curve here")] = None,
    shadow: Annotated[
        float, typer.Option(help="share of accepted cheaper answers shadowed by the frontier")
    ] = 0.0,
    cross_check: CrossCheckOption = None,
    acceptance: AcceptanceOption = None,
    out: OutOption = None,
) -> None:
    """Train the learned router on --train only, run the fleet over the test prompts with
    recorded real-model answers (the table's own policy unless told otherwise), and compare
    with frontier-only, the oracle and the learned router's curve."""
    from producers.bench.routing import RoutingRun, bench_routing

    if fmt not in ("routerbench", "routellm"):
        console.print(f"[red]unknown --format {fmt!r}[/]: routerbench or routellm")
        raise typer.Exit(2)
    if router not in (None, "rules", "learned"):
        console.print(f"[red]unknown --router {router!r}[/]: rules or learned")
        raise typer.Exit(2)
    default = DEFAULT_ROUTERBENCH if fmt == "routerbench" else DEFAULT_ROUTELLM
    run = RoutingRun(
        router=router,
        train_path=train or default,
        test_path=test,
        target=target,
        test_share=test_share,
        shadow_fraction=shadow,
        cross_check=cross_check,
        fmt=fmt,
        acceptance_min=acceptance,
    )
    figures = bench_routing(run, Settings(), png)
    console.print_json(json.dumps(figures))
    write_figures(out, figures)


def bench_routing_tune_cmd(
    train: Annotated[Path, typer.Option(help="RouterBench CSV file or folder")] = (
        DEFAULT_ROUTERBENCH
    ),
    test_share: Annotated[
        float, typer.Option(help="the share `bench routing` holds out, left out here")
    ] = 0.3,
    max_cost: Annotated[
        float, typer.Option(help="the most a candidate may cost, as a share of frontier-only")
    ] = 0.30,
    out: OutOption = None,
) -> None:
    """How the routerbench table's acceptance is chosen: every candidate replayed on a
    tuning part of the training prompts only (never on the prompts `bench routing` reports)."""
    from producers.bench.routing import ROUTERBENCH_TABLE
    from producers.bench.routing_replay import read_rows, split_by_prompt
    from producers.bench.routing_tuning import tune_routing

    train_rows, _ = split_by_prompt(read_rows(train, "routerbench", ROUTERBENCH_TABLE), test_share)
    figures = tune_routing(train_rows, ROUTERBENCH_TABLE, test_share, max_cost)
    console.print_json(json.dumps(figures))
    write_figures(out, figures)
