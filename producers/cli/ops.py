"""The operator's commands: the worker groups' command lines, Flower, the fleet's alerts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from policies.tiers import load_tier_table
from producers.cli.common import console
from producers.fleet import Fleet
from queues.settings import Settings
from queues.topology import worker_groups

ops_app = typer.Typer()


@ops_app.command()
def workers() -> None:
    """The celery command that starts each worker group (for your own process manager).
    On one machine each group serves /metrics on a port of its own."""
    settings = Settings()
    table = load_tier_table(settings.tier_table, settings.price_table)
    groups = worker_groups(
        table.names, settings.batch_flush_every, settings.lanes_by_priority, table.flush_sizes
    )
    for i, group in enumerate(groups):
        port = f"TIERFLEET_METRICS_PORT={settings.metrics_port + i} " if settings.metrics else ""
        console.print(
            f"[bold]{group.name}[/]: {port}{' '.join(group.celery_args())}", soft_wrap=True
        )


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@ops_app.command()
def alerts(
    limit: Annotated[int, typer.Option(help="recent events to list")] = 50,
    rules: Annotated[
        Path | None, typer.Option(help="write the rules as a Prometheus rules file and stop")
    ] = None,
) -> None:
    """The fleet's own alerts: what fires now and what fired and resolved recently (one
    finalize worker evaluates the rules every TIERFLEET_ALERT_INTERVAL_S). With --rules, the
    same rules for Prometheus."""
    from policies.alerts import prometheus_rules
    from workers.alerting import AlertStore, thresholds_of

    settings = Settings()
    if rules is not None:
        rules.write_text(prometheus_rules(thresholds_of(settings)))
        console.print(f"wrote {rules}")
        return
    with Fleet(settings) as fleet:
        store = AlertStore(fleet.redis)
        active, events = store.active(), store.events(limit)
    table = Table(title=f"alerts firing now: {len(active)}")
    for col in ("alert", "value", "threshold", "summary"):
        table.add_column(col)
    for key, alert in sorted(active.items()):
        table.add_row(key, f"{alert.value:.4g}", f"{alert.threshold:.4g}", alert.summary)
    console.print(table)
    recent = Table(title=f"recent alert events: {len(events)}")
    for col in ("when", "state", "alert", "summary"):
        recent.add_column(col)
    for event in events:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["ts"]))
        key = event["rule"] + (f":{event['subject']}" if event["subject"] else "")
        recent.add_row(when, event["state"], key, event["summary"])
    console.print(recent)


@ops_app.command()
def flower(
    port: Annotated[int, typer.Option(help="where Flower listens")] = 5555,
    address: Annotated[str, typer.Option(help="the address Flower binds")] = "127.0.0.1",
) -> None:
    """Flower over the configured broker: every stage of every step, micro-batched
    inference included, its arguments the step's names only. Its login comes from
    TIERFLEET_FLOWER_BASIC_AUTH (user:password); without one it listens on loopback only."""
    settings = Settings()
    login = settings.flower_basic_auth
    if login is None and address not in LOOPBACK:
        console.print(
            "[red]set TIERFLEET_FLOWER_BASIC_AUTH=user:password to listen beyond loopback[/]"
        )
        raise typer.Exit(2)
    args = ["celery", "-A", "workers.app", "flower", f"--port={port}", f"--address={address}"]
    if login is not None:
        args.append(f"--basic-auth={login.get_secret_value()}")
    console.print(f"Flower on http://{address}:{port} (Prometheus: /metrics)")
    raise typer.Exit(subprocess.call([sys.executable, "-m", *args]))


@ops_app.command()
def batch() -> None:
    """The batch lane: provider batch jobs with their state and age, and the steps parked
    for the next job of each model."""
    from workers.stores.batch_jobs import RedisBatchJobs

    settings = Settings()
    table = load_tier_table(settings.tier_table, settings.price_table)
    with Fleet(settings) as fleet:
        store = RedisBatchJobs(fleet.redis)
        jobs = sorted(store.jobs(), key=lambda j: j.created_at)
        parked = {m: store.pending(m) for m in table.models}
    now = time.time()
    listing = Table(title=f"batch jobs: {len(jobs)}")
    for col in ("job", "model", "provider", "state", "age", "provider batch id"):
        listing.add_column(col)
    for job in jobs:
        age = f"{now - job.created_at:.0f} s"
        listing.add_row(
            job.job_id, job.model, job.provider, job.state, age, job.provider_batch_id or ""
        )
    console.print(listing)
    waiting = {m: n for m, n in parked.items() if n}
    console.print(
        "parked for the next job: "
        + (", ".join(f"{m} {n}" for m, n in waiting.items()) if waiting else "none")
    )
