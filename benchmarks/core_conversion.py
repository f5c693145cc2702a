"""Benchmark of ``PLNet.from_torch``: the cost of checking a conversion against the module.

    .venv/bin/python benchmarks/core_conversion.py            # default repeats 7
    .venv/bin/python benchmarks/core_conversion.py --repeats 3

Networks (torch default initialization, seed 0, float32 modules as users have them):

* ``mlp 784-256-256-10``: Linear, ReLU, Linear, ReLU, Linear;
* ``cnn 1x28x28``: Conv2d(1, 8, 3, p1), ReLU, MaxPool2d(2), Conv2d(8, 16, 3, p1), ReLU, MaxPool2d(2),
  Flatten, Linear(784, 64), ReLU, Linear(64, 10);
* ``mlp 2-8-8-1``: a small network as the tests and the demo use.

Each row: the best of ``--repeats`` wall times of ``PLNet.from_torch(module, shape, verify=False)``
(the conversion alone) and of the default ``verify=True`` (conversion, then the check on 16 random
inputs and two points around the kink of up to 64 units, the module run on float64 copies of its
weights), their difference and ratio. Torch threads: the defaults a user gets.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import relulab


def networks():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 64), nn.ReLU(),
                        nn.Linear(64, 10))
    small = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    return [("mlp 784-256-256-10", mlp, (784,)), ("cnn 1x28x28", cnn, (1, 28, 28)), ("mlp 2-8-8-1", small, (2,))]


def best(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{'network':22s} {'convert ms':>11s} {'convert+verify ms':>18s} {'verify ms':>10s} {'ratio':>7s}")
    for name, module, shape in networks():
        plain = best(lambda: relulab.PLNet.from_torch(module, shape, verify=False), args.repeats)
        checked = best(lambda: relulab.PLNet.from_torch(module, shape), args.repeats)
        print(f"{name:22s} {plain * 1e3:11.1f} {checked * 1e3:18.1f} {(checked - plain) * 1e3:10.1f} "
              f"{checked / plain:7.1f}")


if __name__ == "__main__":
    main()
