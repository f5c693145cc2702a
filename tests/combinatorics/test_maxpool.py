"""Max-pool region counts against brute force, total orders, convex hulls, the generic region engine,
published values and closed forms."""

import itertools

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from relulab import PLNet
from relulab.combinatorics.maxpool import (brute_force_orders, brute_force_tuples, count_argmax_tuples,
                                           count_maxpool, maxpool_recurrence, pool_windows)
from relulab.core.errors import InvalidInputError, ResourceLimitError

CASES_1D = [(n, k, s) for k in (2, 3, 4) for s in (1, 2, 3) for n in (k, k + 1, k + 3, 8) if n >= k]
CASES_2D = [((3, 3), 2, 1), ((3, 4), 2, 1), ((4, 4), 2, 2), ((3, 3), (2, 3), 1), ((4, 3), 3, 1)]


@pytest.mark.parametrize("n,k,s", CASES_1D)
def test_1d_matches_brute_force(n, k, s):
    ws = pool_windows(n, k, s)
    assert count_maxpool(n, k, s).count == brute_force_tuples(ws)


@pytest.mark.parametrize("size,k,s", CASES_2D)
def test_2d_matches_brute_force(size, k, s):
    ws = pool_windows(size, k, s)
    assert count_maxpool(size, k, s).count == brute_force_tuples(ws)


@pytest.mark.parametrize("n,k,s", [(5, 2, 1), (6, 3, 1), (7, 3, 2), (8, 4, 2), (7, 5, 1)])
def test_acyclicity_equals_total_orders(n, k, s):
    # independent of the acyclicity argument: distinct argmax tuples over every ordering of the inputs
    ws = pool_windows(n, k, s)
    assert brute_force_tuples(ws) == brute_force_orders(ws) == count_argmax_tuples(ws)


def test_random_window_families():
    rng = np.random.default_rng(0)
    for _ in range(25):
        n = int(rng.integers(3, 8))
        ws = [tuple(sorted(rng.choice(n, size=int(rng.integers(1, 4)), replace=False))) for _ in range(int(rng.integers(1, 5)))]
        assert count_argmax_tuples(ws) == brute_force_orders(ws)


def test_published_2d_values():
    # the paper's 2-D special case (OEIS A357484, 3 x n input, 2 x 2 windows, stride 1), its first terms
    # and its generating function (x + x^2 - x^3) / (1 - 13x + 31x^2 - 20x^3 + 4x^4)
    from relulab.combinatorics.maxpool import three_by_n_vertex_count

    published = [1, 14, 150, 1536, 15594, 158050, 1601356, 16223814, 164366170, 1665216896]
    assert [three_by_n_vertex_count(n) for n in range(1, 11)] == published
    assert [count_maxpool((3, n), 2, 1, facets=False).count for n in (2, 3, 4, 5)] == published[1:5]
    for n in (6, 7, 8):  # transfer matrix (the closed form is checked inside count_maxpool too)
        r = count_maxpool((n, 3), 2, 1, facets=False)
        assert r.count == r.closed_form == published[n - 1]
    assert count_argmax_tuples(pool_windows((3, 9), 2, 1)) == published[8]


def _minkowski_vertices(ws, n):
    pts = set()
    for tup in itertools.product(*ws):
        v = [0] * n
        for w in tup:
            v[w] += 1
        pts.add(tuple(v))
    return np.array(sorted(pts), dtype=float)


@pytest.mark.parametrize("n,k,s", [(5, 2, 1), (6, 3, 1), (7, 3, 2), (6, 4, 1), (7, 3, 1)])
def test_vertices_and_facets_against_convex_hull(n, k, s):
    from scipy.optimize import linprog

    ws = pool_windows(n, k, s)
    pts = _minkowski_vertices(ws, n)
    # vertices: points outside the convex hull of the others (one LP each)
    keep = []
    for i in range(len(pts)):
        o = np.delete(pts, i, 0)
        lp = linprog(np.zeros(len(o)), A_eq=np.vstack([o.T, np.ones(len(o))]), b_eq=np.r_[pts[i], 1],
                     bounds=(0, None), method="highs")
        keep.append(lp.status != 0)
    P = pts[np.array(keep)]
    # coordinates of the affine hull (sum x = m is one equation; the component structure is connected here)
    c = P - P.mean(0)
    u, sv, vt = np.linalg.svd(c, full_matrices=False)
    r = int((sv > 1e-9).sum())
    hull = ConvexHull(c @ vt[:r].T)
    res = count_maxpool(n, k, s)
    assert res.polytope_dim == r
    assert res.count == len(P) == len(hull.vertices)
    # merge coplanar triangles: distinct facet hyperplanes
    eq = np.round(hull.equations, 9)
    assert res.facets == len({tuple(e) for e in eq})


@pytest.mark.parametrize("n,k,s", [(4, 2, 1), (5, 3, 1), (5, 2, 2), (6, 3, 2), (5, 4, 1)])
def test_agrees_with_region_engine(n, k, s):
    from relulab import regions

    full = regions.full_space
    net = PLNet.from_torch(torch.nn.MaxPool1d(k, s), (1, n))
    res = full(net)
    assert res.complete
    assert count_maxpool(n, k, s).count == res.count


def test_agrees_with_region_engine_2d():
    from relulab import regions

    full = regions.full_space
    net = PLNet.from_torch(torch.nn.MaxPool2d(2, 1), (1, 2, 3))
    assert count_maxpool((2, 3), 2, 1).count == full(net).count == 14  # = A357484(2), the 3 x 2 input transposed


def test_layer_with_padding_and_channels():
    from relulab import regions
    from relulab.combinatorics.maxpool import count_maxpool_layer

    full = regions.full_space
    net = PLNet.from_torch(torch.nn.MaxPool1d(3, stride=2, padding=1), (1, 5))
    r = count_maxpool_layer(net.max_units[0])
    assert r.count == full(net).count
    net2 = PLNet.from_torch(torch.nn.MaxPool2d(2, stride=1, padding=1), (2, 2, 3))
    layer = net2.max_units[0]
    r2 = count_maxpool_layer(layer)
    one = [tuple(sorted(set(int(i) for i, ok in zip(row, v) if ok)))
           for row, v in zip(layer.index.tolist()[:12], layer.valid.tolist()[:12])]
    assert r2.components == 2 and r2.count == brute_force_orders(one) ** 2


def test_closed_forms():
    assert count_maxpool(11, 2, 1).count == 2 ** 10 and count_maxpool(11, 2, 1).facets == 20
    for k in (2, 3, 5):
        r = count_maxpool(3 * k, k, k)
        assert r.count == k ** 3 and r.closed_form == k ** 3
    for k in (3, 4, 6):
        assert count_maxpool(k + 1, k, 1).count == 3 * k - 2


def test_recurrence_reproduces_counts():
    coeffs, gf, vals = maxpool_recurrence(2, 1, terms=10)
    assert [int(c) for c in coeffs] == [2]  # a(m) = 2 a(m-1): the cube
    from relulab.combinatorics.maxpool import _find_recurrence

    a = [count_maxpool(3 + m - 1, 3, 1, facets=False).count for m in range(1, 15)]
    coeffs = _find_recurrence(a)
    for m in range(len(coeffs), len(a)):
        assert a[m] == sum(c * a[m - 1 - i] for i, c in enumerate(coeffs))


def test_targets_sizes_run():
    assert count_maxpool(30, 3, 1, facets=False).count > 0
    assert count_maxpool((6, 6), 2, 1, facets=False).count == 2245265631376


def test_bad_inputs():
    with pytest.raises(InvalidInputError):
        count_maxpool(3, 4)
    with pytest.raises(InvalidInputError):
        count_maxpool(5, 0)
    with pytest.raises(InvalidInputError):
        count_maxpool((2, 2, 2), 2)
    with pytest.raises(ResourceLimitError):
        count_maxpool((6, 6), 3, 1, max_states=10, facets=False)
    r = count_maxpool((5, 5), 2, 1)  # 25 inputs, no facet closed form in 2-D: facets not counted, said so
    assert r.facets is None and r.notes


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_chain_formula_against_brute_force(k):
    # 1 / (1 - k x + (k-s)(k-s-1) x^2) for 2s >= k, against acyclicity tested tuple by tuple
    from relulab.combinatorics.maxpool import chain_vertex_count

    for s in range((k + 1) // 2, k + 1):
        for m in range(1, 5):
            n = k + (m - 1) * s
            ws = pool_windows(n, k, s)
            assert chain_vertex_count(k, k - s, m) == brute_force_tuples(ws), (k, s, m)
            r = count_maxpool(n, k, s, facets=False)
            assert r.closed_form == r.count == chain_vertex_count(k, k - s, m)


def test_chain_formula_generating_function_and_2d_rows():
    import sympy

    from relulab.combinatorics.maxpool import chain_vertex_count

    x = sympy.Symbol("x")
    for q, r in [(4, 2), (5, 2), (6, 3), (6, 2)]:
        ser = sympy.series(1 / (1 - q * x + r * (r - 1) * x ** 2), x, 0, 9).removeO()
        assert [ser.coeff(x, m) for m in range(9)] == [chain_vertex_count(q, r, m) for m in range(9)]
    # 2-D: one row of 2x2 windows, stride 1, on a 2 x n input is the chain q = 4, r = 2
    for n in range(2, 6):
        assert brute_force_tuples(pool_windows((2, n), 2, 1)) == chain_vertex_count(4, 2, n - 1)
        assert count_maxpool((2, n), 2, 1, facets=False).closed_form == count_maxpool((n, 2), 2, 1, facets=False).count
    # 3 x 2 windows with stride 1 on 3 x n (q = 6, r = 3) and a column of windows
    assert count_maxpool((3, 6), (3, 2), 1, facets=False).count == chain_vertex_count(6, 3, 5)
    assert count_maxpool((7, 3), (3, 3), (2, 1), facets=False).count == chain_vertex_count(9, 3, 3)
    with pytest.raises(InvalidInputError):
        chain_vertex_count(3, 2, 4)  # overlaps of consecutive windows would meet


def test_1d_facet_formula_against_subset_count():
    # the derived closed form against the facet criterion run over all subsets (an independent route)
    from relulab.combinatorics.maxpool import _component_facets, _components, pool1d_facet_count

    for k in range(1, 7):
        for s in range(1, k + 2):
            for m in range(1, 7):
                n = k + (m - 1) * s
                if n > 16:
                    continue
                comps = _components(pool_windows(n, k, s))
                assert pool1d_facet_count(k, s, m) == sum(_component_facets(e, c) for e, c in comps), (k, s, m)


@pytest.mark.parametrize("n,k,s", [(9, 5, 2), (10, 4, 3), (8, 5, 1), (7, 4, 1)])
def test_1d_facet_formula_against_convex_hull(n, k, s):
    # facets of the Minkowski sum by qhull (distinct facet hyperplanes), no facet criterion involved
    from relulab.combinatorics.maxpool import pool1d_facet_count

    ws = pool_windows(n, k, s)
    pts = _minkowski_vertices(ws, n)
    c = pts - pts.mean(0)
    _, sv, vt = np.linalg.svd(c, full_matrices=False)
    r = int((sv > 1e-9).sum())
    hull = ConvexHull(c @ vt[:r].T)
    assert pool1d_facet_count(k, s, len(ws)) == len({tuple(e) for e in np.round(hull.equations, 9)})


def test_1d_facets_beyond_the_subset_budget():
    r = count_maxpool(30, 3, 1)  # 30 inputs: too many subsets, the closed form gives the facets
    assert r.facets == 30 + 2 * 27 and r.notes
    with pytest.raises(InvalidInputError):
        from relulab.combinatorics.maxpool import pool1d_facet_count

        pool1d_facet_count(0, 1, 1)


def test_paper_transfer_matrix_theorem():
    # Escobar et al. Theorem 4.5 (b_m = 1^T A_{k,s}^(m-1) 1) against the frontier transfer matrix
    from relulab.combinatorics.maxpool import pool1d_vertex_count

    for k in range(1, 8):
        for s in range(1, k + 2):
            for m in range(1, 8):
                n = k + (m - 1) * s
                if n <= 26:
                    assert pool1d_vertex_count(k, s, m) == count_argmax_tuples(pool_windows(n, k, s)), (k, s, m)


def test_paper_published_values():
    # values printed in the authors' Sage worksheet: f-vectors of P_{2,3,1} (7 vertices, 6 facets), Q_2
    # (14, 8) and Q_3 (150, 21); series of k=3, s=1 and k=4, s=2 up to ten windows; Theorem 4.3 (s | k)
    # and Theorem 4.19 (facets (s + 2)(m - 1) + k for k > s + 1, else k m)
    import sympy

    from relulab.combinatorics.maxpool import pool1d_facet_count, pool1d_generating_function

    r = count_maxpool(4, 3, 1)
    assert (r.count, r.facets) == (7, 6)
    for n, want in ((2, (14, 8)), (3, (150, 21))):
        r = count_maxpool((3, n), 2, 1)
        assert (r.count, r.facets) == want
    b31 = [3, 7, 16, 36, 81, 182, 409, 919, 2065, 4640]
    b42 = [4, 14, 48, 164, 560, 1912, 6528, 22288, 76096]
    assert [count_maxpool(3 + m - 1, 3, 1, facets=False).count for m in range(1, 11)] == b31
    assert [count_maxpool(4 + 2 * (m - 1), 4, 2, facets=False).count for m in range(1, 10)] == b42
    x = sympy.Symbol("x")
    for rr, s in [(1, 2), (2, 1), (2, 2), (3, 1), (1, 3)]:
        k = s * (rr + 1)
        gf = (1 + (rr * s - s - 2) * x - (rr * s - 1) * x ** 2 + s * x ** (rr + 1)) / (
            1 - 2 * (s + 1) * x + (s + 1) ** 2 * x ** 2 + s * x ** (rr + 1) - s ** 2 * (rr + 1) * x ** (rr + 2)
            + s * (rr * s - 1) * x ** (rr + 3))
        ser = sympy.series(gf, x, 0, 7).removeO()
        ours = sympy.series(pool1d_generating_function(k, s), x, 0, 7).removeO()
        for m in range(1, 7):
            assert ser.coeff(x, m) == ours.coeff(x, m) == count_argmax_tuples(pool_windows(k + (m - 1) * s, k, s))
    for k in range(2, 7):
        for s in range(1, 7):
            for m in range(1, 6):
                assert pool1d_facet_count(k, s, m) == ((s + 2) * (m - 1) + k if k > s + 1 else k * m)
