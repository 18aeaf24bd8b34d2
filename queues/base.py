"""What every model on the wire is made of: frozen pydantic models that refuse unknown
fields, and the token counts a call or a step uses, written once (``Usage``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


USAGE_FIELDS = ("tokens_in", "tokens_out", "tokens_cached", "tokens_cache_write")


class Usage(Frozen):
    """Tokens of one call, or of a step's calls together. A record of a call or a step is a
    ``Usage`` with more fields (its four counts stay flat on the wire)."""

    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    tokens_cached: int = Field(
        default=0, ge=0
    )  # read from the provider's prompt cache; in tokens_in
    tokens_cache_write: int = Field(default=0, ge=0)  # written to it; part of tokens_in

    @property
    def tokens_fresh(self) -> int:
        """Input neither read from nor written to the prompt cache."""
        return self.tokens_in - self.tokens_cached - self.tokens_cache_write

    @property
    def usage(self) -> Usage:
        """The four counts alone, whatever record they belong to."""
        return Usage(**self.usage_fields())

    def usage_fields(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in USAGE_FIELDS}

    @classmethod
    def total(cls, parts: Iterable[Usage]) -> Usage:
        sums = dict.fromkeys(USAGE_FIELDS, 0)
        for part in parts:
            for f in USAGE_FIELDS:
                sums[f] += getattr(part, f)
        return Usage(**sums)


def usage_of(record: Any) -> dict[str, int]:
    """The four counts of anything that carries them (a provider's completion, a record)."""
    return {f: int(getattr(record, f, 0) or 0) for f in USAGE_FIELDS}
