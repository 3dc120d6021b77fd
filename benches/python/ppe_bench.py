#!/usr/bin/env python3
"""CPython's ProcessPoolExecutor, measured the way benches/process_pool.rs
measures ours, so the two can sit in one table.

Every measurement uses a pool of 2 workers made with one multiprocessing
context (--context fork, spawn or forkserver). Modes:

  overhead N     submit N no-op tasks, then result() each in submission
                 order; prints the cost per task.
  map N          list(pool.map(noop, range(N), chunksize=C)); the cost per item.
  latency N      N sequential round trips on an idle pool (submit one no-op,
                 wait for its result, then the next); the median and the
                 p99 of the per-call times (nearest rank, as the Rust side).
  echo N         submit N echo tasks of --echo-bytes bytes each (the task
                 returns its argument), then result() each in submission
                 order; MiB/s counts each task's payload once, as the
                 project's baseline (A4) did, although twice as many bytes
                 cross (in and out).
  startup N      after one untimed pool, N times: build a pool, submit one
                 no-op, take its result (first_ns), then shutdown(wait=True)
                 (shutdown_ns); the medians. In 3.11 a fork pool starts
                 both workers at the first submit, while spawn and
                 forkserver start workers on demand, so one task starts
                 only one worker there.
  replace N      a pool of 1 worker with max_tasks_per_child=1, so that
                 every task runs on a fresh worker: after two untimed
                 tasks, submit N no-op tasks, then result() each in
                 submission order; the cost per task (a retirement, a
                 replacement's start, a round trip). CPython refuses
                 max_tasks_per_child with the fork context (ValueError,
                 CPython issue 90622): the line then says refused=1.
  suite          all of the above in one interpreter (start-up first, then
                 the replacement pool, then one pool for the others, built
                 and warmed before any timing), with the sizes given by
                 --tasks, --map-items, --calls, --echo-tasks, --startups
                 and --replacements.

Every figure is printed on one line that starts with RESULT, as key=value
pairs, so the bench can read it:

  RESULT mode=overhead context=fork n=5000 per_task_ns=171012.3 total_ns=855061500

Run it with the real interpreter, not the pyenv shim
(`$(pyenv which python3) benches/python/ppe_bench.py suite --context spawn`).
"""

import argparse
import multiprocessing as mp
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from bench_common import latency, noop, overhead

WORKERS = 2


def echo(b):
    return b


def map_chunked(pool, n, args):
    start = time.perf_counter_ns()
    total = sum(pool.map(noop, range(n), chunksize=args.chunksize))
    elapsed = time.perf_counter_ns() - start
    assert total == n * (n - 1) // 2, total
    return {
        "chunksize": args.chunksize,
        "per_item_ns": f"{elapsed / n:.2f}",
        "total_ns": elapsed,
    }


def echo_bytes(pool, n, args):
    payload = bytes(range(256)) * (args.echo_bytes // 256) + bytes(args.echo_bytes % 256)
    start = time.perf_counter_ns()
    futures = [pool.submit(echo, payload) for _ in range(n)]
    for f in futures:
        got = f.result()
        assert len(got) == len(payload)
    elapsed = time.perf_counter_ns() - start
    mib = n * len(payload) / (1 << 20)
    return {
        "bytes": len(payload),
        "mib_per_s": f"{mib / (elapsed / 1e9):.1f}",
        "per_task_ns": f"{elapsed / n:.0f}",
        "total_ns": elapsed,
    }


def startup(ctx, n):
    firsts, shutdowns, totals = [], [], []
    for i in range(n):
        t0 = time.perf_counter_ns()
        pool = ProcessPoolExecutor(max_workers=WORKERS, mp_context=ctx)
        got = pool.submit(noop, i).result()
        t1 = time.perf_counter_ns()
        pool.shutdown(wait=True)
        t2 = time.perf_counter_ns()
        assert got == i
        firsts.append(t1 - t0)
        shutdowns.append(t2 - t1)
        totals.append(t2 - t0)
    return {
        "first_ns": int(statistics.median(firsts)),
        "shutdown_ns": int(statistics.median(shutdowns)),
        "total_ns": int(statistics.median(totals)),
    }


def replacement(ctx, n):
    try:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx, max_tasks_per_child=1)
    except ValueError:
        # "max_tasks_per_child is incompatible with the 'fork'
        # multiprocessing start method" (CPython issue 90622).
        return {"refused": 1}
    with pool:
        for i in range(2):
            assert pool.submit(noop, i).result() == i
        return overhead(pool, n)


MEASURES = {
    "overhead": lambda pool, n, _args: overhead(pool, n),
    "map": map_chunked,
    "latency": lambda pool, n, _args: latency(pool, n),
    "echo": echo_bytes,
}


def report(mode, args, n, fields):
    line = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"RESULT mode={mode} context={args.context} n={n} {line}", flush=True)


def warm_pool(ctx):
    pool = ProcessPoolExecutor(max_workers=WORKERS, mp_context=ctx)
    # Start every worker (two tasks at once: spawn and forkserver start
    # workers on demand) and let the interpreter settle.
    for f in [pool.submit(noop, i) for i in range(1000)]:
        f.result()
    for _ in range(100):
        pool.submit(noop, 0).result()
    return pool


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=[*MEASURES, "startup", "replace", "suite"])
    parser.add_argument("n", type=int, nargs="?", default=None, help="size (not for suite)")
    parser.add_argument("--context", choices=["fork", "spawn", "forkserver"], default="fork")
    parser.add_argument("--chunksize", type=int, default=1000)
    parser.add_argument("--echo-bytes", type=int, default=1 << 20)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--map-items", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--echo-tasks", type=int, default=64)
    parser.add_argument("--startups", type=int, default=3)
    parser.add_argument("--replacements", type=int, default=20)
    args = parser.parse_args()
    if args.mode != "suite" and (args.n is None or args.n < 1):
        parser.error("n must be at least 1")

    print(
        f"INFO python={platform.python_version()} "
        f"implementation={platform.python_implementation()} context={args.context}",
        flush=True,
    )
    ctx = mp.get_context(args.context)
    if args.mode == "suite":
        plan = [
            ("overhead", args.tasks),
            ("map", args.map_items),
            ("latency", args.calls),
            ("echo", args.echo_tasks),
        ]
    elif args.mode in ("startup", "replace"):
        plan = []
    else:
        plan = [(args.mode, args.n)]
    # Start-up first, in a fresh interpreter, after one untimed pool (which
    # also starts the fork server for forkserver).
    if args.mode in ("startup", "suite"):
        n = args.n if args.mode == "startup" else args.startups
        if n > 0:
            startup(ctx, 1)
            report("startup", args, n, startup(ctx, n))
    if args.mode in ("replace", "suite"):
        n = args.n if args.mode == "replace" else args.replacements
        if n > 0:
            report("replace", args, n, replacement(ctx, n))
    if plan:
        pool = warm_pool(ctx)
        with pool:
            for mode, n in plan:
                if n > 0:
                    report(mode, args, n, MEASURES[mode](pool, n, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
