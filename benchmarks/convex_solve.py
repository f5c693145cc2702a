"""Convex programs of two-layer ReLU networks: relulab's solve time against samples and input dimension,
side by side with scnn (pip ``pyscnn``, Mishkin, Sahiner & Pilanci, ICML 2022) on the same problems.

One command::

    .venv/bin/python benchmarks/convex_solve.py                 # relulab and scnn on the grid
    .venv/bin/python benchmarks/convex_solve.py --quick         # two problems
    .venv/bin/python benchmarks/convex_solve.py --no-peer       # relulab alone

Each problem: Gaussian inputs X (n, d) and targets y (seeded), a hidden bias as a column of ones
(regularized like a weight), weight decay ``beta``, the papers' objective
``1/2 |f(X) - y|^2 + beta/2 sum_j (|u_j|^2 + a_j^2)``. relulab runs ``relulab.convex.solve(X, y, beta)`` with its
defaults (all activation patterns by exact enumeration when at most 3000, Clarabel through cvxpy) and
reports the rebuilt network's objective, its certified duality gap and the wall time (median of
``--repeats``), its CPU seconds (process time, solver threads included) and the 1-minute load average. scnn runs in the peers' environment (``.peers-venv`` or ``--peer-python``; scnn is installed
there with ``pip install --no-deps pyscnn linalg_backends`` and its other requirements, because its
torchvision requirement would replace the environment's torch) with its own defaults for this model:
``ConvexReLU`` on ``4 x`` as many sampled gate vectors as relulab has patterns, the augmented-Lagrangian
solver ``AL``, float64, ``unitize_data=False``, on the same ``[X, 1]`` and its scale of the same problem
(``1/(2n)`` squared error, ``lambda = beta / n``). Its network's objective is evaluated here in the papers'
convention. Both sides run in the same invocation, one after the other. Reported: objectives (relulab's is
certified within its gap; scnn's is an upper bound on the optimum: its patterns are sampled), seconds,
and the ratio of scnn's time to relulab's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers import add_peer_argument, peer_python, run_peer_code  # noqa: E402

_PEER_CODE = r"""
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from scnn.optimize import optimize_model
from scnn.models import ConvexReLU
from scnn.regularizers import NeuronGL1
from scnn.solvers import AL
from scnn.metrics import Metrics
job = json.loads(sys.argv[1])
X, y = np.array(job["X"]), np.array(job["y"])
n = len(y)
A = np.hstack([X, np.ones((n, 1))])
G = np.random.default_rng(job["seed"]).standard_normal((A.shape[1], job["gates"]))
model = ConvexReLU(G)
t0, c0 = time.perf_counter(), time.process_time()
model, _ = optimize_model(model, AL(model), Metrics(), A, y[:, None], regularizer=NeuronGL1(job["beta"] / n),
                          unitize_data=False, dtype="float64")
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
W1, w2 = model.parameters
r = np.maximum(A @ W1.T, 0) @ w2[0] - y
obj = 0.5 * r @ r + job["beta"] * float(np.sum(np.linalg.norm(W1, axis=1) * np.abs(w2[0])))
print(json.dumps({"objective": obj, "seconds": seconds, "cpu_seconds": cpu, "neurons": int((np.abs(w2[0]) > 0).sum())}))
"""


def _show(row):
    print(" ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


def _load():
    """The 1-minute load average (wall times on a shared machine mean little without it)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def _problem(n, d, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=n)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="two problems only")
    p.add_argument("--no-peer", action="store_true", help="relulab alone")
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true", help="one JSON document of the rows")
    p.add_argument("--peer-timeout", type=float, default=600.0,
                   help="seconds scnn may take per problem; a slower run is reported as timed out (default 600)")
    p.add_argument("--grid", default=None, help="problems as NxD,NxD,... (default: the built-in grid)")
    add_peer_argument(p)
    args = p.parse_args(argv)
    from relulab.convex import solve

    grid = [(20, 2), (40, 2)] if args.quick else [(20, 2), (40, 2), (80, 2), (30, 1), (30, 3), (16, 4)]
    if args.grid:
        try:
            grid = [tuple(int(v) for v in item.lower().split("x")) for item in args.grid.split(",")]
        except ValueError:
            raise SystemExit(f"--grid must look like 20x2,40x2, got {args.grid!r}") from None
    py = None if args.no_peer else peer_python(args.peer_python)
    solve(*_problem(5, 1, 0), args.beta)  # imports and solver start-up outside the timings
    rows = []
    for n, d in grid:
        X, y = _problem(n, d, 0)
        times, cpus, sol = [], [], None
        for _ in range(max(1, args.repeats)):
            t0, c0 = time.perf_counter(), time.process_time()
            sol = solve(X, y, args.beta)
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        row = {"n": n, "d": d, "patterns": sol.patterns_used, "complete": sol.complete,
               "relulab_objective": sol.objective, "relulab_gap": sol.gap, "relulab_relative_gap": sol.relative_gap,
               "relulab_seconds": statistics.median(times), "relulab_cpu_seconds": statistics.median(cpus),
               "load_average": _load()}
        if py is not None:
            job = {"X": X.tolist(), "y": y.tolist(), "beta": args.beta, "seed": 0, "gates": 4 * sol.patterns_used}
            try:
                res = run_peer_code(py, _PEER_CODE, [json.dumps(job)], timeout=args.peer_timeout)
            except RuntimeError:
                row.update(scnn_status=f"did not finish within {args.peer_timeout:g} s", load_average_after=_load())
                rows.append(row)
                if not args.json:
                    _show(row)
                continue
            if res.returncode != 0:
                raise SystemExit(f"scnn failed: {res.stderr.strip().splitlines()[-1:]}")
            peer = json.loads(res.stdout.strip().splitlines()[-1])
            row.update(scnn_objective=peer["objective"], scnn_seconds=peer["seconds"],
                       scnn_cpu_seconds=peer.get("cpu_seconds", float("nan")), load_average_after=_load(),
                       time_ratio_scnn_over_relulab=peer["seconds"] / row["relulab_seconds"],
                       scnn_excess=(peer["objective"] - sol.objective) / sol.objective)
        rows.append(row)
        if not args.json:
            _show(row)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
