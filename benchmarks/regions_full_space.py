"""Activation regions of whole input spaces: relulab's exact enumeration against relucent.

One command::

    make peers                                                   # once: the peers' environment
    .venv/bin/python benchmarks/regions_full_space.py            # peer table + growth sweeps
    .venv/bin/python benchmarks/regions_full_space.py --quick    # first network only, no sweeps
    .venv/bin/python benchmarks/regions_full_space.py --no-peer  # relulab alone

For each network ``relucent.set_seeds(seed); relucent.mlp(widths, add_last_relu=True)`` (built by
``benchmarks/relucent_peer.py`` in the peers' environment ``.peers-venv``, or ``--peer-python``),
relucent counts the regions of all of R^d as its users run it, ``Complex(model).bfs()``
(breadth-first search over the regions' facets, one LP each, then its own completeness check) in a
subprocess and writes the weights to a safetensors file (weights only); relulab loads the same weights into a
``torch.nn.Sequential`` and runs ``relulab.regions.full_space(net)`` (all of R^d, default options:
patterns, witnesses, boundedness, neighbour graph, linear regions, decision boundary). Both sides run
in the same invocation on the same machine, one after the other. Reported: both counts, wall-clock and
CPU seconds (relucent's include its worker processes), regions per second and the speed ratio (wall
and CPU). relulab's time is the median of ``--repeats`` runs; relucent runs once (minutes per
network); on networks deeper than two hidden layers it is stopped after ``--peer-time-limit`` seconds
(a full search takes hours there), its count is then a lower bound (``<=`` in the table: every region it
found is among relulab's count; its completeness check has not run) and the ratio compares regions per
second. Both run with their defaults: relulab with torch's default threads (it picks its own for small
operations; ``--threads N`` pins torch), relucent with its default worker pool. ``--load N`` runs N
CPU-bound processes for the whole run (stopped at the end), to measure under load.

The sweeps time relulab alone on random networks of growing size (regions, seconds, microseconds per
region), to show how the time grows with the number of regions and with the input dimension.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import relulab  # noqa: E402
from relulab.regions import full_space  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from load import add_run_arguments, apply_threads, cpu_load  # noqa: E402
from peers import add_peer_argument, peer_python, run_peer_code  # noqa: E402

_PEER_CODE = r"""
import json, resource, sys, time
from relucent_peer import build, count_regions, finish
from safetensors.torch import save_file
model = build({widths!r}, {seed!r})
save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, {out!r})
def cpu():  # this process and its finished worker processes (relucent's search uses a pool)
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
c0 = cpu()
count, secs, complete = count_regions(model, {limit!r})
cpu = cpu() - c0  # an unfinished search's live workers are not counted: a lower bound then
print(json.dumps({{"count": count, "seconds": secs, "cpu_seconds": cpu, "complete": complete}}))
finish()
"""


def run_peer(widths, seed, weights_path: str, python, time_limit=None) -> dict:
    code = _PEER_CODE.format(widths=list(widths), seed=seed, out=weights_path, limit=time_limit)
    res = run_peer_code(python, code, timeout=None if time_limit is None else time_limit + 600)
    if res.returncode != 0:
        raise RuntimeError(f"relucent failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def load_sequential(weights_path: str, widths) -> nn.Module:
    """fc0, relu0, fc1, relu1, ... as an nn.Sequential with the peer's weights (float64)."""
    from safetensors.torch import load_file

    sd = load_file(weights_path)
    layers = []
    for i in range(len(widths) - 1):
        layers += [nn.Linear(widths[i], widths[i + 1]), nn.ReLU()]
    model = nn.Sequential(*layers).double()
    state = {}
    for k, v in sd.items():
        name, p = k.split(".")
        state[f"{2 * int(name[2:])}.{p}"] = v.double()
    model.load_state_dict(state)
    return model.eval()


def time_relulab(net, repeats: int, **kw):
    walls, cpus, res = [], [], None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        res = full_space(net, **kw)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return res, statistics.median(walls), statistics.median(cpus)


def random_mlp(widths, seed: int, last_relu: bool = True) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1]).double()
        bound = 1.0 / math.sqrt(widths[i])
        with torch.no_grad():
            lin.weight.copy_((torch.rand(lin.weight.shape, generator=g, dtype=torch.float64) * 2 - 1) * bound)
            lin.bias.copy_((torch.rand(lin.bias.shape, generator=g, dtype=torch.float64) * 2 - 1) * bound)
        layers.append(lin)
        if i < len(widths) - 2 or last_relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def peer_table(args):
    rows = []
    print("relucent (LP search over the dual graph) vs relulab.regions.full_space, all of R^d")
    hdr = (f"{'widths':<16}{'seed':>5}{'relucent':>10}{'relulab':>9}{'same':>6}{'relucent s':>12}{'relulab s':>11}"
           f"{'relucent r/s':>14}{'relulab r/s':>13}{'ratio wall':>12}{'ratio cpu':>11}")
    print(hdr)
    print("-" * len(hdr))
    for widths in args.widths:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "weights.safetensors")
                limit = args.peer_time_limit if len(widths) > args.peer_full_depth + 1 else None
                peer = run_peer(widths, seed, path, args.peer_python, limit)
                model = load_sequential(path, widths)
            net = relulab.PLNet.from_torch(model, (widths[0],))
            res, wall, cpu = time_relulab(net, args.repeats)
            row = {
                "widths": widths, "seed": seed, "relucent_regions": peer["count"], "relulab_regions": res.count,
                "relucent_complete": peer["complete"],
                # a stopped relucent search has found a subset of the regions: it can only be checked as a bound
                "identical": peer["count"] == res.count if peer["complete"] else peer["count"] <= res.count, "relucent_seconds": peer["seconds"],
                "relucent_cpu_seconds": peer["cpu_seconds"], "relulab_seconds": wall, "relulab_cpu_seconds": cpu,
                "relucent_regions_per_s": peer["count"] / peer["seconds"], "relulab_regions_per_s": res.count / wall,
                "ratio_wall": (res.count / wall) / (peer["count"] / peer["seconds"]),
                "ratio_cpu": (res.count / cpu) / (peer["count"] / max(peer["cpu_seconds"], 1e-9)),
                "linear_regions": res.linear_count, "bounded": int(res.bounded.sum()),
                "decision_boundary_pieces": res.decision_boundary_pieces,
            }
            rows.append(row)
            print(f"{str(widths):<16}{seed:>5}{row['relucent_regions']:>10}{row['relulab_regions']:>9}"
                  f"{('yes' if peer['complete'] else '<=') if row['identical'] else 'NO':>6}{row['relucent_seconds']:>12.2f}{wall:>11.3f}"
                  f"{row['relucent_regions_per_s']:>14.1f}{row['relulab_regions_per_s']:>13.0f}"
                  f"{row['ratio_wall']:>12.0f}{row['ratio_cpu']:>11.0f}", flush=True)
    return rows


def sweeps(args):
    out = []
    print()
    print("growth: relulab alone, random MLPs (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and biases, ReLU after")
    print("every layer), all of R^d; time per region as the count grows (width sweep) and with the input dimension")
    hdr = f"{'widths':<20}{'regions':>9}{'cells':>9}{'seconds':>10}{'regions/s':>11}{'us/region':>11}  complete"
    print(hdr)
    print("-" * len(hdr))
    configs = ([[4, w, w, 2] for w in (4, 6, 8, 10, 12, 14, 16)] + [[d, 8, 8, 1] for d in (2, 3, 4, 5, 6)]
               + [[8, w, 1] for w in (8, 10, 12)])
    for widths in configs:
        net = relulab.PLNet.from_torch(random_mlp(widths, 0), (widths[0],))
        res, wall, _ = time_relulab(net, 1 if widths[0] >= 5 or widths[1] >= 12 else args.repeats,
                                    time_limit=args.sweep_limit)
        row = {"widths": widths, "regions": res.count, "cells": res.cells, "seconds": wall, "complete": res.complete}
        out.append(row)
        print(f"{str(widths):<20}{res.count:>9}{res.cells:>9}{wall:>10.3f}{res.count / wall:>11.0f}"
              f"{1e6 * wall / max(1, res.count):>11.1f}  {'yes' if res.complete else 'no (time limit)'}", flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", nargs="*", default=["4,10,10,2", "4,10,10,10,2"],
                   help="peer-table networks as comma-separated layer widths (default 4,10,10,2 4,10,10,10,2)")
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2], help="relucent seeds (default 0 1 2)")
    p.add_argument("--repeats", type=int, default=3, help="relulab runs per network, median reported (default 3)")
    add_run_arguments(p)
    add_peer_argument(p)
    p.add_argument("--no-peer", action="store_true", help="skip the relucent comparison")
    p.add_argument("--no-sweep", action="store_true", help="skip the growth sweeps")
    p.add_argument("--quick", action="store_true", help="first network and seed only, no sweeps")
    p.add_argument("--sweep-limit", type=float, default=300.0, help="time limit per sweep network (s)")
    p.add_argument("--peer-time-limit", type=float, default=600.0,
                   help="stop relucent after this many seconds (default 600) on networks deeper than "
                        "--peer-full-depth; its count is then a lower bound, and the ratio compares regions per "
                        "second")
    p.add_argument("--peer-full-depth", type=int, default=2,
                   help="hidden layers up to which relucent always runs to completion")
    p.add_argument("--json", help="also write all rows to this file")
    args = p.parse_args(argv)
    args.widths = [[int(w) for w in s.split(",")] for s in args.widths]
    if args.quick:
        args.widths, args.seeds, args.no_sweep = args.widths[:1], args.seeds[:1], True
    if not args.no_peer:
        args.peer_python = peer_python(args.peer_python)
    print(f"{apply_threads(args)}, relulab {relulab.__version__}")
    result = {}
    with cpu_load(args.load):
        if not args.no_peer:
            result["peer"] = peer_table(args)
        if not args.no_sweep:
            result["sweep"] = sweeps(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
