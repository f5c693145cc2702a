"""Activation regions of whole input spaces: relulab's exact enumeration against relucent.

One command::

    make peers                                                   # once: the peers' environment
    .venv/bin/python benchmarks/regions_full_space.py            # peer table + growth sweeps
    .venv/bin/python benchmarks/regions_full_space.py --quick    # first network only, no sweeps
    .venv/bin/python benchmarks/regions_full_space.py --no-peer  # relulab alone

Networks (widths:seed): the issue's table, 4,10,10,2 seeds 0-2, 4,10,10,10,2:0, 5,10,10,2:11,
6,8,8,8,2:12, 8,12,1:0, 8,16,1:0. For each network
``relucent.set_seeds(seed); relucent.mlp(widths, add_last_relu=True)`` (built by
``benchmarks/relucent_peer.py`` in the peers' environment ``.peers-venv``, or ``--peer-python``),
relucent counts the regions of all of R^d as its users run it, ``Complex(model).bfs()``
(breadth-first search over the regions' facets, one LP each, then its own completeness check) in a
subprocess and writes the weights to a safetensors file (weights only); relulab loads the same weights into a
``torch.nn.Sequential`` and runs ``relulab.regions.full_space(net)`` (all of R^d, default options: the
vertex engine for d <= 4 with boundedness, linear regions and decision boundary; the facet engine
for d >= 5 with patterns and proven witnesses) in a fresh subprocess, which also gives its peak
resident memory (``ru_maxrss``; the interpreter with torch loaded is reported too). Both sides run
in the same invocation on the same machine, one after the other. Reported: both counts, wall-clock and
CPU seconds (relucent's include its worker processes, the finished ones and, when it is stopped
at its time limit, the still-running ones, read from /proc), regions per second and the speed ratio (wall
and CPU). relulab's time is the median of ``--repeats`` runs; relucent runs once (minutes per
network); on networks deeper than two hidden layers it is stopped after ``--peer-time-limit`` seconds
(a full search takes hours there), its count is then a lower bound (``<=`` in the table: every region it
found is among relulab's count; its completeness check has not run) and the ratio compares regions per
second. Both run with their defaults: relulab with torch's default threads (it picks its own for small
operations; ``--threads N`` pins torch), relucent with its default worker pool. ``--workers N`` runs
relulab's facet engine on N local processes where it is the default engine (d >= 5:
``full_space(net, workers=N)`` where d >= 5 (the facet engine's orthant charts dealt between them); CPU seconds
then include the workers'). ``--load N`` runs N CPU-bound processes for the whole run (stopped at
the end), to measure under load.

The dimension sweep times relulab alone on one-hidden-layer networks d-m-1 with m the smallest width
above d whose Zaslavsky count sum_{i<=d} C(m, i) reaches ``--sweep-regions`` (so every d has about the
same number of regions, and bounded ones: with m <= d the arrangement is a product of half-spaces; every
count is checked against the formula), d = 2..12, with both engines (the
vertex engine only up to ``--vertex-max-d``), and plots microseconds per region against d
(``--plot``, default benchmarks/regions_full_space_d.png). Both engines run with their defaults, so the
vertex engine's time includes its proof where ``full_space`` proves it by default (a facet-engine
enumeration of the same network).
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
import os
def live_descendants_cpu():  # CPU of the still-running worker processes (and what they reaped), from /proc
    try:
        tick = os.sysconf("SC_CLK_TCK")
        procs = {{}}
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open(f"/proc/{{p}}/stat") as f:
                        rest = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                procs[int(p)] = (int(rest[1]), sum(int(v) for v in rest[11:15]))
    except (OSError, ValueError, AttributeError):
        return 0.0
    kids = {{}}
    for pid, (pp, _) in procs.items():
        kids.setdefault(pp, []).append(pid)
    total, todo = 0, list(kids.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        total += procs[pid][1]
        todo += kids.get(pid, [])
    return total / tick
def cpu():  # the whole process tree: this process, its finished workers and its live ones
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime + live_descendants_cpu()
c0 = cpu()
count, secs, complete = count_regions(model, {limit!r})
cpu = cpu() - c0
print(json.dumps({{"count": count, "seconds": secs, "cpu_seconds": cpu, "complete": complete}}))
finish()
"""


_RELULAB_CODE = r"""
import json, resource, sys, time
sys.path.insert(0, {src!r})
import torch
from torch import nn
import relulab
from relulab.regions import full_space
sys.path.insert(0, {bench!r})
from regions_full_space import load_sequential
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model = load_sequential({path!r}, {widths!r})
net = relulab.PLNet.from_torch(model, ({d},))
def children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
c0, k0, t0 = time.process_time(), children(), time.perf_counter()
res = full_space(net, **{kw!r})
wall, cpu = time.perf_counter() - t0, time.process_time() - c0 + children() - k0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"count": res.count, "seconds": wall, "cpu_seconds": cpu, "complete": res.complete,
                  "certified": res.certified, "method": res.stats.get("method")
                  + (f" x{{res.stats['workers']}}" if res.stats.get("workers") else ""),
                  "peak_kb": peak, "base_kb": base}}))
"""


def run_peer(widths, seed, weights_path: str, python, time_limit=None) -> dict:
    code = _PEER_CODE.format(widths=list(widths), seed=seed, out=weights_path, limit=time_limit)
    res = run_peer_code(python, code, timeout=None if time_limit is None else time_limit + 600)
    if res.returncode != 0:
        raise RuntimeError(f"relucent failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_relulab(widths, weights_path: str, workers: int | None = None) -> dict:
    """relulab's default full_space on the peer's weights, in a fresh interpreter (peak memory); with
    ``workers``, the facet engine's charts on that many local processes where the facet engine is
    the default (d >= 5). CPU time includes the worker processes'; peak memory is the driver's."""
    import subprocess

    from relulab.regions.space import FACET_MIN_D

    kw = {"workers": workers} if workers and widths[0] >= FACET_MIN_D else {}
    code = _RELULAB_CODE.format(src=str(ROOT / "src"), bench=str(ROOT / "benchmarks"), path=weights_path,
                                widths=list(widths), d=widths[0], kw=kw)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"relulab failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


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


def _loadavg() -> str:
    """The 1, 5 and 15 minute load averages (wall times on a shared machine depend on them)."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def zaslavsky(m: int, d: int) -> int:
    return sum(math.comb(m, i) for i in range(min(m, d) + 1))


def peer_table(args):
    rows = []
    print("relucent (LP search over the dual graph) vs relulab.regions.full_space (defaults), all of R^d")
    hdr = (f"{'widths':<16}{'seed':>5}{'relucent':>10}{'relulab':>9}{'same':>6}{'relucent s':>12}{'relulab s':>11}"
           f"{'relucent r/s':>14}{'relulab r/s':>13}{'ratio wall':>12}{'ratio cpu':>11}{'KB/region':>11}  engine")
    print(hdr)
    print("-" * len(hdr))
    for widths, seed in args.nets:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "weights.safetensors")
            peer = run_peer(widths, seed, path, args.peer_python, args.peer_time_limit)
            mine = run_relulab(widths, path, args.workers)
        wall, cpu = mine["seconds"], mine["cpu_seconds"]
        kb = (mine["peak_kb"] - mine["base_kb"]) / max(1, mine["count"])
        row = {
            "widths": widths, "seed": seed, "relucent_regions": peer["count"], "relulab_regions": mine["count"],
            "relucent_complete": peer["complete"], "relulab_certified": mine["certified"], "engine": mine["method"],
            # a stopped relucent search has found a subset of the regions: it can only be checked as a bound
            "identical": peer["count"] == mine["count"] if peer["complete"] else peer["count"] <= mine["count"],
            "relucent_seconds": peer["seconds"], "relucent_cpu_seconds": peer["cpu_seconds"],
            "relulab_seconds": wall, "relulab_cpu_seconds": cpu,
            "relucent_regions_per_s": peer["count"] / peer["seconds"], "relulab_regions_per_s": mine["count"] / wall,
            "ratio_wall": (mine["count"] / wall) / (peer["count"] / peer["seconds"]),
            "ratio_cpu": (mine["count"] / cpu) / (peer["count"] / max(peer["cpu_seconds"], 1e-9)),
            "relulab_peak_rss_kb": mine["peak_kb"], "relulab_base_rss_kb": mine["base_kb"], "kb_per_region": kb,
            "load_average": _loadavg(),
        }
        rows.append(row)
        print(f"{str(widths):<16}{seed:>5}{row['relucent_regions']:>10}{row['relulab_regions']:>9}"
              f"{('yes' if peer['complete'] else '<=') if row['identical'] else 'NO':>6}{row['relucent_seconds']:>12.2f}"
              f"{wall:>11.3f}{row['relucent_regions_per_s']:>14.1f}{row['relulab_regions_per_s']:>13.0f}"
              f"{row['ratio_wall']:>12.1f}{row['ratio_cpu']:>11.1f}{kb:>11.2f}  {mine['method']}"
              f"  (load {row['load_average']})", flush=True)
    return rows


def dimension_sweep(args):
    out = []
    print()
    print(f"time per region vs d: one hidden layer d-m-1, m the smallest width above d with >= {args.sweep_regions} "
          "regions (Zaslavsky), all of R^d")
    hdr = f"{'d':>3}{'m':>4}{'regions':>9}{'engine':>8}{'seconds':>10}{'cpu s':>8}{'us/region':>11}{'cpu us/region':>15}  check"
    print(hdr)
    print("-" * len(hdr))
    for d in range(2, 13):
        m = d + 1
        while zaslavsky(m, d) < args.sweep_regions:
            m += 1
        net = relulab.PLNet.from_torch(random_mlp([d, m, 1], 0, last_relu=False), (d,))
        for method in ("facet", "vertex"):
            if method == "vertex" and d > args.vertex_max_d:
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            res = full_space(net, method=method, time_limit=args.sweep_limit)
            wall, cpu_s = time.perf_counter() - t0, time.process_time() - c0
            ok = res.complete and res.count == zaslavsky(m, d)
            row = {"d": d, "m": m, "engine": method, "regions": res.count, "seconds": wall, "cpu_seconds": cpu_s,
                   "us_per_region": 1e6 * wall / max(1, res.count), "cpu_us_per_region": 1e6 * cpu_s / max(1, res.count),
                   "complete": res.complete, "zaslavsky": ok}
            out.append(row)
            print(f"{d:>3}{m:>4}{res.count:>9}{method:>8}{wall:>10.2f}{cpu_s:>8.2f}{row['us_per_region']:>11.0f}"
                  f"{row['cpu_us_per_region']:>15.0f}  "
                  f"{'= Zaslavsky' if ok else ('time limit' if not res.complete else 'MISMATCH')}", flush=True)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from relulab.core.files import atomic_save

        fig, ax = plt.subplots(figsize=(6, 4))
        for method, mark in (("facet", "o-"), ("vertex", "s--")):
            # CPU time: on a shared machine the wall clock measures the other processes too
            pts = [(r["d"], r["cpu_us_per_region"]) for r in out if r["engine"] == method and r["complete"]]
            if pts:
                ax.semilogy(*zip(*pts), mark, label=f"{method} engine")
        ax.set_xlabel("input dimension d")
        ax.set_ylabel("CPU microseconds per region")
        ax.set_title(f"full_space, d-m-1 nets with about {args.sweep_regions} regions")
        ax.legend()
        fig.tight_layout()
        atomic_save(args.plot, lambda p: fig.savefig(p, dpi=120))
        print(f"plot: {args.plot}")
    return out


DEFAULT_NETS = ["4,10,10,2:0", "4,10,10,2:1", "4,10,10,2:2", "4,10,10,10,2:0", "5,10,10,2:11", "6,8,8,8,2:12",
                "8,12,1:0", "8,16,1:0"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nets", nargs="*", default=DEFAULT_NETS,
                   help="peer-table networks as widths:seed (default: the table of the module docstring)")
    add_run_arguments(p)
    add_peer_argument(p)
    p.add_argument("--no-peer", action="store_true", help="skip the relucent comparison")
    p.add_argument("--no-sweep", action="store_true", help="skip the dimension sweep")
    p.add_argument("--quick", action="store_true", help="first network only, no sweep")
    p.add_argument("--sweep-regions", type=int, default=1000, help="regions per sweep network (default 1000)")
    p.add_argument("--sweep-limit", type=float, default=300.0, help="time limit per sweep run (s)")
    p.add_argument("--vertex-max-d", type=int, default=8, help="largest d the vertex engine is swept at")
    p.add_argument("--plot", default=str(ROOT / "benchmarks" / "regions_full_space_d.png"),
                   help="figure of the sweep ('' for none)")
    p.add_argument("--peer-time-limit", type=float, default=300.0,
                   help="stop relucent after this many seconds (default 300); its count is then a lower bound "
                        "and the ratio compares regions per second")
    p.add_argument("--json", help="also write all rows to this file")
    p.add_argument("--workers", type=int, default=None,
                   help="relulab with full_space(net, workers=N) where d >= 5 (default: one process)")
    args = p.parse_args(argv)
    args.nets = [([int(w) for w in s.split(":")[0].split(",")], int(s.split(":")[1])) for s in args.nets]
    if args.quick:
        args.nets, args.no_sweep = args.nets[:1], True
    if not args.no_peer:
        args.peer_python = peer_python(args.peer_python)
    print(f"{apply_threads(args)}, relulab {relulab.__version__}")
    result = {}
    with cpu_load(args.load):
        if not args.no_sweep:
            result["sweep"] = dimension_sweep(args)
        if not args.no_peer:
            result["peer"] = peer_table(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
