"""Every activation region of a ``PLNet`` over all of R^d or over a box, exactly.

Two engines share the compactification below. The vertex engine (this module; ``method="vertex"``,
the default for d <= 4) keeps cells by their vertices and also yields the neighbour graph,
boundedness, linear regions and decision-boundary pieces; its vertex counts grow exponentially with
d. The facet engine (:mod:`relulab.regions._enum_lp`; ``method="facet"``, the default for
5 <= d <= 64) keeps cells by their inequalities and an interior witness, decides every split with
batched simplex LPs (work per region polynomial in d), proves every "does not split" decision from
the LP's multipliers (float64 with proven error bounds, else exact integer arithmetic) and every
witness interior, and raises :class:`DegenerateGeometryError` where neither settles a decision
(``method="auto"`` then falls back to the vertex engine).

Algorithm: layer-by-layer refinement of convex cells in vertex representation
-----------------------------------------------------------------------------
Cells are convex polytopes stored by their vertices and, per vertex, the set of constraints tight
there (``_enum_poly``: cutting, the combinatorial edge test, full-dimensionality from strict signs).
Max layers are processed in order. On a cell where the winners of the earlier max layers are fixed,
every piece of layer ``l`` is one affine function of the input, evaluated once per cell with the
earlier winners forced (``_enum_eval``). Each cell is then replaced by its full-dimensional parts with
a fixed winner for every unit of the layer:

* two-piece units (ReLU, leaky ReLU, abs) cut by ``g = p_1 - p_0``; the side ``g > 0`` is winner 1,
  and a cell on which ``g`` vanishes identically keeps winner 0 (the lowest-index rule of
  :meth:`PLNet.pattern`). The signs of every unit at the vertices of every cell of the previous
  layer say which units cross which cell; the others are settled at once, and the cells are cut in
  rounds, round ``r`` cutting each cell by the ``r``-th unit crossing its parent (all cells at once);
* K-piece units (maxout, max-pooling): for each piece ``a`` a copy of the cell clipped by
  ``p_a >= p_b`` for every other valid ``b`` (pieces identical to ``p_a`` on the cell are skipped
  when ``b > a`` and eliminate the copy when ``b < a``): exactly the unit's tie sets, not full
  hyperplanes, so no cell is split by a hyperplane that is not a boundary.

After the last max layer every cell is a full-dimensional convex set of constant pattern. An
activation region ``{x : pattern(x) = p}`` is convex (an intersection of half-spaces), so distinct
patterns are distinct regions; cells of one region that the domain's own walls (below) cut apart are
merged by pattern. No LP is solved; work is tensor operations over all cells of a batch at once.

All of R^d: a compactification with a certificate
-------------------------------------------------
Let ``a_0..a_d`` be the unit normals of a regular simplex (``sum a_k = 0``, ``a_i . a_j = -1/d``),
``phi(x) = max_k a_k . x`` (positive for ``x != 0``) and ``R0 > 0`` a length scale. The map
``y = Phi(x) = u / (1 + phi(u))``, ``u = x / R0``, is a homeomorphism from R^d onto the interior of
the simplex ``S = {y : a_k . y <= 1}`` with inverse ``x = R0 y / s(y)``, ``s(y) = 1 - phi(y)``. On the
cone where ``a_k`` attains ``phi`` it is a projective map with positive denominator: it maps that cone
onto the pyramid ``P_k = conv(0, facet k of S)``, convex sets to convex sets and hyperplanes to
hyperplanes. Every piece ``p`` of the network satisfies ``s p(x) = N_s(R0 y)`` (``N_s``: all biases
times ``s``; max units are positively homogeneous), which on ``P_k`` is affine in ``y`` (``s`` is
``1 - a_k . y`` there) and extends continuously to ``s = 0`` (the bias-free network). So the
compactified network is again piecewise affine on the compact pyramids, and since ``s > 0`` inside
``S``, ``argmax`` (hence the pattern) at ``y`` equals the pattern at ``x``.

Claim: the regions of R^d are in bijection with the distinct patterns of the full-dimensional cells
the refinement produces in the ``d + 1`` pyramids. Each cell lies in one region (constant pattern).
Conversely a region ``R`` is full-dimensional and the ``d + 1`` closed cones cover R^d, so ``R`` meets
one of them in a set with interior; its image is a full-dimensional part of ``P_k`` with pattern
``p``, which the refinement of ``P_k`` (exact, as for a box) finds. Nothing is assumed about vertices,
lineality or where the complex "ends": regions without any vertex (slabs, cylinders) are covered like
any other, and no box has to contain anything. Boundedness is exact too: ``R`` is unbounded iff the
closure of some cell of ``R`` meets ``s = 0`` (a ray in ``R`` eventually runs in one closed cone, and
its image ends on ``s = 0`` in the closure of a cell of that pyramid; conversely points of a cell with
``s -> 0`` are points of ``R`` with ``|x| -> inf``), i.e. iff one of its cells has a vertex on the outer
facet, which the incidence bits record. (Parallel boundaries meet on the outer facet, so vertices
there are often non-simple; the edge test does not assume simplicity.)

Box (``domain = "box"``): the same pyramids, first clipped by the box's ``2d`` faces, which are
hyperplanes in compactified coordinates too (on ``P_k``, ``x_i >= lo_i`` reads
``R0 y_i - lo_i s(y) >= 0``). Coordinates then stay within the simplex whatever the box's size, so
a box of 1e12 or 1e308 is refined at the same scale as all of R^d (a box given in input
coordinates would carry its size into every vertex's rounding error).

Tolerances
----------
A value ``g(v)`` of an affine function at a vertex counts as zero when
``|g(v)| <= 1e-11 |grad g|_1 R + 1e-12 M``: ``R`` is the size of the cell's coordinates (vertices are
trusted to ``1e-11 R``; they come from convex combinations, each adding ~1e-16) and ``M`` bounds every
quantity the evaluation of ``g`` on that cell touches (the network run with ``|W|``, ``|b|`` on the
cell's extent, whatever the pattern: ``Evaluator.bounds``). Exact degeneracies (concurrent or
coinciding hyperplanes, duplicated or dead neurons, tied max-pool entries) round to far below that
and are then resolved combinatorially and exactly: a vertex on a hyperplane joins both sides, a
function vanishing on a whole cell is a tie, and the edge test does not assume simple polytopes.
On every degenerate arrangement tested, the rounding of an exact zero stays below a thousandth of
the tolerance. A value in the upper part of the band (``AMBIGUOUS tol < |g| <= tol``) is therefore
neither an exact zero nor resolvable: two boundaries closer than float64 separates at that scale
(e.g. parallel walls about 1e-12 apart), and :class:`DegenerateGeometryError` is raised instead of
merging them. Where the result would be inconsistent (a facet without a region across it)
:class:`DegenerateGeometryError` is raised too. These tolerances are estimates, so the vertex
engine's own combinatorics prove nothing. Its result over R^d is proven from its own cells
(:mod:`relulab.regions._vertex_cert`): every vertex is the exact solution of ``d`` of its tight rows
(the others of a non-simple vertex at infinity vanish there by a lemma on ReLU chains),
located by a verified bound and checked against every other row of its cell in float64 under
proven error bounds; every edge of every cell has both ends listed (so every cell is exactly the
convex hull of its vertices), and across every facet the cell with the neighbouring pattern is
listed (so the cells cover the compactified space). That also proves the neighbour graph behind
``linear_count``. Where these float64 filters cannot decide (non-simple vertices off that lemma, ties, a sign
within its bound) and for boxes, the result is ``certified`` only when the facet engine's proven
enumeration (filtered predicates, exact integer arithmetic and exact LPs on the float64 data)
finds exactly the same patterns, within a work budget (``PROOF_WORK`` regions x units) and the time
limit (a box the facet engine cannot prove, e.g. of extent 1e308, is proven through all of R^d when
it meets every region there, each witness verified exactly). A disagreement, or any
:class:`DegenerateGeometryError` of the vertex engine, hands the count to the facet engine
(``method="auto"`` without ``neighbours``; otherwise it is raised); a near-degenerate result over
the budget raises; a count that neither proof settles (the facet engine raises on it too) is raised,
not returned (``certify=False`` returns it unproven); a proof stopped by a budget leaves the result
uncertified with the reason in ``stats["certificate"]``.
Every witness is checked (strict inequalities, and :meth:`PLNet.pattern` except at exact ties); a
failure triggers an LP (Chebyshev centre) certificate, and if that fails too,
:class:`DegenerateGeometryError` is raised rather than a count returned.

Derived quantities
------------------
* ``neighbours``: pairs of regions sharing a (d-1)-dimensional facet. A constraint tight at a simple
  vertex of a cell (d tight constraints) is a facet of the cell, and no other unit's boundary
  contains it. Across such a facet, on unit ``q``'s boundary, only ``q`` changes its winner: every
  other unit's pre-activation is continuous and nonzero on the facet's relative interior, or, if it
  vanishes on the whole cell (a tie), the cell is sent down the general path. Then the region across
  has the facet as its own (the units after ``q`` agree on it), so it is looked up by pattern. In
  general (constraints tight only at non-simple vertices), a face is a facet iff no other constraint
  tight on all of its vertices is tight at more vertices of the cell, and facets on several units'
  boundaries, or in cells with ties, are resolved by the pattern at ``x_F + eps n`` for all small
  ``eps > 0`` (``x_F`` a relative interior point of the facet, ``n`` its outward normal), computed
  lexicographically from values at ``x_F`` and derivatives along ``n``. If a neighbour cannot be
  found, :class:`DegenerateGeometryError` is raised.
* ``linear_count``: linear regions, the classes of the neighbour graph restricted to pairs with
  equal gradients (``f`` is continuous, so equal gradients across a shared facet mean the same affine
  map); union-find by label propagation.
* ``decision_boundary_pieces`` (Tseran and Montufar, "On the Expected Complexity of Maxout
  Networks", NeurIPS 2021): the number of pairs (activation region ``R``, classes ``i < j``) such
  that ``{x in R : f_i(x) = f_j(x) >= f_k(x) for all k}`` is (d-1)-dimensional and meets the
  interior of ``R``; for one output, the regions where ``{f = 0}`` crosses the interior. Ties that
  hold on a whole region (``f_i = f_j`` identically, e.g. two dead output ReLUs) are not pieces.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from relulab.core.budgets import check_budget
from relulab.core.errors import DegenerateGeometryError, InvalidInputError, ResourceLimitError
from relulab.core.plnet import PLNet
from relulab.core.threads import threads_for
from relulab.regions._enum_eval import Evaluator, median_tie_distance
from relulab.regions._enum_poly import bitmask, cut, popcount, segment_count, segment_or, unpack_bits
from relulab.results import RegionResult

__all__ = ["full_space", "FullSpaceRegions"]

# zero tolerances (see the module docstring): coordinates are trusted to TAU_X relative to their
# size, evaluations to TAU_M relative to the magnitude bound of what they touch
TAU_X = 1e-11
TAU_M = 1e-12
# bytes a batch of cells may occupy at the start (the budget behind memory_budget's default)
DEFAULT_MEMORY = 2 * 2**30
# boxes reaching further than this many length scales from the origin are refined in compactified
# coordinates (see the module docstring)
CUBE_RATIO = 1e3
# a value |g| in (AMBIGUOUS tol, tol] is too large for the rounding of an exact zero and too small
# to be resolved: the enumeration raises instead of guessing
AMBIGUOUS = 1e-2
# input dimensions where method="auto" picks the facet (LP) engine: below, vertex cells are few and
# cheap; far above, every cell's d + 1 chart rows cost O(d^2) memory. Certified counts on relucent's
# networks, CPU s in one process: d = 4 (4-10-10-2) vertex engine with its own proof 2.3, facet 3.9;
# d = 5 (5-10-10-2) vertex 14.3 (31 vertices per cell; its proof alone 16 s), facet 7.9
FACET_MIN_D = 5
FACET_MAX_D = 64
# regions x units up to which a vertex-engine result that its own cells cannot prove is proven by the
# facet engine (about 15 CPU s on one core; above it the result says it is not proven, or raises when
# the vertex engine took signs for exact zeros)
PROOF_WORK = 1_000_000


@dataclass(kw_only=True, repr=False)
class FullSpaceRegions(RegionResult):
    """Activation regions of a network over a domain (all of R^d or a box).

    Shared fields (:class:`relulab.results.RegionResult`): ``count`` activation regions
    (full-dimensional, one per realized pattern) met by the domain; ``linear_count`` (adjacent
    activation regions with equal affine maps merged); ``complete`` (False when a budget stopped
    the search: every listed region is then genuine, but some may be missing) and ``stopped_by``;
    ``certified``: the count and patterns are proven (facet engine: its own decisions are proven;
    vertex engine: its cells' exact vertices, edges and facets, or the facet engine's proven
    enumeration finding exactly its patterns, see ``_prove``), and so are the gradient equalities
    behind ``linear_count``; ``stats["certificate"]`` says which, or why not; ``domain`` ("R^d" or
    "box"); ``seconds``. ``linear_certified``: whether ``linear_count`` is proven: its adjacency (which
    regions share a facet) is proven by the exact facets of the vertex engine's cells (R^d, when
    the float64 filters settle every vertex) and its gradient equalities exactly
    (``stats["linear_certificate"]`` says why not otherwise); None without a linear count.

    ``patterns`` (count, n_units) long; ``interior_points`` (count, d): a point strictly inside
    each region (inside the box too in box mode) whose pattern is the region's;
    ``bounded`` (count,) bool in R^d mode (None in box mode); ``touches_boundary`` (count,) bool:
    the region reaches the box boundary (box mode) or infinity (R^d mode, = ~bounded);
    ``neighbours`` (E, 2) long pairs i < j of regions sharing a (d-1)-facet (when requested);
    ``decision_boundary_pieces``: see the module docstring;
    ``audit``: patterns of sampled points that the enumeration lacks (empty when all is well).
    """

    patterns: torch.Tensor
    interior_points: torch.Tensor
    bounded: torch.Tensor | None
    touches_boundary: torch.Tensor
    decision_boundary_pieces: int | None
    box: tuple | None = None
    neighbours: torch.Tensor | None = None
    audit: torch.Tensor | None = None
    audit_samples: int = 0
    cells: int = 0
    stats: dict = field(default_factory=dict)
    linear_certified: bool | None = None

    _summary_fields = ("count", "linear_count", "decision_boundary_pieces", "complete", "stopped_by", "certified",
                       "linear_certified", "counts_what", "domain", "box", "cells", "seconds", "audit_samples")

    _index = None  # (sorted pattern hashes, order), built on the first region_of
    _rvec = None

    @property
    def unbounded_count(self) -> int | None:
        return None if self.bounded is None else int((~self.bounded).sum())

    def _need_regions(self, what: str) -> None:
        if self.patterns is None:
            where = self.stats.get("out", {})
            path = where.get("path") if isinstance(where, dict) else where
            raise InvalidInputError(
                f"{what} needs the regions in memory; this result streamed them to a file"
                + (f" ({path})" if path else "") + ": read them back with relulab.regions.read_regions")

    def region_of(self, x) -> torch.Tensor:
        """Index of a region containing each point (flat (B, d) or shaped like the network's input).

        A point with a unique winner in every unit gets the region of its pattern. A point on a
        region wall (some unit's pieces tie there) belongs to the closures of several regions and
        gets the lowest-indexed of them (values within the enumeration's rounding tolerance of a
        unit's maximum count as ties). -1 only for points in none of the listed regions (possible
        only when ``complete`` is False)."""
        self._need_regions("region_of")
        net = self._net
        x = torch.as_tensor(x, dtype=net.dtype, device=net.device)
        flat = x.reshape(-1, net.input_dim)
        p = net.pattern(flat.reshape(-1, *net.input_shape)).long()
        if self._index is None:
            self._index = torch.sort(_hash_rows(self.patterns, self._rvec))
        res = _lookup(self._index, self.patterns, _hash_rows(p, self._rvec), p)
        miss = (res < 0).nonzero().squeeze(1)
        if miss.numel():
            ev = Evaluator(net)
            tie = ev.tie_sets(flat[miss], ev.bounds(net.input_dim, net.dtype, net.device)[0], TAU_M)
            res[miss] = _closure_lookup(tie, self.patterns, self._index, self._rvec)
        return res.cpu()

    def plot(self, ax=None, extent=None, resolution: int = 300, seed: int = 0):
        """Two-dimensional inputs: the regions in random colours on a grid over ``extent`` (x0, x1,
        y0, y1; default the box, or a window around the witnesses), witnesses as dots."""
        from relulab.regions._plot import plot_regions

        self._need_regions("plot")
        return plot_regions(self, self.region_of, ax, extent, resolution, seed)


# ---------------------------------------------------------------------------------------- lookups
def _hash_rows(pat: torch.Tensor, rvec: torch.Tensor) -> torch.Tensor:
    """64-bit hash of every pattern row (a random linear form, wrapping)."""
    if pat.shape[1] == 0:
        return torch.zeros(pat.shape[0], dtype=torch.long, device=pat.device)
    return (pat.long() * rvec[: pat.shape[1]]).sum(1)


def _lookup(index, patterns, hq, pq) -> torch.Tensor:
    """Region index of each query (hash hq, pattern rows pq) in ``index = (sorted hashes, order)``,
    or -1."""
    hs, order = index
    if hs.numel() == 0:
        return torch.full_like(hq, -1)
    lo = torch.searchsorted(hs, hq)
    hi = torch.searchsorted(hs, hq, right=True)
    res = torch.full_like(hq, -1)
    one = (hi - lo) == 1
    cand = order[lo.clamp_max(hs.numel() - 1)]
    ok = one & (patterns[cand] == pq).all(1)
    res[ok] = cand[ok]
    for i in ((hi - lo) > 1).nonzero().squeeze(1).tolist():  # hash collisions: compare all
        for r in order[lo[i]:hi[i]].tolist():
            if bool((patterns[r] == pq[i]).all()):
                res[i] = r
    return res


def _closure_lookup(tie: torch.Tensor, patterns: torch.Tensor, index, rvec, max_combos: int = 4096) -> torch.Tensor:
    """Lowest index of a region whose closure holds each point, from the points' tie sets ``tie``
    (M, n, K) (pieces attaining each unit's maximum, :meth:`Evaluator.tie_sets`), or -1.

    A point lies in the closure of the region of ``p`` iff ``tie[m, u, p_u]`` for every unit ``u``.
    Points with few tied units try every consistent pattern by hash (expanding one tied unit at a
    time, all points at once); the others (more than ``max_combos`` consistent patterns, or hash
    collisions) test every region, in chunks."""
    M, n, K = tie.shape
    R = patterns.shape[0]
    dev = tie.device
    res = torch.full((M,), -1, dtype=torch.long, device=dev)
    if M == 0 or R == 0:
        return res
    base = tie.to(torch.int8).argmax(-1)  # lowest attaining piece
    nopt = tie.sum(-1)
    combos = torch.where(nopt > 1, nopt.double().log2(), torch.zeros((), dtype=torch.float64, device=dev)).sum(1)
    few = (combos <= math.log2(max_combos)).nonzero().squeeze(1)
    if few.numel():
        multi = nopt.index_select(0, few) > 1  # (F, n)
        ntied = multi.sum(1)
        tied_units = torch.argsort((~multi).to(torch.int8), dim=1, stable=True)  # tied units first
        cpt = torch.arange(few.numel(), device=dev)  # candidate -> row of `few`
        ch = _hash_rows(base.index_select(0, few), rvec)
        for k in range(int(ntied.max()) if ntied.numel() else 0):
            has = ntied.index_select(0, cpt) > k
            u = tied_units[cpt, k]
            opts = tie[few[cpt], u] & has[:, None]  # (C, K)
            opts[~has, 0] = True  # candidates without a k-th tied unit stay as they are
            c, j = opts.nonzero(as_tuple=True)
            delta = torch.where(has[c], (j - base[few[cpt[c]], u[c]]) * rvec[u[c]], torch.zeros_like(j))
            cpt, ch = cpt[c], ch[c] + delta
        hs, order = index
        pos = torch.searchsorted(hs, ch).clamp_max(hs.numel() - 1)
        reg = order[pos]
        ok = hs[pos] == ch
        pts = few[cpt]
        ok &= tie[pts[:, None], torch.arange(n, device=dev)[None], patterns[reg]].all(1)
        big = torch.iinfo(torch.long).max
        best = torch.full((few.numel(),), big, dtype=torch.long, device=dev)
        best.scatter_reduce_(0, cpt[ok], reg[ok], "amin")
        res[few] = torch.where(best == big, -1, best)
    rest = (res < 0).nonzero().squeeze(1)
    step = max(1, int(2e7 // max(1, R * n)))
    units = torch.arange(n, device=dev)[None]
    for i in range(0, rest.numel(), step):
        rows = rest[i:i + step]
        inside = tie[rows][:, units, patterns].all(-1)  # (m, R)
        first = torch.where(inside.any(1), inside.to(torch.int8).argmax(1), -1)
        res[rows] = first
    return res


# ---------------------------------------------------------------------------------------- setup
class _Units:
    """Units, their valid pieces and the constraint bit ids of their tie sets."""

    def __init__(self, net: PLNet, n_dom: int, dev):
        self.layers = []
        ids = n_dom
        base, kq = [], []
        bit_unit, bit_a, bit_b = [-1] * n_dom, [-1] * n_dom, [-1] * n_dom
        for l, layer in enumerate(net.max_units):
            K = layer.valid.sum(1).tolist()
            self.layers.append(K)
            for j, k in enumerate(K):
                q = net.unit_offsets[l] + j
                kq.append(k)
                if k < 2:
                    base.append(-1)
                    continue
                base.append(ids)
                for a in range(k):
                    for b in range(a + 1, k):
                        bit_unit.append(q)
                        bit_a.append(a)
                        bit_b.append(b)
                        ids += 1
        self.n_ids = ids
        self.W = max(1, (ids + 63) // 64)
        self.base = torch.tensor(base, dtype=torch.long, device=dev)
        self.k = torch.tensor(kq, dtype=torch.long, device=dev)
        self.bit_unit = torch.tensor(bit_unit, dtype=torch.long, device=dev)
        self.bit_a = torch.tensor(bit_a, dtype=torch.long, device=dev)
        self.bit_b = torch.tensor(bit_b, dtype=torch.long, device=dev)
        self.unit_mask = torch.zeros(self.W, dtype=torch.int64, device=dev)
        if ids > n_dom:
            self.unit_mask = bitmask(torch.arange(n_dom, ids, device=dev), self.W).sum(0)
            # bits are disjoint so the sum is their union (sum of distinct powers of two, wrapping)

    def pair_bit(self, q: int, a, b) -> torch.Tensor:
        """Bit id of the tie between pieces a and b (tensors, a != b) of unit q."""
        k = int(self.k[q])
        lo, hi = torch.minimum(a, b), torch.maximum(a, b)
        return int(self.base[q]) + lo * k - lo * (lo + 1) // 2 + (hi - lo - 1)


def _simplex_normals(d: int, dtype, dev) -> torch.Tensor:
    """Unit normals a_0..a_d of a regular simplex centred at 0 (a_i . a_j = -1/d)."""
    E = torch.eye(d + 1, dtype=dtype) - 1.0 / (d + 1)
    U, S, _ = torch.linalg.svd(E)
    A = U[:, :d] * 1.0  # rows: coordinates of e_k - centre in an orthonormal basis of 1^perp
    A = A / A.norm(dim=1, keepdim=True)
    return A.to(dev)


class _TooBig(Exception):
    """A cut would exceed the memory budget (the batch is split, or the search stops)."""


class _Batch:
    """A batch of cells: polytopes plus, per cell, the pattern so far and bookkeeping.

    Within a layer: ``stage`` is "start" (maps not yet computed), "multi" (K-piece units, one at a
    time, ``unit`` counts them) or "rounds" (two-piece units: in round ``r`` every live cell is cut
    by the r-th unit that crosses its parent cell, ``plan[par, r]``); cells whose parent has no
    unit left wait in ``done``. Vertex coordinates are relative to the parent's centroid while
    ``maps`` is set.
    """

    __slots__ = ("X", "cid", "inc", "C", "pat", "tie", "pyr", "par", "layer", "stage", "unit", "round", "maps",
                 "plan", "nplan", "flat", "done")

    def __init__(self, X, cid, inc, C, pat, tie, pyr, par=None, layer=0):
        self.X, self.cid, self.inc, self.C = X, cid, inc, C
        self.pat, self.tie, self.pyr, self.par = pat, tie, pyr, par
        self.layer, self.stage, self.unit, self.round = layer, "start", 0, 0
        self.maps = self.plan = self.nplan = self.flat = None
        self.done = []

    def like(self, X, cid, inc, C, pat, tie, pyr, par) -> "_Batch":
        b = _Batch(X, cid, inc, C, pat, tie, pyr, par, self.layer)
        b.stage, b.unit, b.round, b.maps = self.stage, self.unit, self.round, self.maps
        b.plan, b.nplan, b.flat = self.plan, self.nplan, self.flat
        return b

    def take(self, keep: torch.Tensor) -> "_Batch":
        """The cells where ``keep`` (C,) is True, as a batch (same layer state, no ``done``)."""
        rows = keep[self.cid].nonzero().squeeze(1)
        newid = torch.cumsum(keep.long(), 0) - 1
        sel = keep.nonzero().squeeze(1)
        return self.like(self.X.index_select(0, rows), newid.index_select(0, self.cid.index_select(0, rows)),
                         self.inc.index_select(0, rows), int(sel.numel()), self.pat.index_select(0, sel),
                         self.tie.index_select(0, sel), self.pyr.index_select(0, sel),
                         None if self.par is None else self.par.index_select(0, sel))

    def split(self):
        """Two batches with the cells halved (the waiting cells go with the first)."""
        h = self.C // 2
        keep = torch.arange(self.C, device=self.cid.device) < h
        a, b = self.take(keep), self.take(~keep)
        a.done = self.done
        return a, b

    @staticmethod
    def concat(parts: list) -> "_Batch":
        parts = [p for p in parts if p.C > 0] or parts[:1]
        first = parts[0]
        if len(parts) == 1:
            return first
        offs, o = [], 0
        for p in parts:
            offs.append(o)
            o += p.C
        cat = torch.cat
        par = None if first.par is None else cat([p.par for p in parts])
        return first.like(cat([p.X for p in parts]), cat([p.cid + f for p, f in zip(parts, offs)]),
                          cat([p.inc for p in parts]), o, cat([p.pat for p in parts]), cat([p.tie for p in parts]),
                          cat([p.pyr for p in parts]), par)


class _Maps:
    """Per parent cell: the pieces of the current layer as affine maps around the cell's centroid
    ``c0`` (the batch stores vertex coordinates relative to it while the layer is processed), their
    magnitude bounds, and the pieces' gradients in the original coordinates (R^d mode)."""

    __slots__ = ("c0", "R", "val", "tan", "mag", "xgrad", "dval", "dtan", "dmag", "dtol")

    def __init__(self, c0, R, val, tan, mag, xgrad):
        # unit-major layouts: val, mag (U, K, P); tan, xgrad (U, K, P, d); R (P,) coordinate size
        self.c0, self.R, self.val, self.tan, self.mag, self.xgrad = c0, R, val, tan, mag, xgrad
        # pieces 1 - 0 of every unit, what two-piece units cut by, and its zero tolerance
        if val.shape[1] > 1:
            self.dval = (val[:, 1] - val[:, 0]).contiguous()
            self.dtan = (tan[:, 1] - tan[:, 0]).contiguous()
            self.dmag = (mag[:, 1] + mag[:, 0]).contiguous()
            self.dtol = _tolerance(self.dtan, R, self.dmag)
        else:
            self.dval = self.dtan = self.dmag = self.dtol = None


def _tolerance(tan, R, mag):
    """Zero tolerance of an affine function on a cell: its gradient ``tan`` (..., P, d) times the
    coordinate error (TAU_X R), plus the rounding of its evaluation (TAU_M times the magnitude
    bound ``mag`` (..., P))."""
    return TAU_X * tan.abs().sum(-1) * R + TAU_M * mag


def _segment_mean(X, cid, C):
    cnt = torch.bincount(cid, minlength=C).to(X.dtype)
    return torch.zeros(C, X.shape[1], dtype=X.dtype, device=X.device).index_add_(0, cid, X) / cnt[:, None]


# ---------------------------------------------------------------------------------------- engine
class _Engine:
    def __init__(self, net: PLNet, box, max_regions, time_limit, want_graph, memory_budget=DEFAULT_MEMORY):
        self.net = net
        self.memory_budget = memory_budget
        self.dev = net.device
        self.dt = net.dtype
        self.d = net.input_dim
        self.ev = Evaluator(net)
        self.max_regions = max_regions
        self.deadline = None if time_limit is None else time.perf_counter() + float(time_limit)
        self.want_graph = want_graph
        self.box = box
        d = self.d
        # R^d, and boxes much larger than the network's length scale, are refined in compactified
        # coordinates (a box is then the compactified R^d clipped by its 2d faces, hyperplanes there
        # too): coordinates stay within the simplex whatever the box's size, so tolerances follow
        # the geometry, not the box. Moderate boxes are refined as cubes in input coordinates
        # (simple vertices, one cell: several times faster in d >= 6).
        self.A = _simplex_normals(d, self.dt, self.dev)
        self.R0 = self._length_scale()
        self.compact = box is None or float(torch.maximum(box[0].abs(), box[1].abs()).max()) > CUBE_RATIO * self.R0
        self.n_rd = 1 + d if self.compact else 0
        self.n_dom = self.n_rd + (0 if box is None else 2 * d)
        self.units = _Units(net, self.n_dom, self.dev)
        self.bnd_layers, self.bnd_out = self.ev.bounds(d, self.dt, self.dev)
        # per layer: two-piece units (cut in rounds) and K-piece units (one at a time)
        self.two = [[j for j, k in enumerate(K) if k == 2] for K in self.units.layers]
        self.multi = [[j for j, k in enumerate(K) if k > 2] for K in self.units.layers]
        self.two_pos = []
        for l, K in enumerate(self.units.layers):
            pos = torch.full((max(1, len(K)),), -1, dtype=torch.long, device=self.dev)
            pos[self.two[l]] = torch.arange(len(self.two[l]), device=self.dev)
            self.two_pos.append(pos)
        self.W = self.units.W
        self.ones_d = torch.ones(d, dtype=self.dt, device=self.dev)
        # boundary bits: the outer facet (bit 0), the box faces (after the simplex's bits); regions
        # touch the domain's boundary through the outer facet (R^d) or a box face
        self.outer_mask = bitmask(torch.zeros(1, dtype=torch.long, device=self.dev), self.W)[0]
        if not self.compact:
            self.outer_mask = torch.zeros_like(self.outer_mask)  # no outer facet (and bit 0 is a face)
        faces = torch.arange(self.n_rd, self.n_dom, device=self.dev)
        self.face_mask = bitmask(faces, self.W).sum(0) if faces.numel() else torch.zeros_like(self.outer_mask)
        self.bnd_mask = self.outer_mask if box is None else self.face_mask
        self.dom_mask = self.outer_mask | self.face_mask
        budgeted = max_regions is not None or time_limit is not None
        # under a budget, batches start small so that the depth-first search reaches finished
        # regions early (a stop then returns what was found), and grow with every emission
        self.cell_cap = 2 if budgeted else 1 << 62
        width = max([m.units * int(m.n_pieces.max()) for m in net.max_units] + [1])
        self.map_cap = max(64, int(3e7 // (width * (d + 2))))
        self.nv_cap = max(4096, int(2.5e8 // (8 * (d + self.W + 4))))
        # a vertex's coordinates and bitset, with the copies a cut makes
        self.vertex_bytes = 3 * 8 * (d + self.W + 4)
        # new vertices one cut of a batch may create (a cut is not interruptible: under a time limit,
        # batches whose next cut is larger are split first)
        self.new_cap = self.nv_cap // 16 if budgeted else self.nv_cap
        # collected per emitted cell
        self.out = {k: [] for k in ("pat", "x", "s", "touch", "db", "fc_cell", "fc_unit", "fc_win",
                                    "dg_cell", "dg_T", "dg_x", "dg_tie")}
        self.n_cells = 0
        self.hashes = []
        self.found = 0
        self.stopped_by = None
        self.progress = None
        self.near_zero = 0  # sign decisions at vertices taken as exact zeros (uncertified)
        # the emitted cells, kept for the proof from exact vertices (R^d only; None: not kept)
        self.cells = [] if box is None else None
        self.cell_bytes = 0
        self.cell_rid = self.all_edges = self.proven_edges = None
        self.linear_uncertain = False  # an equality of adjacent gradients inside their rounding bounds
        g = torch.Generator().manual_seed(0x5EED)
        self.rvec = torch.randint(-(2**62), 2**62, (max(1, net.n_units),), generator=g, dtype=torch.int64).to(self.dev)

    # ------------------------------------------------------------------ domain
    def _length_scale(self) -> float:
        """Median distance from 0 to the first max layer's tie hyperplanes (conditioning only)."""
        if not self.net.max_units:
            return 1.0
        d = self.d
        z = torch.zeros(1, d, dtype=self.dt, device=self.dev)
        eye = torch.eye(d, dtype=self.dt, device=self.dev)[None]
        val, tan = self.ev.run(0, z, eye, torch.ones(1, dtype=self.dt, device=self.dev),
                               torch.zeros(1, d, dtype=self.dt, device=self.dev),
                               torch.zeros(1, 0, dtype=torch.long, device=self.dev))
        # values (U, K) and gradients (U, K, d) of the first layer's pieces at 0
        return median_tie_distance(val[0], tan[0].permute(1, 2, 0), self.net.max_units[0].valid)

    def initial(self):
        """The pyramids ``P_k = conv(0, facet k of S)`` as batches of cells, a few pyramids at a time
        (generated on demand, so that set-up costs nothing before the budgets are checked).

        Bits: 0 is the outer facet; the facet of ``P_k`` opposite the vertex ``-d a_j`` (the wall
        shared with ``P_j``) is bit ``1 + (j if j < k else j - 1)``: local to the pyramid (a bit
        names one hyperplane within a cell, and a cell lies in one pyramid), so there are ``d + 1``
        domain bits instead of one per pair of pyramids."""
        d, dev, dt, W = self.d, self.dev, self.dt, self.W
        n = self.net.n_units
        if not self.compact:
            lo, hi = self.box
            need = (2 ** d) * (8 * (2 * d + 2 * W + 4))  # the cube's vertices, coordinates and bitsets, twice
            if need > self.memory_budget:
                raise ResourceLimitError(
                    f"a box in {d} dimensions has 2^{d} vertices: about {need / 2**30:.3g} GiB to start, over "
                    f"memory_budget={self.memory_budget / 2**30:.3g} GiB (raise memory_budget, or use a "
                    "lower-dimensional slice: relulab.regions.on_plane / on_line)")
            corners = torch.cartesian_prod(*[torch.tensor([0, 1], device=dev)] * d).reshape(-1, d)
            X = torch.where(corners.bool(), hi, lo).to(dt)
            ids = self.n_rd + 2 * torch.arange(d, device=dev)[None] + corners  # (2^d, d)
            inc = bitmask(ids.reshape(-1), W).view(-1, d, W).sum(1)
            cid = torch.zeros(X.shape[0], dtype=torch.long, device=dev)
            pat = torch.full((1, n), -1, dtype=torch.int8, device=dev)
            tie = torch.zeros(1, n, dtype=torch.bool, device=dev)
            yield _Batch(X, cid, inc, 1, pat, tie, torch.full((1,), -1, dtype=torch.long, device=dev))
            return
        V = -d * self.A  # vertex j of S is -d a_j
        full = bitmask(torch.arange(d + 1, device=dev), W).sum(0)
        walls = bitmask(torch.arange(1, d + 1, device=dev), W)  # (d, W)
        outer = bitmask(torch.zeros(1, dtype=torch.long, device=dev), W)
        inc1 = torch.cat([full - outer, full[None] - walls])  # apex: every wall; base vertex: all but its wall
        vert = torch.arange(d + 1, device=dev)
        # pyramids per batch: all of them in low dimension, fewer when one pyramid is large
        per = max(1, min(d + 1, int(self.nv_cap // (d + 1))))
        for k0 in range(0, d + 1, per):
            ks = torch.arange(k0, min(d + 1, k0 + per), device=dev)
            C = ks.numel()
            others = vert[None].expand(C, -1)[vert[None] != ks[:, None]].reshape(C, d)
            X = torch.cat([torch.zeros(C, 1, d, dtype=dt, device=dev), V[others]], 1).reshape(-1, d)
            inc = inc1.repeat(C, 1)
            cid = torch.arange(C, device=dev).repeat_interleave(d + 1)
            pyr = ks
            if self.box is not None:
                X, cid, inc, C, pyr = self._clip_to_box(X, cid, inc, C, pyr)
            pat = torch.full((C, n), -1, dtype=torch.int8, device=dev)
            tie = torch.zeros(C, n, dtype=torch.bool, device=dev)
            yield _Batch(X, cid, inc, C, pat, tie, pyr)

    def _clip_to_box(self, X, cid, inc, C, pyr):
        """Clip the pyramids by the box faces. On pyramid ``k`` (``s = 1 - a_k . y > 0``) the face
        ``x_i >= lo_i`` reads ``R0 y_i - lo_i s(y) >= 0`` and ``x_i <= hi_i`` reads
        ``hi_i s(y) - R0 y_i >= 0``: affine in ``y``, scaled to unit size."""
        lo, hi = self.box
        d, R0 = self.d, self.R0
        for i in range(d):
            for side, c in ((0, float(lo[i])), (1, float(hi[i]))):
                sgn = 1.0 if side == 0 else -1.0
                L = max(R0, abs(c))
                grad = (sgn * c / L) * self.A[pyr]  # (C, d)
                grad[:, i] += sgn * R0 / L
                const = torch.full((C,), -sgn * c / L, dtype=self.dt, device=self.dev)
                g = const.index_select(0, cid) + (X * grad.index_select(0, cid)) @ self.ones_d
                tol = (TAU_X * grad.abs().sum(1) * d + TAU_M * (const.abs() + grad.abs().sum(1) * d)).index_select(0, cid)
                bit = bitmask(torch.full((1,), self.n_rd + 2 * i + side, device=self.dev), self.W)[0]
                X, cid, inc, C, parent, _, _ = cut(X, cid, inc, C, g, tol, bit, d, clip=True,
                                                   keep_tie=torch.zeros(C, dtype=torch.bool, device=self.dev))
                pyr = pyr.index_select(0, parent)
        return X, cid, inc, C, pyr

    def _scale(self, y, pyr):
        """Network input, its tangents, the bias scale s and its tangents at points y of cells."""
        d, P = self.d, y.shape[0]
        eye = torch.eye(d, dtype=self.dt, device=self.dev)
        if not self.compact:
            return y, eye.expand(P, d, d), torch.ones(P, dtype=self.dt, device=self.dev), \
                torch.zeros(P, d, dtype=self.dt, device=self.dev)
        a = self.A[pyr]
        s = 1.0 - (a * y).sum(1)
        return self.R0 * y, (self.R0 * eye).expand(P, d, d), s, -a

    def _magnitude(self, c0, rho, A, B):
        """Bound on everything the evaluation of pieces on a cell touches (``Evaluator.bounds``):
        inputs up to R0 (|c0| + rho) in every coordinate (rounding in a vertex's coordinates scales
        with its largest one), bias scale up to 1 + |rho|_1 (s and its variation)."""
        r = (c0.abs().amax(1, keepdim=True) + rho.amax(1, keepdim=True)).expand_as(c0)
        if self.compact:
            r = self.R0 * r
            sig = 1.0 + rho.sum(1)
        else:
            sig = torch.ones(c0.shape[0], dtype=self.dt, device=self.dev)
        return torch.einsum("pd,...d->p...", r, A) + sig.view(-1, *([1] * B.dim())) * B

    def _maps(self, b: _Batch) -> _Maps:
        c0 = _segment_mean(b.X, b.cid, b.C)
        rho = torch.zeros(b.C, self.d, dtype=self.dt, device=self.dev).scatter_reduce_(
            0, b.cid[:, None].expand(-1, self.d), (b.X - c0[b.cid]).abs(), "amax", include_self=True)
        h0, dh0, s, ds = self._scale(c0, b.pyr)
        val, tan = self.ev.run(b.layer, h0, dh0, s, ds, b.pat.long())
        A, B = self.bnd_layers[b.layer]
        mag = self._magnitude(c0, rho, A, B)  # (P, U, K)
        xgrad = None
        if self.compact:
            # tan = R0 w - beta a_k for a piece w.x + beta: R0 w is its gradient in x (times R0)
            xgrad = tan + (val / s[:, None, None])[:, None] * self.A[b.pyr][:, :, None, None]
            xgrad = xgrad.permute(2, 3, 0, 1).contiguous()
        R = c0.abs().amax(1) + rho.amax(1)
        return _Maps(c0, R, val.permute(1, 2, 0).contiguous(), tan.permute(2, 3, 0, 1).contiguous(),
                     mag.permute(1, 2, 0).contiguous(), xgrad)

    def _check_growth(self, b: _Batch, g, tol):
        """Raise :class:`_TooBig` before a cut whose new vertices would not fit the memory budget:
        a cell gets one new vertex per edge crossing the hyperplane, at most ``npos nneg`` and, for
        simple vertices, ``d min(npos, nneg)``."""
        npos = segment_count(g > tol, b.cid, b.C)
        nneg = segment_count(g < -tol, b.cid, b.C)
        new = torch.minimum(npos * nneg, self.d * torch.minimum(npos, nneg)).sum()
        new = int(new)
        if (b.X.shape[0] + new) * self.vertex_bytes > self.memory_budget or (b.C > 1 and new > self.new_cap):
            raise _TooBig

    def _decided(self, g, tol):
        """Book-keeping of the sign decisions of unit boundaries at vertices: values within the
        zero tolerance are taken as exact zeros (the count is then not certified); values in the
        upper part of the tolerance band are far above the rounding of any exact zero (which
        stays below ``tol / 1000`` on every degenerate arrangement tested) yet not resolvable
        against the coordinates' error, so the geometry is raised as degenerate."""
        small = g.abs() <= tol
        n = int(small.sum())
        if n:
            self.near_zero += n
            amb = small & (g.abs() > AMBIGUOUS * tol)
            if bool(amb.any()):
                i = tuple(amb.nonzero()[0].tolist())  # g is a vector or (vertices, units)
                raise DegenerateGeometryError(
                    f"a unit's boundary passes {float(g[i].abs()):.3g} from a vertex, within float64's "
                    f"resolution of this cell (tolerance {float(torch.broadcast_to(tol, g.shape)[i]):.3g}) "
                    "but not an exact "
                    "degeneracy: boundaries this close (e.g. parallel walls about 1e-12 apart relative "
                    "to the network's scale) cannot be separated reliably")

    # ------------------------------------------------------------------ main loop
    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline

    def run(self):
        pyramids = self.initial()
        stack = []
        L = len(self.net.max_units)
        while True:
            if self._out_of_time():
                self.stopped_by = "time_limit"
                break
            if not stack:
                nxt = next(pyramids, None)
                if nxt is None:
                    break
                stack.append(nxt)
            b = stack.pop()
            if b.layer >= L:
                self.emit(b)
                self.cell_cap = min(2 * self.cell_cap, max(self.cell_cap, 2048))
                if self.max_regions is not None and self.found >= self.max_regions and stack:
                    self.stopped_by = "max_regions"
                    break
                continue
            if b.stage == "start":
                if b.C > self.map_cap:
                    stack.extend(reversed(b.split()))
                    continue
                self._layer_start(b)
            if b.stage == "multi":
                multi = self.multi[b.layer]
                off = self.net.unit_offsets[b.layer]
                pushed = False
                while b.unit < len(multi):
                    j = multi[b.unit]
                    self._unit(b, off + j, j, self.units.layers[b.layer][j])
                    b.unit += 1
                    if self._too_big(b) and b.unit < len(multi):
                        stack.extend(reversed(b.split()))
                        pushed = True
                        break
                    if self._out_of_time():
                        break
                if pushed:
                    continue
                if b.unit < len(multi):
                    self.stopped_by = "time_limit"
                    stack.append(b)
                    break
                b.stage, b.round = "rounds", 0
            pushed = False
            while True:
                live = b.nplan.index_select(0, b.par) > b.round
                if not bool(live.all()):
                    b.done.append(b.take(~live))
                    done, b = b.done, b.take(live)
                    b.done = done
                if b.C == 0:
                    break
                try:
                    self._round(b)
                except _TooBig:
                    if b.C > 1:
                        stack.extend(reversed(b.split()))
                        pushed = True
                    else:
                        self.stopped_by = "memory"
                    break
                b.round += 1
                if self._too_big(b):
                    stack.extend(reversed(b.split()))
                    pushed = True
                    break
                if self._out_of_time():
                    break
            if pushed:
                continue
            if b.C > 0:
                self.stopped_by = self.stopped_by or "time_limit"
                stack.append(b)
                break
            nb = _Batch.concat(b.done + [b])
            nb.X = nb.X + nb.maps.c0.index_select(0, nb.par).index_select(0, nb.cid)
            nb.layer, nb.stage, nb.unit, nb.round = b.layer + 1, "start", 0, 0
            nb.maps = nb.plan = nb.nplan = nb.flat = nb.par = None
            nb.done = []
            stack.append(nb)
        self.complete = not stack and self.stopped_by is None and next(pyramids, None) is None
        if self.complete:
            self.stopped_by = None

    def _too_big(self, b: _Batch) -> bool:
        return b.C > 1 and (b.X.shape[0] > self.nv_cap or b.C > self.cell_cap)

    def _layer_start(self, b: _Batch):
        """Affine maps of the layer's pieces per cell, and which two-piece units cross which cell."""
        mp = b.maps = self._maps(b)
        b.par = torch.arange(b.C, device=self.dev)
        b.X = b.X - mp.c0.index_select(0, b.cid)
        l, off = b.layer, self.net.unit_offsets[b.layer]
        K = self.units.layers[l]
        one = [j for j, k in enumerate(K) if k < 2]
        if one:
            b.pat[:, [off + j for j in one]] = 0
        two = torch.tensor(self.two[l], dtype=torch.long, device=self.dev)
        P, U2 = b.C, two.numel()
        b.plan = torch.zeros(P, 0, dtype=torch.long, device=self.dev)
        b.nplan = torch.zeros(P, dtype=torch.long, device=self.dev)
        b.stage, b.unit = "multi", 0
        if U2 == 0:
            return
        dval, dtan, dmag = mp.dval.index_select(0, two), mp.dtan.index_select(0, two), mp.dmag.index_select(0, two)
        dtol = mp.dtol.index_select(0, two)
        flat = None
        if self.compact:
            gx = mp.xgrad[:, 1].index_select(0, two) - mp.xgrad[:, 0].index_select(0, two)  # (U2, P, d)
            flat = gx.abs().amax(-1) <= TAU_M * dmag  # (U2, P): tie set = the outer facet
        # signs of every two-piece unit at every vertex of every parent cell
        NV = b.X.shape[0]
        npos = torch.zeros(P, U2, dtype=torch.long, device=self.dev)
        nneg = torch.zeros(P, U2, dtype=torch.long, device=self.dev)
        dvT, dmT = dval.T.contiguous(), dtol.T.contiguous()  # (P, U2)
        dtT = dtan.permute(1, 0, 2).reshape(P, U2 * self.d)  # (P, U2 d)
        step = max(1, int(4e6 // max(1, U2 * self.d)))
        for lo in range(0, NV, step):
            cid = b.cid[lo:lo + step]
            g = dvT.index_select(0, cid) + torch.bmm(dtT.index_select(0, cid).view(-1, U2, self.d),
                                                     b.X[lo:lo + step, :, None])[..., 0]
            tol = dmT.index_select(0, cid)
            self._decided(g, tol)
            npos.index_add_(0, cid, (g > tol).long())
            nneg.index_add_(0, cid, (g < -tol).long())
        nz = torch.bincount(b.cid, minlength=P)[:, None] - npos - nneg
        work = (npos > 0) & (nneg > 0)
        touch = (nz > 0) & ((npos > 0) | (nneg > 0))
        if flat is not None:
            touch &= ~flat.T
        work |= touch  # a face on the hyperplane: the cut adds its bit, splits nothing
        settled = (npos > 0) & (nneg == 0)  # winner 1; otherwise 0 (negative or tie)
        cols = (off + two).tolist()
        b.pat[:, cols] = settled.to(torch.int8)
        b.tie[:, cols] = (npos == 0) & (nneg == 0)
        b.nplan = work.sum(1)
        b.plan = two[torch.argsort((~work).to(torch.int8), dim=1, stable=True)]  # crossing units first, in order
        b.flat = None if flat is None else flat.T.contiguous()  # (P, U2) indexed like dval rows

    def _round(self, b: _Batch):
        """Cut every live cell by the next two-piece unit that crosses its parent."""
        mp = b.maps
        P = mp.c0.shape[0]
        j = b.plan[b.par, b.round]
        fi = j * P + b.par
        cid = b.cid
        dv = mp.dval.view(-1).index_select(0, fi)
        dt = mp.dtan.view(-1, self.d).index_select(0, fi)
        tol = mp.dtol.view(-1).index_select(0, fi).index_select(0, cid)
        g = dv.index_select(0, cid) + (b.X * dt.index_select(0, cid)) @ self.ones_d
        q = self.net.unit_offsets[b.layer] + j
        self._check_growth(b, g, tol)
        bit = bitmask(self.units.base.index_select(0, q), self.W)
        addbit = None
        if b.flat is not None:
            pos2 = self.two_pos[b.layer].index_select(0, j)
            addbit = ~b.flat[b.par, pos2]
        self._decided(g, tol)
        X, cid, inc, C, parent, side, allzero = cut(b.X, cid, b.inc, b.C, g, tol, bit, self.d, addbit=addbit)
        b.X, b.cid, b.inc, b.C = X, cid, inc, C
        rows, qc = torch.arange(C, device=self.dev), q.index_select(0, parent)
        b.pat = b.pat.index_select(0, parent)
        b.pat[rows, qc] = side.to(torch.int8)
        b.tie = b.tie.index_select(0, parent)
        b.tie[rows, qc] = allzero.index_select(0, parent)
        b.pyr = b.pyr.index_select(0, parent)
        b.par = b.par.index_select(0, parent)

    def _unit(self, b: _Batch, q: int, j: int, k: int):
        """Refine a batch by unit q (unit j of the current layer, k valid pieces)."""
        if k < 2:
            b.pat[:, q] = 0
            return
        mp = b.maps
        if k == 2:
            par = b.par
            cid = b.cid
            g = mp.dval[j].index_select(0, par).index_select(0, cid) + \
                (b.X * mp.dtan[j].index_select(0, par).index_select(0, cid)) @ self.ones_d
            tol = mp.dtol[j].index_select(0, par).index_select(0, cid)
            bit = bitmask(torch.full((1,), int(self.units.base[q]), device=self.dev), self.W)[0]
            self._decided(g, tol)
            X, cid, inc, C, parent, side, allzero = cut(b.X, b.cid, b.inc, b.C, g, tol, bit, self.d,
                                                        addbit=self._addbit(mp, par, j, 0, 1))
            b.X, b.cid, b.inc, b.C = X, cid, inc, C
            b.pat = b.pat.index_select(0, parent)
            b.pat[:, q] = side.to(torch.int8)
            b.tie = b.tie.index_select(0, parent)
            b.tie[:, q] = allzero.index_select(0, parent)
            b.pyr = b.pyr.index_select(0, parent)
            b.par = b.par.index_select(0, parent)
            return
        # K-piece unit: one copy per piece a, clipped by p_a >= p_b for all b != a
        C = b.C
        X = b.X.repeat(k, 1)
        cid = (b.cid[None] + C * torch.arange(k, device=self.dev)[:, None]).reshape(-1)
        inc = b.inc.repeat(k, 1)
        cell_a = torch.arange(k, device=self.dev).repeat_interleave(C)  # piece of each copy
        origin = torch.arange(C, device=self.dev).repeat(k)  # cell each copy came from
        Cc = k * C
        tied = torch.zeros(Cc, dtype=torch.bool, device=self.dev)
        for step in range(k - 1):
            other = torch.where(cell_a > step, torch.full_like(cell_a, step),
                                torch.full_like(cell_a, step + 1))  # the step-th piece other than a
            Pc = b.par[origin]  # parent of each copy-cell
            dv = mp.val[j][cell_a, Pc] - mp.val[j][other, Pc]  # p_a - p_b on each copy-cell
            tg = mp.tan[j][cell_a, Pc] - mp.tan[j][other, Pc]  # (Cc, d)
            g = dv.index_select(0, cid) + (X * tg.index_select(0, cid)) @ self.ones_d
            tol = _tolerance(tg, mp.R[Pc], mp.mag[j][cell_a, Pc] + mp.mag[j][other, Pc]).index_select(0, cid)
            bit = bitmask(self.units.pair_bit(q, cell_a, other), self.W)
            self._decided(g, tol)
            X, cid, inc, Cc, parent, _, allzero = cut(X, cid, inc, Cc, g, tol, bit, self.d, clip=True,
                                                      keep_tie=other > cell_a,
                                                      addbit=self._addbit(mp, b.par[origin], j, cell_a, other))
            tied = (tied | allzero)[parent]
            cell_a, origin = cell_a[parent], origin[parent]
        b.X, b.cid, b.inc, b.C = X, cid, inc, Cc
        b.pat = b.pat[origin]
        b.pat[:, q] = cell_a.to(torch.int8)
        b.tie = b.tie[origin]
        b.tie[:, q] = tied
        b.pyr = b.pyr[origin]
        b.par = b.par[origin]

    def _addbit(self, mp: _Maps, par, j, a, b):
        """False for cells where pieces a and b differ by a constant in x: in compactified
        coordinates their tie set is then the outer facet, which already has its own bit."""
        if not self.compact:
            return None
        if isinstance(a, int):
            gx = mp.xgrad[j, a][par] - mp.xgrad[j, b][par]  # (C, d)
            scale = mp.mag[j, a][par] + mp.mag[j, b][par]
        else:
            gx = mp.xgrad[j][a, par] - mp.xgrad[j][b, par]
            scale = mp.mag[j][a, par] + mp.mag[j][b, par]
        return gx.abs().amax(1) > TAU_M * scale

    # ------------------------------------------------------------------ finished cells
    def emit(self, b: _Batch):
        C, d = b.C, self.d
        if C == 0:
            return
        c = _segment_mean(b.X, b.cid, C)
        h0, dh0, s, ds = self._scale(c, b.pyr)
        x = h0 / s[:, None]
        touch = segment_count(((b.inc & self.bnd_mask) != 0).any(1), b.cid, C) > 0
        pat = b.pat
        o = self.out
        o["pat"].append(pat)
        o["x"].append(x)
        o["s"].append(s)
        o["touch"].append(touch)
        o["db"].append(self._decision(b, c, h0, dh0, s, ds))
        if self.cells is not None:
            self.cell_bytes += b.X.numel() * 8 + b.inc.numel() * 8 + b.pat.numel() * 2
            # kept within a quarter of the memory budget; beyond, the proof falls back to the facet engine
            self.cells = self.cells + [(b.X, b.cid, b.inc, b.pat, b.pyr, b.tie)] \
                if self.cell_bytes < self.memory_budget / 4 else None
        if self.want_graph:
            self._facets(b)
        self.n_cells += C
        if self.max_regions is not None:  # distinct regions so far, for the budget
            self.hashes = [torch.unique(torch.cat(self.hashes + [self._hash(pat)]))]
            self.found = int(self.hashes[0].numel())
        if self.progress is not None:
            # cells emitted so far (a region cut by the compactification's pyramids counts once per
            # piece until the final merge); the total is unknown until the search ends
            self.progress(self.n_cells, None, cells=self.n_cells)

    def _flips(self, b: _Batch, cell, c, base):
        """Record neighbour candidates: cell's pattern with the unit of bit c changing winner."""
        q = self.units.bit_unit[c]
        w = b.pat[cell, q].long()
        two = self.units.k[q] == 2
        a, bb = self.units.bit_a[c], self.units.bit_b[c]
        new = torch.where(two, 1 - w, torch.where(w == a, bb, a))
        # a shared facet is seen from both regions; looking it up from the side with the lower
        # winner finds every pair once
        up = new > w
        self.out["fc_cell"].append(cell[up] + base)
        self.out["fc_unit"].append(q[up])
        self.out["fc_win"].append(new[up])

    def _decision(self, b: _Batch, c, h0, dh0, s, ds) -> torch.Tensor:
        """Per cell and class pair: does the decision boundary cross the cell's interior?"""
        C = b.C
        val, tan = self.ev.run(None, h0, dh0, s, ds, b.pat.long())
        m = val.shape[1]
        rho = torch.zeros(C, self.d, dtype=self.dt, device=self.dev).scatter_reduce_(
            0, b.cid[:, None].expand(-1, self.d), (b.X - c[b.cid]).abs(), "amax", include_self=True)
        mag = self._magnitude(c, rho, *self.bnd_out)  # (C, m)
        Rc = c.abs().amax(1) + rho.amax(1)
        Xc = b.X - c[b.cid]
        if m <= 2:
            gv = val[:, 0] if m == 1 else val[:, 1] - val[:, 0]
            gt = tan[:, :, 0] if m == 1 else tan[:, :, 1] - tan[:, :, 0]
            gm = mag.sum(1)
            g = gv.index_select(0, b.cid) + (Xc * gt.index_select(0, b.cid)) @ self.ones_d
            return self._crosses(g, _tolerance(gt, Rc, gm).index_select(0, b.cid), b.cid, C)[:, None]
        f = val[b.cid] + (Xc[:, :, None] * tan[b.cid]).sum(1)  # (NV, m)
        fm = mag[b.cid]
        pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
        out = torch.zeros(C, len(pairs), dtype=torch.bool, device=self.dev)
        for p, (i, j) in enumerate(pairs):
            X, cid, inc, Cc = b.X, b.cid, b.inc, C
            fv, fmv, origin = f, fm, torch.arange(C, device=self.dev)
            for k in range(m):
                if k in (i, j):
                    continue
                gij = fv[:, i] - fv[:, j]
                phi = fv[:, i] - fv[:, k]
                oc = origin[cid]
                tphi = _tolerance(tan[oc, :, i] - tan[oc, :, k], Rc[oc], fmv[:, i] + fmv[:, k])
                tg = _tolerance(tan[oc, :, i] - tan[oc, :, j], Rc[oc], fmv[:, i] + fmv[:, j])
                # phi proportional to g on the cell: the constraint is void on {g = 0}
                num = torch.zeros(Cc, dtype=self.dt, device=self.dev).index_add_(0, cid, phi * gij)
                den = torch.zeros(Cc, dtype=self.dt, device=self.dev).index_add_(0, cid, gij * gij)
                alpha = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(den))
                res = (phi - alpha[cid] * gij).abs() > tphi + alpha[cid].abs() * tg
                prop = segment_count(res, cid, Cc) == 0
                phi = torch.where(prop[cid], torch.ones_like(phi), phi)
                bit = torch.zeros(Cc, self.W, dtype=torch.int64, device=self.dev)
                X2, cid2, inc2, Cn, parent, _, _ = cut(X, cid, inc, Cc, phi, tphi, bit, self.d, clip=True,
                                                    keep_tie=torch.ones(Cc, dtype=torch.bool, device=self.dev))
                # piece values at the new vertices: re-evaluate from the cell's affine output map
                origin = origin[parent]
                Xc2 = X2 - c[origin[cid2]]
                fv = val[origin[cid2]] + (Xc2[:, :, None] * tan[origin[cid2]]).sum(1)
                fmv = mag[origin[cid2]]
                X, cid, inc, Cc = X2, cid2, inc2, Cn
            oc = origin[cid]
            hit = self._crosses(fv[:, i] - fv[:, j],
                                _tolerance(tan[oc, :, i] - tan[oc, :, j], Rc[oc], fmv[:, i] + fmv[:, j]), cid, Cc)
            out[:, p] = segment_count(hit, origin, C) > 0
        return out

    @staticmethod
    def _crosses(g, tol, cid, C) -> torch.Tensor:
        return (segment_count(g > tol, cid, C) > 0) & (segment_count(g < -tol, cid, C) > 0)

    def _facets(self, b: _Batch):
        """Facets of the finished cells that lie on unit boundaries, as neighbour candidates.

        A constraint tight at a simple vertex (exactly d tight constraints, independent) is a facet of
        the cell, and no other constraint contains that facet (it would be tight at the vertex with a
        parallel normal): only its unit changes across. Constraints tight at non-simple vertices only,
        and all facets of cells with a unit tied on the whole cell, take the general path below.
        """
        d, W, dev = self.d, self.W, self.dev
        NB = 64 * W
        inc, cid, C = b.inc, b.cid, b.C
        base = self.n_cells
        simple_v = popcount(inc) == d
        tied = b.tie.any(1)
        umask = self.units.unit_mask
        # constraints present at simple vertices of untied cells
        sv = simple_v & ~tied.index_select(0, cid)
        rows = sv.nonzero().squeeze(1)
        present = segment_or(inc.index_select(0, rows), cid.index_select(0, rows), C) if rows.numel() else \
            torch.zeros(C, W, dtype=inc.dtype, device=dev)
        r, c = unpack_bits(present & umask).nonzero(as_tuple=True)
        if r.numel():
            self._flips(b, r, c, base)
        # the rest: bits of non-simple vertices not already settled, and everything in tied cells
        rest = (~simple_v) | tied.index_select(0, cid)
        rows = rest.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        rc = cid.index_select(0, rows)
        settled_bits = torch.where(tied.index_select(0, rc)[:, None], 0, present.index_select(0, rc))
        todo = inc.index_select(0, rows) & ~settled_bits
        # a constraint met only at vertices on the outer facet holds on a face at infinity (T
        # contains the outer facet's bit): no neighbour
        fin = ((inc & self.outer_mask) == 0).all(1)
        fr = fin.nonzero().squeeze(1)
        finite = segment_or(inc.index_select(0, fr), cid.index_select(0, fr), C)
        todo &= torch.where(tied.index_select(0, rc)[:, None], -1, finite.index_select(0, rc))
        todo_cells = (todo != 0).any(1)
        if not bool(todo_cells.any()):
            return
        # group (cell, bit) over every vertex of the cells concerned: counts, and T = AND of incidences
        cells = torch.zeros(C, dtype=torch.bool, device=dev)
        cells[rc[todo_cells]] = True
        rows = cells.index_select(0, cid).nonzero().squeeze(1)
        row, bit = unpack_bits(inc.index_select(0, rows)).nonzero(as_tuple=True)
        row = rows[row]
        key = cid[row] * NB + bit
        order = torch.argsort(key)
        row, bit, key = row[order], bit[order], key[order]
        ukey, inv, cnt = torch.unique_consecutive(key, return_inverse=True, return_counts=True)
        G = ukey.shape[0]
        gcell, gbit = ukey // NB, ukey % NB
        bit_unit = torch.full((NB,), -1, dtype=torch.long, device=dev)
        bit_unit[: self.units.n_ids] = self.units.bit_unit
        # groups already settled through a simple vertex need nothing more
        settled = ((present.index_select(0, gcell) >> (gbit % 64)[:, None]) & 1).gather(
            1, (gbit // 64)[:, None])[:, 0].bool() & ~tied.index_select(0, gcell)
        seg = inv
        vals = inc.index_select(0, row)
        step, longest = 1, int(cnt.max())
        while step < longest:  # inclusive prefix AND within groups (Hillis-Steele)
            same = (seg[step:] == seg[:-step])[:, None]
            vals = torch.cat([vals[:step], torch.where(same, vals[step:] & vals[:-step], vals[step:])])
            step *= 2
        last = torch.ones(seg.shape[0], dtype=torch.bool, device=dev)
        last[:-1] = seg[1:] != seg[:-1]
        Tg = vals[last]  # (G, W), groups in order
        # a face is a facet iff no other constraint tight on all of it is tight at more vertices
        facet = ~settled
        tr, tb = unpack_bits(Tg).nonzero(as_tuple=True)
        other = tb != gbit[tr]
        tr, tb = tr[other], tb[other]
        k2 = gcell[tr] * NB + tb
        pos = torch.searchsorted(ukey, k2).clamp_max(G - 1)
        bigger = (ukey[pos] == k2) & (cnt[pos] > cnt[tr])
        facet[tr[bigger]] = False
        # facets on the domain boundary (outer facet, box faces) have no neighbour inside
        facet &= ~((Tg & self.dom_mask) != 0).any(1)
        facet &= bit_unit[gbit] >= 0
        # several units' boundaries contain the facet, or a unit tied on the whole cell may change
        # its winner across it: the general (candidate-testing) path
        degen = (popcount(Tg & umask) > 1) | tied.index_select(0, gcell)
        sel = (facet & ~degen).nonzero().squeeze(1)
        if sel.numel():
            self._flips(b, gcell[sel], gbit[sel], base)
        sel = (facet & degen).nonzero().squeeze(1)
        if sel.numel():
            # one entry per physical facet: the group whose bit is the lowest unit bit of T
            T = Tg[sel]
            low = unpack_bits(T & umask).to(torch.int8).argmax(1)
            keep = low == gbit[sel]
            sel, T = sel[keep], T[keep]
            ysum = torch.zeros(G, d, dtype=self.dt, device=dev).index_add_(0, inv, b.X[row])
            yF = ysum[sel] / cnt[sel, None].to(self.dt)
            h0, _, s, _ = self._scale(yF, b.pyr[gcell[sel]])
            self.out["dg_cell"].append(gcell[sel] + base)
            self.out["dg_tie"].append(b.tie[gcell[sel]])
            self.out["dg_T"].append(T)
            self.out["dg_x"].append(h0 / s[:, None])

    # ------------------------------------------------------------------ regions from cells
    def finish(self, neighbours: bool, audit_samples: int) -> FullSpaceRegions:
        net, dev, d = self.net, self.dev, self.d
        n = net.n_units
        o = self.out
        if self.n_cells == 0:
            pat = torch.zeros(0, n, dtype=torch.int8, device=dev)
            x = torch.zeros(0, d, dtype=self.dt, device=dev)
            s = touch = torch.zeros(0, dtype=self.dt, device=dev)
            touch = torch.zeros(0, dtype=torch.bool, device=dev)
            db = torch.zeros(0, 1, dtype=torch.bool, device=dev)
        else:
            pat, x, s = torch.cat(o["pat"]), torch.cat(o["x"]), torch.cat(o["s"])
            touch, db = torch.cat(o["touch"]), torch.cat(o["db"])
        regions, rid = self._dedupe(pat)
        self.cell_rid = rid
        R = regions.shape[0]
        # witness: per region the cell whose centroid is closest to the origin in compact terms
        order = torch.argsort(-s, stable=True)
        order = order[torch.argsort(rid[order], stable=True)]
        first = torch.ones(order.shape[0], dtype=torch.bool, device=dev)
        first[1:] = rid[order[1:]] != rid[order[:-1]]
        wcell = order[first]
        xw = x[wcell].clone()
        patterns = regions.long()
        if self.max_regions is not None and R > self.max_regions:
            keep = torch.arange(self.max_regions, device=dev)
            self.complete = False
            self.stopped_by = self.stopped_by or "max_regions"
        else:
            keep = None
        xw = self._check_witnesses(patterns, xw, rid, x)
        touches = segment_count(touch, rid, R) > 0
        bounded = None if self.box is not None else ~touches
        dbr = torch.zeros(R, db.shape[1], dtype=torch.long, device=dev).index_add_(0, rid, db.long()) > 0
        db_pieces = int(dbr.sum())
        edges = self._edges(patterns, rid, pat) if self.want_graph else None
        self.all_edges = edges
        linear = self._linear_count(R, xw, edges, patterns) if edges is not None else None
        if keep is not None:
            # a truncated list: derived counts would refer to a set of regions nobody asked for
            patterns, xw, touches = patterns[keep], xw[keep], touches[keep]
            bounded = None if bounded is None else bounded[keep]
            if edges is not None:
                m = (edges < self.max_regions).all(1)
                edges = edges[m]
            R = self.max_regions
            linear = None
            db_pieces = None
        if not self.complete:
            linear = None
            db_pieces = None if keep is not None else db_pieces
        audit = self._audit(patterns, audit_samples) if audit_samples else None
        box = None if self.box is None else (self.box[0].tolist(), self.box[1].tolist())
        return FullSpaceRegions(
            count=int(R), certified=False, counts_what="activation regions", patterns=patterns, interior_points=xw, bounded=bounded, touches_boundary=touches,
            linear_count=linear, decision_boundary_pieces=db_pieces if self.complete else None,
            complete=self.complete, domain="R^d" if self.box is None else "box", box=box,
            neighbours=edges if neighbours else None, audit=audit, audit_samples=int(audit_samples),
            cells=int(self.n_cells), stopped_by=self.stopped_by,
            stats={"cells": int(self.n_cells), "length_scale": self.R0, "near_zero_decisions": self.near_zero,
                   "compactified": self.compact})

    def _pattern(self, x):
        """Patterns of a batch of flat points (shaped so that a batch of one stays a batch)."""
        return self.net.pattern(x.reshape(x.shape[0], *self.net.input_shape))

    # ------------------------------------------------------------------ lookups
    def _dedupe(self, pat):
        """Distinct rows of ``pat`` (via 64-bit hashes, verified) and each row's index among them."""
        if pat.shape[0] == 0:
            return pat, torch.zeros(0, dtype=torch.long, device=self.dev)
        h = self._hash(pat)
        uh, rid = torch.unique(h, return_inverse=True)
        first = torch.full((uh.shape[0],), pat.shape[0], dtype=torch.long, device=self.dev)
        first.scatter_reduce_(0, rid, torch.arange(pat.shape[0], device=self.dev), "amin")
        regions = pat[first]
        if bool((pat != regions[rid]).any()):  # a hash collision: fall back to exact row sorting
            regions, rid = torch.unique(pat, dim=0, return_inverse=True)
        return regions, rid

    def _hash(self, pat: torch.Tensor) -> torch.Tensor:
        return _hash_rows(pat, self.rvec)

    def _index(self, patterns: torch.Tensor):
        return torch.sort(self._hash(patterns))

    @staticmethod
    def _lookup(index, patterns, hq, pq) -> torch.Tensor:
        return _lookup(index, patterns, hq, pq)

    def _check_witnesses(self, patterns, xw, rid, xcells):
        """Witnesses must have their region's pattern and satisfy its inequalities strictly."""
        net = self.net
        bad = ~self._valid(patterns, xw)
        if bool(bad.any()):
            for r in bad.nonzero().squeeze(1).tolist():
                cells = (rid == r).nonzero().squeeze(1)
                ok = self._valid(patterns[r:r + 1].expand(cells.numel(), -1), xcells[cells])
                if bool(ok.any()):
                    xw[r] = xcells[cells[ok.nonzero()[0, 0]]]
                    continue
                xr = self._chebyshev(patterns[r])
                if xr is None or not bool(self._valid(patterns[r:r + 1], xr[None])[0]):
                    raise DegenerateGeometryError(
                        f"region {r} of the enumeration has no interior point that float64 resolves "
                        f"(pattern {patterns[r].tolist()}); the geometry is too degenerate near it")
                xw[r] = xr
        return xw

    def _valid(self, pats, xs, chunk: int = 4096) -> torch.Tensor:
        out = []
        for i in range(0, pats.shape[0], chunk):
            p, x = pats[i:i + chunk], xs[i:i + chunk]
            G, h = self.net.region_inequalities(p)
            v = (G @ x[:, :, None])[..., 0] + h
            nz = (G.abs().amax(-1) > 0) | (h != 0)
            strict = ((v > 0) | ~nz).all(1)
            # PLNet.pattern in float64 may break a tie between two pieces that are the same function
            # on the region (a zero row) either way; elsewhere it must agree
            tied = torch.zeros(p.shape, dtype=torch.long, device=self.dev).index_add_(
                1, self._row_units, (~nz).long()) > 0
            same = ((self._pattern(x) == p) | tied).all(1)
            if self.box is not None:
                lo, hi = self.box
                strict &= ((x > lo) & (x < hi)).all(1)
            out.append(same & strict)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=self.dev)

    @property
    def _row_units(self):
        return self.net.inequality_units().to(self.dev)

    def _chebyshev(self, pattern):
        """Centre of the largest ball in the region (LP, HiGHS), inside the box in box mode; None
        if the pattern's region is not full-dimensional (or a piece identical to the winner on the
        region has a lower index, so that the pattern is never taken)."""
        from scipy.optimize import linprog

        G, h = self.net.region_inequalities(pattern)
        zero = (G.abs().amax(-1) == 0) & (h == 0)
        if bool(zero.any()):
            units = self._row_units
            w = pattern[units]
            start = torch.full((self.net.n_units,), units.numel(), dtype=torch.long, device=self.dev)
            start.scatter_reduce_(0, units, torch.arange(units.numel(), device=self.dev), "amin")
            k = torch.arange(units.numel(), device=self.dev) - start[units]  # slot among the other pieces
            piece = k + (k >= w).long()
            if bool((zero & (piece < w)).any()):
                return None
        G, h = G.cpu().numpy(), h.cpu().numpy()
        nrm = np.linalg.norm(G, axis=1)
        keep = nrm > 0
        G, h, nrm = G[keep], h[keep], nrm[keep]
        d = self.d
        if self.box is not None:
            lo, hi = (t.cpu().numpy() for t in self.box)
            bounds = list(zip(lo, hi)) + [(0, None)]
            eye = np.eye(d)
            G = np.vstack([G, eye, -eye])
            h = np.concatenate([h, -lo, hi])
            nrm = np.concatenate([nrm, np.ones(2 * d)])
        else:
            big = 1e6 * self.R0
            bounds = [(-big, big)] * d + [(0, self.R0)]
        A = np.hstack([-G, nrm[:, None]])
        c = np.zeros(d + 1)
        c[-1] = -1
        res = linprog(c, A_ub=A, b_ub=h, bounds=bounds, method="highs")
        if res.status != 0 or res.x[-1] <= 0:
            return None
        return torch.as_tensor(res.x[:d], dtype=self.dt, device=self.dev)

    # ------------------------------------------------------------------ neighbours
    def _edges(self, patterns, rid, pat) -> torch.Tensor:
        dev = self.dev
        o = self.out
        index = self._index(patterns)
        hreg = self._hash(patterns)
        pairs = []
        if o["fc_cell"]:
            cell, q, new = torch.cat(o["fc_cell"]), torch.cat(o["fc_unit"]), torch.cat(o["fc_win"])
            # one lookup per (region, unit, winner): a region's facet may be split over several cells
            n = self.net.n_units
            kmax = int(self.units.k.max())
            key = torch.unique((rid[cell] * n + q) * kmax + new)
            new, q, r1 = key % kmax, (key // kmax) % n, key // (kmax * n)
            old = patterns[r1, q]
            pq = patterns[r1].clone()
            pq[torch.arange(pq.shape[0], device=dev), q] = new
            hq = hreg[r1] + (new - old) * self.rvec[q]
            r2 = self._lookup(index, patterns, hq, pq)
            if self.complete and bool((r2 < 0).any()):
                i = int((r2 < 0).nonzero()[0, 0])
                raise DegenerateGeometryError(
                    f"the neighbour across a facet of region {int(r1[i])} (unit {int(q[i])}) is missing from "
                    "the enumeration; float64 cannot resolve this arrangement consistently")
            ok = r2 >= 0
            pairs.append(torch.stack([r1[ok], r2[ok]], 1))
        if o["dg_cell"]:
            pairs.append(self._degenerate_edges(patterns, rid, index, torch.cat(o["dg_cell"]),
                                                torch.cat(o["dg_T"]), torch.cat(o["dg_x"]), torch.cat(o["dg_tie"])))
        if not pairs:
            return torch.zeros(0, 2, dtype=torch.long, device=dev)
        e = torch.cat(pairs)
        e = e[e[:, 0] != e[:, 1]]
        e = torch.sort(e, dim=1).values
        R = patterns.shape[0]
        key = torch.unique(e[:, 0] * R + e[:, 1])
        return torch.stack([key // R, key % R], 1)

    def _degenerate_edges(self, patterns, rid, index, cells, T, xs, ties) -> torch.Tensor:
        """Facets on several units' boundaries, or of cells where a unit is tied on the whole cell:
        the region across is the one containing ``x_F + eps n`` for small ``eps > 0``, with ``x_F``
        the facet's centre (a relative interior point) and ``n`` the facet's outward normal; its
        pattern follows from values at ``x_F`` and derivatives along ``n`` (lexicographically)."""
        u = self.units
        r1 = rid[cells]
        low = unpack_bits(T & u.unit_mask).to(torch.int8).argmax(1)  # the facet's lowest unit bit
        q = u.bit_unit[low]
        w = patterns[r1, q]
        a, b = u.bit_a[low], u.bit_b[low]
        other = torch.where(w == a, b, a)
        # row of "winner >= other" for unit q in region_inequalities
        units = self.net.inequality_units().to(self.dev)
        first = torch.full((self.net.n_units,), -1, dtype=torch.long, device=self.dev)
        first.scatter_reduce_(0, units.flip(0), torch.arange(units.numel() - 1, -1, -1, device=self.dev), "amin",
                              include_self=False)
        row = first[q] + other - (other > w).long()
        out = []
        for i in range(0, cells.shape[0], 2048):
            sl = slice(i, i + 2048)
            G, _ = self.net.region_inequalities(patterns[r1[sl]])
            n = -G[torch.arange(G.shape[0], device=self.dev), row[sl]]
            pb = self.ev.directional_pattern(xs[sl], n, self.bnd_layers, TAU_M)
            r2 = self._lookup(index, patterns, self._hash(pb), pb)
            if self.complete and bool((r2 < 0).any()):
                j = int((r2 < 0).nonzero()[0, 0])
                raise DegenerateGeometryError(
                    f"the region across a degenerate facet of region {int(r1[sl][j])} is missing from the "
                    "enumeration; float64 cannot resolve this arrangement consistently")
            ok = r2 >= 0
            out.append(torch.stack([r1[sl][ok], r2[ok]], 1))
        return torch.cat(out) if out else torch.zeros(0, 2, dtype=torch.long, device=self.dev)

    def _linear_count(self, R, xw, edges, patterns) -> int:
        """Linear regions: classes of adjacent regions with the same gradient (f is continuous, so
        equal gradients on two regions sharing a facet mean the same affine map)."""
        if R == 0:
            return 0
        if edges.shape[0] == 0:
            return R
        from relulab.regions._jacobians import equal_gradients, gradients_with_bounds

        # equal gradients are decided under a proven rounding bound (a fixed tolerance merged adjacent
        # regions whose exact maps differ by 1e-6 on wide nets), and what the bound leaves open is
        # settled in exact rational arithmetic within a work budget (beyond it: not certified)
        A, err = gradients_with_bounds(self.net, xw.detach().to("cpu", torch.float64), patterns.cpu())
        same, proven = equal_gradients(self.net, patterns.cpu(), A, err, edges.cpu())
        self.linear_uncertain = not proven
        same = same.to(self.dev)
        i, j = edges[:, 0], edges[:, 1]
        i, j = i[same], j[same]
        lab = torch.arange(R, device=self.dev)
        while True:
            m = torch.minimum(lab[i], lab[j])
            new = lab.clone().scatter_reduce_(0, i, m, "amin").scatter_reduce_(0, j, m, "amin")
            new = new[new]
            while True:
                nn_ = new[new]
                if torch.equal(nn_, new):
                    break
                new = nn_
            if torch.equal(new, lab):
                break
            lab = new
        return int(torch.unique(lab).numel())

    # ------------------------------------------------------------------ audit
    def _audit(self, patterns, n: int) -> torch.Tensor:
        g = torch.Generator(device="cpu").manual_seed(12345)
        d = self.d
        if self.box is not None:
            lo, hi = self.box
            u = torch.rand(n, d, generator=g, dtype=self.dt).to(self.dev)
            x = lo + u * (hi - lo)
        else:
            z = torch.randn(n, d, generator=g, dtype=self.dt)
            r = torch.exp(torch.empty(n, 1, dtype=self.dt).uniform_(math.log(1e-2), math.log(1e3), generator=g))
            x = (self.R0 * z * r).to(self.dev)
        ps = self._pattern(x)
        up = torch.unique(ps, dim=0)
        found = self._lookup(self._index(patterns), patterns, self._hash(up), up)
        miss = up[found < 0]
        # a float64 evaluation can break an exact tie (two pieces that are the same function on a
        # region) the wrong way; only patterns that are regions (LP certificate) are missing
        keep = [i for i in range(min(miss.shape[0], 1000)) if self._chebyshev(miss[i]) is not None]
        return miss[keep] if miss.shape[0] <= 1000 else miss


# ---------------------------------------------------------------------------------------- API
def full_space(net: PLNet, box=None, *, max_regions: int | None = None, time_limit: float | None = None,
              neighbours: bool = False, audit_samples: int = 0,
              memory_budget: float = DEFAULT_MEMORY, progress=None, method: str = "auto",
              out=None, certify: bool | None = None, split: int | None = None, workers: int | None = None,
              ray: bool | str | None = None) -> FullSpaceRegions:
    """All activation regions of ``net`` over all of R^d (``box=None``) or over ``box = (lo, hi)``.

    Exact layer-by-layer refinement of convex cells (no LP per region); all of R^d through an
    exact compactification (see the module docstring for the algorithm and its proof).
    ``max_regions`` / ``time_limit`` (seconds) stop early with ``complete=False``; the regions
    listed are then genuine but not all. ``memory_budget`` (bytes): a start that needs more (a
    box's ``2^d`` vertices) raises :class:`ResourceLimitError` before allocating. ``neighbours=True`` also returns the facet-adjacency
    pairs. ``audit_samples``: sample that many points and list any pattern the enumeration lacks.
    ``progress``: called as ``progress(cells, None, cells=cells)`` each time a batch of cells is
    finished (the number of regions is known only at the end).

    ``method``: ``"vertex"`` (cells by their vertices, as described in the module docstring; gives
    the neighbour graph, boundedness, linear regions and decision-boundary pieces), ``"facet"``
    (cells by their inequalities with batched LP feasibility, :mod:`relulab.regions._enum_lp`:
    work per region polynomial in d; gives the count, patterns and certified witnesses, with
    ``linear_count``, ``bounded``, ``touches_boundary`` and ``decision_boundary_pieces`` left None)
    or ``"auto"``: ``"facet"`` for ``FACET_MIN_D <= d <= FACET_MAX_D`` unless ``neighbours`` is
    asked for, ``"vertex"`` otherwise.

    ``certify``: the facet engine proves every decision it makes, so its complete results are
    ``certified``. The vertex engine decides vertex signs in float64 under an estimated tolerance;
    its result over R^d is proven from its own cells (exact vertices under float64 filters, edges,
    facets; a few times the enumeration's own CPU time) and otherwise by running the facet engine on
    the same domain and requiring exactly the same patterns. With ``method="auto"`` (and no
    ``neighbours``) a refuted or degenerate vertex-engine result is replaced by the facet engine's
    proven one (``stats["vertex_fallback"]`` says why); otherwise :class:`DegenerateGeometryError`
    is raised. ``None`` (default) runs the facet-engine proof up to ``PROOF_WORK`` regions x units
    (a near-degenerate result above it raises, naming the budget); ``True`` runs it whatever the
    size (the time limit still bounds it); ``False`` skips every proof and returns
    ``certified=False``. ``stats["certificate"]`` says which. A complete count that no proof settles
    raises :class:`DegenerateGeometryError` (unless ``certify=False``).

    ``out``: a Parquet file (needs the ``parquet`` extra, pyarrow) that receives every region's
    pattern and proven interior point (:mod:`relulab.regions.regions_file`; read it back with
    ``relulab.regions.read_regions``). The facet engine streams them in batches as they are found
    and keeps none in memory; the vertex engine writes them when it is done. The file appears at
    ``out`` (written under a temporary name, then renamed) when the call returns; its metadata
    says whether the enumeration was complete. The returned result then has ``patterns`` and
    ``interior_points`` None (everything else as usual; region indices are the file's rows).

    ``split`` / ``workers`` / ``ray``: one count over many workers. The domain is cut into about
    ``split`` independent cells (a grid of sub-boxes, or cones around a point for R^d), run on
    ``workers`` local processes or on Ray (``ray=True``: a local instance; ``ray="HOST:PORT"``: a
    cluster) and merged exactly by activation pattern, with the same count, bounded/unbounded split,
    linear-region count and ``certify`` proof (per cell) as one process; the result is a
    :class:`relulab.regions.SplitEnumeration` (see :func:`relulab.regions.split_full_space`). The merge
    needs each cell's neighbour graph, so every cell runs the vertex engine, whose work grows
    exponentially with d: at d >= 5, cells are many times slower than the facet engine's charts below.
    Without ``split``, where the facet engine runs (``method="facet"``, or ``"auto"`` over R^d with
    ``FACET_MIN_D <= d <= FACET_MAX_D``), ``workers`` / ``ray`` instead deal its orthant charts
    (:class:`relulab.regions._enum_lp.OrthantCharts`) to ``workers`` local processes or to the
    CPUs of the Ray cluster: regions of different orthants are disjoint, so the result is the
    one-process result, a :class:`FullSpaceRegions` (``stats["workers"]`` and ``stats["executor"]``
    say where it ran; ``memory_budget`` is then per process). Where orthant charts do not apply
    (a box, fewer usable first-layer units than d) ``"auto"`` splits into cells as above and
    ``"facet"`` runs in one process; with ``out`` (one file, written as regions are found) it runs
    in one process.
    """
    parallel = None
    if split is None and (workers is not None or ray) and isinstance(net, PLNet) and (
            method == "facet" or (method == "auto" and box is None and not neighbours
                                  and FACET_MIN_D <= net.input_dim <= FACET_MAX_D)):
        # the facet engine's own parallel mode: its orthant charts hold disjoint regions
        from relulab.regions.split import check_parallel

        check_parallel(None, workers, ray)
        parallel = {"workers": workers, "ray": ray}
        workers = ray = None
    if split is not None or workers is not None or ray:
        from relulab.regions.split import full_space_split

        return full_space_split(net, box, split, workers, ray, max_regions=max_regions, time_limit=time_limit,
                                neighbours=neighbours, audit_samples=audit_samples, memory_budget=memory_budget,
                                progress=progress, method=method, out=out, certify=certify)
    if not isinstance(net, PLNet):
        raise InvalidInputError(f"net must be a relulab.PLNet (use PLNet.from_torch), got {type(net).__name__}")
    d = net.input_dim
    max_regions, time_limit = check_budget(max_regions, time_limit)
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, float)) or not memory_budget > 0 \
            or not math.isfinite(memory_budget):
        raise InvalidInputError(f"memory_budget must be a positive finite number of bytes, got {memory_budget!r}")
    if not isinstance(audit_samples, (int, np.integer)) or audit_samples < 0:
        raise InvalidInputError(f"audit_samples must be a non-negative integer, got {audit_samples!r}")
    if box is not None:
        try:
            lo, hi = box
            lo = torch.as_tensor(lo, dtype=net.dtype, device=net.device).reshape(-1)
            hi = torch.as_tensor(hi, dtype=net.dtype, device=net.device).reshape(-1)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"box must be None or a pair (lo, hi) of scalars or length-{d} vectors: {e}")
        lo, hi = lo.expand(d).clone() if lo.numel() == 1 else lo, hi.expand(d).clone() if hi.numel() == 1 else hi
        if lo.numel() != d or hi.numel() != d:
            raise InvalidInputError(f"box bounds must be scalars or have {d} entries (the input dimension)")
        if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()) or not bool((lo < hi).all()):
            raise InvalidInputError("box needs finite bounds with lo < hi in every coordinate")
        box = (lo, hi)
    if out is not None and audit_samples:
        raise InvalidInputError("audit_samples needs the regions in memory; it cannot be combined with out=")
    if out is not None:
        from relulab.core.files import check_output_path

        out = check_output_path(out, "out", ".parquet")
    if method not in ("auto", "vertex", "facet"):
        raise InvalidInputError(f"method must be 'auto', 'vertex' or 'facet', got {method!r}")
    if certify not in (None, True, False):
        raise InvalidInputError(f"certify={certify!r}: expected None (automatic), True or False")
    auto = method == "auto"
    if auto:
        method = "facet" if FACET_MIN_D <= d <= FACET_MAX_D and not neighbours else "vertex"
    if method == "facet" and neighbours:
        raise InvalidInputError("neighbours=True needs method='vertex' (or 'auto')")
    t0 = time.perf_counter()
    if net.dtype != torch.float64:
        # the zero tests are relative to float64 rounding
        net = copy.deepcopy(net).to(dtype=torch.float64)
        if box is not None:
            box = tuple(t.to(torch.float64) for t in box)
    if method == "facet":
        try:
            res = _facet(net, box, max_regions, time_limit, memory_budget, progress, int(audit_samples), t0, out,
                         parallel=parallel, split_if_no_charts=auto)
            if res is not None:
                return res
            # the auto choice with workers or Ray, and no orthant charts to deal out: cells instead
            from relulab.regions.split import full_space_split

            return full_space_split(net, box, None, parallel["workers"], parallel["ray"],
                                    max_regions=max_regions, time_limit=time_limit, neighbours=neighbours,
                                    audit_samples=audit_samples, memory_budget=memory_budget, progress=progress,
                                    method="auto", out=out, certify=certify)
        except DegenerateGeometryError as e:
            if not auto:
                raise
            # an arrangement too degenerate for the facet engine's certificates: the vertex engine,
            # which resolves exact coincidences combinatorially, takes over (the time limit, if any,
            # restarts: a fraction of it may already be spent)
            fallback = str(e)
    else:
        fallback = None
    eng = _Engine(net, box, max_regions, time_limit, want_graph=True, memory_budget=memory_budget)
    eng.progress = progress
    # typical operation: a batch's vertices times the layer width; small work runs on one thread,
    # which is as fast on an idle machine and many times faster on a busy one
    width = max([m.units for m in net.max_units] + [1])
    try:
        with torch.no_grad(), threads_for((d + 1) ** 2 * d * width):
            eng.run()
            res = eng.finish(neighbours, int(audit_samples))
        res.stats["method"] = "vertex"
        if fallback is not None:
            res.stats["facet_fallback"] = fallback
        _prove(res, eng, net, box, time_limit, memory_budget, t0, fallback, certify)
    except DegenerateGeometryError as e:
        if isinstance(e, (_OverProofBudget, _Unproven)):
            raise
        # the vertex engine's float64 vertices cannot separate this arrangement (its ambiguity band,
        # an inconsistency, or a count its proof refutes): the facet engine, whose every decision is
        # proven (exactly where float64 cannot), gives the count instead; without it (neighbours
        # asked, the vertex engine named, or the facet engine failed already) the error stands
        if not auto or neighbours or fallback is not None:
            raise
        left = None if time_limit is None else float(time_limit) - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            raise
        res = _facet(net, box, max_regions, left, memory_budget, progress, int(audit_samples), t0, out)
        res.stats["vertex_fallback"] = str(e)
        res.seconds = time.perf_counter() - t0
        return res
    if res.linear_count is not None:
        # both edge lists are sorted and without repeats (unique pair keys)
        adj = eng.proven_edges is not None and eng.all_edges is not None and \
            torch.equal(eng.proven_edges.cpu(), eng.all_edges.cpu())
        res.linear_certified = bool(res.certified and adj and not eng.linear_uncertain)
        if res.linear_certified:
            res.stats["linear_certificate"] = ("proven: which regions share a facet (the cells' exact facets) and "
                                               "their gradient equalities")
        else:
            res.stats["linear_certificate"] = (
                "not proven: the gradient equalities are" + (" proven" if not eng.linear_uncertain else " not all settled")
                + ", but which regions share a facet comes from the vertex engine's float64 vertices"
                + ("" if eng.proven_edges is None else " (the exact facets give another adjacency)"))
    res._net = net
    res._rvec = eng.rvec
    if out is not None:
        from relulab.regions.regions_file import RegionWriter

        writer = RegionWriter(out, net.n_units, d)
        try:
            for s in range(0, res.count, 65536):
                writer(res.patterns[s:s + 65536], res.interior_points[s:s + 65536])
            res.stats["out"] = writer.close(_file_meta(res))
        except BaseException:
            writer.abort()
            raise
        res.patterns = res.interior_points = None
    res.seconds = time.perf_counter() - t0
    return res


class _OverProofBudget(DegenerateGeometryError):
    """A near-degenerate result whose proof is over the budget: raised, not replaced by another engine's
    unbudgeted enumeration."""


class _Unproven(DegenerateGeometryError):
    """A count neither proof settles (the facet engine's proof raised already): raised as is."""


def _prove(res: FullSpaceRegions, eng: _Engine, net, box, time_limit, memory_budget, t0, fallback,
           certify: bool | None = None) -> None:
    """Set ``res.certified`` of a vertex-engine result to a proof, or to False with the reason in
    ``res.stats["certificate"]``.

    The vertex engine decides signs at float64 vertices under an estimated tolerance, so its own
    combinatorics prove nothing. The facet engine's enumeration is proven (every decision from LP
    multipliers under float64 error bounds or in exact integer arithmetic on the float64 data, every
    witness interior): when it finds exactly the vertex engine's patterns, the count and patterns
    are proven. It runs with ``max_regions = count + 1``, so a vertex result that misses regions is
    caught without enumerating further; a disagreement raises :class:`DegenerateGeometryError`
    (a count known to be wrong is never returned), and so does a count neither proof settles (a
    count not known to be right is not returned either). Work is bounded: above ``PROOF_WORK``
    regions x units, or when the time limit is spent, the result stays uncertified and says so.
    ``linear_count`` is certified only when its gradient equalities are proven too."""
    if not res.complete:
        res.certified = False
        res.stats["certificate"] = f"not proven: incomplete (stopped by {res.stopped_by})"
        return
    if certify is False:
        res.certified = False
        res.stats["certificate"] = "not proven: certify=False skips the proof of the vertex engine's float64 decisions"
        return
    left = None if time_limit is None else float(time_limit) - (time.perf_counter() - t0)
    if left is not None and left <= 0:
        res.certified = False
        res.stats["certificate"] = "not proven: the time limit was spent on the enumeration"
        return
    t1 = time.perf_counter()
    if eng.cells is not None:
        from relulab.regions._vertex_cert import NotProven, prove_cells

        width = max([m.units for m in net.max_units] + [1])
        try:
            # the same thread choice as the enumeration's (small operations on one thread)
            with torch.no_grad(), threads_for((eng.d + 1) ** 2 * eng.d * width):
                facet_ok = fallback is None and (certify is True or res.count * max(1, net.n_units) <= PROOF_WORK)
                eng.proven_edges = prove_cells(eng, eng.cells, prefer_facet=facet_ok)
                cellpat = torch.cat([c[3] for c in eng.cells]).long()
            # the result must be exactly the proven cells' distinct patterns
            rid = eng.cell_rid
            if res.patterns is None or res.patterns.shape[0] != res.count or rid is None or \
                    rid.shape[0] != cellpat.shape[0] or \
                    torch.bincount(rid, minlength=res.count).shape[0] != res.count or \
                    not bool((torch.bincount(rid, minlength=res.count) > 0).all()) or \
                    not torch.equal(res.patterns.long()[rid], cellpat):
                raise DegenerateGeometryError(
                    "the vertex engine's regions differ from the distinct patterns of its proven cells")
        except NotProven as e:
            if fallback is not None:
                _unproven(res, f"the facet engine cannot settle this arrangement ({fallback}) and the "
                               f"vertex engine's own proof fails ({e})")
            res.stats["vertex_proof"] = f"not proven from its own cells ({e}); proven by the facet engine instead"
        else:
            res.stats["proof_seconds"] = time.perf_counter() - t1
            res.certified = not eng.linear_uncertain
            res.stats["certificate"] = (
                "proven: every cell's vertices (exact, filtered float64), edges and facets, and the cell "
                "across every facet" + ("" if res.certified else "; an equality of adjacent gradients is not settled"))
            return
        finally:
            eng.cells = None
    if fallback is not None:
        _unproven(res, f"the facet engine cannot settle this arrangement ({fallback})")
    n = max(1, net.n_units)
    if certify is None and res.count * n > PROOF_WORK and eng.near_zero:
        raise _OverProofBudget(
            f"{eng.near_zero} of the vertex engine's sign decisions were within float64's tolerance of zero "
            f"(a near-degenerate arrangement), and its proof ({res.count} regions x {n} units) is over the proof "
            f"budget PROOF_WORK = {PROOF_WORK:.0e}: an unproven count is not returned. certify=True proves it "
            "whatever the size (or raise relulab.regions.space.PROOF_WORK); method='facet' enumerates with proofs")
    if certify is None and res.count * n > PROOF_WORK:
        res.certified = False
        res.stats["certificate"] = (f"not proven: {res.count} regions x {n} units is over the proof budget "
                                    f"{PROOF_WORK:.0e} (certify=True proves it anyway; method='facet' "
                                    f"enumerates with proofs)")
        return
    try:
        ref = _facet(net, box, res.count + 1, left, memory_budget, None, 0, t1)
    except DegenerateGeometryError as e:
        if box is not None and _box_as_space(res, net, memory_budget, left):
            res.certified = not eng.linear_uncertain
            res.stats["certificate"] = ("proven: every region of R^d (proven enumeration) has an exactly "
                                        "verified witness in the box")
            return
        # e.g. walls closer than float64 resolves where they meet: the count cannot be proven
        _unproven(res, str(e))
    res.stats["proof_seconds"] = time.perf_counter() - t1
    if ref.count > res.count or (ref.complete and not _same_rows(ref.patterns, res.patterns)):
        raise DegenerateGeometryError(
            f"the vertex engine found {res.count} regions but the proven enumeration finds "
            f"{'more than ' + str(res.count) if ref.count > res.count else ref.count} (or other patterns): "
            f"the geometry is too close to degenerate for float64 vertices; use method='facet'")
    if not ref.complete:
        res.certified = False
        res.stats["certificate"] = f"not proven: the proof stopped ({ref.stopped_by})"
        return
    res.certified = not eng.linear_uncertain
    res.stats["certificate"] = ("proven: patterns equal to the facet engine's proven enumeration"
                                + ("" if res.certified else "; an equality of adjacent gradients is not settled"))


def _unproven(res: FullSpaceRegions, why: str) -> None:
    """A complete count that neither proof settles is raised, never returned unproven (certify=False
    skips the proofs and returns it, saying so)."""
    raise _Unproven(
        f"the vertex engine counted {res.count} regions, but the count cannot be proven: {why}. "
        "certify=False returns it unproven")


def _box_as_space(res: FullSpaceRegions, net, memory_budget, time_limit) -> bool:
    """A box's count proven through all of R^d (for boxes too large for the facet engine's proofs,
    e.g. 1e308): the regions a box meets are regions of R^d, so when the proven enumeration of R^d
    has exactly the box result's patterns and every witness is exactly verified strictly inside its
    region and inside the box, the box meets all of them."""
    from relulab.regions._exact import exact_tables, exact_witness

    try:
        ref = _facet(net, None, res.count + 1, time_limit, memory_budget, None, 0, time.perf_counter())
    except DegenerateGeometryError:
        return False
    if not ref.complete or not _same_rows(ref.patterns, res.patterns):
        return False
    lo, hi = res.box
    x = res.interior_points.detach().cpu().to(torch.float64)
    if not bool(((x > torch.tensor(lo, dtype=torch.float64)) & (x < torch.tensor(hi, dtype=torch.float64))).all()):
        return False
    tabs = exact_tables(net)
    if tabs is None:
        return False
    return all(exact_witness(net, tabs, xi.numpy(), p) for xi, p in zip(x, res.patterns.cpu()))


def _same_rows(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two pattern tables hold the same set of rows (each without repeats)."""
    if a.shape != b.shape:
        return False
    if a.shape[0] <= 1 or a.shape[1] == 0:
        return a.shape[0] == 0 or bool((a.long() == b.long().to(a.device)).all())
    return int(torch.unique(torch.cat([a.long(), b.long().to(a.device)]), dim=0).shape[0]) == a.shape[0]


def _file_meta(res) -> dict:
    return {"complete": bool(res.complete), "certified": bool(res.certified), "stopped_by": str(res.stopped_by),
            "input_dim": int(res._net.input_dim), "n_units": int(res._net.n_units), "domain": res.domain,
            "method": res.stats.get("method", "")}


def _facet_part(shared, ids) -> dict:
    """One worker's share of a facet-engine run over orthant charts: the regions of charts ``ids``
    (disjoint from every other chart's), with the engine's own certificates."""
    from relulab.regions._enum_lp import LPEngine

    net, units, max_regions, time_limit, memory_budget = shared
    eng = LPEngine(net, None, max_regions, time_limit, memory_budget, chart_ids=ids)
    if eng.charts.kind != "orthants" or eng.charts.units.tolist() != units:
        raise DegenerateGeometryError("a worker chose other charts than its driver")  # never expected
    with torch.no_grad():
        eng.run()
        pats, xs, cells = eng.result()
    return {"pat": pats.to(torch.int8), "x": xs, "cells": cells, "complete": eng.complete,
            "stopped_by": eng.stopped_by, "stats": eng.stats}


def _facet_parallel(eng, parallel: dict, max_regions, time_limit, memory_budget, progress):
    """The facet engine's orthant charts dealt to local processes (``parallel["workers"]``) or to the
    CPUs of a Ray cluster (``parallel["ray"]``: True starts or joins a local instance, a string is
    the cluster's address), one share per worker (charts dealt in turn: orthants next to each other, which often
    hold similar numbers of regions, go to different workers; a worker builds its engine once).
    Every region lies in exactly one orthant, so the parts' regions are disjoint and are
    concatenated; the time limit applies to each share from its start, ``max_regions`` to the whole,
    ``memory_budget`` to each process. Returns ``(patterns, witnesses, cells)`` and sets ``eng``'s
    counts, completeness and stats."""
    from relulab.core.executors import connect_ray, map_tasks

    n = eng.charts.n
    workers, ray = parallel["workers"], bool(parallel["ray"])
    address = parallel["ray"].strip() if isinstance(parallel["ray"], str) else None
    if ray:
        # as many shares as the cluster has CPUs (joining or starting it here; map_tasks reuses it)
        rr = connect_ray(address, workers)
        shares = int(rr.cluster_resources().get("CPU", 1))
    else:
        shares = workers
    net = eng.net
    shared = (net, eng.charts.units.tolist(), max_regions, time_limit, memory_budget)
    tasks = [list(range(w, n, shares)) for w in range(min(shares, n))]
    out, used = map_tasks(_facet_part, tasks, shared, workers=workers, ray=ray, address=address,
                          progress=progress, stage="charts")
    pats = torch.cat([r["pat"].to(net.device) for r in out]).long()
    xs = torch.cat([r["x"].to(net.device) for r in out])
    stopped = next((r["stopped_by"] for r in out if r["stopped_by"] is not None), None)
    if max_regions is not None and pats.shape[0] > max_regions:
        pats, xs, stopped = pats[:max_regions], xs[:max_regions], "max_regions"
    for k in eng.stats:
        eng.stats[k] = sum(r["stats"].get(k, 0) for r in out)
    eng.stats["workers"] = used
    eng.stats["executor"] = "ray" if ray else "local"
    eng.n_regions = int(pats.shape[0])
    eng.stopped_by = stopped
    eng.complete = stopped is None and all(r["complete"] for r in out)
    return pats, xs, sum(int(r["cells"]) for r in out)


def _facet(net, box, max_regions, time_limit, memory_budget, progress, audit_samples, t0, out=None,
           parallel: dict | None = None, split_if_no_charts: bool = False) -> FullSpaceRegions | None:
    """The facet engine's result; ``parallel`` (workers / Ray, see :func:`_facet_parallel`) deals
    its orthant charts out. Without orthant charts (or with ``out``, one file written as regions
    are found) it runs here, or returns None if ``split_if_no_charts`` (the caller splits instead)."""
    from relulab.regions._enum_lp import LPEngine

    writer = None
    if out is not None:
        from relulab.regions.regions_file import RegionWriter

        writer = RegionWriter(out, net.n_units, net.input_dim)
    try:
        eng = LPEngine(net, box, max_regions, time_limit, memory_budget, progress, sink=writer)
        width = max([m.units for m in net.max_units] + [1])
        fan = parallel is not None and (bool(parallel["ray"]) or parallel["workers"] > 1)
        if fan and eng.charts.kind != "orthants" and split_if_no_charts and writer is None:
            return None
        if fan and eng.charts.kind == "orthants" and writer is None:
            patterns, xw, cells = _facet_parallel(eng, parallel, max_regions, time_limit, memory_budget, progress)
        else:
            with torch.no_grad(), threads_for(64 * (net.input_dim + 2) * width):
                eng.run()
                patterns, xw, cells = eng.result()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    complete = eng.complete
    stopped = eng.stopped_by
    g = torch.Generator().manual_seed(0x5EED)
    rvec = torch.randint(-(2**62), 2**62, (max(1, net.n_units),), generator=g, dtype=torch.int64).to(net.device)
    audit = None
    if audit_samples:
        audit = _sample_audit(net, patterns, rvec, audit_samples, box, eng.R0)
    res = FullSpaceRegions(
        count=int(eng.n_regions), certified=bool(complete), counts_what="activation regions",
        patterns=patterns, interior_points=xw, bounded=None, touches_boundary=None, linear_count=None,
        decision_boundary_pieces=None, complete=complete, domain="R^d" if box is None else "box",
        box=None if box is None else (box[0].tolist(), box[1].tolist()), neighbours=None, audit=audit,
        audit_samples=int(audit_samples), cells=int(cells), stopped_by=stopped,
        stats=dict(eng.stats, length_scale=eng.R0, method="facet", charts=eng.charts.kind,
                   certificate="proven: every decision of the facet engine" if complete else
                   f"not proven: incomplete (stopped by {stopped})"))
    res._net = net
    res._rvec = rvec
    if writer is not None:
        res.stats["out"] = writer.close(_file_meta(res))
        res.patterns = res.interior_points = None
    res.seconds = time.perf_counter() - t0
    return res


def _sample_audit(net, patterns, rvec, n, box, R0) -> torch.Tensor:
    """Patterns of sampled points (uniform in the box; log-uniform radii around 0 in R^d) missing
    from ``patterns`` (empty for a complete enumeration, up to float64 ties of the sampler)."""
    g = torch.Generator(device="cpu").manual_seed(12345)
    d, dt = net.input_dim, net.dtype
    if box is not None:
        lo, hi = box
        x = lo + torch.rand(n, d, generator=g, dtype=dt).to(net.device) * (hi - lo)
    else:
        z = torch.randn(n, d, generator=g, dtype=dt)
        r = torch.exp(torch.empty(n, 1, dtype=dt).uniform_(math.log(1e-2), math.log(1e3), generator=g))
        x = (R0 * z * r).to(net.device)
    ps = torch.unique(net.pattern(x.reshape(-1, *net.input_shape)).long(), dim=0)
    index = torch.sort(_hash_rows(patterns, rvec))
    found = _lookup(index, patterns, _hash_rows(ps, rvec), ps)
    return ps[found < 0]
