"""The two full-space engines side by side: ``method="vertex"`` (cells by their vertices) against
``method="facet"`` (cells by their inequalities, certified), on the same networks in one process,
and all of R^d against a large box for a pure max-pool network. The facet engine runs twice over R^d:
with its default charts (the 2^d orthants of d first-layer boundaries, one chart per region) and with
the d + 1 pyramid charts it used before (``facet-pyramids``: a region meeting several pyramids is
refined in each), with the cells and LPs of each.

    .venv/bin/python benchmarks/regions_engines.py [--nets 8,12,1:0 6,8,8,2:0 7,8,8,2:0]
        [--no-maxpool] [--time-limit 300]

Networks are ``nn.Sequential`` MLPs (ReLU after every hidden layer, linear output) built after
``torch.manual_seed(seed)``. Prints count, complete, certified, wall and CPU seconds per engine, with the load average; the counts
must agree.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

import relulab
import relulab.regions._enum_lp as E
from relulab.regions import full_space


def mlp(widths, seed):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


def timed(net, **kw):
    t, c = time.perf_counter(), time.process_time()
    r = full_space(net, **kw)
    return r, time.perf_counter() - t, time.process_time() - c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", nargs="*", default=["8,12,1:0", "6,8,8,2:0", "7,8,8,2:0"],
                    help="WIDTHS:SEED, e.g. 8,12,1:0")
    ap.add_argument("--no-maxpool", action="store_true", help="skip the max-pool R^d vs box rows")
    ap.add_argument("--time-limit", type=float, default=300.0, help="per run (default 300 s)")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print("| net | engine | regions | complete | certified | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.nets:
        w, seed = spec.split(":")
        widths = [int(v) for v in w.split(",")]
        net = relulab.PLNet.from_torch(mlp(widths, int(seed)), (widths[0],))
        for method in ("vertex", "facet", "facet-pyramids"):
            E.USE_ORTHANTS = method == "facet"
            r, s, cpu = timed(net, method=method.split("-")[0], time_limit=args.time_limit)
            E.USE_ORTHANTS = True
            extra = f" ({r.stats['charts']}: {r.cells} cells, {r.stats['lps']} LPs)" if "lps" in r.stats else ""
            print(f"| {w}:{seed} | {method}{extra} | {r.count} | {r.complete} | {r.certified} | {s:.1f} | {cpu:.1f} |",
                  flush=True)
    if not args.no_maxpool:
        pool = nn.Sequential(nn.Unflatten(1, (1, 8)), nn.MaxPool1d(3, stride=1), nn.Flatten(), nn.Linear(6, 1))
        net = relulab.PLNet.from_torch(pool.double(), (8,))
        for method in ("facet", "vertex"):
            for box in ((-1e3, 1e3), None):
                r, s, cpu = timed(net, method=method, box=box, time_limit=args.time_limit)
                where = "all of R^8" if box is None else "box 1e3"
                print(f"| maxpool1d(3) over 8, {where} | {method} | {r.count} | {r.complete} | {r.certified} "
                      f"| {s:.1f} | {cpu:.1f} |", flush=True)


if __name__ == "__main__":
    main()
