"""Gaussian teacher-student closed forms against Monte Carlo, autograd of an independent arccos
implementation, finite differences, symmetry, and a published spurious minimum."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import relulab.landscape as landscape
from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.landscape.symmetry import apply_permutation
from relulab.landscape.teacher_student import (CriticalPoint, TeacherStudent, find_critical_point,
                                               find_critical_points, gaussian_relu_kernel, polish_critical_point)

f64 = torch.float64


# ---------------------------------------------------------------------------------------------------
# independent references
# ---------------------------------------------------------------------------------------------------

def ref_kernel_pair(w, v):
    """Arc-cosine kernel of one pair through arccos (a different code path from the library's atan2)."""
    nw, nv = w.norm(), v.norm()
    c = torch.clamp(w @ v / (nw * nv), -1.0, 1.0)
    t = torch.arccos(c)
    return nw * nv * (torch.sin(t) + (math.pi - t) * torch.cos(t)) / (2 * math.pi)


def ref_loss(W, V, a, b):
    """L(W) with explicit double loops; self pairs use E relu(w.x)^2 = |w|^2 / 2."""
    total = W.new_zeros(())
    for i in range(W.shape[0]):
        for j in range(W.shape[0]):
            kij = (W[i] @ W[i]) / 2 if i == j else ref_kernel_pair(W[i], W[j])
            total = total + 0.5 * a[i] * a[j] * kij
        for j in range(V.shape[0]):
            total = total - a[i] * b[j] * ref_kernel_pair(W[i], V[j])
    for i in range(V.shape[0]):
        for j in range(V.shape[0]):
            kij = (V[i] @ V[i]) / 2 if i == j else ref_kernel_pair(V[i], V[j])
            total = total + 0.5 * b[i] * b[j] * kij
    return total


def fd_gradient(problem, W, h=1e-6):
    G = torch.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        E = torch.zeros_like(W)
        E[idx] = h
        G[idx] = (problem.loss(W + E) - problem.loss(W - E)) / (2 * h)
    return G


def fd_hessian(problem, W, h=1e-6):
    n = W.numel()
    H = torch.zeros(n, n, dtype=W.dtype)
    for p in range(n):
        E = torch.zeros(n, dtype=W.dtype)
        E[p] = h
        E = E.reshape(W.shape)
        H[:, p] = ((problem.gradient(W + E) - problem.gradient(W - E)) / (2 * h)).reshape(-1)
    return H


def random_problem(k, d, dp, seed, weights=True):
    g = torch.Generator().manual_seed(seed)
    V = torch.randn(dp, d, generator=g, dtype=f64)
    a = torch.randn(k, generator=g, dtype=f64) if weights else None
    b = torch.randn(dp, generator=g, dtype=f64) if weights else None
    W = torch.randn(k, d, generator=g, dtype=f64)
    return TeacherStudent(V=V, k=k, a=a, b=b), W


def published_k7_minimum():
    """Spurious minimum for k = d = 7 published (10 digits, compressed block form) in the README of the
    code of Safran, Yehudai and Shamir, "The effects of mild over-parameterization on the optimization
    landscape of shallow ReLU neural networks" (COLT 2021), github.com/ItaySafran/Overparameterization.
    Their matrices hold neurons as columns; ours as rows, hence the transpose."""
    M = torch.full((7, 7), -0.0350801559, dtype=f64)
    M.fill_diagonal_(0.9969227988)
    M[0, 0] = -0.6327039049
    M[0, 1:] = 0.2616910758
    M[1:, 0] = 0.1859910463
    return M.T.contiguous()


# ---------------------------------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------------------------------

def test_kernel_and_loss_match_monte_carlo():
    problem, W = random_problem(4, 5, 3, seed=3)
    g = torch.Generator().manual_seed(11)
    X = torch.randn(400_000, 5, generator=g, dtype=f64)
    # kernel entries
    K = gaussian_relu_kernel(W, problem.V)
    prods = torch.relu(X @ W.T).unsqueeze(-1) * torch.relu(X @ problem.V.T).unsqueeze(-2)
    mean, se = prods.mean(0), prods.std(0) / math.sqrt(X.shape[0])
    assert ((K - mean).abs() <= 5 * se).all()
    # loss
    r = 0.5 * (problem.predict(W, X) - problem.teacher(X)) ** 2
    assert abs(float(problem.loss(W)) - float(r.mean())) <= 5 * float(r.std()) / math.sqrt(X.shape[0])


def test_loss_identity_teacher_monte_carlo_and_zero_at_teacher():
    problem = TeacherStudent.identity(4)
    W = problem.random_point(seed=5)
    g = torch.Generator().manual_seed(2)
    X = torch.randn(300_000, 4, generator=g, dtype=f64)
    r = 0.5 * (problem.predict(W, X) - problem.teacher(X)) ** 2
    assert abs(float(problem.loss(W)) - float(r.mean())) <= 5 * float(r.std()) / math.sqrt(X.shape[0])
    I = torch.eye(4, dtype=f64)
    assert abs(float(problem.loss(I))) < 1e-14
    assert float(problem.gradient(I).abs().max()) < 1e-15
    # L(0) = 1/2 sum_ij K(e_i, e_j) = 1/2 (d / 2 + d (d - 1) / (2 pi))
    assert float(problem.loss(torch.zeros(4, 4, dtype=f64))) == pytest.approx(0.5 * (2 + 12 / (2 * math.pi)), rel=1e-14)


@pytest.mark.parametrize("shape", [(3, 4, 2), (5, 5, 5), (4, 3, 6), (1, 2, 1)])
def test_gradient_and_hessian_match_autograd_of_arccos_reference(shape):
    k, d, dp = shape
    problem, W = random_problem(k, d, dp, seed=sum(shape))
    L, G, H = problem.loss_gradient_hessian(W)
    ref = lambda w: ref_loss(w.reshape(k, d), problem.V, problem.a, problem.b)  # noqa: E731
    assert float(L) == pytest.approx(float(ref(W)), abs=1e-13)
    Gr = torch.func.grad(ref)(W)
    Hr = torch.func.hessian(ref)(W.reshape(-1))
    assert torch.allclose(G, Gr, atol=1e-12, rtol=0)
    assert torch.allclose(H, Hr, atol=1e-12, rtol=0)
    assert torch.equal(H, H.T)


def test_gradient_and_hessian_match_finite_differences():
    problem, W = random_problem(3, 4, 3, seed=9)
    assert torch.allclose(problem.gradient(W), fd_gradient(problem, W), atol=1e-8, rtol=0)
    assert torch.allclose(problem.hessian(W), fd_hessian(problem, W), atol=1e-7, rtol=0)


def test_parallel_and_antiparallel_pairs_are_exact_limits():
    """K is C^2 across t = 0 and t = pi: gradient and Hessian there match finite differences and are
    the limits of the values at nearby generic points."""
    V = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.3, 0.1, -1.0]], dtype=f64)
    problem = TeacherStudent(V=V, k=5)
    W = torch.stack([2.0 * V[0], -0.5 * V[1], torch.tensor([0.2, -0.7, 0.4], dtype=f64),
                     torch.tensor([0.6, -2.1, 1.2], dtype=f64),      # parallel to row 2
                     torch.tensor([-0.1, 0.35, -0.2], dtype=f64)])    # antiparallel to row 2
    G, H = problem.gradient(W), problem.hessian(W)
    assert torch.isfinite(H).all()
    assert torch.allclose(G, fd_gradient(problem, W, h=1e-6), atol=1e-8, rtol=0)
    assert torch.allclose(H, fd_hessian(problem, W, h=1e-7), atol=1e-5, rtol=0)
    g = torch.Generator().manual_seed(0)
    for eps in (1e-4, 1e-6):
        Wn = W + eps * torch.randn(W.shape, generator=g, dtype=f64)
        assert float((problem.hessian(Wn) - H).abs().max()) < 50 * eps
        assert float((problem.gradient(Wn) - G).abs().max()) < 50 * eps


def test_zero_student_row_loss_defined_derivatives_raise():
    problem, W = random_problem(3, 4, 2, seed=1)
    W[1] = 0.0
    # a zero neuron contributes nothing: same loss as the network without it
    smaller = TeacherStudent(V=problem.V, k=2, a=problem.a[[0, 2]], b=problem.b)
    assert float(problem.loss(W)) == pytest.approx(float(smaller.loss(W[[0, 2]])), abs=1e-14)
    with pytest.raises(DegenerateGeometryError):
        problem.gradient(W)
    with pytest.raises(DegenerateGeometryError):
        problem.hessian(W)


def test_zero_teacher_row_contributes_nothing():
    problem, W = random_problem(3, 4, 3, seed=4)
    V0 = torch.cat([problem.V, torch.zeros(1, 4, dtype=f64)])
    p0 = TeacherStudent(V=V0, k=3, a=problem.a, b=torch.cat([problem.b, torch.ones(1, dtype=f64)]))
    for f in ("loss", "gradient", "hessian"):
        assert torch.allclose(getattr(p0, f)(W), getattr(problem, f)(W), atol=1e-14, rtol=0)


def test_batched_matches_single():
    problem, _ = random_problem(3, 4, 2, seed=6)
    Ws = problem.random_point(seed=1, n=5)
    L, G, H = problem.loss_gradient_hessian(Ws)
    assert L.shape == (5,) and G.shape == (5, 3, 4) and H.shape == (5, 12, 12)
    for i in range(5):
        Li, Gi, Hi = problem.loss_gradient_hessian(Ws[i])
        assert torch.allclose(L[i], Li, atol=1e-15) and torch.allclose(G[i], Gi, atol=1e-15)
        assert torch.allclose(H[i], Hi, atol=1e-15)


def test_permutation_invariance_and_equivariance():
    d = 5
    problem = TeacherStudent.identity(d)
    W = problem.random_point(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(3):
        p, q = rng.permutation(d), rng.permutation(d)
        Wp = apply_permutation(W, p, q)
        assert float(problem.loss(Wp)) == pytest.approx(float(problem.loss(W)), abs=1e-14)
        assert torch.allclose(problem.gradient(Wp), apply_permutation(problem.gradient(W), p, q), atol=1e-14)
        ev, evp = torch.linalg.eigvalsh(problem.hessian(W)), torch.linalg.eigvalsh(problem.hessian(Wp))
        assert torch.allclose(ev, evp, atol=1e-12)
    # a general teacher: only neuron permutations with equal output weights
    problem, W = random_problem(4, 3, 2, seed=2, weights=False)
    rows, cols = problem.symmetry_colors()
    assert rows.tolist() == [0, 0, 0, 0] and cols.tolist() == [0, 1, 2]
    Wp = apply_permutation(W, [2, 0, 3, 1], [0, 1, 2])
    assert float(problem.loss(Wp)) == pytest.approx(float(problem.loss(W)), abs=1e-14)


def test_symmetry_colors_of_coordinate_teachers():
    V = torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, -1.0, 0]], dtype=f64)
    problem = TeacherStudent(V=V, k=3, a=[1.0, 1.0, 2.0])
    rows, cols = problem.symmetry_colors()
    assert rows[0] == rows[1] != rows[2]
    assert cols[0] == cols[1] and len({cols[0], cols[2], cols[3]}) == 3
    W = problem.random_point(seed=0)
    assert float(problem.loss(apply_permutation(W, [1, 0, 2], [1, 0, 2, 3]))) == pytest.approx(float(problem.loss(W)), abs=1e-14)


def test_hessian_at_global_minimum_is_gauss_newton_matrix():
    """At zero loss, d2L = E[J J^T] with J_(i, c) = a_i 1(w_i.x > 0) x_c: Monte Carlo reference."""
    d = 3
    problem = TeacherStudent.identity(d)
    I = torch.eye(d, dtype=f64)
    H = problem.hessian(I)
    g = torch.Generator().manual_seed(7)
    X = torch.randn(200_000, d, generator=g, dtype=f64)
    J = ((X @ I.T) > 0).to(f64).unsqueeze(-1) * X.unsqueeze(1)      # (n, k, d)
    J = J.reshape(X.shape[0], -1)
    prods = J.unsqueeze(-1) * J.unsqueeze(-2)
    mean, se = prods.mean(0), prods.std(0) / math.sqrt(X.shape[0])
    assert ((H - mean).abs() <= 5 * se + 1e-12).all()
    assert float(torch.linalg.eigvalsh(H)[0]) > 0


@pytest.mark.parametrize("d", [4, 6])
def test_global_minimum_spectrum_on_symmetric_subspaces(d):
    """At W = V = I_d the blocks are I/2 (diagonal) and ((pi/2) I + e_i e_j^T + e_j e_i^T) / (2 pi), so
    (H X)_ic = X_ic / 4 + X_ci / (2 pi) for X with zero diagonal and zero column sums: symmetric such X
    are eigenvectors for 1/4 + 1/(2 pi), antisymmetric ones for 1/4 - 1/(2 pi)."""
    problem = TeacherStudent.identity(d)
    H = problem.hessian(torch.eye(d, dtype=f64))
    g = torch.Generator().manual_seed(d)
    A = torch.randn(d, d, generator=g, dtype=f64)
    S = A + A.T
    S.fill_diagonal_(0)
    # zero row sums for a symmetric zero-diagonal matrix: subtract r_i + r_j off the diagonal
    r = S.sum(1) / (d - 2) - S.sum() / (2 * (d - 1) * (d - 2))
    S = S - (r[:, None] + r[None, :])
    S.fill_diagonal_(0)
    assert float(S.sum(0).abs().max()) < 1e-12
    N = A - A.T
    N = N - N.mean(0, keepdim=True) + N.mean(0, keepdim=True).T  # keeps antisymmetry, zero column sums
    N.fill_diagonal_(0)
    assert float(N.sum(0).abs().max()) < 1e-12 and torch.allclose(N, -N.T)
    for X, lam in ((S, 0.25 + 1 / (2 * math.pi)), (N, 0.25 - 1 / (2 * math.pi))):
        HX = (H @ X.reshape(-1)).reshape(d, d)
        assert torch.allclose(HX, lam * X, atol=1e-12)


def test_validation():
    with pytest.raises(InvalidInputError):
        TeacherStudent(V=torch.eye(3, dtype=f64), k=0)
    with pytest.raises(InvalidInputError):
        TeacherStudent(V=torch.eye(3, dtype=f64), k=2, a=[1.0, 2.0, 3.0])
    with pytest.raises(InvalidInputError):
        TeacherStudent(V=torch.ones(3), k=2)
    problem = TeacherStudent.identity(3)
    with pytest.raises(InvalidInputError, match="shape"):
        problem.loss(torch.ones(2, 3, dtype=f64))
    with pytest.raises(InvalidInputError, match="target"):
        find_critical_point(problem, target="maxima")
    with pytest.raises(InvalidInputError):
        find_critical_points(problem, n_starts=-1)


def test_huge_start_counts_are_refused_before_running():
    from relulab.core.errors import ResourceLimitError

    problem = TeacherStudent.identity(3)
    t0 = time.perf_counter()
    with pytest.raises(ResourceLimitError, match="memory_budget") as e:
        find_critical_points(problem, n_starts=10**9, workers=1)
    assert isinstance(e.value, MemoryError) and time.perf_counter() - t0 < 5
    with pytest.raises(ResourceLimitError, match="at most 3"):
        find_critical_points(problem, n_starts=4, workers=1, memory_budget=3.5 * (8 * 2 * 9 + 1024))
    res = find_critical_points(problem, n_starts=3, workers=1, memory_budget=3.5 * (8 * 2 * 9 + 1024))
    assert res.n_starts == 3


@settings(max_examples=20, deadline=None)
@given(k=st.integers(1, 4), d=st.integers(1, 4), dp=st.integers(1, 4), seed=st.integers(0, 10_000),
       parallel=st.booleans())
def test_property_random_instances(k, d, dp, seed, parallel):
    problem, W = random_problem(k, d, dp, seed)
    if parallel and k >= 2:
        W[1] = -1.7 * W[0]          # an antiparallel student pair
        W[0] = 0.8 * problem.V[0]   # parallel to a teacher row
    L, G, H = problem.loss_gradient_hessian(W)
    assert float(L) >= -1e-12      # an expectation of a square
    assert torch.allclose(G, fd_gradient(problem, W), atol=1e-7, rtol=1e-7)
    assert torch.allclose(H, H.T)
    assert torch.allclose(H, fd_hessian(problem, W), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------
# critical points
# ---------------------------------------------------------------------------------------------------

def test_published_spurious_minimum_polishes_in_place():
    problem = TeacherStudent.identity(7)
    M = published_k7_minimum()
    assert float(problem.gradient(M).norm()) < 1e-9          # critical to the 10 published digits
    cp = polish_critical_point(problem, M)
    assert isinstance(cp, CriticalPoint) and cp.converged and cp.grad_norm <= 1e-12
    assert float((cp.W - M).abs().max()) < 1e-9
    assert cp.kind == "spurious minimum" and cp.index == 0 and cp.eig_min > 0.01
    assert cp.loss == pytest.approx(0.0232027149, abs=1e-9)
    iso = landscape.isotropy_group(cp.W)
    assert iso.order == math.factorial(6) and iso.description == "Delta(S_6 x S_1)"


def test_polish_from_perturbed_points_and_saddles():
    problem = TeacherStudent.identity(5)
    g = torch.Generator().manual_seed(1)
    cp = polish_critical_point(problem, torch.eye(5, dtype=f64) + 1e-3 * torch.randn(5, 5, generator=g, dtype=f64))
    assert cp.converged and cp.kind == "global minimum" and cp.grad_norm <= 1e-12
    assert float((cp.W - torch.eye(5, dtype=f64)).abs().max()) < 1e-12
    # all rows equal: the gradient flow stays on the fixed subspace {c 1 1^T} and stops at a saddle
    W0 = 0.3 * torch.ones(4, 4, dtype=f64)
    problem = TeacherStudent.identity(4)
    sad = find_critical_point(problem, W0, target="any")
    assert sad.converged and sad.kind == "saddle" and sad.index > 0 and sad.grad_norm <= 1e-12
    assert landscape.isotropy_group(sad.W).order == math.factorial(4) ** 2
    mini = find_critical_point(problem, W0, target="minima")
    assert mini.converged and mini.escapes >= 1 and mini.index == 0 and mini.loss < sad.loss


def test_family_grouping_of_known_points():
    """Permuted, slightly perturbed copies of the published k = 7 minimum and of the teacher group into
    two families with the right isotropy."""
    problem = TeacherStudent.identity(7)
    M = published_k7_minimum()
    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(0)
    starts = []
    for base, n in ((M, 3), (torch.eye(7, dtype=f64), 2)):
        for _ in range(n):
            Wp = apply_permutation(base, rng.permutation(7), rng.permutation(7))
            starts.append(Wp + 1e-5 * torch.randn(7, 7, generator=g, dtype=f64))
    res = find_critical_points(problem, initial_points=torch.stack(starts), workers=1, chunk_size=4)
    assert res.n_converged == 5 and not res.failures and res.complete
    assert [f.count for f in res.families] == [2, 3]
    glob, spur = res.families
    assert glob.kind == "global minimum" and glob.isotropy_order == math.factorial(7) and glob.isotropy == "Delta S_7"
    assert spur.kind == "spurious minimum" and spur.isotropy == "Delta(S_6 x S_1)"
    assert spur.loss == pytest.approx(0.0232027149, abs=1e-9) and sorted(spur.starts) == [0, 1, 2]
    assert sum(m for _, m in spur.eigenvalue_groups) == 49 and spur.eig_min > 0
    assert float(problem.gradient(spur.W).norm()) <= 1e-12
    d = res.to_dict(summary=True)
    assert d["families"][1]["isotropy"] == "Delta(S_6 x S_1)"
    assert "Delta S_7" in res.table()


def test_random_search_is_consistent_and_reproducible():
    problem = TeacherStudent.identity(4)
    r1 = find_critical_points(problem, n_starts=6, seed=3, workers=1, chunk_size=3)
    r2 = find_critical_points(problem, n_starts=6, seed=3, workers=1, chunk_size=3)
    assert r1.n_converged + len(r1.failures) == 6
    assert sum(f.count for f in r1.families) == r1.n_converged
    assert [(f.loss, f.starts) for f in r1.families] == [(f.loss, f.starts) for f in r2.families]
    for f in r1.families:
        assert float(problem.gradient(f.W).norm()) <= 1e-12
        ev = torch.linalg.eigvalsh(problem.hessian(f.W))
        assert int((ev < -1e-8).sum()) == f.n_negative
        assert float(ev[0]) == pytest.approx(f.eig_min, abs=1e-9)
    assert any(f.kind == "global minimum" and f.isotropy == "Delta S_4" for f in r1.families)


def test_workers_do_not_change_results():
    problem = TeacherStudent.identity(3)
    r1 = find_critical_points(problem, n_starts=4, seed=1, workers=1, chunk_size=2)
    r2 = find_critical_points(problem, n_starts=4, seed=1, workers=2, chunk_size=2)
    assert r2.workers == 2
    assert [(f.loss, f.starts, f.W.tolist()) for f in r1.families] == [(f.loss, f.starts, f.W.tolist()) for f in r2.families]


def test_time_limit_reports_incomplete():
    problem = TeacherStudent.identity(4)
    res = find_critical_points(problem, n_starts=4, workers=1, chunk_size=1, time_limit=1e-9)
    assert not res.complete and len(res.failures) == 4


def test_overparameterized_minima_are_merged_as_non_isolated():
    """k = d + 1: the zero-loss critical points form continua (Hessian eigenvalues ~ 0); they are merged
    by loss and index and flagged non-isolated."""
    problem = TeacherStudent.identity(3, k=4)
    res = find_critical_points(problem, n_starts=4, seed=0, workers=1, chunk_size=4)
    assert res.n_converged == 4
    (fam,) = res.families
    assert fam.kind == "global minimum" and not fam.isolated and fam.count == 4 and fam.n_zero > 0
    assert "non-isolated" in res.table()
    split = find_critical_points(problem, n_starts=4, seed=0, workers=1, chunk_size=4, merge_degenerate=False)
    assert all(f.isolated for f in split.families) and sum(f.count for f in split.families) == 4


def test_results_serialize_and_plot():
    import json

    import matplotlib

    matplotlib.use("Agg")
    problem = TeacherStudent.identity(3)
    res = find_critical_points(problem, n_starts=2, workers=1)
    json.dumps(res.to_dict())
    json.dumps(res.to_dict(summary=True))
    json.dumps(problem.to_dict())
    ax = res.plot()
    assert ax.get_xlabel() == "loss"
    cp = find_critical_point(problem, seed=1)
    assert json.loads(cp.to_json(summary=True))["kind"] == "global minimum"
