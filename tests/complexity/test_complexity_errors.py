"""Bad input: one clear error each, never a silent NaN."""

import math

import pytest
import torch
from torch import nn

from relulab import InvalidInputError, PLNet
from relulab.complexity import (exact_lc_2d, gaussian, grokking_proxy, line_lc, local_complexity, local_counts,
                                smoothed_data, uniform_box, unit_gradients)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return PLNet.from_torch(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 1)).double(), (3,))


@pytest.mark.parametrize("sigma", [0, -1.0, math.nan, math.inf, "0.1", True])
def test_sigma(net, sigma):
    with pytest.raises(InvalidInputError, match="sigma"):
        local_complexity(net, torch.zeros(2, 3), sigma)


@pytest.mark.parametrize("radius", [0, -0.5, math.nan])
def test_radius(net, radius):
    with pytest.raises(InvalidInputError, match="radius"):
        local_counts(net, torch.zeros(2, 3), radius)
    with pytest.raises(InvalidInputError, match="radius"):
        grokking_proxy(net, torch.zeros(2, 3), radius, n_vertices=4)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_data(net, bad):
    x = torch.zeros(3, 3)
    x[1, 2] = bad
    with pytest.raises(InvalidInputError, match="non-finite"):
        local_complexity(net, x, 0.1)
    with pytest.raises(InvalidInputError, match="non-finite"):
        unit_gradients(net, x)


@pytest.mark.parametrize("shape", [(4, 2), (3,), (2, 3, 1)])
def test_wrong_shape(net, shape):
    with pytest.raises(InvalidInputError, match="shape"):
        local_complexity(net, torch.zeros(shape), 0.1)


def test_unsupported_layer_is_refused_at_conversion():
    from relulab import UnsupportedLayerError

    with pytest.raises(UnsupportedLayerError):
        PLNet.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)), (2,))


def test_not_a_plnet():
    with pytest.raises(InvalidInputError, match="PLNet"):
        local_complexity(nn.Linear(2, 1), torch.zeros(2, 2), 0.1)


def test_other_arguments(net):
    with pytest.raises(InvalidInputError, match="shape must be one of"):
        local_counts(net, torch.zeros(1, 3), 0.1, shape="ball")
    with pytest.raises(InvalidInputError, match="n_vertices"):
        grokking_proxy(net, torch.zeros(1, 3), 0.1, n_vertices=5)
    with pytest.raises(InvalidInputError, match="d >= 4"):
        grokking_proxy(net, torch.zeros(1, 3), 0.1, n_vertices=8)
    with pytest.raises(InvalidInputError, match="2 inputs"):
        exact_lc_2d(net, gaussian(0.0, 1.0, 3))
    with pytest.raises(InvalidInputError, match="R\\^2"):
        line_lc(net, gaussian(0.0, 1.0, 2))
    with pytest.raises(InvalidInputError, match="std"):
        gaussian(0.0, 0.0, 2)
    with pytest.raises(InvalidInputError, match="lo < hi"):
        uniform_box(1.0, 0.0, 2)
    with pytest.raises(InvalidInputError, match="r must"):
        smoothed_data(torch.zeros(2, 2), -1)
    with pytest.raises(InvalidInputError, match="orthonormal"):
        local_counts(net, torch.zeros(1, 3), 0.1, shape="square", directions=torch.ones(2, 3))
    with pytest.raises(InvalidInputError, match="affine"):
        local_complexity(PLNet.from_torch(nn.Linear(3, 1).double(), (3,)), torch.zeros(2, 3), 0.1)
