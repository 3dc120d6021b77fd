#!/usr/bin/env python3
"""mpi4py.futures' MPIPoolExecutor, measured the way benches/mpi_pool.rs
measures ours, in one interpreter, with 2 workers spawned dynamically
(MPI_Comm_spawn; run as a singleton):

  start-up   from before `import mpi4py` (which initializes MPI) to the
             first result: MPI's start, the spawn of the workers, one task
  per task   submit N no-op tasks, then result() each in submission order
  map        list(pool.map(noop, range(M), chunksize=1000)), per item
  round trip C sequential submit-then-result calls on the idle pool; the
             median of the per-call times

One line starting with RESULT, key=value pairs, for the bench to read.
Arguments: --tasks N --map-items M --calls C.
"""
import argparse
import statistics
import sys
import time

T0 = time.perf_counter_ns()


def noop(x):
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--map-items", type=int, default=200000)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()

    from mpi4py.futures import MPIPoolExecutor

    with MPIPoolExecutor(max_workers=2) as pool:
        pool.submit(noop, 0).result()
        startup_ns = time.perf_counter_ns() - T0

        for _ in range(200):
            pool.submit(noop, 0).result()
        t = time.perf_counter_ns()
        futures = [pool.submit(noop, i) for i in range(args.tasks)]
        for f in futures:
            f.result()
        per_task_ns = (time.perf_counter_ns() - t) / args.tasks

        t = time.perf_counter_ns()
        out = list(pool.map(noop, range(args.map_items), chunksize=1000))
        assert len(out) == args.map_items
        map_ns = (time.perf_counter_ns() - t) / args.map_items

        times = []
        for i in range(args.calls):
            t = time.perf_counter_ns()
            pool.submit(noop, i).result()
            times.append(time.perf_counter_ns() - t)
        rt_ns = statistics.median(times)

    print(
        f"RESULT startup_ns={startup_ns} per_task_ns={per_task_ns:.0f} "
        f"map_ns={map_ns:.1f} rt_ns={rt_ns:.0f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
