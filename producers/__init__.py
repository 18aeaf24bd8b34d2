"""The public face of tierfleet: the ``Fleet`` API (submit, submit_many, wait, budgets, dead
letters), the ``tierfleet`` CLI (demo, run, report, dead, bench), the embedded fleet that
starts a private Redis and the worker groups as separate processes, and the workload readers
and generators the demo and benchmarks use.
"""
