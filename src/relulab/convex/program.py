r"""Two-layer ReLU networks with weight decay as convex programs, and certificates of global optimality.

**Convention** (Pilanci and Ergen, "Neural Networks are Convex Regularizers", ICML 2020): data ``X``
(n, d), targets ``y`` (n,), a network ``f(X) = sum_j (A u_j)_+ a_j`` with ``A = [X, 1]`` (the bias as a
column of ones, regularized like a weight; ``bias=False``: ``A = X``), trained on

    p* = min  1/2 |sum_j (A u_j)_+ a_j - y|^2 + beta/2 sum_j (|u_j|^2 + a_j^2).

**Unregularized bias** (``bias="free"``; the convention of Savarese, Evron, Soudry and Srebro, COLT 2019,
and of Ongie, Willett, Soudry and Srebro, ICLR 2020, for the function-space view): the hidden biases
``b_j`` and an output bias ``c`` are not penalized,

    p*_free = min  1/2 |sum_j (X w_j + b_j 1)_+ a_j + c 1 - y|^2 + beta/2 sum_j (|w_j|^2 + a_j^2).

Without ``c`` the infimum is the same but not attained (a neuron ``(0 x + b)_+ a`` makes any constant at
penalty ``beta a^2 / 2 -> 0``); with it, it is attained. Derived here along the lines of Theorem 1: with
``E = [I_d, 0]`` (the weight part of ``z = (w, b)``) and the cells of the same ``A = [X, 1]``,

    p*_free = min_{v_i, w_i in K_i, c}  1/2 |sum_i D_i A (v_i - w_i) + c 1 - y|^2 + beta sum_i (|E v_i| + |E w_i|).

(<=: a neuron with ``w_j != 0`` gives ``v = a_j z_j`` in its cell with ``beta |w_j| |a_j| <= beta/2
(|w_j|^2 + a_j^2)``; one with ``w_j = 0`` is a constant, folded into ``c``. >=: a block with ``E v != 0``
is the neuron ``z = v / sqrt|E v|, a = sqrt|E v|`` of penalty exactly ``beta |E v|``; a block with ``E v = 0``
lies in a cone only if its cell is all-active (a constant, folded into ``c``) or all-inactive (zero).)
The rebuilt network takes the neurons and the best ``c`` (the mean residual). Its dual: for ``lambda``
with ``1^T lambda = 0`` *exactly* (the free ``c`` forces it; :func:`_zero_sum` rounds ``lambda`` to a grid on
which the sum is exact) and ``c(lambda) = sup_{|w| <= 1, b} |lambda^T (X w + b 1)_+| <= beta``, every network
has objective ``>= lambda^T y - 1/2 |lambda|^2`` (a neuron with ``w_j = 0`` adds ``(b_j)_+ a_j 1^T lambda = 0``).
In a cell with active and inactive samples ``|b| <= R = max_k |x_k|`` (``b >= -x_k.w`` for an active ``k``,
``b <= -x_k.w`` for an inactive one), so Lagrange duality bounds the cell's maximum by
``|h_x| + R |h_b|``, ``h = +-A^T D_i lambda + A^T (2 D_i - I) mu``; the all-active cell contributes
``|X^T lambda|`` (the ``b`` term vanishes with ``1^T lambda = 0``) and the all-inactive one 0.

``loss="mean"`` puts ``1/(2n)`` in front of the squared error instead; it is the same problem with
``n beta`` in place of ``beta``, divided by ``n``. By the rescaling ``(u, a) -> (u t, a / t)`` the penalty
may be replaced by ``beta sum_j |u_j| |a_j|``. For the activation patterns ``D_i`` of the data
(:mod:`relulab.convex.patterns`) and the cones ``K_i = {v : (2 D_i - I) A v >= 0}``, Theorem 1 of the
paper gives, once the width is at least the number of nonzero blocks of the solution,

    p* = min_{v_i, w_i in K_i}  1/2 |sum_i D_i A (v_i - w_i) - y|^2 + beta sum_i (|v_i| + |w_i|),

a group lasso solved here with cvxpy (Clarabel by default, SCS as an option; the ``convex`` extra). The
optimal network has one neuron ``u = v / sqrt|v|, a = sqrt|v|`` per nonzero ``v_i`` and
``u = w / sqrt|w|, a = -sqrt|w|`` per nonzero ``w_i``.

**Batch normalization** (Ergen, Sahiner, Ozturkler, Pauly, Mardani and Pilanci, "Demystifying Batch
Normalization in ReLU Networks: Equivalent Convex Optimization Models and Implicit Regularization",
ICLR 2022): ``f(X) = sum_j (BN_{gamma_j, alpha_j}(X u_j))_+ a_j`` with
``BN(z) = gamma (z - mean z) / |z - mean z| + alpha / sqrt(n)`` and penalty
``beta/2 sum_j (gamma_j^2 + alpha_j^2 + a_j^2)`` (``u_j`` is scale free and not penalized). With the
thin SVD ``X - mean(X) = U S V^T`` of rank ``r``, a BN neuron's pre-activation is ``[U, 1/sqrt n] z`` with
``z = (gamma s, alpha)``, ``|s| = 1``, ``|z|^2 = gamma^2 + alpha^2``: the BN network is the plain
bias-free network on the data ``A = [U, 1/sqrt(n)]``, so the same program applies. In torch terms
(``BatchNorm1d`` with the data's statistics) the layer's weight is ``gamma / sqrt(n)`` (with ``eps = 0``)
and its bias ``alpha / sqrt(n)``.

**Certificate.** For any ``lambda`` in R^n with ``c(lambda) = max_{|z| <= 1} |lambda^T (A z)_+| <= beta``
and any network of any width, weak duality gives

    1/2 |f - y|^2 + beta sum_j |u_j| |a_j|  >=  lambda^T y - 1/2 |lambda|^2,

(``1/2|r|^2 >= lambda^T r' ...``: expand ``1/2|f - y|^2 >= lambda^T (y - f) - 1/2|lambda|^2`` and bound
each neuron's term by ``beta |u_j||a_j|``). ``c(lambda)`` is the maximum over cells of
``max_{z in K_i, |z| <= 1} +-(A^T D_i lambda)^T z``, and for every ``mu >= 0`` Lagrange duality bounds that
by ``|+-A^T D_i lambda + A^T (2 D_i - I) mu|``: :func:`dual_bound` evaluates this bound with a batched
projected-gradient ``mu`` (polished by NNLS for the cells near the maximum), so the bound it returns
is valid whatever the accuracy of ``mu``, of the solver, or of ``lambda`` (the residual of the rebuilt
network). ``lambda`` is then scaled by the best ``t`` in ``[0, beta / c]``. Without the complete list of
patterns, ``c`` is bounded by ``|lambda_+| ||A||_2`` (resp. ``lambda_-``), a valid but loose bound.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from relulab.convex.patterns import arrangement_patterns, pattern_bound, sample_patterns
from relulab.core.errors import InvalidInputError, UnsupportedLayerError
from relulab.core.threads import threads_for
from relulab.results import Result

__all__ = ["solve", "ConvexSolution", "certify", "Certificate", "objective", "dual_bound", "features",
           "LOSSES", "SOLVERS"]

LOSSES = ("sum", "mean")
BIAS_MODES = ("regularized", "free", "none")
SOLVERS = ("clarabel", "scs")
_PATTERN_MODES = ("auto", "exact", "sampled")


# ---------------------------------------------------------------------------------------------- inputs
def _bias_mode(bias) -> str:
    """``True``/``"regularized"``: a hidden bias penalized like a weight; ``"free"``: unpenalized hidden and output
    biases; ``False``/``"none"``: no bias."""
    if bias is True or bias == "regularized":
        return "regularized"
    if bias is False or bias == "none":
        return "none"
    if bias == "free":
        return "free"
    raise InvalidInputError(f"bias must be True, False or one of {', '.join(BIAS_MODES)}, got {bias!r}")


def _check_inputs(X, y, beta, loss: str = "sum", multi: bool = False):
    try:
        Xn = np.asarray(X.detach().cpu() if isinstance(X, torch.Tensor) else X, dtype=np.float64)
        yn = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"X and y must be arrays of numbers: {e}") from None
    if Xn.ndim == 1:
        Xn = Xn[:, None]
    if Xn.ndim != 2 or Xn.shape[0] < 1 or Xn.shape[1] < 1:
        raise InvalidInputError(f"X must be an (n, d) matrix with n, d >= 1 (empty data has nothing to fit), "
                                f"got shape {Xn.shape}")
    if yn.ndim == 2 and yn.shape[1] == 1:
        yn = yn[:, 0]
    if multi and yn.ndim == 2 and yn.shape[0] == Xn.shape[0] and yn.shape[1] >= 2:
        pass  # vector targets (n, k)
    elif yn.ndim != 1 or yn.shape[0] != Xn.shape[0]:
        raise InvalidInputError(f"y must hold one target per row of X: expected shape ({Xn.shape[0]},)"
                                + (f" or ({Xn.shape[0]}, k)" if multi else "") + f", got {yn.shape}")
    if not (np.isfinite(Xn).all() and np.isfinite(yn).all()):
        raise InvalidInputError("X and y must be finite")
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)) \
            or not math.isfinite(beta) or beta <= 0:
        raise InvalidInputError(f"beta (the weight decay) must be a finite number > 0, got {beta!r}")
    if loss not in LOSSES:
        raise InvalidInputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    return Xn, yn, float(beta)


@dataclass
class _Features:
    A: np.ndarray          # (n, q) the data the hidden neurons see
    bn: bool
    bias: bool
    free: bool = False               # unpenalized hidden bias (last column of A) and output bias
    mean: np.ndarray | None = None   # BN: column means of X
    V: np.ndarray | None = None      # BN: right singular vectors (d, r)
    S: np.ndarray | None = None      # BN: singular values (r,)


def features(X, bias: bool = True, bn: bool = False) -> np.ndarray:
    """The matrix ``A`` of the module docstring: ``[X, 1]`` (``bias``), ``X``, or ``[U, 1/sqrt(n)]`` (``bn``)."""
    Xn, _, _ = _check_inputs(X, np.zeros(np.asarray(X).shape[0]), 1.0)
    return _features(Xn, bias, bn).A


def _features(X: np.ndarray, bias, bn: bool) -> _Features:
    n = X.shape[0]
    mode = "none" if bn else _bias_mode(bias)
    if bn:
        mean = X.mean(axis=0)
        U, S, Vt = np.linalg.svd(X - mean, full_matrices=False)
        r = int((S > 1e-10 * max(X.shape) * (S[0] if S.size else 0.0)).sum())
        if r == 0:
            raise InvalidInputError("X is constant across samples: batch normalization divides by zero")
        A = np.concatenate([U[:, :r], np.full((n, 1), 1.0 / math.sqrt(n))], axis=1)
        return _Features(A, True, False, False, mean, Vt[:r].T, S[:r])
    A = np.concatenate([X, np.ones((n, 1))], axis=1) if mode != "none" else X.copy()
    return _Features(A, False, mode != "none", mode == "free")


# ---------------------------------------------------------------------------------------------- networks
def _read_network(model, X: np.ndarray, bias, bn: bool):
    """(H, a, penalty, c): the ReLU inputs H (n, m) on X, the output weights a (m,) (or (m, k)), the
    convention's penalty ``sum_j (|u_j|^2 + |a_j|^2)`` (BN: ``gamma_j^2 + alpha_j^2 + |a_j|^2``; ``bias="free"``:
    ``|w_j|^2 + |a_j|^2``) and the output bias c (k,) (zero unless ``bias="free"``) of a two-layer network."""
    mode = _bias_mode(bias)
    from torch import nn

    from relulab.core.plnet import PLNet
    from relulab.landscape.shallow import ShallowNet

    n, d = X.shape
    Xt = torch.as_tensor(X, dtype=torch.float64)
    layers = list(model) if isinstance(model, nn.Sequential) else None
    if layers is not None and len(layers) == 4 and isinstance(layers[1], nn.BatchNorm1d):
        first, norm, act, last = layers
        if not (isinstance(first, nn.Linear) and isinstance(act, nn.ReLU) and isinstance(last, nn.Linear)):
            raise UnsupportedLayerError("a batch-normalized two-layer network is nn.Sequential(nn.Linear(d, m), "
                                        "nn.BatchNorm1d(m), nn.ReLU(), nn.Linear(m, 1)); got "
                                        f"{[type(x).__name__ for x in layers]}")
        if not bn:
            raise InvalidInputError("the network has a BatchNorm1d layer: certify it with bn=True")
        with torch.no_grad():
            Z = torch.nn.functional.linear(
                Xt, first.weight.double(), None if first.bias is None else first.bias.double())
            # batch normalization with the statistics of X, as in training (biased variance); written out
            # because torch refuses eps = 0 in training mode
            den = torch.sqrt(Z.var(dim=0, unbiased=False) + norm.eps)
            # a neuron constant on the data (zero variance, eps = 0) is normalized to 0, not 0/0
            H = torch.where(den > 0, (Z - Z.mean(dim=0)) / torch.where(den > 0, den, 1.0), 0.0)
            if norm.weight is not None:
                H = H * norm.weight.double() + norm.bias.double()
        W2, c = last.weight.detach().double(), last.bias
        W1 = b1 = None
    else:
        if isinstance(model, ShallowNet):
            sn = model
        elif isinstance(model, PLNet):
            sn = ShallowNet.from_plnet(model)
        elif isinstance(model, nn.Module):
            sn = ShallowNet.from_plnet(PLNet.from_torch(model, (d,)))
        else:
            raise InvalidInputError(f"model must be a torch nn.Module, a relulab.PLNet or a ShallowNet, got "
                                    f"{type(model).__name__}")
        if sn.activation != "relu":
            raise UnsupportedLayerError(f"the convex programs are for ReLU networks; this one uses {sn.activation}")
        if sn.d != d:
            raise InvalidInputError(f"the network takes {sn.d} inputs but X has {d} columns")
        W1 = sn.W.detach().double()
        b1 = None if sn.b is None else sn.b.detach().double()
        W2, c = sn.a.detach().double().T, sn.c
        if b1 is not None and mode == "none" and not bn and bool((b1 != 0).any()):
            raise InvalidInputError("the network's hidden layer has a bias but bias=False; use bias=True")
        H = Xt @ W1.T + (0 if b1 is None else b1)
    if c is not None and bool((c.detach() != 0).any()) and (mode != "free" or bn):
        raise InvalidInputError("the network's output layer has a nonzero bias; the convention has none "
                                "(fold it into a neuron, train with bias=False in the output layer, or use "
                                "bias='free')")
    c_out = torch.zeros(W2.shape[0], dtype=torch.float64) if c is None else c.detach().double().reshape(-1)
    a = W2[0] if W2.shape[0] == 1 else W2.T
    if bn:
        Hc = H - H.mean(dim=0)
        penalty = (Hc.square().sum(dim=0) + n * H.mean(dim=0).square() + a.square()).sum()
    else:
        penalty = W1.square().sum() + a.square().sum() + (
            0.0 if b1 is None or mode == "free" else b1.square().sum())
    return H, a, float(penalty), c_out


def objective(model, X, y, beta: float, *, bias=True, bn: bool = False, loss: str = "sum") -> float:
    """The training objective of a two-layer ReLU network in the convention of the module docstring:
    ``1/2 |f(X) - y|^2 + beta/2 * penalty`` (``loss="mean"``: ``1/(2n)`` in front of the error). ``y`` may be
    (n, k) for a network with k outputs (:mod:`relulab.convex.vector`); ``bias``: True (regularized), False,
    or ``"free"`` (hidden and output biases unpenalized).

    ``model``: ``nn.Sequential(Linear(d, m), ReLU, Linear(m, 1))`` (no output bias, or a zero one), any
    torch module or PLNet that is one, a :class:`relulab.landscape.ShallowNet`, or with ``bn=True`` also
    ``nn.Sequential(Linear, BatchNorm1d, ReLU, Linear)`` (normalized with the statistics of ``X``, as in
    training). With ``bn=True`` a network's ``gamma_j, alpha_j`` are read off its ReLU inputs ``h_j`` on X:
    ``gamma_j = |h_j - mean h_j|``, ``alpha_j = sqrt(n) mean h_j`` (every two-layer network is a BN network
    on its own training data)."""
    Xn, yn, beta = _check_inputs(X, y, beta, loss, multi=True)
    H, a, penalty, c = _read_network(model, Xn, bias, bn)
    k = 1 if yn.ndim == 1 else yn.shape[1]
    if (1 if a.ndim == 1 else a.shape[1]) != k:
        raise InvalidInputError(f"the network has {1 if a.ndim == 1 else a.shape[1]} outputs but y has {k} columns")
    r = torch.relu(H) @ a + (c[0] if k == 1 else c) - torch.as_tensor(yn)
    scale = 1.0 / len(yn) if loss == "mean" else 1.0
    return float(0.5 * scale * r.square().sum() + 0.5 * beta * penalty)


# ---------------------------------------------------------------------------------------------- dual bound
def _cone_bounds(A: np.ndarray, S: np.ndarray, lam: np.ndarray, iters: int = 300, cost=None) -> np.ndarray:
    """Valid upper bounds (P, 2) on ``max_{z in K_i, |z| <= 1} +-(A^T D_i lambda)^T z`` for the cells with
    sign vectors S (P, n): ``|g + A^T (s * mu)|`` at a projected-gradient (FISTA) ``mu >= 0``, batched.
    ``cost``: another valid bound as a function of the rows ``h = g + A^T (s * mu)`` (the free-bias bound
    passes a reweighted ``A``), evaluated in place of ``|h|``."""
    At = torch.as_tensor(A)
    Sg = torch.as_tensor(S, dtype=torch.float64)
    M = (Sg > 0).to(torch.float64)
    G0 = (M * torch.as_tensor(lam)[None, :]) @ At          # (P, q)
    G = torch.cat([G0, -G0])                                # both output signs
    Ss = torch.cat([Sg, Sg])
    L = float(np.linalg.norm(A, 2)) ** 2 or 1.0
    mu = torch.zeros(G.shape[0], A.shape[0], dtype=torch.float64)
    y_, t = mu.clone(), 1.0
    with threads_for(mu.numel()):  # hundreds of small products: one thread unless they are large
        for _ in range(iters):
            grad = Ss * ((G + (Ss * y_) @ At) @ At.T)
            new = (y_ - grad / L).clamp_min(0)
            t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
            y_ = new + ((t - 1) / t_new) * (new - mu)
            mu, t = new, t_new
    norm = cost if cost is not None else (lambda h: torch.linalg.vector_norm(h, dim=1))
    ub = norm(G + (Ss * mu) @ At)
    ub = torch.minimum(ub, norm(G))  # mu = 0 is also valid
    return ub.reshape(2, -1).T.numpy(), G.numpy(), Ss.numpy()


def _zero_sum(lam: np.ndarray) -> np.ndarray:
    """``lam - mean(lam)`` moved by at most ``n 2^-40 max|lam - mean|`` onto a grid of multiples of a power of
    two on which float64 sums are exact, with ``1^T lam = 0`` exactly (the free output bias needs it
    exactly: any nonzero sum lets ``c lam^T 1`` run to minus infinity)."""
    lam = np.asarray(lam, dtype=np.float64)
    lam = lam - lam.mean()
    top = float(np.abs(lam).max(initial=0.0))
    if top == 0.0:
        return np.zeros_like(lam)
    step = 2.0 ** (math.frexp(top)[1] - 40)
    m = np.round(lam / step).astype(np.int64)
    m[int(np.argmax(np.abs(m)))] -= int(m.sum())
    return m.astype(np.float64) * step


def dual_bound(A, y, lam, beta: float, patterns=None, polish: int = 4096, free_bias: bool = False
               ) -> tuple[float, float]:
    """A certified lower bound on the objective of every network (any width) on data ``A``, targets ``y``
    and weight decay ``beta``, from the dual point ``lam``: returns ``(lower_bound, c)`` with ``c`` an upper
    bound on ``max_{|z| <= 1} |lam^T (A z)_+|`` (see the module docstring). ``patterns``: the complete sign
    vectors of the arrangement (from :func:`relulab.convex.patterns.arrangement_patterns`); None: the
    loose bound ``max(|lam_+|, |lam_-|) ||A||_2``. ``polish``: at most this many cells near the maximum have
    their bound tightened by NNLS. ``free_bias``: the last column of ``A`` is the (unpenalized) bias column
    of ones and there is a free output bias: ``lam`` is first put on an exact zero-sum grid
    (:func:`_zero_sum`) and ``c`` bounds ``sup_{|w| <= 1, b} |lam^T (A (w, b))_+|`` (module docstring)."""
    A = np.asarray(A, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    cost, rho, R = None, 1.0, 0.0
    if free_bias:
        lam = _zero_sum(lam)
        X = A[:, :-1]
        R = float(np.linalg.norm(X, axis=1).max(initial=0.0))
        # the bias coordinate is weighted by rho so that the least-squares mu drives h_b towards 0; the
        # bound itself is |h_x| + R |h_b| whatever mu is
        rho = 1e3 * max(R, 1.0)
        A = np.concatenate([X, rho * A[:, -1:]], axis=1)
        cost = lambda h: (torch.linalg.vector_norm(h[:, :-1], dim=1)  # noqa: E731
                          + (R / rho) * h[:, -1].abs()) if isinstance(h, torch.Tensor) else \
            float(np.linalg.norm(h[:-1]) + (R / rho) * abs(h[-1]))
        top_all = float(np.linalg.norm(X.T @ lam))   # the all-active cell (1^T lam = 0 exactly)
    if patterns is None:
        c = max(np.linalg.norm(np.maximum(lam, 0)), np.linalg.norm(np.minimum(lam, 0))) * np.linalg.norm(A, 2)
        if free_bias:
            Ab = np.concatenate([A[:, :-1], np.ones((len(lam), 1))], axis=1)
            c = max(max(np.linalg.norm(np.maximum(lam, 0)), np.linalg.norm(np.minimum(lam, 0)))
                    * np.linalg.norm(Ab, 2) * math.sqrt(1 + R * R), top_all)
    else:
        from scipy.optimize import nnls

        S = np.asarray(patterns)
        ub, G, Ss = _cone_bounds(A, S, lam, cost=cost)
        if free_bias:
            # cells with all samples on one side: b is unbounded there; the exact values instead
            allpos, allneg = (S > 0).all(axis=1), (S < 0).all(axis=1)
            ub[allpos] = top_all
            ub[allneg] = 0.0
        flat = np.concatenate([ub[:, 0], ub[:, 1]])
        # only the maximum matters: tighten cells by NNLS in decreasing order of their bound until the next
        # bound is below the largest tightened one (then no other cell can raise the maximum)
        best = 0.0
        for count, k in enumerate(np.argsort(-flat)):
            if flat[k] <= best or count >= polish:
                break
            if free_bias and ((Ss[k] > 0).all() or (Ss[k] < 0).all()):
                best = max(best, flat[k])
                continue
            Mk = (A * Ss[k][:, None]).T     # (q, n): A^T diag(s)
            mu, _ = nnls(Mk, -G[k], maxiter=50 * Mk.shape[1])
            h = G[k] + Mk @ mu
            flat[k] = min(flat[k], cost(h) if cost is not None else float(np.linalg.norm(h)))
            best = max(best, flat[k])
        c = float(flat.max()) if flat.size else 0.0
        # rounding in the matrix products above: a relative margin far above float64 error
        c *= 1 + 1e-12
    ly, ll = float(lam @ y), float(lam @ lam)
    t_max = 1.0 if c <= 0 else beta / c
    t = 0.0 if ll == 0 else min(max(ly / ll, 0.0), t_max)
    lb = t * ly - 0.5 * t * t * ll
    return lb - 1e-12 * (abs(lb) + 1e-300), float(c)


def _block_norms(V, W, F: _Features):
    """The penalized norms of the blocks: ``|v|``, or ``|E v|`` (the weight part) with a free bias."""
    if F.free:
        return np.linalg.norm(V[:-1], axis=0), np.linalg.norm(W[:-1], axis=0)
    return np.linalg.norm(V, axis=0), np.linalg.norm(W, axis=0)


def _rebuild(V, W, keep_v, keep_w, F: _Features, Xn, d):
    """Neurons from the kept blocks: ``z = v / sqrt|v|, a = sqrt|v|`` and ``z = w / sqrt|w|, a = -sqrt|w|``
    (free bias: ``|E v|`` in place of ``|v|``); returns (Z, a, hidden weights, hidden bias, penalty, gamma,
    alpha, BN statistics, ReLU inputs H)."""
    nv, nw = _block_norms(V, W, F)
    Z = np.concatenate([V[:, keep_v] / np.sqrt(nv[keep_v]), W[:, keep_w] / np.sqrt(nw[keep_w])], axis=1).T
    a = np.concatenate([np.sqrt(nv[keep_v]), -np.sqrt(nw[keep_w])])
    m = len(a)
    gamma = alpha = stats = None
    if F.bn:
        r = F.V.shape[1]
        zs, alpha = Z[:, :r], Z[:, r]
        gamma = np.linalg.norm(zs, axis=1)
        s = np.where(gamma[:, None] > 0, zs / np.where(gamma > 0, gamma, 1.0)[:, None], np.eye(1, r))
        hidden_w, hidden_b = (s / F.S[None, :]) @ F.V.T, None
        Zx = Xn @ hidden_w.T
        stats = (Zx.mean(axis=0), Zx.var(axis=0))
        # the network's ReLU inputs: gamma (centred, normalized) + alpha / sqrt(n)
        Zc = Zx - stats[0]
        H = Zc / np.sqrt(np.where(stats[1] > 0, stats[1], 1.0)) * (gamma / math.sqrt(len(Xn))) \
            + alpha / math.sqrt(len(Xn))
        penalty = float((gamma ** 2).sum() + (alpha ** 2).sum() + (a ** 2).sum())
    else:
        hidden_w = Z[:, :d]
        hidden_b = Z[:, d] if F.bias else None
        H = F.A @ Z.T if m else np.zeros((len(Xn), 0))
        penalty = float(((Z[:, :d] if F.free else Z) ** 2).sum() + (a ** 2).sum())
    return Z, a, hidden_w, hidden_b, penalty, gamma, alpha, stats, H


def _objective_arrays(H, a, penalty, y, beta, free: bool = False):
    r = np.maximum(H, 0) @ a - y
    if free:
        r = r - r.mean()  # the best output bias
    return 0.5 * float(r @ r) + 0.5 * beta * penalty


# ---------------------------------------------------------------------------------------------- solution
@dataclass(repr=True)
class ConvexSolution(Result):
    """The global optimum of a two-layer ReLU network with weight decay (module docstring).

    ``optimum``: the convex program's value over the patterns used (its solver's number);
    ``objective``: the rebuilt network's objective, evaluated directly; ``lower_bound``: a certified dual
    value (every network of every width has an objective >= it); ``gap = objective - lower_bound`` (the
    rebuilt network is within ``gap`` of the global optimum; ~0 certifies it). ``complete``: every
    activation pattern was used (else the patterns are a random sample: ``optimum`` is then only an upper
    bound on the optimum). ``bound_complete``: the certified ``lower_bound`` checked every pattern (also
    possible for a sampled program when the patterns can be enumerated); otherwise it is the loose one. ``hidden_weights`` (m, d), ``hidden_bias`` (m,)
    or None, ``output_weights`` (m,) (k outputs: (m, k)); with ``bn``: ``bn_gamma``, ``bn_alpha`` in the
    paper's scale. ``free_bias``: the biases are unpenalized and ``output_bias`` is the output layer's bias.
    ``outputs``: k. ``relaxation``: ``optimum`` is the value of a convex relaxation (vector outputs; with
    every pattern a lower bound on the optimum up to the solver's accuracy), not the optimum itself.
    """

    beta: float
    optimum: float
    objective: float
    lower_bound: float
    gap: float
    complete: bool
    patterns_used: int
    pattern_bound: int
    neurons: int
    bias: bool
    bn: bool
    loss: str
    solver: str
    status: str
    hidden_weights: np.ndarray = field(repr=False)
    hidden_bias: np.ndarray | None = field(repr=False)
    output_weights: np.ndarray = field(repr=False)
    bn_gamma: np.ndarray | None = field(default=None, repr=False)
    bn_alpha: np.ndarray | None = field(default=None, repr=False)
    n: int = 0
    d: int = 0
    seconds: float = 0.0
    free_bias: bool = False
    output_bias: float | np.ndarray | None = None
    outputs: int = 1
    relaxation: bool = False
    bound_complete: bool = False

    _summary_fields = ("beta", "optimum", "objective", "lower_bound", "gap", "complete", "patterns_used",
                       "pattern_bound", "neurons", "bias", "bn", "loss", "solver", "status", "n", "d", "seconds",
                       "free_bias", "output_bias", "outputs", "relaxation", "bound_complete")

    @property
    def relative_gap(self) -> float:
        return self.gap / max(abs(self.objective), 1e-300)

    def network(self, dtype=torch.float64):
        """The optimal network as a torch module: ``Sequential(Linear(d, m), ReLU, Linear(m, k, bias=False))``
        (``free_bias``: the output layer has the bias ``output_bias``), or with ``bn``
        ``Sequential(Linear(d, m, bias=False), BatchNorm1d(m, eps=0) in eval mode holding the data's
        statistics, ReLU, Linear(m, k, bias=False))``."""
        from torch import nn

        m, k = max(self.neurons, 1), self.outputs
        W = torch.zeros(m, self.d, dtype=dtype)
        W[: self.neurons] = torch.as_tensor(self.hidden_weights, dtype=dtype)
        a = torch.zeros(k, m, dtype=dtype)
        a[:, : self.neurons] = torch.as_tensor(self.output_weights, dtype=dtype).reshape(self.neurons, k).T
        if not self.bn:
            first = nn.Linear(self.d, m, bias=self.bias, dtype=dtype)
            last = nn.Linear(m, k, bias=self.free_bias, dtype=dtype)
            with torch.no_grad():
                first.weight.copy_(W)
                if self.bias:
                    first.bias.zero_()
                    first.bias[: self.neurons] = torch.as_tensor(self.hidden_bias, dtype=dtype)
                last.weight.copy_(a)
                if self.free_bias:
                    last.bias.copy_(torch.as_tensor(self.output_bias, dtype=dtype).reshape(k))
            return nn.Sequential(first, nn.ReLU(), last)
        first = nn.Linear(self.d, m, bias=False, dtype=dtype)
        norm = nn.BatchNorm1d(m, eps=0.0, dtype=dtype)
        last = nn.Linear(m, k, bias=False, dtype=dtype)
        rs = math.sqrt(self.n)
        with torch.no_grad():
            first.weight.copy_(W)
            norm.weight.zero_()
            norm.bias.zero_()
            norm.weight[: self.neurons] = torch.as_tensor(self.bn_gamma, dtype=dtype) / rs
            norm.bias[: self.neurons] = torch.as_tensor(self.bn_alpha, dtype=dtype) / rs
            # a network with no neuron keeps one zero neuron (weight 0), with unit statistics
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0)
            norm.running_mean[: self.neurons] = torch.as_tensor(self._stats[0], dtype=dtype)
            norm.running_var[: self.neurons] = torch.as_tensor(self._stats[1], dtype=dtype)
            last.weight.copy_(a)
        net = nn.Sequential(first, norm, nn.ReLU(), last)
        return net.eval()

    def plot(self, ax=None):
        """Each neuron's share ``|u_j| |a_j|`` of the penalty (BN: ``sqrt(gamma^2 + alpha^2) |a_j|``), signed
        by its output weight, with the objective and the certified bound in the title."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        if self.bn:
            norms = np.hypot(self.bn_gamma, self.bn_alpha)
        else:
            w = self.hidden_weights if self.hidden_bias is None else np.concatenate(
                [self.hidden_weights, self.hidden_bias[:, None]], axis=1)
            norms = np.linalg.norm(w, axis=1)
        out = np.asarray(self.output_weights)
        # vector outputs: the neuron's share is |u_j| |a_j|, unsigned
        share = norms * (out if out.ndim == 1 else np.linalg.norm(out, axis=1))
        order = np.argsort(-np.abs(share))
        ax.bar(np.arange(len(share)), share[order], color=np.where(share[order] >= 0, "C0", "C3"))
        ax.set_xlabel("neuron (by size)")
        ax.set_ylabel("|u_j| a_j")
        ax.set_title(f"objective {self.objective:.6g}, certified bound {self.lower_bound:.6g}"
                     + ("" if self.complete else " (sampled patterns)"), fontsize=9)
        return ax


def _cvxpy(solver: str):
    from relulab.core.extras import require

    cp = require("cvxpy", "relulab.convex")
    name = {"clarabel": "CLARABEL", "scs": "SCS"}[solver]
    if name not in cp.installed_solvers():
        from relulab.core.extras import MissingExtraError

        raise MissingExtraError(f"relulab.convex with solver={solver!r} needs the solver package {solver!r}: "
                                "pip install 'relulab[convex]'")
    return cp, name


def _group_lasso(A, y, beta, S, solver, verbose, free: bool = False):
    """Solve the group lasso over the cones of the sign vectors S (P, n); (value, V, W, status). ``free``: the
    last coordinate (the bias) is left out of the norms and a free offset ``c`` is added to the fit."""
    cp, name = _cvxpy(solver)
    n, q = A.shape
    P = S.shape[0]
    Sg = S.T.astype(np.float64)          # (n, P)
    M = (Sg > 0).astype(np.float64)
    V = cp.Variable((q, P))
    W = cp.Variable((q, P))
    AV, AW = A @ V, A @ W
    pred = cp.sum(cp.multiply(M, AV - AW), axis=1)
    if free:
        pred = pred + cp.Variable()
        Vn, Wn = V[:-1, :], W[:-1, :]
    else:
        Vn, Wn = V, W
    obj = 0.5 * cp.sum_squares(pred - y) + beta * (cp.sum(cp.norm(Vn, 2, axis=0)) + cp.sum(cp.norm(Wn, 2, axis=0)))
    prob = cp.Problem(cp.Minimize(obj), [cp.multiply(Sg, AV) >= 0, cp.multiply(Sg, AW) >= 0])
    _run(cp, prob, V, solver, name, verbose)
    return float(prob.value), np.asarray(V.value), np.asarray(W.value), str(prob.status)


def _run(cp, prob, var, solver: str, name: str, verbose: bool) -> None:
    """Solve a cvxpy problem at tight tolerances; a failure or a missing ``var`` value raises."""
    from relulab.core.errors import DegenerateGeometryError

    opts = ({"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 50_000} if name == "SCS"
            else {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10})
    try:
        prob.solve(solver=name, verbose=verbose, **opts)
    except cp.error.SolverError as e:
        raise DegenerateGeometryError(f"the conic solver {solver} failed: {e}") from None
    if var.value is None:
        raise DegenerateGeometryError(f"the conic solver {solver} returned no solution (status {prob.status})")


def solve(X, y, beta: float, *, bias=True, bn: bool = False, loss: str = "sum", patterns: str = "auto",
          max_patterns: int = 3000, samples: int | None = None, solver: str = "clarabel", seed: int = 0,
          verbose: bool = False, certify_patterns: int = 50_000) -> ConvexSolution:
    """The globally optimal two-layer ReLU network for data ``X`` (n, d), targets ``y`` (n,) and weight decay
    ``beta > 0`` (convention and method in the module docstring), with its certificate.

    ``patterns``: ``"exact"`` (every activation pattern, by exact arrangement enumeration; raises
    :class:`~relulab.core.errors.ResourceLimitError` when Cover's bound exceeds ``max_patterns``),
    ``"sampled"`` (the distinct patterns of ``samples`` Gaussian weight vectors, default ``10 max_patterns``,
    kept to at most ``max_patterns``; the result says ``complete=False``), or ``"auto"`` (exact when the
    bound allows, else sampled). ``bn``: the batch-normalized network (``bias`` is then irrelevant: the
    normalization removes it). ``loss``: ``"sum"`` (the papers' ``1/2 |.|^2``) or ``"mean"`` (``1/(2n)``).
    ``solver``: ``"clarabel"`` or ``"scs"`` (cvxpy, the ``convex`` extra). ``bias``: True (a hidden bias
    regularized like a weight), False (none) or ``"free"`` (unpenalized hidden and output biases; module
    docstring). ``y`` of shape (n, k), k >= 2: the vector-output program of :mod:`relulab.convex.vector`.
    ``certify_patterns``: with sampled patterns, the certificate still uses every pattern when Cover's bound
    is at most this (``bound_complete=True``): a tight certified bound for a program over a sample."""
    t0 = time.perf_counter()
    Xn, yn, beta = _check_inputs(X, y, beta, loss, multi=True)
    mode = _bias_mode(bias)
    if yn.ndim == 2:
        from relulab.convex.vector import solve_vector

        return solve_vector(Xn, yn, beta, bias=bias, bn=bn, loss=loss, patterns=patterns, max_patterns=max_patterns,
                            samples=samples, solver=solver, seed=seed, verbose=verbose)
    if patterns not in _PATTERN_MODES:
        raise InvalidInputError(f"patterns must be one of {', '.join(_PATTERN_MODES)}, got {patterns!r}")
    if solver not in SOLVERS:
        raise InvalidInputError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if isinstance(max_patterns, bool) or not isinstance(max_patterns, (int, np.integer)) or max_patterns < 2:
        raise InvalidInputError(f"max_patterns must be an integer >= 2, got {max_patterns!r}")
    if isinstance(certify_patterns, bool) or not isinstance(certify_patterns, (int, np.integer)) \
            or certify_patterns < 0:
        raise InvalidInputError(f"certify_patterns must be an integer >= 0, got {certify_patterns!r}")
    _cvxpy(solver)  # a missing extra is reported before any work
    n, d = Xn.shape
    F = _features(Xn, mode, bn)
    A = F.A
    rank = int(np.linalg.matrix_rank(A)) if A.size else 0
    bound = pattern_bound(int((np.linalg.norm(A, axis=1) > 0).sum()), rank)
    exact = patterns == "exact" or (patterns == "auto" and bound <= max_patterns)
    if exact:
        S = arrangement_patterns(A, max_patterns=max(max_patterns, 2) if patterns == "auto" else max_patterns)
    else:
        S = sample_patterns(A, int(samples) if samples is not None else 10 * int(max_patterns), seed=seed)
        if len(S) > max_patterns:
            S = S[np.random.default_rng(seed).choice(len(S), int(max_patterns), replace=False)]
    scale = 1.0 / n if loss == "mean" else 1.0
    beta_eff = beta / scale
    value, V, W, status = _group_lasso(A, yn, beta_eff, S, solver, verbose, free=F.free)
    # neurons: one per nonzero block. An interior-point solution is sparse only up to its tolerance, so
    # blocks below a relative threshold are dropped, with the threshold that gives the lowest objective of
    # the rebuilt network (evaluated, so dropping is never hidden)
    nv, nw = _block_norms(V, W, F)
    top = max(nv.max(initial=0.0), nw.max(initial=0.0), 1e-300)
    best = None
    for rel in (np.inf, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 0.0):
        cand = _rebuild(V, W, nv > rel * top, nw > rel * top, F, Xn, d)
        val = _objective_arrays(cand[-1], cand[1], cand[4], yn, beta_eff, F.free)
        if best is None or val < best[0] - 1e-13 * abs(best[0]):
            best = (val, cand)
    Z, a, hidden_w, hidden_b, penalty, gamma, alpha, stats, H = best[1]
    m = len(a)
    c_out = float(np.mean(yn - np.maximum(H, 0) @ a)) if F.free else None
    sol = ConvexSolution(beta=beta, optimum=value * scale, objective=math.nan, lower_bound=math.nan, gap=math.nan,
                         complete=exact, patterns_used=len(S), pattern_bound=bound, neurons=m, bias=F.bias, bn=bn,
                         loss=loss, solver=solver, status=status, hidden_weights=hidden_w, hidden_bias=hidden_b,
                         output_weights=a, bn_gamma=gamma, bn_alpha=alpha, n=n, d=d, free_bias=F.free,
                         output_bias=c_out)
    sol._stats = stats
    net = sol.network()
    bias_arg = "free" if F.free else (F.bias or bn)
    sol.objective = objective(net, Xn, yn, beta, bias=bias_arg, bn=bn, loss=loss)
    H, a_t, _, c_t = _read_network(net, Xn, bias_arg, bn)
    # two dual points: the rebuilt network's residual and the unpruned solution's; both bounds are valid
    full = _rebuild(V, W, nv > 0, nw > 0, F, Xn, d)
    r_full = yn - np.maximum(full[-1], 0) @ full[1]
    if F.free:
        r_full = r_full - r_full.mean()
    Sx = S if exact else None
    if not exact and pattern_bound(int((np.linalg.norm(A, axis=1) > 0).sum()), rank) <= certify_patterns:
        # the program saw a sample of the patterns, but every pattern fits in the certificate: enumerating
        # them and bounding the dual constraint on each is far cheaper than the program over all of them
        Sx = arrangement_patterns(A, max_patterns=max(int(certify_patterns), 2))
    sol.bound_complete = Sx is not None
    lb = max(dual_bound(A, yn, yn - (torch.relu(H) @ a_t + c_t[0]).numpy(), beta_eff, Sx, free_bias=F.free)[0],
             dual_bound(A, yn, r_full, beta_eff, Sx, free_bias=F.free)[0])
    sol.lower_bound = lb * scale
    sol.gap = sol.objective - sol.lower_bound
    sol.seconds = time.perf_counter() - t0
    return sol


# ---------------------------------------------------------------------------------------------- certify
@dataclass(repr=True)
class Certificate(Result):
    """How far a given network is from the global optimum of its training problem.

    ``objective``: the network's objective; ``optimum``: the objective of the globally optimal network
    (rebuilt from the convex program); ``lower_bound``: a certified lower bound on every network's objective
    (dual value); ``gap = objective - lower_bound >= 0``: the network is globally optimal up to ``gap``;
    ``globally_optimal``: ``gap <= tol * max(1, objective)``. ``complete``: every activation pattern was used
    (else the bound is the loose one of :func:`dual_bound`)."""

    objective: float
    optimum: float
    lower_bound: float
    gap: float
    relative_gap: float
    globally_optimal: bool
    complete: bool
    beta: float
    bn: bool
    loss: str
    tol: float
    solution: ConvexSolution = field(repr=False)
    seconds: float = 0.0

    _summary_fields = ("objective", "optimum", "lower_bound", "gap", "relative_gap", "globally_optimal",
                       "complete", "beta", "bn", "loss", "tol", "seconds")

    def to_dict(self, summary: bool = False) -> dict:
        out = super().to_dict(summary=summary)
        if "solution" in out:
            out["solution"] = self.solution.to_dict(summary=True)
        return out

    def plot(self, ax=None):
        """The network's objective against the optimum and the certified bound."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        names = ["lower bound", "optimum", "this network"]
        vals = [self.lower_bound, self.optimum, self.objective]
        ax.barh(names, vals, color=["0.6", "C2", "C0" if self.globally_optimal else "C3"])
        ax.set_xlabel("objective")
        ax.set_title(f"gap {self.gap:.3g} ({'globally optimal' if self.globally_optimal else 'not optimal'})",
                     fontsize=9)
        return ax


def certify(model, X, y, beta: float, *, bias=True, bn: bool = False, loss: str = "sum",
            tol: float = 1e-5, solution: ConvexSolution | None = None, **solve_kwargs) -> Certificate:
    """Certify a trained two-layer ReLU network: its objective, the global optimum, a certified lower bound
    (the larger of the dual values at the optimal network's residual and at this network's), and the gap.

    ``model``: as in :func:`objective`. ``solution``: a :class:`ConvexSolution` of the same problem to reuse;
    otherwise :func:`solve` runs with ``solve_kwargs``."""
    t0 = time.perf_counter()
    Xn, yn, beta = _check_inputs(X, y, beta, loss, multi=True)
    mode = _bias_mode(bias)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise InvalidInputError(f"tol must be a number >= 0, got {tol!r}")
    value = objective(model, Xn, yn, beta, bias=bias, bn=bn, loss=loss)
    k = 1 if yn.ndim == 1 else yn.shape[1]
    if solution is None:
        solution = solve(Xn, yn, beta, bias=bias, bn=bn, loss=loss, **solve_kwargs)
    elif (solution.beta, solution.bn, solution.loss, solution.n, solution.d, solution.outputs,
          solution.free_bias, solution.bias) != (beta, bn, loss, *Xn.shape, k, mode == "free",
                                                 mode != "none" and not bn):
        raise InvalidInputError("solution was computed for another problem (beta, bn, loss, bias, outputs or data "
                                "shape differ)")
    lb = solution.lower_bound
    if solution.complete or solution.bound_complete:
        # this network's own residual is a second dual point; its bound is as valid
        n = len(yn)
        scale = 1.0 / n if loss == "mean" else 1.0
        F = _features(Xn, mode, bn)
        H, a, _, c = _read_network(model, Xn, mode, bn)
        lam = yn - (torch.relu(H) @ a + (c[0] if k == 1 else c)).numpy()
        S = arrangement_patterns(F.A, max_patterns=max(solution.pattern_bound, 2))
        if k == 1:
            lb = max(lb, dual_bound(F.A, yn, lam, beta / scale, S, free_bias=F.free)[0] * scale)
        else:
            from relulab.convex.vector import dual_bound_vector

            lb = max(lb, dual_bound_vector(F.A, yn, lam, beta / scale, S)[0] * scale)
    gap = value - lb
    return Certificate(objective=value, optimum=solution.objective, lower_bound=lb, gap=gap,
                       relative_gap=gap / max(abs(value), 1e-300), globally_optimal=bool(gap <= tol * max(1.0, value)),
                       complete=solution.complete, beta=beta, bn=bn, loss=loss, tol=float(tol), solution=solution,
                       seconds=time.perf_counter() - t0)
