"""Fleet-wide limits on provider calls, held in Redis so that N replicas send at most the
limit, not N times it (a limit kept in process memory is multiplied by the replica count).

- Slots: a sorted set per provider (and per API model, where a limit is set) of the calls
  in flight, each with an expiry, so a worker killed mid-call frees its slot by itself. A
  call takes a slot in every set that has a limit, atomically, or waits for one; past
  ``wait_s`` it gives up with ``GateClosed`` and the step waits on its queue instead.
- Circuit breaker, per provider: ``failures`` transient failures in a row open it for
  ``cooldown_s``; while open, no call is made and steps are sent on with a countdown.
  After the cooldown calls go through again; a success clears the count.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis

from queues import keys
from workers.errors import GateClosed

ACQUIRE = """
-- KEYS: slot sets. ARGV: now, expiry, holder, ttl in ms, then one limit per key.
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  if redis.call('ZCARD', key) >= tonumber(ARGV[4 + i]) then return 0 end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[3])
  redis.call('PEXPIRE', key, ARGV[4])
end
return 1
"""


@dataclass
class RedisProviderGate:
    client: redis.Redis
    provider_limits: Mapping[str, int] = field(default_factory=dict)
    model_limits: Mapping[str, int] = field(default_factory=dict)
    slot_ttl_s: float = 300.0  # longer than any call with its in-call retries
    wait_s: float = 10.0
    failures: int = 5
    cooldown_s: float = 30.0
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._acquire = self.client.register_script(ACQUIRE)

    def _limits(self, provider: str, model: str | None) -> list[tuple[str, int]]:
        out = []
        if provider in self.provider_limits:
            out.append((keys.gate_slots(provider), self.provider_limits[provider]))
        if model is not None and model in self.model_limits:
            out.append((keys.gate_slots(provider, model), self.model_limits[model]))
        return out

    def check_circuit(self, provider: str) -> None:
        until = self.client.hget(keys.gate_breaker(provider), "open_until")
        left = float(until) - self.clock() if until else 0.0
        if left > 0:
            raise GateClosed(f"{provider}: circuit open after repeated failures", left)

    @contextmanager
    def slot(self, provider: str, model: str | None = None) -> Iterator[None]:
        """Hold one call's slot (after checking the breaker); raises GateClosed instead."""
        self.check_circuit(provider)
        limits = self._limits(provider, model)
        if not limits:
            yield
            return
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_s
        names = [k for k, _ in limits]
        while True:
            now = self.clock()
            ttl_ms = int(self.slot_ttl_s * 1000)
            args: list[str | float] = [now, now + self.slot_ttl_s, holder, ttl_ms]
            args += [n for _, n in limits]
            if int(self._acquire(keys=names, args=args)):
                break
            if time.monotonic() >= deadline:
                caps = ", ".join(f"{n} at {k}" for k, n in limits)
                raise GateClosed(f"{provider}: at its fleet-wide limit ({caps} in flight)", 1.0)
            time.sleep(random.uniform(0.01, 0.05))
        try:
            yield
        finally:
            for name in names:
                self.client.zrem(name, holder)

    def failed(self, provider: str) -> None:
        key = keys.gate_breaker(provider)
        count = int(self.client.hincrby(key, "failures", 1))
        self.client.expire(key, int(self.cooldown_s * 10) + 60)
        if count >= self.failures:
            self.client.hset(
                key, mapping={"open_until": self.clock() + self.cooldown_s, "failures": 0}
            )

    def succeeded(self, provider: str) -> None:
        self.client.hdel(keys.gate_breaker(provider), "failures")
