"""Local counts across the line, plane and box engines; the grokking proxy against a direct re-count
with forward hooks on the torch model; local rank and total variation against dense references."""

import pytest
import torch
from torch import nn

from relulab import PLNet
from relulab.complexity import grokking_proxy, local_counts, local_rank, random_frame, total_variation
from relulab.results import RegionResult


def _mlp(d, seed, widths=(10, 10)):
    torch.manual_seed(seed)
    layers, w = [], d
    for h in widths:
        layers += [nn.Linear(w, h), nn.ReLU()]
        w = h
    model = nn.Sequential(*layers, nn.Linear(w, 2)).double()
    return model, PLNet.from_torch(model, (d,))


def test_square_counts_equal_box_counts_in_2d():
    _, net = _mlp(2, 0)
    x = torch.randn(4, 2, dtype=torch.float64)
    sq = local_counts(net, x, 0.6, shape="square", directions=torch.eye(2, dtype=torch.float64))
    cube = local_counts(net, x, 0.6, shape="cube")
    assert isinstance(sq, RegionResult) and sq.complete and cube.complete
    assert torch.equal(sq.counts, cube.counts)
    assert sq.count == int(sq.counts.sum())


def test_segment_counts_equal_box_counts_in_1d():
    _, net = _mlp(1, 1)
    x = torch.randn(5, 1, dtype=torch.float64)
    seg = local_counts(net, x, 0.7, shape="segment")
    cube = local_counts(net, x, 0.7, shape="cube")
    assert torch.equal(seg.counts, cube.counts)


def test_disc_and_diamond_nest_inside_the_square():
    _, net = _mlp(3, 2)
    x = torch.randn(4, 3, dtype=torch.float64)
    kw = dict(seed=5)
    sq, disc, dia = (local_counts(net, x, 0.5, shape=s, **kw) for s in ("square", "disc", "diamond"))
    assert bool((dia.counts <= disc.counts).all()) and bool((disc.counts <= sq.counts).all())
    assert bool((dia.units_crossing <= disc.units_crossing).all())
    # the segment along the first direction lies in the disc
    seg = local_counts(net, x, 0.5, shape="segment", directions=sq.directions[:, :1])
    assert bool((seg.counts <= disc.counts).all())


def _hook_recount(model, x, frame, r, include_output):
    """Direct re-count as the authors do it: sign of every Linear output at the frame's vertices."""
    acts = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: acts.append(out.detach()))
             for m in model if isinstance(m, nn.Linear)]
    V = torch.cat([x[:, None] + r * frame[None], x[:, None] - r * frame[None]], 1)
    with torch.no_grad():
        model(V.reshape(-1, x.shape[1]))
    for h in hooks:
        h.remove()
    if not include_output:
        acts = acts[:-1]
    n, nv = x.shape[0], V.shape[1]
    total = torch.zeros(n, dtype=torch.long)
    for a in acts:
        s = torch.sign(a).reshape(n, nv, -1)
        total += (s != s[:, :1]).any(1).sum(1)
    return total


@pytest.mark.parametrize("include_output", [False, True])
def test_proxy_matches_direct_recount(include_output):
    model, net = _mlp(12, 3, widths=(20, 15))
    x = torch.randn(30, 12, dtype=torch.float64)
    res = grokking_proxy(net, x, 0.8, n_vertices=10, seed=7, include_output=include_output)
    ref = _hook_recount(model, x, res.frame, 0.8, include_output)
    assert torch.equal(res.counts, ref)
    assert res.value == pytest.approx(float(ref.double().mean()))
    assert "proxy" in res.label


def test_proxy_in_a_plane_is_bounded_by_exact_crossings():
    """Four vertices span a diamond: a unit whose sign differs at its vertices crosses it, so the
    proxy never exceeds the exact count, and for one layer (straight boundaries) it equals it."""
    _, deep = _mlp(4, 4, widths=(12, 12, 12))
    _, shallow = _mlp(4, 4, widths=(16,))
    x = torch.randn(8, 4, dtype=torch.float64)
    F = random_frame(2, 4, torch.Generator().manual_seed(0))
    for net, equal in ((shallow, True), (deep, False)):
        px = grokking_proxy(net, x, 0.9, n_vertices=4, frame=F)
        ex = local_counts(net, x, 0.9, shape="diamond", directions=F)
        assert bool((px.counts <= ex.units_crossing).all())
        if equal:
            assert torch.equal(px.counts, ex.units_crossing)


def test_local_rank_and_total_variation_against_dense_jacobians():
    model, net = _mlp(5, 6, widths=(8, 3))
    x = torch.randn(10, 5, dtype=torch.float64)
    lr = local_rank(net, x)
    J = torch.func.vmap(torch.func.jacrev(lambda v: model[:4](v)))(x)
    assert torch.equal(lr.ranks, torch.linalg.matrix_rank(J))
    s = torch.linalg.svdvals(J)
    p = s / s.sum(1, keepdim=True)
    eff = torch.exp(-(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(1))
    assert torch.allclose(lr.effective_ranks, torch.where(s.sum(1) > 0, eff, torch.zeros_like(eff)))
    tv = total_variation(net, x, 0.5)
    G = torch.func.vmap(torch.func.jacrev(model))(x)
    assert tv.value == pytest.approx(float(G.detach().flatten(1).norm(dim=1).mean()), rel=1e-10)
    assert tv.gradient_tv <= tv.bound + 1e-12


@pytest.mark.parametrize("shape", ["disc", "diamond"])
def test_disc_and_diamond_against_dense_sampling(shape):
    """Every pattern sampled in the neighbourhood is counted; with few, large regions sampling finds them all."""
    _, net = _mlp(2, 8, widths=(5, 4))
    x = torch.randn(3, 2, dtype=torch.float64)
    eye = torch.eye(2, dtype=torch.float64)
    res = local_counts(net, x, 0.8, shape=shape, directions=eye)
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        st = (torch.rand(20000, 2, generator=g, dtype=torch.float64) * 2 - 1) * 0.8
        inside = st.norm(dim=1) <= 0.8 if shape == "disc" else st.abs().sum(1) <= 0.8
        pats = net.pattern(x[i] + st[inside])
        assert torch.unique(pats, dim=0).shape[0] == int(res.counts[i])
