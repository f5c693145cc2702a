"""The region engines on a CUDA network against the same call on the CPU, in one process.

    .venv/bin/python benchmarks/regions_device.py            # needs a CUDA device
    .venv/bin/python benchmarks/regions_device.py --quick    # smaller networks

Rows: the facet engine over all of R^d (a [6,8,8,8,2] and an 8-16-1 network, time-limited), the
plane engine on a 2-200-200-200-1 network over [-2, 2]^2 (certified and not), and the line engine on
1,000 segments' worth of breakpoints of a 784-256-256-10 MLP. Each row prints the count and certified
flag of both devices (they must agree: the run fails otherwise), wall seconds (CUDA synchronised) and
the CPU / CUDA ratio. The CPU side uses torch's default threads. Prints a table; ``--json`` writes it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

import relulab
from relulab.regions import full_space, on_line, on_plane


def mlp(widths, seed):
    module = relulab.build(f"mlp:{'-'.join(map(str, widths))}:relu", seed=seed).double()
    return relulab.PLNet.from_torch(module, (widths[0],))


def timed(device, fn):
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller networks")
    p.add_argument("--time-limit", type=float, default=60.0, help="time limit of each full-space run (s)")
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("regions_device: no CUDA device here; nothing measured", file=sys.stderr)
        return 2
    q = args.quick
    rows = []

    def row(name, make, call):
        out = {}
        for dev in ("cpu", "cuda"):
            net = make().to(dev)
            call(net)  # warm-up (CUDA context, kernels); not timed
            res, wall = timed(dev, lambda: call(net))
            out[dev] = (res.count, bool(res.certified), getattr(res, "complete", True), wall)
        (cc, cz, ck, cw), (gc, gz, gk, gw) = out["cpu"], out["cuda"]
        if ck and gk and (cc, cz) != (gc, gz):
            raise SystemExit(f"{name}: CPU gives {cc} (certified {cz}), CUDA {gc} (certified {gz})")
        rows.append({"row": name, "cpu_count": cc, "cuda_count": gc, "certified": [cz, gz], "complete": [ck, gk],
                     "cpu_s": cw, "cuda_s": gw, "cpu_over_cuda": cw / gw})
        print(f"{name:<44} {cc:>8} {gc:>8} {str(cz):>6} {cw:9.2f} {gw:9.2f} {cw / gw:7.2f}x", flush=True)

    print(f"{'row':<44} {'cpu':>8} {'cuda':>8} {'cert':>6} {'cpu s':>9} {'cuda s':>9} {'ratio':>8}")
    tl = args.time_limit
    for widths, seed in ([[6, 8, 8, 1], 12], [[8, 10, 1], 0]) if q else ([[6, 8, 8, 8, 2], 12], [[8, 16, 1], 0]):
        row(f"full_space facet {'-'.join(map(str, widths))}", lambda w=widths, s=seed: mlp(w, s),
            lambda n: full_space(n, method="facet", time_limit=tl))
    w = [2, 64, 64, 1] if q else [2, 200, 200, 200, 1]
    for cert in (True, False):
        row(f"on_plane {'-'.join(map(str, w))} certify={cert}", lambda: mlp(w, 0),
            lambda n, c=cert: on_plane(n, extent=2.0, certify=c))
    w = [784, 64, 10] if q else [784, 256, 256, 10]
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(784, generator=g, dtype=torch.float64), torch.randn(784, generator=g, dtype=torch.float64)
    row(f"on_line {'-'.join(map(str, w))}", lambda: mlp(w, 1),
        lambda n: on_line(n, a.to(n.device), b.to(n.device)))
    if args.json:
        from relulab.core.files import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(0), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
