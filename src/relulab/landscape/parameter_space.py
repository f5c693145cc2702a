r"""Activation regions in parameter space and the rank of the parameterization's Jacobian.

Setting of Karhadkar, Murray, Tseran and Montufar, "Mildly overparameterized ReLU networks have a
favorable loss landscape" (TMLR 2024): a shallow network ``f(x) = sum_j a_j sigma(w_j . x + b_j) + c`` on
fixed data ``X`` (n, d). The *activation pattern* of a parameter point is the sign matrix

    S_ji = sign(w_j . x_i + b_j)        (m neurons x n samples),

and the activation region of ``S`` is ``{(W, b) : sign(w_j . x_i + b_j) = S_ji for all j, i}``. Writing
``xt_i = (x_i, 1)`` (or ``x_i`` without bias) and ``v_j = (w_j, b_j)``, the region is a product over
neurons of open polyhedral cones ``{v : S_ji xt_i . v > 0}``: the cells of the central arrangement of the
``n`` hyperplanes ``{v : xt_i . v = 0}`` in ``R^(d+1)``. On a region, with the output layer fixed
(``trainable="first"``), the outputs are *linear* in ``theta = (W, b)``:

    f_k(x_i) = sum_j a_jk s(S_ji) (w_j . x_i + b_j) + c_k,     s(+) = 1, s(-) = alpha,

so the Jacobian ``J[(i, k), (j, l)] = a_jk s(S_ji) xt_il`` is constant on the region (a Khatri-Rao product
of the slope matrix and the data), the zero-loss set in the region is the affine space ``J theta = Y - c``
intersected with the open region (dimension ``P - rank J`` when non-empty, ``P - n o`` at full rank), and
both its non-emptiness and that of the region are linear programs. Full rank ``rank J = n o`` on a region
means every differentiable critical point there is a global minimum (ibid., Section 3).

Points sitting exactly at ``xt_i = 0`` (a zero input without bias) have a pre-activation that is zero for
every parameter: their pattern entry is always 0, and their rows of ``J`` are zero whatever the slope.
Any other 0 entry is a kink, where ``J`` does not exist (:class:`DegenerateGeometryError`).
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.landscape.shallow import ShallowNet
from relulab.progress import notify
from relulab.results import Result

__all__ = [
    "parameter_pattern",
    "parameterization_jacobian",
    "jacobian_rank",
    "ParameterRegion",
    "parameter_region",
    "region_is_nonempty",
    "ParameterArrangement",
    "enumerate_parameter_regions",
    "FullRankGrid",
    "full_rank_fraction",
    "cover_count",
]


# ---------------------------------------------------------------------------------------------- helpers
def _net(net) -> ShallowNet:
    if not isinstance(net, ShallowNet):
        raise InvalidInputError(f"net must be a relulab.landscape.ShallowNet, got {type(net).__name__}")
    return net


def _data(X, name="X", dtype=None, device=None) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        X = torch.as_tensor(np.asarray(X, dtype=np.float64))
    if not X.is_floating_point():
        X = X.to(torch.float64)
    if dtype is not None:
        X = X.to(dtype)
    if device is not None:
        X = X.to(device)
    if X.dim() != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise InvalidInputError(f"{name} must be an (n, d) matrix with n, d >= 1, got shape {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise InvalidInputError(f"{name} must be finite")
    return X


def _augment(X: torch.Tensor, bias: bool) -> torch.Tensor:
    """``xt_i = (x_i, 1)`` with bias, ``x_i`` without: the normal of sample i's hyperplane in ``(w, b)``."""
    return torch.cat([X, torch.ones_like(X[:, :1])], dim=1) if bias else X


def _pattern(pattern, m: int, n: int, device=None) -> torch.Tensor:
    S = torch.as_tensor(np.asarray(pattern) if not isinstance(pattern, torch.Tensor) else pattern)
    if S.dim() == 1 and m == 1:
        S = S[None]
    if S.shape != (m, n):
        raise InvalidInputError(f"pattern must have shape (m, n) = ({m}, {n}), got {tuple(S.shape)}")
    if S.is_floating_point() and not bool((S == S.round()).all()):
        raise InvalidInputError("pattern entries must be -1, 0 or +1")
    S = S.to(torch.int8)
    if not bool(((S == -1) | (S == 0) | (S == 1)).all()):
        raise InvalidInputError("pattern entries must be -1, 0 or +1")
    return S if device is None else S.to(device)


def _check_kinks(S: torch.Tensor, Xt: torch.Tensor):
    """0 entries are allowed only at samples whose pre-activation vanishes identically (xt_i = 0)."""
    null = (Xt == 0).all(dim=1)  # (n,)
    bad = (S == 0) & ~null[None, :]
    if bool(bad.any()):
        j, i = (int(v) for v in bad.nonzero()[0])
        raise DegenerateGeometryError(
            f"neuron {j} sits on its kink at sample {i} (pre-activation exactly 0): the parameterization is "
            "not differentiable there; pass pattern= with a sign for that entry to pick a side")


def _slopes(S: torch.Tensor, alpha: float, dtype) -> torch.Tensor:
    one = torch.ones((), dtype=dtype, device=S.device)
    return torch.where(S > 0, one, one * alpha)


def _first_layer_jacobian(Xt: torch.Tensor, A: torch.Tensor, D: torch.Tensor, d: int, bias: bool) -> torch.Tensor:
    """Batched ``J[b, (i, k), cols]`` with ``J = a_jk D_ji xt_il``; columns W (neuron by neuron), then b.

    ``Xt`` (B, n, q), ``A`` (B, m, o), ``D`` (B, m, n) -> (B, n o, m d + m [bias])."""
    B, n, _ = Xt.shape
    m, o = A.shape[1], A.shape[2]
    T = torch.einsum("bjk,bji,bil->bikjl", A, D, Xt)  # (B, n, o, m, q)
    cols = [T[..., :d].reshape(B, n * o, m * d)]
    if bias:
        cols.append(T[..., d].reshape(B, n * o, m))
    return torch.cat(cols, dim=-1)


def _rank_from_svals(sv: torch.Tensor, shape, rtol) -> torch.Tensor:
    """Numerical rank: singular values above ``rtol * sigma_max`` (default ``rtol = max(rows, cols) * eps``,
    the convention of numpy.linalg.matrix_rank and LAPACK): relative, hence invariant to rescaling J."""
    if rtol is None:
        rtol = max(shape[-2], shape[-1]) * torch.finfo(sv.dtype).eps
    smax = sv[..., :1] if sv.shape[-1] else torch.zeros(sv.shape[:-1] + (1,), dtype=sv.dtype, device=sv.device)
    return (sv > rtol * smax).sum(dim=-1)


# ---------------------------------------------------------------------------------------------- Jacobian
def parameter_pattern(net: ShallowNet, X) -> torch.Tensor:
    """The activation pattern of ``net``'s parameter point on data ``X``: ``S_ji = sign(w_j . x_i + b_j)``,
    an (m, n) int8 tensor in {-1, 0, +1} (0 exactly on a kink)."""
    net = _net(net)
    return net.signs(X).T.contiguous()


def parameterization_jacobian(net: ShallowNet, X, pattern=None) -> torch.Tensor:
    """Exact Jacobian of ``theta -> (f(x_1), ..., f(x_n))`` (rows ``(i, k)``, sample-major, ``n o`` of them;
    columns in the order of ``net.parameters_vector()``).

    ``trainable="first"``: the Jacobian on the activation region of ``pattern`` (default: the pattern of
    ``net``'s point), ``J[(i,k),(j,l)] = a_jk s(S_ji) xt_il``; constant on the region. ``trainable="all"``:
    additionally ``d f_k(x_i) / d a_jk = s(S_ji) (w_j . x_i + b_j)`` and ``d f_k / d c_k = 1`` at the point
    (with the slopes of ``pattern``). A 0 pattern entry (kink) raises :class:`DegenerateGeometryError`
    unless the sample's pre-activation is identically 0 (``x_i = 0`` without bias)."""
    net = _net(net)
    X = net._inputs(X)
    Xt = _augment(X, net.b is not None)
    S = parameter_pattern(net, X) if pattern is None else _pattern(pattern, net.m, X.shape[0], X.device)
    _check_kinks(S, Xt)
    D = _slopes(S, net.alpha, X.dtype)  # (m, n)
    J = _first_layer_jacobian(Xt[None], net.a[None], D[None], net.d, net.b is not None)[0]
    if net.trainable == "all":
        n, o = X.shape[0], net.o
        eye = torch.eye(o, dtype=X.dtype, device=X.device)
        act = D.T * net.preactivations(X)  # (n, m): sigma on the region's linear piece
        Ja = torch.einsum("ij,kl->ikjl", act, eye).reshape(n * o, net.m * o)
        blocks = [J, Ja]
        if net.c is not None:
            blocks.append(eye.expand(n, o, o).reshape(n * o, o))
        J = torch.cat(blocks, dim=1)
    return J


def jacobian_rank(net: ShallowNet, X, pattern=None, rtol: float | None = None) -> int:
    """Numerical rank of :func:`parameterization_jacobian`: the number of singular values above
    ``rtol * sigma_max`` (default ``rtol = max(n o, P) * eps(dtype)``; relative, so invariant to rescaling the
    data or the parameters)."""
    J = parameterization_jacobian(net, X, pattern)
    return int(_rank_from_svals(torch.linalg.svdvals(J), J.shape, rtol))


# ---------------------------------------------------------------------------------------------- LPs
def _max_margin(Xt: np.ndarray, S: np.ndarray):
    """One block-separable LP for K sign systems at once: for each row s of ``S`` (K, n) maximize t_k with
    ``s_i xt_i . v_k >= t_k`` (s_i != 0), ``xt_i . v_k = 0`` (s_i = 0), ``t_k <= 1``. The cone is open and
    non-empty iff the optimum is t_k = 1 (homogeneity), else t_k = 0; we threshold at 1/2, which makes
    the decision independent of the data's scale. Returns (feasible (K,) bool, witnesses V (K, q))."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    K, n = S.shape
    q = Xt.shape[1]
    if K == 0:
        return np.zeros(0, bool), np.zeros((0, q))
    nv = q + 1  # variables per block: v_k, t_k
    null = np.all(Xt == 0, axis=1)
    k_in, i_in = np.nonzero(S != 0)
    k_eq, i_eq = np.nonzero((S == 0) & ~null[None, :])
    R = k_in.size
    rows = np.repeat(np.arange(R), nv)
    cols = (k_in[:, None] * nv + np.arange(nv)[None, :]).reshape(-1)
    vals = np.concatenate([-S[k_in, i_in][:, None] * Xt[i_in], np.ones((R, 1))], axis=1).reshape(-1)
    A_ub = coo_matrix((vals, (rows, cols)), shape=(R, K * nv)).tocsr()
    A_eq = b_eq = None
    if k_eq.size:
        E = k_eq.size
        A_eq = coo_matrix((Xt[i_eq].reshape(-1), (np.repeat(np.arange(E), q),
                                                   (k_eq[:, None] * nv + np.arange(q)[None, :]).reshape(-1))),
                          shape=(E, K * nv)).tocsr()
        b_eq = np.zeros(E)
    c = np.zeros(K * nv)
    c[q::nv] = -1.0
    bounds = np.tile(np.array([[-np.inf, np.inf]] * q + [[-np.inf, 1.0]]), (K, 1))
    # t is unbounded below, so an all-free cone (no rows) still has t = 1 and the LP is always feasible.
    res = linprog(c, A_ub=A_ub if R else None, b_ub=np.zeros(R) if R else None, A_eq=A_eq, b_eq=b_eq,
                  bounds=bounds, method="highs")
    if res.status != 0:
        raise DegenerateGeometryError(f"region LP failed ({res.message}); the data may be badly scaled")
    z = res.x.reshape(K, nv)
    return z[:, q] > 0.5, z[:, :q]


def region_is_nonempty(X, pattern, bias: bool = True) -> bool | torch.Tensor:
    """Whether the activation region ``{(W, b) : sign(w_j . x_i + b_j) = S_ji}`` is non-empty.

    The region is a product over neurons, so it is non-empty iff every row's system ``S_ji xt_i . v > 0``
    (``xt_i . v = 0`` where ``S_ji = 0``) is feasible. Distinct rows are deduplicated and decided together
    by one block LP (scipy ``linprog``, HiGHS; margin normalized to 1, see :func:`_max_margin`). ``pattern``
    (m, n) gives a bool; a batch (B, m, n) gives a (B,) bool tensor."""
    X = _data(X)
    Xt = _augment(X, bias).cpu().numpy()
    P = torch.as_tensor(np.asarray(pattern) if not isinstance(pattern, torch.Tensor) else pattern)
    n = X.shape[0]
    if P.dim() == 1:
        P = P[None]
    batched = P.dim() == 3
    Pb = P if batched else P[None]
    if Pb.dim() != 3 or Pb.shape[-1] != n:
        raise InvalidInputError(f"pattern must have shape (m, {n}) or (B, m, {n}), got {tuple(P.shape)}")
    B, m = Pb.shape[0], Pb.shape[1]
    rows = _pattern(Pb.reshape(B * m, n), B * m, n).cpu().numpy()
    uniq, inv = np.unique(rows, axis=0, return_inverse=True)
    ok, _ = _max_margin(Xt, uniq)
    out = torch.as_tensor(ok[inv.reshape(-1)].reshape(B, m).all(axis=1))
    return out if batched else bool(out[0])


# ---------------------------------------------------------------------------------------------- regions
@dataclass
class ParameterRegion(Result):
    """The activation region of a parameter point (or of a given pattern) of a :class:`ShallowNet` on data X.

    ``rank``: rank of the parameterization's Jacobian on the region (``trainable="all"``: at the point);
    ``full_rank``: ``rank == n o``; ``nonempty``: LP decision; ``has_global_minimum``: whether zero loss on
    ``Y`` is attained inside the (open) region (None without Y; for ``trainable="all"`` only the sufficient
    test with the output layer held at its values is made, so False is reported as None);
    ``zero_loss_dimension``: dimension of the zero-loss set in the region, ``P - rank`` (``trainable="first"``);
    ``global_minimum``: a parameter vector of zero loss strictly inside the region; ``margin``: its LP margin."""

    pattern: torch.Tensor
    rank: int
    n_outputs: int
    n_parameters: int
    full_rank: bool
    nonempty: bool
    has_global_minimum: bool | None = None
    zero_loss_dimension: int | None = None
    global_minimum: torch.Tensor | None = None
    margin: float | None = None
    trainable: str = "first"

    _summary_fields = ("rank", "n_outputs", "n_parameters", "full_rank", "nonempty", "has_global_minimum",
                       "zero_loss_dimension", "trainable")


def _zero_loss_lp(net: ShallowNet, Xt: torch.Tensor, S: torch.Tensor, J1: torch.Tensor, Y: torch.Tensor):
    """Zero loss inside the region with the output layer fixed: find theta = (W, b) with ``J1 theta = Y - c``
    and ``S_ji xt_i . v_j >= t``, maximizing ``t <= 1``.

    The problem is first normalized (data, output weights and targets to unit max-norm: the region is a cone
    and ``J1`` is linear in the data and in ``a``, so theta only rescales), which makes HiGHS's absolute
    tolerances (1e-7) relative. The point is accepted as strictly inside iff the normalized margin exceeds
    ``1e-6`` and the de-normalized witness has the region's strict signs and a residual below ``1e-7``
    relative to the targets. Returns (ok, theta, normalized margin) or (False, None, None) if infeasible."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    m, d, q = net.m, net.d, Xt.shape[1]
    bias = net.b is not None
    P = J1.shape[1]
    Xn, Sn = Xt.cpu().numpy(), S.cpu().numpy()
    target = (Y - (net.c if net.c is not None else 0.0)).reshape(-1).cpu().numpy()
    sx = float(np.abs(Xn).max(initial=0.0)) or 1.0
    sa = float(net.a.abs().max()) or 1.0
    sy = float(np.abs(target).max(initial=0.0)) or 1.0
    j_in, i_in = np.nonzero(Sn != 0)
    R = j_in.size
    # columns of neuron j: W entries j*d .. j*d+d-1, then (bias) m*d + j; the margin t is column P
    wcols = j_in[:, None] * d + np.arange(d)[None, :]
    cols = np.concatenate([wcols] + ([(m * d + j_in)[:, None]] if bias else []) + [np.full((R, 1), P)], axis=1)
    vals = np.concatenate([-Sn[j_in, i_in][:, None] * Xn[i_in][:, :q] / sx, np.ones((R, 1))], axis=1)
    A_ub = coo_matrix((vals.reshape(-1), (np.repeat(np.arange(R), cols.shape[1]), cols.reshape(-1))),
                      shape=(R, P + 1)).tocsr()
    # kinks of identically-zero samples carry no constraint; other 0 entries were rejected before
    J1n = J1.cpu().numpy()
    A_eq = np.concatenate([J1n / (sx * sa), np.zeros((J1n.shape[0], 1))], axis=1)
    c = np.zeros(P + 1)
    c[P] = -1.0
    bounds = [(None, None)] * P + [(None, 1.0)]
    res = linprog(c, A_ub=A_ub if R else None, b_ub=np.zeros(R) if R else None, A_eq=A_eq,
                  b_eq=target / sy, bounds=bounds, method="highs")
    if res.status == 2:
        return False, None, None
    if res.status != 0:
        raise DegenerateGeometryError(f"zero-loss LP failed ({res.message})")
    theta, t = res.x[:P] * sy / (sx * sa), float(res.x[P])
    V = theta[: m * d].reshape(m, d)
    if bias:
        V = np.concatenate([V, theta[m * d:][:, None]], axis=1)
    margins = Sn * (V @ Xn.T)  # (m, n)
    strict = bool(np.all(margins[Sn != 0] > 0))
    small = bool(np.abs(J1n @ theta - target).max(initial=0.0) <= 1e-7 * sy)
    ok = (R == 0 or t > 1e-6) and strict and small
    return ok, torch.as_tensor(theta, dtype=Xt.dtype, device=Xt.device), t


def parameter_region(net: ShallowNet, X, Y=None, pattern=None, rtol: float | None = None,
                     progress=None) -> ParameterRegion:
    """The activation region of ``net``'s point (or of ``pattern``) on data ``X``: Jacobian rank, full rank,
    LP non-emptiness and, with targets ``Y`` (n, o), whether it contains a global minimum (zero loss) and
    the dimension ``P - rank`` of the zero-loss set there. See :class:`ParameterRegion`.

    ``progress``: called as ``progress(step, steps, stage=...)`` before each step (the rank, the region's
    linear program and, with ``Y``, the zero-loss linear program) and as ``progress(steps, steps,
    stage="done")`` at the end (see :mod:`relulab.progress`)."""
    steps = 2 if Y is None else 3
    notify(progress, 0, steps, stage="Jacobian rank")
    out = _parameter_region(net, X, Y, pattern, rtol, progress, steps)
    notify(progress, steps, steps, stage="done")
    return out


def _parameter_region(net, X, Y, pattern, rtol, progress, steps) -> ParameterRegion:
    net = _net(net)
    X = net._inputs(X)
    n = X.shape[0]
    S = parameter_pattern(net, X) if pattern is None else _pattern(pattern, net.m, n, X.device)
    Xt = _augment(X, net.b is not None)
    _check_kinks(S, Xt)
    J = parameterization_jacobian(net, X, S)
    rank = int(_rank_from_svals(torch.linalg.svdvals(J), J.shape, rtol))
    rows = n * net.o
    notify(progress, 1, steps, stage="region LP")
    nonempty = region_is_nonempty(X, S, bias=net.b is not None)
    out = ParameterRegion(pattern=S, rank=rank, n_outputs=rows, n_parameters=net.n_parameters,
                          full_rank=rank == rows, nonempty=nonempty, trainable=net.trainable)
    if Y is None:
        return out
    Y = torch.as_tensor(Y) if isinstance(Y, torch.Tensor) else torch.as_tensor(np.asarray(Y, dtype=np.float64))
    Y = _data(Y[:, None] if Y.dim() == 1 else Y, "Y", X.dtype, X.device)
    if Y.shape != (n, net.o):
        raise InvalidInputError(f"Y must have shape ({n}, {net.o}), got {tuple(Y.shape)}")
    if not nonempty:
        out.has_global_minimum = False
        return out
    first = net.d * net.m + (net.m if net.b is not None else 0)
    notify(progress, 2, steps, stage="zero-loss LP")
    ok, theta, t = _zero_loss_lp(net, Xt, S, J[:, :first], Y)
    if net.trainable == "first":
        out.has_global_minimum = bool(ok)
        out.zero_loss_dimension = net.n_parameters - rank if ok else None
        out.global_minimum = theta if ok else None
    else:
        out.has_global_minimum = True if ok else None
        if ok:  # extend (W, b) by the fixed output layer
            rest = net.parameters_vector()[first:]
            out.global_minimum = torch.cat([theta, rest])
    out.margin = t
    return out


# ---------------------------------------------------------------------------------------------- enumeration
def cover_count(n: int, dim: int) -> int:
    """Cells of a central arrangement of ``n`` hyperplanes in general position in ``R^dim``:
    ``2 sum_{k=0}^{dim-1} C(n-1, k)`` (Cover's function counting theorem; Zaslavsky). It bounds the count of
    every central arrangement of ``n`` hyperplanes in ``R^dim``."""
    if n == 0:
        return 1
    return 2 * sum(math.comb(n - 1, k) for k in range(dim))


@dataclass
class ParameterArrangement(Result):
    """Activation regions of an m-neuron layer on data X in parameter space.

    ``cells`` (C, n) int8: the realizable sign vectors of one neuron (cells of the central arrangement of the
    hyperplanes ``{v : xt_i . v = 0}`` in ``R^q``, ``q = d + 1`` with bias); ``witnesses`` (C, q): a point
    ``v = (w, b)`` in each cell; ``n_regions = n_cells ** m`` (regions are m-fold products, listed lazily by
    :meth:`patterns`); ``general_position_count``: Cover's count for n hyperplanes in general position in
    R^q (an upper bound, attained for generic data); ``complete``: False when a budget stopped the search
    (then ``cells`` is the arrangement of the first ``hyperplanes_done`` samples)."""

    n: int
    d: int
    m: int
    bias: bool
    cells: torch.Tensor
    witnesses: torch.Tensor
    n_cells: int
    n_regions: int
    general_position_count: int
    complete: bool = True
    hyperplanes_done: int = 0
    seconds: float = 0.0

    _summary_fields = ("n", "d", "m", "bias", "n_cells", "n_regions", "general_position_count", "complete")

    def patterns(self, limit: int | None = None):
        """Iterate over the (m, n) patterns of the non-empty regions (products of cells), at most ``limit``."""
        it = itertools.product(range(self.n_cells), repeat=self.m)
        for idx in itertools.islice(it, limit):
            yield self.cells[list(idx)]


def enumerate_parameter_regions(X, m: int = 1, bias: bool = True, max_cells: int = 200_000,
                                time_limit: float | None = None) -> ParameterArrangement:
    """All non-empty activation regions of ``m`` neurons on data ``X`` (n, d), through the per-neuron cells.

    Incremental arrangement: hyperplane ``xt_i . v = 0`` is added in round i; a cell whose witness ``v``
    lies clearly on one side (``|xt_i . v| > 1e-9 |xt_i| |v|``) keeps it, and the other side (both sides for
    an undecided witness) is tested by one block LP per round over all cells (:func:`_max_margin`), which
    also returns a witness of margin 1 for every new cell. Identically-zero samples (``x_i = 0`` without
    bias) have the constant sign 0 and split nothing. Exact for degenerate data (duplicate, antipodal,
    collinear points); the count equals :func:`cover_count` for data in general position."""
    t0 = time.time()
    X = _data(X)
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise InvalidInputError(f"m must be a positive integer, got {m!r}")
    n, d = X.shape
    Xt = _augment(X, bias).cpu().numpy()
    q = Xt.shape[1]
    cells = np.zeros((1, 0), np.int8)
    wit = np.zeros((1, q))
    complete, done = True, 0
    for i in range(n):
        x = Xt[i]
        if not np.any(x):
            cells = np.concatenate([cells, np.zeros((len(cells), 1), np.int8)], axis=1)
            done += 1
            continue
        if (time_limit is not None and time.time() - t0 > time_limit) or len(cells) > max_cells:
            complete = False
            break
        dots = wit @ x
        sure = np.abs(dots) > 1e-9 * np.linalg.norm(x) * np.linalg.norm(wit, axis=1)
        side = np.sign(dots).astype(np.int8)
        # tests: for sure cells the opposite side, for unsure cells both sides
        t_cell = np.concatenate([np.nonzero(sure)[0], np.repeat(np.nonzero(~sure)[0], 2)])
        t_sign = np.concatenate([-side[sure], np.tile(np.array([1, -1], np.int8), int((~sure).sum()))])
        Ssys = np.concatenate([cells[t_cell], t_sign[:, None]], axis=1)
        Xsub = Xt[: i + 1]
        ok, V = _max_margin(Xsub, Ssys)
        kept_cells = np.concatenate([cells[sure], side[sure][:, None]], axis=1)
        new_cells = Ssys[ok]
        cells = np.concatenate([kept_cells, new_cells], axis=0)
        wit = np.concatenate([wit[sure], V[ok]], axis=0)
        # every open cell meets at least one side of a hyperplane: a childless cell is an LP failure
        if np.bincount(np.concatenate([np.nonzero(sure)[0], t_cell[ok]]), minlength=len(sure)).min() < 1:
            raise DegenerateGeometryError(f"a cell vanished when adding sample {i}: LP tolerance failure")
        done += 1
    if complete:
        order = np.lexsort(cells.T[::-1]) if cells.shape[1] else np.arange(len(cells))
        cells, wit = cells[order], wit[order]
    C = len(cells)
    return ParameterArrangement(
        n=n, d=d, m=m, bias=bias, cells=torch.as_tensor(cells), witnesses=torch.as_tensor(wit), n_cells=C,
        n_regions=C ** m, general_position_count=cover_count(int(np.any(Xt != 0, axis=1).sum()), q),
        complete=complete, hyperplanes_done=done, seconds=time.time() - t0)


# ---------------------------------------------------------------------------------------------- phase transition
def _wilson(k: np.ndarray, N: int, z: float = 1.959963984540054):
    p = k / N
    den = 1 + z * z / N
    centre = (p + z * z / (2 * N)) / den
    half = z / den * np.sqrt(p * (1 - p) / N + z * z / (4 * N * N))
    # the exact endpoints at k = 0 and k = N (rounding would leave ~1e-18 there)
    lo = np.where(k == 0, 0.0, np.clip(centre - half, 0, 1))
    hi = np.where(k == N, 1.0, np.clip(centre + half, 0, 1))
    return lo, hi


_CHUNK = 128  # samples per task; fixed so that the seeds do not depend on the number of workers


# samplers of full_rank_fraction: data X (B, n, d), first-layer weights and biases (fan-in d), output weights
DATA_SAMPLERS = ("normal", "uniform")
INIT_SAMPLERS = ("he", "torch", "normal")
OUTPUT_SAMPLERS = ("sign", "normal", "torch")
# the setting of Karhadkar et al.'s experiments: X ~ U[0, 1]^d, PyTorch's default nn.Linear
# initialization of the hidden layer, output weights v ~ N(0, 1)
PRESETS = {"paper": dict(data="uniform", init="torch", output_weights="normal"),
           "default": dict(data="normal", init="he", output_weights="sign")}


def _sample_data(kind, rng, shape):
    if callable(kind):
        X = np.asarray(kind(rng, shape), dtype=np.float64)
        if X.shape != tuple(shape) or not np.isfinite(X).all():
            raise InvalidInputError(f"the data sampler must return finite values of shape {tuple(shape)}, "
                                    f"got {X.shape}")
        return X
    return rng.standard_normal(shape) if kind == "normal" else rng.random(shape)


def _sample_first_layer(kind, rng, B, m, d):
    """W (B, m, d), b (B, m): He N(0, 2/d); PyTorch's nn.Linear default U(-1/sqrt(d), 1/sqrt(d)) for
    both (kaiming_uniform with a = sqrt(5)); or N(0, 1)."""
    if kind == "torch":
        bound = 1.0 / math.sqrt(d)
        return rng.uniform(-bound, bound, (B, m, d)), rng.uniform(-bound, bound, (B, m))
    scale = math.sqrt(2.0 / d) if kind == "he" else 1.0
    return rng.standard_normal((B, m, d)) * scale, rng.standard_normal((B, m)) * scale


def _sample_output(kind, rng, B, m):
    if kind == "sign":
        return rng.choice(np.array([-1.0, 1.0]), size=(B, m, 1))
    if kind == "normal":
        return rng.standard_normal((B, m, 1))
    bound = 1.0 / math.sqrt(m)  # nn.Linear(m, 1)'s default
    return rng.uniform(-bound, bound, (B, m, 1))


def _rank_task(task: dict) -> tuple[int, int]:
    """Full-rank count for one chunk of one (d, n, m) cell. Randomness (default samplers): X ~ N(0, I),
    w_j ~ N(0, 2/d I), b_j ~ N(0, 2/d), output weights i.i.d. random signs (a nonzero a_j scales the
    columns of neuron j and leaves the rank unchanged); others as chosen in ``task``."""
    if task.get("threads"):
        torch.set_num_threads(task["threads"])
    d, n, m, B = task["d"], task["n"], task["m"], task["size"]
    rng = np.random.default_rng(np.random.SeedSequence(task["entropy"]))
    if task.get("measure") == "count":
        return _rank_task_count(task, rng)
    X = _sample_data(task.get("data", "normal"), rng, (B, n, d))
    W, b = _sample_first_layer(task.get("init", "he"), rng, B, m, d)
    a = _sample_output(task.get("output_weights", "sign"), rng, B, m)
    Xt = torch.as_tensor(np.concatenate([X, np.ones((B, n, 1))], axis=2) if task["bias"] else X)
    Z = torch.as_tensor(W) @ Xt[..., :d].transpose(1, 2)  # (B, m, n)
    if task["bias"]:
        Z = Z + torch.as_tensor(b)[..., None]
    D = torch.where(Z > 0, torch.ones((), dtype=Z.dtype), torch.full((), task["alpha"], dtype=Z.dtype))
    return task["cell"], _full_rank_count(Xt, torch.as_tensor(a), D, task)


def _full_rank_count(Xt: torch.Tensor, A: torch.Tensor, D: torch.Tensor, task: dict) -> int:
    """How many of the batched first-layer Jacobians (``_first_layer_jacobian``) have rank n."""
    J = _first_layer_jacobian(Xt, A, D, task["d"], task["bias"])
    rank = _rank_from_svals(torch.linalg.svdvals(J), J.shape, task["rtol"])
    return int((rank == task["n"]).sum())


def _neuron_cells(X: np.ndarray, bias: bool, max_cells: int) -> np.ndarray:
    """The realizable sign vectors (C, n) of one neuron on data X: for d = 1 with bias in closed form
    (thresholds between the sorted points, both orientations: 2 n cells for distinct points), otherwise by
    :func:`enumerate_parameter_regions` within ``max_cells``."""
    n, d = X.shape
    x = X[:, 0]
    if d == 1 and bias and len(np.unique(x)) == n:
        rank = np.argsort(np.argsort(x))  # position of each point in sorted order
        t = np.arange(n + 1)[:, None]
        up = np.where(rank[None, :] >= t, 1, -1).astype(np.int8)  # w > 0: the points right of threshold t
        cells = np.concatenate([up, -up[1:n]])  # w < 0; t = 0 and t = n would repeat all-on / all-off
        return cells
    arr = enumerate_parameter_regions(torch.as_tensor(X), 1, bias=bias, max_cells=max_cells)
    if not arr.complete:
        raise InvalidInputError(f"measure='count': one neuron on n = {n} points in d = {d} has more than "
                                f"max_cells = {max_cells} regions (Cover's count {cover_count(n, d + bias)}); "
                                "raise max_cells or use measure='volume'")
    return arr.cells.cpu().numpy().astype(np.int8)


def _rank_task_count(task: dict, rng) -> tuple[int, int]:
    """Full-rank count with regions drawn uniformly by count: one data set X ~ N(0, I) per chunk, then for
    every sample each neuron's cell uniformly among the realizable ones (a region is a product of per-neuron
    cells, so this is the uniform distribution over all non-empty regions), output weights random signs."""
    d, n, m, B = task["d"], task["n"], task["m"], task["size"]
    X = _sample_data(task.get("data", "normal"), rng, (1, n, d))[0]
    cells = _neuron_cells(X, task["bias"], task["max_cells"])
    S = torch.as_tensor(cells[rng.integers(0, len(cells), size=(B, m))])  # (B, m, n)
    a = torch.as_tensor(_sample_output(task.get("output_weights", "sign"), rng, B, m))
    Xt = torch.as_tensor(np.concatenate([X, np.ones((n, 1))], axis=1) if task["bias"] else X).expand(B, n, -1)
    return task["cell"], _full_rank_count(Xt, a, _slopes(S, task["alpha"], torch.float64), task)


@dataclass
class FullRankGrid(Result):
    """Fraction of activation regions with a full-rank Jacobian (rank n): of random parameter points
    (``measure="volume"``) or of regions drawn uniformly among the non-empty ones (``measure="count"``).

    Arrays are indexed ``[d, n, m]`` following ``d_values, n_values, m_values``; ``low``/``high`` are Wilson
    95% score intervals of ``fraction`` over ``samples`` draws. ``samplers``: the data, first-layer and
    output-weight distributions used (see :func:`full_rank_fraction`)."""

    d_values: list
    n_values: list
    m_values: list
    samples: int
    full_rank: np.ndarray
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray
    activation: str = "relu"
    alpha: float = 0.0
    bias: bool = True
    seed: int = 0
    workers: int = 1
    seconds: float = 0.0
    measure: str = "volume"
    samplers: dict = field(default_factory=lambda: dict(PRESETS["default"]))

    _summary_fields = ("d_values", "n_values", "m_values", "samples", "fraction", "activation", "measure", "samplers",
                       "seconds")

    def plot(self, ax=None):
        """One heatmap per d: fraction of full rank over n (x) and m (y), with the count line m (d+1) = n
        (below it, full rank is impossible). ``ax``: one Axes per d (a sequence), or None for a new figure.
        Returns the first panel's Axes, like every ``plot``; the others are in ``ax.figure.axes``."""
        import matplotlib.pyplot as plt

        k = len(self.d_values)
        if ax is None:
            fig, axes = plt.subplots(1, k, figsize=(4 * k, 3.5), squeeze=False)
            axes = list(axes[0])
        else:
            axes = list(np.atleast_1d(ax))
            if len(axes) != k:
                raise InvalidInputError(f"plot needs one Axes per input dimension: {k} for d = {self.d_values}, "
                                        f"got {len(axes)}")
            fig = axes[0].figure
        ns, ms = np.asarray(self.n_values), np.asarray(self.m_values)
        for a_i, (axx, d) in enumerate(zip(axes, self.d_values)):
            im = axx.imshow(self.fraction[a_i].T, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis",
                            extent=(-0.5, len(ns) - 0.5, -0.5, len(ms) - 0.5))
            axx.set_xticks(range(len(ns)), [str(v) for v in ns])
            axx.set_yticks(range(len(ms)), [str(v) for v in ms])
            q = d + 1 if self.bias else d
            xs = np.arange(len(ns))
            axx.plot(xs, np.interp(ns / q, ms, np.arange(len(ms)), left=np.nan, right=np.nan), "w--", lw=1)
            axx.set_xlabel("n (samples)")
            axx.set_ylabel("m (neurons)")
            axx.set_title(f"d = {d}: P(rank J = n)")
        fig.colorbar(im, ax=axes)
        return axes[0]


def _int_list(name, values):
    vals = [values] if isinstance(values, (int, np.integer)) else list(values)
    if not vals or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in vals):
        raise InvalidInputError(f"{name} must be positive integers, got {values!r}")
    return [int(v) for v in vals]


def full_rank_fraction(d_values, n_values, m_values, samples: int = 200, seed: int = 0, workers: int | None = None,
                       activation: str = "relu", alpha: float | None = None, bias: bool = True,
                       rtol: float | None = None, measure: str = "volume", max_cells: int = 20_000,
                       preset: str | None = None, data=None, init: str | None = None,
                       output_weights: str | None = None, progress=None) -> FullRankGrid:
    """The phase-transition experiment of Karhadkar et al.: for each (d, n, m), ``samples`` draws of data
    ``X`` (n, d) and a random parameter point (``trainable="first"``); count how often the Jacobian on
    the point's activation region has rank n.

    Samplers: ``data`` ``"normal"`` (X ~ N(0, I), the default), ``"uniform"`` (X ~ U[0, 1]^d) or a
    callable ``(rng, shape) -> array`` (a numpy Generator and ``(B, n, d)``; module-level, so that worker
    processes can receive it); ``init`` of the first layer's ``W``, ``b`` (fan-in d): ``"he"`` (N(0, 2/d),
    the default), ``"torch"`` (PyTorch's ``nn.Linear`` default, U(-1/sqrt(d), 1/sqrt(d)) for both) or
    ``"normal"`` (N(0, 1)); ``output_weights``: ``"sign"`` (random signs, the default), ``"normal"``
    (N(0, 1)) or ``"torch"`` (U(-1/sqrt(m), 1/sqrt(m))). ``preset="paper"`` is the paper's setting
    (X ~ U[0, 1], PyTorch default initialization, v ~ N(0, 1)); explicit samplers override a preset.
    With ``measure="count"`` the first layer is not sampled (regions are drawn by count).
    Full rank needs ``m (d + 1) >= n``; the paper predicts full rank on most regions once
    ``m (d+1)`` exceeds n by a logarithmic factor.

    ``measure``: ``"volume"`` (the above: regions weighted by their probability under the parameter
    distribution) or ``"count"`` (regions drawn uniformly among all non-empty ones: one data set per chunk,
    each neuron's cell uniform among the realizable sign vectors, as in the paper's counting statements;
    closed form for d = 1, else enumerated by LPs within ``max_cells`` cells per neuron: about a second per
    128 samples at d = 2, n = 30, and minutes beyond n = 100). The two differ most for
    d = 1, where random parameters rarely place breakpoints between close points but most regions by count
    do have full rank.

    Work is split into chunks of 128 samples, each with its own seed ``SeedSequence([seed, d, n, m, chunk])``,
    so the result does not depend on ``workers`` (default: every core; processes forked on Linux). Each
    chunk is one batched Jacobian and one batched ``svdvals``. Cells with fewer parameters than samples
    (``m (d + 1) < n``) are 0 without sampling.

    ``progress``: called as ``progress(draws, total, cells=...)`` as chunks finish: the draws made of all
    those to make, and how many grid cells are complete (see :mod:`relulab.progress`)."""
    ds, ns, ms = _int_list("d_values", d_values), _int_list("n_values", n_values), _int_list("m_values", m_values)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InvalidInputError(f"samples must be a positive integer, got {samples!r}")
    if activation not in ("relu", "leaky_relu", "abs"):
        raise InvalidInputError(f"activation must be 'relu', 'leaky_relu' or 'abs', got {activation!r}")
    if activation == "leaky_relu":
        alpha = 0.01 if alpha is None else float(alpha)
        if not 0 < alpha < 1:
            raise InvalidInputError(f"alpha (the leaky slope) must be in (0, 1), got {alpha}")
    else:
        alpha = {"relu": 0.0, "abs": -1.0}[activation]
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidInputError(f"workers must be a positive integer or None, got {workers!r}")
    if measure not in ("volume", "count"):
        raise InvalidInputError(f"measure must be 'volume' or 'count', got {measure!r}")
    if preset is not None and preset not in PRESETS:
        raise InvalidInputError(f"preset must be one of {sorted(PRESETS)} or None, got {preset!r}")
    chosen = dict(PRESETS["default" if preset is None else preset])
    for key, value in (("data", data), ("init", init), ("output_weights", output_weights)):
        if value is not None:
            chosen[key] = value
    if not (callable(chosen["data"]) or chosen["data"] in DATA_SAMPLERS):
        raise InvalidInputError(f"data must be one of {DATA_SAMPLERS} or a callable (rng, shape) -> array, "
                                f"got {chosen['data']!r}")
    if chosen["init"] not in INIT_SAMPLERS:
        raise InvalidInputError(f"init must be one of {INIT_SAMPLERS}, got {chosen['init']!r}")
    if chosen["output_weights"] not in OUTPUT_SAMPLERS:
        raise InvalidInputError(f"output_weights must be one of {OUTPUT_SAMPLERS}, got {chosen['output_weights']!r}")
    t0 = time.time()
    tasks = []
    for cell, (d, n, m) in enumerate(itertools.product(ds, ns, ms)):
        if m * (d + 1 if bias else d) < n:  # fewer columns than rows: never full rank, nothing to sample
            continue
        for c, start in enumerate(range(0, samples, _CHUNK)):
            tasks.append(dict(cell=cell, d=d, n=n, m=m, size=min(_CHUNK, samples - start), bias=bool(bias),
                              alpha=alpha, rtol=rtol, entropy=[int(seed), d, n, m, c], measure=measure,
                              max_cells=int(max_cells), **chosen))
    # big cells first: better load balance across processes
    tasks.sort(key=lambda t: -t["size"] * t["n"] * t["m"] * (t["d"] + 1) * min(t["n"], t["m"] * (t["d"] + 1)))
    counts = np.zeros(len(ds) * len(ns) * len(ms), dtype=np.int64)
    n_proc = min(workers, len(tasks))
    total = sum(t["size"] for t in tasks)
    left = np.bincount([t["cell"] for t in tasks], minlength=counts.size)  # chunks to come per cell
    done = [0]

    def finish(task, cell, k):
        counts[cell] += k
        left[cell] -= 1
        done[0] += task["size"]
        notify(progress, done[0], total, cells=int(np.count_nonzero(left == 0)))

    notify(progress, 0, total, cells=int(np.count_nonzero(left == 0)))
    if n_proc <= 1:
        for task in tasks:
            finish(task, *_rank_task(task))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # fork on Linux: no re-import of torch, no __main__ guard needed; one torch thread per process
        method = "fork" if "fork" in mp.get_all_start_methods() and sys.platform.startswith("linux") else "spawn"
        with ProcessPoolExecutor(max_workers=n_proc, mp_context=mp.get_context(method)) as ex:
            for task, (cell, k) in zip(tasks, ex.map(_rank_task, [dict(t, threads=1) for t in tasks], chunksize=1)):
                finish(task, cell, k)
    counts = counts.reshape(len(ds), len(ns), len(ms))
    frac = counts / samples
    lo, hi = _wilson(counts, samples)
    return FullRankGrid(d_values=ds, n_values=ns, m_values=ms, samples=samples, full_rank=counts, fraction=frac,
                        low=lo, high=hi, activation=activation, alpha=alpha, bias=bool(bias), seed=int(seed),
                        workers=n_proc, seconds=time.time() - t0, measure=measure,
                        samplers={k: (getattr(v, "__name__", repr(v)) if callable(v) else v) for k, v in chosen.items()})
