"""Split enumeration: one count over cells on 1 and 2 workers against the single-process engine.

Prints the single-process time, the split times (in-process cells, and a local pool of 2), the merge
overhead, the cells' total, largest and smallest time, and a projection of the time with W workers:
T(W) ~ max(sum of cell times / W, largest cell) + merge (ignoring start-up), with the speed-up
against the single-process run, from wall times and from CPU times (on a shared machine the wall
times of runs made minutes apart see different loads; CPU times do not). Checks that every run gives the same regions (count and patterns)
and prints both linear counts (the single process's fixed gradient tolerance can merge regions
whose maps differ slightly; the split decides equality under a rounding bound).

    PYTHONPATH=src python benchmarks/experiments_split.py [--width 170] [--depth 3] [--cells 16] [--grid]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import torch

from relulab import regions
from relulab.core.plnet import PLNet
from relulab.regions.split import split_full_space


def mlp(d, widths, seed):
    g = torch.Generator().manual_seed(seed)
    layers, fan = [], d
    for w in widths:
        lin = torch.nn.Linear(fan, w, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(w, fan, generator=g, dtype=torch.float64) * (2.0 / fan) ** 0.5)
            lin.bias.copy_(torch.randn(w, generator=g, dtype=torch.float64) * 0.5)
        layers += [lin, torch.nn.ReLU()]
        fan = w
    out = torch.nn.Linear(fan, 1, dtype=torch.float64)
    with torch.no_grad():  # from the seeded generator too: the linear count depends on the output weights
        out.weight.copy_(torch.randn(1, fan, generator=g, dtype=torch.float64) * fan ** -0.5)
        out.bias.zero_()
    return PLNet.from_torch(torch.nn.Sequential(*layers, out), (d,))


def cpu() -> float:
    """CPU seconds of this process and of its finished children (pool workers)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=170)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--cells", type=int, default=16)
    ap.add_argument("--half-side", type=float, default=3.0)
    ap.add_argument("--rd", action="store_true", help="all of R^d (cones) instead of a box")
    ap.add_argument("--grid", action="store_true", help="box: a grid of cells instead of region-balanced cells")
    args = ap.parse_args()
    net = mlp(args.dim, [args.width] * args.depth, 0)
    box = None if args.rd else (-args.half_side, args.half_side)
    fn = regions.full_space
    print(f"start: {load()}", flush=True)
    t, c = time.perf_counter(), cpu()
    ref = fn(net, box=box)
    t_single, c_single = time.perf_counter() - t, cpu() - c
    print(f"net {args.dim}-{'-'.join([str(args.width)] * args.depth)}-1, domain "
          f"{'R^d' if box is None else f'box [-{args.half_side}, {args.half_side}]^{args.dim}'}: "
          f"{ref.count} regions, {ref.linear_count} linear, certified {ref.certified}; single process {t_single:.1f} s ({c_single:.1f} CPU s; {load()})", flush=True)
    for workers in (1, 2):
        c = cpu()
        s = split_full_space(net, box=box, cells=args.cells, workers=workers, balance=not args.grid)
        c = cpu() - c
        same = s.count == ref.count and {tuple(r) for r in ref.patterns.tolist()} == {tuple(r) for r in s.patterns.tolist()}
        tot, big = sum(s.cell_seconds), max(s.cell_seconds)
        ctot, cbig = sum(s.cell_cpu_seconds), max(s.cell_cpu_seconds)
        if workers == 1:  # the projection uses the cells' times without contention between workers
            proj_tot, proj_big, proj_merge = tot, big, s.merge_seconds
            cpu_tot, cpu_big, cpu_merge = ctot, cbig, s.merge_cpu_seconds
        print(f"split, {s.cells} {'grid' if args.grid else 'balanced'} cells, {workers} worker(s) [{s.executor}]: "
              f"{s.seconds:.1f} s ({c:.1f} CPU s; {load()}) (x{t_single / s.seconds:.2f} vs single), merge {s.merge_seconds:.2f} s, pieces "
              f"{s.pieces} for {s.count} regions, cells total {tot:.1f} s / largest {big:.1f} s / smallest "
              f"{min(s.cell_seconds):.1f} s (CPU: total {ctot:.1f} s / largest {cbig:.1f} s, merge "
              f"{s.merge_cpu_seconds:.2f} s); same regions and patterns: {same}; linear count {s.linear_count} "
              f"(single process {ref.linear_count}), certified {s.certified}", flush=True)
    print("projection (from the in-process cell times and merge above, start-up ignored; wall, then CPU "
          "seconds against the single run's CPU seconds, which a shared machine does not inflate):")
    for w in (2, 4, 8, 16):
        proj = max(proj_tot / w, proj_big) + proj_merge
        cproj = max(cpu_tot / w, cpu_big) + cpu_merge
        print(f"  {w:>2} workers: ~{proj:.1f} s, speed-up x{t_single / proj:.2f}; from CPU ~{cproj:.1f} s, "
              f"speed-up x{c_single / cproj:.2f}")


if __name__ == "__main__":
    main()
