"""Pure decisions over data, with no I/O: which tier a step goes to, what a call costs, when
an answer is good enough or must escalate, how a cache key is built, what compression keeps,
how much budget a call reserves.

Nothing here imports Celery, Redis, Qdrant or an HTTP client; tables and thresholds come in
as arguments (the tier and price table is a TOML file in ``policies/tables``), so every
policy is tested as a plain function over a table of cases.
"""
