"""docker-compose.yml runs exactly the worker groups the topology defines."""

from pathlib import Path

import yaml

from policies.tables import DEFAULT_TIER_TABLE
from policies.tiers import load_tier_table
from queues.settings import Settings
from queues.topology import worker_groups

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_one_worker_service_per_group_with_its_queues_on_rabbitmq():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    table = load_tier_table(DEFAULT_TIER_TABLE)
    env = services["cache"]["environment"]
    settings = Settings(broker_url="amqp://rabbitmq//", redis_url="redis://redis:6379/0")
    assert env["TIERFLEET_BROKER_URL"].startswith("amqp://") and settings.lanes_by_priority
    groups = worker_groups(
        table.names, settings.batch_flush_every, settings.lanes_by_priority, table.flush_sizes
    )
    for group in groups:
        command = services[group.name]["command"]
        assert command[command.index("-Q") + 1] == ",".join(group.queues)
        prefetch = command[command.index("--prefetch-multiplier") + 1]
        assert int(prefetch) == group.prefetch_multiplier
        assert services[group.name]["environment"]["TIERFLEET_REDIS_URL"].startswith("redis://")
    assert "--appendonly" in services["redis"]["command"]
    assert "flower" in " ".join(services["flower"]["command"])


def test_the_batch_lane_has_its_poller_and_one_beat():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "workers.app", "beat"]
    assert "TIERFLEET_OPENAI_API_KEY" in services["batch"]["environment"]


def test_closed_to_strangers():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    redis_cmd = services["redis"]["command"]
    # Redis: a password compose refuses to start without, a cap that refuses writes rather
    # than evicting budgets, and no port on the host.
    assert redis_cmd[redis_cmd.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert "ports" not in services["redis"] and "ports" not in services["qdrant"]
    assert "ports" not in services["rabbitmq"]
    rabbit = services["rabbitmq"]["environment"]
    assert rabbit["RABBITMQ_DEFAULT_PASS"].startswith("${RABBITMQ_PASSWORD:?")
    assert services["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"].startswith(
        "${QDRANT_API_KEY:?"
    )
    # Flower: basic auth, its API never open without it, on the host's loopback only.
    flower = services["flower"]
    assert any(a.startswith("--basic-auth=${FLOWER_BASIC_AUTH:?") for a in flower["command"])
    assert "FLOWER_UNAUTHENTICATED_API" not in flower["environment"]
    assert all(p.startswith("127.0.0.1:") for p in flower.get("ports", []))
    for name, service in services.items():
        env = service.get("environment", {})
        if "TIERFLEET_BROKER_URL" in env:
            assert env["TIERFLEET_BROKER_URL"].startswith("amqp://tierfleet:${RABBITMQ_PASSWORD:?")
            assert env["TIERFLEET_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")
            assert env["TIERFLEET_ENVELOPE_KEY"].startswith("${TIERFLEET_ENVELOPE_KEY:?")
            assert env["TIERFLEET_QDRANT_API_KEY"].startswith("${QDRANT_API_KEY:?")
        # Provider keys only where providers are called.
        calls_providers = name.startswith("infer-") or name == "batch"
        for key in ("TIERFLEET_OPENAI_API_KEY", "TIERFLEET_ANTHROPIC_API_KEY"):
            assert (key in env) == calls_providers, (name, key)


def test_compose_runs_a_qdrant_server_for_the_semantic_cache():
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:")
    assert services["cache"]["environment"]["TIERFLEET_QDRANT_URL"] == "http://qdrant:6333"
    assert "qdrant" in services["cache"]["depends_on"]
    assert "qdrant-data" in doc["volumes"]


def test_every_worker_archives_to_one_shared_volume():
    doc = yaml.safe_load(COMPOSE.read_text())
    for name, service in doc["services"].items():
        if "TIERFLEET_BROKER_URL" in service.get("environment", {}):
            assert service["environment"]["TIERFLEET_ARCHIVE_DIR"] == "/archive", name
            assert "archive:/archive" in service["volumes"], name
    assert "archive" in doc["volumes"]


def test_a_local_cheap_tier_has_a_cpu_service_and_a_gpu_profile():
    from policies.tiers import load_tier_table

    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert services["infer-cheap"]["deploy"]["replicas"] == "${INFER_CHEAP_REPLICAS:-1}"
    for name, profile, extras, table in (
        ("infer-cheap-cpu", "local-cpu", "local-cpu", "local"),
        ("infer-cheap-gpu", "local-gpu", "local-gpu", "local_gpu"),
    ):
        service = services[name]
        assert service["profiles"] == [profile]
        assert service["build"]["args"]["EXTRAS"] == extras
        command = service["command"]
        # The cheap tier's queue, one process owning the model, a whole micro-batch fetched.
        assert command[command.index("-Q") + 1] == "tf.infer.cheap"
        assert command[command.index("--pool") + 1] == "solo"
        flush = load_tier_table(Path(table)).tier("cheap").flush_every
        assert int(command[command.index("--prefetch-multiplier") + 1]) >= flush
        assert service["environment"]["TIERFLEET_MODEL_CACHE_DIR"].startswith("/models")
        assert any(v.endswith(":/models") for v in service["volumes"])
    [gpu] = services["infer-cheap-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"] and gpu["count"] == 1
    assert "models" in doc["volumes"]
