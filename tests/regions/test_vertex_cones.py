"""The vertex engine's own proof at non-simple vertices (:mod:`relulab.regions._vertex_cert`).

On ReLU networks whose later layers read few active units, many cell vertices at infinity carry more
than ``d`` tight rows: in a direction where every active first-layer unit is constant, every later
unit is constant too, so their boundaries all meet there. These are proven from the cells (basis
rows plus a lemma for the rest; tangent cones spanned by listed edges), not re-enumerated.

References: the facet engine's LP-proven enumeration (patterns), pairwise LP dimension tests (the
region adjacency), and hand-built cones whose facets are known (pyramids over a square and a cube).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import relulab
from relulab.regions import full_space
from relulab.regions import space as space_mod
from relulab.regions._enum_poly import bitmask, popcount
from relulab.regions._vertex_cert import NotProven, _tangent_cones, prove_cells


def relu_net(widths, seed):
    """ReLU after every layer, the output layer too (as relucent's ``mlp``)."""
    torch.manual_seed(seed)
    mods = []
    for a, b in zip(widths[:-1], widths[1:]):
        mods += [nn.Linear(a, b).double(), nn.ReLU()]
    return relulab.PLNet.from_torch(nn.Sequential(*mods), (widths[0],))


def cells_of(net):
    from test_space_proof import _cells

    return _cells(net)


def n_nonsimple(eng):
    inc = torch.cat([c[2] for c in eng.cells])
    return int((popcount(inc) > eng.d).sum())


@pytest.mark.parametrize("widths,seed", [([2, 5, 5, 2], 0), ([3, 5, 5, 2], 2), ([4, 5, 5, 2], 2),
                                         ([3, 5, 5, 5, 2], 0)])
def test_nonsimple_vertices_are_proven_from_the_cells(widths, seed):
    net = relu_net(widths, seed)
    assert n_nonsimple(cells_of(net)) > 0  # the case under test
    r = full_space(net, neighbours=True)
    # proven by the cells themselves, not handed to the facet engine's enumeration
    assert "vertex_proof" not in r.stats, r.stats
    assert r.certified and r.stats["certificate"].startswith("proven: every cell's vertices"), r.stats
    assert r.linear_certified
    ref = full_space(net, method="facet")
    assert ref.certified and ref.count == r.count and space_mod._same_rows(ref.patterns, r.patterns)


def test_nonsimple_adjacency_equals_lp():
    from test_full_space import lp_neighbours

    net = relu_net([2, 5, 5, 2], 0)
    r = full_space(net, neighbours=True)
    assert "vertex_proof" not in r.stats and r.linear_certified
    assert {tuple(e) for e in r.neighbours.tolist()} == lp_neighbours(net, r.patterns)


def test_corrupted_nonsimple_cells_are_not_proven():
    """A missing neighbour of a non-simple vertex, a missing non-simple vertex, or a dropped tight
    row there is not proven."""
    net = relu_net([3, 5, 5, 2], 2)
    eng = cells_of(net)
    cells = list(eng.cells)
    assert prove_cells(eng, cells).shape[1] == 2
    d = eng.d
    # the first batch with a non-simple vertex
    i = next(k for k, c in enumerate(cells) if bool((popcount(c[2]) > d).any()))
    X, cid, inc, pat, pyr, tie = cells[i]
    v = int((popcount(inc) > d).nonzero()[0, 0])
    same = (cid == cid[v]).nonzero().squeeze(1)
    nb = next(int(w) for w in same.tolist() if w != v and int(popcount(inc[w:w + 1] & inc[v:v + 1])) >= d - 1)

    def without(j):
        keep = torch.arange(X.shape[0]) != j
        return cells[:i] + [(X[keep], cid[keep], inc[keep], pat, pyr, tie)] + cells[i + 1:]

    inc2 = inc.clone()
    top = int(torch.nonzero(torch.tensor([(int(inc[v, 0]) >> b) & 1 for b in range(63)]))[-1])
    inc2[v, 0] ^= 1 << top  # drop its last tight row (a later layer's)
    for cs in (without(v), without(nb), cells[:i] + [(X, cid, inc2, pat, pyr, tie)] + cells[i + 1:]):
        with pytest.raises(NotProven):
            prove_cells(eng, cs)


def test_nonsimple_vertices_off_a_chain_go_to_the_facet_engine():
    """The lemma needs affine maps and two-piece elementwise units in a chain; a residual sum breaks
    it, and non-simple vertices are then handed to the facet engine's proof (still certified)."""

    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(3, 4).double(), nn.Linear(4, 3).double(), nn.Linear(3, 2).double()

        def forward(self, x):
            h = torch.relu(self.a(x))
            return torch.relu(self.c(torch.relu(self.b(h)) + x))

    torch.manual_seed(1)
    net = relulab.PLNet.from_torch(Skip(), (3,))
    assert n_nonsimple(cells_of(net)) > 0
    r = full_space(net, method="vertex")
    assert "not a chain" in r.stats["vertex_proof"], r.stats
    f = full_space(net, method="facet")
    assert r.certified and r.count == f.count and space_mod._same_rows(r.patterns, f.patterns)


# ------------------------------------------------------------------ hand-built tangent cones
def _bits(ids, W=1):
    return bitmask(torch.tensor(ids), W).sum(0)


def _pyramid(base_facets, base_vertices):
    """A pyramid: apex (tight on every side facet 1..F) and base vertices (tight on the base facet 0 and
    their side facets), as (cid, inc, nsv)."""
    F = len(base_facets)
    inc = [_bits(list(range(1, F + 1)))] + [_bits([0] + [1 + f for f in fs]) for fs in base_vertices]
    inc = torch.stack(inc)
    cid = torch.zeros(inc.shape[0], dtype=torch.long)
    return cid, inc, torch.zeros(1, dtype=torch.long)


SQUARE = [[0, 1], [1, 2], [2, 3], [3, 0]]  # base vertex -> the two side facets through it
CUBE = [[a, b, c] for a in (0, 1) for b in (2, 3) for c in (4, 5)]  # faces x-, x+, y-, y+, z-, z+


@pytest.mark.parametrize("d,verts", [(3, SQUARE), (4, CUBE)])
def test_tangent_cone_of_a_pyramid_apex(d, verts):
    F = 4 if d == 3 else 6
    cid, inc, nsv = _pyramid(range(F), verts)
    J = _tangent_cones(cid, inc, nsv, 1, d)
    assert int(J[0, 0]) == int(_bits(list(range(1, F + 1)))[0])  # every side facet, not the base
    # one base vertex missing: the apex's cone is no longer spanned by listed edges
    for drop in range(1, inc.shape[0]):
        keep = torch.arange(inc.shape[0]) != drop
        with pytest.raises(NotProven):
            _tangent_cones(cid[keep], inc[keep], nsv, 1, d)


def test_simplicial_tangent_cone_in_five_dimensions():
    # a pyramid over a 4-simplex: apex on facets 1..5, base vertex i off facet i
    verts = [[f for f in range(5) if f != i] for i in range(5)]
    cid, inc, nsv = _pyramid(range(5), verts)
    inc = torch.cat([inc[:1] | _bits([9]), inc[1:] | _bits([9])])  # a row tight everywhere is not a facet
    with pytest.raises(NotProven):
        _tangent_cones(cid, inc, nsv, 1, 5)
    cid, inc, nsv = _pyramid(range(5), verts)
    inc = torch.cat([inc[:1] | _bits([9]), inc[1:]])  # a redundant row tight at the apex only
    J = _tangent_cones(cid, inc, nsv, 1, 5)
    assert int(J[0, 0]) == int(_bits([1, 2, 3, 4, 5])[0])


# ------------------------------------------------------------------ regions constant by their patterns
def test_constant_regions_have_exactly_zero_gradients(monkeypatch):
    """Regions where a whole layer's winners are zero pieces are constant: their exact (rational)
    Jacobians are zero, and the linear count that skips their exact maps equals the one that computes
    every equality in exact arithmetic."""
    from relulab.regions import _jacobians
    from relulab.regions._exact import exact_map, exact_tables

    net = relu_net([3, 5, 5, 2], 2)
    r = full_space(net)
    flat = _jacobians.constant_regions(net, r.patterns)
    assert 0 < int(flat.sum()) < r.count
    tabs = exact_tables(net)
    for k in flat.nonzero().squeeze(1).tolist():
        M, _ = exact_map(net, tabs, r.patterns[k])
        assert (M[:, 1:] == 0).all()
    monkeypatch.setattr(_jacobians, "constant_regions", lambda net, pat: torch.zeros(pat.shape[0], dtype=torch.bool))
    slow = full_space(net)
    assert slow.linear_certified and r.linear_certified and slow.linear_count == r.linear_count
    # not a chain of elementwise two-piece units: nothing is claimed
    leaky = relulab.PLNet.from_torch(nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.0), nn.Linear(4, 2)).double(), (3,))
    assert _jacobians.elementwise_chain(leaky)
    mp = relulab.PLNet.from_torch(nn.Sequential(nn.Linear(3, 4), nn.Unflatten(1, (1, 4)), nn.MaxPool1d(2),
                                                nn.Flatten(), nn.Linear(2, 1)).double(), (3,))
    assert not _jacobians.elementwise_chain(mp)
    assert not bool(_jacobians.constant_regions(mp, torch.zeros(3, mp.n_units, dtype=torch.long)).any())
