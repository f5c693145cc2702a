"""The convex program of two-layer ReLU networks against independent references: multi-start L-BFGS on
the non-convex objective (scipy), KKT conditions of the rebuilt network, Monte Carlo checks of the dual
certificate, and the conventions' identities."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

pytest.importorskip("cvxpy")

from relulab.convex import certify, dual_bound, features, objective, solve  # noqa: E402
from relulab.core.errors import InvalidInputError, UnsupportedLayerError  # noqa: E402


def _data(n=6, d=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=n)


def _plain_objective(theta, X, y, beta, m, bias=True):
    """The papers' objective written independently in numpy, with its gradient (ReLU' = 1[z > 0])."""
    n, d = X.shape
    q = d + bias
    U = theta[: m * q].reshape(m, q)
    a = theta[m * q:]
    A = np.hstack([X, np.ones((n, 1))]) if bias else X
    H = A @ U.T
    r = np.maximum(H, 0) @ a - y
    val = 0.5 * r @ r + 0.5 * beta * (np.sum(U ** 2) + a @ a)
    gU = ((r[:, None] * a[None, :]) * (H > 0)).T @ A + beta * U
    ga = np.maximum(H, 0).T @ r + beta * a
    return val, np.concatenate([gU.ravel(), ga])


def _lbfgs_values(X, y, beta, m=8, starts=16, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    q = X.shape[1] + bias
    vals = []
    for _ in range(starts):
        th = rng.normal(size=m * q + m)
        res = minimize(_plain_objective, th, args=(X, y, beta, m, bias), jac=True, method="L-BFGS-B",
                       options={"maxiter": 5000, "gtol": 1e-12, "ftol": 1e-15})
        vals.append(res.fun)
    return np.array(vals)


@pytest.fixture(scope="module")
def small():
    X, y = _data()
    return X, y, 0.05, solve(X, y, 0.05)


def test_optimum_equals_best_lbfgs_and_is_below_every_run(small):
    X, y, beta, sol = small
    vals = _lbfgs_values(X, y, beta)
    assert sol.complete and sol.status == "optimal"
    assert vals.min() == pytest.approx(sol.objective, rel=1e-5)
    assert (vals >= sol.lower_bound - 1e-9).all()
    assert sol.lower_bound <= sol.objective and sol.gap < 1e-6


def test_rebuilt_network_attains_optimum_and_kkt(small):
    X, y, beta, sol = small
    net = sol.network()
    assert objective(net, X, y, beta) == pytest.approx(sol.optimum, rel=1e-6)
    assert sol.objective == pytest.approx(sol.optimum, rel=1e-6)
    # KKT of the non-convex problem: balanced layers, stationarity in each output weight, dual feasibility
    W, b, a = net[0].weight.detach().numpy(), net[0].bias.detach().numpy(), net[2].weight.detach().numpy()[0]
    U = np.hstack([W, b[:, None]])
    A = features(X)
    lam = y - np.maximum(A @ U.T, 0) @ a
    assert np.allclose(np.linalg.norm(U, axis=1), np.abs(a), rtol=1e-9)
    assert np.allclose(np.maximum(A @ U.T, 0).T @ lam, beta * a, atol=1e-5 * max(1, np.abs(a).max()))
    Z = np.random.default_rng(1).normal(size=(200_000, A.shape[1]))
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    assert np.abs(np.maximum(Z @ A.T, 0) @ lam).max() <= beta * (1 + 1e-4)


def test_dual_bound_is_sound_for_random_dual_points():
    X, y = _data(8, 2, seed=3)
    A = features(X)
    from relulab.convex import arrangement_patterns

    S = arrangement_patterns(A)
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(100_000, 3))
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    for k in range(5):
        lam = rng.normal(size=8)
        lb, c = dual_bound(A, y, lam, 0.3, S)
        mc = np.abs(np.maximum(Z @ A.T, 0) @ lam).max()
        assert mc <= c * (1 + 1e-9)
        assert c <= mc * 1.02  # and the bound is tight (the projected-gradient + NNLS bound converged)
        lb_loose, c_loose = dual_bound(A, y, lam, 0.3, None)
        assert c_loose >= c * (1 - 1e-12) and lb_loose <= lb + 1e-12
    # every lower bound is below every network's objective (random networks and L-BFGS runs)
    sol = solve(X, y, 0.3)
    vals = _lbfgs_values(X, y, 0.3, m=6, starts=6)
    assert (vals >= sol.lower_bound - 1e-9).all()
    assert vals.min() >= sol.objective - 1e-5 * sol.objective
    for seed in range(3):
        net = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1, bias=False)).double()
        assert objective(net, X, y, 0.3) >= sol.lower_bound


def test_conventions_bias_mean_and_solvers():
    X, y = _data(5, 1, seed=2)
    n = len(y)
    s_sum = solve(X, y, 0.5)
    s_mean = solve(X, y, 0.5 / n, loss="mean")
    assert s_mean.objective == pytest.approx(s_sum.objective / n, rel=1e-6)
    s_scs = solve(X, y, 0.5, solver="scs")
    assert s_scs.objective == pytest.approx(s_sum.objective, rel=1e-4)
    nb = solve(X, y, 0.5, bias=False)
    vals = _lbfgs_values(X, y, 0.5, m=6, starts=12, bias=False)
    assert nb.hidden_bias is None and nb.network()[0].bias is None
    assert vals.min() == pytest.approx(nb.objective, rel=1e-5)
    assert nb.objective >= s_sum.objective - 1e-9  # a bias can only help


def test_sampled_patterns_are_reported_incomplete():
    X, y = _data(10, 2, seed=4)
    exact = solve(X, y, 0.1)
    part = solve(X, y, 0.1, patterns="sampled", max_patterns=12, samples=200)
    assert not part.complete and part.patterns_used <= 12 < exact.patterns_used
    assert part.optimum >= exact.optimum - 1e-6
    assert part.lower_bound <= exact.optimum
    d = part.to_dict(summary=True)
    assert d["complete"] is False and math.isfinite(d["gap"])


def test_certify_random_and_optimal_networks(small):
    X, y, beta, sol = small
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1, bias=False)).double()
    c = certify(net, X, y, beta, solution=sol)
    W, b, a = net[0].weight.detach().numpy(), net[0].bias.detach().numpy(), net[2].weight.detach().numpy()[0]
    by_hand = _plain_objective(np.concatenate([np.hstack([W, b[:, None]]).ravel(), a]), X, y, beta, 4)[0]
    assert c.objective == pytest.approx(by_hand, rel=1e-12)
    assert not c.globally_optimal and c.gap > 0.01 and c.lower_bound <= sol.objective
    good = certify(sol.network(), X, y, beta, solution=sol)
    assert good.globally_optimal and good.gap <= 1e-6
    assert set(good.to_dict(summary=True)) >= {"objective", "optimum", "lower_bound", "gap"}
    import matplotlib

    matplotlib.use("Agg")
    assert good.plot() is not None and sol.plot() is not None


def test_bad_input():
    X, y = _data()
    for beta in (0, -1.0, float("nan"), True):
        with pytest.raises(InvalidInputError, match="beta"):
            solve(X, y, beta)
    with pytest.raises(InvalidInputError, match="empty|n, d >= 1"):
        solve(np.zeros((0, 2)), np.zeros(0), 0.1)
    with pytest.raises(InvalidInputError, match="one target per row"):
        solve(X, y[:-1], 0.1)
    with pytest.raises(InvalidInputError, match="patterns"):
        solve(X, y, 0.1, patterns="all")
    with pytest.raises(InvalidInputError, match="solver"):
        solve(X, y, 0.1, solver="mosek")
    with pytest.raises(InvalidInputError, match="loss"):
        solve(X, y, 0.1, loss="l1")
    biased = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)).double()
    with pytest.raises(InvalidInputError, match="output layer"):
        objective(biased, X, y, 0.1)
    deep = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3), torch.nn.ReLU(),
                               torch.nn.Linear(3, 1, bias=False)).double()
    with pytest.raises(UnsupportedLayerError):
        objective(deep, X, y, 0.1)


def test_missing_extra_names_it(monkeypatch):
    import importlib

    from relulab.core.extras import MissingExtraError

    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name == "cvxpy":
            raise ImportError("no cvxpy")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)
    X, y = _data()
    with pytest.raises(MissingExtraError, match=r"relulab\[convex\]"):
        solve(X, y, 0.1)


def test_degenerate_data_and_the_zero_network():
    # duplicates and collinear points: fewer patterns than Cover's bound; the certificate re-enumerates them
    Xd = np.array([[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [1, 1.0]])
    yd = np.arange(6.0)
    s = solve(Xd, yd, 0.1)
    assert s.patterns_used < s.pattern_bound and s.gap < 1e-6
    assert certify(s.network(), Xd, yd, 0.1, solution=s).globally_optimal
    # beta above the largest dual norm: the optimum is the zero network, objective |y|^2 / 2
    for bn in (False, True):
        z = solve(Xd, yd, 1e3, bn=bn)
        assert z.neurons == 0 and z.objective == pytest.approx(0.5 * yd @ yd, rel=1e-12)
        assert certify(z.network(), Xd, yd, 1e3, bn=bn, solution=z).globally_optimal
