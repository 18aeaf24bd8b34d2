"""How messages are delivered, retried and batched: micro-batches, retries and countdowns,
the Redis visibility timeout, redelivery limits, results' lifetime."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DeliveryConfig(BaseModel):
    batch_flush_every: int = 16
    batch_flush_interval_s: float = 0.005  # a lone step waits this long for company
    # Every worker sends task events (what Flower shows, micro-batched inference included:
    # workers/batching.py); off saves a broker publish per task state.
    task_events: bool = True

    # The lanes' starvation bound (Redis broker, workers/lane_guard.py): a message waiting
    # longer than its lane's bound moves to the front of the lane above; checked every
    # lane_guard_interval_s.
    lane_max_wait_s: dict[str, float] = Field(
        default_factory=lambda: {"standard": 30.0, "batch": 300.0}
    )
    lane_guard_interval_s: float = Field(default=1.0, gt=0)

    max_transient_retries: int = 4
    retry_backoff_s: float = 0.5
    # A countdown (a retry's wait, a provider's Retry-After) is never longer than this.
    max_countdown_s: float = Field(default=900.0, gt=0.0)
    # Redis broker: a message unacknowledged this long goes back to its queue. Live workers
    # renew the lease on what they hold every quarter of it (workers/lease.py), so it bounds
    # how long a killed worker strands its steps, not how long a call may take. Any live
    # worker looks for such messages every unacked_restore_interval_s.
    visibility_timeout_s: int = Field(default=60, ge=2)
    unacked_restore_interval_s: int = Field(default=10, ge=1)
    # A message delivered this many times without finishing (its worker died each time: a
    # step that kills its worker) is dead-lettered instead of delivered again.
    max_deliveries: int = Field(default=3, ge=1)
    result_ttl_s: int = 7 * 24 * 3600
