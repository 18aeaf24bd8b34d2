"""The command line's cache commands: train the hit verifier, invalidate a prompt version,
and sample semantic hits from the ledger for review."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from producers.cli_common import console
from producers.workloads import DEFAULT_QQP_PAIRS
from queues.settings import Settings

cache_app = typer.Typer(help="The exact and semantic caches.", no_args_is_help=True)

PairsOption = Annotated[
    Path, typer.Option(help="labelled pairs: JSON lines {text_a, text_b, label}, gzip or plain")
]
BoundOption = Annotated[
    float, typer.Option(help="the most wrong hits allowed, as a share of served hits")
]


CrossEncoderOption = Annotated[
    Path | None,
    typer.Option(
        help="a folder from `tierfleet train-cross-encoder` on the same pairs: blend it in"
    ),
]


def train_cache(
    pairs: PairsOption = DEFAULT_QQP_PAIRS,
    out: Annotated[Path, typer.Option(help="where to write the verifier")] = Path(
        "cache-verifier.npz"
    ),
    max_wrong_rate: BoundOption = 0.05,
    cross_encoder: CrossEncoderOption = None,
    limit: Annotated[int | None, typer.Option(help="use only the first N pairs")] = None,
) -> None:
    """Train the semantic cache's hit verifier on labelled question pairs and choose its
    threshold on held-out pairs for the bound; set TIERFLEET_CACHE_VERIFIER to the file."""
    from policies.cache_verifier import save_verifier
    from producers.pairs import read_pairs
    from producers.train_cache import PairVectors, blend_cross_verifier, train_verifier
    from workers.cross_encoder import OnnxCrossEncoder, save_cross_verifier, trained_pair_ids
    from workers.embedder import MiniLMEmbedder

    rows = read_pairs(pairs)
    rows = rows[:limit] if limit else rows
    embedder = MiniLMEmbedder()
    with console.status(f"embedding {len(rows)} pairs"):
        vectors = PairVectors(embedder, rows)
    verifier = train_verifier(
        rows,
        vectors,
        embedder=embedder.id,
        max_wrong_rate=max_wrong_rate,
    )
    c = verifier.calibration
    if cross_encoder is not None:
        encoder = OnnxCrossEncoder.from_dir(cross_encoder)
        with console.status("scoring the calibration pairs with the cross-encoder"):
            try:
                blended = blend_cross_verifier(
                    verifier,
                    rows,
                    vectors,
                    encoder,
                    trained_pair_ids(cross_encoder),
                    max_wrong_rate,
                )
            except ValueError as exc:
                console.print(f"[red]{exc}[/]")
                raise typer.Exit(1) from None
        save_cross_verifier(blended, encoder, out)
        c = blended.calibration
    else:
        save_verifier(verifier, out)
    console.print(
        f"verifier -> {out}: threshold {c.threshold:.4f} for at most {max_wrong_rate:.0%} "
        f"wrong hits; on {c.pairs} held-out pairs: precision {c.precision:.3f}, "
        f"recall {c.recall:.3f}"
    )


def train_cross_encoder(
    pairs: PairsOption = DEFAULT_QQP_PAIRS,
    out: Annotated[Path, typer.Option(help="the folder to write the model to")] = Path(
        "cross-encoder"
    ),
    for_bench: Annotated[
        bool,
        typer.Option(help="train on what `bench cache` trains on (it tests on the rest)"),
    ] = False,
    epochs: Annotated[int, typer.Option(min=1)] = 5,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    learning_rate: float = 5e-5,
    device: Annotated[str | None, typer.Option(help="cuda or cpu (default: cuda if any)")] = None,
) -> None:
    """Fine-tune MiniLM-L6 as a cross-encoder on the pairs `train-cache` fits on (not its
    calibration pairs) and export it to int8 ONNX. Needs torch (pip install
    'tierfleet[cross-encoder]'): a GPU takes about two minutes, two CPU cores some hours.
    Then pass the folder to `train-cache --cross-encoder` or `bench cache --cross-encoder`."""
    from producers.pairs import bench_split, fit_split, read_pairs
    from producers.train_cross_encoder import CrossTraining, fine_tune

    rows = read_pairs(pairs)
    fit, _ = fit_split(bench_split(rows)[0] if for_bench else rows)
    training = CrossTraining(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate)
    try:
        fine_tune(fit, out, training, device=device, log=console.print)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    console.print(f"cross-encoder -> {out}/ ({len(fit)} pairs)")


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
        hits = [e for e in unique_steps(fleet.ledger()) if e.get("semantic")]
    picked = random.Random(seed).sample(hits, min(sample, len(hits)))
    table = Table(title=f"{len(picked)} of {len(hits)} semantic hits")
    for column in ("step", "cached from", "cosine", "verifier", "question", "cached question"):
        table.add_column(column)
    for e in picked:
        s = e["semantic"]
        table.add_row(
            e["step_id"],
            str(e["cached_from"]),
            f"{s['similarity']:.3f}",
            f"{s['verifier_score']:.3f}",
            s["question"][:80],
            s["cached_question"][:80],
        )
    console.print(table)
    if out is not None:
        out.write_text("".join(json.dumps(e) + "\n" for e in picked))
        console.print(f"written to {out}")
