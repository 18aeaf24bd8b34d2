"""Tool output as records: a lossless compact rendering of JSON, and query-aware extraction.

Agents' tool outputs are mostly JSON whose keys repeat in every record. ``render_lines`` writes
the same data as ``key: value`` lines and ``|`` tables (one header, one row per record), which
keeps every value and cuts about a third of the tokens. ``extract`` then keeps, within a
token budget, the records a request needs: those naming one of its identifiers or numbers,
those whose field the request names, then the most relevant by shared words; it says what it
left out, listing the omitted records' identifiers.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from policies.facts import TOKEN, content_words, facts_in, is_fact

MAX_LISTED_IDS = 30  # omitted records' identifiers named in the note, at most


@dataclass(frozen=True)
class Line:
    text: str
    record: bool  # a key/value line or a table row; else a caption or header kept for context
    key: str = ""  # the field a key/value line holds, or the table's caption


def parse_json(text: str) -> Any | None:
    """The JSON value of a tool output that is an object or array; None for anything else."""
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.replace("\n", "\\n")
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _keyed_records(value: Any) -> bool:
    """A dict of records keyed by id ({"card_1": {...}, "card_2": {...}})."""
    return (
        isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())
    )


def _table(records: Sequence[dict[str, Any]], caption: str) -> list[Line]:
    rows = [_flatten(r) for r in records]
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    lines = [Line("|".join(columns), record=False, key=caption)]
    for row in rows:
        cells = (_scalar(row[c]).replace("|", "\\|") if c in row else "" for c in columns)
        lines.append(Line("|".join(cells), record=True, key=caption))
    return lines


def _from_keyed(value: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Records keyed by id become rows; the key is a column unless a field already holds it."""
    rows = []
    for key, record in value.items():
        if key in (str(v) for v in record.values()):
            rows.append(record)
        else:
            rows.append({"key": key, **record})
    return rows


def _lines(value: Any, caption: str = "") -> list[Line]:
    if _is_records(value):
        return _table(value, caption)
    if isinstance(value, list) and value and all(_is_records(v) for v in value):
        # Options made of several records (a connecting itinerary): one row per record.
        return _table([{"option": i + 1, **r} for i, opt in enumerate(value) for r in opt], caption)
    if isinstance(value, dict):
        out: list[Line] = []
        for key, inner in value.items():
            label = f"{caption}.{key}" if caption else str(key)
            if _is_records(inner) or _keyed_records(inner):
                out.append(Line(f"{label}:", record=False, key=label))
                out.extend(_lines(_from_keyed(inner) if isinstance(inner, dict) else inner, label))
            elif isinstance(inner, dict) and inner:
                out.extend(_lines(inner, label))
            elif isinstance(inner, list) and not any(isinstance(v, dict | list) for v in inner):
                shown = ", ".join(_scalar(v) for v in inner) if inner else "(none)"
                out.append(Line(f"{label}: {shown}", record=True, key=label))
            else:
                out.append(Line(f"{label}: {_scalar(inner)}", record=True, key=label))
        return out
    if isinstance(value, list):
        return [Line(f"- {_scalar(v)}", record=True, key=caption) for v in value]
    return [Line(_scalar(value), record=True, key=caption)]


def render_lines(text: str) -> list[Line]:
    """A tool output as lines: JSON rendered compactly, any other text line by line."""
    value = parse_json(text)
    if value is None or not isinstance(value, dict | list) or not value:
        return [Line(t, record=True) for t in text.splitlines() if t.strip()]
    return _lines(value)


@dataclass(frozen=True)
class Request:
    """What a tool output is extracted for: the call that asked for it and what the user
    last said."""

    text: str

    @property
    def facts(self) -> set[str]:
        return facts_in(self.text)

    @property
    def words(self) -> set[str]:
        return set(content_words(self.text))


def _named_field(line: Line, words: set[str]) -> bool:
    """The request names this line's field (``price`` names ``prices.economy``)."""
    if not line.key:
        return False
    parts = set(content_words(line.key.replace("_", " ").replace(".", " ")))
    return any(p in words or p.rstrip("s") in words for p in parts if len(p) > 2)


def _identifier(line: Line) -> bool:
    field = line.key.rsplit(".", 1)[-1]
    return line.record and ":" in line.text and (field.endswith("id") or field.endswith("number"))


def _record_id(text: str) -> str | None:
    for token in TOKEN.findall(text):
        if is_fact(token):
            return str(token)
    return None


def extract(
    lines: Sequence[Line], request: Request, budget: int, count: Callable[[list[str]], list[int]]
) -> tuple[str, int]:
    """Keep the records ``request`` needs within ``budget`` tokens; return the text and how
    many records were omitted (0: the whole output fits)."""
    sizes = count([line.text for line in lines])
    if sum(sizes) <= budget:
        return "\n".join(line.text for line in lines), 0
    q_facts, q_words = request.facts, request.words
    records = [i for i, line in enumerate(lines) if line.record]
    words = {i: set(content_words(lines[i].text)) for i in records}
    df = Counter(w for i in records for w in words[i])

    def score(i: int) -> float:
        line = lines[i]
        if facts_in(line.text) & q_facts or _identifier(line) or _named_field(line, q_words):
            return math.inf  # always kept
        return sum(math.log(1 + len(records) / df[w]) for w in words[i] & q_words)

    scores = {i: score(i) for i in records}
    order = sorted(records, key=lambda i: (-scores[i], i))
    kept: set[int] = set()
    used = sum(s for line, s in zip(lines, sizes, strict=True) if not line.record)
    for i in order:
        if scores[i] == math.inf or used + sizes[i] <= budget:
            kept.add(i)
            used += sizes[i]
    if len(kept) == len(records):  # every record is one the request needs
        return "\n".join(line.text for line in lines), 0
    return _assemble(lines, kept), len(records) - len(kept)


def _assemble(lines: Sequence[Line], kept: set[int]) -> str:
    out: list[str] = []
    omitted: list[str] = []
    for i, line in enumerate(lines):
        if not line.record or i in kept:
            out.append(line.text)
        else:
            ident = _record_id(line.text)
            if ident:
                omitted.append(ident)
    dropped = sum(1 for i, line in enumerate(lines) if line.record and i not in kept)
    named = ", ".join(omitted[:MAX_LISTED_IDS]) + (" ..." if len(omitted) > MAX_LISTED_IDS else "")
    note = f"[{dropped} of {sum(line.record for line in lines)} records omitted as not matching"
    out.append(f"{note} the request{': ' + named if named else ''}]")
    return "\n".join(out)


def subject_of(lines: Sequence[Line]) -> str | None:
    """The entity a tool output is about: its first identifier line (``reservation_id: X``)
    among the first three."""
    for line in lines[:3]:
        if _identifier(line):
            return line.text
    return None


def _captions(lines: Sequence[Line]) -> dict[str, list[str]]:
    """Each table's caption and column header lines, by the table's key."""
    out: dict[str, list[str]] = {}
    for line in lines:
        if not line.record:
            out.setdefault(line.key, []).append(line.text)
    return out


def changes(base: Sequence[Line], new: Sequence[Line]) -> list[str]:
    """``new`` told against ``base``, an earlier output about the same entity: the lines that
    are new or changed (a table's rows under its caption and header), then what is gone. A
    table whose columns changed is shown whole."""
    old_tables, tables = _captions(base), _captions(new)
    redrawn = {key for key, head in tables.items() if old_tables.get(key, head) != head}
    before = {(line.key, line.text) for line in base}
    after = {(line.key, line.text) for line in new}
    out: list[str] = []
    shown: set[str] = set()
    for line in new:
        if line.record and (line.key in redrawn or (line.key, line.text) not in before):
            if line.key in tables and line.key not in shown:
                out.extend(tables[line.key])
                shown.add(line.key)
            out.append(line.text)
    fields = {line.key for line in new if line.record and line.key not in tables}
    for line in base:
        if not line.record or (line.key, line.text) in after or line.key in redrawn:
            continue
        if line.key in old_tables or line.key not in fields:  # a changed field shows above
            out.append(f"no longer: {line.text}")
    return out
