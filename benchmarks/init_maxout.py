"""Maxout initialization constants and gradient moments (Tseran & Montufar, ICML 2023).

Prints
1. the constants for K = 2..10 (and K = 5 with 2x2 max-pooling) with the quadrature error estimate and
   the largest relative difference from 30-digit mpmath quadrature, and the time of each;
2. E||J u||^2 across depth for a deep maxout network under the maxout initialization (c = 1 / M_K)
   and the naive He initialization (c = 2), with the bounds of Theorem 1 and the aligned-direction
   value, and the growth per layer;
3. optionally the expected length distortion of segments.

    python benchmarks/init_maxout.py [--k 3] [--depth 20] [--width 64] [--inits 16] [--samples 1024]
                                     [--curves] [--plot out.png]
"""

from __future__ import annotations

import argparse
import time

import mpmath as mp
import numpy as np
import torch
from torch import nn

from relulab import nn as rnn
from relulab.init import curve_length_distortion, gradient_moments, maxout_, maxout_constants


def mp_constants(n: int) -> dict:
    with mp.workdps(30):
        g = lambda p: mp.quad(lambda x: x ** p * n * mp.npdf(x) * mp.ncdf(x) ** (n - 1),  # noqa: E731
                              [-mp.inf, -2, 0, 2, 5, mp.inf])

        def chi(p, which):
            F = (lambda t: mp.erf(t / mp.sqrt(2))) if which == "max" else (lambda t: mp.erfc(t / mp.sqrt(2)))
            return mp.quad(lambda t: t ** (2 * p) * 2 * n * mp.npdf(t) * F(t) ** (n - 1),
                           [0, mp.mpf(1) / n, 1, 3, mp.inf])

        return {"mean": g(1), "M": g(2), "S": chi(1, "min"), "L": chi(1, "max"), "S2": chi(2, "min"),
                "L2": chi(2, "max")}


def constants_section():
    print("== maxout constants: quadrature (scipy QUAD, rtol 1e-13) vs mpmath at 30 digits")
    print(f"{'K':>5} {'E[Xi]':>15} {'M':>15} {'S':>15} {'L':>15} {'S2':>15} {'L2':>15} {'c=1/M':>13}"
          f" {'max err est':>11} {'max |rel diff|':>14} {'ms':>7} {'mp ms':>7}")
    rows = [(k, None) for k in range(2, 11)] + [(5, (2, 2))]
    for k, pool in rows:
        t = time.perf_counter()
        c = maxout_constants(k, pool)
        ours_ms = 1e3 * (time.perf_counter() - t)
        t = time.perf_counter()
        ref = mp_constants(c.n)
        mp_ms = 1e3 * (time.perf_counter() - t)
        diff = max(abs(getattr(c, n) - float(v)) / max(1.0, abs(float(v))) for n, v in ref.items())
        err = max(c.errors[n] for n in ref)
        name = str(k) if pool is None else f"{k}x{c.pool}"
        print(f"{name:>5} {c.mean:15.12f} {c.M:15.12f} {c.S:15.12f} {c.L:15.12f} {c.S2:15.12f} {c.L2:15.12f}"
              f" {c.c:13.10f} {err:11.1e} {diff:14.1e} {ours_ms:7.1f} {mp_ms:7.1f}")
    print("(first call per rank includes the cached quadrature set-up; S, L: smallest / largest of K chi2_1)")


def deep_maxout(k, depth, width, c):
    layers, f = [], width
    for _ in range(depth):
        layers.append(rnn.Maxout(f, width, k))
        f = width
    layers.append(nn.Linear(f, 1))
    return maxout_(nn.Sequential(*layers), c=c)


def moments_section(k, depth, width, inits, samples, plot):
    M = maxout_constants(k).M
    print(f"\n== E||J u||^2 across depth: maxout rank {k}, width {width}, input dim {width}, zero biases, "
          f"{inits} initializations x {samples // inits} (x, u) pairs, u uniform on the sphere")
    res = {}
    for name, c in (("maxout c=1/M", None), ("He c=2", 2.0)):
        t = time.perf_counter()
        res[name] = gradient_moments(lambda: deep_maxout(k, depth, width, c), n_samples=samples, n_inits=inits)
        print(f"{name}: {time.perf_counter() - t:.2f} s")
    a, b = res["maxout c=1/M"], res["He c=2"]
    print(f"{'depth':>5} {'width':>5} | {'maxout E||Ju||^2':>22} {'Thm 1 lower':>11} {'upper':>10} {'aligned':>8} |"
          f" {'He E||Ju||^2':>22} {'Thm 1 lower':>11} {'upper':>10} {'aligned':>10} | {'He/maxout':>9}")
    for i, dpt in enumerate(a.depths):
        print(f"{dpt:5d} {a.widths[i]:5d} | {a.sq_mean[i]:11.4g} +- {a.sq_se[i]:8.2g} {a.sq_lower[i]:11.3g}"
              f" {a.sq_upper[i]:10.3g} {a.sq_aligned[i]:8.4g} | {b.sq_mean[i]:11.4g} +- {b.sq_se[i]:8.2g}"
              f" {b.sq_lower[i]:11.3g} {b.sq_upper[i]:10.3g} {b.sq_aligned[i]:10.4g} |"
              f" {b.sq_mean[i] / a.sq_mean[i]:9.3g}")
    h = slice(0, depth)
    tail = slice(depth - max(depth // 4, 2), depth)
    for name, r in res.items():
        ls = np.arange(1, depth + 1)
        growth = np.exp(np.polyfit(ls, np.log(r.sq_mean[h]), 1)[0])
        late = np.exp(np.polyfit(ls[tail], np.log(r.sq_mean[tail]), 1)[0])
        inside = r.within_bounds(4.0).all()
        print(f"{name}: growth per layer {growth:.4f} over all hidden layers, {late:.4f} over the last "
              f"{tail.stop - tail.start}; within Theorem 1 bounds (4 SE) at every depth: {inside}")
    print(f"(aligned u = x/|x| with zero biases: exactly (n_l/n_0)(c M)^l; He's per-layer factor is 2 M = {2 * M:.4f},"
          f" maxout's is 1)")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        a.plot(ax=axes[0])
        axes[0].set_title(f"maxout init, K={k}")
        b.plot(ax=axes[1])
        axes[1].set_title(f"He init (c=2), K={k}")
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
        print(f"plot written to {plot}")


def curves_section(k, depth, width, inits):
    print(f"\n== expected length distortion of segments, maxout rank {k}, depth {depth}, width {width}")
    for name, c in (("maxout c=1/M", None), ("He c=2", 2.0)):
        t = time.perf_counter()
        r = curve_length_distortion(lambda: deep_maxout(k, depth, width, c), n_curves=8, n_inits=inits)
        print(f"{name} ({r.method}, {time.perf_counter() - t:.1f} s): distortion at depth "
              + ", ".join(f"{d}: {m:.3g}" for d, m in zip(r.depths[::4], r.distortion_mean[::4]))
              + f"; final {r.distortion_mean[-1]:.3g} (bounds {r.lower[-1]:.3g} .. {r.upper[-1]:.3g},"
              f" Jensen {r.upper_jensen[-1]:.3g})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--inits", type=int, default=16)
    p.add_argument("--samples", type=int, default=2048)
    p.add_argument("--threads", type=int, default=None, help="pin torch to this many threads (default: torch's default, as a user gets)")
    p.add_argument("--curves", action="store_true", help="also run the curve length distortion")
    p.add_argument("--plot", default=None, help="write the moments-vs-depth figure here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    constants_section()
    moments_section(args.k, args.depth, args.width, args.inits, args.samples, args.plot)
    if args.curves:
        curves_section(args.k, min(args.depth, 10), args.width, min(args.inits, 4))
    print(f"\ntotal {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
