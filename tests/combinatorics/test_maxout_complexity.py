"""Maxout expected complexity: the exact line expectation against an independent Monte Carlo of upper
envelopes, the sampled exact counts against it, and the bounds' form."""

import itertools
import math

import numpy as np
import pytest

from relulab.combinatorics.maxout import expected_breakpoints, maxout_bounds, maxout_complexity
from relulab.core.errors import InvalidInputError


def _envelope_breakpoints(alpha, beta):
    """Exact breakpoints on [0, 1] of max_k (alpha_k + beta_k t), for many samples at once."""
    S, K = alpha.shape
    count = np.zeros(S, dtype=int)
    for i, j in itertools.combinations(range(K), 2):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (alpha[:, i] - alpha[:, j]) / (beta[:, j] - beta[:, i])
        ok = (t > 0) & (t < 1)
        v = alpha + beta * np.where(ok, t, 0.5)[:, None]
        top = v[:, i] >= v.max(1) - 1e-12
        count += ok & top
    return count


@pytest.mark.parametrize("k", [2, 3, 5])
def test_line_expectation_matches_monte_carlo(k):
    rng = np.random.default_rng(k)
    a, b = np.array([-0.7, 0.2]), np.array([0.9, -0.4])
    sw, sb, S = 1.3, 0.6, 200_000
    W = rng.standard_normal((S, k, 2)) * sw
    bias = rng.standard_normal((S, k)) * sb
    alpha, beta = W @ a + bias, W @ (b - a)
    mc = _envelope_breakpoints(alpha, beta)
    exact = expected_breakpoints(a, b, 1, k, sw, sb)
    se = mc.std() / math.sqrt(S)
    assert abs(mc.mean() - exact) < 4 * se
    # units are independent: the expectation scales with their number
    assert math.isclose(expected_breakpoints(a, b, 7, k, sw, sb), 7 * exact, rel_tol=1e-12)


def test_sampled_networks_agree_with_expectation():
    r = maxout_complexity([3], 3, seeds=30, box=False)
    se = np.std(r.line_counts, ddof=1) / math.sqrt(30)
    assert abs(r.line_mean - r.line_expected) < 4 * se
    assert r.line_ci[0] < r.line_mean < r.line_ci[1]


def test_bounds_shape_and_measured_below():
    r = maxout_complexity([3, 3], 2, seeds=4)
    assert r.box_mean is not None and r.box_mean <= r.bounds["regions"]
    b1 = maxout_bounds([4], 3, 2, 1.0, 1.0, 1.0)["regions"]
    b2 = maxout_bounds([8], 3, 2, 1.0, 1.0, 1.0)["regions"]
    assert math.isclose(b2 / b1, 4.0)  # (K N)^{n_0} with n_0 = 2
    with pytest.raises(InvalidInputError):
        expected_breakpoints([0, 0], [1, 1], 1, 1)


@pytest.mark.parametrize("widths,k", [([4], 2), ([2, 2], 3)])
def test_bounds_above_monte_carlo_counts(widths, k):
    # exact region and decision-boundary counts of sampled networks: the expectation's 95% interval
    # lies below the bounds (computed with the exact C_bias and the estimated C_grad)
    r = maxout_complexity(widths, k, seeds=12, box_side=2.0)
    assert len(r.box_counts) == len(r.boundary_counts) == 12
    assert min(r.box_counts) >= 1 and r.boundary_mean > 0
    assert r.box_ci[1] <= r.bounds["regions"]
    assert r.boundary_ci[1] <= r.bounds["decision_boundary"]
    assert math.isclose(r.c_bias, 1 / math.sqrt(2 * math.pi))
    # the bounds grow like the measured counts in N: doubling the units multiplies the region bound by 2^{n_0}
    b = maxout_bounds([2 * sum(widths)], k, 2, r.c_bias, r.c_grad, 2.0)
    assert math.isclose(b["regions"] / maxout_bounds([sum(widths)], k, 2, r.c_bias, r.c_grad, 2.0)["regions"], 4.0)
