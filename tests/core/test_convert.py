"""Conversion between torch modules and PLNet: round trips on random architectures, and the
functional forms, nestings and layer options that the converter must understand."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import examples, inputs_for, module_output, random_module, tol
from torch import fx, nn

import relulab
from relulab import nn as rnn
from relulab.core.layers import MaxUnits


def flat(x):
    return x.reshape(x.shape[0], -1)


def assert_same_function(module, shape, batch=6, seed=0, rel=1e-10):
    net = relulab.PLNet.from_torch(module, shape)
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ref = module_output(module, x)
    assert torch.allclose(flat(net(x)), ref, rtol=0, atol=tol(ref, rel=rel))
    return net, x


# ----------------------------------------------------------------------------- round trips
@settings(max_examples=examples(30))
@given(random_module(), st.data())
def test_round_trip(ms, data):
    module, shape = ms
    net = relulab.PLNet.from_torch(module, shape)
    x = data.draw(inputs_for(shape, batch=5))
    ref = module_output(module, x)
    back = net.to_torch()
    assert isinstance(back, nn.Module) and not back.training
    # to_torch is made of stock layers only (plus relulab.nn's max units)
    for m in back.modules():
        assert m is back or type(m).__module__.startswith("torch.nn.") or isinstance(m, (rnn.Abs, rnn.GroupMax))
    with torch.no_grad():
        y_back = flat(back(x))
    assert torch.allclose(y_back, ref, rtol=0, atol=tol(ref))
    again = relulab.PLNet.from_torch(back, shape)
    assert again.n_units == net.n_units and again.input_shape == net.input_shape
    assert [m.kind for m in again.max_units] == [m.kind for m in net.max_units]
    assert torch.allclose(flat(again(x)), flat(net(x)), rtol=0, atol=tol(ref))
    assert torch.equal(again.pattern(x), net.pattern(x))
    A1, c1 = net.local_affine(x)
    A2, c2 = again.local_affine(x)
    assert torch.allclose(A1, A2, rtol=0, atol=tol(A1)) and torch.allclose(c1, c2, rtol=0, atol=tol(c1))


@settings(max_examples=examples(10))
@given(random_module(ties=True), st.data())
def test_round_trip_keeps_tie_patterns(ms, data):
    module, shape = ms
    net = relulab.PLNet.from_torch(module, shape)
    x = data.draw(inputs_for(shape, batch=5, ties=True))
    again = relulab.PLNet.from_torch(net.to_torch(), shape)
    assert torch.equal(again.pattern(x), net.pattern(x))
    assert torch.equal(flat(again(x)), flat(net(x)))


# ----------------------------------------------------------------------------- functional forms
class Functional(nn.Module):
    def __init__(self, form):
        super().__init__()
        self.form = form
        self.fc1, self.fc2 = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        z = self.fc1(x)
        f = self.form
        if f == "torch.relu":
            z = torch.relu(z)
        elif f == "F.relu":
            z = F.relu(z)
        elif f == "F.relu_inplace":
            z = F.relu(z, inplace=True)
        elif f == "method.relu":
            z = z.relu()
        elif f == "leaky_pos":
            z = F.leaky_relu(z, 0.3)
        elif f == "leaky_default":
            z = F.leaky_relu(z)
        elif f == "leaky_inplace":
            z = F.leaky_relu(z, -0.2, inplace=True)
        elif f == "abs":
            z = torch.abs(z)
        elif f == "operator.abs":
            z = abs(z)
        elif f == "method.abs":
            z = z.abs()
        return self.fc2(z)


@pytest.mark.parametrize("form", ["torch.relu", "F.relu", "F.relu_inplace", "method.relu", "leaky_pos",
                                  "leaky_default", "leaky_inplace", "abs", "operator.abs", "method.abs"])
def test_functional_activations(form):
    module = Functional(form).double().eval()
    net, x = assert_same_function(module, (3,))
    assert len(net.max_units) == 1
    expected = "leaky_relu" if "leaky" in form else ("relu" if "relu" in form else "abs")
    assert net.max_units[0].kind == expected


class Reshapes(nn.Module):
    def __init__(self, form):
        super().__init__()
        self.form = form
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        z = F.relu(self.conv(x))
        f = self.form
        if f == "shape0":
            z = z.view(z.shape[0], -1)
        elif f == "size0":
            z = z.view(z.size(0), -1)
        elif f == "reshape_tuple":
            z = z.reshape((z.size(0), 48))
        elif f == "minus1":
            z = z.view(-1, 48)
        elif f == "flatten_kw":
            z = torch.flatten(z, start_dim=1)
        elif f == "two_steps":
            z = z.view(z.size(0), 3, 16).flatten(1)
        return self.fc(z)


@pytest.mark.parametrize("form", ["shape0", "size0", "reshape_tuple", "minus1", "flatten_kw", "two_steps"])
def test_reshape_forms(form):
    module = Reshapes(form).double().eval()
    net, x = assert_same_function(module, (2, 4, 4))
    back = net.to_torch()
    assert torch.allclose(flat(back(x)), module_output(module, x), atol=1e-12)


class Unflat(nn.Module):
    """A reshape between two non-flat shapes must survive to_torch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 1)
        self.conv2 = nn.Conv2d(2, 1, 2)

    def forward(self, x):
        z = torch.relu(self.conv(x))          # (4, 6)
        z = z.view(z.size(0), 2, 2, 6)       # (2, 2, 6)
        return self.conv2(z).flatten(1)


def test_non_flat_reshape_round_trip():
    module = Unflat().double().eval()
    net, x = assert_same_function(module, (2, 6))
    back = net.to_torch()
    assert torch.allclose(flat(back(x)), module_output(module, x), atol=1e-12)
    again = relulab.PLNet.from_torch(back, (2, 6))
    assert torch.allclose(again(x), net(x), atol=1e-12)


class Inner(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.lin = nn.Linear(w, w)

    def forward(self, x):
        return x + F.relu(self.lin(x))


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
        self.blocks = nn.Sequential(Inner(4), nn.Sequential(Inner(4), nn.LeakyReLU(0.1)), Inner(4))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def test_custom_modules_nested_at_any_depth():
    net, x = assert_same_function(Outer().double().eval(), (3,))
    assert sum(n.layer.kind == "add" for n in net.nodes[1:]) == 3
    # Sequential -> custom -> Sequential -> custom
    seq = nn.Sequential(nn.Linear(3, 4), nn.Sequential(Inner(4), Outer().blocks), nn.Linear(4, 1)).double().eval()
    net, _ = assert_same_function(seq, (3,))
    names = [n.name for n in net.nodes[1:]]
    assert "1.1.1.0.lin" in names  # dotted paths through nested containers and traced modules


class SelfAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x):
        z = torch.relu(self.lin(x))
        return z + z


class DeadBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 3), nn.Linear(2, 3)

    def forward(self, x):
        unused = torch.relu(self.b(x))  # noqa: F841  (computed, never returned)
        return self.a(x)


class Identity(nn.Module):
    def forward(self, x):
        unused = torch.relu(x)  # noqa: F841
        return x


def test_degenerate_graphs():
    net, _ = assert_same_function(SelfAdd().double().eval(), (2,))
    assert net.nodes[-1].inputs[0] == net.nodes[-1].inputs[1]
    net, _ = assert_same_function(DeadBranch().double().eval(), (2,))
    assert net.n_units == 0 and len(net.nodes) == 2  # the unused ReLU branch is pruned
    net, x = assert_same_function(Identity(), (2, 3))
    assert len(net.nodes) == 1 and net.output_shape == (2, 3) and net.n_units == 0
    assert torch.equal(net(x), x)
    A, c = net.local_affine(x)
    assert torch.equal(A, torch.eye(6, dtype=torch.float64).expand(6, 6, 6)) and bool((c == 0).all())
    G, h = net.region_inequalities(net.pattern(x))
    assert G.shape == (6, 0, 6) and h.shape == (6, 0)
    assert isinstance(net.to_torch(), nn.Module)


def test_stock_layers_and_options():
    cases = [
        (nn.Sequential(nn.Dropout(0.5), nn.Dropout1d(0.2), nn.Linear(3, 3), nn.AlphaDropout(0.1), nn.ReLU()), (3,)),
        (nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, groups=2), nn.Dropout2d(0.3), nn.ReLU(),
                       nn.AvgPool2d(2, divisor_override=3), nn.Flatten(), nn.Unflatten(1, (4, 4)),
                       nn.MaxPool1d(2), nn.Flatten()), (2, 4, 4)),
        (nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3)), nn.BatchNorm1d(2), rnn.GroupMax(2), nn.Flatten()), (4,)),
        (nn.Sequential(nn.LeakyReLU(1.0), nn.Identity(), rnn.Abs()), (3,)),
        (nn.Sequential(nn.Conv1d(1, 2, 3, bias=False), nn.MaxPool1d(3, stride=2, padding=1, dilation=2, ceil_mode=True)),
         (1, 9)),
        (nn.Sequential(nn.Conv2d(1, 1, 2), nn.AvgPool2d((2, 3), stride=(1, 2), padding=(1, 1), ceil_mode=True,
                                                         count_include_pad=False)), (1, 5, 6)),
        (rnn.Maxout(3, 2, 3), (3,)),
        (nn.ReLU(), (2, 2)),
    ]
    for module, shape in cases:
        module = module.double().eval()
        for m in module.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
        net, x = assert_same_function(module, shape)
        back = net.to_torch()
        assert torch.allclose(flat(back(x)), module_output(module, x), atol=1e-12)
    # LeakyReLU(1) is the identity: no units
    assert relulab.PLNet.from_torch(nn.LeakyReLU(1.0), (3,)).n_units == 0


def test_module_dtype_and_device_do_not_matter():
    m32 = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))  # float32 parameters
    net = relulab.PLNet.from_torch(m32, (3,))
    assert net.dtype == torch.float64 and net.nodes[1].layer.weight.dtype == torch.float64
    x = torch.randn(5, 3)
    assert torch.allclose(net(x).float(), m32(x), atol=1e-6)
    # the parameters are copied: later changes to the module do not leak in
    with torch.no_grad():
        m32[0].weight.add_(1.0)
    assert not torch.allclose(net(x).float(), m32(x), atol=1e-3)


def test_to_torch_is_a_graph_module_with_adds():
    net = relulab.PLNet.from_torch(Outer().double().eval(), (3,))
    gm = net.to_torch()
    assert isinstance(gm, fx.GraphModule)
    adds = [n for n in gm.graph.nodes if n.op == "call_function" and n.target is operator.add]
    assert len(adds) == 3


def test_maxpool_windows_are_index_sets():
    # a window's pieces are the window's in-bounds positions, valid ones first
    net = relulab.PLNet.from_torch(nn.MaxPool2d(2, stride=1, padding=1), (1, 2, 2))
    mp = net.max_units[0]
    assert isinstance(mp, MaxUnits) and mp.units == 9 and mp.out_shape == (1, 3, 3)
    assert mp.n_pieces.tolist() == [1, 2, 1, 2, 4, 2, 1, 2, 1]
    assert mp.index[4, :4].tolist() == [0, 1, 2, 3]
    assert mp.index[0, 0].item() == 0 and mp.index[8, 0].item() == 3


# ----------------------------------------------------------------------------- every call, verified
def _shared_instances():
    torch.manual_seed(3)
    act = nn.ReLU()
    twice_act = nn.Sequential(nn.Linear(2, 8), act, nn.Linear(8, 8), act, nn.Linear(8, 1))
    lin = nn.Linear(6, 6)
    twice_lin = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), lin, nn.ReLU(), lin, nn.ReLU(), nn.Linear(6, 1))
    inner = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    twice_block = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), inner, inner, nn.Linear(4, 1))
    return [(twice_act.double(), 16), (twice_lin.double(), 18), (twice_block.double(), 12)]


@pytest.mark.parametrize("case", range(3))
def test_a_module_instance_called_twice_is_converted_at_every_call(case):
    module, units = _shared_instances()[case]
    net, x = assert_same_function(module, (2,), batch=200)
    assert net.n_units == units
    # the reference: the same network with distinct instances
    import copy
    distinct = nn.Sequential(*(copy.deepcopy(m) for m in module))
    assert torch.equal(net.pattern(x), relulab.PLNet.from_torch(distinct, (2,)).pattern(x))


def test_traced_module_calling_a_submodule_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.mid, self.out = nn.Linear(2, 5), nn.Linear(5, 5), nn.Linear(5, 1)
            self.alias = self.mid  # one instance under two names
            self.act = nn.LeakyReLU(0.2)

        def forward(self, x):
            return self.out(self.act(self.alias(self.act(self.mid(self.act(self.inp(x)))))))

    net, _ = assert_same_function(Twice().double(), (2,), batch=100)
    assert net.n_units == 15


def test_conversion_that_misses_what_the_module_does_is_refused():
    # a forward hook changes the module's output; the layer graph does not show it
    module = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    module[1].register_forward_hook(lambda m, i, o: o * 2.0)
    with pytest.raises(relulab.UnsupportedLayerError, match="differs from the module"):
        relulab.PLNet.from_torch(module, (2,))
    net = relulab.PLNet.from_torch(module, (2,), verify=False)  # the unchecked conversion is what it was
    assert net.n_units == 8


def test_verification_probes_both_sides_of_every_unit(monkeypatch):
    # a unit whose kink only the crossing probes reach: the random probes never switch it, so a
    # converter dropping that one ReLU is caught by the probes next to its kink
    from relulab.core import convert

    lin1 = nn.Linear(2, 2)
    with torch.no_grad():
        lin1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        lin1.bias.copy_(torch.tensor([0.0, 40.0]))  # unit 1 is active at every standard normal probe
    module = nn.Sequential(lin1, nn.ReLU(), nn.Linear(2, 1)).double()
    net = relulab.PLNet.from_torch(module, (2,), verify=False)
    layer = net.max_units[0]
    # a wrong conversion that shows only on the negative side of unit 1: leaky there instead of ReLU
    layer.coef = layer.coef.clone()
    layer.coef[1, 0] = 0.5
    x = torch.randn(convert._PROBE_RANDOM, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(net(x), module(x))  # random probes alone cannot tell
    with pytest.raises(relulab.UnsupportedLayerError, match="kink"):
        convert.verify(module, net)


def test_verification_cost_is_bounded_by_the_probe_count():
    from relulab.core import convert

    module = nn.Sequential(nn.Linear(3, 300), nn.ReLU(), nn.Linear(300, 1))
    calls = []
    module.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    relulab.PLNet.from_torch(module, (3,))
    assert calls and max(calls) <= convert._PROBE_RANDOM + 2 * convert._PROBE_UNITS


# ----------------------------------------------------------------------------- non-finite and complex parameters
def _mlp(**kw):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1), **kw)


@pytest.mark.parametrize("spoil, match", [
    (lambda m: m[0].bias.data.__setitem__(1, float("inf")), "bias of '0' has 1 NaN or infinite"),
    (lambda m: m[2].weight.data.fill_(float("nan")), "weight of '2' has 4 NaN or infinite"),
])
def test_non_finite_parameters_are_refused(spoil, match):
    m = _mlp()
    spoil(m)
    with pytest.raises(relulab.InvalidInputError, match=match):
        relulab.PLNet.from_torch(m, (2,))


def test_complex_sparse_meta_parameters_and_huge_slopes_are_refused():
    m = nn.Sequential(nn.Linear(2, 3, dtype=torch.complex64), nn.ReLU(), nn.Linear(3, 1, dtype=torch.complex64))
    with pytest.raises(relulab.InvalidInputError, match="complex"):
        relulab.PLNet.from_torch(m, (2,))
    with torch.device("meta"):
        meta = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with pytest.raises(relulab.InvalidInputError, match="meta device"):
        relulab.PLNet.from_torch(meta, (2,))
    sparse = _mlp()
    sparse[0].weight = nn.Parameter(sparse[0].weight.detach().to_sparse())
    with pytest.raises(relulab.InvalidInputError, match="sparse|dense"):
        relulab.PLNet.from_torch(sparse, (2,))
    for slope in (-1e308, float("nan"), float("-inf")):
        with pytest.raises(relulab.InvalidInputError, match="slope"):
            relulab.PLNet.from_torch(nn.Sequential(nn.Linear(2, 3), nn.LeakyReLU(slope), nn.Linear(3, 1)), (2,))
    bn = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1)).eval()
    bn[1].running_var.fill_(0.0)
    bn[1].eps = 0.0  # 1 / sqrt(0): an infinite folded scale
    with pytest.raises(relulab.InvalidInputError, match="folded scale"):
        relulab.PLNet.from_torch(bn, (2,))


def test_weights_that_overflow_on_unit_inputs_are_refused():
    m = _mlp().double()
    with torch.no_grad():
        m[0].weight.mul_(1e300)
        m[2].weight.mul_(1e300)
    with pytest.raises(relulab.InvalidInputError, match="overflow"):
        relulab.PLNet.from_torch(m, (2,))
