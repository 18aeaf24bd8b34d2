"""The batch lane's config: when parked steps become a provider batch job, how often jobs
are polled."""

from __future__ import annotations

from pydantic import BaseModel


class BatchLaneConfig(BaseModel):
    # The batch lane (provider batch APIs): a job is submitted when a model has this many
    # steps parked or its oldest has waited this long; beat sends a poll this often.
    batch_job_max_steps: int = 500
    batch_job_wait_s: float = 60.0
    batch_poll_interval_s: float = 30.0
    batch_submit_grace_s: float = 300.0  # a job still "submitting" this long is resubmitted
    batch_poll_lock_s: float = 300.0  # one poller at a time; a dead one's lock expires
