"""Labellings of a data set realizable by shallow ReLU networks: relulab's pattern search
(`relulab.tropical.relu_classifications`, defaults) against the direct route, one MILP per labelling and
output-sign split (HiGHS `scipy.optimize.milp`, relu by indicator variables on a normalized box), on the
same data sets; equal labelling sets are asserted, wall times and their ratio printed.

    .venv/bin/python benchmarks/tropical_relu_classifications.py [--max-n 5]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from relulab.tropical import milp_margin, relu_classifications


def milp_realizable(X, y, m, p) -> bool:
    return milp_margin(X, y, m, p) > 1e-7


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-n", type=int, default=5)
    args = ap.parse_args()
    cases = [("line", 1, 2), ("plane", 2, 1), ("plane", 2, 2), ("space", 3, 2)]
    print(f"{'data':>6} {'n':>2} {'m':>2} {'count':>6} {'search s':>9} {'MILP s':>8} {'ratio':>7}")
    for name, d, m in cases:
        for n in range(4, args.max_n + 1):
            X = np.random.default_rng(n).standard_normal((n, d))
            t = time.perf_counter()
            r = relu_classifications(X, m)
            ts = time.perf_counter() - t
            t = time.perf_counter()
            ref = {y for y in itertools.product((-1, 1), repeat=n)
                   if any(milp_realizable(X, np.array(y, float), m, p) for p in range(m + 1))}
            tm = time.perf_counter() - t
            assert ref == {tuple(v) for v in r.labelings.tolist()}, (name, n, m)
            print(f"{name:>6} {n:>2} {m:>2} {r.count:>6} {ts:>9.2f} {tm:>8.2f} {tm / ts:>6.1f}x")


if __name__ == "__main__":
    main()
