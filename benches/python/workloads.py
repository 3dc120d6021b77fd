#!/usr/bin/env python3
"""CPython's concurrent.futures on the seeds' two workloads, measured the
way benches/workloads.rs measures ours, so the two can sit in one table.

One configuration per invocation (the bench interleaves them with its own
variants):

  fib      fib(n) for every n in range(--start, --end), the seeds'
           recursive fib with fib(1) = fib(2) = 1.
  sleep    --tasks tasks, each sleeping --ms milliseconds.

--executor picks who runs the tasks:

  serial   one after the other in this thread, no pool (fib only).
  thread   ThreadPoolExecutor(max_workers=--workers).
  process  ProcessPoolExecutor(max_workers=--workers, mp_context=--context).

Every task is submitted at once and the results are taken as they complete
(as_completed), as the seeds do. The clock runs from just before the pool
is built to just after `with` has shut it down (shutdown(wait=True): every
worker thread joined, every worker process exited and reaped), so a
process pool's start-up is part of its time. The interpreter's own start
and the imports are not timed.

The figure is printed on one line that starts with RESULT, as key=value
pairs, so the bench can read it:

  RESULT workload=fib executor=process context=spawn workers=2 tasks=6 wall_ns=712345678 sum=9227460

`sum` is the sum of every task's result, for the bench to check. Run it
with the real interpreter, not the pyenv shim
(`$(pyenv which python3) benches/python/workloads.py fib --executor thread --workers 2`).
"""

import argparse
import multiprocessing as mp
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed


def fib(n):
    """The seeds' recursive Fibonacci: fib(1) = fib(2) = 1."""
    if n <= 2:
        return 1
    return fib(n - 1) + fib(n - 2)


def sleep_ms(ms):
    """The seeds' random_sleep, with a fixed duration: blocks, returns ms."""
    time.sleep(ms / 1000)
    return ms


def make_pool(args):
    if args.executor == "thread":
        return ThreadPoolExecutor(max_workers=args.workers)
    return ProcessPoolExecutor(max_workers=args.workers, mp_context=mp.get_context(args.context))


def measure(args, fn, inputs):
    """Wall time in ns and the sum of the results."""
    clock = time.perf_counter_ns
    if args.executor == "serial":
        start = clock()
        total = sum(fn(x) for x in inputs)
        return clock() - start, total
    start = clock()
    with make_pool(args) as pool:
        futures = [pool.submit(fn, x) for x in inputs]
        total = 0
        for done in as_completed(futures):
            total += done.result()
    return clock() - start, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=["fib", "sleep"])
    parser.add_argument("--executor", choices=["serial", "thread", "process"], required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--context", choices=["fork", "spawn", "forkserver"], default="spawn")
    parser.add_argument("--start", type=int, default=28, help="fib: first n")
    parser.add_argument("--end", type=int, default=34, help="fib: one past the last n")
    parser.add_argument("--tasks", type=int, default=30, help="sleep: tasks")
    parser.add_argument("--ms", type=int, default=20, help="sleep: ms per task")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workload == "sleep" and args.executor == "serial":
        parser.error("a serial sleep is computed by the bench, not slept")

    print(
        f"INFO python={platform.python_version()} implementation={platform.python_implementation()}",
        flush=True,
    )
    if args.workload == "fib":
        fn, inputs = fib, list(range(args.start, args.end))
    else:
        fn, inputs = sleep_ms, [args.ms] * args.tasks
    wall_ns, total = measure(args, fn, inputs)
    context = args.context if args.executor == "process" else "-"
    print(
        f"RESULT workload={args.workload} executor={args.executor} context={context} "
        f"workers={args.workers} tasks={len(inputs)} wall_ns={wall_ns} sum={total}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
