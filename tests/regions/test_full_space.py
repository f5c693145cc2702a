"""Tests of ``relulab.regions.full_space`` (all of R^d and boxes) against independent references.

References used here share no code with the engine:
* closed forms: Zaslavsky's counts for hyperplanes in general position, hand counts for degenerate
  arrangements (concurrent, parallel, duplicated, dead hyperplanes);
* an LP breadth-first search over winner changes (a candidate pattern's region is full-dimensional iff
  ``max t  s.t.  G x + h >= t |G_i|`` has a positive optimum; scipy HiGHS), and for degenerate nets an
  exhaustive LP over every pattern;
* LPs for boundedness (min/max of every coordinate), for facets shared by two regions, for the
  decision boundary, and for the smallest box that meets every region;
* sampling (a lower bound: every sampled pattern must be enumerated).
"""

from __future__ import annotations

import importlib
import itertools
import math
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from torch import nn

import relulab
from relulab import nn as rnn
from relulab.core.errors import DegenerateGeometryError, InvalidInputError, ResourceLimitError
from relulab.regions import full_space
from relulab.regions.space import FullSpaceRegions

try:
    from strategies import random_module
except ImportError:  # pragma: no cover
    random_module = None


# ----------------------------------------------------------------------------------- helpers
def mlp(widths, act=nn.ReLU, seed=0, last_act=False, scale_bias=1.0):
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=torch.float64) / math.sqrt(widths[i]))
            lin.bias.copy_(scale_bias * torch.randn(lin.bias.shape, generator=g, dtype=torch.float64))
        layers.append(lin)
        if i < len(widths) - 2 or last_act:
            layers.append(act())
    return nn.Sequential(*layers).eval()


def plnet(module, d):
    return relulab.PLNet.from_torch(module, (d,) if isinstance(d, int) else d)


def pattern_set(t: torch.Tensor) -> set:
    return {tuple(r) for r in t.tolist()}


def _piece_of_rows(net, pattern):
    """For each row of region_inequalities(pattern): the piece index the winner is compared with."""
    out = []
    for l, layer in enumerate(net.max_units):
        K = layer.valid.sum(1).tolist()
        w = pattern[net.layer_slice(l)].tolist()
        for j in range(layer.units):
            out += [k for k in range(K[j]) if k != w[j]]
    return out


def lp_full_dim(net, pattern, box=None, eq=None) -> float:
    """Largest t with a ball-like slack t in the closed region of ``pattern`` (0 if not
    full-dimensional, -1 if empty). ``eq``: optional (a, b) adding ``a x = b``; ``box`` (lo, hi)."""
    pattern = torch.as_tensor(pattern)
    G, h = net.region_inequalities(pattern)
    G, h = G.numpy(), h.numpy()
    nrm = np.linalg.norm(G, axis=1)
    zero_row = (nrm == 0) & (h == 0)
    # a piece identical to the winner with a lower index wins instead: the pattern is not realized
    pieces = _piece_of_rows(net, pattern)
    units = net.inequality_units().tolist()
    for r in np.nonzero(zero_row)[0]:
        if pieces[r] < int(pattern[units[r]]):
            return -1.0
    keep = ~zero_row
    G, h, nrm = G[keep], h[keep], nrm[keep]
    if np.any((nrm == 0) & (h < 0)):
        return -1.0
    m = nrm > 0
    # unit rows: HiGHS drops tiny coefficients, so the LP sees normalized ones
    G, h, nrm = G[m] / nrm[m, None], h[m] / nrm[m], np.ones(int(m.sum()))
    d = net.input_dim
    bounds = [(None, None)] * d + [(None, 1.0)]
    if box is not None:
        lo, hi = (np.asarray(t, dtype=float) for t in box)
        eye = np.eye(d)
        G = np.vstack([G, eye, -eye])
        h = np.concatenate([h, -lo, hi])
        nrm = np.concatenate([nrm, np.ones(2 * d)])
    A = np.hstack([-G, nrm[:, None]]) if len(h) else np.zeros((0, d + 1))
    c = np.zeros(d + 1)
    c[-1] = -1
    kw = {}
    if eq is not None:
        a, b = eq
        kw = dict(A_eq=np.concatenate([a, [0.0]])[None], b_eq=[b])
    res = linprog(c, A_ub=A if len(h) else None, b_ub=h if len(h) else None, bounds=bounds, method="highs", **kw)
    if res.status != 0:
        return -1.0
    return float(res.x[-1])


def lp_bfs(net, box=None, seed=0, tol=1e-9, limit=5000):
    """Regions by breadth-first search over single winner changes, each certified by an LP."""
    g = torch.Generator().manual_seed(seed)
    d = net.input_dim
    if box is None:
        x0 = torch.randn(1, d, generator=g, dtype=torch.float64)
    else:
        lo, hi = (torch.as_tensor(t, dtype=torch.float64) for t in box)
        x0 = lo + torch.rand(1, d, generator=g, dtype=torch.float64) * (hi - lo)
    start = tuple(net.pattern(x0.reshape(1, *net.input_shape))[0].tolist())
    seen, todo = {start}, [start]
    found = set()
    K = torch.cat([m.valid.sum(1) for m in net.max_units]).tolist() if net.max_units else []
    while todo:
        p = todo.pop()
        if lp_full_dim(net, p, box) <= tol:
            continue
        found.add(p)
        assert len(found) < limit
        for q in range(len(p)):
            for a in range(K[q]):
                if a != p[q]:
                    c = p[:q] + (a,) + p[q + 1:]
                    if c not in seen:
                        seen.add(c)
                        todo.append(c)
    return found


def lp_exhaustive(net, box=None, tol=1e-9):
    """Regions by trying every pattern (tiny nets only)."""
    K = torch.cat([m.valid.sum(1) for m in net.max_units]).tolist()
    return {p for p in itertools.product(*[range(k) for k in K]) if lp_full_dim(net, p, box) > tol}


def lp_bounded(net, pattern) -> bool:
    G, h = net.region_inequalities(torch.as_tensor(pattern))
    G, h = G.numpy(), h.numpy()
    keep = np.linalg.norm(G, axis=1) > 0
    G, h = G[keep], h[keep]
    d = net.input_dim
    for i in range(d):
        for sgn in (1.0, -1.0):
            c = np.zeros(d)
            c[i] = sgn
            res = linprog(c, A_ub=-G, b_ub=h, bounds=[(None, None)] * d, method="highs")
            if res.status == 3:
                return False
    return True


def check_witnesses(net, res: FullSpaceRegions):
    x = res.interior_points
    assert x.shape == (res.count, net.input_dim)
    G, h = net.region_inequalities(res.patterns)
    v = (G @ x[:, :, None])[..., 0] + h
    nonzero = (G.abs().amax(-1) > 0) | (h != 0)
    assert bool(((v > 0) | ~nonzero).all()), "a witness is not strictly inside its region"
    # the float pattern agrees, except where two pieces are the same function on the region (a
    # zero row: the exact tie goes to the lower index, float64 rounding may say otherwise)
    tied = torch.zeros(res.patterns.shape, dtype=torch.long).index_add_(
        1, net.inequality_units(), (~nonzero).long()) > 0
    assert bool(((net.pattern(x.reshape(x.shape[0], *net.input_shape)) == res.patterns) | tied).all())
    if res.domain == "box":
        lo, hi = (torch.as_tensor(t, dtype=x.dtype) for t in res.box)
        assert bool(((x > lo) & (x < hi)).all())


def sample_patterns(net, n, box=None, seed=1, scales=(0.1, 1.0, 10.0, 100.0)):
    g = torch.Generator().manual_seed(seed)
    d = net.input_dim
    if box is not None:
        lo, hi = (torch.as_tensor(t, dtype=torch.float64) for t in box)
        x = lo + torch.rand(n, d, generator=g, dtype=torch.float64) * (hi - lo)
    else:
        x = torch.cat([s * torch.randn(n // len(scales), d, generator=g, dtype=torch.float64) for s in scales])
    return pattern_set(net.pattern(x))


def zaslavsky(n, d):
    return sum(math.comb(n, i) for i in range(d + 1)), math.comb(n - 1, d)


def arrangement_vertices(W, b):
    """All intersection points of d of the hyperplanes W x + b = 0 (general position)."""
    n, d = W.shape
    pts = []
    for S in itertools.combinations(range(n), d):
        pts.append(np.linalg.solve(W[list(S)], -b[list(S)]))
    return np.array(pts) if pts else np.zeros((0, d))


# ----------------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("d", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [3, 6])
def test_one_hidden_layer_zaslavsky(d, n):
    net = plnet(mlp([d, n, 1], seed=10 * d + n), d)
    res = full_space(net)
    regions, bounded = zaslavsky(n, d)
    assert res.complete and res.domain == "R^d"
    assert res.count == regions
    assert int(res.bounded.sum()) == bounded
    assert torch.equal(res.touches_boundary, ~res.bounded)
    check_witnesses(net, res)
    # the same arrangement inside a box containing every vertex
    layer = net.nodes[1].layer
    W, b = layer.weight.numpy(), layer.bias.numpy()
    # every region meets a box around all vertices, or (n <= d: no vertices) around a point of
    # the common intersection of all hyperplanes
    V = arrangement_vertices(W, b) if n >= d else np.linalg.lstsq(W, -b, rcond=None)[0][None]
    r = 2 * np.abs(V).max() + 1
    boxed = full_space(net, box=(-r, r))
    assert boxed.count == regions and boxed.domain == "box" and boxed.bounded is None
    assert pattern_set(boxed.patterns) == pattern_set(res.patterns)
    # regions not reaching the box boundary are exactly the bounded ones
    assert int((~boxed.touches_boundary).sum()) == bounded


@pytest.mark.parametrize("d,n", [(5, 7), (6, 8), (8, 9)])
def test_zaslavsky_higher_dimensions(d, n):
    net = plnet(mlp([d, n, 1], seed=d * n), d)
    res = full_space(net, method="vertex")  # the engine that reports boundedness
    assert (res.count, int(res.bounded.sum())) == zaslavsky(n, d)
    check_witnesses(net, res)
    assert full_space(net).count == res.count  # the default engine (facet from d = 6)


@pytest.mark.parametrize("d,n", [(10, 12), (12, 13)])
def test_zaslavsky_up_to_dimension_twelve(d, n):
    # the default (facet) engine over all of R^d, certified, where vertex enumeration is hopeless
    net = plnet(mlp([d, n, 1], seed=d * n), d)
    res = full_space(net)
    assert res.complete and res.certified
    assert res.count == zaslavsky(n, d)[0]
    check_witnesses(net, res)


def test_linear_regions_ignore_a_unit_the_output_does_not_read():
    d, n = 3, 6
    module = mlp([d, n, 2], seed=3)
    with torch.no_grad():
        module[2].weight[:, 0] = 0.0  # hidden unit 0 never reaches the output
    net = plnet(module, d)
    res = full_space(net)
    assert res.count == zaslavsky(n, d)[0]
    assert res.linear_count == zaslavsky(n - 1, d)[0]


# ----------------------------------------------------------------------------------- LP reference
@pytest.mark.parametrize("act,widths,seed", [
    (nn.ReLU, [2, 5, 4, 1], 0),
    (nn.ReLU, [3, 4, 4, 2], 1),
    (nn.ReLU, [2, 4, 3, 3, 1], 2),
    (lambda: nn.LeakyReLU(0.1), [2, 5, 4, 1], 3),
    (rnn.Abs, [2, 4, 3, 1], 4),
    (lambda: nn.LeakyReLU(-0.5), [3, 3, 3, 1], 5),
])
def test_against_lp_search(act, widths, seed):
    net = plnet(mlp(widths, act=act, seed=seed), widths[0])
    res = full_space(net, neighbours=True, audit_samples=2000)
    ref = lp_bfs(net)
    assert res.complete
    assert pattern_set(res.patterns) == ref
    assert res.audit is not None and res.audit.shape[0] == 0
    check_witnesses(net, res)


@pytest.mark.parametrize("k,seed", [(2, 0), (3, 1), (3, 2)])
def test_maxout_against_lp_search(k, seed):
    torch.manual_seed(seed)
    module = nn.Sequential(rnn.Maxout(2, 3, k), rnn.Maxout(3, 2, k), nn.Linear(2, 1)).double().eval()
    net = plnet(module, 2)
    res = full_space(net)
    assert pattern_set(res.patterns) == lp_bfs(net)
    check_witnesses(net, res)
    boxed = full_space(net, box=(-2.0, 1.5))
    assert pattern_set(boxed.patterns) == lp_bfs(net, box=(-2.0 * np.ones(2), 1.5 * np.ones(2)))
    check_witnesses(net, boxed)


def test_maxpool_conv1d_against_lp():
    torch.manual_seed(3)
    module = nn.Sequential(nn.Conv1d(1, 2, 2), nn.ReLU(), nn.MaxPool1d(2, stride=1), nn.Flatten(),
                           nn.Linear(4, 1)).double().eval()
    net = plnet(module, (1, 4))
    res = full_space(net)
    assert pattern_set(res.patterns) == lp_bfs(net)
    check_witnesses(net, res)
    assert not (pattern_set(net.pattern(torch.randn(3000, 4, dtype=torch.float64))) - pattern_set(res.patterns))


def test_maxpool_of_dead_relus_ties_exhaustive():
    # max-pool over ReLUs that are all dead on a whole region: tied pieces, lowest index wins
    conv = nn.Conv1d(1, 1, 1, bias=True).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(-0.5)
    module = nn.Sequential(conv, nn.ReLU(), nn.MaxPool1d(3), nn.Flatten()).eval()
    net = plnet(module, (1, 3))
    res = full_space(net)
    assert pattern_set(res.patterns) == lp_exhaustive(net)
    check_witnesses(net, res)


def test_box_against_lp_deep():
    net = plnet(mlp([3, 5, 4, 2], seed=7), 3)
    box = (np.array([-1.0, -0.5, -2.0]), np.array([1.5, 0.5, 0.0]))
    res = full_space(net, box=box)
    assert pattern_set(res.patterns) == lp_bfs(net, box=box)
    check_witnesses(net, res)


def test_bounded_flags_against_lp():
    net = plnet(mlp([2, 5, 4, 1], seed=11), 2)
    res = full_space(net)
    for p, b in zip(res.patterns.tolist(), res.bounded.tolist()):
        assert lp_bounded(net, p) == b


def test_huge_box_equals_all_of_space():
    net = plnet(mlp([3, 5, 4, 1], seed=5), 3)
    res = full_space(net)
    # smallest |x|_inf reached by each region's closure (LP): a box beyond all of them meets every region
    need = 0.0
    for p in res.patterns.tolist():
        G, h = net.region_inequalities(torch.tensor(p))
        G, h = G.numpy(), h.numpy()
        d = 3
        A = np.vstack([np.hstack([-G, np.zeros((len(h), 1))]),
                       np.hstack([np.eye(d), -np.ones((d, 1))]), np.hstack([-np.eye(d), -np.ones((d, 1))])])
        b = np.concatenate([h, np.zeros(2 * d)])
        r = linprog(np.r_[np.zeros(d), 1.0], A_ub=A, b_ub=b, bounds=[(None, None)] * d + [(0, None)], method="highs")
        need = max(need, r.fun)
    boxed = full_space(net, box=(-(2 * need + 1), 2 * need + 1))
    assert pattern_set(boxed.patterns) == pattern_set(res.patterns)


# ----------------------------------------------------------------------------------- neighbours etc.
@pytest.mark.parametrize("box", [None, (np.array([-1.0, -0.5]), np.array([1.5, 1.0]))])
def test_neighbours_and_linear_regions_against_lp(box):
    net = plnet(mlp([2, 4, 4, 1], seed=21), 2)
    res = full_space(net, box=box, neighbours=True)
    pats = res.patterns.tolist()
    index = {tuple(p): i for i, p in enumerate(pats)}
    ref = set()
    for i, p in enumerate(pats):
        for q in range(len(p)):
            c = list(p)
            c[q] = 1 - c[q]
            j = index.get(tuple(c))
            if j is None or j < i:
                continue
            # the shared boundary is (d-1)-dimensional iff max slack on it is positive
            G, h = net.region_inequalities(torch.tensor(p))
            rows = net.inequality_units().tolist()
            r = rows.index(q)
            others = [k for k in range(len(rows)) if k != r]
            G2, h2 = net.region_inequalities(torch.tensor(c))
            Gs = torch.cat([G[others], G2[others]]).numpy()
            hs = torch.cat([h[others], h2[others]]).numpy()
            if box is not None:  # the shared facet must be (d-1)-dimensional inside the box
                Gs = np.vstack([Gs, np.eye(2), -np.eye(2)])
                hs = np.concatenate([hs, -box[0], box[1]])
            nrm = np.linalg.norm(Gs, axis=1)
            keep = nrm > 0
            A = np.hstack([-Gs[keep], nrm[keep, None]])
            sol = linprog(np.r_[0.0, 0.0, -1.0], A_ub=A, b_ub=hs[keep],
                          A_eq=np.r_[G[r].numpy(), 0.0][None], b_eq=[-float(h[r])],
                          bounds=[(None, None)] * 2 + [(None, 1.0)], method="highs")
            if sol.status == 0 and sol.x[-1] > 1e-9:
                ref.add((i, j))
    assert pattern_set(res.neighbours) == ref
    # linear regions: union-find over the reference graph with the affine maps compared
    A, c = net.local_affine(res.interior_points)
    parent = list(range(res.count))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in ref:
        if torch.allclose(A[i], A[j], atol=1e-9) and torch.allclose(c[i], c[j], atol=1e-9):
            parent[find(i)] = find(j)
    assert res.linear_count == len({find(i) for i in range(res.count)})


@pytest.mark.parametrize("out", [1, 2, 3])
def test_decision_boundary_pieces_against_lp(out):
    net = plnet(mlp([2, 5, 4, out], seed=30 + out), 2)
    res = full_space(net)
    A, c = net.local_affine(res.interior_points)
    pairs = [(0, None)] if out == 1 else [(i, j) for i in range(out) for j in range(i + 1, out)]
    ref = 0
    for r, p in enumerate(res.patterns.tolist()):
        G, h = net.region_inequalities(torch.tensor(p))
        for i, j in pairs:
            a = A[r, i] - (0 if j is None else A[r, j])
            b = c[r, i] - (0 if j is None else c[r, j])
            Gx, hx = [G], [h]
            for k in range(out):
                if j is not None and k not in (i, j):
                    Gx.append((A[r, i] - A[r, k])[None])
                    hx.append((c[r, i] - c[r, k])[None])
            Gs, hs = torch.cat(Gx).numpy(), torch.cat(hx).numpy()
            nrm = np.linalg.norm(Gs, axis=1)
            keep = nrm > 0
            sol = linprog(np.r_[0.0, 0.0, -1.0], A_ub=np.hstack([-Gs[keep], nrm[keep, None]]), b_ub=hs[keep],
                          A_eq=np.r_[a.numpy(), 0.0][None], b_eq=[-float(b)],
                          bounds=[(None, None)] * 2 + [(None, 1.0)], method="highs")
            if sol.status == 0 and sol.x[-1] > 1e-9:
                ref += 1
    assert res.decision_boundary_pieces == ref


# ----------------------------------------------------------------------------------- degenerate
def _layer(W, b):
    W = np.asarray(W, dtype=float)
    lin = nn.Linear(W.shape[1], W.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(W, dtype=torch.float64))
        lin.bias.copy_(torch.as_tensor(b, dtype=torch.float64))
    return lin


def shallow(W, b, v=None):
    W = np.asarray(W, dtype=float)
    v = np.ones((1, W.shape[0])) if v is None else np.asarray(v, dtype=float)
    return plnet(nn.Sequential(_layer(W, b), nn.ReLU(), _layer(v, [0.0])).eval(), W.shape[1])


@pytest.mark.parametrize("W,b,count,bounded", [
    ([[1, 0], [0, 1], [1, 1]], [0, 0, 0], 6, 0),               # three concurrent lines
    ([[1, 0], [0, 1], [1, 1]], [0, 0, -1], 7, 1),              # generic triangle
    ([[1, 0], [1, 0], [0, 1]], [0, 0, 0], 4, 0),               # duplicated neuron
    ([[1, 0], [2, 0], [0, 1]], [-1, -2, 0], 4, 0),             # the same hyperplane, scaled
    ([[1, 0], [1, 0], [0, 1]], [0, -1, 0], 6, 0),              # two parallel lines and a transversal
    ([[1, 0], [1, 0], [1, 0]], [0, -1, 1], 4, 0),              # parallel strips: no vertex at all
    ([[1, 0], [-1, 0]], [-1, -1], 3, 0),                       # antiparallel: x<-1, middle, x>1
    ([[0, 0], [1, 1]], [0, 0], 2, 0),                          # a zero neuron
    ([[0, 0], [1, 1]], [1, 0], 2, 0),                          # a constant neuron
    ([[1, 0], [0, 1], [1, -1], [1, 1]], [0, 0, 0, 0], 8, 0),   # four lines through one point
    ([[1, 0], [0, 1], [-1, -1], [1, -1]], [0, 0, 1, 0], 10, 2),  # mixed: two concurrent at 0
])
def test_degenerate_arrangements(W, b, count, bounded):
    net = shallow(W, b)
    res = full_space(net, neighbours=True, audit_samples=4000)
    assert res.count == count
    assert int(res.bounded.sum()) == bounded
    assert pattern_set(res.patterns) == lp_exhaustive(net)
    assert res.audit.shape[0] == 0
    check_witnesses(net, res)
    boxed = full_space(net, box=(-5.0, 5.0))
    assert pattern_set(boxed.patterns) == lp_exhaustive(net, box=(-5 * np.ones(2), 5 * np.ones(2)))
    check_witnesses(net, boxed)


def test_degenerate_deep_net_exhaustive():
    # integer weights, zero biases: every boundary passes through the origin (a central fan), and
    # deeper units coincide with earlier hyperplanes on whole regions
    torch.manual_seed(0)
    l1 = _layer([[1, 0], [0, 1], [1, 1], [1, -1]], [0, 0, 0, 0])
    l2 = _layer([[1, -1, 0, 0], [0, 0, 1, -1], [1, 1, -1, 0]], [0, 0, 0])
    net = plnet(nn.Sequential(l1, nn.ReLU(), l2, nn.ReLU(), _layer([[1, 1, 1]], [0])).eval(), 2)
    res = full_space(net, neighbours=True)
    assert pattern_set(res.patterns) == lp_exhaustive(net)
    check_witnesses(net, res)
    assert int(res.bounded.sum()) == 0  # a central fan has only cones


def lp_dimension(G, h) -> int:
    """Dimension of {x : G x + h >= 0} (-1 if empty): d minus the rank of its implicit equalities,
    the rows whose maximum over the set is 0 (one LP per row)."""
    G, h = np.asarray(G), np.asarray(h)
    d = G.shape[1]
    free = [(None, None)] * d
    if linprog(np.zeros(d), A_ub=-G, b_ub=h, bounds=free, method="highs").status != 0:
        return -1
    eq = []
    for r in range(len(h)):
        if not G[r].any():
            continue
        res = linprog(-G[r], A_ub=-G, b_ub=h, bounds=free, method="highs")
        if res.status == 0 and -res.fun + h[r] <= 1e-9 * (1 + abs(h[r])):
            eq.append(G[r])
    return d - (np.linalg.matrix_rank(np.array(eq), tol=1e-9) if eq else 0)


def lp_neighbours(net, patterns) -> set:
    """Pairs of regions whose closures share a (d-1)-dimensional set."""
    G, h = net.region_inequalities(patterns)
    out = set()
    for i, j in itertools.combinations(range(patterns.shape[0]), 2):
        if lp_dimension(torch.cat([G[i], G[j]]).numpy(), torch.cat([h[i], h[j]]).numpy()) == net.input_dim - 1:
            out.add((i, j))
    return out


@pytest.mark.parametrize("case", ["fan", "maxpool"])
def test_neighbours_in_degenerate_nets_against_lp(case):
    if case == "fan":
        l1 = _layer([[1, 0], [0, 1], [1, 1], [1, -1]], [0, 0, 0, 0])
        l2 = _layer([[1, -1, 0, 0], [0, 0, 1, -1], [1, 1, -1, 0]], [0, 0, 0])
        net = plnet(nn.Sequential(l1, nn.ReLU(), l2, nn.ReLU(), _layer([[1, 1, 1]], [0])).eval(), 2)
    else:
        torch.manual_seed(5)
        module = nn.Sequential(nn.Conv1d(1, 2, 2), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(),
                               nn.Linear(2, 1)).double().eval()
        net = plnet(module, (1, 3))
    res = full_space(net, neighbours=True)
    assert pattern_set(res.patterns) == lp_exhaustive(net)
    assert pattern_set(res.neighbours) == lp_neighbours(net, res.patterns)


def test_lineality_regions_without_vertices():
    # first layer only reads x1: every region is a slab (contains lines), none has a vertex
    l1 = _layer([[1, 0, 0], [-1, 0, 0], [2, 0, 0]], [0.5, 0.3, -1.0])
    l2 = _layer([[1, 1, -1], [1, -2, 1]], [-0.2, 0.1])
    net = plnet(nn.Sequential(l1, nn.ReLU(), l2, nn.ReLU(), _layer([[1, -1]], [0])).eval(), 3)
    res = full_space(net)
    assert pattern_set(res.patterns) == lp_bfs(net)
    assert not bool(res.bounded.any())
    check_witnesses(net, res)


def test_no_max_units_is_one_region():
    net = plnet(nn.Sequential(nn.Linear(3, 2)).double().eval(), 3)
    res = full_space(net)
    assert res.count == 1 and res.patterns.shape == (1, 0) and not bool(res.bounded[0])
    assert res.linear_count == 1


# ----------------------------------------------------------------------------------- budgets, API
def test_budgets_give_partial_genuine_results():
    net = plnet(mlp([3, 8, 8, 2], seed=2), 3)
    full = full_space(net)
    part = full_space(net, max_regions=25)
    assert not part.complete and part.count == 25 and part.stopped_by == "max_regions"
    assert pattern_set(part.patterns) <= pattern_set(full.patterns)
    check_witnesses(net, part)
    assert part.linear_count is None and part.decision_boundary_pieces is None
    quick = full_space(net, time_limit=1e-6)
    assert not quick.complete and quick.stopped_by == "time_limit"
    assert pattern_set(quick.patterns) <= pattern_set(full.patterns)
    big = full_space(net, max_regions=10**6)
    assert big.complete and big.count == full.count


@pytest.mark.parametrize("d", [128, 784])
def test_time_limit_holds_in_high_dimension(d):
    """Set-up and every cut respect the clock (before: d = 784 had not returned after 400 s, d = 128
    took 16.8 s and 4.7 GB with a 2 s limit)."""
    import time

    net = two_layer_mlp([d, 16, 10], 0)
    t = time.perf_counter()
    res = full_space(net, time_limit=0.5)
    assert time.perf_counter() - t < 30
    assert not res.complete and res.stopped_by == "time_limit" and not res.certified


def test_box_memory_is_checked_before_allocating():
    """A box in d = 40 has 2^40 vertices (before: 8.8 TB requested; d = 24 reached 6.9 GB); the
    facet engine (the default there) never builds the cube's vertices."""
    for d in (24, 40):
        with pytest.raises(ResourceLimitError, match="memory_budget"):
            full_space(two_layer_mlp([d, 8, 1], 0), box=(-1.0, 1.0), time_limit=2, max_regions=10, method="vertex")
    with pytest.raises(InvalidInputError, match="memory_budget"):
        full_space(two_layer_mlp([2, 3, 1], 0), memory_budget=0)


def test_small_memory_budget_stops_with_the_regions_found():
    net = two_layer_mlp([5, 12, 12, 1], 3)
    res = full_space(net, memory_budget=5e3, time_limit=30)
    assert not res.complete and res.stopped_by == "memory"
    check_witnesses(net, res)


def test_time_limits_return_regions_found_so_far():
    """A 6-32-32-32-1 net under a 1 s limit (before: 0 regions at 1 s and 5 s) and a small region
    budget (before: max_regions=100 took longer than 10000)."""
    net = two_layer_mlp([6, 32, 32, 32, 1], 0)
    res = full_space(net, time_limit=1.0)
    assert not res.complete and res.stopped_by == "time_limit" and res.count > 0
    check_witnesses(net, res)
    few = full_space(net, max_regions=100)
    assert few.count == 100 and few.stopped_by == "max_regions"
    check_witnesses(net, few)


def test_sampling_lower_bound_and_to_dict():
    net = plnet(mlp([3, 6, 5, 2], seed=9), 3)
    res = full_space(net, audit_samples=5000)
    sampled = sample_patterns(net, 20000)
    assert sampled <= pattern_set(res.patterns)
    assert len(sampled) <= res.count
    assert res.audit.shape[0] == 0
    d = res.to_dict(summary=True)
    assert d["count"] == res.count and d["domain"] == "R^d" and d["complete"] is True
    full = res.to_dict()
    assert len(full["patterns"]) == res.count and "neighbours" in full
    assert res.unbounded_count == int((~res.bounded).sum())


def integer_mlp(widths, seed, act=nn.ReLU):
    """Weights and biases in {-3..3}: points on a grid of half-integers hit walls exactly."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        lin = nn.Linear(widths[i], widths[i + 1]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randint(-3, 4, lin.weight.shape, generator=g).double())
            lin.bias.copy_(torch.randint(-3, 4, lin.bias.shape, generator=g).double())
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(act())
    return plnet(nn.Sequential(*layers), widths[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_region_of_points_on_walls(seed):
    """Points where a pre-activation is exactly 0 lie on walls: each must get a region whose closed
    polyhedron (``region_inequalities``, exact here: small integers) contains it."""
    net = integer_mlp([2, 8, 8, 8, 1], seed)
    res = full_space(net)
    assert res.complete
    x = torch.cartesian_prod(torch.arange(-40, 41), torch.arange(-40, 41)).double() / 4
    r = res.region_of(x)
    assert bool((r >= 0).all())
    G, h = net.region_inequalities(res.patterns[r])
    assert bool(((G @ x[:, :, None])[..., 0] + h >= 0).all())
    # a point off every wall keeps the region of its own pattern; many points are on walls
    tr = net.trace(x)
    on_wall = torch.zeros(x.shape[0], dtype=torch.bool)
    for pc in tr.pieces:
        on_wall |= ((pc == pc.amax(-1, keepdim=True)).sum(-1) > 1).any(1)
    assert bool((res.patterns[r[~on_wall]] == tr.pattern[~on_wall]).all())
    assert int(on_wall.sum()) > 100


def two_layer_mlp(widths, seed):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]).double())
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return plnet(nn.Sequential(*layers), widths[0])


@pytest.mark.parametrize("widths,seed,near", [([2, 16, 16, 1], 0, 1e3), ([2, 8, 8, 2], 1, 1e6)])
def test_huge_boxes_give_the_count_of_all_of_space(widths, seed, near):
    """Every region meets [-near, near]^2, so every box at least that large has the regions of R^2:
    the count must not fall with the box's size (before: 62 of 572 from 1e12 on, an error at 1e308)."""
    net = two_layer_mlp(widths, seed)
    full = full_space(net)
    assert full.complete and full.certified and full.count > 100
    assert full_space(net, box=(-near, near)).count == full.count
    for e in (9, 12, 30, 100, 308):
        box = full_space(net, box=(-(10.0**e), 10.0**e))
        assert box.count == full.count and pattern_set(box.patterns) == pattern_set(full.patterns), e
        assert box.complete and bool(box.touches_boundary.any())


def parallel_walls(gap):
    lin = nn.Linear(2, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.3, 1.0]], dtype=torch.float64))
        lin.bias.copy_(torch.tensor([0.5, 0.5 - gap, 0.2], dtype=torch.float64))
    return plnet(nn.Sequential(lin, nn.ReLU(), nn.Linear(3, 1).double()), 2)


@pytest.mark.parametrize("gap", [1e-6, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15, 0.0])
@pytest.mark.parametrize("box", [None, (-1.0, 1.0), (-1e3, 1e3)])
def test_thin_regions_are_counted_certified_or_raised(gap, box):
    """Two parallel walls ``gap`` apart and a crossing line: 6 regions (4 when the walls coincide).
    A count is either right, or not certified, or the enumeration raises (before: 4, complete)."""
    truth = 6 if gap > 0 else 4
    try:
        res = full_space(parallel_walls(gap), box=box)
    except DegenerateGeometryError:
        return
    assert res.count == truth or not res.certified
    if gap >= 1e-10 and box != (-1e3, 1e3):
        assert res.count == 6
    if gap == 0:
        # an exact coincidence: the vertex engine takes it within its tolerance, the proof settles it
        assert res.count == 4 and res.certified


def test_result_is_a_region_result():
    from relulab.results import RegionResult

    net = plnet(mlp([2, 4, 1], seed=1), 2)
    res = full_space(net)
    assert isinstance(res, RegionResult) and isinstance(res, FullSpaceRegions)
    assert res.counts_what == "activation regions" and res.domain == "R^d" and res.seconds > 0
    assert res.stopped_by is None and res.complete and res.certified
    d = res.to_dict(summary=True)
    assert {"count", "linear_count", "complete", "stopped_by", "certified", "counts_what", "domain", "seconds"} <= set(d)
    assert len(repr(res)) < 1000
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert res.plot(ax=ax, resolution=20) is ax
    assert res.plot(resolution=20).__class__.__name__.endswith("Axes")
    plt.close("all")
    for bad in (True, 0, -3, 2.5, "10"):
        with pytest.raises(InvalidInputError, match="max_regions"):
            full_space(net, max_regions=bad)


def test_float32_network_is_enumerated_in_float64_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    net = plnet(mlp([2, 5, 1], seed=4), 2)
    net32 = plnet(mlp([2, 5, 1], seed=4), 2).to(dtype=torch.float32)
    r64, r32 = full_space(net), full_space(net32)
    assert pattern_set(r64.patterns) == pattern_set(r32.patterns) and r32.count == zaslavsky(5, 2)[0]
    assert torch.equal(r64.region_of(r64.interior_points), torch.arange(r64.count))
    ax = r64.plot(resolution=40)
    assert "activation regions" in ax.get_title()
    with pytest.raises(InvalidInputError):
        full_space(plnet(mlp([3, 2, 1]), 3)).plot()


def test_api_entry_point_and_validation():
    net = plnet(mlp([2, 3, 1], seed=0), 2)
    assert relulab.regions.full_space(net).count == zaslavsky(3, 2)[0]
    assert "full_space" in dir(relulab.regions) and "enumerate" not in dir(relulab.regions)
    with pytest.raises(AttributeError, match="now relulab.regions.full_space"):
        relulab.regions.enumerate  # noqa: B018
    assert not callable(sys.modules["relulab.regions.space"])  # a plain module, no class swap
    importlib.import_module("relulab.regions.space")  # importing the module must not shadow the function

    assert relulab.regions.full_space is full_space and callable(relulab.regions.full_space)
    with pytest.raises(InvalidInputError):
        full_space(net, box=(1.0, 0.0))
    with pytest.raises(InvalidInputError):
        full_space(net, box=([0, 0, 0], [1, 1, 1]))
    with pytest.raises(InvalidInputError):
        full_space(net, max_regions=0)
    with pytest.raises(InvalidInputError):
        full_space(net, time_limit=-1)
    with pytest.raises(InvalidInputError):
        full_space(mlp([2, 3, 1]))


# ----------------------------------------------------------------------------------- property tests
@settings(max_examples=12, deadline=None)
@given(d=st.integers(1, 3), w1=st.integers(1, 5), w2=st.integers(0, 4), seed=st.integers(0, 10_000),
       act=st.sampled_from(["relu", "leaky", "abs", "maxout2", "maxout3"]), boxed=st.booleans())
def test_random_nets_against_lp(d, w1, w2, seed, act, boxed):
    torch.manual_seed(seed)
    layers, width = [], d
    for w in [w1] + ([w2] if w2 else []):
        if act.startswith("maxout"):
            layers.append(rnn.Maxout(width, w, int(act[-1])))
        else:
            layers += [nn.Linear(width, w), {"relu": nn.ReLU, "leaky": lambda: nn.LeakyReLU(0.2),
                                             "abs": rnn.Abs}[act]()]
        width = w
    layers.append(nn.Linear(width, 1))
    net = plnet(nn.Sequential(*layers).double().eval(), d)
    box = (-1.5 * np.ones(d), 2.0 * np.ones(d)) if boxed else None
    res = full_space(net, box=box)
    assert pattern_set(res.patterns) == lp_bfs(net, box=box)
    check_witnesses(net, res)
    assert sample_patterns(net, 2000, box=box) <= pattern_set(res.patterns)


def near_degenerate(module) -> bool:
    """Parameters or leaky slopes of relative size below 1e-6 (but not 0): float64 then cannot
    separate the boundaries they create from coincidences, and the engine may refuse."""
    vals = [p.detach().abs().flatten() for p in module.parameters()]
    vals += [torch.tensor([abs(m.negative_slope)]) for m in module.modules() if isinstance(m, nn.LeakyReLU)]
    v = torch.cat(vals) if vals else torch.zeros(0)
    return bool(((v > 0) & (v < 1e-6 * max(1.0, float(v.max()) if v.numel() else 1.0))).any())


@pytest.mark.skipif(random_module is None, reason="tests/strategies.py not importable")
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_random_modules_sampling_and_witnesses(data):
    module, shape = data.draw(random_module(families=("mlp", "cnn1d", "residual"), max_depth=2, max_width=4))
    net = relulab.PLNet.from_torch(module, shape)
    if net.input_dim > 3 or net.n_units > 14:
        return
    try:
        res = full_space(net, audit_samples=3000)
    except DegenerateGeometryError:
        assert near_degenerate(module)
        return
    assert res.complete and res.audit.shape[0] == 0
    check_witnesses(net, res)
    assert len(sample_patterns(net, 4000)) <= res.count


@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_tied_integer_nets_exhaustive(data):
    # integer weights in {-1, 0, 1} and zero biases: exact concurrency, coincidences and dead units
    n1 = data.draw(st.integers(1, 4))
    n2 = data.draw(st.integers(0, 3))
    W1 = data.draw(st.lists(st.lists(st.integers(-1, 1), min_size=2, max_size=2), min_size=n1, max_size=n1))
    layers = [_layer(np.array(W1), np.zeros(n1)), nn.ReLU()]
    if n2:
        W2 = data.draw(st.lists(st.lists(st.integers(-1, 1), min_size=n1, max_size=n1), min_size=n2, max_size=n2))
        b2 = data.draw(st.lists(st.integers(-1, 1), min_size=n2, max_size=n2))
        layers += [_layer(np.array(W2), np.array(b2, dtype=float)), nn.ReLU()]
    layers.append(_layer(np.ones((1, n2 or n1)), [0.0]))
    net = plnet(nn.Sequential(*layers).eval(), 2)
    res = full_space(net)
    assert pattern_set(res.patterns) == lp_exhaustive(net)
    check_witnesses(net, res)
    boxed = full_space(net, box=(-3.0, 2.0))
    assert pattern_set(boxed.patterns) == lp_exhaustive(net, box=(-3 * np.ones(2), 2 * np.ones(2)))
