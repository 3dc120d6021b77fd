#!/usr/bin/env python3
"""CPython's ThreadPoolExecutor, measured the way benches/thread_pool.rs
measures ours, so the two can sit in one table.

Modes (the pool has 2 workers, is built and warmed before any timing):

  overhead N   submit N no-op tasks, then result() each in submission order;
               prints the cost per task.
  latency N    N sequential round trips on an idle pool (submit one no-op,
               wait for its result, then the next); prints the median and
               the p99 of the per-call times (nearest rank, as the Rust side).

Every figure is printed on one line that starts with RESULT, as key=value
pairs, so the bench can read it:

  RESULT mode=overhead n=100000 per_task_ns=27012.3 total_ns=2701230000
  RESULT mode=latency n=2000 median_ns=45012 p99_ns=68001 total_ns=95000000

With --reps R it repeats the measurement R times (one RESULT line each) on
the same pool. Run it with the real interpreter, not the pyenv shim
(`$(pyenv which python3) benches/python/tpe_overhead.py overhead 100000`).
"""

import argparse
import platform
import sys
from concurrent.futures import ThreadPoolExecutor

from bench_common import latency, noop, overhead


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["overhead", "latency"])
    parser.add_argument("n", type=int, help="tasks (overhead) or round trips (latency)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.n < 1:
        parser.error("n must be at least 1")

    print(f"INFO python={platform.python_version()} implementation={platform.python_implementation()}")
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        # Warm up: start every worker thread and let the interpreter settle.
        for f in [pool.submit(noop, i) for i in range(max(4 * args.workers, 1000))]:
            f.result()
        for _ in range(200):
            pool.submit(noop, 0).result()
        measure = overhead if args.mode == "overhead" else latency
        for _ in range(args.reps):
            fields = measure(pool, args.n)
            line = " ".join(f"{k}={v}" for k, v in fields.items())
            print(f"RESULT mode={args.mode} n={args.n} {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
