"""Max-pool region counts: the dedicated counter vs relulab's generic full-space enumeration (same
layers, ratio of wall times), the counter's growth with the input size, and the 1-D / 2-D tables.

    .venv/bin/python benchmarks/combinatorics_maxpool.py [--max-generic-n 7] [--facet-n 14]
"""

from __future__ import annotations

import argparse
import time

import torch

from relulab import PLNet, regions
from relulab.combinatorics import count_maxpool


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-generic-n", type=int, default=7, help="largest 1-D length given to the generic engine")
    ap.add_argument("--facet-n", type=int, default=14, help="1-D length of the facet table")
    args = ap.parse_args()
    full = regions.full_space
    print("== counter vs generic full-space enumeration (1-D, one channel) ==")
    print(f"{'n':>3} {'k':>2} {'s':>2} {'regions':>9} {'counter s':>10} {'generic s':>10} {'ratio':>8}")
    for k, s in ((2, 1), (3, 1), (3, 2)):
        for n in range(k + 1, args.max_generic_n + 1):
            t = time.perf_counter()
            r = count_maxpool(n, k, s, facets=False)
            tc = time.perf_counter() - t
            net = PLNet.from_torch(torch.nn.MaxPool1d(k, s), (1, n))
            t = time.perf_counter()
            g = full(net)
            tg = time.perf_counter() - t
            assert g.count == r.count, (n, k, s, g.count, r.count)
            print(f"{n:>3} {k:>2} {s:>2} {r.count:>9} {tc:>10.4f} {tg:>10.3f} {tg / tc:>8.0f}x")
    print("\n== growth with n (1-D, k = 3, s = 1) ==")
    for n in (10, 20, 30, 60, 120):
        t = time.perf_counter()
        r = count_maxpool(n, 3, 1, facets=False)
        print(f"n = {n:>3}: {r.count} regions in {time.perf_counter() - t:.4f} s")
    print("\n== 1-D table: vertices at n = 30, facets at n = %d ==" % args.facet_n)
    print(f"{'k':>2} {'s':>2} {'vertices (n=30)':>16} {'vertices':>9} {'facets':>7} {'seconds':>8}")
    for k in (2, 3, 4, 5):
        for s in (1, 2, 3):
            t = time.perf_counter()
            v30 = count_maxpool(30, k, s, facets=False).count
            r = count_maxpool(args.facet_n, k, s)
            print(f"{k:>2} {s:>2} {v30:>16} {r.count:>9} {r.facets:>7} {time.perf_counter() - t:>8.3f}")
    print("\n== 2-D, 2x2 windows ==")
    for size in ((3, 3), (4, 4), (5, 5), (6, 6)):
        for s in (1, 2):
            t = time.perf_counter()
            r = count_maxpool(size, 2, s, facets=size[0] * size[1] <= 16)
            print(f"{size[0]}x{size[1]} stride {s}: {r.count} regions, facets {r.facets}, "
                  f"{time.perf_counter() - t:.3f} s")


if __name__ == "__main__":
    main()
