"""The Celery app factory: Settings in, a configured app out. Connects to nothing."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from queues.settings import Settings
from queues.topology import BATCH, BATCH_POLL_TASK, INGRESS, declare_queues

UNACKED_MUTEX_EXPIRE_S = 10


def transport_options(settings: Settings) -> dict[str, object]:
    if not settings.broker_is_redis:
        # RabbitMQ tracks deliveries itself (a dead consumer's messages are requeued at once,
        # marked redelivered); publisher confirms: a send returns once the broker has it.
        return {"confirm_publish": True}
    return {
        # How long a dead worker's messages stay unacknowledged before they go back to their
        # queues; live workers renew their leases (workers/lease.py), and every worker
        # sweeps for expired ones each unacked_restore_interval_s.
        "visibility_timeout": settings.visibility_timeout_s,
        "unacked_restore_interval": settings.unacked_restore_interval_s,
        "unacked_restore_throttle": 1,
        # The sweep runs under a Redis lock; a worker killed mid-sweep leaves it held until it
        # expires, and kombu's 5-minute default would strand every dead worker's messages that
        # long. Each put-back is its own WATCHed transaction, so two sweeps overlapping after
        # an early expiry cannot restore a message twice.
        "unacked_mutex_expire": UNACKED_MUTEX_EXPIRE_S,
        # Poll a worker's queues in the order given (-Q): lanes drain interactive first.
        "queue_order_strategy": "priority",
    }


def create_app(settings: Settings, tiers: Sequence[str]) -> Celery:
    app = Celery("tierfleet", broker=settings.broker_url, backend=settings.backend_url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Late acks + requeue on a lost worker: a crash redelivers the step, and finalize is
        # idempotent, so nothing is lost and nothing is counted twice.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Only finalize stores a result (under the step's own id); stage hops store nothing.
        task_ignore_result=True,
        result_expires=settings.result_ttl_s,
        result_extended=True,
        task_queues=declare_queues(tiers, settings.lanes_by_priority),
        task_default_queue=INGRESS,
        task_create_missing_queues=False,
        task_send_sent_event=False,
        worker_send_task_events=settings.task_events,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options(settings),
        # Beat sends the batch lane's poll; a poll nobody took in time is dropped, not piled up.
        beat_schedule={
            "tierfleet-batch-poll": {
                "task": BATCH_POLL_TASK,
                "schedule": settings.batch_poll_interval_s,
                "options": {"queue": BATCH, "expires": max(1.0, settings.batch_poll_interval_s)},
            }
        },
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app
