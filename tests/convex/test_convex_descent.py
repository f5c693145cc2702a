"""Random-start gradient descent beside the convex optimum: the batched hand-written gradient against
autograd, and the checks of the comparison (no run below the certified bound)."""

import numpy as np
import pytest
import torch

pytest.importorskip("cvxpy")

from relulab.convex import compare_gd, gd_runs  # noqa: E402
from relulab.convex.descent import _plain_grads  # noqa: E402
from relulab.core.errors import InvalidInputError  # noqa: E402


@pytest.mark.parametrize("free", [False, True])
def test_batched_gradient_matches_autograd(free):
    # free: unpenalized bias column and the output bias at its optimum (objective of the centred residual)
    g = torch.Generator().manual_seed(0)
    A = torch.randn(7, 3, generator=g, dtype=torch.float64)
    Y = torch.randn(7, generator=g, dtype=torch.float64)
    U = torch.randn(4, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    pen = torch.tensor([1.0, 1.0, 0.0 if free else 1.0], dtype=torch.float64)
    H = A @ U.transpose(1, 2)
    act = torch.relu(H)
    r = (act @ a[:, :, None])[:, :, 0] - Y
    if free:
        c = -r.mean(1, keepdim=True)    # the optimal output bias, differentiated through
        r = r + c
    obj = 0.5 * 0.3 * r.square().sum(1) + 0.5 * 0.7 * ((U * pen).square().sum((1, 2)) + a.square().sum(1))
    gU, ga = torch.autograd.grad(obj.sum(), (U, a))
    mU, ma = _plain_grads(A, U.detach(), a.detach(), H.detach(), act.detach(), r.detach(), 0.3, 0.7, pen)
    assert torch.allclose(gU, mU) and torch.allclose(ga, ma)


@pytest.mark.parametrize("bn", [False, True])
def test_gd_never_beats_the_certified_bound_and_reaches_it_on_an_easy_problem(bn):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5, 1))
    y = rng.normal(size=5)
    c = compare_gd(X, y, 0.2, bn=bn, runs=16, steps=1000, width=8, rtol=1e-3, seed=0,
                   lr=0.05 if bn else None)
    assert c.below_bound == 0
    assert (c.gd.objectives >= c.lower_bound - 1e-9).all()
    assert c.reached >= 1 and c.best_gd == pytest.approx(c.optimum, rel=1e-3)
    assert c.reached + c.stalled == c.runs == 16
    assert c.to_dict(summary=True)["runs"] == 16 and "objectives" in c.to_dict()["gd"]


def test_gd_bad_input():
    X, y = np.zeros((3, 1)), np.zeros(3)
    for kw in ({"width": 0}, {"width": 2, "runs": 0}, {"width": 2, "lr": -1.0}, {"width": 2, "init_scale": 0}):
        with pytest.raises(InvalidInputError):
            gd_runs(X, y, 0.1, **kw)
    with pytest.raises(InvalidInputError, match="beta"):
        gd_runs(X, y, 0.0, width=2)


def test_batch_normalized_gradient_matches_autograd():
    from relulab.convex.descent import _bn_grads

    g = torch.Generator().manual_seed(1)
    n = 7
    A = torch.randn(n, 3, generator=g, dtype=torch.float64)
    Y = torch.randn(n, generator=g, dtype=torch.float64)
    W, gamma, alpha, a = (torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
                          for shape in ((4, 5, 3), (4, 5), (4, 5), (4, 5)))
    Zc = A @ W.transpose(1, 2)
    Zc = Zc - Zc.mean(1, keepdim=True)
    N = torch.linalg.vector_norm(Zc, dim=1, keepdim=True)
    Zh = Zc / N
    H = gamma[:, None, :] * Zh + alpha[:, None, :] / n ** 0.5
    act = torch.relu(H)
    r = (act @ a[:, :, None])[:, :, 0] - Y
    obj = 0.5 * 0.3 * r.square().sum(1) + 0.5 * 0.7 * (gamma.square() + alpha.square() + a.square()).sum(1)
    auto = torch.autograd.grad(obj.sum(), (W, gamma, alpha, a))
    mine = _bn_grads(A, W.detach(), gamma.detach(), alpha.detach(), a.detach(), Zh.detach(), N.detach(),
                     H.detach(), act.detach(), r.detach(), 0.3, 0.7)
    for x, y in zip(auto, mine):
        assert torch.allclose(x, y, atol=1e-12)


def test_diverging_runs_end_infinite_and_leave_the_others_alone():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(6, 2)), rng.normal(size=6)
    calm = gd_runs(X, y, 0.1, width=4, runs=6, steps=200, seed=3)
    # a step far beyond the curvature sends runs to infinity: they are dropped and end at inf (never NaN)
    wild = gd_runs(X, y, 0.1, width=4, runs=6, steps=200, seed=3, lr=calm.lr * 40)
    assert np.isfinite(calm.objectives).all()
    assert np.isinf(wild.objectives).any()
    assert (np.isinf(wild.history[-1]) == np.isinf(wild.objectives)).all()
    assert not np.isnan(wild.history).any()
