"""The starvation bound of the lanes on a Redis broker. Workers drain their queues in lane
order (interactive, standard, batch), so a steady stream of interactive steps would hold
standard and batch steps back forever. Every ``lane_guard_interval_s`` each worker looks at
the oldest message of each lower lane it drains: one that has waited past its lane's bound
(``lane_max_wait_s``) is moved to the end of the lane above that is served next, atomically
(one Lua script; several workers may run it at once). A moved message keeps its place in
line above: it is served before everything waiting there, which it has outwaited.

The age is the ``tf_sent_at`` header every message carries (``queues/bus.py``); a message
without one (sent by an older version) is left where it is. RabbitMQ orders by priority
within one queue per stage and has no such guard (README, "Running the worker groups
yourself")."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

import redis
import structlog

from queues.bus import SENT_AT
from queues.topology import lane_ladders

log = structlog.get_logger("tierfleet.lanes")

# KEYS: the lower lane's list, the list of the lane above. ARGV: now, the bound in seconds,
# the most messages to move. kombu pushes on the left and takes from the right: the oldest
# message is the last element, and the next one taken from the lane above is its last too.
# The starved messages are pushed back oldest last, so they are served oldest first. The
# header's name is the bus's (SENT_AT), checked when the module loads.
PROMOTE = """
local moved = {}
while #moved < tonumber(ARGV[3]) do
  local raw = redis.call('LINDEX', KEYS[1], -1)
  if not raw then break end
  local ok, message = pcall(cjson.decode, raw)
  local sent = ok and type(message) == 'table' and type(message['headers']) == 'table'
    and tonumber(message['headers']['tf_sent_at'])
  if not sent or tonumber(ARGV[1]) - sent < tonumber(ARGV[2]) then break end
  table.insert(moved, redis.call('RPOP', KEYS[1]))
end
for i = #moved, 1, -1 do redis.call('RPUSH', KEYS[2], moved[i]) end
return #moved
"""
assert f"['{SENT_AT}']" in PROMOTE


class LaneGuard:
    def __init__(
        self,
        client: redis.Redis,
        queues: Sequence[str],
        max_wait_s: Mapping[str, float],
        every_s: float,
        clock: Callable[[], float] = time.time,
        batch: int = 100,
    ) -> None:
        self.client, self.max_wait_s, self.every_s = client, max_wait_s, every_s
        self.ladders = [
            (lo, hi, lane) for lo, hi, lane in lane_ladders(queues) if lane in max_wait_s
        ]
        self.clock, self.batch = clock, batch
        self._promote = client.register_script(PROMOTE)
        self._stop = threading.Event()

    def sweep(self) -> int:
        """Move every starved message up one lane; how many moved."""
        moved = 0
        for lower, upper, lane in self.ladders:
            bound = self.max_wait_s[lane]
            n = int(self._promote(keys=[lower, upper], args=[self.clock(), bound, self.batch]))
            if n:
                log.info("lane_promoted", queue=lower, to=upper, messages=n, waited_over_s=bound)
            moved += n
        return moved

    def run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.sweep()
            except redis.RedisError as exc:  # the broker blinked: the next sweep catches up
                log.warning("lane_guard_failed", error=f"{type(exc).__name__}: {exc}")

    def start(self) -> LaneGuard:
        if self.ladders:
            threading.Thread(target=self.run, name="tierfleet-lanes", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
