"""The ``tierfleet`` command: demo, run, report, dead letters, worker commands; the command
groups (bench, cache, train) have a module each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from policies.tiers import load_tier_table
from producers.cli.bench import bench_app
from producers.cli.cache import cache_app
from producers.cli.common import OutOption, console, stop_on_sigterm, write_figures
from producers.cli.ops import ops_app
from producers.cli.train import train_app, train_commands
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.report import render, render_attribution, summarize, unique_steps
from producers.runner import run_with_progress
from producers.workloads import generate_workload, read_jsonl, write_jsonl
from queues.settings import Settings
from workers.errors import ProviderUnavailable

app = typer.Typer(
    help="tierfleet: run AI-agent LLM steps at the lowest cost that keeps quality.",
    no_args_is_help=True,
)
dead_app = typer.Typer(help="Inspect and replay dead-lettered steps.", no_args_is_help=True)
app.add_typer(dead_app, name="dead")
app.add_typer(bench_app, name="bench")
app.add_typer(cache_app, name="cache")
app.add_typer(train_app, name="train")
app.registered_commands += ops_app.registered_commands
for old_name, command in train_commands.items():  # the names before `train <what>`
    app.command(old_name, hidden=True, deprecated=True)(command)


@app.command()
def demo(
    sessions: Annotated[int, typer.Option(help="generated agent sessions")] = 40,
    seed: Annotated[int, typer.Option(help="workload seed")] = 7,
    replay: Annotated[
        Path | None,
        typer.Option(
            help="RouterBench CSV file or folder: answer with recorded real-model outcomes"
        ),
    ] = None,
    steps: Annotated[int, typer.Option(help="prompts to replay with --replay")] = 300,
    latency_ms: Annotated[float, typer.Option(help="simulated provider latency per call")] = 20.0,
    local: Annotated[
        bool,
        typer.Option(help="the cheap tier runs SmolLM2-135M on the CPU (`make install-local-cpu`)"),
    ] = False,
    html: Annotated[
        Path | None, typer.Option(help="also write the report as one page with charts")
    ] = None,
    write_workload: Annotated[
        Path | None,
        typer.Option(help="also write the generated workload as JSONL (for `tierfleet run`)"),
    ] = None,
    out: OutOption = None,
) -> None:
    """Start the whole fleet on embedded defaults, run an agent workload, report savings."""
    from producers.demo import demo_settings, demo_workload, run_demo

    stop_on_sigterm()
    try:
        settings = demo_settings(Settings(simulated_latency_ms=latency_ms), replay, local)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    workload = demo_workload(sessions, seed, replay, steps)
    if write_workload:
        write_jsonl(workload.steps, write_workload)
    try:
        run_demo(settings, workload, console, out, html)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: the fleet was shut down[/]")
        raise typer.Exit(130) from None


@app.command()
def run(
    workload: Annotated[Path, typer.Argument(help="JSONL file, one AgentStep per line")],
    embedded: Annotated[
        bool,
        typer.Option(
            help="start a private fleet for this run instead of using TIERFLEET_BROKER_URL"
        ),
    ] = False,
    out: OutOption = None,
) -> None:
    """Submit a workload (sessions in order, side by side) and report what it cost."""
    stop_on_sigterm()
    try:
        steps = read_jsonl(workload)
    except (OSError, ValueError) as exc:
        console.print(f"[red]cannot read the workload:[/] {exc}")
        raise typer.Exit(2) from None
    settings = Settings()
    try:
        local = LocalFleet(settings).start() if embedded else None
    except ProviderUnavailable as exc:
        console.print(f"[red]cannot start the fleet:[/] {exc}")
        raise typer.Exit(2) from None
    try:
        with Fleet(local.settings if local else settings) as fleet:
            results = run_with_progress(fleet, steps)
            ids = {r.step_id for r in results}
            summary = summarize(e for e in fleet.ledger() if e.step_id in ids)
    finally:
        if local:
            local.stop()
    render(summary, console, title=f"tierfleet run {workload.name}")
    write_figures(out, summary)


@app.command()
def report(
    out: OutOption = None,
    top: int = 10,
    html: Annotated[
        Path | None, typer.Option(help="also write the report as one page with charts")
    ] = None,
) -> None:
    """The whole ledger: totals, quality, model mix, cost by tenant/agent/workflow/session/
    task kind, cost per successful execution, latency per lane, savings by lever, budget
    advice, alerts, and for each local model its cost per million tokens."""
    from producers.report_audits import render_audits
    from producers.report_page import gather, write_html
    from producers.report_tables import render_facts
    from producers.self_hosting_report import render_self_hosting

    settings = Settings()
    table = load_tier_table(settings.tier_table, settings.price_table)
    with Fleet(settings) as fleet:
        entries = unique_steps(fleet.ledger())
        summary = gather(fleet, entries, table)
    render(summary, console)
    render_attribution(entries, console, top=top)
    render_facts(summary["facts"], console)
    render_self_hosting(summary["self_hosting"], console)
    render_audits(summary["cache_audit"], console)
    write_figures(out, summary)
    if html is not None:
        write_html(summary, html, "tierfleet report")
        console.print(f"page written to {html}")


@app.command()
def shadow(out: OutOption = None) -> None:
    """Shadow evaluation: how often accepted cheaper answers agree with the top tier's."""
    from producers.report import render_shadow, summarize_shadow

    with Fleet(Settings()) as fleet:
        records = fleet.shadow_records()
    if not records:
        console.print("no shadow records: set TIERFLEET_SHADOW_FRACTION above 0 on the workers")
        return
    summary = summarize_shadow(records)
    render_shadow(summary, console)
    write_figures(out, summary)


@dead_app.command("list")
def dead_list(limit: int = 100) -> None:
    """Dead-lettered steps, oldest first, with the stage and reason."""
    settings = Settings()
    with Fleet(settings) as fleet:
        letters = fleet.dead_letters(limit)
        archived = len(fleet.archived_dead_letters())
    table = Table(title=f"tf.dead: {len(letters)} dead letters")
    for col in ("step_id", "stage", "reason", "replayable"):
        table.add_column(col)
    for letter in letters:
        r = letter.record
        table.add_row(str(r.step_id), r.stage, r.reason, "yes" if r.envelope else "no")
    console.print(table)
    if archived:
        console.print(f"{archived} older letters archived under {settings.archive_dir}")


@dead_app.command("replay")
def dead_replay(limit: int = 100, wait: bool = True) -> None:
    """Resubmit dead-lettered steps from the start of the fleet."""
    with Fleet(Settings()) as fleet:
        replayed, kept = fleet.replay_dead(limit)
        console.print(f"replayed {len(replayed)}; {len(kept)} without an envelope stay in tf.dead")
        if wait and replayed:
            for result in fleet.wait(replayed):
                console.print(f"{result.step_id}: {result.status.value} {result.reason}")


@app.command("provider-server")
def provider_server(
    port: Annotated[int, typer.Option(help="loopback port")] = 8089,
    batch_delay_s: Annotated[float, typer.Option(help="seconds until a batch job ends")] = 5.0,
) -> None:
    """Run the provider test server (OpenAI + Anthropic APIs, on loopback, with its own
    bill) for trying the fleet's API providers without keys or the internet."""
    from producers.fakes.provider_server.serve import serve_forever

    console.print(
        f"OpenAI base URL http://127.0.0.1:{port}/v1, Anthropic base URL http://127.0.0.1:{port}"
        f"; the bill: GET /_bill"
    )
    serve_forever(port, batch_delay_s)


@app.command()
def lost(older_than: Annotated[float, typer.Option(help="seconds since submit")] = 600.0) -> None:
    """Steps submitted long ago with no result: messages the broker lost. Exits 1 if any."""
    with Fleet(Settings()) as fleet:
        found = fleet.lost(older_than)
    for result_id in found:
        console.print(result_id)
    console.print(f"{len(found)} steps without a result after {older_than:.0f} s")
    if found:
        raise typer.Exit(1)


@app.command()
def chaos(
    steps: int = 2000,
    broker: Annotated[str, typer.Option(help="redis or rabbitmq")] = "redis",
    kill_every: Annotated[float, typer.Option(help="seconds between worker kills")] = 4.0,
    out: OutOption = None,
) -> None:
    """A private fleet under faults while steps run: worker and pool-child kills, Redis and
    broker restarts, provider storms, fuzz. Prints and writes what became of every step,
    call and bad message."""
    from producers.bench.chaos import ChaosPlan, run_chaos

    if broker not in ("redis", "rabbitmq"):
        raise typer.BadParameter("--broker is redis or rabbitmq")
    stop_on_sigterm()
    figures = run_chaos(ChaosPlan(steps=steps, broker=broker, kill_every_s=kill_every))
    table = Table(title=f"tierfleet chaos ({broker}, {steps} steps)", show_header=False)
    for key, value in figures.items():
        if key not in ("scenarios", "work_dir", "fault_notes"):
            table.add_row(key, str(value))
    console.print(table)
    write_figures(out, figures)


@app.command()
def workload(
    out: Annotated[Path, typer.Argument(help="where to write the JSONL")],
    sessions: int = 40,
    seed: int = 7,
) -> None:
    """Write the generated demo workload as JSONL."""
    write_jsonl(generate_workload(sessions, seed).steps, out)
    console.print(f"wrote {out}")


def main() -> None:
    app()
