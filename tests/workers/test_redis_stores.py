"""The small Redis stores on a real Redis."""

import time

import pytest

from queues.topology import DEAD
from workers.ports import ParkedStep
from workers.stores.archive import JsonlArchive
from workers.stores.batch_jobs import RedisBatchJobs
from workers.stores.dead_letters import (
    RedisDeadLetters,
    dead_record,
    list_dead,
    read_archived_dead,
    remove_dead,
)
from workers.stores.redis_stores import RedisExactCache, StreamLedger, read_ledger
from workers.testing import MemoryBatchJobs


def test_ledger_reads_every_entry_across_pages(redis_client):
    ledger = StreamLedger(redis_client, "tf:test-ledger", keep=100_000, archive=None)
    for i in range(12_003):
        ledger.append({"step_id": f"s{i}", "cost_usd": i / 1e6, "correct": None})
    entries = read_ledger(redis_client, "tf:test-ledger")
    assert len(entries) == 12_003
    assert entries[0] == {"step_id": "s0", "cost_usd": 0.0, "correct": None}
    assert entries[-1]["step_id"] == "s12002"


def test_entries_appended_together_land_all_or_none(redis_client):
    redis_client.delete("tf:test-many")
    ledger = StreamLedger(redis_client, "tf:test-many", keep=100, archive=None)
    ledger.append_many([{"step_id": "a"}, {"step_id": "b"}])
    with pytest.raises(TypeError):
        ledger.append_many([{"step_id": "c"}, {"step_id": {"not", "json"}}])
    assert [e["step_id"] for e in read_ledger(redis_client, "tf:test-many")] == ["a", "b"]


def test_the_ledger_stream_is_capped_and_what_leaves_it_is_archived_first(redis_client, tmp_path):
    archive = JsonlArchive(tmp_path, "tf:capped-ledger")
    ledger = StreamLedger(redis_client, "tf:capped-ledger", keep=100, archive=archive)
    for i in range(1000):
        ledger.append({"step_id": f"s{i}", "cost_usd": i / 1e6})
    assert int(redis_client.xlen("tf:capped-ledger")) <= 110  # keep plus a tenth's headroom
    assert archive.count() >= 890
    entries = read_ledger(redis_client, "tf:capped-ledger", archive)
    assert [e["step_id"] for e in entries] == [f"s{i}" for i in range(1000)]


def test_a_crash_between_archiving_and_trimming_repeats_no_entry(redis_client, tmp_path):
    archive = JsonlArchive(tmp_path, "tf:crash-ledger")
    ledger = StreamLedger(redis_client, "tf:crash-ledger", keep=10_000, archive=archive)
    for i in range(20):
        ledger.append({"step_id": f"s{i}"})
    # Written to the archive, then the process died before the trim: the stream still holds
    # the same entries, and a torn line was left behind by a second crash mid-write.
    page = redis_client.xrange("tf:crash-ledger", count=5)
    archive.append(
        [{"id": i.decode(), "entry": {"step_id": f"s{n}"}} for n, (i, _) in enumerate(page)]
    )
    with open(next(archive.dir.glob("*.jsonl")), "ab") as f:
        f.write(b'{"id": "1-0", "ent')
    archive.append([{"id": "0-1", "entry": {"step_id": "older"}}])  # closes the torn line
    entries = read_ledger(redis_client, "tf:crash-ledger", archive)
    assert [e["step_id"] for e in entries] == [f"s{i}" for i in range(5)] + ["older"] + [
        f"s{i}" for i in range(5, 20)
    ]


def test_without_an_archive_the_ledger_is_never_trimmed(redis_client):
    ledger = StreamLedger(redis_client, "tf:unarchived-ledger", keep=100, archive=None)
    for i in range(300):
        ledger.append({"step_id": f"s{i}"})
    assert int(redis_client.xlen("tf:unarchived-ledger")) == 300


def test_exact_cache_entries_expire(redis_client):
    cache = RedisExactCache(redis_client, ttl_s=1)
    cache.put("k", {"answer": "a"})
    assert cache.get("k") == {"answer": "a"}
    time.sleep(1.1)
    assert cache.get("k") is None


def test_dead_letters_are_listed_oldest_first_and_removed_one_by_one(redis_client):
    redis_client.delete(DEAD)
    dead = RedisDeadLetters(redis_client)
    for i in range(3):
        dead.put(dead_record(step_id=f"s{i}", stage="infer", reason=f"r{i}", envelope=None))
    letters = list(list_dead(redis_client))
    assert [d.record.step_id for d in letters] == ["s0", "s1", "s2"]
    assert letters[1].record.reason == "r1"
    assert remove_dead(redis_client, letters[1])
    assert not remove_dead(redis_client, letters[1])
    assert [d.record.step_id for d in list_dead(redis_client)] == ["s0", "s2"]


def test_dead_letters_past_the_cap_are_archived_before_they_leave_the_list(redis_client, tmp_path):
    redis_client.delete(DEAD)
    archive = JsonlArchive(tmp_path, "tf.dead")
    dead = RedisDeadLetters(redis_client, keep=10, archive=archive)
    for i in range(30):
        dead.put(dead_record(step_id=f"s{i}", stage="infer", reason=f"r{i}", envelope=None))
    on_list = [d.record.step_id for d in list_dead(redis_client)]
    archived = [r.step_id for r in read_archived_dead(archive)]
    assert len(on_list) <= 11
    assert archived + on_list == [f"s{i}" for i in range(30)]  # oldest archived, in order


def test_a_letter_replayed_while_archiving_costs_no_other_letter(redis_client, tmp_path):
    redis_client.delete(DEAD)
    archive = JsonlArchive(tmp_path, "tf.dead")
    dead = RedisDeadLetters(redis_client, keep=1000, archive=archive)
    for i in range(20):
        dead.put(dead_record(step_id=f"s{i}", stage="infer", reason="r", envelope=None))
    dead.keep = 10
    oldest = next(list_dead(redis_client))
    archive_write = archive.append

    def replayed_meanwhile(records, now=None):  # an operator replays the oldest letter
        remove_dead(redis_client, oldest)
        return archive_write(records, now)

    archive.append = replayed_meanwhile  # type: ignore[method-assign]
    dead.archive_oldest()
    on_list = [d.record.step_id for d in list_dead(redis_client)]
    assert on_list == [f"s{i}" for i in range(10, 20)]  # removed by value: none unwritten


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_batch_jobs_park_once_take_atomically_and_forget_finished_jobs(redis_client, kind):
    # The in-memory double users test with (workers.testing) keeps the same contract.
    jobs = RedisBatchJobs(redis_client) if kind == "redis" else MemoryBatchJobs()
    parked = [ParkedStep(f"env{i}", f"s{i}:0:0", "gpt-4o-mini") for i in range(5)]
    assert [jobs.park(p, now=100.0 + i) for i, p in enumerate(parked)] == [1, 2, 3, 4, 5]
    assert jobs.park(parked[0], now=200.0) is None  # a redelivered step is not parked twice
    assert jobs.due(older_than=99.0) == [] and jobs.due(older_than=100.0) == ["gpt-4o-mini"]

    first = jobs.take("gpt-4o-mini", "openai", limit=3, now=300.0)
    second = jobs.take("gpt-4o-mini", "openai", limit=3, now=300.0)
    assert first and second and jobs.take("gpt-4o-mini", "openai", 3, 300.0) is None
    taken = {p.envelope for j in (first, second) for p in jobs.items(j.job_id).values()}
    assert taken == {p.envelope for p in parked} and jobs.due(older_than=1e12) == []

    jobs.submitted(first, "batch_abc", now=301.0)
    states = {j.job_id: (j.state, j.provider_batch_id) for j in jobs.jobs()}
    assert states == {first.job_id: ("submitted", "batch_abc"), second.job_id: ("submitting", None)}
    for custom_id in jobs.items(second.job_id):
        jobs.done(second.job_id, custom_id)
    assert [j.job_id for j in jobs.jobs()] == [first.job_id]


def test_only_one_batch_poller_holds_the_lock(redis_client):
    jobs = RedisBatchJobs(redis_client)
    with jobs.exclusive(ttl_s=5) as first, jobs.exclusive(ttl_s=5) as second:
        assert first and not second
    with jobs.exclusive(ttl_s=5) as again:
        assert again


def test_the_poll_lock_is_renewed_while_a_long_poll_holds_it(redis_client):
    jobs = RedisBatchJobs(redis_client)
    with jobs.exclusive(ttl_s=0.3) as mine:
        assert mine
        time.sleep(1.0)  # three times the lock's TTL
        with jobs.exclusive(ttl_s=0.3) as second:
            assert not second  # still held: renewed, never expired
    with jobs.exclusive(ttl_s=0.3) as after:
        assert after  # released at the end
