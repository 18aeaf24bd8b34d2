"""A tier's own micro-batch sizes (the tier table's flush_every / flush_interval_s) reach the
inference task of the worker that serves it; other workers keep the settings'."""

from policies.tables import TABLES
from policies.tiers import load_tier_table
from queues.celery_app import create_app
from queues.settings import Settings
from queues.topology import TASK_NAMES, Stage
from workers import infer
from workers.runtime import LazyRuntime
from workers.wiring import tune_micro_batches


def inference_task(settings: Settings):
    table = load_tier_table(settings.tier_table)
    app = create_app(settings, table.names)
    infer.register(app, LazyRuntime(settings, lambda: None))
    return app, table, app.tasks[TASK_NAMES[Stage.infer]]


def test_the_local_tiers_worker_takes_the_tables_micro_batches():
    settings = Settings(tier_table=TABLES / "local.toml", batch_flush_every=16)
    app, table, task = inference_task(settings)
    assert (table.tier("cheap").flush_every, table.tier("cheap").flush_interval_s) == (8, 2.0)
    tune_micro_batches(app, table, {"tf.infer.cheap.standard", "tf.infer.cheap.interactive"})
    assert (task.flush_every, task.flush_interval) == (8, 2.0)


def test_a_tier_without_its_own_sizes_keeps_the_settings():
    settings = Settings(tier_table=TABLES / "local.toml", batch_flush_every=16)
    app, table, task = inference_task(settings)
    tune_micro_batches(app, table, {"tf.infer.mid.standard"})
    assert (task.flush_every, task.flush_interval) == (16, settings.batch_flush_interval_s)
