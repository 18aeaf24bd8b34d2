"""Whether a worker's stages can run with its settings, checked at start (a worker that
cannot refuses to start, rather than dead-letter every step): artifacts readable, models and
their packages present."""

from __future__ import annotations

import importlib.util
from collections.abc import Collection
from pathlib import Path

from policies.tiers import load_tier_table
from queues.settings import Settings
from queues.topology import CLASSIFY, COMPRESS, INFER_PREFIX
from workers.engines.transformers_engine import SHIPPED
from workers.errors import PermanentError
from workers.runtime import acceptance_artifact, local_models, router_artifact


def configuration_problem(settings: Settings, queues: Collection[str]) -> str | None:
    """Why the stages on ``queues`` could not run with these settings, or None. Only the
    small things are loaded to check (artifacts); a compressor model is looked for."""
    try:
        if settings.router == "learned" and CLASSIFY in queues:
            router_artifact(settings)
        if any(q.startswith(INFER_PREFIX) for q in queues):
            acceptance_artifact(settings)
    except PermanentError as exc:
        return str(exc)
    problem = local_engine_problem(settings, queues)
    if problem:
        return problem
    path = settings.compressor_model_path
    if COMPRESS in queues and path is not None:
        if not path.exists():
            return f"TIERFLEET_COMPRESSOR_MODEL_PATH {path} does not exist"
        if importlib.util.find_spec("llmlingua") is None:
            return "TIERFLEET_COMPRESSOR_MODEL_PATH needs the `llmlingua` extra"
    return None


def local_engine_problem(settings: Settings, queues: Collection[str]) -> str | None:
    """Why the local models of the tiers on ``queues`` could not load, or None."""
    table = load_tier_table(settings.tier_table, settings.price_table)
    for model in local_models(table, queues):
        assert model.local is not None
        path = model.local.path
        gpu = model.local.engine == "vllm"
        needs = ("vllm",) if gpu else ("torch", "transformers")
        missing = [m for m in needs if importlib.util.find_spec(m) is None]
        if missing:
            how = "pip install 'tierfleet[local-gpu]'" if gpu else "`make install-local-cpu`"
            return f"{model.name} needs {', '.join(missing)}: {how}"
        if path != SHIPPED and not Path(path).exists():
            return f"{model.name}: the model {path} does not exist"
    return None
