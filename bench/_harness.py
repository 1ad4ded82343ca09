"""Shared bench machinery: a scratch PostgreSQL database, a real server process, a load loop.

The load generator speaks HTTP/1.1 over raw asyncio streams with keep-alive, so that the
client costs far less than the server it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WACRM = str(ROOT / ".venv" / "bin" / "wacrm")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    name = f"wacrm_bench_{uuid.uuid4().hex[:8]}"
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c"]
    subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True)
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


def cli(env: dict[str, str], *args: str) -> dict[str, object]:
    out = subprocess.run([WACRM, *args, "--json"], env=env, check=True, capture_output=True)
    return dict(json.loads(out.stdout))


@contextlib.contextmanager
def server(env: dict[str, str], port: int, *extra: str) -> Iterator[None]:
    process = subprocess.Popen(
        [WACRM, "serve", "--port", str(port), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("server did not start")
        yield
    finally:
        process.terminate()
        process.wait(10)


def bench_env(database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        WACRM_DATABASE_URL=database_url,
        WACRM_SECRET_KEY="bench-secret",
        WACRM_RATE_LIMIT_PER_MINUTE="100000000",
        WACRM_LOG_LEVEL="warning",
        **extra,
    )
    return env


def seed_settings(database_url: str, var_dir: Path) -> Any:
    """Settings for writing a bench's data in-process, as its processes will read it (the
    secret of ``bench_env``; loopback webhook receivers allowed)."""
    from wacrm.settings import Settings

    return Settings(
        database_url=database_url,
        secret_key="bench-secret",
        var_dir=var_dir,
        webhooks_allow_private_targets=True,
    )


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    non_2xx: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)


async def _connection(port: int, request: bytes, stop_at: float, result: LoadResult) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.requests += 1
            if not status_line.split(b" ")[1].startswith(b"2"):
                result.non_2xx += 1
    finally:
        writer.close()


async def load(
    port: int, path: str, seconds: float, concurrency: int, headers: dict[str, str] | None = None
) -> LoadResult:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    result = LoadResult(requests=0, seconds=seconds, latencies_ms=[], non_2xx=0)
    stop_at = time.monotonic() + seconds
    await asyncio.gather(*(_connection(port, request, stop_at, result) for _ in range(concurrency)))
    return result


def progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)
