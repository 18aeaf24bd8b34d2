"""The wire of tierfleet: everything two processes must agree on to pass an agent step along.

Here live the message schema (a frozen pydantic ``AgentStep`` inside an append-only
``Envelope``), the queue topology (ingress, stage queues, one queue per tier and lane, the
dead-letter queue), the settings read once from the environment, the Celery app factory and
``bus``, which addresses the next stage by name. Nothing here decides anything or touches a
model: that is ``policies`` and ``workers``.
"""
