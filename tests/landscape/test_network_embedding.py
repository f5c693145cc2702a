"""Network embeddings: exact function and loss, the affine parameter map, one-sided derivatives carried
over, and the stationarity / escape-neuron / minimality verdicts the theory predicts."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from relulab.core.errors import InvalidInputError
from relulab.landscape import (ShallowNet, add_zero_neuron, check_embedding, directional_stationarity, embed,
                               one_sided_derivative, split_neuron)

T = torch.float64
ACTS = ["relu", "leaky_relu", "abs"]


def t(x):
    return torch.tensor(x, dtype=T)


def relu_kink_minimum():
    """A ReLU local minimum with a data point on the kink (autograd gradient nonzero there)."""
    return ShallowNet(t([[1.0, 0.0]]), t([1.0])), t([[0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]), t([-2.0, 2.0, 0.0])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 4), st.integers(1, 2), st.sampled_from(ACTS),
       st.booleans(), st.sampled_from(["all", "first"]), st.floats(-2, 3), st.floats(0.1, 5), st.floats(0.1, 5))
def test_split_is_exact_and_the_map_is_linear(seed, d, m, o, act, bias, trainable, ratio, l1, l2):
    net = ShallowNet.random(d, m, o, act, alpha=0.3 if act == "leaky_relu" else None, bias=bias,
                            output_bias=True, trainable=trainable, seed=seed)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(9, d, dtype=T, generator=g)
    j = seed % m
    wide, emb = split_neuron(net, j, ratio, scales=(l1, l2))
    assert wide.m == m + 1 and emb.sources == list(range(m)) + [j]
    assert torch.allclose(wide(X), net(X), rtol=1e-12, atol=1e-12)    # positive homogeneity
    assert torch.allclose(emb(net.parameters_vector()), wide.parameters_vector(), rtol=1e-14, atol=1e-14)
    assert torch.equal(emb.offset, torch.zeros_like(emb.offset))       # a split is linear
    # the map is linear in theta and realizes the same function for every theta
    th = torch.randn(net.n_parameters, dtype=T, generator=g)
    assert torch.allclose(wide.with_parameters(emb(th))(X), net.with_parameters(th)(X), rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 3), st.sampled_from(ACTS), st.booleans(),
       st.sampled_from(["all", "first"]))
def test_one_sided_derivatives_carry_over_through_any_embedding(seed, d, m, act, bias, trainable):
    """``L'_wide(E theta; M v) = L'_narrow(theta; v)``, on integer data with points on kinks."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(-2, 3, (7, d), generator=g).to(T)
    W = torch.randint(-2, 3, (m, d), generator=g).to(T)
    b = -(W * X[:m]).sum(1) if bias else None           # point i on the kink of neuron i
    if not bias:
        X[0] = 0.0
    a = torch.randint(-2, 3, (m, 1), generator=g).to(T)
    net = ShallowNet(W, a, b, None, act, 0.25 if act == "leaky_relu" else None, trainable)
    Y = torch.randn(7, dtype=T, generator=g)
    zw = torch.randint(-2, 3, (d + (1 if bias else 0),), generator=g).to(T)
    wide, emb = embed(net, m + 3, sources=[0, None, m - 1], ratios=[0.3, 0.5, 1.7], zero_weights=[None, zw, None])
    assert torch.allclose(wide(X), net(X), rtol=1e-13, atol=1e-13)
    assert float(abs(wide.loss(X, Y) - net.loss(X, Y))) <= 1e-13
    V = torch.randn(12, net.n_parameters, dtype=T, generator=g)
    lhs = one_sided_derivative(wide, X, Y, V @ emb.matrix.T)
    rhs = one_sided_derivative(net, X, Y, V)
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ratio,verdict,escape", [(0.5, "local minimum", []), (0.0, "strict saddle", [0]),
                                                  (1.0, "strict saddle", [1]), (2.0, "not stationary", [])])
def test_splitting_a_kink_minimum(ratio, verdict, escape):
    net, X, Y = relu_kink_minimum()
    wide, emb = split_neuron(net, 0, ratio, scales=(2.0, 0.5))
    chk = check_embedding(net, X, Y, wide, emb)
    assert chk.consistent and chk.map_consistent
    assert chk.max_function_difference == 0.0 and chk.loss_difference == 0.0
    assert chk.narrow_verdict == "local minimum" and chk.wide_verdict == verdict == chk.predicted_verdict
    assert chk.wide_escape_neurons == escape == chk.predicted_escape_neurons
    rw = directional_stationarity(wide, X, Y)
    if verdict == "strict saddle":       # the loss really goes down from the embedded minimum
        assert rw.saddle_verified and rw.saddle_second_order < 0
    if verdict == "not stationary":      # opposite-sign copies break the one-sided condition at the kink
        assert rw.descent_verified


def test_smooth_minimum_keeps_stationarity_for_any_ratio():
    X, Y = t([[1.0], [-1.0]]), t([1.0, 1.0])
    net = ShallowNet(t([[1.0]]), t([1.0]))             # no data point on the kink: differentiable minimum
    for ratio in (-1.0, 0.25, 3.0):
        wide, emb = split_neuron(net, 0, ratio)
        chk = check_embedding(net, X, Y, wide, emb)
        assert chk.consistent and chk.wide_stationary and chk.wide_verdict == "local minimum"


def test_zero_neurons_stationarity_and_escape():
    net, X, Y = relu_kink_minimum()
    # w = (-1, 0): all three pre-activations <= 0, the kink point (0, 1) has r = 2: ReLU h != 0 -> escape
    wide, emb = add_zero_neuron(net, [-1.0, 0.0])
    chk = check_embedding(net, X, Y, wide, emb)
    assert chk.consistent and chk.wide_verdict == "strict saddle" and chk.predicted_escape_neurons == [1]
    assert emb.sources == [0, -1] and torch.equal(emb.offset[2:4], t([-1.0, 0.0]))
    # w = (-5, -1): strictly dead on all data for ReLU: sigma' = 0, h = 0, still a minimum
    wide, emb = add_zero_neuron(net, [-5.0, -1.0])
    chk = check_embedding(net, X, Y, wide, emb)
    assert chk.consistent and chk.wide_verdict == "local minimum" and chk.predicted_escape_neurons == []
    # w = (1, 2): sigma = (2, 3, 0) against r = (2, -1, 1), sum r sigma = 1 != 0: no longer stationary
    wide, emb = add_zero_neuron(net, [1.0, 2.0])
    chk = check_embedding(net, X, Y, wide, emb)
    assert chk.consistent and chk.predicted_stationary is False and chk.wide_verdict == "not stationary"


def test_embedding_a_zero_loss_minimum():
    g = torch.Generator().manual_seed(5)
    X = torch.randint(-2, 3, (8, 2), generator=g).to(T)
    net = ShallowNet(t([[1.0, -1.0], [2.0, 1.0]]), t([1.0, -2.0]), t([0.0, 1.0]))
    Y = net(X)[:, 0]
    wide, emb = embed(net, 5, sources=[0, 1, None], ratios=[0.3, 0.9, 0.5], zero_weights=[None, None, [1.0, 1, 1]])
    chk = check_embedding(net, X, Y, wide, emb)
    assert chk.consistent and chk.narrow_verdict == chk.wide_verdict == "local minimum"
    assert wide.m == 5 and emb.matrix.shape == (wide.n_parameters, net.n_parameters)


def test_embed_defaults_trainable_first_and_validation():
    net = ShallowNet.random(2, 2, 1, trainable="first", seed=3)
    wide, emb = embed(net, 4)
    assert emb.sources == [0, 1, 0, 1] and wide.n_parameters == 4 * 3
    X = torch.randn(5, 2, dtype=T)
    assert torch.allclose(wide(X), net(X), atol=1e-14)
    same, ident = embed(net, 2)
    assert torch.equal(ident.matrix, torch.eye(net.n_parameters, dtype=T))
    assert '"kind"' in emb.to_json(summary=True)
    with pytest.raises(InvalidInputError, match="m_new"):
        embed(net, 1)
    with pytest.raises(InvalidInputError, match="j"):
        split_neuron(net, 2)
    with pytest.raises(InvalidInputError, match="scales"):
        split_neuron(net, 0, 0.5, scales=(1.0, -1.0))
    with pytest.raises(InvalidInputError, match="w"):
        add_zero_neuron(net, [1.0, 2.0, 3.0])


def gradient_free_point(seed, d, m, act, zero_a):
    """Integer weights and data with points on kinks; targets whose residual lies in the null space of the
    (slope alpha on kinks) Jacobian, so only the kink terms decide stationarity (a mix of all verdicts)."""
    g = torch.Generator().manual_seed(seed)
    n = 12
    X = torch.randint(-2, 3, (n, d), generator=g).to(T)
    W = torch.randint(-2, 3, (m, d), generator=g).to(T)
    b = -(W * X[:m]).sum(1)
    a = torch.randint(1, 3, (m, 1), generator=g).to(T) * (2 * torch.randint(0, 2, (m, 1), generator=g) - 1)
    if zero_a:
        a[0] = 0.0
    net = ShallowNet(W, a, b, None, act, 0.25 if act == "leaky_relu" else None)
    J = torch.func.jacrev(lambda th: net.with_parameters(th)(X)[:, 0])(net.parameters_vector())
    _, S, Vh = torch.linalg.svd(J.T)
    r = torch.randn(Vh.shape[0] - int((S > 1e-10).sum()), dtype=T, generator=g) @ Vh[int((S > 1e-10).sum()):]
    return net, X, net(X)[:, 0] - r


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 2), st.integers(1, 2), st.sampled_from(ACTS), st.booleans(),
       st.sampled_from([0.0, 0.4, 1.0, 1.5, -0.5]), st.booleans())
def test_check_embedding_predictions_hold_on_random_kink_points(seed, d, m, act, zero_a, ratio, add_zero):
    net, X, Y = gradient_free_point(seed, d, m, act, zero_a)
    if add_zero:
        zw = torch.randint(-2, 3, (d + 1,), generator=torch.Generator().manual_seed(seed + 7)).to(T)
        wide, emb = embed(net, m + 2, sources=[seed % m, None], ratios=[ratio, 0.5], zero_weights=[None, zw])
    else:
        wide, emb = split_neuron(net, seed % m, ratio)
    chk = check_embedding(net, X, Y, wide, emb, n_probe=50)
    assert chk.consistent, chk.to_dict(summary=True)
    assert chk.max_function_difference <= 1e-12 and chk.loss_difference <= 1e-12
    assert chk.gradient_pullback_difference <= 1e-10


def test_split_prediction_survives_cancelled_residuals():
    # vector output with residuals orthogonal to a_s: r_i . a_s is pure round-off, which must not look large
    D = lambda v: torch.tensor(v, dtype=T)  # noqa: E731
    net = ShallowNet(W=D([[1.0]]), a=D([[1.1, 0.7]]), b=None)
    X = D([[1.0], [2.0]])
    R = (D([2.0, -1.0]) * 0.37)[:, None] * D([0.7, -1.1])
    Y = net(X) - R
    wide, emb = split_neuron(net, 0, ratio=-0.5)
    chk = check_embedding(net, X, Y, wide, emb)
    assert chk.predicted_stationary and chk.wide_stationary and chk.consistent
