r"""Dropout and DropConnect on shallow linear networks: the expected objectives in closed form, their
global minimizers, the Hessian there, and gradient flows with their local convergence rate.

Setting (Senen-Cerda and Sanders, *Asymptotic convergence rate of Dropout on shallow linear neural
networks*, SIGMETRICS 2022; Mianjy, Arora and Vidal, *On the implicit bias of dropout*, ICML 2018).
Data rows x_n in R^d, targets y_n in R^r (n = 1..N), a linear network x -> W2 W1 x with W1 (h, d) and
W2 (r, h), and the mean squared error L0 = (1/N) sum_n |y_n - W2 W1 x_n|^2. Write C = X^T X / N,
a_i = column i of W2, b_i = row i of W1 and ``keep`` = p (the probability that a unit or weight is
*kept*; kept ones are scaled by 1/p so that the network is unbiased).

* **Dropout** (hidden units): W2 diag(f / p) W1 with f_i ~ Bernoulli(p) independent. Since
  E[f_i / p] = 1 and Var(f_i / p) = (1 - p) / p =: c,

      E L = L0 + c sum_i |a_i|^2 b_i^T C b_i.

* **DropConnect** (every weight): (W2 o F2 / p2)(W1 o F1 / p1) with independent Bernoulli entries.
  Expanding the square entry by entry (independence of all entries, c_k = (1 - p_k) / p_k),

      E L = L0 + c2 sum_i |a_i|^2 b_i^T C b_i + c1 (1 + c2) sum_i |a_i|^2 sum_j B_ij^2 C_jj.

  When C is diagonal (for example whitened data) both sums are equal and DropConnect is dropout with
  c = 1 / (p1 p2) - 1. ``keep=(p, 1.0)`` drops the first layer's weights only, ``(1.0, p)`` the second's.

**Global minimizers.** With C positive definite put W' = W C^{1/2}, M = (Y^T X / N) C^{-1/2}; then
E L = const + |M - W2 W1'|^2 + c sum_i |a_i|^2 |b_i'|^2. For any W of rank <= h, the smallest value of
sum_i |a_i|^2 |b_i|^2 over factorizations W = A B is |W|_*^2 / h (Cauchy-Schwarz twice, with equality
for *equalized* factorizations |a_i| |b_i| = |W|_* / h), so the minimum is that of
|M - W|^2 + (c / h) |W|_*^2 over rank <= h: W shares M's singular vectors and its singular values are
s_j = (sigma_j - (c / h) S)_+ over the top h, with S = sum_j s_j (the shrinkage of Mianjy, Arora and
Vidal; Cavazza et al. 2018). We build the balanced equalized factorization by Givens rotations that
make the diagonal of Q diag(s) Q^T constant (a constructive Schur-Horn step).

**Convergence rate.** The minimizers form manifolds (rescalings a_i -> t a_i, b_i -> b_i / t and
rotations keep the loss), so the Hessian at a minimizer has zero eigenvalues along them. Senen-Cerda
and Sanders prove local convergence of the gradient flow d theta / dt = -grad E L and a bound on its
rate that depends on the data, the keep probability and the width. Their explicit formula is not
implemented here (its statement was not available to us); what is compared is the local rate it
bounds: on a manifold of minimizers along which the Hessian's kernel is exactly the tangent space
(Morse-Bott), near a minimizer theta* whose Hessian has smallest *positive* eigenvalue mu the loss gap
decays like exp(-2 mu t) (and the distance like exp(-mu t)); a guaranteed rate cannot exceed this one
for starts that excite the slowest normal mode. :func:`dropout_flow` integrates the flow with
:func:`scipy.integrate.solve_ivp`, measures the decay rate of the loss gap, and puts it next to 2 mu
computed exactly (torch Hessian) at the limit point.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.linear_models import _inputs
from relulab.results import Result

__all__ = ["decay_rate", "whiten", "expected_loss", "induced_regularizer", "enumerate_masks", "monte_carlo_loss",
           "MonteCarloEstimate",
           "global_minimizers", "DropoutMinimum", "dropout_hessian", "dropout_flow", "DropoutFlow"]

_KINDS = ("dropout", "dropconnect")


# ---------------------------------------------------------------------------------------------- inputs
def _kind(kind) -> str:
    k = str(kind).lower().replace("-", "").replace("_", "")
    if k not in _KINDS:
        raise InvalidInputError(f"kind must be 'dropout' or 'dropconnect', got {kind!r}")
    return k


def _keep(keep, kind) -> tuple[float, float]:
    """(p1, p2): keep probabilities of the first and second layer's masks (dropout: one p, p1 = p2)."""
    if isinstance(keep, (tuple, list, np.ndarray)):
        if kind == "dropout" or len(keep) != 2:
            raise InvalidInputError("keep must be one probability (dropout) or a pair (keep_W1, keep_W2) for "
                                    f"DropConnect, got {keep!r}")
        return _inputs.probability(keep[0], "keep[0]"), _inputs.probability(keep[1], "keep[1]")
    p = _inputs.probability(keep, "keep")
    return p, p


def _data(X, Y):
    X = _inputs.matrix(X, "X")
    if isinstance(Y, (np.ndarray, torch.Tensor)) and np.ndim(Y) == 1:
        Y = np.asarray(Y)[:, None]
    Y = _inputs.matrix(Y, "Y", rows=X.shape[0])
    return X, Y


def _weights(W1, W2, d, r):
    W1 = _inputs.matrix(W1, "W1", cols=d)
    W2 = _inputs.matrix(W2, "W2", rows=r, cols=W1.shape[0])
    return W1, W2


@dataclass
class _Problem:
    C: np.ndarray       # X^T X / N
    Z: np.ndarray       # Y^T X / N
    yy: float           # |Y|^2 / N
    c1: float
    c2: float
    kind: str

    @classmethod
    def make(cls, X, Y, keep, kind):
        kind = _kind(kind)
        p1, p2 = _keep(keep, kind)
        n = X.shape[0]
        C, Z = X.T @ X / n, Y.T @ X / n
        if kind == "dropout":
            return cls(C, Z, float((Y * Y).sum() / n), 0.0, (1 - p2) / p2, kind)
        return cls(C, Z, float((Y * Y).sum() / n), (1 - p1) / p1, (1 - p2) / p2, kind)

    def loss(self, W1, W2):
        """The closed-form expected loss (numpy or torch arguments)."""
        W = W2 @ W1
        fit = self.yy - 2 * (self.Z * W).sum() + ((W @ self.C) * W).sum()
        return fit + self.regularizer(W1, W2)

    def regularizer(self, W1, W2):
        a2 = (W2 * W2).sum(0)                    # |a_i|^2
        q = ((W1 @ self.C) * W1).sum(1)          # b_i^T C b_i
        reg = self.c2 * (a2 * q).sum()
        if self.c1:
            g = (W1 * W1) @ _diag(self.C, W1)   # sum_j B_ij^2 C_jj
            reg = reg + self.c1 * (1 + self.c2) * (a2 * g).sum()
        return reg

    def grad(self, W1, W2):
        W = W2 @ W1
        G = 2 * (W @ self.C - self.Z)
        a2 = (W2 * W2).sum(0)
        CB = W1 @ self.C
        q = (CB * W1).sum(1)
        g1 = W2.T @ G + 2 * self.c2 * a2[:, None] * CB
        coeff = self.c2 * q
        if self.c1:
            dC = np.diag(self.C)
            g1 = g1 + 2 * self.c1 * (1 + self.c2) * a2[:, None] * W1 * dC[None, :]
            coeff = coeff + self.c1 * (1 + self.c2) * ((W1 * W1) @ dC)
        g2 = G @ W1.T + 2 * W2 * coeff[None, :]
        return g1, g2


def _diag(C, like):
    if isinstance(like, torch.Tensor):
        return torch.diagonal(torch.as_tensor(C, dtype=like.dtype, device=like.device))
    return np.diag(C)


def expected_loss(W1, W2, X, Y, *, keep=0.5, kind: str = "dropout") -> float:
    """E over the masks of (1/N) sum_n |y_n - W2~ W1~ x_n|^2, in closed form (see the module docstring).

    ``W1`` (h, d), ``W2`` (r, h), ``X`` (N, d), ``Y`` (N, r); ``keep``: keep probability p in (0, 1]
    (DropConnect: one p for both layers or a pair (p_W1, p_W2)); ``kind``: 'dropout' or 'dropconnect'.
    """
    X, Y = _data(X, Y)
    W1, W2 = _weights(W1, W2, X.shape[1], Y.shape[1])
    return float(_Problem.make(X, Y, keep, kind).loss(W1, W2))


def induced_regularizer(W1, W2, X, *, keep=0.5, kind: str = "dropout") -> float:
    """E L - L0: the explicit regularizer that the masks induce (it does not depend on the targets)."""
    X = _inputs.matrix(X, "X")
    W1 = _inputs.matrix(W1, "W1", cols=X.shape[1])
    W2 = _inputs.matrix(W2, "W2", cols=W1.shape[0])
    return float(_Problem.make(X, np.zeros((X.shape[0], W2.shape[0])), keep, kind).regularizer(W1, W2))


def whiten(X) -> np.ndarray:
    """X C^{-1/2} with C = X^T X / N, so that the whitened data has X^T X / N = I (C must be definite)."""
    X = _inputs.matrix(X, "X")
    C = X.T @ X / X.shape[0]
    w, V = np.linalg.eigh(C)
    if w[0] <= 1e-12 * max(w[-1], 1e-300):
        raise InvalidInputError("X: cannot whiten, X^T X / N is singular (fewer samples than dimensions or "
                                "dependent columns)")
    return X @ ((V / np.sqrt(w)) @ V.T)


# ---------------------------------------------------------------------------------------------- masks
def _mask_layout(h, d, r, kind):
    """Bits of one mask: dropout h; DropConnect h*d (W1) + r*h (W2)."""
    return h if kind == "dropout" else h * d + r * h


def enumerate_masks(W1, W2, X, Y, *, keep=0.5, kind: str = "dropout", max_masks: int = 2**16) -> float:
    """The expected loss by exact enumeration of every mask, each weighted by its probability: the
    independent reference for :func:`expected_loss` on small widths (2^h masks for dropout, 2^(h(d+r))
    for DropConnect). Raises ResourceLimitError before allocating when there are more than
    ``max_masks`` masks."""
    kind = _kind(kind)
    p1, p2 = _keep(keep, kind)
    X, Y = _data(X, Y)
    W1, W2 = _weights(W1, W2, X.shape[1], Y.shape[1])
    h, d, r = W1.shape[0], X.shape[1], Y.shape[1]
    bits = _mask_layout(h, d, r, kind)
    if bits > 62 or 2**bits > max_masks:
        raise ResourceLimitError(f"{kind} with width {h}, d = {d}, r = {r} has 2^{bits} masks, more than "
                                 f"max_masks = {max_masks}; raise max_masks or use monte_carlo_loss")
    masks = np.array(list(itertools.product((0.0, 1.0), repeat=bits)))
    return float(_masked_losses(masks, W1, W2, X, Y, kind, p1, p2, weights=True))


def _masked_losses(masks, W1, W2, X, Y, kind, p1, p2, weights):
    """Mean (weights=True: probability-weighted sum) over masks of the masked network's loss."""
    h, d, r, n = W1.shape[0], X.shape[1], Y.shape[1], X.shape[0]
    total = 0.0
    chunk = max(1, int(2e6 // max(1, n * r + h * (d + r))))
    for s in range(0, masks.shape[0], chunk):
        m = masks[s:s + chunk]
        if kind == "dropout":
            A = W2[None, :, :] * (m[:, None, :] / p2)                     # (M, r, h)
            Wm = A @ W1                                                     # (M, r, d)
            prob = np.prod(np.where(m > 0, p2, 1 - p2), axis=1)
        else:
            m1 = m[:, :h * d].reshape(-1, h, d)
            m2 = m[:, h * d:].reshape(-1, r, h)
            Wm = (W2[None] * m2 / p2) @ (W1[None] * m1 / p1)
            prob = np.prod(np.where(m1 > 0, p1, 1 - p1).reshape(len(m), -1), axis=1) * \
                np.prod(np.where(m2 > 0, p2, 1 - p2).reshape(len(m), -1), axis=1)
        res = Y[None] - X[None] @ Wm.transpose(0, 2, 1)                    # (M, N, r)
        per = (res * res).sum((1, 2)) / n
        total += float((prob * per).sum()) if weights else float(per.sum())
    return total


@dataclass
class MonteCarloEstimate(Result):
    """A Monte Carlo mean over random masks with its standard error (an estimate, not exact)."""

    mean: float
    stderr: float
    samples: int
    kind: str


def monte_carlo_loss(W1, W2, X, Y, *, keep=0.5, kind: str = "dropout", samples: int = 20000,
                     seed: int = 0) -> MonteCarloEstimate:
    """The expected loss estimated from ``samples`` random masks (mean and standard error)."""
    kind = _kind(kind)
    p1, p2 = _keep(keep, kind)
    X, Y = _data(X, Y)
    W1, W2 = _weights(W1, W2, X.shape[1], Y.shape[1])
    samples = _inputs.positive_int(samples, "samples", 10**8)
    h, d, r = W1.shape[0], X.shape[1], Y.shape[1]
    rng = np.random.default_rng(seed)
    vals = []
    per_chunk = 4096
    for s in range(0, samples, per_chunk):
        m_ = min(per_chunk, samples - s)
        if kind == "dropout":
            m = (rng.random((m_, h)) < p2).astype(np.float64)
        else:
            m = np.concatenate([(rng.random((m_, h * d)) < p1), (rng.random((m_, r * h)) < p2)], 1).astype(np.float64)
        vals.append(_per_mask(m, W1, W2, X, Y, kind, p1, p2))
    v = np.concatenate(vals)
    return MonteCarloEstimate(mean=float(v.mean()), stderr=float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1
                              else math.inf, samples=int(len(v)), kind=kind)


def _per_mask(m, W1, W2, X, Y, kind, p1, p2):
    h, d, r, n = W1.shape[0], X.shape[1], Y.shape[1], X.shape[0]
    if kind == "dropout":
        Wm = (W2[None] * (m[:, None, :] / p2)) @ W1
    else:
        Wm = (W2[None] * m[:, h * d:].reshape(-1, r, h) / p2) @ (W1[None] * m[:, :h * d].reshape(-1, h, d) / p1)
    res = Y[None] - X[None] @ Wm.transpose(0, 2, 1)
    return (res * res).sum((1, 2)) / n


# ---------------------------------------------------------------------------------------------- minimizers
@dataclass
class DropoutMinimum(Result):
    """A global minimizer of the expected dropout / DropConnect loss and the minimum value.

    ``W1`` (h, d), ``W2`` (r, h): the balanced, equalized factorization (|a_i| = |b_i C^{1/2}| and
    |a_i| |b_i C^{1/2}| = |W'|_* / h for every unit i); ``product`` = W2 W1; ``value``: the minimum of
    E L; ``singular_values``: sigma_j of the whitened target map M; ``shrunk_values``: the singular
    values s_j of W' = W C^{1/2}; ``rank``: how many are positive; ``reg_constant``: c / h;
    ``c``: (1 - p) / p (DropConnect with diagonal C: 1 / (p1 p2) - 1).
    """

    W1: np.ndarray
    W2: np.ndarray
    product: np.ndarray
    value: float
    singular_values: np.ndarray
    shrunk_values: np.ndarray
    rank: int
    c: float
    reg_constant: float
    width: int
    kind: str
    keep: tuple

    _summary_fields = ("value", "singular_values", "shrunk_values", "rank", "c", "width", "kind", "keep")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        j = np.arange(1, len(self.singular_values) + 1)
        ax.bar(j - 0.2, self.singular_values, 0.4, label="target sigma_j")
        s = np.zeros_like(self.singular_values)
        s[:len(self.shrunk_values)] = self.shrunk_values
        ax.bar(j + 0.2, s, 0.4, label="minimizer s_j")
        ax.set_xlabel("j")
        ax.set_ylabel("singular value")
        ax.set_title(f"{self.kind}, keep {self.keep}, width {self.width}")
        ax.legend()
        return ax


def _shrink(sigma: np.ndarray, lam: float, h: int) -> np.ndarray:
    """argmin over s >= 0 (support in the top h) of sum (sigma - s)^2 + lam (sum s)^2 (sigma sorted
    descending): s_j = (sigma_j - lam S)_+ with S = sum s."""
    K = min(h, int((sigma > 0).sum()))
    best = 0
    for k in range(1, K + 1):
        S = sigma[:k].sum() / (1 + k * lam)
        if sigma[k - 1] > lam * S:
            best = k
    s = np.zeros(min(h, len(sigma)))
    if best:
        S = sigma[:best].sum() / (1 + best * lam)
        s[:best] = sigma[:best] - lam * S
    return s


def _equalizer(s: np.ndarray, h: int) -> np.ndarray:
    """An (h, k) matrix Q with orthonormal columns and diag(Q diag(s) Q^T) constant = sum(s) / h, by
    Givens rotations each of which sets one more diagonal entry to the mean (Schur-Horn)."""
    from scipy.optimize import brentq

    k = len(s)
    G = np.zeros((h, h))
    G[:k, :k] = np.diag(s)
    R = np.eye(h)
    m = s.sum() / h
    tol = 1e-14 * max(m, 1e-300)
    for _ in range(2 * h):
        dg = np.diag(G)
        hi, lo = np.nonzero(dg > m + tol)[0], np.nonzero(dg < m - tol)[0]
        if not hi.size or not lo.size:
            break
        i, j = int(hi[0]), int(lo[0])
        gii, gjj, gij = G[i, i], G[j, j], G[i, j]
        f = lambda th: 0.5 * (gii + gjj) + 0.5 * (gii - gjj) * math.cos(2 * th) + gij * math.sin(2 * th) - m  # noqa: E731
        th = brentq(f, 0.0, math.pi / 2, xtol=1e-16)
        c, sn = math.cos(th), math.sin(th)
        J = np.eye(h)
        J[i, i], J[j, j], J[i, j], J[j, i] = c, c, sn, -sn
        G = J @ G @ J.T
        R = J @ R
    return R[:, :k] if k else np.zeros((h, 0))


def global_minimizers(X, Y, width: int, *, keep=0.5, kind: str = "dropout") -> DropoutMinimum:
    """A global minimizer of the expected dropout / DropConnect loss of width ``width`` and its value,
    in closed form (module docstring). Needs X^T X / N positive definite (N >= d, full column rank);
    DropConnect's closed form also needs it diagonal (whitened or orthogonal features)."""
    kind = _kind(kind)
    p1, p2 = _keep(keep, kind)
    X, Y = _data(X, Y)
    h = _inputs.positive_int(width, "width", 10**5)
    P = _Problem.make(X, Y, keep, kind)
    C = P.C
    lam_c = np.linalg.eigvalsh(C)
    if lam_c[0] <= 1e-12 * max(lam_c[-1], 1e-300):
        raise InvalidInputError("X: X^T X / N must be positive definite (N >= d and linearly independent columns) "
                                "for the closed-form minimizers")
    if kind == "dropconnect":
        off = C - np.diag(np.diag(C))
        if float(np.abs(off).max()) > 1e-10 * float(np.abs(C).max()):
            raise InvalidInputError("X: DropConnect's closed-form minimizers need X^T X / N diagonal (whitened or "
                                    "orthogonal features); its off-diagonal entries are not zero")
        c = 1.0 / (p1 * p2) - 1.0
    else:
        c = P.c2
    w, V = np.linalg.eigh(C)
    Cih = (V / np.sqrt(w)) @ V.T
    M = P.Z @ Cih
    U, sig, Vt = np.linalg.svd(M, full_matrices=False)
    s = _shrink(sig, c / h, h)
    k = int((s > 0).sum())
    Q = _equalizer(s[:k], h)
    sq = np.sqrt(s[:k])
    W2 = (U[:, :k] * sq) @ Q.T                     # (r, h)
    W1p = Q @ (sq[:, None] * Vt[:k])               # (h, d), whitened coordinates
    W1 = W1p @ Cih
    W1 = np.zeros((h, X.shape[1])) if k == 0 else W1
    W2 = np.zeros((Y.shape[1], h)) if k == 0 else W2
    value = P.yy - float((M * M).sum()) + float(((sig[:len(s)] - s) ** 2).sum() + (sig[len(s):] ** 2).sum()) \
        + c / h * float(s.sum()) ** 2
    return DropoutMinimum(W1=W1, W2=W2, product=W2 @ W1, value=value, singular_values=sig, shrunk_values=s,
                          rank=k, c=c, reg_constant=c / h, width=h, kind=kind,
                          keep=(p2,) if kind == "dropout" else (p1, p2))


# ---------------------------------------------------------------------------------------------- Hessian
def dropout_hessian(W1, W2, X, Y, *, keep=0.5, kind: str = "dropout") -> np.ndarray:
    """The Hessian of the expected loss in theta = (W1.ravel(), W2.ravel()), exactly (autodiff of the
    closed form in float64)."""
    X, Y = _data(X, Y)
    W1, W2 = _weights(W1, W2, X.shape[1], Y.shape[1])
    P = _Problem.make(X, Y, keep, kind)
    return _hessian(P, W1, W2)


def _hessian(P: _Problem, W1, W2) -> np.ndarray:
    h, d = W1.shape
    Pt = _Problem(torch.as_tensor(P.C), torch.as_tensor(P.Z), P.yy, P.c1, P.c2, P.kind)

    def f(theta):
        return Pt.loss(theta[:h * d].reshape(h, d), theta[h * d:].reshape(-1, h))

    theta = torch.as_tensor(np.concatenate([W1.ravel(), W2.ravel()]), dtype=torch.float64)
    return torch.autograd.functional.hessian(f, theta).numpy()


def _positive_floor(H) -> tuple[float, int, np.ndarray]:
    """(smallest eigenvalue above the null tolerance, number of null eigenvalues, all eigenvalues)."""
    ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    tol = 1e-7 * max(float(np.abs(ev).max()), 1e-300)
    pos = ev[ev > tol]
    return (float(pos.min()) if pos.size else math.nan), int((np.abs(ev) <= tol).sum()), ev


# ---------------------------------------------------------------------------------------------- flows
@dataclass
class DropoutFlow(Result):
    """Gradient flow of the expected loss started near a global minimizer, with its measured rate.

    ``times``, ``gaps`` (E L(theta(t)) - min E L); ``measured_rate``: least-squares slope of -log gap over
    the last third of the run above the rounding floor; ``rate_bound``: 2 mu with mu the
    smallest positive Hessian eigenvalue at the flow's limit (the local rate near a minimizer whose
    Hessian is positive on the normal space); ``mu_start_minimizer``: mu at the minimizer the start was
    perturbed from; ``null_dimension``: zero eigenvalues at the limit (the dimension of the minimizer
    manifold there); ``hessian_eigenvalues``: at the limit; ``complete``: the solver reached t_max.
    """

    times: np.ndarray
    gaps: np.ndarray
    measured_rate: float
    rate_bound: float
    mu: float
    mu_start_minimizer: float
    null_dimension: int
    hessian_eigenvalues: np.ndarray
    minimum: float
    final_gap: float
    fit_window: tuple
    width: int
    kind: str
    keep: tuple
    perturbation: float
    complete: bool
    seconds: float

    _summary_fields = ("measured_rate", "rate_bound", "mu", "mu_start_minimizer", "null_dimension", "minimum",
                       "final_gap", "fit_window", "width", "kind", "keep", "perturbation", "complete", "seconds")

    @property
    def ratio(self) -> float:
        """measured rate / (2 mu)."""
        return self.measured_rate / self.rate_bound

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        g = np.maximum(self.gaps, 1e-300)
        ax.semilogy(self.times, g, label="E L(t) - min")
        t0, t1 = self.fit_window
        i0 = int(np.searchsorted(self.times, t0))
        if i0 < len(g):
            ax.semilogy(self.times, g[i0] * np.exp(-self.rate_bound * (self.times - self.times[i0])), "--",
                        label=f"exp(-2 mu t), 2 mu = {self.rate_bound:.3g}")
        ax.set_xlabel("t")
        ax.set_ylabel("loss gap")
        ax.set_ylim(max(g.min(), 1e-16), g.max() * 2)
        ax.legend()
        return ax


def dropout_flow(X, Y, width: int, *, keep=0.5, kind: str = "dropout", perturbation: float = 0.1,
                 t_max: float | None = None, points: int = 200, seed: int = 0, rtol: float = 1e-11,
                 init=None) -> DropoutFlow:
    """Gradient flow d theta / dt = -grad E L from ``init`` = (W1, W2), or (default) from a global minimizer
    (:func:`global_minimizers`) plus a random perturbation of relative size ``perturbation``; integrated
    by :func:`scipy.integrate.solve_ivp` (LSODA: the Hessian is stiff) up to ``t_max`` (default 16 / mu at the start's
    minimizer, so that the gap falls by about e^-32). Returns the gap curve, its measured exponential
    rate and the Hessian rate bound 2 mu at the limit (module docstring)."""
    from scipy.integrate import solve_ivp

    t0 = time.perf_counter()
    kind = _kind(kind)
    X, Y = _data(X, Y)
    P = _Problem.make(X, Y, keep, kind)
    m = global_minimizers(X, Y, width, keep=keep, kind=kind)
    h, d, r = m.W1.shape[0], X.shape[1], Y.shape[1]
    mu0, _, _ = _positive_floor(_hessian(P, m.W1, m.W2))
    perturbation = _inputs.positive_float(perturbation, "perturbation", allow_zero=True)
    if init is None:
        rng = np.random.default_rng(seed)
        theta_star = np.concatenate([m.W1.ravel(), m.W2.ravel()])
        scale = max(float(np.linalg.norm(theta_star)), 1.0)
        noise = rng.standard_normal(theta_star.shape)
        theta0 = theta_star + perturbation * scale * noise / np.linalg.norm(noise)
    else:
        W1i, W2i = _weights(init[0], init[1], d, r)
        if W1i.shape[0] != h:
            raise InvalidInputError(f"init: W1 must have {h} rows (the width), got {W1i.shape[0]}")
        theta0 = np.concatenate([W1i.ravel(), W2i.ravel()])
    if t_max is None:
        if not (mu0 > 0):
            raise InvalidInputError("t_max: the minimizer's Hessian has no positive eigenvalue; give t_max")
        t_max = 16.0 / mu0
    t_max = _inputs.positive_float(t_max, "t_max")
    points = _inputs.positive_int(points, "points", 10**5)

    def rhs(_t, th):
        g1, g2 = P.grad(th[:h * d].reshape(h, d), th[h * d:].reshape(r, h))
        return -np.concatenate([g1.ravel(), g2.ravel()])

    times = np.linspace(0.0, t_max, points + 1)
    sol = solve_ivp(rhs, (0.0, t_max), theta0, method="LSODA", t_eval=times, rtol=rtol, atol=1e-14)
    thetas = sol.y.T
    losses = np.array([float(P.loss(t[:h * d].reshape(h, d), t[h * d:].reshape(r, h))) for t in thetas])
    gaps = losses - m.value
    times = sol.t
    theta_end = thetas[-1]
    mu, null, ev = _positive_floor(_hessian(P, theta_end[:h * d].reshape(h, d), theta_end[h * d:].reshape(r, h)))
    rate, window = decay_rate(times, gaps, floor=1e-14 * max(1.0, abs(m.value)))
    return DropoutFlow(times=times, gaps=gaps, measured_rate=rate, rate_bound=2 * mu, mu=mu, mu_start_minimizer=mu0,
                       null_dimension=null, hessian_eigenvalues=ev, minimum=m.value, final_gap=float(gaps[-1]),
                       fit_window=window, width=h, kind=kind, keep=m.keep, perturbation=perturbation,
                       complete=bool(sol.status == 0), seconds=time.perf_counter() - t0)


def decay_rate(times, values, floor: float) -> tuple[float, tuple]:
    """The exponential decay rate of a positive sequence: minus the least-squares slope of log(value) against
    time over the last third of the stretch where the value stays above ``floor`` (the slowest mode
    dominates only at the end); returns (rate, (first time, last time) of the fit), NaN when fewer than
    three points qualify."""
    times, values = np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)
    ok = np.nonzero(values > floor)[0]
    if ok.size < 4:
        return math.nan, (math.nan, math.nan)
    last = int(ok[-1])
    first = int(ok[(2 * len(ok)) // 3])
    sel = np.arange(first, last + 1)
    sel = sel[values[sel] > floor]
    if sel.size < 3:
        return math.nan, (math.nan, math.nan)
    slope = np.polyfit(times[sel], np.log(values[sel]), 1)[0]
    return float(-slope), (float(times[sel[0]]), float(times[sel[-1]]))
