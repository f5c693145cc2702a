"""Benign overfitting: the data model, closed-form and m-dimensional test errors against d-dimensional
Monte Carlo, the hard-margin classifier against a generic QP, and the hinge-loss GD step against autograd."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from relulab.core.errors import InvalidInputError
from relulab.dynamics import (benign_diagram, linear_test_error, max_margin, network_snr, network_test_error,
                              predicted_error, signal_noise_data, train_hinge)


def _fresh(v, gamma, count, seed):
    rng = np.random.default_rng(seed)
    d = v.size
    y = np.where(rng.random(count) < 0.5, 1.0, -1.0)
    z = rng.standard_normal((count, d)) / math.sqrt(d)
    z -= np.outer(z @ v, v)
    return y[:, None] * math.sqrt(gamma) * v + math.sqrt(1 - gamma) * z, y


def test_data_model():
    data = signal_noise_data(30, 50, 0.2, 7, seed=1)
    assert data.x.shape == (30, 50) and len(data.flipped) == 7
    assert int((data.y != data.y_obs).sum()) == 7 and abs(int(data.y.sum())) <= 1
    noise = data.x - data.y[:, None] * math.sqrt(0.2) * data.v
    assert np.abs(noise @ data.v).max() < 1e-15


def test_closed_form_linear_error_against_monte_carlo():
    rng = np.random.default_rng(0)
    d, gamma = 40, 0.05
    v = np.zeros(d)
    v[0] = 1
    w = rng.standard_normal(d) * 0.3
    w[0] = 1.0
    x, y = _fresh(v, gamma, 200000, 1)
    mc = float(np.mean(y * (x @ w) <= 0))
    p = linear_test_error(w, v, gamma)
    assert abs(mc - p) < 4 * math.sqrt(p * (1 - p) / 200000) + 1e-4


def test_network_error_against_d_dimensional_monte_carlo():
    data = signal_noise_data(20, 60, 0.05, 2, seed=2)
    net = train_hinge(data.x, data.y_obs, width=8, seed=2)
    assert net["interpolated"]
    p, se = network_test_error(net["W"], net["a"], net["slope"], data.v, 0.05, samples=200000, seed=3)
    x, y = _fresh(data.v, 0.05, 200000, 4)
    pre = x @ net["W"].T
    f = np.where(pre > 0, pre, 0.1 * pre) @ net["a"]
    mc = float(np.mean(y * f <= 0))
    assert abs(mc - p) < 4 * math.sqrt(2) * se + 1e-4


@pytest.mark.parametrize("seed", [0, 1])
def test_max_margin_against_a_generic_qp(seed):
    data = signal_noise_data(15, 30, 0.1, 3, seed=seed)
    mm = max_margin(data.x, data.y_obs)
    Z = data.y_obs[:, None] * data.x
    ref = minimize(lambda w: 0.5 * w @ w, np.zeros(30), jac=lambda w: w, method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda w: Z @ w - 1, "jac": lambda w: Z}],
                   options={"ftol": 1e-12, "maxiter": 1000})
    assert ref.success
    assert np.abs(mm.w - ref.x).max() < 1e-5 and mm.kkt < 1e-9
    assert (Z @ mm.w >= 1 - 1e-9).all()


def test_hinge_step_matches_autograd():
    data = signal_noise_data(10, 20, 0.1, 2, seed=5)
    one = train_hinge(data.x, data.y_obs, width=6, seed=7, max_steps=1, lr=0.3)
    zero = train_hinge(data.x, data.y_obs, width=6, seed=7, max_steps=0, lr=0.3)
    W = torch.tensor(zero["W"], requires_grad=True)
    X, Y, a = (torch.tensor(t) for t in (data.x, data.y_obs, zero["a"]))
    loss = torch.clamp(1 - Y * (torch.nn.functional.leaky_relu(X @ W.T, 0.1) @ a), min=0).sum()
    loss.backward()
    assert np.abs(one["W"] - (zero["W"] - 0.3 * W.grad.numpy())).max() < 1e-13


def test_harmful_at_low_and_benign_at_high_signal():
    errs = []
    for gamma in (1e-3, 0.1):
        data = signal_noise_data(40, 1000, gamma, 4, seed=0)
        net = train_hinge(data.x, data.y_obs, width=16, seed=0)
        assert net["interpolated"]  # overfits the flipped labels
        errs.append(network_test_error(net["W"], net["a"], 0.1, data.v, gamma, samples=40000)[0])
        mm = max_margin(data.x, data.y_obs)
        # the nearly-orthogonal prediction of the hard-margin error (d = 25 n)
        assert abs(linear_test_error(mm.w, data.v, gamma) - float(predicted_error(40, 1000, gamma, 4))) < 0.03
    assert errs[0] > 0.35 and errs[1] < 0.01


def test_paper_step_bound_snr_and_sweeps():
    data = signal_noise_data(20, 100, 0.05, 2, seed=1)
    net = train_hinge(data.x, data.y_obs, width=8, seed=0)
    norms = np.linalg.norm(data.x, axis=1)
    # Assumption 1 of the paper, with m = width / 2 = 4
    assert net["lr"] == pytest.approx(1 / (4 * 20 * norms.max() ** 2))
    zero = train_hinge(data.x, data.y_obs, width=8, seed=0, max_steps=0)
    assert np.linalg.norm(zero["W"], axis=1).max() <= math.sqrt(0.1) / (4 * norms.min()) + 1e-15
    assert list(zero["a"][:4]) == [-1.0, 1.0, -1.0, 1.0]
    # SNR against its definition: A_min / |Z|_F
    W, a = net["W"], net["a"]
    f = lambda x: np.where(x @ W.T > 0, x @ W.T, 0.1 * (x @ W.T)) @ a  # noqa: E731
    Z = W - np.outer(W @ data.v, data.v)
    assert network_snr(W, a, 0.1, data.v) == pytest.approx(min(f(data.v), -f(-data.v)) / np.linalg.norm(Z))
    r = benign_diagram(ns=(10, 20), flip_fraction=0.1, d_over_n=(3,), gammas=(0.2,), width=4, samples=2000)
    assert [(row["n"], row["flipped"], row["d"]) for row in r.rows] == [(10, 1, 30), (20, 2, 60)]
    assert all(row["interpolated"] for row in r.rows) and r.n is None


def test_benign_bad_input():
    with pytest.raises(InvalidInputError, match="gamma"):
        signal_noise_data(10, 10, 1.5, 1)
    with pytest.raises(InvalidInputError, match="flipped"):
        signal_noise_data(10, 10, 0.5, 11)
    with pytest.raises(InvalidInputError, match="width"):
        train_hinge(np.eye(3), [1.0, -1.0, 1.0], width=3)
    with pytest.raises(InvalidInputError, match="slope"):
        train_hinge(np.eye(3), [1.0, -1.0, 1.0], slope=0.0)
    with pytest.raises(InvalidInputError, match="lr_factor"):
        train_hinge(np.eye(3), [1.0, -1.0, 1.0], width=2, lr_factor=0.0)
    with pytest.raises(InvalidInputError, match="flip_fraction"):
        benign_diagram(ns=(10,), flip_fraction=0.7)
    with pytest.raises(InvalidInputError, match="separable"):
        max_margin(np.array([[1.0], [1.0]]), np.array([1.0, -1.0]))
    with pytest.raises(InvalidInputError, match="labels"):
        max_margin(np.eye(2), np.array([1.0, 0.5]))
