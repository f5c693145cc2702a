"""Local complexity of a fixed one-hidden-layer network under N(0, I): the closed form beside every
estimator (smoothed over samples, line walks, and in 2-D the exact plane partition).

    .venv/bin/python benchmarks/complexity_closed_form.py

One hidden layer, x ~ N(0, I): z_k = w_k.x + b_k ~ N(b_k, |w_k|^2), so
LC_sigma = sum_k |w_k| N(b_k; 0, sigma^2 + |w_k|^2) and LC_0 its sigma -> 0 limit. Networks:
5-32-1 and 2-32-1 ReLU (torch default initialization, seed 0, biases scaled by 3 so that they
matter). Estimates come with their standard errors; the last column is (estimate - closed form) / SE.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from relulab import PLNet
from relulab.complexity import exact_lc_2d, gaussian, line_lc, local_complexity, shallow_gaussian_lc


def main():
    print(f"{'net':<8}{'estimator':<34}{'sigma':>6}{'closed form':>14}{'estimate':>14}{'SE':>10}{'z':>7}{'s':>7}")
    for d in (5, 2):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, 1)).double()
        with torch.no_grad():
            model[0].bias.mul_(3)
        net = PLNet.from_torch(model, (d,))
        W, b = model[0].weight.detach(), model[0].bias.detach()
        dens = gaussian(0.0, 1.0, d)
        name = f"{d}-32-1"
        for sigma in (0.05, 0.2, 1.0):
            cf = shallow_gaussian_lc(W, b, sigma)
            t0 = time.process_time()
            r = local_complexity(net, dens, sigma, n_samples=100000, seed=1)
            dt = time.process_time() - t0
            print(f"{name:<8}{'smoothed, 1e5 samples':<34}{sigma:>6g}{cf:>14.6f}{r.value:>14.6f}{r.stderr:>10.2g}"
                  f"{(r.value - cf) / r.stderr:>7.2f}{dt:>7.2f}")
        cf0 = shallow_gaussian_lc(W, b, 0.0)
        t0 = time.process_time()
        r = line_lc(net, dens, n_lines=5000, seed=2)
        dt = time.process_time() - t0
        print(f"{name:<8}{'lines (Crofton), 5000 lines':<34}{0:>6g}{cf0:>14.6f}{r.value:>14.6f}{r.stderr:>10.2g}"
              f"{(r.value - cf0) / r.stderr:>7.2f}{dt:>7.2f}")
        if d == 2:
            t0 = time.process_time()
            e = exact_lc_2d(net, dens)
            dt = time.process_time() - t0
            print(f"{name:<8}{'exact 2-D partition':<34}{0:>6g}{cf0:>14.6f}{e.value:>14.10f}{'exact':>10}"
                  f"{'':>7}{dt:>7.2f}  (relative error {abs(e.value - cf0) / cf0:.1e})")


if __name__ == "__main__":
    main()
