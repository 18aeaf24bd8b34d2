"""The command line's cache commands: invalidate a prompt version, and audit the semantic
cache (its running wrong-hit estimate, the threshold it serves at, a sample of its hits)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from producers.cli.common import console
from producers.report_audits import render_audits, summarize_audits
from queues.records import AuditRecord
from queues.settings import Settings

cache_app = typer.Typer(help="The exact and semantic caches.", no_args_is_help=True)


@cache_app.command("invalidate")
def invalidate(
    prompt_version: Annotated[str, typer.Option(help="the prompt version to drop (pv-...)")],
    timeout_s: Annotated[float, typer.Option(help="how long to wait for the cache worker")] = 30,
) -> None:
    """Drop every cached answer (exact and semantic) of a prompt version. The cache worker
    does it, as the owner of the embedded store; this waits for its count."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    from producers.fleet import Fleet

    with Fleet(Settings()) as fleet:
        try:
            counts = fleet.invalidate_cache(prompt_version, timeout_s)
        except CeleryTimeout:
            console.print(
                f"[red]no cache worker answered within {timeout_s:.0f} s[/]; the "
                "request stays queued and runs when one starts"
            )
            raise typer.Exit(1) from None
    console.print(
        f"prompt version {prompt_version}: dropped {counts['exact']} exact and "
        f"{counts['semantic']} semantic entries"
    )


@cache_app.command("audit")
def audit(
    sample: Annotated[int, typer.Option(help="how many served semantic hits to show")] = 10,
    seed: Annotated[int | None, typer.Option(help="fix the sample")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="write the judged pairs as labelled pairs (`train cache --pairs`)"),
    ] = None,
) -> None:
    """The semantic cache's running wrong-hit estimate: the share of judged served hits the
    judge called wrong, with its exact 95% interval; the threshold each scorer is served at
    and why; and a sample of served hits for a person to read."""
    from producers.fleet import Fleet
    from producers.report import unique_steps

    with Fleet(Settings()) as fleet:
        records, bounds = fleet.cache_audits()
        hits = [e for e in unique_steps(fleet.ledger()) if e.semantic]
    render_audits(summarize_audits(records, bounds), console)
    picked = random.Random(seed).sample(hits, min(sample, len(hits)))
    table = Table(title=f"{len(picked)} of {len(hits)} served semantic hits")
    for column in ("step", "cached from", "cosine", "score", "question", "cached question"):
        table.add_column(column)
    for e in picked:
        s = e.semantic
        assert s is not None
        table.add_row(
            e.step_id,
            str(e.cached_from),
            f"{s.similarity:.3f}",
            f"{s.verifier_score:.3f}",
            s.question[:80],
            s.cached_question[:80],
        )
    console.print(table)
    if out is not None:
        pairs = [labelled_pair(r) for r in records if r.same is not None]
        out.write_text("".join(json.dumps(p) + "\n" for p in pairs))
        console.print(f"{len(pairs)} judged pairs written to {out} (`train cache --pairs`)")


def labelled_pair(record: AuditRecord) -> dict[str, Any]:
    """A judged pair as `tierfleet train cache` reads pairs (text_a, text_b, label), with
    what the cache knew of it beside: a verifier can be trained on the deployment's own
    traffic."""
    return {
        "text_a": record.question,
        "text_b": record.cached_question,
        "label": int(bool(record.same)),
        "score": record.score,
        "scorer": record.scorer,
        "served": record.served,
        "ts": record.ts,
    }
