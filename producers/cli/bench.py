"""``tierfleet bench ...``: the benchmarks, each printing its figures and writing JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from producers.cli.bench_routing import bench_routing_cmd, bench_routing_tune_cmd
from producers.cli.common import OutOption, console, write_figures
from producers.recorded import (
    DEFAULT_QQP_PAIRS,
    DEFAULT_ROUTERBENCH,
    DEFAULT_TAU_BENCH,
)
from queues.settings import Settings

bench_app = typer.Typer(help="Benchmarks that print figures and write JSON.", no_args_is_help=True)
bench_app.command("routing")(bench_routing_cmd)
bench_app.command("routing-tune")(bench_routing_tune_cmd)


@bench_app.command("fleet")
def bench_fleet_cmd(
    steps: Annotated[int, typer.Option(help="steps for the throughput run")] = 2000,
    metrics_rounds: Annotated[
        int, typer.Option(help="rounds of metrics on and off, alternated (0: skip)")
    ] = 2,
    out: OutOption = None,
) -> None:
    """Steps/s end to end and per-step overhead, beside Celery's no-op floor; then steps/s
    with metrics on (scraped every second) and off, alternated."""
    from producers.bench.throughput import bench_fleet, metrics_overhead

    figures = bench_fleet(steps, Settings())
    if metrics_rounds:
        figures.update(metrics_overhead(Settings(), steps, metrics_rounds))
    console.print_json(json.dumps(figures))
    write_figures(out, figures)


@bench_app.command("prefix-cache")
def bench_prefix_cache_cmd(
    workload: Annotated[
        Path, typer.Option(help="tau-bench trajectories (JSON)")
    ] = DEFAULT_TAU_BENCH,
    sessions: Annotated[int | None, typer.Option(help="first N sessions (default: all)")] = None,
    config: Annotated[
        list[str] | None,
        typer.Option(help="a configuration to run, repeatable (default: all of them)"),
    ] = None,
    split: Annotated[
        str, typer.Option(help="tau-bench tasks: report (never tuned on), tune, or all")
    ] = "report",
    out: OutOption = None,
) -> None:
    """Cached-prefix share and cost of tau-bench sessions, with and without prefix-stable
    prompt assembly, against the provider test server at published prices."""
    from producers.bench.prefix_cache import CONFIGS, bench_prefix_cache

    names = config or list(CONFIGS)
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        console.print(f"[red]unknown configuration(s) {unknown}; known: {list(CONFIGS)}")
        raise typer.Exit(2)
    if not workload.exists():
        console.print(f"[red]no workload at {workload}[/] (pass --workload)")
        raise typer.Exit(2)
    figures = bench_prefix_cache(workload, sessions, Settings(), names, split)
    console.print_json(json.dumps(figures))
    write_figures(out, figures)


@bench_app.command("cache")
def bench_cache_cmd(
    pairs: Annotated[
        Path, typer.Option(help="labelled pairs to test on: JSON lines {text_a, text_b, label}")
    ] = DEFAULT_QQP_PAIRS,
    train_pairs: Annotated[
        Path | None,
        typer.Option(help="pairs to train on; default: a share of --pairs, split by pair"),
    ] = None,
    max_wrong_rate: Annotated[
        float, typer.Option(help="the most wrong hits allowed, as a share of served hits")
    ] = 0.05,
    sizes: Annotated[
        str, typer.Option(help="entries in the embedded store for the latency runs")
    ] = "10000,100000",
    test_share: Annotated[float, typer.Option(help="held-out share without --train-pairs")] = 0.3,
    limit: Annotated[int | None, typer.Option(help="use only the first N pairs")] = None,
    cross_encoder: Annotated[
        Path | None,
        typer.Option(help="blend in a `train cross-encoder --for-bench` model from this folder"),
    ] = None,
    out: OutOption = None,
) -> None:
    """Precision and recall of the semantic cache's served hits on pairs its verifier never
    saw, the operating point for the bound, and lookup latency in the embedded store."""
    from producers.bench.cache import bench_cache

    figures = bench_cache(
        pairs,
        train_pairs,
        max_wrong_rate,
        [int(s) for s in sizes.split(",") if s.strip()],
        test_share,
        limit,
        cross_encoder,
    )
    shown = {k: v for k, v in figures.items() if not k.endswith("curve")}
    console.print_json(json.dumps(shown))
    write_figures(out, figures)


@bench_app.command("cache-audit")
def bench_cache_audit_cmd(
    pairs: Annotated[
        Path, typer.Option(help="labelled question pairs (JSON lines, gzip or plain)")
    ] = DEFAULT_QQP_PAIRS,
    limit: Annotated[int | None, typer.Option(help="use only the first N Quora pairs")] = None,
    verifier: Annotated[
        bool, typer.Option(help="also train the feature verifier on the tuning half and replay it")
    ] = True,
    out: OutOption = None,
) -> None:
    """The semantic cache's online wrong-hit bound on two kinds of traffic it was not tuned on
    (Quora pairs, support-agent questions): served precision and recall with the audited
    threshold, beside its prior alone and cosine 0.95."""
    from producers.bench.cache_audit import bench_cache_audit

    figures = bench_cache_audit(pairs, limit, verifier)
    console.print_json(json.dumps(figures))
    write_figures(out, figures)


@bench_app.command("compress")
def bench_compress_cmd(
    workload: Annotated[
        Path | None,
        typer.Option(help="tau-bench trajectories (JSON), or the LEval folder with --format leval"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="tau-bench or leval")] = "tau-bench",
    sessions: Annotated[int | None, typer.Option(help="first N sessions (default: all)")] = None,
    economy: Annotated[bool, typer.Option(help="measure the economy-mode plan")] = False,
    split: Annotated[
        str, typer.Option(help="tau-bench tasks: report (never tuned on), tune, or all")
    ] = "report",
    per_call: Annotated[bool, typer.Option(help="write every call's figures too")] = False,
    documents: Annotated[
        int | None, typer.Option(help="LEval: first N documents of each task (default: all)")
    ] = None,
    compressor_model: Annotated[
        Path | None,
        typer.Option(
            help="an LLMLingua model folder for free text (default: "
            "TIERFLEET_COMPRESSOR_MODEL_PATH, else the lexical compressor)"
        ),
    ] = None,
    out: OutOption = None,
) -> None:
    """Tokens cut, used facts kept, prefix stability, billed input and latency of the
    compression policy on recorded agent sessions (or answer words kept on LEval)."""
    from policies.compression import plan_for
    from producers.bench.compress import bench_leval, bench_tau
    from producers.recorded import DEFAULT_LEVAL
    from workers.runtime import build_text_compressor

    if fmt not in ("tau-bench", "leval"):
        console.print(f"[red]unknown format {fmt!r}; known: tau-bench, leval")
        raise typer.Exit(2)
    path = workload or (DEFAULT_TAU_BENCH if fmt == "tau-bench" else DEFAULT_LEVAL)
    if not path.exists():
        console.print(f"[red]no data at {path}[/] (pass --workload)")
        raise typer.Exit(2)
    settings = Settings()
    if compressor_model is not None:
        settings = settings.model_copy(update={"compressor_model_path": compressor_model})
    plan = plan_for(settings, settings, economy)
    texts = build_text_compressor(settings)
    if fmt == "leval":
        figures = bench_leval(path, plan, texts, documents)
    else:
        figures = bench_tau(path, sessions, plan, per_call, texts, split)
    figures["text_compressor"] = (
        f"llmlingua {settings.compressor_model_path} on {settings.compressor_device}, "
        + ("question-aware" if settings.compressor_question_aware else "plain scoring")
        if texts is not None
        else "lexical (policies/text_select.py)"
    )
    shown = {k: v for k, v in figures.items() if k not in ("per_session", "per_call")}
    console.print_json(json.dumps(shown))
    write_figures(out, figures)


@bench_app.command("compress-tune")
def bench_compress_tune_cmd(
    workload: Annotated[Path | None, typer.Option(help="tau-bench trajectories (JSON)")] = None,
    out: OutOption = None,
) -> None:
    """The history budget, chosen on the tuning half of the tau-bench tasks: the largest
    cut that keeps 99% of used facts there (report it with ``bench compress``)."""
    from policies.compression import plan_for
    from producers.bench.compress_tuning import tune_history_budget

    path = workload or DEFAULT_TAU_BENCH
    if not path.exists():
        console.print(f"[red]no data at {path}[/] (pass --workload)")
        raise typer.Exit(2)
    settings = Settings()
    figures = tune_history_budget(path, plan_for(settings, settings, economy=False))
    console.print_json(json.dumps(figures))
    write_figures(out, figures)


@bench_app.command("local")
def bench_local_cmd(
    engine: Annotated[str, typer.Option(help="cpu (transformers) or vllm (GPU)")] = "cpu",
    table: Annotated[
        Path | None,
        typer.Option(help="tier table with the local model (default: local.toml / local_gpu.toml)"),
    ] = None,
    workload: Annotated[
        Path, typer.Option(help="tau-bench trajectories (JSON)")
    ] = DEFAULT_TAU_BENCH,
    sessions: Annotated[int, typer.Option(help="sessions whose steps are the prompts")] = 8,
    steps_per_session: Annotated[int, typer.Option(help="each session's first N steps")] = 4,
    prompt_tokens: Annotated[int, typer.Option(help="cap on each prompt's tokens")] = 2048,
    max_new_tokens: Annotated[int, typer.Option(help="tokens generated per answer")] = 32,
    sizes: Annotated[str, typer.Option(help="micro-batch sizes, comma-separated")] = "1,4,8,16,32",
    fleet: Annotated[bool, typer.Option(help="also through the fleet (real workers)")] = True,
    mc_data: Annotated[
        Path, typer.Option(help="RouterBench CSVs for multiple-choice accuracy")
    ] = DEFAULT_ROUTERBENCH,
    mc_prompts: Annotated[
        int, typer.Option(help="multiple-choice prompts per split; 0: skip")
    ] = 200,
    out: OutOption = None,
) -> None:
    """A local model raw and through the fleet at each micro-batch size; prefix-cache gain;
    cost per million tokens and break-even against API prices; multiple-choice accuracy,
    calibration and a cascade to the recorded frontier answers."""
    from producers.bench.local import TABLE_OF_ENGINE, LocalRun, figures

    if engine not in TABLE_OF_ENGINE:
        console.print(f"[red]--engine {engine}: one of {sorted(TABLE_OF_ENGINE)}")
        raise typer.Exit(2)
    for path in (workload, *((mc_data,) if mc_prompts else ())):
        if not path.exists():
            console.print(f"[red]no data at {path}[/] (pass --workload / --mc-data)")
            raise typer.Exit(2)
    run = LocalRun(
        engine=engine,
        table=table,
        data=workload,
        sessions=sessions,
        steps_per_session=steps_per_session,
        prompt_tokens=prompt_tokens,
        max_new_tokens=max_new_tokens,
        sizes=tuple(int(s) for s in sizes.split(",")),
        fleet=fleet,
        mc_data=mc_data,
        mc_prompts=mc_prompts,
    )
    result = figures(run, Settings())
    console.print_json(json.dumps(result))
    write_figures(out, result)
