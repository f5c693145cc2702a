r"""Benign against harmful overfitting of two-layer leaky ReLU networks trained on the hinge loss.

The data model (signal plus orthogonal noise, as in Karhadkar, George, Murray, Montufar and Needell,
*Benign overfitting in leaky ReLU networks with moderate input dimension*, NeurIPS 2024): a unit
signal vector v in R^d, clean labels y_i = +-1, inputs

    x_i = y_i sqrt(gamma) v + sqrt(1 - gamma) z_i,    z_i ~ N(0, (I - v v^T) / d)   (orthogonal to v),

and exactly k of the n training labels flipped (the observed labels yhat_i). gamma in (0, 1) is the
signal strength; the signal-to-noise ratio of a point is gamma / (1 - gamma). Because the noise is
orthogonal to v, sign(<v, x>) classifies every clean point correctly: the Bayes error against clean
labels is 0, and the *test error* here is P(y f(x) <= 0) against the clean label of a fresh point.

The network (their equation 1) is f(W, x) = sum_{j=1}^{2m} (-1)^j sigma(<w_j, x>) with leaky ReLU
sigma(t) = max(t, alpha t) (``slope`` alpha), fixed outer weights +-1 and inner weights trained by
gradient descent on the hinge loss sum_i max(0, 1 - yhat_i f(x_i)) until it is zero (every margin
>= 1): the network interpolates the noisy labels. Their Assumption 1 bounds the step,
eta <= 1 / (m n max_i |x_i|^2), and the initialization, |w_j| <= sqrt(alpha) / (m min_i |x_i|).

The paper's statements (Karhadkar et al., Section 3), checked against here:

* Theorem 3.1: GD reaches zero hinge loss after T <= C |w*|^2 / (eta alpha^2 m) steps and is
  approximately margin maximizing, |W|_F <= C |w*| / (alpha sqrt(m)) (w* the hard-margin linear
  classifier, :func:`max_margin`);
* Theorem 3.2 / Corollary 3.2.1 (benign): if d = Omega(n), k = O(alpha^2 n) and gamma = Omega(1/k),
  the test error is at most exp(-C alpha^2 d / k); Theorem 3.3: at least exp(-C d / (alpha k));
* Theorem 3.4 (harmful): if d = Omega(n) and gamma = O(alpha^3 / d), the test error is at least 1/8.

The constants C are not given, so the two sufficient conditions are orders, not thresholds; between
gamma ~ alpha^3 / d and gamma ~ 1/k the paper says nothing. The network's signal-to-noise ratio of
their Section 4.1, A_min / |Z|_F with A_min = min(f(W, v), -f(W, -v)) and Z the rows of W projected
off v, is :func:`network_snr`.

Test errors are not sampled in d dimensions: for a linear classifier w = beta v + u (u orthogonal to
v) the error is Phi(-sqrt(gamma) beta sqrt(d) / (sqrt(1 - gamma) |u|)) in closed form; for the
network, f(x) depends on x only through W x, a Gaussian vector in R^{2m} given y, so its error is a
2m-dimensional Monte Carlo integral, reported with a binomial standard error (estimated, not exact).

Where exactly the transition sits inside the paper's gap is derived here, not taken from the paper:
in the nearly-orthogonal regime (d >> n, |z_i| ~ 1, <z_i, z_j> ~ 0) the hard-margin linear
classifier has sqrt(gamma) beta = s = (n - 2k) gamma / (1 - gamma + n gamma) and
|u|^2 = ((n - k)(1 - s)^2 + k (1 + s)^2) / (1 - gamma), so its test error is

    Phi( - sqrt(d) s / sqrt((n - k)(1 - s)^2 + k (1 + s)^2) )          (``predicted_error``),

which is ~ Phi(-gamma sqrt(n d) (1 - 2k/n)) for n gamma << 1 (harmful: error -> 1/2 as
gamma sqrt(n d) -> 0) and ~ Phi(-sqrt(d / 4k) (1 - 2k/n)) for n gamma >> 1 (benign when d >> k):
the transition sits at gamma ~ 1 / sqrt(n d), between the paper's alpha^3 / d and 1 / k.
Because GD is approximately margin maximizing (Theorem 3.1), the network is compared with this
classifier.

One difference from the paper's data model: the clean labels here are balanced exactly (half +1)
and exactly k labels are flipped; the paper draws y_i uniformly and flips a fixed set of k.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.results import Result

__all__ = ["SignalNoiseData", "signal_noise_data", "linear_test_error", "max_margin", "MaxMargin",
           "train_hinge", "network_snr", "network_test_error", "predicted_error", "benign_diagram", "BenignDiagram"]


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


def train_hinge(x, y, *, width: int = 64, slope: float = 0.1, lr: float | None = None, lr_factor: float = 1.0,
                init_scale: float = 0.5, max_steps: int = 200000, seed: int = 0,
                time_limit: float | None = None) -> dict:
    r"""Gradient descent on the hinge loss L(W) = sum_i max(0, 1 - y_i f(W, x_i)) of the network of
    Karhadkar et al. (their equation 1), f(W, x) = sum_{j=1}^{2m} (-1)^j leaky(<w_j, x>) with
    2m = ``width`` units and fixed outer weights +-1, the subgradient leaky'(0) = 1 and the
    hinge's subgradient 0 at margin 1 (their equation 4), until every margin is >= 1 (L = 0) or
    ``max_steps``. Their Assumption 1: step eta <= 1 / (m n max_i |x_i|^2) and initial rows with
    |w_j| <= sqrt(alpha) / (m min_i |x_i|). Here eta = ``lr`` or, by default, ``lr_factor`` times
    that bound (``lr_factor`` > 1 leaves the assumption: fewer steps, the theorems no longer
    apply), and w_j is a uniformly random direction of length ``init_scale`` times the bound.
    Returns ``W``, ``a`` (the outer signs), ``steps``, ``interpolated`` (all margins >= 1),
    ``min_margin``, ``lr`` and ``seconds``."""
    X = np.asarray(x, dtype=np.float64)
    Y = np.asarray(y, dtype=np.float64).reshape(-1)
    M = _int("width", width, 2, 10**5)
    if M % 2:
        raise InvalidInputError(f"width must be even (2m units with outer weights alternating -1, +1), got {M}")
    if not (isinstance(slope, (int, float)) and 0 < slope < 1):
        raise InvalidInputError(f"slope must be in (0, 1) for a leaky ReLU, got {slope!r}")
    for name, v in (("lr_factor", lr_factor), ("init_scale", init_scale)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InvalidInputError(f"{name} must be a finite number > 0, got {v!r}")
    max_steps = _int("max_steps", max_steps, 0)
    if X.ndim != 2 or X.shape[0] != Y.size or not np.isfinite(X).all():
        raise InvalidInputError("x must be a finite (n, d) array with one row per label")
    n = Y.size
    m = M // 2
    norms = np.sqrt((X * X).sum(1))
    if lr is None:
        lr = lr_factor / (m * n * float(norms.max()) ** 2)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InvalidInputError(f"lr must be a finite number > 0, got {lr!r}")
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((M, X.shape[1]))
    W *= init_scale * math.sqrt(slope) / (m * float(norms.min())) / np.linalg.norm(W, axis=1, keepdims=True)
    a = np.where(np.arange(1, M + 1) % 2 == 0, 1.0, -1.0)  # (-1)^j for j = 1..2m
    start = time.perf_counter()
    k = 0
    for k in range(max_steps + 1):
        P = X @ W.T  # (n, 2m)
        marg = Y * (_leaky(P, slope) @ a)
        active = marg < 1
        if not active.any() or k == max_steps:
            break
        if time_limit is not None and time.perf_counter() - start > time_limit:
            break
        # equation 4: w_j += eta (-1)^j sum_{i active} y_i x_i leaky'(<w_j, x_i>)
        coef = (Y * active)[:, None] * np.where(P >= 0, 1.0, slope) * a[None, :]  # (n, 2m)
        W += lr * coef.T @ X
    marg = Y * (_leaky(X @ W.T, slope) @ a)
    return {"W": W, "a": a, "slope": float(slope), "steps": k, "interpolated": bool((marg >= 1).all()),
            "min_margin": float(marg.min()), "lr": float(lr), "seconds": time.perf_counter() - start}


def network_snr(W, a, slope: float, v) -> float:
    """The network's signal-to-noise ratio A_min / |Z|_F of Karhadkar et al. (Section 4.1):
    A_min = min(f(W, v), -f(W, -v)) its activation on +-v, Z the rows of W projected off v."""
    W = np.asarray(W, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    p = W @ v
    amin = min(float(_leaky(p, slope) @ a), float(-(_leaky(-p, slope) @ a)))
    z = float(np.linalg.norm(W - np.outer(p, v)))
    return amin / z if z > 0 else math.inf


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
    """One row per (n, flipped, d, gamma, seed): the network's test error (Monte Carlo, with its
    standard error), whether it interpolated the noisy labels, its SNR A_min / |Z|_F, the
    hard-margin classifier's closed-form test error, the nearly-orthogonal prediction, and three
    reference signal strengths (``margin_factor`` = |W|_F alpha sqrt(m) / |w*|, the constant of
    Theorem 3.1 the run needed): the transition 1/sqrt(n d) derived here and the orders of the
    paper's sufficient conditions, gamma ~ 1/k (benign, Theorem 3.2) and gamma ~ slope^3 / d
    (harmful, Theorem 3.4; both up to unspecified constants)."""

    rows: list
    seconds: float
    n: int | None = None
    flipped: int | None = None
    settings: dict = field(default_factory=dict)

    def plot(self, ax=None):
        """Test error against gamma (log axis), one colour per (n, d): network (dots with error bars),
        hard-margin classifier (crosses), prediction (lines), the derived transition
        gamma = 1/sqrt(n d) (dashed) and the paper's benign order gamma = 1/k (dotted)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 4))
        keys = sorted({(r["n"], r["flipped"], r["d"]) for r in self.rows})
        for i, (n, k, d) in enumerate(keys):
            sub = [r for r in self.rows if (r["n"], r["flipped"], r["d"]) == (n, k, d)]
            gs = sorted({r["gamma"] for r in sub})
            mean = [np.mean([r["network_error"] for r in sub if r["gamma"] == g]) for g in gs]
            se = [np.std([r["network_error"] for r in sub if r["gamma"] == g]) for g in gs]
            mm = [np.mean([r["max_margin_error"] for r in sub if r["gamma"] == g]) for g in gs]
            col = f"C{i % 10}"
            lab = f"n={n}, d={d}" if len({key[0] for key in keys}) > 1 else f"d={d}"
            ax.errorbar(gs, mean, yerr=se, fmt="o", color=col, ms=4, label=f"network, {lab}")
            ax.plot(gs, mm, "x", color=col, label=f"max margin, {lab}")
            fine = np.geomspace(min(gs), max(gs), 200)
            ax.plot(fine, predicted_error(n, d, fine, k), "-", color=col, lw=0.8)
            ax.axvline(1 / math.sqrt(n * d), color=col, ls="--", lw=0.8)
            if k > 0:
                ax.axvline(1 / k, color=col, ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("signal strength gamma")
        ax.set_ylabel("test error (clean labels)")
        ax.set_title("dashed: 1/sqrt(nd) (derived); dotted: 1/k (paper's benign order)", fontsize=9)
        ax.legend(fontsize=6)
        return ax


def benign_diagram(*, n: int = 40, flipped: int = 4, ds=(200, 800), gammas=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1),
                   seeds=(0,), width: int = 64, slope: float = 0.1, samples: int = 100000, max_steps: int = 200000,
                   lr_factor: float = 1.0, ns=None, flip_fraction: float | None = None, d_over_n=None,
                   time_limit: float | None = None, progress=None) -> BenignDiagram:
    """Train a network to zero hinge loss (:func:`train_hinge`, the paper's step bound times
    ``lr_factor``) and solve the hard-margin classifier for each (n, d, gamma, seed); record both
    test errors, the prediction and the reference signal strengths. ``ns``: several sample sizes
    (default: ``n`` alone); ``flip_fraction``: k = round(fraction n) flipped labels instead of
    ``flipped``; ``d_over_n``: d = round(ratio n) instead of ``ds`` (the paper's Figure 2 uses
    d = 2n, k = 0.1 n, 2m = 128 units in their code's naming m = 64, slope 0.1)."""
    ns = [n] if ns is None else [int(v) for v in ns]
    if not ns or not gammas or not seeds or (d_over_n is None and not ds) or (d_over_n is not None and not d_over_n):
        raise InvalidInputError("ns, ds (or d_over_n), gammas and seeds must each hold at least one value")
    if flip_fraction is not None and not (isinstance(flip_fraction, (int, float)) and 0 <= flip_fraction < 0.5):
        raise InvalidInputError(f"flip_fraction must be a number in [0, 1/2), got {flip_fraction!r}")
    settings = []
    for nn in ns:
        k = int(round(flip_fraction * nn)) if flip_fraction is not None else int(flipped)
        if not 0 <= k < nn / 2:
            raise InvalidInputError(f"flipped must be in [0, n/2) (n = {nn}), got {k}")
        dims = [int(round(r * nn)) for r in d_over_n] if d_over_n is not None else [int(d) for d in ds]
        settings += [(nn, k, d, float(g), int(s)) for d in dims for g in gammas for s in seeds]
    rows = []
    start = time.perf_counter()
    for i, (nn, k, d, g, s) in enumerate(settings):
        data = signal_noise_data(nn, d, g, k, seed=s)
        left = None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - start))
        net = train_hinge(data.x, data.y_obs, width=width, slope=slope, lr_factor=lr_factor, max_steps=max_steps,
                          seed=s, time_limit=left)
        err, se = network_test_error(net["W"], net["a"], slope, data.v, g, samples=samples, seed=s)
        mm = max_margin(data.x, data.y_obs)
        rows.append({"n": nn, "flipped": k, "d": d, "gamma": g, "seed": s, "network_error": err,
                     "network_error_se": se, "interpolated": net["interpolated"], "steps": net["steps"],
                     "network_snr": network_snr(net["W"], net["a"], slope, data.v),
                     # Theorem 3.1: |W|_F <= C |w*| / (alpha sqrt(m)); this is the C the run needed
                     "margin_factor": float(np.linalg.norm(net["W"])) * slope * math.sqrt(width // 2) / float(
                         np.linalg.norm(mm.w)),
                     "max_margin_error": linear_test_error(mm.w, data.v, g),
                     "predicted_error": float(predicted_error(nn, d, g, k)),
                     "threshold_gamma": 1 / math.sqrt(nn * d),
                     "paper_benign_gamma": 1 / k if k else math.inf, "paper_harmful_gamma": slope**3 / d})
        if progress is not None:
            progress(i + 1, len(settings), d=d)
    return BenignDiagram(rows=rows, n=ns[0] if len(ns) == 1 else None,
                         flipped=settings[0][1] if len({st[1] for st in settings}) == 1 else None,
                         seconds=time.perf_counter() - start,
                         settings={"width": width, "slope": slope, "samples": samples, "max_steps": max_steps,
                                   "lr_factor": lr_factor})
