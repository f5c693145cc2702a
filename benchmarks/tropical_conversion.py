"""Tropical conversion of ReLU MLPs with and without reduction: monomials of p and q and seconds
against depth and width (2 inputs, one output, random weights, fixed seeds).

    .venv/bin/python benchmarks/tropical_conversion.py [--max-depth 4] [--widths 2,3,4] [--budget 200000]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from relulab import PLNet
from relulab.tropical import from_network


def mlp(d, width, depth, seed):
    torch.manual_seed(seed)
    mods, fan = [], d
    for _ in range(depth):
        mods += [nn.Linear(fan, width), nn.ReLU()]
        fan = width
    mods.append(nn.Linear(fan, 1))
    return PLNet.from_torch(nn.Sequential(*mods), (d,))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-depth", type=int, default=4)
    ap.add_argument("--widths", default="2,3,4")
    ap.add_argument("--budget", type=int, default=200_000, help="max_monomials")
    ap.add_argument("--time-limit", type=float, default=120.0, help="per conversion")
    args = ap.parse_args()
    print(f"{'width':>5} {'depth':>5} | {'raw p':>7} {'raw q':>7} {'raw s':>7} | {'red. p':>6} {'red. q':>6} "
          f"{'red. s':>7} {'certified':>9}")
    for w in (int(v) for v in args.widths.split(",")):
        for depth in range(1, args.max_depth + 1):
            net = mlp(2, w, depth, seed=0)
            raw = from_network(net, max_monomials=args.budget, time_limit=args.time_limit)
            rs = f"{raw.sizes[0][0]:>7} {raw.sizes[0][1]:>7} {raw.seconds:>7.2f}" if raw.complete else \
                f"{'> budget':>15} {raw.seconds:>7.2f}"
            red = from_network(net, exact=True, reduce=True, max_monomials=args.budget, time_limit=args.time_limit)
            ds = f"{red.sizes[0][0]:>6} {red.sizes[0][1]:>6} {red.seconds:>7.2f} {str(red.certified):>9}" \
                if red.complete else f"{'stopped':>13} {red.seconds:>7.2f} {'-':>9}"
            print(f"{w:>5} {depth:>5} | {rs} | {ds}", flush=True)


if __name__ == "__main__":
    main()
