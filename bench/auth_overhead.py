"""What API-key authentication costs: GET /api/v1/me (valid key) against GET /healthz.

One server process on a scratch PostgreSQL database; both endpoints measured in the same
run, alternating in rounds so that machine noise hits both alike.

    .venv/bin/python bench/auth_overhead.py [--seconds 5] [--rounds 3] [--concurrency 16] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio

from _harness import (
    Figure,
    LoadResult,
    bench_env,
    cli,
    free_port,
    load,
    progress,
    quick_flag,
    report,
    scratch_postgres,
    server,
)


def merge(results: list[LoadResult]) -> LoadResult:
    merged = LoadResult(0, 0.0, [], 0)
    for r in results:
        merged.requests += r.requests
        merged.seconds += r.seconds
        merged.latencies_ms += r.latencies_ms
        merged.non_2xx += r.non_2xx
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 1.0, 1

    with scratch_postgres() as url:
        env = bench_env(url)
        cli_env = {k: v for k, v in env.items() if k != "WACRM_LOG_LEVEL"}
        progress("migrating a scratch PostgreSQL database")
        import subprocess

        from _harness import WACRM

        subprocess.run([WACRM, "db", "upgrade"], env=cli_env, check=True)
        account = cli(cli_env, "accounts", "create", "Bench", "--owner-email", "b@example.com")
        account_id = str(account["account"]["id"])  # type: ignore[index]
        key = cli(cli_env, "keys", "create", "--account", account_id, "--name", "bench")
        auth = {"Authorization": f"Bearer {key['plaintext']}"}
        port = free_port()
        with server(env, port):
            progress("warming up")
            asyncio.run(load(port, "/api/v1/me", 1, args.concurrency, auth))
            progress("latency at concurrency 1")
            h1 = asyncio.run(load(port, "/healthz", args.seconds, 1))
            m1 = asyncio.run(load(port, "/api/v1/me", args.seconds, 1, auth))
            health, me = [], []
            for round_no in range(1, args.rounds + 1):
                progress(f"round {round_no}/{args.rounds}: /healthz")
                health.append(asyncio.run(load(port, "/healthz", args.seconds, args.concurrency)))
                progress(f"round {round_no}/{args.rounds}: /api/v1/me")
                me.append(
                    asyncio.run(load(port, "/api/v1/me", args.seconds, args.concurrency, auth))
                )
    h, m = merge(health), merge(me)
    assert h.non_2xx == 0 and m.non_2xx == 0, "bench saw non-2xx answers"
    ratio = m.rps / h.rps
    added = m.p50 - h.p50
    print(f"{'endpoint':<14}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'/healthz':<14}{h.rps:>10.0f}{h.p50:>10.2f}{h.pct(99):>10.2f}")
    print(f"{'/api/v1/me':<14}{m.rps:>10.0f}{m.p50:>10.2f}{m.pct(99):>10.2f}")
    print(f"ratio me/healthz: {ratio:.2f} (target >= 0.5)")
    print(f"auth adds at p50: {added:.2f} ms at concurrency {args.concurrency}")
    print(
        f"auth adds at p50, one request at a time: {m1.p50 - h1.p50:.2f} ms "
        f"({h1.p50:.2f} -> {m1.p50:.2f}; target < 1 ms)"
    )
    alone = m1.p50 - h1.p50
    report(
        "auth_overhead",
        [
            Figure("auth: /api/v1/me vs /healthz req/s", ratio, "ratio", ">= 0.5", ratio >= 0.5),
            Figure("auth: added p50, one at a time", alone, "ms", "< 1", alone < 1),
            Figure(f"auth: added p50 at concurrency {args.concurrency}", added, "ms", "", None),
        ],
    )


if __name__ == "__main__":
    main()
