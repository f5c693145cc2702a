"""The batch-normalized convex program: the rebuilt network against torch's BatchNorm1d in training mode,
multi-start L-BFGS on an independently written BN objective, and the BN reading of plain networks."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

pytest.importorskip("cvxpy")

from relulab.convex import certify, objective, solve  # noqa: E402
from relulab.core.errors import InvalidInputError  # noqa: E402


def _bn_objective_torch(theta, X, y, beta, m):
    """1/2 |sum_j relu(gamma_j zc_j/|zc_j| + alpha_j/sqrt n) a_j - y|^2 + beta/2 (gamma^2 + alpha^2 + a^2)."""
    n, d = X.shape
    W = theta[: m * d].reshape(m, d)
    gamma, alpha, a = theta[m * d: m * d + m], theta[m * d + m: m * d + 2 * m], theta[m * d + 2 * m:]
    Z = X @ W.T
    Zc = Z - Z.mean(0)
    H = gamma * Zc / Zc.norm(dim=0) + alpha / math.sqrt(n)
    r = torch.relu(H) @ a - y
    return 0.5 * r @ r + 0.5 * beta * (gamma @ gamma + alpha @ alpha + a @ a)


def _bn_objective_numpy(theta, X, y, beta, m):
    """The same objective in numpy with its hand-derived gradient (for fast multi-start L-BFGS)."""
    n, d = X.shape
    W = theta[: m * d].reshape(m, d)
    gamma, alpha, a = theta[m * d: m * d + m], theta[m * d + m: m * d + 2 * m], theta[m * d + 2 * m:]
    Xc = X - X.mean(0)
    Zc = Xc @ W.T
    N = np.linalg.norm(Zc, axis=0)
    Zh = Zc / N
    H = gamma * Zh + alpha / math.sqrt(n)
    R = np.maximum(H, 0)
    r = R @ a - y
    G = np.outer(r, a) * (H > 0)
    GZ = G * gamma
    dZc = (GZ - Zh * (Zh * GZ).sum(0)) / N
    grad = np.concatenate([(Xc.T @ dZc).T.ravel(), (G * Zh).sum(0) + beta * gamma,
                           G.sum(0) / math.sqrt(n) + beta * alpha, R.T @ r + beta * a])
    return 0.5 * r @ r + 0.5 * beta * (gamma @ gamma + alpha @ alpha + a @ a), grad


def _lbfgs_bn(X, y, beta, m=6, starts=40, seed=0):
    n, d = X.shape
    rng = np.random.default_rng(seed)
    return np.array([minimize(_bn_objective_numpy, rng.normal(size=m * d + 3 * m), args=(X, y, beta, m), jac=True,
                              method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-12, "ftol": 1e-15}).fun
                     for _ in range(starts)])


def test_numpy_bn_gradient_matches_autograd():
    rng = np.random.default_rng(2)
    X, y, th = rng.normal(size=(6, 2)), rng.normal(size=6), rng.normal(size=2 * 3 + 9)
    val, grad = _bn_objective_numpy(th, X, y, 0.3, 3)
    t = torch.as_tensor(th).requires_grad_(True)
    v = _bn_objective_torch(t, torch.as_tensor(X), torch.as_tensor(y), 0.3, 3)
    (g,) = torch.autograd.grad(v, t)
    assert v.detach().item() == pytest.approx(val, rel=1e-12) and np.allclose(g.numpy(), grad, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def bn_case():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(6, 2)), rng.normal(size=6)
    return X, y, 0.3, solve(X, y, 0.3, bn=True)


def test_bn_optimum_equals_best_lbfgs_and_bounds_every_run(bn_case):
    X, y, beta, sol = bn_case
    vals = _lbfgs_bn(X, y, beta, m=sol.neurons + 2, starts=10)
    assert sol.complete and sol.gap < 1e-6
    # L-BFGS converges slowly along the flat directions of small neurons: close, never below
    assert vals.min() == pytest.approx(sol.objective, rel=2e-4)
    assert (vals >= sol.lower_bound - 1e-9).all()
    # a one-neuron optimum, which L-BFGS finds to full accuracy
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 2)), rng.normal(size=6)
    one = solve(X, y, 0.5, bn=True)
    assert one.neurons == 1
    assert _lbfgs_bn(X, y, 0.5, m=3, starts=4).min() == pytest.approx(one.objective, rel=1e-7)


def test_rebuilt_bn_network_matches_training_mode_batchnorm(bn_case):
    X, y, beta, sol = bn_case
    net = sol.network()
    assert isinstance(net[1], torch.nn.BatchNorm1d) and not net.training
    Xt = torch.as_tensor(X)
    # the same layers with torch's training-mode normalization (batch statistics, tiny eps)
    train = torch.nn.Sequential(net[0], torch.nn.BatchNorm1d(net[1].num_features, eps=1e-30, dtype=torch.float64),
                                net[2], net[3])
    with torch.no_grad():
        train[1].weight.copy_(net[1].weight)
        train[1].bias.copy_(net[1].bias)
        train.train()
        assert torch.allclose(train(Xt), net(Xt), atol=1e-9)
    assert objective(net, X, y, beta, bn=True) == pytest.approx(sol.optimum, rel=1e-6)
    assert certify(net, X, y, beta, bn=True, solution=sol).globally_optimal
    # the paper's gamma, alpha are sqrt(n) times torch's weight and bias
    n = len(y)
    assert np.allclose(net[1].weight.detach().numpy()[: sol.neurons] * math.sqrt(n), sol.bn_gamma)
    with pytest.raises(InvalidInputError, match="bn=True"):
        objective(net, X, y, beta)


def test_plain_network_read_as_bn_network():
    # any two-layer network is a BN network on its own data: gamma_j = |h_j - mean|, alpha_j = sqrt(n) mean
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(9, 3)), rng.normal(size=9)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1, bias=False)).double()
    Xt = torch.as_tensor(X)
    H = net[0](Xt).detach()
    gamma, alpha = (H - H.mean(0)).norm(dim=0), math.sqrt(9) * H.mean(0)
    W = net[0].weight.detach()
    theta = torch.cat([W.reshape(-1), gamma, alpha, net[2].weight.detach()[0]])
    assert objective(net, X, y, 0.2, bn=True) == pytest.approx(
        float(_bn_objective_torch(theta, Xt, torch.as_tensor(y), 0.2, 4)), rel=1e-12)


def test_bn_constant_data_is_refused():
    with pytest.raises(InvalidInputError, match="constant"):
        solve(np.ones((4, 2)), np.arange(4.0), 0.1, bn=True)
