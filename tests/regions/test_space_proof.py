"""The vertex engine's ``certified`` is a proof: counts on near-degenerate and huge inputs are either
certified equal to an exact-arithmetic reference, or not certified (saying why), or raised.

References (no code shared with the engines): the exact count of a line arrangement in R^2 from
rational arithmetic on the float64 weights (Zaslavsky: ``1 + lines + sum over points (lines through
it - 1)``, distinct lines and points found with ``fractions.Fraction``), hand counts, and the count of
all of R^2 for boxes that contain every region.
"""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import relulab
from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.regions import full_space
from relulab.regions import space as space_mod


def plnet(module, d):
    return relulab.PLNet.from_torch(module, (d,))


def one_layer(W, b, out=None):
    W = torch.as_tensor(W, dtype=torch.float64)
    lin = nn.Linear(W.shape[1], W.shape[0]).double()
    head = nn.Linear(W.shape[0], 1).double()
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(torch.as_tensor(b, dtype=torch.float64))
        head.weight.copy_(torch.as_tensor(out if out is not None else [[1.0 + i for i in range(W.shape[0])]],
                                          dtype=torch.float64))
    return plnet(nn.Sequential(lin, nn.ReLU(), head), W.shape[1])


def exact_line_regions(W, b) -> int:
    """Regions of the arrangement of the lines ``w . x + b = 0`` in R^2, in exact rationals."""
    lines = set()
    for (w1, w2), c in zip(W, b):
        w1, w2, c = Fr(w1), Fr(w2), Fr(c)
        if w1 == 0 and w2 == 0:
            continue  # no boundary (a constant pre-activation)
        s = w1 if w1 != 0 else w2  # normalise: first nonzero coefficient 1
        lines.add((w1 / s, w2 / s, c / s))
    lines = list(lines)
    points: dict = {}
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            a1, b1, c1 = lines[i]
            a2, b2, c2 = lines[j]
            det = a1 * b2 - a2 * b1
            if det == 0:
                continue
            p = ((b1 * c2 - b2 * c1) / det, (a2 * c1 - a1 * c2) / det)
            points.setdefault(p, set()).update((i, j))
    return 1 + len(lines) + sum(len(s) - 1 for s in points.values())


def parallel_walls(gap):
    return one_layer([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [0.0, -gap, 0.0], out=[[1.0, -2.0, 1.0]])


@pytest.mark.parametrize("gap", [1e-6, 1e-10, 1e-12, 1e-14, 1e-300, 0.0])
@pytest.mark.parametrize("box", [None, (-1.0, 1.0), (-1e5, 1e5)])
def test_parallel_walls_are_certified_exactly_or_raised(gap, box):
    """Two parallel lines ``gap`` apart and a crossing line: 6 regions (4 when they coincide). Before,
    walls 1e-10 apart were counted without a proof; parallel walls were never certified."""
    W, b = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [0.0, -gap, 0.0]
    truth = exact_line_regions(W, b)
    assert truth == (6 if gap > 0 else 4)
    try:
        res = full_space(parallel_walls(gap), box=box)
    except DegenerateGeometryError:
        return
    assert res.count == truth or not res.certified
    if res.certified:
        assert res.stats["certificate"].startswith("proven")
    else:
        assert res.stats["certificate"].startswith("not proven")
    if box is None and gap != 1e-300:
        assert res.certified and res.count == truth


def test_huge_boxes_are_certified_equal_to_all_of_space_or_say_not():
    """A 2-16-16-1 net whose regions all meet [-1e3, 1e3]^2: boxes of extent 1e6 .. 1e308 have exactly
    the regions of R^2 (the proven count there); each box count is certified equal to it (1e308: the
    facet engine cannot prove that box, R^d's proven regions with exactly verified witnesses in the
    box do)."""
    net = plnet(relulab.build("mlp:2-16-16-1:relu", seed=0), 2)
    full = full_space(net)
    assert full.certified and full.complete and full.count > 500
    assert full_space(net, box=(-1e3, 1e3)).count == full.count
    proven = 0
    for e in (6, 9, 12, 308):
        try:
            r = full_space(net, box=(-(10.0**e), 10.0**e))
        except DegenerateGeometryError:
            continue
        assert r.count == full.count or not r.certified, e
        proven += bool(r.certified)
    assert proven == 4


def test_a_wrong_vertex_result_is_caught_not_certified(monkeypatch):
    """If the vertex engine's combinatorics lose a region (as an estimated tolerance can), the proof
    finds the missing pattern and raises; before, such a count was returned with certified=True."""
    net = plnet(relulab.build("mlp:2-8-8-1:relu", seed=3), 2)
    good = full_space(net)
    assert good.certified
    finish = space_mod._Engine.finish

    def lossy(self, *a, **k):
        res = finish(self, *a, **k)
        res.patterns, res.interior_points = res.patterns[1:], res.interior_points[1:]
        res.count -= 1
        return res

    monkeypatch.setattr(space_mod._Engine, "finish", lossy)
    with pytest.raises(DegenerateGeometryError, match="proven"):
        full_space(net, method="vertex")
    # the default falls back to the proven facet engine: the right count, proven
    res = full_space(net)
    assert res.certified and res.count == good.count and "proven" in res.stats["vertex_fallback"]
    # the same with the proof from exact vertices out of reach: the facet engine's enumeration catches it
    monkeypatch.setattr(space_mod._Engine, "emit", _emit_without_cells)
    with pytest.raises(DegenerateGeometryError, match="proven enumeration"):
        full_space(net, method="vertex")
    with pytest.raises(DegenerateGeometryError):
        full_space(net, neighbours=True)  # the facet engine has no neighbour graph to fall back on


_emit = space_mod._Engine.emit


_decided = space_mod._Engine._decided


def _decided_near_zero(self, g, tol):
    self.near_zero += 1  # as if a sign had been taken for an exact zero
    return _decided(self, g, tol)


def _emit_without_cells(self, b):
    self.cells = None  # the proof from the engine's own cells is not available
    return _emit(self, b)


def test_certificate_budget_and_time_limit_say_not_proven(monkeypatch):
    net = plnet(relulab.build("mlp:2-8-8-1:relu", seed=1), 2)
    monkeypatch.setattr(space_mod, "PROOF_WORK", 10)
    assert full_space(net).certified  # the proof from exact vertices has no budget but memory
    monkeypatch.setattr(space_mod._Engine, "emit", _emit_without_cells)
    r = full_space(net)
    assert r.complete and not r.certified and "proof budget" in r.stats["certificate"]
    forced = full_space(net, certify=True)
    assert forced.certified and forced.stats["certificate"].startswith("proven")
    assert forced.count == r.count
    # a near-degenerate input over the budget raises instead (naming the budget)
    monkeypatch.setattr(space_mod._Engine, "_decided", _decided_near_zero)
    with pytest.raises(DegenerateGeometryError, match="PROOF_WORK"):
        full_space(net)
    monkeypatch.undo()
    skipped = full_space(net, certify=False)
    assert skipped.count == r.count and not skipped.certified and "certify=False" in skipped.stats["certificate"]
    with pytest.raises(InvalidInputError, match="certify"):
        full_space(net, certify="yes")
    r = full_space(net, max_regions=3)
    assert not r.complete and not r.certified and "incomplete" in r.stats["certificate"]


@st.composite
def near_degenerate_lines(draw):
    """Up to 7 lines with small dyadic coefficients, some parallel copies shifted by a tiny gap,
    some repeated, some through a common point: every kind of near and exact degeneracy."""
    n = draw(st.integers(2, 5))
    coef = st.integers(-4, 4)
    W = [[draw(coef) / 2, draw(coef) / 2] for _ in range(n)]
    b = [draw(st.integers(-4, 4)) / 4 for _ in range(n)]
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, n - 1))
        gap = draw(st.sampled_from([0.0, 1e-15, 1e-12, 1e-10, 2.0**-40, 1e-6]))
        W.append(list(W[i]))
        b.append(b[i] + gap)
    return W, b


@settings(max_examples=25)
@given(near_degenerate_lines(), st.sampled_from([None, (-2.0, 2.0), (-1e9, 1e9)]))
def test_line_arrangements_certified_equal_to_exact_count(lines, box):
    """One hidden layer in R^2: its regions are those of its line arrangement (generic output
    weights). Each certified count equals the exact rational count; nothing else may claim a proof."""
    W, b = lines
    net = one_layer(W, b, out=[[1.0 + 0.37 * i for i in range(len(W))]])
    truth = exact_line_regions(W, b)
    try:
        res = full_space(net, box=box)
    except DegenerateGeometryError:
        return
    # a complete count on a near-degenerate input is proven, or raised: never returned unproven
    assert res.complete and res.certified, res.stats
    if res.certified and box != (-2.0, 2.0):
        # every intersection point and a point of every line lie within |x| <= 16, so the box of 1e9
        # meets every region of R^2
        assert res.count == truth, (W, b, res.stats)
    if res.certified and box == (-2.0, 2.0):
        assert res.count <= truth


@pytest.mark.parametrize("gap", [1e-15, 2e-15, 1e-14, 1e-13, 1e-12])
@pytest.mark.parametrize("offset", [0.5, -0.5, 0.25])
def test_parallel_walls_off_the_origin_are_proven_exactly(gap, offset, monkeypatch):
    """Lines ``y = -offset`` and ``y = -offset - gap`` and a crossing line: 6 regions. The vertex engine
    merges the sliver (4) and, 1e-12 apart, raises; in the pyramid charts the facet engine's
    multipliers cannot prove the sliver empty or not (the two walls meet on the compactification's
    outer facet). Before, the result was 4 with certified=False (or raised); now the exact LP settles
    it and the facet engine's proven count is returned. The orthant charts (one wall is a chart
    facet) prove the same count."""
    import relulab.regions._enum_lp as E

    W, b = [[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], [offset, offset + gap, 0.0]
    truth = exact_line_regions(W, b)
    assert truth == 6
    net = one_layer(W, b, out=[[1.0 + 0.37 * i for i in range(3)]])
    res = full_space(net)
    assert res.certified and res.complete and res.count == truth, res.stats
    assert res.stats["method"] == "facet" and "vertex_fallback" in res.stats
    assert res.stats["charts"] == "orthants"
    assert full_space(net, method="facet").count == truth
    monkeypatch.setattr(E, "USE_ORTHANTS", False)
    res = full_space(net)
    assert res.certified and res.complete and res.count == truth and res.stats["charts"] == "pyramids"
    assert res.stats.get("exact_lps", 0) > 0
    assert full_space(net, method="facet").count == truth
    with pytest.raises(DegenerateGeometryError):
        full_space(net, method="vertex")  # named explicitly: its proof refutes it, no fallback


def test_walls_1e12_apart_through_zero_rows_raise_degenerate_not_an_internal_error():
    """Three copies of one line (one 1e-12 away) and two zero rows: the vertex engine's ambiguity
    report once indexed a (vertices, units) table by its row alone and failed with a ValueError."""
    W = [[0.0, 0.5], [0.0, 0.5], [0.0, 0.5], [0.0, 0.0], [0.0, 0.0], [0.0, 0.5]]
    b = [0.0, 0.25, 0.25, 0.0, 0.0, 1e-12]
    net = one_layer(W, b, out=[[1.0 + 0.37 * i for i in range(len(W))]])
    try:
        res = full_space(net)
    except DegenerateGeometryError as e:
        assert "from a vertex" in str(e) or "degenerate" in str(e)
        return
    assert not res.certified or res.count == exact_line_regions(W, b)


# ------------------------------------------------------------------ linear regions, settled exactly
def exact_linear_count(net, patterns, edges) -> int:
    """Linear regions from gradients computed in Fractions from the weights (a ReLU MLP): classes of
    the facet graph restricted to pairs with exactly equal gradients."""
    lins = [m for m in net.to_torch().modules() if isinstance(m, nn.Linear)]
    Ws = [[[Fr(v) for v in row] for row in lin.weight.tolist()] for lin in lins]
    widths = [len(W) for W in Ws[:-1]]

    def grad(p):
        rows = [list(r) for r in Ws[-1]]
        off = sum(widths)
        for layer in range(len(widths) - 1, -1, -1):
            off -= widths[layer]
            rows = [[v if p[off + i] == 1 else Fr(0) for i, v in enumerate(r)] for r in rows]
            W = Ws[layer]
            rows = [[sum(r[i] * W[i][j] for i in range(len(r))) for j in range(len(W[0]))] for r in rows]
        return tuple(map(tuple, rows))

    g = [grad(p) for p in patterns.tolist()]
    parent = list(range(len(g)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in edges.tolist():
        if g[a] == g[b]:
            parent[find(a)] = find(b)
    return len({find(a) for a in range(len(g))})


def dead_output_net(seed, d=3, dead=4, tiny=None):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1)).double()
    with torch.no_grad():
        m[4].weight[0, :dead] = 0.0
        if tiny is not None:
            m[4].weight[0, dead] = tiny
    return plnet(m, d)


def test_dead_output_weights_give_a_certified_exact_linear_count():
    """A 3-8-8-1 net with four dead output weights: identical maps computed through different
    patterns differ by rounding, so the rounding bound cannot settle them (before: 722 regions,
    298 linear regions, certified=False); exact Jacobians settle every one."""
    net = dead_output_net(1)
    res = full_space(net, neighbours=True)
    assert res.complete and res.certified, res.stats.get("certificate")
    exact = exact_linear_count(net, res.patterns, res.neighbours)
    assert res.linear_count == exact < res.count


def test_exact_budget_leaves_the_linear_count_uncertified(monkeypatch):
    from relulab.regions import _jacobians

    net = dead_output_net(1)
    monkeypatch.setattr(_jacobians, "EXACT_WORK", 10)
    monkeypatch.setattr(_jacobians.equal_gradients, "__defaults__", (10,))
    res = full_space(net)
    assert res.complete and not res.certified and "not settled" in res.stats["certificate"]


@settings(max_examples=8)
@given(st.integers(0, 10**6), st.integers(0, 7), st.sampled_from([None, 1e-12, 1e-300]))
def test_linear_counts_certified_equal_to_exact_rationals(seed, dead, tiny):
    net = dead_output_net(seed, d=2, dead=dead, tiny=tiny if dead < 8 else None)
    res = full_space(net, neighbours=True)
    if res.certified:
        assert res.linear_count == exact_linear_count(net, res.patterns, res.neighbours)


def test_every_engine_says_what_its_certificate_is():
    net = plnet(relulab.build("mlp:2-6-6-1:relu", seed=2), 2)
    for method in ("vertex", "facet"):
        r = full_space(net, method=method)
        assert r.certified and r.stats["certificate"].startswith("proven"), method
        r = full_space(net, method=method, max_regions=2)
        assert not r.certified and r.stats["certificate"].startswith("not proven"), method


def test_box_proven_through_all_of_space_only_when_it_meets_every_region(monkeypatch):
    """Where the facet engine cannot prove a box, the box's count is proven through R^d only if
    the box meets every region of R^d; a box that misses some is raised (before: returned with
    certified=False), or returned unproven when the proof is skipped."""
    net = plnet(relulab.build("mlp:2-8-8-1:relu", seed=0), 2)
    real = space_mod._facet

    def no_boxes(net_, box, *a):
        if box is not None:
            raise DegenerateGeometryError("(test) no proof for boxes")
        return real(net_, box, *a)

    monkeypatch.setattr(space_mod, "_facet", no_boxes)
    full = full_space(net)
    big = full_space(net, box=(-1e200, 1e200))
    assert big.certified and big.count == full.count and "witness" in big.stats["certificate"]
    with pytest.raises(DegenerateGeometryError, match="no proof for boxes"):
        full_space(net, box=(-0.01, 0.01))
    small = full_space(net, box=(-0.01, 0.01), certify=False)
    assert small.count < full.count and not small.certified and "certify=False" in small.stats["certificate"]


def test_linear_count_says_whether_its_adjacency_is_proven():
    net = plnet(relulab.build("mlp:2-8-8-1:relu", seed=1), 2)
    r = full_space(net)
    assert r.certified and r.linear_count is not None
    assert r.linear_certified is True and r.stats["linear_certificate"].startswith("proven")
    assert r.to_dict(summary=True)["linear_certified"] is True
    facet = full_space(net, method="facet")
    assert facet.linear_count is None and facet.linear_certified is None
    # proven by the facet engine's enumeration instead (a box): patterns proven, adjacency not
    b = full_space(net, box=(-1.0, 1.0))
    assert b.certified and b.linear_certified is False and "share a facet" in b.stats["linear_certificate"]


# ------------------------------------------------------------------ the proof from exact vertices
@pytest.mark.parametrize("spec,d,seed", [("mlp:2-4-4-1:relu", 2, 21), ("mlp:2-8-8-1:relu", 2, 3),
                                         ("mlp:3-8-8-1:relu", 3, 1)])
def test_vertex_proof_equals_the_facet_engine_and_lp_adjacency(spec, d, seed):
    """Generic nets are proven from the vertex engine's own cells (no second enumeration): the same
    patterns as the facet engine's proven enumeration, and the proven adjacency equals the LP
    reference (pairs whose closures share a (d-1)-dimensional set), so linear counts are certified."""
    from test_full_space import lp_neighbours

    net = plnet(relulab.build(spec, seed=seed), d)
    r = full_space(net, neighbours=True)
    assert r.certified and r.stats["certificate"].startswith("proven: every cell's vertices"), r.stats
    assert r.linear_certified
    ref = full_space(net, method="facet")
    assert ref.count == r.count and space_mod._same_rows(ref.patterns, r.patterns)
    if r.count <= 40:
        assert {tuple(e) for e in r.neighbours.tolist()} == lp_neighbours(net, r.patterns)


def _cells(net):
    eng = space_mod._Engine(net, None, None, None, True)
    with torch.no_grad():
        eng.run()
        eng.finish(False, 0)
    return eng


def test_vertex_proof_rejects_corrupted_cells():
    """The proof checks what it is given: a missing cell, a vertex far from where its tight rows meet,
    a missing vertex, a wrong pattern or a wrong incidence bit is not proven (the engine's result
    then goes to the facet engine). A float vertex a little off is no error: the proof is about the
    exact point its tight rows define."""
    from relulab.regions._vertex_cert import NotProven, prove_cells

    net = plnet(relulab.build("mlp:2-8-8-1:relu", seed=3), 2)
    eng = _cells(net)
    cells = list(eng.cells)
    assert prove_cells(eng, cells).shape[1] == 2

    def changed(i, **kw):
        X, cid, inc, pat, pyr, tie = cells[i]
        parts = dict(X=X, cid=cid, inc=inc, pat=pat, pyr=pyr, tie=tie)
        parts.update(kw)
        return cells[:i] + [tuple(parts[k] for k in ("X", "cid", "inc", "pat", "pyr", "tie"))] + cells[i + 1:]

    X, cid, inc, pat, pyr, tie = cells[0]
    C = pat.shape[0]
    last = cid != C - 1  # drop the batch's last cell
    bad = [
        changed(0, X=X[last], cid=cid[last], inc=inc[last], pat=pat[:-1], pyr=pyr[:-1], tie=tie[:-1]),
        changed(0, X=X + torch.where(torch.arange(X.shape[0])[:, None] == 3, 10.0, 0.0)),
        changed(0, X=X[1:], cid=cid[1:], inc=inc[1:]),
        changed(0, inc=torch.cat([inc[:1] ^ 2, inc[1:]])),
    ]
    p2 = pat.clone()
    p2[0, -1] = 1 - p2[0, -1]
    bad.append(changed(0, pat=p2))
    for cs in bad:
        with pytest.raises(NotProven):
            prove_cells(eng, cs)


def test_vertex_proof_over_the_memory_budget_goes_to_the_facet_engine():
    """The vertex proof's tensors grow with the number of cell vertices (millions for an 8-12-1 net);
    it checks its size against ``memory_budget`` before allocating and leaves the proof to the facet
    engine (which keeps to the budget) instead of exhausting memory."""
    net = plnet(relulab.build("mlp:3-8-8-1:relu", seed=0), 3)
    ref = full_space(net, method="facet")
    r = full_space(net, method="vertex", memory_budget=4e6)
    assert "memory_budget" in r.stats["vertex_proof"], r.stats
    assert r.certified and r.count == ref.count and space_mod._same_rows(ref.patterns, r.patterns)


# ------------------------------------------------------------------ valid nets the proof once could not settle
def _linear(W, b):
    W = torch.as_tensor(W, dtype=torch.float64)
    lin = nn.Linear(W.shape[1], W.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(torch.as_tensor(b, dtype=torch.float64))
    return lin


def _slabs():
    """First layer reads x_1 only (axis-parallel walls): every region is a slab without vertices."""
    l1 = _linear([[1, 0, 0], [-1, 0, 0], [2, 0, 0]], [0.5, 0.3, -1.0])
    l2 = _linear([[1, 1, -1], [1, -2, 1]], [-0.2, 0.1])
    return plnet(nn.Sequential(l1, nn.ReLU(), l2, nn.ReLU(), _linear([[1, -1]], [0])).eval(), 3)


def _dead_pool():
    """Max-pooling of ReLUs that are all dead on a whole region (tied pieces) over axis-parallel walls."""
    conv = nn.Conv1d(1, 1, 1, bias=True).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(-0.5)
    return relulab.PLNet.from_torch(nn.Sequential(conv, nn.ReLU(), nn.MaxPool1d(3), nn.Flatten()).eval(), (1, 3))


@pytest.mark.parametrize("make, truth", [(_slabs, 6), (_dead_pool, 13)])
def test_axis_parallel_walls_are_proven_not_left_unproven(make, truth):
    """The facet engine's pyramids had normals equal to coordinate axes up to rounding (1e-17), so a
    cone generator a hair off an axis-parallel wall left a part of a pyramid open in exact arithmetic
    but without a float64 point: the facet engine raised, and the vertex engine's count came back
    ``certified=False``. Both are now proven (counts: the LP references of test_full_space)."""
    net = make()
    for method in ("auto", "facet"):
        res = full_space(net, method=method)
        assert res.complete and res.certified and res.count == truth, (method, res.stats)
        assert res.stats["certificate"].startswith("proven")


# lines found by fuzzing the near-degenerate strategy; before: raised, or (case 3) 14 regions of 18
# returned with certified=False. The float LP's "yes" for an empty part between walls 1e-12 apart, a
# winner's part lost to rounding, a witness of a region a few ulps thick rounded off it.
THIN_CASES = [
    ([[-1.5, -1.0], [-1.0, -1.0], [-1.0, -1.0]], [1.0, -0.25, -0.2499999999990905], (-1e9, 1e9)),
    ([[0.0, 0.0], [0.0, 0.5], [0.0, 0.0], [0.0, 0.5]], [0.0, 0.0, 0.0, 1e-15], (-1e9, 1e9)),
    ([[-2.0, -1.5], [1.5, -2.0], [-2.0, -2.0], [-1.5, -1.0], [2.0, 2.0], [1.5, -2.0], [2.0, 2.0]],
     [0.25, 1.0, 0.0, 0.25, 0.75, 1.0, 0.750000000000001], None),
    ([[-0.5, 0.0], [2.0, -1.0], [-2.0, 2.0], [-1.5, -1.0], [-0.5, 0.0], [-2.0, 2.0]],
     [-0.25, -0.25, 0.5, 0.0, -0.249999999999, 0.5000000000009095], (-1e9, 1e9)),
    ([[1.5, -1.5], [2.0, 1.5], [1.5, -1.5], [2.0, 1.5]], [0.25, 1.0, 0.250000000000001, 1.000000000001], None),
]


@pytest.mark.parametrize("case", range(len(THIN_CASES)))
def test_thin_regions_between_near_parallel_walls_are_proven(case):
    W, b, box = THIN_CASES[case]
    net = one_layer(W, b, out=[[1.0 + 0.37 * i for i in range(len(W))]])
    truth = exact_line_regions(W, b)
    for method in ("auto", "facet"):
        res = full_space(net, box=box, method=method)
        assert res.complete and res.certified and res.count == truth, (method, res.count, truth, res.stats)
    # every witness strictly inside its region, in exact rationals (the repaired ones included): each
    # unit's pre-activation has the pattern's sign, or is identically zero (inactive by convention)
    for x, p in zip(res.interior_points.tolist(), res.patterns.tolist()):
        for (w1, w2), c, on in zip(W, b, p):
            v = Fr(w1) * Fr(x[0]) + Fr(w2) * Fr(x[1]) + Fr(c)
            assert (v > 0) if on else (v < 0 or (w1, w2, c) == (0, 0, 0)), (x, p)


def test_an_unprovable_count_is_raised_unless_the_proof_is_skipped(monkeypatch):
    """Where neither the vertex engine's own proof nor the facet engine settles a count, it is raised
    (before: returned with certified=False); certify=False still returns it, saying so."""
    net = plnet(relulab.build("mlp:2-6-6-1:relu", seed=4), 2)
    good = full_space(net)
    real = space_mod._facet

    def refuse(net_, *a):
        raise DegenerateGeometryError("(test) no proof")

    monkeypatch.setattr(space_mod, "_facet", refuse)
    monkeypatch.setattr(space_mod._Engine, "emit", _emit_without_cells)
    with pytest.raises(DegenerateGeometryError, match="cannot be proven.*no proof"):
        full_space(net)
    r = full_space(net, certify=False)
    assert r.count == good.count and not r.certified and "certify=False" in r.stats["certificate"]
    monkeypatch.setattr(space_mod, "_facet", real)
    assert full_space(net).certified
