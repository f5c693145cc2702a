"""Filtered exact predicates against brute force in ``fractions.Fraction``."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from relulab.core.errors import DegenerateGeometryError
from relulab.regions._exact import (ExactTally, affine_signs, compare_ratios, exact_product_sum, line_side,
                                    orient2d, product_sum_signs, require_nonzero)


def fsign(x: Fraction) -> int:
    return (x > 0) - (x < 0)


def F(x) -> Fraction:
    return Fraction(float(x))


# floats over the whole range: huge, tiny, subnormal, zero, and ordinary
finite = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, -1e300, 1e300,
                     1.7976931348623157e308]),
)


@settings(max_examples=150)
@given(st.integers(1, 6), st.integers(1, 3), st.data())
def test_product_sums_match_fractions(n, k, data):
    vals = data.draw(st.lists(finite, min_size=n * k, max_size=n * k))
    A = np.array(vals, dtype=np.float64).reshape(1, n, k)
    s, n_exact = product_sum_signs(A)
    ref = sum((math.prod((F(x) for x in row), start=Fraction(1)) for row in A[0]), start=Fraction(0))
    assert int(s[0]) == fsign(ref)
    assert 0 <= n_exact <= 1


def near_tie(draw_scale, rel):
    """w . x + b with b = -(w . x) rounded, then nudged by rel: the sign hinges on the last bits."""
    return draw_scale, rel


@settings(max_examples=120)
@given(st.integers(1, 8), st.sampled_from([1e-300, 1e-150, 1e-8, 1.0, 1e8, 1e150, 1e300]),
       st.sampled_from([0.0, 1e-16, -1e-16, 1e-12, -1e-12]), st.integers(0, 2**31 - 1))
def test_affine_near_ties_at_every_scale(n, scale, rel, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((16, n)) * math.sqrt(scale)
    x = rng.standard_normal((16, n)) * math.sqrt(scale)
    dot = (w * x).sum(1)
    b = -dot * (1 + rel)
    s, n_exact = affine_signs(w, x, b)
    for i in range(16):
        ref = sum((F(w[i, j]) * F(x[i, j]) for j in range(n)), start=F(b[i]))
        assert int(s[i]) == fsign(ref), (i, ref)
    assert 0 <= n_exact <= 16


def test_filter_settles_clear_cases_and_exact_settles_ties():
    w = np.array([[1.0, 2.0], [1.0, 1.0], [0.1, 0.2]])
    x = np.array([[3.0, 4.0], [1.0, -1.0], [3.0, -1.5]])
    s, n_exact = affine_signs(w, x, np.array([1.0, 0.0, 0.0]))
    assert s.tolist() == [1, 0, fsign(F(0.1) * 3 + F(0.2) * F(-1.5))]
    # row 1 is 0 exactly from zero products? no: 1 - 1 = 0 with nonzero magnitude: exact stage
    assert n_exact >= 1
    # subnormal products: the float filter cannot vouch for them
    s, n_exact = affine_signs([[5e-324, -5e-324]], [[1e-10, 2e-10]])
    assert int(s[0]) == -1 and n_exact == 1
    # overflowing intermediates are decided exactly, not as inf - inf
    s, n_exact = affine_signs([[1e300, -1e300]], [[1e300, 1e300 * (1 - 2**-52)]])
    assert int(s[0]) == 1 and n_exact == 1


def test_tensors_in_tensors_out():
    w = torch.tensor([[1.0, -1.0], [2.0, 0.5]], dtype=torch.float64)
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    s, _ = affine_signs(w, x)
    assert isinstance(s, torch.Tensor) and s.tolist() == [0, 1]


@settings(max_examples=150)
@given(finite, finite, finite, finite)
def test_compare_ratios(p1, q1, p2, q2):
    if q1 == 0 or q2 == 0:
        with pytest.raises(DegenerateGeometryError):
            compare_ratios(p1, q1, p2, q2)
        return
    s, _ = compare_ratios(np.array([p1]), np.array([q1]), np.array([p2]), np.array([q2]))
    assert int(s[0]) == fsign(F(p1) / F(q1) - F(p2) / F(q2))


def test_breakpoints_1e_minus_12_apart_are_ordered():
    # t = -b / a for a t + b: roots 0.5 and 0.5 (1 + 1e-12)
    a1, b1 = 3.0, -1.5
    a2, b2 = 3.0, -1.5 * (1 + 1e-12)
    s, _ = compare_ratios(-b1, a1, -b2, a2)
    assert int(s) == -1
    s, _ = compare_ratios(-b1, a1, -b1 * 7, a1 * 7)  # the same root, scaled
    assert int(s) == 0


@settings(max_examples=150)
@given(st.lists(finite, min_size=6, max_size=6), st.booleans())
def test_orient2d(c, collinear):
    p, q, r = np.array(c[:2]), np.array(c[2:4]), np.array(c[4:])
    if collinear:  # r on the line through p and q at an exactly representable spot
        r = p.copy()
    s, _ = orient2d(p, q, r)
    P, Q, R = [[F(v) for v in pt] for pt in (p, q, r)]
    ref = (Q[0] - P[0]) * (R[1] - P[1]) - (Q[1] - P[1]) * (R[0] - P[0])
    assert int(s) == fsign(ref)


def test_orient2d_nearly_collinear():
    # the classic failure of naive orientation: points on a line of slope 1 near (0.5, 0.5)
    base = np.array([0.5, 0.5])
    q, r = np.array([12.0, 12.0]), np.array([24.0, 24.0])
    pts = np.array([[base[0] + i * 2**-53, base[1] + j * 2**-53] for i in range(8) for j in range(8)])
    s, n_exact = orient2d(pts, q, r)
    for (x, y), si in zip(pts, s):
        ref = (F(12) - F(x)) * (F(24) - F(y)) - (F(12) - F(y)) * (F(24) - F(x))
        assert int(si) == fsign(ref)
    assert n_exact > 0


@settings(max_examples=100)
@given(st.lists(st.one_of(st.integers(-5, 5).map(float), finite), min_size=9, max_size=9))
def test_line_side(c):
    l1, l2, l3 = np.array(c[:3]), np.array(c[3:6]), np.array(c[6:])
    a1, b1, c1 = map(F, l1)
    a2, b2, c2 = map(F, l2)
    a3, b3, c3 = map(F, l3)
    w = a1 * b2 - a2 * b1
    if w == 0:
        with pytest.raises(DegenerateGeometryError):
            line_side(l1, l2, l3)
        return
    x, y = b1 * c2 - b2 * c1, c1 * a2 - c2 * a1
    s, _ = line_side(l1, l2, l3)
    assert int(s) == fsign(a3 * x / w + b3 * y / w + c3)


def test_two_parallel_lines_1e_minus_10_apart_and_a_crossing_line():
    # y = 0 and y = 1e-10 cut by x = 0: the vertex (0, 1e-10) lies strictly above y = 0
    s, _ = line_side([1.0, 0.0, 0.0], [0.0, 1.0, -1e-10], [0.0, 1.0, 0.0])
    assert int(s) == 1
    s, _ = line_side([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, -1e-10])
    assert int(s) == -1


def test_exact_product_sum_and_helpers():
    num, e = exact_product_sum([[0.1, 3.0], [-0.3, 1.0]])
    assert Fraction(num, 2**e) == F(0.1) * 3 - F(0.3)
    with pytest.raises(DegenerateGeometryError):
        require_nonzero(np.array([1, 0, -1]), "test decision")
    require_nonzero(np.array([1, -1]), "test decision")
    t = ExactTally()
    t.add(10, 3)
    t.add(5, 0)
    assert (t.filtered, t.exact) == (12, 3)
