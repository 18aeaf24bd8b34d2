"""Workloads from recorded data: RouterBench and RouteLLM prompts with every model's
recorded answer (for the replay provider), and recorded tau-bench agent sessions.

Where the data is: ``TIERFLEET_DATA_DIR``, else ``../shared/data`` from the working
directory (the data folder beside a checkout). Every benchmark also takes its path as an
option; nothing points into or out of the installed package."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from policies.text import stable_fraction
from producers.workloads import Workload
from queues.step import AgentStep, ChatMessage
from workers.providers.replay import ROUTELLM_RESPONSE, ReplayRow, read_routerbench

DATA_DIR = Path(os.environ.get("TIERFLEET_DATA_DIR", "../shared/data"))
DEFAULT_TAU_BENCH = DATA_DIR / "workload" / "tau_bench_airline_gpt4o.json"
DEFAULT_ROUTERBENCH = DATA_DIR / "routing" / "routerbench"
DEFAULT_ROUTELLM = DATA_DIR / "routing" / "routellm_mmlu"
DEFAULT_QQP_PAIRS = DATA_DIR / "cache" / "qqp_pairs_dev.jsonl.gz"
DEFAULT_LEVAL = DATA_DIR / "compression" / "leval"


@dataclass(frozen=True)
class TauSession:
    session_id: str
    messages: tuple[ChatMessage, ...]

    @property
    def calls(self) -> list[int]:
        """Where each model call's input ends: before every assistant turn but the first."""
        return [k for k, m in enumerate(self.messages) if m.role == "assistant" and k > 0]


def replay_kind(row: ReplayRow) -> str:
    """The task kind a recorded prompt is asked as, so the cascade checks the right format."""
    if row.eval_name == "mbpp":
        return "code"
    if any(o.response == ROUTELLM_RESPONSE for o in row.outcomes.values()):
        return "chat"  # no recorded answer text to check the format of
    return "multiple_choice"


def replay_step_id(prefix: str, index: int, row: ReplayRow) -> str:
    return f"{prefix}-{index:05d}-{row.sample_id}"


def replay_workload(rows: Sequence[ReplayRow], prefix: str, workflow: str) -> Workload:
    """Recorded prompts as single-step sessions the replay provider answers."""
    return Workload(
        [
            [
                AgentStep(
                    step_id=replay_step_id(prefix, i, row),
                    tenant="bench",
                    agent=row.eval_name.replace("-", "_"),
                    workflow=workflow,
                    session_id=f"{prefix}-{i:05d}",
                    messages=({"role": "user", "content": row.prompt},),
                    task_kind=replay_kind(row),
                    max_output_tokens=1024,
                    labels={"replay_id": row.sample_id},
                )
            ]
            for i, row in enumerate(rows)
        ]
    )


def routerbench_workload(data: Path, limit: int, seed: int = 7) -> Workload:
    rows = list(read_routerbench(data))
    random.Random(seed).shuffle(rows)
    return replay_workload(rows[:limit], "rb", "routerbench")


def tau_bench_sessions(path: Path, sessions: int | None = None) -> list[TauSession]:
    """Recorded tau-bench sessions: their ids and messages, validated."""
    out = []
    for record in json.loads(path.read_text())[:sessions]:
        session = f"tau-{record['task_id']}-{record.get('trial', 0)}"
        messages = tuple(ChatMessage.model_validate(m) for m in record["traj"])
        out.append(TauSession(session, messages))
    return out


SPLITS = ("report", "tune", "all")
TUNE_SHARE = 0.5  # of tau-bench tasks, by a hash of the task id: where defaults are chosen


def task_of(session: TauSession) -> str:
    """The task a session is a trial of (``tau-<task>-<trial>``)."""
    return session.session_id.rsplit("-", 1)[0]


def session_split(sessions: Sequence[TauSession], split: str) -> list[TauSession]:
    """The sessions of one half: ``tune`` (where defaults are chosen), ``report`` (the
    figures), or ``all``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if split == "all":
        return list(sessions)
    tune = split == "tune"
    return [s for s in sessions if (stable_fraction(task_of(s)) < TUNE_SHARE) == tune]


def tau_bench_workload(
    path: Path,
    sessions: int | None = None,
    kinds: Sequence[str] = ("tool_call",),
    split: str = "all",
) -> Workload:
    """Recorded tau-bench sessions (of one ``split``) as agent steps: each assistant turn is
    one call whose input is every message before it. Session ``i`` gets task kind
    ``kinds[i % len(kinds)]`` (which tier, so which provider, answers it)."""
    out = []
    chosen = session_split(tau_bench_sessions(path, sessions), split)
    for i, session in enumerate(chosen):
        steps = [
            AgentStep(
                step_id=f"{session.session_id}-{k:03d}",
                tenant="tau",
                agent="airline",
                workflow="tau-bench",
                session_id=session.session_id,
                messages=session.messages[:k],
                task_kind=kinds[i % len(kinds)],
                max_output_tokens=256,
            )
            for k in session.calls
        ]
        out.append(steps)
    return Workload(out)
