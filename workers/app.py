"""The target of ``celery -A workers.app worker -Q <queues>``: settings from the environment,
read once here, at the edge."""

from queues.settings import Settings
from workers.wiring import build_worker_app

app = build_worker_app(Settings())
