"""ShallowNet against torch modules, PLNet, direct formulas, and its own round trips."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import relulab
from relulab.core.errors import InvalidInputError, UnsupportedLayerError
from relulab.landscape import ShallowNet


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 7), st.integers(1, 3), st.sampled_from(["relu", "leaky_relu", "abs"]),
       st.booleans(), st.booleans(), st.integers(0, 999))
def test_forward_matches_torch_plnet_and_formula(d, m, o, act, bias, obias, seed):
    net = ShallowNet.random(d, m, o, act, alpha=0.2 if act == "leaky_relu" else None, bias=bias,
                            output_bias=obias, seed=seed)
    X = torch.randn(11, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    X[0] = 0.0  # a point on every kink when there is no bias
    out = net(X)
    assert out.shape == (11, o)
    assert torch.allclose(out, net.to_torch()(X), rtol=1e-13, atol=1e-13)
    assert torch.allclose(out, net.to_plnet()(X), rtol=1e-12, atol=1e-12)
    Z = X @ net.W.T + (0 if net.b is None else net.b)
    S = torch.where(Z > 0, Z, {"relu": 0.0, "leaky_relu": 0.2, "abs": -1.0}[act] * Z)
    ref = S @ net.a + (0 if net.c is None else net.c)
    assert torch.allclose(out, ref, rtol=1e-14, atol=1e-14)
    back = ShallowNet.from_torch(net.to_torch())
    assert torch.equal(back(X), out) and back.activation == act


@pytest.mark.parametrize("trainable", ["all", "first"])
def test_parameter_vector_round_trip_and_layout(trainable):
    net = ShallowNet.random(3, 4, 2, bias=True, output_bias=True, trainable=trainable, seed=1)
    theta = net.parameters_vector()
    expected = 4 * 3 + 4 + (4 * 2 + 2 if trainable == "all" else 0)
    assert theta.numel() == net.n_parameters == expected
    assert torch.equal(theta[:12], net.W.reshape(-1)) and torch.equal(theta[12:16], net.b)
    new = net.with_parameters(theta * 2)
    assert torch.equal(new.parameters_vector(), theta * 2)
    assert torch.equal(new.W, 2 * net.W)
    if trainable == "first":
        assert torch.equal(new.a, net.a) and torch.equal(new.c, net.c)
    else:
        assert torch.equal(new.a, 2 * net.a)
    s = net.parameter_slices()
    assert list(s) == (["W", "b", "a", "c"] if trainable == "all" else ["W", "b"])


def test_loss_and_signs():
    net = ShallowNet([[1.0, 0.0], [0.0, -1.0]], [2.0, 1.0], [0.0, 1.0])  # lists: float64
    assert net.dtype == torch.float64
    X = torch.tensor([[1.0, 2.0], [0.0, 1.0], [-1.0, 0.5]])
    Y = torch.tensor([1.0, 0.0, 3.0])
    f = torch.tensor([2 * 1 + max(-2 + 1, 0), 0 + max(-1 + 1, 0), 0 + max(-0.5 + 1, 0)], dtype=torch.float64)
    assert torch.allclose(net(X)[:, 0], f)
    assert float(net.loss(X, Y)) == pytest.approx(((f - Y.double()) ** 2).sum().item() / 6)
    assert net.signs(X).tolist() == [[1, -1], [0, 0], [-1, 1]]
    assert net.signs(X).dtype == torch.int8


def test_gradient_of_loss_by_autograd_matches_finite_differences():
    net = ShallowNet.random(3, 5, 1, "leaky_relu", alpha=0.1, seed=4)
    X = torch.randn(20, 3, dtype=torch.float64)
    Y = torch.randn(20, dtype=torch.float64)
    theta = net.parameters_vector().requires_grad_(True)
    g, = torch.autograd.grad(net.with_parameters(theta).loss(X, Y), theta)
    eps = 1e-6
    E = torch.eye(theta.numel(), dtype=torch.float64)
    fd = torch.stack([(net.with_parameters(theta.detach() + eps * e).loss(X, Y)
                       - net.with_parameters(theta.detach() - eps * e).loss(X, Y)) / (2 * eps) for e in E])
    assert torch.allclose(g, fd, atol=1e-7)


def test_validation_and_unsupported_modules():
    with pytest.raises(InvalidInputError, match="W must be"):
        ShallowNet(torch.ones(3), torch.ones(3))
    with pytest.raises(InvalidInputError, match="a must have shape"):
        ShallowNet(torch.ones(3, 2), torch.ones(4))
    with pytest.raises(InvalidInputError, match="b must have 3"):
        ShallowNet(torch.ones(3, 2), torch.ones(3), b=torch.ones(2))
    with pytest.raises(InvalidInputError, match="activation"):
        ShallowNet(torch.ones(3, 2), torch.ones(3), activation="tanh")
    with pytest.raises(InvalidInputError, match="alpha"):
        ShallowNet(torch.ones(3, 2), torch.ones(3), activation="leaky_relu", alpha=1.5)
    with pytest.raises(InvalidInputError, match="trainable"):
        ShallowNet(torch.ones(3, 2), torch.ones(3), trainable="second")
    with pytest.raises(InvalidInputError, match="finite"):
        ShallowNet(torch.full((3, 2), float("nan")), torch.ones(3))
    net = ShallowNet.random(2, 3)
    with pytest.raises(InvalidInputError, match=r"X must have shape \(n, 2\)"):
        net(torch.ones(4, 3))
    with pytest.raises(InvalidInputError, match="theta must have"):
        net.with_parameters(torch.ones(2))
    with pytest.raises(UnsupportedLayerError, match="Tanh"):
        ShallowNet.from_torch(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)))
    with pytest.raises(UnsupportedLayerError, match="a shallow network is"):
        ShallowNet.from_torch(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
    assert isinstance(relulab.landscape.ShallowNet.random(2, 2).to_plnet(), relulab.PLNet)


def test_from_torch_reads_any_convertible_shallow_module():
    """from_torch goes through the one recognizer: a custom module with functional relu reads like the
    nn.Sequential it equals, in the module's dtype."""
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.out = nn.Linear(3, 5), nn.Linear(5, 2)

        def forward(self, x):
            return self.out(torch.nn.functional.relu(self.inp(x)))

    torch.manual_seed(0)
    m = Custom()
    net = ShallowNet.from_torch(m)
    x = torch.randn(7, 3)
    assert net.dtype == torch.float32 and net.activation == "relu" and (net.d, net.m, net.o) == (3, 5, 2)
    assert torch.equal(net.W, m.inp.weight.detach()) and torch.allclose(net(x), m(x), atol=1e-6)
    with pytest.raises(UnsupportedLayerError, match="layer 1 is relu, not a linear layer"):
        ShallowNet.from_torch(nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
