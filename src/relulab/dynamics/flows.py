r"""One flow engine for the training dynamics of any torch model.

For parameters theta in R^P and a loss L(theta) the engine integrates

* **gradient flow**        d theta / dt = -grad L(theta);
* **mirror flow**          d grad Phi(theta) / dt = -grad L(theta) for a separable, strictly convex
  potential Phi(theta) = sum_k phi_k(theta_k), i.e. d theta / dt = -grad L(theta) / Phi''(theta)
  componentwise (Phi'' > 0 is the diagonal of the potential's Hessian);
* **preconditioned flows** d theta / dt = -P(theta)^{-1} grad L(theta) for a user preconditioner
  (the callable receives theta and grad L and returns the direction P^{-1} grad L), among them the
  **natural-gradient flow** of a squared loss, P = J^T J / N + lambda I the Fisher information
  (= Gauss-Newton matrix) of the Gaussian model, J the Jacobian of the N outputs
  (:func:`natural_gradient`);

with a maintained adaptive solver (:func:`scipy.integrate.solve_ivp`), and, for comparison,
**gradient descent** theta_{k+1} = theta_k - eta grad L(theta_k) (optionally on mini-batches: SGD).

The flow is integrated piece by piece between the requested record times, so a trajectory holds
the parameters, the loss, the gradient norm and the laziness measure
|theta(t) - theta(0)| / |theta(0)| at each of them, and time, evaluation and convergence budgets are
checked between pieces (a stopped run returns what it has with ``complete=False``). Mirror flow with
Phi(theta) = |theta|^2 / 2 is gradient flow; along every flow the loss never increases
(dL/dt = -grad L . P^{-1} grad L <= 0 for positive definite P).

References: Liang and Montufar, *Implicit bias of mirror flow for shallow neural networks in
univariate regression* (ICLR 2025), for mirror flows of neural networks and scaled potentials;
Amari, *Natural gradient works efficiently in learning* (1998).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.core.threads import threads_for
from relulab.results import Result

__all__ = ["Potential", "potential", "FlowTrajectory", "flow", "gradient_descent", "mse_objective",
           "natural_gradient"]


# ============================================================================ potentials
@dataclass(frozen=True)
class Potential:
    r"""A separable potential Phi(theta) = sum_k phi(omega (theta_k - c_k)) / omega^2 around a centre
    ``c`` (the initial parameters by default), with ``phi`` strictly convex.

    ``scale`` is omega: omega = 1 is the unscaled potential; a large omega (for example the network's
    width) gives a *scaled* potential whose Hessian phi''(omega (theta - c)) changes at the scale of
    1/omega, the scale on which the parameters of wide networks move. The flow only needs the
    diagonal Hessian Phi''(theta)_k = phi''(omega (theta_k - c_k)). With c the initialization, scale 1
    is Liang and Montufar's potential sum_k phi(theta_k - hat theta_k) and scale n (the width) their
    scaled potential n^-2 sum_k phi(n (theta_k - hat theta_k)) (see :mod:`relulab.dynamics.mirror`).
    ``dphi``: phi' in closed form (optional; autograd of ``phi`` otherwise), used by mirror descent.
    """

    name: str
    phi: Callable[[torch.Tensor], torch.Tensor]
    d2phi: Callable[[torch.Tensor], torch.Tensor]
    scale: float = 1.0
    dphi: Callable[[torch.Tensor], torch.Tensor] | None = None

    def derivative(self, u: torch.Tensor) -> torch.Tensor:
        """phi'(u): the closed form when given, autograd of ``phi`` otherwise."""
        if self.dphi is not None:
            return self.dphi(u)
        u = u.detach().requires_grad_(True)
        (gr,) = torch.autograd.grad(self.phi(u).sum(), u)
        return gr.detach()

    def value(self, theta: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        w = self.scale
        return self.phi(w * (theta - centre)).sum() / w**2

    def hessian_diag(self, theta: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        return self.d2phi(self.scale * (theta - centre))


_POTENTIALS = {
    # (phi, phi'', phi'); phi(x) = x^2 / 2: mirror flow is gradient flow
    "quadratic": (lambda x: 0.5 * x * x, lambda x: torch.ones_like(x), lambda x: x),
    # the potentials of Liang and Montufar's experiments
    "x^2": (lambda x: x * x, lambda x: 2.0 * torch.ones_like(x), lambda x: 2.0 * x),
    "|x|^3+x^2": (lambda x: x.abs() ** 3 + x * x, lambda x: 6.0 * x.abs() + 2.0, lambda x: 3.0 * x * x.abs() + 2.0 * x),
    "x^4+x^2": (lambda x: x**4 + x * x, lambda x: 12.0 * x * x + 2.0, lambda x: 4.0 * x**3 + 2.0 * x),
    # hyperbolic entropy-like potential (smooth, strictly convex, Hessian 1 / sqrt(1 + x^2))
    "cosh-entropy": (lambda x: x * torch.asinh(x) - torch.sqrt(1 + x * x), lambda x: 1.0 / torch.sqrt(1 + x * x),
                     torch.asinh),
}


def potential(name: str | Potential, scale: float = 1.0) -> Potential:
    """A built-in potential by name (``quadratic``, ``x^2``, ``|x|^3+x^2``, ``x^4+x^2``,
    ``cosh-entropy``), optionally scaled (see :class:`Potential`)."""
    if isinstance(name, Potential):
        pot = name
    else:
        key = str(name).replace(" ", "")
        if key not in _POTENTIALS:
            raise InvalidInputError(f"potential must be one of {sorted(_POTENTIALS)} or a Potential, got {name!r}")
        phi, d2, d1 = _POTENTIALS[key]
        pot = Potential(key, phi, d2, 1.0, d1)
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise InvalidInputError(f"scale must be a finite number > 0, got {scale!r}")
    if scale != 1.0:  # a given Potential keeps its own scale unless another one is asked for
        pot = Potential(pot.name, pot.phi, pot.d2phi, float(scale), pot.dphi)
    _check_convex(pot)
    return pot


# the engines' keyword argument ``potential`` shadows the function inside them
_potential = potential


def _check_convex(pot: Potential) -> None:
    # strict convexity on a wide grid: a potential whose Hessian vanishes or turns negative makes the
    # mirror map non-invertible and the flow undefined
    x = torch.cat([torch.linspace(-1e3, 1e3, 20001, dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)])
    h = pot.d2phi(x)
    if h.shape != x.shape or not bool(torch.isfinite(h).all()) or not bool((h > 0).all()):
        raise InvalidInputError(f"potential {pot.name!r} must be strictly convex: its second derivative must be "
                                "finite and > 0 everywhere")


# ============================================================================ objectives
def mse_objective(x, y) -> Callable[[torch.nn.Module], torch.Tensor]:
    """The loss L = 1/(2n) sum_i |f(x_i) - y_i|^2 on fixed data, as a callable of the model."""
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if x.shape[0] == 0:
        raise InvalidInputError("x must hold at least one data point")
    if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
        raise InvalidInputError("x and y must be finite")
    n = x.shape[0]

    def objective(model):
        out = model(x.to(next(model.parameters()).dtype))
        return 0.5 * ((out.reshape(n, -1) - y.to(out.dtype).reshape(n, -1)) ** 2).sum() / n

    return objective


def natural_gradient(model: torch.nn.Module, x, *, damping: float = 1e-8) -> Callable:
    r"""The natural-gradient preconditioner of a squared loss on inputs ``x``, for :func:`flow`'s
    ``preconditioner``: the direction (J^T J / N + lambda I)^{-1} g, with J the Jacobian (R x P) of
    the model's R = N x outputs values at the current parameters with respect to its trainable
    parameters (in :func:`flow`'s order) and lambda = ``damping`` times the mean eigenvalue of
    J J^T / N. Computed in the R x R dual form (Woodbury):
    (A^T A + lambda I)^{-1} g = (g - A^T (A A^T + lambda I)^{-1} A g) / lambda, A = J / sqrt(N),
    so the cost is one Jacobian and one R x R solve per call (for models with few data points)."""
    from torch.func import functional_call, jacrev

    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not (isinstance(damping, (int, float)) and math.isfinite(damping) and damping > 0):
        raise InvalidInputError(f"damping must be a finite number > 0, got {damping!r}")
    x = torch.as_tensor(x)
    if x.shape[0] == 0 or not bool(torch.isfinite(x).all()):
        raise InvalidInputError("x must hold at least one finite data point")
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    N = x.shape[0]

    def direction(theta, g):
        params = {k: p.detach() for k, p in model.named_parameters()}
        train = {k: params[k] for k in names}
        xs = x.to(g.dtype)

        def outputs(tp):
            return functional_call(model, {**params, **tp}, (xs,)).reshape(-1)

        jac = jacrev(outputs)(train)
        A = torch.cat([jac[k].reshape(jac[k].shape[0], -1) for k in names], dim=1) / math.sqrt(N)
        G = A @ A.T
        lam = damping * float(torch.diagonal(G).mean().clamp_min(1e-300))
        s = torch.linalg.solve(G + lam * torch.eye(G.shape[0], dtype=G.dtype, device=G.device), A @ g)
        return (g - A.T @ s) / lam

    return direction


# ============================================================================ result
@dataclass
class FlowTrajectory(Result):
    """A recorded trajectory: ``times`` (T,), ``params`` (T, P) the flattened parameters,
    ``loss`` (T,), ``grad_norm`` (T,), ``movement`` (T,) = |theta(t) - theta(0)| / |theta(0)| (the
    laziness measure: small when the flow stays near its initialization), ``outputs`` (T, G, out) the
    model on ``grid`` when one was given. ``complete``: every requested time was reached;
    ``stopped_by``: None, ``"converged"`` (loss or gradient tolerance met before the last time; the
    remaining times are not recorded), ``"time_limit"`` or ``"max_evaluations"``; ``evaluations``:
    loss-and-gradient evaluations; ``method``: the solver (or ``"gd"``)."""

    kind: str
    method: str
    times: torch.Tensor
    params: torch.Tensor
    loss: torch.Tensor
    grad_norm: torch.Tensor
    movement: torch.Tensor
    complete: bool
    stopped_by: str | None
    evaluations: int
    seconds: float
    grid: torch.Tensor | None = None
    outputs: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    _summary_fields = ("kind", "method", "complete", "stopped_by", "evaluations", "seconds")

    def to_dict(self, summary: bool = False) -> dict:
        d = super().to_dict(summary=summary)
        if summary:
            d["final_loss"] = float(self.loss[-1]) if len(self.loss) else None
            d["final_time"] = float(self.times[-1]) if len(self.times) else None
        return d

    def plot(self, ax=None):
        """Loss against time (log-log where positive), with the laziness measure on a twin axis."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        t = self.times.numpy()
        pos = t > 0
        ax.plot(t[pos], self.loss.numpy()[pos], label="loss")
        ax.set_xscale("log")
        if bool((self.loss[pos] > 0).all()):
            ax.set_yscale("log")
        ax.set_xlabel("time t" if self.kind != "gd" else "step")
        ax.set_ylabel("loss")
        ax.set_title(f"{self.kind} ({self.method})")
        ax.legend(loc="lower left", fontsize=8)
        return ax


# ============================================================================ the engine
class _Model:
    """The model's parameters as one float vector; loss and gradient at any vector."""

    def __init__(self, model: torch.nn.Module, objective):
        if not isinstance(model, torch.nn.Module):
            raise InvalidInputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise InvalidInputError("model has no trainable parameters")
        if not callable(objective):
            raise InvalidInputError("objective must be a callable of the model returning a scalar loss")
        self.objective = objective
        self.dtype = self.params[0].dtype
        self.device = self.params[0].device
        self.evaluations = 0

    def get(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params]).clone()

    def set(self, theta: torch.Tensor) -> None:
        i = 0
        with torch.no_grad():
            for p in self.params:
                p.copy_(theta[i:i + p.numel()].reshape(p.shape))
                i += p.numel()

    def loss_grads(self):
        """Loss and per-parameter gradients at the model's current parameters."""
        for p in self.params:
            p.grad = None
        loss = self.objective(self.model)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise InvalidInputError("objective must return a scalar tensor")
        grads = [gr.detach() if gr is not None else torch.zeros_like(p)
                 for gr, p in zip(torch.autograd.grad(loss, self.params, allow_unused=True), self.params)]
        self.evaluations += 1
        value = float(loss.detach())
        # a sum is non-finite when any entry is (or, rarely, when finite entries overflow it: then
        # the entries themselves are checked); one pass and no mask, unlike isfinite(g).all()
        if not (math.isfinite(value) and all(math.isfinite(float(gr.sum())) or bool(torch.isfinite(gr).all())
                                             for gr in grads)):
            raise InvalidInputError("the loss or its gradient became non-finite along the trajectory "
                                    "(a step size or time too large, or non-finite data)")
        return value, grads

    def loss_grad(self, theta: torch.Tensor):
        self.set(theta)
        value, grads = self.loss_grads()
        return value, torch.cat([gr.reshape(-1) for gr in grads])

    def outputs(self, grid):
        if grid is None:
            return None
        with torch.no_grad():
            return self.model(grid.to(self.dtype)).detach().reshape(grid.shape[0], -1).clone()


def _work(m: _Model) -> int:
    # elements touched by a typical operation of a step: the parameter updates and gradients
    return sum(p.numel() for p in m.params)


def _times(times) -> np.ndarray:
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if t.size == 0 or not np.isfinite(t).all() or (t < 0).any() or (np.diff(t) <= 0).any():
        raise InvalidInputError("times must be a non-empty increasing sequence of finite numbers >= 0")
    return t if t[0] == 0 else np.concatenate([[0.0], t])


def flow(model: torch.nn.Module, objective, times, *, potential: str | Potential | None = None,
         potential_scale: float = 1.0, preconditioner=None, method: str = "RK45", rtol: float = 1e-8,
         atol: float = 1e-10, loss_tol: float | None = None, grad_tol: float | None = None, grid=None,
         max_evaluations: int = 10**6, time_limit: float | None = None, memory_budget: int = 2**30,
         progress=None) -> FlowTrajectory:
    r"""Integrate gradient flow (default), mirror flow (``potential``) or a preconditioned flow
    (``preconditioner(theta, grad) -> direction``) of ``objective(model)`` from the model's current
    parameters, recording at ``times``. The model is left at the last recorded parameters.

    ``method`` is any :func:`scipy.integrate.solve_ivp` method (``RK45``, ``DOP853``, ``LSODA``,
    ``Radau``, ``BDF``; the implicit ones estimate the Jacobian by differences and suit only small
    models). The flow stops early when the loss falls to ``loss_tol`` or the gradient norm to
    ``grad_tol`` (checked at record times), after ``max_evaluations`` loss-and-gradient evaluations or
    ``time_limit`` seconds; a stopped run returns the times it reached with ``complete=False``.

    Loss functions of ReLU networks are only piecewise smooth: where the flow slides along a kink
    (a unit's knot pinned at a data point, as in the adaptive regime) an adaptive explicit solver
    takes ever smaller steps; the evaluation and time budgets then stop it with ``complete=False``,
    and :func:`gradient_descent` with a small step is the practical tool for such long horizons.
    """
    from scipy.integrate import solve_ivp

    if potential is not None and preconditioner is not None:
        raise InvalidInputError("give either potential (mirror flow) or preconditioner, not both")
    for name, v in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InvalidInputError(f"{name} must be a finite number > 0, got {v!r}")
    m = _Model(model, objective)
    t = _times(times)
    P = sum(p.numel() for p in m.params)
    need = (len(t) * P + 16 * P) * 8
    if need > memory_budget:
        raise ResourceLimitError(f"recording {len(t)} times of {P} parameters needs about {need / 2**30:.2g} GiB, "
                                 f"over memory_budget = {memory_budget / 2**30:.2g} GiB: record fewer times")
    theta0 = m.get()
    pot = None if potential is None else _potential(potential, potential_scale)
    if pot is None and preconditioner is None:
        kind = "gradient flow"
    elif pot is not None:
        kind = f"mirror flow ({pot.name}, scale {pot.scale:g})"
    else:
        kind = "preconditioned flow"
    grid_t = None if grid is None else torch.as_tensor(grid, dtype=m.dtype, device=m.device)

    def rhs(_t, y):
        # checked inside the solver too: at a kink the flow can slide along a non-differentiable set
        # (knots of ReLU units pinned at data points), where explicit adaptive steps shrink and stall
        if m.evaluations >= max_evaluations:
            raise _Stop("max_evaluations")
        if time_limit is not None and time.perf_counter() - start > time_limit:
            raise _Stop("time_limit")
        theta = torch.from_numpy(y).to(m.dtype).to(m.device)
        _, g = m.loss_grad(theta)
        if pot is not None:
            d = g / pot.hessian_diag(theta, theta0)
        elif preconditioner is not None:
            d = torch.as_tensor(preconditioner(theta, g), dtype=m.dtype, device=m.device).reshape(-1)
            if d.numel() != P:
                raise InvalidInputError(f"preconditioner must return a direction of {P} entries")
        else:
            d = g
        return (-d).cpu().numpy().astype(np.float64)

    start = time.perf_counter()
    rec_t, rec_p, rec_l, rec_g, rec_o = [], [], [], [], []
    stopped = None

    def record(tt, theta):
        loss, g = m.loss_grad(theta)
        rec_t.append(tt)
        rec_p.append(theta.clone())
        rec_l.append(loss)
        rec_g.append(float(g.norm()))
        rec_o.append(m.outputs(grid_t))
        return loss, float(g.norm())

    with threads_for(_work(m)):
        y = theta0.cpu().numpy().astype(np.float64)
        loss, gn = record(float(t[0]), theta0)
        for i in range(1, len(t)):
            if (loss_tol is not None and loss <= loss_tol) or (grad_tol is not None and gn <= grad_tol):
                stopped = "converged"
                break
            if time_limit is not None and time.perf_counter() - start > time_limit:
                stopped = "time_limit"
                break
            try:
                sol = solve_ivp(rhs, (t[i - 1], t[i]), y, method=method, rtol=rtol, atol=atol)
            except _Stop as s:
                stopped = s.reason
                break
            if not sol.success:
                raise InvalidInputError(f"the ODE solver failed between t = {t[i - 1]:g} and {t[i]:g}: {sol.message}")
            y = sol.y[:, -1]
            loss, gn = record(float(t[i]), torch.from_numpy(y).to(m.dtype).to(m.device))
            if progress is not None:
                progress(i, len(t) - 1, loss=loss)
    m.set(rec_p[-1])
    return _trajectory(kind, method, m, rec_t, rec_p, rec_l, rec_g, rec_o, grid_t, theta0, len(rec_t) == len(t),
                       stopped, start)


class _Stop(Exception):
    def __init__(self, reason):
        self.reason = reason


def _trajectory(kind, method, m, rec_t, rec_p, rec_l, rec_g, rec_o, grid, theta0, complete, stopped, start):
    params = torch.stack(rec_p)
    norm0 = float(theta0.norm())
    movement = (params - theta0).norm(dim=1) / (norm0 if norm0 > 0 else 1.0)
    outs = None if grid is None else torch.stack(rec_o)
    return FlowTrajectory(kind=kind, method=method, times=torch.tensor(rec_t, dtype=torch.float64),
                          params=params.cpu(), loss=torch.tensor(rec_l, dtype=torch.float64),
                          grad_norm=torch.tensor(rec_g, dtype=torch.float64), movement=movement.cpu(),
                          complete=complete or stopped == "converged", stopped_by=stopped, evaluations=m.evaluations,
                          seconds=time.perf_counter() - start, grid=None if grid is None else grid.cpu(),
                          outputs=None if outs is None else outs.cpu())


def gradient_descent(model: torch.nn.Module, objective, lr: float, steps: int, *, record_every: int = 1,
                     potential: str | Potential | None = None, potential_scale: float = 1.0,
                     loss_tol: float | None = None, grid=None, time_limit: float | None = None,
                     memory_budget: int = 2**30, progress=None) -> FlowTrajectory:
    r"""Gradient descent theta_{k+1} = theta_k - lr grad L(theta_k) (mirror descent
    grad Phi(theta_{k+1}) = grad Phi(theta_k) - lr grad L(theta_k) solved by Newton's method on the
    separable mirror map when ``potential`` is given), recording every ``record_every`` steps.
    ``objective`` may draw a new mini-batch at each call (SGD). ``times`` in the result are steps
    times ``lr`` so that trajectories compare with :func:`flow` at equal time."""
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InvalidInputError(f"lr must be a finite number > 0, got {lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InvalidInputError(f"steps must be an integer >= 0, got {steps!r}")
    if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
        raise InvalidInputError(f"record_every must be an integer >= 1, got {record_every!r}")
    m = _Model(model, objective)
    P = sum(p.numel() for p in m.params)
    need = (steps // record_every + 2) * P * 8
    if need > memory_budget:
        raise ResourceLimitError(f"recording {steps // record_every + 1} states of {P} parameters needs about "
                                 f"{need / 2**30:.2g} GiB, over memory_budget = {memory_budget / 2**30:.2g} GiB: "
                                 "raise record_every")
    pot = None if potential is None else _potential(potential, potential_scale)
    grid_t = None if grid is None else torch.as_tensor(grid, dtype=m.dtype, device=m.device)
    theta0 = m.get()
    theta = theta0.clone()
    start = time.perf_counter()
    rec_t, rec_p, rec_l, rec_g, rec_o = [], [], [], [], []
    stopped = None
    # plain GD updates the parameters in place, as a hand-written loop does; the flat vector is
    # built only for the recorded states (mirror steps need it at every step)
    with torch.no_grad(), threads_for(_work(m)):
        for k in range(steps + 1):
            with torch.enable_grad():
                if pot is None:
                    loss, grads = m.loss_grads()
                else:
                    loss, g = m.loss_grad(theta)
            converged = loss_tol is not None and loss <= loss_tol
            last = k == steps or converged or (time_limit is not None and time.perf_counter() - start > time_limit)
            if k % record_every == 0 or last:
                rec_t.append(k * lr)
                rec_p.append(m.get() if pot is None else theta.clone())
                rec_l.append(loss)
                rec_g.append(math.sqrt(sum(float(gr.square().sum()) for gr in grads)) if pot is None
                             else float(g.norm()))
                rec_o.append(m.outputs(grid_t))
                if progress is not None:
                    progress(k, steps, loss=loss)
            if last:
                if k < steps:
                    stopped = "converged" if converged else "time_limit"
                break
            if pot is None:
                for p, gr in zip(m.params, grads):
                    p.sub_(gr, alpha=lr)
            else:
                theta = _mirror_step(pot, theta, theta0, g, lr)
    if pot is not None:
        m.set(theta)
    return _trajectory("gd" if pot is None else f"mirror descent ({pot.name})", "gd", m, rec_t, rec_p, rec_l, rec_g,
                       rec_o, grid_t, theta0, stopped is None, stopped, start)


def _mirror_step(pot: Potential, theta, centre, g, lr):
    # grad Phi(theta') = grad Phi(theta) - lr g, i.e. phi'(u') = phi'(u) - lr w g with u = w (theta - c):
    # Newton's method on the strictly increasing map phi' (phi' by autograd of phi)
    w = pot.scale
    dphi = pot.derivative
    u = w * (theta - centre)
    target = dphi(u) - lr * w * g
    v = u.clone()
    for _ in range(100):
        r = dphi(v) - target
        step = r / pot.d2phi(v)
        v = v - step
        if bool((step.abs() <= 1e-15 * (1 + v.abs())).all()):
            break
    return centre + v / w
