"""Property tests of PLNet's primitives on random architectures.

References (independent of PLNet's code path): the torch module's own forward pass, autograd
Jacobians (torch.func.jacrev), torch's activation inputs captured by forward hooks and max-pool
``return_indices``, finite differences, and moving across a computed boundary.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import examples, inputs_for, module_jacobian, module_output, random_module, tol
from torch import nn

import relulab
from relulab import nn as rnn
from relulab.core.layers import MaxUnits

SEQUENTIAL = ("mlp", "cnn1d", "cnn2d")


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


# ----------------------------------------------------------------------------- forward and Jacobian
@settings(max_examples=examples(60))
@given(random_module(), st.data())
def test_output_and_local_affine_match_torch(ms, data):
    module, shape = ms
    net = relulab.PLNet.from_torch(module, shape)
    x = data.draw(inputs_for(shape, batch=5))
    ref = module_output(module, x)
    out = flat(net(x))
    assert out.dtype == torch.float64 and out.shape == ref.shape
    assert torch.allclose(out, ref, rtol=0, atol=tol(ref))

    A, c = net.local_affine(x)
    J = module_jacobian(module, x)
    assert A.shape == (5, net.output_dim, net.input_dim) and c.shape == (5, net.output_dim)
    assert torch.allclose(A, J, rtol=0, atol=tol(J, rel=1e-9))
    assert torch.allclose((A @ flat(x)[..., None])[..., 0] + c, ref, rtol=0, atol=tol(ref, rel=1e-9))

    # one sample, unbatched
    y1 = net(x[0])
    assert y1.shape == net.output_shape
    A1, c1 = net.local_affine(x[0])
    assert torch.allclose(A1, A[0], rtol=0, atol=tol(A, rel=1e-12)) and torch.allclose(c1, c[0], rtol=0, atol=tol(c))
    assert torch.equal(net.pattern(x[0]), net.pattern(x)[0])


# ----------------------------------------------------------------------------- regions
def _rows(net, pattern):
    G, h = net.region_inequalities(pattern)
    zero = (G == 0).all(-1) & (h == 0)
    return G, h, zero


@settings(max_examples=examples(45))
@given(random_module(), st.data())
def test_region_inequalities_hold_and_crossing_changes_pattern(ms, data):
    module, shape = ms
    net = relulab.PLNet.from_torch(module, shape)
    x = flat(data.draw(inputs_for(shape, batch=3)))
    P = net.pattern(x)
    G, h, zero = _rows(net, P)
    R = int(sum(int((m.n_pieces - 1).sum()) for m in net.max_units))
    assert G.shape == (3, R, net.input_dim) and h.shape == (3, R)
    assert net.inequality_units().shape == (R,)
    vals = (G @ x[..., None])[..., 0] + h
    scale = tol(G, h, rel=1.0) * (1 + float(x.abs().max()))
    # x lies in its own region; every row that is not identically zero is strictly positive there
    assert bool((vals >= -1e-12 * scale).all())
    assert bool((vals[~zero] > 0).all())
    assert bool((G[zero] == 0).all())

    units = net.inequality_units()
    for i in range(3):
        norm = G[i].norm(dim=-1)
        live = norm > 1e-9 * scale
        if not bool(live.any()):
            continue
        dist = torch.where(live, vals[i] / norm.clamp_min(1e-300), torch.full_like(norm, math.inf))
        r = int(dist.argmin())
        s = float(dist[r])
        others = torch.cat([dist[:r], dist[r + 1:]])
        others = others[torch.isfinite(others)]
        gap = float(others.min() - s) if others.numel() else 1.0  # ~0 when another row shares the hyperplane
        eps = min(1e-6 * (1 + s), gap / 4) if gap > 1e-9 else 1e-6 * (1 + s)
        x2 = x[i] - (s + eps) * G[i, r] / norm[r]
        p2 = net.pattern(x2)
        # the old region's inequality r is violated, and the unit it bounds changed its winner
        assert float(G[i, r] @ x2 + h[i, r]) < 0
        assert bool((p2 != P[i]).any())
        if gap > 1e-9:
            # only row r was crossed: the unit it bounds changed its winner
            u = int(units[r])
            assert int(p2[u]) != int(P[i, u])
        # the new point is in the closure of its own region
        G2, h2 = net.region_inequalities(p2)
        assert bool((G2 @ x2 + h2 >= -1e-12 * scale).all())


@settings(max_examples=examples(25))
@given(random_module(), st.data())
def test_region_membership_matches_patterns(ms, data):
    """Around a point, y has the pattern p exactly when it satisfies p's inequalities: checked on a
    cloud of points reaching a few boundaries away, for p = the point's pattern and for the pattern
    of a neighbour (whose region x need not be in)."""
    module, shape = ms
    net = relulab.PLNet.from_torch(module, shape)
    x = flat(data.draw(inputs_for(shape, batch=1)))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    for radius in (0.05, 0.5):
        Y = x + radius * torch.randn(200, net.input_dim, generator=g, dtype=torch.float64)
        PX = net.pattern(torch.cat([x, Y]))
        PY = PX[1:]
        for p in (PX[0], PY[0]):
            G, h = net.region_inequalities(p)
            vals = Y @ G.T + h
            live = ~((G == 0).all(-1) & (h == 0))
            slack = tol(G, h, rel=1e-9) * (1 + float(Y.abs().max()))
            inside = (vals[:, live] > slack).all(1)
            outside = (vals[:, live] < -slack).any(1)
            same = (PY == p).all(1)
            assert bool(same[inside].all()), "a point strictly inside the region has another pattern"
            assert not bool(same[outside].any()), "a point with the pattern violates an inequality"


@settings(max_examples=examples(30))
@given(random_module(), st.data())
def test_affine_continuation(ms, data):
    module, shape = ms
    net = relulab.PLNet.from_torch(module, shape)
    x = flat(data.draw(inputs_for(shape, batch=3)))
    y = flat(data.draw(inputs_for(shape, batch=3))) * 3.0
    P = net.pattern(x)
    A, c = net.local_affine(x)
    # the affine map of a region does not depend on where it is evaluated
    A2, c2 = net.local_affine(y, pattern=P)
    assert torch.allclose(A2, A, rtol=0, atol=tol(A, rel=1e-9)) and torch.allclose(c2, c, rtol=0, atol=tol(c, rel=1e-9))
    forced = net.trace(y, pattern=P).output
    assert torch.allclose(forced, (A @ y[..., None])[..., 0] + c, rtol=0, atol=tol(forced, A, rel=1e-9))
    # a point strictly inside the region (half way to its nearest hyperplane) has the pattern and
    # the output of the continuation
    G, h, zero = _rows(net, P)
    vals = (G @ x[..., None])[..., 0] + h
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    v = v / v.norm(dim=1, keepdim=True)
    rate = (G @ v[..., None])[..., 0].abs()
    room = torch.where(rate > 0, vals / rate.clamp_min(1e-300), torch.full_like(rate, math.inf))
    room = torch.cat([room, torch.full((room.shape[0], 1), math.inf, dtype=room.dtype)], 1).amin(1)
    t = torch.clamp(0.5 * room, max=10.0)[:, None]
    z = x + t * v
    assert torch.equal(net.pattern(z), P)
    assert torch.allclose(flat(net(z)), (A @ z[..., None])[..., 0] + c, rtol=0, atol=tol(A, c, rel=1e-9) * 10)
    # far points: wherever the pattern happens to agree, so does the output
    same = (net.pattern(y) == P).all(1)
    out = flat(net(y))
    assert torch.allclose(out[same], forced[same], rtol=0, atol=tol(out, rel=1e-9))


# ----------------------------------------------------------------------------- pattern conventions
def torch_pattern(module: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Per max-unit module (in call order), the winners torch itself implies: (z > 0) for
    ReLU/leaky/abs, first argmax of each group for GroupMax, the pooled index for MaxPool."""
    seen = []
    kinds = (nn.ReLU, nn.LeakyReLU, rnn.Abs, rnn.GroupMax, nn.MaxPool1d, nn.MaxPool2d)
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].detach())))
             for m in module.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for hk in hooks:
            hk.remove()
    out = []
    for m, z in seen:
        if isinstance(m, (nn.ReLU, nn.LeakyReLU, rnn.Abs)):
            out.append(("elementwise", (z > 0).long().flatten(1)))
        elif isinstance(m, rnn.GroupMax):
            g = z.reshape(z.shape[0], z.shape[1] // m.k, m.k, *z.shape[2:])
            out.append(("maxout", g.argmax(2).flatten(1)))
        else:
            cls = nn.MaxPool1d if isinstance(m, nn.MaxPool1d) else nn.MaxPool2d
            pool = cls(m.kernel_size, m.stride, m.padding, m.dilation, return_indices=True, ceil_mode=m.ceil_mode)
            _, idx = pool(z)
            plane = math.prod(z.shape[2:])
            chan = torch.arange(z.shape[1])[:, None] * plane
            out.append(("maxpool", (idx.flatten(2) + chan[None]).flatten(1)))  # flat input positions
    return out


def check_pattern_convention(net, module, x):
    expected = torch_pattern(module, x)
    P = net.pattern(x)
    assert len(expected) == len(net.max_units)
    for l, ((kind, e), layer) in enumerate(zip(expected, net.max_units)):
        got = P[:, net.layer_slice(l)]
        if kind == "maxpool":
            # torch names the input position; PLNet the piece: map one to the other
            hit = (layer.index[None] == e[..., None]) & layer.valid[None]
            assert bool(hit.any(-1).all())
            e = hit.long().argmax(-1)
        assert torch.equal(got, e), (l, layer.kind)


@settings(max_examples=examples(25))
@given(random_module(families=SEQUENTIAL), st.data())
def test_pattern_convention_generic(ms, data):
    module, shape = ms
    net = relulab.PLNet.from_torch(module, shape)
    check_pattern_convention(net, module, data.draw(inputs_for(shape, batch=4)))


@settings(max_examples=examples(40))
@given(random_module(families=SEQUENTIAL, ties=True), st.data())
def test_pattern_convention_on_kinks_and_ties(ms, data):
    """Integer weights and inputs: many pre-activations are exactly 0, maxout pieces and pooled
    entries exactly equal. Winners must follow the lowest-index rule, outputs stay exact."""
    module, shape = ms
    net = relulab.PLNet.from_torch(module, shape)
    x = data.draw(inputs_for(shape, batch=6, ties=True))
    assert torch.equal(flat(net(x)), module_output(module, x))  # integer arithmetic: exact
    check_pattern_convention(net, module, x)
    P = net.pattern(x)
    G, h = net.region_inequalities(P)
    vals = (G @ flat(x)[..., None])[..., 0] + h
    # points on kinks lie on the boundary, not outside (up to rounding of non-integer slopes)
    assert bool((vals >= -tol(G, h, rel=1e-12) * (1 + float(x.abs().max()))).all())


def test_relu_leaky_abs_pattern_is_z_positive_with_exact_zeros():
    lin = nn.Linear(3, 4).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, -1, 0]]))
        lin.bias.zero_()
    x = torch.tensor([[0.0, 0, 0], [1, -1, 0], [-2, 3, 1e-300], [2, 2, -0.0]], dtype=torch.float64)
    z = lin(x).detach()
    for act in (nn.ReLU(), nn.LeakyReLU(0.1), nn.LeakyReLU(0.0), nn.LeakyReLU(-0.5), rnn.Abs()):
        net = relulab.PLNet.from_torch(nn.Sequential(lin, act), (3,))
        assert torch.equal(net.pattern(x), (z > 0).long())
        assert torch.equal(net(x), act(z))


def test_maxout_ties_go_to_lowest_index():
    m = rnn.Maxout(2, 2, k=3).double()
    with torch.no_grad():
        w = torch.randn(6, 2, dtype=torch.float64)
        w[2] = w[0]          # unit 0: pieces 0 and 2 identical
        w[4] = w[5] = w[3]   # unit 1: all three identical
        m.linear.weight.copy_(w)
        m.linear.bias.copy_(torch.tensor([0.0, -50.0, 0.0, 1.0, 1.0, 1.0]))
    net = relulab.PLNet.from_torch(m, (2,))
    x = torch.randn(20, 2, dtype=torch.float64)
    P = net.pattern(x)
    assert bool((P[:, 1] == 0).all())
    assert bool((P[:, 0] == 0).all())  # piece 1 is 50 lower than pieces 0 == 2 on this box
    # the identical pieces give identically zero inequality rows: no boundary between them
    G, h = net.region_inequalities(P)
    units = net.inequality_units()
    zero = (G == 0).all(-1) & (h == 0)
    assert int(zero.sum(1)[0]) == 3  # unit 0: row (0 vs 2); unit 1: rows (0 vs 1), (0 vs 2)
    assert torch.equal(units, torch.tensor([0, 0, 1, 1]))


def test_maxpool_ties_lowest_index_and_dead_relus():
    # after a ReLU that kills every entry, every window ties at 0 -> first valid piece
    mod = nn.Sequential(nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)).double()
    net = relulab.PLNet.from_torch(mod, (1, 5, 5))
    x = -torch.rand(2, 1, 5, 5, dtype=torch.float64) - 0.1
    P = net.pattern(x)
    pool = net.max_units[1]
    assert bool((P[:, net.layer_slice(1)] == 0).all())
    # pooling rows between dead ReLUs are identically zero; the ReLU rows are not
    G, h = net.region_inequalities(P)
    units = net.inequality_units()
    pool_rows = units >= net.unit_offsets[1]
    assert bool(((G[:, pool_rows] == 0).all(-1) & (h[:, pool_rows] == 0)).all())
    assert bool((G[:, ~pool_rows].abs().sum(-1) > 0).all())
    # equal entries inside windows (integer inputs): torch's returned index is the lowest piece
    xi = torch.randint(0, 2, (4, 1, 5, 5)).double()
    check_pattern_convention(net, mod, xi)
    assert pool.n_pieces.min() >= 4 and pool.n_pieces.max() == 9


# ----------------------------------------------------------------------------- trace
@settings(max_examples=examples(35))
@given(random_module(), st.data())
def test_trace_tangents_upto_and_partial_patterns(ms, data):
    module, shape = ms
    net = relulab.PLNet.from_torch(module, shape)
    B, d = 3, net.input_dim
    x = flat(data.draw(inputs_for(shape, batch=B)))
    m = data.draw(st.integers(1, 3))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    V = torch.randn(m, d, generator=g, dtype=torch.float64)
    full = net.trace(x, directions=V)
    P = full.pattern
    assert torch.equal(P, net.pattern(x))
    L = len(net.max_units)
    assert len(full.pieces) == L and len(full.piece_tangents) == L

    # output tangent is A @ V^T
    A, _ = net.local_affine(x)
    assert torch.allclose(full.output_tangent, (A @ V.T).transpose(1, 2), rtol=0, atol=tol(A, rel=1e-9) * m)

    # piece tangents against central differences of the pieces with the pattern held fixed
    # (pieces are then exactly affine in x, so the difference quotient is exact up to rounding)
    step = 1e-3
    for j in range(m):
        up = net.trace(x + step * V[j], pattern=P)
        dn = net.trace(x - step * V[j], pattern=P)
        for l, layer in enumerate(net.max_units):
            valid = layer.valid[None].expand(B, -1, -1)
            fd = (up.pieces[l] - dn.pieces[l]) / (2 * step)
            t = full.piece_tangents[l][:, j]
            assert t.shape == (B, layer.units, layer.index.shape[1])
            err = (fd - t)[valid].abs().max() if bool(valid.any()) else torch.tensor(0.0)
            assert float(err) <= 1e-7 * (1 + float(full.pieces[l][valid].abs().max()) / step)
            assert bool(torch.isneginf(full.pieces[l][~valid]).all())

    # per-sample directions (B, m, d), and directions shaped like inputs, give the same
    per = net.trace(x, directions=V[None].expand(B, m, d).clone())
    if shape[-1] != d:  # else (m, *shape) reads as (batch, m, d)
        shaped = net.trace(x, directions=V.reshape(m, *shape))
        assert torch.allclose(shaped.output_tangent, full.output_tangent, rtol=0, atol=0)
    for a, b in zip(per.piece_tangents, full.piece_tangents):
        assert torch.allclose(a, b, rtol=0, atol=1e-12 * (1 + float(b.abs().max())))

    if L:
        # upto: stops after max layer l with the same pieces and pattern prefix
        l = data.draw(st.integers(0, L - 1))
        part = net.trace(x, directions=V, upto=l)
        assert part.output is None and len(part.pieces) == l + 1
        assert torch.equal(part.pattern, P[:, : net.unit_offsets[l + 1]])
        for k in range(l + 1):
            assert torch.equal(part.pieces[k], full.pieces[k])
            assert torch.allclose(part.piece_tangents[k], full.piece_tangents[k], rtol=0, atol=1e-12)

        # -1 entries stay free: the forced trace agrees with the free one where it is not forced
        free = torch.rand(P.shape, generator=g) < 0.5
        half = torch.where(free, torch.full_like(P, -1), P)
        assert torch.equal(net.trace(x, pattern=half).pattern, P)
        # force another point's pattern on part of the units: forced entries are kept, free ones
        # are the argmax of the pieces computed under the forcing
        other = net.pattern(flat(data.draw(inputs_for(shape, batch=B))))
        mixed = torch.where(free, torch.full_like(P, -1), other)
        tr = net.trace(x, pattern=mixed)
        assert torch.equal(tr.pattern[~free], other[~free])
        for k, layer in enumerate(net.max_units):
            sl = net.layer_slice(k)
            argmax = tr.pieces[k].argmax(-1)
            f = free[:, sl]
            assert torch.equal(tr.pattern[:, sl][f], argmax[f])
        # with every entry forced to the point's own pattern, nothing changes
        assert torch.allclose(net.trace(x, pattern=P).output, full.output, rtol=0, atol=0)


# ----------------------------------------------------------------------------- structure
@settings(max_examples=examples(15))
@given(random_module(batchnorm=False))
def test_describe_and_parameter_count(ms):
    module, shape = ms
    net = relulab.PLNet.from_torch(module, shape)
    assert net.n_parameters() == sum(p.numel() for p in module.parameters())
    d = net.describe()
    assert d["input_shape"] == list(shape) and d["output_shape"] == list(net.output_shape)
    assert d["max_units"] == net.n_units == sum(m.units for m in net.max_units)
    assert d["max_layers"] == len(net.max_units)
    assert d["parameters"] == net.n_parameters()
    assert set(d["activations"]) <= {"relu", "leaky_relu", "abs", "maxout", "maxpool"}
    assert d["residual"] == any(l["kind"] == "add" for l in d["layers"])
    for l in d["layers"]:
        assert all(j < l["index"] for j in l["inputs"])
    assert "PLNet" in repr(net)


def test_describe_small_example():
    mod = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), rnn.Maxout(4, 2, 3), nn.Linear(2, 1))
    net = relulab.PLNet.from_torch(mod, (3,))
    d = net.describe()
    assert d["max_units"] == 4 + 2 and d["max_layers"] == 2
    assert d["activations"] == ["maxout", "relu"]
    assert d["parameters"] == 16 + (4 * 6 + 6) + 3 == sum(p.numel() for p in mod.parameters())
    assert [l["kind"] for l in d["layers"]] == ["linear", "relu", "linear", "maxout", "linear"]
    assert [l.get("pieces") for l in d["layers"]] == [None, 2, None, 3, None]
    assert d["residual"] is False


def test_batchnorm_folds_into_channel_scale():
    bn = nn.BatchNorm1d(3).double().eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
        bn.weight.copy_(torch.tensor([2.0, 1.0, -1.0]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, 3.0]))
    net = relulab.PLNet.from_torch(nn.Sequential(bn, nn.ReLU()), (3,))
    x = torch.randn(7, 3, dtype=torch.float64)
    assert torch.allclose(net(x), torch.relu(bn(x)).detach(), atol=1e-12)
    assert net.n_parameters() == 6


# ----------------------------------------------------------------------------- dtype and device
@settings(max_examples=examples(10))
@given(random_module(), st.data())
def test_float32(ms, data):
    module, shape = ms
    net = relulab.PLNet.from_torch(module, shape)
    x = data.draw(inputs_for(shape, batch=4))
    y64 = flat(net(x))
    A64, _ = net.local_affine(x)
    assert net.to(dtype=torch.float32) is net
    assert net.dtype == torch.float32
    y32 = flat(net(x))
    assert y32.dtype == torch.float32
    assert torch.allclose(y32.double(), y64, rtol=0, atol=1e-4 * (1 + float(y64.abs().max())))
    A32, c32 = net.local_affine(x)
    assert A32.dtype == c32.dtype == torch.float32
    # patterns may differ only where a pre-activation is within float32 rounding of a kink
    if torch.equal(net.pattern(x), relulab.PLNet.from_torch(module, shape).pattern(x)):
        assert torch.allclose(A32.double(), A64, rtol=0, atol=1e-4 * (1 + float(A64.abs().max())))
    G, h = net.region_inequalities(net.pattern(x))
    assert G.dtype == torch.float32
    back = net.to_torch()
    assert next(iter(back.parameters()), torch.zeros((), dtype=torch.float32)).dtype == torch.float32
    assert torch.allclose(flat(back(x.float())), y32, rtol=0, atol=1e-5 * (1 + float(y32.abs().max())))
    net.to(dtype=torch.float64)
    assert torch.allclose(flat(net(x)), y64, rtol=0, atol=1e-4 * (1 + float(y64.abs().max())))


def test_default_dtype_is_float64_and_inputs_are_cast():
    net = relulab.PLNet.from_torch(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), (2,))
    assert net.dtype == torch.float64
    for x in (torch.ones(4, 2), torch.ones(4, 2, dtype=torch.int64), [[1.0, 2.0]]):
        assert net(x).dtype == torch.float64
    A, c = net.local_affine(torch.ones(2, dtype=torch.float32))
    assert A.dtype == torch.float64 and A.shape == (3, 2)
    net32 = relulab.PLNet.from_torch(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), (2,), dtype=torch.float32)
    assert net32(torch.ones(1, 2)).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    mod = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        rnn.Maxout(12, 4, 2), nn.Linear(4, 2)).double().eval()
    net = relulab.PLNet.from_torch(mod, (1, 4, 4))
    x = torch.randn(8, 1, 4, 4, dtype=torch.float64)
    y, P, (A, c) = net(x), net.pattern(x), net.local_affine(x)
    G, h = net.region_inequalities(P)
    net.to("cuda")
    assert net(x).device.type == "cuda"
    assert torch.allclose(net(x).cpu(), y, atol=1e-12)
    assert torch.equal(net.pattern(x).cpu(), P)
    A2, c2 = net.local_affine(x)
    assert torch.allclose(A2.cpu(), A, atol=1e-12) and torch.allclose(c2.cpu(), c, atol=1e-12)
    G2, h2 = net.region_inequalities(P.cuda())
    assert torch.allclose(G2.cpu(), G, atol=1e-12) and torch.allclose(h2.cpu(), h, atol=1e-12)
    assert net.to_torch()(x.cuda()).device.type == "cuda"


def test_max_units_layer_tables():
    net = relulab.PLNet.from_torch(
        nn.Sequential(nn.Conv1d(2, 4, 3), rnn.GroupMax(2), nn.MaxPool1d(2, stride=1, padding=1)), (2, 6))
    gm, mp = net.max_units
    assert isinstance(gm, MaxUnits) and gm.kind == "maxout" and mp.kind == "maxpool"
    assert gm.units == 2 * 4 and gm.out_shape == (2, 4)
    assert mp.units == 2 * 5 and mp.out_shape == (2, 5)
    assert mp.n_pieces.tolist() == [1, 2, 2, 2, 1] * 2  # windows at the padded ends hold one entry
    assert net.layer_slice(1) == slice(8, 18) and net.n_units == 18


def test_empty_batches():
    mod = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(4, 3))
    net = relulab.PLNet.from_torch(mod, (1, 6))
    for e in (torch.zeros(0, 1, 6), torch.zeros(0, 6)):
        assert net(e).shape == (0, 3) and net.pattern(e).shape == (0, net.n_units)
        A, c = net.local_affine(e)
        assert A.shape == (0, 3, 6) and c.shape == (0, 3)
        tr = net.trace(e, directions=torch.eye(6))
        assert tr.output_tangent.shape == (0, 6, 3)
        assert [t.shape for t in tr.piece_tangents] == [(0, 6, 8, 2), (0, 6, 4, 2)]
    G, h = net.region_inequalities(torch.zeros(0, net.n_units, dtype=torch.long))
    assert G.shape == (0, 8 + 4, 6) and h.shape == (0, 12)


def test_local_affine_modes_agree():
    """Reverse mode (n_out < d) and forward mode (n_out >= d) give the same maps, also under
    no_grad / inference_mode and for forced patterns."""
    torch.manual_seed(3)
    wide_in = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), rnn.Maxout(5, 3, 2), nn.Linear(3, 2)).double()
    narrow_in = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), rnn.Maxout(5, 3, 2), nn.Linear(3, 4)).double()
    for mod, d in ((wide_in, 6), (narrow_in, 2)):
        net = relulab.PLNet.from_torch(mod, (d,))
        x = torch.randn(9, d, dtype=torch.float64)
        J = torch.func.jacrev(lambda z: mod(z).sum(0))(x).transpose(0, 1)
        A, c = net.local_affine(x)
        assert torch.allclose(A, J, atol=1e-12)
        with torch.no_grad():
            assert torch.allclose(net.local_affine(x)[0], J, atol=1e-12)
        with torch.inference_mode():
            A2, c2 = net.local_affine(x)
        assert torch.allclose(A2, A, atol=1e-12) and torch.allclose(c2, c, atol=1e-12)
        # forward-mode reference: output tangent along the identity
        tr = net.trace(x, directions=torch.eye(d, dtype=torch.float64))
        assert torch.allclose(tr.output_tangent.transpose(1, 2), A, atol=1e-12)
        P = net.pattern(x)
        A3, c3 = net.local_affine(x.flip(0), pattern=P)
        assert torch.allclose(A3, A, atol=1e-12) and torch.allclose(c3, c, atol=1e-12)
        assert not A.requires_grad and not c.requires_grad


def test_inputs_that_overflow_inside_the_network_are_refused():
    import pytest
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        m[0].weight.fill_(4.0)  # 1e308 inputs overflow in the first layer already
    net = relulab.PLNet.from_torch(m, (2,))
    big = torch.full((3, 2), 1e308, dtype=torch.float64)
    for call in (net, net.pattern, net.local_affine, lambda x: net.trace(x, directions=torch.eye(2), check_finite=True)):
        with pytest.raises(relulab.InvalidInputError, match="non-finite|overflow"):
            call(big)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(relulab.InvalidInputError, match="NaN or infinite"):
            net(torch.tensor([[0.0, bad]], dtype=torch.float64))
    # ordinary inputs are untouched
    x = torch.randn(5, 2, dtype=torch.float64)
    assert torch.allclose(net(x), m.double()(x))


def test_layer_forward_and_tangent_methods_match_autograd():
    """Every node kind pushes values and tangents itself (forward, tangent; selected_tangent for max units):
    the tangents agree with torch.func.jvp of the layer's own value map."""
    import torch

    from relulab import PLNet
    from relulab.core.layers import Add, MaxUnits

    class Res(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv1d(1, 2, 3, padding=1)
            self.b = torch.nn.Linear(8, 8)
            self.pool = torch.nn.MaxPool1d(2)

        def forward(self, x):
            h = torch.relu(self.a(x)).flatten(1)
            return self.pool((self.b(h) + h).view(-1, 1, 8)).flatten(1)

    torch.manual_seed(0)
    net = PLNet.from_torch(Res().double(), (1, 4))
    kinds = set()
    gen = torch.Generator().manual_seed(1)
    for node in net.nodes[1:]:
        layer = node.layer
        kinds.add(type(layer).__name__ if not isinstance(layer, MaxUnits) else "MaxUnits")
        n_in = [int(torch.tensor(net.nodes[j].layer.out_shape if j else net.input_shape).prod()) for j in node.inputs]
        zs = [torch.randn(3, k, generator=gen, dtype=torch.float64) for k in n_in]
        ts = [torch.randn(3, 2, k, generator=gen, dtype=torch.float64) for k in n_in]
        if isinstance(layer, MaxUnits):
            w = layer.pieces(zs[0]).argmax(-1)
            f = lambda *z: layer.select(z[0], w)[0]  # noqa: E731 - the winners held fixed
            _, idx, cf = layer.select(zs[0], w)
            got = layer.selected_tangent(ts[0], idx, cf)
            assert torch.equal(f(*zs), layer(zs[0]))
        else:
            f = layer.forward
            got = layer.tangent(*ts)
        for d in range(2):
            _, want = torch.func.jvp(f, tuple(zs), tuple(t[:, d] for t in ts))
            torch.testing.assert_close(got[:, d], want, rtol=1e-12, atol=1e-12)
    assert {"Conv", "Dense", "Add", "MaxUnits"} <= kinds and Add.forward(zs[0], zs[0]).shape == zs[0].shape
