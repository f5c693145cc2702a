"""Classification fans against brute-force LPs over all labellings and assignments, and Cover's count."""

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from relulab.core.errors import InvalidInputError
from relulab.tropical.fan import classification_fan, cover_count


def _affine_separable(X, y):
    n, d = X.shape
    A = -(y[:, None] * np.c_[X, np.ones(n)])
    return linprog(np.zeros(d + 1), A_ub=A, b_ub=-np.ones(n), bounds=[(None, None)] * (d + 1),
                   method="highs").status == 0


@pytest.mark.parametrize("n,d,seed", [(5, 1, 0), (6, 2, 1), (5, 3, 2)])
def test_width_one_is_cover_and_brute_force(n, d, seed):
    X = np.random.default_rng(seed).standard_normal((n, d))
    r = classification_fan(X, 1, facets=False)
    brute = sum(_affine_separable(X, np.array(y)) for y in itertools.product([-1, 1], repeat=n))
    assert r.count == brute == cover_count(n, d) == r.cover and r.certified
    for lab, w in zip(r.labelings, r.witnesses):  # every witness realizes its labelling
        Xh = np.c_[X, np.ones(n)]
        f = (Xh @ w[0]) - (Xh @ w[1])
        assert np.all(np.sign(f) == lab)


def test_width_two_against_all_assignments():
    # independent of the incremental search: an LP for every assignment of points to 4 monomials
    X = np.random.default_rng(3).standard_normal((3, 1))
    r = classification_fan(X, 2, facets=False)
    n, K, D = 3, 4, 2
    Xh = np.c_[X, np.ones(n)]
    labs, verts = set(), 0
    for a in itertools.product(range(K), repeat=n):
        A = []
        for j, k in enumerate(a):
            for k2 in range(K):
                if k2 != k:
                    row = np.zeros(K * D)
                    row[k2 * D:(k2 + 1) * D] = Xh[j]
                    row[k * D:(k + 1) * D] -= Xh[j]
                    A.append(row)
        if linprog(np.zeros(K * D), A_ub=np.array(A), b_ub=-np.ones(len(A)), bounds=[(None, None)] * (K * D),
                   method="highs").status == 0:
            verts += 1
            labs.add(tuple(1 if k < 2 else -1 for k in a))
    assert r.activation_vertices == verts
    assert r.count == len(labs)
    for lab, w in zip(r.labelings, r.witnesses):
        f = (Xh @ w[:2].T).max(1) - (Xh @ w[2:].T).max(1)
        assert np.all(np.sign(f) == lab)


def test_sublevel_sets_by_hand():
    # thresholds on a line, labels + - + -: around the circle of (w, b) the 8 dichotomies have losses
    # 2 (all +), 3, 2, 3, 2 (all -), 1, 2, 1 (cyclically), so loss <= 1 is two cells, loss <= 2 is a
    # chain of five cells plus an isolated one, loss <= 3 is everything
    X = np.array([[1.0], [2.0], [3.0], [4.0]])
    r = classification_fan(X, 1, labels=[1, -1, 1, -1])
    assert r.count == r.activation_vertices == 8
    got = {s["loss"]: s["components"] for s in r.sublevel}
    assert got == {1: [1, 1], 2: [5, 1], 3: [8]}
    assert not r.sublevel[0]["connected"] and r.sublevel[-1]["connected"]
    assert all(s["components_certified"] and s["facet_components_certified"] for s in r.sublevel)


def test_degenerate_data():
    # repeated points: never split; collinear points: fewer dichotomies than Cover's general count
    X = np.array([[0.0, 0], [0, 0], [1, 1], [2, 2]])
    r = classification_fan(X, 1, facets=False)
    assert not r.general_position and r.cover is None
    assert all(l[0] == l[1] for l in r.labelings)
    assert r.count == 6  # points 0=1, 2, 3 on a line: 2 * (1 + 2) dichotomies of 3 distinct collinear points
    with pytest.raises(InvalidInputError):
        classification_fan(np.zeros((3,)), 1)
    with pytest.raises(InvalidInputError):
        classification_fan(X, 1, labels=[1, 2, 1, 1])


def test_sublevel_sets_many_cones_use_facet_paths():
    # 52 cones (> 40): no pairwise touching test; facet paths decide connectedness where they exist and
    # leave it undecided (None) otherwise, never claiming a disconnection they cannot prove
    X = np.array([[0.0], [1.0], [2.0]])
    r = classification_fan(X, (2, 2), labels=[1, -1, 1], facets=False)
    assert r.activation_vertices == 52
    got = {s["loss"]: (s["components"], s["connected"], s["facet_components"]) for s in r.sublevel}
    assert got[0] == (None, None, [2, 2]) and got[3] == (None, True, [52])
    # few cones: the pairwise test runs; the two zero-loss cones of (2, 1) monomials (the two monomials
    # of p swapped) meet only in the lineality space, so the 0-loss set is disconnected
    r1 = classification_fan(X, (2, 1), labels=[1, -1, 1], facets=False)
    assert r1.sublevel[0]["components"] == [1, 1] and r1.sublevel[0]["connected"] is False
