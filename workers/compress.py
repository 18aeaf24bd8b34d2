"""The compress stage (tf.compress): static prefix untouched, recent window kept, bulky tool
results trimmed."""

from __future__ import annotations

from policies.compression import compress
from queues.messages import Envelope
from queues.topology import Stage
from workers.runtime import Runtime


def handle(env: Envelope, rt: Runtime) -> None:
    prompt, report = compress(rt.counter, env.step.messages, rt.compression_plan)
    what = "compressed" if report.changed else "unchanged"
    rt.bus.send(Stage.classify, env.decide("compress", what, report.describe(), prompt=prompt))
