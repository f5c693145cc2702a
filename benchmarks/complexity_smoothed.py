"""Benchmark of ``relulab.complexity.local_complexity`` (smoothed local complexity over data).

    .venv/bin/python benchmarks/complexity_smoothed.py               # 784-256-256-10 MLP, 1000 points
    .venv/bin/python benchmarks/complexity_smoothed.py --points 200  # quicker

The peer is what the reference script of Patel and Montufar does: ``torch.func.vmap(jacfwd(h))``
with ``h`` the map from an input to all hidden pre-activations, i.e. every unit's full input gradient
by forward mode with ``d`` tangents per sample, then ``sum_k |grad z_k| phi_sigma(z_k)`` -- written
here with the same definition as relulab (normalized density, each unit's own bias included), so the
two compute the same number and the table reports their largest difference per point ("equal
accuracy": both are exact up to rounding). relulab carries ``r = rank(W_1) <= 256`` tangents
instead of 784 (every hidden gradient lies in the row space of the first layer) and skips the
first layer's gradients (constant rows of W_1).

Times are CPU seconds of this process (torch's default threads unless --threads says otherwise; wall time
inflates on a shared machine), the best of --repeat runs each (default 1); float64 throughout.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from relulab import PLNet
from relulab.complexity import local_complexity


def peer_lc(model: nn.Sequential, x: torch.Tensor, sigma: float, chunk: int = 50) -> torch.Tensor:
    """Per-point smoothed LC by vmap(jacfwd) of the hidden pre-activations (chunks of ``chunk`` points)."""
    lin = [m for m in model if isinstance(m, nn.Linear)]

    def pre(v):
        outs, h = [], v
        for m in model:
            h = m(h)
            if isinstance(m, nn.Linear) and m is not lin[-1]:
                outs.append(h)
        return torch.cat(outs)

    jac = torch.func.vmap(torch.func.jacfwd(pre))
    out = []
    for s in range(0, x.shape[0], chunk):
        xb = x[s:s + chunk]
        J = jac(xb)  # (B, units, d)
        with torch.no_grad():
            z = torch.func.vmap(pre)(xb)
        dens = torch.exp(-0.5 * (z / sigma) ** 2) / (math.sqrt(2 * math.pi) * sigma)
        out.append((J.norm(dim=-1) * dens).sum(1).detach())
    return torch.cat(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--sigma", type=float, default=0.5)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="pin torch to this many threads (default: torch's default, as a user gets)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    model = model.double().to(a.device)
    x = torch.rand(a.points, 784, dtype=torch.float64, device=a.device)
    net = PLNet.from_torch(model, (784,), device=a.device)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    clock = time.perf_counter if a.device.startswith("cuda") else time.process_time

    def timed(fn):
        t_best, res = math.inf, None
        for _ in range(a.repeat):
            sync()
            t0 = clock()
            res = fn()
            sync()
            t_best = min(t_best, clock() - t0)
        return t_best, res

    print(f"smoothed LC, 784-256-256-10 ReLU MLP, {a.points} points, sigma {a.sigma}, device {a.device}, "
          f"{torch.get_num_threads()} thread(s), {'wall' if a.device.startswith('cuda') else 'CPU'} seconds (best of {a.repeat})")
    print(f"{'method':<28}{'seconds':>10}{'points/s':>12}{'LC':>14}", flush=True)
    t_rl, res = timed(lambda: local_complexity(net, x, a.sigma))
    print(f"{'relulab local_complexity':<28}{t_rl:>10.3f}{a.points / t_rl:>12.0f}{res.value:>14.6g} +- {res.stderr:.3g}",
          flush=True)
    t_peer, ref = timed(lambda: peer_lc(model, x, a.sigma))
    diff = float((res.per_point - ref).abs().max() / ref.abs().max())
    print(f"{'vmap(jacfwd) peer':<28}{t_peer:>10.3f}{a.points / t_peer:>12.0f}{float(ref.mean()):>14.6g}")
    print(f"ratio peer/relulab: {t_peer / t_rl:.1f}x; largest per-point difference {diff:.1e} (relative)")

if __name__ == "__main__":
    main()
