"""What the command line's modules share: the console, the --out option, writing figures."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()

OutOption = Annotated[Path | None, typer.Option("--out", help="write the figures as JSON here")]


def stop_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def write_figures(out: Path | None, figures: dict[str, Any]) -> None:
    if out is not None:
        out.write_text(json.dumps(figures, indent=2))
        console.print(f"written to {out}")
