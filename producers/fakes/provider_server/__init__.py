"""A provider test server: a small HTTP app speaking the subset of the OpenAI and Anthropic
APIs that tierfleet's adapters use, on loopback, with no key checks beyond presence.

It answers chat completions and messages (text, JSON-schema output, tool-use output),
simulates the providers' prompt caches (OpenAI's automatic prefix cache, Anthropic's
``cache_control`` breakpoints) and reports usage the way each provider does, runs OpenAI
files + batches and Anthropic message batches, injects scripted faults (429 with
Retry-After, 5xx, slow answers, malformed output, failed or expired batch items), and keeps
its own bill at the published prices in ``billing.PUBLISHED``, independent of the fleet's
price table, so the fleet's ledger can be reconciled against it.

Tests start it in a thread (``serve_in_thread``); ``tierfleet provider-server`` runs it for
demos and benchmarks.
"""
