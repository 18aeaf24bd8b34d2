"""Thin Celery tasks, one module per stage (cache, compress, classify, infer, finalize), and
the adapters they call through small Protocols: model providers (simulated, replay; real APIs
plug in the same way), the tokenizer, and the Redis stores for budgets, the cost ledger, the
exact cache, results and dead letters.

A task validates its envelope, asks a policy, calls an adapter and hands the next envelope to
``queues.bus``; ``workers.app`` is what ``celery -A workers.app worker -Q ...`` starts.
"""
