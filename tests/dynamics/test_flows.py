"""The flow engine against closed forms: matrix exponentials on quadratics, mirror flow with the
quadratic potential is gradient flow, energy decay, gradient descent tracking the flow."""

import numpy as np
import pytest
import torch
from scipy.linalg import expm

from relulab.core.errors import InvalidInputError, RelulabError
from relulab.dynamics import (Potential, flow, gradient_descent, mse_objective, natural_gradient, potential,
                              univariate_net)


class Vector(torch.nn.Module):
    def __init__(self, theta):
        super().__init__()
        self.theta = torch.nn.Parameter(theta.clone())


def _quadratic(seed, p=5):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(p, p, generator=g, dtype=torch.float64)
    H = A @ A.T + 0.5 * torch.eye(p, dtype=torch.float64)
    b = torch.randn(p, generator=g, dtype=torch.float64)
    theta0 = torch.randn(p, generator=g, dtype=torch.float64)
    return H, b, theta0, (lambda m: 0.5 * m.theta @ H @ m.theta - b @ m.theta)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["RK45", "DOP853"])
def test_gradient_flow_matches_matrix_exponential(seed, method):
    H, b, theta0, obj = _quadratic(seed)
    times = [0.1, 0.5, 2.0]
    tr = flow(Vector(theta0), obj, times, method=method, rtol=1e-11, atol=1e-13)
    star = torch.linalg.solve(H, b)
    assert tr.complete and tr.stopped_by is None
    for t, p in zip(tr.times[1:], tr.params[1:]):
        exact = star + torch.from_numpy(expm(-H.numpy() * float(t))) @ (theta0 - star)
        assert float((p - exact).abs().max()) < 1e-8


def test_mirror_flow_with_quadratic_potential_is_gradient_flow():
    _, _, theta0, obj = _quadratic(3)
    a = flow(Vector(theta0), obj, [0.3, 1.0], rtol=1e-11, atol=1e-13)
    b = flow(Vector(theta0), obj, [0.3, 1.0], potential="quadratic", rtol=1e-11, atol=1e-13)
    assert torch.allclose(a.params, b.params, atol=1e-10)


def test_mirror_flow_on_quadratic_loss_matches_its_own_ode():
    # phi = x^4 + x^2: theta' = -grad L / (12 (theta - c)^2 + 2); checked against a dense solve_ivp
    from scipy.integrate import solve_ivp

    H, b, theta0, obj = _quadratic(4)
    tr = flow(Vector(theta0), obj, [1.0], potential="x^4+x^2", rtol=1e-11, atol=1e-13)
    Hn, bn, c = H.numpy(), b.numpy(), theta0.numpy()
    ref = solve_ivp(lambda t, y: -(Hn @ y - bn) / (12 * (y - c) ** 2 + 2), (0, 1), c, method="Radau",
                    rtol=1e-12, atol=1e-14).y[:, -1]
    assert np.abs(tr.params[-1].numpy() - ref).max() < 1e-7


def test_scaled_potential_moves_less():
    _, _, theta0, obj = _quadratic(5)
    plain = flow(Vector(theta0), obj, [1.0], potential="x^4+x^2")
    scaled = flow(Vector(theta0), obj, [1.0], potential="x^4+x^2", potential_scale=10.0)
    assert float(scaled.movement[-1]) < float(plain.movement[-1])


def test_loss_never_increases_on_a_relu_network():
    x = torch.linspace(-1, 1, 7, dtype=torch.float64)[:, None]
    y = torch.sin(3 * x)
    net = univariate_net(20, skip=True, seed=1)
    # the evaluation budget bounds the run if the flow reaches a kink it slides along
    tr = flow(net, mse_objective(x, y), np.linspace(0.02, 0.5, 12), rtol=1e-9, atol=1e-12, max_evaluations=5000)
    assert len(tr.loss) >= 3
    assert (torch.diff(tr.loss) <= 1e-12).all()


def test_gradient_descent_tracks_the_flow():
    _, _, theta0, obj = _quadratic(6)
    gf = flow(Vector(theta0), obj, [1.0], rtol=1e-11, atol=1e-13)
    errs = []
    for lr in (1e-2, 1e-3):
        gd = gradient_descent(Vector(theta0), obj, lr=lr, steps=int(round(1.0 / lr)), record_every=10**6)
        assert float(gd.times[-1]) == pytest.approx(1.0)
        errs.append(float((gd.params[-1] - gf.params[-1]).abs().max()))
    assert errs[1] < errs[0] / 5  # first order in the step


def test_mirror_descent_tracks_mirror_flow():
    _, _, theta0, obj = _quadratic(7)
    mf = flow(Vector(theta0), obj, [0.5], potential="|x|^3+x^2", rtol=1e-11, atol=1e-13)
    md = gradient_descent(Vector(theta0), obj, lr=1e-4, steps=5000, record_every=5000, potential="|x|^3+x^2")
    assert float((md.params[-1] - mf.params[-1]).abs().max()) < 1e-3


@pytest.mark.parametrize("n,p", [(12, 4), (3, 6)])
def test_natural_gradient_flow_matches_matrix_exponential(n, p):
    # f = X theta on a squared loss: the Fisher / Gauss-Newton matrix is H = X^T X / n, the gradient
    # H theta - X^T y / n, and the damped natural-gradient flow is linear with matrix
    # (H + lam I)^{-1} H: theta(t) = theta* + expm(-t (H + lam I)^{-1} H) (theta0 - theta*) on the
    # gradient's row space (theta* any least-squares solution)
    g = torch.Generator().manual_seed(n)
    X = torch.randn(n, p, generator=g, dtype=torch.float64)
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    model = torch.nn.Linear(p, 1, bias=False).double()
    theta0 = model.weight.detach().reshape(-1).clone()
    damping = 1e-3
    tr = flow(model, mse_objective(X, y), [0.5, 2.0], preconditioner=natural_gradient(model, X, damping=damping),
              rtol=1e-11, atol=1e-13)
    H = (X.T @ X / n).numpy()
    lam = damping * np.trace(X.numpy() @ X.numpy().T / n) / n
    star = np.linalg.lstsq(X.numpy(), y.numpy()[:, 0], rcond=None)[0]
    M = np.linalg.solve(H + lam * np.eye(p), H)
    for t, theta in zip(tr.times[1:], tr.params[1:]):
        ref = star + expm(-float(t) * M) @ (theta0.numpy() - star)
        assert np.abs(theta.numpy() - ref).max() < 1e-8
    assert bool((tr.loss[1:] <= tr.loss[:-1] + 1e-15).all())
    with pytest.raises(InvalidInputError, match="damping"):
        natural_gradient(model, X, damping=0.0)


def test_budgets_return_partial_trajectories():
    _, _, theta0, obj = _quadratic(8)
    tr = flow(Vector(theta0), obj, [1.0, 2.0, 3.0], max_evaluations=30)
    assert not tr.complete and tr.stopped_by == "max_evaluations" and len(tr.times) < 4
    tr = flow(Vector(theta0), obj, [1.0, 2.0, 3.0], grad_tol=1e300)
    assert tr.complete and tr.stopped_by == "converged" and len(tr.times) == 1


def test_bad_input_is_refused():
    _, _, theta0, obj = _quadratic(9)
    with pytest.raises(InvalidInputError, match="times"):
        flow(Vector(theta0), obj, [1.0, 0.5])
    with pytest.raises(InvalidInputError, match="lr"):
        gradient_descent(Vector(theta0), obj, lr=0.0, steps=3)
    with pytest.raises(InvalidInputError, match="strictly convex"):
        potential(Potential("concave", lambda x: -x * x, lambda x: -2 * torch.ones_like(x)))
    with pytest.raises(InvalidInputError, match="potential must be one of"):
        potential("x^3")
    with pytest.raises(InvalidInputError, match="width"):
        univariate_net(0)
    with pytest.raises(InvalidInputError, match="finite"):
        mse_objective(torch.tensor([[float("nan")]]), torch.tensor([[0.0]]))
    with pytest.raises(RelulabError, match="non-finite"):
        gradient_descent(Vector(theta0), obj, lr=1e3, steps=200)
