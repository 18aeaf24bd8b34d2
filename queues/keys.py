"""Every Redis key and every id that names a step's state, built in one place.

Names that come from producers (tenant, agent, session, step id) may contain ``:``, ``/`` and
other characters that a plain join would read as separators: tenant ``acme:x`` with agent
``y`` and tenant ``acme`` with agent ``x:y`` would share ``acme:x:y``. Each such part is
percent-escaped (``quote(part, safe="")``), so it holds no ``:``, ``/``, ``%`` or glob
character, and a key's parts can be read back one way only. Fixed parts (prefixes, stage
names, digests, counters) are written as they are.

Everything about one step is scoped by its tenant: its result id, its finalize guard, its
reservations, its parked batch entry. Two tenants may use the same step id without meeting.

Families and how each is bounded (TTL, or a cap; see README "Redis keys"):
``tf:xc:*`` exact cache (TTL), ``tf:final:*`` finalize guards (TTL), ``tf:budget:*`` budget
scopes (TTL, refreshed on use), ``tf:summaries:*`` and their claims (TTL), ``tf:batch:*``
the batch lane (TTL, refreshed on write), ``tf:gate:*`` fleet-wide provider slots and
circuit breakers (TTL), the ledger and shadow streams and ``tf.dead`` (capped, exported
to the archive before trimming; ``tf:archive:*`` the archivers' locks, TTL),
``tf:deliveries:*`` redelivery counts (TTL), ``tf:alerts`` (capped) and the hash of
active alerts (as many fields as rules and subjects).
"""

from __future__ import annotations

from urllib.parse import quote

PREFIX = "tf"
EXACT = f"{PREFIX}:xc"
FINAL = f"{PREFIX}:final"
BUDGET = f"{PREFIX}:budget"
SUMMARIES = f"{PREFIX}:summaries"
BATCH = f"{PREFIX}:batch"
GATE = f"{PREFIX}:gate"
ARCHIVE = f"{PREFIX}:archive"


def part(name: str) -> str:
    """One name as a key part: escaped so that it cannot contain a separator or a glob."""
    return quote(name, safe="")


def join(*parts: str) -> str:
    return ":".join(parts)


# -- a step's own ids ------------------------------------------------------------------------


def step_ref(tenant: str, step_id: str) -> str:
    """A step's fleet-wide name: its tenant and its id (both escaped), e.g. ``acme/s-1``."""
    return f"{part(tenant)}/{part(step_id)}"


def result_id(tenant: str, step_id: str) -> str:
    """The Celery task id the step's result is stored under (``AsyncResult(result_id)``)."""
    return step_ref(tenant, step_id)


def hop_id(tenant: str, step_id: str, stage: str, decisions: int, retries: int) -> str:
    """A task id per hop, unique and stable across redeliveries of the same hop."""
    return f"{step_ref(tenant, step_id)}:{stage}:{decisions}:{retries}"


def reservation(
    tenant: str, step_id: str, attempt: int, retries: int, cross_check: bool = False
) -> str:
    """One id per paid call of a step: a redelivered call finds its own reservation."""
    return f"{reservation_prefix(tenant, step_id)}{attempt}:{retries}" + (
        ":x" if cross_check else ""
    )


def call_id(
    tenant: str,
    step_id: str,
    submitted_at: float,
    attempt: int,
    retries: int,
    cross_check: bool = False,
    shadow: bool = False,
    audit: bool = False,
) -> str:
    """One id per provider call a step's run makes: its reservation, the run (its submit
    time: a replayed step is a new run) and whether it is a shadow or a cache audit's call.
    A redelivered call has the same id, so a call made twice shows as a duplicate on the
    bill."""
    run = f"run{int(submitted_at * 1000)}"
    kind = ":audit" if audit else ":shadow" if shadow else ""
    return join(reservation(tenant, step_id, attempt, retries, cross_check), run) + kind


def reservation_prefix(tenant: str, step_id: str) -> str:
    """What every reservation of one step starts with (and no other step's does)."""
    return f"{step_ref(tenant, step_id)}:"


# -- stores ----------------------------------------------------------------------------------


def exact_cache(tenant: str, agent: str, prompt_version: str, digest: str) -> str:
    return join(EXACT, part(tenant), part(agent), part(prompt_version), digest)


def exact_cache_pattern(prompt_version: str) -> str:
    """A SCAN pattern for one prompt version's exact entries. Escaped parts hold no ``:``, so
    the version can only match in its own position."""
    return join(EXACT, "*", "*", part(prompt_version), "*")


def final_guard(tenant: str, step_id: str) -> str:
    return join(FINAL, part(tenant), part(step_id))


def final_claim(tenant: str, step_id: str) -> str:
    """Held by the one finalize doing a step's side effects right now."""
    return join(FINAL, "claim", part(tenant), part(step_id))


def session_budget(tenant: str, session_id: str) -> str:
    return join(BUDGET, "session", part(tenant), part(session_id))


def agent_budget(tenant: str, agent: str) -> str:
    return join(BUDGET, "agent", part(tenant), part(agent))


def tenant_budget(tenant: str) -> str:
    return join(BUDGET, "tenant", part(tenant))


def summaries(tenant: str, session_id: str) -> str:
    return join(SUMMARIES, part(tenant), part(session_id))


def session_steps(tenant: str, session_id: str) -> str:
    """Set of a session's step ids (the step cap), with a TTL refreshed at each step."""
    return join(PREFIX, "steps", part(tenant), part(session_id))


def summary_claim(tenant: str, session_id: str, unit: str) -> str:
    return join(SUMMARIES, "claim", part(tenant), part(session_id), part(unit))


# -- the batch lane --------------------------------------------------------------------------

BATCH_PENDING = join(BATCH, "pending")  # zset: model -> when its oldest pending step parked
BATCH_JOBS = join(BATCH, "jobs")  # hash: job id -> job
BATCH_POLL_LOCK = join(BATCH, "poll-lock")


def batch_pending(model: str) -> str:
    """Hash: reservation -> parked step, for one model."""
    return join(BATCH, "pending", part(model))


def batch_job(job_id: str) -> str:
    """Hash: custom id -> parked step, for one provider job."""
    return join(BATCH, "job", part(job_id))


def batch_parked(reservation_id: str) -> str:
    """Marks a reservation parked, so a redelivered message does not park it twice. The
    reservation id is already built from escaped parts and holds its tenant."""
    return join(BATCH, "parked", reservation_id)


# -- fleet-wide provider limits --------------------------------------------------------------


def gate_slots(provider: str, model: str | None = None) -> str:
    """Zset of the calls in flight to a provider (or one of its models): holder -> expiry."""
    scope = [part(provider)] if model is None else [part(provider), part(model)]
    return join(GATE, "slots", *scope)


def gate_breaker(provider: str) -> str:
    """Hash: the provider's circuit breaker (failures in a row, open until, probe)."""
    return join(GATE, "breaker", part(provider))


# -- steps in flight ------------------------------------------------------------------------

# Zset: result id -> when it was submitted; finalize removes it. What stays long after its
# submit time has no result: lost (Fleet.lost). The key's TTL is refreshed at every submit.
INFLIGHT = join(PREFIX, "inflight")
INFLIGHT_TTL_S = 7 * 24 * 3600


# -- deliveries ------------------------------------------------------------------------------


def deliveries(message_id: str) -> str:
    """How many times a message was redelivered (its task id: stable across redeliveries)."""
    return join(PREFIX, "deliveries", part(message_id))


# -- alerts ----------------------------------------------------------------------------------

# The fleet's own alert evaluation (workers/alerting.py): a capped stream of what fired and
# resolved, a hash of what fires now, and the evaluator's lock (TTL: one evaluator a round).
ALERTS_STREAM = join(PREFIX, "alerts")
ALERTS_ACTIVE = join(PREFIX, "alerts", "active")
ALERTS_LOCK = join(PREFIX, "alerts", "lock")


# Producers' word on how each workflow run ended (Fleet.record_execution): a capped stream.
EXECUTIONS_STREAM = join(PREFIX, "executions")
EXECUTIONS_KEEP = 1_000_000

# The semantic cache's judged would-be hits (policies/hit_audit.py): a capped stream, since
# only the recent ones set the threshold (each judge call's cost is on the calls stream).
CACHE_AUDITS = join(PREFIX, "cache", "audits")
CACHE_AUDITS_KEEP = 20_000
CACHE_BOUND = join(PREFIX, "cache", "bound")  # the served threshold by scorer (for operators)
CACHE_BOUND_TTL_S = 24 * 3600

# Keys without a TTL that are bounded all the same: capped streams, and the active alerts
# (one field per rule and subject).
CAPPED = (ALERTS_STREAM, ALERTS_ACTIVE, EXECUTIONS_STREAM, CACHE_AUDITS)


# -- the archive -----------------------------------------------------------------------------


def archive_lock(source: str) -> str:
    """One archiver at a time per stream or queue; a dead one's lock expires."""
    return join(ARCHIVE, "lock", part(source))
