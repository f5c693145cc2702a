"""Tests of ``relulab.regions.on_plane`` (exact activation regions on a 2-D slice).

References, each independent of the polygon-cutting code: closed-form region counts of line
arrangements (Zaslavsky: 1 + n + C(n, 2) regions and C(n - 1, 2) bounded ones in general position;
1 + n + sum over vertices of (multiplicity - 1) in general), ``net.pattern`` and ``net(x)`` at
centroids and at grid / random points (pattern lookup must give a polygon that contains the point
geometrically, and the polygon's affine map must give the network's output there), the exact
segment walk ``on_line``, and direct evaluation of the network at and beside decision-boundary
segments.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import examples, random_module
from torch import nn

import relulab
from relulab import DegenerateGeometryError, InvalidInputError, PLNet
from relulab import nn as rnn
from relulab.regions import on_plane

GOLD = (math.sqrt(5) - 1) / 2  # irrational grid offsets keep sample points off exact kinks


# ----------------------------------------------------------------------------- helpers
def mlp(widths, act=nn.ReLU, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(a, b).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g, dtype=torch.float64) / math.sqrt(a))
            lin.bias.copy_(scale * 0.5 * torch.randn(b, generator=g, dtype=torch.float64))
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def one_layer(W, b, act=nn.ReLU, out=None):
    W, b = torch.as_tensor(W, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    lin = nn.Linear(W.shape[1], W.shape[0]).double()
    head = nn.Linear(W.shape[0], 1).double()
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(b)
        head.weight.copy_(torch.ones(1, W.shape[0], dtype=torch.float64) if out is None else
                          torch.as_tensor(out, dtype=torch.float64).reshape(1, -1))
        head.bias.zero_()
    return PLNet.from_torch(nn.Sequential(lin, act(), head), (W.shape[1],))


def grid(ext, k):
    s0, s1, t0, t1 = ext
    a = (torch.arange(k, dtype=torch.float64) + GOLD) / k
    b = (torch.arange(k, dtype=torch.float64) + GOLD**2) / k
    S, T = torch.meshgrid(s0 + (s1 - s0) * a, t0 + (t1 - t0) * b, indexing="ij")
    return torch.stack([S.reshape(-1), T.reshape(-1)], 1)


def contains(res, idx, pts, slack):
    """Whether polygon idx[i] contains pts[i] (half-plane test on its counter-clockwise edges)."""
    V = res.polygons[idx]
    e = V.roll(-1, 1) - V
    w = pts[:, None, :] - V
    cr = e[..., 0] * w[..., 1] - e[..., 1] * w[..., 0]
    return (cr >= -slack * (1 + e.norm(dim=-1))).all(1)


def near_tie_units(net, x, rel=1e-9):
    """Units whose top two pieces at x agree within rel of the layer's scale (convention-dependent)."""
    tr = net.trace(x)
    masks = []
    for p in tr.pieces:
        if p.shape[-1] < 2:
            masks.append(torch.zeros(p.shape[:2], dtype=torch.bool))
            continue
        top = p.topk(2, dim=-1).values
        fin = torch.isfinite(top[..., 1])
        scale = p.masked_fill(~torch.isfinite(p), 0).abs().amax((1, 2))[:, None] + 1
        masks.append(fin & (top[..., 0] - top[..., 1] <= rel * scale))
    return torch.cat(masks, 1) if masks else torch.zeros(x.shape[0], 0, dtype=torch.bool)


def check_partition(net, res, k=40, ties=False):
    """Invariants every complete partition must satisfy, against independent references."""
    assert res.complete and res.domain == "plane"
    s0, s1, t0, t1 = res.extent
    area = (s1 - s0) * (t1 - t0)
    P = res.count
    assert res.polygons.shape[0] == P == res.areas.shape[0] == res.patterns.shape[0]
    # the polygons tile the slice
    assert abs(float(res.areas.sum()) - area) <= 1e-9 * area
    assert bool((res.areas > 0).all())
    # convex, counter-clockwise, inside the extent
    V = res.polygons
    e = V.roll(-1, 1) - V
    en = e.roll(-1, 1)
    cr = e[..., 0] * en[..., 1] - e[..., 1] * en[..., 0]
    assert bool((cr >= -1e-9 * area).all())
    sz = max(s1 - s0, t1 - t0)
    assert float(V[..., 0].min()) >= s0 - 1e-12 * sz and float(V[..., 0].max()) <= s1 + 1e-12 * sz
    assert float(V[..., 1].min()) >= t0 - 1e-12 * sz and float(V[..., 1].max()) <= t1 + 1e-12 * sz
    # each polygon's centroid has the polygon's pattern
    c = res.centroids
    pc = net.pattern(res.to_input(c))
    same = pc == res.patterns.long()
    if ties:
        same |= near_tie_units(net, res.to_input(c))
    assert bool(same.all()), f"{int((~same.all(1)).sum())} polygons whose centroid has another pattern"
    # activation regions are convex, so each meets the slice in one polygon: patterns are unique
    keys = {bytes(r) for r in res.patterns.to(torch.int16).numpy()}
    assert len(keys) == P
    # polygons sharing an edge differ in pattern
    if res.adjacency.numel():
        a, b = res.adjacency[:, 0], res.adjacency[:, 1]
        assert bool((res.patterns[a] != res.patterns[b]).any(1).all())
    # dense sampling: every sampled pattern is a polygon that contains the sample, whose map is exact
    pts = grid(res.extent, k)
    idx = res.locate(net, pts)
    if not ties:
        assert bool((idx >= 0).all()), "a sampled pattern is missing among the polygons"
    ok = idx >= 0
    assert len(set(idx[ok].tolist())) <= P
    assert bool(contains(res, idx[ok], pts[ok], 1e-9 * sz).all())
    out = net(res.to_input(pts[ok])).reshape(int(ok.sum()), -1)
    pred = res.evaluate(pts[ok], idx[ok])
    assert torch.allclose(pred, out, rtol=0, atol=1e-9 * (1 + float(out.abs().max())))
    # random points inside random polygons: the affine map is the network
    g = torch.Generator().manual_seed(1)
    pick = torch.randint(0, P, (min(300, 3 * P),), generator=g)
    w = torch.rand(pick.numel(), V.shape[1], generator=g, dtype=torch.float64) ** 3
    n = res.n_vertices[pick]
    w = w * (torch.arange(V.shape[1])[None] < n[:, None])
    w = w / w.sum(1, keepdim=True)
    q = (w[..., None] * V[pick]).sum(1)
    out = net(res.to_input(q)).reshape(q.shape[0], -1)
    assert torch.allclose(res.evaluate(q, pick), out, rtol=0, atol=1e-9 * (1 + float(out.abs().max())))
    return pts, idx


def dyadic(W, bits=20):
    """W rounded to multiples of 2^-bits: products with dyadic points stay exact in float64."""
    return torch.round(W * 2**bits) / 2**bits


def arrangement_extent(W, b, margin=1.5):
    pts = []
    for i, j in itertools.combinations(range(W.shape[0]), 2):
        A = torch.stack([W[i], W[j]])
        if abs(float(torch.linalg.det(A))) > 1e-12:
            pts.append(torch.linalg.solve(A, -torch.stack([b[i], b[j]])))
    r = float(torch.stack(pts).abs().max()) if pts else 1.0
    return margin * r + 1.0


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_one_hidden_layer_general_position_count(n):
    g = torch.Generator().manual_seed(n)
    W = torch.randn(n, 2, generator=g, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    net = one_layer(W, b)
    r = arrangement_extent(W, b)
    res = on_plane(net, extent=r)
    assert res.count == 1 + n + n * (n - 1) // 2
    # Zaslavsky: C(n-1, 2) bounded regions, i.e. polygons off the slice boundary
    V = res.polygons
    on_edge = ((V[..., 0].abs() - r).abs() < 1e-9 * r) | ((V[..., 1].abs() - r).abs() < 1e-9 * r)
    assert int((~on_edge.any(1)).sum()) == (n - 1) * (n - 2) // 2
    check_partition(net, res, k=30)
    assert res.linear_count == res.count  # generic output weights: every kink is a kink of f


@pytest.mark.parametrize("act", [lambda: nn.LeakyReLU(0.1), rnn.Abs])
def test_relu_leaky_abs_same_first_layer_partition(act):
    # one hidden layer: the same lines whatever the two-piece unit
    ref = on_plane(PLNet.from_torch(mlp([2, 7, 1], seed=3), (2,)), extent=2.5)
    net = PLNet.from_torch(mlp([2, 7, 1], act=act, seed=3), (2,))
    res = on_plane(net, extent=2.5)
    check_partition(net, res)
    assert res.count == ref.count
    assert torch.allclose(res.areas.sort().values, ref.areas.sort().values, atol=1e-12)
    assert torch.allclose(res.centroids.sum(0), ref.centroids.sum(0), atol=1e-9)
    # deeper: the partitions differ (different layer-2 maps) but the invariants hold
    net2 = PLNet.from_torch(mlp([2, 7, 6, 1], act=act, seed=3), (2,))
    check_partition(net2, on_plane(net2, extent=2.5))


def test_parallel_and_concurrent_lines_counts():
    g = torch.Generator().manual_seed(7)
    # three lines through one point p, two generic lines: 1 + 5 + (3 - 1) + 6 + 1 = 15 regions.
    # Weights on a 2^-20 grid and a dyadic p make the concurrency exact in float64 (rounded data
    # would make a genuine tiny triangle, which the certified count rightly resolves)
    p = torch.tensor([0.25, -0.5], dtype=torch.float64)
    W = dyadic(torch.randn(5, 2, generator=g, dtype=torch.float64))
    b = torch.randn(5, generator=g, dtype=torch.float64)
    b[:3] = -(W[:3] @ p)
    net = one_layer(W, b)
    res = on_plane(net, extent=arrangement_extent(W, b))
    assert res.count == 15
    check_partition(net, res, k=30)
    # all lines through the origin: 2n sectors
    W = torch.randn(6, 2, generator=g, dtype=torch.float64)
    net = one_layer(W, torch.zeros(6))
    res = on_plane(net, extent=1.0)
    assert res.count == 12
    check_partition(net, res, k=30)
    # two parallel lines among four: 1 + 4 + (6 - 1) = 10
    W = dyadic(torch.randn(4, 2, generator=g, dtype=torch.float64))
    W[1] = 2.5 * W[0]
    b = torch.randn(4, generator=g, dtype=torch.float64)
    net = one_layer(W, b)
    res = on_plane(net, extent=arrangement_extent(W, b))
    assert res.count == 10
    check_partition(net, res, k=30)


def test_duplicate_scaled_opposite_and_dead_neurons():
    g = torch.Generator().manual_seed(11)
    W = torch.randn(4, 2, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    r = arrangement_extent(W, b)
    base = on_plane(one_layer(W, b), extent=r)
    assert base.count == 11
    # a copy, a scaled copy, an opposite copy, and zero-weight neurons (always on / tied / off)
    # (scaled by 4: exact in float64, so the copy is the same line, not a line at a tiny angle)
    W2 = torch.cat([W, W[:1], 4 * W[1:2], -W[2:3], torch.zeros(3, 2, dtype=torch.float64)])
    b2 = torch.cat([b, b[:1], 4 * b[1:2], -b[2:3], torch.tensor([0.5, 0.0, -0.5], dtype=torch.float64)])
    for act in (nn.ReLU, rnn.Abs):
        net = one_layer(W2, b2, act=act)
        res = on_plane(net, extent=r)
        assert res.count == 11
        check_partition(net, res, k=30)
        assert torch.allclose(res.areas.sort().values, base.areas.sort().values, atol=1e-9)


def test_linear_count_merges_regions_the_output_ignores():
    g = torch.Generator().manual_seed(5)
    W = torch.randn(6, 2, generator=g, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    out = torch.tensor([1.0, -2.0, 0.5, 0.0, 0.0, 0.0], dtype=torch.float64)
    net = one_layer(W, b, out=out)
    r = arrangement_extent(W, b)
    res = on_plane(net, extent=r)
    assert res.count == 1 + 6 + 15
    assert res.linear_count == 1 + 3 + 3  # the arrangement of the three lines that reach the output
    check_partition(net, res, k=30)
    # polygons in one linear region share their map
    lab = res.linear_labels
    for k in lab.unique():
        m = res.maps[lab == k]
        assert torch.allclose(m, m[:1].expand_as(m), atol=1e-9)


# ----------------------------------------------------------------------------- deeper and other units
@pytest.mark.parametrize("widths,ext", [([2, 8, 8, 1], 2.0), ([2, 6, 6, 6, 3], 3.0), ([2, 10, 5, 2], 1.0)])
def test_deep_relu_invariants(widths, ext):
    net = PLNet.from_torch(mlp(widths, seed=len(widths)), (2,))
    res = on_plane(net, extent=ext)
    assert res.layer_counts[-1] == res.count and res.layer_counts == sorted(res.layer_counts)
    pts, idx = check_partition(net, res, k=60)
    # sampling is a lower bound that gets close on a fine grid
    assert len(set(idx.tolist())) <= res.count


@pytest.mark.parametrize("k", [2, 3, 4])
def test_maxout(k):
    torch.manual_seed(k)
    m = nn.Sequential(rnn.Maxout(2, 4, k), rnn.Maxout(4, 3, k), nn.Linear(3, 2)).double()
    net = PLNet.from_torch(m, (2,))
    res = on_plane(net, extent=2.0)
    check_partition(net, res, k=60)


def test_maxpool_windows_padding_and_dead_relus():
    torch.manual_seed(0)
    m1 = nn.Sequential(nn.Linear(2, 12), nn.ReLU(), nn.Unflatten(1, (1, 12)), nn.MaxPool1d(3, stride=2, padding=1),
                       nn.Flatten(), nn.Linear(6, 2)).double()
    m2 = nn.Sequential(nn.Linear(2, 16), nn.Unflatten(1, (1, 4, 4)), nn.MaxPool2d(2), nn.Flatten(),
                       nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    for m in (m1, m2):
        net = PLNet.from_torch(m, (2,))
        res = on_plane(net, extent=2.0)
        check_partition(net, res, k=60)
    # several dead ReLUs into one window are one piece there: no spurious split
    lin = nn.Linear(2, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.3], [1.0, -0.4]], dtype=torch.float64))
        lin.bias.copy_(torch.tensor([0.0, 0.1, -0.1], dtype=torch.float64))
    m3 = nn.Sequential(lin, nn.ReLU(), nn.Unflatten(1, (1, 3)), nn.MaxPool1d(3), nn.Flatten()).double()
    net = PLNet.from_torch(m3, (2,))
    res = on_plane(net, extent=1.0)
    check_partition(net, res, k=60)


def test_slice_of_a_ten_input_network():
    net = PLNet.from_torch(mlp([10, 12, 8, 3], seed=2), (10,))
    g = torch.Generator().manual_seed(3)
    o, u, v = (torch.randn(10, generator=g, dtype=torch.float64) for _ in range(3))
    v = v + 0.5 * u  # not orthogonal: (s, t) are plain coordinates
    ext = (-1.5, 1.0, -0.5, 2.0)
    res = on_plane(net, o, u, v, extent=ext)
    check_partition(net, res, k=50)
    # the same slice of the same function as a 2-input network gives the same partition
    lin = nn.Linear(2, 10).double()
    with torch.no_grad():
        lin.weight.copy_(torch.stack([u, v], 1))
        lin.bias.copy_(o)
    net2 = PLNet.from_torch(nn.Sequential(lin, *mlp([10, 12, 8, 3], seed=2)), (2,))
    res2 = on_plane(net2, extent=ext)
    assert res2.count == res.count
    assert torch.equal(res2.patterns[:, 10:], res.patterns) or res2.count == res.count


def test_agrees_with_on_line():
    from relulab.regions import on_line

    net = PLNet.from_torch(mlp([2, 9, 9, 2], seed=4), (2,))
    res = on_plane(net, extent=2.0)
    g = torch.Generator().manual_seed(9)
    for _ in range(5):
        a, b = (torch.rand(2, generator=g, dtype=torch.float64) * 3.6 - 1.8 for _ in range(2))
        line = on_line(net, a, b)
        # clip the segment a + tau (b - a) by every polygon
        V = res.polygons
        e = V.roll(-1, 1) - V
        alpha = e[..., 0] * (a[1] - V[..., 1]) - e[..., 1] * (a[0] - V[..., 0])
        beta = e[..., 0] * (b - a)[1] - e[..., 1] * (b - a)[0]
        tau = -alpha / torch.where(beta == 0, torch.ones_like(beta), beta)
        lo = torch.where(beta > 0, tau, torch.zeros_like(tau)).amax(1).clamp(min=0)
        hi = torch.where(beta < 0, tau, torch.ones_like(tau)).amin(1).clamp(max=1)
        bad = ((beta == 0) & (alpha < 0)).any(1)
        keep = ~bad & (hi - lo > 1e-9)
        ends = lo[keep].sort().values
        assert int(keep.sum()) == line.count
        assert torch.allclose(ends[1:], line.breakpoints, atol=1e-8)


# ----------------------------------------------------------------------------- decision boundary
def _top2(net, x):
    y = net(x).reshape(x.shape[0], -1)
    if y.shape[1] == 1:
        y = torch.cat([torch.zeros_like(y), y], 1)
    return y


def _classes(net, x):
    y = net(x).reshape(x.shape[0], -1)
    return (y[:, 0] > 0).long() if y.shape[1] == 1 else y.argmax(1)


def _segments_cross(p, q, segs, tol=1e-12):
    """(N,) whether segment p_i q_i meets any of segs (S, 2, 2)."""
    a, b = segs[None, :, 0], segs[None, :, 1]
    p, q = p[:, None], q[:, None]

    def orient(x, y, z):
        return (y[..., 0] - x[..., 0]) * (z[..., 1] - x[..., 1]) - (y[..., 1] - x[..., 1]) * (z[..., 0] - x[..., 0])

    d1, d2 = orient(a, b, p), orient(a, b, q)
    d3, d4 = orient(p, q, a), orient(p, q, b)
    return ((d1 * d2 <= tol) & (d3 * d4 <= tol)).any(1)


@pytest.mark.parametrize("widths", [[2, 12, 12, 3], [2, 10, 10, 1], [2, 8, 4]])
def test_decision_boundary(widths):
    m = mlp(widths, seed=sum(widths))
    if widths[-1] == 1:
        with torch.no_grad():  # the zero set passes through the origin
            m[-1].bias -= m(torch.zeros(1, 2, dtype=torch.float64))[0]
    net = PLNet.from_torch(m, (2,))
    res = on_plane(net, extent=2.0)
    check_partition(net, res, k=30)
    B = res.boundary
    assert B.shape[0] > 0 and 1 <= res.boundary_pieces <= B.shape[0]
    L = (B[:, 1] - B[:, 0]).norm(dim=1)
    assert bool((L > 0).all())
    # every point of a segment ties the top two classes, which are the recorded ones
    for w in (0.05, 0.5, 0.95):
        x = B[:, 0] + w * (B[:, 1] - B[:, 0])
        y = _top2(net, res.to_input(x))
        top = y.topk(2, dim=1)
        assert bool((top.values[:, 0] - top.values[:, 1] <= 1e-9 * (1 + y.abs().max())).all())
        cls = res.boundary_classes
        ya, yb = y.gather(1, cls[:, :1])[:, 0], y.gather(1, cls[:, 1:])[:, 0]
        assert torch.allclose(ya, top.values[:, 0], atol=1e-9) and torch.allclose(yb, top.values[:, 0], atol=1e-9)
    # a small step to either side changes the class
    long = L > 1e-3
    mid = B[long].mean(1)
    d = (B[long, 1] - B[long, 0]) / L[long, None]
    nrm = torch.stack([-d[:, 1], d[:, 0]], 1)
    c1 = _classes(net, res.to_input(mid + 1e-7 * nrm))
    c2 = _classes(net, res.to_input(mid - 1e-7 * nrm))
    assert bool((c1 != c2).all())
    # completeness: neighbouring grid points of different class are separated by a segment
    k = 40
    pts = grid(res.extent, k).reshape(k, k, 2)
    cl = _classes(net, res.to_input(pts.reshape(-1, 2))).reshape(k, k)
    for p, q, cp, cq in ((pts[:-1], pts[1:], cl[:-1], cl[1:]), (pts[:, :-1], pts[:, 1:], cl[:, :-1], cl[:, 1:])):
        ch = cp != cq
        if bool(ch.any()):
            assert bool(_segments_cross(p[ch], q[ch], B).all())


def test_boundary_of_a_straight_classifier_is_one_piece():
    # two hidden units always on (x + 10) carry the function; the others do not reach the output:
    # the function is affine on the slice: one straight boundary across many polygons
    g = torch.Generator().manual_seed(2)
    n = 6
    lin = nn.Linear(2, 2 + n).double()
    head = nn.Linear(2 + n, 2).double()
    A = torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.cat([torch.eye(2, dtype=torch.float64), torch.randn(n, 2, generator=g, dtype=torch.float64)]))
        lin.bias.copy_(torch.cat([torch.full((2,), 10.0, dtype=torch.float64),
                                  0.3 * torch.randn(n, generator=g, dtype=torch.float64)]))
        head.weight.copy_(torch.cat([A, torch.zeros(2, n, dtype=torch.float64)], 1))
        head.bias.copy_(-A @ torch.full((2,), 10.0, dtype=torch.float64) + torch.tensor([0.1, 0.0], dtype=torch.float64))
    net = PLNet.from_torch(nn.Sequential(lin, nn.ReLU(), head), (2,))
    res = on_plane(net, extent=1.0)
    assert res.count > 5 and res.linear_count == 1
    assert res.boundary.shape[0] > 1
    assert res.boundary_pieces == 1
    # three classes of a linear map: three rays from the triple point
    lin3 = nn.Linear(2, 3).double()
    with torch.no_grad():
        lin3.weight.copy_(torch.tensor([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]], dtype=torch.float64))
        lin3.bias.copy_(torch.tensor([0.1, 0.0, -0.05], dtype=torch.float64))
    res3 = on_plane(PLNet.from_torch(nn.Sequential(lin3), (2,)), extent=1.0)
    assert res3.count == 1 and res3.boundary_pieces == 3


def test_boundary_along_a_region_edge():
    # out = relu(z): zero on a half-plane, so the class change (out > 0) lies on the ReLU's line
    lin = nn.Linear(2, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.6, 0.8]], dtype=torch.float64))
        lin.bias.copy_(torch.tensor([0.1], dtype=torch.float64))
    net = PLNet.from_torch(nn.Sequential(lin, nn.ReLU()), (2,))
    res = on_plane(net, extent=1.0)
    assert res.count == 2
    assert res.boundary.shape[0] == 1 and res.boundary_pieces == 1
    seg = res.boundary[0]
    z = seg @ torch.tensor([0.6, 0.8], dtype=torch.float64) + 0.1
    assert torch.allclose(z, torch.zeros(2, dtype=torch.float64), atol=1e-12)
    # the chord of the line z = 0 in the square
    assert bool(((seg.abs() - 1).abs() < 1e-12).any(1).all())


# ----------------------------------------------------------------------------- budgets, errors, output
def test_budgets_return_incomplete_coarsening():
    net = PLNet.from_torch(mlp([2, 10, 10, 1], seed=1), (2,))
    full = on_plane(net, extent=2.0)
    part = on_plane(net, extent=2.0, max_regions=20)
    assert not part.complete and 20 < part.count < full.count
    assert abs(float(part.areas.sum()) - 16.0) <= 1e-9 * 16
    assert part.maps is None and part.boundary is None and part.linear_count is None
    # resolved entries of each coarse polygon agree with the pattern at its centroid
    pc = net.pattern(part.to_input(part.centroids))
    known = part.patterns >= 0
    assert bool(((pc == part.patterns.long()) | ~known).all())
    assert bool((~known).any())
    quick = on_plane(net, extent=2.0, time_limit=1e-9)
    assert not quick.complete and quick.count >= 1
    assert on_plane(net, extent=2.0, max_regions=full.count).complete


def test_argument_errors():
    net = PLNet.from_torch(mlp([2, 4, 1]), (2,))
    with pytest.raises(DegenerateGeometryError, match="parallel"):
        on_plane(net, u=[1.0, 2.0], v=[-2.0, -4.0])
    with pytest.raises(DegenerateGeometryError, match="zero"):
        on_plane(net, u=[0.0, 0.0], v=[0.0, 1.0])
    with pytest.raises(InvalidInputError, match="u"):
        on_plane(net, u=[1.0, 0.0, 0.0], v=[0.0, 1.0])
    with pytest.raises(InvalidInputError, match="extent"):
        on_plane(net, extent=(1, 0, 0, 1))
    with pytest.raises(InvalidInputError, match="extent"):
        on_plane(net, extent=-1)
    with pytest.raises(InvalidInputError, match="max_regions"):
        on_plane(net, max_regions=0)
    with pytest.raises(InvalidInputError, match="time_limit"):
        on_plane(net, time_limit=-1)
    net10 = PLNet.from_torch(mlp([10, 4, 1]), (10,))
    with pytest.raises(InvalidInputError, match="u and v"):
        on_plane(net10)
    with pytest.raises(relulab.RelulabError):
        on_plane(net10, u=torch.ones(10), v=2 * torch.ones(10))


def test_result_serialization_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = PLNet.from_torch(mlp([2, 6, 6, 3], seed=8), (2,))
    res = on_plane(net, extent=1.5)
    summ = res.to_dict(summary=True)
    json.dumps(summ)
    assert summ["count"] == res.count and "polygons" not in summ and summ["domain"] == "plane"
    full = json.loads(res.to_json())
    assert len(full["areas"]) == res.count and abs(full["total_area"] - 9.0) < 1e-9
    assert res.polygon(0).shape == (int(res.n_vertices[0]), 2)
    for color in ("pattern", "linear", "value", "class", "none"):
        ax = res.plot(color=color)
        assert len(ax.collections) >= 1
        plt.close(ax.figure)
    with pytest.raises(InvalidInputError):
        res.plot(color="rainbow")


def test_network_without_max_units():
    lin = nn.Linear(2, 2).double()
    net = PLNet.from_torch(nn.Sequential(lin), (2,))
    res = on_plane(net, extent=(0.0, 2.0, -1.0, 3.0))
    assert res.count == 1 and res.linear_count == 1 and abs(float(res.areas[0]) - 8.0) < 1e-12
    check_partition(net, res, k=10)


# ----------------------------------------------------------------------------- random networks
@settings(max_examples=examples(30))
@given(random_module(families=("mlp", "cnn1d", "cnn2d", "residual"), max_depth=2, max_width=5), st.data())
def test_random_networks(ms, data):
    # chain networks propagate affine maps layer to layer; residual ones take the forward-pass path
    module, shape = ms
    d = math.prod(shape)
    assume(d >= 2)
    net = PLNet.from_torch(module, shape)
    o = u = v = None
    if d > 2:
        g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
        o, u, v = (torch.randn(d, generator=g, dtype=torch.float64) for _ in range(3))
    r = data.draw(st.sampled_from([0.5, 1.5, 3.0]))
    res = on_plane(net, o, u, v, extent=r, max_regions=5000)
    assume(res.complete)
    check_partition(net, res, k=25)


@settings(max_examples=examples(25))
@given(random_module(families=("mlp", "cnn1d"), max_depth=2, max_width=4, ties=True), st.data())
def test_random_networks_with_exact_ties(ms, data):
    # integer weights, zero biases: every boundary through the origin, many coincident lines,
    # pieces equal on whole regions; all arithmetic exact
    module, shape = ms
    d = math.prod(shape)
    assume(d >= 2)
    net = PLNet.from_torch(module, shape)
    o = u = v = None
    if d > 2:
        g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
        o = torch.randint(-1, 2, (d,), generator=g).double() * 0.25
        u = torch.zeros(d, dtype=torch.float64)
        v = torch.zeros(d, dtype=torch.float64)
        u[0], v[1] = 1.0, 1.0
        u[2:] = torch.randint(-1, 2, (d - 2,), generator=g).double()
    res = on_plane(net, o, u, v, extent=1.0, max_regions=5000)
    assume(res.complete)
    check_partition(net, res, k=25, ties=True)


@pytest.mark.parametrize("kind", ["relu", "maxout", "maxpool"])
def test_forward_pass_path_agrees_with_map_propagation(kind, monkeypatch):
    from relulab.regions import plane

    torch.manual_seed(4)
    if kind == "relu":
        m = mlp([2, 8, 8, 2], seed=6)
    elif kind == "maxout":
        m = nn.Sequential(rnn.Maxout(2, 5, 3), nn.Linear(5, 4), nn.LeakyReLU(0.2), nn.Linear(4, 2)).double()
    else:
        m = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Unflatten(1, (2, 4)), nn.MaxPool1d(2), nn.Flatten(),
                          nn.Linear(4, 1)).double()
    net = PLNet.from_torch(m, (2,))
    a = on_plane(net, extent=2.0)
    monkeypatch.setattr(plane, "_segments", lambda rnet: None)
    b = on_plane(net, extent=2.0)
    assert a.count == b.count and a.linear_count == b.linear_count and a.boundary_pieces == b.boundary_pieces
    ka = sorted(bytes(r) for r in a.patterns.to(torch.int16).numpy())
    kb = sorted(bytes(r) for r in b.patterns.to(torch.int16).numpy())
    assert ka == kb
    assert torch.allclose(a.areas.sort().values, b.areas.sort().values, atol=1e-12)
    check_partition(net, b)


@pytest.mark.parametrize("act", [nn.ReLU, lambda: nn.LeakyReLU(-0.3), rnn.Abs])
def test_children_maps_from_their_parents_agree_with_the_full_product(act, monkeypatch):
    # every child's maps as its parent's product plus its own units' terms, against one product per
    # child (the same sums in another order: equal to rounding)
    from relulab.regions import plane

    net = PLNet.from_torch(mlp([2, 12, 12, 12, 3], act=act, seed=8), (2,))
    monkeypatch.setattr(plane, "_LOW_RANK", False)
    a = on_plane(net, extent=2.0)
    monkeypatch.setattr(plane, "_LOW_RANK", True)
    monkeypatch.setattr(plane, "_low_rank_pays", lambda *args: True)
    b = on_plane(net, extent=2.0)
    assert a.certified and b.certified
    assert (a.count, a.linear_count, a.boundary_pieces, a.layer_counts) == (
        b.count, b.linear_count, b.boundary_pieces, b.layer_counts)
    ka = sorted(bytes(r) for r in a.patterns.to(torch.int16).numpy())
    kb = sorted(bytes(r) for r in b.patterns.to(torch.int16).numpy())
    assert ka == kb
    calls = []
    orig = plane._children_maps
    monkeypatch.setattr(plane, "_children_maps", lambda *args: calls.append(1) or orig(*args))
    on_plane(net, extent=2.0)
    assert calls  # the path under test ran

    def order(p):
        rows = [bytes(r) for r in p.to(torch.int16).numpy()]
        return torch.tensor(sorted(range(len(rows)), key=rows.__getitem__))

    oa, ob = order(a.patterns), order(b.patterns)
    scale = float(a.maps.abs().max())
    assert torch.allclose(a.maps[oa], b.maps[ob], rtol=0, atol=1e-12 * scale)
    check_partition(net, b)


@pytest.mark.parametrize("act", [nn.ReLU, lambda: nn.LeakyReLU(0.5)])
def test_lines_tested_on_discs_several_at_a_time_give_the_same_partition(act, monkeypatch):
    # the disc tests of a polygon's next lines in one round make the same decisions in the same
    # order as one line per round: identical polygons (listed in another order)
    from relulab.regions import plane

    net = PLNet.from_torch(mlp([2, 30, 10, 2], act=act, seed=3), (2,))
    monkeypatch.setattr(plane, "_DISC_AHEAD", 1)
    a = on_plane(net, extent=3.0)
    monkeypatch.setattr(plane, "_DISC_AHEAD", 7)
    b = on_plane(net, extent=3.0)
    assert a.certified and b.certified
    assert a.layer_counts == b.layer_counts and a.count == b.count

    def by_pattern(r):
        return {bytes(p): r.polygon(i) for i, p in enumerate(r.patterns.to(torch.int16).numpy())}

    pa, pb = by_pattern(a), by_pattern(b)
    assert pa.keys() == pb.keys()
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


# ----------------------------------------------------------------------------- certified counts
def _random_mlp(widths, seed):
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=torch.float64) / widths[i] ** 0.5)
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=g, dtype=torch.float64))
        layers += [lin, nn.ReLU()]
    return PLNet.from_torch(nn.Sequential(*layers[:-1]), (widths[0],))


def _exact_count(net, r):
    from relulab.regions.plane import _exact_refine

    z, e = torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    return _exact_refine(net, z, e[0], e[1], (-r, r, -r, r), None, torch.int8)[0].shape[0]


@pytest.mark.parametrize("widths,seed,extents", [
    ([2, 8, 8, 2], 1, [1e6, 1e9, 1e12, 1e100, 1e200, 1e308]),
    ([2, 16, 16, 1], 2, [1e6, 1e12, 1e308]),
])
def test_huge_extents_are_counted_exactly(widths, seed, extents):
    net = _random_mlp(widths, seed)
    # reference: exact rational refinement on an extent that holds every vertex (the count no
    # longer grows: doubling the extent changes nothing)
    r0 = 1e3
    ref = _exact_count(net, r0)
    assert _exact_count(net, 4 * r0) == ref
    for ext in extents:
        res = on_plane(net, extent=ext)
        assert (res.count, res.certified, res.complete) == (ref, True, True), ext
        if ext <= 1e100:  # the float64 refinement alone is right too (relative tolerances)
            assert on_plane(net, extent=ext, certify=False).count == ref, ext
    with pytest.raises(DegenerateGeometryError, match="overflow"):
        on_plane(net, extent=1e308, certify=False)


def _lines_net(W, b):
    W = torch.as_tensor(W, dtype=torch.float64)
    lin = nn.Linear(2, W.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(W, dtype=torch.float64))
        lin.bias.copy_(torch.as_tensor(b, dtype=torch.float64))
    out = nn.Linear(W.shape[0], 1).double()
    return PLNet.from_torch(nn.Sequential(lin, nn.ReLU(), out), (2,))


@pytest.mark.parametrize("gap", [1e-10, 1e-12])
def test_parallel_lines_a_hair_apart(gap):
    # t = 0, t = gap, and s = 0: 6 regions, two of them a strip `gap` wide
    net = _lines_net([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], [0.0, -gap, 0.0])
    for certify in (None, False):
        res = on_plane(net, extent=1.0, certify=certify)
        assert res.count == 6
        assert res.certified is (certify is None)
    assert _exact_count(net, 1.0) == 6


def test_thin_slab_on_a_large_slice():
    # a slab 1e-6 wide at t = 3e4 on a slice of extent 1e5, a vertical and a diagonal line:
    # 4 lines, 5 intersection points inside, no three concurrent: 1 + 4 + 5 = 10 regions
    net = _lines_net([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, -1.0]], [-3e4, -(3e4 + 1e-6), 0.0, 0.0])
    assert _exact_count(net, 1e5) == 10
    for certify in (None, False):
        assert on_plane(net, extent=1e5, certify=certify).count == 10


def test_certify_argument():
    net = _random_mlp([2, 5, 1], 0)
    assert on_plane(net, extent=2.0, certify=True).certified
    assert not on_plane(net, extent=2.0, certify=False).certified
    with pytest.raises(InvalidInputError):
        on_plane(net, certify="yes")
    for bad in (True, 0, -1, 2.5):
        with pytest.raises(InvalidInputError, match="max_regions"):
            on_plane(net, max_regions=bad)
    res = on_plane(_random_mlp([2, 32, 32, 1], 0), extent=3.0, max_regions=50)
    assert (res.complete, res.stopped_by, res.certified) == (False, "max_regions", False)


def test_progress_callback_counts_finished_polygons():
    from relulab.progress import Recorder, accepts_progress
    from relulab.regions import on_line

    assert accepts_progress(on_plane) and accepts_progress(on_line)  # what the CLI's bar needs
    net = PLNet.from_torch(mlp([2, 12, 12, 1], seed=5), (2,))
    rec = Recorder()
    res = on_plane(net, extent=2.0, progress=rec, certify=False)
    done = [c[0] for c in rec.calls]
    assert done and done == sorted(done) and done[-1] == res.count
    assert all(c[1] is None and c[2]["regions"] == c[0] for c in rec.calls)


@pytest.mark.parametrize("scale", [1e-200, 1e-6, 1.0, 1e6, 1e200])
@pytest.mark.parametrize("coef", [(0.0, 1.0), (0.5, 1.0), (-1.0, 1.0)])
def test_disc_filter_decides_only_what_the_vertex_test_decides(scale, coef):
    # the batched disc filter of a two-piece layer (value at the vertex mean, bound from |z|) may
    # settle a (polygon, unit) pair without the vertex test only where the vertex test agrees: no
    # vertex within its tolerance of the line, every vertex on the side of the disc's centre. Lines
    # are placed at the disc's edge (missing it by -1e-6 .. 1e-6 of the threshold, or passing
    # through a vertex) at tiny and huge scales.
    from relulab.regions import plane

    g = torch.Generator().manual_seed(7)
    A, M, U = 40, 6, 48
    n = torch.full((A,), M)
    rtol = 1e-12
    centre = torch.zeros(2, dtype=torch.float64)
    # convex polygons: points on a circle of random centre and radius, counter-clockwise
    ang = torch.sort(torch.rand(A, M, generator=g, dtype=torch.float64) * 2 * math.pi, 1).values
    c = (torch.rand(A, 2, generator=g, dtype=torch.float64) * 2 - 1) * scale
    r = (torch.rand(A, 1, generator=g, dtype=torch.float64) * 0.1 + 1e-3) * scale
    V = torch.stack([c[:, :1] + r * torch.cos(ang), c[:, 1:] + r * torch.sin(ang)], -1)
    # half of them thin rectangles along s: the disc's bound is then tight for lines along t
    box = torch.tensor([[-1, -1e-9], [1, -1e-9], [1, 1e-9], [-1, 1e-9], [-1, 1e-9], [-1, 1e-9]], dtype=torch.float64)
    V[A // 2:] = c[A // 2:, None] + r[A // 2:, :, None] * box
    n[A // 2:] = 4
    ref, rho = plane._discs(V, n)
    cf = torch.tensor(coef, dtype=torch.float64)[None].expand(U, 2).contiguous()
    gs = torch.randn(A, U, generator=g, dtype=torch.float64)
    gt = torch.randn(A, U, generator=g, dtype=torch.float64)
    gt[:, ::2] = 0.0  # lines along t
    # the tie line D = (c1 - c0) z: place it relative to the disc's threshold
    # (|c0| + |c1|) / |c1 - c0| (|gs| + |gt|) rho (the bound holds |c1 z| + |c0 z|, as the vertex test)
    fac = (abs(coef[0]) + abs(coef[1])) / abs(coef[1] - coef[0])
    thr = fac * (gs.abs() + gt.abs()) * rho[:, None]
    rel = torch.tensor([-1e-6, -1e-12, 0.0, 1e-12, 1e-9, 1e-6, 1e-3, 0.5], dtype=torch.float64)
    k = torch.arange(U) % (rel.numel() + 1)
    val_at_ref = thr * (1 + rel[k.clamp(max=rel.numel() - 1)]) * torch.where(torch.arange(U) % 2 == 0, 1.0, -1.0)
    # the last kind: through a vertex
    through = k == rel.numel()
    vx = V[:, 0]
    val_vertex = -(gs * (vx[:, :1] - ref[:, :1]) + gt * (vx[:, 1:] - ref[:, 1:]))
    val_at_ref = torch.where(through, val_vertex, val_at_ref)
    D0 = val_at_ref - gs * ref[:, :1] - gt * ref[:, 1:]  # value at the centre (0, 0)
    D = torch.stack([D0, gs, gt], -1)  # (A, U, 3) in local form about the centre
    dc = cf[:, 1] - cf[:, 0]
    Z = D / dc[None, :, None]  # maps of the feature: D = c1 z - c0 z
    Zm = Z.permute(2, 0, 1).contiguous()  # the refinement's (3, A, U) memory
    Zc = Zm.permute(1, 2, 0)
    relu = coef == (0.0, 1.0)
    dref, sure = plane._disc_sides_maps(Zc, cf, relu, ref, rho, centre, rtol)
    rows = plane._line_rows(Zc, cf, relu)
    p, u = torch.meshgrid(torch.arange(A), torch.arange(U), indexing="ij")
    Dr, Dabs = rows(p.reshape(-1), u.reshape(-1))
    Vr = V[:, None].expand(A, U, M, 2).reshape(A * U, M, 2)
    cen = centre.expand(A * U, 2)
    dv = plane._eval_affine(Dr, cen, Vr)
    tv = plane._vtol(Dabs, cen, Vr, rtol)
    cross = ((dv > tv).any(1) & (dv < -tv).any(1)).reshape(A, U)
    on_pos = (dv > tv).all(1).reshape(A, U)
    on_neg = (dv < -tv).all(1).reshape(A, U)
    assert not bool((sure & cross).any())
    assert bool(torch.where(sure, torch.where(dref > 0, on_pos, on_neg), True).all())
    # the filter does its job: lines missing the disc by 1e-3 of the threshold or more are settled
    far = (k == rel.numel() - 2) | (k == rel.numel() - 1)
    assert bool(sure[:, far].all())
    # the cutting rounds' disc test (gathered lines) makes the same promise
    B = 16
    dref2, sure2 = plane._disc_sides(Dr.reshape(A, U, 3)[:, :B], Dabs.reshape(A, U, 3)[:, :B], ref, rho, centre, rtol)
    assert not bool((sure2 & cross[:, :B]).any())
    assert bool(torch.where(sure2, torch.where(dref2 > 0, on_pos[:, :B], on_neg[:, :B]), True).all())
