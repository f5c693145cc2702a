"""Certificates of ``on_line`` by filtered predicates (``relulab.regions._line_cert``).

References: the exact walk in rational arithmetic (``_ExactWalk``, independent of the float walk and
of the certificate), closed-form roots of one-hidden-layer networks, exact rational evaluation of
patterns on residual networks, and deliberately corrupted interval sequences (a certificate that
cannot reject a wrong answer proves nothing).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from exact_reference import exact_patterns
from strategies import examples, random_module
from test_plane import mlp as random_mlp
from torch import nn

from relulab import PLNet
from relulab.progress import Recorder
from relulab.regions import on_line
from relulab.regions._line_cert import certify_segments
from relulab.regions.line import _dense_patterns, _ExactWalk, _Walk

KW = dict(rtol=1e-13, ttol=1e-14, on_degenerate="raise", max_regions=None, time_limit=None, batch_rows=None,
          memory=2**26)


def mlp(widths, seed=0):
    return PLNet.from_torch(random_mlp(widths, seed=seed).eval(), (widths[0],))


def walk_of(net, a, b):
    w = _Walk(net, **KW).run(a, b)
    seg, t0, t1 = (torch.cat([leaf[k] for leaf in w.leaves]) for k in range(3))
    deltas = torch.cat(w.deltas) if w.deltas else torch.zeros(0, 3, dtype=torch.long)
    return w, seg, t0, t1, deltas


def as_deltas(P):
    d = (P[1:] != P[:-1]).nonzero()
    return torch.stack([d[:, 0] + 1, d[:, 1], (P[1:] - P[:-1]).long()[d[:, 0], d[:, 1]]], 1)


def exact_sequence(net, a, b):
    """The exact walk's (segment, pattern) sequence: the independent reference."""
    from relulab.regions._exact import exact_chain

    ex = _ExactWalk(net, exact_chain(net), "raise", None, None, torch.int8).run(a, b)
    seg = torch.cat([leaf[0] for leaf in ex.leaves])
    deltas = torch.cat(ex.deltas) if ex.deltas else torch.zeros(0, 3, dtype=torch.long)
    return seg, _dense_patterns(ex.base, deltas, ex.n_leaves)


def test_true_sequences_pass_and_corrupted_ones_fail():
    net = mlp([2, 16, 16, 2], seed=0)
    a = torch.tensor([[2.0, -3.0], [-1.0, -1.0]], dtype=torch.float64)
    b = torch.tensor([[3.0, 3.0], [2.0, 0.5]], dtype=torch.float64)
    w, seg, t0, t1, deltas = walk_of(net, a, b)
    out = certify_segments(net, a, b, seg, t0, t1, w.base, deltas)
    assert out.ok is True and out.filtered > 0
    P = _dense_patterns(w.base, deltas, w.n_leaves)
    rejected = 0
    for drop in range(1, w.n_leaves):
        if seg[drop] != seg[drop - 1]:
            continue
        keep = torch.ones(w.n_leaves, dtype=torch.bool)
        keep[drop] = False
        t1m = t1.clone()
        t1m[drop - 1] = t1[drop]
        Pk = P[keep]
        res = certify_segments(net, a, b, seg[keep], t0[keep], t1m[keep], Pk[0], as_deltas(Pk))
        rejected += res.ok is False
        assert res.ok is not True, f"a sequence missing the region at interval {drop} was certified"
    assert rejected > 0
    for row, unit in [(3, 2), (7, 20), (w.n_leaves - 1, 0)]:
        Q = P.clone()
        Q[row, unit] = 1 - Q[row, unit]
        res = certify_segments(net, a, b, seg, t0, t1, Q[0], as_deltas(Q))
        assert res.ok is False, (row, unit)


@settings(max_examples=examples(25), deadline=None)
@given(st.sampled_from([[2, 12, 12, 1], [3, 8, 8, 8, 2], [1, 30, 1], [4, 20, 10, 3]]),
       st.integers(0, 10**6), st.sampled_from([1e-9, 1.0, 1e3]))
def test_certified_sequences_equal_the_exact_walk(widths, seed, scale):
    net = mlp(widths, seed=seed % 97)
    g = torch.Generator().manual_seed(seed)
    d = widths[0]
    centre = torch.randn(2, d, generator=g, dtype=torch.float64)
    a = centre[:1] + scale * torch.randn(1, d, generator=g, dtype=torch.float64)
    b = centre[:1] + scale * torch.randn(1, d, generator=g, dtype=torch.float64)
    res = on_line(net, a, b)
    assert res.certified and res.complete
    seg_e, P_e = exact_sequence(net, a, b)
    assert res.count == P_e.shape[0]
    assert torch.equal(res.patterns.long(), P_e.long())


def test_near_degenerate_kinks_are_certified_or_settled_exactly():
    # kinks at 0, 1e-13 and 3e-13 on a segment of length 2; and two units with one root
    lin = nn.Linear(1, 4).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [1.0], [-1.0], [2.0]], dtype=torch.float64))
        lin.bias.copy_(torch.tensor([0.0, -1e-13, 3e-13, 0.0], dtype=torch.float64))
    net = PLNet.from_torch(nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 1).double()), (1,))
    res = on_line(net, [-1.0], [1.0])
    seg_e, P_e = exact_sequence(net, torch.tensor([[-1.0]], dtype=torch.float64),
                                torch.tensor([[1.0]], dtype=torch.float64))
    assert res.certified and res.count == P_e.shape[0] == 4
    assert torch.equal(res.patterns.long(), P_e.long())


def test_wide_one_hidden_layer_line_is_certified():
    # 1-20000-1: the breakpoints are the roots -b_j / w_j inside the segment (closed form)
    g = torch.Generator().manual_seed(1)
    H = 20000
    w = torch.randn(H, generator=g, dtype=torch.float64)
    c = torch.randn(H, generator=g, dtype=torch.float64)
    lin = nn.Linear(1, H).double()
    with torch.no_grad():
        lin.weight.copy_(w[:, None])
        lin.bias.copy_(c)
    net = PLNet.from_torch(nn.Sequential(lin, nn.ReLU(), nn.Linear(H, 1).double()), (1,))
    res = on_line(net, [-3.0], [3.0])
    roots = -c / w
    inside = roots[(roots > -3) & (roots < 3)]
    assert res.certified and res.count == torch.unique(inside).numel() + 1
    assert torch.allclose(res.breakpoints, (torch.sort(inside).values + 3) / 6, rtol=0, atol=1e-13)


@settings(max_examples=examples(12), deadline=None)
@given(random_module(families=("residual",)), st.integers(0, 2**31 - 1))
def test_residual_networks_are_certified(mod_shape, seed):
    module, shape = mod_shape
    net = PLNet.from_torch(module, shape)
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(shape, generator=g, dtype=torch.float64)
    b = torch.randn(shape, generator=g, dtype=torch.float64)
    res = on_line(net, a, b)
    assert res.complete and res.certified  # small nets: the exact stage is always within reach
    ts = [(i + 0.37) / 16 for i in range(16)]
    k = torch.searchsorted(res.breakpoints.contiguous(), torch.tensor(ts, dtype=torch.float64), right=True)
    assert torch.equal(res.patterns[k].long(), exact_patterns(net, a, b, ts))


def test_progress_reports_regions_and_certification():
    net = mlp([2, 16, 16, 2], seed=3)
    rec = Recorder()
    res = on_line(net, torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64),
                  progress=rec)
    assert rec.calls and rec.calls[-1][2].get("stage") == "certifying"
    found = [c for c in rec.calls if "covered" in c[2]]
    assert found and found[-1][0] == res.count and found[-1][2]["covered"] == pytest.approx(1.0)
    assert all(c[1] is None for c in rec.calls)


def test_exact_stage_without_dense_tables_uses_each_units_cone(monkeypatch):
    """When the dense exact tables are refused (as for large convolutions), the exact stage takes
    each unit's pieces over its dependency cone: kinks 1e-13 apart are still settled exactly, and a
    corrupted sequence is still rejected."""
    import relulab.regions._line_cert as lc

    monkeypatch.setattr(lc, "_MAX_TABLE", 0)
    lin = nn.Linear(1, 4).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [1.0], [-1.0], [2.0]], dtype=torch.float64))
        lin.bias.copy_(torch.tensor([0.0, -1e-13, 3e-13, 0.0], dtype=torch.float64))
    net = PLNet.from_torch(nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 1).double()), (1,))
    a = torch.tensor([[-1.0]], dtype=torch.float64)
    b = torch.tensor([[1.0]], dtype=torch.float64)
    w, seg, t0, t1, deltas = walk_of(net, a, b)
    out = certify_segments(net, a, b, seg, t0, t1, w.base, deltas)
    assert out.ok is True and out.exact > 0, out
    res = on_line(net, [-1.0], [1.0])
    seg_e, P_e = exact_sequence(net, a, b)
    assert res.certified and torch.equal(res.patterns.long(), P_e.long())
    P = _dense_patterns(w.base, deltas, w.n_leaves)
    Q = P.clone()
    Q[1, 1] = 1 - Q[1, 1]
    assert certify_segments(net, a, b, seg, t0, t1, Q[0], as_deltas(Q)).ok is not True


def test_convolution_segment_certified_through_unit_cones(monkeypatch):
    import relulab.regions._line_cert as lc

    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2)).double()
    net = PLNet.from_torch(cnn.eval(), (1, 6, 6))
    g = torch.Generator().manual_seed(1)
    a = torch.rand(1, 6, 6, generator=g, dtype=torch.float64)
    b = torch.rand(1, 6, 6, generator=g, dtype=torch.float64)
    dense = on_line(net, a, b)
    monkeypatch.setattr(lc, "_MAX_TABLE", 0)
    cone = on_line(net, a, b)
    assert dense.certified and cone.certified
    assert torch.equal(dense.patterns, cone.patterns)


def _tied_pool_line_net(seed):
    """Conv1d -> ReLU -> padded Conv1d -> MaxPool1d over all 3 positions: where the first ReLUs are
    all off every position of the padded convolution equals its bias, so the pool's pieces are tied
    (the lowest index wins); the tie breaks where a ReLU turns on, at the same breakpoint."""
    g = torch.Generator().manual_seed(seed)
    m = nn.Sequential(nn.Conv1d(1, 2, 2), nn.ReLU(), nn.Conv1d(2, 1, 3, padding=1), nn.MaxPool1d(3),
                      nn.Flatten(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        m[0].bias.copy_(-m[0].bias.abs() - 0.5)  # all ReLUs off about x = 0
    return PLNet.from_torch(m.eval(), (1, 4))


@pytest.mark.parametrize("cone", [False, True])
def test_ties_that_break_at_a_breakpoint(cone, monkeypatch):
    # several units change at one breakpoint (a ReLU and the max-pool whose tie it breaks, both
    # ways along the segment): the certificate checks every interval's winners, not one flip per
    # breakpoint; reference: exact rational patterns at 1200 points and at the intervals' midpoints
    from fractions import Fraction

    import relulab.regions._line_cert as lc

    if cone:
        monkeypatch.setattr(lc, "_MAX_TABLE", 0)
    net = _tied_pool_line_net(0)
    pool = net.unit_offsets[1]
    g = torch.Generator().manual_seed(100)
    b = 3 * torch.randn(1, 4, generator=g, dtype=torch.float64)
    a = -b
    res = on_line(net, a[0], b[0])
    n = 1200
    S = exact_patterns(net, a[0], b[0], [Fraction(3 * i + 1, 3 * n) for i in range(n)])
    S = S[torch.cat([torch.ones(1, dtype=torch.bool), (S[1:] != S[:-1]).any(1)])]
    assert res.certified and res.count == S.shape[0] == 5 and torch.equal(res.patterns.long(), S)
    ends = [0.0] + res.breakpoints.tolist() + [1.0]
    mids = [(Fraction(x) + Fraction(y)) / 2 for x, y in zip(ends[:-1], ends[1:])]
    assert torch.equal(exact_patterns(net, a[0], b[0], mids), S)
    w, seg, t0, t1, deltas = walk_of(net, a, b)
    assert certify_segments(net, a, b, seg, t0, t1, w.base, deltas).ok is True
    P = _dense_patterns(w.base, deltas, w.n_leaves).long()
    assert torch.equal(P, S)
    both = ((P[1:] != P[:-1]).sum(1) > 1).nonzero()[:, 0] + 1
    assert both.numel() == 2 and bool((P[both, pool] != P[both - 1, pool]).all())
    tied = (P[:, :pool] == 0).all(1).nonzero()[:, 0]  # all ReLUs off: the pool's pieces are one
    assert tied.numel() == 1 and P[tied, pool] == 0
    wrong = []
    for r in both.tolist():
        for row, src in ((r, r - 1), (r - 1, r)):  # the pool's tie broken too late, or too early
            Q = P.clone()
            Q[row, pool] = P[src, pool]
            wrong.append(Q)
    for k in range(1, 3):  # a higher-index piece of the tie
        Q = P.clone()
        Q[tied, pool] = k
        wrong.append(Q)
    for Q in wrong:
        assert certify_segments(net, a, b, seg, t0, t1, Q[0], as_deltas(Q)).ok is False


@pytest.mark.parametrize("c", [(1.0, 2.0), (2.0, 1.0), (1.0, 1.0)])
def test_identical_pool_pieces_and_their_break(c):
    # max(c0 h + 1/4, c1 h + 1/4), h = relu(x) on [-1, 1]: one function up to x = 0 (piece 0 wins),
    # then the steeper piece wins (the lower index if the same); a wrong choice on either side is
    # rejected
    m = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 2), nn.Unflatten(1, (1, 2)), nn.MaxPool1d(2),
                      nn.Flatten()).double()
    with torch.no_grad():
        m[0].weight.fill_(1.0)
        m[0].bias.fill_(0.0)
        m[2].weight.copy_(torch.tensor([[c[0]], [c[1]]], dtype=torch.float64))
        m[2].bias.fill_(0.25)
    net = PLNet.from_torch(m.eval(), (1,))
    a = torch.tensor([[-1.0]], dtype=torch.float64)
    b = torch.tensor([[1.0]], dtype=torch.float64)
    after = 1 if c[1] > c[0] else 0
    res = on_line(net, a[0], b[0])
    assert res.certified and res.count == 2 and res.breakpoints.tolist() == [0.5]
    assert res.patterns.tolist() == [[0, 0], [1, after]]
    w, seg, t0, t1, deltas = walk_of(net, a, b)
    assert certify_segments(net, a, b, seg, t0, t1, w.base, deltas).ok is True
    P = _dense_patterns(w.base, deltas, w.n_leaves).long()
    for row in (0, 1):
        Q = P.clone()
        Q[row, 1] = 1 - Q[row, 1]
        assert certify_segments(net, a, b, seg, t0, t1, Q[0], as_deltas(Q)).ok is False, (row, Q)
