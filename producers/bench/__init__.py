"""Benchmarks run as commands (``tierfleet bench ...``) that print their figures and write
them as JSON; BENCHMARKS.md records each command with its latest figures."""
