"""Unit functions and their exact input gradients against independent references: autograd Jacobians
of the torch model's pre-activations (ReLU / leaky / abs MLPs) and central differences of the top-two
gap (maxout, max-pooling CNNs)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import relulab.nn as rnn
from relulab import PLNet
from relulab.complexity import unit_gradients


def _preacts(model, x):
    """Outputs of every Linear except the last: the hidden pre-activations of an MLP."""
    outs, h = [], x
    lins = [m for m in model if isinstance(m, nn.Linear)]
    for m in model:
        h = m(h)
        if isinstance(m, nn.Linear) and m is not lins[-1]:
            outs.append(h)
    return torch.cat(outs, -1)


@settings(max_examples=12)
@given(d=st.integers(1, 40), w1=st.integers(1, 12), w2=st.integers(1, 12), act=st.sampled_from(["relu", "leaky", "abs"]),
       seed=st.integers(0, 10**6))
def test_mlp_gradients_match_autograd(d, w1, w2, act, seed):
    torch.manual_seed(seed)
    A = {"relu": nn.ReLU, "leaky": lambda: nn.LeakyReLU(0.2), "abs": rnn.Abs}[act]
    model = nn.Sequential(nn.Linear(d, w1), A(), nn.Linear(w1, w2), A(), nn.Linear(w2, 3)).double()
    net = PLNet.from_torch(model, (d,))
    x = torch.randn(7, d, dtype=torch.float64)
    ug = unit_gradients(net, x, outputs=True, vectors=True)
    J = torch.func.vmap(torch.func.jacrev(lambda v: _preacts(model, v)))(x)  # (n, U, d)
    assert torch.allclose(ug.vectors, J, atol=1e-11, rtol=1e-9)
    assert torch.allclose(ug.z, _preacts(model, x), atol=1e-12, rtol=1e-10)
    assert torch.allclose(ug.grad_norm, J.norm(dim=-1), atol=1e-11, rtol=1e-9)
    Jo = torch.func.vmap(torch.func.jacrev(model))(x)
    assert torch.allclose(ug.output_grad.norm(dim=1), Jo.norm(dim=-1), atol=1e-11, rtol=1e-9)


def _fd_gap_norms(net, x, eps=1e-6):
    d = x.shape[1]
    cols = []
    for k in range(d):
        e = torch.zeros(d, dtype=x.dtype)
        e[k] = eps
        zp = unit_gradients(net, x + e, gradients=False).z
        zm = unit_gradients(net, x - e, gradients=False).z
        cols.append((zp - zm) / (2 * eps))
    return torch.stack(cols, -1).norm(dim=-1)


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.Sequential(rnn.Maxout(4, 5, 3), rnn.Maxout(5, 3, 2), nn.Linear(3, 1)), (4,)),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 3)), (1, 8, 8)),
])
def test_max_units_gap_gradients_match_differences(make, shape):
    torch.manual_seed(0)
    net = PLNet.from_torch(make().double(), shape)
    x = torch.randn(4, net.input_dim, dtype=torch.float64)
    ug = unit_gradients(net, x)
    ref = _fd_gap_norms(net, x)
    fin = torch.isfinite(ug.z) & (ug.z.abs() > 1e-4)  # away from ties the gap is affine near x
    assert fin.any()
    assert torch.allclose(ug.grad_norm[fin], ref[fin], atol=1e-7)


def test_tangent_basis_rank_reduction_is_exact():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(50, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    net = PLNet.from_torch(model, (50,))
    x = torch.randn(5, 50, dtype=torch.float64)
    ug = unit_gradients(net, x, features=True, vectors=True)
    assert ug.basis_rank == 6
    assert torch.allclose(ug.vectors, torch.func.vmap(torch.func.jacrev(lambda v: _preacts(model, v)))(x), atol=1e-12)
    J = torch.func.vmap(torch.func.jacrev(lambda v: _preacts(model, v)))(x)
    assert torch.allclose(ug.grad_norm, J.norm(dim=-1), atol=1e-12)
    feats = torch.func.vmap(torch.func.jacrev(lambda v: model[:4](v)))(x)  # (n, 5, 50)
    s_ref = torch.linalg.svdvals(feats)
    s = torch.linalg.svdvals(ug.features.transpose(1, 2))
    assert torch.allclose(s, s_ref, atol=1e-12)
    assert math.isfinite(float(ug.z.sum()))


def test_tangent_groups_under_a_small_memory_budget_give_the_same_result():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(27, 4)).double()
    net = PLNet.from_torch(model, (1, 8, 8))
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    big = unit_gradients(net, x, features=True, outputs=True, vectors=True)
    small = unit_gradients(net, x, features=True, outputs=True, vectors=True, memory=400_000)
    for a, b in ((big.grad_norm, small.grad_norm), (big.vectors, small.vectors), (big.z, small.z)):
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.allclose(torch.linalg.svdvals(big.features), torch.linalg.svdvals(small.features), atol=1e-12)
    assert torch.allclose(big.output_grad.norm(dim=1), small.output_grad.norm(dim=1), atol=1e-12)
