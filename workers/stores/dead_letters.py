"""Dead letters: parked on the ``tf.dead`` queue (a Redis list that no worker drains), each
with the reason, the stage and the envelope, to be listed and replayed by an operator."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from kombu.entity import Exchange, Queue

from queues.topology import DEAD


@dataclass(frozen=True)
class DeadLetter:
    raw: bytes  # the broker's stored message, used to remove exactly this one on replay
    record: dict[str, Any]


def dead_record(
    *, step_id: str | None, stage: str, reason: str, envelope: str | None, raw: str | None = None
) -> dict[str, Any]:
    return {
        "step_id": step_id,
        "stage": stage,
        "reason": reason,
        "at": time.time(),
        "envelope": envelope,
        "raw": raw,
    }


class BrokerDeadLetters:
    """Publishes dead letters as plain JSON messages on the dead-letter queue."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.queue = Queue(DEAD, Exchange("tierfleet", type="direct"), routing_key=DEAD)

    def put(self, record: dict[str, Any]) -> None:
        with self.app.producer_or_acquire() as producer:
            producer.publish(
                record,
                exchange=self.queue.exchange,
                routing_key=DEAD,
                serializer="json",
                declare=[self.queue],
                retry=True,
            )


def _decode(raw: bytes) -> dict[str, Any]:
    message = json.loads(raw)
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    decoded: dict[str, Any] = json.loads(body)
    return decoded


def list_dead(client: redis.Redis, limit: int = 1000) -> Iterator[DeadLetter]:
    """Oldest first. Reads the queue's Redis list without consuming it."""
    raws: Any = client.lrange(DEAD, -limit, -1)
    for raw in reversed(raws):
        yield DeadLetter(raw, _decode(raw))


def remove_dead(client: redis.Redis, letter: DeadLetter) -> bool:
    return bool(client.lrem(DEAD, 1, letter.raw))  # type: ignore[arg-type]
