r"""Benign against harmful overfitting of two-layer leaky ReLU networks trained on the hinge loss.

The data model (signal plus orthogonal noise, as in Karhadkar, George, Murray, Montufar and Needell,
*Benign overfitting in leaky ReLU networks with moderate input dimension*, NeurIPS 2024): a unit
signal vector v in R^d, clean labels y_i = +-1, inputs

    x_i = y_i sqrt(gamma) v + sqrt(1 - gamma) z_i,    z_i ~ N(0, (I - v v^T) / d)   (orthogonal to v),

and exactly k of the n training labels flipped (the observed labels yhat_i). gamma in (0, 1) is the
signal strength; the signal-to-noise ratio of a point is gamma / (1 - gamma). Because the noise is
orthogonal to v, sign(<v, x>) classifies every clean point correctly: the Bayes error against clean
labels is 0, and the *test error* here is P(y f(x) <= 0) against the clean label of a fresh point.

The network f(x) = sum_j a_j sigma(<w_j, x>) has leaky ReLU sigma(t) = max(t, slope t), fixed outer
weights a_j = +-1/sqrt(m) (half of each sign) and inner weights trained by gradient descent on the
hinge loss (1/n) sum_i max(0, 1 - yhat_i f(x_i)) until it is zero (every margin >= 1): the network
interpolates the noisy labels.

Test errors are not sampled in d dimensions: for a linear classifier w = beta v + u (u orthogonal to
v) the error is Phi(-sqrt(gamma) beta sqrt(d) / (sqrt(1 - gamma) |u|)) in closed form; for the
network, f(x) depends on x only through W x, a Gaussian vector in R^m given y, so its error is an
m-dimensional Monte Carlo integral, reported with a binomial standard error.

The threshold drawn in :meth:`BenignDiagram.plot` is derived here, not taken from the paper: in the
nearly-orthogonal regime (d >> n, |z_i| ~ 1, <z_i, z_j> ~ 0) the hard-margin linear classifier has
sqrt(gamma) beta = s = (n - 2k) gamma / (1 - gamma + n gamma) and
|u|^2 = ((n - k)(1 - s)^2 + k (1 + s)^2) / (1 - gamma), so its test error is

    Phi( - sqrt(d) s / sqrt((n - k)(1 - s)^2 + k (1 + s)^2) )          (``predicted_error``),

which is ~ Phi(-gamma sqrt(n d) (1 - 2k/n)) for n gamma << 1 (harmful: error -> 1/2 as
gamma sqrt(n d) -> 0) and ~ Phi(-sqrt(d / 4k) (1 - 2k/n)) for n gamma >> 1 (benign when d >> k):
the transition sits at gamma ~ 1 / sqrt(n d). The paper proves that GD on the hinge loss
approximately maximizes the margin, which is why the network is compared with this classifier.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.results import Result

__all__ = ["SignalNoiseData", "signal_noise_data", "linear_test_error", "max_margin", "MaxMargin",
           "train_hinge", "network_test_error", "predicted_error", "benign_diagram", "BenignDiagram"]


def _int(name, v, lo, hi=None):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
        raise InvalidInputError(f"{name} must be an integer >= {lo}" + (f" and <= {hi}" if hi is not None else "")
                                + f", got {v!r}")
    return int(v)


def _gamma(gamma):
    if not (isinstance(gamma, (int, float, np.floating)) and 0 < gamma < 1):
        raise InvalidInputError(f"gamma must be a number in (0, 1), got {gamma!r}")
    return float(gamma)


@dataclass
class SignalNoiseData:
    """``x`` (n, d), clean labels ``y`` and observed labels ``y_obs`` (k of them flipped, listed in
    ``flipped``), the signal ``v`` and the model's ``gamma``."""

    x: np.ndarray
    y: np.ndarray
    y_obs: np.ndarray
    flipped: np.ndarray
    v: np.ndarray
    gamma: float


def signal_noise_data(n: int, d: int, gamma: float, flipped: int, *, seed: int = 0) -> SignalNoiseData:
    """n points of the module's data model in R^d with exactly ``flipped`` observed labels flipped
    (balanced clean labels: the first half +1 in a random order; v = e_1)."""
    n = _int("n", n, 2, 10**6)
    d = _int("d", d, 2, 10**6)
    k = _int("flipped", flipped, 0, n)
    gamma = _gamma(gamma)
    if n * d > 5 * 10**7:
        raise ResourceLimitError(f"n * d = {n * d} entries is over the limit of 5e7")
    rng = np.random.default_rng(seed)
    y = np.where(rng.permutation(n) < (n + 1) // 2, 1.0, -1.0)
    v = np.zeros(d)
    v[0] = 1.0
    z = rng.standard_normal((n, d)) / math.sqrt(d)
    z[:, 0] = 0.0  # orthogonal to v
    x = y[:, None] * math.sqrt(gamma) * v + math.sqrt(1 - gamma) * z
    flip = np.sort(rng.choice(n, size=k, replace=False))
    y_obs = y.copy()
    y_obs[flip] *= -1
    return SignalNoiseData(x=x, y=y, y_obs=y_obs, flipped=flip, v=v, gamma=gamma)


def linear_test_error(w, v, gamma: float) -> float:
    """P(y <w, x> <= 0) for a fresh point of the model with signal ``v``: with w = beta v + u,
    Phi(-sqrt(gamma) beta sqrt(d) / (sqrt(1 - gamma) |u|)) (1/2 for beta <= 0 and u = 0)."""
    from scipy.special import ndtr

    w = np.asarray(w, dtype=np.float64).reshape(-1)
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    gamma = _gamma(gamma)
    beta = float(w @ v)
    u = float(np.linalg.norm(w - beta * v))
    if u == 0.0:
        return 0.0 if beta > 0 else 1.0 if beta < 0 else 0.5
    return float(ndtr(-math.sqrt(gamma) * beta * math.sqrt(w.size) / (math.sqrt(1 - gamma) * u)))


@dataclass
class MaxMargin(Result):
    """The hard-margin classifier min |w| subject to yhat_i <w, x_i> >= 1: ``w``, the dual
    coefficients ``alpha`` (w = sum_i alpha_i yhat_i x_i), the support set, ``margin`` = 1 / |w|, and
    ``kkt``: the largest violation of the optimality conditions (primal feasibility, alpha >= 0,
    complementary slackness) - a certificate, ~1e-12 for an exact solution."""

    w: np.ndarray
    alpha: np.ndarray
    support: np.ndarray
    margin: float
    kkt: float

    _summary_fields = ("margin", "kkt")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 3))
        ax.stem(self.alpha)
        ax.set_xlabel("training point")
        ax.set_ylabel("dual coefficient")
        return ax


def max_margin(x, y) -> MaxMargin:
    """The hard-margin linear classifier through the origin, by its dual
    min_{alpha >= 0} 1/2 alpha^T G alpha - 1^T alpha (G_ij = y_i y_j <x_i, x_j>): L-BFGS-B for the
    support set, then the exact equality solve G_SS alpha_S = 1 on it, accepted only when the KKT
    conditions hold (else the support set is corrected and the solve repeated). Raises when the
    data are not linearly separable through the origin."""
    from scipy.optimize import minimize

    X = np.asarray(x, dtype=np.float64)
    Y = np.asarray(y, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[0] != Y.size or Y.size == 0:
        raise InvalidInputError("x must be (n, d) and y must hold n labels")
    if not (np.isfinite(X).all() and np.isin(Y, (-1.0, 1.0)).all()):
        raise InvalidInputError("x must be finite and y must hold labels +-1")
    Z = Y[:, None] * X
    G = Z @ Z.T
    n = Y.size
    if np.linalg.matrix_rank(G) < n:
        # the margin constraints of dependent points may still be satisfiable; L-BFGS-B alone decides
        pass
    res = minimize(lambda a: (0.5 * a @ G @ a - a.sum(), G @ a - 1.0), np.full(n, 1.0 / max(np.trace(G), 1e-300)),
                   jac=True, method="L-BFGS-B", bounds=[(0, None)] * n, options={"maxiter": 3000, "ftol": 1e-16,
                                                                                   "gtol": 1e-12})
    alpha = np.maximum(res.x, 0.0)
    scale = max(float(alpha.max()), 1e-300)
    S = alpha > 1e-6 * scale
    for _ in range(n + 1):
        a = np.zeros(n)
        if S.any():
            a[S] = np.linalg.lstsq(G[np.ix_(S, S)], np.ones(int(S.sum())), rcond=None)[0]
        marg = G @ a
        neg = S & (a < 0)
        viol = ~S & (marg < 1 - 1e-9)
        if not neg.any() and not viol.any():
            break
        S = (S & ~neg) | viol
    w = Z.T @ a
    marg = Z @ w
    kkt = max(float(np.maximum(1 - marg, 0).max()), float(np.maximum(-a, 0).max()),
              float(np.abs(a * (marg - 1)).max()))
    if not kkt <= 1e-6 or not np.isfinite(w).all():
        raise InvalidInputError(f"no hard-margin classifier through the origin found (KKT violation {kkt:.3g}): "
                                "are the data linearly separable?")
    nw = float(np.linalg.norm(w))
    return MaxMargin(w=w, alpha=a, support=np.flatnonzero(a > 0), margin=1.0 / nw if nw > 0 else math.inf, kkt=kkt)


# ============================================================================ the network
def _leaky(t, slope):
    return np.where(t > 0, t, slope * t)


def train_hinge(x, y, *, width: int = 64, slope: float = 0.1, init_scale: float = 1e-3, lr: float | None = None,
                max_steps: int = 100000, seed: int = 0, time_limit: float | None = None) -> dict:
    """Gradient descent on the hinge loss (1/n) sum_i max(0, 1 - y_i f(x_i)) of
    f(x) = sum_j a_j leaky(<w_j, x>), a_j = +-1/sqrt(m) fixed (half each), w_j ~ N(0, init_scale^2 I),
    until every margin is >= 1 (the hinge loss is zero) or ``max_steps``. The default step
    lr = n / (max_i |x_i|^2) keeps each step's change of a margin below one unit. Returns ``W``,
    ``a``, ``steps``, ``interpolated`` (all margins >= 1), ``min_margin`` and ``seconds``."""
    X = np.asarray(x, dtype=np.float64)
    Y = np.asarray(y, dtype=np.float64).reshape(-1)
    m = _int("width", width, 2, 10**5)
    if m % 2:
        raise InvalidInputError(f"width must be even (half the outer weights +1, half -1), got {m}")
    if not (isinstance(slope, (int, float)) and 0 < slope < 1):
        raise InvalidInputError(f"slope must be in (0, 1) for a leaky ReLU, got {slope!r}")
    max_steps = _int("max_steps", max_steps, 0)
    n = Y.size
    if lr is None:
        lr = n / float((X * X).sum(1).max())
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InvalidInputError(f"lr must be a finite number > 0, got {lr!r}")
    rng = np.random.default_rng(seed)
    W = init_scale * rng.standard_normal((m, X.shape[1]))
    a = np.where(np.arange(m) < m // 2, 1.0, -1.0) / math.sqrt(m)
    start = time.perf_counter()
    k = 0
    for k in range(max_steps + 1):
        P = X @ W.T  # (n, m)
        marg = Y * (_leaky(P, slope) @ a)
        active = marg < 1
        if not active.any() or k == max_steps:
            break
        if time_limit is not None and time.perf_counter() - start > time_limit:
            break
        # d hinge / d W_j = -(1/n) sum_{i active} y_i a_j leaky'(P_ij) x_i
        coef = (Y * active)[:, None] * np.where(P > 0, 1.0, slope) * a[None, :]  # (n, m)
        W += (lr / n) * coef.T @ X
    marg = Y * (_leaky(X @ W.T, slope) @ a)
    return {"W": W, "a": a, "slope": float(slope), "steps": k, "interpolated": bool((marg >= 1).all()),
            "min_margin": float(marg.min()), "seconds": time.perf_counter() - start}


def network_test_error(W, a, slope: float, v, gamma: float, *, samples: int = 200000, seed: int = 0):
    """P(y f(x) <= 0) for a fresh point of the model, with its standard error: f depends on x only
    through W x = y sqrt(gamma) W v + sqrt(1 - gamma) W z, and W z ~ N(0, W (I - v v^T) W^T / d), so the
    expectation is an m-dimensional Monte Carlo average (both labels, equally likely)."""
    W = np.asarray(W, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    gamma = _gamma(gamma)
    d = v.size
    samples = _int("samples", samples, 100, 10**8)
    Wv = W @ v
    U = W - np.outer(Wv, v)
    C = U @ U.T / d
    evals, evecs = np.linalg.eigh(C)
    L = evecs * np.sqrt(np.maximum(evals, 0.0))
    rng = np.random.default_rng(seed)
    errs = 0
    half = samples // 2
    for y in (1.0, -1.0):
        g = rng.standard_normal((half, W.shape[0])) @ L.T
        pre = y * math.sqrt(gamma) * Wv + math.sqrt(1 - gamma) * g
        errs += int((y * (_leaky(pre, slope) @ a) <= 0).sum())
    p = errs / (2 * half)
    return p, math.sqrt(max(p * (1 - p), 1.0 / (2 * half)) / (2 * half))


def predicted_error(n: int, d: int, gamma, flipped: int):
    """The nearly-orthogonal prediction of the hard-margin classifier's test error (module docstring),
    elementwise in ``gamma``."""
    from scipy.special import ndtr

    g = np.asarray(gamma, dtype=np.float64)
    k = flipped
    s = (n - 2 * k) * g / (1 - g + n * g)
    return ndtr(-math.sqrt(d) * s / np.sqrt((n - k) * (1 - s) ** 2 + k * (1 + s) ** 2))


@dataclass
class BenignDiagram(Result):
    """One row per (d, gamma, seed): the network's test error (Monte Carlo, with its standard error),
    whether it interpolated the noisy labels, the hard-margin classifier's closed-form test error
    and the nearly-orthogonal prediction; ``n`` and ``flipped`` fixed."""

    rows: list
    n: int
    flipped: int
    seconds: float
    settings: dict = field(default_factory=dict)

    def plot(self, ax=None):
        """Test error against gamma (log axis), one colour per d: network (dots with error bars),
        hard-margin classifier (crosses), prediction (lines), and the derived threshold
        gamma = 1 / sqrt(n d) (dashed)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 4))
        for i, d in enumerate(sorted({r["d"] for r in self.rows})):
            sub = sorted((r for r in self.rows if r["d"] == d), key=lambda r: r["gamma"])
            gs = sorted({r["gamma"] for r in sub})
            mean = [np.mean([r["network_error"] for r in sub if r["gamma"] == g]) for g in gs]
            se = [np.std([r["network_error"] for r in sub if r["gamma"] == g]) for g in gs]
            mm = [np.mean([r["max_margin_error"] for r in sub if r["gamma"] == g]) for g in gs]
            col = f"C{i}"
            ax.errorbar(gs, mean, yerr=se, fmt="o", color=col, ms=4, label=f"network, d={d}")
            ax.plot(gs, mm, "x", color=col, label=f"max margin, d={d}")
            fine = np.geomspace(min(gs), max(gs), 200)
            ax.plot(fine, predicted_error(self.n, d, fine, self.flipped), "-", color=col, lw=0.8)
            ax.axvline(1 / math.sqrt(self.n * d), color=col, ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("signal strength gamma")
        ax.set_ylabel("test error (clean labels)")
        ax.set_title(f"n = {self.n}, {self.flipped} flipped; dashed: gamma = 1/sqrt(nd)", fontsize=9)
        ax.legend(fontsize=7)
        return ax


def benign_diagram(*, n: int = 40, flipped: int = 4, ds=(200, 800), gammas=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1),
                   seeds=(0,), width: int = 64, slope: float = 0.1, samples: int = 100000, max_steps: int = 100000,
                   time_limit: float | None = None, progress=None) -> BenignDiagram:
    """Train a network to zero hinge loss and solve the hard-margin classifier for each (d, gamma,
    seed); record both test errors, the prediction and the derived threshold 1/sqrt(n d)."""
    if not ds or not gammas or not seeds:
        raise InvalidInputError("ds, gammas and seeds must each hold at least one value")
    settings = [(int(d), float(g), int(s)) for d in ds for g in gammas for s in seeds]
    rows = []
    start = time.perf_counter()
    for i, (d, g, s) in enumerate(settings):
        data = signal_noise_data(n, d, g, flipped, seed=s)
        left = None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - start))
        net = train_hinge(data.x, data.y_obs, width=width, slope=slope, max_steps=max_steps, seed=s, time_limit=left)
        err, se = network_test_error(net["W"], net["a"], slope, data.v, g, samples=samples, seed=s)
        mm = max_margin(data.x, data.y_obs)
        rows.append({"d": d, "gamma": g, "seed": s, "network_error": err, "network_error_se": se,
                     "interpolated": net["interpolated"], "steps": net["steps"],
                     "max_margin_error": linear_test_error(mm.w, data.v, g),
                     "predicted_error": float(predicted_error(n, d, g, flipped)),
                     "threshold_gamma": 1 / math.sqrt(n * d)})
        if progress is not None:
            progress(i + 1, len(settings), d=d)
    return BenignDiagram(rows=rows, n=int(n), flipped=int(flipped), seconds=time.perf_counter() - start,
                         settings={"width": width, "slope": slope, "samples": samples, "max_steps": max_steps})
