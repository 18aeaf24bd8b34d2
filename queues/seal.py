"""Envelopes the fleet vouches for: every hop between stages carries an HMAC of its body.

A producer's word ends at ``AgentStep``: it submits a step (``Submission``, unsigned) and
the ingress stage makes the envelope. Everything the fleet adds later (the cache key, the
tier, costs, attempt and retry counters, a shadow or cross-check mark, a summary target,
an outcome) travels sealed with a key only workers hold, and every stage refuses a message
whose seal does not match: it is dead-lettered as forged, never acted on. So a sender who
can publish to a queue cannot make finalize write a key of its choosing, skip a budget
reservation by claiming to be a shadow call, or put negative costs in the ledger.

The key is ``TIERFLEET_ENVELOPE_KEY``. Unset, it is derived from the broker URL: then
whoever knows that URL (and with it, on Redis, the whole store) can seal envelopes. Set it
in production (docker-compose.yml requires it); the local fleet makes a random one.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

DERIVED_KEY_LABEL = b"tierfleet envelope key, derived from the broker URL\x00"


class Sealer:
    """Signs and checks the parts of one message for one task."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the envelope key must be at least 16 bytes")
        self._key = key

    def sign(self, task: str, *parts: str) -> str:
        # Parts are JSON texts, which never hold a raw NUL: joined by NUL they read one way.
        body = "\x00".join((task, *parts)).encode()
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def check(self, signature: object, task: str, *parts: str) -> bool:
        if not isinstance(signature, str):
            return False
        return hmac.compare_digest(signature, self.sign(task, *parts))


def envelope_key(explicit: SecretStr | None, broker_url: str) -> tuple[bytes, bool]:
    """The key, and whether it was set (False: derived from the broker URL)."""
    if explicit is not None and explicit.get_secret_value():
        return explicit.get_secret_value().encode(), True
    return hashlib.sha256(DERIVED_KEY_LABEL + broker_url.encode()).digest(), False


def sealer_for(explicit: SecretStr | None, broker_url: str) -> Sealer:
    return Sealer(envelope_key(explicit, broker_url)[0])
