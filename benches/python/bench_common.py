"""What benches/python/tpe_overhead.py and benches/python/ppe_bench.py
share: the no-op task, the nearest-rank quantile and the per-task and
round-trip measurements.

The scripts are run by path, so their own directory is first on sys.path
and `import bench_common` finds this file; a spawn or forkserver worker
gets the same sys.path from its parent, so it can unpickle `noop`.
"""

import time


def noop(x):
    return x


def nearest_rank(sorted_samples, q):
    """The q-quantile (0 < q <= 1) by nearest rank: the smallest sample
    with at least q of all samples at or below it."""
    rank = max(1, -(-len(sorted_samples) * round(q * 1000) // 1000))  # ceil
    return sorted_samples[rank - 1]


def overhead(pool, n):
    start = time.perf_counter_ns()
    futures = [pool.submit(noop, i) for i in range(n)]
    total = 0
    for f in futures:
        total += f.result()
    elapsed = time.perf_counter_ns() - start
    assert total == n * (n - 1) // 2, total
    return {"per_task_ns": f"{elapsed / n:.1f}", "total_ns": elapsed}


def latency(pool, n):
    samples = []
    clock = time.perf_counter_ns
    start = clock()
    for i in range(n):
        t0 = clock()
        got = pool.submit(noop, i).result()
        samples.append(clock() - t0)
        assert got == i
    elapsed = clock() - start
    samples.sort()
    return {
        "median_ns": nearest_rank(samples, 0.5),
        "p99_ns": nearest_rank(samples, 0.99),
        "total_ns": elapsed,
    }
