"""tierfleet's tests, in three layers: ``unit`` (pure policies as tables of cases),
``workers`` (each stage's function with plain test doubles for its adapters, and the Redis
stores on a Redis the tests start) and ``integration`` (a redis-server on a free port and the
worker groups as real Celery processes on the real queues). ``doubles`` holds the test doubles.
"""
