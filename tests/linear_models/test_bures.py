"""Bures-Wasserstein linear generators against the definition (optimal orthogonal alignment), eigen-subset
formulas, finite-difference Hessians and a generic optimizer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clitools import run
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm
from scipy.optimize import minimize

from relulab.core.errors import InvalidInputError
from relulab.linear_models import (bures_wasserstein, bw_critical_points, bw_gradient, bw_hessian, bw_loss,
                                   bw_train)


def _cov(seed, lam):
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((len(lam), len(lam))))[0]
    return (Q * np.asarray(lam, dtype=float)) @ Q.T


def _bw_by_alignment(S1, S2, seed=0):
    """min over orthogonal U of |S1^{1/2} - S2^{1/2} U|_F^2 by L-BFGS over U = expm(skew), several starts."""
    def root(S):
        w, V = np.linalg.eigh(S)
        return (V * np.sqrt(np.clip(w, 0, None))) @ V.T

    A, B = root(S1), root(S2)
    n = len(S1)
    iu = np.triu_indices(n, 1)
    rng = np.random.default_rng(seed)

    def f(x):
        K = np.zeros((n, n))
        K[iu] = x
        U = expm(K - K.T)
        return float(((A - B @ U) ** 2).sum())

    if n == 1:
        return f(np.zeros(0))
    return min(minimize(f, rng.standard_normal(len(iu[0])) * 2, method="BFGS").fun for _ in range(5))


@settings(max_examples=5)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 4))
def test_bw_distance_closed_form_against_optimal_alignment(seed, n):
    rng = np.random.default_rng(seed)
    G1, G2 = rng.standard_normal((n, n)), rng.standard_normal((n, n - 1 if n > 1 else 1))
    S1, S2 = G1 @ G1.T, G2 @ G2.T  # S2 may be rank-deficient: allowed for the distance
    d2 = bures_wasserstein(S1, S2, squared=True)
    assert d2 == pytest.approx(_bw_by_alignment(S1, S2, seed), rel=1e-6, abs=1e-9)
    assert bures_wasserstein(S1, S2) == pytest.approx(bures_wasserstein(S2, S1), rel=1e-7, abs=1e-7)
    assert bures_wasserstein(S1, S1) == pytest.approx(0.0, abs=1e-6)


def test_bw_distance_of_commuting_covariances():
    a, b = np.array([4.0, 1.0, 0.25]), np.array([1.0, 9.0, 0.0])
    assert bures_wasserstein(np.diag(a), np.diag(b), squared=True) == pytest.approx(((np.sqrt(a) - np.sqrt(b)) ** 2).sum())


def _fd_hessian(W, S0, tau, eps=1e-6):
    n, m = W.shape
    H = np.empty((n * m, n * m))
    for i in range(n * m):
        E = np.zeros(n * m)
        E[i] = eps
        H[:, i] = (bw_gradient(W + E.reshape(n, m), S0, tau=tau) - bw_gradient(W - E.reshape(n, m), S0, tau=tau)).ravel() \
            / (2 * eps)
    return H


@pytest.mark.parametrize("lam,k", [([4.0, 3.0, 2.0, 1.0], 2), ([5.0, 2.5, 1.5, 1.0, 0.3], 3), ([2.0, 1.0, 0.5], 1)])
def test_critical_points_values_and_morse_indices(lam, k):
    S0 = _cov(7, lam)
    cp = bw_critical_points(S0, k)
    lam_s = np.sort(lam)[::-1]
    assert len(cp.subsets) == len(list(__import__("itertools").combinations(range(len(lam)), k)))
    for j, I in enumerate(cp.subsets):
        W = cp.point(j)
        assert np.abs(bw_gradient(W, S0)).max() < 1e-10
        out = [i for i in range(len(lam)) if i not in I]
        assert cp.values[j] == pytest.approx(lam_s[out].sum(), rel=1e-12)
        assert bw_loss(W, S0) == pytest.approx(cp.values[j], rel=1e-10, abs=1e-10)
        # the Hessian: exact (Daleckii-Krein), finite differences of the gradient, eigen-subset formula
        H = bw_hessian(W, S0)
        np.testing.assert_allclose(H, _fd_hessian(W, S0, 0.0), atol=1e-6)
        formula = np.sort(np.concatenate([[2 * (1 - lam_s[jj] / lam_s[i]) for i in I for jj in out],
                                          np.full(k * (k + 1) // 2, 2.0), np.zeros(k * (k - 1) // 2)]))
        np.testing.assert_allclose(np.linalg.eigvalsh(H), formula, atol=1e-9)
        assert cp.indices[j] == sum(lam_s[jj] > lam_s[i] for i in I for jj in out)
    assert cp.indices[0] == 0 and cp.subsets[0] == tuple(range(k))
    assert cp.global_value == pytest.approx(lam_s[k:].sum())


def test_global_minimum_against_lbfgs():
    lam = [3.0, 2.0, 1.2, 0.4]
    S0 = _cov(3, lam)
    rng = np.random.default_rng(0)
    best = min(minimize(lambda w: bw_loss(w.reshape(4, 2), S0), rng.standard_normal(8), method="L-BFGS-B").fun
               for _ in range(5))
    assert best >= 1.6 - 1e-7 and best == pytest.approx(1.6, abs=1e-6)
    assert bw_critical_points(S0, 2).global_value == pytest.approx(1.6)


def test_perturbed_loss_critical_points():
    S0 = _cov(2, [3.0, 2.0, 1.0])
    tau = 0.2
    cp = bw_critical_points(S0, 2, tau=tau)
    assert len(cp.subsets) == 1 + 3 + 3  # every subset of size <= 2
    for j in range(len(cp.subsets)):
        W = cp.point(j)
        assert np.abs(bw_gradient(W, S0, tau=tau)).max() < 1e-10
        assert bw_loss(W, S0, tau=tau) == pytest.approx(cp.values[j], rel=1e-10)
        H = bw_hessian(W, S0, tau=tau)
        np.testing.assert_allclose(H, _fd_hessian(W, S0, tau), atol=1e-5)
    assert cp.indices[0] == 0 and cp.subsets[0] == (0, 1)
    # 0 <= L_tau - L <= 2 d0 tau, and the values tend to the unperturbed ones
    W = np.random.default_rng(1).standard_normal((3, 2))
    gap = bw_loss(W, S0, tau=tau) - bw_loss(W, S0)
    assert -1e-12 <= gap <= 4 * tau + 1e-12
    small = bw_critical_points(S0, 2, tau=1e-6)
    exact = bw_critical_points(S0, 2)
    for I, v in zip(exact.subsets, exact.values):
        assert small.values[small.subsets.index(I)] == pytest.approx(v, abs=1e-5)


def test_training_checks():
    S0 = _cov(5, [4.0, 3.0, 2.0, 1.0])
    tr = bw_train(S0, (2, 3, 4), tau=0.05, t_max=60, points=60)
    assert tr.complete and tr.monotone and tr.balance_drift < 1e-6
    assert tr.value_error < 1e-6 and tr.grad_norms[-1] < 1e-5
    # started below the second critical value: must end at the global minimum
    cp = bw_critical_points(S0, 2, tau=0.05, latent_dim=2)
    W = cp.point(0)
    init = [np.array([[1.0, 0.1], [0.0, 1.0], [0.2, -0.1]]), None]
    init[1] = (W + 0.05) @ np.linalg.pinv(init[0])
    gd = bw_train(S0, (2, 3, 4), tau=0.05, method="gd", lr=0.01, steps=3000, init=init, points=50)
    assert gd.started_below_second and gd.reached_global and gd.monotone and gd.limit_subset == (0, 1)


def test_bad_input_names_the_argument():
    with pytest.raises(InvalidInputError, match="S1"):
        bures_wasserstein(np.array([[1.0, 2.0], [2.0, 1.0]]), np.eye(2))
    with pytest.raises(InvalidInputError, match="Sigma0.*definite"):
        bw_critical_points(np.diag([1.0, 0.0]), 1)
    with pytest.raises(InvalidInputError, match="rank"):
        bw_critical_points(np.eye(2), 3)
    with pytest.raises(InvalidInputError, match="widths"):
        bw_train(np.eye(3), (2, 2))
    with pytest.raises(InvalidInputError, match="symmetric"):
        bw_loss(np.ones((2, 1)), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(InvalidInputError, match="tau"):
        bw_loss(np.ones((2, 1)), np.eye(2), tau=-1)


def test_cli_bures(capsys):
    code, out, err = run(["bures", "--eigenvalues", "3,2,1", "--rank", "1", "--json"], capsys)
    assert code == 0, err
    cp = json.loads(out)["critical_points"]
    assert cp["values"] == pytest.approx([3.0, 4.0, 5.0]) and cp["indices"] == [0, 1, 2]
    code, out, err = run(["bures", "--eigenvalues", "3,0", "--json"], capsys)
    assert code == 1 and "Sigma0" in err and out == ""


def test_gradient_descent_with_a_too_large_step_is_refused():
    with pytest.raises(InvalidInputError, match="lr"):
        bw_train(np.diag([4.0, 3.0, 2.0, 1.0]), (2, 3, 4), tau=1e-3, method="gd", lr=10.0, steps=100)


@pytest.mark.parametrize("seed", range(4))
def test_perturbed_morse_indices_follow_the_subset_formula(seed):
    rng = np.random.default_rng(seed)
    n = 4
    lam = np.sort(rng.uniform(0.05, 3, n))[::-1]
    S0 = _cov(seed, lam)
    k, m, tau = 2, 2 + seed % 2, float(rng.uniform(0.01, 0.5))
    cp = bw_critical_points(S0, k, tau=tau, latent_dim=m)
    for I, idx in zip(cp.subsets, cp.indices):
        out = [j for j in range(n) if j not in I]
        formula = sum(lam[j] > lam[i] for i in I for j in out) + (m - len(I)) * sum(lam[j] > tau for j in out)
        assert idx == formula, (I, idx, formula)
