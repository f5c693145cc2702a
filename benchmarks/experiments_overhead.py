"""Sweep machinery: per-task overhead of the local pool and of Ray for tiny tasks, and the throughput
of a 1,000-task sweep (calibration experiment: one row, no work).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/experiments_overhead.py [--tasks 1000] [--no-ray]
"""

from __future__ import annotations

import argparse
import shutil
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
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--ray-timeout", type=float, default=300.0, help="seconds a local Ray start may take")
    args = ap.parse_args()
    n = args.tasks
    tmp = Path(tempfile.mkdtemp())
    exp = registry.get("calibration")
    t = time.perf_counter()
    for i in range(n):
        exp.run({"index": i})
    base = time.perf_counter() - t
    print(f"{n} tiny tasks, in process (no files): {base:.2f} s ({1e3 * base / n:.3f} ms/task)")
    t_local = sweep(n, tmp / "local", workers=args.workers)
    print(f"local pool, {args.workers} workers: {t_local:.2f} s, {n / t_local:.0f} tasks/s, "
          f"{1e3 * t_local / n:.2f} ms/task (one Parquet file each)")
    t_resume = sweep(n, tmp / "local", workers=args.workers)
    print(f"rerun, all {n} finished (resume scan + merge read): {t_resume:.2f} s")
    if not args.no_ray:
        from relulab.experiments.sweep import connect_ray

        t = time.perf_counter()
        ray = connect_ray(workers=args.workers, ray_timeout=args.ray_timeout)
        print(f"Ray start (local, {args.workers} CPUs): {time.perf_counter() - t:.1f} s")
        sweep(4, tmp / "warm", ray=True)  # workers started and relulab imported
        t_ray = sweep(n, tmp / "ray", ray=True)
        print(f"ray, {args.workers} CPUs: {t_ray:.2f} s, {n / t_ray:.0f} tasks/s, {1e3 * t_ray / n:.2f} ms/task "
              f"(x{t_ray / t_local:.2f} the local pool)")
        ray.shutdown()
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
