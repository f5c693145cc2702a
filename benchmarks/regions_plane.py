"""Benchmark of ``relulab.regions.on_plane`` (exact activation regions on a 2-D slice).

    make peers                                              # once: the peers' environment
    .venv/bin/python benchmarks/regions_plane.py            # all three rows
    .venv/bin/python benchmarks/regions_plane.py --no-peer  # without relucent

(a) the full partition of a box by a 2-input ReLU MLP with more than 10^5 regions;
(b) a 2-D slice through three points of a 784-input MLP (784-256-256-10), three random images
    that the network assigns to three different classes (the plane spans all three: s, t in
    [-0.2, 1.2]);
(c) relucent (LP-based search over the dual graph, https://pypi.org/project/relucent/) on a 2-input
    network, run in the peers' environment (``.peers-venv`` built by ``make peers``, or
    ``--peer-python``; see benchmarks/peers.py) on the same weights, as its users run it
    (``Complex(model).bfs()``, completeness check included). relucent enumerates the regions of all of R^2; relulab partitions the box
    [-R, R]^2, which holds every region once it contains every vertex of the partition: the count is
    checked to be the same for R and 10 R, and to equal relucent's.

Rates are regions per wall-clock second of one call; the CPU seconds of this process are shown too
(wall time inflates on a shared machine), and for relulab the same call without its certificate
(``certify=False``), so the certificate's cost is visible. torch's default threads (what a user gets) unless
--threads pins them; ``--load N`` runs N CPU-bound processes during the run.
Prints a table.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import relulab
from relulab.regions import on_plane

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from load import add_run_arguments, apply_threads, cpu_load  # noqa: E402
from peers import add_peer_argument, peer_python, run_peer_code  # noqa: E402


def timed(fn, *args, **kw):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - w, time.process_time() - c


def mlp(widths, seed):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def row(name, what, count, wall, cpu, note=""):
    return {"case": name, "network / domain": what, "regions": count, "seconds": wall, "cpu_s": cpu,
            "regions_per_s": count / wall if wall > 0 else float("inf"), "note": note}


def uncertified(net, *args, **kw):
    """The same partition without its certificate: (seconds, CPU seconds, count)."""
    res, wall, cpu = timed(on_plane, net, *args, certify=False, **kw)
    return wall, cpu, res.count


def case_a(widths=(2, 200, 200, 200, 1), extent=2.0):
    net = relulab.PLNet.from_torch(mlp(list(widths), 0), (2,))
    on_plane(net, extent=0.05)  # warm-up
    res, wall, cpu = timed(on_plane, net, extent=extent)
    assert res.complete
    w0, c0, n0 = uncertified(net, extent=extent)
    assert n0 == res.count
    return row("(a) relulab", f"{'-'.join(map(str, widths))} ReLU, box [-{extent:g},{extent:g}]^2", res.count, wall,
               cpu, f"certified={res.certified}; without the certificate {w0:.2f} s, {c0:.2f} CPU s; linear regions "
               f"{res.linear_count}, per layer {res.layer_counts}")


def case_b(extent=(-0.2, 1.2, -0.2, 1.2)):
    net = relulab.PLNet.from_torch(mlp([784, 256, 256, 10], 0), (784,))
    g = torch.Generator().manual_seed(0)
    # three random images (uniform pixels) that the network puts in three different classes
    pool = torch.rand(2000, 784, generator=g, dtype=torch.float64)
    cls = net(pool).argmax(1)
    pick = [int((cls == c).nonzero()[0]) for c in cls.unique()[:3]]
    pick += [i for i in range(3) if i not in pick][: 3 - len(pick)]
    X = pool[pick]
    o, u, v = X[0], X[1] - X[0], X[2] - X[0]
    res, wall, cpu = timed(on_plane, net, o, u, v, extent=extent)
    assert res.complete
    w0, c0, n0 = uncertified(net, o, u, v, extent=extent)
    assert n0 == res.count
    return row("(b) relulab", f"784-256-256-10, plane through 3 points of 3 classes, (s,t) in {list(extent)}", res.count, wall, cpu,
               f"certified={res.certified}; without the certificate {w0:.2f} s, {c0:.2f} CPU s; decision boundary: "
               f"{res.boundary_pieces} straight pieces")


_PEER = r"""
import json, sys, time
from relucent_peer import build, count_regions, finish
from safetensors.torch import save_file
widths, seed, path = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
model = build(widths, seed)
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
count, secs, complete = count_regions(model)
print(json.dumps({"count": count, "seconds": secs, "layers": [n for n, _ in model.named_children()]}))
finish()
"""


def case_c(python, widths=(2, 16, 16, 1), seed=0, R=1000.0):
    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "weights.safetensors")
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = run_peer_code(python, _PEER, [json.dumps(list(widths)), seed, path])
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        peer_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)  # the whole peer process
        if out.returncode != 0:
            raise SystemExit(f"relucent failed:\n{out.stderr[-3000:]}")
        peer = json.loads(out.stdout.strip().splitlines()[-1])
        sd = load_file(path)
    layers = collections.OrderedDict()
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):  # relucent's mlp(add_last_relu=True)
        layers[f"fc{i}"] = nn.Linear(a, b).double()
        layers[f"relu{i}"] = nn.ReLU()
    model = nn.Sequential(layers)
    model.load_state_dict(sd)
    net = relulab.PLNet.from_torch(model, (2,))
    on_plane(net, extent=0.05)  # warm-up
    res, wall, cpu = timed(on_plane, net, extent=R)
    big = on_plane(net, extent=10 * R)
    ok = res.count == big.count == peer["count"]
    what = f"{'-'.join(map(str, widths))} ReLU (+ output ReLU), relucent seed {seed}"
    r_rel = row("(c) relulab", what + f", box [-{R:g},{R:g}]^2", res.count, wall, cpu,
                f"same count with R x 10: {res.count == big.count}; equals relucent: {ok}")
    r_peer = row("(c) relucent", what + ", all of R^2", peer["count"], peer["seconds"], peer_cpu,
                 "Complex.bfs(): BFS over regions with Gurobi LPs, then its completeness check; CPU s: its whole "
                 "process (start-up included)")
    r_rel["ratio"] = r_rel["regions_per_s"] / r_peer["regions_per_s"]
    r_rel["cpu_ratio"] = (peer_cpu / peer["count"]) / (cpu / res.count) if cpu > 0 else float("inf")
    if not ok:
        raise SystemExit(f"count mismatch: relulab {res.count} (R) / {big.count} (10 R), relucent {peer['count']}")
    return [r_rel, r_peer]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-peer", action="store_true", help="skip the relucent comparison")
    add_peer_argument(ap)
    add_run_arguments(ap)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = ap.parse_args(argv)
    setting = apply_threads(args)
    python = None if args.no_peer else peer_python(args.peer_python)

    with cpu_load(args.load):
        rows = [case_a(), case_b()]
        if not args.no_peer:
            rows += case_c(python)
    print(f"relulab {relulab.__version__}, {setting}, float64, device cpu")
    hdr = f"{'case':<13} {'regions':>8} {'wall s':>8} {'cpu s':>7} {'regions/s':>10}  network / domain"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        cpu = "-" if r["cpu_s"] != r["cpu_s"] else f"{r['cpu_s']:.2f}"
        print(f"{r['case']:<13} {r['regions']:>8} {r['seconds']:>8.2f} {cpu:>7} {r['regions_per_s']:>10.1f}  "
              f"{r['network / domain']}")
        if r["note"]:
            print(f"{'':<13} {'':>8} {'':>8} {'':>7} {'':>10}  {r['note']}")
    for r in rows:
        if "ratio" in r:
            print(f"relulab / relucent regions-per-second ratio: {r['ratio']:.0f}x (wall), "
                  f"{r['cpu_ratio']:.0f}x (CPU seconds per region)")
    for r in rows:
        if r["cpu_s"] == r["cpu_s"] and r["case"].endswith("relulab"):
            print(f"{r['case']}: {r['regions'] / r['cpu_s']:,.0f} regions per CPU second")
    print(f"load average at the end: {open('/proc/loadavg').read().split()[:3]}" if os.path.exists("/proc/loadavg")
          else "")
    if args.json:
        print(json.dumps(rows, default=float))
    return rows


if __name__ == "__main__":
    main()
