r"""Random-start gradient descent on the non-convex training problem, beside its convex optimum.

The problem is the one of :mod:`relulab.convex.program`: ``m`` neurons, objective
``1/2 |sum_j (A u_j)_+ a_j - y|^2 + beta/2 sum_j (|u_j|^2 + a_j^2)`` (or its batch-normalized form with
``gamma_j, alpha_j``). Every run is plain full-batch gradient descent with a fixed step from its own
Gaussian start; all runs advance together as one batched tensor program (autograd of the summed
objectives, whose gradient in each run's parameters is that run's own gradient). Weak duality makes
the certified lower bound of the convex program a floor under every run (Pilanci and Ergen, ICML 2020);
a run that ends above the optimum has stalled (a spurious local minimum, a saddle, a dead neuron, or
too few steps), and the comparison reports how many did.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from relulab.convex.program import ConvexSolution, _check_inputs, _features, solve
from relulab.core.errors import InvalidInputError
from relulab.core.threads import threads_for
from relulab.results import Result

__all__ = ["gd_runs", "GDRuns", "compare_gd", "GDComparison"]


@dataclass(repr=True)
class GDRuns(Result):
    """Final objectives (runs,) of ``runs`` gradient-descent runs of ``width`` neurons, and ``history``
    (checkpoints, runs) at the steps ``checkpoints``; a run whose objective overflowed is ``inf``."""

    objectives: np.ndarray
    history: np.ndarray = field(repr=False)
    checkpoints: np.ndarray = field(repr=False)
    width: int
    steps: int
    lr: float
    init_scale: float
    bn: bool
    seconds: float = 0.0

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.checkpoints, self.history, color="C0", alpha=0.4, lw=0.8)
        ax.set_xscale("symlog")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("objective")
        return ax


# steps between the checks for runs that overflowed
_CHECK = 64


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _plain_grads(A, U, a, H, act, r, s, beta, pen):
    """Gradients in (U, a) of ``s/2 |relu(A U^T) a - y|^2 + beta/2 (|U pen|^2 + |a|^2)`` per run, given the
    forward pass ``H = A U^T``, ``act = relu(H)`` and residuals ``r`` (ReLU' taken as 1[H > 0]); ``pen`` (q,)
    masks the unpenalized bias column. With a free output bias ``r`` is the centred residual (the bias at
    its optimum, the mean residual, at every step: the gradient of the reduced objective)."""
    ga = s * (act.transpose(1, 2) @ r[:, :, None])[:, :, 0] + beta * a
    back = s * r[:, :, None] * a[:, None, :] * (H > 0)
    return back.transpose(1, 2) @ A + beta * U * pen, ga


def _bn_grads(A, W, gamma, alpha, a, Zh, N, H, act, r, s, beta):
    """Gradients in (W, gamma, alpha, a) of the batch-normalized objective ``s/2 |relu(H) a - y|^2 +
    beta/2 (|gamma|^2 + |alpha|^2 + |a|^2)`` with ``H = gamma Zh + alpha / sqrt(n)``, ``Zh = Zc / N`` the
    normalized centred pre-activations (``Zc = P A W^T``, ``P = I - 11^T/n``, ``N = |Zc|`` per neuron), given
    that forward pass. The normalization's derivative is ``(I - Zh Zh^T) / N`` and the centring's is ``P``
    (both symmetric), so ``dW = (P (I - Zh Zh^T) gamma G / N)^T A`` with ``G = dobj/dH``."""
    n = A.shape[0]
    ga = s * (act.transpose(1, 2) @ r[:, :, None])[:, :, 0] + beta * a
    G = s * r[:, :, None] * a[:, None, :] * (H > 0)
    dgamma = (G * Zh).sum(1) + beta * gamma
    dalpha = G.sum(1) / math.sqrt(n) + beta * alpha
    dZh = G * gamma[:, None, :]
    dZc = (dZh - Zh * (dZh * Zh).sum(1, keepdim=True)) / N
    dZ = dZc - dZc.mean(1, keepdim=True)
    return dZ.transpose(1, 2) @ A, dgamma, dalpha, ga


def gd_runs(X, y, beta: float, *, width: int, runs: int = 32, steps: int = 2000, lr: float | None = None,
            init_scale: float = 1.0, bias=True, bn: bool = False, loss: str = "sum", seed: int = 0,
            record: int = 24, dtype=torch.float64) -> GDRuns:
    """``runs`` full-batch gradient-descent runs of a ``width``-neuron network from seeded Gaussian starts
    (``u ~ N(0, init_scale^2 / q)``, ``a ~ N(0, init_scale^2 / width)``; BN: ``w ~ N(0, 1/d)``,
    ``gamma, alpha, a ~ N(0, init_scale^2 / width)``). ``lr``: the step; default ``1 / (4 L)`` with
    ``L = s ||A||_2^2 + beta`` (``s = 1`` or ``1/n``), the curvature scale of the output layer at unit-size
    neurons. ``bias="free"``: the hidden biases are not penalized and the output bias is kept at its
    optimum (the mean residual) at every step. Returns :class:`GDRuns`."""
    t0 = time.perf_counter()
    Xn, yn, beta = _check_inputs(X, y, beta, loss)
    width, runs, steps = _positive_int(width, "width"), _positive_int(runs, "runs"), _positive_int(steps, "steps")
    record = _positive_int(record, "record")
    if not (isinstance(init_scale, (int, float)) and math.isfinite(init_scale) and init_scale > 0):
        raise InvalidInputError(f"init_scale must be a positive number, got {init_scale!r}")
    if runs * width * max(Xn.shape) * Xn.shape[0] > 2e9:
        from relulab.core.errors import ResourceLimitError

        raise ResourceLimitError(f"runs * width * n * max(n, d) = {runs * width * max(Xn.shape) * Xn.shape[0]:.3g} "
                                 "elements exceed the 2e9 this comparison allocates; use fewer runs or neurons")
    n = Xn.shape[0]
    s = 1.0 / n if loss == "mean" else 1.0
    F = _features(Xn, bias, bn)
    A = torch.as_tensor(F.A if not bn else Xn, dtype=dtype)
    if lr is None:
        lr = 0.25 / (s * float(np.linalg.norm(F.A, 2)) ** 2 + beta)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InvalidInputError(f"lr must be a positive number, got {lr!r}")
    g = torch.Generator().manual_seed(int(seed))
    Y = torch.as_tensor(yn, dtype=dtype)
    q = A.shape[1]
    pen = torch.ones(q, dtype=dtype)
    if F.free:
        pen[-1] = 0.0
    if bn:
        params = [torch.randn(runs, width, q, generator=g, dtype=dtype) / math.sqrt(q)] + \
                 [torch.randn(runs, width, generator=g, dtype=dtype) * init_scale / math.sqrt(width) for _ in range(3)]
    else:
        params = [torch.randn(runs, width, q, generator=g, dtype=dtype) * init_scale / math.sqrt(q),
                  torch.randn(runs, width, generator=g, dtype=dtype) * init_scale / math.sqrt(width)]
    root_n = math.sqrt(n)

    def forward(P):
        if bn:
            W, gamma, alpha, a = P
            Zc = A @ W.transpose(1, 2)  # (runs, n, m)
            Zc = Zc - Zc.mean(dim=1, keepdim=True)
            N = torch.linalg.vector_norm(Zc, dim=1, keepdim=True).clamp_min(1e-150)
            Zh = Zc / N
            H = gamma[:, None, :] * Zh + alpha[:, None, :] / root_n
            penalty = gamma.square().sum(1) + alpha.square().sum(1) + a.square().sum(1)
            extra = (Zh, N)
        else:
            U, a = P
            H = A @ U.transpose(1, 2)  # (runs, n, m)
            penalty = (U * pen).square().sum((1, 2)) + a.square().sum(1)
            extra = ()
        act = torch.relu(H)
        r = (act @ a[:, :, None])[:, :, 0] - Y
        if F.free:
            r = r - r.mean(dim=1, keepdim=True)
        return 0.5 * s * r.square().sum(1) + 0.5 * beta * penalty, H, act, r, extra

    marks = np.unique(np.round(np.geomspace(1, steps + 1, record)).astype(int) - 1)
    is_mark = np.zeros(steps + 1, dtype=bool)
    is_mark[marks] = True
    final = np.full(runs, np.inf)
    history = np.full((len(marks), runs), np.inf)
    live = np.arange(runs)
    row = 0
    # a run whose objective is no longer finite is dropped from the batch (its gradient is not finite
    # either, so it never comes back) and keeps ``inf``; the others go on unchanged. Checked every
    # ``_CHECK`` steps (a run that overflows in between only carries non-finite numbers until then)
    with torch.no_grad(), threads_for(runs * n * width):
        for step in range(steps + 1):
            obj, H, act, r, extra = forward(params)
            check = is_mark[step] or step == steps or step % _CHECK == 0
            if check and not bool((ok := torch.isfinite(obj)).all()):
                live, params = live[ok.numpy()], [p[ok] for p in params]
                if len(live) == 0:
                    break
                obj, H, act, r, extra = obj[ok], H[ok], act[ok], r[ok], tuple(e[ok] for e in extra)
            if is_mark[step]:
                history[row, live] = obj.numpy()
                row += 1
            if step == steps:
                final[live] = obj.numpy()
                break
            # the gradients written out: a few batched products per layer
            if bn:
                grads = _bn_grads(A, *params, *extra, H, act, r, s, beta)
            else:
                grads = _plain_grads(A, *params, H, act, r, s, beta, pen)
            for p, gr in zip(params, grads):
                p -= lr * gr
    return GDRuns(objectives=final, history=history, checkpoints=marks, width=width, steps=steps, lr=float(lr),
                  init_scale=float(init_scale), bn=bn, seconds=time.perf_counter() - t0)


@dataclass(repr=True)
class GDComparison(Result):
    """Gradient descent against the convex optimum. ``optimum``: the rebuilt optimal network's objective;
    ``lower_bound``: its certified dual bound; ``best_gd``: the lowest GD objective; ``reached``: runs that end
    within ``rtol`` (relative) of the optimum; ``stalled``: runs that end above it; ``below_bound``: runs
    below the certified bound beyond ``rtol`` (0 unless something is wrong: weak duality forbids it)."""

    optimum: float
    lower_bound: float
    best_gd: float
    reached: int
    stalled: int
    below_bound: int
    runs: int
    rtol: float
    complete: bool
    gd: GDRuns = field(repr=False)
    solution: ConvexSolution = field(repr=False)
    seconds: float = 0.0

    _summary_fields = ("optimum", "lower_bound", "best_gd", "reached", "stalled", "below_bound", "runs", "rtol",
                       "complete", "seconds")

    def to_dict(self, summary: bool = False) -> dict:
        out = super().to_dict(summary=summary)
        for k in ("gd", "solution"):
            if k in out:
                out[k] = getattr(self, k).to_dict(summary=True) if k == "solution" else getattr(self, k).to_dict()
        return out

    def plot(self, ax=None):
        """Every run's objective over the steps, the optimum and the certified bound as horizontal lines."""
        ax = self.gd.plot(ax)
        ax.axhline(self.optimum, color="C2", lw=1.5, label=f"convex optimum {self.optimum:.5g}")
        ax.axhline(self.lower_bound, color="k", lw=0.8, ls="--", label="certified bound")
        ax.set_title(f"{self.reached} of {self.runs} GD runs reach the optimum, {self.stalled} stall", fontsize=9)
        ax.legend(fontsize=8)
        return ax


def compare_gd(X, y, beta: float, *, width: int | None = None, runs: int = 32, steps: int = 2000,
               lr: float | None = None, init_scale: float = 1.0, bias=True, bn: bool = False,
               loss: str = "sum", seed: int = 0, rtol: float = 1e-3, solution: ConvexSolution | None = None,
               **solve_kwargs) -> GDComparison:
    """Solve the convex program (or reuse ``solution``) and run :func:`gd_runs` with ``width`` neurons
    (default: twice the optimal network's, at least 2); count the runs that reach the optimum and those
    that stall."""
    t0 = time.perf_counter()
    Xn, yn, beta = _check_inputs(X, y, beta, loss)
    if solution is None:
        solution = solve(Xn, yn, beta, bias=bias, bn=bn, loss=loss, **solve_kwargs)
    if width is None:
        width = max(2, 2 * solution.neurons)
    gd = gd_runs(Xn, yn, beta, width=width, runs=runs, steps=steps, lr=lr, init_scale=init_scale, bias=bias,
                 bn=bn, loss=loss, seed=seed)
    obj = gd.objectives
    opt = solution.objective
    tol = rtol * max(abs(opt), 1e-12)
    return GDComparison(optimum=opt, lower_bound=solution.lower_bound, best_gd=float(obj.min()),
                        reached=int((obj <= opt + tol).sum()), stalled=int((obj > opt + tol).sum()),
                        below_bound=int((obj < solution.lower_bound - tol).sum()), runs=runs, rtol=rtol,
                        complete=solution.complete, gd=gd, solution=solution, seconds=time.perf_counter() - t0)
