"""Real wacrm processes for the fault tests: started with their own logs, awaited with
bounded waits, and always stopped (SIGKILL as a last resort) when the test ends.

Loopback only: every server listens on 127.0.0.1 and every client talks to it there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_cli import WACRM, cli_env
from wacrm.settings import Settings

START_SECONDS = 90.0  # interpreters booting side by side on a busy two-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    ended_on_purpose: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> Process:
        """Start (or start again: same command, same port, the log goes on)."""
        self.ended_on_purpose = False
        with self.log.open("ab") as output:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.log.parent,  # no stray .env
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the test run is not theirs to get
            )
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, chars: int = 3000) -> str:
        return (
            f"--- {self.name} (pid {self.popen and self.popen.pid}) ---\n"
            + (self.log_text()[-chars:])
        )

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine loses a process."""
        self.ended_on_purpose = True
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(30)

    def stop(self) -> None:
        self.ended_on_purpose = True
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Cluster:
    """The processes of one test, on one database (and Redis, when given)."""

    database_url: str
    secret_key: str  # the test's own: rows it writes (sandbox numbers) are read by the processes
    home: Path
    settings: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        defaults = {
            "WACRM_SECRET_KEY": self.secret_key,
            "WACRM_WORKER_POLL_SECONDS": "0.05",
            "WACRM_WORKER_IN_PROCESS": "false",  # `wacrm worker` processes do the work
            # The machine's PostgreSQL is shared: each process takes few of its connections.
            "WACRM_DATABASE_POOL_SIZE": "5",
        }
        return cli_env(self.database_url, self.home, **{**defaults, **self.settings, **extra})

    def _add(self, name: str, argv: list[str], env: dict[str, str], port: int | None) -> Process:
        process = Process(name, argv, env, self.home / f"{name}.log", port)
        self.processes.append(process)
        return process.start()

    def serve(self, name: str = "api", **extra: str) -> Process:
        """``wacrm serve``: the API, and the sandbox at /sandbox."""
        port = free_port()
        env = self.env(WACRM_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **extra)
        argv = [str(WACRM), "serve", "--host", "127.0.0.1", "--port", str(port)]
        return self._add(name, argv, env, port)

    def worker(
        self, name: str, api: Process | None = None, *, concurrency: int = 1, **extra: str
    ) -> Process:
        """``wacrm worker``, sending through the sandbox of ``api``."""
        if api is not None:
            extra = {"WACRM_SANDBOX_BASE_URL": f"{api.url}/sandbox", **extra}
        env = self.env(**extra)
        argv = [str(WACRM), "worker", "--concurrency", str(concurrency)]
        return self._add(name, argv, env, None)

    def stop_all(self) -> None:
        for process in self.processes:
            process.ended_on_purpose = True
            if process.alive:
                assert process.popen is not None
                process.popen.terminate()
        for process in self.processes:
            process.stop()

    def logs(self) -> str:
        return "\n".join(process.tail() for process in self.processes)

    def check_alive(self) -> None:
        for process in self.processes:
            if not process.alive and not process.ended_on_purpose:
                pytest.fail(f"{process.name} exited by itself\n{self.logs()}")

    async def wait_healthy(self, *servers: Process) -> None:
        async with httpx.AsyncClient(timeout=2.0) as http:

            async def healthy() -> bool:
                for server in servers:
                    try:
                        if (await http.get(f"{server.url}/healthz")).status_code != 200:
                            return False
                    except httpx.TransportError:
                        return False
                return True

            await self.until(healthy, START_SECONDS, "servers healthy")

    async def until(
        self,
        condition: Callable[[], Awaitable[Any]],
        seconds: float,
        what: str,
        poll: float = 0.1,
    ) -> Any:
        """Poll ``condition`` until it is truthy; fail (with the logs) if a process dies or
        ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        while True:
            result = await condition()
            if result:
                return result
            self.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"gave up waiting for {what} after {seconds:.0f} s\n{self.logs()}")
            await asyncio.sleep(poll)


@contextlib.contextmanager
def cluster(settings: Settings, home: Path, **environment: str) -> Iterator[Cluster]:
    """Processes on the test's database, with its secret key, plus ``environment``."""
    running = Cluster(settings.database_url, settings.secret_key, home, environment)
    try:
        yield running
    finally:
        running.stop_all()


@contextlib.contextmanager
def private_redis(home: Path) -> Iterator[Process]:
    """A redis-server of this test's own on a free port: no persistence, loopback only."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(home)]
    redis = Process("redis", argv, dict(os.environ), home / "redis.log", port).start()
    try:
        yield redis
    finally:
        redis.stop()


def redis_answers(redis: Process) -> bool:
    import redis as redis_client

    try:
        with redis_client.Redis(port=redis.port, socket_timeout=1) as connection:
            return bool(connection.ping())
    except redis_client.RedisError:
        return False
