"""Benchmark of ``relulab.landscape.hessian`` against PyHessian and curvlinops, in one process run.

    make peers                                                   # once: the peers' environment
    .venv/bin/python benchmarks/landscape_hessian.py             # re-runs itself under .peers-venv
    .peers-venv/bin/python benchmarks/landscape_hessian.py       # the same, directly
    .venv/bin/python benchmarks/landscape_hessian.py --no-peers  # relulab alone
    .venv/bin/python benchmarks/landscape_hessian.py --skip-accuracy --load 2   # speed, 2 busy processes

Peers (not in CI): PyHessian and curvlinops, in one process with relulab, so the script runs under
the peers' interpreter (``make peers`` builds ``.peers-venv``, pinned versions, see
benchmarks/peers.py); started by another interpreter without the peers, it re-runs itself under
``--peer-python`` (default ``.peers-venv/bin/python``). relulab is imported from this repository's
``src``. Threads: torch's default (what a user gets; each engine picks its own for small work);
``--threads N`` pins them. ``--load N`` runs N CPU-bound processes during the run (stopped at the
end), to measure under load.

Part 1, accuracy (float64, every tool at its defaults): an MLP 10-12-12-3 with cross-entropy on 200
points (P = 327), top-5 eigenvalues and the trace against the dense Hessian (``torch.autograd.functional
.hessian`` and ``eigvalsh``): largest eigenvalue error relative to ``lambda_1``, trace error relative
to ``sum |lambda|`` (root mean square over ``--trace-seeds`` seeds), Hessian-vector products used. PyHessian: power iteration with deflation
(``maxIter=100, tol=1e-3``), Hutchinson trace (``maxIter=100, tol=1e-3``). curvlinops:
``HessianLinearOperator`` + ``scipy.sparse.linalg.eigsh(k=5, which="LA", tol)``, ``hutchpp_trace(99)``.
relulab: ``hessian_eigenpairs(k=5, which="largest", tol)`` (Lanczos, residual-certified), trace by
Hutch++ with 99 products and by the deflated estimator on the eigen-solve's Krylov basis.

Part 2, speed (float32 for every tool, as PyHessian runs in the model's dtype): MLP 784-256-256-10,
cross-entropy, 1024 Gaussian inputs with random labels, random init. Top-5 eigenvalues and the trace,
``--rounds`` interleaved rounds, median seconds, ratio peer/relulab. Each tool's eigenvectors are
checked with an independent float64 Hessian-vector product: relative residual ``||Hv - lv|| / |l|``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE)]  # relulab from this repository, under any interpreter

from relulab.landscape.hessian import HessianOperator, hessian_eigenpairs, hessian_trace  # noqa: E402
from load import add_run_arguments, apply_threads, cpu_load  # noqa: E402
from peers import add_peer_argument, peer_python  # noqa: E402


def mlp(widths, dtype, seed):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).to(dtype)


def data(n, d, classes, dtype, seed):
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randint(0, classes, (n,), generator=g)


# ------------------------------------------------------------------------------------------- tools
def run_relulab(model, x, y, k, tol, trace_queries, seed=0):
    t0 = time.perf_counter()
    op = HessianOperator(model, nn.CrossEntropyLoss(), x, y, dtype=None)
    eig, dec = hessian_eigenpairs(op, k=k, which="largest", tol=tol, seed=seed, _return_lanczos=True)
    t_eig = time.perf_counter() - t0
    n_eig = op.n_products
    t1 = time.perf_counter()
    tr = hessian_trace(op, trace_queries, method="hutch++", seed=seed + 1)
    t_tr = time.perf_counter() - t1
    t2 = time.perf_counter()
    trd = hessian_trace(op, trace_queries, method="deflated", seed=seed + 2, lanczos_basis=dec)
    t_trd = time.perf_counter() - t2
    return dict(eig=eig.largest, vecs=eig.largest_vectors, t_eig=t_eig, hvp_eig=n_eig, converged=eig.converged,
                trace=tr.estimate, trace_se=tr.stderr, t_trace=t_tr, hvp_trace=tr.n_products,
                trace_deflated=trd.estimate, trace_deflated_se=trd.stderr, t_trace_deflated=t_trd,
                hvp_trace_deflated=trd.n_products)


class _Counted:
    """Counts calls of a peer's Hessian-vector product."""

    def __init__(self):
        self.n = 0


def run_pyhessian(model, x, y, k):
    from pyhessian import hessian as pyh

    mod = sys.modules["pyhessian.hessian"]  # the package's name ``hessian`` is the class, not the module

    count = _Counted()
    orig = mod.hessian_vector_product

    def counted(*a, **kw):
        count.n += 1
        return orig(*a, **kw)

    mod.hessian_vector_product = counted
    old = torch.get_default_dtype()
    torch.set_default_dtype(next(model.parameters()).dtype)  # PyHessian draws vectors in the default dtype
    try:
        t0 = time.perf_counter()
        h = pyh(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        vals, vecs = h.eigenvalues(top_n=k)
        t_eig = time.perf_counter() - t0
        n_eig = count.n
        t1 = time.perf_counter()
        tr = h.trace()
        t_tr = time.perf_counter() - t1
    finally:
        torch.set_default_dtype(old)
        mod.hessian_vector_product = orig
    order = np.argsort(vals)[::-1]
    V = torch.stack([torch.cat([t.reshape(-1) for t in vecs[i]]) for i in order])
    return dict(eig=np.asarray(vals)[order], vecs=V, t_eig=t_eig, hvp_eig=n_eig, trace=float(np.mean(tr)),
                trace_se=float(np.std(tr, ddof=1) / np.sqrt(len(tr))), t_trace=t_tr, hvp_trace=count.n - n_eig)


def run_curvlinops(model, x, y, k, tol, trace_queries):
    from curvlinops import HessianLinearOperator, hutchpp_trace
    from scipy.sparse.linalg import eigsh

    params = [p for p in model.parameters() if p.requires_grad]
    t0 = time.perf_counter()
    H = HessianLinearOperator(model, nn.CrossEntropyLoss(), params, [(x, y)], check_deterministic=False)
    Hs = H.to_scipy()
    count = _Counted()
    mv = Hs.matvec

    from scipy.sparse.linalg import LinearOperator

    def counted(v):
        count.n += 1
        return mv(v)

    Hc = LinearOperator(Hs.shape, matvec=counted, dtype=Hs.dtype)
    vals, vecs = eigsh(Hc, k=k, which="LA", tol=tol)
    t_eig = time.perf_counter() - t0
    t1 = time.perf_counter()
    tr = float(hutchpp_trace(H, trace_queries))  # draws from torch's global generator, seeded by the caller
    t_tr = time.perf_counter() - t1
    order = np.argsort(vals)[::-1]
    return dict(eig=vals[order], vecs=torch.as_tensor(vecs[:, order].T.copy()), t_eig=t_eig, hvp_eig=count.n,
                trace=tr, trace_se=float("nan"), t_trace=t_tr, hvp_trace=trace_queries)


def residuals(ref_op, vals, vecs):
    out = []
    for lam, v in zip(vals, vecs):
        v = v.to(torch.float64)
        v = v / torch.linalg.vector_norm(v)
        out.append(float(torch.linalg.vector_norm(ref_op.matvec(v) - float(lam) * v) / abs(float(lam))))
    return np.array(out)


# ------------------------------------------------------------------------------------------- parts
def part_accuracy(tools, k, tol, queries, trace_seeds):
    model = mlp([10, 12, 12, 3], torch.float64, 0)
    x, y = data(200, 10, 3, torch.float64, 0)
    op = HessianOperator(model, nn.CrossEntropyLoss(), x, y)
    flat = op.theta.clone()
    names, shapes, sizes = op.names, op.shapes, op.sizes
    ref_model = mlp([10, 12, 12, 3], torch.float64, 0)

    def L(f):
        ps = {n: t.view(s) for n, t, s in zip(names, f.split(sizes), shapes)}
        return nn.functional.cross_entropy(torch.func.functional_call(ref_model, ps, (x,)), y)

    H = torch.autograd.functional.hessian(L, flat)
    ev = torch.linalg.eigvalsh((H + H.T) / 2).numpy()
    top, true_trace, scale = ev[::-1][:k], float(ev.sum()), float(np.abs(ev).sum())
    print(f"# part 1: accuracy, MLP 10-12-12-3, cross-entropy, n = 200, P = {op.dim}, float64")
    print(f"dense: top-{k} = {np.array2string(top, precision=10)}, trace = {true_trace:.10g}")
    rows = {}
    for name in tools:
        m = mlp([10, 12, 12, 3], torch.float64, 0)
        if name == "relulab":
            r = run_relulab(m, x, y, k, tol, queries)
        elif name == "pyhessian":
            r = run_pyhessian(m, x, y, k)
        else:
            r = run_curvlinops(m, x, y, k, tol, queries)
        r["eig_error"] = float(np.max(np.abs(r["eig"] - top)) / abs(top[0]))
        # trace estimators are random: root-mean-square error over seeds
        errs, errs_d, prods = [], [], []
        for s in range(trace_seeds):
            m = mlp([10, 12, 12, 3], torch.float64, 0)  # (mlp seeds torch's generator: reseed after it)
            torch.manual_seed(10_000 + s)
            if name == "relulab":
                rs = run_relulab(m, x, y, k, tol, queries, seed=1000 * s)
                errs_d.append((rs["trace_deflated"] - true_trace) / scale)
            elif name == "pyhessian":
                rs = run_pyhessian(m, x, y, k)
            else:
                rs = run_curvlinops(m, x, y, k, tol, queries)
            errs.append((rs["trace"] - true_trace) / scale)
            prods.append(rs["hvp_trace"])
        r["trace_rms_error"] = float(np.sqrt(np.mean(np.square(errs))))
        r["trace_products_mean"] = float(np.mean(prods))
        line = (f"{name:10s} top-{k} max rel error {r['eig_error']:.2e} ({r['hvp_eig']} products)   "
                f"trace RMS error/sum|l| over {trace_seeds} seeds {r['trace_rms_error']:.2e} "
                f"({r['trace_products_mean']:.0f} products)")
        if errs_d:
            r["trace_deflated_rms_error"] = float(np.sqrt(np.mean(np.square(errs_d))))
            line += (f"   deflated {r['trace_deflated_rms_error']:.2e} "
                     f"({r['hvp_trace_deflated']} products after the eigen-solve)")
        print(line)
        rows[name] = {k2: v for k2, v in r.items() if k2 != "vecs"}
    if "pyhessian" in rows:  # PyHessian stops its trace early: relulab's Hutch++ with as many products
        budget = max(3, int(round(rows["pyhessian"]["trace_products_mean"])))
        op = HessianOperator(mlp([10, 12, 12, 3], torch.float64, 0), nn.CrossEntropyLoss(), x, y)
        errs = [(hessian_trace(op, budget, method="hutch++", seed=5000 + s).estimate - true_trace) / scale
                for s in range(trace_seeds)]
        rms = float(np.sqrt(np.mean(np.square(errs))))
        rows["relulab"]["trace_rms_error_at_pyhessian_budget"] = rms
        print(f"{'relulab':10s} Hutch++ with PyHessian's {budget} products: trace RMS error/sum|l| {rms:.2e}")
    return dict(dense_top=top, dense_trace=true_trace, tools=rows)


def part_speed(tools, k, tol, queries, rounds, n):
    x, y = data(n, 784, 10, torch.float32, 0)
    ref = HessianOperator(mlp([784, 256, 256, 10], torch.float32, 0), nn.CrossEntropyLoss(), x, y,
                          dtype=torch.float64)
    print(f"\n# part 2: speed, MLP 784-256-256-10, cross-entropy, n = {n}, P = {ref.dim}, float32, "
          f"{rounds} interleaved rounds (median)")
    times = {t: {"eig": [], "trace": []} for t in tools}
    last = {}
    for r in range(rounds):
        for name in tools:
            m = mlp([784, 256, 256, 10], torch.float32, 0)
            if name == "relulab":
                res = run_relulab(m, x, y, k, tol, queries, seed=r)
            elif name == "pyhessian":
                res = run_pyhessian(m, x, y, k)
            else:
                res = run_curvlinops(m, x, y, k, tol, queries)
            times[name]["eig"].append(res["t_eig"])
            times[name]["trace"].append(res["t_trace"])
            last[name] = res
            print(f"  round {r + 1} {name:10s} top-{k} {res['t_eig']:7.2f} s ({res['hvp_eig']} products), trace "
                  f"{res['t_trace']:6.2f} s ({res['hvp_trace']} products)", flush=True)
    out = {}
    if "pyhessian" in last:
        budget = last["pyhessian"]["hvp_trace"]
        op = HessianOperator(mlp([784, 256, 256, 10], torch.float32, 0), nn.CrossEntropyLoss(), x, y, dtype=None)
        op.matvec(torch.zeros(op.dim))  # build the gradient graph outside the timing, as PyHessian's constructor does
        tm = []
        for r in range(rounds):
            t0 = time.perf_counter()
            trm = hessian_trace(op, budget, method="hutch++", seed=r)
            tm.append(time.perf_counter() - t0)
        out["relulab_trace_at_pyhessian_budget"] = dict(products=trm.n_products, seconds=statistics.median(tm),
                                                       trace=trm.estimate, stderr=trm.stderr)
        print(f"{'relulab':10s} Hutch++ trace with PyHessian's {budget} products: {trm.estimate:.5g} +- "
              f"{trm.stderr:.2g} in {statistics.median(tm):.2f} s (PyHessian "
              f"{statistics.median(times['pyhessian']['trace']):.2f} s)")
    base = {kind: statistics.median(times["relulab"][kind]) for kind in ("eig", "trace")}
    for name in tools:
        res = last[name]
        te, tt = statistics.median(times[name]["eig"]), statistics.median(times[name]["trace"])
        rr = residuals(ref, res["eig"], res["vecs"])
        out[name] = dict(top=res["eig"], seconds_eig=te, seconds_trace=tt, hvp_eig=res["hvp_eig"],
                         hvp_trace=res["hvp_trace"], trace=res["trace"], trace_se=res["trace_se"],
                         max_relative_residual=float(rr.max()), ratio_eig=te / base["eig"],
                         ratio_trace=tt / base["trace"])
        print(f"{name:10s} top-{k} {te:7.2f} s ({res['hvp_eig']:4d} products, x{te / base['eig']:.2f} relulab's time), "
              f"max ||Hv-lv||/|l| {rr.max():.1e};  trace {res['trace']:.5g} +- {res['trace_se']:.2g} "
              f"in {tt:6.2f} s ({res['hvp_trace']} products, x{tt / base['trace']:.2f})")
        print(f"{'':10s} top-{k}: {np.array2string(np.asarray(res['eig'], dtype=float), precision=6)}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--tol", type=float, default=1e-6, help="eigen tolerance of relulab and eigsh")
    p.add_argument("--queries", type=int, default=99, help="products for the Hutch++ trace estimates")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--trace-seeds", type=int, default=100, help="seeds for the trace errors of part 1")
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-accuracy", action="store_true")
    add_run_arguments(p)
    add_peer_argument(p)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    tools = ["relulab"]
    if not a.no_peers:
        missing = []
        for mod in ("pyhessian", "curvlinops"):
            try:
                __import__(mod)
            except ImportError:
                missing.append(mod)
        if missing:
            py = peer_python(a.peer_python)
            if Path(sys.prefix).resolve() == py.parent.parent.resolve():  # already the peers' environment
                raise SystemExit(f"{', '.join(missing)} not importable under {py}: rebuild with `make peers`")
            os.execv(str(py), [str(py), str(Path(__file__).resolve()), *(sys.argv[1:] if argv is None else argv)])
        tools += ["pyhessian", "curvlinops"]
    print(f"# {apply_threads(a)}, python {sys.executable}")
    out = {}
    with cpu_load(a.load):
        if not a.skip_accuracy:
            out["accuracy"] = part_accuracy(tools, a.k, a.tol, a.queries, a.trace_seeds)
        if not a.skip_speed:
            out["speed"] = part_speed(tools, a.k, a.tol, a.queries, a.rounds, a.n)
    if a.json:
        from relulab.results import to_plain

        with open(a.json, "w") as f:
            json.dump(to_plain(out), f, indent=1)


if __name__ == "__main__":
    main()
