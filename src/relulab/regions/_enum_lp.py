"""Full-space enumeration with facet-represented cells and batched LP feasibility (polynomial in d).

Cells are kept as the list of their inequalities (never their vertices) plus an interior witness:
a cell at max layer ``l`` is ``{y in chart : r(y) >= 0 for the rows of its decided units}``, where a
unit with winner ``w`` contributes ``p_w - p_b >= 0`` for every other valid piece ``b``. Per cell only
the pattern, the witness and the chart are stored; the rows are recomputed from the pattern (one
forced-winner pass, :mod:`._enum_maps`) when a layer is processed.

Refinement of layer ``l`` (all cells of a batch at once):

1. For every unit ``u`` and every valid piece ``a`` other than the winner at the witness, the
   Chebyshev LP ``max tau  s.t.  r_i(y) >= tau |grad r_i|,  (p_a - p_b)(y) >= tau |grad (p_a - p_b)|``
   over the cell (the largest ball inside the part of the cell where ``a`` wins) decides whether
   ``a`` wins on an open subset of the cell (``tau* > 0``). Units where no other piece can win are
   decided for the whole cell; the others "cross" it.
2. In rounds, every cell is split by the next unit crossing its parent: the same LP on the current
   sub-cell gives the pieces that win somewhere in it and, for each, the centre of the largest ball
   in its part, which becomes that child's witness (interior by construction).

Identical pieces follow the lowest-index rule of :meth:`PLNet.pattern`: a row ``p_a - p_b`` that is
identically zero (all coefficients zero, with zero rounding error) excludes ``a`` when ``b < a`` and
is no constraint when ``b > a``.

Certificates (nothing rests on a tolerance):

* every reported region's witness is checked to lie strictly inside it: the forced-winner rows at
  the witness must be positive beyond their proven float64 error bound, or are decided in exact
  rational arithmetic (:class:`._enum_maps.ExactMaps`). A witness that the chart-to-input rounding
  put on a wall of a region a few units in the last place thick is replaced by a float64 point
  found from the region's exact largest-margin LP and checked the same way; where none is found,
  :class:`DegenerateGeometryError` is raised. So every listed pattern is a full-dimensional region.
* every "yes" (a piece wins on an open part of a cell) is a point proven inside that part: the float
  LP's centre, with every row positive beyond its error bound or, failing that, in rational
  arithmetic; otherwise the exact largest-margin LP (:func:`._exact.exact_max_margin`) proves the
  part empty or gives a float64 point inside it (or raises when the part holds none). The float
  simplex's tolerance can otherwise report a part between walls 1e-12 apart as open.
* completeness rests on the "no open part where ``a`` wins" decisions. Each one is proven by the
  LP's dual multipliers ``lam, nu >= 0`` (``sum nu > 0``): the affine function
  ``F = sum lam_i r_i + sum nu_b (p_a - p_b)`` is positive wherever ``a`` strictly wins inside the
  cell, so ``F <= 0`` on the chart's bounding box proves that nowhere does. The bound is checked with
  the proven error bounds of every coefficient; where it is inconclusive (a boundary touching the
  cell without crossing it, identical pieces), the multipliers' support is re-solved exactly and
  checked in rational arithmetic; if that fails too, :class:`DegenerateGeometryError` is raised.

Before any LP, a "no" is tried from the cell's enclosing simplex: ``d + 1`` of its rows whose
intersection is a bounded simplex containing it (the pyramid itself for the charts' cells; for a
cell made by an LP, the rows tight at its Chebyshev centre, whose multipliers positively span 0; a
sub-cell keeps its parent's). Writing ``p_a - p_b`` in the basis of those rows gives its largest value
on the simplex and, when that is negative, multipliers of the same certificate with ``F`` a negative
constant, checked in float64 as above. Only the decisions it does not prove go to an LP.

Every other step (the simplex method, the choice of witnesses) is a float64 heuristic whose outcome is
certified as above, so ``certified`` is True for every complete result this engine returns.

Charts: all of R^d is covered by the ``2^d`` orthants of ``d`` first-layer boundaries
(:class:`OrthantCharts`: every region lies in exactly one, so it is refined once, and the chosen
units are decided by the chart) where the first layer has ``d`` independent two-piece units, and by
the ``d + 1`` compactification pyramids of ``space.py`` otherwise (a region meeting several pyramids
is refined in each: 34,814 cells for 6,890 regions on an 8-12-1 net, against 6,634 with orthants).
Either way every chart is a bounded simplex in its projective coordinates, so every LP is bounded.
A box is one chart (the box itself) when it is moderate, or the pyramids around its centre clipped
by its faces when it is much larger than the network's length scale.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
import numpy as np
import torch

from relulab.core.errors import DegenerateGeometryError
from relulab.core.layers import Dense
from relulab.progress import notify
from relulab.regions._enum_eval import median_tie_distance
from relulab.regions._enum_maps import (SAFETY, ExactX, MapEvaluator, dyadic_ints, frac_array, gamma, int_solve_den,
                                        other_rows, rows_of_layer, solve_nonneg)
from relulab.regions._lp_batch import OPTIMAL, lp_batch, lp_batch_dual

# a piece wins on an open part of a cell when the Chebyshev radius of that part exceeds this (in
# chart coordinates of size about 1); smaller radii are decided by the certificates instead
TAU_FEASIBLE = 1e-12
CUBE_RATIO = 1e3
# entries of the LP dictionaries solved at once
LP_ENTRIES = 400_000
USE_SIMPLEX = True
# start LPs from the cell's simplex rows by the dual simplex (see LPEngine._solve)
USE_DUAL = True
# decide by exact signs where the layers allow it (see LPEngine._sign_no)
USE_SIGNS = True
# prove a "no" first by an exact identity in the input space (see LPEngine._identity_system)
USE_IDENTITY = True
# reuse such identities in the region's cells of other charts (see LPEngine._known_no)
USE_SHARED_NO = True
# decisions kept for that (their keys hold the region's pattern; the set is emptied when full)
SHARED_NO_MAX = 100_000
# all of R^d in the orthants of d first-layer boundaries (see OrthantCharts) where they apply
USE_ORTHANTS = True
ORTHANT_MAX_D = 16
# smallest |R_dd| / |R_11| of the chosen rows' pivoted QR (unit gradients) for orthant charts
ORTHANT_MIN_RCOND = 1e-6
# the smallest subnormal float64: the absolute error of a product that underflows
TINY = 2.0**-1074


class Charts:
    """Per chart k: input map ``Z[k]`` (d, d+1) with errors ``E[k]``, bias scale ``S[k]`` (d+1,),
    rows ``rows[k]`` (nc, d+1) with errors, a start witness ``w0[k]`` and a bound ``ymax[k]`` (d,) on
    ``|y|`` over the chart; and the same data exactly (Fractions) on demand."""

    def __init__(self, d, dt, dev, box, R0):
        self.d, self.box, self.R0 = d, box, R0
        m1 = d + 1
        eye = torch.eye(d, dtype=dt, device=dev)
        if box is not None:
            lo, hi = box
            far = float(torch.maximum(lo.abs(), hi.abs()).max())
            self.cube = far <= CUBE_RATIO * R0
        else:
            self.cube = False
        if self.cube:
            self.kind = "cube"
            self.A = None
            self.c = None
            Z = torch.cat([torch.zeros(d, 1, dtype=dt, device=dev), eye], 1)[None]
            E = torch.zeros_like(Z)
            S = torch.zeros(1, m1, dtype=dt, device=dev)
            S[0, 0] = 1.0
            rows, erows = [], []
            w0 = ((lo + hi) / 2)[None]
            self.ymax = torch.maximum(lo.abs(), hi.abs())[None] * (1 + 1e-12)
        else:
            self.kind = "pyramids"
            A = self.A = _chart_normals(d, dt, dev)
            K = d + 1
            if box is None:
                # the apex: a fixed generic point near 0, not the origin, through which whole families
                # of boundaries pass (bias-free layers, max-pooling of raw inputs): there every cell
                # of every pyramid would touch them
                g = torch.Generator().manual_seed(0xA9E)
                self.c = (0.1 * R0 * (2 * torch.rand(d, generator=g, dtype=torch.float64) - 1)).to(dtype=dt, device=dev)
            else:
                self.c = (box[0] + box[1]) / 2
            S = torch.cat([torch.ones(K, 1, dtype=dt, device=dev), -A], 1)  # s = 1 - a_k . y
            G = (R0 * eye).expand(K, d, d).clone()
            # X = c s + R0 y
            Z = self.c[None, :, None] * S[:, None, :]
            Z[:, :, 1:] += G
            E = gamma(2) * self.c.abs()[None, :, None] * S.abs()[:, None, :]
            E[:, :, 1:] += gamma(2) * R0 * eye
            E = E * SAFETY
            # cone rows (a_k - a_j) . y >= 0 for j != k, then s >= 0
            diff = A[:, None, :] - A[None, :, :]  # (K, K, d)
            keep = ~torch.eye(K, dtype=torch.bool, device=dev)
            cone = diff[keep].reshape(K, K - 1, d)
            cone_rows = torch.cat([torch.zeros(K, K - 1, 1, dtype=dt, device=dev), cone], 2)
            cone_err = gamma(1) * cone_rows.abs() * SAFETY
            rows, erows = [cone_rows, S[:, None, :]], [cone_err, torch.zeros_like(S[:, None, :])]
            dirn = A * (d / (d + 1.0))
            w0 = dirn
            self.ymax = torch.full((K, d), d * (1 + 1e-6), dtype=dt, device=dev)
        if box is not None:
            lo, hi = box
            lo_rows = Z - lo[None, :, None] * S[:, None, :]
            hi_rows = hi[None, :, None] * S[:, None, :] - Z
            berr = (E + gamma(2) * (Z.abs() + lo.abs()[None, :, None] * S.abs()[:, None, :])) * SAFETY
            herr = (E + gamma(2) * (Z.abs() + hi.abs()[None, :, None] * S.abs()[:, None, :])) * SAFETY
            rows += [lo_rows, hi_rows]
            erows += [berr, herr]
            if not self.cube:
                # start witnesses: along the centroid direction, before any box face
                val0 = torch.cat([lo_rows, hi_rows], 1)
                slope = (val0[:, :, 1:] * dirn[:, None, :]).sum(-1)
                c0 = val0[:, :, 0]
                t = torch.where(slope < 0, c0 / (-slope).clamp_min(1e-300), torch.full_like(c0, 2.0)).amin(1)
                w0 = dirn * (0.5 * t.clamp(max=1.0))[:, None]
        self.Z, self.E, self.S = Z, E, S
        self.rows = torch.cat(rows, 1)
        self.erows = torch.cat(erows, 1)
        self.w0 = w0
        self.n = Z.shape[0]

    def to_x(self, ch, y):
        """Input coordinates of chart points."""
        if self.cube:
            return y.clone()
        s = 1.0 - (self.A[ch] * y).sum(1, keepdim=True)
        x = self.R0 * y / s
        return x if self.c is None else x + self.c

    def to_chart(self, R, ER, ch):
        """Maps ``[beta, alpha]`` of x (..., m1) (leading dim C, charts ``ch``) as maps of y times s,
        with errors."""
        if self.cube:
            return R, ER
        d = self.d
        shape = (R.shape[0],) + (1,) * (R.dim() - 2)
        a = self.A[ch].reshape(*shape, d)
        beta, alpha = R[..., 0], R[..., 1:]
        ebeta, ealpha = ER[..., 0], ER[..., 1:]
        if self.c is not None:
            c = self.c
            ac = (alpha * c).sum(-1)
            e0 = (ebeta + (ealpha * c.abs()).sum(-1) + gamma(d + 1) * (beta.abs() + (alpha.abs() * c.abs()).sum(-1))
                  + (d + 1) * TINY) * SAFETY
            beta = beta + ac
            ebeta = e0
        R0 = self.R0
        grad = R0 * alpha - beta[..., None] * a
        egrad = (R0 * ealpha + ebeta[..., None] * a.abs() + gamma(2) * (R0 * alpha.abs() + beta.abs()[..., None] * a.abs())
                 + 3 * TINY) * SAFETY
        return torch.cat([beta[..., None], grad], -1), torch.cat([ebeta[..., None], egrad], -1)

    def exact(self, k):
        """``(Z, S, rows)`` of chart ``k`` as Fraction arrays."""
        d = self.d
        one, zero = Fraction(1), Fraction(0)
        if self.cube:
            Z = np.array([[zero] + [one if i == j else zero for j in range(d)] for i in range(d)], dtype=object)
            S = np.array([one] + [zero] * d, dtype=object)
            rows = []
        else:
            A = frac_array(self.A)
            R0 = Fraction(self.R0)
            S = np.array([one] + list(-A[k]), dtype=object)
            Z = np.array([[zero] + [R0 if i == j else zero for j in range(d)] for i in range(d)], dtype=object)
            if self.c is not None:
                Z = Z + np.outer(frac_array(self.c), S)
            rows = [np.array([zero] + list(A[k] - A[j]), dtype=object) for j in range(d + 1) if j != k]
            rows.append(S)
        if self.box is not None:
            lo, hi = frac_array(self.box[0]), frac_array(self.box[1])
            rows += [Z[i] - lo[i] * S for i in range(d)]
            rows += [hi[i] * S - Z[i] for i in range(d)]
        return Z, S, rows


class OrthantCharts:
    """All of R^d as the ``2^d`` closed orthants of ``d`` first-layer boundaries: one chart per
    orthant, so that every region, lying in exactly one of them, is enumerated once.

    The pyramid charts of :class:`Charts` cover R^d with ``d + 1`` cones, and a region meets on
    average several of them (8-12-1: 34,814 cells for 6,890 regions): each of its cells is refined,
    decided and certified separately. Here ``d`` units ``u_j`` of the first max layer with two valid
    pieces ``a_j < b_j`` and linearly independent rows ``h_j = p_{b_j} - p_{a_j}`` (exact, from the
    network's float64 weights) are chosen, best conditioned first (QR with column pivoting), and
    chart ``k`` is the orthant ``sigma_j h_j(x) >= 0`` with ``sigma_j = -1`` where bit ``j`` of ``k``
    is set. Each orthant is the image of the standard simplex ``y >= 0``, ``s = 1 - sum y >= 0``
    under the projective map ``x = x0 + M (sigma * y) / s`` with ``x0 = A^-1 (-beta)`` and
    ``M = A^-1 diag(n) rho`` (``A``, ``beta``: the rows ``h_j``; ``n_j`` a power of two near
    ``|grad h_j|``, ``rho`` the length scale), so ``h_j(x) s = sigma_j n_j rho y_j``: the chart's
    facets are exactly the units' boundaries, and inside a chart every chosen unit's winner is known
    (``b_j`` where ``sigma_j = +1``, else ``a_j``) without an LP. ``x0`` and ``M`` are exact
    rationals; their float64 roundings carry proven error bounds into every row, and the exact steps
    use the rationals, so nothing rests on the rounding. The orthants' union is R^d and their
    interiors are disjoint, in exact arithmetic."""

    kind = "orthants"
    cube = False
    box = None

    def __init__(self, d, dt, dev, R0, units, pieces, x0, M):
        """``units`` (d,) and ``pieces`` (d, 2) of the chosen first-layer units; ``x0`` (d,) and
        ``M`` (d, d) Fraction arrays."""
        self.d, self.R0 = d, R0
        self.units = torch.tensor(units, dtype=torch.long, device=dev)
        self.pieces = torch.tensor(pieces, dtype=torch.long, device=dev)
        self.unit_pieces = [(int(u), int(a), int(b)) for u, (a, b) in zip(units, pieces)]  # for the exact steps
        self.n = 1 << d
        D = math.lcm(*[v.denominator for v in list(x0) + list(M.reshape(-1))])
        self.Xn = [int(v * D) for v in x0]
        self.Mn = [[int(v * D) for v in row] for row in M]
        self.D = D
        self.x0_exact, self.M_exact = x0, M

        def rounded(F):
            f = np.array([float(v) for v in F.reshape(-1)], dtype=np.float64)
            err = np.array([abs(Fraction(a) - v) for a, v in zip(f, F.reshape(-1))], dtype=object)
            e = np.array([math.nextafter(float(v), math.inf) for v in err], dtype=np.float64)
            t = lambda a: torch.tensor(a.reshape(F.shape), dtype=dt, device=dev)
            return t(f), t(e)

        self.x0, self.x0err = rounded(x0)
        self.M, self.Merr = rounded(M)
        self.Mabs = self.M.abs()
        m1 = d + 1
        rows = torch.zeros(m1, m1, dtype=dt, device=dev)
        rows[torch.arange(d), torch.arange(1, m1)] = 1.0  # y_j >= 0
        rows[d, 0] = 1.0
        rows[d, 1:] = -1.0  # s = 1 - sum y >= 0
        self.rows = rows[None].expand(self.n, m1, m1)
        self.erows = torch.zeros(1, m1, m1, dtype=dt, device=dev).expand(self.n, m1, m1)
        self.w0 = torch.full((1, d), 1.0 / (d + 1), dtype=dt, device=dev).expand(self.n, d)
        self.ymax = torch.full((1, d), 1.0 + 1e-12, dtype=dt, device=dev).expand(self.n, d)
        self._bits = torch.arange(d, device=dev)

    def sigma(self, ch):
        """(C, d) signs of the charts ``ch``."""
        return 1.0 - 2.0 * ((ch[:, None] >> self._bits) & 1).to(self.M.dtype)

    def winners(self, ch):
        """(C, d) winners of the chosen units inside the charts ``ch``."""
        neg = ((ch[:, None] >> self._bits) & 1).bool()
        return torch.where(neg, self.pieces[:, 0][None], self.pieces[:, 1][None])

    def to_x(self, ch, y):
        s = 1.0 - y.sum(1, keepdim=True)
        return self.x0 + ((self.sigma(ch) * y) @ self.M.T) / s

    def to_chart(self, R, ER, ch):
        """Maps ``[beta, alpha]`` of x (..., m1) (leading dim C, charts ``ch``) as maps of y times s:
        ``[beta', sigma * (alpha M) - beta']`` with ``beta' = beta + alpha . x0``, with errors."""
        d = self.d
        beta, alpha = R[..., 0], R[..., 1:]
        ebeta, ealpha = ER[..., 0], ER[..., 1:]
        aabs = alpha.abs()
        x0a = self.x0.abs()
        # gamma bounds relative rounding; products that underflow lose up to TINY each, absolutely
        bp = beta + alpha @ self.x0
        ebp = (ebeta + ealpha @ x0a + aabs @ self.x0err + gamma(d + 1) * (beta.abs() + aabs @ x0a) + (d + 1) * TINY) * SAFETY
        h = alpha @ self.M
        eh = (ealpha @ self.Mabs + aabs @ self.Merr + gamma(d) * (aabs @ self.Mabs) + d * TINY) * SAFETY
        shape = (R.shape[0],) + (1,) * (R.dim() - 2) + (d,)
        sg = self.sigma(ch).reshape(shape)
        g = sg * h - bp[..., None]
        eg = (eh + ebp[..., None] + gamma(1) * (h.abs() + bp.abs()[..., None]) + 2 * TINY) * SAFETY
        return torch.cat([bp[..., None], g], -1), torch.cat([ebp[..., None], eg], -1)

    def exact_row(self, v, k):
        """An exact map of x (ints, any positive scale) as integers, a positive multiple of its
        row in chart ``k``."""
        c0 = v[0] * self.D + sum(a * b for a, b in zip(v[1:], self.Xn))
        h = [sum(v[1 + i] * self.Mn[i][j] for i in range(self.d)) for j in range(self.d)]
        return [c0] + [(-h[j] if (k >> j) & 1 else h[j]) - c0 for j in range(self.d)]

    def exact(self, k):
        """``(Z, S, rows)`` of chart ``k`` as Fraction arrays."""
        d = self.d
        one, zero = Fraction(1), Fraction(0)
        sg = [-1 if (k >> j) & 1 else 1 for j in range(d)]
        S = np.array([one] + [-one] * d, dtype=object)
        Z = np.array([[self.x0_exact[i]] + [sg[j] * self.M_exact[i, j] - self.x0_exact[i] for j in range(d)]
                      for i in range(d)], dtype=object)
        rows = [np.array([zero] + [one if i == j else zero for i in range(d)], dtype=object) for j in range(d)]
        rows.append(S)
        return Z, S, rows


def orthant_charts(net, d, dt, dev, R0, exact=None):
    """:class:`OrthantCharts` for ``net``, or None where they do not apply: fewer than ``d`` first-
    layer units with two valid pieces and independent rows, rows too ill-conditioned to be charts
    (the orthants would be slivers), or more than ``2 ** ORTHANT_MAX_D`` charts. ``exact``: a
    function giving the caller's :class:`ExactX` of ``net`` (built only where needed)."""
    if not USE_ORTHANTS or d > ORTHANT_MAX_D or not net.max_units:
        return None
    valid = net.max_units[0].valid.cpu().numpy()
    two = np.flatnonzero(valid.sum(1) == 2)
    if two.size < d:
        return None
    zid = np.array([[0] + [1 if i == j else 0 for j in range(d)] for i in range(d)], dtype=object)
    pat = np.zeros(net.n_units, dtype=np.int64)
    P, e = (exact() if exact else ExactX(net)).maps(zid, 0, pat, 0)[0]
    scale = Fraction(1) if e is None else Fraction(1, 1 << e)
    rows, pieces, units = [], [], []
    for u in two.tolist():
        a, bb = np.flatnonzero(valid[u]).tolist()
        r = [Fraction(v) * scale for v in (P[u, bb] - P[u, a])]
        if any(r[1:]):
            rows.append(r)
            pieces.append((a, bb))
            units.append(u)
    if len(rows) < d:
        return None
    G = np.array([[float(v) for v in r[1:]] for r in rows])
    G /= np.linalg.norm(G, axis=1, keepdims=True)
    piv, diag = _pivoted_rows(G, d)
    if diag.size < d or diag[d - 1] < ORTHANT_MIN_RCOND * diag[0]:
        return None
    pick = sorted(piv.tolist())
    A = [rows[i] for i in pick]
    nrm = [np.linalg.norm([float(v) for v in r[1:]]) for r in A]
    rho = Fraction(R0)
    rhs = [[Fraction(2.0 ** round(math.log2(nrm[j]))) * rho if i == j else Fraction(0) for i in range(d)]
           + [-A[j][0]] for j in range(d)]
    sol = _solve_fractions([r[1:] for r in A], rhs)
    if sol is None:
        return None
    M = np.array([[sol[i][j] for j in range(d)] for i in range(d)], dtype=object)
    x0 = np.array([sol[i][d] for i in range(d)], dtype=object)
    return OrthantCharts(d, dt, dev, R0, [units[i] for i in pick], [pieces[i] for i in pick], x0, M)


def _pivoted_rows(G, k):
    """``k`` rows of ``G`` (m, d) picked as a column-pivoted QR of ``G.T`` picks them (the row with
    the largest component orthogonal to those picked so far, next), and those components' norms
    (the ``|R_jj|``), fewer where the rest vanish. Gram-Schmidt, each projection applied twice
    ("twice is enough": orthogonal to working precision). NumPy only, which spares a fresh
    process the import of scipy.linalg (a quarter of a second, a sixth of a small count)."""
    R = np.array(G, dtype=np.float64)
    picks, diag = [], []
    for _ in range(min(k, R.shape[0])):
        nrm = np.linalg.norm(R, axis=1)
        nrm[picks] = -1.0
        j = int(nrm.argmax())
        if not nrm[j] > 0:
            break
        picks.append(j)
        diag.append(nrm[j])
        q = R[j] / nrm[j]
        for _ in range(2):
            R -= np.outer(R @ q, q)
    return np.array(picks, dtype=np.int64), np.array(diag)


def _solve_fractions(A, B):
    """``X`` with ``A X = B`` (Fraction lists; ``A`` square), or None when ``A`` is singular (then
    ``A mu = 0`` has a solution other than 0: the free variables set to 1)."""
    n = len(A)
    if any(solve_nonneg(A, [Fraction(0)] * n, [1] * n)):
        return None
    cols = [solve_nonneg(A, [row[j] for row in B], [0] * n) for j in range(len(B[0]))]
    return [[col[i] for col in cols] for i in range(n)]


def _chart_normals(d, dt, dev) -> torch.Tensor:
    """The pyramids' normals: a regular simplex's (:func:`relulab.regions.space._simplex_normals`)
    turned by a fixed, seeded random rotation.

    The SVD gives normals aligned with the coordinate axes up to rounding (at d = 3, ``a_0`` is
    ``-e_2`` plus entries of 1e-17). A cone generator ``-a_j`` that is a hair off a network wall's
    direction (axis-parallel walls of max-pooling, convolutions, inputs read one at a time) meets
    the wall ~1e16 length scales out, leaving a part of the pyramid that is open in exact arithmetic
    but thinner than float64's resolution in chart coordinates: no witness can be given there, and
    the enumeration would have to raise on a valid network. Turned generically, no generator is
    within rounding of such a direction (exact coincidences, which the engine's identities and
    exact certificates handle, remain exact)."""
    from relulab.regions.space import _simplex_normals

    A = _simplex_normals(d, torch.float64, "cpu")
    g = torch.Generator().manual_seed(0xC4A27)
    Q, Rq = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    Q = Q * torch.sign(torch.diagonal(Rq))[None]
    return (A @ Q).to(dtype=dt, device=dev)


def length_scale(net, ev: MapEvaluator) -> float:
    """Median distance from 0 to the first max layer's tie hyperplanes (conditioning only)."""
    if not net.max_units:
        return 1.0
    d = net.input_dim
    Z = torch.cat([torch.zeros(1, d, 1, dtype=net.dtype, device=net.device),
                   torch.eye(d, dtype=net.dtype, device=net.device)[None]], 2)
    S = torch.zeros(1, d + 1, dtype=net.dtype, device=net.device)
    S[0, 0] = 1
    pat = torch.zeros(1, net.n_units, dtype=torch.long, device=net.device)
    P, _ = ev.maps(Z, torch.zeros_like(Z), S, pat, 0)[0]
    P = P[0]
    return median_tie_distance(P[:, :, 0], P[:, :, 1:], net.max_units[0].valid)


def _float_point_in(rows, y):
    """A float64 point where every row ``c + g . x`` (Fractions) is positive, near the exact point
    ``y`` inside them, or None. Rounding every coordinate of ``y`` can leave a region thinner than a
    few units in the last place; instead all coordinates but one are rounded and the free one is
    taken inside the exact interval the rows leave it (each coordinate in turn)."""
    d = len(y)
    for free in reversed(range(d)):
        fixed = [Fraction(float(v)) for v in y]
        lo, hi = None, None
        ok = True
        for r in rows:
            c = r[0] + sum(g * v for j, (g, v) in enumerate(zip(r[1:], fixed)) if j != free)
            g = r[1 + free]
            if g == 0:
                ok = c > 0
            elif g > 0:
                lo = -c / g if lo is None else max(lo, -c / g)
            else:
                hi = c / -g if hi is None else min(hi, c / -g)
            if not ok:
                break
        if not ok or (lo is not None and hi is not None and lo >= hi):
            continue
        m = y[free] if lo is None or hi is None else (lo + hi) / 2
        cand = float(m)
        for v in (cand, math.nextafter(cand, math.inf), math.nextafter(cand, -math.inf)):
            if (lo is None or Fraction(v) > lo) and (hi is None or Fraction(v) < hi):
                fixed[free] = Fraction(v)
                return [float(f) for f in fixed]
    return None


class _Stop(Exception):
    pass


class LPEngine:
    """See the module docstring. ``run()`` then ``result()``."""

    def __init__(self, net, box, max_regions, time_limit, memory_budget, progress=None, sink=None, chart_ids=None):
        """``chart_ids``: enumerate only the cells of these charts (orthant charts hold disjoint sets
        of regions, so parts of them can run in separate processes)."""
        self.net = net
        self.chart_ids = chart_ids
        self.dev, self.dt = net.device, net.dtype
        self.d = d = net.input_dim
        self.ev = MapEvaluator(net)
        self.exact_maps = None
        self.box = box
        self.max_regions = max_regions
        self.deadline = None if time_limit is None else time.perf_counter() + float(time_limit)
        self.memory_budget = memory_budget
        self.progress = progress
        self.layers = net.max_units
        self.L = len(self.layers)
        self.n_units = net.n_units
        self.R0 = length_scale(net, self.ev)
        self.charts = (orthant_charts(net, d, self.dt, self.dev, self.R0, self._exact_maps) if box is None else None) \
            or Charts(d, self.dt, self.dev, box, self.R0)
        # a region lies in one orthant chart: nothing to share between charts
        self.share = USE_SHARED_NO and self.charts.kind != "orthants"
        self.stopped_by = None
        self.sink = sink
        self.out_pat, self.out_x = [], []
        self.out_nbytes = 0
        # the layers' valid-piece masks as NumPy arrays (the exact steps index them per row)
        self.valid_np = [m.valid.cpu().numpy() for m in self.layers]
        # the identities' exact columns that do not depend on the pattern: each chart unit's row by its
        # sign bit (built on first use) and the bias scale s
        self._chart_cols = {}
        self._s_col = np.array([1] + [0] * d, dtype=object)
        # network row j of a cell -> (layer, unit, slot); rows of the layers before each layer
        self._row_tab = [(i, uu, sl) for i, v in enumerate(self.valid_np) for uu in range(v.shape[0])
                         for sl in range(v.shape[1] - 1)]
        self._row_ends = np.cumsum([0] + [v.shape[0] * (v.shape[1] - 1) for v in self.valid_np]).tolist()
        self.n_regions = 0
        self.n_cells_out = 0
        # regions are deduplicated as they are found, by their patterns packed into int64 words
        # (exact: the packing is injective), so per region only its key, pattern (int8) and witness
        # stay resident, and a streamed region only its key
        kmax = max([int(m.valid.shape[1]) for m in self.layers] + [2])
        self.bits = max(1, (kmax - 1).bit_length())
        self.per_word = 62 // self.bits
        self.words = max(1, -(-self.n_units // self.per_word))
        self.keys = torch.zeros(0, self.words, dtype=torch.long, device=self.dev)
        self.hkeys = torch.zeros(0, dtype=torch.long, device=self.dev)
        self.stats = {"lps": 0, "exact_certificates": 0, "float_certificates": 0, "exact_witnesses": 0, "cells": 0,
                      "exact_cached": 0, "simplex_no": 0, "sign_no": 0, "identities": 0,
                      "shared_no": 0}
        self._cert_cache = {}
        self._signs = [self._sign_tables(l) for l in range(self.L)]
        self._shared_no = set()
        self._zid = np.array([[0] + [1 if i == j else 0 for j in range(d)] for i in range(d)], dtype=object)
        budgeted = max_regions is not None or time_limit is not None
        self.cap = 8 if budgeted else 2048
        self.cap_max = 2048

    # ------------------------------------------------------------------ budgets
    def _check_time(self):
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.stopped_by = "time_limit"
            raise _Stop

    # ------------------------------------------------------------------ driver
    def run(self):
        ch = self.charts
        ids = torch.arange(ch.n, device=self.dev) if self.chart_ids is None else \
            torch.as_tensor(self.chart_ids, dtype=torch.long, device=self.dev)
        C = ids.numel()
        pat = torch.full((C, self.n_units), -1, dtype=torch.int8, device=self.dev)
        # a simplex around every cell (row indices, -1: none known): a pyramid is one (its d cone rows
        # and s >= 0 are the first d + 1 chart rows); a child inherits its parent's or gets its own
        sx = torch.arange(self.d + 1, device=self.dev).expand(C, -1).clone()
        if ch.cube:
            sx.fill_(-1)
        start = {"pat": pat, "y": ch.w0[ids].clone(), "ch": ids, "l": 0, "stage": "start", "sx": sx}
        stack = [start]
        b = None
        try:
            while stack:
                self._check_time()
                b = None
                b = self._gather(stack)
                n = b["y"].shape[0]
                if n == 0:
                    continue
                if n > self.cap:
                    stack += self._split(b)
                    continue
                mem = sum(sum(t.numel() * t.element_size() for t in bb.values() if isinstance(t, torch.Tensor))
                          for bb in stack + [b]) + self._out_bytes()
                if mem > self.memory_budget:
                    self.stopped_by = "memory"
                    raise _Stop
                if b["l"] == self.L:
                    self._emit(b)
                    continue
                new = self._start(b) if b["stage"] == "start" else self._round(b)
                for bb in stack:
                    for k in self._DERIVED:
                        bb.pop(k, None)
                stack += new
        except _Stop:
            if self.stopped_by in ("time_limit", "memory"):
                self._harvest(stack + ([b] if b is not None else []))
        self.complete = self.stopped_by is None

    def _harvest(self, batches):
        """On a time or memory stop: the regions of the unfinished cells' witnesses (each witness is
        interior to its cell, so its full pattern is a region when float64 proves every unit's winner
        strictly ahead there; the others are left out)."""
        for bb in batches:
            if bb["y"].shape[0] == 0:
                continue
            x = self.charts.to_x(bb["ch"], bb["y"])
            p = self.net.pattern(x.reshape(-1, *self.net.input_shape)).to(torch.int8)
            good = self._verify(p.long(), x, exact=False)
            if self.box is not None:
                good &= ((x > self.box[0]) & (x < self.box[1])).all(1)
            self._add(p[good], x[good])

    def _gather(self, stack):
        """The top batch, merged with the other waiting batches at the same step (larger batches
        amortize the per-operation cost; the deepest step still goes first)."""
        b = stack.pop()
        key = (b["l"], b["stage"])
        n = b["y"].shape[0]
        if n >= self.cap:
            return b
        parts, i = [b], len(stack) - 1
        while i >= 0 and n < self.cap:
            o = stack[i]
            if (o["l"], o["stage"]) == key and n + o["y"].shape[0] <= self.cap:
                parts.append(stack.pop(i))
                n += o["y"].shape[0]
            i -= 1
        if len(parts) == 1:
            return b
        if any("P" not in p for p in parts):
            for p in parts:
                for k in self._DERIVED:
                    p.pop(k, None)
        return {k: (torch.cat([p[k] for p in parts]) if isinstance(v, torch.Tensor) else v) for k, v in b.items()}

    def _out_bytes(self):
        return self.out_nbytes + self.keys.numel() * 8 + self.hkeys.numel() * 8

    @staticmethod
    def _take(b, idx):
        return {k: (v[idx] if isinstance(v, torch.Tensor) else v) for k, v in b.items()}

    def _split(self, b):
        n = b["y"].shape[0]
        parts = []
        for s in range(0, n, self.cap):
            parts.append(self._take(b, slice(s, min(n, s + self.cap))))
        return parts[::-1]

    # ------------------------------------------------------------------ rows
    def _cell_rows(self, b, maps):
        """Chart rows and the rows of every decided unit of layers < l (C, nf, m1) with errors."""
        ch = self.charts
        R = [ch.rows[b["ch"]]]
        ER = [ch.erows[b["ch"]]]
        l = b["l"]
        for i in range(l):
            P, EP = maps[i]
            w = b["pat"][:, self.net.layer_slice(i)].long()
            r, er = other_rows(P, EP, w, self.layers[i].valid)
            r, er = self._to_chart(r, er, b["ch"])
            C = r.shape[0]
            R.append(r.reshape(C, -1, r.shape[-1]))
            ER.append(er.reshape(C, -1, r.shape[-1]))
        return torch.cat(R, 1), torch.cat(ER, 1)

    def _current_rows(self, b):
        """Fixed rows plus the rows of the units of layer l decided so far."""
        l = b["l"]
        w = b["pat"][:, self.net.layer_slice(l)].long()
        dec = w >= 0
        r, er = other_rows(b["P"], b["EP"], w.clamp_min(0), self.layers[l].valid)
        r = r * dec[:, :, None, None]
        er = er * dec[:, :, None, None]
        r, er = self._to_chart(r, er, b["ch"])
        C = r.shape[0]
        return torch.cat([b["Rf"], r.reshape(C, -1, r.shape[-1])], 1), torch.cat([b["ERf"], er.reshape(C, -1, r.shape[-1])], 1)

    def _witness_winner(self, P, y, valid):
        """(C, U) winner of every unit at the witnesses ``y`` (input coordinates; lowest index among
        equal values)."""
        v = P[..., 0] + (P[..., 1:] * y[:, None, None, :]).sum(-1)
        v = v.masked_fill(~valid, -math.inf)
        return v.argmax(-1)

    # ------------------------------------------------------------------ maps
    def _xmaps(self, pat, l):
        """Pieces of layers 0..l as affine maps of the input x, ``[beta, alpha]``, with error bounds."""
        C, d = pat.shape[0], self.d
        Z = torch.cat([torch.zeros(d, 1, dtype=self.dt, device=self.dev),
                       torch.eye(d, dtype=self.dt, device=self.dev)], 1).expand(C, d, d + 1)
        S = torch.zeros(C, d + 1, dtype=self.dt, device=self.dev)
        S[:, 0] = 1
        return self.ev.maps(Z, torch.zeros_like(Z), S, pat, l)

    def _to_chart(self, R, ER, ch):
        """Maps of x (..., m1) on cells with charts ``ch`` (C,) (leading dim C) as maps of the chart
        coordinates y, times the chart's bias scale s (positive inside the chart). Rows that are
        constant and positive in x (exactly, or beyond their error bound) become zero rows: they
        hold on the whole chart."""
        cst = ((R[..., 1:] == 0).all(-1) & (ER[..., 1:] == 0).all(-1) & (R[..., 0] > ER[..., 0]))
        R2, E2 = self.charts.to_chart(R, ER, ch)
        keep = (~cst)[..., None]
        return R2 * keep, E2 * keep

    # ------------------------------------------------------------------ steps
    def _start(self, b):
        l = b["l"]
        C = b["y"].shape[0]
        maps = self._xmaps(b["pat"], l)
        Rf, ERf = self._cell_rows(b, maps)
        P, EP = maps[l]
        layer = self.layers[l]
        Uu, K = layer.index.shape
        win = self._witness_winner(P, self.charts.to_x(b["ch"], b["y"]), layer.valid[None])  # (C, U)
        # LPs: every (cell, unit, other valid piece)
        cand = layer.valid[None].expand(C, -1, -1) & (torch.arange(K, device=self.dev)[None, None] != win[:, :, None])
        if l == 0 and self.charts.kind == "orthants":
            # the chart's own units: their winners are the orthant's, on the whole chart
            units = self.charts.units
            win[:, units] = self.charts.winners(b["ch"])
            cand = cand.clone()
            cand[:, units] = False
        cell, unit, piece = cand.nonzero(as_tuple=True)
        feas, _, _, _ = self._piece_lps(Rf, ERf, P, EP, b, cell, unit, piece, layer.valid, check=True)
        cross = torch.zeros(C, Uu, dtype=torch.bool, device=self.dev)
        cross[cell[feas], unit[feas]] = True
        pat = b["pat"].clone()
        sl = self.net.layer_slice(l)
        lp = pat[:, sl]
        lp[~cross] = win[~cross].to(torch.int8)
        pat[:, sl] = lp
        nb = {"pat": pat, "y": b["y"], "ch": b["ch"], "l": l, "stage": "round", "Rf": Rf, "ERf": ERf, "P": P,
              "EP": EP, "cross": cross, "sx": b["sx"]}
        return self._advance(nb)

    def _advance(self, b):
        """Cells with crossing units left stay in this layer; the others move on."""
        left = b["cross"].any(1)
        out = []
        done = (~left).nonzero().squeeze(1)
        if done.numel():
            nb = {"pat": b["pat"][done], "y": b["y"][done], "ch": b["ch"][done], "l": b["l"] + 1, "stage": "start",
                  "sx": b["sx"][done]}
            out.append(nb)
        keep = left.nonzero().squeeze(1)
        if keep.numel():
            out.insert(0, self._take(b, keep))
        return out

    _DERIVED = ("Rf", "ERf", "P", "EP")

    def _round(self, b):
        l = b["l"]
        if "P" not in b:
            # a waiting batch keeps only its patterns, witnesses and charts: the maps and rows (a few
            # KB per cell) are recomputed, which keeps the frontier's memory at a few bytes per cell
            maps = self._xmaps(b["pat"], l)
            b = dict(b)
            b["Rf"], b["ERf"] = self._cell_rows(b, maps)
            b["P"], b["EP"] = maps[l]
        layer = self.layers[l]
        Uu, K = layer.index.shape
        C = b["y"].shape[0]
        u = b["cross"].to(torch.int8).argmax(1)  # the next crossing unit of every cell
        R, ER = self._current_rows(b)
        ar = torch.arange(C, device=self.dev)
        Pu = b["P"][ar, u]  # (C, K, m1)
        win = self._witness_winner(Pu[:, None], self.charts.to_x(b["ch"], b["y"]), layer.valid[u][:, None])[:, 0]  # (C,)
        validu = layer.valid[u]  # (C, K)
        cand = validu & (torch.arange(K, device=self.dev)[None] != win[:, None])
        cell, piece = cand.nonzero(as_tuple=True)
        feas, tau, centre, simp = self._piece_lps(R, ER, b["P"], b["EP"], b, cell, u[cell], piece, layer.valid,
                                                  check=True)
        nrf = b["Rf"].shape[1]
        simp = self._simplex_rows(simp, R.shape[1], nrf, u[cell], piece, K, b["sx"][cell])
        split = torch.zeros(C, dtype=torch.bool, device=self.dev)
        split[cell[feas]] = True
        # the winner's part of a split cell keeps its witness unless that lies within 1e-7 (chart
        # units) of the new boundary; then it is re-centred (Chebyshev centre of that part)
        sc = split.nonzero().squeeze(1)
        wy = b["y"].clone()
        wsx = b["sx"].clone()
        if sc.numel():
            Pw = b["P"][sc, u[sc]]  # (S, K, m1)
            ws = win[sc]
            qx = Pw.gather(1, ws[:, None, None].expand(-1, 1, Pw.shape[2])) - Pw
            qy, _ = self._to_chart(qx, torch.zeros_like(qx), b["ch"][sc])
            val = qy[..., 0] + (qy[..., 1:] * b["y"][sc][:, None, :]).sum(-1)
            nrm = qy[..., 1:].norm(dim=-1)
            other = validu[sc] & (torch.arange(K, device=self.dev)[None] != ws[:, None]) & (nrm > 0)
            dist = torch.where(other, val / nrm.clamp_min(1e-300), torch.full_like(val, math.inf)).amin(1)
            rc = sc[dist < 1e-7]
            wf, _, wcentre, wsimp = self._piece_lps(R, ER, b["P"], b["EP"], b, rc, u[rc], win[rc], layer.valid,
                                                    check=False)
            wsx[rc] = self._simplex_rows(wsimp, R.shape[1], nrf, u[rc], win[rc], K, b["sx"][rc])
            wf = self._winner_part(wf, wcentre, rc, u, win, b)
            wy[rc] = wcentre
            sc = torch.cat([sc[~torch.isin(sc, rc)], rc[wf]]).sort().values
        # children: (cell, piece, witness)
        ccell = torch.cat([cell[feas], sc, (~split).nonzero().squeeze(1)])
        cpiece = torch.cat([piece[feas], win[sc], win[~split]])
        cy = torch.cat([centre[feas], wy[sc], b["y"][~split]])
        csx = torch.cat([simp[feas], wsx[sc], b["sx"][~split]])
        order = torch.argsort(ccell, stable=True)
        ccell, cpiece, cy, csx = ccell[order], cpiece[order], cy[order], csx[order]
        nb = self._take(b, ccell)
        nb["y"] = cy
        nb["sx"] = csx
        uu = u[ccell]
        col = self.net.unit_offsets[l] + uu
        nb["pat"] = nb["pat"].clone()
        nb["pat"][torch.arange(ccell.numel(), device=self.dev), col] = cpiece.to(torch.int8)
        nb["cross"] = nb["cross"].clone()
        nb["cross"][torch.arange(ccell.numel(), device=self.dev), uu] = False
        self.stats["cells"] += int(ccell.numel()) - C
        return self._advance(nb)

    # ------------------------------------------------------------------ sign certificates
    def _sign_tables(self, l):
        """Exact sign tables for :meth:`_sign_no` at max layer ``l``, or None where they do not apply:
        layers ``l - 1`` and ``l`` of two-piece elementwise units (ReLU, leaky ReLU, abs) joined by
        one dense layer and nothing else."""
        if l == 0:
            return None
        net = self.net
        i0, i1 = net.max_layers[l - 1], net.max_layers[l]
        if i1 != i0 + 2:
            return None
        mid, top = net.nodes[i0 + 1], net.nodes[i1]
        if not isinstance(mid.layer, Dense) or tuple(mid.inputs) != (i0,) or tuple(top.inputs) != (i0 + 1,):
            return None
        lo, hi = self.layers[l - 1], self.layers[l]
        for m in (lo, hi):
            if m.valid.shape[1] != 2 or not m.elementwise_units:
                return None
        cl, ch = lo.coef.to(self.dt), hi.coef.to(self.dt)
        # unit j of layer l - 1 with winner w: output c_w z_j, row (c_w - c_o) z_j, so the output is
        # the row times c_w / (c_w - c_o), of sign sign(c_w) sign(c_w - c_o) (0: no output; a zero
        # row with an output cannot be written so: the tables do not apply to such a unit)
        rho = torch.stack([cl[:, 0] - cl[:, 1], cl[:, 1] - cl[:, 0]], 1)
        out = torch.sign(cl) * torch.sign(rho)
        bad = (rho == 0) & (cl != 0)
        W, b = mid.layer.dense()
        return {"out": out.to(torch.int8), "bad": bad, "W": torch.sign(W.to(self.dt)).to(torch.int8),
                "b": torch.sign(b.to(self.dt)).to(torch.int8),
                "kappa": torch.sign(torch.stack([ch[:, 0] - ch[:, 1], ch[:, 1] - ch[:, 0]], 1)).to(torch.int8)}

    def _sign_no(self, b, cell, unit, piece):
        """Decisions "piece ``a`` of unit ``u`` wins on no open part of the cell" proven by signs alone.

        With layers ``l - 1`` and ``l`` as in :meth:`_sign_tables`, the exact identity
        ``p_a - p_b = kappa h_u``, ``h_u = sum_j W_uj o_j + b_u`` with ``kappa = c_a - c_b`` and every
        output ``o_j`` of layer ``l - 1`` a constant multiple of that unit's region row ``r_j`` (>= 0 on
        the cell) writes ``p_a - p_b = sum_j k_j r_j + kappa b_u``, where each ``k_j`` has the exact
        sign ``sign(kappa) sign(W_uj) sign(o_j / r_j)``. When every ``k_j <= 0`` and ``kappa b_u <= 0``,
        ``p_a <= p_b`` on the whole cell, so ``a`` never wins there (a tie goes to the lower piece:
        for ``a < b`` the constant must be negative). This is the certificate of the module docstring
        with exact multipliers; it settles the boundaries that touch a cell only at infinity (the
        directions where every active row of layer ``l - 1`` vanishes), which float64 multipliers
        cannot prove, without an LP or rational arithmetic."""
        l = b["l"]
        tab = self._signs[l]
        N = cell.numel()
        if tab is None or N == 0:
            return torch.zeros(N, dtype=torch.bool, device=self.dev)
        w = b["pat"][cell][:, self.net.layer_slice(l - 1)].long()  # (N, U') winners of layer l - 1
        ar = torch.arange(w.shape[1], device=self.dev)[None]
        so = tab["out"][ar, w]  # (N, U')
        usable = ~tab["bad"][ar, w].any(1)
        ka = tab["kappa"][unit, piece]  # (N,)
        kj = ka[:, None] * tab["W"][unit] * so
        kc = ka * tab["b"][unit]
        other = 1 - piece
        return usable & (ka != 0) & (kj <= 0).all(1) & (kc <= 0) & ((piece > other) | (kc < 0))

    def _known_no(self, b, cell, unit, piece):
        """Start-stage decisions already proven "no" by an input-space identity in another cell of
        the same region of layers ``< l`` (another chart): see :meth:`_identity_system`. Such an
        identity ``p_a - p_b + sum lam_i r_i + lam_s = 0`` uses only rows of those layers and the
        constant, so ``p_a <= p_b`` on the whole region, hence on every cell of it."""
        off = self.net.unit_offsets[b["l"]]
        pre = b["pat"][cell][:, :off].to(torch.int8).cpu().numpy()
        known = self._shared_no
        hit = [(u, a, p.tobytes()) in known for u, a, p in zip(unit.tolist(), piece.tolist(), pre)]
        return torch.tensor(hit, dtype=torch.bool, device=self.dev)

    # ------------------------------------------------------------------ LPs
    def _piece_lps(self, R, ER, P, EP, b, cell, unit, piece, valid, check: bool):
        """For LP t: does piece ``piece[t]`` of unit ``unit[t]`` win on an open part of cell
        ``cell[t]`` (rows ``R[cell]``)? Returns ``(feasible, tau, centre)``; with ``check``, every
        negative answer is certified (or an error raised)."""
        N = cell.numel()
        d = self.d
        if N == 0:
            e = torch.zeros(0, dtype=torch.bool, device=self.dev)
            return (e, torch.zeros(0, dtype=self.dt, device=self.dev), torch.zeros(0, d, dtype=self.dt, device=self.dev),
                    torch.zeros(0, d + 1, dtype=torch.long, device=self.dev))
        nr = R.shape[1]
        K = P.shape[2]
        step = max(1, LP_ENTRIES // ((nr + K) * (d + 2)))
        out = []
        for s in range(0, N, step):
            sl = slice(s, min(N, s + step))
            out.append(self._piece_lps_chunk(R, ER, P, EP, b, cell[sl], unit[sl], piece[sl], valid, check))
        return tuple(torch.cat(t) for t in zip(*out))

    def _simplex_rows(self, simp, nr, nrf, unit, piece, K, parent):
        """The children's simplices as row indices of their cells: LP rows ``< nr`` are the cell's
        own; row ``nr + b`` (``p_a - p_b``, the new piece ``a``) becomes the child's row of unit
        ``unit``'s slot for ``b``. Where the LP gave none, the parent's (it contains the child)."""
        if simp.numel() == 0:
            return parent.clone()
        bq = simp - nr
        slot = nrf + unit[:, None] * (K - 1) + bq - (bq > piece[:, None]).long()
        rows = torch.where(simp >= nr, slot, simp)
        have = (simp >= 0).all(1, keepdim=True)
        return torch.where(have, rows, parent)

    def _piece_lps_chunk(self, R, ER, P, EP, b, cell, unit, piece, valid, check):
        """See :meth:`_piece_lps`; also returns, per LP that found the piece's part, the indices of
        the ``d + 1`` rows tight at its Chebyshev centre (a simplex containing that part; -1 when
        there are not exactly ``d + 1``)."""
        d = self.d
        dev, dt = self.dev, self.dt
        N = cell.numel()
        rows = R[cell]  # (N, nr, m1)
        erows = ER[cell]
        Pu = P[cell, unit]  # (N, K, m1), maps of x
        EPu = EP[cell, unit]
        K = Pu.shape[1]
        pa = Pu.gather(1, piece[:, None, None].expand(N, 1, d + 1))
        q = pa - Pu  # (N, K, m1): p_a - p_b
        eq = (EPu.gather(1, piece[:, None, None].expand(N, 1, d + 1)) + EPu + gamma(1) * q.abs()) * SAFETY
        ar = torch.arange(K, device=dev)
        vq = valid[unit] & (ar[None] != piece[:, None])  # (N, K)
        flat = (q[..., 1:] == 0).all(-1) & (eq[..., 1:] == 0).all(-1)  # constant in x, exactly
        ident = vq & flat & (q[..., 0] == 0) & (eq[..., 0] == 0)  # identical pieces (exactly)
        # lowest-index rule: identical to a lower piece -> never the winner; to a higher one -> no constraint
        excluded = (ident & (ar[None] < piece[:, None])).any(1)
        # a piece below another by a constant on the whole cell never wins (proven by that row alone)
        excluded |= (vq & flat & (q[..., 0] < -eq[..., 0])).any(1)
        vq = vq & ~ident
        q, eq = self._to_chart(q, eq, b["ch"][cell])
        vq = vq & ~((q == 0).all(-1) & (eq == 0).all(-1) & flat)
        y = b["y"][cell]
        # normalize rows, evaluate at the witness
        g = rows[..., 1:]
        nrm = g.norm(dim=-1)
        rel = nrm > 0
        rv = rows[..., 0] + (g * y[:, None, :]).sum(-1)
        gq = q[..., 1:]
        nq = gq.norm(dim=-1)
        qv = q[..., 0] + (gq * y[:, None, :]).sum(-1)
        # a zero-gradient row of p_a - p_b that is not positive: a never wins (certified below)
        deadrow = vq & (nq == 0) & (qv <= 0)
        dead = deadrow.any(1)
        deadrow = deadrow & (torch.cumsum(deadrow.long(), 1) == 1)
        relq = vq & (nq > 0)
        rn = torch.where(rel, nrm, torch.ones_like(nrm))
        qn = torch.where(relq, nq, torch.ones_like(nq))
        rhat = rv / rn
        qhat = qv / qn
        big = torch.full_like(rhat, math.inf)
        tau0 = torch.minimum(torch.where(rel, rhat, big).amin(1), torch.where(relq, qhat, torch.full_like(qhat, math.inf)).amin(1))
        tau0 = torch.where(torch.isfinite(tau0), tau0, torch.zeros_like(tau0))
        # LP in (z, t): -ghat z + t <= rhat(y) - tau0
        A = torch.cat([torch.cat([-g / rn[..., None], torch.ones_like(rn)[..., None]], -1) * rel[..., None],
                       torch.cat([-gq / qn[..., None], torch.ones_like(qn)[..., None]], -1) * relq[..., None]], 1)
        beta = torch.cat([torch.where(rel, rhat - tau0[:, None], torch.ones_like(rhat)),
                          torch.where(relq, qhat - tau0[:, None], torch.ones_like(qhat))], 1).clamp_min(0.0)
        c = torch.zeros(N, d + 1, dtype=dt, device=dev)
        c[:, -1] = -1.0
        run = ~(excluded | dead)
        # "no" answers proven by the cell's simplex alone (no LP): the piece loses to some piece on
        # the whole simplex, hence on the cell
        proven = torch.zeros(N, dtype=torch.bool, device=dev)
        if check and USE_SIGNS:
            proven = self._sign_no(b, cell, unit, piece) & run
            self.stats["sign_no"] += int(proven.sum())
            run &= ~proven
        if check and self.share and b["stage"] == "start" and self._shared_no:
            sh_no = self._known_no(b, cell, unit, piece) & run
            self.stats["shared_no"] += int(sh_no.sum())
            proven |= sh_no
            run &= ~sh_no
        if check and USE_SIMPLEX:
            sx_no = self._simplex_no(rows, erows, rn, rel, q, eq, qn, relq, b, cell, run)
            proven |= sx_no
            run &= ~sx_no
        ri = run.nonzero().squeeze(1)
        z = torch.zeros(N, d + 1, dtype=dt, device=dev)
        lam = torch.zeros(N, A.shape[1], dtype=dt, device=dev)
        st = torch.full((N,), OPTIMAL, dtype=torch.long, device=dev)
        obj = torch.zeros(N, dtype=dt, device=dev)
        if ri.numel():
            # rows that are no constraint (zero rows) leave the tableau: the active rows first, the
            # batch cut to its largest active count; the multipliers go back to their rows
            ar_ = torch.cat([rel, relq], 1)[ri]
            perm = torch.argsort((~ar_).to(torch.int8), dim=1, stable=True)
            kept = max(1, int(ar_.sum(1).max()))
            order = perm[:, :kept]
            Ac = A[ri].gather(1, order[:, :, None].expand(-1, -1, A.shape[2]))
            bc = beta[ri].gather(1, order)
            z_, obj_, lamc, st_ = self._solve(Ac, bc, c[ri], perm, kept, b["sx"][cell[ri]], ar_)
            lam_ = torch.zeros(ri.numel(), A.shape[1], dtype=dt, device=dev)
            lam_.scatter_(1, order, lamc * ar_.gather(1, order))
            z[ri], lam[ri], st[ri], obj[ri] = z_, lam_, st_, obj_
            self.stats["lps"] += int(ri.numel())
        tau = torch.where(run, tau0 + z[:, -1], torch.full_like(tau0, -math.inf))
        centre = y + z[:, :d]
        feasible = run & (st == OPTIMAL) & (tau > TAU_FEASIBLE)
        lp_feasible = feasible.clone()
        if check:
            nf = (~feasible).nonzero().squeeze(1)
            open_ = []
            if nf.numel():
                lam[:, rows.shape[1]:] = torch.where(dead[:, None], deadrow.to(lam.dtype), lam[:, rows.shape[1]:])
                open_ = self._certify(nf, rows, erows, rn, rel, q, eq, qn, relq | deadrow, lam, excluded | proven,
                                      cell, unit, piece, b)
            for i in open_:
                # neither multipliers nor their exact support settle it: an exact LP does
                y = self._exact_interior(i, cell, unit, piece, b)
                if y is not None:
                    feasible[i] = True
                    centre[i] = y
        if bool(lp_feasible.any()):
            # every "yes" is a centre proven inside: in float64 under error bounds, else exactly
            sure = self._inside_float(rows, erows, rel, q, eq, vq, centre)
            self._settle_thin(lp_feasible & ~sure, feasible, centre, cell, unit, piece, b)
        # the rows tight at the Chebyshev centres (float LP answers only)
        pos = (lam > 1e-12) & lp_feasible[:, None]
        one = pos.sum(1) == d + 1
        simp = torch.full((N, d + 1), -1, dtype=torch.long, device=dev)
        if bool(one.any()):
            simp[one] = torch.sort(torch.where(pos[one], torch.arange(pos.shape[1], device=dev)[None],
                                               torch.full_like(pos[one], 1 << 30, dtype=torch.long)), 1).values[:, :d + 1]
        return feasible, tau, centre, simp

    def _solve(self, A, beta, c, perm, kept, sx, active):
        """The Chebyshev LPs (rows ``A`` in the order ``perm`` of the full rows, the first ``kept``).
        Where the cell's simplex rows ``sx`` are all active they are a dual feasible start (their
        multipliers positively span 0), so the dual simplex starts there and usually needs a few
        pivots; the others, and any it does not finish, go to the primal method."""
        N = A.shape[0]
        st = torch.full((N,), -1, dtype=torch.long, device=self.dev)
        z = torch.zeros(N, A.shape[2], dtype=self.dt, device=self.dev)
        obj = torch.zeros(N, dtype=self.dt, device=self.dev)
        lam = torch.zeros(N, A.shape[1], dtype=self.dt, device=self.dev)
        if USE_DUAL:
            inv = torch.argsort(perm, 1)
            pos = inv.gather(1, sx.clamp_min(0))
            warm = (sx >= 0).all(1) & (pos < kept).all(1) & active.gather(1, sx.clamp_min(0)).all(1)
            wi = warm.nonzero().squeeze(1)
            if wi.numel():
                z[wi], obj[wi], lam[wi], st[wi] = lp_batch_dual(A[wi], beta[wi], c[wi], pos[wi])
                self.stats["dual_lps"] = self.stats.get("dual_lps", 0) + int((st[wi] == OPTIMAL).sum())
        rest = (st != OPTIMAL).nonzero().squeeze(1)
        if rest.numel():
            z[rest], obj[rest], lam[rest], st[rest] = lp_batch(A[rest], beta[rest], c[rest])
        return z, obj, lam, st

    def _simplex_no(self, rows, erows, rn, rel, q, eq, qn, relq, b, cell, run):
        """Which LPs are answered "no" by their cell's simplex ``S = {r_i >= 0, i in sx}`` (``d + 1``
        of the cell's rows). Writing the constant 1 and each row ``q_b = p_a - p_b`` in the basis of
        the simplex rows, ``1 = sum beta_i r_i`` (all ``beta_i > 0`` for a bounded simplex) and
        ``q_b = sum gamma_i r_i``, the largest value of ``q_b`` on ``S`` is
        ``m = max_i gamma_i / beta_i``; when it is negative, ``F = q_b + sum (m beta_i - gamma_i) r_i``
        is the constant ``m`` with non-negative multipliers: the certificate of the module docstring,
        checked in float64 with error bounds like every other (those it does not prove go to the LP)."""
        d = self.d
        N = cell.numel()
        proven = torch.zeros(N, dtype=torch.bool, device=self.dev)
        sx = b["sx"][cell]
        hv = (run & (sx >= 0).all(1)).nonzero().squeeze(1)
        if hv.numel() == 0:
            return proven
        idx = sx[hv]
        nr = rows.shape[1]
        rh = rows[hv] / rn[hv][..., None]
        M = rh.gather(1, idx[:, :, None].expand(-1, -1, d + 1))  # (H, d+1, d+1): rows [c, g]
        qh = q[hv] / qn[hv][..., None]  # (H, K, d+1)
        e0 = torch.zeros(hv.numel(), d + 1, 1, dtype=self.dt, device=self.dev)
        e0[:, 0] = 1.0
        sol, info = torch.linalg.solve_ex(M.transpose(1, 2), torch.cat([e0, qh.transpose(1, 2)], 2))
        beta, gam = sol[:, :, 0], sol[:, :, 1:]
        okb = (info == 0) & (beta > 0).all(1) & rel[hv].gather(1, idx).all(1) & torch.isfinite(sol).flatten(1).all(1)
        m = (gam / beta.clamp_min(1e-300)[:, :, None]).amax(1)  # (H, K)
        m = torch.where(relq[hv], m, torch.full_like(m, math.inf))
        best, bq = m.min(1)
        cand = okb & (best < 0)
        if not bool(cand.any()):
            return proven
        c = cand.nonzero().squeeze(1)
        ar = torch.arange(c.numel(), device=self.dev)
        lam_r = (best[c, None] * beta[c] - gam[c][ar, :, bq[c]]).clamp_min(0.0)
        lam = torch.zeros(c.numel(), nr + q.shape[1], dtype=self.dt, device=self.dev)
        lam.scatter_(1, idx[c], lam_r)
        lam[ar, nr + bq[c]] = 1.0
        sel = hv[c]
        good = self._float_proof(sel, rows, erows, rn, rel, q, eq, qn, relq, lam, b, cell, full_lam=False)[0]
        proven[sel[good]] = True
        self.stats["simplex_no"] += int(good.sum())
        return proven

    # ------------------------------------------------------------------ certificates
    def _certify(self, nf, rows, erows, rn, rel, q, eq, qn, relq, lam, excluded, cell, unit, piece, b):
        """Prove, for LPs ``nf``, that the piece wins on no open part of the cell (see the module
        docstring); float64 with error bounds first, exact rational arithmetic for the rest."""
        ok = excluded[nf].clone()  # excluded by an exactly identical lower piece: proven
        todo = nf[~ok]
        if todo.numel() == 0:
            self.stats["float_certificates"] += int(nf.numel())
            return []
        good, lr, lq, rn_, qn_eff = self._float_proof(todo, rows, erows, rn, rel, q, eq, qn, relq, lam, b, cell)
        self.stats["float_certificates"] += int(good.sum()) + int(ok.sum())
        open_ = []
        bad = (~good).nonzero().squeeze(1)
        if bad.numel() == 0:
            return open_
        # the exact steps work on Python and NumPy values: one conversion for all of them
        ti = todo[bad]
        ci = cell[ti]
        info = list(zip(ti.tolist(), ci.tolist(), unit[ti].tolist(), piece[ti].tolist(), b["ch"][ci].tolist(),
                        b["pat"][ci].long().cpu().numpy(), lr[bad].cpu().numpy(), lq[bad].cpu().numpy()))
        self.stats["exact_certificates"] += len(info)
        done = [False] * len(info)
        if USE_IDENTITY:
            systems = [self._identity_system(u, a, pat, lr_, lq_, b, k) for _, _, u, a, k, pat, lr_, lq_ in info]
            done = solve_identities(systems, self.d)
            self.stats["identities"] += sum(done)
            if self.share and b["stage"] == "start":
                # an identity over the rows of layers < l holds on the whole region of those layers:
                # the same decision in the region's cells of other charts is proven by it
                if len(self._shared_no) > SHARED_NO_MAX:
                    self._shared_no.clear()
                off = self.net.unit_offsets[b["l"]]
                for (_, _, u, a, _, pat, _, _), ok in zip(info, done):
                    if ok:
                        self._shared_no.add((u, a, pat[:off].astype(np.int8).tobytes()))
        for (i, c, u, a, k, pat, lr_, lq_), ok in zip(info, done):
            if not ok and not self._certify_exact(c, u, a, k, pat, lr_, lq_, b):
                open_.append(i)
        return open_

    def _float_proof(self, todo, rows, erows, rn, rel, q, eq, qn, relq, lam, b, cell, full_lam=True):
        """For LPs ``todo`` with multipliers ``lam`` (of theirs when ``full_lam``, else one row per
        entry of ``todo``): is ``F = sum lam_i r_i + sum nu_b q_b <= 0`` on the chart's bounding box,
        proven in float64 with error bounds? Returns ``(good, lr, lq, rn, qn)``."""
        nr = rows.shape[1]
        r_, er_, rn_, rel_ = rows[todo], erows[todo], rn[todo], rel[todo]
        q_, eq_, qn_, relq_ = q[todo], eq[todo], qn[todo], relq[todo]
        lam_ = lam[todo] if full_lam else lam
        lr = lam_[:, :nr] * rel_
        lq = lam_[:, nr:] * relq_
        qn_eff = qn_
        rh = r_ / rn_[..., None]
        erh = (er_ / rn_[..., None] + gamma(1) * rh.abs()) * SAFETY
        qh = q_ / qn_eff[..., None]
        eqh = (eq_ / qn_eff[..., None] + gamma(1) * qh.abs()) * SAFETY
        F = (lr[..., None] * rh).sum(1) + (lq[..., None] * qh).sum(1)
        nterms = nr + q_.shape[1] + 1
        EF = ((lr[..., None] * erh).sum(1) + (lq[..., None] * eqh).sum(1)
              + gamma(nterms) * ((lr[..., None] * rh.abs()).sum(1) + (lq[..., None] * qh.abs()).sum(1))) * SAFETY
        ymax = self.charts.ymax[b["ch"][cell[todo]]]
        ub = F[:, 0] + EF[:, 0] + ((F[:, 1:].abs() + EF[:, 1:]) * ymax).sum(1)
        ub = ub * (1 + 1e-12) + 0.0
        good = (ub <= 0) & (lq.sum(1) > 0) & torch.isfinite(ub)
        return good, lr, lq, rn_, qn_eff

    def _certify_exact(self, c, u, a, k, pat, lr, lq, b):
        """The support of the float multipliers ``lr``, ``lq`` (NumPy) of the decision "piece ``a`` of
        unit ``u`` wins on no open part of cell ``c``" (chart ``k``, pattern ``pat``), re-solved and
        checked in rational arithmetic. At a degenerate optimum the float support may carry
        multipliers that are rounding noise (their exact values are 0); supports without the
        smallest ones are tried too."""
        l = b["l"]
        rows = None
        top = float(max(lr.max(initial=0.0), lq.max(initial=0.0)))
        tried = set()
        # the chart's own rows (the bias scale s >= 0 above all) are added last: two boundaries that
        # are parallel in x meet on the outer facet, and a sliver between them is empty only by a
        # multiple of s too small for the float multipliers to carry
        nc = self.charts.rows.shape[1]
        extra = [] if self.charts.cube else [self.d]
        prefix = pat[:self.net.unit_offsets[l]].tobytes()
        for cut, add in ((0.0, ()), (1e-13, ()), (1e-10, ()), (1e-7, ()), (0.0, extra), (1e-13, extra),
                         (0.0, range(nc)), (1e-13, range(nc))):
            sup_r = sorted(set(np.flatnonzero(lr > cut * top).tolist()) | set(add))
            sup_q = np.flatnonzero(lq > cut * top).tolist()
            key = (tuple(sup_r), tuple(sup_q))
            if key in tried or not sup_q:
                continue
            tried.add(key)
            # the same exact rows recur in the sub-cells of one cell: a verdict is a function of them
            ckey = (k, l, u, a, prefix, tuple(self._row_key(pat, l, b["stage"], j) for j in sup_r), tuple(sup_q))
            ok = self._cert_cache.get(ckey)
            if ok is None:
                if rows is None:
                    rows, qrows = self._exact_rows(b, c, u, a, k, pat)
                ok = self._cert_cache[ckey] = self._exact_support(rows, qrows, sup_r, sup_q)
                if len(self._cert_cache) > 20_000:
                    self._cert_cache.clear()
            else:
                self.stats["exact_cached"] += 1
            if ok:
                return True
        return False

    def _identity_system(self, u, a, pat, lr, lq, b, k):
        """The certificate of a "no" as an exact identity in the input space: the columns of the
        system ``sum lam_i r_i + lam_s + sum nu_b (p_a - p_b) = 0`` identically in ``x`` (solved by
        :func:`solve_identities`), over the network rows of the float multipliers' support and the
        bias scale ``s`` (None where a row is not available exactly). Every chart row is its
        function of ``x`` times ``s > 0`` (``s`` itself is ``s`` times 1), so this is the chart
        certificate with ``F = 0`` without the chart: the rows are the exact maps of ``x`` (integers,
        each column its own positive multiple), smaller than their chart forms. The boundaries that
        touch a cell only at infinity or along a face where earlier units bend give exactly such
        identities; anything else (``F`` a negative constant, or a support that needs a cone or box
        row, which are left out here) is left to the chart's certificate. Returns ``(row columns,
        piece columns)``."""
        l = b["l"]
        nc = self.charts.rows.shape[1]
        sup_q = np.flatnonzero(lq > 0).tolist()
        if not sup_q:
            return None
        off = self.net.unit_offsets[l]
        maps = self._exact_maps().maps(self._zid, 0, pat, l, key=(pat[:off].tobytes(), l))
        Pl, el = maps[l]
        if el is None:
            return None
        valid_l = self.valid_np[l]
        qcols = []
        for kk in sup_q:
            if not valid_l[u, kk] or kk == a:
                return None
            qc = Pl[u, a] - Pl[u, kk]
            if not any(qc):
                return None  # identical pieces: the lowest-index rule, not an identity, decides
            qcols.append(qc)
        d = self.d
        cols = []
        for j in np.flatnonzero(lr > 0).tolist():
            if j < nc:
                if self.charts.kind == "orthants" and j < d:
                    # the facet y_j >= 0 is the chosen unit's row sigma_j h_j(x) >= 0, exactly (the
                    # first layer's maps do not depend on the pattern: each column is built once)
                    key = (j, (k >> j) & 1)
                    col = self._chart_cols.get(key)
                    if col is None:
                        u0, a0, b0 = self.charts.unit_pieces[j]
                        col = maps[0][0][u0, b0] - maps[0][0][u0, a0]
                        col = self._chart_cols[key] = -col if key[1] else col
                    cols.append(col)
                    continue
                if self.charts.cube or j != d:
                    # a cone or box row: left out (their multipliers are rounding noise at the
                    # touching boundaries; where one is needed, the chart's certificate decides)
                    continue
                cols.append(self._s_col)
                continue
            loc = self._row_loc(pat, l, b["stage"], j - nc)
            if loc is None:
                return None
            i, uu, kk, w = loc
            Pm = maps[i][0]
            cols.append(Pm[uu, w] - Pm[uu, kk])
        return cols, qcols

    def _row_loc(self, pat, l, stage, j):
        """``(layer, unit, other piece, winner)`` of network row ``j`` of a cell (in the order of
        :meth:`_cell_rows`: layer by layer, each unit's ``K - 1`` pieces other than its winner; the
        rows of layer ``l`` itself only past its start), or None for a zero row."""
        if j >= self._row_ends[l if stage == "start" else l + 1]:
            return None
        i, uu, sl = self._row_tab[j]
        w = int(pat[self.net.unit_offsets[i] + uu])
        kk = sl + int(sl >= w)
        if w < 0 or not self.valid_np[i][uu, kk]:
            return None
        return i, uu, kk, w

    def _winner_part(self, wf, wcentre, rc, u, win, b):
        """Whether the part of each split cell ``rc`` where its witness's winner wins is open, where
        the float LP found no ball in it (``wf`` False; the witness sits on or within rounding of the
        new boundary): settled by the exact LP, which gives a proven point (into ``wcentre``) or
        proves the part empty (the float winner at the witness was a rounding artefact: the other
        pieces' parts, found by their own LPs, make up the cell)."""
        if bool(wf.all()):
            return wf
        wf = wf.clone()
        for t in (~wf).nonzero().squeeze(1).tolist():
            y = self._exact_interior(t, rc, u[rc], win[rc], b)
            if y is not None:
                wf[t] = True
                wcentre[t] = y
        return wf

    @staticmethod
    def _inside_float(rows, erows, rel, q, eq, vq, y):
        """(N,) whether every row of the cell (``rel``) and every row ``p_a - p_b`` (``vq``) is
        positive at the points ``y`` beyond its proven error (coefficient errors plus the rounding of
        the evaluation, Higham's bound); False means only "not proven in float64"."""
        d = y.shape[1]
        yy = torch.cat([torch.ones_like(y[:, :1]), y], 1)[:, None, :]  # (N, 1, d + 1)
        out = []
        for r, er, m in ((rows, erows, rel), (q, eq, vq)):
            v = (r * yy).sum(-1)
            bound = ((er * yy.abs()).sum(-1) + gamma(d + 2) * (r * yy).abs().sum(-1)) * SAFETY
            out.append(((v > bound) | ~m).all(1))
        return out[0] & out[1]

    def _settle_thin(self, thin, feasible, centre, cell, unit, piece, b):
        """The float LP's "yes" answers whose centre float64 cannot prove inside (mask ``thin``),
        settled exactly in place: the centre is kept when it is strictly inside the part in rational
        arithmetic; otherwise the exact LP (:meth:`_exact_interior`) gives a proven point or proves
        the part empty (the float simplex's tolerance let a part between walls a hair apart look
        open)."""
        for i in thin.nonzero().squeeze(1).tolist():
            if self._exact_inside(i, cell, unit, piece, b, centre[i]):
                continue
            self.stats["thin_lps"] = self.stats.get("thin_lps", 0) + 1
            y = self._exact_interior(i, cell, unit, piece, b)
            if y is None:
                feasible[i] = False
            else:
                centre[i] = y

    def _exact_inside(self, i, cell, unit, piece, b, y) -> bool:
        """Whether the chart point ``y`` lies strictly inside the part of cell ``cell[i]`` where piece
        ``piece[i]`` of unit ``unit[i]`` wins, in rational arithmetic."""
        from relulab.regions._exact import dyadic

        c, u, a = int(cell[i]), int(unit[i]), int(piece[i])
        rows, qrows = self._exact_rows(b, c, u, a)
        yi, e = dyadic(y)
        yi = [int(v) for v in yi]
        for kk, f in enumerate(rows + qrows):
            r = None if f is None else f()
            if r is None or not any(r):
                if r is not None and kk >= len(rows) and kk - len(rows) < a:
                    return False  # identical to a lower piece, which wins instead
                continue
            if (int(r[0]) << e) + sum(int(x) * v for x, v in zip(r[1:], yi)) <= 0:
                return False
        return True

    def _exact_interior(self, i, cell, unit, piece, b):
        """Settle exactly whether piece ``piece[i]`` of unit ``unit[i]`` wins on an open part of cell
        ``cell[i]``, where the LP's multipliers gave no certificate either way (a sliver thinner than
        the float LP's threshold, or an empty part whose proof needs multipliers below float64's
        resolution): the largest margin ``max t, every row >= t`` over the cell's exact rows (a row
        identical to zero constrains nothing, except a lower identical piece, which wins instead)
        is solved in rational arithmetic. Returns None (proven empty) or a float64 chart point proven
        strictly inside that part; raises :class:`DegenerateGeometryError` when the part is open but
        no float64 point lies inside it."""
        from relulab.regions._exact import dyadic, exact_max_margin

        self.stats["exact_lps"] = self.stats.get("exact_lps", 0) + 1
        c, u, a = int(cell[i]), int(unit[i]), int(piece[i])
        rows, qrows = self._exact_rows(b, c, u, a)
        cons = []
        for f in rows:
            r = None if f is None else f()
            if r is not None and any(r):
                cons.append([int(v) for v in r])
        for kk, f in enumerate(qrows):
            r = None if f is None else f()
            if r is None:
                continue
            if not any(r):
                if kk < a:
                    return None
                continue
            cons.append([int(v) for v in r])
        bound = [Fraction(float(v)) for v in self.charts.ymax[int(b["ch"][c])].tolist()]
        t, y = exact_max_margin(cons, bound)
        if t <= 0:
            return None
        yf = torch.tensor([float(v) for v in y], dtype=torch.float64)
        yi, e = dyadic(yf)
        yi = [int(v) for v in yi]
        if all((r[0] << e) + sum(x * v for x, v in zip(r[1:], yi)) > 0 for r in cons):
            return yf.to(dtype=self.dt, device=self.dev)
        # a part a few units in the last place thick: all coordinates but one rounded, the last
        # chosen inside the exact interval left to it
        pt = _float_point_in([[Fraction(v) for v in r] for r in cons], y)
        if pt is not None:
            return torch.tensor(pt, dtype=self.dt, device=self.dev)
        raise DegenerateGeometryError(
            f"unit {u} of max layer {b['l']} wins on a part of a cell that is open in exact arithmetic but "
            "holds no float64 point (thinner than float64's resolution there): no witness can be given")

    def _row_key(self, pat, l, stage, j):
        """What row ``j`` of a cell's rows (in the order of :meth:`_exact_rows`) depends on: the chart
        row's index, or (layer, unit, slot, that unit's winner, the pattern of earlier layers)."""
        nc = self.charts.rows.shape[1]
        if j < nc:
            return j
        j -= nc
        for i in range(l + 1):
            if i == l and stage == "start":
                break
            layer = self.layers[i]
            Uu, K = layer.valid.shape
            n = Uu * (K - 1)
            if j < n:
                uu, sl = divmod(j, K - 1)
                off = self.net.unit_offsets[i]
                return (i, uu, sl, int(pat[off + uu]), pat[:off].tobytes())
            j -= n
        raise IndexError(j)

    def _exact_support(self, rows, qrows, sup_r, sup_q) -> bool:
        cols = [rows[j] for j in sup_r] + [qrows[j] for j in sup_q]
        if any(col is None for col in cols):
            return False
        cols = [col() for col in cols]
        # each row divided by the power of two it is a multiple of (a positive factor: the
        # certificate's signs are unchanged; the integers, and the elimination, get smaller)
        cols = [[v >> t for v in col] for col in cols
                for t in [min(((v & -v).bit_length() - 1 for v in col if v), default=0)]]
        M = [[col[k] for col in cols] for k in range(1, self.d + 1)]
        M.append([0] * len(sup_r) + [1] * len(sup_q))
        rhs = [0] * self.d + [1]
        sol = int_solve_den(M, rhs)
        if sol is None:
            return False
        nums, den = sol
        sg = 1 if den > 0 else -1
        if any(v * sg < 0 for v in nums):
            return False
        return sg * sum(m * col[0] for m, col in zip(nums, cols)) <= 0

    def _fail(self, l, u):
        raise DegenerateGeometryError(
            f"whether unit {u} of max layer {l} splits a cell could not be proven in float64 or settled exactly "
            "from the LP's multipliers; the arrangement is too degenerate near it")

    def _exact_maps(self):
        if self.exact_maps is None:
            self.exact_maps = ExactX(self.net)
        return self.exact_maps

    def _exact_chart(self, k):
        """Chart ``k``'s rows (integer vectors, each a positive multiple of the exact row) and its
        apex, normal ``a_k`` and R0 as dyadic integers (cached)."""
        cache = self.__dict__.setdefault("_chart_cache", {})
        if k not in cache:
            _, _, crow = self.charts.exact(k)
            rows = []
            for r in crow:
                den = max(v.denominator for v in r)
                rows.append([int(v * den) for v in r])
            ch = self.charts
            if ch.kind == "orthants":
                cache[k] = (rows, None, None, None)
                return cache[k]
            a = None if ch.cube else dyadic_ints(ch.A[k])
            c = None if (ch.cube or ch.c is None) else dyadic_ints(ch.c)
            r0 = dyadic_ints(torch.tensor([self.R0], dtype=torch.float64))
            cache[k] = (rows, a, c, (r0[0][0], r0[1]))
        return cache[k]

    def _exact_row_y(self, v, e, k):
        """An exact map of x (ints over 2**e) as a row of chart ``k``'s coordinates (times s), scaled
        by a positive power of two to integers (signs, and certificates, are unchanged)."""
        if e is None:  # Fractions
            den = math.lcm(*[x.denominator for x in v])
            v, e = [int(x * den) for x in v], None
        v = [int(x) for x in v]
        if self.charts.kind == "orthants":
            return self.charts.exact_row(v, k)
        _, a, c, (r0, er) = self._exact_chart(k)
        if a is None:
            return v
        B, Al = v[0], v[1:]
        A_, ea = a
        if c is not None:
            C_, ec = c
            B = (B << ec) + sum(x * y for x, y in zip(Al, C_))
            Al = [x << ec for x in Al]
        # grad_j = R0 al_j - B a_j: R0 = r0 / 2^er, a_j = A_j / 2^ea; scale all by 2^(er + ea)
        grad = [(r0 * x << ea) - (B * y << er) for x, y in zip(Al, A_)]
        return [B << (er + ea)] + grad

    def _exact_rows(self, b, c, u, a, k=None, pat=None):
        """Exact rows of cell ``c`` in the order of the float rows (None for zero rows), and the
        rows ``p_a - p_b`` of unit u; rows are computed lazily (callables)."""
        l = b["l"]
        if k is None:
            k = int(b["ch"][c])
            pat = b["pat"][c].long().cpu().numpy()
        crow = self._exact_chart(k)[0]
        d = self.d
        one = [0] + [0] * d
        Z = np.array([[0] + [1 if i == j else 0 for j in range(d)] for i in range(d)], dtype=object)
        del one
        off = self.net.unit_offsets[l]
        maps = self._exact_maps().maps(Z, 0, pat, l, key=(pat[:off].tobytes(), l))
        rows = [(lambda r=r: r) for r in crow]
        for i in range(l + 1):
            if i == l and b["stage"] == "start":
                break
            Pm, e = maps[i]
            w = pat[self.net.layer_slice(i)]
            valid = self.valid_np[i]
            Uu, K = valid.shape
            for uu in range(Uu):
                for sl in range(K - 1):
                    kk = sl + int(sl >= w[uu])
                    if w[uu] < 0 or not valid[uu, kk]:
                        rows.append(None)
                    else:
                        rows.append(lambda Pm=Pm, e=e, uu=uu, kk=kk, w=int(w[uu]): self._exact_row_y(
                            Pm[uu, w] - Pm[uu, kk], e, k))
        Pl, el = maps[l]
        valid = self.valid_np[l]
        qrows = [(lambda kk=kk: self._exact_row_y(Pl[u, a] - Pl[u, kk], el, k)) if valid[u, kk] and kk != a else None
                 for kk in range(valid.shape[1])]
        return rows, qrows

    # ------------------------------------------------------------------ output
    def _emit(self, b):
        x = self.charts.to_x(b["ch"], b["y"])
        self.n_cells_out += int(x.shape[0])
        self._add(b["pat"], x)
        notify(self.progress, self.n_regions, None, cells=self.n_cells_out)
        self.cap = min(self.cap_max, self.cap * 2)
        if self.max_regions is not None and self.n_regions >= self.max_regions:
            self.stopped_by = "max_regions"
            raise _Stop

    def _pack(self, pat):
        """(C, words) int64 keys of patterns (C, n) with entries in ``0 .. 2**bits - 1``."""
        C, n = pat.shape
        pad = self.words * self.per_word - n
        p = torch.nn.functional.pad(pat.long(), (0, pad)).reshape(C, self.words, self.per_word)
        shifts = self.bits * torch.arange(self.per_word, device=self.dev)
        return (p << shifts).sum(-1)

    def _hash(self, keys):
        """(C,) int64 hashes of keys (C, words): the key itself for one word; a mix of the words
        (no overflow: every step stays below 2**61) otherwise. Equal hashes are compared word by word."""
        h = keys[:, 0]
        m = 1 << 40
        for w in range(1, keys.shape[1]):
            h = (h % m) * 1_000_003 + keys[:, w] % m
        return h

    def _seen(self, uk):
        """Which of the distinct keys ``uk`` (C, words) are already kept: binary search of their hashes
        in the sorted hashes of the kept keys, then an exact comparison of the words."""
        R = self.keys.shape[0]
        if R == 0:
            return torch.zeros(uk.shape[0], dtype=torch.bool, device=self.dev)
        h = self._hash(uk)
        pos = torch.searchsorted(self.hkeys, h).clamp_max(R - 1)
        hit = self.hkeys[pos] == h
        same = hit & (self.keys[pos] == uk).all(1)
        if self.words > 1 and bool((hit & ~same).any()):
            # equal hashes of different keys (or several kept keys with one hash): settle exactly
            both = torch.cat([self.keys, uk])
            _, binv = torch.unique(both, dim=0, return_inverse=True)
            return torch.isin(binv[R:], binv[:R])
        return same

    def _insert(self, keys):
        """Keep new keys, sorted by hash (so that :meth:`_seen` is a binary search)."""
        allk = torch.cat([self.keys, keys])
        h = torch.cat([self.hkeys, self._hash(keys)])
        h, order = torch.sort(h, stable=True)
        self.keys, self.hkeys = allk[order], h

    def _add(self, pat, x):
        """Keep the cells' patterns not seen before (first occurrence, in order), with their
        witnesses, proven strictly inside (see :meth:`_verify`); a sink gets them at once."""
        if pat.shape[0] == 0:
            return
        if self.n_units == 0:
            pat, x = pat[:1], x[:1]
            new = torch.ones(1, dtype=torch.bool, device=self.dev) if self.n_regions == 0 else \
                torch.zeros(1, dtype=torch.bool, device=self.dev)
            keys = torch.zeros(1, self.words, dtype=torch.long, device=self.dev)
            sel = new.nonzero().squeeze(1)
        else:
            keys = self._pack(pat)
            C = keys.shape[0]
            if self.words == 1:
                uk, inv = torch.unique(keys[:, 0], return_inverse=True)
                uk = uk[:, None]
            else:
                uk, inv = torch.unique(keys, dim=0, return_inverse=True)
            first = torch.full((uk.shape[0],), C, dtype=torch.long, device=self.dev)
            first.scatter_reduce_(0, inv, torch.arange(C, device=self.dev), "amin")
            new = ~self._seen(uk)
            sel = torch.sort(first[new]).values  # in order of discovery
        if self.max_regions is not None:
            sel = sel[: max(0, self.max_regions - self.n_regions)]
        if sel.numel() == 0:
            return
        p, xs = pat[sel], x[sel]
        self._verify(p.long(), xs)
        self._insert(keys[sel])
        self.n_regions += int(sel.numel())
        if self.sink is not None:
            self.sink(p.long(), xs)
        else:
            self.out_pat.append(p.to(torch.int8))
            self.out_x.append(xs)
            self.out_nbytes += self.out_pat[-1].numel() + xs.numel() * xs.element_size()

    def result(self):
        """``(patterns (R, n) long, witnesses (R, d), cells)``, witnesses verified (empty when a
        sink took them)."""
        d, n = self.d, self.n_units
        if not self.out_pat:
            return (torch.zeros(0, n, dtype=torch.long, device=self.dev), torch.zeros(0, d, dtype=self.dt, device=self.dev),
                    self.n_cells_out)
        return torch.cat(self.out_pat).long(), torch.cat(self.out_x), self.n_cells_out

    def _verify(self, pat, x, chunk: int = 4096, exact: bool = True):
        """Every witness strictly inside its region (proven; see the module docstring). A witness that
        float64 rounding put on or across a wall of a thin region is replaced by one proven inside
        (:meth:`_verify_exact`), in place. With ``exact=False``: a mask of the witnesses float64
        proves, nothing raised or replaced."""
        d = self.d
        m1 = d + 1
        box = self.box
        inside = None
        if box is not None:
            inside = ((x > box[0]) & (x < box[1])).all(1)
        eye = torch.eye(d, dtype=self.dt, device=self.dev)
        masks = []
        for s in range(0, pat.shape[0], chunk):
            p, xs = pat[s:s + chunk], x[s:s + chunk]
            C = p.shape[0]
            Z = torch.cat([xs[:, :, None], eye.expand(C, d, d)], 2)
            S = torch.zeros(C, m1, dtype=self.dt, device=self.dev)
            S[:, 0] = 1
            maps = self.ev.maps(Z, torch.zeros_like(Z), S, p, self.L - 1)
            good = torch.ones(C, dtype=torch.bool, device=self.dev) if inside is None else inside[s:s + chunk].clone()
            for i, (P, EP) in enumerate(maps):
                w = p[:, self.net.layer_slice(i)]
                r, er, mask = rows_of_layer(P, EP, w, self.layers[i].valid)
                strict = r[..., 0] > er[..., 0]
                ident = (r == 0).all(-1) & (er == 0).all(-1)
                K = r.shape[2]
                higher = torch.arange(K, device=self.dev)[None, None] > w[:, :, None]
                rowok = ~mask | strict | (ident & higher)
                good &= rowok.flatten(1).all(1)
            masks.append(good)
            if not exact:
                continue
            for t in (~good).nonzero().squeeze(1).tolist():
                xs[t] = self._verify_exact(p[t], xs[t])
        return torch.cat(masks) if masks else torch.zeros(0, dtype=torch.bool, device=self.dev)

    def _verify_exact(self, p, x):
        """The witness ``x`` of pattern ``p``, or a float64 point replacing it, proven strictly inside
        the region (and the box) in exact rational arithmetic on the float64 data; raises
        :class:`DegenerateGeometryError` when no float64 point is found inside.

        A witness is a chart point mapped to the input space in float64, so in a region thinner than
        that rounding (parallel walls 1e-15 apart at distance 0.5 hold a few float64 points between
        them) it can land on or beyond a wall. The region's exact rows, as affine functions of the
        offset ``z = x' - x`` from the witness, then give the largest margin ``max t, every row >= t``
        over a box (:func:`relulab.regions._exact.exact_max_margin`): around ``x`` (radius ``2^-30``
        and ``2^-10`` times ``max(|x|, R0)``), then around the origin, where float64 is finest
        (radius ``R0 8^j``, growing), until a box holds part of the region; its optimum, rounded to
        float64, is checked like any witness."""
        from relulab.regions._exact import exact_max_margin

        self.stats["exact_witnesses"] += 1
        rows, bad = self._exact_witness_rows(p, x)
        if not bad:
            return x
        if rows is None:
            raise DegenerateGeometryError(
                f"the witness of region {p.cpu().tolist()} is not strictly inside it in exact arithmetic "
                f"(unit {bad[0][1]} of max layer {bad[0][0]}), and the region is not open there")
        x0 = [Fraction(v) for v in x.tolist()]
        # the rows as functions of the point x' itself (z = x' - x)
        rows = [[r[0] - sum(g * v for g, v in zip(r[1:], x0))] + r[1:] for r in rows]
        scale = max(float(x.abs().max()), float(self.R0))
        origin = [Fraction(0)] * self.d
        # boxes around the witness, then around the origin (where float64 is finest), growing
        tries = [(x0, scale * 2.0**-30), (x0, scale * 2.0**-10)]
        tries += [(origin, float(self.R0) * 8.0**j) for j in range(-6, 13)]
        for centre, rad in tries:
            shifted = [[r[0] + sum(g * v for g, v in zip(r[1:], centre))] + r[1:] for r in rows]
            try:
                t, z = exact_max_margin(shifted, [Fraction(rad)] * self.d)
            except ArithmeticError:  # its pivot budget
                break
            if t <= 0:
                continue
            pt = _float_point_in(rows, [c + zi for c, zi in zip(centre, z)])
            if pt is None:
                continue
            x2 = torch.tensor(pt, dtype=x.dtype, device=x.device)
            if not self._exact_witness_rows(p, x2)[1]:
                self.stats["repaired_witnesses"] = self.stats.get("repaired_witnesses", 0) + 1
                return x2
        i, u = bad[0]
        raise DegenerateGeometryError(
            f"the witness of region {p.cpu().tolist()} is not strictly inside it in exact arithmetic "
            f"(unit {u} of max layer {i}) and no float64 point near it is: the region is too thin for float64")

    def _exact_witness_rows(self, p, x):
        """``(rows, bad)`` for pattern ``p`` at ``x``: the region's rows (and the box's) as exact
        affine functions ``[c, g...]`` of the offset from ``x`` (c: the value at ``x``), without rows
        that are no constraint (a piece identical to a higher one); ``bad``: ``(layer, unit)`` of the
        rows not strictly positive at ``x`` ((-1, -1) for the box), empty when ``x`` is proven inside.
        ``rows`` is None when some row is a non-positive constant (the region is empty there)."""
        from relulab.regions._exact import dyadic

        d = self.d
        xi, e = dyadic(x)
        Z = np.array([[xi[i]] + [(1 << e) if i == j else 0 for j in range(d)] for i in range(d)], dtype=object)
        pn = p.cpu().numpy()
        maps = self._exact_maps().maps(Z, e, pn, self.L - 1)
        rows, bad, empty = [], [], False
        for i, (Pm, el) in enumerate(maps):
            valid = self.valid_np[i]
            w = pn[self.net.layer_slice(i)]
            for u in range(valid.shape[0]):
                for k in range(valid.shape[1]):
                    if not valid[u, k] or k == w[u]:
                        continue
                    r = Pm[u, w[u]] - Pm[u, k]
                    flat = all(v == 0 for v in r[1:])
                    if flat and r[0] == 0 and k > w[u]:
                        continue
                    if r[0] <= 0:
                        bad.append((i, u))
                        empty |= flat
                    rows.append((r, el))
        box_rows = []
        if self.box is not None:
            xf = [Fraction(v) for v in x.tolist()]
            for j, (lo, hi) in enumerate(zip(self.box[0].tolist(), self.box[1].tolist())):
                unit = [Fraction(int(i == j)) for i in range(d)]
                for r in ([xf[j] - Fraction(lo)] + unit, [Fraction(hi) - xf[j]] + [-v for v in unit]):
                    if r[0] <= 0:
                        bad.append((-1, -1))
                    box_rows.append(r)
        if not bad or empty:
            return (None if empty else rows), bad
        # as Fractions only when needed (the margin LP)
        rows = [[Fraction(v) for v in r] if el is None else [Fraction(int(v), 1 << el) for v in r] for r, el in rows]
        return rows + box_rows, bad



def solve_identities(systems, d: int) -> list:
    """For each system ``(cols, qcols)`` (integer vectors of length ``d + 1``; None: skip), whether
    nonnegative ``lam`` on ``cols`` and ``nu`` on ``qcols`` with ``sum nu = 1`` make
    ``sum lam_i col_i + sum nu_b qcol_b`` the zero vector.

    Systems with ``n`` columns are solved together: float64 LU with partial pivoting on the
    columns picks ``n - 1`` of the ``d + 1`` equations (an identity leaves the columns of rank
    ``n - 1``), which with ``sum nu = 1`` make a square system, solved in integers by fraction-free
    elimination (Bareiss 1968) on NumPy object arrays, all systems at once. Every candidate is
    then checked against all ``d + 2`` equations in exact integer arithmetic, so the float choice
    of equations can cost an answer (False, left to the general certificate) but never make a
    wrong one."""
    out = [False] * len(systems)
    groups = {}
    for t, sy in enumerate(systems):
        if sy is not None:
            groups.setdefault((len(sy[0]), len(sy[1])), []).append(t)
    for (nr, nq), idx in groups.items():
        n = nr + nq
        if n > d + 2:
            continue
        B = len(idx)
        M = np.empty((B, d + 2, n), dtype=object)
        for r, t in enumerate(idx):
            cols, qcols = systems[t]
            for j, col in enumerate(list(cols) + list(qcols)):
                M[r, :d + 1, j] = col
        M[:, d + 1, :] = 0
        M[:, d + 1, nr:] = 1
        # float64 copies (each column scaled to its largest entry) for the choice of equations
        try:
            Mf = M[:, :d + 1].astype(np.float64)
        except OverflowError:  # entries beyond float64's range: each column shifted into it
            bits = np.vectorize(lambda v: int(v).bit_length(), otypes=[np.int64])(M[:, :d + 1])
            sh = np.maximum(bits.max(1) - 60, 0)  # (B, n)
            Mf = np.vectorize(lambda v, e: float(int(v) >> int(e)) if v >= 0 else -float((-int(v)) >> int(e)),
                              otypes=[np.float64])(M[:, :d + 1], sh[:, None, :])
        Mf = Mf / np.maximum(np.abs(Mf).max(1, keepdims=True), 1e-300)
        sel = _pivot_rows(Mf, n - 1)  # (B, n - 1)
        rows = np.concatenate([sel, np.full((B, 1), d + 1)], 1)
        S = np.take_along_axis(M, rows[:, :, None], 1)  # (B, n, n)
        nums, den, ok = _bareiss_batch(S)
        if not ok.any():
            continue
        # the proof: every equation, exactly (object arrays: Python integers compared elementwise)
        res = (M * nums[:, None, :]).sum(2)
        zero = (res[:, :d + 1] == 0).all(1) & (res[:, d + 1] == den)
        pos = den > 0
        nonneg = np.where(pos[:, None], nums >= 0, nums <= 0).all(1)
        good = ok & zero.astype(bool) & nonneg.astype(bool) & (den != 0).astype(bool)
        for r, t in enumerate(idx):
            out[t] = bool(good[r])
    return out


def _pivot_rows(Mf, k):
    """(B, k) indices of ``k`` rows of each (m, n) float matrix chosen by Gaussian elimination with
    partial pivoting over its first ``k`` columns (independent rows where the float data tell)."""
    A = Mf.copy()
    B, m, n = A.shape
    ar = np.arange(B)
    chosen = np.zeros((B, k), dtype=np.int64)
    used = np.zeros((B, m), dtype=bool)
    for c in range(k):
        col = np.where(used, -1.0, np.abs(A[:, :, c]))
        p = col.argmax(1)
        chosen[:, c] = p
        used[ar, p] = True
        pv = A[ar, p, c]
        f = np.where(used, 0.0, A[:, :, c] / np.where(pv == 0, 1.0, pv)[:, None])
        A = A - f[:, :, None] * A[ar, p][:, None, :]
    return chosen


def _bareiss_batch(S):
    """Solutions ``nums / den`` of the square integer systems ``S[:, :, :n] x = e_n`` (right-hand
    side the last unit vector), fraction-free elimination without pivoting; ``ok`` False where a
    pivot is zero (those answers are not used)."""
    B, n, _ = S.shape
    A = np.concatenate([S, np.zeros((B, n, 1), dtype=object)], 2)
    A[:, n - 1, n] = 1
    ok = np.ones(B, dtype=bool)
    prev = np.ones(B, dtype=object)
    for k in range(n):
        piv = A[:, k, k].copy()
        bad = (piv == 0).astype(bool)
        ok &= ~bad
        piv[bad] = 1
        A[bad, k, k] = 1
        if k + 1 < n:
            A[:, k + 1:, k + 1:] = (piv[:, None, None] * A[:, k + 1:, k + 1:]
                                    - A[:, k + 1:, k:k + 1] * A[:, k:k + 1, k + 1:]) // prev[:, None, None]
            A[:, k + 1:, k] = 0
        prev = piv
    den = A[:, n - 1, n - 1].copy()
    nums = np.zeros((B, n), dtype=object)
    for i in reversed(range(n)):
        acc = den * A[:, i, n]
        if i + 1 < n:
            acc = acc - (A[:, i, i + 1:n] * nums[:, i + 1:]).sum(1)
        nums[:, i] = acc // A[:, i, i]
    return nums, den, ok
