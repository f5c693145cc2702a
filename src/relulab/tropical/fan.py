"""Classification fans of data sets (Brandenburg, Loho, Montufar, "The real tropical geometry of
neural networks", arXiv 2403.11871).

Model. A binary classifier ``sign(p(x) - q(x))`` with ``p = max_{i < m_p} (a_i . x + c_i)`` and
``q = max_{l < m_q} (b_l . x + d_l)`` (a tropical rational function; ``width = m`` means
``m_p = m_q = m``). Its parameters ``theta = (a_i, c_i, b_l, d_l)`` live in ``R^{K (d + 1)}``,
``K = m_p + m_q``. With ``xh_j = (x_j, 1)``, monomial ``k`` wins at data point ``j`` iff
``<theta_k - theta_k', xh_j> > 0`` for all ``k' != k``: for each point these are the maximal cones of
the normal fan of the simplex ``conv{e_k (x) xh_j}``, so the realizable *activation assignments*
``j -> k(j)`` are the maximal cones of the normal fan of the **activation polytope**
``P = sum_j conv{e_k (x) xh_j : k < K}``, i.e. its vertices. Point ``j`` is labelled ``+`` iff its
winning monomial belongs to ``p``; merging the cones with equal labelling gives the **classification
fan**. Each labelling comes with an LP witness ``theta`` (strict inequalities scaled to margin 1, as
the cones are open and positively homogeneous).

With ``width = 1`` the classifier is an affine function's sign: the count is Cover's number of
halfspace dichotomies, ``2 sum_{k=0}^{d} C(n-1, k)`` for points in general position.

0/1-loss sublevel sets: for target labels ``y``, ``{theta : loss(theta) <= t}`` is a union of closed
cones (a subfan). Every cone contains the lineality space (parameters giving all monomials equal
values on the data), so connectivity is taken modulo it: two closed cones are joined when they meet
outside the lineality space (one LP per pair). Also reported: connectivity through shared facets only
(cones differing at one point ``j`` whose tie cone at ``j`` has every other inequality strict).
``components`` shows the connectivity case by case. Note: in this sense even width 1 can give a
disconnected sublevel set - four points on a line labelled ``+ - + -`` have loss <= 1 exactly for the
dichotomies ``+ + + -`` and ``+ - - -``, whose closed cones meet only in the lineality space (a test
checks it). Summaries of the paper (its text could not be consulted) say that linear classifiers have
connected sublevel sets; that must rest on a different notion (for instance the union of the closed
cones itself, which always contains the lineality space and is therefore always connected), so no such
claim is made here.

This is the parameter space of tropical rational functions with a fixed number of monomials per side
(exponents and coefficients free), the space in which the paper places the ReLU networks as a
semialgebraic subset. A shallow ReLU network of width ``m`` with ``p`` positive output weights computes
such a function with ``2^p`` and ``2^(m-p)`` monomials whose exponents are sums of subsets of the hidden
weights, so its labellings are among those of this model with widths ``(2^p, 2^(m-p))``; the exact set
a ReLU network realizes is :func:`relulab.tropical.relu_classifications`. (The paper's text could not
be consulted beyond its abstract; the definitions above follow the abstract: classification fan =
normal fan of the activation polytope, 0/1-loss sublevel sets = subfans.)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.results import Result


def cover_count(n: int, d: int) -> int:
    """Cover (1965): halfspace dichotomies (with offset) of n points in general position in R^d."""
    if n < 1 or d < 0:
        raise InvalidInputError(f"need n >= 1 and d >= 0, got n={n}, d={d}")
    return 2 * sum(math.comb(n - 1, k) for k in range(d + 1))


def _lp(A_ub, b_ub, A_eq=None, b_eq=None):
    from scipy.optimize import linprog

    nv = A_ub.shape[1] if A_ub is not None else A_eq.shape[1]
    res = linprog(np.zeros(nv), A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=[(None, None)] * nv,
                  method="highs")
    return res.x if res.status == 0 else None


def _rows(Xh, assign: dict, K: int, D: int, tie: tuple | None = None):
    """Inequalities ``<theta_k' - theta_k, xh_j> <= -1`` for the assigned points (A_ub theta <= b_ub)."""
    A, eqA = [], []
    for j, k in assign.items():
        for k2 in range(K):
            if k2 == k or (tie is not None and j == tie[0] and k2 == tie[1]):
                continue
            r = np.zeros(K * D)
            r[k2 * D:(k2 + 1) * D] = Xh[j]
            r[k * D:(k + 1) * D] -= Xh[j]
            A.append(r)
        if tie is not None and j == tie[0]:
            r = np.zeros(K * D)
            r[k * D:(k + 1) * D] = Xh[j]
            r[tie[1] * D:(tie[1] + 1) * D] -= Xh[j]
            eqA.append(r)
    A = np.array(A) if A else np.zeros((0, K * D))
    return A, -np.ones(len(A)), (np.array(eqA) if eqA else None)


def _exact_rows(Xe, assign: dict, K: int, D: int, tie: tuple | None = None):
    """The rows of :func:`_rows` in exact rationals, in the same order (with ``tie``: also its equality
    rows, returned as ``(rows, equalities)``)."""
    out, eqs = [], []
    for j, k in assign.items():
        for k2 in range(K):
            if k2 == k or (tie is not None and j == tie[0] and k2 == tie[1]):
                continue
            r = [0] * (K * D)
            r[k2 * D:(k2 + 1) * D] = Xe[j]
            r[k * D:(k + 1) * D] = [-v for v in Xe[j]]
            out.append(r)
        if tie is not None and j == tie[0]:
            r = [0] * (K * D)
            r[k * D:(k + 1) * D] = Xe[j]
            r[tie[1] * D:(tie[1] + 1) * D] = [-v for v in Xe[j]]
            eqs.append(r)
    return (out, eqs) if tie is not None else out


@dataclass(repr=False)
class ClassificationFan(Result):
    """Realizable classifications of a data set by ``sign(p - q)`` (module docstring).

    ``count``: realizable labellings (of ``2^n``); ``labelings`` (count, n) in {-1, +1};
    ``witnesses`` (count, K, d+1): a parameter vector realizing each (rows of p first);
    ``activation_vertices``: realizable activation assignments = vertices of the activation polytope;
    ``polytope_dim``, ``facets`` (None when not computed); ``cover``: Cover's count (width 1, points in
    general position) or None; ``sublevel``: for target labels, per loss level t the number of cones
    with loss <= t and the sizes of the connected components in the dual graph. ``certified``: every
    partial assignment the enumeration dropped has an exact Farkas certificate and every labelling's
    witness satisfies its strict inequalities in rational arithmetic; the facet count (qhull) is a
    float64 decision; each ``sublevel`` entry says whether its connectivity answers were re-proven
    exactly (``components_certified``, ``facet_components_certified``).
    """

    n: int
    d: int
    widths: tuple
    count: int
    labelings: np.ndarray
    witnesses: np.ndarray
    activation_vertices: int
    polytope_dim: int
    facets: int | None = None
    cover: int | None = None
    general_position: bool = True
    sublevel: list = field(default_factory=list)
    complete: bool = True
    seconds: float = 0.0
    certified: bool = True

    _summary_fields = ("n", "d", "widths", "count", "activation_vertices", "polytope_dim", "facets", "cover",
                       "general_position", "sublevel", "complete", "certified", "seconds")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3))
        if self.sublevel:
            ax.plot([s["loss"] for s in self.sublevel], [s["cones"] for s in self.sublevel], "o-")
            ax.set_xlabel("0/1 loss <= t")
            ax.set_ylabel("activation cones")
        else:
            ax.bar(["labellings", "2^n"], [self.count, 2 ** self.n])
        return ax


def _general_position(X: np.ndarray) -> bool:
    n, d = X.shape
    Xh = np.c_[X, np.ones(n)]
    from itertools import combinations

    if n > 14:
        return bool(np.linalg.matrix_rank(Xh) == min(n, d + 1))
    for S in combinations(range(n), min(n, d + 1)):
        if np.linalg.matrix_rank(Xh[list(S)]) < len(S):
            return False
    return True


def classification_fan(X, width: int | tuple = 1, labels=None, *, facets: bool = True,
                       max_vertices: int = 20_000, time_limit: float | None = None) -> ClassificationFan:
    """The classification fan of the data ``X`` (n, d) for ``sign(p - q)`` with ``width`` monomials per
    side (an int, or ``(m_p, m_q)``); with ``labels`` (n,) in {-1, +1} (or {0, 1}) also the 0/1-loss
    sublevel sets and their connectivity.

    Activation assignments are enumerated point by point, keeping only the partial assignments whose
    LP is feasible (a vertex of the partial Minkowski sum); monomials of one side are interchangeable,
    so each assignment is listed once up to that symmetry and weighted by its orbit size. Exact up to
    the LP tolerance (HiGHS; margins are 1 by scaling, so feasibility is never marginal). ``facets``:
    facets of the activation polytope by qhull when its dimension is at most 7.
    """
    t0 = time.perf_counter()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1:
        raise InvalidInputError(f"X must be an (n, d) array of points, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise InvalidInputError("X must hold finite numbers")
    mp, mq = (width, width) if isinstance(width, (int, np.integer)) else tuple(width)
    if mp < 1 or mq < 1:
        raise InvalidInputError(f"width must be >= 1 (monomials per side), got {width!r}")
    if mp > 6 or mq > 6:
        raise ResourceLimitError(f"width {width!r}: at most 6 monomials per side (the fan has up to (2m)^n cones)")
    n, d = X.shape
    if n > 20:
        raise ResourceLimitError(f"n={n} points: the fan has up to 2^n labellings; at most 20 points are accepted")
    K, D = mp + mq, d + 1
    Xh = np.c_[X, np.ones(n)]
    y = None
    if labels is not None:
        y = np.asarray(labels).reshape(-1)
        if y.shape[0] != n or not np.isin(y, [-1, 0, 1]).all():
            raise InvalidInputError(f"labels must be {n} values in {{-1, +1}} or {{0, 1}}")
        y = np.where(y > 0, 1, -1)
    side = np.array([1] * mp + [-1] * mq)

    # enumeration of canonical partial assignments: a new monomial of a side is the next unused one
    from fractions import Fraction

    from relulab.tropical._lpcert import decide

    Xe = [[Fraction(float(v)) for v in row] + [Fraction(1)] for row in X]
    unproven = 0
    partial = [({}, (0, 0))]
    for j in range(n):
        nxt = []
        for assign, (up, uq) in partial:
            choices = list(range(min(up + 1, mp))) + [mp + l for l in range(min(uq + 1, mq))]
            for k in choices:
                a2 = dict(assign)
                a2[j] = k
                A, b, _ = _rows(Xh, a2, K, D)
                theta, proven = decide(A, b, _exact_rows(Xe, a2, K, D))
                if theta is None:
                    unproven += not proven
                    continue
                nxt.append((a2, (max(up, k + 1) if k < mp else up, max(uq, k - mp + 1) if k >= mp else uq)))
            if time_limit is not None and time.perf_counter() - t0 > time_limit:
                raise ResourceLimitError(f"time_limit={time_limit} s reached at point {j} of {n}")
        partial = nxt
        if len(partial) > max_vertices:
            raise ResourceLimitError(f"more than max_vertices={max_vertices} activation cones; raise the budget")
    # orbit sizes under permutations of the monomials of each side
    verts = 0
    labs: dict[tuple, np.ndarray] = {}
    assigns = []
    for assign, (up, uq) in partial:
        verts += math.perm(mp, up) * math.perm(mq, uq)
        lab = tuple(int(side[assign[j]]) for j in range(n))
        assigns.append((assign, lab))
        if lab not in labs:
            A, b, _ = _rows(Xh, assign, K, D)
            theta = _lp(A, b)
            labs[lab] = theta.reshape(K, D)
            th = [Fraction(float(v)) for v in theta]  # the witness, exactly: every inequality strict
            if not all(sum((u * v for u, v in zip(r, th)), Fraction(0)) < 0 for r in _exact_rows(Xe, assign, K, D)):
                unproven += 1
    labelings = np.array(sorted(labs), dtype=np.int64).reshape(-1, n)
    witnesses = np.array([labs[tuple(r)] for r in labelings.tolist()]).reshape(-1, K, D)
    # the activation polytope: sum of simplices conv{e_k (x) xh_j}
    dimP = int(np.linalg.matrix_rank(Xh)) * (K - 1)
    nf = None
    if facets and dimP <= 7 and verts <= 3000:
        nf = _activation_facets(Xh, K, mp, mq, partial)
    sub = []
    if y is not None:
        sub = _sublevel(Xh, K, D, side, y, assigns, Xe=Xe)
    gp = _general_position(X)
    cov = cover_count(n, d) if (mp == 1 and mq == 1 and gp) else None
    return ClassificationFan(n, d, (mp, mq), len(labs), labelings, witnesses, verts, dimP, nf, cov, gp, sub,
                             True, time.perf_counter() - t0, certified=unproven == 0)


def _activation_facets(Xh, K, mp, mq, partial) -> int | None:
    from itertools import permutations

    from scipy.spatial import ConvexHull, QhullError

    n, D = Xh.shape
    pts = set()
    for assign, _ in partial:
        for pp in permutations(range(mp)):
            for pq in permutations(range(mq)):
                perm = list(pp) + [mp + v for v in pq]
                v = np.zeros((K, D))
                for j, k in assign.items():
                    v[perm[k]] += Xh[j]
                pts.add(tuple(np.round(v.reshape(-1), 12)))
    P = np.array(sorted(pts))
    c = P - P.mean(0)
    _, sv, vt = np.linalg.svd(c, full_matrices=False)
    r = int((sv > 1e-9 * max(1, sv.max(initial=0))).sum())
    if r < 2:
        return 2 if r == 1 else 0
    try:
        h = ConvexHull(c @ vt[:r].T)
    except QhullError:
        return None
    return len({tuple(np.round(e, 8)) for e in h.equations})


def _closed_cones_meet(Xh, K, D, a, b, Xe=None) -> tuple[bool, bool]:
    """Whether the closed cones of assignments ``a`` and ``b`` share a point outside the lineality space,
    and whether that answer is proven exactly.

    On the intersection, ``g(theta) = sum_j sum_k <theta_{a_j} - theta_k, xh_j>`` is >= 0 and vanishes
    exactly on the lineality space (a point outside it has, at some data point, a winner strictly above
    some monomial), so the cones meet outside it iff ``max g`` (capped at 1) is positive. Proofs (with
    the exact points ``Xe``): "yes" by the LP point satisfying every inequality and ``g > 0`` in
    rationals; "no" by ``g`` in the cone of the inequalities' normals (``g = sum y_i r_i``, ``y >= 0``,
    re-solved exactly on the support of the LP's dual solution).
    """
    from fractions import Fraction

    from scipy.optimize import linprog

    from relulab.tropical._lpcert import exact_combination, support

    rows, erows, obj = [], [], np.zeros(K * D)
    eobj = [Fraction(0)] * (K * D)
    for assign in (a, b):
        for j, kj in enumerate(assign):
            for k in range(K):
                if k == kj:
                    continue
                r = np.zeros(K * D)
                r[k * D:(k + 1) * D] = Xh[j]
                r[kj * D:(kj + 1) * D] -= Xh[j]
                rows.append(r)  # <theta_k - theta_kj, xh_j> <= 0
                if Xe is not None:
                    er = [Fraction(0)] * (K * D)
                    er[k * D:(k + 1) * D] = Xe[j]
                    er[kj * D:(kj + 1) * D] = [-v for v in Xe[j]]
                    erows.append(er)
                if assign is a:
                    obj -= r
                    if Xe is not None:
                        eobj = [u - v for u, v in zip(eobj, erows[-1])]
    A = np.vstack(rows + [obj])
    bnd = np.r_[np.zeros(len(rows)), 1.0]
    res = linprog(-obj, A_ub=A, b_ub=bnd, bounds=[(None, None)] * (K * D), method="highs")
    meet = bool(res.status == 0 and -res.fun > 1e-9)
    if Xe is None or res.status != 0:
        return meet, False
    if meet:
        from relulab.tropical._lpcert import onto_tight_rows

        th = onto_tight_rows(erows, res.x, np.array(rows))  # the optimum lies on faces: land on them exactly
        dot = lambda u: sum((p * q for p, q in zip(u, th)), Fraction(0))  # noqa: E731
        return True, all(dot(r) <= 0 for r in erows) and dot(eobj) > 0
    y = -np.asarray(res.ineqlin.marginals)[:len(rows)]
    J = support(y)
    return False, bool(J) and exact_combination([erows[j] for j in J], eobj, len(J)) is not None


def _sublevel(Xh, K, D, side, y, assigns, max_cones: int = 150, max_touch: int = 40, Xe=None) -> list:
    """Cones with loss <= t and the connected components of their union, for every t.

    ``components``: connectivity of the union of the closed cones modulo the lineality space (cones
    touching along any face count as connected; all pairs tested, one LP each; ``components_certified``:
    every one of those LP answers re-proven in rational arithmetic);
    ``facet_components``: connectivity through shared facets only (the dual graph). Above ``max_touch``
    cones the pairwise test is skipped: ``components`` is None and ``connected`` is True when a facet
    path joins all cones, else None (undecided).
    """
    from itertools import permutations

    n = Xh.shape[0]
    mp = int((side > 0).sum())
    mq = K - mp
    # full (unsymmetrized) list of assignments, as tuples
    full = set()
    for assign, _ in assigns:
        base = tuple(assign[j] for j in range(n))
        for pp in permutations(range(mp)):
            for pq in permutations(range(mq)):
                perm = list(pp) + [mp + v for v in pq]
                full.add(tuple(perm[k] for k in base))
    full = sorted(full)
    if len(full) > max_cones:
        return [{"note": f"{len(full)} cones: sublevel connectivity skipped (limit {max_cones} cones)"}]
    index = {a: i for i, a in enumerate(full)}
    loss = np.array([int(sum(side[a[j]] != y[j] for j in range(n))) for a in full])

    from relulab.tropical._lpcert import decide, witness_on_hyperplanes

    facet_edges, facet_proven = [], True
    for a in full:
        for j in range(n):
            for k in range(K):
                if k <= a[j]:
                    continue
                b = a[:j] + (k,) + a[j + 1:]
                if b not in index:
                    continue
                A, bb, eq = _rows(Xh, dict(enumerate(a)), K, D, tie=(j, k))
                if Xe is None:
                    if _lp(A, bb, eq, np.zeros(len(eq))) is not None:
                        facet_edges.append((index[a], index[b]))
                    facet_proven = False
                    continue
                Aex, Eex = _exact_rows(Xe, dict(enumerate(a)), K, D, tie=(j, k))
                theta, proven = decide(A, bb, Aex, eq, Eex)
                if theta is not None:
                    facet_edges.append((index[a], index[b]))
                    proven = witness_on_hyperplanes(Aex, bb, theta, Eex)
                facet_proven &= proven
    # touching (one LP per pair of cones) only where the pairs are few; else facet paths only, which
    # prove connectedness but cannot prove its absence
    touch = len(full) <= max_touch
    touch_edges, touch_proven = [], True
    for u in range(len(full) if touch else 0):
        for v in range(u + 1, len(full)):
            met, proven = _closed_cones_meet(Xh, K, D, full[u], full[v], Xe)
            touch_proven &= proven
            if met:
                touch_edges.append((u, v))

    def comps(edges, t):
        parent = list(range(len(full)))

        def find(a):
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for u, v in edges:
            if loss[u] <= t and loss[v] <= t:
                parent[find(u)] = find(v)
        sizes = {}
        for i in range(len(full)):
            if loss[i] <= t:
                sizes[find(i)] = sizes.get(find(i), 0) + 1
        return sorted(sizes.values(), reverse=True)

    out = []
    for t in range(int(loss.min()), int(loss.max()) + 1):
        f = comps(facet_edges, t)
        c = comps(touch_edges, t) if touch else None
        conn = (len(c) <= 1) if touch else (True if len(f) <= 1 else None)
        out.append({"loss": t, "cones": int((loss <= t).sum()), "components": c, "connected": conn,
                    "components_certified": bool(touch_proven) if touch else None,
                    "facet_components_certified": bool(facet_proven),
                    "facet_components": f})
    return out


__all__ = ["classification_fan", "ClassificationFan", "cover_count"]
