"""What tierfleet's users need to test their own code without Redis, Celery workers or a
provider: an in-process fleet (``InProcessFleet``), providers made of plain functions, the
in-memory stores (held to the same contract tests as the Redis ones), a runtime of doubles
for calling one stage's handler, and a semantic cache without a model."""

from workers.testing.in_process import InProcessBus, InProcessFleet
from workers.testing.providers import Answerer, BatchFunctionProvider, FunctionProvider
from workers.testing.runtime import (
    TEST_SEALER,
    RecordingBus,
    envelope,
    infer_hops,
    make_runtime,
    step,
)
from workers.testing.semantic import (
    MemoryVectorStore,
    WordEmbedder,
    cosine_verifier,
    semantic_layer,
)
from workers.testing.stores import (
    CountingDeliveries,
    DeadSink,
    DictCache,
    ListLedger,
    MemoryBatchJobs,
    MemoryBudgets,
    MemoryStores,
    MemorySummaries,
    ResultSink,
    SetGuard,
)

__all__ = [
    "TEST_SEALER",
    "Answerer",
    "BatchFunctionProvider",
    "CountingDeliveries",
    "DeadSink",
    "DictCache",
    "FunctionProvider",
    "InProcessBus",
    "InProcessFleet",
    "ListLedger",
    "MemoryBatchJobs",
    "MemoryBudgets",
    "MemoryStores",
    "MemorySummaries",
    "MemoryVectorStore",
    "RecordingBus",
    "ResultSink",
    "SetGuard",
    "WordEmbedder",
    "cosine_verifier",
    "envelope",
    "infer_hops",
    "make_runtime",
    "semantic_layer",
    "step",
]
