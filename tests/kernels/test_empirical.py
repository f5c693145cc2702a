"""Empirical NTK against the explicit product J J^T of dense autograd Jacobians."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import relulab
from relulab.core.errors import ResourceLimitError
from relulab.kernels import NTKResult, empirical_ntk, ntk_spectrum
from strategies import examples, random_module

METHODS = ("jacobian", "ntvp", "structured", "auto")


def dense_jacobian(model: nn.Module, X: torch.Tensor, rates=None) -> torch.Tensor:
    """(n, o, P) by torch.autograd.functional.jacobian of the batch output (no torch.func)."""
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    params = tuple(dict(model.named_parameters())[k].detach() for k in names)

    def f(*ps):
        return torch.func.functional_call(model, dict(zip(names, ps)), (X,)).reshape(X.shape[0], -1)

    jac = torch.autograd.functional.jacobian(f, params)
    n = X.shape[0]
    o = jac[0].shape[1]
    parts = []
    for k, j in zip(names, jac):
        scale = math.sqrt((rates or {}).get(k, 1.0))
        parts.append(j.reshape(n, o, -1) * scale)
    return torch.cat(parts, 2)


def reference(model, X1, X2=None, rates=None):
    J1 = dense_jacobian(model, X1, rates)
    J2 = J1 if X2 is None else dense_jacobian(model, X2, rates)
    return torch.einsum("iap,jbp->ijab", J1, J2)


def as_expected(ref, trace):
    if trace or ref.shape[-1] == 1:
        return ref.diagonal(dim1=2, dim2=3).sum(-1)
    return ref


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 7), nn.ReLU(), nn.Linear(7, 5), nn.LeakyReLU(0.2), nn.Linear(5, 3)).double()


def cnn():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 2 * 2, 2)).double()


def maxout():
    torch.manual_seed(2)
    return nn.Sequential(relulab.nn.Maxout(3, 4, 3), relulab.nn.Abs(), nn.Linear(4, 1)).double()


MODELS = {"mlp": (mlp, (3,)), "cnn": (cnn, (1, 6, 6)), "maxout": (maxout, (3,))}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("sym", [True, False])
def test_all_methods_match_dense_jacobian_product(name, sym):
    make, shape = MODELS[name]
    model = make()
    g = torch.Generator().manual_seed(3)
    X1 = torch.randn(5, *shape, generator=g, dtype=torch.float64)
    X2 = None if sym else torch.randn(4, *shape, generator=g, dtype=torch.float64)
    ref = reference(model, X1, X2)
    seen = set()
    for method in METHODS:
        for trace in (False, True):
            want = as_expected(ref, trace)
            results = []
            for chunk in ((None, 2) if not trace else (None,)):
                try:
                    r = empirical_ntk(model, X1, X2, method=method, trace_outputs=trace, chunk_size=chunk)
                except relulab.InvalidInputError:
                    assert method == "structured" and name == "cnn"
                    break
                assert r.kernel.shape == want.shape
                torch.testing.assert_close(r.kernel, want, rtol=1e-10, atol=1e-10)
                results.append(r.kernel)
                seen.add(r.method)
            for other in results[1:]:  # chunked and unchunked agree to rounding
                torch.testing.assert_close(other, results[0], rtol=1e-12, atol=1e-12)
    assert {"jacobian", "ntvp"} <= seen
    if name != "cnn":
        assert "structured" in seen


def test_auto_picks_structured_for_linear_models_and_not_for_convolutions():
    X = torch.randn(4, 3, dtype=torch.float64)
    assert empirical_ntk(mlp(), X).method == "structured"
    Xc = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    r = empirical_ntk(cnn(), Xc)
    assert r.method in ("jacobian", "ntvp")
    assert set(r.cost_estimates) == {"jacobian", "ntvp"}
    # a weight-shared convolution makes the forward pass dear next to P: contraction is cheaper
    assert r.cost_estimates["jacobian"] < r.cost_estimates["ntvp"] and r.method == "jacobian"


def test_vector_output_kernel_symmetry_and_trace():
    X = torch.randn(6, 3, dtype=torch.float64)
    r = empirical_ntk(mlp(), X, method="jacobian")
    K = r.kernel
    assert K.shape == (6, 6, 3, 3) and r.n_outputs == 3
    torch.testing.assert_close(K, K.permute(1, 0, 3, 2))
    tr = empirical_ntk(mlp(), X, method="ntvp", trace_outputs=True).kernel
    torch.testing.assert_close(tr, K.diagonal(dim1=2, dim2=3).sum(-1))


@settings(max_examples=examples(10), deadline=None)
@given(random_module(families=("mlp", "cnn1d", "residual"), max_width=5), st.integers(0, 2**31 - 1),
       st.sampled_from(METHODS))
def test_random_modules_match_dense_reference(drawn, seed, method):
    module, shape = drawn
    g = torch.Generator().manual_seed(seed)
    X1 = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    X2 = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    if not any(p.requires_grad for p in module.parameters()):
        return
    ref = reference(module, X1, X2)
    try:
        r = empirical_ntk(module, X1, X2, method=method, chunk_size=2)
    except relulab.InvalidInputError:
        assert method == "structured"
        return
    torch.testing.assert_close(r.kernel, as_expected(ref, False), rtol=1e-9, atol=1e-9)


def test_learning_rates_weight_each_parameter():
    model = mlp()
    rates = {"0.weight": 0.25, "2.bias": 3.0, "4.weight": 0.0}
    X1 = torch.randn(4, 3, dtype=torch.float64)
    ref = reference(model, X1, rates=rates)
    for method in ("jacobian", "ntvp", "structured"):
        K = empirical_ntk(model, X1, method=method, learning_rates=rates).kernel
        torch.testing.assert_close(K, ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(relulab.InvalidInputError, match="learning_rates"):
        empirical_ntk(model, X1, learning_rates={"nope": 1.0})
    with pytest.raises(relulab.InvalidInputError, match="learning_rates"):
        empirical_ntk(model, X1, learning_rates={"0.weight": -1.0})


def test_frozen_parameters_are_left_out():
    model = mlp()
    model[0].weight.requires_grad_(False)
    X = torch.randn(3, 3, dtype=torch.float64)
    ref = reference(model, X)
    for method in ("jacobian", "structured"):
        r = empirical_ntk(model, X, method=method)
        assert r.n_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
        torch.testing.assert_close(r.kernel, ref)


def test_memory_budget_sets_chunks_and_is_respected():
    model = cnn()
    X = torch.randn(12, 1, 6, 6, dtype=torch.float64)
    big = empirical_ntk(model, X, method="jacobian")
    assert big.chunk_sizes == (12, 12) and big.estimated_peak_bytes <= big.memory_budget
    P = big.n_params
    assert P > 0
    panels = []
    for frac in (0.5, 0.3, 0.2, 0.1, 0.05):  # less and less room beside the kernel
        budget = big.kernel_bytes + int(frac * big.estimated_peak_bytes)
        try:
            small = empirical_ntk(model, X, method="jacobian", memory_budget=budget)
        except ResourceLimitError:
            break
        assert small.estimated_peak_bytes + small.kernel_bytes <= budget
        torch.testing.assert_close(small.kernel, big.kernel, rtol=1e-12, atol=1e-12)
        panels.append(small.chunk_sizes[0])
    assert panels and min(panels) < 12
    budget = big.kernel_bytes + int(0.5 * big.estimated_peak_bytes)
    nt = empirical_ntk(model, X, method="ntvp", memory_budget=budget)
    assert nt.estimated_peak_bytes + nt.kernel_bytes <= budget
    torch.testing.assert_close(nt.kernel, big.kernel, rtol=1e-10, atol=1e-10)
    with pytest.raises(ResourceLimitError, match="memory_budget"):
        empirical_ntk(model, X, method="jacobian", memory_budget=100)


@pytest.mark.parametrize("method", ["jacobian", "structured"])
@pytest.mark.parametrize("sym", [True, False])
def test_panels_whose_height_is_not_a_multiple_of_the_column_chunk(method, sym):
    """Row panels of c1 samples against column chunks of c2 that do not divide c1: the panel's last own
    column chunk ends at the panel's end. Every budget from 'one sample per chunk' up gives the dense
    reference, and some of them make such panels (c1 % c2 != 0, c1 < n)."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(5, 20), nn.ReLU(), nn.Linear(20, 1)).double()
    X1 = torch.randn(50, 5, dtype=torch.float64)
    X2 = None if sym else torch.randn(23, 5, dtype=torch.float64)
    ref = as_expected(reference(model, X1, X2), True)
    full = empirical_ntk(model, X1, X2, method=method)
    odd = 0
    for frac in np.linspace(0.02, 0.6, 30):
        budget = full.kernel_bytes + int(frac * full.estimated_peak_bytes)
        try:
            r = empirical_ntk(model, X1, X2, method=method, memory_budget=budget)
        except ResourceLimitError:
            continue
        c1, c2 = r.chunk_sizes
        odd += c1 < 50 and c1 % c2 != 0
        torch.testing.assert_close(r.kernel, ref, rtol=1e-12, atol=1e-12)
    assert odd >= 1


def test_memory_budget_bounds_the_kernel_itself(monkeypatch):
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    X = torch.randn(20_000, 2, dtype=torch.float64)  # kernel: 20,000^2 float64 = 3.2 GB
    allocated = []
    real_empty = torch.empty

    def watch(*shape, **kw):
        allocated.append(math.prod(shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape))
        return real_empty(*shape, **kw)

    monkeypatch.setattr(torch, "empty", watch)
    for method in ("auto", "jacobian", "ntvp"):
        with pytest.raises(ResourceLimitError, match=r"kernel itself.*memory_budget = 1(\.0\d*)? MiB"):
            empirical_ntk(model, X, method=method, memory_budget=2**20)
    assert not any(a >= 20_000 * 20_000 for a in allocated)
    assert issubclass(ResourceLimitError, MemoryError)
    # (n, n, o, o) kernels count o^2 numbers per pair; trace_outputs=True fits where the full one does not
    m3 = nn.Sequential(nn.Linear(2, 3)).double()
    X3 = torch.randn(40, 2, dtype=torch.float64)
    budget = 40 * 40 * 8 * 4
    with pytest.raises(ResourceLimitError, match="trace_outputs"):
        empirical_ntk(m3, X3, memory_budget=budget)
    r = empirical_ntk(m3, X3, memory_budget=budget, trace_outputs=True)
    assert r.kernel_bytes + r.estimated_peak_bytes <= budget


@pytest.mark.parametrize("sym", [True, False])
@pytest.mark.parametrize("frac", [None, 1.0, "10 rows"])
def test_jacobians_are_computed_once_when_the_budget_holds_them(monkeypatch, sym, frac):
    """The generic path keeps a row panel of Jacobians: with room for all of them every sample's
    Jacobian is computed exactly once; with less, once per panel (and the result is unchanged)."""
    from relulab.kernels import empirical as emp

    class Custom(nn.Module):  # not a plain Linear stack: takes the generic Jacobian path
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 6), nn.Linear(6, 2)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)) * 2.0)

    torch.manual_seed(3)
    model = Custom().double()
    X1 = torch.randn(17, 3, dtype=torch.float64)
    X2 = None if sym else torch.randn(9, 3, dtype=torch.float64)
    seen = []
    real = emp._jacobian_features

    def counting(setup, X, out=None):
        seen.append(X.shape[0])
        return real(setup, X, out=out)

    full = empirical_ntk(model, X1, X2, method="jacobian")
    budget = None if frac is None else full.kernel_bytes + (full.estimated_peak_bytes if frac == 1.0 else
                                                             10 * 2 * full.n_params * 8)
    monkeypatch.setattr(emp, "_jacobian_features", counting)
    kw = {} if budget is None else {"memory_budget": budget}
    r = empirical_ntk(model, X1, X2, method="jacobian", **kw)
    torch.testing.assert_close(r.kernel, reference(model, X1, X2), rtol=1e-12, atol=1e-12)
    n_all = 17 if sym else 26
    c1 = r.chunk_sizes[0]
    panels = -(-17 // c1)
    if frac is None or frac == 1.0:  # the budget holds every Jacobian: each is computed once
        assert c1 == 17 and sum(seen) == n_all
    else:
        assert r.estimated_peak_bytes + r.kernel_bytes <= budget
        assert c1 < 17
        # rows once; columns once per panel (symmetric: only the columns after the panel)
        assert 17 < sum(seen) <= 17 + panels * (17 if sym else 9)


def test_float64_option_and_plnet_input():
    torch.manual_seed(5)
    m32 = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 1))
    X = torch.randn(5, 2)
    r = empirical_ntk(m32, X, dtype=torch.float64)
    assert r.kernel.dtype == torch.float64
    ref = reference(m32.double(), X.double())[..., 0, 0]
    torch.testing.assert_close(r.kernel, ref, rtol=1e-12, atol=1e-12)
    assert empirical_ntk(m32.float(), X).kernel.dtype == torch.float32
    net = relulab.PLNet.from_torch(m32, (2,))
    for method in ("auto", "jacobian"):
        torch.testing.assert_close(empirical_ntk(net, X.double(), method=method).kernel, ref, rtol=1e-12, atol=1e-12)


def test_plnet_with_conv_and_flattened_inputs():
    model = cnn()
    net = relulab.PLNet.from_torch(model, (1, 6, 6))
    X = torch.randn(3, 1, 6, 6, dtype=torch.float64)
    ref = as_expected(reference(model, X), False)
    torch.testing.assert_close(empirical_ntk(net, X.reshape(3, 36)).kernel, ref, rtol=1e-10, atol=1e-10)


def test_invalid_arguments():
    X = torch.randn(3, 3, dtype=torch.float64)
    with pytest.raises(relulab.InvalidInputError, match="method"):
        empirical_ntk(mlp(), X, method="fast")
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).double()
    with pytest.raises(relulab.InvalidInputError, match="eval"):
        empirical_ntk(bn, X)
    frozen = mlp().requires_grad_(False)
    with pytest.raises(relulab.InvalidInputError, match="trainable"):
        empirical_ntk(frozen, X)
    with pytest.raises(relulab.InvalidInputError, match="model"):
        empirical_ntk("not a model", X)
    with pytest.raises(relulab.InvalidInputError, match="structured"):
        empirical_ntk(cnn(), torch.randn(2, 1, 6, 6, dtype=torch.float64), method="structured")
    with pytest.raises(relulab.InvalidInputError, match="x1"):
        empirical_ntk(mlp(), torch.zeros(0, 3, dtype=torch.float64))
    with pytest.raises(relulab.InvalidInputError, match="same per-sample shape"):
        empirical_ntk(mlp(), X, torch.randn(2, 4, dtype=torch.float64))


def test_eval_mode_batchnorm_is_fine_and_matches_reference():
    torch.manual_seed(6)
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).double().eval()
    with torch.no_grad():
        bn[1].running_mean.uniform_(-1, 1)
        bn[1].running_var.uniform_(0.5, 2)
    X = torch.randn(4, 3, dtype=torch.float64)
    ref = reference(bn, X)
    r = empirical_ntk(bn, X)
    assert r.method in ("jacobian", "ntvp")  # BatchNorm parameters are not in Linear layers
    torch.testing.assert_close(r.kernel, ref, rtol=1e-10, atol=1e-10)


def test_spectrum_against_numpy():
    X = torch.randn(7, 3, dtype=torch.float64)
    r = empirical_ntk(mlp(), X)
    sp = r.spectrum()
    K = r.kernel.permute(0, 2, 1, 3).reshape(21, 21).numpy()
    ev = np.sort(np.linalg.eigvalsh(K))[::-1]
    np.testing.assert_allclose(sp.eigenvalues, ev, rtol=1e-9, atol=1e-9 * ev[0])
    assert sp.lambda_max == pytest.approx(ev[0]) and sp.lambda_min == pytest.approx(ev[-1], abs=1e-9 * ev[0])
    assert sp.size == 21 and sp.trace == pytest.approx(np.trace(K))
    scalar = empirical_ntk(maxout(), X)
    s2 = ntk_spectrum(scalar.kernel.numpy())
    assert s2.condition_number == pytest.approx(s2.lambda_max / s2.lambda_min)
    d = s2.to_dict(summary=True)
    assert "eigenvalues" not in d and d["size"] == 7
    singular = ntk_spectrum(torch.ones(3, 3, dtype=torch.float64))
    assert singular.condition_number == math.inf
    with pytest.raises(relulab.InvalidInputError):
        ntk_spectrum(torch.ones(2, 3))


def test_result_serializes_and_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    r = empirical_ntk(maxout(), torch.randn(4, 3, dtype=torch.float64))
    assert isinstance(r, NTKResult)
    d = r.to_dict(summary=True)
    assert d["method"] == r.method and "kernel" not in d and d["kernel_bytes"] == 4 * 4 * 8
    assert len(r.to_dict()["kernel"]) == 4
    ax = r.spectrum().plot()
    ax.figure.savefig(tmp_path / "spectrum.png")
    assert (tmp_path / "spectrum.png").stat().st_size > 0
