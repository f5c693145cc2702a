"""Local complexity against closed forms and against each other."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from relulab import PLNet
from relulab.complexity import (exact_lc_2d, gaussian, line_lc, local_complexity, shallow_gaussian_lc,
                                smoothed_data, uniform_box)


def _closed_form(W, b, sigma):
    """One hidden layer under N(0, I): z_j = w_j.x + b_j ~ N(b_j, |w_j|^2); with bias noise of
    variance sigma^2, E[|w_j| phi_sigma(z_j)] is the N(0, sigma^2 + |w_j|^2) density at b_j."""
    total = 0.0
    for w, bj in zip(W.tolist(), b.tolist()):
        wn = math.sqrt(sum(v * v for v in w))
        var = sigma**2 + wn**2
        total += wn * math.exp(-bj * bj / (2 * var)) / math.sqrt(2 * math.pi * var)
    return total


@settings(max_examples=6)
@given(d=st.integers(1, 6), width=st.integers(1, 10), seed=st.integers(0, 10**6))
def test_smoothed_matches_closed_form_at_several_sigma(d, width, seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, 2)).double()
    with torch.no_grad():
        model[0].bias.mul_(3)
    net = PLNet.from_torch(model, (d,))
    W, b = model[0].weight.detach(), model[0].bias.detach()
    for sigma in (0.1, 0.5, 2.0):
        ref = _closed_form(W, b, sigma)
        assert shallow_gaussian_lc(W, b, sigma) == pytest.approx(ref, rel=1e-12)
        r = local_complexity(net, gaussian(0.0, 1.0, d), sigma, n_samples=40000, seed=seed)
        assert abs(r.value - ref) <= 4.5 * r.stderr + 1e-12
        assert float(r.per_layer.sum()) == pytest.approx(r.value, rel=1e-10)
        assert float(r.per_unit.sum()) == pytest.approx(r.value, rel=1e-10)


def test_exact_2d_shallow_is_the_closed_form():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 9), nn.ReLU(), nn.Linear(9, 1)).double()
    net = PLNet.from_torch(model, (2,))
    r = exact_lc_2d(net, gaussian(0.0, 1.0, 2))
    assert r.exact and r.stderr == 0
    assert r.value == pytest.approx(_closed_form(model[0].weight, model[0].bias, 0.0), rel=1e-9)


def test_exact_2d_uniform_box_is_length_over_area():
    """Independent reference: clip every neuron's line to the box (parametric slab clipping)."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(2, 7), nn.ReLU(), nn.Linear(7, 1)).double()
    net = PLNet.from_torch(model, (2,))
    lo, hi = -1.0, 2.0
    total = 0.0
    for (w1, w2), b in zip(model[0].weight.tolist(), model[0].bias.tolist()):
        # the line w.x + b = 0: a point and a direction
        n2 = w1 * w1 + w2 * w2
        p = (-b * w1 / n2, -b * w2 / n2)
        u = (-w2 / math.sqrt(n2), w1 / math.sqrt(n2))
        t0, t1 = -math.inf, math.inf
        for c in range(2):
            if abs(u[c]) < 1e-15:
                if not lo <= p[c] <= hi:
                    t0, t1 = 0.0, 0.0
                continue
            a, bb = (lo - p[c]) / u[c], (hi - p[c]) / u[c]
            t0, t1 = max(t0, min(a, bb)), min(t1, max(a, bb))
        total += max(0.0, t1 - t0) / (hi - lo) ** 2
    r = exact_lc_2d(net, uniform_box(lo, hi, 2))
    assert r.value == pytest.approx(total, rel=1e-9)


@pytest.mark.parametrize("act", ["relu", "maxout"])
def test_deep_exact_2d_lines_and_smoothed_agree(act):
    import relulab.nn as rnn

    torch.manual_seed(5)
    if act == "relu":
        model = nn.Sequential(nn.Linear(2, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 1))
    else:
        model = nn.Sequential(rnn.Maxout(2, 6, 2), rnn.Maxout(6, 6, 3), nn.Linear(6, 1))
    net = PLNet.from_torch(model.double(), (2,))
    dens = gaussian([0.3, -0.2], 1.0)
    exact = exact_lc_2d(net, dens)
    lines = line_lc(net, dens, n_lines=3000, seed=1)
    assert abs(lines.value - exact.value) <= 4 * lines.stderr
    sm = local_complexity(net, dens, 0.01, n_samples=60000, seed=2)
    # bias O(sigma) plus noise: the smoothed estimate converges to LC_0 as sigma -> 0
    assert abs(sm.value - exact.value) <= 4 * sm.stderr + 0.03 * exact.value


def test_smoothed_data_density_exact_vs_lines():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 1)).double()
    net = PLNet.from_torch(model, (2,))
    dens = smoothed_data(torch.randn(5, 2, dtype=torch.float64), 0.4)
    exact = exact_lc_2d(net, dens)
    lines = line_lc(net, dens, n_lines=2000, seed=3)
    assert abs(lines.value - exact.value) <= 4 * lines.stderr


def test_line_estimator_in_higher_dimension_matches_closed_form():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 1)).double()
    net = PLNet.from_torch(model, (5,))
    r = line_lc(net, gaussian(0.0, 1.0, 5), n_lines=3000, seed=4)
    ref = _closed_form(model[0].weight, model[0].bias, 0.0)
    assert abs(r.value - ref) <= 4 * r.stderr


def test_empirical_data_value_is_the_mean_over_points():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 3)).double()
    net = PLNet.from_torch(model, (1, 8, 8))
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    r = local_complexity(net, x, 0.2)
    parts = [local_complexity(net, x[i:i + 1], 0.2).value for i in range(6)]
    assert r.value == pytest.approx(sum(parts) / 6, rel=1e-12)
    assert r.stderr > 0 and r.n == 6
    assert r.to_dict(summary=True)["method"] == "smoothed"


@settings(max_examples=8)
@given(width=st.integers(1, 12), mx=st.floats(-1, 1), my=st.floats(-1, 1), std=st.floats(0.3, 3), seed=st.integers(0, 10**6))
def test_exact_2d_shallow_closed_form_property(width, mx, my, std, seed):
    """N(m, s^2 I): z_j ~ N(w_j.m + b_j, s^2 |w_j|^2), so LC_0 = sum_j |w_j| N(w_j.m + b_j; 0, s^2 |w_j|^2)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 1)).double()
    net = PLNet.from_torch(model, (2,))
    W, b = model[0].weight.detach(), model[0].bias.detach()
    m = torch.tensor([mx, my], dtype=torch.float64)
    ref = shallow_gaussian_lc(W, W @ m + b, 0.0, std=std)
    assert exact_lc_2d(net, gaussian(m, std)).value == pytest.approx(ref, rel=1e-8, abs=1e-12)
