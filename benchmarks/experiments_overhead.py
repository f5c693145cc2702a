"""Sweep machinery: per-task overhead of the local pool and of Ray for tiny tasks, and the throughput
of a 1,000-task sweep (calibration experiment: one row, no work), side by side in one run.

The two executors alternate (local, Ray, local, Ray, ...) so that a change in the machine's load
hits both alike; each line is one sweep of ``--tasks`` fresh tasks (one Parquet file each), and the
summary gives the median of each. Ray's start-up (retried within ``--ray-timeout``) and the warm-up
of its workers are timed apart, not charged to the tasks.

    PYTHONPATH=$PWD/src python benchmarks/experiments_overhead.py [--tasks 1000] [--rounds 2] [--no-ray]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from relulab.experiments import registry
from relulab.experiments.sweep import run_sweep


def sweep(n, folder, **kw):
    spec = {"experiment": "calibration", "parameters": {"index": list(range(n))}}
    t = time.perf_counter()
    r = run_sweep(spec, folder, progress=False, **kw)
    assert r.rows == n and r.failed == 0
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--ray-timeout", type=float, default=300.0, help="seconds a local Ray start may take")
    args = ap.parse_args()
    n, w = args.tasks, args.workers
    tmp = Path(tempfile.mkdtemp())
    exp = registry.get("calibration")  # the registry's imports (torch) are not charged to the first sweep
    t = time.perf_counter()
    for i in range(n):
        exp.run({"index": i})
    base = time.perf_counter() - t
    print(f"{n} tiny tasks, in process (no files): {base:.2f} s ({1e3 * base / n:.3f} ms/task)", flush=True)
    ray = None
    if not args.no_ray:
        from relulab.core.executors import connect_ray

        t = time.perf_counter()
        ray = connect_ray(workers=w, ray_timeout=args.ray_timeout)
        print(f"Ray start (local, {w} CPUs): {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        sweep(2 * w, tmp / "warm", ray=True)  # workers started and relulab imported in each
        print(f"Ray warm-up ({2 * w} tasks: worker processes start and import relulab): "
              f"{time.perf_counter() - t:.1f} s", flush=True)
    times = {"local": [], "ray": []}
    for r in range(args.rounds):
        for ex in (["local"] if ray is None else ["local", "ray"]):
            kw = {"workers": w} if ex == "local" else {"ray": True}
            s = sweep(n, tmp / f"{ex}{r}", **kw)
            times[ex].append(s)
            print(f"round {r + 1}, {ex} ({w} {'workers' if ex == 'local' else 'CPUs'}): {s:.2f} s, "
                  f"{n / s:.0f} tasks/s, {1e3 * s / n:.2f} ms/task", flush=True)
    t = time.perf_counter()
    sweep(n, tmp / "local0", workers=w)
    print(f"rerun of a finished {n}-task sweep (resume scan, nothing to run): {time.perf_counter() - t:.2f} s")
    loc = statistics.median(times["local"])
    print(f"median local pool: {1e3 * loc / n:.2f} ms/task, {n / loc:.0f} tasks/s")
    if ray is not None:
        ry = statistics.median(times["ray"])
        print(f"median Ray:        {1e3 * ry / n:.2f} ms/task, {n / ry:.0f} tasks/s (x{ry / loc:.2f} the local pool's time)")
        ray.shutdown()
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
