r"""Distances between the realizations (the functions) of two ReLU networks on a box, exactly from the
region engine, and the examples of Berner, Elbrachter, Grohs and Jentzen (NeurIPS 2019) where
realizations converge while the parameters do not, even modulo the symmetries.

**Realization distance.** The difference f_theta - f_eta is itself a ReLU network (the two hidden parts
side by side, output weights [W_L^theta, -W_L^eta]); :func:`relulab.regions.full_space` lists all of its
activation regions in the box, each with its affine map A x + c (``PLNet.local_affine``) and its
inequalities (``PLNet.region_inequalities``). Then

* |f_theta - f_eta|_{L^inf(box)} = max over regions and output coordinates of max |A_k x + c_k| over the
  region's polytope, one linear program per region, output and sign (HiGHS; exact up to its 1e-9
  feasibility tolerance);
* the derivative part max over regions of max_{k, i} |A_{k, i}| (the essential supremum of the partial
  derivatives: regions are full-dimensional), and |.|_{W^{1, inf}} = max of the two.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from relulab.core.errors import InvalidInputError
from relulab.parameterization.symmetries import ReluParams, relu_params, rescale, symmetry_distance
from relulab.results import Result

__all__ = ["difference_network", "realization_distance", "RealizationDistance", "degeneracy_examples",
           "DegeneracyExamples"]


def difference_network(theta, eta) -> ReluParams:
    """A ReLU network computing f_theta - f_eta (same depth, input and output dimension; widths may differ)."""
    p, q = relu_params(theta), relu_params(eta)
    if len(p.weights) != len(q.weights):
        raise InvalidInputError(f"theta and eta must have the same depth, got {len(p.weights)} and {len(q.weights)}")
    if p.widths[0] != q.widths[0] or p.widths[-1] != q.widths[-1]:
        raise InvalidInputError(f"theta and eta must have the same input and output dimension, got widths "
                                f"{p.widths} and {q.widths}")
    L = len(p.weights)
    if L == 1:
        return ReluParams([p.weights[0] - q.weights[0]], [p.biases[0] - q.biases[0]])
    Ws, bs = [np.vstack([p.weights[0], q.weights[0]])], [np.concatenate([p.biases[0], q.biases[0]])]
    for l in range(1, L - 1):
        Wp, Wq = p.weights[l], q.weights[l]
        W = np.zeros((Wp.shape[0] + Wq.shape[0], Wp.shape[1] + Wq.shape[1]))
        W[:Wp.shape[0], :Wp.shape[1]] = Wp
        W[Wp.shape[0]:, Wp.shape[1]:] = Wq
        Ws.append(W)
        bs.append(np.concatenate([p.biases[l], q.biases[l]]))
    Ws.append(np.hstack([p.weights[-1], -q.weights[-1]]))
    bs.append(p.biases[-1] - q.biases[-1])
    return ReluParams(Ws, bs)


@dataclass
class RealizationDistance(Result):
    """Distances between two realizations on a box: ``sup`` = |f - g|_inf, ``derivative`` = ess sup of the
    partial derivatives of f - g, ``w1inf`` = max of both; ``argmax``: a point where |f - g| = sup;
    ``regions``: activation regions of f - g in the box; ``complete``: the enumeration listed all regions."""

    sup: float
    derivative: float
    w1inf: float
    argmax: np.ndarray
    regions: int
    complete: bool
    box: tuple
    seconds: float


def realization_distance(theta, eta, box=(-1.0, 1.0), *, max_regions: int | None = 100_000) -> RealizationDistance:
    """|f_theta - f_eta| in L^inf and W^{1, inf} on ``box`` = (lo, hi) (scalars or vectors), exactly from
    the activation regions of the difference network (module docstring)."""
    from scipy.optimize import linprog

    from relulab.core.plnet import PLNet
    from relulab.regions import full_space

    t0 = time.perf_counter()
    diff = difference_network(theta, eta)
    d, r = diff.widths[0], diff.widths[-1]
    try:
        lo = np.broadcast_to(np.asarray(box[0], dtype=np.float64), (d,)).copy()
        hi = np.broadcast_to(np.asarray(box[1], dtype=np.float64), (d,)).copy()
    except (TypeError, ValueError, IndexError):
        raise InvalidInputError(f"box must be (lo, hi) with scalars or length-{d} vectors, got {box!r}") from None
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (lo < hi).all()):
        raise InvalidInputError("box needs finite bounds with lo < hi in every coordinate")
    if len(diff.weights) == 1:
        A = diff.weights[0][None]
        c = diff.biases[0][None]
        regions, complete, ineq = 1, True, [(np.zeros((0, d)), np.zeros(0))]
    else:
        net = PLNet.from_torch(diff.to_torch(), (d,))
        reg = full_space(net, box=(torch.as_tensor(lo), torch.as_tensor(hi)), max_regions=max_regions)
        with torch.no_grad():
            At, ct = net.local_affine(reg.interior_points)
            G, h = net.region_inequalities(reg.patterns)
        A, c = At.numpy(), ct.numpy()
        G, h = G.numpy(), h.numpy()
        regions, complete = int(reg.count), bool(reg.complete)
        ineq = [(G[i], h[i]) for i in range(regions)]
    best, arg = -math.inf, lo.copy()
    bounds = list(zip(lo, hi))
    for i, (Gi, hi_) in enumerate(ineq):
        for k in range(r):
            for sign in (1.0, -1.0):
                res = linprog(-sign * A[i, k], A_ub=-Gi if Gi.size else None, b_ub=hi_ if Gi.size else None,
                              bounds=bounds, method="highs")
                if res.status != 0:
                    continue  # a region that is empty to the solver's tolerance
                val = sign * (A[i, k] @ res.x + c[i, k])
                if val > best:
                    best, arg = float(val), res.x
    deriv = float(np.abs(A).max())
    return RealizationDistance(sup=max(best, 0.0), derivative=deriv, w1inf=max(best, deriv), argmax=arg,
                               regions=regions, complete=complete, box=(lo.tolist(), hi.tolist()),
                               seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- examples
def _net(w, b, a, c=0.0) -> ReluParams:
    """x -> sum_i a_i relu(w_i x + b_i) + c (one input, one output)."""
    f = lambda v: np.array(v, dtype=np.float64)  # noqa: E731
    return ReluParams([f(w).reshape(-1, 1), f(a).reshape(1, -1)], [f(b), f([c])])


def _examples():
    """name -> (description, theta, n -> theta_n); one input, one output, width 2, box [-1, 1]."""
    return {
        "unbalanced": ("neurons rescaled by n and 1/n: a symmetry, so the quotient removes it",
                       _net([1, -1], [0, 0.5], [1, 2]),
                       lambda n: rescale(_net([1, -1], [0, 0.5], [1, 2]), [[n, 1.0 / n]])),
        "redundant": ("two parallel neurons with output weights 1 + n and -n: the same function; the parameters "
                      "diverge modulo symmetries",
                      _net([1, 1], [0, 0], [1, 0]), lambda n: _net([1, 1], [0, 0], [1 + n, -n])),
        "dead": ("a second neuron relu(n x - 2n) that never fires on the box: the same function on the box; the "
                 "parameters diverge modulo symmetries",
                 _net([1, 1], [0, -2], [1, 0]), lambda n: _net([1, 1], [0, -2 * n], [1, 1])),
        "w1inf": ("relu(x - 1/2) - relu(x - 1/2 - 1/n) -> 0 uniformly, parameters converge to a representation "
                  "of 0, but the W^{1,inf} distance stays 1: the realization map is not continuous into W^{1,inf}",
                  _net([1, 1], [-0.5, -0.5], [1, -1]), lambda n: _net([1, 1], [-0.5, -0.5 - 1.0 / n], [1, -1])),
    }


@dataclass
class DegeneracyExamples(Result):
    """Rows (example, n, parameter distance, distance modulo symmetries, sup and W^{1,inf} distances of
    the realizations on [-1, 1]) for each example of :func:`degeneracy_examples`; ``descriptions``."""

    rows: list
    descriptions: dict

    def table(self) -> str:
        out = ["example     n       |theta_n - theta|  mod symmetries  sup |f_n - f|  W^1,inf"]
        for r in self.rows:
            out.append(f"{r['example']:<11} {r['n']:<7g} {r['parameter_distance']:<18.6g} {r['symmetry_distance']:<15.6g} "
                       f"{r['sup_distance']:<14.6g} {r['w1inf_distance']:.6g}")
        return "\n".join(out)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        for name in self.descriptions:
            rows = [r for r in self.rows if r["example"] == name]
            ax.loglog([r["n"] for r in rows], [max(r["symmetry_distance"], 1e-16) for r in rows], "o-",
                      label=f"{name}: mod symmetries")
            ax.loglog([r["n"] for r in rows], [max(r["sup_distance"], 1e-16) for r in rows], "x--",
                      label=f"{name}: sup of realizations")
        ax.set_xlabel("n")
        ax.set_ylabel("distance")
        ax.legend(fontsize=7)
        return ax


def degeneracy_examples(ns=(1, 4, 16, 64, 256), names=None) -> DegeneracyExamples:
    """Sequences theta_n of Berner et al.'s kinds (unbalanced, redundant, dead neurons; and the failure of
    continuity into W^{1, inf}) with their parameter distances (plain and modulo symmetries) and exact
    realization distances to the limit theta on [-1, 1]."""
    ex = _examples()
    names = list(ex) if names is None else list(names)
    unknown = [n for n in names if n not in ex]
    if unknown:
        raise InvalidInputError(f"unknown example(s) {unknown}; choose from {list(ex)}")
    try:
        ns = [float(n) for n in ns]
    except (TypeError, ValueError):
        raise InvalidInputError(f"ns must be numbers >= 1, got {ns!r}") from None
    if not ns or any(not (n >= 1 and math.isfinite(n)) for n in ns):
        raise InvalidInputError(f"ns must be finite numbers >= 1, got {ns!r}")
    rows = []
    for name in names:
        _, theta, seq = ex[name]
        for n in ns:
            tn = seq(n)
            sd = symmetry_distance(tn, theta)
            rd = realization_distance(tn, theta, (-1.0, 1.0))
            rows.append({"example": name, "n": n, "parameter_distance": sd.plain_distance,
                         "symmetry_distance": sd.distance, "sup_distance": rd.sup, "w1inf_distance": rd.w1inf})
    return DegeneracyExamples(rows=rows, descriptions={k: ex[k][0] for k in names})
