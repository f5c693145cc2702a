"""Benchmark of exact local region counts in 2-D neighbourhoods, and of the grokking proxy against them.

    .venv/bin/python benchmarks/complexity_counts.py               # 100 points per configuration
    .venv/bin/python benchmarks/complexity_counts.py --points 20   # quicker

For each network and radius: around ``--points`` random inputs (uniform in [0, 1]^d), the exact
activation regions meeting a diamond ``|s| + |t| <= r`` in a random 2-D slice
(``local_counts(shape="diamond")``: one exact plane partition per point), reported as regions per CPU
second, and the grokking proxy with 4 vertices ``x +- r v_1, x +- r v_2`` on the same slice (so it
looks at exactly the same neighbourhood). The proxy counts units whose sign differs at the vertices;
the exact count of units whose boundary meets the diamond (``units_crossing``) is its target, which
the proxy can only under-count (a bent boundary can enter and leave between vertices). The table
gives the mean exact count, the proxy's mean, its mean absolute error and the fraction of points
where it is exact, and the exact region count beside them (the proxy says nothing about regions:
k crossing units make between k + 1 and O(k^2) regions in a 2-D slice).

Times are CPU seconds of this process (torch's default threads, as a user gets).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from relulab import PLNet
from relulab.complexity import grokking_proxy, local_counts, random_frame


def mlp(widths, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


CONFIGS = {
    "digits 64-200-200-200-10": ((64, 200, 200, 200, 10), (0.1, 0.5)),
    "mnist 784-256-256-10": ((784, 256, 256, 10), (0.1, 0.5)),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=100)
    a = p.parse_args()
    print(f"{'network':<26}{'r':>5}{'regions/s':>11}{'regions':>9}{'crossing':>9}{'proxy':>8}{'MAE':>7}"
          f"{'exact':>7}")
    for name, (widths, radii) in CONFIGS.items():
        model = mlp(widths).double()
        net = PLNet.from_torch(model, (widths[0],))
        x = torch.rand(a.points, widths[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        for r in radii:
            gen = torch.Generator().manual_seed(2)
            frames = torch.stack([random_frame(2, widths[0], gen) for _ in range(a.points)])
            t0 = time.process_time()
            exact = local_counts(net, x, r, shape="diamond", directions=frames)
            dt = time.process_time() - t0
            proxy = torch.stack([grokking_proxy(net, x[i:i + 1], r, n_vertices=4, frame=frames[i]).counts[0]
                                 for i in range(a.points)])
            err = (proxy - exact.units_crossing).abs().double()
            print(f"{name:<26}{r:>5g}{exact.count / dt:>11.0f}{exact.mean:>9.1f}"
                  f"{float(exact.units_crossing.double().mean()):>9.2f}{float(proxy.double().mean()):>8.2f}"
                  f"{float(err.mean()):>7.2f}{float((err == 0).double().mean()):>7.2f}")


if __name__ == "__main__":
    main()
