"""The routing config: the tier and price tables, the router, the learned acceptance check
and shadow evaluation. A learned router with no artifact fails when the settings are read."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator


class RoutingConfig(BaseModel):
    # None: the shipped default (policies/tables/default.toml); a bare name such as "local"
    # or "local_gpu": the shipped table of that name.
    tier_table: Path | None = None
    price_table: Path | None = Field(
        default=None, description="your own prices, laid over policies/tables/prices.toml"
    )
    replay_data: Path | None = Field(
        default=None, description="RouterBench-format CSV file or folder for the replay provider"
    )
    tokenizer_encoding: str = "o200k_base"

    # Routing: "rules" (task kind, length, schema) or "learned" (the artifact that
    # `tierfleet train router` writes; the cheapest model whose predicted success >= target).
    router: str = Field(default="rules", pattern="^(rules|learned)$")
    router_artifact: Path | None = None
    router_target: float = Field(default=0.8, ge=0.0, le=1.0)
    # The learned acceptance check (`tierfleet train acceptance`): where a provider reports
    # no confidence, P(answer right | prompt, answer) stands in, judged against each tier's
    # accept_min_confidence.
    acceptance_artifact: Path | None = None
    # Raw confidences made calibrated per model (`tierfleet train calibration` writes it
    # from recorded outcomes); a model it does not list keeps its raw confidence.
    calibration_artifact: Path | None = None
    # The quality knob: the confidence an answer below the top tier needs to be accepted,
    # for every such tier (unset: each tier's accept_min_confidence from the table). Higher
    # buys quality with cost; `tierfleet demo` prints what each setting buys.
    quality: float | None = Field(default=None, ge=0.0, le=1.0)
    # Shadow evaluation: this share of answers accepted below the top tier is also put to
    # the top tier's model; agreement goes to the shadow stream (`tierfleet shadow`).
    shadow_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    shadow_stream: str = "tf:shadow"

    @model_validator(mode="after")
    def _learned_router_needs_its_artifact(self) -> RoutingConfig:
        if self.router == "learned" and self.router_artifact is None:
            raise ValueError(
                "TIERFLEET_ROUTER=learned needs TIERFLEET_ROUTER_ARTIFACT "
                "(written by `tierfleet train router`)"
            )
        return self
