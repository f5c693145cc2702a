r"""Directional stationarity at kinks, escape neurons and local minimality of shallow ReLU-like networks.

For ``f(x) = sum_j a_j sigma(w_j . x + b_j) + c`` with ``sigma(z) = max(z, alpha z)`` and the squared loss
``L = 1/(2n) sum_i |f(x_i) - y_i|^2``, the loss is not differentiable where a pre-activation
``z_ij = w_j . x_i + b_j`` vanishes (a *kink pair* ``(i, j)``). Following Wu, Simsek and Ged, "Loss Landscape
of Shallow ReLU-like Neural Networks: Stationary Points, Saddle Escape, and Network Embedding"
(arXiv 2402.05626), stationarity is *directional*: ``theta`` is stationary iff the one-sided directional
derivative ``L'(theta; v) = lim_{t -> 0+} (L(theta + t v) - L(theta)) / t`` is ``>= 0`` for every ``v``.

With residuals ``r_i = f(x_i) - y_i``, ``x~_i = (x_i, 1)`` (the 1 only with hidden biases) and the change
``u_ij = x~_i . (dw_j, db_j)`` of a pre-activation,

    L'(theta; v) = 1/n sum_i r_i . [ sum_j ( da_j sigma(z_ij) + a_j sigma'(z_ij; u_ij) ) + dc ],
    sigma'(z; u) = sigma'(z) u  (z != 0),    sigma'(0; u) = sigma(u) = alpha u + (1 - alpha) max(u, 0).

So ``L'(theta; v) = g . v + sum_{kink (i,j)} e_ij max(u_ij, 0)`` with ``e_ij = (1 - alpha) r_i . a_j / n``,
where ``g`` is the gradient that takes slope ``alpha`` on kinks (which is what autograd returns for
``where(z > 0, z, alpha z)``). ``L'`` is positively homogeneous and separable over the blocks
``(w_j, b_j)``, ``a``, ``c``; terms with ``e_ij > 0`` are convex, those with ``e_ij < 0`` concave. The
minimum of ``L'`` over the box ``|v|_inf <= 1`` is therefore exact: one linear program for all neurons whose
kink terms are convex, and for a neuron with ``K`` concave terms, ``-|e| max(u, 0) = min(-|e| u, 0)`` turns
the minimum into the minimum of ``2^K`` linear programs (enumerated when ``K <= max_enumerate``) or one
mixed-integer program (scipy ``milp``, HiGHS) beyond that.

Escape neurons (second order). At a stationary point a neuron with zero output weight ``a_k = 0`` has
``h_k(u) = 1/n sum_i r_i sigma'(z_ik; x~_i . u)``; moving ``(w_k, b_k)`` by ``t u`` and ``a_k`` by ``t da``
changes the loss by ``t^2 (da . h_k(u) + |da|^2 sum_i sigma(z_ik)^2 / (2n)) + O(t^3)`` exactly (the first
order part ``sum_i r_i sigma(z_ik)`` vanishes by stationarity). So when ``h_k`` is not identically zero,
``da = -s h_k(u)`` gives a second-order descent direction: ``k`` is an *escape neuron* and ``theta`` is a
saddle. ``h_k`` is piecewise linear with ridges on the hyperplanes ``x~_i . u = 0``; it vanishes identically
iff its linear part and the coefficient of every distinct ridge vanish (ridge functions ``max(l . u, 0)`` of
distinct hyperplanes are linearly independent modulo linear maps), which is decided exactly.

Local minima. A stationary point without escape neurons is a local minimum (the paper's theorem). Two cases
are elementary and are what this module asserts: (i) output weights fixed (``trainable="first"``): on each
cone of the kink arrangement ``f`` is linear in ``(W, b)``, so ``L`` is a convex quadratic there and
directional stationarity gives ``L(theta + v) >= L(theta) + L'(theta; v) >= L(theta)``; (ii) scalar output:
by positive homogeneity ``a_j sigma(w~_j . x~) = sign(a_j) sigma(|a_j| w~_j . x~)`` for ``a_j != 0`` and the
same piecewise-convexity holds in ``u_j = |a_j| w~_j``; neurons with ``a_j = 0`` and ``h_j = 0`` are the
remaining case covered by the theorem. With vector outputs and trainable output weights a stationary point
without escape neurons can still be a saddle through cross terms ``da^T M dw`` of neurons with ``a_j != 0``;
there the verdict is "undetermined" unless the loss is zero. Every verdict of "local minimum" is also probed
with random perturbations (``probe_min_change``).

Tolerances. A pair is a kink when ``|z_ij| <= kink_rtol * (|x_i| . |w_j| + |b_j|)`` (the round-off bound of
the dot product; the point is then treated as lying exactly on the kink). ``L'`` is compared with
``stat_rtol * S`` where ``S`` bounds the sum of the absolute values of all terms of ``L'`` on the box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from relulab.core.errors import InvalidInputError
from relulab.landscape.shallow import ShallowNet
from relulab.results import Result

# (no public name equals a submodule's name: importing relulab.landscape.<submodule> rebinds that attribute)
__all__ = ["one_sided_derivative", "directional_stationarity", "DirectionalStationarityResult", "escape_direction",
           "batched_loss"]


# ----------------------------------------------------------------------------- shared local quantities
def _check_net(net):
    if not isinstance(net, ShallowNet):
        raise InvalidInputError(f"net must be a relulab.landscape.ShallowNet, got {type(net).__name__}")


def _data(net: ShallowNet, X, Y):
    X = net._inputs(X)
    Y = torch.as_tensor(Y, dtype=net.dtype, device=net.device)
    if Y.dim() == 1 and net.o == 1:
        Y = Y[:, None]
    if Y.shape != (X.shape[0], net.o):
        raise InvalidInputError(f"Y must have shape ({X.shape[0]}, {net.o}), got {tuple(Y.shape)}")
    if X.shape[0] < 1:
        raise InvalidInputError("X must hold at least one data point")
    if not bool(torch.isfinite(Y).all()):
        raise InvalidInputError("Y contains non-finite values (nan or inf)")
    return X, Y


def _augmented(net: ShallowNet, X: torch.Tensor) -> torch.Tensor:
    """``x~ = (x, 1)`` with hidden biases, ``x`` without: (n, D)."""
    if net.b is None:
        return X
    return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], 1)


def _kinks(net: ShallowNet, X: torch.Tensor, Z: torch.Tensor, kink_rtol: float) -> torch.Tensor:
    scale = X.abs() @ net.W.abs().T
    if net.b is not None:
        scale = scale + net.b.abs()
    return Z.abs() <= kink_rtol * scale


def _wtilde_index(net: ShallowNet) -> torch.Tensor:
    """(m, D) positions of ``(w_j, b_j)`` in the parameter vector."""
    sl = net.parameter_slices()
    m, d = net.m, net.d
    idx = torch.arange(sl["W"].start, sl["W"].stop, device=net.device).reshape(m, d)
    if net.b is not None:
        idx = torch.cat([idx, torch.arange(sl["b"].start, sl["b"].stop, device=net.device)[:, None]], 1)
    return idx


def _split_direction(net: ShallowNet, v: torch.Tensor):
    """(k, P) directions -> dW (k, m, d), db (k, m) or None, da (k, m, o) or None, dc (k, o) or None."""
    k = v.shape[0]
    sl = net.parameter_slices()
    dW = v[:, sl["W"]].reshape(k, net.m, net.d)
    db = v[:, sl["b"]] if "b" in sl else None
    da = v[:, sl["a"]].reshape(k, net.m, net.o) if "a" in sl else None
    dc = v[:, sl["c"]] if "c" in sl else None
    return dW, db, da, dc


def _directions(net: ShallowNet, direction, name="direction") -> tuple[torch.Tensor, bool]:
    v = torch.as_tensor(direction, dtype=net.dtype, device=net.device)
    single = v.dim() == 1
    v = v[None] if single else v
    if v.dim() != 2 or v.shape[1] != net.n_parameters:
        raise InvalidInputError(f"{name} must have shape ({net.n_parameters},) or (k, {net.n_parameters}) "
                                f"(the layout of parameters_vector()), got {tuple(torch.as_tensor(direction).shape)}")
    if not bool(torch.isfinite(v).all()):
        raise InvalidInputError(f"{name} must be finite")
    return v, single


def batched_loss(net: ShallowNet, X, Y, thetas) -> torch.Tensor:
    """``L(theta)`` for a batch of parameter vectors ``thetas`` (k, P) in one pass: (k,)."""
    _check_net(net)
    X, Y = _data(net, X, Y)
    T, single = _directions(net, thetas, "thetas")
    W, b, a, c = _split_direction(net, T)
    a = net.a.expand(T.shape[0], -1, -1) if a is None else a
    if c is None and net.c is not None and net.trainable == "first":
        c = net.c.expand(T.shape[0], -1)
    Z = torch.einsum("nd,kmd->knm", X, W)
    if b is not None:
        Z = Z + b[:, None, :]
    F = torch.einsum("knm,kmo->kno", net.sigma(Z), a)
    if c is not None:
        F = F + c[:, None, :]
    out = 0.5 * ((F - Y) ** 2).sum((1, 2)) / X.shape[0]
    return out[0] if single else out


def one_sided_derivative(net: ShallowNet, X, Y, direction, kink_rtol: float = 1e-12) -> torch.Tensor:
    r"""Exact one-sided directional derivative ``L'(theta; v)`` of the squared loss (module docstring).

    ``direction``: (P,) or (k, P) in the layout of ``net.parameters_vector()``; returns a scalar or (k,).
    On a kink pair the activation's slope is the one of the side the pre-activation moves to:
    ``sigma'(0; u) = u`` for ``u > 0`` and ``alpha u`` for ``u < 0``. Pairs with
    ``|z_ij| <= kink_rtol * (|x_i| . |w_j| + |b_j|)`` count as kinks."""
    _check_net(net)
    X, Y = _data(net, X, Y)
    v, single = _directions(net, direction)
    Z = net.preactivations(X)
    K = _kinks(net, X, Z, kink_rtol)
    R = net(X) - Y                                                   # (n, o)
    dW, db, da, dc = _split_direction(net, v)
    U = torch.einsum("nd,kmd->knm", X, dW)
    if db is not None:
        U = U + db[:, None, :]
    slope = torch.where(Z > 0, torch.ones_like(Z), torch.full_like(Z, net.alpha))
    S1 = torch.where(K, net.sigma(U), slope * U)                      # sigma'(z; u), (k, n, m)
    dF = torch.einsum("knm,mo->kno", S1, net.a)
    if da is not None:
        dF = dF + torch.einsum("nm,kmo->kno", net.sigma(torch.where(K, torch.zeros_like(Z), Z)), da)
    if dc is not None:
        dF = dF + dc[:, None, :]
    out = torch.einsum("no,kno->k", R, dF) / X.shape[0]
    return out[0] if single else out


# ----------------------------------------------------------------------------- the piecewise-linear model of L'
@dataclass
class _Model:
    g: torch.Tensor          # (P,) linear part (slope alpha on kinks)
    E: torch.Tensor          # (n, m) kink coefficients e_ij ((1 - alpha) r_i . a_j / n; 0 off kinks)
    Xt: torch.Tensor         # (n, D)
    widx: torch.Tensor       # (m, D)
    K: torch.Tensor          # (n, m) kink mask
    R: torch.Tensor          # (n, o) residuals
    Z: torch.Tensor          # (n, m) pre-activations (0 on kinks)
    scale: float             # bound of the sum of |terms| of L' on the box
    loss: float


def _model(net: ShallowNet, X, Y, kink_rtol: float) -> _Model:
    n = X.shape[0]
    Z = net.preactivations(X)
    K = _kinks(net, X, Z, kink_rtol)
    Z = torch.where(K, torch.zeros_like(Z), Z)
    R = net(X) - Y
    Xt = _augmented(net, X)
    slope = torch.where(Z > 0, torch.ones_like(Z), torch.full_like(Z, net.alpha))  # alpha on kinks too
    RA = R @ net.a.T                                                   # (n, m) r_i . a_j
    GWt = (RA * slope).T @ Xt / n                                      # (m, D)
    g = torch.zeros(net.n_parameters, dtype=net.dtype, device=net.device)
    widx = _wtilde_index(net)
    g[widx.reshape(-1)] = GWt.reshape(-1)
    sl = net.parameter_slices()
    absR = R.abs()
    xnorm1 = Xt.abs().sum(1)
    scale = float((absR @ net.a.abs().T * xnorm1[:, None]).sum() / n)
    if "a" in sl:
        Sg = net.sigma(Z)
        g[sl["a"]] = (Sg.T @ R / n).reshape(-1)
        scale += float((Sg.abs().T @ absR).sum() / n)
    if "c" in sl:
        g[sl["c"]] = R.sum(0) / n
        scale += float(absR.sum() / n)
    E = torch.where(K, (1.0 - net.alpha) * RA / n, torch.zeros_like(RA))
    return _Model(g, E, Xt, widx, K, R, Z, scale, float(0.5 * (R * R).sum() / n))


def _model_value(mdl: _Model, v: torch.Tensor) -> torch.Tensor:
    """``g . v + sum e_ij max(u_ij, 0)`` for (k, P) directions (an independent path to test against)."""
    Wt = v[:, mdl.widx]                                                # (k, m, D)
    U = torch.einsum("nD,kmD->knm", mdl.Xt, Wt)
    return v @ mdl.g + (mdl.E * U.clamp_min(0)).sum((1, 2))


# ----------------------------------------------------------------------------- exact minimum over the box
def _linprog(c, A_ub, b_ub, bounds):
    from scipy.optimize import linprog

    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs",
                  options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
    if res.status != 0:
        return None
    return res


def _convex_block_min(G: np.ndarray, q: np.ndarray, Xr: np.ndarray, e: np.ndarray):
    """min over ``u in [-1,1]^{q x D}`` of ``sum_q G_q . u_q + sum e max(x . u_q, 0)`` with every ``e >= 0``.

    Term ``r`` acts on block ``q[r]`` with ``x = Xr[r]``, coefficient ``e[r]``. Solved as one LP with one
    epigraph variable per term."""
    Q, D = G.shape
    nt = len(e)
    if nt == 0:
        U = -np.sign(G)
        return float(-np.abs(G).sum()), U
    from scipy.sparse import coo_matrix

    c = np.concatenate([G.reshape(-1), e])
    ar = np.arange(nt)
    data = np.concatenate([Xr.reshape(-1), -np.ones(nt)])
    ri = np.concatenate([np.repeat(ar, D), ar])
    ci = np.concatenate([(q[:, None] * D + np.arange(D)[None, :]).reshape(-1), Q * D + ar])
    A = coo_matrix((data, (ri, ci)), shape=(nt, Q * D + nt))
    bounds = [(-1.0, 1.0)] * (Q * D) + [(0.0, None)] * nt
    res = _linprog(c, A.tocsr(), np.zeros(nt), bounds)
    if res is None:
        return None, None
    return float(res.fun), res.x[:Q * D].reshape(Q, D)


def _concave_neuron_min(gj: np.ndarray, Xk: np.ndarray, ek: np.ndarray, method: str, max_enumerate: int,
                        time_limit: float):
    """min over ``u in [-1,1]^D`` of ``gj . u + sum_i ek_i max(Xk_i . u, 0)`` with some ``ek_i < 0``.

    Returns (value, u, n_programs, exact)."""
    pos, neg = ek > 0, ek < 0
    Xp, ep, Xn, en = Xk[pos], ek[pos], Xk[neg], ek[neg]
    K = int(neg.sum())
    # without convex terms every case is closed form (one tensor op over all 2^K cases): cheap up to 2^16
    if method == "enumerate" or (method == "auto" and (K <= max_enumerate or (len(ep) == 0 and K <= 16))):
        masks = ((np.arange(2 ** K)[:, None] >> np.arange(K)[None, :]) & 1).astype(float)  # (2^K, K)
        lin = gj[None, :] + (masks * en[None, :]) @ Xn                                      # (2^K, D)
        if len(ep) == 0:  # no convex term: each case is min over the box of a linear form
            vals = -np.abs(lin).sum(1)
            s = int(np.argmin(vals))
            return float(vals[s]), -np.sign(lin[s]), 0, True
        best, bu, nprog = math.inf, None, 0
        for s in range(lin.shape[0]):
            val, U = _convex_block_min(lin[s][None, :], np.zeros(len(ep), dtype=int), Xp, ep)
            nprog += 1
            if val is None:
                return None, None, nprog, False
            if val < best:
                best, bu = val, U[0]
        return best, bu, nprog, True
    # mixed-integer program: t_i = max(x_i . u, 0) for concave terms through a binary z_i and M_i = |x_i|_1
    from scipy.optimize import Bounds, LinearConstraint, milp

    D, P_, N_ = len(gj), len(ep), K
    nv = D + P_ + N_ + N_
    c = np.concatenate([gj, ep, en, np.zeros(N_)])
    rows, lo, hi = [], [], []
    for i in range(P_):  # x.u - t <= 0
        r = np.zeros(nv); r[:D] = Xp[i]; r[D + i] = -1.0
        rows.append(r); lo.append(-np.inf); hi.append(0.0)
    for i in range(N_):
        M = float(np.abs(Xn[i]).sum())
        r = np.zeros(nv); r[D + P_ + i] = 1.0; r[:D] = -Xn[i]; r[D + P_ + N_ + i] = M  # t - x.u + M z <= M
        rows.append(r); lo.append(-np.inf); hi.append(M)
        r = np.zeros(nv); r[D + P_ + i] = 1.0; r[D + P_ + N_ + i] = -M                 # t - M z <= 0
        rows.append(r); lo.append(-np.inf); hi.append(0.0)
    integrality = np.concatenate([np.zeros(D + P_ + N_), np.ones(N_)])
    lb = np.concatenate([-np.ones(D), np.zeros(P_ + N_ + N_)])
    ub = np.concatenate([np.ones(D), np.full(P_ + N_, np.inf), np.ones(N_)])
    res = milp(c, constraints=LinearConstraint(np.array(rows), lo, hi), integrality=integrality,
               bounds=Bounds(lb, ub), options={"time_limit": time_limit, "mip_rel_gap": 0.0})
    if res.status != 0 or res.x is None:
        return None, None, 1, False
    return float(res.fun), res.x[:D], 1, True


def _box_min(net: ShallowNet, mdl: _Model, method: str, max_enumerate: int, time_limit: float):
    """Exact ``min_{|v|_inf <= 1} L'(theta; v)``; returns (value, v, n_programs, complete, reason)."""
    g = mdl.g.detach().cpu().numpy()
    E = mdl.E.detach().cpu().numpy()
    Xt = mdl.Xt.detach().cpu().numpy()
    widx = mdl.widx.cpu().numpy()
    v = -np.sign(g)                               # blocks a, c and kink-free neurons: -sign(g)
    total = -float(np.abs(g).sum())
    has_kink = (E != 0).any(0)
    concave = (E < 0).any(0)
    convex_neurons = np.nonzero(has_kink & ~concave)[0]
    n_prog, complete, reason = 0, True, ""
    total += float(np.abs(g[widx[has_kink]]).sum())  # these blocks are recomputed below
    if len(convex_neurons):
        Gq = g[widx[convex_neurons]]
        ii, qq = np.nonzero(E[:, convex_neurons] > 0)
        val, U = _convex_block_min(Gq, qq, Xt[ii], E[ii, convex_neurons[qq]])
        n_prog += 1
        if val is None:
            return None, None, n_prog, False, "the linear program of the convex kink terms failed"
        total += val
        v[widx[convex_neurons]] = U
    for j in np.nonzero(concave)[0]:  # one exact program family per neuron with concave kink terms
        rows_i = np.nonzero(E[:, j] != 0)[0]
        val, u, nps, ok = _concave_neuron_min(g[widx[j]], Xt[rows_i], E[rows_i, j], method, max_enumerate,
                                              time_limit)
        n_prog += nps
        if not ok:
            complete = False
            reason = f"the mixed-integer program of neuron {j} did not finish (time_limit={time_limit}s)"
            v[widx[j]] = -np.sign(g[widx[j]])
            continue
        total += val
        v[widx[j]] = u
    return total, torch.as_tensor(v, dtype=net.dtype, device=net.device), n_prog, complete, reason


# ----------------------------------------------------------------------------- subgradients
def _min_norm_subgradient(net: ShallowNet, mdl: _Model) -> torch.Tensor:
    """Minimum-norm element of ``g + sum_kink s_ij e_ij (x~_i in block j)``, ``s_ij in [0, 1]``.

    Every kink slope varies independently between ``alpha`` and ``1`` (the chain-rule outer estimate of the
    Clarke subdifferential; equal to it when the kink constraints of each neuron are independent)."""
    from scipy.optimize import lsq_linear

    g = mdl.g.detach().cpu().numpy()
    ii, jj = torch.nonzero(mdl.E != 0, as_tuple=True)
    if len(ii) == 0:
        return mdl.g.clone()
    Xt = mdl.Xt.detach().cpu().numpy()
    widx = mdl.widx.cpu().numpy()
    E = mdl.E.detach().cpu().numpy()
    ii, jj = ii.cpu().numpy(), jj.cpu().numpy()
    A = np.zeros((len(g), len(ii)))
    A[widx[jj], np.arange(len(ii))[:, None]] = E[ii, jj][:, None] * Xt[ii]
    res = lsq_linear(A, -g, bounds=(0.0, 1.0), method="bvls", tol=1e-14)
    return torch.as_tensor(g + A @ res.x, dtype=net.dtype, device=net.device)


def _autograd_gradient(net: ShallowNet, X, Y) -> torch.Tensor:
    theta = net.parameters_vector().detach().clone().requires_grad_(True)
    loss = batched_loss(net, X, Y, theta)
    (grad,) = torch.autograd.grad(loss, theta)
    return grad.detach()


# ----------------------------------------------------------------------------- escape neurons
def _h_values(net: ShallowNet, mdl: _Model, j: int, U: torch.Tensor) -> torch.Tensor:
    """``h_j(u) = 1/n sum_i r_i sigma'(z_ij; x~_i . u)`` for (k, D) directions ``U``: (k, o)."""
    P = U @ mdl.Xt.T                                                   # (k, n)
    z = mdl.Z[:, j]
    slope = torch.where(z > 0, torch.ones_like(z), torch.full_like(z, net.alpha))
    S1 = torch.where(mdl.K[:, j][None, :], net.sigma(P), slope[None, :] * P)
    return S1 @ mdl.R / mdl.Xt.shape[0]


def _h_vanishes(net: ShallowNet, mdl: _Model, j: int, rtol: float, R: Optional[torch.Tensor] = None,
                scale: Optional[float] = None) -> tuple[bool, float]:
    """Is ``h_j`` identically zero? Exact up to a scale-aware tolerance (module docstring). ``R`` replaces
    the residuals (e.g. ``R a_j`` for the block function ``a_j . h_j``; then pass the ``scale`` of the terms
    before they cancelled, or round-off would look large). Returns (vanishes, size of the largest
    coefficient relative to the scale)."""
    n = mdl.Xt.shape[0]
    R = mdl.R if R is None else R
    al = net.alpha
    z = mdl.Z[:, j]
    k = mdl.K[:, j]
    norms = mdl.Xt.norm(dim=1)
    k = k & (norms > 0)
    slope = torch.where(z > 0, torch.ones_like(z), torch.full_like(z, al))
    slope = torch.where(mdl.K[:, j], torch.full_like(z, al), slope)
    Lam = (R * slope[:, None]).T @ mdl.Xt / n                          # (o, D): linear part
    if scale is None:
        scale = float((R.abs().sum(1) * norms).sum() / n)
    scale = scale + 1e-300
    worst = 0.0
    idx = torch.nonzero(k).reshape(-1)
    if len(idx):
        Xk = mdl.Xt[idx] / norms[idx, None]
        first = torch.argmax((Xk.abs() > 1e-12).to(torch.int8), dim=1)
        sgn = torch.sign(Xk.gather(1, first[:, None]))                 # canonical orientation of the line
        Ek = Xk * sgn
        coef = (1 - al) / n * R[idx] * norms[idx, None]                 # (K, o)
        neg = (sgn[:, 0] < 0)
        # max(-l.u, 0) = max(l.u, 0) - l.u: a ridge on the same line plus a linear part
        Lam = Lam - (coef[neg].T @ Ek[neg])
        # same hyperplane: equal unit normals (a cosine test would merge lines 1e-6 rad apart)
        same = torch.cdist(Ek, Ek) <= 1e-12
        label = torch.argmax(same.to(torch.int8), dim=1)               # first member of each class
        beta = torch.zeros(len(idx), R.shape[1], dtype=net.dtype, device=net.device).index_add_(0, label, coef)
        worst = max(worst, float(beta.abs().max()) / scale)
    worst = max(worst, float(Lam.abs().max()) / scale)
    return worst <= rtol, worst


def escape_direction(net: ShallowNet, X, Y, j: int, kink_rtol: float = 1e-12, n_candidates: int = 64,
                     seed: int = 0) -> Optional[tuple[torch.Tensor, float]]:
    """A second-order descent direction through neuron ``j`` (``a_j = 0``): ``v`` moving ``(w_j, b_j)`` by
    ``u`` and ``a_j`` by ``-s h_j(u)`` with ``s = n / sum_i sigma(z_ij)^2``, and its second-order coefficient
    ``q`` (``L(theta + t v) = L(theta) + q t^2 + O(t^3)``, ``q < 0``); None when no candidate ``u`` has
    ``h_j(u) != 0``. Only meaningful when ``trainable="all"``."""
    _check_net(net)
    if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < net.m:
        raise InvalidInputError(f"j must be a neuron index in 0..{net.m - 1}, got {j!r}")
    if net.trainable != "all":
        return None
    X, Y = _data(net, X, Y)
    mdl = _model(net, X, Y, kink_rtol)
    D = mdl.Xt.shape[1]
    gen = torch.Generator().manual_seed(seed)
    cands = [torch.randn(n_candidates, D, generator=gen, dtype=torch.float64).to(net.dtype).to(net.device)]
    kx = mdl.Xt[mdl.K[:, j]]
    if len(kx):  # the sides of every ridge, slightly off the hyperplane
        pert = torch.randn(len(kx), D, generator=gen, dtype=torch.float64).to(net.dtype).to(net.device)
        cands += [kx + 0.1 * pert, -kx + 0.1 * pert]
    cands += [torch.eye(D, dtype=net.dtype, device=net.device), -torch.eye(D, dtype=net.dtype, device=net.device)]
    U = torch.cat(cands)
    U = U / U.norm(dim=1, keepdim=True).clamp_min(1e-300)
    H = _h_values(net, mdl, j, U)
    best = int(torch.argmax(H.norm(dim=1)))
    h = H[best]
    if float(h.norm()) == 0.0:
        return None
    ssq = float((net.sigma(mdl.Z[:, j]) ** 2).sum())
    n = X.shape[0]
    s = n / ssq if ssq > 0 else 1.0 / float(h.norm())
    da = -s * h
    v = torch.zeros(net.n_parameters, dtype=net.dtype, device=net.device)
    v[mdl.widx[j]] = U[best]
    sl = net.parameter_slices()["a"]
    v[sl.start + j * net.o: sl.start + (j + 1) * net.o] = da
    q = float(da @ h) + float(da @ da) * ssq / (2 * n)
    return v, q


# ----------------------------------------------------------------------------- result and driver
@dataclass
class DirectionalStationarityResult(Result):
    """Verdict on ``theta``: "not stationary" | "strict saddle" | "local minimum" | "undetermined"."""

    verdict: str
    reason: str
    stationary: Optional[bool]
    min_directional_derivative: Optional[float]   # min over |v|_inf <= 1 of L'(theta; v)
    tolerance: float
    loss: float
    descent_direction: Optional[torch.Tensor] = None   # L'(theta; v) < 0 (certificate of non-stationarity)
    descent_verified: Optional[bool] = None            # L(theta + t v) < L(theta) observed for a small t
    escape_neurons: list = field(default_factory=list)
    zero_output_neurons: list = field(default_factory=list)
    saddle_direction: Optional[torch.Tensor] = None     # L(theta + t v) = L + q t^2 + O(t^3), q < 0
    saddle_second_order: Optional[float] = None
    saddle_verified: Optional[bool] = None
    probe_min_change: Optional[float] = None            # min of L(theta + delta) - L(theta) over random probes
    gradient_autograd: Optional[torch.Tensor] = None
    gradient_autograd_norm: Optional[float] = None
    min_norm_subgradient: Optional[torch.Tensor] = None
    min_norm_subgradient_norm: Optional[float] = None
    kinks: Optional[torch.Tensor] = None                # (n, m) bool
    n_kinks: int = 0
    n_programs: int = 0
    complete: bool = True

    _summary_fields = ("verdict", "reason", "stationary", "min_directional_derivative", "loss",
                       "escape_neurons", "gradient_autograd_norm", "min_norm_subgradient_norm", "n_kinks",
                       "complete")


def _verify_decrease(net, X, Y, v) -> bool:
    """``L(theta + t v) < L(theta)`` for some ``t`` in 10^-1 ... 10^-8 (all evaluated in one batch)."""
    theta = net.parameters_vector()
    ts = torch.logspace(-1, -8, 15, dtype=net.dtype, device=net.device)
    L0 = batched_loss(net, X, Y, theta)
    Ls = batched_loss(net, X, Y, theta[None] + ts[:, None] * v[None])
    # round-off of L at theta is about eps * L; ask for a decrease clearly above it
    return bool(((L0 - Ls) > 64 * torch.finfo(net.dtype).eps * max(float(L0), 1e-300)).any())


def _probe(net, X, Y, n_probe: int, seed: int, mdl: Optional[_Model] = None) -> float:
    theta = net.parameters_vector()
    gen = torch.Generator().manual_seed(seed)
    D = torch.randn(n_probe, theta.numel(), generator=gen, dtype=torch.float64).to(net.dtype).to(net.device)
    D = D / D.norm(dim=1, keepdim=True)
    top = 1e-2 * max(1.0, float(theta.norm()))
    if mdl is not None:
        # stay inside the cones of the non-kink pre-activations: a step of norm r changes z_ij by at most
        # r |x~_i|, so below min |z_ij| / |x~_i| no sign flips and the local analysis still applies
        norms = mdl.Xt.norm(dim=1)[:, None].expand_as(mdl.Z)
        off = (~mdl.K) & (norms > 0)
        if bool(off.any()):
            top = min(top, 0.5 * float((mdl.Z.abs()[off] / norms[off]).min()))
    radii = torch.tensor([1.0, 1e-2, 1e-4], dtype=net.dtype, device=net.device) * top
    T = (theta[None, None] + radii[:, None, None] * D[None]).reshape(-1, theta.numel())
    return float((batched_loss(net, X, Y, T) - batched_loss(net, X, Y, theta)).min())


def directional_stationarity(net: ShallowNet, X, Y, kink_rtol: float = 1e-12, stat_rtol: float = 1e-9,
                      method: str = "auto", max_enumerate: int = 4, time_limit: float = 10.0,
                      zero_atol: float = 0.0, n_probe: int = 200, seed: int = 0) -> DirectionalStationarityResult:
    r"""Directional stationarity of ``theta`` (exact, module docstring) and its verdict.

    ``method``: "auto" (enumerate the ``2^K`` sign cases of a neuron with ``K <= max_enumerate`` concave
    kink terms, or ``K <= 16`` when it has no convex kink term (closed form per case), one mixed-integer
    program beyond), "enumerate" (always) or "milp" (always). Neurons with
    ``|a_j|_inf <= zero_atol`` are zero-output neurons, the candidates for escape neurons. ``n_probe``
    random perturbations at radii r, r/100, r/10^4 probe local minima, ``r = min(1e-2 max(1, |theta|),
    half the distance to the nearest sign change of a non-kink pre-activation)``."""
    _check_net(net)
    if method not in ("auto", "enumerate", "milp"):
        raise InvalidInputError(f"method must be 'auto', 'enumerate' or 'milp', got {method!r}")
    for name, val in (("kink_rtol", kink_rtol), ("stat_rtol", stat_rtol), ("zero_atol", zero_atol)):
        if not (val >= 0 and math.isfinite(val)):
            raise InvalidInputError(f"{name} must be a finite number >= 0, got {val}")
    X, Y = _data(net, X, Y)
    mdl = _model(net, X, Y, kink_rtol)
    tol = stat_rtol * mdl.scale
    val, v, nprog, complete, why = _box_min(net, mdl, method, max_enumerate, time_limit)
    grad = _autograd_gradient(net, X, Y)
    sub = _min_norm_subgradient(net, mdl)
    common = dict(tolerance=tol, loss=mdl.loss, gradient_autograd=grad, gradient_autograd_norm=float(grad.norm()),
                  min_norm_subgradient=sub, min_norm_subgradient_norm=float(sub.norm()), kinks=mdl.K,
                  n_kinks=int(mdl.K.sum()), n_programs=nprog)
    if val is None:
        return DirectionalStationarityResult("undetermined", why, None, None, complete=False, **common)
    if v is not None:
        exact = float(one_sided_derivative(net, X, Y, v, kink_rtol))
        if exact < -tol:
            return DirectionalStationarityResult(
                "not stationary", "a direction with negative one-sided derivative", False, min(val, exact),
                descent_direction=v, descent_verified=_verify_decrease(net, X, Y, v), complete=True, **common)
    if not complete:  # no descent found among the blocks that were solved
        return DirectionalStationarityResult("undetermined", why, None, val, complete=False, **common)
    zero = []
    if net.trainable == "all":
        zero = [int(j) for j in torch.nonzero(net.a.abs().amax(1) <= zero_atol).reshape(-1)]
    escape = [j for j in zero if not _h_vanishes(net, mdl, j, stat_rtol)[0]]
    res = DirectionalStationarityResult("undetermined", "", True, val, escape_neurons=escape, zero_output_neurons=zero,
                                 **common)
    if escape:
        for j in escape:
            found = escape_direction(net, X, Y, j, kink_rtol, seed=seed)
            if found is None:
                continue
            w, q = found
            res.saddle_direction, res.saddle_second_order = w, q
            res.saddle_verified = _verify_decrease(net, X, Y, w)
            if res.saddle_verified:
                break
        res.verdict = "strict saddle"
        res.reason = (f"escape neuron(s) {escape}: zero output weight and h_j not identically zero; "
                      "the loss decreases at second order along saddle_direction")
        return res
    probe = _probe(net, X, Y, n_probe, seed, mdl) if n_probe > 0 else None
    res.probe_min_change = probe
    probe_tol = 1e3 * torch.finfo(net.dtype).eps * max(mdl.loss, 1e-300) + tol
    # zero loss to round-off: residuals at the rounding level of the outputs and targets (the loss is
    # quadratic in them, so comparing it with the derivative tolerance would mix units)
    Yt = torch.as_tensor(Y)
    zero_loss = float(mdl.R.abs().max()) <= 64 * torch.finfo(net.dtype).eps * (
        float(Yt.abs().max()) + float((Yt + mdl.R).abs().max()) + 1e-300) if mdl.R.numel() else True
    if zero_loss:
        res.verdict, res.reason = "local minimum", "zero loss (a global minimum)"
    elif net.trainable == "first":
        res.verdict, res.reason = "local minimum", ("stationary with fixed output weights: L is convex on every "
                                                    "cone of the kink arrangement")
    elif net.o == 1:
        res.verdict, res.reason = "local minimum", "stationary without escape neurons (scalar output)"
    else:
        res.reason = ("stationary without escape neurons, but vector outputs with trainable output weights: "
                      "second-order cross terms are not decided")
        return res
    if probe is not None and probe < -probe_tol:
        res.verdict = "undetermined"
        res.reason += f"; but a random probe lowered the loss by {-probe:.3e} (tolerance issue?)"
    return res

