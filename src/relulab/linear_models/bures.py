r"""Deep linear generative networks trained with the Bures-Wasserstein distance: the loss, all its
critical points with their values and Morse indices, its smooth perturbation, and gradient flow /
gradient descent with convergence checks.

Brechet, Papagiannouli, An and Montufar, *Critical points and convergence analysis of generative deep
linear networks trained with Bures-Wasserstein loss* (ICML 2023). A linear generator z -> W z with
z ~ N(0, I_{d0}) and W = W_N ... W_1 (n x d0) produces N(0, W W^T); its rank is at most the bottleneck
width k = min_l d_l. The squared 2-Wasserstein (Bures) distance between centred Gaussians is

    B(S1, S2)^2 = tr S1 + tr S2 - 2 tr (S1^{1/2} S2 S1^{1/2})^{1/2}
                = min_{U orthogonal} |S1^{1/2} - S2^{1/2} U|_F^2,

and the loss against a target covariance S0 is, since the singular values of S0^{1/2} W are the square
roots of the eigenvalues of S0^{1/2} W W^T S0^{1/2},

    L(W) = B(W W^T, S0)^2 = |W|_F^2 + tr S0 - 2 |S0^{1/2} W|_*.

**Critical points** (S0 positive definite with eigenpairs (lambda_i, u_i), W of full column rank k,
where L is smooth): grad L = 2 W - 2 S0 W (W^T S0 W)^{-1/2} = 0 forces W = U_I Lambda_I^{1/2} V^T for a
k-subset I of eigenvectors and any V in O(k), i.e. W W^T = sum_{i in I} lambda_i u_i u_i^T, with value
L = sum_{i not in I} lambda_i. Expanding L to second order around W (the nuclear norm's expansion
around a matrix with distinct singular directions), the Hessian in W (n x k entries) has eigenvalues

    2 (1 - lambda_j / lambda_i)  for i in I, j not in I;   2 with multiplicity k (k + 1) / 2;
    0 with multiplicity k (k - 1) / 2 (the O(k) orbit W -> W V),

so the Morse index is #{(i in I, j not in I) : lambda_j > lambda_i}: only the top-k subset is a
minimizer, every other subset is a saddle.

**Smooth perturbation.** At rank-deficient W the nuclear norm is not differentiable. We use

    L_tau(W) = |W|_F^2 + tr S0 - 2 tr (W^T S0 W + tau^2 I)^{1/2} + 2 d0 tau,

smooth for tau > 0, with 0 <= L_tau - L <= 2 d0 tau. Its critical points are, for every subset I of
size at most min(k, d0) with lambda_i > tau, W W^T = sum_{i in I} (lambda_i - tau^2 / lambda_i) u_i u_i^T
(the other columns zero), with value sum_{i not in I} lambda_i + sum_{i in I} (2 tau - tau^2 / lambda_i);
their Morse indices come from the exact Hessian (Daleckii-Krein derivative of the inverse square root).
They equal #{(i in I, j not in I) : lambda_j > lambda_i} + (d0 - |I|) #{j not in I : lambda_j > tau}: besides
the swaps of the unperturbed loss, a zero column moved by eps u_j changes L_tau by eps^2 (1 - lambda_j / tau)
to second order (tested against the exact Hessian).

**Flows.** Gradient flow of L_tau over the factors (scipy solve_ivp) and gradient descent with a fixed
step; the checks: the loss never increases, the limit is a critical point (gradient norm, nearest
critical value, which eigen-subset), the conserved quantities W_{l+1}^T W_{l+1} - W_l W_l^T of the
flow (balancedness) stay constant, and a run started below the smallest non-global critical value
reaches the global minimum.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np

from relulab.core.errors import DegenerateGeometryError, InvalidInputError, ResourceLimitError
from relulab.linear_models import _inputs
from relulab.results import Result

__all__ = ["bures_wasserstein", "bw_loss", "bw_gradient", "bw_hessian", "bw_critical_points", "BWCriticalPoints",
           "bw_train", "BWTrajectory"]


# ---------------------------------------------------------------------------------------------- distance
def bures_wasserstein(S1, S2, *, squared: bool = False) -> float:
    """The Bures-Wasserstein distance (the 2-Wasserstein distance between N(0, S1) and N(0, S2)) between
    positive semi-definite matrices, in closed form; ``squared=True`` returns its square."""
    A = _inputs.covariance(S1, "S1")
    B = _inputs.covariance(S2, "S2")
    if A.shape != B.shape:
        raise InvalidInputError(f"S1 and S2 must have the same shape, got {A.shape} and {B.shape}")
    r = _inputs.psd_sqrt(A)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r @ B @ r), 0.0, None)).sum()
    d2 = max(float(np.trace(A) + np.trace(B) - 2 * cross), 0.0)
    return d2 if squared else math.sqrt(d2)


# ---------------------------------------------------------------------------------------------- loss
def _target(S0):
    return _inputs.covariance(S0, "Sigma0")


def _tau(tau) -> float:
    return _inputs.positive_float(tau, "tau", allow_zero=True)


def _inv_sqrt(M, what="W^T Sigma0 W"):
    lam, Q = np.linalg.eigh(0.5 * (M + M.T))
    if lam[0] <= 1e-13 * max(lam[-1], 1e-300):
        raise DegenerateGeometryError(f"{what} is singular: the loss is not differentiable at rank-deficient W "
                                      "(use tau > 0, the smooth perturbed loss)")
    return lam, Q


def bw_loss(W, Sigma0, *, tau: float = 0.0) -> float:
    """L_tau(W) = |W|^2 + tr Sigma0 - 2 tr (W^T Sigma0 W + tau^2 I)^{1/2} + 2 d0 tau (module docstring);
    tau = 0 is B(W W^T, Sigma0)^2. ``W`` is n x d0."""
    S0 = _target(Sigma0)
    W = _inputs.matrix(W, "W", rows=S0.shape[0])
    tau = _tau(tau)
    return _loss(W, S0, tau)


def _loss(W, S0, tau):
    lam = np.linalg.eigvalsh(W.T @ S0 @ W)
    root = np.sqrt(np.clip(lam, 0.0, None) + tau * tau).sum()
    return float((W * W).sum() + np.trace(S0) - 2 * root + 2 * W.shape[1] * tau)


def bw_gradient(W, Sigma0, *, tau: float = 0.0) -> np.ndarray:
    """grad L_tau(W) = 2 W - 2 Sigma0 W (W^T Sigma0 W + tau^2 I)^{-1/2}."""
    S0 = _target(Sigma0)
    W = _inputs.matrix(W, "W", rows=S0.shape[0])
    return _grad(W, S0, _tau(tau))


def _grad(W, S0, tau):
    lam, Q = _inv_sqrt(W.T @ S0 @ W + tau * tau * np.eye(W.shape[1]))
    return 2 * W - 2 * S0 @ W @ ((Q / np.sqrt(lam)) @ Q.T)


def bw_hessian(W, Sigma0, *, tau: float = 0.0) -> np.ndarray:
    """The exact Hessian of L_tau in vec(W) (row-major), from the Daleckii-Krein formula for the derivative
    of M^{-1/2}: D(M^{-1/2})[E] = Q (G o (Q^T E Q)) Q^T with G_ab = (lam_a^{-1/2} - lam_b^{-1/2}) / (lam_a - lam_b)
    (and -lam^{-3/2} / 2 on ties)."""
    S0 = _target(Sigma0)
    W = _inputs.matrix(W, "W", rows=S0.shape[0])
    return _hessian(W, S0, _tau(tau))


def _hessian(W, S0, tau):
    n, m = W.shape
    if n * m > 4000:
        raise ResourceLimitError(f"the Hessian of a {n} x {m} W has {(n * m) ** 2:,} entries; at most 4000 parameters")
    lam, Q = _inv_sqrt(W.T @ S0 @ W + tau * tau * np.eye(m))
    r = 1.0 / np.sqrt(lam)
    dl = lam[:, None] - lam[None, :]
    tie = np.abs(dl) <= 1e-12 * max(lam[-1], 1e-300)
    G = np.where(tie, -0.5 * (lam[:, None] ** -1.5 + lam[None, :] ** -1.5) / 2,
                 (r[:, None] - r[None, :]) / np.where(tie, 1.0, dl))
    Minv = (Q * r) @ Q.T
    S0W = S0 @ W
    H = np.empty((n * m, n * m))
    for idx in range(n * m):
        E = np.zeros((n, m))
        E.flat[idx] = 1.0
        dM = W.T @ S0 @ E
        dM = dM + dM.T
        dR = Q @ (G * (Q.T @ dM @ Q)) @ Q.T
        H[:, idx] = (2 * E - 2 * S0 @ E @ Minv - 2 * S0W @ dR).ravel()
    return 0.5 * (H + H.T)


# ---------------------------------------------------------------------------------------------- critical points
@dataclass
class BWCriticalPoints(Result):
    """Every critical point of L_tau over n x m matrices W (m = latent dimension, rank <= k), by eigen-subset.

    ``eigenvalues``: of Sigma0, descending (index i below refers to this order); ``subsets``: tuples of
    eigen-indices I; ``values``: the critical values; ``indices``: Morse indices (negative Hessian
    eigenvalues in W, orbit directions excluded); ``nullities``: zero Hessian eigenvalues; ``ranks``:
    |I|; ``how``: 'closed form' (tau = 0) or 'exact Hessian' (tau > 0: the Hessian at the constructed
    point, eigenvalues beyond 1e-9 relative counted); ``global_value``: the smallest value;
    ``second_value``: the smallest value of a non-minimizing critical point (a run started below it
    must end at a global minimizer).
    """

    eigenvalues: np.ndarray
    rank: int
    latent_dim: int
    tau: float
    subsets: list
    values: np.ndarray
    indices: list
    nullities: list
    ranks: list
    how: str
    global_value: float
    second_value: float

    _summary_fields = ("eigenvalues", "rank", "latent_dim", "tau", "subsets", "values", "indices", "ranks", "how",
                       "global_value", "second_value")

    def table(self) -> str:
        rows = ["subset        rank  value          Morse index"]
        for s, v, i, r in zip(self.subsets, self.values, self.indices, self.ranks):
            rows.append(f"{str(tuple(s)):<13} {r:<5d} {v:<14.10g} {i}")
        return "\n".join(rows)

    def point(self, j: int) -> np.ndarray:
        """The j-th critical point as an n x m matrix (representative of its O(m) orbit)."""
        return self._points[j]

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        ax.scatter(self.indices, self.values)
        for s, v, i in zip(self.subsets, self.values, self.indices):
            ax.annotate(str(tuple(s)), (i, v), fontsize=7)
        ax.set_xlabel("Morse index")
        ax.set_ylabel("critical value")
        ax.set_title(f"Bures-Wasserstein loss, rank <= {self.rank}, tau = {self.tau:g}")
        return ax


def bw_critical_points(Sigma0, rank: int, *, tau: float = 0.0, latent_dim: int | None = None,
                       max_points: int = 5000) -> BWCriticalPoints:
    """All critical points of the Bures-Wasserstein loss over W (n x latent_dim, latent_dim = ``rank`` by
    default) with their values and Morse indices (module docstring). ``tau = 0``: the smooth ones (full
    column rank; closed-form values and Hessian spectra); ``tau > 0``: every subset of size <= rank of the
    perturbed loss. ``Sigma0`` must be positive definite. Raises ResourceLimitError above ``max_points``
    subsets."""
    S0 = _inputs.covariance(Sigma0, "Sigma0", definite=True)
    n = S0.shape[0]
    k = _inputs.positive_int(rank, "rank", n)
    m = k if latent_dim is None else _inputs.positive_int(latent_dim, "latent_dim", 10**4)
    tau = _tau(tau)
    if tau == 0 and m != k:
        raise InvalidInputError(f"latent_dim: with tau = 0 the loss is smooth only at full column rank; latent_dim "
                                f"must equal rank ({k}), got {m}")
    lam, U = np.linalg.eigh(S0)
    lam, U = lam[::-1], U[:, ::-1]
    kk = min(k, m)
    sizes = [kk] if tau == 0 else range(0, kk + 1)
    count = sum(math.comb(n, s) for s in sizes)
    if count > max_points:
        raise ResourceLimitError(f"{count:,} eigen-subsets are critical points, more than max_points = {max_points}")
    subsets, values, indices, nulls, ranks, points = [], [], [], [], [], []
    for s in sizes:
        for I in itertools.combinations(range(n), s):
            I = list(I)
            if tau > 0 and any(lam[i] <= tau for i in I):
                continue  # lambda - tau^2 / lambda <= 0: no such critical point
            W = np.zeros((n, m))
            for a, i in enumerate(I):
                W[:, a] = U[:, i] * math.sqrt(lam[i] - tau * tau / lam[i])
            out = [j for j in range(n) if j not in I]
            if tau == 0:
                ev = np.concatenate([[2 * (1 - lam[j] / lam[i]) for i in I for j in out],
                                     np.full(k * (k + 1) // 2, 2.0), np.zeros(k * (k - 1) // 2)])
                value = float(lam[out].sum())
                tol = 1e-12
            else:
                ev = np.linalg.eigvalsh(_hessian(W, S0, tau))
                value = float(lam[out].sum() + sum(2 * tau - tau * tau / lam[i] for i in I))
                tol = 1e-9 * max(float(np.abs(ev).max()), 1e-300)
            subsets.append(tuple(I))
            values.append(value)
            indices.append(int((ev < -tol).sum()))
            nulls.append(int((np.abs(ev) <= tol).sum()))
            ranks.append(len(I))
            points.append(W)
    values = np.array(values)
    order = np.argsort(values, kind="stable")
    pick = lambda xs: [xs[i] for i in order]  # noqa: E731
    values = values[order]
    gv = float(values[0])
    minimizers = [j for j in range(len(values)) if pick(indices)[j] == 0 and abs(values[j] - gv) <= 1e-12 * max(1, gv)]
    rest = [values[j] for j in range(len(values)) if j not in minimizers]
    res = BWCriticalPoints(eigenvalues=lam, rank=k, latent_dim=m, tau=tau, subsets=pick(subsets), values=values,
                           indices=pick(indices), nullities=pick(nulls), ranks=pick(ranks),
                           how="closed form" if tau == 0 else "exact Hessian", global_value=gv,
                           second_value=float(min(rest)) if rest else math.inf)
    res._points = pick(points)
    return res


# ---------------------------------------------------------------------------------------------- training
@dataclass
class BWTrajectory(Result):
    """A gradient flow (``method='flow'``) or gradient descent (``'gd'``) run of L_tau over the factors of
    a deep linear network. ``times`` (flow time or step number), ``losses``, ``grad_norms`` (end-to-end
    gradient); ``monotone``: the loss never increased (beyond 1e-12 relative); ``balance_drift``: the
    largest change of W_{l+1}^T W_{l+1} - W_l W_l^T (conserved by the flow); ``limit_subset``,
    ``limit_value``: the eigen-subset of the end point's covariance and the critical value it should
    approach; ``value_error``: |final loss - limit_value|; ``initial_loss``, ``second_value``;
    ``reached_global``: the end point is a global minimizer (within 1e-6 relative);
    ``started_below_second``: initial loss < the smallest non-global critical value, in which case the
    paper's argument guarantees ``reached_global``.
    """

    method: str
    times: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    widths: tuple
    tau: float
    monotone: bool
    balance_drift: float
    limit_subset: tuple
    limit_value: float
    value_error: float
    initial_loss: float
    global_value: float
    second_value: float
    reached_global: bool
    started_below_second: bool
    final_covariance: np.ndarray
    complete: bool
    seconds: float

    _summary_fields = ("method", "widths", "tau", "monotone", "balance_drift", "limit_subset", "limit_value",
                       "value_error", "initial_loss", "global_value", "second_value", "reached_global",
                       "started_below_second", "complete", "seconds")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        ax.semilogy(self.times, np.maximum(self.losses - self.global_value, 1e-300), label="L - min L")
        ax.axhline(max(self.second_value - self.global_value, 1e-300), color="k", ls="--", lw=0.8,
                   label="second critical value - min")
        ax.set_xlabel("t" if self.method == "flow" else "step")
        ax.set_ylabel("loss gap")
        ax.legend()
        return ax


def _product(Ws):
    P = Ws[0]
    for A in Ws[1:]:
        P = A @ P
    return P


def _factor_grads(Ws, G):
    """Gradients of L(W_N ... W_1) in each W_l from the end-to-end gradient G."""
    N = len(Ws)
    left = [None] * N   # W_N ... W_{l+1}
    right = [None] * N  # W_{l-1} ... W_1
    acc = np.eye(Ws[0].shape[1])
    for l in range(N):
        right[l] = acc
        acc = Ws[l] @ acc
    acc = np.eye(Ws[-1].shape[0])
    for l in reversed(range(N)):
        left[l] = acc
        acc = acc @ Ws[l]
    return [left[l].T @ G @ right[l].T for l in range(N)]


def bw_train(Sigma0, widths, *, tau: float = 0.01, method: str = "flow", t_max: float = 50.0, lr: float = 0.01,
             steps: int = 5000, init_scale: float = 0.5, init=None, seed: int = 0, points: int = 200,
             rtol: float = 1e-9) -> BWTrajectory:
    """Train a deep linear generator W = W_N ... W_1 (``widths`` = (d0, d1, ..., dN), dN = n) on L_tau by
    gradient flow (``method='flow'``, scipy solve_ivp up to ``t_max``) or gradient descent (``'gd'``,
    ``steps`` steps of size ``lr``), from ``init`` (a list of factors) or Gaussian factors of scale
    ``init_scale``; returns the run with the convergence checks of the module docstring."""
    from scipy.integrate import solve_ivp

    t0 = time.perf_counter()
    S0 = _inputs.covariance(Sigma0, "Sigma0", definite=True)
    n = S0.shape[0]
    tau = _inputs.positive_float(tau, "tau")
    try:
        widths = tuple(int(w) for w in widths)
    except (TypeError, ValueError):
        raise InvalidInputError(f"widths must be a sequence of positive integers, got {widths!r}") from None
    if len(widths) < 2 or min(widths) < 1 or widths[-1] != n:
        raise InvalidInputError(f"widths must be (d0, ..., dN) with at least two entries, all >= 1, and dN = n = {n}; "
                                f"got {widths}")
    if method not in ("flow", "gd"):
        raise InvalidInputError(f"method must be 'flow' or 'gd', got {method!r}")
    shapes = [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]
    if init is None:
        rng = np.random.default_rng(seed)
        Ws = [init_scale * rng.standard_normal(s) / math.sqrt(s[1]) for s in shapes]
    else:
        if len(init) != len(shapes):
            raise InvalidInputError(f"init must hold {len(shapes)} factors, got {len(init)}")
        Ws = [_inputs.matrix(A, f"init[{i}]", rows=s[0], cols=s[1]) for i, (A, s) in enumerate(zip(init, shapes))]
    sizes = [a * b for a, b in shapes]
    offs = np.cumsum([0] + sizes)

    def unpack(th):
        return [th[offs[i]:offs[i + 1]].reshape(shapes[i]) for i in range(len(shapes))]

    def balance(Ws_):
        return [Ws_[i + 1].T @ Ws_[i + 1] - Ws_[i] @ Ws_[i].T for i in range(len(Ws_) - 1)]

    def grads(th):
        Ws_ = unpack(th)
        G = _grad(_product(Ws_), S0, tau)
        return np.concatenate([g.ravel() for g in _factor_grads(Ws_, G)]), G

    theta0 = np.concatenate([A.ravel() for A in Ws])
    if method == "flow":
        t_max = _inputs.positive_float(t_max, "t_max")
        times = np.linspace(0.0, t_max, _inputs.positive_int(points, "points", 10**5) + 1)
        sol = solve_ivp(lambda _t, th: -grads(th)[0], (0.0, t_max), theta0, method="LSODA", t_eval=times, rtol=rtol,
                        atol=1e-12)
        thetas, times, complete = sol.y.T, sol.t, bool(sol.status == 0)
    else:
        lr = _inputs.positive_float(lr, "lr")
        steps = _inputs.positive_int(steps, "steps", 10**7)
        every = max(1, steps // max(1, int(points)))
        th = theta0.copy()
        rec, ts = [th.copy()], [0]
        for s in range(1, steps + 1):
            try:
                th = th - lr * grads(th)[0]
            except DegenerateGeometryError:
                th = th * np.nan  # the iterates blew up past what the square root resolves
            if not np.isfinite(th).all() or float(np.abs(th).max()) > 1e150:
                raise InvalidInputError(f"lr = {lr:g} makes gradient descent diverge (step {s}); use a smaller step")
            if s % every == 0 or s == steps:
                rec.append(th.copy())
                ts.append(s)
        thetas, times, complete = np.array(rec), np.array(ts, dtype=np.float64), True
    losses = np.array([_loss(_product(unpack(t)), S0, tau) for t in thetas])
    gnorms = np.array([float(np.linalg.norm(grads(t)[1])) for t in thetas])
    b0 = balance(unpack(thetas[0]))
    b1 = balance(unpack(thetas[-1]))
    drift = max((float(np.abs(x - y).max()) for x, y in zip(b0, b1)), default=0.0)
    lam = np.sort(np.linalg.eigvalsh(S0))[::-1]

    def value_of(I):
        return float(lam[[j for j in range(n) if j not in I]].sum() + sum(2 * tau - tau * tau / lam[i] for i in I))

    try:
        crit = bw_critical_points(S0, min(widths), tau=tau, latent_dim=widths[0])
        global_value, second_value = crit.global_value, crit.second_value
    except ResourceLimitError:
        # too many subsets to list: the global value from the top subset (the values decrease as a subset
        # gains an eigenvalue above tau and as its eigenvalues grow), the second value unknown
        top = tuple(i for i in range(min(min(widths), widths[0], n)) if lam[i] > tau)
        global_value, second_value = value_of(top), math.nan
    Wf = _product(unpack(thetas[-1]))
    cov = Wf @ Wf.T
    subset = _subset_of(cov, S0, lam, tau)
    limit_value = value_of(subset)
    scale = max(1.0, abs(global_value))
    return BWTrajectory(method=method, times=times, losses=losses, grad_norms=gnorms, widths=widths, tau=tau,
                        monotone=bool(np.all(np.diff(losses) <= 1e-12 * scale)), balance_drift=drift,
                        limit_subset=subset, limit_value=limit_value, value_error=abs(float(losses[-1]) - limit_value),
                        initial_loss=float(losses[0]), global_value=global_value, second_value=second_value,
                        reached_global=bool(abs(float(losses[-1]) - global_value) <= 1e-6 * scale),
                        started_below_second=bool(losses[0] < second_value), final_covariance=cov,
                        complete=complete, seconds=time.perf_counter() - t0)


def _subset_of(cov, S0, lam, tau):
    """The eigen-subset whose eigenvector directions carry the covariance: i is in it when
    u_i^T cov u_i is closer to lambda_i - tau^2 / lambda_i than to 0."""
    mu, U = np.linalg.eigh(S0)
    U = U[:, ::-1]
    w = np.einsum("ji,jk,ki->i", U, cov, U)
    target = lam - tau * tau / lam
    return tuple(int(i) for i in range(len(lam)) if abs(w[i] - target[i]) < abs(w[i]))
