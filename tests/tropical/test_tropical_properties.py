"""Property tests: p - q equals random networks (all layer kinds the strategies draw), exactly with
integer weights and ties."""

from fractions import Fraction

import numpy as np
import torch
from hypothesis import assume, given, settings

from relulab import PLNet
from relulab.tropical import exact_forward, from_network
from strategies import random_module


@settings(max_examples=15)
@given(random_module(families=("mlp", "residual"), max_depth=2, max_width=3, batchnorm=True))
def test_p_minus_q_is_the_network(mod_shape):
    module, shape = mod_shape
    net = PLNet.from_torch(module, shape)
    assume(net.input_dim <= 6)
    T = from_network(net, max_monomials=20_000)
    assume(T.complete)
    X = np.random.default_rng(0).standard_normal((50, net.input_dim)) * 2
    y = net(torch.tensor(X)).reshape(50, -1).numpy()
    assert np.abs(T(X) - y).max() <= 1e-12 * max(1.0, np.abs(y).max())


@settings(max_examples=15)
@given(random_module(families=("mlp",), max_depth=2, max_width=3, ties=True))
def test_exact_with_ties(mod_shape):
    module, shape = mod_shape
    net = PLNet.from_torch(module, shape)
    assume(net.input_dim <= 5)
    T = from_network(net, exact=True, reduce=False, max_monomials=5_000)
    assume(T.complete)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = [Fraction(int(v)) for v in rng.integers(-2, 3, net.input_dim)]  # integer points sit on kinks
        assert [f(np.array(x, dtype=object)) for f in T.functions] == exact_forward(net, x)
