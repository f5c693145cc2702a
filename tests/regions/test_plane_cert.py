"""Tests of the filtered certificate of ``on_plane`` (``relulab.regions._plane_cert``).

References, independent of the certificate: the exact rational refinement ``_exact_refine`` (pure
Python integers on the float64 weights; its pattern set is the exact one), closed-form counts of
line arrangements, and corrupted partitions that the certificate must reject. ``_exact_refine`` is
switched off (monkeypatched to fail) wherever a test asserts that the filter alone certified.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import examples, random_module
from torch import nn

from relulab import DegenerateGeometryError, PLNet
from relulab.regions import on_plane
from relulab.regions import plane as plane_mod
from relulab.regions._plane_cert import certify_partition


def _mlp(widths, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=torch.float64) / widths[i] ** 0.5)
            lin.bias.copy_(scale * torch.randn(lin.bias.shape, generator=g, dtype=torch.float64))
        layers += [lin, nn.ReLU()]
    return PLNet.from_torch(nn.Sequential(*layers[:-1]), (widths[0],))


def _lines_net(W, b):
    W = torch.as_tensor(W, dtype=torch.float64)
    lin = nn.Linear(2, W.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(torch.as_tensor(b, dtype=torch.float64))
    return PLNet.from_torch(nn.Sequential(lin, nn.ReLU(), nn.Linear(W.shape[0], 1).double()), (2,))


def _exact(net, ext, o=None, u=None, v=None):
    d = net.input_dim
    o = torch.zeros(d, dtype=torch.float64) if o is None else o
    u = torch.eye(d, dtype=torch.float64)[0] if u is None else u
    v = torch.eye(d, dtype=torch.float64)[1] if v is None else v
    return plane_mod._exact_refine(net, o, u, v, ext, None, torch.int8)


def _rows(p):
    return sorted(bytes(r) for r in p.to(torch.int16).cpu().numpy())


def _fail(*a, **k):
    raise AssertionError("the exact refinement ran: the filter did not certify")


def _no_exact_refine(monkeypatch):
    monkeypatch.setattr(plane_mod, "_exact_refine", _fail)


def _float_partition(net, ext, o=None, u=None, v=None):
    """The float refinement's raw output (patterns, edge labels, label ranges); the slice defaults to
    the plane of a 2-input net."""
    import time

    e = torch.eye(2, dtype=torch.float64)
    z = torch.zeros(2, dtype=torch.float64) if o is None else o
    if u is not None:
        e = torch.stack([u, v])
    rnet = plane_mod._restrict(net, z, e[0], e[1])
    with torch.no_grad():
        V, n, E, pat, complete, _, _, ranges, _ = plane_mod._refine(
            rnet, ext, 1e-12, plane_mod._Budget(None, None, time.perf_counter()), torch.int8)
    assert complete
    return (z, e[0], e[1]), pat, E, ranges


# ----------------------------------------------------------------------------- filter alone
@pytest.mark.parametrize("widths,seed,r", [([2, 40, 40, 1], 0, 2.0), ([2, 30, 30, 30, 1], 1, 1.5)])
def test_filter_certifies_without_exact_refinement(widths, seed, r, monkeypatch):
    net = _mlp(widths, seed)
    ref = _exact(net, (-r, r, -r, r))[3]  # before the exact refinement is switched off
    _no_exact_refine(monkeypatch)
    res = on_plane(net, extent=r)
    assert res.certified and res.complete
    assert res.count * net.n_units > plane_mod._CERTIFY_WORK or widths[1] == 40
    assert _rows(res.patterns) == _rows(ref)


def test_big_net_is_certified_by_the_filter(monkeypatch):
    # regions x units far above what the exact refinement is run for
    net = _mlp([2, 60, 60, 60, 1], 3)
    _no_exact_refine(monkeypatch)
    res = on_plane(net, extent=2.0)
    assert res.certified and res.count * net.n_units > 10 * plane_mod._CERTIFY_WORK
    assert res.count == on_plane(net, extent=2.0, certify=False).count


def test_slice_through_a_higher_dimensional_net(monkeypatch):
    net = _mlp([7, 12, 12, 3], 5)
    g = torch.Generator().manual_seed(2)
    o, u, v = (torch.randn(7, generator=g, dtype=torch.float64) for _ in range(3))
    ref = _exact(net, (-1.5, 1.5, -1.5, 1.5), o, u, v)[3]
    _no_exact_refine(monkeypatch)
    res = on_plane(net, o, u, v, extent=1.5)
    assert res.certified and _rows(res.patterns) == _rows(ref)


# ----------------------------------------------------------------------------- corrupted partitions
def test_a_missing_polygon_is_caught():
    net = _mlp([2, 10, 10, 1], 4)
    args, pat, E, ranges = _float_partition(net, (-2.0, 2.0, -2.0, 2.0))
    ext = (-2.0, 2.0, -2.0, 2.0)
    assert certify_partition(net, *args, ext, pat, E, ranges).ok is True
    for drop in (0, pat.shape[0] // 2, pat.shape[0] - 1):
        keep = torch.arange(pat.shape[0]) != drop
        out = certify_partition(net, *args, ext, pat[keep], E[keep], ranges)
        assert out.ok is False and "across an edge" in out.reason


def test_a_wrong_pattern_entry_is_caught():
    net = _mlp([2, 10, 10, 1], 4)
    ext = (-2.0, 2.0, -2.0, 2.0)
    args, pat, E, ranges = _float_partition(net, ext)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        i = int(torch.randint(pat.shape[0], (1,), generator=g))
        j = int(torch.randint(pat.shape[1], (1,), generator=g))
        bad = pat.clone()
        bad[i, j] = 1 - bad[i, j]
        assert certify_partition(net, *args, ext, bad, E, ranges).ok is False


def test_groups_proposed_by_the_refinement_are_checked():
    # the refinement's ancestors only propose the groups of polygons sharing earlier winners: a
    # wrong proposal is detected (and the groups found by hashing instead), never trusted
    import time

    from relulab.regions import _plane_cert

    net = _mlp([2, 10, 10, 10, 1], 5)
    ext = (-2.0, 2.0, -2.0, 2.0)
    e = torch.eye(2, dtype=torch.float64)
    z = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        _, _, E, pat, complete, _, _, ranges, tree = plane_mod._refine(
            plane_mod._restrict(net, z, e[0], e[1]), ext, 1e-12, plane_mod._Budget(None, None, time.perf_counter()),
            torch.int8)
    assert complete and tree.shape == (pat.shape[0], 3)
    args = (z, e[0], e[1])
    w0 = pat[:, :10]
    assert _plane_cert._tree_groups(torch.zeros_like(tree[:, 0]), w0, tree[:, 1]) is not None
    wrong = torch.zeros_like(tree[:, 1])  # every polygon in one group: their layer-1 winners differ
    assert _plane_cert._tree_groups(torch.zeros_like(tree[:, 0]), w0, wrong) is None
    for t in (tree, wrong[:, None].expand(-1, 3), tree.flip(0)):
        assert certify_partition(net, *args, ext, pat, E, ranges, tree=t).ok is True
        bad = pat.clone()
        bad[3, 25] = 1 - bad[3, 25]
        assert certify_partition(net, *args, ext, bad, E, ranges, tree=t).ok is False


def test_corrupted_edges_are_caught():
    net = _mlp([2, 10, 10, 1], 4)
    ext = (-2.0, 2.0, -2.0, 2.0)
    args, pat, E, ranges = _float_partition(net, ext)
    n = (E >= 0).sum(1)
    i = int((n >= 4).nonzero()[0, 0])
    for a, b in ((0, 2), (1, 0)):  # one line on two edges; two edges swapped (clockwise turn)
        bad = E.clone()
        if a == 0:
            bad[i, 2] = bad[i, 0]
        else:
            bad[i, 0], bad[i, 1] = E[i, 1], E[i, 0]
        assert certify_partition(net, *args, ext, pat, bad, ranges).ok is False


def test_the_verdict_on_a_shifted_slice_is_the_exact_one():
    # one slice's partition checked against shifted slices: a small shift keeps the combinatorics
    # (the pattern set is still exact, and the certificate says so), a larger one does not
    net = _mlp([2, 10, 10, 1], 4)
    ext = (-2.0, 2.0, -2.0, 2.0)
    (o, u, v), pat, E, ranges = _float_partition(net, ext)
    verdicts = []
    for sh in (1e-3, 1e-2, 0.05, 0.3):
        o2 = o + torch.tensor([sh, 0.0], dtype=torch.float64)
        same = _rows(_exact(net, ext, o2, u, v)[3]) == _rows(pat)
        out = certify_partition(net, o2, u, v, ext, pat, E, ranges)
        assert out.ok is same, sh
        verdicts.append(same)
    assert True in verdicts and False in verdicts


# ----------------------------------------------------------------------------- near-degenerate
@pytest.mark.parametrize("gap", [1e-10, 1e-13])
def test_parallel_lines_a_hair_apart_are_certified_exactly(gap):
    net = _lines_net([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], [0.0, -gap, 0.0])
    res = on_plane(net, extent=1.0)
    assert (res.count, res.certified) == (6, True)
    assert _rows(res.patterns) == _rows(_exact(net, (-1.0, 1.0, -1.0, 1.0))[3])


def test_a_wrong_float_partition_of_a_large_net_raises(monkeypatch):
    # with a coarse rtol the float refinement merges a strip 1e-8 wide; the certificate catches it
    # and the exact refinement gives the count; without the exact refinement (as for a large net)
    # the verdict is an error, never a wrong count
    net = _lines_net([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], [-0.3, -0.3 - 1e-8, 0.0])
    assert on_plane(net, extent=1.0, certify=False, rtol=1e-5).count == 4  # merged
    res = on_plane(net, extent=1.0, rtol=1e-5)
    assert (res.count, res.certified) == (6, True)
    monkeypatch.setattr(plane_mod, "_CERTIFY_WORK", 0)
    with pytest.raises(DegenerateGeometryError, match="cannot decide"):
        on_plane(net, extent=1.0, rtol=1e-5)


@pytest.mark.parametrize("width,r,off", [(1e-6, 1e5, 3e4), (1e-9, 1e3, 1.0), (1e-3, 1e9, 7e8)])
def test_thin_slabs(width, r, off):
    net = _lines_net([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, -1.0]], [-off, -(off + width), 0.0, 0.0])
    res = on_plane(net, extent=r)
    ref = _exact(net, (-r, r, -r, r))[3]
    assert res.certified and _rows(res.patterns) == _rows(ref)


@pytest.mark.parametrize("ext", [1e6, 1e12, 1e100, 1e300])
def test_huge_extents_match_the_exact_refinement(ext, monkeypatch):
    net = _mlp([2, 8, 8, 2], 1)
    ref = _exact(net, (-1e3, 1e3, -1e3, 1e3))[3]  # every vertex lies within 1e3 (see test_plane)
    res = on_plane(net, extent=ext)
    assert res.certified and _rows(res.patterns) == _rows(ref)
    if ext <= 1e12:  # the filter alone settles moderate extents
        _no_exact_refine(monkeypatch)
        assert on_plane(net, extent=ext).certified


def test_concurrent_and_duplicate_lines():
    # three lines through one point, one line twice (scaled), one opposite: exact degeneracies
    W = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0], [-1.0, -1.0], [1.0, -1.0]]
    net = _lines_net(W, [0.0, 0.0, 0.0, 0.0, 0.0, 0.5])
    res = on_plane(net, extent=2.0)
    ref = _exact(net, (-2.0, 2.0, -2.0, 2.0))[3]
    assert res.certified and _rows(res.patterns) == _rows(ref)


# ----------------------------------------------------------------------------- random networks
@settings(max_examples=examples(20), deadline=None)
@given(random_module(families=("mlp",), max_depth=2, max_width=5), st.data())
def test_random_chain_networks_match_the_exact_refinement(ms, data):
    module, shape = ms
    d = math.prod(shape)
    assume(d >= 2)
    net = PLNet.from_torch(module, shape)
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    o, u, v = (torch.randn(d, generator=g, dtype=torch.float64) for _ in range(3))
    r = data.draw(st.sampled_from([0.5, 2.0, 1e4]))
    ref = _exact(net, (-r, r, -r, r), o, u, v)[3]
    # (bias-free layers can make exactly coincident boundaries: then the exact refinement decides)
    res = on_plane(net, o, u, v, extent=r, max_regions=3000)
    assume(res.complete)
    assert res.certified
    assert _rows(res.patterns) == _rows(ref)


@settings(max_examples=examples(15), deadline=None)
@given(random_module(families=("residual", "cnn1d"), max_depth=2, max_width=4), st.data())
def test_random_residual_and_conv_networks_are_certified(ms, data):
    # residual networks have no exact refinement: the certificate (with its exact stage) is all
    module, shape = ms
    d = math.prod(shape)
    assume(d >= 2)
    net = PLNet.from_torch(module, shape)
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    o, u, v = (torch.randn(d, generator=g, dtype=torch.float64) for _ in range(3))
    res = on_plane(net, o, u, v, extent=1.5, max_regions=3000)
    assume(res.complete)
    assert res.certified
    if plane_mod._segments(plane_mod._restrict(net, o, u, v)) is not None:
        assert _rows(res.patterns) == _rows(_exact(net, (-1.5, 1.5, -1.5, 1.5), o, u, v)[3])


def _tied_pool_net():
    """Conv1d + BatchNorm + ReLU, a padded Conv1d + BatchNorm + LeakyReLU(0.9), a dilated MaxPool1d.
    Where the three ReLUs at one position are off, the padded convolution's feature there is its
    bias, exactly as at the padded positions: a max-pool unit reading both has two pieces that are
    the same function on such a polygon (a tie, won by the lower index), and across the ReLU's edge
    the tie breaks the other way, so the neighbour differs from the polygon in several units."""
    from strategies import _init

    m = nn.Sequential(nn.Conv1d(3, 3, 1, groups=3), nn.BatchNorm1d(3), nn.ReLU(), nn.Conv1d(3, 3, 1, padding=2),
                      nn.BatchNorm1d(3), nn.LeakyReLU(0.9), nn.MaxPool1d(3, stride=3, dilation=2), nn.Flatten())
    net = PLNet.from_torch(_init(m, torch.Generator().manual_seed(1176975), False), (3, 7))
    g = torch.Generator().manual_seed(0)
    return net, [torch.randn(21, generator=g, dtype=torch.float64) for _ in range(3)]


def test_ties_that_break_across_an_edge(monkeypatch):
    # the regions across an edge whose polygon holds a tie are found layer by layer (the exact
    # stage); a float partition that is right is certified, one missing such a neighbour is not
    net, (o, u, v) = _tied_pool_net()
    ext = (-1.5, 1.5, -1.5, 1.5)
    ref = _exact(net, ext, o, u, v)[3]
    args, pat, E, ranges = _float_partition(net, ext, o, u, v)
    assert _rows(pat) == _rows(ref)
    assert certify_partition(net, *args, ext, pat, E, ranges).ok is True
    res = on_plane(net, o, u, v, extent=1.5)
    assert res.certified and _rows(res.patterns) == _rows(ref)
    assert res.count * net.n_units > plane_mod._CERTIFY_WORK  # the exact refinement is not run by default
    # neighbours that differ in more than the unit of the edge between them
    ip, im = res.adjacency.unbind(1)
    many = ((res.patterns[ip] != res.patterns[im]).sum(1) > 1).nonzero()[:, 0]
    assert many.numel()
    index = {bytes(r): i for i, r in enumerate(pat.to(torch.int16).numpy())}
    for k in many[:1].tolist():
        for drop in (int(ip[k]), int(im[k])):
            j = index[bytes(res.patterns[drop].to(torch.int16).numpy())]
            keep = torch.arange(pat.shape[0]) != j
            out = certify_partition(net, *args, ext, pat[keep], E[keep], ranges)
            assert out.ok is False and "across an edge" in out.reason


# ----------------------------------------------------------------------------- the exact stage
@pytest.mark.parametrize("residual", [False, True])
def test_exact_stage_alone(residual, monkeypatch):
    # bounds inflated until float64 decides nothing: every polygon goes to exact integers
    from relulab.regions import _plane_cert

    if residual:
        class Res(nn.Module):
            def __init__(self):
                super().__init__()
                g = torch.Generator().manual_seed(3)
                self.a = nn.Linear(2, 6).double()
                self.b = nn.Linear(6, 6).double()
                self.c = nn.Linear(6, 1).double()
                with torch.no_grad():
                    for m in (self.a, self.b, self.c):
                        m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64))
                        m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=torch.float64))

            def forward(self, x):
                h = torch.relu(self.a(x))
                return self.c(torch.relu(h + self.b(h)))

        net = PLNet.from_torch(Res(), (2,))
    else:
        net = _mlp([2, 6, 6, 1], 3)
    ext = (-2.0, 2.0, -2.0, 2.0)
    args, pat, E, ranges = _float_partition(net, ext)  # residual: the refinement's forward-pass path
    monkeypatch.setattr(_plane_cert, "_SAFE", 1e30)
    out = certify_partition(net, *args, ext, pat, E, ranges)
    assert out.ok is True and out.exact == pat.shape[0]
    keep = torch.arange(pat.shape[0]) != pat.shape[0] // 2
    assert certify_partition(net, *args, ext, pat[keep], E[keep], ranges).ok is False
    bad = pat.clone()
    bad[0, 0] = 1 - bad[0, 0]
    assert certify_partition(net, *args, ext, bad, E, ranges).ok is False


@pytest.mark.parametrize("dtype,top", [(torch.int8, 127), (torch.int16, 3000), (torch.int32, 2**30)])
def test_pattern_hash_is_the_linear_form_of_its_weights(dtype, top):
    # h = sum_j row_j hw[j] (mod 2**64), against int64 arithmetic entry by entry
    from relulab.regions._plane_cert import _pattern_hash

    g = torch.Generator().manual_seed(1)
    for n in (0, 1, 63, 64, 65, 700):
        p = torch.randint(0, top + 1, (40, n), generator=g).to(dtype)
        h, hw = _pattern_hash(p)
        ref = (p.long() * hw[:n]).sum(1) if n else torch.zeros(40, dtype=torch.long)
        assert torch.equal(h, ref)
        if n:
            assert torch.unique(h).numel() == torch.unique(p, dim=0).shape[0]


@pytest.mark.parametrize("act", [nn.ReLU, lambda: nn.LeakyReLU(0.2)])
def test_grouped_maps_from_parents_agree_with_one_product_per_group(act, monkeypatch):
    # the certificate's maps of each group as its parent's product plus its own units' terms, against
    # one product per group (the same sums in another order: equal to rounding, same groups)
    from relulab.regions import _plane_cert

    g = torch.Generator().manual_seed(5)
    layers = []
    for a, b in [(2, 16), (16, 16), (16, 16), (16, 2)]:
        lin = nn.Linear(a, b).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g, dtype=torch.float64) / a ** 0.5)
            lin.bias.copy_(torch.randn(b, generator=g, dtype=torch.float64))
        layers += [lin, act()]
    net = PLNet.from_torch(nn.Sequential(*layers[:-1]), (2,))
    ext = (-2.0, 2.0, -2.0, 2.0)
    args, pat, E, ranges = _float_partition(net, ext)
    Z0 = torch.stack(list(args)).reshape(3, -1)
    monkeypatch.setattr(plane_mod, "_LOW_RANK", False)
    direct = _plane_cert._grouped_max_inputs(net, Z0, pat)
    monkeypatch.setattr(plane_mod, "_LOW_RANK", True)
    monkeypatch.setattr(plane_mod, "_low_rank_pays", lambda *a: True)
    calls = []
    orig = _plane_cert._children_group_maps
    monkeypatch.setattr(_plane_cert, "_children_group_maps", lambda *a: calls.append(1) or orig(*a))
    low = _plane_cert._grouped_max_inputs(net, Z0, pat)
    assert len(calls) == 2  # both layers that feed another max layer
    assert len(direct) == len(low) == 3
    for (ga, za), (gb, zb) in zip(direct, low):
        assert torch.equal(ga, gb)
        assert torch.allclose(za, zb, rtol=0, atol=1e-14 * float(za.abs().max()))
    assert certify_partition(net, *args, ext, pat, E, ranges).ok is True


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32])
def test_layer_words_hold_exactly_the_layer_entries(dtype):
    # rows agree on entries a..b-1 iff their masked words agree (the groups' check reads the words)
    from relulab.regions._plane_cert import _layer_words, _pack

    g = torch.Generator().manual_seed(2)
    p = torch.randint(0, 2, (400, 37), generator=g).to(dtype)
    packed = _pack(p)
    for a, b in [(0, 37), (0, 5), (3, 11), (8, 16), (17, 18), (30, 37)]:
        w = _layer_words(packed, a, b, p.element_size())
        same_rows = (p[:, None, a:b] == p[None, :, a:b]).all(-1)
        same_words = (w[:, None] == w[None]).all(-1)
        assert torch.equal(same_rows, same_words)
