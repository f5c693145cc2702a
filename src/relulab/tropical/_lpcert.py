"""Feasibility of homogeneous strict systems, decided by a float64 LP and certified in rationals.

The systems met in the labelling searches are ``A theta <= b`` with every ``b_i`` either ``-1`` (a strict
inequality ``r_i . theta < 0`` scaled to margin 1, which the positive homogeneity of the cones allows)
or ``0``. One LP, ``max t <= 1`` subject to ``A theta + |b| t <= 0``, decides it: ``t* > 0`` gives a
solution ``theta / t*``; otherwise HiGHS's dual weights ``y >= 0`` with ``y A = 0`` and ``y . |b| = 1``
prove infeasibility (Farkas: ``0 = y A theta <= y . b = -1`` would follow), and they are re-solved in
rational arithmetic on their support against the exact rows (the data as the binary rationals it is)
before the answer counts as proven.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def decide(A: np.ndarray, b: np.ndarray, A_exact=None, E: np.ndarray | None = None, E_exact=None):
    """``(theta, True)`` when ``A theta <= b`` (and ``E theta = 0``) is feasible (``theta`` satisfies it in
    float64), else ``(None, proven)``: ``proven`` when an exact Farkas certificate was found for the rows
    ``A_exact`` (and ``E_exact``; lists of Fractions, the same system; None: nothing to prove against,
    ``proven`` False). With equalities the certificate is ``y A + mu E = 0``, ``y >= 0``, ``y . |b| = 1``."""
    from scipy.optimize import linprog

    nv = A.shape[1]
    sb = np.abs(b)
    kw = {}
    if E is not None and len(E):
        kw = dict(A_eq=np.c_[E, np.zeros(len(E))], b_eq=np.zeros(len(E)))
    res = linprog(np.r_[np.zeros(nv), -1.0], A_ub=np.c_[A, sb], b_ub=np.zeros(len(A)),
                  bounds=[(None, None)] * nv + [(None, 1.0)], method="highs", **kw)
    if res.status == 0 and -res.fun > 1e-9:
        return res.x[:nv] / -res.fun, True
    if res.status != 0 or A_exact is None or (kw and E_exact is None):
        return None, False
    return None, _farkas(A_exact, sb, -np.asarray(res.ineqlin.marginals), E_exact if kw else None)


def support(y_float, rel: float = 1e-10) -> list:
    """Indices of the clearly positive entries of a float LP solution (its support)."""
    y = np.asarray(y_float, dtype=np.float64)
    scale = max(float(np.max(np.abs(y))) if y.size else 0.0, 1e-300)
    return [j for j, v in enumerate(y) if v > rel * scale]


def exact_combination(cols, rhs, nonneg: int):
    """Rationals ``z`` with ``sum_a z_a cols[a] = rhs`` exactly and ``z_a >= 0`` for the first ``nonneg``
    columns, from the normal equations (the columns of a basic LP solution are independent); None when
    there is none of that kind."""
    from relulab.combinatorics.maxpool import _solve_exact

    n = len(cols)
    if n == 0:
        return None
    AtA = [[sum((u * v for u, v in zip(cols[a], cols[c])), Fraction(0)) for c in range(n)] for a in range(n)]
    Atb = [sum((u * v for u, v in zip(cols[a], rhs)), Fraction(0)) for a in range(n)]
    sol = _solve_exact(AtA, Atb)
    if sol is None or any(v < 0 for v in sol[:nonneg]):
        return None
    if any(sum((sol[a] * cols[a][r] for a in range(n)), Fraction(0)) != rhs[r] for r in range(len(rhs))):
        return None
    return sol


def _farkas(R, sb, y_float, E=None) -> bool:
    J = support(y_float)
    if not J:
        return False
    nv = len(R[0])
    cols = [list(R[j]) + [Fraction(int(sb[j]))] for j in J]
    cols += [list(e) + [Fraction(0)] for e in (E or [])]  # free multipliers of the equalities
    return exact_combination(cols, [Fraction(0)] * nv + [Fraction(1)], len(J)) is not None


def witness_on_hyperplanes(A_exact, b, theta, E_exact) -> bool:
    """The float point ``theta`` projected exactly onto ``{E theta = 0}`` (one row) satisfies every
    inequality of ``A theta <= b`` strictly where ``b < 0`` and weakly where ``b = 0``, in rationals."""
    th = [Fraction(float(v)) for v in theta]
    for e in E_exact:
        ee = sum((u * u for u in e), Fraction(0))
        if ee == 0:
            return False
        step = sum((u * v for u, v in zip(e, th)), Fraction(0)) / ee
        th = [v - step * u for u, v in zip(e, th)]
    if any(sum((u * v for u, v in zip(e, th)), Fraction(0)) != 0 for e in E_exact):
        return False
    for r, bb in zip(A_exact, b):
        val = sum((u * v for u, v in zip(r, th)), Fraction(0))
        if (bb < 0 and not val < 0) or (bb >= 0 and not val <= 0):
            return False
    return True


def onto_tight_rows(rows_exact, theta, rows_float=None, tol: float = 1e-9) -> list:
    """The float point ``theta`` moved exactly onto ``{r . x = 0}`` for the rows it satisfies with
    equality up to ``tol`` (relative): the orthogonal projection onto their common null space, computed
    in rationals on a maximal independent subset of them. Closed inequalities tight at an LP optimum
    then hold exactly."""
    from relulab.combinatorics.maxpool import _solve_exact

    th = [Fraction(float(v)) for v in theta]
    if rows_float is None:
        rows_float = np.array([[float(v) for v in r] for r in rows_exact])
    t = np.asarray(theta, dtype=np.float64)
    vals = rows_float @ t
    scale = np.abs(rows_float) @ np.abs(t) + 1e-300
    tight = [i for i in np.flatnonzero(np.abs(vals) <= tol * np.maximum(scale, 1.0))]
    basis: list = []
    for i in tight:  # greedy independent subset, exactly
        cand = basis + [list(rows_exact[i])]
        G = [[sum((u * v for u, v in zip(a, c)), Fraction(0)) for c in cand] for a in cand]
        if _solve_exact(G, [Fraction(0)] * len(cand)) is not None:
            basis = cand
    if not basis:
        return th
    G = [[sum((u * v for u, v in zip(a, c)), Fraction(0)) for c in basis] for a in basis]
    lam = _solve_exact(G, [sum((u * v for u, v in zip(a, th)), Fraction(0)) for a in basis])
    for l_, a in zip(lam, basis):
        th = [v - l_ * u for u, v in zip(a, th)]
    return th
