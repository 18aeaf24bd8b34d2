"""``tierfleet train router|acceptance|cache|cross-encoder``: fit the learned artifacts the
workers load (the learned router, the acceptance check, the cache's hit verifier, its
cross-encoder) on recorded data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from producers.cli.common import console
from producers.recorded import DEFAULT_QQP_PAIRS

train_app = typer.Typer(help="Fit the learned artifacts on recorded data.", no_args_is_help=True)

PairsOption = Annotated[
    Path, typer.Option(help="labelled pairs: JSON lines {text_a, text_b, label}, gzip or plain")
]
BoundOption = Annotated[
    float, typer.Option(help="the most wrong hits allowed, as a share of served hits")
]


CrossEncoderOption = Annotated[
    Path | None,
    typer.Option(
        help="a folder from `tierfleet train cross-encoder` on the same pairs: blend it in"
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
    from producers.training.cache_verifier import PairVectors, blend_cross_verifier, train_verifier
    from producers.training.pairs import read_pairs
    from workers.ml.cross_encoder import OnnxCrossEncoder, save_cross_verifier, trained_pair_ids
    from workers.ml.embedder import MiniLMEmbedder

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
    """Fine-tune MiniLM-L6 as a cross-encoder on the pairs `train cache` fits on (not its
    calibration pairs) and export it to int8 ONNX. Needs torch (pip install
    'tierfleet[cross-encoder]'): a GPU takes about two minutes, two CPU cores some hours.
    Then pass the folder to `train cache --cross-encoder` or `bench cache --cross-encoder`."""
    from producers.training.cross_encoder import CrossTraining, fine_tune
    from producers.training.pairs import bench_split, fit_split, read_pairs

    rows = read_pairs(pairs)
    fit, _ = fit_split(bench_split(rows)[0] if for_bench else rows)
    training = CrossTraining(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate)
    try:
        fine_tune(fit, out, training, device=device, log=console.print)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    console.print(f"cross-encoder -> {out}/ ({len(fit)} pairs)")


def _outcome_rows(data: Path) -> list[Any]:
    from workers.providers.replay import read_routerbench

    try:
        rows = list(read_routerbench(data))
    except (OSError, KeyError, ValueError) as exc:
        console.print(f"[red]cannot read {data}:[/] {exc}")
        raise typer.Exit(2) from None
    if not rows:
        console.print(f"[red]no outcome rows in {data}[/]")
        raise typer.Exit(2)
    return rows


def train_acceptance_cmd(
    data: Annotated[Path, typer.Option(help="RouterBench-format CSV file or folder")],
    out: Annotated[Path, typer.Option(help="where to write the artifact (JSON)")],
) -> None:
    """Fit the learned acceptance check (P(answer right | prompt, answer) per model) on
    recorded answers; set TIERFLEET_ACCEPTANCE_ARTIFACT to the file it writes."""
    from producers.training.router import save_router, train_acceptance

    rows = _outcome_rows(data)
    artifact = train_acceptance(rows, trained_on=f"{data} ({len(rows)} prompts)")
    save_router(artifact, out)
    console.print(f"acceptance check {artifact.version}: {len(artifact.models)} models -> {out}")


def train_router_cmd(
    data: Annotated[Path, typer.Option(help="RouterBench-format CSV file or folder")],
    out: Annotated[Path, typer.Option(help="where to write the router artifact (JSON)")],
    max_features: Annotated[int, typer.Option(help="TF-IDF vocabulary size")] = 5000,
) -> None:
    """Fit the learned router on recorded model outcomes; set TIERFLEET_ROUTER=learned and
    TIERFLEET_ROUTER_ARTIFACT to the file it writes."""
    from producers.training.router import save_router, train_router

    rows = _outcome_rows(data)
    artifact = train_router(
        rows, trained_on=f"{data} ({len(rows)} prompts)", max_features=max_features
    )
    save_router(artifact, out)
    console.print(
        f"router {artifact.version}: {len(artifact.models)} models, "
        f"{len(artifact.features.vocabulary)} features, {len(rows)} prompts -> {out}"
    )


def train_calibration_cmd(
    out: Annotated[Path, typer.Option(help="where to write the calibration (JSON)")] = Path(
        "calibration.json"
    ),
) -> None:
    """Fit each model's confidence calibration on the fleet's recorded outcomes (labelled
    steps in the ledger, and shadow evaluation's agreement); set
    TIERFLEET_CALIBRATION_ARTIFACT to the file it writes."""
    from producers.fleet import Fleet
    from producers.report import unique_steps
    from producers.training.calibration import write_calibration
    from queues.settings import Settings

    with Fleet(Settings()) as fleet:
        doc = write_calibration(unique_steps(fleet.ledger()), fleet.shadow_records(), out)
    for model, n in doc["outcomes"].items():
        fitted = "fitted" if model in doc["models"] else f"too few (< {doc['min_outcomes']})"
        console.print(f"{model}: {n} recorded outcomes, {fitted}")
    console.print(f"calibration for {len(doc['models'])} models -> {out}")


train_app.command("router")(train_router_cmd)
train_app.command("calibration")(train_calibration_cmd)
train_app.command("acceptance")(train_acceptance_cmd)
train_app.command("cache")(train_cache)
train_app.command("cross-encoder")(train_cross_encoder)

train_commands: dict[str, Callable[..., Any]] = {
    "train-router": train_router_cmd,
    "train-acceptance": train_acceptance_cmd,
    "train-cache": train_cache,
    "train-cross-encoder": train_cross_encoder,
}
