"""Benchmark of ``relulab.regions.on_line`` (exact activation regions along segments).

    .venv/bin/python benchmarks/regions_line.py                 # the full table (100 segments each)
    .venv/bin/python benchmarks/regions_line.py --segments 20   # quicker
    .venv/bin/python benchmarks/regions_line.py --only mnist-d2-w8,mlp

For each network: ``--segments`` segments between random image-size inputs (uniform pixels in
[0, 1]), all walked in one batched call ``on_line(net, A, B)``. Networks: CNNs of ``depth`` blocks
conv3x3 (padding 1, ``width`` channels) + ReLU + MaxPool2d(2), then a linear layer to 10 outputs,
on 1x28x28 and 3x32x32 inputs (torch default initialization, seed 0); and the MLP 784-512-512-10.

There is no line-walk peer to compare with; the baseline is the naive method run in the same
process on the first ``--baseline-segments`` segments: ``net.pattern`` on ``--samples`` equally
spaced points per segment, then bisection (45 halvings) between neighbouring samples whose patterns
differ. It finds at most one change per sampling step, so it misses regions shorter than the step;
the table gives its time per segment, the ratio to the exact walk's time per segment, and how many
of the exact regions it missed (each change it locates is checked against an exact breakpoint).
``certified``: whether the default call's result carries its certificate (filtered predicates, exact
arithmetic where float64 cannot decide; over its work budget it says False); ``uncert. cpu s``: the
same walk with ``certify=False``, for the certificate's cost. MLP rows: 784-256-256-10, the
2-200-200-200-1 net of the plane benchmark, and a wide 1-20000-1 net.

Times are CPU seconds of this process (torch's default threads unless --threads says otherwise; wall
time inflates on a shared machine), rates are activation regions per CPU second.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import relulab
from relulab.regions import on_line


def cnn(channels_in, side, width, depth, seed=0):
    torch.manual_seed(seed)
    layers, c, s = [], channels_in, side
    for _ in range(depth):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c, s = width, s // 2
    layers += [nn.Flatten(), nn.Linear(c * s * s, 10)]
    return nn.Sequential(*layers)


def mlp(widths, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


CONFIGS = {
    # name: (module factory, input shape)
    "mnist-d1-w4": (lambda: cnn(1, 28, 4, 1), (1, 28, 28)),
    "mnist-d1-w8": (lambda: cnn(1, 28, 8, 1), (1, 28, 28)),
    "mnist-d1-w16": (lambda: cnn(1, 28, 16, 1), (1, 28, 28)),
    "mnist-d2-w8": (lambda: cnn(1, 28, 8, 2), (1, 28, 28)),
    "mnist-d3-w8": (lambda: cnn(1, 28, 8, 3), (1, 28, 28)),
    "cifar-d1-w8": (lambda: cnn(3, 32, 8, 1), (3, 32, 32)),
    "cifar-d2-w8": (lambda: cnn(3, 32, 8, 2), (3, 32, 32)),
    "cifar-d3-w8": (lambda: cnn(3, 32, 8, 3), (3, 32, 32)),
    "mlp": (lambda: mlp([784, 512, 512, 10]), (784,)),
    "mlp-784-256-256-10": (lambda: mlp([784, 256, 256, 10]), (784,)),
    "mlp-2-200-200-200-1": (lambda: mlp([2, 200, 200, 200, 1]), (2,)),
    "mlp-1-20000-1": (lambda: mlp([1, 20000, 1]), (1,)),
}


def cpu_timed(fn, *args, **kw):
    c = time.process_time()
    w = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.process_time() - c, time.perf_counter() - w


def baseline(net, a, b, samples, chunk=1024):
    """Dense sampling + bisection: regions found per segment, change locations."""
    found, locs = [], []
    t = (torch.arange(samples, dtype=torch.float64) + 0.5) / samples
    for s in range(a.shape[0]):
        A, B = a[s].reshape(-1), b[s].reshape(-1)
        ch, plo, prev = [], [], None
        for i in range(0, samples, chunk):  # patterns chunk by chunk; keep only the changes
            P = net.pattern((A + t[i:i + chunk, None] * (B - A)).reshape(-1, *net.input_shape))
            Q = P if prev is None else torch.cat([prev[None], P])
            off = i if prev is None else i - 1
            c = (Q[1:] != Q[:-1]).any(1).nonzero()[:, 0]
            ch.append(c + off)
            plo.append(Q[c])
            prev = P[-1]
        ch, plo = torch.cat(ch), torch.cat(plo)
        lo, hi = t[ch].clone(), t[ch + 1].clone()
        for _ in range(45):
            mid = (lo + hi) / 2
            same = torch.zeros(mid.numel(), dtype=torch.bool)
            for i in range(0, mid.numel(), chunk):
                x = (A + mid[i:i + chunk, None] * (B - A)).reshape(-1, *net.input_shape)
                same[i:i + chunk] = (net.pattern(x) == plo[i:i + chunk]).all(1)
            lo, hi = torch.where(same, mid, lo), torch.where(same, hi, mid)
        found.append(1 + ch.numel())
        locs.append(lo)
    return found, locs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--segments", type=int, default=100)
    ap.add_argument("--baseline-segments", type=int, default=2)
    ap.add_argument("--samples", type=int, default=2**14, help="baseline samples per segment")
    ap.add_argument("--threads", type=int, default=None, help="pin torch to this many threads (default: torch's default, as a user gets)")
    ap.add_argument("--only", default="", help="comma-separated config names: " + ", ".join(CONFIGS))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n for n in args.only.split(",") if n] or list(CONFIGS)
    rows = []
    for name in names:
        factory, shape = CONFIGS[name]
        net = relulab.PLNet.from_torch(factory(), shape)
        g = torch.Generator().manual_seed(1)
        A = torch.rand(args.segments, *shape, generator=g, dtype=torch.float64)
        B = torch.rand(args.segments, *shape, generator=g, dtype=torch.float64)
        on_line(net, A[:1], B[:1])  # warm-up
        res, cpu, wall = cpu_timed(on_line, net, A, B)
        assert res.complete
        # the same walk without its certificate: what certification costs
        raw, raw_cpu, _ = cpu_timed(on_line, net, A, B, certify=False)
        assert torch.equal(raw.counts, res.counts) or res.certified
        k = min(args.baseline_segments, args.segments)
        (found, locs), bcpu, _ = cpu_timed(baseline, net, A[:k], B[:k], args.samples)
        exact = res.counts[:k]
        missed = int((exact - torch.tensor(found)).sum())
        worst = 0.0
        for s in range(k):  # every located change is an exact breakpoint
            bp = res.breakpoints[s]
            if locs[s].numel():
                worst = max(worst, float((locs[s][:, None] - bp[None]).abs().amin(1).max()))
        assert worst < 1e-8, f"{name}: baseline change {worst:g} away from every exact breakpoint"
        per_seg = cpu / args.segments
        rows.append({
            "network": name, "units": net.n_units, "regions/seg": float(res.counts.double().mean()),
            "linear/seg": float(res.linear_counts.double().mean()), "len ratio": float(res.length_ratios.mean()),
            "cpu s/seg": per_seg, "regions/s": res.count / cpu, "wall s": wall,
            "base s/seg": bcpu / k, "base/exact": (bcpu / k) / per_seg,
            "missed": f"{missed}/{int(exact.sum())}",
            "certified": bool(res.certified), "uncert. cpu s": raw_cpu,
        })
        print(f"# {name}: {res.count} regions on {args.segments} segments in {cpu:.1f} CPU s", flush=True)
    cols = list(rows[0])
    fmt = {"regions/seg": "{:.0f}", "linear/seg": "{:.0f}", "len ratio": "{:.3g}", "cpu s/seg": "{:.3f}",
           "regions/s": "{:.0f}", "wall s": "{:.1f}", "base s/seg": "{:.2f}", "base/exact": "{:.1f}x",
           "uncert. cpu s": "{:.2f}"}
    cells = [[fmt.get(c, "{}").format(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    print()
    print(f"on_line: {args.segments} segments per network, {torch.get_num_threads()} thread(s); baseline: "
          f"{args.samples} samples + bisection on {min(args.baseline_segments, args.segments)} segments")
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for x in cells:
        print("  ".join(v.rjust(w) for v, w in zip(x, widths)))


if __name__ == "__main__":
    main()
