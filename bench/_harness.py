"""Shared bench machinery: a scratch PostgreSQL database, a real server process, a load loop,
and the final JSON line that ``bench/run.py`` reads.

The load generator speaks HTTP/1.1 over raw asyncio streams with keep-alive, so that the
client costs far less than the server it measures.

The database is ``WACRM_BENCH_DATABASE_URL`` (default ``postgresql+asyncpg://postgres@
127.0.0.1:5432/wacrm_bench``), created if missing and emptied for each run: never point it
at a database whose data you want to keep.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
WACRM = str(ROOT / ".venv" / "bin" / "wacrm")
# Every bench process and in-process seed uses it: cursors and secrets must agree.
SECRET_KEY = "bench-secret"
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/wacrm_bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_database_url() -> str:
    return os.environ.get("WACRM_BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL


def _psql(url: str, database: str, sql: str) -> str:
    parsed = urlsplit(url)
    command = ["psql", "-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 5432)]
    command += ["-U", parsed.username or "postgres", "-d", database, "-v", "ON_ERROR_STOP=1"]
    out = subprocess.run([*command, "-qtAc", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """The bench database, created if missing and emptied (a fresh ``public`` schema)."""
    url = bench_database_url()
    name = urlsplit(url).path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"WACRM_BENCH_DATABASE_URL: unexpected database name {name!r}")
    if not _psql(url, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        _psql(url, "postgres", f"CREATE DATABASE {name}")
    _psql(url, name, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    yield url


def sql_value(url: str, sql: str) -> str:
    """One value from the bench database (psql: no driver or event loop needed)."""
    return _psql(url, urlsplit(url).path.lstrip("/"), sql)


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
        WACRM_SECRET_KEY=SECRET_KEY,
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
        secret_key=SECRET_KEY,
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


class OkReceiver(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 receiver: answers every request 200, after ``received``."""

    response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.received(head)
            self.transport.write(self.response)

    def received(self, head: bytes) -> None:
        """Called with each request's lower-cased head."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pids: list[int], timeout: float = 60.0) -> None:
    """Until every process has finished starting (imports, connecting): a quiet 0.5 s each."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = [cpu_seconds(pid) for pid in pids]
        time.sleep(0.5)
        if all(cpu_seconds(pid) - used < 0.05 for pid, used in zip(pids, before, strict=True)):
            return
    raise RuntimeError("processes did not settle")


def progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


@dataclass
class Figure:
    """One measured figure against its target; ``passed`` is None when it has no target."""

    figure: str
    measured: float
    unit: str
    target: str
    passed: bool | None


def report(bench: str, figures: list[Figure]) -> None:
    """The last line a bench prints: JSON that ``bench/run.py`` reads."""
    print(json.dumps({"bench": bench, "figures": [asdict(f) for f in figures]}), flush=True)


def quick_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes: a run of seconds")
