"""Benchmark of ``relulab.landscape.full_rank_fraction``: the full-rank phase transition of Karhadkar et al.

    .venv/bin/python benchmarks/landscape_jacobian_rank.py                       # throughput + default grid
    .venv/bin/python benchmarks/landscape_jacobian_rank.py --samples 200 --dims 2 4 --json out.json

Part 1, throughput: samples per second of ``full_rank_fraction`` with 1 and 2 worker processes on the grid
d = 4, n in {10, 20, 30, 40}, m in {4, 8, 16} (``--rate-samples`` draws per cell, seed 0). A sample is one
data set X ~ N(0, I) (n, d), one random parameter point (He-style W, b; output weights random signs), its
activation pattern, the closed-form Jacobian of (W, b) -> (f(x_1), ..., f(x_n)) on that region and its
singular values; everything batched, 128 samples per task.

Part 2, phase transition: for d in ``--dims``, n in ``--ns``, m in ``--ms``, the fraction of ``--samples``
draws whose region has a full-rank Jacobian (rank n), over ``--workers`` processes (default every core).
One table per d: rows m, columns n; '.' marks m (d + 1) < n (full rank impossible, always 0). Below the
tables, for each (d, m): the largest n with fraction >= 1/2 next to the parameter count m (d + 1).
``--measure count`` draws regions uniformly among the non-empty ones instead of random parameter points
(closed form for d = 1; LP enumeration per 128 samples for d >= 2, slow beyond n ~ 30):
``... --skip-throughput --dims 1 --measure count``.
``--json PATH`` writes both parts (the grid with Wilson 95% intervals) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from relulab.landscape.parameter_space import full_rank_fraction


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--ns", type=int, nargs="+", default=list(range(5, 125, 5)))
    p.add_argument("--ms", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64])
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--rate-samples", type=int, default=1024)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--activation", default="relu", choices=["relu", "leaky_relu", "abs"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--measure", default="volume", choices=["volume", "count"],
                   help="volume: random parameter points; count: regions uniformly among the non-empty ones")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--json", default=None, help="write the results to this path")
    args = p.parse_args(argv)

    out = {"cores": os.cpu_count(), "throughput": []}
    if not args.skip_throughput:
        print(f"# throughput (d = 4, n in 10..40, m in 4, 8, 16; {args.rate_samples} samples per cell)")
    for w in (() if args.skip_throughput else (1, 2)):
        t0 = time.perf_counter()
        g = full_rank_fraction([4], [10, 20, 30, 40], [4, 8, 16], samples=args.rate_samples, seed=0, workers=w,
                               activation=args.activation)
        dt = time.perf_counter() - t0
        total = 12 * args.rate_samples
        print(f"workers={w}: {total} samples in {dt:.2f} s = {total / dt:,.0f} samples/s")
        out["throughput"].append(dict(workers=w, samples=total, seconds=dt, samples_per_s=total / dt))
        if w == 1:
            ref = g.full_rank
        else:
            assert np.array_equal(ref, g.full_rank), "worker count changed the result"

    t0 = time.perf_counter()
    g = full_rank_fraction(args.dims, args.ns, args.ms, samples=args.samples, seed=args.seed, workers=args.workers,
                           activation=args.activation, measure=args.measure)
    dt = time.perf_counter() - t0
    cells = len(args.dims) * len(args.ns) * len(args.ms)
    print(f"\n# phase transition: {cells} cells x {args.samples} samples = {cells * args.samples} samples "
          f"in {dt:.1f} s ({g.workers} workers, activation {args.activation}, measure {args.measure})")
    for a, d in enumerate(g.d_values):
        print(f"\nd = {d}: fraction of regions with rank J = n (rows m, columns n)")
        print("   m " + "".join(f"{n:>6d}" for n in g.n_values))
        for c, m in enumerate(g.m_values):
            row = "".join(f"{'.':>6}" if m * (d + 1) < n else f"{g.fraction[a, b, c]:6.2f}"
                          for b, n in enumerate(g.n_values))
            print(f"{m:4d} {row}")
    print("\n# largest n with fraction >= 1/2, against the parameter count m (d + 1)")
    print("   d    m  m(d+1)  n_half")
    for a, d in enumerate(g.d_values):
        for c, m in enumerate(g.m_values):
            ok = [n for b, n in enumerate(g.n_values) if g.fraction[a, b, c] >= 0.5]
            print(f"{d:4d} {m:4d} {m * (d + 1):7d} {max(ok) if ok else '-':>7}")
    out["grid"] = g.to_dict()
    out["grid_seconds"] = dt
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
