"""Inbound ingestion: signed Meta webhook batches (10 messages each) posted to one server
process on PostgreSQL; prints stored messages/s and acknowledgement latency.

    .venv/bin/python bench/inbound.py [--batches 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import subprocess
import time
import uuid

from _harness import (
    WACRM,
    LoadResult,
    bench_env,
    cli,
    free_port,
    progress,
    scratch_postgres,
    server,
)

APP_SECRET = "bench-app-secret"
PHONE_NUMBER_ID = "700000000000001"


def batch_body(batch_no: int, per_batch: int) -> bytes:
    messages, contacts = [], []
    for i in range(per_batch):
        wa_id = f"1415555{(batch_no * per_batch + i) % 5000:04d}"
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


def count_messages(url: str) -> int:
    database = url.rsplit("/", 1)[1]
    out = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-tAc",
            "SELECT count(*) FROM messages",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--per-batch", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

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
            asyncio.run(post_batches(port, [batch_body(10**6 + n, 1) for n in range(20)], 4))
            before = count_messages(url)
            progress(f"posting {args.batches} signed batches of {args.per_batch}")
            result = asyncio.run(post_batches(port, bodies, args.concurrency))
            stored = count_messages(url) - before
    rate = stored / result.seconds
    print(f"batches: {result.requests} ({result.non_2xx} not 200), messages stored: {stored}")
    print(f"stored messages/s: {rate:.0f} (target >= 1000)")
    print(
        f"ack latency ms: p50 {result.p50:.1f}  p99 {result.pct(99):.1f} (target p99 < 100)"
        f"  at concurrency {args.concurrency}"
    )


if __name__ == "__main__":
    main()
