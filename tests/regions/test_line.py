"""Tests of ``relulab.regions.on_line`` (exact activation regions along segments and polylines).

References, each independent of the line walk: ``net.pattern`` on dense grids along the segment
(every sampled pattern must be the pattern of the interval containing the sample), bisection on
the pattern between differing samples (each change located to 1e-9 must be a reported
breakpoint), patterns just beside every reported breakpoint, ``net(x)`` at random points (against
the piecewise affine restriction and the input-space maps), the closed-form roots
``t_j = -(w_j . a + b_j) / (w_j . (b - a))`` of one-hidden-layer networks, fine polyline
approximations of the image curve length, and exact (dyadic) arithmetic for integer networks,
where ``net.pattern``'s lowest-index tie rule is the exact reference for degenerate segments.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from exact_reference import exact_patterns
from strategies import examples, random_module
from torch import nn

from relulab import DegenerateGeometryError, InvalidInputError, PLNet
from relulab import nn as rnn
from relulab.regions import on_line
from relulab.regions.line import LineBatch, LinePartition


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # many small tensor ops: one thread avoids thread-pool contention on busy machines
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- helpers
def init(module, seed=0, bias=0.5):
    g = torch.Generator().manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv1d)):
                fan = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64) / math.sqrt(fan))
                if m.bias is not None:
                    m.bias.copy_(bias * torch.randn(m.bias.shape, generator=g, dtype=torch.float64))
    return module.eval()


def mlp(widths, act=nn.ReLU, seed=0):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(act())
    return init(nn.Sequential(*layers), seed)


def net_of(module, shape):
    return PLNet.from_torch(module, shape)


def points(a, b, t):
    a, b = a.reshape(-1), b.reshape(-1)
    return a + t[:, None] * (b - a)


def pat(net, x):
    """``net.pattern`` of a batch (n, d), shaped so that one row is never read as one sample."""
    return net.pattern(x.reshape(x.shape[0], *net.input_shape))


def out(net, x):
    return net(x.reshape(x.shape[0], *net.input_shape)).reshape(x.shape[0], -1)


def interval_of(res: LinePartition, t):
    return torch.searchsorted(res.breakpoints.contiguous(), t, right=True)


def check_sampling(net, a, b, res: LinePartition, n=4001, exact_grid=False, bisect=True):
    """Dense-sampling and bisection references for a complete single-segment result."""
    a = torch.as_tensor(a, dtype=torch.float64).reshape(-1)
    b = torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    assert res.complete and res.covered == 1.0
    bp = res.breakpoints
    assert bp.numel() == res.count - 1
    assert bool((bp > 0).all() and (bp < 1).all())
    assert bool((bp[1:] > bp[:-1]).all())
    pats = res.patterns
    assert pats.shape == (res.count, net.n_units)
    # consecutive regions differ
    assert bool((pats[1:] != pats[:-1]).any(1).all())
    if exact_grid:  # dyadic t: every input on the grid is exact for small integer endpoints
        t = torch.arange(n, dtype=torch.float64) / (n - 1)
    else:  # irrational offset keeps samples off exact kinks
        t = (torch.arange(n, dtype=torch.float64) + 0.5 * (math.sqrt(5) - 1)) / n
    P = pat(net, points(a, b, t))
    k = interval_of(res, t)
    # a sample on a boundary (a breakpoint, or an end of the segment) has that point's own pattern
    ends = torch.cat([bp, torch.tensor([0.0, 1.0], dtype=torch.float64)])
    near = (t[:, None] - ends[None]).abs().amin(1) <= 1e-9
    bad = (P != pats[k]).any(1) & ~near
    assert not bool(bad.any()), f"sampled pattern differs from its interval's at t={t[bad][:5].tolist()}"
    # every interval longer than two steps holds a sample, so it is seen
    lengths = res.intervals[:, 1] - res.intervals[:, 0]
    seen = torch.zeros(res.count, dtype=torch.bool)
    seen[k[~near]] = True
    assert bool(seen[lengths > 2.0 / n].all())
    # patterns just beside every breakpoint
    if bp.numel() and not exact_grid:
        gaps = torch.cat([bp[:1], bp[1:] - bp[:-1], 1 - bp[-1:]])
        eps = torch.minimum(torch.full_like(bp, 1e-9), torch.minimum(gaps[:-1], gaps[1:]) / 4)
        ok = eps >= 1e-11
        L = pat(net, points(a, b, (bp - eps)[ok]))
        R = pat(net, points(a, b, (bp + eps)[ok]))
        idx = torch.arange(bp.numel())[ok]
        assert torch.equal(L, pats[idx]) and torch.equal(R, pats[idx + 1])
    # bisection between differing neighbouring samples: each change is a reported breakpoint
    if bisect:
        ch = (P[1:] != P[:-1]).any(1).nonzero()[:, 0]
        if ch.numel():
            lo, hi = t[ch].clone(), t[ch + 1].clone()
            plo = P[ch]
            for _ in range(60):
                mid = (lo + hi) / 2
                same = (pat(net, points(a, b, mid)) == plo).all(1)
                lo = torch.where(same, mid, lo)
                hi = torch.where(same, hi, mid)
            dist = (lo[:, None] - bp[None]).abs().amin(1)
            assert float(dist.max()) <= 1e-9, f"bisected change at {lo[dist.argmax()]} is not a breakpoint"
    return P


def check_values(net, a, b, res: LinePartition, n=500, seed=0):
    a = torch.as_tensor(a, dtype=torch.float64).reshape(-1)
    b = torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    t = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = points(a, b, t)
    y = out(net, x)
    scale = 1 + float(y.abs().max()) + float(res.slopes.abs().max() if res.slopes.numel() else 0)
    assert float((res.values_at(t) - y).abs().max()) <= 1e-9 * scale
    if res.A is not None:
        k = interval_of(res, t)
        yA = (res.A[k] @ x[:, :, None])[..., 0] + res.c[k]
        assert float((yA - y).abs().max()) <= 1e-9 * (scale + float(x.abs().max()) * float(res.A.abs().max()))


def rand_pair(shape, seed, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=g, dtype=torch.float64),
            scale * torch.randn(shape, generator=g, dtype=torch.float64))


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("seed", range(4))
def test_one_hidden_layer_roots(seed):
    module = mlp([4, 30, 2], seed=seed)
    net = net_of(module, (4,))
    a, b = rand_pair(4, seed + 10, 3.0)
    res = on_line(net, a, b)
    W, c = module[0].weight.detach(), module[0].bias.detach()
    roots = -(W @ a + c) / (W @ (b - a))
    roots = roots[(roots > 0) & (roots < 1)].sort().values
    assert res.count == roots.numel() + 1
    assert torch.allclose(res.breakpoints, roots, atol=1e-12, rtol=0)
    # pattern flips exactly the unit whose root it is
    flips = (res.patterns[1:] != res.patterns[:-1]).sum(1)
    assert bool((flips == 1).all())
    check_sampling(net, a, b, res)
    check_values(net, a, b, res)
    assert res.domain == "segment"


def test_activation_variants_share_the_partition():
    a, b = rand_pair(3, 5, 3.0)
    results = []
    for act in (nn.ReLU, lambda: nn.LeakyReLU(0.1), rnn.Abs, lambda: nn.LeakyReLU(-0.7)):
        net = net_of(mlp([3, 25, 1], act=act, seed=3), (3,))
        res = on_line(net, a, b)
        check_sampling(net, a, b, res)
        check_values(net, a, b, res)
        results.append(res)
    for r in results[1:]:
        assert r.count == results[0].count
        assert torch.allclose(r.breakpoints, results[0].breakpoints, atol=1e-14, rtol=0)
        assert torch.equal(r.patterns, results[0].patterns)


def test_linear_count_curve_length_and_maps():
    module = mlp([5, 16, 16, 3], seed=7)
    net = net_of(module, (5,))
    a, b = rand_pair(5, 8, 3.0)
    res = on_line(net, a, b)
    check_sampling(net, a, b, res)
    check_values(net, a, b, res)
    # linear pieces: adjacent intervals whose slopes differ; slopes from finite differences
    mids = res.intervals.mean(1)
    h = 1e-7 * (res.intervals[:, 1] - res.intervals[:, 0])
    fd = (net(points(a, b, mids + h)) - net(points(a, b, mids - h))) / (2 * h[:, None])
    assert torch.allclose(fd, res.slopes, rtol=1e-5, atol=1e-6)
    kinks = ((res.slopes[1:] - res.slopes[:-1]).abs() > 1e-8 * (1 + res.slopes.abs().max())).any(1)
    assert res.linear_count == int(kinks.sum()) + 1 <= res.count
    assert torch.allclose(res.linear_breakpoints, res.breakpoints[kinks])
    # curve length against a fine polyline through the image (from below, converging)
    t = torch.linspace(0, 1, 200001, dtype=torch.float64)
    y = net(points(a, b, t))
    poly = float((y[1:] - y[:-1]).norm(dim=1).sum())
    assert poly <= res.curve_length * (1 + 1e-12)
    # only grid cells holding a kink fall short, each by at most 2 * step * max |slope|
    smax = float(res.slopes.norm(dim=1).max())
    assert res.curve_length - poly <= (res.count - 1) * 2 * smax / 200000
    assert math.isclose(res.length, float((b - a).norm()), rel_tol=1e-14)
    assert math.isclose(res.length_ratio, res.curve_length / res.length, rel_tol=1e-14)
    # input-space maps: A (b - a) is the slope along the segment
    assert res.A.shape == (res.count, 3, 5) and res.c.shape == (res.count, 3)
    assert torch.allclose(res.A @ (b - a), res.slopes, atol=1e-10)
    # out0 + t * slope reproduces the values at the knots
    assert torch.allclose(res.out0 + res.knots[:-1, None] * res.slopes, res.values[:-1], atol=1e-12)


def test_maxpool_merges_invisible_breakpoints():
    """Breakpoints of ReLUs that lose their max-pool window do not change the function."""
    module = init(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                nn.Linear(2 * 4 * 4, 2)), seed=1)
    net = net_of(module, (1, 8, 8))
    a, b = rand_pair((1, 8, 8), 2)
    res = on_line(net, a, b)
    check_sampling(net, a, b, res)
    check_values(net, a, b, res)
    assert res.linear_count < res.count


# ----------------------------------------------------------------------------- architectures
@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_maxout(k):
    module = init(nn.Sequential(rnn.Maxout(3, 6, k), rnn.Maxout(6, 4, k), nn.Linear(4, 2)), seed=k)
    net = net_of(module, (3,))
    a, b = rand_pair(3, k, 3.0)
    res = on_line(net, a, b)
    assert res.count > 3
    check_sampling(net, a, b, res, n=8001)
    check_values(net, a, b, res)


def test_maxout_first_layer_envelope_closed_form():
    """One maxout unit: the winner changes exactly at the upper envelope's breakpoints."""
    k = 5
    module = init(nn.Sequential(rnn.Maxout(2, 1, k), nn.Linear(1, 1)), seed=11)
    net = net_of(module, (2,))
    a, b = torch.tensor([-3.0, -2.0], dtype=torch.float64), torch.tensor([3.0, 2.5], dtype=torch.float64)
    res = on_line(net, a, b)
    W, c = module[0].linear.weight.detach(), module[0].linear.bias.detach()
    p0, p1 = W @ a + c, W @ b + c  # each piece's values at t = 0 and 1
    # envelope breakpoints: pairwise crossings where both pieces are on top
    cands = []
    for i in range(k):
        for j in range(i + 1, k):
            den = (p1[i] - p0[i]) - (p1[j] - p0[j])
            if den != 0:
                t = float((p0[j] - p0[i]) / den)
                if 0 < t < 1:
                    v = p0 + t * (p1 - p0)
                    if v.max() - v[i] <= 1e-12 * (1 + v.abs().max()):
                        cands.append(t)
    cands = torch.tensor(sorted(cands), dtype=torch.float64)
    assert torch.allclose(res.breakpoints, cands, atol=1e-12)
    check_sampling(net, a, b, res)


@pytest.mark.parametrize("seed", range(2))
def test_maxpool_cnn(seed):
    module = init(nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.2), nn.MaxPool2d(3, stride=2, padding=1),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 5), nn.ReLU(), nn.Linear(5, 3)), seed=seed)
    net = net_of(module, (2, 10, 10))
    a, b = rand_pair((2, 10, 10), seed + 3)
    res = on_line(net, a, b)
    assert res.count > 10
    check_sampling(net, a, b, res, n=20001)
    check_values(net, a, b, res)


def test_residual_net():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(3, 8)
            self.f1, self.f2 = nn.Linear(8, 8), nn.Linear(8, 8)
            self.out = nn.Linear(8, 2)

        def forward(self, x):
            h = torch.relu(self.inp(x))
            h = torch.relu(h + self.f2(torch.relu(self.f1(h))))
            return self.out(h)

    net = net_of(init(Res(), seed=4), (3,))
    a, b = rand_pair(3, 9, 3.0)
    res = on_line(net, a, b)
    check_sampling(net, a, b, res, n=8001)
    check_values(net, a, b, res)


@settings(max_examples=examples(40))
@given(random_module(), st.integers(0, 2**31 - 1))
def test_random_networks_against_sampling(mod_shape, seed):
    module, shape = mod_shape
    net = net_of(module, shape)
    a, b = rand_pair(shape, seed, 1.5)
    res = on_line(net, a, b)
    check_sampling(net, a, b, res, n=3001)
    check_values(net, a, b, res, n=200)


@settings(max_examples=examples(40))
@given(random_module(ties=True), st.integers(0, 2**31 - 1))
def test_integer_networks_exact_ties(mod_shape, seed):
    """Integer weights, zero biases, integer endpoints: segments often run inside boundaries and
    through vertices. With ``on_degenerate='lowest'`` every point must get the pattern that
    ``net.pattern`` assigns it in exact (dyadic) arithmetic."""
    module, shape = mod_shape
    net = net_of(module, shape)
    # float64 net.pattern is exact only with dyadic slopes (0.5, -1.5, ...): check every max unit's
    # coefficients, functional leaky_relu inside residual blocks included
    assume(all(bool(((m.coef * 256).round() == m.coef * 256).all()) for m in net.max_units))
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(-2, 3, shape, generator=g).double()
    b = torch.randint(-2, 3, shape, generator=g).double()
    res = on_line(net, a, b, on_degenerate="lowest")
    check_sampling(net, a, b, res, n=2**11 + 1, exact_grid=True, bisect=False)
    check_values(net, a, b, res, n=100)


def test_residual_net_with_non_dyadic_slope_is_certified():
    """Found by hypothesis: a residual net whose block applies leaky_relu(., 0.9). Two maxout pieces
    agree up to 1e-15 on half the segment; float64 ``net.pattern`` picks either, exact arithmetic on
    the float64 weights picks piece 0. The walk must agree with exact arithmetic and say so."""
    from strategies import ResBlock

    def lin(rows):
        m = nn.Linear(len(rows[0]), len(rows)).double()
        with torch.no_grad():
            m.weight.copy_(torch.tensor(rows, dtype=torch.float64))
            m.bias.zero_()
        return m

    def maxout(rows, k):
        m = rnn.Maxout(len(rows[0]), len(rows) // k, k).double()
        m.linear = lin(rows)
        return m

    module = nn.Sequential(
        lin([[1, -1, 1], [-1, 0, -1], [0, 0, 0], [-1, 1, 1]]), nn.ReLU(),
        ResBlock(nn.Sequential(lin([[-1, -1, 0, 1], [-1, -1, 1, -1], [1, 1, 1, 1], [1, 1, 0, 1]]), nn.ReLU(),
                               lin([[-1, -1, 0, -1], [1, -1, 0, -1], [0, 1, 1, 0], [1, -1, 0, 0]])), "torch.relu"),
        ResBlock(nn.Sequential(maxout([[0, 1, 0, 0], [1, 0, 0, 1], [1, 0, 1, 1], [1, 0, 1, 1], [0, 0, -1, -1],
                                       [0, 1, 0, 0], [1, 0, 1, 1], [-1, 0, -1, 1], [-1, 0, 0, 1], [1, 1, 1, 0],
                                       [-1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [1, -1, 0, -1]], 3),
                               lin([[1, -1, -1, 1, 1], [1, 1, 0, 1, 1], [0, -1, 0, -1, 0], [-1, -1, 0, 0, 0]])),
                 "leaky", slope=0.9),
        ResBlock(nn.Sequential(maxout([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [1, 1, -1, 0], [-1, 0, -1, -1],
                                       [-1, 0, -1, 1], [0, 0, -1, 0], [-1, 0, 1, 0], [1, 1, 1, 1]], 3),
                               lin([[0, 1, 1], [1, 1, -1], [-1, -1, 0], [0, -1, 0]]))),
        nn.Flatten(), lin([[1, -1, -1, -1]])).eval()
    net = net_of(module, (3,))
    a = torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)
    b = torch.tensor([-2.0, 1.0, 2.0], dtype=torch.float64)
    res = on_line(net, a, b, on_degenerate="lowest")
    assert res.complete and res.certified
    ts = [(i + 0.5) / 128 for i in range(128)]
    ref = exact_patterns(net, a, b, ts)
    k = interval_of(res, torch.tensor(ts, dtype=torch.float64))
    assert torch.equal(res.patterns[k].long(), ref)
    # float64 net.pattern disagrees with exact arithmetic here (why the reference must be exact)
    x = a + torch.tensor(ts, dtype=torch.float64)[:, None] * (b - a)
    assert bool((net.pattern(x).long() != ref).any())


# ----------------------------------------------------------------------------- degenerate geometry
def test_segment_through_a_vertex_gives_one_breakpoint():
    # hyperplanes x = 0, y = 0 and x = y all pass through the origin
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    c = torch.tensor([0.0, 0.0, 0.0, -5.0], dtype=torch.float64)
    lin = nn.Linear(2, 4).double()
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(c)
    net = net_of(nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 1).double()), (2,))
    a = torch.tensor([-1.0, -0.3], dtype=torch.float64) * 3
    b = -a / 2  # passes through 0 at t = 2/3
    res = on_line(net, a, b)
    assert res.count == 2
    assert math.isclose(float(res.breakpoints[0]), 2 / 3, abs_tol=1e-14)
    assert int((res.patterns[0] != res.patterns[1]).sum()) == 3
    check_sampling(net, a, b, res)


def test_segment_inside_a_hyperplane():
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    lin = nn.Linear(2, 3).double()
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(torch.tensor([0.0, -0.5, 0.3], dtype=torch.float64))
    net = net_of(nn.Sequential(lin, nn.ReLU(), nn.Linear(3, 1).double()), (2,))
    a = torch.tensor([0.0, -2.0], dtype=torch.float64)
    b = torch.tensor([0.0, 2.0], dtype=torch.float64)  # inside x = 0 (unit 0)
    with pytest.raises(DegenerateGeometryError, match="on_degenerate='lowest'"):
        on_line(net, a, b)
    res = on_line(net, a, b, on_degenerate="lowest")
    assert res.count == 3
    assert bool((res.patterns[:, 0] == 0).all())  # the tie goes to the lowest piece
    assert res.degenerate and res.degenerate[0]["unit"] == 0
    assert torch.allclose(res.breakpoints, torch.tensor([0.425, 0.625], dtype=torch.float64))
    check_sampling(net, a, b, res, exact_grid=True, bisect=False)


def test_duplicated_neurons_and_zero_rows():
    base = mlp([3, 10, 2], seed=2)
    W, c = base[0].weight.detach(), base[0].bias.detach()
    W2 = torch.cat([W, W[:4], torch.zeros(2, 3, dtype=torch.float64)])
    c2 = torch.cat([c, c[:4], torch.tensor([0.0, 0.7], dtype=torch.float64)])
    lin = nn.Linear(3, 16).double()
    with torch.no_grad():
        lin.weight.copy_(W2)
        lin.bias.copy_(c2)
    net = net_of(nn.Sequential(lin, nn.ReLU(), nn.Linear(16, 2).double()), (3,))
    net0 = net_of(base, (3,))
    a, b = rand_pair(3, 4, 3.0)
    res, res0 = on_line(net, a, b), on_line(net0, a, b)  # zero rows are benign: no error
    assert res.count == res0.count
    assert torch.allclose(res.breakpoints, res0.breakpoints, atol=1e-14)
    assert torch.equal(res.patterns[:, 10:14], res.patterns[:, :4])
    assert bool((res.patterns[:, 14] == 0).all()) and bool((res.patterns[:, 15] == 1).all())
    assert not res.degenerate
    check_sampling(net, a, b, res)


def test_maxout_with_identical_pieces_is_not_degenerate():
    m = rnn.Maxout(3, 4, 3)
    module = init(nn.Sequential(m, nn.Linear(4, 1)), seed=5)
    with torch.no_grad():  # pieces 1 and 2 of every unit identical
        w = m.linear.weight.view(4, 3, 3)
        bb = m.linear.bias.view(4, 3)
        w[:, 2] = w[:, 1]
        bb[:, 2] = bb[:, 1]
    net = net_of(module, (3,))
    a, b = rand_pair(3, 6, 3.0)
    res = on_line(net, a, b)
    assert not bool((res.patterns == 2).any())  # the copy never wins: lowest index
    check_sampling(net, a, b, res)


def test_maxpool_over_dead_relus_has_no_spurious_breakpoints():
    module = init(nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.MaxPool2d(3), nn.Flatten(), nn.Linear(2 * 3 * 3, 1)),
                  seed=3, bias=0.0)
    with torch.no_grad():
        module[0].bias.copy_(torch.tensor([-3.0, 0.2], dtype=torch.float64))  # channel 0 mostly dead
    net = net_of(module, (1, 10, 10))
    a, b = rand_pair((1, 10, 10), 12, 1.0)
    res = on_line(net, a, b)
    check_sampling(net, a, b, res)
    # every breakpoint is a genuine pattern change (checked above); dead windows keep piece 0
    mp = res.patterns[:, net.layer_slice(1)][:, :9]
    dead = (res.patterns[:, net.layer_slice(0)][:, :81] == 0).all(1)
    assert bool((mp[dead] == 0).all())


def test_float32_network():
    module = init(nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                nn.Linear(27, 4), nn.ReLU(), nn.Linear(4, 2)), seed=2)
    net = PLNet.from_torch(module, (1, 8, 8), dtype=torch.float32)
    a, b = (x.float() for x in rand_pair((1, 8, 8), 7))
    res = on_line(net, a, b)
    assert res.breakpoints.dtype == torch.float32 and res.count > 5
    t = (torch.arange(20001, dtype=torch.float64) + 0.3) / 20001
    x = (a.reshape(-1).double() + t[:, None] * (b - a).reshape(-1).double()).float()
    P = pat(net, x)
    bp = res.breakpoints.double()
    k = torch.searchsorted(bp.contiguous(), t, right=True)
    near = (t[:, None] - bp[None]).abs().amin(1) < 1e-4
    assert not bool(((P != res.patterns[k]).any(1) & ~near).any())


def test_zero_length_segment_and_constant_net():
    net = net_of(mlp([2, 5, 1], seed=1), (2,))
    a = torch.tensor([0.3, -0.2], dtype=torch.float64)
    res = on_line(net, a, a)
    assert res.count == 1 and res.breakpoints.numel() == 0 and res.curve_length == 0.0
    assert torch.equal(res.patterns[0], net.pattern(a))
    assert math.isnan(res.length_ratio)
    lin = net_of(init(nn.Sequential(nn.Linear(2, 3)), 0), (2,))  # no max units at all
    r2 = on_line(lin, a, -a)
    assert r2.count == 1 and r2.linear_count == 1 and r2.patterns.shape == (1, 0)


# ----------------------------------------------------------------------------- batches and paths
def test_batch_matches_single_segments():
    module = init(nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                nn.Linear(3 * 3 * 3, 4), nn.ReLU(), nn.Linear(4, 2)), seed=8)
    net = net_of(module, (1, 8, 8))
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64)
    B = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64)
    batch = on_line(net, A, B, batch_rows=7)  # small batches: many slices, same result
    assert isinstance(batch, LineBatch) and len(batch) == 6
    assert batch.count == int(batch.counts.sum())
    starts = torch.cumsum(batch.counts, 0) - batch.counts
    for s in range(6):
        single = on_line(net, A[s], B[s])
        item = batch[s]
        assert item.count == single.count == int(batch.counts[s])
        assert torch.allclose(item.breakpoints, single.breakpoints, atol=1e-15)
        assert torch.equal(item.patterns, single.patterns)
        assert item.linear_count == single.linear_count == int(batch.linear_counts[s])
        assert math.isclose(item.curve_length, single.curve_length, rel_tol=1e-12)
        assert torch.equal(batch.pattern(int(starts[s]) + 1), single.pattern(1)) if single.count > 1 else True
        assert torch.allclose(batch.breakpoints[s], single.breakpoints, atol=1e-15)
    assert torch.equal(batch.patterns[: batch.counts[0]], batch[0].patterns)
    flat = A.reshape(6, -1)
    assert on_line(net, flat, B.reshape(6, -1)).count == batch.count


def test_polyline_and_closed_path():
    net = net_of(mlp([2, 12, 12, 1], seed=6), (2,))
    pts = torch.tensor([[-2.0, -1.0], [1.5, -1.2], [2.0, 2.0], [-1.0, 1.5]], dtype=torch.float64)
    path = on_line(net, pts)
    segs = [on_line(net, pts[i], pts[i + 1]) for i in range(3)]
    L = torch.stack([(pts[i + 1] - pts[i]).norm() for i in range(3)])
    assert path.domain == "polyline"
    assert math.isclose(path.length, float(L.sum()), rel_tol=1e-14)
    assert torch.allclose(path.vertices, torch.cumsum(L, 0)[:-1] / L.sum())
    # regions: per-segment regions, merged across a vertex when the pattern does not change there
    merges = sum(bool(torch.equal(segs[i].patterns[-1], segs[i + 1].patterns[0])) for i in range(2))
    assert path.count == sum(s.count for s in segs) - merges
    assert math.isclose(path.curve_length, sum(s.curve_length for s in segs), rel_tol=1e-12)
    # the restriction is continuous and matches the network along the path
    t = torch.rand(300, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s = t * float(L.sum())
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(L, 0)])
    i = (torch.searchsorted(cum[1:-1], s, right=True))
    x = pts[i] + ((s - cum[i]) / L[i])[:, None] * (pts[i + 1] - pts[i])
    assert torch.allclose(path.values_at(t), net(x), atol=1e-10)
    # region of each sample
    k = path.piece_region[torch.searchsorted(path.knots[1:-1].contiguous(), t, right=True)]
    assert torch.equal(path.patterns[k], net.pattern(x))
    # closed: the first and last regions merge when the loop closes inside one region
    closed = on_line(net, pts, closed=True)
    segs.append(on_line(net, pts[3], pts[0]))
    merges_c = sum(bool(torch.equal(segs[i].patterns[-1], segs[(i + 1) % 4].patterns[0])) for i in range(4))
    assert closed.domain == "closed polyline"
    assert closed.count == sum(s.count for s in segs) - merges_c
    assert closed.breakpoints.numel() in (closed.count, closed.count - 1)
    assert math.isclose(closed.curve_length, sum(s.curve_length for s in segs), rel_tol=1e-12)


def test_polyline_inside_one_region_closes_to_one_region():
    net = net_of(mlp([2, 3, 1], seed=0), (2,))
    far = torch.tensor([40.0, 40.0], dtype=torch.float64)
    pts = far + 0.01 * torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    closed = on_line(net, pts, closed=True)
    assert closed.count == 1 and closed.breakpoints.numel() == 0
    assert closed.linear_count == 3  # the path bends at each vertex


# ----------------------------------------------------------------------------- budgets, output, errors
def test_budgets_give_incomplete_prefixes():
    net = net_of(mlp([3, 40, 40, 1], seed=3), (3,))
    a, b = rand_pair(3, 1, 4.0)
    full = on_line(net, a, b)
    assert full.count > 8
    part = on_line(net, a, b, max_regions=5)
    assert not part.complete and part.count == 5
    assert torch.allclose(part.breakpoints, full.breakpoints[:4])
    assert math.isclose(part.covered, float(full.intervals[4, 1]))
    assert torch.equal(part.patterns, full.patterns[:5])
    slow = on_line(net, a, b, time_limit=1e-9)
    assert not slow.complete and slow.count < full.count
    g = torch.Generator().manual_seed(0)
    A, B = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    fb = on_line(net, A, B)
    pb = on_line(net, A, B, max_regions=int(fb.counts[0] + 2))
    assert not pb.complete and pb.count == int(fb.counts[0]) + 2
    assert bool(pb.segment_complete[0]) and not bool(pb.segment_complete[1:].any())
    assert int(pb.counts[1]) == 2 and float(pb.covered[2]) == 0.0


def test_to_dict_and_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    net = net_of(mlp([2, 8, 2], seed=1), (2,))
    res = on_line(net, [-2.0, -1.0], [2.0, 1.5])
    d = res.to_dict()
    json.dumps(d)
    assert d["count"] == res.count and len(d["patterns"]) == res.count
    assert set(res.to_dict(summary=True)) >= {"count", "linear_count", "curve_length", "complete"}
    ax = res.plot()
    assert hasattr(ax, "plot") and ax.figure is not None  # the Axes, as every plot(ax=None)
    ax.figure.savefig(tmp_path / "line.png")
    g = torch.Generator().manual_seed(0)
    batch = on_line(net, torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g))
    json.dumps(batch.to_dict())
    json.dumps(batch.to_dict(summary=True))


def test_invalid_arguments():
    net = net_of(mlp([3, 4, 1], seed=0), (3,))
    z = torch.zeros(3)
    with pytest.raises(InvalidInputError, match="PLNet"):
        on_line(nn.Linear(3, 1), z, z)
    with pytest.raises(InvalidInputError, match="same shape"):
        on_line(net, z, torch.zeros(2, 3))
    with pytest.raises(InvalidInputError, match="a and b"):
        on_line(net, torch.zeros(4), torch.zeros(4))
    with pytest.raises(InvalidInputError, match="on_degenerate"):
        on_line(net, z, z, on_degenerate="ignore")
    with pytest.raises(InvalidInputError, match="max_regions"):
        on_line(net, z, z, max_regions=0)
    with pytest.raises(InvalidInputError, match="time_limit"):
        on_line(net, z, z, time_limit=-1)
    with pytest.raises(InvalidInputError, match="non-finite"):
        on_line(net, z, torch.tensor([0.0, math.nan, 0.0]))
    with pytest.raises(InvalidInputError, match="closed"):
        on_line(net, z, z, closed=True)
    with pytest.raises(InvalidInputError, match="points"):
        on_line(net, torch.zeros(3, 2))
    res = on_line(net, z, torch.ones(3))
    with pytest.raises(InvalidInputError):
        res.pattern(res.count)


@settings(max_examples=examples(15))
@given(random_module(families=("cnn1d", "cnn2d", "residual")), st.integers(0, 2**31 - 1))
def test_batches_and_slices_agree(mod_shape, seed):
    """Tiny slices (every group split across slices) give the same partitions as one batch."""
    module, shape = mod_shape
    net = net_of(module, shape)
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    B = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    big, small = on_line(net, A, B), on_line(net, A, B, batch_rows=3)
    assert torch.equal(big.counts, small.counts)
    assert torch.allclose(big.t0, small.t0, atol=1e-13, rtol=0)
    assert torch.equal(big.patterns, small.patterns)
    for s in range(3):
        check_sampling(net, A[s], B[s], big[s], n=1501, bisect=False)


# ----------------------------------------------------------------------------- certified counts
def _relu_lines(w, b):
    """1-D input: one hidden ReLU layer with weights ``w`` and biases ``b``, one output."""
    lin = nn.Linear(1, len(w)).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w, dtype=torch.float64)[:, None])
        lin.bias.copy_(torch.tensor(b, dtype=torch.float64))
    return PLNet.from_torch(nn.Sequential(lin, nn.ReLU(), nn.Linear(len(w), 1).double()), (1,))


@pytest.mark.parametrize("gap", [1e-11, 1e-13])
def test_breakpoints_a_hair_apart(gap):
    # kinks at x = 0 and x = gap on [-1, 1]: three intervals, the middle one gap / 2 long in t
    net = _relu_lines([1.0, 1.0], [0.0, -gap])
    for certify in (None, False):
        res = on_line(net, [-1.0], [1.0], certify=certify)
        assert res.count == 3, certify
        assert res.certified is (certify is None)
    exact = on_line(net, [-1.0], [1.0], certify=True)
    assert exact.count == 3 and exact.certified


def test_huge_segments_are_counted_exactly():
    net = net_of(mlp([2, 8, 8, 2], seed=4), (2,))
    direction = torch.tensor([0.6, -0.8], dtype=torch.float64)
    # every breakpoint of this line lies within |x| < 1e3 (the count no longer grows beyond)
    ref = on_line(net, -1e3 * direction, 1e3 * direction, certify=True).count
    assert on_line(net, -4e3 * direction, 4e3 * direction, certify=True).count == ref
    for ext in (1e6, 1e12, 1e100, 1e300, 1e308):
        res = on_line(net, -ext * direction, ext * direction)
        assert (res.count, res.certified, res.complete) == (ref, True, True), ext
        # float64 alone resolves breakpoints to about ttol of the segment's length: at 1e12 the
        # features near the origin are already below that (uncertified answers say so)
        if ext <= 1e6:
            try:
                alone = on_line(net, -ext * direction, ext * direction, certify=False)
                assert alone.count == ref and not alone.certified, ext
            except DegenerateGeometryError:  # or it refuses what it cannot resolve
                pass
    with pytest.raises(DegenerateGeometryError, match="overflow"):
        on_line(net, -1e308 * direction, 1e308 * direction, certify=False)


def test_certify_budgets_and_result_base():
    from relulab.results import RegionResult

    net = net_of(mlp([2, 6, 1], seed=2), (2,))
    res = on_line(net, [-3.0, 0.0], [3.0, 1.0])
    assert isinstance(res, RegionResult) and res.certified and res.seconds > 0
    assert not hasattr(res, "elapsed")
    batch = on_line(net, torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64))
    assert isinstance(batch, RegionResult) and batch.certified
    for bad in (True, 0, -2, 1.5, "3"):
        with pytest.raises(InvalidInputError, match="max_regions"):
            on_line(net, [-3.0, 0.0], [3.0, 1.0], max_regions=bad)
    with pytest.raises(InvalidInputError, match="certify"):
        on_line(net, [-3.0, 0.0], [3.0, 1.0], certify="always")
    part = on_line(net, [-3.0, 0.0], [3.0, 1.0], max_regions=2)
    assert (part.complete, part.stopped_by, part.count) == (False, "max_regions", 2)


@pytest.mark.parametrize("widths,seed,rows,max_regions", [
    ([1, 300, 1], 0, None, None), ([2, 40, 3], 1, None, None), ([2, 16, 16, 2], 2, 7, None),
    ([3, 12, 12, 12, 2], 3, None, 25), ([2, 16, 16, 2], 4, 5, 40)])
def test_sparse_last_layer_matches_dense_assembly(widths, seed, rows, max_regions, monkeypatch):
    from relulab.regions import line as line_mod

    net = net_of(mlp(widths, seed=seed), (widths[0],))
    g = torch.Generator().manual_seed(seed)
    A = 3 * torch.randn(4, widths[0], generator=g, dtype=torch.float64)
    B = 3 * torch.randn(4, widths[0], generator=g, dtype=torch.float64)
    kw = dict(batch_rows=rows, max_regions=max_regions, certify=False)
    fast = on_line(net, A, B, **kw)
    monkeypatch.setattr(line_mod._Walk, "_affine_tail", lambda self: None)
    slow = on_line(net, A, B, **kw)
    assert fast.count == slow.count and fast.complete == slow.complete
    assert torch.equal(fast.counts, slow.counts) and torch.equal(fast.segment, slow.segment)
    assert torch.equal(fast.t0, slow.t0) and torch.equal(fast.t1, slow.t1)
    assert torch.equal(fast.patterns, slow.patterns)
    scale = 1 + float(slow.values0.abs().max()) + float(slow.slopes.abs().max())
    assert torch.allclose(fast.values0, slow.values0, rtol=0, atol=1e-11 * scale)
    assert torch.allclose(fast.slopes, slow.slopes, rtol=0, atol=1e-11 * scale)
    assert torch.equal(fast.linear_counts, slow.linear_counts)


def test_wide_network_with_default_arguments():
    # 1-3000-1 with 2,700 kinks inside the segment: default arguments work (no dense
    # regions x units pattern matrix is built) and the breakpoints are the kinks
    g = torch.Generator().manual_seed(0)
    H = 3000
    lin = nn.Linear(1, H).double()
    roots = torch.cat([torch.rand(2700, generator=g, dtype=torch.float64) * 2 - 1,
                       2 + torch.rand(H - 2700, generator=g, dtype=torch.float64)])
    w = torch.randn(H, generator=g, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(w[:, None])
        lin.bias.copy_(-w * roots)
    net = PLNet.from_torch(nn.Sequential(lin, nn.ReLU(), nn.Linear(H, 1).double()), (1,))
    res = on_line(net, [-1.0], [1.0])
    assert res.count == 2701
    expected = ((torch.sort(roots[:2700]).values + 1) / 2)
    assert torch.allclose(res.breakpoints, expected, rtol=0, atol=1e-12)
    assert torch.equal(res.pattern(1700), net.pattern(torch.tensor([[2 * float(res.intervals[1700].mean()) - 1]],
                                                                    dtype=torch.float64))[0].long())
