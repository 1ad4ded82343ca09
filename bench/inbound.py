"""Inbound ingestion: signed Meta webhook batches (10 messages each) posted to one server
process on PostgreSQL; prints stored messages/s and acknowledgement latency.

"Stored" is timed from the first post until the last message is in the database, counted
there (the server processes a batch before its 200 today, but the figure stays honest if
it ever acknowledges first). The server's own CPU per batch is printed too: on a machine
shared with other work, the rates say little without it.

    .venv/bin/python bench/inbound.py [--batches 400] [--concurrency 8] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import time
import uuid

import asyncpg
from _harness import (
    WACRM,
    Figure,
    LoadResult,
    bench_env,
    cli,
    free_port,
    progress,
    quick_flag,
    report,
    scratch_postgres,
    server,
)

APP_SECRET = "bench-app-secret"
PHONE_NUMBER_ID = "700000000000001"


def batch_body(batch_no: int, per_batch: int, senders: str = "1415555") -> bytes:
    messages, contacts = [], []
    for i in range(per_batch):
        wa_id = f"{senders}{(batch_no * per_batch + i) % 5000:04d}"
        contacts.append({"profile": {"name": f"Customer {wa_id[-4:]}"}, "wa_id": wa_id})
        messages.append(
            {
                "from": wa_id,
                "id": f"wamid.bench.{uuid.uuid4().hex}",
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": f"hello {batch_no}/{i}"},
            }
        )
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "100000000000002",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "14155550100",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "contacts": contacts,
                            "messages": messages,
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload).encode()


async def post_batches(port: int, bodies: list[bytes], concurrency: int) -> LoadResult:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    result = LoadResult(requests=0, seconds=0.0, latencies_ms=[], non_2xx=0)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                body = queue.get_nowait()
                signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
                head = (
                    "POST /webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/json\r\n"
                    f"X-Hub-Signature-256: sha256={signature}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                started = time.perf_counter()
                writer.write(head.encode() + body)
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.requests += 1
                if b" 200 " not in status:
                    result.non_2xx += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


def wait_until_stored(url: str, expected: int, timeout: float = 120.0) -> int:
    """Poll the message count (one light query every 20 ms) until it reaches ``expected``;
    returns the last count."""
    return asyncio.run(_wait_until_stored(url, expected, timeout))


async def _wait_until_stored(url: str, expected: int, timeout: float) -> int:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        deadline = time.monotonic() + timeout
        while True:
            stored = int(await connection.fetchval("SELECT count(*) FROM messages"))
            if stored >= expected or time.monotonic() > deadline:
                return stored
            await asyncio.sleep(0.02)
    finally:
        await connection.close()


class CpuMeter:
    """CPU used by the server process, and by everything else on the machine, from /proc
    (Linux): on a shared machine the rates above say little without it."""

    def __init__(self) -> None:
        self.pid = _server_pid()
        self.start = (self._server(), self._machine(), self._mine())

    def stop(self, seconds: float) -> tuple[float | None, float]:
        server, machine, mine = self._server(), self._machine(), self._mine()
        if self.pid is None or server is None or self.start[0] is None:
            return None, 0.0
        used = server - self.start[0]
        others = (machine - self.start[1]) - used - (mine - self.start[2])
        return used, max(others, 0.0) / seconds

    def _server(self) -> float | None:
        return _process_cpu(self.pid) if self.pid else None

    @staticmethod
    def _machine() -> float:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        return busy / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _mine() -> float:
        return float(sum(os.times()[:4]))  # this bench and its finished children


def _server_pid() -> int | None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                serving = b"serve" in cmdline.read()
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and serving:
            return int(entry)
    return None


def _process_cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--per-batch", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.batches = 40

    with scratch_postgres() as url:
        env = bench_env(url, WACRM_WORKER_IN_PROCESS="false")
        progress("migrating a scratch PostgreSQL database")
        subprocess.run([WACRM, "db", "upgrade"], env=env, check=True)
        account = cli(env, "accounts", "create", "Bench", "--owner-email", "b@example.com")
        account_id = str(account["account"]["id"])  # type: ignore[index]
        cli(
            env,
            "channels",
            "add",
            "--account",
            account_id,
            "--phone-number-id",
            PHONE_NUMBER_ID,
            "--display-phone",
            "+14155550100",
            "--access-token",
            "t",
            "--app-secret",
            APP_SECRET,
        )
        bodies = [batch_body(n, args.per_batch) for n in range(args.batches)]
        port = free_port()
        with server(env, port):
            progress("warming up")
            warm_up = [batch_body(n, args.per_batch, senders="1415556") for n in range(40)]
            asyncio.run(post_batches(port, warm_up, args.concurrency))
            # The warm-up's messages, processed after their answers, must not count below.
            before = wait_until_stored(url, len(warm_up) * args.per_batch)
            progress(f"posting {args.batches} signed batches of {args.per_batch}")
            cpu = CpuMeter()
            started = time.perf_counter()
            result = asyncio.run(post_batches(port, bodies, args.concurrency))
            expected = before + args.batches * args.per_batch
            stored = wait_until_stored(url, expected) - before
            seconds = time.perf_counter() - started
            server_cpu, others = cpu.stop(seconds)
    rate = stored / seconds
    print(f"batches: {result.requests} ({result.non_2xx} not 200), messages stored: {stored}")
    print(
        f"stored messages/s: {rate:.0f} (target >= 1000)  "
        f"[{seconds:.2f} s to store all; acknowledged in {result.seconds:.2f} s]"
    )
    print(
        f"ack latency ms: p50 {result.p50:.1f}  p99 {result.pct(99):.1f} (target p99 < 100)"
        f"  at concurrency {args.concurrency}"
    )
    if server_cpu is not None:
        per_batch = server_cpu / result.requests * 1000
        print(
            f"server CPU: {per_batch:.2f} ms per batch (a core to itself: ~"
            f"{1000 * args.per_batch / per_batch:.0f} messages/s); it had"
            f" {server_cpu / seconds:.0%} of a core, while other processes kept"
            f" {others:.2f} of {os.cpu_count()} CPUs busy"
        )

    p99 = result.pct(99)
    report(
        "inbound",
        [
            Figure("inbound: stored messages/s", rate, "msg/s", ">= 1000", rate >= 1000),
            Figure("inbound: ack latency p99", p99, "ms", "< 100", p99 < 100),
        ],
    )


if __name__ == "__main__":
    main()
