"""Benchmark of ``relulab.dynamics``: the flow engine on a width-10,000 univariate ReLU network
against a plain torch gradient-descent loop, and the regime diagram's wall time (relulab alone).

    .venv/bin/python benchmarks/dynamics_flow.py
    .venv/bin/python benchmarks/dynamics_flow.py --width 10000 --time 0.5 --ref-rtol 1e-10 --skip-diagram

Part 1, same iterates: ``relulab.dynamics.gradient_descent`` against the loop a user writes
(``loss.backward(); p -= lr * p.grad``) on f(x) = m^-1/2 sum_i c_i relu(a_i x + b_i) + u x + v,
16 data points, the same lr and steps: steps per second and the largest difference of the final
parameters (0 up to rounding: the same algorithm).

Part 2, same accuracy: gradient flow to time ``--time`` by ``relulab.dynamics.flow`` (RK45 at
rtol 1e-6) against the torch loop with lr = T / steps for growing steps (Euler's method: error
first order in lr). The reference is ``flow`` with DOP853 at ``--ref-rtol`` (its evaluations and time go to stderr); the table gives each method's error
against it and its seconds, and the ratio to the torch loop that first reaches the flow's error.

Part 3: ``regime_diagram`` at the CLI's ``--quick`` settings (width 30, scales 0.1 and 10 for both
layers, 500 steps), or with ``--full-diagram`` at its defaults for widths 100 and 400 (3 x 3 scales,
20,000 steps).
Threads: torch's default (``--threads N`` pins them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE)]

from relulab.dynamics import flow, gradient_descent, mse_objective, regime_diagram, univariate_net  # noqa: E402


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1, 1, n))
    return torch.as_tensor(x)[:, None], torch.as_tensor(np.sin(3 * x))[:, None]


def torch_gd(net, x, y, lr, steps):
    params = [p for p in net.parameters() if p.requires_grad]
    n = x.shape[0]
    for _ in range(steps):
        for p in params:
            p.grad = None
        loss = 0.5 * ((net(x) - y) ** 2).sum() / n
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
    return torch.cat([p.detach().reshape(-1) for p in params])


def flat(net):
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--time", type=float, default=0.05, help="flow time T for part 2")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-diagram", action="store_true")
    ap.add_argument("--full-diagram", action="store_true")
    ap.add_argument("--ref-rtol", type=float, default=1e-8, help="rtol of the DOP853 reference flow")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = data()
    obj = mse_objective(x, y)
    out = {"width": args.width}

    # part 1: same iterates
    lr = 0.5
    # both paths warmed up first (autograd's first call allocates), so that neither pays it in the timing
    gradient_descent(univariate_net(args.width, skip=True, seed=1), obj, lr=lr, steps=2, record_every=2)
    torch_gd(univariate_net(args.width, skip=True, seed=1), x, y, lr, 2)
    a = univariate_net(args.width, skip=True, seed=1)
    b = univariate_net(args.width, skip=True, seed=1)
    t0 = time.perf_counter()
    gradient_descent(a, obj, lr=lr, steps=args.steps, record_every=args.steps)
    t_rel = time.perf_counter() - t0
    t0 = time.perf_counter()
    pb = torch_gd(b, x, y, lr, args.steps)
    t_torch = time.perf_counter() - t0
    out["gd"] = {"steps": args.steps, "relulab_steps_per_s": args.steps / t_rel,
                 "torch_steps_per_s": args.steps / t_torch, "ratio_torch_over_relulab_time": t_torch / t_rel,
                 "max_param_difference": float((flat(a) - pb).abs().max())}
    print(f"part 1 done: {out['gd']}", file=sys.stderr, flush=True)

    # part 2: same accuracy on gradient flow to time T
    T = args.time
    ref_net = univariate_net(args.width, skip=True, seed=1)
    t0 = time.perf_counter()
    ref_tr = flow(ref_net, obj, [T], method="DOP853", rtol=args.ref_rtol, atol=1e-12)
    ref = ref_tr.params[-1]
    print(f"reference flow: {ref_tr.evaluations} evaluations, {time.perf_counter() - t0:.1f} s", file=sys.stderr,
          flush=True)
    fl_net = univariate_net(args.width, skip=True, seed=1)
    t0 = time.perf_counter()
    tr = flow(fl_net, obj, [T], rtol=1e-6, atol=1e-9)
    t_flow = time.perf_counter() - t0
    e_flow = float((tr.params[-1] - ref).abs().max())
    print(f"flow rtol 1e-6: {tr.evaluations} evaluations, {t_flow:.1f} s, error {e_flow:.3g}", file=sys.stderr, flush=True)
    rows = []
    for steps in (25, 100, 400, 1600, 6400):
        net = univariate_net(args.width, skip=True, seed=1)
        t0 = time.perf_counter()
        p = torch_gd(net, x, y, T / steps, steps)
        rows.append({"steps": steps, "seconds": time.perf_counter() - t0, "error": float((p - ref).abs().max())})
        print(f"torch GD: {rows[-1]}", file=sys.stderr, flush=True)
        if rows[-1]["error"] <= e_flow:
            break
    match = next((r for r in rows if r["error"] <= e_flow), None)
    out["flow"] = {"T": T, "flow_rtol": 1e-6, "flow_evaluations": tr.evaluations, "flow_seconds": t_flow,
                   "flow_error": e_flow, "flow_evaluations_per_s": tr.evaluations / t_flow, "torch_gd": rows,
                   "torch_steps_to_match": None if match is None else match["steps"],
                   "ratio_torch_over_flow_time": None if match is None else match["seconds"] / t_flow}

    if not args.skip_diagram:
        rng = np.random.default_rng(0)
        xs = np.sort(rng.uniform(-1, 1, 6))
        ys = rng.normal(0, 0.5, 6)
        t0 = time.perf_counter()
        if args.full_diagram:
            r = regime_diagram(xs, ys, widths=(100, 400))
        else:
            r = regime_diagram(xs, ys, widths=(30,), inner_scales=(0.1, 10.0), outer_scales=(0.1, 10.0), steps=500)
        out["regime_diagram"] = {"settings": len(r.rows), "seconds": time.perf_counter() - t0}

    if args.json:
        print(json.dumps(out, indent=1))
        return
    g = out["gd"]
    print(f"width {args.width}: gradient descent, {g['steps']} steps: relulab {g['relulab_steps_per_s']:.0f} steps/s, "
          f"torch loop {g['torch_steps_per_s']:.0f} steps/s (torch time / relulab time = "
          f"{g['ratio_torch_over_relulab_time']:.2f}), max parameter difference {g['max_param_difference']:.2g}")
    f = out["flow"]
    print(f"gradient flow to T = {T}: relulab flow (RK45, rtol 1e-6) {f['flow_evaluations']} evaluations in "
          f"{f['flow_seconds']:.2f} s, error {f['flow_error']:.2g}")
    for r in f["torch_gd"]:
        print(f"  torch GD {r['steps']:6d} steps: {r['seconds']:.2f} s, error {r['error']:.2g}")
    if f["torch_steps_to_match"] is not None:
        print(f"  torch GD needs {f['torch_steps_to_match']} steps for the flow's accuracy: "
              f"{f['ratio_torch_over_flow_time']:.1f}x the flow's time")
    if "regime_diagram" in out:
        print(f"regime diagram ({'full' if args.full_diagram else 'quick'} settings): "
              f"{out['regime_diagram']['seconds']:.1f} s for {out['regime_diagram']['settings']} settings")


if __name__ == "__main__":
    main()
