"""The one architecture recognizer: MLPs, CNNs, shallow networks and output activations, read off
PLNets; the spec of a network; ShallowNet.from_plnet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import relulab
from relulab import nn as rnn
from relulab.core import io as rio
from relulab.core.errors import InvalidInputError, UnsupportedLayerError
from relulab.core.recognize import architecture, trace


@pytest.mark.parametrize("spec", ["mlp:3-8-8-2:relu", "mlp:2-5-1:abs", "mlp:4-6-6-3:leaky_relu:0.2",
                                  "mlp:4-6-3:maxout:3", "mlp:2-1", "mlp:2-8-1:relu:out=relu",
                                  "mlp:2-8-8-3:abs:out=leaky_relu:0.25", "cnn:1x8x8-c4k3p1-m2-7-2:relu",
                                  "cnn:2x9-c3k2s2-a2-4:abs:out=abs"])
def test_the_spec_of_a_built_spec_is_the_spec(spec):
    parsed = rio.parse_arch(spec)
    net = relulab.PLNet.from_torch(parsed.module(seed=0), parsed.input_shape)
    arch = architecture(net)
    assert arch.spec() == parsed
    assert str(arch.spec()) == str(parsed)


def test_mlp_fields_and_shallowness():
    a = architecture(relulab.PLNet.from_torch(rio.build("mlp:3-8-5-2:leaky_relu:0.1", seed=0), (3,)))
    assert (a.family, a.widths, a.depth, a.activation, a.param) == ("mlp", (3, 8, 5, 2), 2, "leaky_relu", 0.1)
    assert not a.is_shallow and a.fully_connected
    s = architecture(rio.build("mlp:2-16-1:abs", seed=0))  # modules are converted first
    assert s.is_shallow and s.depth == 1
    assert not architecture(rio.build("mlp:2-16-1:relu:out=relu", seed=0)).is_shallow
    assert not architecture(rio.build("mlp:2-16-1:maxout:2", seed=0)).is_shallow


def test_networks_outside_the_grammar_say_why():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 1)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)) + x)

    cases = [(Res(), "plain chain"),
             (nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 4), rnn.Abs(), nn.Linear(4, 1)), "mixes"),
             (nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 1)), "not followed by an activation"),
             (nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 1)), "not a linear layer")]
    for module, words in cases:
        a = architecture(module, (3,) if isinstance(module, Res) else None)
        assert a.family is None and words in a.why
        with pytest.raises(InvalidInputError, match="no architecture spec"):
            a.spec()
        with pytest.raises(UnsupportedLayerError, match="fully connected"):
            a.require_mlp("this")
    conv = architecture(relulab.PLNet.from_torch(rio.build("cnn:1x6x6-c2k3-4", seed=0), (1, 6, 6)))
    with pytest.raises(UnsupportedLayerError, match="convolution or pooling"):
        conv.require_mlp("this")
    flat = architecture(relulab.PLNet.from_torch(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(),
                                                               nn.Linear(3, 1)), (1, 2, 2)))
    assert flat.require_mlp("this").depth == 1


def test_shallow_net_from_plnet_has_the_same_function():
    for spec in ("mlp:3-7-2:relu", "mlp:2-5-1:leaky_relu:0.3", "mlp:2-4-3:abs"):
        module = rio.build(spec, seed=1).double()
        net = relulab.PLNet.from_torch(module, rio.parse_arch(spec).input_shape)
        sh = relulab.landscape.ShallowNet.from_plnet(net, trainable="first")
        x = torch.randn(20, net.input_dim, dtype=torch.float64)
        assert torch.allclose(sh(x), net(x), atol=1e-12) and sh.trainable == "first"
    deep = relulab.PLNet.from_torch(rio.build("mlp:2-4-4-1", seed=0), (2,))
    with pytest.raises(UnsupportedLayerError, match="2 hidden layers"):
        relulab.landscape.ShallowNet.from_plnet(deep)


def test_one_tracer_keeps_repeated_calls():
    lin = nn.Linear(3, 3)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return self.lin(torch.relu(self.lin(x)))

    calls = [n for n in trace(Twice()).nodes if n.op == "call_module"]
    assert [n.target for n in calls] == ["lin", "lin"]


def test_chain_of_linear_layers_any_activations():
    """The chain: one entry per linear layer with the activation after it, also where the MLP grammar does
    not apply (maxout ranks differ, a hidden layer without activation); module paths are the PLNet's."""
    m = nn.Sequential(rnn.Maxout(3, 6, 3), rnn.Maxout(6, 5, 2), nn.Linear(5, 4), nn.Linear(4, 2))
    a = architecture(m)
    assert a.family is None
    assert a.chain == (("0.linear", 6, "maxout", 3), ("1.linear", 5, "maxout", 2), ("2", 4, None, None),
                       ("3", 2, None, None))
    b = architecture(nn.Sequential(nn.Linear(3, 6), rnn.GroupMax(2), nn.Linear(3, 1), nn.ReLU()))
    assert b.is_mlp and b.output_activation == "relu" and b.chain == (("0", 3, "maxout", 2), ("2", 1, None, None))
    assert architecture(rio.build("cnn:1x6x6-c2k3-4", seed=0), (1, 6, 6)).chain == ()
    assert architecture(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 1))).chain == ()
