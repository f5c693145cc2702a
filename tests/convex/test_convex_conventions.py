"""Unregularized-bias and vector-output conventions of the convex programs, against independent
references: L-BFGS on the non-convex objectives, brute-force sampling of the dual constraint, exact
rational sums, NNLS cone bounds, and a plainly written cvxpy model of the same relaxation."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

pytest.importorskip("cvxpy")

from relulab.convex import certify, gd_runs, objective, solve  # noqa: E402
from relulab.convex.patterns import arrangement_patterns  # noqa: E402
from relulab.convex.program import _zero_sum, dual_bound  # noqa: E402
from relulab.convex.vector import cone_spectral_norms, dual_bound_vector  # noqa: E402
from relulab.core.errors import InvalidInputError  # noqa: E402


def _lbfgs(X, Y, beta, m, starts, free=False, seed=0):
    """Final values of L-BFGS runs on the non-convex objective: ``m`` neurons (u = (w, b)), k outputs;
    ``free``: b and an output bias unpenalized."""
    n, d = X.shape
    Y = Y.reshape(n, -1)
    k = Y.shape[1]
    A = torch.tensor(np.hstack([X, np.ones((n, 1))]))
    Yt = torch.tensor(Y)
    q = d + 1

    def f(th):
        t = torch.tensor(th, requires_grad=True)
        U = t[: m * q].reshape(m, q)
        a = t[m * q: m * q + m * k].reshape(m, k)
        c = t[m * q + m * k:]
        r = torch.relu(A @ U.T) @ a + (c if free else 0) - Yt
        pen = (U[:, :d] if free else U).square().sum() + a.square().sum()
        v = 0.5 * r.square().sum() + 0.5 * beta * pen
        v.backward()
        return float(v.detach()), t.grad.numpy().copy()

    g = np.random.default_rng(seed)
    out = []
    for _ in range(starts):
        th = g.normal(size=m * (q + k) + k) * 0.7
        out.append(minimize(f, th, jac=True, method="L-BFGS-B",
                            options=dict(maxiter=4000, gtol=1e-12, ftol=1e-15)).fun)
    return np.array(out)


# ---------------------------------------------------------------------------------------------- free bias
def test_zero_sum_is_exact():
    rng = np.random.default_rng(3)
    for scale in (1e-8, 1.0, 1e6):
        lam = rng.normal(size=37) * scale
        z = _zero_sum(lam)
        assert sum(Fraction(v) for v in z) == 0
        centred = lam - lam.mean()
        assert np.abs(z - centred).max() <= 40 * 2.0 ** -39 * np.abs(centred).max()


def test_free_bias_optimum_certified_and_matches_lbfgs():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(7, 1)), rng.normal(size=7)
    beta = 0.2
    sol = solve(X, y, beta, bias="free")
    reg = solve(X, y, beta, bias=True)
    assert sol.free_bias and sol.complete and sol.output_bias is not None
    # the rebuilt network (with its output bias) attains the program's value
    assert objective(sol.network(), X, y, beta, bias="free") == pytest.approx(sol.optimum, rel=1e-7)
    assert sol.gap <= 1e-6 * sol.objective
    assert sol.lower_bound <= sol.objective
    # fewer penalized parameters: never above the regularized-bias optimum
    assert sol.objective <= reg.lower_bound + 1e-9
    vals = _lbfgs(X, y, beta, m=6, starts=12, free=True)
    assert vals.min() >= sol.lower_bound - 1e-9        # weak duality: nothing below the certificate
    assert vals.min() == pytest.approx(sol.objective, rel=1e-5)
    cert = certify(sol.network(), X, y, beta, bias="free", solution=sol)
    assert cert.globally_optimal
    # free-bias gradient descent keeps the output bias at its optimum: still above the bound
    gd = gd_runs(X, y, beta, width=6, runs=4, steps=300, bias="free")
    assert (gd.objectives >= sol.lower_bound - 1e-9).all()


def test_free_bias_dual_constraint_against_sampling():
    """``c`` of :func:`dual_bound` with ``free_bias`` bounds sup_{|w| = 1, b} |lam^T (X w + b)_+| over densely
    sampled (w, b), b up to far beyond the data (where the all-active cell matters)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(9, 2))
    A = np.hstack([X, np.ones((9, 1))])
    S = arrangement_patterns(A)
    for trial in range(3):
        lam = _zero_sum(rng.normal(size=9))
        _, c = dual_bound(A, rng.normal(size=9), lam, 1.0, S, free_bias=True)
        ang = np.linspace(0, 2 * np.pi, 721)
        W = np.stack([np.cos(ang), np.sin(ang)], 1)
        b = np.concatenate([np.linspace(-4, 4, 801), [-1e3, 1e3]])
        vals = np.abs(np.einsum("nab,n->ab", np.maximum((X @ W.T)[:, :, None] + b[None, None, :], 0), lam))
        assert vals.max() <= c * (1 + 1e-9)
        assert vals.max() >= 0.995 * c      # and the bound is tight (the grid reaches within 0.5%)


def test_bias_argument_checked():
    X, y = np.ones((3, 1)), np.ones(3)
    with pytest.raises(InvalidInputError, match="bias"):
        solve(X, y, 0.1, bias="sometimes")


# ---------------------------------------------------------------------------------------------- vector
def test_cone_spectral_norms_exact_against_nnls_and_sampling():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(7, 2))
    A = np.hstack([X, np.ones((7, 1))])
    S = arrangement_patterns(A)
    # one column: the same number as the scalar NNLS cone bound, both signs (two independent methods)
    lam = rng.normal(size=7)
    exact = cone_spectral_norms(A, S, lam[:, None]).max()
    _, c = dual_bound(A, np.zeros(7), lam, 1.0, S, polish=10**6)
    assert exact == pytest.approx(c, rel=1e-7)
    # two columns: never below the sampled maximum of |Lam^T (A z)_+| over unit z, and close to it
    Lam = rng.normal(size=(7, 2))
    bound = cone_spectral_norms(A, S, Lam)
    Z = rng.normal(size=(200_000, 3))
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    vals = np.linalg.norm(np.maximum(Z @ A.T, 0) @ Lam, axis=1)
    assert vals.max() <= bound.max() * (1 + 1e-9)
    assert vals.max() >= 0.995 * bound.max()


def test_vector_output_exact_in_one_dimension_and_certified():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 1)), rng.normal(size=(6, 2))
    beta = 0.1
    sol = solve(X, Y, beta)
    assert sol.outputs == 2 and sol.relaxation and sol.complete
    net = sol.network()
    out = net(torch.as_tensor(X))
    assert out.shape == (6, 2)
    # the rebuilt network's objective (evaluated from the torch module) equals the relaxation's value:
    # in one input dimension the relaxation is exact here, and the certificate closes the gap
    assert sol.objective == pytest.approx(sol.optimum, rel=1e-6)
    assert 0 <= sol.gap <= 1e-6 * sol.objective
    vals = _lbfgs(X, Y, beta, m=5, starts=6)
    assert vals.min() >= sol.lower_bound - 1e-9
    assert sol.objective <= vals.min() + 1e-9    # no local run does better than the certified network
    cert = certify(net, X, Y, beta, solution=sol)
    assert cert.globally_optimal
    with torch.no_grad():
        net[0].weight.add_(0.05)
    worse = certify(net, X, Y, beta, solution=sol)
    assert not worse.globally_optimal and worse.gap > 1e-4


def test_vector_relaxation_equals_plain_cvxpy_model_and_bounds_lbfgs():
    import cvxpy as cp

    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    beta = 0.2
    sol = solve(X, Y, beta)
    # the same relaxation written plainly: one PSD block per cell with at least one active sample, the
    # full n x n nonnegativity, and the fit written sample by sample
    A = np.hstack([X, np.ones((5, 1))])
    S = [s for s in arrangement_patterns(A) if (s > 0).any()]
    blocks = [cp.Variable((5, 5), symmetric=True) for _ in S]
    cons = [M >> 0 for M in blocks]
    fit = []
    for i in range(5):
        row = 0
        for s, M in zip(S, blocks):
            if s[i] > 0:
                row = row + A[i] @ M[:3, 3:]
        fit.append(row)
    for s, M in zip(S, blocks):
        B = np.diag(s.astype(float)) @ A
        cons.append(B @ M[:3, :3] @ B.T >= 0)
    err = sum(cp.sum_squares(fit[i] - Y[i]) for i in range(5))
    prob = cp.Problem(cp.Minimize(0.5 * err + 0.5 * beta * sum(cp.trace(M) for M in blocks)), cons)
    prob.solve(solver="CLARABEL")
    assert sol.optimum == pytest.approx(prob.value, rel=1e-6)
    # relaxation <= every network; the certified bound <= every network; the rebuilt network >= the bound
    vals = _lbfgs(X, Y, beta, m=6, starts=5)
    assert vals.min() >= sol.lower_bound - 1e-9
    assert vals.min() >= sol.optimum - 1e-6 * abs(sol.optimum)
    assert sol.objective >= sol.lower_bound
    assert sol.lower_bound <= sol.optimum + 1e-6


def test_vector_dual_bound_never_above_a_network():
    """Any residual gives a valid bound: below the objective of random networks' optimizations."""
    rng = np.random.default_rng(6)
    X, Y = rng.normal(size=(6, 2)), rng.normal(size=(6, 3))
    A = np.hstack([X, np.ones((6, 1))])
    S = arrangement_patterns(A)
    vals = _lbfgs(X, Y, 0.3, m=5, starts=4, seed=1)
    for _ in range(5):
        lb, c = dual_bound_vector(A, Y, rng.normal(size=(6, 3)), 0.3, S)
        assert lb <= vals.min() + 1e-12
    loose, c_loose = dual_bound_vector(A, Y, Y, 0.3, None)
    _, c_exact = dual_bound_vector(A, Y, Y, 0.3, S)
    assert c_loose >= c_exact


def test_vector_unsupported_conventions_raise():
    X, Y = np.ones((4, 1)), np.ones((4, 2))
    with pytest.raises(InvalidInputError, match="bn"):
        solve(X, Y, 0.1, bn=True)
    with pytest.raises(InvalidInputError, match="free"):
        solve(X, Y, 0.1, bias="free")


def test_sampled_program_certified_with_every_pattern():
    """A program over a sample of the patterns is no certificate by itself; with every pattern enumerated
    for the dual bound it is: the bound stays below the exact optimum and is far above the loose one."""
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(10, 2)), rng.normal(size=10)
    exact = solve(X, y, 0.1)
    sampled = solve(X, y, 0.1, patterns="sampled", max_patterns=40, samples=400)
    loose = solve(X, y, 0.1, patterns="sampled", max_patterns=40, samples=400, certify_patterns=0)
    assert not sampled.complete and sampled.bound_complete and not loose.bound_complete
    assert sampled.lower_bound <= exact.objective + 1e-9 and loose.lower_bound <= exact.objective + 1e-9
    assert sampled.objective >= exact.lower_bound - 1e-9
    assert sampled.lower_bound > loose.lower_bound
