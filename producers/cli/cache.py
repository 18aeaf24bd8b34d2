"""The command line's cache commands: invalidate a prompt version, and sample semantic hits
from the ledger for review."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from producers.cli.common import console
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
    sample: Annotated[int, typer.Option(help="how many semantic hits to show")] = 20,
    seed: Annotated[int | None, typer.Option(help="fix the sample")] = None,
    out: Annotated[Path | None, typer.Option(help="write the sample as JSON lines")] = None,
) -> None:
    """A random sample of semantic hits from the ledger, each with both questions, its
    similarity and verifier score, for a person to judge."""
    from producers.fleet import Fleet
    from producers.report import unique_steps

    with Fleet(Settings()) as fleet:
        hits = [e for e in unique_steps(fleet.ledger()) if e.semantic]
    picked = random.Random(seed).sample(hits, min(sample, len(hits)))
    table = Table(title=f"{len(picked)} of {len(hits)} semantic hits")
    for column in ("step", "cached from", "cosine", "verifier", "question", "cached question"):
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
        out.write_text("".join(json.dumps(e) + "\n" for e in picked))
        console.print(f"written to {out}")
