"""relulab.landscape.hessian against independent references.

References used here (never the module's own outputs):
* dense Hessians by ``torch.autograd.functional.hessian`` (reverse-over-reverse) of a hand-written
  forward pass of the model as a function of the flat parameter vector (``manual_forward``);
* central finite differences of gradients taken by plain ``loss.backward`` autograd on a manual
  copy of the model;
* closed forms (linear regression: ``H = 2/n A^T A``), ``torch.linalg.eigvalsh``, ``torch.trace``,
  and matrices with known spectra.
"""

import copy
import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402

from relulab.core.errors import InvalidInputError, RelulabError  # noqa: E402
from relulab.landscape.hessian import (  # noqa: E402
    HessianOperator,
    hessian_eigenpairs,
    hessian_inertia,
    hessian_spectrum,
    hessian_trace,
    kink_report,
    lanczos,
    spectral_density,
)
from relulab.nn import Abs, Maxout  # noqa: E402

D = torch.float64
EPS = torch.finfo(D).eps


# ----------------------------------------------------------------------------------------------------
# independent references
# ----------------------------------------------------------------------------------------------------
def gen(seed):
    return torch.Generator().manual_seed(int(seed))


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad]).to(D)


def manual_forward(model, theta, x, margins=None):
    """The Sequential ``model`` evaluated by hand with its parameters read from ``theta`` (in
    ``named_parameters`` order). ``margins`` (a list) collects, per kink-bearing layer, the distance
    of every unit from its kink (|z| for ReLU-like units, top-1 minus top-2 for max units)."""
    pos = 0

    def take(shape):
        nonlocal pos
        n = math.prod(shape)
        t = theta[pos:pos + n].view(shape)
        pos += n
        return t

    def wb(m):
        w = take(tuple(m.weight.shape))
        b = take(tuple(m.bias.shape)) if m.bias is not None else None
        return w, b

    def note_max(z, dim, skip_zero_ties=False):
        if margins is not None and z.shape[dim] > 1:
            top2 = z.detach().topk(2, dim=dim).values
            gap = top2.select(dim, 0) - top2.select(dim, 1)
            if skip_zero_ties:  # a tie of two ReLU zeros is locally constant, no kink
                gap = gap[top2.select(dim, 0) != 0]
            if gap.numel():
                margins.append(gap.abs().min().item())

    for m in model:
        if isinstance(m, nn.Linear):
            x = F.linear(x, *wb(m))
        elif isinstance(m, nn.Conv1d):
            w, b = wb(m)
            x = F.conv1d(x, w, b, m.stride, m.padding, m.dilation, m.groups)
        elif isinstance(m, nn.Conv2d):
            w, b = wb(m)
            x = F.conv2d(x, w, b, m.stride, m.padding, m.dilation, m.groups)
        elif isinstance(m, Maxout):
            lin = m.linear
            w = take(tuple(lin.weight.shape))
            b = take(tuple(lin.bias.shape)) if lin.bias is not None else None
            z = F.linear(x, w, b).view(x.shape[0], m.out_features, m.k)
            note_max(z, -1)
            x = z.max(-1).values
        elif isinstance(m, (nn.ReLU, nn.LeakyReLU, Abs)):
            if margins is not None:
                margins.append(x.detach().abs().min().item())
            slope = {nn.ReLU: 0.0, Abs: -1.0}.get(type(m), getattr(m, "negative_slope", None))
            x = torch.where(x > 0, x, slope * x)
        elif isinstance(m, nn.Tanh):
            x = torch.tanh(x)
        elif isinstance(m, nn.Flatten):
            x = x.flatten(1)
        elif isinstance(m, nn.MaxPool1d):
            if margins is not None:
                u = x.detach().unfold(-1, m.kernel_size, m.stride)
                note_max(u, -1, skip_zero_ties=True)
            x = F.max_pool1d(x, m.kernel_size, m.stride)
        elif isinstance(m, nn.MaxPool2d):
            if margins is not None:
                k = m.kernel_size
                u = x.detach().unfold(-2, k, k).unfold(-2, k, k).flatten(-2)
                note_max(u, -1, skip_zero_ties=True)
            x = F.max_pool2d(x, m.kernel_size, m.stride)
        else:  # pragma: no cover - a helper for the models below only
            raise TypeError(type(m))
    assert pos == theta.numel()
    return x


def quartic_loss(out, y):
    """A smooth custom loss without a ``reduction`` attribute."""
    return ((out - y) ** 2).sum(1).pow(2).mean() / 4 + torch.logsumexp(out, 1).mean()


def ref_loss_fn(loss):
    if loss == "mse":
        return lambda out, y: F.mse_loss(out, y)
    if loss == "cross_entropy":
        return lambda out, y: F.cross_entropy(out, y)
    if loss == "mse_sum":
        return lambda out, y: F.mse_loss(out, y, reduction="sum")
    return loss


def ref_hessian(model, loss, X, Y):
    lf = ref_loss_fn(loss)
    theta = flat(model)
    return torch.autograd.functional.hessian(lambda t: lf(manual_forward(model, t, X), Y), theta)


def ref_grad(model, loss, X, Y, theta=None):
    """grad L by loss.backward on a manual copy of the model (parameters set to ``theta``)."""
    lf = ref_loss_fn(loss)
    m = copy.deepcopy(model).to(D)
    params = [p for p in m.parameters() if p.requires_grad]
    if theta is not None:
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(theta, params)
    for p in params:
        p.grad = None
    lf(m(X), Y).backward()
    return torch.cat([p.grad.reshape(-1) for p in params])


def fd_hvp(model, loss, X, Y, v, h=1e-6):
    theta = flat(model)
    return (ref_grad(model, loss, X, Y, theta + h * v) - ref_grad(model, loss, X, Y, theta - h * v)) / (2 * h)


def data(loss, n, d, o, seed, shape=None):
    g = gen(seed + 1000)
    X = torch.randn(n, *(shape or (d,)), dtype=D, generator=g)
    if loss == "cross_entropy":
        Y = torch.randint(0, o, (n,), generator=g)
    else:
        Y = torch.randn(n, o, dtype=D, generator=g)
    return X, Y


ACTS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.1), "tanh": nn.Tanh, "abs": Abs}


def mlp(widths, act, seed):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(ACTS[act]())
    return nn.Sequential(*layers).to(D)


def rel_err(a, b, scale):
    return float(torch.linalg.vector_norm(a - b)) / max(scale, 1e-300)


def spectral_norm(H):
    return float(torch.linalg.eigvalsh(H).abs().max())


# ----------------------------------------------------------------------------------------------------
# 1. Hessian-vector products
# ----------------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.lists(st.integers(1, 6), min_size=1, max_size=3), st.integers(1, 3),
       st.sampled_from(list(ACTS)), st.sampled_from(["mse", "cross_entropy", "custom"]), st.integers(0, 10**6))
def test_hvp_matches_reference_hessian_and_finite_differences(d, hidden, o, act, loss, seed):
    o = max(o, 2) if loss == "cross_entropy" else o
    model = mlp([d, *hidden, o], act, seed)
    X, Y = data(loss, 9, d, o, seed)
    lossarg = quartic_loss if loss == "custom" else loss
    H = ref_hessian(model, lossarg, X, Y)
    assert torch.allclose(H, H.T, atol=1e-12 * (1 + H.abs().max()))
    scale = max(spectral_norm(H), 1e-12)
    op = HessianOperator(model, lossarg, X, Y)
    assert op.dim == H.shape[0] == sum(p.numel() for p in model.parameters())
    assert rel_err(op.dense(), H, scale) < 1e-10
    for j in range(2):
        v = torch.randn(op.dim, dtype=D, generator=gen(seed + j))
        v /= torch.linalg.vector_norm(v)
        hv = op.matvec(v)
        assert rel_err(hv, H @ v, scale) < 1e-10
        if j == 0:
            margins = []
            manual_forward(model, flat(model), X, margins)
            if not margins or min(margins) > 1e-3:  # no kink within reach of the finite difference
                assert rel_err(fd_hvp(model, lossarg, X, Y, v), hv, scale) < 1e-6
    assert op.n_products == 2
    # the loss and the gradient match plain autograd too
    with torch.no_grad():
        ref_value = float(ref_loss_fn(lossarg)(model(X), Y))
    assert op.loss_value() == pytest.approx(ref_value, rel=1e-12, abs=1e-14)
    g = ref_grad(model, lossarg, X, Y)
    assert rel_err(op.gradient(), g, float(torch.linalg.vector_norm(g)) + 1e-12) < 1e-10


def _conv1d_net():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(9, 2)).to(D)


def _conv2d_net():
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)).to(D)


def _maxout_net():
    torch.manual_seed(5)
    return nn.Sequential(Maxout(3, 4, 3), nn.Tanh(), Maxout(4, 2, 2)).to(D)


def _abs_net():
    torch.manual_seed(6)
    return nn.Sequential(nn.Linear(3, 5), Abs(), nn.Linear(5, 4), nn.LeakyReLU(0.2), nn.Linear(4, 2)).to(D)


@pytest.mark.parametrize("name,make,shape,loss", [
    ("conv1d", _conv1d_net, (2, 8), "cross_entropy"),
    ("conv2d", _conv2d_net, (1, 6, 6), "mse"),
    ("maxout", _maxout_net, (3,), "mse"),
    ("maxout_custom", _maxout_net, (3,), "custom"),
    ("abs_leaky", _abs_net, (3,), "cross_entropy"),
])
def test_hvp_structured_models(name, make, shape, loss):
    model = make()
    o = model(torch.zeros(1, *shape, dtype=D)).shape[1]
    X, Y = data(loss, 10, None, o, 7, shape=shape)
    lossarg = quartic_loss if loss == "custom" else loss
    margins = []
    assert torch.allclose(manual_forward(model, flat(model), X, margins), model(X), atol=1e-13)
    assert min(margins) > 1e-3  # generic point: the finite differences below cross no kink
    H = ref_hessian(model, lossarg, X, Y)
    scale = spectral_norm(H)
    op = HessianOperator(model, lossarg, X, Y)
    assert rel_err(op.dense(), H, scale) < 1e-10
    V = torch.randn(op.dim, 3, dtype=D, generator=gen(1))
    HV = op @ V
    assert HV.shape == (op.dim, 3)
    assert rel_err(HV, H @ V, scale) < 1e-10
    v = V[:, 0] / torch.linalg.vector_norm(V[:, 0])
    assert rel_err(fd_hvp(model, lossarg, X, Y, v), op.matvec(v), scale) < 1e-6
    # the scipy view
    lo = op.to_scipy()
    w = np.random.default_rng(0).standard_normal(op.dim)
    assert np.allclose(lo.matvec(w), (H @ torch.as_tensor(w)).numpy(), rtol=0, atol=1e-10 * scale)


def test_linear_regression_hessian_is_closed_form():
    g = gen(11)
    X = torch.randn(30, 4, dtype=D, generator=g)
    Y = torch.randn(30, 1, dtype=D, generator=g)
    model = nn.Linear(4, 1).to(D)
    A = torch.cat([X, torch.ones(30, 1, dtype=D)], 1)
    H = 2 * A.T @ A / 30  # weights then bias, as named_parameters orders them
    op = HessianOperator(model, "mse", X, Y)
    assert torch.allclose(op.dense(), H, rtol=1e-13, atol=1e-13)
    v = torch.randn(5, dtype=D, generator=g)
    assert torch.allclose(op.matvec(v), H @ v, rtol=1e-13, atol=1e-13)


def test_frozen_parameters_are_left_out():
    model = mlp([3, 4, 2], "tanh", 0)
    model[0].weight.requires_grad_(False)
    X, Y = data("mse", 8, 3, 2, 0)
    op = HessianOperator(model, "mse", X, Y)
    assert op.dim == 4 + 8 + 2 and op.names == ["0.bias", "2.weight", "2.bias"]
    Hfull = ref_hessian(mlp([3, 4, 2], "tanh", 0), "mse", X, Y)
    keep = torch.arange(12, 26)
    assert torch.allclose(op.dense(), Hfull[keep][:, keep], rtol=1e-11, atol=1e-13)


# ----------------------------------------------------------------------------------------------------
# 2. batching
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 3, 4, 9])
@pytest.mark.parametrize("loss,refname", [
    ("mse", "mse"),
    (nn.MSELoss(reduction="sum"), "mse_sum"),
    (nn.CrossEntropyLoss(), "cross_entropy"),
])
def test_batched_products_equal_unbatched(batch_size, loss, refname):
    o = 3
    model = mlp([3, 5, o], "tanh", 2)
    X, Y = data("cross_entropy" if refname == "cross_entropy" else "mse", 10, 3, o, 2)
    full = HessianOperator(model, loss, X, Y)
    bat = HessianOperator(model, loss, X, Y, batch_size=batch_size)
    assert len(bat.batches) == math.ceil(10 / batch_size)
    H = ref_hessian(model, refname, X, Y)
    scale = spectral_norm(H)
    for s in range(2):
        v = torch.randn(full.dim, dtype=D, generator=gen(s))
        assert rel_err(bat.matvec(v), full.matvec(v), scale * float(v.norm())) < 1e-12
        assert rel_err(bat.matvec(v), H @ v, scale * float(v.norm())) < 1e-11
    assert rel_err(bat.dense(), H, scale) < 1e-11
    assert bat.loss_value() == pytest.approx(full.loss_value(), rel=1e-12)
    g = ref_grad(model, refname, X, Y)
    assert rel_err(bat.gradient(), g, float(g.norm())) < 1e-11


def test_batching_a_callable_needs_its_reduction():
    model = mlp([3, 4, 2], "tanh", 0)
    X, Y = data("mse", 10, 3, 2, 0)
    with pytest.raises(InvalidInputError, match="reduction"):
        HessianOperator(model, quartic_loss, X, Y, batch_size=3)
    HessianOperator(model, quartic_loss, X, Y, batch_size=10)  # one batch: nothing to weigh

    def summed(out, y):
        return ((out - y) ** 2).sum()

    bat = HessianOperator(model, summed, X, Y, batch_size=3, reduction="sum")
    H = ref_hessian(model, summed, X, Y)
    v = torch.randn(bat.dim, dtype=D, generator=gen(0))
    assert rel_err(bat.matvec(v), H @ v, spectral_norm(H) * float(v.norm())) < 1e-11
    with pytest.raises(InvalidInputError, match="reduction"):
        HessianOperator(model, nn.MSELoss(reduction="none"), X, Y)
    with pytest.raises(InvalidInputError, match="batch_size"):
        HessianOperator(model, "mse", X, Y, batch_size=0)


@pytest.mark.parametrize("kind", ["class_weights", "ignore_index"])
def test_batching_cross_entropy_with_weights_or_ignored_labels(kind):
    model = mlp([3, 5, 3], "tanh", 0)
    X = torch.randn(10, 3, dtype=D, generator=gen(0))
    Y = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    loss = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 5.0, 0.5], dtype=D)) if kind == "class_weights" \
        else nn.CrossEntropyLoss(ignore_index=2)
    H = ref_hessian(model, loss, X, Y)
    with pytest.raises(InvalidInputError, match="class weights or ignored labels"):
        HessianOperator(model, loss, X, Y, batch_size=3)  # batches would weigh by count, not by the loss's weights
    whole = HessianOperator(model, loss, X, Y)  # one batch is exact for any loss
    with torch.no_grad():
        assert whole.loss_value() == pytest.approx(float(loss(model(X), Y)), rel=1e-10)
    assert rel_err(whole.dense(), H, spectral_norm(H)) < 1e-10


def test_plnet_model_is_accepted():
    from relulab.core.plnet import PLNet

    model = mlp([3, 5, 2], "relu", 4)
    X, Y = data("mse", 10, 3, 2, 4)
    op = HessianOperator(PLNet.from_torch(model, (3,)), "mse", X, Y)
    H = ref_hessian(model, "mse", X, Y)
    assert op.dim == H.shape[0]
    assert rel_err(op.dense(), H, spectral_norm(H)) < 1e-10


# ----------------------------------------------------------------------------------------------------
# 3. the caller's model
# ----------------------------------------------------------------------------------------------------
def test_callers_model_is_not_modified():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 2))
    assert model.training and next(model.parameters()).dtype == torch.float32
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    X, Y = torch.randn(12, 3), torch.randn(12, 2)
    op = HessianOperator(model, "mse", X, Y, train_mode="eval")
    assert set(op.eval_mode_modules) == {"1", "3"}
    v = torch.randn(op.dim, dtype=D)
    op.matvec(v)
    op.gradient()
    op.dense()
    op.loss_value()
    hessian_eigenpairs(op, k=2)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.dtype == torch.float32 and p.requires_grad and p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) and after[k].dtype == before[k].dtype for k in before)
    # the operator works on an eval-mode float64 copy: deterministic despite Dropout, BatchNorm uses
    # running statistics
    assert op.dtype == D and op.model is not model and not op.model.training
    assert torch.equal(op.matvec(v), op.matvec(v))
    ref = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        assert op.loss_value() == pytest.approx(float(F.mse_loss(ref(X.double()), Y.double())), rel=1e-12)


class _ModeScaled(nn.Module):
    """A custom module whose output depends on the mode without being BatchNorm or Dropout."""

    def forward(self, x):
        return 2 * x if self.training else x


@pytest.mark.parametrize("make, names", [
    (lambda: nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)), ("1",)),
    (lambda: nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Dropout(0.3), nn.Linear(6, 2)), ("2",)),
    (lambda: nn.Sequential(nn.Linear(3, 6), _ModeScaled(), nn.ReLU(), nn.Linear(6, 2)), None),
])
def test_train_mode_models_are_refused_or_reported(make, names):
    torch.manual_seed(1)
    model = make()
    X, Y = torch.randn(10, 3), torch.randn(10, 2)
    with pytest.raises(InvalidInputError, match="training mode.*model.eval"):
        HessianOperator(model, "mse", X, Y)
    with pytest.raises(InvalidInputError, match="training mode"):
        hessian_spectrum(model, "mse", X, Y, top=1, bottom=0, trace_queries=0, density=False, inertia=False,
                         kinks=False)
    res = hessian_spectrum(model, "mse", X, Y, top=1, bottom=0, trace_queries=0, density=False, inertia=False,
                           kinks=False, train_mode="eval")
    assert res.eval_mode_modules and (names is None or res.eval_mode_modules == names)
    assert "eval mode" in res.table() and res.to_dict()["eval_mode_modules"]
    # the value reported is the eval-mode network's
    ref = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        assert res.loss == pytest.approx(float(F.mse_loss(ref(X.double()), Y.double())), rel=1e-12)
    # the same model in eval mode needs nothing and reports nothing
    res = hessian_spectrum(model.eval(), "mse", X, Y, top=1, bottom=0, trace_queries=0, density=False,
                           inertia=False, kinks=False)
    assert res.eval_mode_modules == ()


def test_train_mode_without_mode_dependence_is_evaluated_as_is():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Dropout(0.0), nn.Linear(5, 1)).to(D)
    assert model.training
    X, Y = torch.randn(8, 3, dtype=D), torch.randn(8, 1, dtype=D)
    op = HessianOperator(model, "mse", X, Y)
    assert op.eval_mode_modules == ()
    plain = nn.Sequential(model[0], model[1], model[3])
    assert rel_err(op.dense(), ref_hessian(plain, "mse", X, Y), 1.0) < 1e-10
    with pytest.raises(InvalidInputError, match="train_mode"):
        HessianOperator(model, "mse", X, Y, train_mode="train")


# ----------------------------------------------------------------------------------------------------
# 4. eigenpairs
# ----------------------------------------------------------------------------------------------------
def _check_pairs(res, H, k, which):
    ev = torch.linalg.eigvalsh(H).numpy()
    norm = float(np.abs(ev).max())
    if which in ("largest", "both"):
        assert len(res.largest) == k
        assert np.all(np.abs(res.largest - ev[::-1][:k]) <= 1e-8 * norm)
        assert np.all(np.diff(res.largest) <= 0)
    if which in ("smallest", "both"):
        assert len(res.smallest) == k
        assert np.all(np.abs(res.smallest - ev[:k]) <= 1e-8 * norm)
        assert np.all(np.diff(res.smallest) >= 0)
    for vals, vecs, resid in ((res.largest, res.largest_vectors, res.largest_residuals),
                              (res.smallest, res.smallest_vectors, res.smallest_residuals)):
        if len(vals) == 0:
            assert vecs is None or vecs.shape[0] == 0
            continue
        assert vecs.shape == (len(vals), H.shape[0])
        assert torch.allclose(torch.linalg.vector_norm(vecs, dim=1), torch.ones(len(vals), dtype=D), atol=1e-12)
        own = torch.linalg.vector_norm(vecs @ H - torch.as_tensor(vals)[:, None] * vecs, dim=1).numpy()
        assert np.all(own <= 1e-7 * norm)
        assert np.allclose(resid, own, rtol=1e-3, atol=1e-12 * norm)
    assert res.converged


@pytest.mark.parametrize("case", ["ce_tanh", "ce_relu", "mse_relu", "mse_tanh_deep", "custom_abs"])
@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
def test_eigenpairs_of_models_match_dense_reference(case, which):
    widths, act, loss = {"ce_tanh": ([4, 8, 8, 3], "tanh", "cross_entropy"),
                         "ce_relu": ([5, 12, 4], "relu", "cross_entropy"),
                         "mse_relu": ([3, 10, 10, 2], "relu", "mse"),
                         "mse_tanh_deep": ([3, 6, 6, 6, 1], "tanh", "mse"),
                         "custom_abs": ([3, 7, 2], "abs", "custom")}[case]
    model = mlp(widths, act, 21)
    X, Y = data(loss, 16, widths[0], widths[-1], 21)
    lossarg = quartic_loss if loss == "custom" else loss
    H = ref_hessian(model, lossarg, X, Y)
    assert H.shape[0] <= 300
    if loss == "cross_entropy":
        assert float(torch.linalg.eigvalsh(H)[0]) < -1e-3  # indefinite at random init
    op = HessianOperator(model, lossarg, X, Y)
    res = hessian_eigenpairs(op, k=4, which=which, seed=3)
    _check_pairs(res, H, 4, which)
    assert res.n_products == op.n_products > 0


def test_eigenpairs_of_plain_symmetric_matrices():
    g = gen(5)
    B = torch.randn(60, 60, dtype=D, generator=g)
    A = (B + B.T) / 2
    _check_pairs(hessian_eigenpairs(A, k=5, which="both"), A, 5, "both")
    # known diagonal
    d = torch.linspace(-3, 7, 40, dtype=D)[torch.randperm(40, generator=g)]
    res = hessian_eigenpairs(torch.diag(d), k=3)
    assert np.allclose(res.largest, [7, 7 - 10 / 39, 7 - 20 / 39], atol=1e-12)
    assert np.allclose(res.smallest, [-3, -3 + 10 / 39, -3 + 20 / 39], atol=1e-12)
    _check_pairs(res, torch.diag(d), 3, "both")
    # k = P: the whole spectrum
    C = A[:12, :12]
    res = hessian_eigenpairs(C, k=12, which="largest")
    assert np.allclose(res.largest, torch.linalg.eigvalsh(C).numpy()[::-1], atol=1e-10)


def test_eigenpairs_low_rank_matrix_stops_early_at_an_invariant_space():
    g = gen(8)
    U = torch.randn(50, 3, dtype=D, generator=g)
    B = U @ torch.diag(torch.tensor([3.0, -1.0, 2.0], dtype=D)) @ U.T  # rank 3, indefinite
    ev = torch.linalg.eigvalsh(B).numpy()
    dec = lanczos(B, 40, seed=1)
    assert dec.invariant and dec.steps == 4  # range(B) plus the start vector
    th, _ = dec.ritz()
    assert np.allclose(np.sort(th), [ev[0], 0.0, ev[-2], ev[-1]], atol=1e-10 * np.abs(ev).max())
    res = hessian_eigenpairs(B, k=1, which="both")
    assert res.steps >= 4 and res.converged  # after the breakdown it restarts to look beyond the Krylov space
    _check_pairs(res, B, 1, "both")
    res = hessian_eigenpairs(B, k=2, which="largest")
    _check_pairs(res, B, 2, "largest")


def test_eigenpairs_repeated_eigenvalue():
    A = torch.diag(torch.tensor([5.0, 5.0, 3.0, 2.0, 1.0, 0.5, 0.25, -1.0], dtype=D))
    res = hessian_eigenpairs(A, k=2, which="largest")
    assert np.allclose(res.largest, [5.0, 5.0]) and res.converged


@pytest.mark.parametrize("which,k", [("smallest", 2), ("largest", 5)])
def test_eigenpairs_low_rank_beyond_the_krylov_space(which, k):
    U = torch.randn(20, 2, dtype=D, generator=gen(1))
    B = U @ U.T  # eigenvalues: two positive, 18 zeros
    ev = torch.linalg.eigvalsh(B).numpy()
    res = hessian_eigenpairs(B, k=k, which=which)
    got = res.smallest if which == "smallest" else res.largest
    want = ev[:k] if which == "smallest" else ev[::-1][:k]
    assert len(got) == k and np.allclose(got, want, atol=1e-10 * ev.max()) and res.converged


def test_eigenpairs_without_vectors_or_verification():
    B = torch.randn(40, 40, dtype=D, generator=gen(9))
    A = (B + B.T) / 2
    ev = torch.linalg.eigvalsh(A).numpy()
    res = hessian_eigenpairs(A, k=3, which="largest", vectors=False, verify=False)
    assert res.largest_vectors is None and res.smallest_vectors is None
    assert np.allclose(res.largest, ev[::-1][:3], atol=1e-8 * np.abs(ev).max())
    assert np.all(res.largest_residuals <= res.tol * res.norm_estimate)  # the Lanczos bounds
    res = hessian_eigenpairs(A, k=3, which="smallest", vectors=False, verify=True)
    assert res.smallest_vectors is None and np.all(np.isfinite(res.smallest_residuals))
    assert np.allclose(res.smallest, ev[:3], atol=1e-8 * np.abs(ev).max())


def test_lanczos_relation_and_orthonormal_basis():
    B = torch.randn(30, 30, dtype=D, generator=gen(2))
    A = (B + B.T) / 2
    dec = lanczos(A, 12, seed=4)
    Q = dec.basis
    assert Q.shape == (12, 30) and not dec.invariant
    assert torch.allclose(Q @ Q.T, torch.eye(12, dtype=D), atol=1e-13)
    T = torch.diag(torch.as_tensor(dec.alpha)) + torch.diag(torch.as_tensor(dec.beta[:-1]), 1) \
        + torch.diag(torch.as_tensor(dec.beta[:-1]), -1)
    assert torch.allclose(Q @ A @ Q.T, T, atol=1e-12)
    th, S = dec.ritz()
    assert np.allclose(th, np.linalg.eigvalsh(T.numpy()), atol=1e-12)
    # the residual of Ritz pair i is |beta_m s_{m,i}|
    Y = torch.as_tensor(S).T @ Q
    res = torch.linalg.vector_norm(Y @ A - torch.as_tensor(th)[:, None] * Y, dim=1).numpy()
    assert np.allclose(res, np.abs(dec.beta[-1] * S[-1]), atol=1e-11)


# ----------------------------------------------------------------------------------------------------
# 5. trace
# ----------------------------------------------------------------------------------------------------
def _decaying_matrix(P, seed):
    g = gen(seed)
    Q, _ = torch.linalg.qr(torch.randn(P, P, dtype=D, generator=g))
    ev = torch.tensor([10.0 * 0.8 ** i * (-1) ** (i % 3 == 2) for i in range(P)], dtype=D)
    return Q @ torch.diag(ev) @ Q.T


def test_trace_exact():
    A = _decaying_matrix(25, 0)
    t = hessian_trace(A, method="exact")
    assert t.estimate == pytest.approx(float(torch.trace(A)), rel=1e-13, abs=1e-13) and t.stderr == 0
    assert t.method == "exact"
    t = hessian_trace(A, queries=25, method="hutchinson")  # as many queries as P: done exactly
    assert t.method == "exact" and t.estimate == pytest.approx(float(torch.trace(A)), abs=1e-12)
    model = mlp([3, 5, 3], "tanh", 1)
    X, Y = data("cross_entropy", 10, 3, 3, 1)
    op = HessianOperator(model, "cross_entropy", X, Y)
    t = hessian_trace(op, method="exact")
    assert t.estimate == pytest.approx(float(torch.trace(ref_hessian(model, "cross_entropy", X, Y))), rel=1e-11)
    assert t.n_products == op.dim


@pytest.mark.parametrize("method", ["hutch++", "hutchinson", "deflated"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trace_estimates_within_five_stderr(method, seed):
    A = _decaying_matrix(80, 10 + seed)
    true = float(torch.trace(A))
    basis = lanczos(A, 8, seed=seed) if method == "deflated" else None
    t = hessian_trace(A, queries=30, method=method, seed=seed, lanczos_basis=basis)
    assert t.method == method and t.stderr > 0
    assert abs(t.estimate - true) <= 5 * t.stderr
    assert t.deflated == {"hutch++": 10, "hutchinson": 0, "deflated": 8}[method]


def test_trace_sampling_in_blocks_equals_all_at_once():
    """The Hutchinson samples are drawn and reduced in blocks (running mean and variance): the same
    signs as one draw of all of them, the same mean and standard error."""
    A = _decaying_matrix(40, 4)
    P, r = 40, 23
    G = (torch.randint(0, 2, (r, P), generator=torch.Generator().manual_seed(7), dtype=torch.int8) * 2 - 1).to(D)
    terms = torch.einsum("ip,pq,iq->i", G, A, G)
    for budget in (None, 3 * 8 * P * 8, 1):  # blocks of 23, 3 and 1 rows
        t = hessian_trace(A, queries=r, method="hutchinson", seed=7, memory_budget=budget)
        assert t.complete and t.queries == r
        assert t.estimate == pytest.approx(float(terms.mean()), rel=1e-12)
        assert t.stderr == pytest.approx(float(terms.std(unbiased=True)) / math.sqrt(r), rel=1e-9)


def test_trace_budgets_bound_huge_query_counts():
    from relulab.core.errors import ResourceLimitError

    A = _decaying_matrix(30, 5)
    # Hutch++ keeps 3 (queries // 3) vectors: refused before they are allocated
    with pytest.raises(ResourceLimitError, match="memory_budget"):
        hessian_trace(A, queries=20, method="hutch++", memory_budget=3 * 6 * 30 * 8 - 1)
    assert hessian_trace(A, queries=20, method="hutch++", memory_budget=3 * 6 * 30 * 8).complete
    # at least P queries: P exact products (one unit vector at a time), whatever the count asked
    t = hessian_trace(A, queries=10**12, method="hutchinson")
    assert t.method == "exact" and t.n_products == 30
    # deflated sampling: memory independent of queries; the time limit stops it with what it has
    t = hessian_trace(A, queries=10**8, method="deflated", lanczos_basis=lanczos(A, 3), time_limit=0.2)
    assert not t.complete and 1 <= t.queries < 10**8 and t.n_products == t.queries
    assert abs(t.estimate - float(torch.trace(A))) <= 6 * t.stderr
    # through hessian_spectrum too
    model = mlp([3, 5, 2], "tanh", 2)
    X, Y = data("mse", 10, 3, 2, 2)
    res = hessian_spectrum(model, "mse", X, Y, top=2, bottom=0, trace_queries=10**8, trace_time_limit=0.2,
                           density=False, inertia=False, kinks=False)
    assert not res.trace.complete and res.trace.queries < 10**8
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidInputError, match="queries"):
            hessian_trace(A, queries=bad)
    with pytest.raises(InvalidInputError, match="time_limit"):
        hessian_trace(A, queries=5, method="hutchinson", time_limit=0)


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_trace_estimators_are_unbiased(method):
    B = torch.randn(12, 12, dtype=D, generator=gen(3))
    A = (B + B.T) / 2 + torch.diag(torch.arange(12, dtype=D))
    true = float(torch.trace(A))
    q = 6
    runs = [hessian_trace(A, queries=q, method=method, seed=s) for s in range(200)]
    est = np.array([r.estimate for r in runs])
    se = est.std(ddof=1) / math.sqrt(len(est))
    assert abs(est.mean() - true) <= 4 * se
    if method == "hutchinson":
        # Rademacher: Var(g^T A g) = 2 (||A||_F^2 - sum_i A_ii^2); the reported stderr^2 estimates Var/q
        var = 2 * (float((A ** 2).sum()) - float((torch.diag(A) ** 2).sum()))
        assert abs(est.mean() - true) <= 4 * math.sqrt(var / q / len(est))
        assert np.mean([r.stderr ** 2 for r in runs]) == pytest.approx(var / q, rel=0.25)


def test_deflated_trace_with_an_invariant_basis_is_exact():
    A = _decaying_matrix(20, 4)
    dec = lanczos(A, 20)
    assert dec.invariant and dec.steps == 20
    t = hessian_trace(A, method="deflated", lanczos_basis=dec)
    assert t.estimate == pytest.approx(float(torch.trace(A)), rel=1e-12) and t.stderr == 0
    # low rank: the Krylov space holds range(A), the complement contributes exactly 0
    U = torch.randn(40, 3, dtype=D, generator=gen(6))
    L = U @ U.T
    dec = lanczos(L, 30)
    assert dec.invariant and dec.steps in (4, 5)  # 4 in exact arithmetic; a rounding-size step may follow
    t = hessian_trace(L, queries=10, method="deflated", lanczos_basis=dec)
    assert t.estimate == pytest.approx(float(torch.trace(L)), rel=1e-11)
    assert t.stderr <= 1e-10 * float(torch.trace(L))
    # hutch++ sketches a rank-3 range exactly as well
    t = hessian_trace(L, queries=30, method="hutch++")
    assert t.estimate == pytest.approx(float(torch.trace(L)), rel=1e-11)


# ----------------------------------------------------------------------------------------------------
# 6. spectral density
# ----------------------------------------------------------------------------------------------------
def test_slq_on_a_diagonal_matrix_is_exact():
    # Rademacher start vectors have v_i^2 = 1/P, so on a diagonal matrix every quadrature weight is
    # multiplicity / P exactly once the Lanczos run spans the (4 distinct) eigenvalues.
    vals = [-2.0] * 3 + [0.0] * 5 + [1.0] * 4 + [3.0] * 8
    A = torch.diag(torch.tensor(vals, dtype=D)[torch.randperm(20, generator=gen(0))])
    sd = spectral_density(A, n_vectors=3, steps=10, seed=1)
    assert sd.nodes.shape == sd.weights.shape == (3, 10) and sd.dim == 20
    assert np.allclose(sd.weights.sum(1), 1.0, atol=1e-12)
    for t, frac in [(-3, 0), (-1, 3 / 20), (0.5, 8 / 20), (2, 12 / 20), (4, 1)]:
        assert sd.mass_below(t) == pytest.approx(frac, abs=1e-10)
    grid = np.linspace(-4, 5, 4001)
    assert np.trapezoid(sd.density(grid), grid) == pytest.approx(1.0, abs=1e-3)
    assert np.trapezoid(sd.density(grid, sigma=0.3), grid) == pytest.approx(1.0, abs=1e-3)


def test_slq_on_a_rotated_matrix_is_close():
    P = 60
    vals = torch.cat([torch.full((15,), -1.0), torch.full((25,), 0.5), torch.linspace(2, 4, 20)]).to(D)
    Q, _ = torch.linalg.qr(torch.randn(P, P, dtype=D, generator=gen(2)))
    A = Q @ torch.diag(vals) @ Q.T
    sd = spectral_density(A, n_vectors=16, steps=30, seed=3)
    for t in (-2, 0, 1, 3, 5):
        assert sd.mass_below(t) == pytest.approx(float((vals < t).double().mean()), abs=0.1)
    grid = np.linspace(-2, 5, 3001)
    assert np.trapezoid(sd.density(grid), grid) == pytest.approx(1.0, abs=1e-3)


def test_slq_on_a_model_counts_negative_eigenvalues_roughly():
    model = mlp([4, 10, 3], "tanh", 9)
    X, Y = data("cross_entropy", 20, 4, 3, 9)
    op = HessianOperator(model, "cross_entropy", X, Y)
    ev = torch.linalg.eigvalsh(ref_hessian(model, "cross_entropy", X, Y)).numpy()
    sd = spectral_density(op, n_vectors=8, steps=op.dim, seed=0)
    assert sd.nodes.min() >= ev.min() - 1e-8 and sd.nodes.max() <= ev.max() + 1e-8
    t = -1e-6 * np.abs(ev).max()
    assert sd.mass_below(t) == pytest.approx(float((ev < t).mean()), abs=0.1)


# ----------------------------------------------------------------------------------------------------
# 7. inertia
# ----------------------------------------------------------------------------------------------------
def _ref_inertia(ev, tol):
    return int((ev < -tol).sum()), int((np.abs(ev) <= tol).sum()), int((ev > tol).sum())


@pytest.mark.parametrize("case", ["ce_tanh", "mse_relu"])
def test_exact_inertia_matches_reference(case):
    widths, act, loss = {"ce_tanh": ([3, 6, 3], "tanh", "cross_entropy"), "mse_relu": ([3, 8, 2], "relu", "mse")}[case]
    model = mlp(widths, act, 13)
    X, Y = data(loss, 15, widths[0], widths[-1], 13)
    op = HessianOperator(model, loss, X, Y)
    ev = torch.linalg.eigvalsh(ref_hessian(model, loss, X, Y)).numpy()
    gnorm = float(torch.linalg.vector_norm(ref_grad(model, loss, X, Y)))
    tol = max(len(ev) * EPS * np.abs(ev).max(), gnorm)
    assert np.min(np.abs(np.abs(ev) - tol)) > 1e-6 * tol  # no eigenvalue on the fence
    inn = hessian_inertia(op)
    assert inn.exact and inn.tol == pytest.approx(tol, rel=1e-10)
    assert inn.gradient_norm == pytest.approx(gnorm, rel=1e-10)
    assert inn.spectral_norm == pytest.approx(np.abs(ev).max(), rel=1e-10)
    assert (inn.negative, inn.zero, inn.positive) == _ref_inertia(ev, tol)
    assert inn.negative + inn.zero + inn.positive == op.dim
    assert np.allclose(np.sort(inn.eigenvalues), ev, atol=1e-10 * np.abs(ev).max())
    for t in (1e-3, 1e-2, 0.05):
        inn = hessian_inertia(op, tol=t)
        assert inn.tol == t and (inn.negative, inn.zero, inn.positive) == _ref_inertia(ev, t)


def _regression(seed, scales=(1.0, 1.0, 1.0)):
    g = gen(seed)
    X = torch.randn(40, 3, dtype=D, generator=g) * torch.tensor(scales, dtype=D)
    Y = 5 + X @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=D) + 0.1 * torch.randn(40, 1, dtype=D, generator=g)
    A = torch.cat([X, torch.ones(40, 1, dtype=D)], 1)
    return X, Y, A


def test_inertia_at_a_strict_minimum_has_no_negative_eigenvalue():
    X, Y, A = _regression(0)
    sol = torch.linalg.lstsq(A, Y).solution.reshape(-1)
    model = nn.Linear(3, 1).to(D)
    with torch.no_grad():
        model.weight.copy_(sol[:3].view(1, 3))
        model.bias.copy_(sol[3:])
    op = HessianOperator(model, "mse", X, Y)
    H = 2 * A.T @ A / 40
    ev = torch.linalg.eigvalsh(H).numpy()
    inn = hessian_inertia(op)
    assert inn.gradient_norm < 1e-12
    assert inn.tol == pytest.approx(4 * EPS * ev.max(), rel=1e-8)  # P eps ||H|| wins at a critical point
    assert (inn.negative, inn.zero, inn.positive) == (0, 0, 4)
    est = hessian_inertia(op, max_dense=0)  # the quadrature estimate
    assert not est.exact and (est.negative, est.zero, est.positive) == (0, 0, 4)


def test_inertia_tolerance_is_the_gradient_norm_away_from_a_critical_point():
    X, Y, A = _regression(1, scales=(10.0, 1.0, 0.01))
    model = nn.Linear(3, 1).to(D)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    op = HessianOperator(model, "mse", X, Y)
    ev = torch.linalg.eigvalsh(2 * A.T @ A / 40).numpy()
    gnorm = float(torch.linalg.vector_norm(-2 * A.T @ Y.reshape(-1) / 40))  # closed-form gradient at 0
    assert gnorm > 4 * EPS * ev.max()
    inn = hessian_inertia(op)
    assert inn.tol == pytest.approx(gnorm, rel=1e-12)
    ref = _ref_inertia(ev, gnorm)
    assert ref[1] >= 1 and ref[2] >= 1  # the rule decides: some positive eigenvalues count as zero
    assert (inn.negative, inn.zero, inn.positive) == ref
    assert (hessian_inertia(op, tol=1e-12).zero, hessian_inertia(op, tol=1e-12).positive) == (0, 4)


# ----------------------------------------------------------------------------------------------------
# 8. kinks
# ----------------------------------------------------------------------------------------------------
def _integer_relu_net(b0):
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).to(D)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 1.0], [3.0, -2.0]], dtype=D))
        net[0].bias.copy_(torch.tensor([b0, 0.5, 0.25], dtype=D))
        net[2].weight.copy_(torch.tensor([[1.0, -1.0, 2.0]], dtype=D))
        net[2].bias.fill_(0.1)
    return net


def test_kink_report_sample_exactly_on_a_relu_kink():
    X = torch.randn(12, 2, dtype=D, generator=gen(0))
    X[4] = torch.tensor([1.0, 1.0], dtype=D)  # unit 0: 1 + 2 - 3 == 0 exactly
    net = _integer_relu_net(-3.0)
    z = net[0](X)
    assert z[4, 0].item() == 0.0 and int((z == 0).sum()) == 1
    rep = kink_report(net, X)
    assert rep.piecewise_linear and rep.one_sided
    assert rep.on_kink == 1 and rep.samples_on_kink == 1 and rep.n_samples == 12
    assert rep.near_kink >= 1 and rep.min_relative_margin == 0.0
    assert [layer["on_kink"] for layer in rep.layers] == [1]
    # and HessianOperator still evaluates there (one-sided)
    HessianOperator(net, "mse", X, torch.zeros(12, 1, dtype=D)).matvec(torch.ones(13, dtype=D))


def test_kink_report_near_but_not_on_a_kink():
    X = torch.tensor([[1.0, 1.0], [0.3, -0.7]], dtype=D)
    net = _integer_relu_net(-3.0 + 1e-12)
    assert net[0](X)[0, 0].item() != 0.0
    rep = kink_report(net, X, rtol=1e-9)
    assert rep.on_kink == 0 and not rep.one_sided and rep.samples_on_kink == 0
    assert rep.near_kink == 1 and 0 < rep.min_relative_margin < 1e-9
    assert kink_report(net, X, rtol=1e-15).near_kink == 0


def test_kink_report_generic_data():
    net = mlp([3, 6, 5, 2], "relu", 0)
    X = torch.randn(50, 3, dtype=D, generator=gen(1))
    rep = kink_report(net, X)
    assert rep.piecewise_linear and rep.on_kink == 0 and rep.samples_on_kink == 0 and not rep.one_sided
    assert rep.near_kink == 0 and rep.min_relative_margin > 1e-9 and len(rep.layers) == 2
    margins = []
    manual_forward(net, flat(net), X, margins)
    scale = max(float(net[0](X).detach().abs().max()), 1.0)
    assert rep.min_relative_margin <= margins[0] / scale * (1 + 1e-9)


def test_kink_report_smooth_model_is_not_piecewise_linear():
    rep = kink_report(mlp([3, 4, 1], "tanh", 0), torch.randn(5, 3, dtype=D))
    assert not rep.piecewise_linear and rep.on_kink == 0 and not rep.one_sided
    assert "Tanh" in rep.reason


def test_kink_report_maxout_tie():
    torch.manual_seed(0)
    net = nn.Sequential(Maxout(3, 2, 3), nn.Linear(2, 1)).to(D)
    with torch.no_grad():
        net[0].linear.weight[1] = net[0].linear.weight[0]
        net[0].linear.bias[1] = net[0].linear.bias[0]
    X = torch.randn(20, 3, dtype=D, generator=gen(3))
    pieces = net[0].linear(X).view(20, 2, 3)
    top_is_tied = (pieces[:, 0, :2].max(1).values >= pieces[:, 0, 2])  # the tied pair is the maximum
    rep = kink_report(net, X)
    assert rep.piecewise_linear and rep.one_sided
    assert rep.on_kink == rep.samples_on_kink == int(top_is_tied.sum()) >= 1
    untied = copy.deepcopy(net)
    with torch.no_grad():
        untied[0].linear.bias[1] += 0.1
    assert kink_report(untied, X).on_kink == 0


def test_kink_report_maxpool_ties():
    net = nn.Sequential(nn.Conv1d(1, 1, 1), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(2, 1)).to(D)
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.fill_(-10.0)
    X = torch.rand(6, 1, 4, dtype=D, generator=gen(0))
    # every ReLU output is an exact 0: max-pool ties between zeros are not kinks
    rep = kink_report(net, X)
    assert rep.piecewise_linear and rep.on_kink == 0
    with torch.no_grad():
        net[0].bias.fill_(0.0)
    X[2, 0, 1] = X[2, 0, 0]  # equal positive values in one pooling window: the same function w x + b of the
    rep = kink_report(net, X)  # parameters, so their max is smooth and no kink
    assert rep.on_kink == 0
    # a real tie: windows (1, 2) and (2, 1) of a width-2 convolution with equal weights; moving w opens it
    net2 = nn.Sequential(nn.Conv1d(1, 1, 2), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(2, 1)).to(D)
    with torch.no_grad():
        net2[0].weight.fill_(1.0)
        net2[0].bias.fill_(0.0)
    X2 = torch.rand(6, 1, 5, dtype=D, generator=gen(0)) + 0.1
    X2[2, 0, :3] = torch.tensor([1.0, 2.0, 1.0], dtype=D)
    rep = kink_report(net2, X2)
    assert rep.on_kink == 1 and rep.samples_on_kink == 1


# ----------------------------------------------------------------------------------------------------
# 9. the whole picture
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act,loss", [("tanh", "cross_entropy"), ("relu", "mse")])
def test_hessian_spectrum_end_to_end(act, loss):
    import matplotlib.pyplot as plt

    model = mlp([3, 7, 3], act, 17)
    X, Y = data(loss, 14, 3, 3, 17)
    H = ref_hessian(model, loss, X, Y)
    ev = torch.linalg.eigvalsh(H).numpy()
    norm = np.abs(ev).max()
    spec = hessian_spectrum(model, loss, X, Y, top=3, bottom=2, trace_queries=20, density_vectors=4,
                            density_steps=20, seed=1)
    assert spec.n_parameters == H.shape[0] and spec.n_samples == 14
    assert np.allclose(spec.eigenpairs.largest, ev[::-1][:3], atol=1e-6 * norm)
    assert np.allclose(spec.eigenpairs.smallest, ev[:2], atol=1e-6 * norm)
    assert spec.eigenpairs.largest_vectors.shape == (3, H.shape[0])
    with torch.no_grad():
        assert spec.loss == pytest.approx(float(ref_loss_fn(loss)(model(X), Y)), rel=1e-12)
    assert spec.gradient_norm == pytest.approx(float(ref_grad(model, loss, X, Y).norm()), rel=1e-10)
    assert abs(spec.trace.estimate - float(np.sum(ev))) <= 5 * max(spec.trace.stderr, 1e-10 * norm)
    assert spec.inertia.exact
    assert (spec.inertia.negative, spec.inertia.zero, spec.inertia.positive) == _ref_inertia(ev, spec.inertia.tol)
    assert spec.kinks.piecewise_linear == (act == "relu")
    text = spec.table()
    assert isinstance(text, str)
    for v in [*spec.eigenpairs.largest, *spec.eigenpairs.smallest]:
        assert f"{v:.6g}" in text
    for summary in (True, False):
        d = spec.to_dict(summary=summary)
        json.loads(json.dumps(d))
        assert d["n_parameters"] == H.shape[0]
    assert "largest_vectors" not in spec.to_dict()["eigenpairs"]
    ax = spec.plot()
    assert isinstance(ax, matplotlib.axes.Axes)
    plt.close(ax.figure)


def test_hessian_spectrum_partial():
    model = mlp([2, 4, 1], "tanh", 0)
    X, Y = data("mse", 8, 2, 1, 0)
    ev = torch.linalg.eigvalsh(ref_hessian(model, "mse", X, Y)).numpy()
    spec = hessian_spectrum(model, "mse", X, Y, top=2, bottom=0, trace_queries=0, density=False, inertia=False,
                            kinks=False)
    assert len(spec.eigenpairs.smallest) == 0 and np.allclose(spec.eigenpairs.largest, ev[::-1][:2], atol=1e-8)
    assert spec.trace is None and spec.density is None and spec.inertia is None and spec.kinks is None
    json.dumps(spec.to_dict(summary=True))
    assert "largest" in spec.table()
    with pytest.raises(InvalidInputError, match="density"):
        spec.plot()


# ----------------------------------------------------------------------------------------------------
# 10. errors
# ----------------------------------------------------------------------------------------------------
def test_invalid_inputs_raise_relulab_errors():
    assert issubclass(InvalidInputError, RelulabError)
    model = mlp([3, 4, 2], "relu", 0)
    X, Y = data("mse", 6, 3, 2, 0)
    op = HessianOperator(model, "mse", X, Y)
    cases = [
        (lambda: op.matvec(torch.ones(op.dim + 1, dtype=D)), "entries"),
        (lambda: HessianOperator(model, "mse", X, Y[:5]), "differ in length"),
        (lambda: HessianOperator(model, "hinge", X, Y), "hinge"),
        (lambda: HessianOperator(model, 5, X, Y), "callable"),
        (lambda: HessianOperator(nn.Sequential(nn.ReLU()), "mse", X, Y), "no parameters"),
        (lambda: HessianOperator(nn.Linear(3, 2).requires_grad_(False), "mse", X, Y), "trainable"),
        (lambda: HessianOperator("not a model", "mse", X, Y), "nn.Module"),
        (lambda: HessianOperator(model, "mse", X[:0], Y[:0]), "zero samples"),
        (lambda: HessianOperator(model, "mse", torch.randn(6, 4, dtype=D), Y), "cannot be evaluated"),
        (lambda: HessianOperator(model, "cross_entropy", X, torch.tensor([0, 1, 2, 5, 1, 0])), "cannot be evaluated"),
        (lambda: op.dense(max_dim=5), "max_dim"),
        (lambda: hessian_eigenpairs(op, k=0), "k must be"),
        (lambda: hessian_eigenpairs(op, k=op.dim + 1), "k must be"),
        (lambda: hessian_eigenpairs(op, k=2, which="middle"), "which"),
        (lambda: hessian_eigenpairs(op, k=2, tol=0), "tol"),
        (lambda: hessian_eigenpairs(torch.ones(3, 4, dtype=D), k=1), "square"),
        (lambda: lanczos(op, 0), "steps"),
        (lambda: lanczos(op, 3, v0=torch.zeros(op.dim, dtype=D)), "zero"),
        (lambda: hessian_trace(op, queries=0), "queries"),
        (lambda: hessian_trace(op, queries=5, method="magic"), "method"),
        (lambda: hessian_trace(op, queries=5, method="deflated"), "lanczos_basis"),
        (lambda: spectral_density(op, n_vectors=0), "positive"),
        (lambda: hessian_spectrum(model, "mse", X, Y, top=0, bottom=0), "top and bottom"),
        (lambda: hessian_spectrum(model, "mse", X, Y, top=-1), "top and bottom"),
    ]
    for fn, match in cases:
        with pytest.raises(InvalidInputError, match=match):
            fn()
    # every one of them is also catchable as the library's base error
    with pytest.raises(RelulabError):
        HessianOperator(model, "mse", torch.randn(6, 4, dtype=D), Y)


# ------------------------------------------------------------------ regressions found in review
def test_rank_deficient_hessian_converges_without_exhausting_the_steps():
    # a linear model with more features than samples: rank 20 among 501 parameters, a 481-dim null space
    m = nn.Linear(500, 1).double()
    X = torch.randn(20, 500, dtype=D, generator=gen(0))
    Y = torch.randn(20, 1, dtype=D, generator=gen(1))
    op = HessianOperator(m, "mse", X, Y)
    res = hessian_eigenpairs(op, k=3, which="both", tol=1e-8)
    ev = torch.linalg.eigvalsh(op.dense()).numpy()
    assert res.converged and res.steps < 60
    assert np.allclose(res.largest, ev[::-1][:3], atol=1e-10 * ev.max())
    assert np.allclose(res.smallest, ev[:3], atol=1e-10 * ev.max())
    res = hessian_eigenpairs(torch.eye(100, dtype=D), k=3, which="largest")
    assert res.converged and res.steps <= 5 and np.allclose(res.largest, 1.0)


def test_float32_clustered_bulk_is_not_mistaken_for_an_invariant_space():
    rng = np.random.default_rng(0)
    ev = np.r_[[10.0, 9.0, 8.0], 1 + np.linspace(-1e-3, 1e-3, 197)]
    Q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    A = torch.as_tensor((Q * ev) @ Q.T, dtype=torch.float32)
    A = (A + A.T) / 2
    res = hessian_eigenpairs(A, k=2, which="both", tol=1e-6)
    assert res.converged
    assert np.allclose(res.smallest, np.sort(ev)[:2], atol=2e-5)
    assert np.allclose(res.largest, [10.0, 9.0], atol=2e-5)


def test_estimated_inertia_counts_are_never_negative():
    m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1, bias=False)).double()
    with torch.no_grad():
        m[0].bias.fill_(-100.0)  # every hidden unit dead: H = 0 and grad = 0, so tol = 0
    X = torch.randn(10, 2, dtype=D, generator=gen(2))
    op = HessianOperator(m, "mse", X, torch.zeros(10, 1, dtype=D))
    ine = hessian_inertia(op, max_dense=0)
    assert not ine.exact and (ine.negative, ine.zero, ine.positive) == (0, 16, 0)


def test_estimated_inertia_does_not_claim_unresolved_structure():
    # SLQ cannot place eigenvalues finer than its Ritz residuals: the estimate may call them zero, but
    # it must not report more definite eigenvalues of a sign than there are
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3)).double()
    X = torch.randn(80, 2, dtype=D, generator=gen(3))
    Y = torch.randint(0, 3, (80,), generator=gen(4))
    op = HessianOperator(m, "cross_entropy", X, Y)
    ex = hessian_inertia(op, tol=1e-6)
    est = hessian_inertia(op, tol=1e-6, max_dense=0, density=spectral_density(op, 20, 60))
    assert est.negative + est.zero + est.positive == op.dim
    assert est.negative <= ex.negative * 1.2 + 3 and est.positive <= ex.positive * 1.2 + 3


def test_mse_refuses_broadcasting_targets():
    with pytest.raises(InvalidInputError, match="must be equal"):
        HessianOperator(nn.Linear(2, 1).double(), "mse", torch.randn(5, 2, dtype=D), torch.randn(5, dtype=D))


def _zero_background(seed=0):
    X = torch.zeros(4, 1, 6, 6, dtype=D)
    X[:, :, :2, :2] = torch.randn(4, 1, 2, 2, dtype=D, generator=gen(seed))
    return X


@pytest.mark.parametrize("order", ["relu-pool", "pool-relu"])
def test_kink_report_ignores_ties_of_identical_pieces(order):
    # max-pool windows over the zero background hold pieces w . 0 + b: equal for every parameter, no kink
    torch.manual_seed(1)
    conv = nn.Conv2d(1, 2, 3, padding=1)
    body = [conv, nn.ReLU(), nn.MaxPool2d(2)] if order == "relu-pool" else [conv, nn.MaxPool2d(2), nn.ReLU()]
    m = nn.Sequential(*body, nn.Flatten(), nn.Linear(18, 3)).double()
    r = kink_report(m, _zero_background())
    assert r.on_kink == 0 and r.near_kink == 0 and r.min_relative_margin > 0


def test_kink_report_counts_zero_bias_kinks_consistently():
    # with the bias at 0 the background's pre-activations are exactly 0 for these parameters, and moving
    # the bias moves them: real kinks, counted by both the exact and the near count
    conv = nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.bias.zero_()
    m = nn.Sequential(conv, nn.LeakyReLU(0.1), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 3)).double()
    r = kink_report(m, _zero_background())
    assert r.on_kink > 0 and r.near_kink >= r.on_kink and r.one_sided
    for layer in r.layers:
        assert layer["near_kink"] >= layer["on_kink"]


def test_lanczos_memory_budget_caps_the_basis_or_refuses():
    A = torch.diag(torch.linspace(-1.0, 2.0, 1000, dtype=D))
    res = hessian_eigenpairs(A, k=2, tol=1e-14, memory_budget=40 * 1000 * 8)
    assert res.steps <= 39 and not res.converged  # capped, and said so
    with pytest.raises(InvalidInputError, match="memory_budget"):
        hessian_eigenpairs(A, k=5, memory_budget=10 * 1000 * 8)
    with pytest.raises(InvalidInputError, match="memory_budget"):
        spectral_density(A, 2, 80, memory_budget=10 * 1000 * 8)


def test_engines_choose_one_thread_for_small_work_and_restore_the_callers_setting(monkeypatch):
    """Small networks run their products on one torch thread (threads_for); large ones on the
    caller's setting, which is restored afterwards, unless the machine is busy."""
    import relulab.core.threads as threads

    monkeypatch.setattr(threads, "machine_busy", lambda: False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []

        class Recording(HessianOperator):
            def matvec(self, v):
                seen.append(torch.get_num_threads())
                return super().matvec(v)

        model = mlp([3, 5, 2], "tanh", 3)
        X, Y = data("mse", 10, 3, 2, 3)
        op = Recording(model, "mse", X, Y)
        assert op.work < 1 << 16
        hessian_eigenpairs(op, k=1, which="largest")
        hessian_trace(op, queries=6, method="hutchinson")
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        X, Y = data("mse", 3000, 30, 2, 4)  # 90,000-element input batch: not small
        big = Recording(mlp([30, 4, 2], "tanh", 4), "mse", X, Y)
        assert big.work >= 1 << 16
        hessian_trace(big, queries=3, method="hutchinson")
        assert set(seen) == {2} and torch.get_num_threads() == 2
        seen.clear()
        monkeypatch.setattr(threads, "machine_busy", lambda: True)
        hessian_trace(big, queries=3, method="hutchinson")
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
