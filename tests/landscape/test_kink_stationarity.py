"""Directional stationarity at kinks against one-sided finite differences, brute-force directions, two
independent programs (enumeration and MILP), hand-built kink cases and loss decrease along certificates."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from relulab.core.errors import InvalidInputError
from relulab.landscape import (DirectionalStationarityResult, ShallowNet, batched_loss, directional_stationarity,
                               escape_direction, one_sided_derivative)
from relulab.landscape.kink_stationarity import _box_min, _data, _model, _model_value

T = torch.float64
ACTS = ["relu", "leaky_relu", "abs"]


def t(x):
    return torch.tensor(x, dtype=T)


def kinky_instance(seed, d, m, o, act, n=6, bias=True, trainable="all", obias=False):
    """Integer data and weights with at least one data point exactly on every neuron's kink."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(-2, 3, (n, d), generator=g).to(T)
    W = torch.randint(-2, 3, (m, d), generator=g).to(T)
    if bias:
        pick = torch.randint(0, n, (m,), generator=g)
        b = -(W * X[pick]).sum(1)
    else:
        X[0] = 0.0
        b = None
    a = torch.randint(-2, 3, (m, o), generator=g).to(T)
    a[a == 0] = 1.0
    c = torch.randn(o, generator=g, dtype=T) if obias else None
    Y = torch.randn(n, o, generator=g, dtype=T)
    net = ShallowNet(W, a, b, c, act, 0.25 if act == "leaky_relu" else None, trainable)
    return net, X, Y


def finite_difference(net, X, Y, V, h=1e-6):
    """One-sided difference quotients, Richardson-extrapolated: along a ray L is a polynomial in t on
    [0, t0), so 2 D(h) - D(2h) removes the O(h) curvature term that a plain quotient keeps (which
    exceeded 1e-5 on steep instances)."""
    theta = net.parameters_vector()
    L0 = batched_loss(net, X, Y, theta)

    def quotient(t):
        return (batched_loss(net, X, Y, theta[None] + t * V) - L0) / t

    return 2 * quotient(h) - quotient(2 * h)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 4), st.integers(1, 2), st.sampled_from(ACTS),
       st.booleans(), st.sampled_from(["all", "first"]), st.booleans())
def test_one_sided_derivative_matches_finite_differences_on_kinks(seed, d, m, o, act, bias, trainable, obias):
    net, X, Y = kinky_instance(seed, d, m, o, act, bias=bias, trainable=trainable, obias=obias)
    assert int((net.preactivations(X) == 0).sum()) >= 1
    V = torch.randn(16, net.n_parameters, dtype=T, generator=torch.Generator().manual_seed(seed + 1))
    exact = one_sided_derivative(net, X, Y, V)
    fd = finite_difference(net, X, Y, V)
    assert torch.allclose(exact, fd, rtol=1e-5, atol=1e-5)
    mdl = _model(net, *_data(net, X, Y), 1e-12)
    assert torch.allclose(_model_value(mdl, V), exact, rtol=1e-12, atol=1e-12)
    assert torch.allclose(one_sided_derivative(net, X, Y, V[0]), exact[0])


def test_one_sided_derivative_differs_from_autograd_on_a_kink():
    net = ShallowNet(t([[1.0]]), t([1.0]), t([-1.0]))  # z = 0 at x = 1
    X, Y = t([[1.0]]), t([1.0])
    v_up, v_down = t([1.0, 0.0, 0.0]), t([-1.0, 0.0, 0.0])
    assert float(one_sided_derivative(net, X, Y, v_up)) == -1.0    # r a max(u, 0) / n = -1
    assert float(one_sided_derivative(net, X, Y, v_down)) == 0.0
    assert float(finite_difference(net, X, Y, v_up[None])[0]) == pytest.approx(-1.0, abs=1e-6)


def test_autograd_zero_but_not_stationary():
    net = ShallowNet(t([[1.0]]), t([1.0]), t([-1.0]))
    r = directional_stationarity(net, t([[1.0]]), t([1.0]))
    assert torch.equal(r.gradient_autograd, torch.zeros(3, dtype=T))
    assert r.verdict == "not stationary" and r.stationary is False
    assert r.min_directional_derivative == pytest.approx(-2.0)       # v = (1, 1, *) on the box
    assert r.descent_verified
    assert float(one_sided_derivative(net, t([[1.0]]), t([1.0]), r.descent_direction)) < 0
    assert float(batched_loss(net, t([[1.0]]), t([1.0]), net.parameters_vector() + 1e-3 * r.descent_direction)) \
        < float(net.loss(t([[1.0]]), t([1.0])))


def test_abs_kink_minimum_with_nonzero_autograd_gradient():
    net = ShallowNet(t([[1.0]]), t([1.0]), t([-1.0]), activation="abs")
    X, Y = t([[1.0]]), t([-1.0])
    r = directional_stationarity(net, X, Y)
    assert r.verdict == "local minimum" and r.stationary
    assert r.gradient_autograd_norm > 1.0                              # slope -1 branch of |z|
    assert r.min_norm_subgradient_norm < 1e-12                         # 0 in [-1, 1] r a x~
    assert r.min_directional_derivative == pytest.approx(0.0, abs=1e-12)


def relu_kink_minimum():
    """f = a relu(w . x), w = (1, 0): x1 = (0, 1) on the kink with r1 a = 2, the active points pull w by
    -(0, 2/3): L'(u) = -2/3 u_2 + 2/3 max(u_2, 0) >= 0, autograd (slope 0 at the kink) is (0, -2/3)."""
    net = ShallowNet(t([[1.0, 0.0]]), t([1.0]))
    return net, t([[0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]), t([-2.0, 2.0, 0.0])


def test_relu_kink_stationary_point_with_nonzero_autograd_is_a_minimum():
    net, X, Y = relu_kink_minimum()
    r = directional_stationarity(net, X, Y)
    assert isinstance(r, DirectionalStationarityResult)
    assert r.verdict == "local minimum"
    assert torch.allclose(r.gradient_autograd, t([0.0, -2 / 3, 0.0]))
    assert r.min_norm_subgradient_norm < 1e-12
    assert r.probe_min_change >= -1e-14
    V = torch.randn(4000, 3, dtype=T, generator=torch.Generator().manual_seed(0))
    assert float(one_sided_derivative(net, X, Y, V).min()) >= -1e-14
    # pushing the kinked point's residual the other way (r1 a < 2/3) breaks stationarity
    r2 = directional_stationarity(net, X, t([-0.5, 2.0, 0.0]))
    assert r2.verdict == "not stationary" and r2.descent_verified


def test_nontrivial_minimum_and_dead_neurons():
    X, Y = t([[1.0], [-1.0]]), t([1.0, 1.0])
    net = ShallowNet(t([[1.0]]), t([1.0]))                              # x = -1 unreachable by this ReLU
    r = directional_stationarity(net, X, Y)
    assert r.verdict == "local minimum" and r.loss == pytest.approx(0.25)
    # a dead ReLU neuron (all pre-activations < 0 except the kink at 0), nonzero output weight
    dead = ShallowNet(t([[1.0], [2.0]]), t([1.0, 0.7]), t([0.0, -5.0]))
    rd = directional_stationarity(dead, X, Y)
    assert rd.verdict == "local minimum"
    # a dead zero-output ReLU neuron is not an escape neuron; with leaky slope it is not stationary
    z = ShallowNet(t([[1.0], [2.0]]), t([1.0, 0.0]), t([0.0, -5.0]))
    assert directional_stationarity(z, X, Y).verdict == "local minimum"
    leaky = ShallowNet(t([[1.0]]), t([1.0]), activation="leaky_relu", alpha=0.1)
    assert directional_stationarity(leaky, X, Y).verdict == "not stationary"


def test_escape_neuron_saddle_loss_decreases_along_certificate():
    net = ShallowNet(t([[1.0, 0.0]]), t([0.0]))                        # zero output weight
    X, Y = t([[1.0, 1.0], [1.0, -1.0]]), t([1.0, -1.0])                # sum r sigma(z) = 0: stationary
    r = directional_stationarity(net, X, Y)
    assert r.stationary and r.verdict == "strict saddle" and r.escape_neurons == [0]
    assert r.gradient_autograd_norm == 0.0
    v, q = r.saddle_direction, r.saddle_second_order
    assert q < 0 and r.saddle_verified
    assert float(one_sided_derivative(net, X, Y, v)) == pytest.approx(0.0, abs=1e-15)
    L0 = float(net.loss(X, Y))
    for s in (1e-2, 1e-3):
        Ls = float(batched_loss(net, X, Y, net.parameters_vector() + s * v))
        assert Ls < L0
        assert Ls - L0 == pytest.approx(q * s * s, rel=1e-2, abs=1e-12)


def test_escape_through_kinks_only_and_cancelling_ridges():
    # h(u) = 1/n (r1 max(u1, 0) + r2 max(-u1, 0)) for x = (1), (-1) on the kink of w = 0 (no bias)
    X = t([[1.0], [-1.0], [0.0]])
    net = ShallowNet(t([[0.0]]), t([0.0]))
    r = directional_stationarity(net, X, t([1.0, 1.0, 3.0]))
    assert r.verdict == "strict saddle" and r.saddle_verified
    # abs activation with r1 = -r2: h(u) = r1 (|u| - |u|) / n = 0 identically: no escape
    nabs = ShallowNet(t([[0.0]]), t([0.0]), activation="abs")
    ra = directional_stationarity(nabs, X, t([1.0, -1.0, 0.0]))
    assert ra.stationary and ra.escape_neurons == [] and ra.verdict == "local minimum"
    assert ra.probe_min_change >= -1e-14
    # but relu with r1 = -r2 is a ridge plus a linear part: escape
    assert directional_stationarity(net, X, t([1.0, -1.0, 0.0])).verdict == "strict saddle"


def test_zero_loss_global_minimum_with_kinks():
    net, X, _ = kinky_instance(3, 2, 3, 1, "relu")
    r = directional_stationarity(net, X, net(X))
    assert r.loss == 0.0 and r.verdict == "local minimum" and r.n_kinks >= 3


def test_vector_output_and_fixed_output_weights():
    net, X, Y = relu_kink_minimum()
    net2 = ShallowNet(net.W, torch.cat([net.a, torch.zeros(1, 1, dtype=T)], 1))
    Y2 = torch.stack([Y, torch.zeros(3, dtype=T)], 1)
    r = directional_stationarity(net2, X, Y2)
    assert r.stationary and r.verdict == "undetermined"
    first = ShallowNet(net.W, net.a, trainable="first")
    assert directional_stationarity(first, X, Y).verdict == "local minimum"


def brute_force_min(net, X, Y, n=3000, seed=0):
    g = torch.Generator().manual_seed(seed)
    P = net.n_parameters
    V = torch.rand(n, P, dtype=T, generator=g) * 2 - 1
    V = torch.cat([V, torch.sign(V[: n // 2])])                        # vertices of the box too
    return float(one_sided_derivative(net, X, Y, V).min())


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 2), st.integers(1, 3), st.sampled_from(ACTS), st.booleans())
def test_box_minimum_is_exact_against_brute_force(seed, d, m, act, bias):
    net, X, Y = kinky_instance(seed, d, m, 1, act, n=5, bias=bias)
    r = directional_stationarity(net, X, Y, n_probe=0)
    bf = brute_force_min(net, X, Y)
    assert r.min_directional_derivative <= bf + 1e-9                  # a true lower bound
    if r.verdict == "not stationary":
        v = r.descent_direction
        assert float(v.abs().max()) <= 1 + 1e-9
        exact = float(one_sided_derivative(net, X, Y, v))
        assert exact == pytest.approx(r.min_directional_derivative, abs=1e-7)  # attained
        assert r.descent_verified
    else:
        assert bf >= -r.tolerance - 1e-12


def concave_instance(K, with_convex):
    """One neuron w = 0 (no bias) in d = 2, K kinked points with r a < 0 (concave terms)."""
    g = torch.Generator().manual_seed(K)
    Xc = torch.randn(K, 2, dtype=T, generator=g)
    Xv = torch.randn(3 if with_convex else 0, 2, dtype=T, generator=g)
    X = torch.cat([Xc, Xv])
    net = ShallowNet(t([[0.0, 0.0]]), t([1.0]), trainable="first")
    Y = torch.cat([torch.rand(K, dtype=T, generator=g) + 0.1, -torch.rand(len(Xv), dtype=T, generator=g) - 0.1])
    return net, X, Y                                                   # f = 0, r = -y


@pytest.mark.parametrize("K,with_convex", [(5, True), (12, False), (4, False)])
def test_enumeration_and_milp_agree(K, with_convex):
    net, X, Y = concave_instance(K, with_convex)
    X, Y = _data(net, X, Y)
    mdl = _model(net, X, Y, 1e-12)
    ve, v1, *_ = _box_min(net, mdl, "enumerate", 20, 10.0)
    vm, v2, _, ok, _ = _box_min(net, mdl, "milp", 0, 10.0)
    assert ok and ve == pytest.approx(vm, rel=1e-7, abs=1e-9)
    for v in (v1, v2):
        assert float(one_sided_derivative(net, X, Y, v)) == pytest.approx(ve, rel=1e-7, abs=1e-9)
    assert brute_force_min(net, X, Y) >= ve - 1e-9
    r = directional_stationarity(net, X, Y, max_enumerate=3)                  # "auto"
    assert r.min_directional_derivative == pytest.approx(ve, rel=1e-7, abs=1e-9)


def test_result_serializes_and_validates():
    net, X, Y = relu_kink_minimum()
    r = directional_stationarity(net, X, Y)
    d = r.to_dict(summary=True)
    assert d["verdict"] == "local minimum" and "gradient_autograd" not in d
    assert '"verdict"' in r.to_json()
    with pytest.raises(InvalidInputError, match="direction"):
        one_sided_derivative(net, X, Y, torch.zeros(5, dtype=T))
    with pytest.raises(InvalidInputError, match="method"):
        directional_stationarity(net, X, Y, method="simplex")
    with pytest.raises(InvalidInputError, match="Y"):
        directional_stationarity(net, X, torch.zeros(4, dtype=T))
    with pytest.raises(InvalidInputError, match="net"):
        directional_stationarity("net", X, Y)
    bad = torch.as_tensor(Y, dtype=T).clone()
    bad.view(-1)[0] = float("nan")
    with pytest.raises(InvalidInputError, match="non-finite"):
        directional_stationarity(net, X, bad)


def test_snapped_kinks_with_scale_aware_tolerance():
    # 0.1 + 0.2 - 0.3 is 5.6e-17, not 0: within the tolerance it is a kink and L' is one-sided there
    net = ShallowNet(t([[0.1, 0.2]]), t([1.0]), t([-0.3]))
    X, Y = t([[1.0, 1.0]]), t([1.0])
    r = directional_stationarity(net, X, Y)
    assert r.n_kinks == 1 and r.verdict == "not stationary"
    assert directional_stationarity(net, X, Y, kink_rtol=0.0).n_kinks == 0
    v = torch.ones(4, dtype=T)
    assert float(one_sided_derivative(net, X, Y, v)) == pytest.approx(float(finite_difference(net, X, Y, v[None])[0]),
                                                                      abs=1e-6)
    assert np.isfinite(r.tolerance) and r.tolerance > 0


def stationary_candidate(seed, d, m, act, zero_a):
    """Residuals in the null space of the (slope alpha on kinks) Jacobian, so ``g = 0`` and only the kink
    terms decide: stationary iff they are nonnegative for every direction."""
    net, X, _ = kinky_instance(seed, d, m, 1, act, n=14)
    if zero_a:
        net = ShallowNet(net.W, torch.cat([torch.zeros(1, 1, dtype=T), net.a[1:]]), net.b, None, act, net.alpha)
    n = X.shape[0]
    J = torch.func.jacrev(lambda th: net.with_parameters(th)(X)[:, 0])(net.parameters_vector())  # (n, P)
    _, S, Vh = torch.linalg.svd(J.T)
    null = Vh[(S > 1e-10).sum():]
    coef = torch.randn(null.shape[0], dtype=T, generator=torch.Generator().manual_seed(seed))
    r = coef @ null
    return net, X, net(X)[:, 0] - r, n


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 2), st.integers(1, 3), st.sampled_from(ACTS), st.booleans())
def test_verdicts_against_brute_force_on_gradient_free_points(seed, d, m, act, zero_a):
    net, X, Y, n = stationary_candidate(seed, d, m, act, zero_a)
    r = directional_stationarity(net, X, Y, n_probe=100, seed=seed)
    bf = brute_force_min(net, X, Y, n=2000, seed=seed)
    assert r.min_directional_derivative <= bf + 1e-9
    if r.verdict == "not stationary":
        assert r.descent_verified
    else:
        assert bf >= -r.tolerance - 1e-12
    if r.verdict == "strict saddle":
        assert r.saddle_verified and r.saddle_second_order < 0 and r.escape_neurons
    if r.verdict == "local minimum":
        assert r.probe_min_change >= -1e-12 * (1 + r.loss)


# ------------------------------------------------------------------ regressions found in review
def _t(v):
    return torch.tensor(v, dtype=T)


def test_differentiable_minima_are_not_downgraded_by_far_probes():
    # scalar output, no kinks, every a_j != 0, residuals in the null space of J^T: a differentiable
    # stationary point, hence a local minimum; probes must stay inside the cones of the pre-activations
    rng = np.random.default_rng(0)
    verdicts = []
    for trial in range(10):
        X = torch.as_tensor(rng.standard_normal((30, 2)))
        net = ShallowNet(W=torch.as_tensor(rng.standard_normal((3, 2))), a=torch.as_tensor(rng.standard_normal((3, 1))),
                         b=torch.as_tensor(rng.standard_normal(3)), c=_t([0.0]))
        J = torch.func.jacrev(lambda th: batched_loss_free(net, X, th))(net.parameters_vector())
        N = torch.as_tensor(np.linalg.svd(J.T.numpy())[2][J.shape[1]:].T)  # null space of J^T, (n, n - P)
        R = N @ torch.as_tensor(rng.standard_normal(N.shape[1])) * 0.1
        Y = net(X) - R[:, None]
        r = directional_stationarity(net, X, Y)
        assert r.stationary
        verdicts.append(r.verdict)
    assert verdicts == ["local minimum"] * 10


def batched_loss_free(net, X, theta):
    """The outputs f(x_i) as a function of the parameter vector (layout of parameters_vector: W, b, a, c)."""
    m, d = net.m, net.d
    W = theta[:m * d].reshape(m, d)
    b = theta[m * d:m * d + m]
    a = theta[m * d + m:m * d + 2 * m].reshape(m, 1)
    c = theta[m * d + 2 * m:]
    return (torch.relu(X @ W.T + b) @ a + c).reshape(-1)


def test_nearly_parallel_kink_lines_are_not_merged():
    net = ShallowNet(W=_t([[0.0, 0.0]]), a=_t([[0.0]]), b=None)
    X = _t([[1.0, 0.0], [1.0, 1e-6]])  # two kink lines 1e-6 rad apart with opposite residuals
    r = directional_stationarity(net, X, _t([-1.0, 1.0]), n_probe=0)
    assert r.escape_neurons == [0] and r.verdict == "strict saddle" and r.saddle_verified


def test_tiny_residuals_are_not_zero_loss():
    net = ShallowNet(W=_t([[0.0]]), a=_t([[1.0, 0.0]]), b=None, c=_t([0.0, 0.0]))
    r = directional_stationarity(net, _t([[1.0], [2.0]]), _t([[0.0, 1e-9], [0.0, -1e-9]]))
    assert r.reason != "zero loss (a global minimum)"


def test_lists_are_read_in_float64_and_escape_index_checked():
    net = ShallowNet(W=_t([[1.0]]), a=_t([[1.0]]), b=_t([-0.1]))
    assert float(net.preactivations([[0.1]]).abs().max()) == 0.0  # 0.1 from a list: the float64 0.1
    assert directional_stationarity(net, [[0.1], [1.0]], [0.5, 0.9]).n_kinks == 1
    for j in (5, -1):
        with pytest.raises(InvalidInputError, match="neuron index"):
            escape_direction(net, [[0.1], [1.0]], [0.5, 0.9], j)
