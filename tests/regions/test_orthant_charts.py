"""The facet engine's orthant charts (:class:`relulab.regions._enum_lp.OrthantCharts`): all of R^d
as the 2^d orthants of d first-layer boundaries, one chart per region.

References: the charts' float64 rows against their exact rational rows (every coefficient within
its proven error bound), two exact descriptions of a chart against each other, chart points
against the orthant they must lie in (rational arithmetic), and the engine's regions against the
pyramid charts and brute force (HiGHS per pattern) on random, degenerate and badly scaled nets."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import relulab.regions._enum_lp as E
from relulab.regions import full_space
from relulab.regions._enum_lp import orthant_charts

from test_space_facet import brute_force, check_witnesses, mlp, pattern_set, plnet


def _charts(net):
    return orthant_charts(net, net.input_dim, torch.float64, "cpu", 1.0)


def _first_layer(d, m, seed, scale=1.0, bias=True, integer=False):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, d, generator=g, dtype=torch.float64)
    b = torch.randn(m, generator=g, dtype=torch.float64) if bias else torch.zeros(m, dtype=torch.float64)
    if integer:
        W, b = W.mul(2).round(), b.mul(2).round()
    lin = nn.Linear(d, m).double()
    with torch.no_grad():
        lin.weight.copy_(W * scale)
        lin.bias.copy_(b * scale)
    return lin


def _relu_net(lin, tail=(1,), seed=0, act=nn.ReLU, rows_scale=1.0):
    """``lin``, ``act``, then dense layers of widths ``tail``; with ``rows_scale``, the first layer
    times it and the second layer's weights divided by it (the same function, ReLU being positively
    homogeneous, with first-layer rows of another scale)."""
    g = torch.Generator().manual_seed(seed + 1)
    layers, w = [lin, act()], lin.out_features
    for i, v in enumerate(tail):
        nxt = nn.Linear(w, v).double()
        with torch.no_grad():
            nxt.weight.copy_(torch.randn(v, w, generator=g, dtype=torch.float64) / math.sqrt(w))
            nxt.bias.copy_(torch.randn(v, generator=g, dtype=torch.float64))
        layers.append(nxt)
        if i < len(tail) - 1:
            layers.append(act())
        w = v
    with torch.no_grad():
        layers[0].weight.mul_(rows_scale)
        layers[0].bias.mul_(rows_scale)
        layers[2].weight.div_(rows_scale)
    return plnet(nn.Sequential(*layers).eval(), lin.in_features)


def _frac_row(t):
    return [Fraction(float(v)) for v in t]


# ------------------------------------------------------------------------------- the charts alone
@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 6), extra=st.integers(0, 3), seed=st.integers(0, 10**6),
       scale=st.sampled_from([1.0, 1e-150, 1e150, 3e-8]), rscale=st.sampled_from([1.0, 1e-200, 1e200, 1e-310]))
def test_float_rows_lie_within_their_error_bounds_of_the_exact_rows(d, extra, seed, scale, rscale):
    """For random rows of x and random charts: ``|float row - exact row| <= error`` for every
    coefficient (the exact row from the chart's rationals), for the orthant and the pyramid charts,
    rows of size 1e-310 (products that underflow) to 1e200; and the two exact descriptions of an
    orthant chart (integer rows, Fraction maps ``Z``, ``S``) agree."""
    net = _relu_net(_first_layer(d, d + extra, seed, scale))
    ch = _charts(net)
    assert ch is not None and ch.n == 2 ** d
    g = torch.Generator().manual_seed(seed)
    R = torch.randn(5, 3, d + 1, generator=g, dtype=torch.float64) * rscale
    R[0, 0, 1:] = 0.0  # a constant row
    ER = torch.zeros_like(R)
    k = torch.randint(0, ch.n, (5,), generator=g)
    pyr = E.Charts(d, torch.float64, "cpu", None, 1.0)
    for charts in (ch, pyr):
        kc = k % charts.n
        F, EF = charts.to_chart(R, ER, kc)
        for i in range(5):
            kk = int(kc[i])
            Z, S, rows = charts.exact(kk)
            for j in range(3):
                v = _frac_row(R[i, j])
                exact = [v[0] * S[c] + sum(v[1 + t] * Z[t][c] for t in range(d)) for c in range(d + 1)]
                if charts is ch:
                    den = math.lcm(*[x.denominator for x in v])
                    ints = ch.exact_row([int(x * den) for x in v], kk)
                    assert [Fraction(x, den * ch.D) for x in ints] == exact
                for c in range(d + 1):
                    assert abs(Fraction(float(F[i, j, c])) - exact[c]) <= Fraction(float(EF[i, j, c]))


@settings(max_examples=20, deadline=None)
@given(d=st.integers(1, 6), extra=st.integers(0, 3), seed=st.integers(0, 10**6),
       integer=st.booleans(), bias=st.booleans())
def test_chart_facets_are_the_units_boundaries_and_points_lie_in_their_orthant(d, extra, seed, integer, bias):
    """In chart ``k`` the chosen unit ``j``'s row ``p_b - p_a`` is exactly ``sigma_j c_j y_j`` with
    ``c_j > 0`` (its boundary is the facet ``y_j = 0``), the winners the chart gives are the ones
    the network computes at the chart's points, and those points lie strictly in the orthant."""
    lin = _first_layer(d, d + extra, seed, integer=integer, bias=bias)
    net = _relu_net(lin)
    ch = _charts(net)
    if ch is None:  # integer weights may leave fewer than d independent rows
        W = lin.weight.detach()
        assert torch.linalg.matrix_rank(W) < d or len(set(map(tuple, W.tolist()))) < d
        return
    W, b = lin.weight.detach(), lin.bias.detach()
    g = torch.Generator().manual_seed(seed)
    for kk in torch.randint(0, ch.n, (6,), generator=g).tolist():
        sg = [-1 if (kk >> j) & 1 else 1 for j in range(d)]
        for j, u in enumerate(ch.units.tolist()):
            v = [Fraction(float(b[u]))] + _frac_row(W[u])
            den = math.lcm(*[x.denominator for x in v])
            r = ch.exact_row([int(x * den) for x in v], kk)
            assert r[0] == 0 and all(r[1 + t] == 0 for t in range(d) if t != j)
            assert r[1 + j] * sg[j] > 0
        r = 0.1 + torch.rand(4, d + 1, generator=g, dtype=torch.float64)
        y = (r / r.sum(1, keepdim=True))[:, :d]  # well inside the simplex (s = r_d / sum r)
        x = ch.to_x(torch.full((4,), kk), y)
        pat = net.pattern(x)
        assert torch.equal(pat[:, ch.units].long(), ch.winners(torch.full((4,), kk)).long())
        for p in x:
            xf = _frac_row(p)
            for j, u in enumerate(ch.units.tolist()):
                h = Fraction(float(b[u])) + sum(Fraction(float(w)) * xv for w, xv in zip(W[u], xf))
                assert h * sg[j] > 0


def test_charts_apply_only_where_they_are_sound():
    """Pyramid charts where orthants do not apply: fewer first-layer units than d, rows of rank
    below d, rows too ill-conditioned for charts, a first layer of maxout units, a box."""
    assert _charts(_relu_net(_first_layer(5, 4, 0))) is None
    lin = _first_layer(4, 6, 1)
    with torch.no_grad():
        lin.weight[:, 3] = lin.weight[:, 0] + lin.weight[:, 1]  # rank 3
    assert _charts(_relu_net(lin)) is None
    lin = _first_layer(3, 3, 2)
    with torch.no_grad():
        lin.weight[2] = lin.weight[1] + 1e-9 * lin.weight[0]
    assert _charts(_relu_net(lin)) is None
    from relulab.nn import Maxout

    net = plnet(nn.Sequential(Maxout(3, 5, 3), nn.Linear(5, 1)).double().eval(), 3)
    assert _charts(net) is None
    # the exact solve behind the charts: singular systems refused, regular ones solved exactly
    F = Fraction
    assert E._solve_fractions([[F(1), F(2)], [F(2), F(4)]], [[F(1)], [F(2)]]) is None
    assert E._solve_fractions([[F(2), F(1)], [F(1), F(3)]], [[F(1), F(0)], [F(0), F(1)]]) == \
        [[F(3, 5), F(-1, 5)], [F(-1, 5), F(2, 5)]]
    res = full_space(_relu_net(_first_layer(3, 5, 3)), box=(-1.0, 1.0), method="facet")
    assert res.stats["charts"] != "orthants"
    res = full_space(_relu_net(_first_layer(3, 5, 3)), method="facet")
    assert res.stats["charts"] == "orthants" and res.certified


# ------------------------------------------------------------------------------- the engine
def _both(net, monkeypatch):
    res = full_space(net, method="facet")
    monkeypatch.setattr(E, "USE_ORTHANTS", False)
    ref = full_space(net, method="facet")
    monkeypatch.setattr(E, "USE_ORTHANTS", True)
    return res, ref


@settings(max_examples=12, deadline=None)
@given(d=st.integers(2, 4), w1=st.integers(2, 6), w2=st.integers(0, 3), seed=st.integers(0, 10**6),
       scale=st.sampled_from([1.0, 1e-3, 1e4]), act=st.sampled_from(["relu", "leaky", "abs"]))
def test_random_nets_match_pyramids_and_brute_force(d, w1, w2, seed, scale, act):
    from relulab.nn import Abs

    acts = {"relu": nn.ReLU, "leaky": lambda: nn.LeakyReLU(0.2), "abs": Abs}
    widths = [d, w1] + ([w2] if w2 else []) + [1]
    module = mlp(widths, seed=seed, act=acts[act])
    with torch.no_grad():
        module[0].bias.mul_(scale)
    net = plnet(module, d)
    with pytest.MonkeyPatch.context() as mp:  # hypothesis runs the examples inside one test call
        res, ref = _both(net, mp)
    assert res.stats["charts"] == ("orthants" if w1 >= d else "pyramids")
    assert res.certified and ref.certified
    assert pattern_set(res.patterns) == pattern_set(ref.patterns)
    if res.count <= 200 and net.n_units <= 10:
        assert pattern_set(res.patterns) == brute_force(net)
    check_witnesses(net, res)


@pytest.mark.parametrize("case", ["bias_free", "integer", "duplicate_units", "parallel_units", "dead_unit",
                                  "tiny_rows", "huge_rows", "small_geometry", "large_geometry", "thin_orthants"])
def test_degenerate_first_layers(case, monkeypatch):
    """Concurrent boundaries through the apex, integer weights with many exact coincidences,
    duplicated and parallel units (among the chart's units or not), a dead unit, two chart units 1e-5
    from parallel (orthants 1e-5 thin, the conditioning allowed), first-layer rows
    of scale 1e-150 and 1e150 (the same function), the whole arrangement at scale 1e-6 and 1e6:
    the same certified regions as the pyramid charts, and brute force."""
    d, m = 4, 4 if case == "thin_orthants" else 6
    geom = {"small_geometry": 1e6, "large_geometry": 1e-6}.get(case, 1.0)
    lin = _first_layer(d, m, 7, bias=case != "bias_free", integer=case == "integer", scale=geom)
    if geom != 1.0:
        with torch.no_grad():
            lin.bias.div_(geom)
    with torch.no_grad():
        if case == "duplicate_units":
            lin.weight[4], lin.bias[4] = lin.weight[0], lin.bias[0]
        if case == "parallel_units":
            lin.weight[5], lin.bias[5] = 2 * lin.weight[1], lin.bias[1] - 0.5
        if case == "thin_orthants":
            lin.weight[1] = lin.weight[0] + 1e-5 * lin.weight[1]
        if case == "dead_unit":
            lin.weight[3].zero_()
            lin.bias[3] = -1.0
    net = _relu_net(lin, tail=(3, 1), seed=3, rows_scale={"tiny_rows": 1e-150, "huge_rows": 1e150}.get(case, 1.0))
    res, ref = _both(net, monkeypatch)
    assert res.stats["charts"] == "orthants"
    assert res.certified and ref.certified
    assert pattern_set(res.patterns) == pattern_set(ref.patterns)
    if case not in ("tiny_rows", "huge_rows"):
        assert pattern_set(res.patterns) == brute_force(net)
    check_witnesses(net, res)


@pytest.mark.parametrize("d,m", [(5, 7), (8, 9), (10, 12)])
def test_one_hidden_layer_orthants_match_zaslavsky(d, m):
    net = plnet(mlp([d, m, 1], seed=d), d)
    res = full_space(net, method="facet")
    assert res.stats["charts"] == "orthants" and res.certified
    assert res.count == sum(math.comb(m, i) for i in range(d + 1))
    check_witnesses(net, res)


def test_workers_split_the_orthant_charts_between_processes():
    """``method="facet", workers=2``: the charts dealt to two local processes give the same certified
    regions and witnesses as one process; ``max_regions`` bounds the whole; without orthant charts
    (fewer first-layer units than d) the one-process engine runs; bad values are refused."""
    from relulab.core.errors import InvalidInputError

    net = plnet(mlp([5, 7, 4, 1], seed=2), 5)
    one = full_space(net, method="facet")
    two = full_space(net, method="facet", workers=2)
    assert two.certified and two.complete and two.stats["workers"] == 2 and two.stats["charts"] == "orthants"
    assert two.count == one.count and pattern_set(two.patterns) == pattern_set(one.patterns)
    assert two.stats["lps"] == one.stats["lps"]
    check_witnesses(net, two)
    part = full_space(net, method="facet", workers=2, max_regions=30)
    assert part.count == 30 and not part.complete and part.stopped_by == "max_regions"
    assert pattern_set(part.patterns) <= pattern_set(one.patterns)
    narrow = plnet(mlp([5, 4, 3, 1], seed=2), 5)
    res = full_space(narrow, method="facet", workers=2)
    assert res.stats["charts"] == "pyramids" and "workers" not in res.stats and res.certified
    with pytest.raises(InvalidInputError, match="workers"):
        full_space(net, method="facet", workers=0)


def test_workers_alone_deal_the_charts_where_auto_runs_the_facet_engine():
    """``workers`` without ``split`` and ``method="auto"``: over R^d at d >= FACET_MIN_D the facet
    engine's charts are dealt out (the one-process result, a FullSpaceRegions); in a box, or without
    orthant charts, the domain is split into cells and merged (a SplitEnumeration) with the same
    count."""
    from relulab.regions import SplitEnumeration

    net = plnet(mlp([5, 7, 4, 1], seed=2), 5)
    one = full_space(net)
    two = full_space(net, workers=2)
    assert type(two) is type(one) and two.stats["workers"] == 2 and two.stats["executor"] == "local"
    assert two.certified and two.count == one.count and pattern_set(two.patterns) == pattern_set(one.patterns)
    check_witnesses(net, two)
    box = (-1.0, 1.0)
    cells = full_space(net, box, workers=2)
    assert isinstance(cells, SplitEnumeration) and cells.count == full_space(net, box).count
    narrow = plnet(mlp([5, 4, 3, 1], seed=2), 5)
    res = full_space(narrow, workers=2)
    ref = full_space(narrow)
    assert isinstance(res, SplitEnumeration) and res.executor == "local" and res.count == ref.count
    assert pattern_set(res.patterns) == pattern_set(ref.patterns)
    from relulab.core.errors import InvalidInputError

    for kw, match in (({"ray": 3}, "ray must be"), ({"ray": "  "}, "ray must be"), ({"workers": 0}, "workers must be"),
                      ({"workers": True}, "workers must be")):
        with pytest.raises(InvalidInputError, match=match):
            full_space(net, **kw)


def test_ray_deals_the_charts_to_the_cluster(ray_local):
    """``ray=True`` without ``split``: the orthant charts run as tasks on a real local Ray instance
    (one share per CPU) and give the one-process regions and certificate."""
    net = plnet(mlp([6, 8, 5, 1], seed=4), 6)
    one = full_space(net)
    res = full_space(net, ray=True)
    assert res.stats["executor"] == "ray" and res.stats["workers"] == 2 and res.stats["charts"] == "orthants"
    assert res.certified and res.count == one.count and pattern_set(res.patterns) == pattern_set(one.patterns)
    check_witnesses(net, res)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 9), st.integers(0, 2**31 - 1), st.sampled_from([0.0, 1e-9, 1e-5]))
def test_pivoted_rows_are_a_column_pivoted_qr(m, d, seed, near):
    """The chart units' choice (NumPy Gram-Schmidt with pivoting): each pick has the largest residual
    of the rows left (against projections computed afresh by a dense QR), the reported norms are
    the |R_jj| of an unpivoted QR of the picked rows, and the refusal below ORTHANT_MIN_RCOND agrees
    with LAPACK's column-pivoted QR (scipy) on the same rows, near-parallel rows included."""
    import numpy as np
    import scipy.linalg

    rng = np.random.default_rng(seed)
    G = rng.standard_normal((m, d))
    if near and m > 1:
        G[1] = G[0] + near * rng.standard_normal(d)
    G /= np.linalg.norm(G, axis=1, keepdims=True)
    k = min(m, d)
    picks, diag = E._pivoted_rows(G, k)
    assert len(set(picks.tolist())) == picks.size == diag.size
    R = np.linalg.qr(G[picks].T, mode="r")
    assert np.allclose(np.abs(np.diag(R)), diag, rtol=1e-7, atol=1e-13)
    for i in range(picks.size):
        Q = np.linalg.qr(G[picks[:i]].T)[0] if i else np.zeros((d, 0))
        res = np.linalg.norm(G - (G @ Q) @ Q.T, axis=1)
        res[picks[:i]] = -1.0
        assert res[picks[i]] >= res.max() - 1e-9
    _, Rq, _ = scipy.linalg.qr(G.T, pivoting=True, mode="economic")
    ref = np.abs(np.diag(Rq))
    mine_refuses = diag.size < k or diag[k - 1] < E.ORTHANT_MIN_RCOND * diag[0]
    lapack_refuses = ref.size < k or ref[k - 1] < E.ORTHANT_MIN_RCOND * ref[0]
    if abs(ref[k - 1] / ref[0] - E.ORTHANT_MIN_RCOND) > 1e-3 * E.ORTHANT_MIN_RCOND:  # not at the threshold
        assert mine_refuses == lapack_refuses
