r"""State-action natural policy gradients of small Markov decision processes as Fisher-Rao flows.

Muller, Cayci and Montufar (2024): for a finite MDP with transition table P(s' | s, a), rewards r(s, a),
discount gamma and initial distribution rho > 0, the discounted state-action occupancies
mu(s, a) = (1 - gamma) sum_t gamma^t Pr(s_t = s, a_t = a) of all policies form the polytope

    D = {mu >= 0 : sum_a mu(s', a) - gamma sum_{s, a} P(s' | s, a) mu(s, a) = (1 - gamma) rho(s') for all s'},

on which the normalized return is linear, (1 - gamma) J(pi) = r^T mu; a policy is read off as
pi(a | s) = mu(s, a) / sum_a mu(s, a). The state-action natural policy gradient flow is the Fisher-Rao
gradient flow of this linear program (see :mod:`relulab.lp_flows.fisher_rao`), so it converges
linearly at the rate Delta of the LP's optimal vertex, and x(t) is the entropy-regularized occupancy
argmax t r^T mu - KL(mu | mu_0). :func:`state_action_npg` runs it from the occupancy of a starting policy
(uniform by default) and checks the limit against value iteration, an independent reference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from relulab.core.errors import InvalidInputError
from relulab.lp_flows.fisher_rao import FisherRaoFlow, LinearProgram, fisher_rao_flow, linear_program
from relulab.results import Result

__all__ = ["MDP", "finite_mdp", "occupancy_program", "policy_occupancy", "value_iteration", "state_action_npg",
           "NPGResult", "random_mdp"]


@dataclass
class MDP:
    """A checked finite MDP: ``P`` (S, A, S) with P[s, a, s'] = P(s' | s, a), ``r`` (S, A), ``gamma``, ``rho`` (S)."""

    P: np.ndarray
    r: np.ndarray
    gamma: float
    rho: np.ndarray

    @property
    def states(self) -> int:
        return self.P.shape[0]

    @property
    def actions(self) -> int:
        return self.P.shape[1]


def finite_mdp(P, r, gamma: float, rho=None) -> MDP:
    """Check a transition table P (S, A, S) (non-negative, each P[s, a] a distribution), rewards r (S, A),
    gamma in (0, 1) and rho (S) positive summing to 1 (default uniform)."""
    try:
        P = np.array(P, dtype=np.float64)
        r = np.array(r, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"P and r must be real arrays: {e}") from None
    if P.ndim != 3 or P.shape[0] != P.shape[2] or P.size == 0:
        raise InvalidInputError(f"P must have shape (S, A, S) with S, A >= 1, got {P.shape}")
    S, A = P.shape[:2]
    if not np.isfinite(P).all() or (P < 0).any() or float(np.abs(P.sum(2) - 1).max()) > 1e-9:
        raise InvalidInputError("P: every P[s, a, :] must be a probability distribution (non-negative, summing to 1)")
    if r.shape != (S, A) or not np.isfinite(r).all():
        raise InvalidInputError(f"r must be a finite array of shape (S, A) = {(S, A)}, got {r.shape}")
    try:
        gamma = float(gamma)
    except (TypeError, ValueError):
        raise InvalidInputError(f"gamma must be a number in (0, 1), got {gamma!r}") from None
    if not (0 < gamma < 1):
        raise InvalidInputError(f"gamma must be in (0, 1), got {gamma!r}")
    rho = np.full(S, 1.0 / S) if rho is None else np.array(rho, dtype=np.float64).reshape(-1)
    if rho.shape != (S,) or not np.isfinite(rho).all() or (rho <= 0).any() or abs(float(rho.sum()) - 1) > 1e-9:
        raise InvalidInputError(f"rho must be a distribution over the {S} states with every entry > 0")
    return MDP(P=P, r=r, gamma=gamma, rho=rho)


def occupancy_program(m: MDP) -> LinearProgram:
    """The linear program max r^T mu over the occupancy polytope D (variables mu(s, a) at s * A + a)."""
    S, A = m.states, m.actions
    Amat = np.repeat(np.eye(S), A, axis=1) - m.gamma * m.P.reshape(S * A, S).T
    return linear_program(Amat, (1 - m.gamma) * m.rho, m.r.reshape(-1))


def policy_occupancy(m: MDP, pi) -> np.ndarray:
    """mu(s, a) = d(s) pi(a | s) with d = (1 - gamma) rho + gamma P_pi^T d (a linear solve)."""
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (m.states, m.actions) or (pi < 0).any() or float(np.abs(pi.sum(1) - 1).max()) > 1e-9:
        raise InvalidInputError(f"pi must have shape {(m.states, m.actions)} with each row a distribution")
    Ppi = np.einsum("sa,sat->st", pi, m.P)
    d = np.linalg.solve(np.eye(m.states) - m.gamma * Ppi.T, (1 - m.gamma) * m.rho)
    return d[:, None] * pi


def value_iteration(m: MDP, *, tol: float = 1e-13, max_iter: int = 10**6):
    """(V*, Q*, greedy policy) by value iteration to sup-norm change ``tol`` (an independent reference)."""
    V = np.zeros(m.states)
    for _ in range(max_iter):
        Q = m.r + m.gamma * m.P @ V
        V2 = Q.max(1)
        if float(np.abs(V2 - V).max()) <= tol * (1 - m.gamma):
            V = V2
            break
        V = V2
    Q = m.r + m.gamma * m.P @ V
    pi = np.zeros_like(Q)
    pi[np.arange(m.states), Q.argmax(1)] = 1.0
    return V, Q, pi


@dataclass
class NPGResult(Result):
    """A state-action natural policy gradient run. ``flow``: the Fisher-Rao flow on the occupancy polytope;
    ``returns``: J(pi_t) = r^T mu(t) / (1 - gamma) at the recorded times; ``optimal_return``: rho^T V* by value
    iteration; ``lp_return``: the LP optimum / (1 - gamma); ``final_policy``; ``policy_error``: the largest
    |pi_T(a | s) - pi*(a | s)| against value iteration's greedy policy; ``measured_rate`` /
    ``predicted_rate``: the flow's rate and Delta."""

    flow: FisherRaoFlow
    returns: np.ndarray
    optimal_return: float
    lp_return: float
    final_policy: np.ndarray
    policy_error: float
    measured_rate: float
    predicted_rate: float | None
    states: int
    actions: int
    gamma: float
    seconds: float

    _summary_fields = ("optimal_return", "lp_return", "final_policy", "policy_error", "measured_rate",
                       "predicted_rate", "states", "actions", "gamma", "seconds")

    def plot(self, ax=None):
        return self.flow.plot(ax=ax)


def state_action_npg(P, r, gamma: float, rho=None, *, pi0=None, t_max: float | None = None,
                     points: int = 200) -> NPGResult:
    """Run the state-action natural policy gradient flow (the Fisher-Rao flow of the occupancy LP) from the
    occupancy of ``pi0`` (default uniform) and compare with value iteration (module docstring)."""
    t0 = time.perf_counter()
    m = finite_mdp(P, r, gamma, rho)
    lp = occupancy_program(m)
    S, A = m.states, m.actions
    pi0 = np.full((S, A), 1.0 / A) if pi0 is None else pi0
    mu0 = policy_occupancy(m, pi0).reshape(-1)
    if (mu0 <= 0).any():
        raise InvalidInputError("pi0 must give every action positive probability (the flow starts in the interior)")
    f = fisher_rao_flow(lp, None, None, x0=mu0, t_max=t_max, points=points)
    V, _, pi_star = value_iteration(m)
    mu_T = f.x[-1].reshape(S, A)
    pi_T = mu_T / mu_T.sum(1, keepdims=True)
    returns = f.x @ m.r.reshape(-1) / (1 - m.gamma)
    return NPGResult(flow=f, returns=returns, optimal_return=float(m.rho @ V), lp_return=f.optimum / (1 - m.gamma),
                     final_policy=pi_T, policy_error=float(np.abs(pi_T - pi_star).max()),
                     measured_rate=f.measured_rate, predicted_rate=f.predicted_rate, states=S, actions=A,
                     gamma=m.gamma, seconds=time.perf_counter() - t0)


def random_mdp(states: int, actions: int, *, seed: int = 0):
    """(P, r): Dirichlet transition rows and uniform rewards in [0, 1), for examples and tests."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(states), size=(states, actions))
    return P, rng.random((states, actions))

