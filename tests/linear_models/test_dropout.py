"""Dropout / DropConnect on shallow linear networks against mask enumeration, Monte Carlo, L-BFGS and
finite differences."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from clitools import run
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.linear_models import (dropout_flow, dropout_hessian, enumerate_masks, expected_loss, global_minimizers,
                                   induced_regularizer, monte_carlo_loss, whiten)


def _torch_loss(X, Y, h, keep, kind):
    """The expected loss written directly from its definition's expansion in torch (value and autograd gradient)."""
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    k1, k2 = (keep, keep) if np.isscalar(keep) else keep
    c1, c2 = (1 - k1) / k1, (1 - k2) / k2
    d = X.shape[1]

    def f(th):
        t = torch.tensor(th, requires_grad=True)
        B, A = t[:h * d].reshape(h, d), t[h * d:].reshape(-1, h)
        fit = ((Yt - Xt @ B.T @ A.T) ** 2).sum() / len(X)
        XB = Xt @ B.T  # (N, h)
        if kind == "dropout":
            reg = c2 * ((A * A).sum(0) * (XB * XB).sum(0)).sum() / len(X)
        else:
            reg = (c2 * ((A * A).sum(0) * (XB * XB).sum(0)).sum()
                   + c1 * (1 + c2) * ((A * A).sum(0) * ((B * B) @ (Xt * Xt).sum(0))).sum()) / len(X)
        loss = fit + reg
        g, = torch.autograd.grad(loss, t)
        return float(loss.detach()), g.numpy()

    return f


def _problem(seed, n=9, d=3, r=2, h=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n, r))
    return X, Y, rng.standard_normal((h, d)), rng.standard_normal((r, h))


@settings(max_examples=8)
@given(seed=st.integers(0, 10**6), keep=st.floats(0.1, 1.0), h=st.integers(1, 4))
def test_dropout_closed_form_equals_mask_enumeration(seed, keep, h):
    X, Y, W1, W2 = _problem(seed, h=h)
    a = expected_loss(W1, W2, X, Y, keep=keep)
    b = enumerate_masks(W1, W2, X, Y, keep=keep)
    assert a == pytest.approx(b, rel=1e-11, abs=1e-12)
    # the regularizer is E L minus the mask-free loss
    l0 = float(((Y - X @ W1.T @ W2.T) ** 2).sum() / X.shape[0])
    assert induced_regularizer(W1, W2, X, keep=keep) == pytest.approx(a - l0, rel=1e-10, abs=1e-12)


@settings(max_examples=5)
@given(seed=st.integers(0, 10**6), k1=st.floats(0.2, 1.0), k2=st.floats(0.2, 1.0))
def test_dropconnect_closed_form_equals_mask_enumeration(seed, k1, k2):
    X, Y, W1, W2 = _problem(seed, d=2, r=2, h=2)  # 2^8 masks
    a = expected_loss(W1, W2, X, Y, keep=(k1, k2), kind="dropconnect")
    b = enumerate_masks(W1, W2, X, Y, keep=(k1, k2), kind="dropconnect")
    assert a == pytest.approx(b, rel=1e-11)


@pytest.mark.parametrize("kind", ["dropout", "dropconnect"])
def test_closed_form_within_monte_carlo_error(kind):
    X, Y, W1, W2 = _problem(3, d=4, r=3, h=5)  # too many DropConnect masks to enumerate
    with pytest.raises(ResourceLimitError):
        enumerate_masks(W1, W2, X, Y, keep=0.6, kind="dropconnect")
    mc = monte_carlo_loss(W1, W2, X, Y, keep=0.6, kind=kind, samples=40000, seed=1)
    closed = expected_loss(W1, W2, X, Y, keep=0.6, kind=kind)
    assert abs(mc.mean - closed) < 5 * mc.stderr
    assert mc.stderr < 0.05 * closed


def test_dropconnect_with_whitened_data_is_dropout_with_effective_probability():
    X, Y, W1, W2 = _problem(5, n=12)
    Xw = whiten(X)
    np.testing.assert_allclose(Xw.T @ Xw / len(Xw), np.eye(3), atol=1e-12)
    a = expected_loss(W1, W2, Xw, Y, keep=(0.5, 0.8), kind="dropconnect")
    b = expected_loss(W1, W2, Xw, Y, keep=0.4, kind="dropout")  # 1/(p1 p2) - 1 = (1 - 0.4) / 0.4
    assert a == pytest.approx(b, rel=1e-12)


@pytest.mark.parametrize("kind,keep,h", [("dropout", 0.5, 3), ("dropout", 0.8, 1), ("dropout", 0.3, 3),
                                         ("dropconnect", 0.6, 2)])
def test_global_minimum_matches_lbfgs_and_is_never_beaten(kind, keep, h):
    X, Y, _, _ = _problem(11, n=10)
    if kind == "dropconnect":
        X = whiten(X)
    m = global_minimizers(X, Y, h, keep=keep, kind=kind)
    d, r = X.shape[1], Y.shape[1]
    # the returned factorization attains the value, is equalized and balanced (whitened coordinates)
    assert expected_loss(m.W1, m.W2, X, Y, keep=keep, kind=kind) == pytest.approx(m.value, rel=1e-10)
    C = X.T @ X / len(X)
    w, V = np.linalg.eigh(C)
    B = m.W1 @ (V * np.sqrt(w)) @ V.T
    na, nb = np.linalg.norm(m.W2, axis=0), np.linalg.norm(B, axis=1)
    np.testing.assert_allclose(na, nb, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(na * nb, m.shrunk_values.sum() / h, rtol=1e-8, atol=1e-12)
    rng = np.random.default_rng(0)
    f = _torch_loss(X, Y, h, keep, kind)
    th = rng.standard_normal(h * (d + r))
    assert f(th)[0] == pytest.approx(expected_loss(th[:h * d].reshape(h, d), th[h * d:].reshape(r, h), X, Y,
                                                   keep=keep, kind=kind), rel=1e-12)
    vals = [minimize(f, rng.standard_normal(h * (d + r)), jac=True, method="L-BFGS-B",
                     options=dict(maxiter=5000, ftol=1e-15, gtol=1e-11)).fun for _ in range(4)]
    assert min(vals) >= m.value - 1e-9
    assert min(vals) == pytest.approx(m.value, rel=1e-7)


def test_hessian_against_finite_differences_and_zero_gradient_at_minimum():
    X, Y, W1, W2 = _problem(2)
    H = dropout_hessian(W1, W2, X, Y, keep=0.7)
    theta = np.concatenate([W1.ravel(), W2.ravel()])
    h, d = W1.shape

    grad = _torch_loss(X, Y, h, 0.7, "dropout")
    eps = 1e-5
    E = np.eye(theta.size) * eps
    fd = np.array([(grad(theta + e)[1] - grad(theta - e)[1]) / (2 * eps) for e in E])
    np.testing.assert_allclose(H, fd, atol=1e-6 * max(1, np.abs(H).max()))
    # at the minimizer: gradient zero (autograd of the closed form), Hessian PSD with a null space
    m = global_minimizers(X, Y, h, keep=0.7)
    th = torch.tensor(np.concatenate([m.W1.ravel(), m.W2.ravel()]), requires_grad=True)
    C, Z = torch.tensor(X.T @ X / len(X)), torch.tensor(Y.T @ X / len(X))
    A, B = th[h * d:].reshape(-1, h), th[:h * d].reshape(h, d)
    W = A @ B
    loss = -2 * (Z * W).sum() + ((W @ C) * W).sum() + 3 / 7 * ((A * A).sum(0) * ((B @ C) * B).sum(1)).sum()
    g, = torch.autograd.grad(loss, th)
    assert float(g.abs().max()) < 1e-10
    ev = np.linalg.eigvalsh(dropout_hessian(m.W1, m.W2, X, Y, keep=0.7))
    assert ev.min() > -1e-9 and (np.abs(ev) < 1e-8).sum() >= h  # rescaling of each unit is flat


@pytest.mark.parametrize("kind,keep", [("dropout", 0.5), ("dropconnect", (0.7, 0.9))])
def test_flow_rate_matches_hessian_bound(kind, keep):
    X, Y, _, _ = _problem(4, n=12, d=2, r=2)
    X = whiten(X)
    f = dropout_flow(X, Y, 2, keep=keep, kind=kind, perturbation=0.01, points=120)
    assert f.complete and f.final_gap < 1e-8 and f.gaps.min() > -1e-12
    assert f.measured_rate == pytest.approx(f.rate_bound, rel=0.02)
    assert np.all(np.diff(f.gaps) <= 1e-12)  # the flow never increases the loss


def test_bad_input_is_refused_naming_the_argument():
    X, Y, W1, W2 = _problem(0)
    with pytest.raises(InvalidInputError, match="keep"):
        expected_loss(W1, W2, X, Y, keep=0.0)
    with pytest.raises(InvalidInputError, match="kind"):
        expected_loss(W1, W2, X, Y, kind="maskout")
    with pytest.raises(InvalidInputError, match="W1"):
        expected_loss(W1[:, :2], W2, X, Y)
    with pytest.raises(InvalidInputError, match="Y"):
        expected_loss(W1, W2, X, Y[:4])
    with pytest.raises(InvalidInputError, match="X"):
        expected_loss(W1, W2, np.zeros((0, 3)), np.zeros((0, 2)))
    with pytest.raises(InvalidInputError, match="X"):
        global_minimizers(np.ones((5, 3)), Y[:5], 2)  # rank-deficient inputs
    with pytest.raises(InvalidInputError, match="diagonal"):
        global_minimizers(X, Y, 2, kind="dropconnect")
    with pytest.raises(InvalidInputError, match="width"):
        global_minimizers(X, Y, 0)


def test_cli_dropout_json_and_errors(capsys, tmp_path):
    code, out, err = run(["dropout", "--width", "2", "--keep", "0.6", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["mask_check"]["closed_form"] == pytest.approx(data["mask_check"]["enumeration"], rel=1e-12)
    assert data["minimum"]["value"] == pytest.approx(data["mask_check"]["closed_form"], rel=1e-10)
    code, out, err = run(["dropout", "--kind", "dropconnect", "--json"], capsys)
    assert code == 1 and err.startswith("relulab: error:") and "diagonal" in err and len(err.splitlines()) == 1
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    code, out, err = run(["dropout", "--data", str(tmp_path / "x.npy")], capsys)
    assert code == 1 and "--targets" in err


def test_decay_rate_recovers_an_exponential_and_ignores_the_floor():
    from relulab.linear_models import decay_rate

    t = np.linspace(0, 50, 101)
    v = 3.0 * np.exp(-0.7 * t) + 2.0 * np.exp(-2.0 * t)
    v[t > 40] = 1e-20  # below the floor: ignored
    rate, (a, b) = decay_rate(t, v, floor=1e-16)
    assert rate == pytest.approx(0.7, rel=1e-9) and b <= 40
