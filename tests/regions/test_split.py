"""Split enumeration equals the single-process enumeration (count, bounded/unbounded, linear count)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relulab import regions
from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.core.plnet import PLNet
from relulab.regions.split import split_full_space

full_space = regions.full_space


def mlp(d, widths, seed, dead=False):
    g = torch.Generator().manual_seed(seed)
    layers, fan = [], d
    for w in widths:
        lin = torch.nn.Linear(fan, w, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(w, fan, generator=g, dtype=torch.float64))
            lin.bias.copy_(torch.randn(w, generator=g, dtype=torch.float64))
        layers += [lin, torch.nn.ReLU()]
        fan = w
    out = torch.nn.Linear(fan, 1, dtype=torch.float64)
    with torch.no_grad():
        out.weight.copy_(torch.randn(1, fan, generator=g, dtype=torch.float64))
        if dead:  # last-layer units that the output ignores: activation regions without new linear regions
            out.weight[0, : fan // 2] = 0
    return PLNet.from_torch(torch.nn.Sequential(*layers, out), (d,))


def same_patterns(a, b):
    return {tuple(r) for r in a.patterns.tolist()} == {tuple(r) for r in b.patterns.tolist()}


def check(net, box=None, **kw):
    ref = full_space(net, box=box, method="vertex")  # the engine that merges linear regions, at every d
    s = split_full_space(net, box=box, **kw)
    assert s.complete and ref.complete
    assert s.count == ref.count
    assert same_patterns(s, ref)
    assert s.linear_count == ref.linear_count
    # each cell's proof (cone networks included) stands where the single run's does
    assert s.certified == ref.certified, [c for c in s.cell_certificates if "proven" != c[:6]]
    if box is None:
        assert s.unbounded_count == ref.unbounded_count
    # every witness really lies in its region
    assert torch.equal(net.pattern(s.interior_points).long(), s.patterns)
    return ref, s


@pytest.mark.parametrize("d, widths, cells", [(2, [7, 6], 10), (3, [6, 5], 8), (4, [6, 4], 6), (5, [4, 2], 6),
                                              (6, [3, 2], 7)])
def test_all_of_rd_many_cells(d, widths, cells):
    """d = 2..6: count, linear count, unbounded count and certificate as the single run (before, the
    cone cells' proofs failed at d >= 3 and the merged result said certified=False)."""
    ref, s = check(mlp(d, widths, seed=d), cells=cells, workers=1, seed=d)
    assert ref.certified and s.certified
    assert s.pieces > s.count, "regions crossing walls must occur (else the merge is untested)"
    assert ref.unbounded_count > 0


@pytest.mark.parametrize("d, widths", [(2, [8, 8]), (3, [6, 6]), (4, [5, 4]), (5, [5, 3]), (6, [6, 2])])
def test_box_grid(d, widths):
    ref, s = check(mlp(d, widths, seed=10 + d, dead=True), box=(-2.0, 2.0), cells=2 ** min(d, 3) + 1, workers=1)
    assert s.pieces > s.count


def test_linear_regions_merge_across_walls():
    net = mlp(2, [6, 6], seed=3, dead=True)
    threads = torch.get_num_threads()
    ref, s = check(net, cells=8, workers=1, seed=1)
    assert torch.get_num_threads() == threads  # in-process cells leave the caller's threads alone
    assert ref.linear_count < ref.count  # the dead units make this a real test of the merge
    ref, s = check(net, box=(-3.0, 3.0), cells=9, workers=1)
    assert ref.linear_count < ref.count


def _vertex(net):
    """A vertex of the first layer's arrangement (two hyperplanes meeting, in d = 2)."""
    A = net.nodes[1].layer.weight if hasattr(net.nodes[1].layer, "weight") else None
    assert A is not None
    W, b = A[:2].numpy(), net.nodes[1].layer.bias[:2].numpy()
    return np.linalg.solve(W, -b)


def test_walls_through_a_vertex():
    net = mlp(2, [6, 5], seed=4)
    v = _vertex(net)
    # a cone wall (the ray from the apex along a generator) through the vertex v
    from relulab.regions.split import cone_cells

    g = cone_cells(2, 12, seed=0)[0][:, 0]
    ref, s = check(net, cells=12, workers=1, seed=0, centre=torch.as_tensor(v - 0.7 * g))
    assert ref.certified and s.certified and s.unbounded_count > 0
    lo, hi = v - 1.3, v + 1.7
    check(net, box=(torch.as_tensor(lo), torch.as_tensor(hi)), walls=[[v[0]], [v[1]]], workers=1)


def test_a_boundary_inside_a_wall_moves_the_walls(monkeypatch):
    """A network boundary inside a cut could hide an adjacency: the cuts are moved (and the result
    equals the single run); when they cannot be moved enough times, it is refused."""
    from relulab.regions import split as split_mod

    lin = torch.nn.Linear(2, 3, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.3, -1.0]]))
        lin.bias.copy_(torch.tensor([-0.5, 0.1, 0.2]))
    net = PLNet.from_torch(torch.nn.Sequential(lin, torch.nn.ReLU(), torch.nn.Linear(3, 1).double()), (2,))
    ref, s = check(net, box=(-1.0, 1.0), walls=[[0.5], [0.0]], workers=1)
    assert len(s.apex_moves) == 1 and "lies in cell wall" in s.apex_moves[0]
    monkeypatch.setattr(split_mod, "CENTRE_TRIES", 0)
    with pytest.raises(DegenerateGeometryError, match="lies in cell wall"):
        split_full_space(net, box=(-1.0, 1.0), walls=[[0.5], [0.0]], workers=1)


def _same_as_single(s, ref):
    """The same count, linear count, certificate, patterns and (R^d) bounded flags as the single run.
    (Before, all of R^d at d >= 3 came back ``certified=False``: the cone cells' proofs failed.)"""
    assert s.complete and ref.complete
    assert (s.count, s.linear_count) == (ref.count, ref.linear_count)
    assert s.certified == ref.certified
    assert same_patterns(s, ref)
    if ref.domain == "R^d":  # the same regions bounded, region by region
        assert s.unbounded_count == ref.unbounded_count > 0
        flags = lambda r: dict(zip(map(tuple, r.patterns.tolist()), r.bounded.tolist()))  # noqa: E731
        assert flags(s) == flags(ref)


def test_local_pool_and_ray_agree(ray_local):
    """full_space(split=...) on the local pool and on a real local Ray instance: the single run's
    count, bounded/unbounded split, linear count and certificate."""
    net = mlp(3, [6, 5], seed=7)
    ref = full_space(net, method="vertex")
    a = full_space(net, split=6, workers=2)
    b = full_space(net, split=6, ray=True)
    c = split_full_space(net, cells=6, ray=True)
    assert a.executor == "local" and b.executor == "ray" and c.executor == "ray"
    for s in (a, b, c):
        _same_as_single(s, ref)
    box = (torch.full((3,), -2.0), torch.full((3,), 1.0))
    ref = full_space(net, box, method="vertex")
    assert ref.certified, "the reference must be proven for the comparison of certificates to mean something"
    _same_as_single(full_space(net, box, split=5, ray=True), ref)
    _same_as_single(full_space(net, box, split=5, workers=2), ref)


@pytest.mark.parametrize("box", [None, (-2.0, 1.5)])
def test_full_space_split_option_equals_the_single_run(box):
    net = mlp(2, [6, 5], seed=11)
    ref = full_space(net, box, method="vertex")
    s = full_space(net, box, split=5, workers=1)
    assert ref.certified and s.cells >= 5 and s.pieces > s.count and s.executor == "in-process"
    _same_as_single(s, ref)
    # the proof is each cell's: skipped, the merged result says so; forced, it is certified
    never = full_space(net, box, split=5, workers=1, certify=False)
    assert never.count == ref.count and never.certified is False
    assert full_space(net, box, split=5, workers=1, certify=True).certified is True


def test_full_space_split_local_pool():
    net = mlp(4, [5, 4], seed=2)
    box = (torch.full((4,), -2.0), torch.full((4,), 2.0))
    ref = full_space(net, box, method="vertex")
    s = full_space(net, box, workers=2)  # workers alone splits, into 4 cells per worker
    assert s.executor == "local" and s.cells >= 8
    _same_as_single(s, ref)
    # all of R^d at d = 4: the same regions, and proven like the single run
    ref = full_space(net, method="vertex")
    assert ref.certified
    _same_as_single(full_space(net, split=8, workers=2), ref)


@pytest.mark.parametrize("kw, match", [
    ({"neighbours": True}, "neighbours=True"), ({"audit_samples": 10}, "audit_samples"),
    ({"method": "facet"}, "method='facet'"), ({"out": "r.parquet"}, "out"),
    ({"memory_budget": 1e6}, "memory_budget"), ({"ray": "  "}, "ray must be"), ({"ray": 3}, "ray must be"),
    ({"certify": "yes"}, "certify must be"), ({"split": 0}, "cells must be"), ({"workers": 0}, "workers must be"),
])
def test_full_space_split_refuses_what_it_cannot_give(kw, match):
    net = mlp(2, [3], seed=0)
    kw = {"split": 2, **kw}
    with pytest.raises(InvalidInputError, match=match):
        full_space(net, **kw)


# ------------------------------------------------------------------ linear regions, decided exactly
def _exact_linear_count(net, widths, patterns, edges):
    """Linear regions from exact rational gradients: components of the facet graph (edges) restricted
    to pairs whose gradients, computed in Fractions from the weights, are equal."""
    from fractions import Fraction

    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    lins = [m for m in net.to_torch().modules() if isinstance(m, torch.nn.Linear)]
    Ws = [[[Fraction(v) for v in row] for row in lin.weight.tolist()] for lin in lins]

    def grad(p):
        v = list(Ws[-1][0])
        off = sum(widths)
        for layer in range(len(widths) - 1, -1, -1):
            off -= widths[layer]
            v = [vi if p[off + i] == 1 else Fraction(0) for i, vi in enumerate(v)]
            W = Ws[layer]
            v = [sum(v[i] * W[i][j] for i in range(len(v))) for j in range(len(W[0]))]
        return tuple(v)

    g = [grad(p) for p in patterns.tolist()]
    keep = [(a, b) for a, b in edges.tolist() if g[a] == g[b]]
    n = len(g)
    if not keep:
        return n
    e = np.array(keep)
    m = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    return int(connected_components(m, directed=False)[0])


def _tiny_weight_net():
    """2-8-8-1 whose output reads one last-layer unit with weight 1e-10 and two with weight 0: regions
    across the first unit's boundary have distinct affine maps (gradients 1e-10 apart), across the
    others' the same map."""
    net = mlp(2, [8, 8], seed=5)
    mod = net.to_torch()
    with torch.no_grad():
        out = [m for m in mod.modules() if isinstance(m, torch.nn.Linear)][-1]
        out.weight[0, 0] = 1e-10
        out.weight[0, 1:3] = 0.0
    return PLNet.from_torch(mod, (2,))


@pytest.mark.parametrize("box", [None, (-3.0, 3.0)])
def test_linear_count_equals_the_exact_count_with_tiny_gradient_differences(box):
    net = _tiny_weight_net()
    ref = full_space(net, box=box, neighbours=True)
    exact = _exact_linear_count(net, [8, 8], ref.patterns, ref.neighbours)
    assert exact < ref.count  # the zero weights merge some regions
    s = split_full_space(net, box=box, cells=9, workers=1, seed=2)
    assert s.count == ref.count and same_patterns(s, ref)
    assert s.linear_count == exact
    # every cell's count is proven (cone cells too: their ties at the apex are settled by the proof),
    # and every gradient equality inside the rounding bound is settled exactly
    assert s.certified


def test_single_process_linear_count_equals_the_exact_count():
    net = _tiny_weight_net()
    ref = full_space(net, box=(-3.0, 3.0), neighbours=True)
    assert ref.linear_count == _exact_linear_count(net, [8, 8], ref.patterns, ref.neighbours)


def test_negative_piece_coefficients_settle_equalities_exactly(monkeypatch):
    """Abs units (pieces z and -z) can cancel paths, so the abs-weight bound does not apply: both the
    split merge and the single-process engine settle every equality in exact arithmetic (certified);
    over the exact work budget they say the result is not certified."""
    from relulab.nn import Abs

    g = torch.Generator().manual_seed(8)
    a, b = torch.nn.Linear(2, 5).double(), torch.nn.Linear(5, 1).double()
    with torch.no_grad():
        for m in (a, b):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64))
            m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=torch.float64))
    net = PLNet.from_torch(torch.nn.Sequential(a, Abs(), b), (2,))
    ref, s = check(net, box=(-2.0, 2.0), cells=4, workers=1)
    assert ref.certified and s.certified and s.linear_count == ref.linear_count
    from relulab.regions import _jacobians

    monkeypatch.setattr(_jacobians.equal_gradients, "__defaults__", (0,))
    ref, s = check(net, box=(-2.0, 2.0), cells=4, workers=1)
    assert not ref.certified and not s.certified


def test_balanced_cells_tile_the_box_and_the_grid_gives_the_same_count():
    from relulab.regions.split import balanced_cells

    net = mlp(3, [8, 6], seed=11)
    lo, hi = np.array([-2.0, -1.0, -3.0]), np.array([2.0, 1.5, 1.0])
    cells = balanced_cells(net, lo, hi, 7, seed=4)
    assert len(cells) == 7
    vol = sum(float(np.prod(b - a)) for a, b in cells)
    assert vol == pytest.approx(float(np.prod(hi - lo)), rel=1e-12)
    x = lo + np.random.default_rng(0).uniform(size=(4000, 3)) * (hi - lo)
    inside = sum(((x > a) & (x < b)).all(1) for a, b in cells)
    assert (inside == 1).all()  # every point in exactly one cell: a tiling
    grid = split_full_space(net, box=(torch.as_tensor(lo), torch.as_tensor(hi)), cells=6, workers=1, balance=False)
    ref, bal = check(net, box=(torch.as_tensor(lo), torch.as_tensor(hi)), cells=6, workers=1)
    assert (grid.count, grid.linear_count) == (ref.count, ref.linear_count) and same_patterns(grid, ref)


def test_split_lives_with_the_region_engines():
    import relulab.experiments
    import relulab.regions

    assert relulab.regions.split_full_space is split_full_space
    with pytest.raises(AttributeError, match="now relulab.regions.split_full_space"):
        relulab.experiments.split_full_space  # noqa: B018
