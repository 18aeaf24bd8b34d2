"""The whole fleet on one machine: a private Redis and each worker group as its own
``celery -A workers.app worker`` process, stopped cleanly (also on Ctrl-C)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from celery import Celery
from pydantic import SecretStr

from policies.tiers import load_tier_table
from producers.local.services import EmbeddedRedis
from queues.celery_app import create_app
from queues.settings import Settings
from queues.topology import NOOP, WorkerGroup, queue_names, worker_groups
from workers.configuration import local_engine_problem
from workers.errors import ProviderUnavailable
from workers.lazy import Lazy
from workers.providers import has_batch_api, provider_problems
from workers.runtime import local_models

NOOP_GROUP = WorkerGroup("noop", (NOOP,))
READY_S = 60.0  # how long a started worker may take to answer a ping
# A worker whose /metrics port was taken after free_port picked it starts again elsewhere.
PORT_TAKEN = "/metrics cannot listen on port"
PORT_TRIES = 3
LOCAL_MODEL_READY_S = 240.0


def free_port() -> int:
    """A loopback port nobody listens on now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """Settings as the TIERFLEET_* variables a worker process reads back."""
    env = {}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):  # handed to the child process, never printed
            value = value.get_secret_value()
        if isinstance(value, list | dict):  # complex settings are read back as JSON
            value = json.dumps(value)
        if value is not None:
            env[f"TIERFLEET_{name.upper()}"] = str(value)
    return env


class LocalFleet:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        groups: Sequence[str] | None = None,
        extra_groups: Sequence[WorkerGroup] = (),
        log_dir: Path | None = None,
    ) -> None:
        base = settings or Settings()
        if base.envelope_key is None:  # a private fleet gets a private key
            base = base.model_copy(update={"envelope_key": SecretStr(secrets.token_hex(32))})
        self.own_vectors: Path | None = None
        if base.qdrant_url is None and "vector_dir" not in base.model_fields_set:
            # A private fleet's semantic cache lives and dies with it, as its Redis does:
            # answers from an earlier fleet are never served by this one.
            self.own_vectors = Path(tempfile.mkdtemp(prefix="tierfleet-vectors-"))
            base = base.model_copy(update={"vector_dir": self.own_vectors})
        self.base_settings = base
        self.only = set(groups) if groups is not None else None
        self.extra_groups = list(extra_groups)
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="tierfleet-logs-"))
        self.redis: EmbeddedRedis | None = None
        self.settings = self.base_settings
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.metrics_ports: dict[str, int] = {}  # each worker group's /metrics, on loopback
        self._app: Lazy[Celery] = Lazy(self._create_app)

    @property
    def batch_lane(self) -> bool:
        """Whether any model has a provider batch API: then the poller and beat run too."""
        table = load_tier_table(self.settings.tier_table, self.settings.price_table)
        return any(has_batch_api(m.provider) for m in table.models.values())

    def groups(self) -> list[WorkerGroup]:
        table = load_tier_table(self.settings.tier_table, self.settings.price_table)
        groups = worker_groups(
            table.names,
            self.settings.batch_flush_every,
            self.settings.lanes_by_priority,
            table.flush_sizes,
        )
        groups += self.extra_groups
        if not self.batch_lane:
            groups = [g for g in groups if g.name != "batch"]
        return [g for g in groups if self.only is None or g.name in self.only]

    def check_providers(self) -> None:
        """Refuse to start a fleet whose tier table names a provider it cannot use."""
        table = load_tier_table(self.settings.tier_table, self.settings.price_table)
        problems = provider_problems(self.settings, (m.provider for m in table.models.values()))
        every_tier = queue_names(table.names, self.settings.lanes_by_priority)
        local = local_engine_problem(self.settings, every_tier)
        if local:
            problems.append(local)
        if problems:
            raise ProviderUnavailable("; ".join(problems))

    def start(self, *, own_redis: bool = True, pool: str = "solo") -> LocalFleet:
        self.check_providers()
        try:
            if own_redis:
                self.redis = EmbeddedRedis().start()
                self.settings = self.base_settings.model_copy(
                    update={"broker_url": self.redis.url, "result_backend": None, "redis_url": None}
                )
            groups = self.groups()
            table = load_tier_table(self.settings.tier_table, self.settings.price_table)
            every_tier = queue_names(table.names, self.settings.lanes_by_priority)
            # A worker that loads a model (weights read, a GGUF file de-quantized) takes
            # minutes on a busy CPU before it answers a ping.
            wait = LOCAL_MODEL_READY_S if local_models(table, every_tier) else READY_S
            self.start_groups(groups, wait, pool=pool)
            if any(g.name == "batch" for g in groups):
                self.start_beat()
        except BaseException:  # a failed or interrupted start leaves no process behind
            self.stop()
            raise
        return self

    def _spawn(
        self,
        name: str,
        args: list[str],
        extra_env: dict[str, str] | None = None,
        loglevel: list[str] | None = None,
    ) -> None:
        env = {**os.environ, **settings_env(self.settings), **(extra_env or {})}
        quiet = ["--loglevel", "WARNING"] if loglevel is None else loglevel
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", *args, *quiet],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_groups(
        self, groups: Sequence[WorkerGroup], timeout_s: float = READY_S, *, pool: str = "solo"
    ) -> None:
        """Start worker processes, one per group: ``solo`` (the task runs in the worker's
        own process) or ``prefork`` (one child process, replaced if it dies)."""
        tag = f"tf{os.getpid()}"
        by_name = {g.name: g for g in groups}
        for group in groups:
            self._spawn_group(group, tag, pool)
        tries: dict[str, int] = {}

        def respawn(name: str) -> bool:  # any exit but a taken /metrics port is final
            log = self.log_dir / f"{name}.log"
            taken = name in by_name and PORT_TAKEN in log.read_text(errors="replace")
            if not taken or tries.get(name, 0) >= PORT_TRIES:
                return False
            tries[name] = tries.get(name, 0) + 1
            log.write_text("")  # the next start's log, not the refusal again
            self._spawn_group(by_name[name], tag, pool)
            return True

        self.wait_ready([f"{g.name}@{tag}" for g in groups], timeout_s, respawn)

    def _spawn_group(self, group: WorkerGroup, tag: str, pool: str) -> None:
        args = group.celery_args()
        args[args.index("-n") + 1] = f"{group.name}@{tag}"
        pool_args = ["-P", pool] + (["-c", "1"] if pool == "prefork" else [])
        extra = {}
        if self.settings.metrics:  # one port per group on this machine
            self.metrics_ports[group.name] = free_port()
            extra = {
                "TIERFLEET_METRICS_PORT": str(self.metrics_ports[group.name]),
                "TIERFLEET_METRICS_ADDRESS": "127.0.0.1",
            }
        self._spawn(group.name, [*args, *pool_args, "--without-gossip", "--without-mingle"], extra)

    def start_flower(self, basic_auth: str, port: int | None = None) -> str:
        """Flower on loopback, behind ``basic_auth`` (user:password), over this fleet's
        broker; its URL once it answers."""
        port = port or free_port()
        args = ["celery", "-A", "workers.app", "flower", f"--port={port}", "--address=127.0.0.1"]
        self._spawn("flower", [*args, f"--basic-auth={basic_auth}"], loglevel=["--logging=warning"])
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthcheck", timeout=1) as reply:
                    if reply.status == 200:
                        return url
            except OSError:
                if time.monotonic() > deadline or self.processes["flower"].poll() is not None:
                    raise RuntimeError(
                        f"Flower did not start; see {self.log_dir}/flower.log"
                    ) from None
                time.sleep(0.2)

    def metrics_urls(self) -> dict[str, str]:
        """Each running worker group's /metrics."""
        return {
            name: f"http://127.0.0.1:{port}/metrics"
            for name, port in self.metrics_ports.items()
            if name in self.processes
        }

    def start_beat(self) -> None:
        """Celery beat: sends the batch lane's poll on schedule (it keeps no state that
        matters: the jobs live in Redis)."""
        schedule = self.log_dir / "beat-schedule"
        self._spawn("beat", ["celery", "-A", "workers.app", "beat", "-s", str(schedule)])

    def wait_ready(
        self,
        names: list[str],
        timeout_s: float,
        respawn: Callable[[str], bool] = lambda name: False,
    ) -> None:
        deadline, pending = time.monotonic() + timeout_s, set(names)
        while pending:
            for name, proc in list(self.processes.items()):
                if proc.poll() is not None and not respawn(name):
                    raise RuntimeError(f"worker {name} exited; see {self.log_dir / name}.log")
            replies = self.app.control.ping(destination=sorted(pending), timeout=0.5)
            for reply in replies:
                pending -= set(reply)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready: {sorted(pending)}; logs in {self.log_dir}")

    def _create_app(self) -> Celery:
        table = load_tier_table(self.settings.tier_table, self.settings.price_table)
        return create_app(self.settings, table.names)

    @property
    def app(self) -> Celery:
        return self._app.get()

    def stop_group(self, name: str, *, kill: bool = False) -> None:
        """Warm shutdown, or with ``kill`` a kill -9 of the worker and its pool's children
        (its process group) at once, as a machine that dies takes them all."""
        proc = self.processes.pop(name, None)
        if proc is not None and proc.poll() is None:
            if kill:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def pool_children(self, name: str) -> list[int]:
        """The pids of a prefork worker's pool processes (none for a solo worker)."""
        proc = self.processes.get(name)
        if proc is None or proc.poll() is not None:
            return []
        try:
            text = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def stop(self) -> None:
        for proc in self.processes.values():  # warm shutdown for all at once, then wait
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in list(self.processes):
            self.stop_group(name)
        if self._app.built:
            self.app.close()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.own_vectors is not None:
            shutil.rmtree(self.own_vectors, ignore_errors=True)

    def __enter__(self) -> LocalFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
