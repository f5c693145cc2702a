"""Max-plus (tropical) polynomials and their reduction, in float64 or exact rational arithmetic.

A max-plus polynomial is ``p(x) = max_i (a_i . x + c_i)``: monomial ``i`` has exponent vector ``a_i``
(real, not only integer, as for networks) and constant ``c_i``. Tropical sum is ``max`` (union of
monomials), tropical product is ``+`` (Minkowski sum of the monomial sets: every ``a_i + b_j`` with
``c_i + d_j``), and a positive real power ``t p`` scales exponents and constants.

Reduction and the canonical form
--------------------------------
Monomial ``i`` is *strictly maximal somewhere* iff the lifted point ``(a_i, c_i)`` is a vertex of the
upper hull ``conv{(a_j, c_j)} - R_+ e_{d+1}`` (it is the unique maximizer of ``(x, 1)``). Dropping every
other monomial never changes ``p``: if ``max_{j != i}`` dominates ``i`` nowhere strictly, ``m_i <= max_j
m_j`` everywhere. Each monomial is decided by one LP (scipy HiGHS):

* keep: ``max t`` s.t. ``(a_i - a_j) . x + c_i - c_j >= t`` for all ``j != i``, ``t <= 1``; a witness with
  ``t > 0`` is re-checked in exact rational arithmetic (floats are binary rationals, so the check is
  exact for float64 data too);
* drop: ``(a_i, c_i) = sum_j l_j (a_j, c_j) - (0, mu)``, ``l >= 0``, ``sum l = 1``, ``mu >= 0``; the support of
  the LP solution is re-solved exactly and checked.

A monomial neither certificate settles is kept and the polynomial is marked ``certified=False``
(the function is unchanged either way). Exact duplicates of an exponent keep the larger constant.
**Canonical form**: the surviving monomials sorted lexicographically by exponent vector. Two max-plus
polynomials define the same function iff their canonical forms are equal (the upper-hull vertices
of a convex piecewise-linear function are determined by it).

References: Zhang, Naitzat, Lim, "Tropical geometry of deep neural networks" (ICML 2018);
Brandenburg, Loho, Montufar, "The real tropical geometry of neural networks" (arXiv 2403.11871).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from relulab.core.errors import InvalidInputError, ResourceLimitError


def _exact(a) -> np.ndarray:
    arr = np.asarray(a, dtype=object)
    return np.vectorize(lambda v: v if isinstance(v, Fraction) else Fraction(v), otypes=[object])(arr) \
        if arr.size else arr.astype(object)


@dataclass
class MaxPlus:
    """``p(x) = max_i (exponents[i] . x + constants[i])``; ``exact``: entries are ``Fraction`` objects."""

    exponents: np.ndarray  # (M, d)
    constants: np.ndarray  # (M,)
    exact: bool = False
    reduced: bool = False
    certified: bool = True

    @property
    def size(self) -> int:
        return int(self.exponents.shape[0])

    @property
    def dim(self) -> int:
        return int(self.exponents.shape[1])

    @staticmethod
    def monomial(exponent, constant=0.0, exact: bool = False) -> "MaxPlus":
        e = np.asarray(exponent, dtype=object if exact else np.float64).reshape(1, -1)
        c = np.asarray([constant], dtype=object if exact else np.float64)
        if exact:
            e, c = _exact(e), _exact(c)
        return MaxPlus(e, c, exact, reduced=True)

    @staticmethod
    def constant(value, d: int, exact: bool = False) -> "MaxPlus":
        return MaxPlus.monomial([0] * d, value, exact)

    def __call__(self, x) -> np.ndarray:
        """Values at points ``x`` (N, d) (or one point (d,)); Fractions in exact mode when x is exact."""
        X = np.asarray(x, dtype=object if self.exact else np.float64)
        single = X.ndim == 1
        X = X.reshape(-1, self.dim)
        if self.exact:
            X = _exact(X)
            vals = X.dot(self.exponents.T) + self.constants[None, :]
            out = np.array([max(r) for r in vals], dtype=object)
        else:
            out = (X @ self.exponents.T + self.constants[None, :]).max(1)
        return out[0] if single else out

    def scale(self, t) -> "MaxPlus":
        """The tropical power ``t p`` for ``t >= 0`` (``t = 0`` is the constant 0)."""
        if t == 0:
            return MaxPlus.constant(0, self.dim, self.exact)
        if t < 0:
            raise InvalidInputError(f"tropical powers need a non-negative factor, got {t}")
        t = Fraction(t) if self.exact else float(t)
        return MaxPlus(self.exponents * t, self.constants * t, self.exact, self.reduced, self.certified)

    def add_constant(self, c) -> "MaxPlus":
        c = Fraction(c) if self.exact else float(c)
        return MaxPlus(self.exponents, self.constants + c, self.exact, self.reduced, self.certified)

    def times(self, other: "MaxPlus", max_monomials: int | None = None) -> "MaxPlus":
        """Tropical product ``p + q``: all pairwise sums, exact duplicates merged."""
        n = self.size * other.size
        if max_monomials is not None and n > max_monomials:
            raise ResourceLimitError(f"a tropical product would have {n} monomials (max_monomials={max_monomials})")
        E = (self.exponents[:, None, :] + other.exponents[None, :, :]).reshape(n, self.dim)
        c = (self.constants[:, None] + other.constants[None, :]).reshape(n)
        return MaxPlus(E, c, self.exact, certified=self.certified and other.certified).merged()

    def plus(self, other: "MaxPlus") -> "MaxPlus":
        """Tropical sum ``max(p, q)``: the union of the monomials."""
        return MaxPlus(np.concatenate([self.exponents, other.exponents], 0),
                       np.concatenate([self.constants, other.constants], 0), self.exact,
                       certified=self.certified and other.certified).merged()

    def merged(self) -> "MaxPlus":
        """Exact duplicate exponents merged (the larger constant survives); rows sorted (canonical order)."""
        if self.size <= 1:
            return self
        if self.exact:
            best: dict = {}
            for e, c in zip(map(tuple, self.exponents), self.constants):
                if e not in best or c > best[e]:
                    best[e] = c
            keys = sorted(best)
            E = np.empty((len(keys), self.dim), dtype=object)
            for i, k in enumerate(keys):
                E[i, :] = k
            return MaxPlus(E, np.array([best[k] for k in keys], dtype=object), True, self.reduced, self.certified)
        order = np.lexsort(np.c_[-self.constants, self.exponents[:, ::-1]].T)
        E, c = self.exponents[order], self.constants[order]
        first = np.ones(len(c), dtype=bool)
        first[1:] = (E[1:] != E[:-1]).any(1)
        return MaxPlus(E[first], c[first], False, self.reduced, self.certified)

    def reduce(self) -> "MaxPlus":
        """Drop every monomial that is nowhere strictly maximal (module docstring); canonical order."""
        if self.reduced:
            return self
        p = self.merged()
        if p.size <= 1:
            return MaxPlus(p.exponents, p.constants, p.exact, True, p.certified)
        keep, certified = _upper_vertices(p.exponents, p.constants)
        return MaxPlus(p.exponents[keep], p.constants[keep], p.exact, True, certified and p.certified)

    def to_float(self) -> "MaxPlus":
        if not self.exact:
            return self
        return MaxPlus(self.exponents.astype(np.float64), self.constants.astype(np.float64), False, self.reduced,
                       self.certified)

    def to_dict(self) -> dict:
        conv = (lambda v: str(v)) if self.exact else float
        return {"exponents": [[conv(v) for v in row] for row in self.exponents],
                "constants": [conv(v) for v in self.constants], "exact": self.exact, "reduced": self.reduced}


def _frac_matrix(a) -> np.ndarray:
    return _exact(np.asarray(a, dtype=object))


def _upper_vertices(E: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, bool]:
    """Which lifted points ``(E_i, c_i)`` are upper-hull vertices, each decided by an LP and certified in
    exact arithmetic; undecided ones are kept (and ``certified`` is False)."""
    from scipy.optimize import linprog

    M, d = E.shape
    Ef, cf = E.astype(np.float64), c.astype(np.float64)
    Ex, cx = _frac_matrix(E), _frac_matrix(c)
    keep = np.ones(M, dtype=bool)
    certified = True
    scale = max(1.0, float(np.abs(Ef).max(initial=0)), float(np.abs(cf).max(initial=0)))
    seen = sampled_winners(Ef, cf)
    dropped = _hull_dominated(Ef, cf, Ex, cx, seen)
    keep &= ~dropped
    for i in range(M):
        if seen[i] or dropped[i]:
            continue  # strictly maximal at a sample point (far above rounding), or exactly dominated
        others = np.array([j for j in range(M) if j != i and keep[j]])
        if len(others) == 0:
            continue
        # keep-LP over (x, t): maximize t, (E_j - E_i) x + t <= c_i - c_j
        A = np.c_[Ef[others] - Ef[i], np.ones(len(others))]
        b = cf[i] - cf[others]
        res = linprog(np.r_[np.zeros(d), -1.0], A_ub=A, b_ub=b, bounds=[(None, None)] * d + [(None, 1.0)],
                      method="highs")
        if res.status == 0 and -res.fun > 1e-12 * scale:
            x = [Fraction(float(v)) for v in res.x[:d]]
            vi = sum(a * xx for a, xx in zip(Ex[i], x)) + cx[i]
            if all(vi > sum(a * xx for a, xx in zip(Ex[j], x)) + cx[j] for j in range(M) if j != i):
                continue  # certified strictly maximal at x
        # drop-LP: (E_i, c_i) in conv(others) - R_+ e_{d+1}
        Aeq = np.vstack([Ef[others].T, np.ones(len(others))])
        beq = np.r_[Ef[i], 1.0]
        res2 = linprog(-cf[others], A_eq=Aeq, b_eq=beq, bounds=(0, None), method="highs")
        if res2.status == 0 and -res2.fun >= cf[i] - 1e-9 * scale:
            lam = _exact_support_solution(Ex[others], res2.x, Ex[i])
            if lam is not None and sum(l * cx[j] for l, j in zip(lam, others)) >= cx[i]:
                keep[i] = False
                continue
        certified = False  # neither certificate holds exactly: keep (the function is unchanged)
    return keep, certified


def _hull_dominated(Ef, cf, Ex, cx, seen) -> np.ndarray:
    """Monomials certified (exactly) to lie on or below an upper facet of the lifted points.

    One qhull call on the lifted points (float64, triangulated) proposes, for each monomial not seen
    winning, an upper facet simplex whose shadow contains its exponent; the convex weights are then
    solved exactly and the monomial is dropped only if they are >= 0 and the facet is at or above its
    constant there. Anything qhull gets wrong is merely not dropped here (the LPs decide it)."""
    from scipy.spatial import ConvexHull, QhullError

    from relulab.combinatorics.maxpool import _solve_exact

    M, d = Ef.shape
    out = np.zeros(M, dtype=bool)
    if M <= d + 2 or seen.all():
        return out
    lifted = np.c_[Ef, cf]
    low = float(cf.min()) - 1.0 - float(np.abs(lifted).max())
    pts = np.vstack([lifted, np.c_[Ef, np.full(M, low)]])
    try:
        h = ConvexHull(pts, qhull_options="Qt")
    except (QhullError, ValueError):
        return out  # lower-dimensional exponents: the LPs decide
    up = h.equations[:, d] > 1e-12
    simp = h.simplices[up]
    simp = simp[(simp < M).all(1)]  # facets made of monomials only
    if len(simp) == 0:
        return out
    for i in np.flatnonzero(~seen):
        # float barycentric coordinates of a_i in every upper simplex's shadow
        for f in simp:
            if i in f:
                continue
            B = np.c_[Ef[f], np.ones(d + 1)].T
            try:
                lam = np.linalg.solve(B, np.r_[Ef[i], 1.0])
            except np.linalg.LinAlgError:
                continue
            if lam.min() < -1e-9 or lam @ cf[f] < cf[i] - 1e-9 * (1 + abs(cf[i])):
                continue
            rows = [[Ex[j, r] for j in f] for r in range(d)] + [[Fraction(1)] * (d + 1)]
            sol = _solve_exact(rows, list(Ex[i]) + [Fraction(1)])
            if sol is not None and min(sol) >= 0 and sum(l * cx[j] for l, j in zip(sol, f)) >= cx[i]:
                out[i] = True
            break
    return out


def sampled_winners(E: np.ndarray, c: np.ndarray, n: int = 4096, seed: int = 0) -> np.ndarray:
    """Monomials found strictly maximal at random points (several scales), with a margin far above the
    float64 rounding of the values (``1e-8`` of their magnitude), so the decision is certain."""
    M, d = E.shape
    rng = np.random.default_rng(seed)
    span = max(1.0, float(np.abs(c).max(initial=0)))
    X = rng.standard_normal((n, d)) * np.geomspace(1e-2, 1e2, n)[:, None] * span
    V = X @ E.T + c[None, :]
    if M < 2:
        return np.ones(M, dtype=bool)
    top2 = np.partition(V, M - 2, axis=1)[:, M - 2:]
    margin = top2[:, 1] - top2[:, 0]
    mag = np.abs(X) @ np.abs(E).T + np.abs(c)[None, :]
    ok = margin > 1e-8 * (1.0 + mag.max(1))
    seen = np.zeros(M, dtype=bool)
    seen[V[ok].argmax(1)] = True
    return seen


def _exact_support_solution(Eo, lam_float, target):
    """Exact convex weights on the support of a float LP solution with ``sum l E_o = target``, or None."""
    from relulab.tropical._lpcert import exact_combination

    J = [j for j, v in enumerate(lam_float) if v > 1e-12]
    if not J:
        return None
    d = Eo.shape[1]
    cols = [[Eo[j, r] for r in range(d)] + [Fraction(1)] for j in J]
    sol = exact_combination(cols, list(target) + [Fraction(1)], len(J))
    if sol is None:
        return None
    lam = [Fraction(0)] * len(lam_float)
    for a, j in enumerate(J):
        lam[j] = sol[a]
    return lam


__all__ = ["MaxPlus"]
