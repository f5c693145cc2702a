"""A piecewise-linear network as tropical rational functions ``f = p - q`` (one per output).

Recursion (Zhang, Naitzat, Lim, ICML 2018; Brandenburg, Loho, Montufar, arXiv 2403.11871). Every
coordinate of every node is kept as a pair ``(p, q)`` of max-plus polynomials with value ``p - q``:

* input: ``x_j = (x_j) - (0)``;
* affine ``z' = W z + b``: split ``W = W+ - W-`` (entrywise positive and negative parts); then
  ``z'_i = [sum_j W+_ij p_j + W-_ij q_j + b_i] - [sum_j W+_ij q_j + W-_ij p_j]``, where a sum of max-plus
  polynomials is a tropical product and ``w p`` (``w >= 0``) a tropical power;
* max unit ``y = max_k a_k z_{i_k}``: piece ``a z = (a p) - (a q)`` for ``a >= 0`` and ``(|a| q) - (|a| p)``
  otherwise, so with pieces ``P_k - Q_k``: ``max_k (P_k - Q_k) = max_k (P_k + sum_{l != k} Q_l) - sum_l Q_l``.
  ReLU is the case ``max(0, p - q) = max(p, q) - q``; leaky ReLU, abs, maxout and max-pool alike;
* residual addition: ``(p_1 + p_2) - (q_1 + q_2)``.

Everything is exact in rational arithmetic (``exact=True``: each float64 weight is converted to the
binary rational it is, so ``p - q`` equals the network exactly at rational points) or in float64.
Sizes multiply at every product, i.e. grow exponentially with depth: ``max_monomials`` bounds every
polynomial, and a conversion that would exceed it returns ``complete=False`` with the sizes reached.
With ``reduce=True`` every polynomial is reduced (:meth:`MaxPlus.reduce`) after each node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.results import RegionResult, Result
from relulab.tropical.polynomial import MaxPlus


@dataclass
class TropicalRational:
    """``f(x) = p(x) - q(x)`` with ``p``, ``q`` max-plus polynomials."""

    p: MaxPlus
    q: MaxPlus

    def __call__(self, x):
        return self.p(x) - self.q(x)

    def reduce(self) -> "TropicalRational":
        return TropicalRational(self.p.reduce(), self.q.reduce())

    @property
    def sizes(self) -> tuple[int, int]:
        return self.p.size, self.q.size


@dataclass(repr=False)
class TropicalNetwork(Result):
    """The tropical representation of a network: ``functions[o]`` is output ``o`` as ``p - q``.

    ``complete``: False when ``max_monomials`` stopped the conversion (``functions`` is then empty and
    ``stopped_at`` names the node); ``sizes``: (monomials of p, of q) per output; ``exact``: rational
    arithmetic; ``reduced``; ``certified``: every reduction decision was certified exactly;
    ``largest``: the most monomials of any polynomial met on the way; ``seconds``.
    """

    functions: list = field(default_factory=list)
    input_dim: int = 0
    exact: bool = False
    reduced: bool = False
    complete: bool = True
    certified: bool = True
    stopped_at: str | None = None
    sizes: list = field(default_factory=list)
    largest: int = 0
    seconds: float = 0.0

    _summary_fields = ("input_dim", "exact", "reduced", "complete", "certified", "stopped_at", "sizes", "largest",
                       "seconds")

    def __call__(self, x):
        """Values ``p - q`` per output at points ``x`` (N, d): (N, outputs)."""
        if not self.complete:
            raise InvalidInputError("this tropical representation is incomplete (max_monomials was reached)")
        return np.stack([np.asarray(f(x)) for f in self.functions], -1)

    def to_dict(self, summary: bool = False) -> dict:
        d = super().to_dict(summary=True)
        if not summary:
            d["functions"] = [{"p": f.p.to_dict(), "q": f.q.to_dict()} for f in self.functions]
        return d

    def plot(self, ax=None, output: int = 0):
        """Newton polytopes of p and q (exponent vectors) for 2 inputs."""
        import matplotlib.pyplot as plt

        if self.input_dim != 2 or not self.complete:
            raise InvalidInputError("plot needs a complete representation of a network with 2 inputs")
        if ax is None:
            _, ax = plt.subplots(figsize=(4, 4))
        f = self.functions[output]
        for poly, colour, name in ((f.p, "C0", "p"), (f.q, "C3", "q")):
            E = poly.exponents.astype(float)
            ax.plot(E[:, 0], E[:, 1], "o", color=colour, label=f"{name}: {poly.size} monomials")
        ax.legend()
        ax.set_title("exponent vectors (Newton polytopes)")
        return ax


def _num(v, exact):
    return Fraction(float(v)) if exact else float(v)


def _layer_arrays(layer):
    W, b = layer.dense()
    return W.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()


def from_network(net, *, exact: bool = False, reduce: bool = False, max_monomials: int = 100_000,
                 time_limit: float | None = None) -> TropicalNetwork:
    """The tropical rational representation ``f_o = p_o - q_o`` of every output of ``net`` (a PLNet).

    See the module docstring for the recursion. ``exact=True``: rational arithmetic (values exact at
    rational points); ``reduce=True``: reduce after every node (LPs, certified); ``max_monomials``:
    budget per polynomial (``complete=False`` when reached, nothing is returned silently truncated).
    """
    from relulab.core.layers import Add, Affine, MaxUnits
    from relulab.core.plnet import PLNet

    if not isinstance(net, PLNet):
        raise InvalidInputError(f"net must be a relulab.PLNet, got {type(net).__name__}")
    if not isinstance(max_monomials, int) or max_monomials < 1:
        raise InvalidInputError(f"max_monomials must be a positive integer, got {max_monomials!r}")
    t0 = time.perf_counter()
    d = net.input_dim
    zero = MaxPlus.constant(0, d, exact)
    largest = [1]

    def fix(poly: MaxPlus) -> MaxPlus:
        if reduce:
            poly = poly.reduce()
        largest[0] = max(largest[0], poly.size)
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            raise ResourceLimitError(f"time_limit={time_limit} s reached")
        return poly

    def prod(polys: list[MaxPlus]) -> MaxPlus:
        out = zero
        for p in polys:
            out = fix(out.times(p, max_monomials))
        return out

    vals: dict[int, list[tuple[MaxPlus, MaxPlus]]] = {}
    eye = np.eye(d)
    vals[0] = [(MaxPlus.monomial(eye[j], 0, exact), zero) for j in range(d)]
    stopped = None
    try:
        for i, node in enumerate(net.nodes[1:], start=1):
            layer = node.layer
            ins = vals[node.inputs[0]]
            if isinstance(layer, Add):
                other = vals[node.inputs[1]]
                vals[i] = [(fix(a[0].times(b[0], max_monomials)), fix(a[1].times(b[1], max_monomials)))
                           for a, b in zip(ins, other)]
            elif isinstance(layer, Affine):
                W, b = _layer_arrays(layer)
                out = []
                for r in range(W.shape[0]):
                    pos, neg = [], []
                    for j in np.flatnonzero(W[r]):
                        w = _num(W[r, j], exact)
                        pj, qj = ins[j]
                        if w > 0:
                            pos.append(pj.scale(w))
                            neg.append(qj.scale(w))
                        else:
                            pos.append(qj.scale(-w))
                            neg.append(pj.scale(-w))
                    P = prod(pos).add_constant(_num(b[r], exact))
                    out.append((P, prod(neg)))
                vals[i] = out
            elif isinstance(layer, MaxUnits):
                idx = layer.index.cpu().numpy()
                coef = layer.coef.detach().cpu().double().numpy()
                valid = layer.valid.cpu().numpy()
                out = []
                for u in range(idx.shape[0]):
                    pieces = []
                    for k in np.flatnonzero(valid[u]):
                        a = _num(coef[u, k], exact)
                        pj, qj = ins[idx[u, k]]
                        pieces.append((pj.scale(a), qj.scale(a)) if a >= 0 else (qj.scale(-a), pj.scale(-a)))
                    Qall = prod([Q for _, Q in pieces])
                    P = None
                    for k, (Pk, _) in enumerate(pieces):
                        term = prod([Pk] + [Q for l, (_, Q) in enumerate(pieces) if l != k])
                        P = term if P is None else fix(P.plus(term))
                    out.append((P, Qall))
                vals[i] = out
            else:  # pragma: no cover - PLNet has no other node kinds
                raise InvalidInputError(f"unsupported node {layer!r}")
            for j in node.inputs:
                if net._last_use.get(j) == i:
                    vals.pop(j, None)
    except ResourceLimitError as e:
        stopped = f"node {i} ({net.nodes[i].layer.kind}): {e}"
    if stopped is not None:
        return TropicalNetwork([], d, exact, reduce, False, False, stopped, [], largest[0],
                               time.perf_counter() - t0)
    last = vals[len(net.nodes) - 1]
    fns = [TropicalRational(P, Q) for P, Q in last]
    cert = all(f.p.certified and f.q.certified for f in fns)
    return TropicalNetwork(fns, d, exact, reduce, True, cert, None, [list(f.sizes) for f in fns], largest[0],
                           time.perf_counter() - t0)


def exact_forward(net, x) -> list:
    """The network's outputs at one point in exact rational arithmetic (an independent reference).

    Each float64 weight is the binary rational it stores; ``x`` holds numbers or Fractions.
    """
    from relulab.core.layers import Add, Affine, MaxUnits

    vals = {0: [Fraction(v) for v in np.asarray(x, dtype=object).reshape(-1)]}
    for i, node in enumerate(net.nodes[1:], start=1):
        layer, z = node.layer, vals[node.inputs[0]]
        if isinstance(layer, Add):
            vals[i] = [a + b for a, b in zip(z, vals[node.inputs[1]])]
        elif isinstance(layer, Affine):
            W, b = _layer_arrays(layer)
            vals[i] = [sum((Fraction(float(W[r, j])) * z[j] for j in np.flatnonzero(W[r])), Fraction(0))
                       + Fraction(float(b[r])) for r in range(W.shape[0])]
        elif isinstance(layer, MaxUnits):
            idx, coef, valid = layer.index.cpu().numpy(), layer.coef.detach().cpu().double().numpy(), layer.valid.cpu().numpy()
            vals[i] = [max(Fraction(float(coef[u, k])) * z[idx[u, k]] for k in np.flatnonzero(valid[u]))
                       for u in range(idx.shape[0])]
    return vals[len(net.nodes) - 1]


# ----------------------------------------------------------------------------- geometry and counts
@dataclass(repr=False)
class NewtonPolytope(Result):
    """``conv`` of the exponent vectors of a max-plus polynomial (``lifted=False``) or the upper hull
    of the lifted points ``(a_i, c_i)`` (``lifted=True``). ``dim``: affine dimension; ``vertices``:
    indices of the monomials that are vertices; ``facets``: number of facets (upper facets for the
    lift: the maximal cells of the regular subdivision dual to the tropical hypersurface)."""

    dim: int
    vertices: list
    facets: int
    lifted: bool = False

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(3, 3))
        ax.bar(["vertices", "facets"], [len(self.vertices), self.facets])
        return ax


def _hull(points: np.ndarray):
    """Affine dimension, vertex indices and facet equations of ``conv(points)`` in its affine hull."""
    from scipy.spatial import ConvexHull, QhullError

    P = np.asarray(points, dtype=np.float64)
    if len(P) == 1:
        return 0, [0], None, None
    c = P - P.mean(0)
    _, sv, vt = np.linalg.svd(c, full_matrices=False)
    tol = 1e-10 * max(1.0, sv.max(initial=0))
    r = int((sv > tol).sum())
    if r == 0:
        return 0, [0], None, None
    Y = c @ vt[:r].T
    if r == 1:
        return 1, sorted({int(np.argmin(Y[:, 0])), int(np.argmax(Y[:, 0]))}), None, vt[:r]
    try:
        h = ConvexHull(Y)
    except QhullError as e:  # pragma: no cover - r is the true dimension, so qhull has room
        raise InvalidInputError(f"convex hull failed: {e}") from None
    return r, sorted(int(v) for v in h.vertices), h.equations, vt[:r]


def newton_polytope(poly: MaxPlus, lifted: bool = False) -> NewtonPolytope:
    """The Newton polytope of ``poly`` or (``lifted=True``) the upper hull of its lift.

    Low-dimensional cases (all exponents on an affine subspace, a single monomial, collinear
    exponents) are handled in the affine hull. Facets of a 1-dimensional polytope are its 2 end points.
    For the lift, the upper vertices are the monomials that survive reduction, and the upper facets
    are those whose outward normal has a positive last coordinate.
    """
    if not lifted:
        dim, verts, eq, _ = _hull(poly.exponents.astype(np.float64))
        nf = 0 if dim == 0 else (2 if dim == 1 else len({tuple(np.round(e, 9)) for e in eq}))
        return NewtonPolytope(dim, verts, nf, False)
    red = poly.reduce()
    pts = np.c_[red.exponents.astype(np.float64), red.constants.astype(np.float64)]
    # add points far below so that the hull's upper part is the upper hull
    E = red.exponents.astype(np.float64)
    low = float(pts[:, -1].min()) - 1.0 - float(np.abs(pts).max())
    dimE, vE, _, _ = _hull(E)
    base = np.c_[E[vE], np.full(len(vE), low)]
    allp = np.vstack([pts, base])
    dim, verts, eq, basis = _hull(allp)
    if eq is None:
        return NewtonPolytope(dimE, list(range(red.size)), 0 if dimE == 0 else 1, True)
    # upper facets: outward normal, mapped back to the ambient space, has a positive last coordinate
    normals = eq[:, :-1] @ basis
    upper = {tuple(np.round(e, 9)) for e, n in zip(eq, normals) if n[-1] > 1e-9}
    return NewtonPolytope(dimE, list(range(red.size)), len(upper), True)


@dataclass(kw_only=True, repr=False)
class TropicalRegionCount(RegionResult):
    """Linear regions of ``f = p - q`` read off the tropical data (over all of R^d).

    ``regions_p``, ``regions_q``: linear regions of p and q (monomials after reduction = upper-hull
    vertices); ``cells``: non-empty cells ``R_p(i) & R_q(l)`` of the common refinement (``count``);
    ``linear_count``: linear regions of f (cells with one affine map merged across shared facets);
    ``boundary_cells``: cells met by the decision boundary ``{p = q}`` in a (d-1)-dimensional set;
    ``boundary``: those pieces, each as the cell's monomials of p and q, the hyperplane
    ``normal . x + offset = 0`` (the cell's ``p - q``) and a point of the piece inside the cell.
    """

    regions_p: int = 0
    regions_q: int = 0
    cells: int = 0
    boundary_cells: int = 0
    boundary: list = field(default_factory=list)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3))
        ax.bar(["p", "q", "cells", "f"], [self.regions_p, self.regions_q, self.cells, self.linear_count or 0])
        return ax


def _lp_margin(rows_A, rows_b, eq_A=None, eq_b=None):
    """max t (<= 1) s.t. A x + b >= t (rows), E x + e = 0; returns (t, x, dual weights of the rows, dual
    weights of the equalities) or (-inf, None, None, None)."""
    from scipy.optimize import linprog

    d = rows_A.shape[1]
    A_ub = np.c_[-rows_A, np.ones(len(rows_A))]
    b_ub = rows_b
    kw = {}
    if eq_A is not None and len(eq_A):
        kw = dict(A_eq=np.c_[eq_A, np.zeros(len(eq_A))], b_eq=-eq_b)
    res = linprog(np.r_[np.zeros(d), -1.0], A_ub=A_ub, b_ub=b_ub, bounds=[(None, None)] * d + [(None, 1.0)],
                  method="highs", **kw)
    if res.status != 0:
        return -np.inf, None, None, None
    mu = -np.asarray(res.eqlin.marginals) if kw else None
    return -res.fun, res.x[:d], -np.asarray(res.ineqlin.marginals), mu


def _exact_rows(E, c, i, skip=()):
    """Rows ``(E_i - E_o, c_i - c_o)`` for the other monomials ``o`` (exact entries)."""
    o = [j for j in range(len(c)) if j != i and j not in skip]
    return [[E[i][r] - E[j][r] for r in range(len(E[i]))] for j in o], [c[i] - c[j] for j in o]


def _dot(a, x):
    return sum((u * v for u, v in zip(a, x)), Fraction(0))


def _exact_witness(A, b, x, eq=None) -> bool:
    """``A x' + b > 0`` exactly at ``x'``: the float point ``x`` as rationals, projected exactly onto the
    hyperplane ``g . x + g0 = 0`` when ``eq = (g, g0)`` is given."""
    xs = [Fraction(float(v)) for v in x]
    if eq is not None:
        g, g0 = eq
        gg = _dot(g, g)
        if gg == 0:
            return False
        step = (_dot(g, xs) + g0) / gg
        xs = [u - step * v for u, v in zip(xs, g)]
    return all(_dot(a, xs) + bb > 0 for a, bb in zip(A, b))


def _exact_farkas(A, b, y_float, eq=None) -> bool:
    """An exact certificate that ``{A x + b > 0}`` (and ``g . x + g0 = 0`` when ``eq``) is empty: weights
    ``y >= 0`` with ``sum y = 1``, ``y A + mu g = 0`` and ``y . b + mu g0 <= 0``, re-solved in rational
    arithmetic on the support of the LP's dual solution (Motzkin's transposition theorem)."""
    from relulab.tropical._lpcert import exact_combination, support

    if y_float is None:
        return False
    J = support(y_float)
    if not J:
        return False
    d = len(A[0]) if A else 0
    cols = [[A[j][r] for r in range(d)] + [Fraction(1)] for j in J]  # one column per unknown y_j
    if eq is not None:
        cols.append(list(eq[0]) + [Fraction(0)])  # the free multiplier mu of the equality
    sol = exact_combination(cols, [Fraction(0)] * d + [Fraction(1)], len(J))
    if sol is None:
        return False
    val = sum((sol[a] * b[j] for a, j in enumerate(J)), Fraction(0))
    if eq is not None:
        val += sol[-1] * eq[1]
    return val <= 0


def count_regions(f: TropicalRational, tol: float = 1e-9, max_lps: int = 20_000,
                  allow_float: bool = False) -> TropicalRegionCount:
    """Linear regions of ``f = p - q`` over R^d from the tropical data.

    Cells of the refinement: one LP per pair (monomial ``i`` of p, monomial ``l`` of q) after reduction,
    ``max t`` with every other monomial of p below ``i`` and of q below ``l`` by ``t`` (cells met with a
    clear margin by random points need none). Two cells with the same affine map
    ``(a_i - b_l, c_i - d_l)`` belong to one linear region when they share a facet (LP: the tie
    equality holds, one wall, and every other inequality strictly); ``linear_count`` is the number of
    classes (union-find). Decision boundary: cells whose map vanishes on a (d-1)-dimensional piece.

    Certification (exact data): the LPs run in float64 with margin ``tol``, and every decision is then
    re-proven in rational arithmetic: a "yes" by its witness point (projected exactly onto the wall or
    the boundary hyperplane) satisfying every strict inequality, a "no" by a Farkas certificate
    re-solved exactly on the support of the LP's dual solution; affine maps are compared exactly.
    ``certified`` is True only when every decision was proven so (a decision that could not be proven
    is kept as the float64 LP made it, and ``certified`` is False).

    Use a representation built with ``exact=True``: float64 data can keep monomials that sit on an
    upper-hull face up to rounding (the function is unchanged, but they make slivers that the LPs
    cannot tell from cells). A float64 representation is refused unless ``allow_float=True`` (then
    ``certified`` is False).
    """
    if not (f.p.exact and f.q.exact) and not allow_float:
        raise InvalidInputError("count_regions needs an exact representation (from_network(net, exact=True)); "
                                "float64 data can hold rounding slivers: pass allow_float=True to count anyway")
    t0 = time.perf_counter()
    pr, qr = f.p.reduce(), f.q.reduce()
    exact = bool(pr.exact and qr.exact)
    p, q = pr.to_float(), qr.to_float()
    Ep, cp, Eq, cq = p.exponents, p.constants, q.exponents, q.constants
    if exact:
        XEp, Xcp = [list(r) for r in pr.exponents], list(pr.constants)
        XEq, Xcq = [list(r) for r in qr.exponents], list(qr.constants)
    proven = [exact and pr.certified and qr.certified]

    def rows(E, c, i, skip=()):
        o = [j for j in range(len(c)) if j != i and j not in skip]
        return E[i] - E[o], c[i] - c[o]

    def xrows(i, l, skip_p=(), skip_q=()):
        A1, b1 = _exact_rows(XEp, Xcp, i, skip_p)
        A2, b2 = _exact_rows(XEq, Xcq, l, skip_q)
        return A1 + A2, b1 + b2

    def settle(yes, i, l, x, y, eq=None, skip_p=(), skip_q=()):
        if not proven[0]:
            return
        A, b = xrows(i, l, skip_p, skip_q)
        ok = _exact_witness(A, b, x, eq) if yes else _exact_farkas(A, b, y, eq)
        if not ok:
            proven[0] = False

    if len(cp) * len(cq) > max_lps:
        raise ResourceLimitError(f"{len(cp)} x {len(cq)} cells to test exceed max_lps={max_lps}")
    d = Ep.shape[1]
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8192, d)) * np.geomspace(1e-2, 1e2, 8192)[:, None] * max(1.0, float(np.abs(cp).max()))
    Vp, Vq = X @ Ep.T + cp, X @ Eq.T + cq

    def clear(V):
        if V.shape[1] < 2:
            return np.ones(V.shape[0], dtype=bool)
        t2 = np.partition(V, V.shape[1] - 2, axis=1)[:, -2:]
        return (t2[:, 1] - t2[:, 0]) > 1e-8 * (1.0 + np.abs(V).max(1))
    ok = np.flatnonzero(clear(Vp) & clear(Vq))
    found: dict = {}
    for r, key in zip(ok.tolist(), zip(Vp[ok].argmax(1).tolist(), Vq[ok].argmax(1).tolist())):
        found.setdefault(key, r)
    cells = []
    for i in range(len(cp)):
        Ai, bi = rows(Ep, cp, i)
        for l in range(len(cq)):
            if (i, l) in found:
                cells.append((i, l))
                settle(True, i, l, X[found[(i, l)]], None)
                continue
            Al, bl = rows(Eq, cq, l)
            t, x, y, _ = _lp_margin(np.r_[Ai, Al].reshape(-1, d), np.r_[bi, bl])
            if t > tol:
                cells.append((i, l))
            settle(t > tol, i, l, x, y)

    def map_key(i, l):
        if exact:
            return tuple(XEp[i][r] - XEq[l][r] for r in range(d)) + (Xcp[i] - Xcq[l],)
        return tuple(np.round(np.r_[Ep[i] - Eq[l], cp[i] - cq[l]], 12))

    maps = {}
    for k, (i, l) in enumerate(cells):
        maps.setdefault(map_key(i, l), []).append(k)
    parent = list(range(len(cells)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def one_wall(i, l, i2, l2):
        """The single tie hyperplane of two cells with equal maps, exactly (or by float rank), or None."""
        if exact:
            ws = []
            if i != i2:
                ws.append([XEp[i][r] - XEp[i2][r] for r in range(d)] + [Xcp[i] - Xcp[i2]])
            if l != l2:
                ws.append([XEq[l][r] - XEq[l2][r] for r in range(d)] + [Xcq[l] - Xcq[l2]])
            a = ws[0]
            for w in ws[1:]:  # proportional rows: every 2 x 2 minor vanishes
                if any(a[u] * w[v] != a[v] * w[u] for u in range(d + 1) for v in range(u + 1, d + 1)):
                    return None
            return a
        ws = []
        if i != i2:
            ws.append(np.r_[Ep[i] - Ep[i2], cp[i] - cp[i2]])
        if l != l2:
            ws.append(np.r_[Eq[l] - Eq[l2], cq[l] - cq[l2]])
        return ws[0] if np.linalg.matrix_rank(np.array(ws), tol=1e-9) == 1 else None

    for group in maps.values():
        for a in range(len(group)):
            for b in range(a + 1, len(group)):
                (i, l), (i2, l2) = cells[group[a]], cells[group[b]]
                w = one_wall(i, l, i2, l2)
                if w is None:
                    continue  # two different walls: the cells meet in codimension 2 at most
                wf = np.array([float(v) for v in w])
                Ai, bi = rows(Ep, cp, i, skip=(i2,))
                Al, bl = rows(Eq, cq, l, skip=(l2,))
                t, x, y, _ = _lp_margin(np.r_[Ai, Al].reshape(-1, d), np.r_[bi, bl], wf[None, :d], wf[d:])
                if t > tol:
                    parent[find(group[a])] = find(group[b])
                settle(t > tol, i, l, x, y, (w[:d], w[d]) if exact else None, (i2,), (l2,))
    linear = len({find(k) for k in range(len(cells))})
    bcells, pieces = 0, []
    for i, l in cells:
        g, g0 = Ep[i] - Eq[l], cp[i] - cq[l]
        if exact:
            gx = [XEp[i][r] - XEq[l][r] for r in range(d)]
            if all(v == 0 for v in gx):
                continue
        elif not np.any(np.abs(g) > tol):
            continue
        Ai, bi = rows(Ep, cp, i)
        Al, bl = rows(Eq, cq, l)
        t, x, y, _ = _lp_margin(np.r_[Ai, Al].reshape(-1, d), np.r_[bi, bl], g[None], np.array([g0]))
        settle(t > tol, i, l, x, y, (gx, Xcp[i] - Xcq[l]) if exact else None)
        if t > tol:
            bcells += 1
            pieces.append({"p_monomial": int(i), "q_monomial": int(l), "normal": g.tolist(), "offset": float(g0),
                           "point": x.tolist()})
    return TropicalRegionCount(count=len(cells), linear_count=linear, complete=True, certified=bool(proven[0]),
                               counts_what="cells of the refinement of p and q (count); linear regions of f "
                                           "(linear_count)", domain="R^d", seconds=time.perf_counter() - t0,
                               regions_p=len(cp), regions_q=len(cq), cells=len(cells), boundary_cells=int(bcells),
                               boundary=pieces)


__all__ = ["TropicalRational", "TropicalNetwork", "from_network", "exact_forward", "newton_polytope", "NewtonPolytope",
           "count_regions", "TropicalRegionCount"]
