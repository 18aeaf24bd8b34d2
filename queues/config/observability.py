"""What operators see: Prometheus metrics from every worker group, Flower's login, and the
fleet's own alert rules (for an embedded fleet with no Prometheus)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr


class ObservabilityConfig(BaseModel):
    # Each worker group serves /metrics on metrics_port (metrics off: no endpoint; values
    # stay in each process's memory).
    # Prefork children write to files under metrics_dir, which the group's main process
    # reads at every scrape (prometheus-client's multiprocess mode); None: a fresh temporary
    # folder per worker. The folder is emptied at start: what a stopped worker counted is
    # gone, as Prometheus expects of a restarted process.
    metrics: bool = True
    metrics_port: int = Field(default=9808, ge=1, le=65535)
    metrics_address: str = "0.0.0.0"
    metrics_dir: Path | None = None
    # Label cardinality: past this many distinct values of one label (tenant, agent,
    # workflow, task kind, model) in one process, further values are counted as "other".
    metrics_label_values: int = Field(default=50, ge=1)
    # Flower's login (user:password); `tierfleet flower` refuses to start without one unless
    # it listens on loopback only.
    flower_basic_auth: SecretStr | None = None
    # The fleet's own alert evaluation (workers/alerting.py, policies/alerts.py): every
    # alert_interval_s (0: off) one finalize worker judges the ledger's last alert_window_s
    # against the alert_trailing_s before it.
    alert_interval_s: float = Field(default=15.0, ge=0)
    alert_window_s: float = Field(default=300.0, gt=0)
    alert_trailing_s: float = Field(default=3600.0, gt=0)
    # Thresholds (policies/alerts.py AlertThresholds): P95 step latency per lane, seconds;
    # the oldest waiting message of a live lane's queue, seconds.
    alert_latency_p95_s: dict[str, float] = Field(
        default_factory=lambda: {"interactive": 10.0, "standard": 60.0, "batch": 86_400.0}
    )
    alert_queue_age_s: float = Field(default=60.0, gt=0)
