"""Full-space enumeration on two workers: the facet engine's orthant charts against cells.

    .venv/bin/python benchmarks/regions_workers.py [--nets 8-16-1:0 5-10-10-2:11] [--cell-time-limit 60]

For each network (widths:seed, PyTorch's default initialization from that seed), in one run:
one process (``full_space(net)``), ``full_space(net, workers=2)`` (what a user who asks for two
workers gets: at d >= 5 the facet engine's orthant charts dealt to two local processes, the
one-process result) and ``full_space(net, split=8, workers=2)`` (the domain cut into 8 cones run
as cells and merged by pattern; each cell stopped after ``--cell-time-limit`` seconds, its count
then a lower bound). Wall seconds, CPU seconds of the whole process tree, regions, whether complete
and certified; the regions of every complete run are checked to be the same. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import torch
from torch import nn

import relulab
from relulab.regions import full_space


def cpu() -> float:
    """CPU seconds of this process and its finished children (the pool's workers)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def net_of(spec: str):
    widths, seed = spec.split(":")
    widths = [int(w) for w in widths.split("-")]
    torch.manual_seed(int(seed))
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return relulab.PLNet.from_torch(nn.Sequential(*layers), (widths[0],))


def pattern_set(res) -> set:
    return set(map(tuple, res.patterns.tolist()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", default=["8-16-1:0", "5-10-10-2:11"])
    ap.add_argument("--cell-time-limit", type=float, default=60.0)
    args = ap.parse_args()
    print(f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cores, load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"{'net':<14} {'run':<28} {'regions':>9} {'complete':>9} {'certified':>9} {'wall s':>8} {'CPU s':>8}")
    for spec in args.nets:
        net = net_of(spec)
        ref = None
        for name, kw in (("one process", {}), ("workers=2 (charts)", {"workers": 2}),
                         ("split=8, workers=2 (cells)", {"split": 8, "workers": 2,
                                                         "time_limit": args.cell_time_limit})):
            w, c = time.perf_counter(), cpu()
            res = full_space(net, **kw)
            w, c = time.perf_counter() - w, cpu() - c
            if ref is None:
                ref = res
            elif res.complete:
                assert res.count == ref.count and pattern_set(res) == pattern_set(ref), (spec, name)
            print(f"{spec:<14} {name:<28} {res.count:>9,} {str(res.complete):>9} {str(res.certified):>9} "
                  f"{w:>8.2f} {c:>8.2f}", flush=True)
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
