"""A step whose message the broker lost is found, not silent: every step is noted in flight
at submit, finalize clears it, and ``Fleet.lost`` lists what stays without a result."""

import pytest
import redis

from producers.fleet import Fleet
from queues import keys
from queues.messages import StepStatus
from queues.topology import INGRESS
from tests.integration.conftest import settings_for
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration


def test_an_answered_step_leaves_nothing_in_flight(fleet):
    step = make_step()
    [result] = fleet.wait([fleet.submit(step)], timeout=60)
    assert result.status is StepStatus.ok
    assert fleet.redis.zscore(keys.INFLIGHT, keys.result_id("acme", step.step_id)) is None
    assert keys.result_id("acme", step.step_id) not in fleet.lost(older_than_s=0)


def test_a_message_lost_by_the_broker_is_reported(redis_server):
    # No workers on this db: the message is dropped from its queue as a SIGKILL at the
    # instant of a Redis BRPOP would drop it.
    settings = settings_for(redis_server, db=9)
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        step = make_step()
        fleet.submit(step)
        redis.Redis.from_url(settings.broker_url).delete(INGRESS)
        assert fleet.lost(older_than_s=3600) == []  # not yet: it may still be on its way
        assert fleet.lost(older_than_s=0) == [keys.result_id("acme", step.step_id)]
        assert int(fleet.redis.ttl(keys.INFLIGHT)) > 0  # bounded like every key
