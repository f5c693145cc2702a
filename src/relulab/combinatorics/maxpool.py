"""Linearity regions of max-pooling layers, counted exactly.

A max-pool layer with windows ``W_1, ..., W_m`` (index sets of the input) computes
``x -> (max_{i in W_j} x_i)_j``. On the open set where window ``j``'s maximum is attained only at
``w_j`` for every ``j`` the layer is the linear map ``x -> (x_{w_1}, ..., x_{w_m})``; distinct
winner tuples give distinct linear maps, so activation regions and linear regions coincide. A tuple
``(w_j)`` is *realizable* (its region is non-empty) iff the digraph with an arc ``w_j -> i`` for every
``i in W_j \\ {w_j}`` ("the winner beats the others in its window") is acyclic: an acyclic digraph
has a linear extension, which gives values, and a cycle makes the strict inequalities contradictory.

The layer is the support function of ``P = sum_j Delta_{W_j}`` (a Minkowski sum of simplices, a
generalized permutohedron), so its regions are the maximal cones of the normal fan of ``P``, i.e.
the vertices of ``P`` (Escobar, Gallardo, Gonzalez-Anaya, Gonzalez, Montufar, Morales, "Enumeration
of max-pooling responses with generalized permutohedra", arXiv 2209.14978).

Counting vertices: a frontier transfer-matrix
--------------------------------------------
Windows are processed in order. After window ``t`` the *frontier* is the set of elements lying both
in a processed and in an unprocessed window. The state is the reachability relation of the arcs
added so far, restricted to the frontier (as bitmasks), with the number of partial tuples reaching
it. Adding window ``t`` with winner ``w`` adds arcs from ``w`` only, so it closes a cycle iff some
other element of the window already reaches ``w``; otherwise the new closure is
``reach'(x) = reach(x) | T`` for every ``x`` reaching ``w`` (and ``w`` itself), with
``T = union over u in W_t \\ {w} of ({u} | reach(u))``. Projection onto the next frontier keeps every
reachability among elements that later windows can touch (paths through forgotten elements are
already in the closure), so the count is exact. In 1-D the states form a finite transfer matrix, so
the counts satisfy a linear recurrence (:func:`maxpool_recurrence`).

Counting facets
---------------
``P`` is the product of the polytopes of the connected components of the window hypergraph. For a
connected component on ``N`` elements, ``dim P = N - 1`` and the rays of the normal fan are among the
indicator vectors ``e_S`` (the fan coarsens the braid fan). The face maximizing ``e_S`` is
``sum_j Delta_{T_j}`` with ``T_j = W_j & S`` if non-empty, else ``W_j``, of dimension
``|union T_j| - (number of connected components of the hypergraph {T_j})``; ``e_S`` is a facet normal
iff that is ``N - 2``, and distinct ``S`` (non-empty, proper) give distinct faces. Facets are counted by
running over all subsets (vectorized), within a budget on ``N``.

Closed forms used as checks (:func:`chain_vertex_count` derives the chain case ``2s >= k``
independently of the transfer matrix; :func:`three_by_n_vertex_count` is the paper's 2-D special case,
3 x n inputs with 2 x 2 windows; :func:`pool1d_vertex_count` is the paper's transfer-matrix theorem for
every 1-D ``k`` and ``s``, :func:`pool1d_facet_count` the 1-D facet counts, derived here and equal to the
paper's Theorem 4.19): disjoint windows (``s >= k``) give a product of simplices, ``k^m``
vertices and ``m k`` facets (``2m`` for ``k = 2``); ``k = 2, s = 1`` gives the graphical zonotope of a
path, a cube: ``2^(n-1)`` vertices, ``2(n-1)`` facets; two overlapping 1-D windows with stride 1 give
``3k - 2`` vertices.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.results import RegionResult, Result


def _pair(v, dim: int, name: str) -> tuple[int, ...]:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v,) * dim
    if len(t) != dim or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a >= 1 for a in t):
        raise InvalidInputError(f"{name} must be a positive integer or {dim} of them, got {v!r}")
    return tuple(int(a) for a in t)


def pool_windows(size, kernel, stride=None) -> list[tuple[int, ...]]:
    """Windows of a 1-D (``size = n``) or 2-D (``size = (h, w)``) max-pool layer without padding, as
    tuples of flat (row-major) input indices, in row-major order of the output.

    ``stride`` defaults to ``kernel`` (as in torch). Raises :class:`InvalidInputError` when the kernel
    does not fit the input.
    """
    dims = tuple(size) if isinstance(size, (tuple, list)) else (size,)
    if len(dims) not in (1, 2):
        raise InvalidInputError(f"size must be n or (h, w), got {size!r}")
    dims = _pair(dims, len(dims), "size")
    k = _pair(kernel, len(dims), "kernel")
    s = k if stride is None else _pair(stride, len(dims), "stride")
    if any(kk > n for kk, n in zip(k, dims)):
        raise InvalidInputError(f"kernel {k} does not fit the input size {dims}")
    starts = [range(0, n - kk + 1, ss) for n, kk, ss in zip(dims, k, s)]
    out = []
    if len(dims) == 1:
        for a in starts[0]:
            out.append(tuple(range(a, a + k[0])))
    else:
        w = dims[1]
        for a in starts[0]:
            for b in starts[1]:
                out.append(tuple((a + i) * w + (b + j) for i in range(k[0]) for j in range(k[1])))
    return out


def _check_windows(windows) -> tuple[list[tuple[int, ...]], int]:
    try:
        ws = [tuple(sorted({int(i) for i in w})) for w in windows]
    except (TypeError, ValueError):
        raise InvalidInputError("windows must be a list of index collections") from None
    if any(len(w) == 0 for w in ws):
        raise InvalidInputError("every window needs at least one index")
    if any(i < 0 for w in ws for i in w):
        raise InvalidInputError("window indices must be non-negative")
    n = 1 + max((i for w in ws for i in w), default=-1)
    return ws, n


def count_argmax_tuples(windows, *, max_states: int = 2_000_000, time_limit: float | None = None) -> int:
    """The number of realizable winner tuples of a family of windows (exact integer).

    Frontier transfer-matrix over the windows in the given order (see the module docstring). Raises
    :class:`ResourceLimitError` when the number of distinct states exceeds ``max_states`` or the time
    limit is hit (the count would otherwise be incomplete).
    """
    ws, n = _check_windows(windows)
    if not ws:
        return 1
    if n <= 62:
        # few states (1-D layers): plain integers are quickest; many states: arrays
        try:
            return _count_python(ws, max_states, time_limit, switch_at=256)
        except _ManyStates:
            return _count_vectorized(ws, n, max_states, time_limit)
    return _count_python(ws, max_states, time_limit)


class _ManyStates(Exception):
    pass


def _last_use(ws) -> dict[int, int]:
    last = {}
    for t, w in enumerate(ws):
        for i in w:
            last[i] = t
    return last


def _count_vectorized(ws, n, max_states, time_limit) -> int:
    """The transfer matrix with all states of a step in one int64 array (one column per frontier
    element, bit i of an entry: reaches element i); multiplicities int64 while they provably fit,
    Python integers otherwise."""
    t0 = time.perf_counter()
    last = _last_use(ws)
    bound = math.prod(len(w) for w in ws)
    cdt = np.int64 if bound < 2 ** 62 else object
    R = np.zeros((1, 0), dtype=np.int64)
    mult = np.ones(1, dtype=cdt)
    frontier: list[int] = []
    for t, w in enumerate(ws):
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            raise ResourceLimitError(f"counting stopped by time_limit={time_limit} s at window {t} of {len(ws)}")
        pos = {x: j for j, x in enumerate(frontier)}
        zero = np.zeros(R.shape[0], dtype=np.int64)

        def col(x):
            return R[:, pos[x]] if x in pos else zero

        keep = [i for i in sorted(set(frontier) | set(w)) if last[i] > t]
        keep_mask = np.int64(sum(1 << i for i in keep))
        outs, ms = [], []
        for win in w:
            others = [u for u in w if u != win]
            ok = np.ones(R.shape[0], dtype=bool)
            T = np.zeros(R.shape[0], dtype=np.int64)
            for u in others:
                cu = col(u)
                ok &= ((cu >> win) & 1) == 0  # u already beats the winner: a cycle
                T |= cu | np.int64(1 << u)
            if not ok.any():
                continue
            Tk = T[ok]
            cols = []
            for x in keep:
                r = col(x)[ok]
                hit = ((r >> win) & 1).astype(bool) if x != win else np.ones(r.shape[0], dtype=bool)
                cols.append(np.where(hit, r | Tk, r) & keep_mask)
            outs.append(np.stack(cols, 1) if cols else np.zeros((int(ok.sum()), 0), dtype=np.int64))
            ms.append(mult[ok])
        if not outs:
            return 0
        allR, allm = np.concatenate(outs, 0), np.concatenate(ms, 0)
        if allR.shape[1] == 0:
            R, mult = np.zeros((1, 0), dtype=np.int64), np.array([allm.sum()], dtype=cdt)
        else:
            R, inv = np.unique(allR, axis=0, return_inverse=True)
            mult = np.zeros(R.shape[0], dtype=cdt)
            np.add.at(mult, inv.reshape(-1), allm)
        frontier = keep
        if R.shape[0] > max_states:
            raise ResourceLimitError(f"the transfer matrix has more than max_states={max_states} states at window "
                                     f"{t}; raise max_states to count this layer")
    return int(sum(int(v) for v in mult))


def _count_python(ws, max_states, time_limit, switch_at: int | None = None) -> int:
    """The same transfer matrix with Python-integer bitmasks (any number of inputs)."""
    t0 = time.perf_counter()
    last = _last_use(ws)
    # state: tuple of (element, reach-mask) for the frontier elements
    states: dict[tuple, int] = {(): 1}
    frontier: list[int] = []
    for t, w in enumerate(ws):
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            raise ResourceLimitError(f"counting stopped by time_limit={time_limit} s at window {t} of {len(ws)}")
        elems = sorted(set(frontier) | set(w))
        keep = [i for i in elems if last[i] > t]
        keep_mask = 0
        for i in keep:
            keep_mask |= 1 << i
        new: dict[tuple, int] = {}
        for key, mult in states.items():
            reach = dict(key)
            for win in w:
                bit = 1 << win
                others = [u for u in w if u != win]
                if any(reach.get(u, 0) & bit for u in others):
                    continue  # an element of the window already beats the winner: a cycle
                T = 0
                for u in others:
                    T |= (1 << u) | reach.get(u, 0)
                nk = []
                for x in keep:
                    r = reach.get(x, 0)
                    if x == win or r & bit:
                        r |= T
                    r &= keep_mask
                    nk.append((x, r))
                nk = tuple(nk)
                new[nk] = new.get(nk, 0) + mult
        states = new
        frontier = keep
        if switch_at is not None and len(states) > switch_at:
            raise _ManyStates
        if len(states) > max_states:
            raise ResourceLimitError(f"the transfer matrix has more than max_states={max_states} states at window "
                                     f"{t}; raise max_states to count this layer")
    return sum(states.values())


def _components(ws: list[tuple[int, ...]]) -> list[tuple[list[int], list[tuple[int, ...]]]]:
    parent = {}

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for w in ws:
        for i in w:
            parent.setdefault(i, i)
        for i in w[1:]:
            ra, rb = find(w[0]), find(i)
            if ra != rb:
                parent[rb] = ra
    groups: dict[int, list[int]] = {}
    for i in parent:
        groups.setdefault(find(i), []).append(i)
    out = []
    for root, elems in groups.items():
        out.append((sorted(elems), [w for w in ws if find(w[0]) == root]))
    return out


def _component_facets(elems: list[int], ws: list[tuple[int, ...]]) -> int:
    """Facets of the Minkowski sum of the simplices of one connected component (dimension N - 1)."""
    N = len(elems)
    if N <= 1:
        return 0
    if N == 2:
        return 2  # a segment
    loc = {e: i for i, e in enumerate(elems)}
    wm = np.array([sum(1 << loc[i] for i in w) for w in ws], dtype=np.int64)
    S = np.arange(1, (1 << N) - 1, dtype=np.int64)  # non-empty proper subsets
    meets = (S[:, None] & wm[None, :]) != 0  # (subsets, windows)
    T = np.where(meets, S[:, None] & wm[None, :], wm[None, :])
    bits = ((T[:, :, None] >> np.arange(N)[None, None, :]) & 1).astype(bool)  # (subsets, windows, N)
    inside = bits.any(1)
    big = N
    lab = np.where(inside, np.arange(N)[None, :], big)
    for _ in range(len(ws) + 1):
        old = lab
        for j in range(len(ws)):
            b = bits[:, j, :]
            m = np.where(b, lab, big).min(1)
            lab = np.where(b, np.minimum(lab, m[:, None]), lab)
        if np.array_equal(old, lab):
            break
    # converged: every component carries the label of its smallest element, which alone has own index
    comps = (lab == np.arange(N)[None, :]).sum(1)
    dim = inside.sum(1) - comps
    return int((dim == N - 2).sum())


@dataclass(kw_only=True, repr=False)
class MaxPoolCount(RegionResult):
    """Linearity regions of a max-pool layer over all of its input space.

    ``count`` = ``linear_count``: realizable winner tuples = vertices of ``P = sum_j Delta_{W_j}``;
    ``facets``: facets of ``P`` (None when the facet budget was exceeded); ``polytope_dim``;
    ``windows``: number of windows; ``elements``: inputs covered by some window; ``components``:
    connected components of the window hypergraph (``P`` is their product); ``closed_form``: the
    value of a closed formula where one applies (else None); ``formula``: which.
    """

    size: tuple = ()
    kernel: tuple = ()
    stride: tuple = ()
    windows: int = 0
    elements: int = 0
    components: int = 0
    polytope_dim: int = 0
    facets: int | None = None
    closed_form: int | None = None
    closed_form_facets: int | None = None
    formula: str | None = None
    method: str = "frontier transfer matrix"
    notes: list = field(default_factory=list)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3))
        ax.bar(["vertices", "facets"], [self.count, self.facets or 0])
        ax.set_yscale("log")
        ax.set_title(f"max-pool k={self.kernel} s={self.stride} on {self.size}")
        return ax


def chain_vertex_count(q: int, r: int, m: int) -> int:
    """Vertices of ``sum_t Delta_{W_t}`` for a chain of ``m`` windows of ``q`` inputs in which consecutive
    windows share ``r`` inputs and non-consecutive ones none, with ``2 r <= q`` (1-D pooling with
    ``2 s >= k``: ``q = k``, ``r = k - s``; 2-D pooling with one row of windows: ``q = k_h k_w``,
    ``r = k_h (k_w - s_w)``).

    Derivation (an independent route to the count, not the frontier transfer matrix): a winner tuple
    is acyclic iff no two consecutive winners are *distinct* elements of the same overlap ``O_t``.
    Such a pair is a 2-cycle; conversely along a cycle each arc leaves a winner ``w_t`` into its window,
    so consecutive windows of the cycle are adjacent (non-adjacent windows are disjoint), and at a
    window of the cycle with largest index ``t`` both neighbours are ``t - 1``: ``w_t`` and ``w_{t-1}``
    lie in ``O_{t-1}`` and differ. Counting with the state "the winner lies in the right overlap"
    gives the transfer matrix ``[[r, q - 2r + 1], [r, q - r]]`` (the ``+1``: the winner of ``O_t`` may
    win again), whose characteristic polynomial yields

        ``a(m) = q a(m-1) - r (r - 1) a(m-2)``, ``a(0) = 1``, ``a(1) = q``, i.e.
        ``sum_m a(m) x^m = 1 / (1 - q x + r (r - 1) x^2)``,

    so ``a(m) = sum_i C(m - i, i) q^(m - 2i) (-r (r - 1))^i``: ``q^m`` when ``r <= 1`` (windows sharing at
    most one input never conflict) and ``2^m`` for ``q = 2, r = 1`` (the cube). For 1-D pooling this is
    Theorem 4.2 of Escobar et al. (``ceil(k/2) <= s <= k - 2``; statement as in the authors' worksheet).
    """
    for name, v in (("q", q), ("r", r), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise InvalidInputError(f"{name} must be a non-negative integer, got {v!r}")
    if q < 1 or 2 * r > q:
        raise InvalidInputError(f"need q >= 1 and 2 r <= q (consecutive overlaps disjoint), got q={q}, r={r}")
    return sum(math.comb(m - i, i) * q ** (m - 2 * i) * (-r * (r - 1)) ** i for i in range(m // 2 + 1))


def pool1d_facet_count(k: int, s: int, m: int) -> int:
    """Facets of ``P = sum_t Delta_{W_t}`` for 1-D pooling with ``m >= 1`` windows of size ``k`` and stride
    ``s`` (no padding; the ``N = k + (m - 1) s`` covered inputs when ``s < k``):

    * ``s >= k`` (disjoint windows, a product of ``m`` simplices): ``m k`` (``0`` for ``k = 1``);
    * ``s < k``: ``N + 2 (m - 1) - [s = k - 1] (m - 1)``.

    This is Theorem 4.19 of Escobar et al. (arXiv 2209.14978; statement as in the authors' published Sage
    worksheet: ``(s + 2)(m - 1) + k`` facets for ``k > s + 1``, ``k m`` for ``1 < k <= s + 1``).
    Derivation (made here independently, from the facet criterion of the module docstring):
    the face of ``e_S`` is ``sum_{W meets S} Delta_{W & S} + sum_{W misses S} Delta_W``, of dimension
    ``(|S| - c_1) + (|U| - c_2)`` with ``U`` the union of the windows missing ``S`` and ``c_1``, ``c_2`` the
    numbers of connected components of the two window families (every input of ``S`` lies in some
    window, so the first family covers ``S``). It is ``N - 2`` iff either (A) ``U`` is empty and
    ``S = [N] - {x}`` with ``{W - x}`` still connected, or (B) ``c_1 = c_2 = 1`` and ``U`` is all of the
    complement of ``S``. (A): removing ``x`` disconnects the chain iff ``x`` is the single shared input
    of two consecutive windows (``s = k - 1``; windows two apart are disjoint then), which gives
    ``N - [s = k - 1] (m - 1)``. (B): the complement is a union of consecutive windows, an interval;
    ``S`` on both sides of it could only be joined by a window containing the interval and two more
    inputs, longer than ``k``; so the complement is the union of the first ``j`` or the last ``j``
    windows, ``1 <= j <= m - 1``, and both families are then connected: ``2 (m - 1)``.
    """
    for name, v in (("k", k), ("s", s), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidInputError(f"{name} must be a positive integer, got {v!r}")
    k, s, m = int(k), int(s), int(m)
    if s >= k:
        return m * k if k > 1 else 0
    N = k + (m - 1) * s
    return N + 2 * (m - 1) - (m - 1 if s == k - 1 else 0)


def three_by_n_vertex_count(n: int) -> int:
    """Regions of 2 x 2 max-pooling with stride 1 on a 3 x n input: the coefficient of ``x^n`` in
    ``(x + x^2 - x^3) / (1 - 13 x + 31 x^2 - 20 x^3 + 4 x^4)`` (the 2-D special case of Escobar et al.,
    arXiv 2209.14978, as recorded with the paper's reference in OEIS A357484: 1, 14, 150, 1536, ...)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInputError(f"n must be a positive integer, got {n!r}")
    num, den = [0, 1, 1, -1], [1, -13, 31, -20, 4]
    a: list[int] = []
    for i in range(int(n) + 1):  # series division: a_i = num_i - sum_{j>=1} den_j a_{i-j}
        a.append((num[i] if i < len(num) else 0) - sum(den[j] * a[i - j] for j in range(1, min(i, 4) + 1)))
    return a[int(n)]


def _closed_forms(size, k, s, m) -> tuple[int | None, int | None, str | None]:
    if len(size) == 1:
        n, kk, ss = size[0], k[0], s[0]
        facets = pool1d_facet_count(kk, ss, m)
        if kk == 1:
            return 1, 0, "k = 1: the layer is linear"
        if ss >= kk:
            return kk ** m, facets, "disjoint windows: product of m simplices"
        if kk == 2 and ss == 1:
            return 2 ** (n - 1), facets, "k = 2, s = 1: cube (graphical zonotope of a path)"
        if 2 * ss >= kk:
            return (chain_vertex_count(kk, kk - ss, m), facets,
                    "2s >= k: 1 / (1 - k x + (k - s)(k - s - 1) x^2) (Escobar et al. Thm 4.2, chain_vertex_count); "
                    "facets (s + 2)(m - 1) + k or k m (Thm 4.19, pool1d_facet_count)")
        if ss == 1 and m == 2:
            return 3 * kk - 2, facets, "two overlapping windows, s = 1: 3k - 2; facets pool1d_facet_count"
        return (pool1d_vertex_count(kk, ss, m), facets,
                "1^T A_{k,s}^(m-1) 1 (Escobar et al. Thm 4.5, pool1d_vertex_count); facets (s + 2)(m - 1) + k "
                "(Thm 4.19, pool1d_facet_count)")
    else:
        if all(ss >= kk for kk, ss in zip(k, s)):
            q = k[0] * k[1]
            return q ** m, (m * q if q > 2 else 2 * m), "disjoint windows: product of m simplices"
        if tuple(k) == (2, 2) and tuple(s) == (1, 1) and 3 in size:
            return (three_by_n_vertex_count(size[1] if size[0] == 3 else size[0]), None,
                    "3 x n input, 2 x 2 windows, stride 1: (x + x^2 - x^3) / (1 - 13x + 31x^2 - 20x^3 + 4x^4)")
        for a in (0, 1):  # one row (column) of windows: a chain along the other axis
            b = 1 - a
            if k[a] == size[a] and 2 * s[b] >= k[b]:
                return (chain_vertex_count(k[0] * k[1], k[a] * max(k[b] - s[b], 0), m), None,
                        "one row of windows, 2s >= k along it: chain_vertex_count")
    return None, None, None


def count_maxpool(size, kernel, stride=None, *, facets: bool = True, max_facet_elements: int = 18,
                  max_states: int = 2_000_000, time_limit: float | None = None) -> MaxPoolCount:
    """Exact number of linearity regions (and facets) of a max-pool layer.

    ``size``: ``n`` (1-D) or ``(h, w)`` (2-D, one channel; channels multiply counts, since the
    polytope is a product); ``kernel``, ``stride`` (default ``kernel``): integers or pairs, no
    padding. Vertices by the frontier transfer matrix (module docstring), facets by running over the
    subsets of each connected component when it has at most ``max_facet_elements`` inputs (else
    ``facets=None`` with a note). ``count`` is the number of regions over all of R^n (activation
    regions = linear regions here).

    Example: ``count_maxpool(30, 3, 1).count``; ``count_maxpool((6, 6), 2, 1).count``.
    """
    t0 = time.perf_counter()
    dims = tuple(size) if isinstance(size, (tuple, list)) else (size,)
    if isinstance(dims[0], (int, np.integer)) and math.prod(int(v) for v in dims if isinstance(v, (int, np.integer))) > 10 ** 6:
        raise ResourceLimitError(f"input size {dims}: at most 10^6 inputs are counted")
    ws = pool_windows(dims, kernel, stride)
    d = len(dims)
    k = _pair(kernel, d, "kernel")
    s = k if stride is None else _pair(stride, d, "stride")
    comps = _components(ws)
    count = 1
    for elems, cws in comps:
        count *= count_argmax_tuples(cws, max_states=max_states, time_limit=time_limit)
    notes = []
    fac = None
    if facets:
        if all(len(e) <= max_facet_elements for e, _ in comps):
            fac = sum(_component_facets(e, c) for e, c in comps)
        else:
            notes.append(f"facets not counted: a connected component has more than max_facet_elements="
                         f"{max_facet_elements} inputs")
    cf, cff, formula = _closed_forms(dims, k, s, len(ws))
    if cf is not None and cf != count:  # the two routes must agree; never return a count that does not
        raise AssertionError(f"internal inconsistency: transfer matrix {count} vs closed form {cf} ({formula})")
    if cff is not None and fac is not None and cff != fac:
        raise AssertionError(f"internal inconsistency: facets {fac} vs closed form {cff} ({formula})")
    if fac is None and cff is not None and facets:
        fac = cff
        notes.append("facets from the closed form (pool1d_facet_count), not counted over subsets")
    elements = len({i for w in ws for i in w})
    return MaxPoolCount(count=count, linear_count=count, complete=True, certified=True,
                        counts_what="linearity regions (= activation regions = vertices of the Minkowski sum)",
                        domain="R^d", seconds=time.perf_counter() - t0, size=dims, kernel=k, stride=s,
                        windows=len(ws), elements=elements, components=len(comps),
                        polytope_dim=elements - len(comps), facets=fac, closed_form=cf, closed_form_facets=cff,
                        formula=formula, notes=notes)


@dataclass(repr=False)
class MaxPoolTable(Result):
    """Vertex and facet counts of 1-D max-pool layers (every kernel ``k`` and stride ``s`` asked for, on
    input length ``n``) and of 2-D layers with 2 x 2 windows (strides 1 and 2) on square and 3 x n
    inputs. Rows are :meth:`MaxPoolCount.to_dict` summaries: ``size``, ``kernel``, ``stride``,
    ``windows``, ``vertices``, ``facets`` (None: not counted), ``closed_form`` (value of a closed formula
    for the vertices, None if none applies), ``closed_form_facets``, ``seconds``."""

    n: int
    rows_1d: list
    rows_2d: list
    seconds: float = 0.0

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        for k in sorted({r["kernel"][0] for r in self.rows_1d}):
            rows = [r for r in self.rows_1d if r["kernel"][0] == k]
            ax.plot([r["stride"][0] for r in rows], [r["vertices"] for r in rows], "o-", label=f"k = {k}")
        ax.set_yscale("log")
        ax.set_xlabel("stride s")
        ax.set_ylabel(f"vertices (n = {self.n})")
        ax.legend()
        return ax


def maxpool_table(n: int = 10, kernels=(2, 3, 4, 5), strides=(1, 2, 3),
                  sizes_2d=((2, 2), (2, 3), (3, 3), (3, 4), (3, 5), (3, 6), (4, 4), (5, 5), (6, 6)),
                  strides_2d=(1, 2), max_facet_elements: int = 16) -> MaxPoolTable:
    """The counts of :class:`MaxPoolTable` (each by :func:`count_maxpool`, whose closed forms must agree)."""
    t0 = time.perf_counter()
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not max(kernels) <= n <= 62:
        raise InvalidInputError(f"n must be an integer between the largest kernel ({max(kernels)}) and 62, got {n!r}")

    def row(r: MaxPoolCount) -> dict:
        return {"size": list(r.size), "kernel": list(r.kernel), "stride": list(r.stride), "windows": r.windows,
                "vertices": r.count, "facets": r.facets, "closed_form": r.closed_form,
                "closed_form_facets": r.closed_form_facets, "seconds": r.seconds}

    rows1 = [row(count_maxpool(int(n), k, s, max_facet_elements=max_facet_elements))
             for k in kernels for s in strides]
    rows2 = [row(count_maxpool(tuple(hw), 2, st, max_facet_elements=max_facet_elements))
             for st in strides_2d for hw in sizes_2d if min(hw) >= 2]
    return MaxPoolTable(int(n), rows1, rows2, time.perf_counter() - t0)


def count_maxpool_layer(layer, *, facets: bool = False, max_states: int = 2_000_000) -> MaxPoolCount:
    """Regions of the max-pool layer of a :class:`~relulab.core.plnet.PLNet` (any padding, dilation,
    ceil mode and channels): the windows are read from the layer's index table, so padded windows are
    the smaller sets of real inputs. Channels are connected components: their counts multiply."""
    from relulab.core.layers import MaxUnits

    if not isinstance(layer, MaxUnits) or layer.kind not in ("maxpool", "maxout"):
        raise InvalidInputError("layer must be a max-pool (or maxout) MaxUnits layer of a PLNet")
    t0 = time.perf_counter()
    idx, valid = layer.index.cpu().numpy(), layer.valid.cpu().numpy()
    ws = [tuple(sorted(set(int(i) for i in idx[u][valid[u]]))) for u in range(idx.shape[0])]
    comps = _components(ws)
    count = 1
    for elems, cws in comps:
        count *= count_argmax_tuples(cws, max_states=max_states)
    fac = sum(_component_facets(e, c) for e, c in comps) if facets else None
    elements = len({i for w in ws for i in w})
    return MaxPoolCount(count=count, linear_count=count, complete=True, certified=True,
                        counts_what="linearity regions (= activation regions = vertices of the Minkowski sum)",
                        domain="R^d", seconds=time.perf_counter() - t0, size=tuple(layer.in_shape),
                        windows=len(ws), elements=elements, components=len(comps),
                        polytope_dim=elements - len(comps), facets=fac, method="frontier transfer matrix",
                        notes=[f"layer {layer.kind} {layer.spec}"])


def _paper_matrix(k: int, s: int) -> np.ndarray:
    """The k x k transfer matrix ``A_{k,s}`` of Escobar et al. (Section 4): entry ``(i, j)`` is 1, except
    for ``i >= s`` and ``j <= k - s - 1``, where it is 1 iff ``i - s = j``."""
    i, j = np.indices((k, k))
    return np.where((i >= s) & (j <= k - s - 1), (i - s == j).astype(np.int64), 1).astype(object)


def pool1d_vertex_count(k: int, s: int, m: int) -> int:
    """Vertices of the 1-D max-pool polytope ``P_{m,k,s}`` (``m`` windows of size ``k``, stride ``s``) by the
    transfer-matrix theorem of Escobar, Gallardo, Gonzalez-Anaya, Gonzalez, Montufar, Morales (arXiv
    2209.14978, Theorem 4.5, as stated in the authors' published Sage worksheet):
    ``sum_{m >= 0} b_{m+1} x^m = 1^T adj(I - x A_{k,s}) 1 / det(I - x A_{k,s})``, i.e.
    ``b_m = 1^T A_{k,s}^{m-1} 1`` (:func:`_paper_matrix`). Exact integers; an independent route to the
    frontier transfer matrix of :func:`count_argmax_tuples` (the tests compare them for every
    ``k <= 8``, ``s <= 9``)."""
    for name, v in (("k", k), ("s", s), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidInputError(f"{name} must be a positive integer, got {v!r}")
    A = _paper_matrix(int(k), int(s))
    v = np.ones(int(k), dtype=object)
    for _ in range(int(m) - 1):
        v = A.dot(v)
    return int(sum(v))


def pool1d_generating_function(k: int, s: int):
    """``sum_{m >= 1} b_m x^m`` as a reduced rational function of x (sympy): ``x 1^T (I - x A_{k,s})^{-1} 1``
    (Escobar et al., Theorem 4.5; for ``s | k`` it reduces to their Theorem 4.3, for ``k/2 <= s <= k - 2``
    to Theorem 4.2, ``1 / (1 - k x + (k - s)(k - s - 1) x^2) - 1``)."""
    import sympy

    k, s = _pair(k, 1, "kernel")[0], _pair(s, 1, "stride")[0]
    x = sympy.Symbol("x")
    # det(I - x A) from the characteristic polynomial (Berkowitz, integer arithmetic); the numerator
    # x 1^T adj(I - x A) 1 has degree <= k, so it is the series times the denominator, truncated
    chi = sympy.Matrix(_paper_matrix(k, s).astype(int).tolist()).charpoly().all_coeffs()  # lambda^k + c_1 ...
    den = sum(sympy.Integer(c) * x ** i for i, c in enumerate(chi))
    b = [0] + [pool1d_vertex_count(k, s, m) for m in range(1, k + 1)]
    num = sum(sympy.Integer(sum(b[m - i] * int(chi[i]) for i in range(0, min(m, k) + 1))) * x ** m
              for m in range(1, k + 1))
    return sympy.factor(sympy.cancel(num / den))


def maxpool_recurrence(kernel: int, stride: int = 1, terms: int | None = None):
    """The linear recurrence and rational generating function of the 1-D counts.

    ``a(m)`` = regions of a 1-D layer with ``m`` windows (input length ``k + (m - 1) s``). The generating
    function ``sum_m a(m) x^m`` is :func:`pool1d_generating_function` (Escobar et al., Theorem 4.5); its
    denominator ``1 - sum_i c_i x^(i+1)`` gives ``a(m) = sum_i c_i a(m - 1 - i)``. The first ``terms``
    values of the frontier transfer matrix are checked against the series (an inconsistency raises).
    Returns ``(coefficients, generating_function, values)``.
    """
    import sympy

    k, s = _pair(kernel, 1, "kernel")[0], _pair(stride, 1, "stride")[0]
    terms = terms or 24
    vals = [count_argmax_tuples(pool_windows(k + (m - 1) * s, k, s)) for m in range(1, terms + 1)]
    x = sympy.Symbol("x")
    gf = pool1d_generating_function(k, s)
    num, den = sympy.fraction(sympy.cancel(gf))
    den = sympy.Poly(den, x)
    c0 = den.coeff_monomial(1)
    coeffs = [-sympy.Rational(den.coeff_monomial(x ** (i + 1)), c0) for i in range(den.degree())]
    series = sympy.series(gf, x, 0, terms + 1).removeO()
    if [series.coeff(x, m) for m in range(1, terms + 1)] != vals:
        raise AssertionError(f"internal inconsistency: the generating function of k={k}, s={s} and the frontier "
                             f"transfer matrix disagree")
    while coeffs and coeffs[-1] == 0:
        coeffs.pop()
    return coeffs, gf, vals


def _solve_exact(A, b):
    """Gaussian elimination over the rationals; None when A is singular."""
    from fractions import Fraction

    n = len(A)
    M = [[Fraction(v) for v in row] + [Fraction(bb)] for row, bb in zip(A, b)]
    for c in range(n):
        piv = next((r for r in range(c, n) if M[r][c] != 0), None)
        if piv is None:
            return None
        M[c], M[piv] = M[piv], M[c]
        for r in range(n):
            if r != c and M[r][c] != 0:
                f = M[r][c] / M[c][c]
                M[r] = [x - f * y for x, y in zip(M[r], M[c])]
    return [M[i][n] / M[i][i] for i in range(n)]


def _find_recurrence(vals: list[int]):
    """Shortest linear recurrence (rational coefficients) that every given value satisfies."""
    n = len(vals)
    for r in range(1, n // 2):
        rows = [[vals[m - 1 - i] for i in range(r)] for m in range(r, n)]
        rhs = [vals[m] for m in range(r, n)]
        c = _solve_exact(rows[:r], rhs[:r])
        if c is None:
            continue
        if all(sum(c[i] * rows[j][i] for i in range(r)) == rhs[j] for j in range(len(rows))):
            return c
    return None


def brute_force_tuples(windows) -> int:
    """Reference count: every winner tuple, tested for acyclicity by depth-first search (small sizes)."""
    ws, n = _check_windows(windows)
    total = 1
    for w in ws:
        total *= len(w)
    if total > 5_000_000:
        raise ResourceLimitError(f"brute force over {total} tuples refused (limit 5e6)")
    count = 0
    for tup in itertools.product(*ws):
        adj = {}
        for w, win in zip(ws, tup):
            adj.setdefault(win, set()).update(u for u in w if u != win)
        if _acyclic(adj):
            count += 1
    return count


def _acyclic(adj: dict) -> bool:
    color = {}
    for s in adj:
        if color.get(s):
            continue
        stack = [(s, iter(adj.get(s, ())))]
        color[s] = 1
        while stack:
            v, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[v] = 2
                stack.pop()
            elif color.get(nxt) == 1:
                return False
            elif not color.get(nxt):
                color[nxt] = 1
                stack.append((nxt, iter(adj.get(nxt, ()))))
    return True


def brute_force_orders(windows) -> int:
    """Reference count: distinct argmax tuples over all total orders of the inputs (tiny sizes)."""
    ws, n = _check_windows(windows)
    if n > 9:
        raise ResourceLimitError(f"{n}! orders refused (at most 9 inputs)")
    seen = set()
    for perm in itertools.permutations(range(n)):
        seen.add(tuple(max(w, key=lambda i: perm[i]) for w in ws))
    return len(seen)


__all__ = ["pool_windows", "count_argmax_tuples", "chain_vertex_count", "pool1d_facet_count", "three_by_n_vertex_count", "count_maxpool", "count_maxpool_layer", "maxpool_recurrence",
           "maxpool_table", "MaxPoolTable", "pool1d_vertex_count", "pool1d_generating_function",
           "MaxPoolCount",
           "brute_force_tuples", "brute_force_orders"]
