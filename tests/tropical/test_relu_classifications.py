"""Labellings realizable by shallow ReLU networks against an independent MILP per labelling
(``milp_margin``: exact big-M on a normalized box), Cover's
count (width 1), the closed form on a line, the convexity of the negative set when every output weight is
positive, and the tropical classification fan that contains them."""

import itertools

import numpy as np
import pytest

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.tropical.fan import classification_fan, cover_count
from relulab.tropical.shallow import milp_margin, relu_classifications


def _agrees_with_milp(r, X, ps):
    """Every witness realizes its labelling (so those are realizable), and the MILP finds no margin for
    any other labelling (so those are not)."""
    for k in range(r.count):
        assert np.all(np.sign(r.evaluate(k, X)) == r.labelings[k])
    for k in range(0, r.count, max(1, r.count // 3)):  # positive control: the MILP sees realized ones
        p = int((r.output_weights[k] > 0).sum())
        assert milp_margin(X, r.labelings[k], r.width, p) > 1e-7
    assert r.certified  # witnesses exact, every "no" with an exact Farkas certificate
    got = {tuple(v) for v in r.labelings.tolist()}
    others = [y for y in itertools.product((-1, 1), repeat=len(X)) if y not in got]
    for y in others:
        assert all(milp_margin(X, y, r.width, p) < 1e-7 for p in ps), y
    return others


def test_line_against_milp_and_closed_form():
    # distinct points on a line: the labellings with at most m sign changes, 2 sum_{j<=m} C(n-1, j)
    X = np.array([[0.0], [1.0], [2.5], [3.0], [4.2]])
    r = relu_classifications(X, 2)
    assert r.count == r.line_count == 2 * (1 + 4 + 6)
    changes = [int((np.diff(v) != 0).sum()) for v in r.labelings]
    assert max(changes) == 2 and r.refuted > 0
    # without sampled witnesses the pattern search decides every labelling; the MILP agrees
    r0 = relu_classifications(X[:4], 2, samples=0)
    assert r0.by_search > 0 and r0.count == 14
    assert len(_agrees_with_milp(r0, X[:4], range(3))) == 2
    assert {tuple(v[:4]) for v in r.labelings.tolist()} == {tuple(v) for v in r0.labelings.tolist()}
    # three units change sign four times (slopes -2, 1, -1, 1): every labelling of the 5 points, and the
    # closed form is not claimed beyond m = 2
    r3 = relu_classifications(X, 3)
    assert r3.count == 32 and r3.line_count is None
    k = [tuple(v) for v in r3.labelings.tolist()].index((1, -1, 1, -1, 1))
    assert np.all(np.sign(r3.evaluate(k, X)) == [1, -1, 1, -1, 1])


def test_plane_against_milp_fixed_signs_and_convexity():
    X = np.array([[0.0, 0.0], [2.0, 0.1], [1.0, 1.7], [0.9, 0.6], [2.2, 1.9]])
    r = relu_classifications(X, 2, positive_units=2)
    labs = {tuple(v) for v in r.labelings.tolist()}
    assert len(_agrees_with_milp(r, X, [2])) > 0
    # f = c + relu + relu is convex: {f < 0} is convex, so no positive point lies in the hull of negatives;
    # the centre point 3 inside the triangle 0, 1, 2 cannot be + with all three corners -
    assert (-1, -1, -1, 1, -1) not in labs and (-1, -1, -1, 1, 1) not in labs
    assert (1, 1, 1, -1, 1) in labs
    # any output signs: every labelling of these 5 points (2 units suffice)
    assert relu_classifications(X, 2).count == 32


def test_width_one_is_cover_and_the_affine_fan():
    X = np.random.default_rng(4).standard_normal((5, 2))
    r = relu_classifications(X, 1)
    fan = classification_fan(X, 1, facets=False)
    assert r.count == cover_count(5, 2) == r.cover == fan.count
    assert {tuple(v) for v in r.labelings.tolist()} == {tuple(v) for v in fan.labelings.tolist()}
    for p in (0, 1):  # one unit of either output sign realizes the same dichotomies
        rp = relu_classifications(X, 1, positive_units=p)
        assert np.array_equal(rp.labelings, r.labelings) and np.all(rp.output_weights == (1 if p else -1))
        for k in range(rp.count):
            assert np.all(np.sign(rp.evaluate(k, X)) == rp.labelings[k])
    assert relu_classifications(X[:4], 3).count == 16


def test_inside_the_tropical_fan():
    # one positive and one negative unit: p - q with 2 + 2 monomials contains every such labelling
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    r = relu_classifications(X, 2, positive_units=1)
    fan = classification_fan(X, (2, 2), facets=False)
    assert {tuple(v) for v in r.labelings.tolist()} <= {tuple(v) for v in fan.labelings.tolist()}
    for k in range(r.count):
        assert np.all(np.sign(r.evaluate(k, X)) == r.labelings[k])


def test_degenerate_data_and_errors():
    # a repeated point gets one label; collinear points in the plane count as on their line
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    r = relu_classifications(X, 2)
    assert all(v[0] == v[1] for v in r.labelings.tolist())
    assert r.count == 2 * (1 + 2 + 1) and r.cover is None
    # far from the origin and badly scaled: the same labellings (the search runs on normalized points)
    Xf = np.array([[0.0], [1.0], [2.5], [3.0]]) * 1e6 + 3e7
    rf = relu_classifications(Xf, 2)
    assert rf.count == 14
    for k in range(rf.count):
        assert np.all(np.sign(rf.evaluate(k, Xf)) == rf.labelings[k])
    with pytest.raises(InvalidInputError):
        relu_classifications(np.zeros(3), 1)
    with pytest.raises(InvalidInputError):
        relu_classifications(X, 0)
    with pytest.raises(InvalidInputError):
        relu_classifications(X, 2, positive_units=3)
    with pytest.raises(ResourceLimitError):
        relu_classifications(np.zeros((13, 1)), 1)
    with pytest.raises(ResourceLimitError):
        relu_classifications(np.random.default_rng(0).standard_normal((7, 1)), 2, samples=0, max_lps=5)


def test_exact_farkas_certificates():
    # decide(): "yes" with a float solution; "no" proven only by an exact certificate for the rows given
    from fractions import Fraction

    from relulab.tropical._lpcert import decide

    F = Fraction
    A = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])  # x < 0, -x < 0 (scaled), y <= 0: infeasible
    b = np.array([-1.0, -1.0, 0.0])
    ex = [[F(1), F(0)], [F(-1), F(0)], [F(0), F(1)]]
    theta, proven = decide(A, b, ex)
    assert theta is None and proven
    wrong = [[F(1), F(0)], [F(-1), F(1, 10**6)], [F(0), F(1)]]  # these exact rows are feasible: no proof
    assert decide(A, b, wrong) == (None, False)
    theta, proven = decide(np.array([[1.0, 1.0]]), np.array([-1.0]), [[F(1), F(1)]])
    assert theta is not None and theta.sum() <= -1 + 1e-9
