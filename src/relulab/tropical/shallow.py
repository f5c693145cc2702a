"""Labellings of a data set realizable by a shallow ReLU network of width m.

Model (Brandenburg, Loho, Montufar, "The real tropical geometry of neural networks", arXiv 2403.11871:
binary classification by the sign of a shallow ReLU network, whose parameter space sits inside that of
the tropical rational functions ``sign(p - q)``). The classifier is

    ``f(x) = c + sum_{i < m} a_i relu(w_i . x + b_i)``,   point ``x_j`` labelled ``sign f(x_j)``,

and a labelling ``y in {-1, +1}^n`` is *realized* when ``y_j f(x_j) > 0`` for every point (a point on the
decision boundary is not classified). Since ``a relu(z) = sign(a) relu(|a| z)``, every network is one
with ``a_i in {-1, 0, +1}``; a unit with ``a_i = 0`` is the same as a unit that is never active, so the
realizable set only depends on ``p``, the number of units with ``a_i = +1`` (the *output signs*), and it
grows with ``m``. ``f = g - h`` with ``g = c + sum_{a_i > 0} relu(...)`` and ``h = sum_{a_i < 0} relu(...)``
convex: a tropical rational function with at most ``2^p`` and ``2^(m - p)`` monomials, so these labellings
are among those of :func:`relulab.tropical.classification_fan` with widths ``(2^p, 2^(m-p))``.

Exact decision. Fix the activation pattern ``beta in {0,1}^{n x m}`` (unit ``i`` active at point ``j``).
Then ``f(x_j) = c + sum_i a_i beta_ji (w_i . x_j + b_i)`` is linear in ``theta = (w, b, c)`` and the
conditions (``w_i . x_j + b_i > 0`` where active, ``<= 0`` where not, ``y_j f(x_j) > 0``) define a cone
that is non-empty iff the same system with every strict inequality replaced by ``>= 1`` is feasible
(scale ``theta``). A labelling is realizable iff some pattern gives a feasible LP. Patterns are searched
point by point (depth first; a partial pattern whose LP is infeasible is cut with all its extensions),
units with the same output sign are interchangeable (their pattern columns are kept in lexicographic
order), and a labelling realizable with ``p`` positive units has its negation realizable with ``m - p``.

Before the search, random networks adapted to the data (each unit's hyperplane through a random point
of the data, output offset between the network's values) are evaluated in one batch: every labelling
they realize with a clear margin is certified by its witness; only the others need the search, which
either finds a witness or refutes the labelling by exhausting its patterns. The answer is exact: every
labelling in the result has a witness network (re-evaluated in float64 and in rational arithmetic),
every other one was refuted by LPs (margins scaled to 1) each of whose "no" answers is re-proven by an
exact Farkas certificate; a "no" that cannot be proven so leaves ``certified`` False.

For ``m = 1`` the labellings are read off the activation sets of one unit (``sign(c + a relu(z))`` is
constant or has one sign exactly on an activation set), which for points in general position gives
Cover's number of affine dichotomies. For points on a line (``d = 1``, distinct points) and
``m <= 2`` the count is ``2 sum_{j <= m} C(n - 1, j)``: the labellings with at most ``m`` sign changes.
They are realizable (breakpoints just after the last point of each block, values of alternating sign
and geometrically growing size). And ``m + 1`` changes are not: ``m = 1`` is monotone; for ``m = 2``
three changes need three non-constant pieces with alternating slopes, but two units facing the same
way leave one end constant, facing apart with disjoint supports leave the middle constant, and with
overlapping supports the slopes are ``-J_1, J_2 - J_1, J_2`` (``J_i`` the slope jumps), whose middle
has the sign of the ends. From ``m = 3`` on this fails: ``J = (3, -2, 2)`` with the left-facing unit
at the last breakpoint gives slopes ``-2, 1, -1, 1`` and four sign changes (the search finds all 32
labellings of 5 points on a line with 3 units), so no closed form is claimed there.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
import math
import time
from dataclasses import dataclass

import numpy as np

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.results import Result


@dataclass(repr=False)
class ReLUClassifications(Result):
    """Realizable labellings of ``n`` points by width-``m`` shallow ReLU networks (module docstring).

    ``labelings`` (count, n) in {-1, +1}; witnesses per labelling: ``weights`` (count, m, d), ``biases``
    (count, m), ``output_weights`` (count, m) in {-1, +1}, ``offsets`` (count,) - the network
    ``c + sum_i a_i relu(w_i . x + b_i)`` realizes it (also checked in rational arithmetic); ``certified``:
    every witness realizes its labelling in exact arithmetic and every LP that said "no" (activation sets,
    pattern search) has an exact Farkas certificate against the data as given
    (:mod:`relulab.tropical._lpcert`); ``positive_units``: the fixed number of units with
    output weight +1, or None for any output signs; ``by_search``: labellings settled by the pattern
    search (the rest had a sampled witness); ``refuted``: labellings proven unrealizable; ``lps``: LPs
    solved; ``cover``: Cover's count (the width-1 value) for points in general position, else None;
    ``line_count``: for ``d = 1``, distinct points and ``m <= 2`` the closed form ``2 sum_{j <= m} C(n-1, j)``
    (else None).
    """

    n: int
    d: int
    width: int
    positive_units: int | None
    count: int
    labelings: np.ndarray
    weights: np.ndarray
    biases: np.ndarray
    output_weights: np.ndarray
    offsets: np.ndarray
    by_search: int = 0
    refuted: int = 0
    lps: int = 0
    cover: int | None = None
    line_count: int | None = None
    complete: bool = True
    certified: bool = True
    seconds: float = 0.0

    _summary_fields = ("n", "d", "width", "positive_units", "count", "by_search", "refuted", "lps", "cover",
                       "line_count", "complete", "certified", "seconds")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3))
        names, vals = ["realizable", "all 2^n"], [self.count, 2 ** self.n]
        if self.cover is not None:
            names.insert(1, "width 1 (Cover)")
            vals.insert(1, self.cover)
        ax.bar(names, vals)
        ax.set_title(f"width-{self.width} ReLU labellings of {self.n} points in R^{self.d}")
        return ax

    def evaluate(self, index: int, X) -> np.ndarray:
        """The witness network of labelling ``index`` evaluated at the points ``X`` (n, d)."""
        X = np.asarray(X, dtype=np.float64)
        z = X @ self.weights[index].T + self.biases[index]
        return self.offsets[index] + np.maximum(z, 0.0) @ self.output_weights[index]


def _net_values(X, W, B, A, C):
    """Values of a batch of networks: W (S, m, d), B (S, m), A (S, m), C (S,) at X (n, d) -> (S, n)."""
    Z = np.einsum("jd,smd->smj", X, W) + B[:, :, None]
    return C[:, None] + np.einsum("sm,smj->sj", A, np.maximum(Z, 0.0))


def _margin_ok(f: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Sign decided with a margin well above float64 rounding of the evaluation."""
    return np.abs(f) > 1e-9 * np.maximum(scale, 1e-300)


def _sample_witnesses(X, m, signs_list, samples, rng):
    """Random data-adapted networks; returns {(labelling, p): (W, b, a, c)} with a clear margin."""
    n, d = X.shape
    found = {}
    span = float(np.ptp(X, axis=0).max()) if n > 1 else 1.0
    span = span if span > 0 else 1.0
    per = max(1, samples // len(signs_list))
    for p in signs_list:
        W = rng.standard_normal((per, m, d))
        anchor = X[rng.integers(0, n, (per, m))]  # hyperplanes through data points, shifted a little
        B = -np.einsum("smd,smd->sm", W, anchor) + rng.standard_normal((per, m)) * 0.3 * span
        A = np.tile(np.r_[np.ones(p), -np.ones(m - p)], (per, 1))
        G = np.einsum("jd,smd->smj", X, W) + B[:, :, None]
        H = np.einsum("sm,smj->sj", A, np.maximum(G, 0.0))
        lo, hi = H.min(1), H.max(1)
        C = -(lo + (hi - lo) * rng.random(per)) + rng.standard_normal(per) * 0.05 * (hi - lo + 1e-12)
        F = C[:, None] + H
        scale = np.abs(C)[:, None] + np.einsum("sm,smj->sj", np.abs(A), np.abs(G)) + 1.0
        ok = _margin_ok(F, scale).all(1)
        labs = np.where(F > 0, 1, -1)
        for s in np.flatnonzero(ok):
            key = (tuple(labs[s].tolist()), p)
            if key not in found:
                found[key] = (W[s], B[s], A[s], float(C[s]))
    return found


def _dichotomies(X, deadline, Xex=None) -> tuple[dict, int, int]:
    """Activation sets of one ReLU unit on the data (bitmasks, bit j: active at point j): the sets ``S`` with
    ``w.x + b >= 1`` on ``S`` and ``<= 0`` off it for some ``(w, b)``, by a point-by-point search with
    one LP per candidate prefix (a prefix with no halfspace cannot be completed). ``Xex``: the points
    (homogeneous, exact rationals; an affine image of ``X``) against which every "no" is proven.
    Returns ({set: (w, b)}, LPs, "no" answers left unproven)."""
    from relulab.tropical._lpcert import decide

    n, d = X.shape
    Xh = np.c_[X, np.ones(n)]
    lps = unproven = 0
    level = {0: None}
    for j in range(n):
        nxt = {}
        for mask in level:
            for bit in (0, 1):
                m2 = mask | (bit << j)
                act = [(m2 >> i) & 1 for i in range(j + 1)]
                A = np.array([-Xh[i] if a else Xh[i] for i, a in enumerate(act)])
                b = np.array([-1.0 if a else 0.0 for a in act])
                ex = None if Xex is None else [[-v for v in Xex[i]] if a else list(Xex[i]) for i, a in enumerate(act)]
                lps += 1
                sol, proven = decide(A, b, ex)
                if sol is not None:
                    nxt[m2] = (sol[:d], float(sol[d]))
                elif not proven:
                    unproven += 1
        level = nxt
        if deadline is not None and time.perf_counter() > deadline:
            raise ResourceLimitError("time_limit reached while listing the activation sets of one unit")
    return level, lps, unproven


class _Search:
    """Depth-first search over activation patterns for one labelling and one sign split (LP per node).

    A unit's pattern column must be (a prefix of) one of its activation sets on the data: checked on
    bitmasks before any LP, so LPs only decide the coupling through the labels."""

    def __init__(self, X, m, allowed, max_lps, deadline, Xex=None):
        self.X, self.m = X, m
        self.n, self.d = X.shape
        self.D = self.d + 1
        self.nv = m * self.D + 1
        self.allowed = allowed  # allowed[j]: activation sets restricted to the first j points
        self.lps = 0
        self.unproven = 0  # "no" answers without an exact certificate
        self.Xex = Xex  # homogeneous points in exact rationals (an affine image of X), or None
        self.max_lps, self.deadline = max_lps, deadline

    def _rows(self, j, bits, y, a):
        """Rows ``(r, v, r_exact)`` of ``r . theta <= v`` for point ``j`` (``r_exact`` against ``Xex``)."""
        xh = np.r_[self.X[j], 1.0]
        xe = None if self.Xex is None else self.Xex[j]
        zero = [Fraction(0)] * self.nv
        rows = []
        f = np.zeros(self.nv)
        f[-1] = 1.0
        fe = list(zero)
        fe[-1] = Fraction(1)
        for i in range(self.m):
            r = np.zeros(self.nv)
            re = list(zero)
            sl = slice(i * self.D, (i + 1) * self.D)
            sign = -1 if bits[i] else 1
            r[sl] = sign * xh  # active: -(w.x + b) <= -1; inactive: w.x + b <= 0
            if xe is not None:
                re[i * self.D:(i + 1) * self.D] = [sign * v for v in xe]
            if bits[i]:
                f[sl] += a[i] * xh
                if xe is not None:
                    for t, v in enumerate(xe):
                        fe[i * self.D + t] += int(a[i]) * v
            rows.append((r, -1.0 if bits[i] else 0.0, re))
        rows.append((-y * f, -1.0, [-int(y) * v for v in fe]))  # y f(x) >= 1
        return rows

    def _lp(self, rows):
        from relulab.tropical._lpcert import decide

        self.lps += 1
        if self.lps > self.max_lps:
            raise ResourceLimitError(f"more than max_lps={self.max_lps} LPs; raise the budget (or use fewer points)")
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise ResourceLimitError("time_limit reached before every labelling was decided")
        theta, proven = decide(np.array([r for r, _, _ in rows]), np.array([v for _, v, _ in rows]),
                               None if self.Xex is None else [e for _, _, e in rows])
        if theta is None and not proven:
            self.unproven += 1
        return theta

    def find(self, y, p):
        """A parameter vector realizing ``y`` (labels of the first ``len(y)`` points) with ``p`` positive
        units, or None when none exists."""
        m, npts = self.m, len(y)
        a = np.r_[np.ones(p), -np.ones(m - p)]
        same = tuple(i + 1 < p or i >= p for i in range(m - 1))  # units i and i + 1 interchangeable
        choices = list(itertools.product((0, 1), repeat=m))
        stack = [(0, [], same, (0,) * m)]
        while stack:
            j, rows, tied, masks = stack.pop()
            allowed = self.allowed[j + 1]
            for bits in choices:
                nm = tuple(mk | (bt << j) for mk, bt in zip(masks, bits))
                if any(mk not in allowed for mk in nm):
                    continue
                ok, nt = True, list(tied)
                for i in range(m - 1):
                    if tied[i]:
                        if bits[i] > bits[i + 1]:
                            ok = False
                            break
                        if bits[i] < bits[i + 1]:
                            nt[i] = False
                if not ok:
                    continue
                r2 = rows + self._rows(j, bits, y[j], a)
                theta = self._lp(r2)
                if theta is None:
                    continue
                if j == npts - 1:
                    return theta
                stack.append((j + 1, r2, tuple(nt), nm))
        return None


def _in_hull(X, inside, test) -> bool:
    """Whether some point ``X[test]`` lies in the convex hull of ``X[inside]`` (an LP per tested point)."""
    P = X[inside]
    if len(P) == 0:
        return False
    A = np.r_[P.T, np.ones((1, len(P)))]
    from scipy.optimize import linprog

    from relulab.tropical.polynomial import _exact_support_solution

    for x in X[test]:
        res = linprog(np.zeros(len(P)), A_eq=A, b_eq=np.r_[x, 1.0], bounds=[(0, None)] * len(P), method="highs")
        # only a shortcut (it skips a sign split): taken only when exact convex weights confirm it
        if res.status == 0 and _exact_support_solution(
                np.vectorize(Fraction, otypes=[object])(P), res.x, [Fraction(v) for v in x]) is not None:
            return True
    return False


def _witnesses_exact(X, L, W, B, A, C) -> bool:
    """Every witness network gives every point its label, evaluated in rational arithmetic (the float64
    parameters and data as the binary rationals they are)."""
    Xe = [[Fraction(float(v)) for v in row] for row in X]
    for lab, w, b, a, c in zip(L.tolist(), W.tolist(), B.tolist(), A.tolist(), C.tolist()):
        for x, y in zip(Xe, lab):
            f = Fraction(c) + sum((Fraction(ai) * max(Fraction(0), sum((Fraction(u) * v for u, v in zip(wi, x)),
                                                                       Fraction(bi)))
                                   for wi, bi, ai in zip(w, b, a)), Fraction(0))
            if f * y <= 0:
                return False
    return True


def _theta_to_net(theta, m, d, p):
    D = d + 1
    W = np.array([theta[i * D:i * D + d] for i in range(m)]).reshape(m, d)
    B = np.array([theta[i * D + d] for i in range(m)])
    return W, B, np.r_[np.ones(p), -np.ones(m - p)], float(theta[-1])


def relu_classifications(X, width: int, *, positive_units: int | None = None, samples: int = 20_000,
                         max_lps: int = 200_000, time_limit: float | None = None,
                         seed: int = 0) -> ReLUClassifications:
    """Every labelling of the points ``X`` (n, d) realizable by ``x -> sign(c + sum_i a_i relu(w_i.x + b_i))``
    with ``width`` hidden units (module docstring), each with a witness network.

    Labellings are decided prefix by prefix (points in a fixed order): a labelling of the first ``j + 1``
    points can only be realizable when its first ``j`` labels are, and it is realizable for free when the
    witness of that prefix or a sampled network already gives it; otherwise the pattern search decides.
    ``positive_units``: fix the output signs (that many ``a_i = +1``, the rest ``-1``); default any.
    ``samples``: random networks tried first (only speeds it up). Raises :class:`ResourceLimitError` past
    ``max_lps`` LPs or ``time_limit`` seconds (never a partial count).
    """
    t0 = time.perf_counter()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise InvalidInputError(f"X must be an (n, d) array of points, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise InvalidInputError("X must hold finite numbers")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 1 <= width <= 4:
        raise InvalidInputError(f"width must be an integer in 1..4 (hidden units), got {width!r}")
    m = int(width)
    n, d = X.shape
    if n > 12:
        raise ResourceLimitError(f"n={n} points: all 2^n labellings are decided; at most 12 points are accepted")
    if positive_units is not None and (isinstance(positive_units, bool)
                                       or not isinstance(positive_units, (int, np.integer))
                                       or not 0 <= int(positive_units) <= m):
        raise InvalidInputError(f"positive_units must be an integer in 0..{m} (or None for any output signs), "
                                f"got {positive_units!r}")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 0:
        raise InvalidInputError(f"samples must be a non-negative integer, got {samples!r}")
    signs_list = list(range(m + 1)) if positive_units is None else [int(positive_units)]
    symmetric = positive_units is None or 2 * int(positive_units) == m  # closed under y -> -y
    deadline = None if time_limit is None else t0 + float(time_limit)
    # points in order along their first principal direction: neighbours come in turn, so a labelling
    # that cannot be realized usually fails on a short prefix
    if n > 1:
        Xc = X - X.mean(0)
        order = np.argsort(Xc @ np.linalg.svd(Xc, full_matrices=False)[2][0], kind="stable")
    else:
        order = np.arange(n)
    # labellings are invariant under x -> (x - mu) / sigma (the units absorb it): the search runs on
    # centred, scaled points for well-conditioned LPs, and the witnesses are mapped back
    mu = X.mean(0)
    sigma = float(np.abs(X - mu).max())
    sigma = sigma if sigma > 0 else 1.0
    Xo = (X[order] - mu) / sigma
    rng = np.random.default_rng(seed)
    sampled = _sample_witnesses(Xo, m, signs_list, samples, rng) if samples and m > 1 else {}
    prefix_wit: dict[tuple, tuple] = {}
    for (lab, _p), w in sampled.items():
        for j in range(1, n + 1):
            prefix_wit.setdefault(lab[:j], w)
    # exact homogeneous points (x, 1) of the ordered data: Xo is an affine image of them up to rounding,
    # and every "no" is proven against these (the question is invariant under affine maps)
    Xex = [[Fraction(float(v)) for v in row] + [Fraction(1)] for row in X[order]]
    sets, lps0, unproven0 = _dichotomies(Xo, deadline, Xex)
    allowed = [{mk & ((1 << j) - 1) for mk in sets} for j in range(n + 1)]
    search = _Search(Xo, m, allowed, max_lps, deadline, Xex)
    by_search = refuted = 0
    level: dict[tuple, tuple] = {(): None}
    if m == 1:
        # sign(c + a relu(z)) is constant or has one sign exactly on an activation set; activation sets
        # are closed under complement (z -> 1 - 2z), so the labellings are the activation sets, with
        # witnesses c = -1/2, a = +1 (or, for a = -1, c = 1/2 on the complement's unit)
        level = {}
        for mask, (w, b) in sets.items():
            lab = tuple(1 if (mask >> j) & 1 else -1 for j in range(n))
            if positive_units == 0:
                w, b = sets[((1 << n) - 1) ^ mask]
                level[lab] = (w[None], np.array([b]), np.array([-1.0]), 0.5)
            else:
                level[lab] = (w[None], np.array([b]), np.array([1.0]), -0.5)
    for j in range(n if m > 1 else 0):
        nxt: dict[tuple, tuple] = {}
        refuted_here: set = set()
        for prefix, w in level.items():
            for lab_j in (-1, 1):
                y = prefix + (lab_j,)
                if y in nxt or y in refuted_here:
                    continue
                got = None
                if w is not None:
                    f = _net_values(Xo[j:j + 1], w[0][None], w[1][None], w[2][None], np.array([w[3]]))[0, 0]
                    scale = abs(w[3]) + float(np.abs(w[2]) @ np.abs(w[0] @ Xo[j] + w[1])) + 1.0
                    if np.sign(f) == lab_j and abs(f) > 1e-9 * scale:
                        got = w
                if got is None:
                    got = prefix_wit.get(y)
                if got is None:
                    by_search += 1
                    yv = np.array(y, dtype=np.float64)
                    for p in signs_list:
                        if (p == m and _in_hull(Xo[:j + 1], yv < 0, yv > 0)) or (
                                p == 0 and _in_hull(Xo[:j + 1], yv > 0, yv < 0)):
                            continue  # f convex (concave): its negative (positive) set is convex
                        theta = search.find(yv, p)
                        if theta is not None:
                            got = _theta_to_net(theta, m, d, p)
                            break
                if got is None:
                    refuted += 1
                    refuted_here.add(y)
                    if symmetric:
                        refuted_here.add(tuple(-v for v in y))
                    continue
                nxt[y] = got
                if symmetric:
                    nxt.setdefault(tuple(-v for v in y), (got[0], got[1], -got[2], -got[3]))
        level = nxt
    inv = np.argsort(order)
    labs = sorted(tuple(np.array(k)[inv].tolist()) for k in level)
    wit = {tuple(np.array(k)[inv].tolist()): v for k, v in level.items()}
    L = np.array(labs, dtype=np.int64).reshape(-1, n)
    Ws = np.array([wit[k][0] for k in labs]).reshape(-1, m, d) / sigma
    Bs = np.array([wit[k][1] for k in labs]).reshape(-1, m) - Ws @ mu
    As = np.array([wit[k][2] for k in labs]).reshape(-1, m)
    Cs = np.array([wit[k][3] for k in labs]).reshape(-1)
    if len(labs):  # every witness re-evaluated on all points: a wrong sign would be a bug, never a result
        F = _net_values(X, Ws, Bs, As, Cs)
        if not np.all(np.sign(F) == L):
            raise AssertionError("internal inconsistency: a witness network does not realize its labelling")
    exact_ok = _witnesses_exact(X, L, Ws, Bs, As, Cs)
    from relulab.tropical.fan import _general_position, cover_count

    gp = _general_position(X)
    line = None
    if d == 1 and len(np.unique(X[:, 0])) == n and positive_units is None and m <= 2:
        line = 2 * sum(math.comb(n - 1, j) for j in range(min(m, n - 1) + 1))
    return ReLUClassifications(n, d, m, positive_units, len(labs), L, Ws, Bs, As, Cs, by_search, refuted,
                               search.lps + lps0, cover_count(n, d) if gp else None, line, True,
                               bool(exact_ok and unproven0 == 0 and search.unproven == 0), time.perf_counter() - t0)


def milp_margin(X, labels, width: int, positive_units: int) -> float:
    """Independent reference for one labelling: the largest margin ``t`` with ``y_j f(x_j) >= t`` over
    networks with ``|w|, |b|, |c| <= 1`` and output weights ``(+1)^p (-1)^(m-p)``, by a MILP (HiGHS).

    The relu is exact through indicator variables: on that box ``|w . x_j + b| <= |x_j|_1 + 1 = M_j``,
    so the big-M constraints ``h >= z``, ``h >= 0``, ``h <= z + M (1 - delta)``, ``h <= M delta`` force
    ``h = relu(z)``. Any realizing network can be rescaled into the box (everything is positively
    homogeneous), so ``y`` is realizable iff the optimum is positive. Used to check
    :func:`relu_classifications`, which does not rely on it (it is one MILP per labelling and sign split).
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    n, d = X.shape
    m, p = int(width), int(positive_units)
    if y.shape[0] != n or not np.isin(y, (-1, 1)).all() or not 0 <= p <= m:
        raise InvalidInputError(f"labels must be {n} values in {{-1, +1}} and positive_units in 0..{m}")
    D, nth, nh = d + 1, m * (d + 1) + 1, n * m
    nv = nth + 2 * nh + 1  # theta, h_ji, delta_ji, t
    a = [1.0] * p + [-1.0] * (m - p)
    rows, lo, up = [], [], []
    for j in range(n):
        M = float(np.abs(X[j]).sum() + 1.0)
        for i in range(m):
            z = np.zeros(nv)
            z[i * D:i * D + d], z[i * D + d] = X[j], 1.0
            h, dl = nth + j * m + i, nth + nh + j * m + i
            for coef_h, coef_d, low, high in ((1, 0, 0, np.inf), (1, M, -np.inf, M), (1, -M, -np.inf, 0)):
                r = -z.copy() if coef_d >= 0 else np.zeros(nv)
                r[h], r[dl] = coef_h, coef_d
                rows.append(r)
                lo.append(low)
                up.append(high)
        r = np.zeros(nv)
        r[nth - 1] = y[j]
        for i in range(m):
            r[nth + j * m + i] = y[j] * a[i]
        r[-1] = -1.0
        rows.append(r)
        lo.append(0.0)
        up.append(np.inf)
    c = np.zeros(nv)
    c[-1] = -1.0
    res = milp(c, constraints=LinearConstraint(np.array(rows), lo, up),
               integrality=np.r_[np.zeros(nth + nh), np.ones(nh), 0],
               bounds=Bounds(np.r_[-np.ones(nth), np.zeros(2 * nh), -1.0],
                             np.r_[np.ones(nth), np.full(nh, np.inf), np.ones(nh), 1.0]))
    if res.status != 0:
        raise RuntimeError(f"the MILP did not solve to optimality: {res.message}")
    return float(-res.fun)


__all__ = ["relu_classifications", "ReLUClassifications", "milp_margin"]
