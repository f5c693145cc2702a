"""Univariate regimes: the kernel limit is exact for models linear in their trainable parameters;
the references interpolate; distances and knots are measured on the data's hull."""

import numpy as np
import pytest
import torch

from relulab.core.errors import InvalidInputError
from relulab.dynamics import (UnivariateNet, alternating_data, compare_interpolants, flow, gradient_descent,
                              kernel_limit, knot_mass_near_data, knot_trajectory, linear_interpolant, mse_objective,
                              natural_cubic_spline, regime_diagram, univariate_net)

X = np.array([-1.0, -0.55, -0.1, 0.3, 0.75, 1.0])
Y = np.array([0.2, -0.5, 0.4, 0.1, -0.3, 0.5])


def test_kernel_limit_is_the_limit_of_a_linear_model():
    # only the outer weights train: f is linear in them, so gradient flow converges to the minimum-
    # distance interpolant from initialization theta0 + J^+ (y - f0(X)), which is the kernel limit
    net = univariate_net(20, inner_scale=2.0, outer_scale=0.5, seed=3)
    net.a.requires_grad_(False)
    net.b.requires_grad_(False)
    x, y = np.array([-0.8, 0.0, 0.8]), np.array([0.3, -0.2, 0.5])
    grid = np.linspace(-1, 1, 101)
    ref = kernel_limit(net, x, y, grid)
    # independent closed form: features relu(a x + b) / sqrt(m), pseudo-inverse by SVD
    with torch.no_grad():
        feats = lambda z: torch.relu(torch.tensor(z)[:, None] * net.a + net.b) / np.sqrt(20)  # noqa: E731
        c_star = net.c + torch.linalg.pinv(feats(x)) @ (torch.tensor(y) - feats(x) @ net.c)
        closed = (feats(grid) @ c_star).numpy()
    assert np.abs(ref - closed).max() < 1e-10
    K = (feats(x) @ feats(x).T).numpy() / 3
    T = 40.0 / np.linalg.eigvalsh(K)[0]
    tr = flow(net, mse_objective(torch.tensor(x)[:, None], torch.tensor(y)[:, None]), [T], method="LSODA",
              rtol=1e-10, atol=1e-13)
    with torch.no_grad():
        got = net(torch.tensor(grid))[:, 0].numpy()
    assert float(tr.loss[-1]) < 1e-12
    assert np.abs(got - ref).max() < 1e-5


def test_references_interpolate_and_the_spline_is_natural():
    assert np.allclose(natural_cubic_spline(X, Y, X), Y, atol=1e-12)
    assert np.allclose(linear_interpolant(X, Y, X), Y, atol=1e-15)
    # natural: the second derivative vanishes at the ends (finite differences)
    h = 1e-5
    for e in (X[0] + 2 * h, X[-1] - 2 * h):
        s = natural_cubic_spline(X, Y, [e - h, e, e + h])
        assert abs((s[0] - 2 * s[1] + s[2]) / h**2) < 1e-2
    # minimal curvature: among interpolants the spline has the least integral of f''^2
    g = np.linspace(X[0], X[-1], 4001)

    def energy(f):
        d2 = np.gradient(np.gradient(f, g), g)
        return np.trapezoid(d2[5:-5] ** 2, g[5:-5])

    from scipy.interpolate import PchipInterpolator

    assert energy(natural_cubic_spline(X, Y, g)) < energy(PchipInterpolator(X, Y)(g))


def test_natural_cubic_spline_against_its_tridiagonal_system():
    # independent construction: second derivatives M_i from the dense natural-spline system
    # h_{i-1} M_{i-1} + 2 (h_{i-1} + h_i) M_i + h_i M_{i+1} = 6 (slope_i - slope_{i-1}), M_0 = M_n = 0
    h = np.diff(X)
    slope = np.diff(Y) / h
    k = X.size
    A = np.zeros((k, k))
    r = np.zeros(k)
    A[0, 0] = A[-1, -1] = 1.0
    for i in range(1, k - 1):
        A[i, i - 1], A[i, i], A[i, i + 1] = h[i - 1], 2 * (h[i - 1] + h[i]), h[i]
        r[i] = 6 * (slope[i] - slope[i - 1])
    M = np.linalg.solve(A, r)
    g = np.linspace(X[0], X[-1], 777)
    j = np.clip(np.searchsorted(X, g, side="right") - 1, 0, k - 2)
    t0, t1 = X[j + 1] - g, g - X[j]
    ref = (M[j] * t0**3 + M[j + 1] * t1**3) / (6 * h[j]) + (Y[j] / h[j] - M[j] * h[j] / 6) * t0 \
        + (Y[j + 1] / h[j] - M[j + 1] * h[j] / 6) * t1
    assert np.abs(natural_cubic_spline(X, Y, g) - ref).max() < 1e-12


def test_knot_trajectory_reads_the_recorded_parameters():
    net = univariate_net(7, inner_scale=1.5, outer_scale=1.0, skip=True, seed=1)
    k0 = (-net.b / net.a).detach().numpy()
    tr = gradient_descent(net, mse_objective(torch.tensor(X)[:, None], torch.tensor(Y)[:, None]), lr=0.05,
                          steps=40, record_every=10)
    paths = knot_trajectory(net, tr)
    assert paths.shape == (5, 7)
    assert np.allclose(paths[0], k0, atol=1e-15)
    assert np.allclose(paths[-1], (-net.b / net.a).detach().numpy(), atol=1e-15)
    assert np.abs(paths[-1] - paths[0]).max() > 0


def test_compare_interpolants_distances():
    g = np.linspace(-1, 1, 201)
    c = compare_interpolants(linear_interpolant(X, Y, g), X, Y, g)
    assert c.closest == "linear interpolant" and c.l2["linear interpolant"] < 1e-15
    assert c.l2["cubic spline"] > 0.01


def test_regime_diagram_quick():
    r = regime_diagram(X, Y, widths=(30,), inner_scales=(0.1,), outer_scales=(1.0,), steps=300)
    (row,) = r.rows
    assert set(row) >= {"l2_cubic", "l2_linear", "l2_kernel", "movement", "knot_to_data"}
    assert len(row["knot_to_data_path"]) == 21 and row["knot_to_data_path"][-1] == row["knot_to_data"]
    assert 0 <= row["mass_near_data"] <= 1 and 0 < row["mass_near_baseline"] < 1
    assert row["knot_path_steps"][0] == 0 and row["knot_path_steps"][-1] == row["steps"]
    assert row["final_loss"] >= 0 and np.isfinite(row["l2_cubic"])
    ax = r.plot()
    assert ax.get_xlabel() == "inner scale s_a"


def test_kernel_limit_matches_lazy_networks_better_as_width_grows():
    # all parameters trained; at fixed scales the network moves less as the width grows, and its
    # distance to its own (closed-form) kernel limit shrinks
    r = regime_diagram(X, Y, widths=(10, 160), inner_scales=(1.0,), outer_scales=(1.0,), steps=2000)
    small, big = sorted(r.rows, key=lambda row: row["width"])
    assert big["movement"] < small["movement"]
    assert big["l2_kernel"] < 0.5 * small["l2_kernel"]


def test_symmetric_init_is_the_zero_function():
    net = univariate_net(40, inner_scale=3.0, outer_scale=2.0, symmetric=True, seed=5)
    g = torch.linspace(-2, 2, 101, dtype=torch.float64)
    # exactly cancelling pairs; only the summation order's rounding is left
    assert float(net(g).detach().abs().max()) < 1e-13
    assert torch.equal(net.a[:20], net.a[20:]) and torch.equal(net.c[:20], -net.c[20:])
    assert float(univariate_net(40, inner_scale=3.0, outer_scale=2.0, seed=5)(g).detach().abs().max()) > 0.1
    with pytest.raises(InvalidInputError, match="even"):
        univariate_net(5, symmetric=True)


def test_alternating_data_has_alternating_curvature():
    for seed in range(5):
        x, y = alternating_data(7, seed)
        assert np.all(np.diff(x) > 0) and x[0] >= -1 and x[-1] <= 1
        slopes = np.diff(y) / np.diff(x)
        second = np.sign(np.diff(slopes))
        assert np.all(second[1:] == -second[:-1]) and np.all(second != 0)
    with pytest.raises(InvalidInputError, match="points"):
        alternating_data(2)


def test_knot_mass_near_data_against_a_dense_count():
    x = np.array([-1.0, 0.0, 1.0])
    # knots at -0.99 (near -1), 0.5 (far), 0.03 (near 0 for radius 0.02 * 2 = 0.04), 3.0 (outside the hull)
    k = torch.tensor([-0.99, 0.5, 0.03, 3.0], dtype=torch.float64)
    a = torch.tensor([1.0, -2.0, 0.5, 1.0], dtype=torch.float64)
    c = torch.tensor([1.0, 1.0, 4.0, 9.0], dtype=torch.float64)
    net = UnivariateNet(a, -a * k, c)
    frac, base = knot_mass_near_data(net, x, 0.02)
    jumps = np.abs(c.numpy() * a.numpy())  # the common 1/sqrt(m) cancels in the fraction
    assert frac == pytest.approx((jumps[0] + jumps[2]) / jumps[:3].sum(), rel=1e-14)
    g = np.linspace(-1, 1, 2_000_001)
    assert base == pytest.approx(np.mean(np.abs(g[:, None] - x[None]).min(1) <= 0.04), abs=1e-5)


def test_adaptive_and_kernel_regimes_on_alternating_data():
    # small inner weights under larger outer weights: the units' knots travel to the data and the
    # trained function is close to the linear interpolant; large inner weights: lazy, on the kernel limit
    x, y = alternating_data(6, 0)
    r = regime_diagram(x, y, widths=(100,), inner_scales=(0.1, 10.0), outer_scales=(1.0,), steps=5000)
    adaptive, lazy = sorted(r.rows, key=lambda row: row["inner_scale"])
    assert adaptive["mass_near_data"] > 0.95 > 3 * adaptive["mass_near_baseline"]
    assert adaptive["l2_linear"] < 0.25 * min(adaptive["l2_kernel"], adaptive["l2_cubic"])
    assert lazy["l2_kernel"] < 0.5 * lazy["l2_linear"] and lazy["mass_near_data"] < 0.5


def test_bad_data():
    with pytest.raises(InvalidInputError, match="distinct"):
        natural_cubic_spline([0, 0, 1], [1, 2, 3], [0.5])
    with pytest.raises(InvalidInputError, match="equal length"):
        linear_interpolant([0, 1], [1], [0.5])
    with pytest.raises(InvalidInputError, match="knots"):
        univariate_net(3, knots="cauchy")


def test_cli_quick_json(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "relulab"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "relulab.cli"]
    plot = tmp_path / "regimes"
    r = subprocess.run(cmd + ["dynamics", "univariate", "--quick", "--json", "--plot", str(plot)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["rows"]) == 4 and doc["plot"].endswith(".png") and Path(doc["plot"]).exists()
    bad = subprocess.run(cmd + ["dynamics", "univariate", "--inner-scales", "-1"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "--inner-scales" in bad.stderr
