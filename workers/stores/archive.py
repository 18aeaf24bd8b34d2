"""The archive: where the oldest ledger, shadow and dead-letter records go before Redis lets
go of them, so the streams and ``tf.dead`` stay bounded and nothing billable is trimmed unseen.

Append-only JSON Lines, one file per UTC day under ``<archive_dir>/<source>/``. A batch is
written and fsynced *before* it is trimmed from Redis: a crash in between writes the batch
again on the next run, never loses it, so readers de-duplicate (the ledger by stream id, dead
letters by their identity). A torn last line (a crash mid-write) is skipped by readers and
closed off by the next writer; its record is still in Redis, to be archived again."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("tierfleet.archive")


class JsonlArchive:
    def __init__(self, root: Path, source: str) -> None:
        # One folder per source; the name keeps to characters every filesystem accepts.
        self.dir = root / re.sub(r"[^A-Za-z0-9_.-]", "_", source)

    def append(self, records: list[dict[str, Any]], now: float | None = None) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        day = time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now))
        path = self.dir / f"{day}.jsonl"
        with open(path, "ab+") as f:
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a torn line from a crash: close it off
                    f.write(b"\n")
            for record in records:
                f.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        return path

    def read(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest file first, in the order written."""
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("*.jsonl")):
            with open(path, "rb") as f:
                for number, line in enumerate(f, 1):
                    try:
                        yield json.loads(line)
                    except ValueError:
                        log.warning("archive_torn_line", file=str(path), line=number)

    def count(self) -> int:
        return sum(1 for _ in self.read())


def archive_for(root: Path | None, source: str) -> JsonlArchive | None:
    """The archive of one stream or queue, or None where archiving is off."""
    return None if root is None else JsonlArchive(root, source)
