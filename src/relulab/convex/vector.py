r"""Vector-output two-layer ReLU networks with weight decay: a convex relaxation over the activation
patterns, the network rebuilt from it, and a certified lower bound from an exact dual constraint.

**Convention.** Data ``X`` (n, d), targets ``Y`` (n, k), ``k >= 2``; ``f(X) = sum_j (A u_j)_+ a_j^T`` with
``a_j in R^k`` and ``A = [X, 1]`` (``bias=True``) or ``X``; the objective

    p* = min  1/2 |sum_j (A u_j)_+ a_j^T - Y|_F^2 + beta/2 sum_j (|u_j|^2 + |a_j|^2)

(``loss="mean"``: ``1/(2n)`` in front of the error). Sahiner, Ergen, Pauly and Pilanci ("Vector-output
ReLU neural network problems are copositive programs", ICLR 2021) show that ``p*`` is a convex copositive
program: exact, but NP-hard in general. What is solved here is a relaxation of it, derived as follows.

**Relaxation.** Group the neurons of any network by the cell ``K_i = {u : B_i u >= 0}``,
``B_i = (2 D_i - I) A``, of their activation pattern ``D_i`` (:mod:`relulab.convex.patterns`) and set
``P_i = sum u u^T``, ``V_i = sum u a^T``, ``Q_i = sum a a^T`` over the neurons of cell ``i``. Then

    M_i = [[P_i, V_i], [V_i^T, Q_i]] = sum [u; a][u; a]^T  is PSD,
    B_i P_i B_i^T = sum (B_i u)(B_i u)^T  is elementwise >= 0,
    f(X) = sum_i D_i A V_i,   penalty = sum_i (tr P_i + tr Q_i),

so the semidefinite program

    r* = min_{M_i}  1/2 |sum_i D_i A V_i - Y|^2 + beta/2 sum_i (tr P_i + tr Q_i)
         s.t.  M_i PSD,  B_i P_i B_i^T >= 0 (off the diagonal; the diagonal is >= 0 by PSD)

satisfies ``r* <= p*`` (the doubly nonnegative relaxation of the completely positive condition on
``B_i P_i B_i^T``). A block ``M_i`` of rank one is ``[u; a][u; a]^T`` with ``B_i u u^T B_i^T >= 0``, so
``B_i u`` has one sign and ``+-u`` lies in ``K_i``: a neuron, exactly. Higher-rank blocks are split along
their eigenvectors, which need not lie in the cone; the rebuilt network's objective is then evaluated
as it is (an upper bound on ``p*``), and the certificate below says how far it can be from ``p*``.

**Certificate.** For any ``Lambda`` (n, k), weak duality gives, for every network of any width,

    1/2 |f - Y|^2 + beta/2 sum_j (|u_j|^2 + |a_j|^2)  >=  <Lambda, Y> - 1/2 |Lambda|^2
    whenever  c(Lambda) = max_{|z| <= 1} |Lambda^T (A z)_+| <= beta

(expand ``1/2 |f - Y|^2 >= <Lambda, Y - f> - 1/2 |Lambda|^2`` and bound ``a_j^T Lambda^T (A u_j)_+`` by
``c |a_j| |u_j| <= c/2 (|a_j|^2 + |u_j|^2)``); ``Lambda`` is scaled by the best ``t`` in ``[0, beta / c]``.
``c(Lambda)^2`` is the largest of ``max_{z in K_i, |z| = 1} z^T G_i z``, ``G_i = (Lambda^T D_i A)^T (Lambda^T
D_i A)``: a cone-constrained eigenvalue problem. Its maximizer lies in the relative interior of a face
``K_i cap null(A_T)`` for the set ``T`` of samples whose hyperplanes it lies on, and is there a stationary
point of the Rayleigh quotient on ``null(A_T)``: an eigenvector of ``G_i`` restricted to ``null(A_T)``.
:func:`cone_spectral_norms` enumerates every ``T`` of at most ``rank(A) - 1`` samples (enough to span any
face), every eigenpair, and keeps the eigenvalues whose eigenvector (up to sign) lies in ``K_i``, with an
inclusive tolerance; an eigenvalue of multiplicity above one is kept unchecked. The maximum kept is
therefore >= ``c^2`` (valid) and equal to it up to rounding (exact).
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import torch

from relulab.convex.patterns import arrangement_patterns, pattern_bound, sample_patterns
from relulab.convex.program import (
    ConvexSolution,
    _bias_mode,
    _check_inputs,
    _cvxpy,
    _features,
    _read_network,
    _run,
    objective,
)
from relulab.core.errors import InvalidInputError, ResourceLimitError

__all__ = ["solve_vector", "dual_bound_vector", "cone_spectral_norms"]

_MEMBER_TOL = 1e-7
_FACE_BUDGET = 30_000_000
_SDP_BUDGET = 300_000   # cells x cone constraints of the relaxation (cvxpy builds them one cell at a time)


def _row_basis(A: np.ndarray):
    _, s, Vt = np.linalg.svd(A, full_matrices=False)
    r = int((s > 1e-10 * max(A.shape) * (s[0] if s.size else 0.0)).sum())
    return A @ Vt[:r].T  # (n, r): the rows in an orthonormal basis of the row space


def cone_spectral_norms(A, S, Lam, budget: int = _FACE_BUDGET) -> np.ndarray:
    """``max_{z in K_i, |z| <= 1} |Lambda^T D_i A z|`` for every cell ``i`` of the sign vectors ``S`` (P, n)
    (``K_i = {z : (2 D_i - I) A z >= 0}``), by face enumeration (module docstring): an upper bound equal to the
    maximum up to rounding. ``Lam`` (n, k). Raises :class:`ResourceLimitError` when cells x faces exceed
    ``budget``."""
    A = np.asarray(A, dtype=np.float64)
    S = np.asarray(S)
    Lam = np.asarray(Lam, dtype=np.float64).reshape(A.shape[0], -1)
    B = _row_basis(A)
    n, r = B.shape
    P = S.shape[0]
    if r == 0 or P == 0:
        return np.zeros(P)
    faces = sum(math.comb(n, j) for j in range(r))
    if P * faces > budget:
        raise ResourceLimitError(f"the exact vector-output certificate needs {P:,} cells x {faces:,} faces = "
                                 f"{P * faces:,} eigenproblems, more than the budget {budget:,}")
    Sf = S.astype(np.float64)
    Mi = np.einsum("nk,pn,nr->pkr", Lam, (Sf > 0).astype(np.float64), B)   # Lambda^T D_i B  (P, k, r)
    G = np.einsum("pkr,pks->prs", Mi, Mi)                                    # (P, r, r)
    Bn = np.linalg.norm(B, axis=1)
    best = np.zeros(P)
    chunk = max(1, 4_000_000 // max(1, n * r * r))
    for j in range(r):
        subsets = (np.zeros((1, 0), np.int64) if j == 0
                   else np.array(list(itertools.combinations(range(n), j)), dtype=np.int64))
        for lo in range(0, len(subsets), chunk):
            T = subsets[lo: lo + chunk]
            C = len(T)
            if j == 0:
                N = np.broadcast_to(np.eye(r), (C, r, r))
            else:
                # null space of the rows T: the right singular vectors past their rank
                _, sv, Vt = np.linalg.svd(B[T], full_matrices=True)
                rank = (sv > 1e-10 * np.maximum(sv[:, :1], 1e-300)).sum(axis=1)
                keep = rank == j   # a dependent T spans a face also spanned by a smaller subset
                N, C = Vt[keep][:, j:, :].transpose(0, 2, 1), int(keep.sum())  # (C, r, r - j)
                if C == 0:
                    continue
            m = N.shape[2]
            GT = np.einsum("cra,prs,csb->pcab", N, G, N)                          # (P, C, m, m)
            w, E = np.linalg.eigh(GT)                                             # (P, C, m), (P, C, m, m)
            Z = np.einsum("cra,pcab->pcrb", N, E)                                 # eigenvectors in R^r
            BZ = np.einsum("nr,pcrb->pcnb", B, Z) * Sf[:, None, :, None]          # signed margins
            tol = _MEMBER_TOL * Bn[None, None, :, None] + 1e-300
            inside = (BZ >= -tol).all(axis=2) | (BZ <= tol).all(axis=2)           # z or -z in the cone
            if m > 1:
                gaps = np.diff(w, axis=2)
                scale = np.abs(w).max(axis=2, keepdims=True) + 1e-300
                close = gaps <= 1e-9 * scale
                repeated = np.zeros_like(inside)
                repeated[..., :-1] |= close
                repeated[..., 1:] |= close
                inside |= repeated
            vals = np.where(inside, w, 0.0).max(axis=(1, 2))
            best = np.maximum(best, vals)
    return np.sqrt(np.maximum(best, 0.0))


def dual_bound_vector(A, Y, Lam, beta: float, patterns=None) -> tuple[float, float]:
    """A certified lower bound on the objective of every vector-output network (any width) on data ``A``,
    targets ``Y`` (n, k) and weight decay ``beta``, from the dual point ``Lam`` (n, k): ``(lower_bound, c)``,
    ``c >= max_{|z| <= 1} |Lam^T (A z)_+|`` (module docstring). ``patterns``: the complete sign vectors (exact
    ``c``); None: the loose ``c = (sum_l max(|lam_l+|, |lam_l-|)^2)^(1/2) ||A||_2``."""
    A = np.asarray(A, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64).reshape(A.shape[0], -1)
    Lam = np.asarray(Lam, dtype=np.float64).reshape(Y.shape)
    if patterns is None:
        per = np.maximum(np.linalg.norm(np.maximum(Lam, 0), axis=0), np.linalg.norm(np.minimum(Lam, 0), axis=0))
        c = float(np.linalg.norm(per) * np.linalg.norm(A, 2))
    else:
        c = float(cone_spectral_norms(A, patterns, Lam).max(initial=0.0))
        # rounding in the eigen-solves and products: a relative margin far above float64 error
        c = c * (1 + 1e-9) + 1e-15 * float(np.linalg.norm(Lam) * np.linalg.norm(A, 2))
    ly, ll = float((Lam * Y).sum()), float((Lam * Lam).sum())
    t_max = 1.0 if c <= 0 else beta / c
    t = 0.0 if ll == 0 else min(max(ly / ll, 0.0), t_max)
    lb = t * ly - 0.5 * t * t * ll
    return lb - 1e-12 * (abs(lb) + 1e-300), c


def _sdp(A, Y, beta, S, solver, verbose):
    """The relaxation of the module docstring over the cells S; (value, list of M_i (q+k, q+k), status, fit)."""
    cp, name = _cvxpy(solver)
    n, q = A.shape
    k = Y.shape[1]
    pred = 0
    cost = 0
    cons = []
    Ms = []
    for s in S:
        Bi = A * s[:, None].astype(np.float64)
        Di = (s > 0).astype(np.float64)
        M = cp.Variable((q + k, q + k), PSD=True)
        Ms.append(M)
        P, V, Q = M[:q, :q], M[:q, q:], M[q:, q:]
        pred = pred + cp.multiply(Di[:, None], A @ V)
        cost = cost + cp.trace(P) + cp.trace(Q)
        if n > 1:
            cons.append(cp.upper_tri(Bi @ P @ Bi.T) >= 0)
    obj = 0.5 * cp.sum_squares(pred - Y) + 0.5 * beta * cost
    prob = cp.Problem(cp.Minimize(obj), cons)
    _run(cp, prob, Ms[0], solver, name, verbose)
    return float(prob.value), [np.asarray(M.value) for M in Ms], str(prob.status), np.asarray(pred.value)


def _neurons(Ms, S, A, q, rel):
    """Neurons ``[u; a] = sqrt(lambda) e`` from the eigenpairs of each block above ``rel`` times the largest
    eigenvalue, each signed so that ``u`` is as far inside its cell as it can be."""
    vals, vecs = np.linalg.eigh(np.stack(Ms))              # (P, q+k), (P, q+k, q+k)
    top = max(float(vals.max(initial=0.0)), 1e-300)
    p_idx, e_idx = np.nonzero(vals > rel * top)
    if len(p_idx) == 0:
        return np.zeros((0, q)), np.zeros((0, Ms[0].shape[0] - q))
    Z = vecs[p_idx, :, e_idx] * np.sqrt(vals[p_idx, e_idx])[:, None]
    U = Z[:, :q]
    signed = (U @ A.T) * S[p_idx]                          # (m, n) margins in the block's own cell
    sign = np.where(np.minimum(-signed, 0).sum(1) > np.minimum(signed, 0).sum(1), -1.0, 1.0)
    Z = Z * sign[:, None]
    return Z[:, :q], Z[:, q:]


def _polish(A, Y, beta, U, Aout, iters, restarts: int = 4, seed: int = 0):
    """L-BFGS on ``1/2 |relu(A U^T) Aout - Y|^2 + beta/2 (|U|^2 + |Aout|^2)`` from (U, Aout) and from
    ``restarts`` copies moved by 1e-3 of their scale (rebuilt neurons sit on the kinks of their cells, where
    the line search can stall at once); the best of the start and the ends."""
    g = np.random.default_rng(seed)
    best = (_value(A, Y, beta, U, Aout), U, Aout)
    best = min(best, _run_lbfgs(A, Y, beta, U, Aout, iters), key=lambda t: t[0])
    scale = 1e-3 * max(float(np.abs(U).max(initial=0.0)), float(np.abs(Aout).max(initial=0.0)), 1e-12)
    for _ in range(restarts if len(U) else 0):
        cand = _run_lbfgs(A, Y, beta, U + scale * g.normal(size=U.shape), Aout + scale * g.normal(size=Aout.shape),
                          iters)
        best = min(best, cand, key=lambda t: t[0])
    return best[1], best[2]


def _value(A, Y, beta, U, Aout):
    """The objective at (U, Aout)."""
    R = np.maximum(A @ U.T, 0) @ Aout - Y
    return 0.5 * float((R * R).sum()) + 0.5 * beta * float((U * U).sum() + (Aout * Aout).sum())


def _run_lbfgs(A, Y, beta, U, Aout, iters):
    """One L-BFGS run; (objective, U, Aout) at its end."""
    At, Yt = torch.as_tensor(A), torch.as_tensor(Y)
    u = torch.tensor(U, requires_grad=True)
    a = torch.tensor(Aout, requires_grad=True)

    def value():
        r = torch.relu(At @ u.T) @ a - Yt
        return 0.5 * r.square().sum() + 0.5 * beta * (u.square().sum() + a.square().sum())

    opt = torch.optim.LBFGS([u, a], max_iter=int(iters), tolerance_grad=1e-14, tolerance_change=1e-16,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        v = value()
        v.backward()
        return v

    if len(U):
        opt.step(closure)
    Un, An = u.detach().numpy().copy(), a.detach().numpy().copy()
    return _value(A, Y, beta, Un, An), Un, An


def solve_vector(X, Y, beta: float, *, bias=True, bn: bool = False, loss: str = "sum", patterns: str = "auto",
                 max_patterns: int = 600, samples: int | None = None, solver: str = "clarabel", seed: int = 0,
                 verbose: bool = False, polish: int = 300) -> ConvexSolution:
    """The relaxation, rebuilt network and certificate of the module docstring for targets ``Y`` (n, k),
    ``k >= 2``; called by :func:`relulab.convex.solve` for such targets (same arguments; ``bias`` True or
    False, no ``bn``). The result has ``relaxation=True``: ``optimum`` is the relaxation's value (a lower bound
    on ``p*`` up to the solver's accuracy), ``objective`` the rebuilt network's, ``lower_bound`` certified.
    ``polish``: at most this many L-BFGS iterations on the non-convex objective from the rebuilt network
    (kept only if they lower it; 0: none), which matters when a block of rank > 1 did not split into
    neurons of its own cell. With sampled patterns (``complete=False``) the program is a relaxation over
    part of the cells only: ``optimum`` is then no bound at all, ``objective`` is still an upper bound and
    ``lower_bound`` the loose valid one."""
    t0 = time.perf_counter()
    Xn, Yn, beta = _check_inputs(X, Y, beta, loss, multi=True)
    if Yn.ndim == 1:
        Yn = Yn[:, None]
    mode = _bias_mode(bias)
    if bn:
        raise InvalidInputError("bn=True is for one output; vector targets are supported without batch "
                                "normalization")
    if mode == "free":
        raise InvalidInputError("bias='free' is for one output; with vector targets use bias=True or False")
    if patterns not in ("auto", "exact", "sampled"):
        raise InvalidInputError(f"patterns must be one of auto, exact, sampled, got {patterns!r}")
    if isinstance(max_patterns, bool) or not isinstance(max_patterns, (int, np.integer)) or max_patterns < 2:
        raise InvalidInputError(f"max_patterns must be an integer >= 2, got {max_patterns!r}")
    _cvxpy(solver)
    n, d = Xn.shape
    k = Yn.shape[1]
    F = _features(Xn, mode, False)
    A = F.A
    q = A.shape[1]
    rank = int(np.linalg.matrix_rank(A)) if A.size else 0
    bound = pattern_bound(int((np.linalg.norm(A, axis=1) > 0).sum()), rank)
    exact = patterns == "exact" or (patterns == "auto" and bound <= max_patterns)
    if exact:
        S = arrangement_patterns(A, max_patterns=max_patterns)
    else:
        S = sample_patterns(A, int(samples) if samples is not None else 10 * int(max_patterns), seed=seed)
        if len(S) > max_patterns:
            S = S[np.random.default_rng(seed).choice(len(S), int(max_patterns), replace=False)]
    # cells on which no sample is active contribute nothing
    S = S[(S > 0).any(axis=1)]
    if len(S) * (n * (n - 1) // 2) > _SDP_BUDGET:
        raise ResourceLimitError(f"the relaxation has {len(S):,} cells x {n * (n - 1) // 2:,} cone constraints, "
                                 f"more than the {_SDP_BUDGET:,} it builds; use fewer samples or a smaller "
                                 "max_patterns")
    scale = 1.0 / n if loss == "mean" else 1.0
    beta_eff = beta / scale
    value, Ms, status, fit = _sdp(A, Yn, beta_eff, S, solver, verbose)
    best = None
    for rel in (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8):
        U, Aout = _neurons(Ms, S, A, q, rel)
        val = _value(A, Yn, beta_eff, U, Aout)
        if best is None or val < best[0] - 1e-13 * abs(best[0]):
            best = (val, U, Aout)
    _, U, Aout = best
    if polish:
        U, Aout = _polish(A, Yn, beta_eff, U, Aout, polish)
    m = len(U)
    sol = ConvexSolution(beta=beta, optimum=value * scale, objective=float("nan"), lower_bound=float("nan"),
                         gap=float("nan"), complete=exact, patterns_used=len(S), pattern_bound=bound, neurons=m,
                         bias=F.bias, bn=False, loss=loss, solver=solver, status=status,
                         hidden_weights=U[:, :d], hidden_bias=U[:, d] if F.bias else None, output_weights=Aout,
                         n=n, d=d, outputs=k, relaxation=True)
    net = sol.network()
    sol.objective = objective(net, Xn, Yn, beta, bias=F.bias, loss=loss)
    H, a_t, _, _ = _read_network(net, Xn, F.bias, False)
    lam = Yn - (torch.relu(H) @ a_t).numpy().reshape(n, -1)
    Sx = arrangement_patterns(A, max_patterns=max(bound, 2)) if exact else None
    # two dual points, both bounds valid: the rebuilt network's residual and the relaxation's (the
    # relaxation's dual optimum, feasible for the exact dual up to the solver's accuracy, so its bound is
    # close to the relaxation's value even when the rebuilt network is not optimal)
    sol.lower_bound = max(dual_bound_vector(A, Yn, lam, beta_eff, Sx)[0],
                          dual_bound_vector(A, Yn, Yn - fit, beta_eff, Sx)[0]) * scale
    sol.bound_complete = exact
    sol.gap = sol.objective - sol.lower_bound
    sol.seconds = time.perf_counter() - t0
    return sol
