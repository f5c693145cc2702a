"""Mirror-flow implicit bias: the limit problem against a generic constrained solver and dense kernel
integrals, the fast mirror-descent loop against the generic engine, and trained networks approaching
the limit as the width grows (lazy but not kernel for scaled potentials)."""

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import minimize

from relulab.core.errors import InvalidInputError
from relulab.dynamics import gradient_descent, mirror_limit, mse_objective, shallow_net, train_mirror

X = np.array([-1.0, -0.5, 0.1, 0.5, 1.0])
Y = np.array([0.4, -0.8, 1.0, -0.4, 0.8])


@pytest.mark.parametrize("activation", ["relu", "abs"])
@pytest.mark.parametrize("pot", ["x^4+x^2", "|x|^3+x^2"])
def test_limit_problem_matches_a_generic_constrained_solver(activation, pot):
    # the same quadrature, solved in the primal by SLSQP: min sum q phi(alpha) s.t. S diag(q) alpha = y
    x, y = X[:3], 0.1 * Y[:3]
    lim = mirror_limit(x, y, [0.0], potential=pot, activation=activation, bias_range=(-1.5, 1.5), nodes=3)
    S = np.maximum(x[:, None] * lim.w - lim.b, 0) if activation == "relu" else np.abs(x[:, None] * lim.w - lim.b)
    q = lim.q
    phi = {"x^4+x^2": lambda a: a**4 + a**2, "|x|^3+x^2": lambda a: np.abs(a) ** 3 + a**2}[pot]
    res = minimize(lambda a: q @ phi(a), np.zeros(q.size), method="SLSQP",
                   constraints=[{"type": "eq", "fun": lambda a: S @ (q * a) - y}], options={"ftol": 1e-14, "maxiter": 2000})
    assert res.success
    assert lim.cost == pytest.approx(float(q @ phi(res.x)), rel=1e-6)
    assert np.abs(lim.alpha - res.x).max() < 1e-3 * (1 + np.abs(res.x).max())


def test_quadratic_limit_is_kernel_regression_with_the_integrated_kernel():
    # K(x, x') = E_{w = +-1, b ~ U(-2, 2)} relu(w x - b) relu(w x' - b): the integral of (u - b)(v - b)
    # over -2 < b < min(u, v), u = w x, v = w x', in closed form
    def k(s, t):
        total = 0.0
        for w in (1.0, -1.0):
            u, v = w * s, w * t
            F = lambda b: u * v * b - (u + v) * b * b / 2 + b**3 / 3  # noqa: E731
            m = min(u, v)
            total += 0.5 * (F(m) - F(-2.0)) / 4.0 if m > -2 else 0.0
        return total

    grid = np.array([-0.8, -0.3, 0.25, 0.7])
    K = np.array([[k(s, t) for t in X] for s in X])
    Kg = np.array([[k(s, t) for t in X] for s in grid])
    ref = Kg @ np.linalg.solve(K, Y)
    lim = mirror_limit(X, Y, grid, potential="quadratic", activation="relu", bias_range=(-2, 2))
    assert np.abs(lim.values - ref).max() < 1e-8
    # the kernel by scipy's adaptive quadrature at one pair (checks the closed form above)
    kq = sum(0.5 * quad(lambda b: max(w * 0.3 - b, 0) * max(-w * 0.7 - b, 0) / 4.0, -2, 2, points=[0.3 * w, -0.7 * w])[0]
             for w in (1.0, -1.0))
    assert k(0.3, -0.7) == pytest.approx(kq, rel=1e-9)
    assert np.abs(mirror_limit(X, Y, X, potential="x^2").values - Y).max() < 1e-9  # interpolates


@pytest.mark.parametrize("scaled", [False, True])
def test_fast_mirror_descent_is_the_generic_engine(scaled):
    net = shallow_net(30, activation="relu", seed=3)
    with torch.no_grad():
        net.a.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))  # make the input layer move too
    ref = shallow_net(30, activation="relu", seed=3)
    ref.load_state_dict(net.state_dict())
    out = train_mirror(net, X, Y, potential="x^4+x^2", scaled=scaled, steps=7, rel_loss_tol=0.0)
    obj = mse_objective(torch.as_tensor(X)[:, None], torch.as_tensor(Y)[:, None])
    gradient_descent(ref, obj, lr=out["lr"], steps=7, potential="x^4+x^2", potential_scale=30.0 if scaled else 1.0)
    for p, q in zip(net.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-12, rtol=1e-10)


def test_momentum_reaches_the_same_interpolant_as_plain_mirror_descent():
    g = np.linspace(-1, 1, 101)
    vals = []
    for m in (0.0, 0.95):
        net = shallow_net(40, activation="abs", init="stratified")
        out = train_mirror(net, X[1:4], Y[1:4], potential="|x|^3+x^2", scaled=True, steps=200000, momentum=m,
                           adapt_every=100, rel_loss_tol=1e-14)
        assert out["converged"]
        with torch.no_grad():
            vals.append(net(torch.as_tensor(g))[:, 0].numpy())
    assert np.abs(vals[0] - vals[1]).max() < 0.05 * np.abs(vals[0]).max()


def test_scaled_mirror_flow_is_lazy_but_not_kernel():
    g = np.linspace(-1, 1, 201)
    lim = mirror_limit(X, Y, g, potential="|x|^3+x^2", activation="abs")
    ker = mirror_limit(X, Y, g, potential="quadratic", activation="abs")
    d_lim, d_ker, moves = [], [], []
    for n in (100, 1600):
        net = shallow_net(n, activation="abs", init="stratified")
        out = train_mirror(net, X, Y, potential="|x|^3+x^2", scaled=True, steps=20000, momentum=0.99, adapt_every=100,
                           rel_loss_tol=1e-12)
        assert out["converged"]
        with torch.no_grad():
            v = net(torch.as_tensor(g))[:, 0].numpy()
        d_lim.append(np.abs(v - lim.values).max())
        d_ker.append(np.abs(v - ker.values).max())
        moves.append(out["movement"])
    assert d_lim[1] < d_lim[0] / 3  # approaches its own limit
    assert moves[1] < 0.02  # lazy
    assert d_ker[1] > 3 * d_lim[1]  # but not the kernel limit
    assert np.abs(lim.values - ker.values).max() > 0.05


def test_mirror_bad_input():
    with pytest.raises(InvalidInputError, match="activation"):
        shallow_net(5, activation="tanh")
    with pytest.raises(InvalidInputError, match="width"):
        shallow_net(0)
    with pytest.raises(InvalidInputError, match="init"):
        shallow_net(5, init="sobol")
    with pytest.raises(InvalidInputError, match="bias_range"):
        mirror_limit(X, Y, X, bias_range=(1, -1))
    with pytest.raises(InvalidInputError, match="finite"):
        mirror_limit(X, Y * np.nan, X)
    with pytest.raises(InvalidInputError, match="distinct"):
        mirror_limit([0.0, 0.0], [1.0, 2.0], X)
    with pytest.raises(InvalidInputError, match="momentum"):
        train_mirror(shallow_net(5), X, Y, momentum=1.0)
    with pytest.raises(InvalidInputError, match="potential"):
        train_mirror(shallow_net(5), X, Y, potential="x^3")
