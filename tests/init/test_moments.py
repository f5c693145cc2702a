"""Gradient moments and curve length distortion: exact jvp values, the bounds of Theorem 1 (ICML 2023)
against Monte Carlo, the exact aligned-direction identity, and He vs maxout initialization."""

import math

import matplotlib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from torch import nn

import relulab
from relulab import nn as rnn
from relulab.core.errors import InvalidInputError
from relulab.init import (
    aligned_moment,
    curve_length_distortion,
    expected_gradient_bounds,
    gradient_moments,
    jacobian_moment_bounds,
    maxout_,
    maxout_constants,
)
from relulab.init.moments import _sqrt_sum_laplace, _sum_moment

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def deep_maxout(k, depth, width, n_in, c=None, bias_std=0.0):
    layers, f = [], n_in
    for _ in range(depth):
        layers.append(rnn.Maxout(f, width, k))
        f = width
    layers.append(nn.Linear(f, 1))
    return maxout_(nn.Sequential(*layers), c=c, bias_std=bias_std)


# ------------------------------------------------------------------ bounding variables

def test_sqrt_moment_laplace_against_closed_form():
    # K = 1 through the generic Laplace-transform path: E sqrt(chi2_n) = sqrt 2 Gamma((n+1)/2) / Gamma(n/2)
    for n in (1, 2, 7, 60, 400):
        exact = math.exp(0.5 * math.log(2) + special.gammaln((n + 1) / 2) - special.gammaln(n / 2))
        for which in ("max", "min"):
            assert _sqrt_sum_laplace(1, n, which) == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("k, n", [(2, 1), (3, 4), (5, 30)])
def test_sum_moments_against_monte_carlo(k, n):
    rng = np.random.default_rng(k * 100 + n)
    y = rng.standard_normal((100_000, n, k)) ** 2
    for which, sample in (("max", y.max(-1).sum(-1)), ("min", y.min(-1).sum(-1))):
        for t, f in ((0.5, np.sqrt(sample)), (1, sample), (2, sample ** 2), (3, sample ** 3)):
            se = f.std() / math.sqrt(len(f))
            assert abs(_sum_moment(k, n, t, which) - f.mean()) < 4.5 * se, (which, t)


def test_bounds_formulas():
    # linear layers (K = 1): the bounds coincide with the exact moments of products of chi-squares
    layers = [(30, 1, 0.5), (10, 1, 0.1)]
    lo, hi = jacobian_moment_bounds(layers)
    assert np.allclose(lo, hi) and hi[-1] == pytest.approx(0.5 * 30 * 0.1 * 10)
    lo4, hi4 = jacobian_moment_bounds(layers, t=2)
    assert hi4[-1] == pytest.approx(0.25 * 30 * 32 * 0.01 * 10 * 12)
    # the paper's form (C n_L / n_0)(c S)^{L-1} .. (C n_L / n_0)(c L)^{L-1}
    c5 = maxout_constants(5)
    b = expected_gradient_bounds(20, [40] * 6, 5, C=2.0, n_out=3)
    assert b["lower"] == pytest.approx(2 * 3 / 20 * (c5.c * c5.S) ** 6, rel=1e-12)
    assert b["upper"] == pytest.approx(2 * 3 / 20 * (c5.c * c5.L) ** 6, rel=1e-12)
    assert b["aligned"] == pytest.approx(2 * 3 / 20, rel=1e-12)
    assert aligned_moment([(4, 3, 0.25)])[0] == pytest.approx(maxout_constants(3).M)
    with pytest.raises(InvalidInputError):
        jacobian_moment_bounds([(4, 0, 1.0)])
    with pytest.raises(InvalidInputError):
        jacobian_moment_bounds([(4, 2, 1.0)], t=1.5)


# ------------------------------------------------------------------ exact jvp

def test_jvp_values_are_exact_jacobian_products():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 6, 3), rnn.GroupMax(2), nn.MaxPool1d(2), nn.Flatten(),
                          rnn.Maxout(9, 5, 3), nn.Linear(5, 2)).double()
    x = torch.randn(7, 2, 8, dtype=torch.float64)
    u = torch.randn(7, 2, 8, dtype=torch.float64)
    r = gradient_moments(model, (2, 8), x=x, directions=u, n_samples=7, return_samples=True)
    assert r.widths == [18, 9, 5, 2]
    assert not any(r.bounds_apply) and np.isnan(r.sq_lower).all()
    un = u / u.reshape(7, -1).norm(dim=1).reshape(7, 1, 1)
    for i in range(7):
        J = torch.func.jacrev(lambda z: model(z[None])[0])(x[i])  # (2, 2, 8)
        Ju = (J.reshape(2, -1) @ un[i].reshape(-1))
        assert r.samples[i, -1] == pytest.approx(float(Ju @ Ju), rel=1e-10)
        h = model[:4](x[i:i + 1])
        Jh = torch.func.jacrev(lambda z: model[:4](z[None])[0])(x[i]).reshape(9, -1) @ un[i].reshape(-1)
        assert r.samples[i, 1] == pytest.approx(float(Jh @ Jh), rel=1e-10)
        assert h.shape == (1, 9)


def test_bounds_apply_where_the_recognized_chain_is_linear_and_maxout():
    """Which depths get Theorem 1's bounds comes from the architecture recognizer's chain: maxout layers of
    any rank (Maxout or Linear + GroupMax) and bare linear layers, up to the first other activation."""
    mixed = nn.Sequential(rnn.Maxout(3, 6, 3), rnn.Maxout(6, 5, 2), nn.Linear(5, 2)).double()
    r = gradient_moments(mixed, n_samples=64)
    assert r.bounds_apply == [True, True, True] and np.isfinite(r.sq_lower).all()
    assert r.within_bounds(n_se=6).all()
    relu_tail = nn.Sequential(nn.Linear(3, 6), rnn.GroupMax(2), nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    r = gradient_moments(relu_tail, n_samples=64)
    assert r.bounds_apply == [True, False, False] and r.widths == [3, 4, 1]
    assert np.isfinite(r.sq_lower[0]) and np.isnan(r.sq_lower[1:]).all()
    ended = nn.Sequential(rnn.Maxout(3, 4, 2), nn.Linear(4, 2), nn.ReLU()).double()  # output activation
    assert not any(gradient_moments(ended, n_samples=16).bounds_apply)


def test_linear_network_is_exact():
    # products of Gaussian matrices: E||J u||^2 = prod sigma^2 n exactly and the bounds coincide
    def make():
        m = nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 10))
        return maxout_(m, c=1.5)

    r = gradient_moments(make, n_samples=32 * 48, n_inits=32)
    assert r.bounds_apply == [True]
    assert r.sq_lower[0] == pytest.approx(r.sq_upper[0])
    assert abs(r.sq_mean[0] - r.sq_upper[0]) < 4.5 * r.sq_se[0]
    assert r.sq_upper[0] == pytest.approx(1.5 * 10 / 20, rel=0.1)  # realized variances: nominal up to sampling


# ------------------------------------------------------------------ Theorem 1 across depth

@pytest.mark.parametrize("k, depth, width", [(2, 12, 50), (3, 16, 64), (5, 12, 50)])
def test_maxout_init_is_stable_and_he_init_explodes(k, depth, width):
    n0 = width
    M = maxout_constants(k).M
    res = {}
    for name, c in (("maxout", None), ("he", 2.0)):
        for dirs in ("random", "aligned"):
            res[name, dirs] = gradient_moments(lambda: deep_maxout(k, depth, width, n0, c=c), n_samples=24 * 40,
                                               n_inits=24, directions=dirs, seed=k)
    scale = np.asarray(res["maxout", "random"].widths) / n0
    hidden = slice(0, depth)
    for key, r in res.items():
        assert all(r.bounds_apply)
        # Theorem 1 moment bounds (second and fourth moments, expected norm), realized variances
        assert r.within_bounds(4.5).all(), key
        assert r.within_bounds(4.5, "fourth").all(), key
        assert r.within_bounds(4.5, "norm").all(), key
        # zero biases: per layer E[(w_k* . v)^2] = sigma^2 (M cos^2 + sin^2), so the moment lies between
        # prod sigma^2 n and prod sigma^2 n M; for u = x / |x| it equals the upper end exactly
        var = np.array(list(r.weight_variances.values()))
        fl = np.cumprod(var[:-1] * width)
        assert np.all(r.sq_mean[hidden] >= fl - 4.5 * r.sq_se[hidden]), key
        assert np.all(r.sq_mean <= r.sq_aligned + 4.5 * r.sq_se), key
    for name in ("maxout", "he"):
        r = res[name, "aligned"]
        assert np.all(np.abs(r.sq_mean - r.sq_aligned) <= 4.5 * r.sq_se), name
    # c = 1 / M keeps the aligned moment at n_l / n_0 at every depth (the paper's recommendation) ...
    r = res["maxout", "aligned"]
    assert np.allclose(r.sq_aligned / scale, 1.0, rtol=0.15)
    assert np.all(np.abs(r.sq_mean / scale - 1) < 0.5)
    # ... and the random-direction moment never grows
    assert np.all(res["maxout", "random"].sq_mean[hidden] <= 1 + 4.5 * res["maxout", "random"].sq_se[hidden])
    # He's c = 2 makes both grow geometrically: at least 2^l, and (2 M)^l along x
    he = res["he", "random"]
    assert np.all(he.sq_mean[hidden] >= 0.7 * 2.0 ** np.arange(1, depth + 1))
    assert res["he", "aligned"].sq_mean[depth - 1] > 0.5 * (2 * M) ** depth
    assert he.sq_mean[depth - 1] > 100 * res["maxout", "random"].sq_mean[depth - 1]


def test_bounds_hold_with_random_biases():
    r = gradient_moments(lambda: deep_maxout(4, 10, 40, 40, bias_std=0.5), n_samples=16 * 40, n_inits=16)
    assert all(r.bounds_apply)
    assert r.within_bounds(4.5).all() and r.within_bounds(4.5, "fourth").all() and r.within_bounds(4.5, "norm").all()
    assert np.isnan(r.sq_aligned).all()  # the aligned identity needs zero biases


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(1, 5), st.integers(1, 3))
def test_each_layer_within_order_statistic_sandwich(seed, k, width, depth):
    """The mechanism of Theorem 1, pointwise: a maxout layer maps a direction v to a vector whose squared
    norm lies between sum_i min_k (w_ik . v)^2 and sum_i max_k (w_ik . v)^2, whatever the input."""
    g = torch.Generator().manual_seed(seed)
    layers = [rnn.Maxout(3 if i == 0 else width, width, k).double() for i in range(depth)]
    with torch.no_grad():
        for lay in layers:
            lay.linear.weight.copy_(torch.randn(lay.linear.weight.shape, generator=g, dtype=torch.float64))
            lay.linear.bias.copy_(torch.randn(lay.linear.bias.shape, generator=g, dtype=torch.float64))
    model = nn.Sequential(*layers)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    u = torch.randn(5, 3, generator=g, dtype=torch.float64)
    r = gradient_moments(model, x=x, directions=u, n_samples=5, return_samples=True)
    v = u / u.norm(dim=1, keepdim=True)
    h = x
    for j, lay in enumerate(layers):
        wv = (v @ lay.linear.weight.T).reshape(5, width, k) ** 2
        lo, hi = wv.min(-1).values.sum(1), wv.max(-1).values.sum(1)
        got = torch.as_tensor(r.samples[:, j]) / r.samples[:, j - 1] if j else torch.as_tensor(r.samples[:, 0])
        scale = (v ** 2).sum(1)
        assert torch.all(got * scale >= lo * (1 - 1e-9) - 1e-12)
        assert torch.all(got * scale <= hi * (1 + 1e-9) + 1e-12)
        _, v = torch.func.jvp(lay, (h,), (v,))
        h = lay(h).detach()


# ------------------------------------------------------------------ curve length distortion

def test_isometry_distorts_by_its_scale():
    q, _ = torch.linalg.qr(torch.randn(6, 4, dtype=torch.float64))
    model = nn.Linear(4, 6, bias=True).double()
    with torch.no_grad():
        model.weight.copy_(2.5 * q)
    for curve in ("segment", "circle"):
        r = curve_length_distortion(model, (4,), curve=curve, n_curves=5, n_points=64, method="quadrature")
        assert r.distortion_mean == pytest.approx([2.5], rel=1e-12)


def reference_length(model, a, b):
    """Exact image length of a -> b: bisection for the pattern changes, local affine maps in between."""
    net = relulab.PLNet.from_torch(model, (a.numel(),))
    ts = torch.linspace(0, 1, 20001, dtype=torch.float64)
    pats = net.pattern(a + ts[:, None] * (b - a))
    change = torch.nonzero((pats[1:] != pats[:-1]).any(1)).flatten().tolist()
    knots = [0.0]
    for i in change:
        lo, hi = ts[i].item(), ts[i + 1].item()
        p_lo = pats[i]
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if torch.equal(net.pattern((a + mid * (b - a))[None])[0], p_lo):
                lo = mid
            else:
                hi = mid
        knots.append(0.5 * (lo + hi))
    knots.append(1.0)
    total = 0.0
    for t0, t1 in zip(knots[:-1], knots[1:]):
        A, _ = net.local_affine((a + 0.5 * (t0 + t1) * (b - a))[None])
        total += float((A[0] @ (b - a)).norm()) * (t1 - t0)
    return total


def test_segment_length_against_exact_reference():
    torch.manual_seed(3)
    model = nn.Sequential(rnn.Maxout(3, 6, 3), rnn.Maxout(6, 5, 2), nn.Linear(5, 2)).double()
    maxout_(model, bias_std=0.5)
    a = torch.tensor([-2.0, 0.5, 1.0], dtype=torch.float64)
    b = torch.tensor([2.0, -1.0, 0.3], dtype=torch.float64)
    ref = reference_length(model, a, b)
    quad = curve_length_distortion(model, endpoints=(a, b), n_points=20000, method="quadrature")
    assert quad.length_mean[-1] == pytest.approx(ref, rel=2e-3)
    assert quad.input_length == pytest.approx(float((b - a).norm()))
    try:
        exact = curve_length_distortion(model, endpoints=(a, b), method="exact")
    except InvalidInputError:
        pytest.skip("relulab.regions.on_line is not available")
    assert exact.method == "exact"
    assert exact.length_mean[-1] == pytest.approx(ref, rel=1e-8)


@pytest.mark.parametrize("curve", ["segment", "circle"])
def test_distortion_within_bounds(curve):
    r = curve_length_distortion(lambda: deep_maxout(3, 8, 40, 40), curve=curve, n_curves=4, n_points=256,
                                n_inits=12, method="quadrature")
    assert all(r.bounds_apply) and r.method == "quadrature"
    ok = (r.distortion_mean >= r.lower - 4.5 * r.distortion_se) & (r.distortion_mean <= r.upper + 4.5 * r.distortion_se)
    assert ok.all()
    assert np.all(r.upper <= r.upper_jensen * (1 + 1e-12))  # Jensen's form is the looser one
    assert r.input_length > 0 and np.allclose(r.length_mean / r.input_length, r.distortion_mean, rtol=0.3)


# ------------------------------------------------------------------ results and validation

def test_results_serialize_and_plot():
    r = gradient_moments(lambda: deep_maxout(2, 3, 8, 8), n_samples=64, n_inits=4)
    d = r.to_dict()
    assert d["depths"] == [1, 2, 3, 4] and len(d["sq_mean"]) == 4
    assert "samples" not in r.to_dict(summary=True)
    r.to_json()
    fig = r.plot()
    assert fig is not None
    r.plot(moment="fourth")
    c = curve_length_distortion(lambda: deep_maxout(2, 3, 8, 8), n_curves=2, n_points=32, n_inits=2,
                                method="quadrature")
    c.to_json()
    c.plot()
    import matplotlib.pyplot as plt

    plt.close("all")


def test_invalid_arguments():
    model = deep_maxout(2, 2, 4, 4)
    with pytest.raises(InvalidInputError):
        gradient_moments(model, n_samples=1)
    with pytest.raises(InvalidInputError):
        gradient_moments(model, directions="sideways")
    with pytest.raises(InvalidInputError):
        gradient_moments(model, n_inits=3)
    with pytest.raises(InvalidInputError):
        gradient_moments(model, x=torch.zeros(5), directions="aligned", n_samples=4)
    with pytest.raises(InvalidInputError):
        gradient_moments(nn.Sequential(nn.Conv1d(1, 2, 3)))  # input shape cannot be read off
    with pytest.raises(InvalidInputError):
        gradient_moments(42)
    with pytest.raises(InvalidInputError):
        curve_length_distortion(model, curve="spiral")
    with pytest.raises(InvalidInputError):
        curve_length_distortion(model, curve="circle", method="exact")
    with pytest.raises(InvalidInputError):
        curve_length_distortion(model, endpoints=(torch.zeros(4), torch.zeros(4)))
