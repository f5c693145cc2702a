"""Fisher-Rao flows of linear programs against closed forms (simplex softmax, box), the entropic program
solved independently (damped Newton on the dual, cvxpy/Clarabel on the primal), and value iteration."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from clitools import run

from relulab.core.errors import InvalidInputError
from relulab.lp_flows import (entropic_solution, finite_mdp, fisher_rao_flow, lp_geometry, policy_occupancy, random_mdp,
                              state_action_npg, value_iteration)


def test_simplex_flow_is_softmax_and_rate_is_the_top_gap():
    c = np.array([1.0, 0.7, 0.2, 0.5])
    x0 = np.array([0.1, 0.4, 0.3, 0.2])
    f = fisher_rao_flow(np.ones((1, 4)), [1.0], c, x0=x0, t_max=60.0, points=60)
    logits = np.log(x0)[None, :] + f.times[:, None] * c[None, :]
    soft = np.exp(logits - logits.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    np.testing.assert_allclose(f.x, soft, atol=1e-8)
    assert f.predicted_rate == pytest.approx(0.3)
    assert f.measured_rate == pytest.approx(0.3, rel=1e-4)
    assert f.kl_bound_holds and f.constraint_error < 1e-8


def test_box_rate_is_the_smallest_objective_weight():
    # x_i + s_i = 1: the optimal vertex sets x_i = 1 where c_i > 0; the reduced cost of each entering variable is
    # -|c_i|, so Delta = min |c_i|
    c = np.array([0.8, -0.3, 0.5])
    A = np.hstack([np.eye(3), np.eye(3)])
    geo = lp_geometry(A, np.ones(3), np.r_[c, np.zeros(3)])
    assert geo.rate == pytest.approx(0.3)
    f = fisher_rao_flow(A, np.ones(3), np.r_[c, np.zeros(3)], points=80)
    assert f.measured_rate == pytest.approx(0.3, rel=1e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_lp_flow_matches_entropic_program_and_rate(seed):
    rng = np.random.default_rng(seed)
    A = rng.uniform(0.1, 1.0, (2, 6))
    b = A @ rng.uniform(0.5, 1.0, 6)
    c = rng.standard_normal(6)
    f = fisher_rao_flow(A, b, c, points=80, check_entropic=4)
    assert f.entropic_error < 1e-7 and f.kl_bound_holds and f.constraint_error < 1e-8
    assert f.measured_rate == pytest.approx(f.predicted_rate, rel=1e-4)
    # the entropic identity at an early time, the dual Newton solution against the flow
    i = 10
    np.testing.assert_allclose(entropic_solution(A, b, c, f.times[i]), f.x[i], atol=1e-8)
    if importlib.util.find_spec("cvxpy") is not None:
        # an interior-point solver at 1e-9 gap tolerance: agreement to a few 1e-6 near the boundary
        np.testing.assert_allclose(entropic_solution(A, b, c, f.times[i], method="cvxpy"), f.x[i], atol=2e-5)


def test_npg_matches_value_iteration_and_stays_on_occupancies():
    P, r = random_mdp(3, 2, seed=1)
    res = state_action_npg(P, r, 0.8, points=60)
    V, Q, pi_star = value_iteration(finite_mdp(P, r, 0.8))
    assert res.lp_return == pytest.approx(res.optimal_return, rel=1e-9)
    assert res.returns[-1] == pytest.approx(res.optimal_return, rel=1e-7)
    assert np.all(np.diff(res.returns) >= -1e-10)  # the flow increases the objective
    assert res.policy_error < 1e-6
    assert res.measured_rate == pytest.approx(res.predicted_rate, rel=1e-3)
    # every point of the path is the occupancy measure of its own policy
    m = finite_mdp(P, r, 0.8)
    mu = res.flow.x[20].reshape(3, 2)
    pi = mu / mu.sum(1, keepdims=True)
    np.testing.assert_allclose(policy_occupancy(m, pi), mu, atol=1e-8)


def test_bad_input_is_refused():
    with pytest.raises(InvalidInputError, match="infeasible"):
        fisher_rao_flow(np.ones((1, 2)), [-1.0], [1.0, 0.0])
    with pytest.raises(InvalidInputError, match="unbounded"):
        fisher_rao_flow(np.array([[1.0, -1.0]]), [0.0], [1.0, 1.0])
    with pytest.raises(InvalidInputError, match="x_i > 0"):
        fisher_rao_flow(np.array([[1.0, 1.0], [1.0, 0.0]]), [1.0, 1.0], [1.0, 0.0], t_max=1.0)
    with pytest.raises(InvalidInputError, match="b"):
        fisher_rao_flow(np.ones((2, 3)), [1.0], [1.0, 0.0, 0.0])
    with pytest.raises(InvalidInputError, match="x0"):
        fisher_rao_flow(np.ones((1, 2)), [1.0], [1.0, 0.0], x0=[0.7, 0.7])
    P, r = random_mdp(2, 2)
    with pytest.raises(InvalidInputError, match="P"):
        finite_mdp(P * 2, r, 0.9)
    with pytest.raises(InvalidInputError, match="gamma"):
        finite_mdp(P, r, 1.0)
    with pytest.raises(InvalidInputError, match="rho"):
        finite_mdp(P, r, 0.5, rho=[1.0, 0.0])


def test_cli_lp_flow(capsys):
    code, out, err = run(["lpflow", "--random-mdp", "2,2", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["npg"]["lp_return"] == pytest.approx(data["npg"]["optimal_return"], rel=1e-9)
    assert data["flow"]["measured_rate"] == pytest.approx(data["flow"]["predicted_rate"], rel=1e-3)
    code, out, err = run(["lpflow", "--random", "3,3"], capsys)
    assert code == 1 and err.startswith("relulab: error:")
