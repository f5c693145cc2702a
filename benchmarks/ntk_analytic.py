"""Benchmark of ``relulab.kernels.analytic_ntk``: infinite-width NNGP and NTK of a depth-10 network.

    .venv/bin/python benchmarks/ntk_analytic.py                      # n = 10^4, relu / leaky / maxout
    .venv/bin/python benchmarks/ntk_analytic.py --n 4000 --naive-n 4000

Inputs: n points N(0, I) in R^16 (seed 0), float64, depth 10, weight_var 2, bias_var 0.1, NTK
parameterization. Each row runs in its own subprocess:

* ``relulab <activation>``: ``analytic_ntk(X, depth=10, ...)`` (blocked, symmetric: upper blocks
  only, all layers per block while it is in cache; maxout rank 3 through its quadrature table, whose
  one-off construction is timed separately and excluded);
* ``naive relu``, for comparison at ``--naive-n`` points: the same recursion written as whole-matrix
  torch expressions (every layer allocates several n x n temporaries), checked against relulab.

Measured: wall and CPU seconds of the call; memory as the growth of the subprocess's maximum
resident set size over its value before the call, next to the 2 n^2 x 8 bytes of the two outputs.
Torch's default threads (what a user gets) unless --threads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SETTINGS = dict(depth=10, weight_var=2.0, bias_var=0.1)


def naive_relu(X, depth, weight_var, bias_var):
    """Whole-matrix NTK-parameterization ReLU recursion (no blocking, no symmetry)."""
    d0 = X.shape[1]
    S = weight_var * (X @ X.T) / d0 + bias_var
    T = S.clone()
    for _ in range(depth):
        q = S.diagonal().sqrt()
        qq = torch.outer(q, q)
        rho = (S / qq).clamp(-1, 1)
        theta = torch.arccos(rho)
        S_new = weight_var * qq * (torch.sin(theta) + (math.pi - theta) * rho) / (2 * math.pi) + bias_var
        T = S_new + weight_var * (math.pi - theta) / (2 * math.pi) * T
        S = S_new
    return S, T


def worker(kind, n, threads):
    if threads:
        torch.set_num_threads(threads)
    from relulab.kernels import analytic_ntk
    from relulab.kernels.analytic import _maxout_table

    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 16, generator=g, dtype=torch.float64)
    extra = {}
    act = kind.split(":")[1]
    kw = dict(SETTINGS, activation=act, slope=0.1, k=3)
    if act == "maxout":
        w = time.perf_counter()
        _maxout_table(3)
        extra["table_s"] = time.perf_counter() - w
    analytic_ntk(X[:64], **kw)  # warm-up
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    w, c = time.perf_counter(), time.process_time()
    if kind.startswith("naive"):
        S, T = naive_relu(X, **SETTINGS)
    else:
        S, T = analytic_ntk(X, **kw)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if kind.startswith("naive"):
        ref = analytic_ntk(X, **kw)[1]
        off = ~torch.eye(n, dtype=torch.bool)
        extra["max_rel_diff"] = float(((T - ref).abs() / ref.abs())[off].max())
    extra["checksum"] = float(T.diagonal().mean())
    print(json.dumps({"seconds": wall, "cpu_s": cpu, "rss_mb": (rss1 - rss0) / 1024,
                      "out_mb": 2 * n * n * 8 / 2**20, **extra}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--naive-n", type=int, default=4000, help="size of the naive comparison (0: skip)")
    ap.add_argument("--activations", nargs="+", default=["relu", "leaky_relu", "maxout"])
    ap.add_argument("--threads", type=int, default=0, help="pin torch to this many threads (default 0: torch's default, as a user gets)")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker[0], int(a.worker[1]), a.threads)
        return
    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rows = [(f"relulab:{act}", a.n) for act in a.activations]
    if a.naive_n:
        rows += [("relulab:relu", a.naive_n), ("naive:relu", a.naive_n)]
    print(f"analytic NNGP + NTK, depth {SETTINGS['depth']}, d0 = 16, float64, {a.threads or torch.get_num_threads()} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")
    header = f"{'n':>6} {'method':<20} {'wall s':>8} {'cpu s':>8} {'RSS growth MB':>14} {'outputs MB':>11}  note"
    print(header)
    print("-" * len(header))
    done = {}
    for kind, n in rows:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--threads", str(a.threads), "--worker", kind, str(n)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout, env=env)
        except subprocess.TimeoutExpired:
            print(f"{n:>6} {kind:<20} timeout after {a.timeout} s")
            continue
        if p.returncode != 0:
            print(f"{n:>6} {kind:<20} failed: {(p.stderr.strip().splitlines() or ['?'])[-1][:90]}")
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        done[(kind, n)] = r
        note = []
        if "table_s" in r:
            note.append(f"maxout table built once in {r['table_s']:.1f} s (excluded)")
        if kind.startswith("naive"):
            base = done.get(("relulab:relu", n))
            if base:
                note.append(f"cpu ratio naive/relulab {r['cpu_s'] / base['cpu_s']:.2f}, "
                            f"memory ratio {r['rss_mb'] / max(base['rss_mb'], 1e-9):.2f}")
            note.append(f"max rel diff {r['max_rel_diff']:.1e}")
        print(f"{n:>6} {kind:<20} {r['seconds']:>8.2f} {r['cpu_s']:>8.2f} {r['rss_mb']:>14.0f} {r['out_mb']:>11.0f}  "
              f"{'; '.join(note)}")
    print("RSS growth = growth of the worker's max resident set over its value before the call "
          "(includes the two n x n float64 outputs).")


if __name__ == "__main__":
    main()
