"""One region count split over many workers: independent cells, merged exactly by activation pattern.

The domain is cut into cells, each cell's activation regions are enumerated on its own (a task on the
local process pool or on Ray), and the pieces are merged:

* **box**: sub-boxes holding similar numbers of regions (by default: the box with the largest
  estimated number of regions, from sampled boundary crossings, halved until there are enough, cuts
  at seeded points near the median of the estimate along the cut side), or a grid (``balance=False``: seeded, jittered cuts; or given
  ``walls``); each cell is the full-space engine's box mode on the sub-box.
* **all of R^d**: a fan of simplicial cones around a centre ``c``. Start from the ``d + 1`` cones of
  a randomly rotated regular simplex (generators ``v_0..v_d``, ``sum v_k = 0``; cone ``k`` spanned by
  the ``v_j``, ``j != k``; together they cover R^d) and bisect the widest cone (its two most distant
  generators replaced, one at a time, by their normalized mean) until there are enough cells. Cone
  ``C = {c + G t : t >= 0}`` (``G`` the d x d generator matrix, invertible) is enumerated without any
  new engine: the network ``N'(y) = N(G relu(y) + c)`` is enumerated over all of R^d, and its regions
  whose first ``d`` units are all active are exactly ``{y > 0 : G y + c in R}`` for the regions ``R``
  of ``N`` meeting the interior of ``C``, with the pattern of ``R`` in the remaining units (``G`` is a
  linear bijection of the open orthant onto the interior of the cone). The other regions of ``N'``
  (some ``y_i <= 0``, where ``N'`` sees a face of the cone) are discarded.

Merging. An activation region is convex, so it is one pattern; a region crossing walls appears in
several cells with one pattern and is counted once (``torch.unique`` over the patterns). Every region
has interior, so it meets the interior of some cell: none is lost. In R^d a region is unbounded iff
one of its cone pieces is (a ray inside the region has a cylinder around it inside the region, which
meets some cone in an unbounded set). Linear regions are the components of the graph of facet-adjacent
regions with equal affine maps; two regions sharing a facet ``F`` are adjacent inside some cell unless
``F`` lies inside a wall, so the cells' own adjacency (``neighbours=True``) gives every edge once no
network boundary lies in a wall. Walls are placed at random (seeded), which makes that a null event,
and it is checked: if a unit's tie set on some region touching a wall (the regions on both sides of
a boundary inside a wall touch it) is a wall's hyperplane,
:class:`DegenerateGeometryError` asks for another seed. Walls through vertices of the arrangement are
harmless (tested).

Equal gradients are decided under a rounding bound, not a fixed tolerance: each Jacobian entry is
a sum of path products computed in float64, so it errs by at most ``gamma_K`` times the sum of the
absolute path products (the Jacobian of the network with absolute weights under the same pattern,
see :func:`relulab.regions._jacobians.gradients_with_bounds`). Gradients further apart than the two
bounds differ; an equality inside them is settled exactly, from the two patterns' Jacobians in
rational arithmetic on the float64 weights (:func:`relulab.regions._jacobians.equal_gradients`),
within a work budget beyond which the result is not ``certified``. (A fixed tolerance is not
enough: adjacent regions of a 2-170-170-170-1 network whose exact gradients, computed in rational
arithmetic, differ by 1e-6 merge under a tolerance of 1e-9 times a bound on gradient magnitudes,
which is about 2e-6 there.) ``certified`` also needs every cell's own count certified (see
:func:`relulab.regions.full_space`: proven, or it says why not).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.core.plnet import PLNet
from relulab.regions._jacobians import equal_gradients
from relulab.regions._jacobians import gradients_with_bounds as _gradients
from relulab.results import RegionResult

# apexes tried for the cones over all of R^d (the given or seeded one, then moved ones) when a cell
# cannot be settled at the first
CENTRE_TRIES = 2

__all__ = ["split_full_space", "full_space_split", "SplitEnumeration", "box_cells", "balanced_cells", "cone_cells"]


@dataclass(kw_only=True)
class SplitEnumeration(RegionResult):
    """Activation regions of a network over a box or R^d, counted cell by cell and merged by pattern.

    ``patterns`` (count, units), ``interior_points`` (count, d); ``bounded`` (R^d only); ``cells``:
    number of cells; ``pieces``: region pieces the cells found before merging (>= count: the excess is
    regions crossing walls); ``cell_seconds``: each cell's enumeration time, ``cell_cpu_seconds`` its
    CPU time (steadier than wall time on a shared machine); ``merge_seconds`` / ``merge_cpu_seconds``:
    the merge; ``executor`` and ``workers`` that ran the cells; ``cell_certificates``: each cell's
    proof, or why it has none (``stats["certificate"]`` of :func:`relulab.regions.full_space`);
    ``apex_moves``: why the cones over R^d were redrawn around a moved apex (empty when they were not)."""

    patterns: torch.Tensor
    interior_points: torch.Tensor
    bounded: torch.Tensor | None
    cells: int
    pieces: int
    cell_seconds: list
    merge_seconds: float
    executor: str
    workers: int
    box: tuple | None = None
    cell_cpu_seconds: list = field(default_factory=list)
    merge_cpu_seconds: float = 0.0
    cell_certificates: list = field(default_factory=list)
    apex_moves: list = field(default_factory=list)

    _summary_fields = ("count", "linear_count", "complete", "certified", "domain", "box", "cells", "pieces",
                       "seconds", "merge_seconds", "executor", "workers")

    @property
    def unbounded_count(self) -> int | None:
        return None if self.bounded is None else int((~self.bounded).sum())

    def to_dict(self, summary: bool = False) -> dict:
        return {**super().to_dict(summary), "unbounded_count": self.unbounded_count}

    def plot(self, ax=None, extent=None, resolution: int = 300, seed: int = 0):
        """Two inputs: the regions in random colours on a grid over ``extent`` (x0, x1, y0, y1;
        default the box, or a window around the witnesses); grid points on a wall stay white."""
        from relulab.regions._plot import plot_regions

        return plot_regions(self, self._grid_regions, ax, extent, resolution, seed, witnesses=False,
                            suffix=f", {self.cells} cells")

    def _grid_regions(self, pts: torch.Tensor) -> torch.Tensor:
        """Region of each point by its pattern (-1 for a tie pattern, listed nowhere)."""
        grid = self._net.pattern(pts.to(self._net.dtype)).long()
        _, inv = torch.unique(torch.cat([self.patterns, grid]), dim=0, return_inverse=True)
        region = torch.full((int(inv.max()) + 1,), -1, dtype=torch.long)
        region[inv[: self.count]] = torch.arange(self.count)
        return region[inv[self.count:]]


# ------------------------------------------------------------------ cells
def _flips(net: PLNet, X: np.ndarray, delta: float, rng) -> np.ndarray:
    """Units whose activation differs between each point and a point ``delta`` away from it in a
    random direction: boundary crossings along a short segment."""
    V = rng.standard_normal(X.shape)
    V *= delta / np.linalg.norm(V, axis=1, keepdims=True)
    P = torch.as_tensor(np.concatenate([X, X + V]), dtype=net.dtype).reshape(-1, *net.input_shape)
    pats = net.pattern(P)
    return (pats[: X.shape[0]] != pats[X.shape[0]:]).sum(1).numpy().astype(float)


def _region_mass(net: PLNet, a, b, rng, samples: int = 256) -> float:
    """A rough number of regions in the box [a, b]: volume times (crossings per length)^d, the
    scaling of an arrangement's regions with its hyperplane density."""
    delta = 0.05 * float(np.linalg.norm(b - a))
    X = a + rng.uniform(size=(samples, a.size)) * (b - a)
    rho = (_flips(net, X, delta, rng).mean() + 1.0 / samples) / delta
    return float(np.prod(b - a) * rho ** a.size)


def balanced_cells(net: PLNet, lo, hi, cells: int, seed: int = 0, bins: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    """``cells`` sub-boxes of [lo, hi] holding similar numbers of regions: repeatedly halve the box of
    largest :func:`_region_mass` across its relatively longest side, at a seeded point between the
    40% and 60% quantiles of the region mass of ``bins`` slabs of that side. Only the load balance
    depends on these estimates; any cells give the same merged result."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    d = lo.size
    rng = np.random.default_rng([seed, 3])
    boxes = [(lo, hi, _region_mass(net, lo, hi, rng))]
    while len(boxes) < cells:
        a, b, _ = boxes.pop(int(np.argmax([m for _, _, m in boxes])))
        i = int(np.argmax((b - a) / (hi - lo)))
        delta = 0.05 * float(np.linalg.norm(b - a))
        n = 32
        X = a + rng.uniform(size=(bins * n, d)) * (b - a)
        X[:, i] = a[i] + (np.repeat(np.arange(bins), n) + rng.uniform(size=bins * n)) / bins * (b[i] - a[i])
        rho = (_flips(net, X, delta, rng).reshape(bins, n).mean(1) + 1.0 / n) / delta
        mass = rho ** d
        cum = np.concatenate([[0.0], np.cumsum(mass)]) / mass.sum()
        u = float(np.interp(rng.uniform(0.4, 0.6), cum, np.linspace(0.0, 1.0, bins + 1)))
        cut = a[i] + u * (b[i] - a[i])
        b1, a2 = b.copy(), a.copy()
        b1[i] = a2[i] = cut
        boxes += [(a, b1, _region_mass(net, a, b1, rng)), (a2, b, _region_mass(net, a2, b, rng))]
    return [(a, b) for a, b, _ in boxes]


def box_cells(lo, hi, cells: int, seed: int = 0, walls=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sub-boxes of [lo, hi]: ``walls`` (per axis, a list of interior cut positions) or about ``cells``
    boxes, cut along as many axes as needed, cuts jittered by up to a quarter of a step (seeded)."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    d = lo.size
    if walls is None:
        rng = np.random.default_rng(seed)
        per = [1] * d
        a = 0
        while math.prod(per) < cells:
            per[a % d] += 1
            a += 1
        walls = []
        for i in range(d):
            k = per[i]
            u = (np.arange(1, k) + rng.uniform(-0.25, 0.25, k - 1)) / k
            walls.append(list(lo[i] + u * (hi[i] - lo[i])))
    if len(walls) != d:
        raise InvalidInputError(f"walls must give one list of cut positions per axis ({d} axes), got {len(walls)}")
    cuts = []
    for i in range(d):
        w = sorted(float(v) for v in walls[i])
        if any(not lo[i] < v < hi[i] for v in w):
            raise InvalidInputError(f"walls on axis {i} must lie strictly inside ({lo[i]}, {hi[i]})")
        cuts.append([lo[i]] + w + [hi[i]])
    out = []
    for idx in np.ndindex(*[len(c) - 1 for c in cuts]):
        out.append((np.array([cuts[i][j] for i, j in enumerate(idx)]),
                    np.array([cuts[i][j + 1] for i, j in enumerate(idx)])))
    return out


def cone_cells(d: int, cells: int, seed: int = 0) -> list[np.ndarray]:
    """Generator matrices (d x d, columns of unit length) of a fan of simplicial cones covering R^d."""
    rng = np.random.default_rng(seed)
    # regular simplex vertices: the standard basis of R^{d+1} centred and expressed in a basis of the
    # hyperplane sum = 0, then rotated at random
    E = np.eye(d + 1) - 1.0 / (d + 1)
    Q, _ = np.linalg.qr(E[:, :d])
    V = E.T @ Q  # (d+1, d), rows sum to zero
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    R, _ = np.linalg.qr(rng.standard_normal((d, d)))
    V = V @ R
    cones = [np.delete(V, k, axis=0).T for k in range(d + 1)]
    while len(cones) < cells:
        # bisect the widest cone: the one whose closest-to-opposite generator pair has the smallest cosine
        widths = []
        for G in cones:
            C = G.T @ G
            np.fill_diagonal(C, 2.0)
            widths.append(C.min())
        G = cones.pop(int(np.argmin(widths)))
        C = G.T @ G
        np.fill_diagonal(C, 2.0)
        a, b = np.unravel_index(np.argmin(C), C.shape)
        m = G[:, a] + G[:, b]
        m /= np.linalg.norm(m)
        G1, G2 = G.copy(), G.copy()
        G1[:, a] = m
        G2[:, b] = m
        cones += [G1, G2]
    return cones


# ------------------------------------------------------------------ one cell (runs in a worker)
def _cone_net(net: PLNet, G: np.ndarray, c: np.ndarray) -> PLNet:
    d = net.input_dim
    first = torch.nn.Linear(d, d, dtype=torch.float64)
    to_x = torch.nn.Linear(d, d, dtype=torch.float64)
    with torch.no_grad():
        first.weight.copy_(torch.eye(d, dtype=torch.float64))
        first.bias.zero_()
        to_x.weight.copy_(torch.as_tensor(G, dtype=torch.float64))
        to_x.bias.copy_(torch.as_tensor(c, dtype=torch.float64))
    layers = [first, torch.nn.ReLU(), to_x]
    if tuple(net.input_shape) != (d,):
        layers.append(torch.nn.Unflatten(1, tuple(net.input_shape)))
    return PLNet.from_torch(torch.nn.Sequential(*layers, net.to_torch()), (d,))


def _cell_task(net: PLNet, cell: tuple, time_limit, max_regions, walls=None, certify=None) -> dict:
    """Enumerate one cell; returns its region pieces in the coordinates of ``net``, with each
    piece's gradients and their rounding bounds (:func:`_gradients`: properties of the region, so
    any piece's witness gives them), after checking that no network boundary on a piece touching
    the cell's walls lies in one of ``walls`` (:func:`_wall_check`). Both run here, in parallel,
    rather than in the merge. ``certify``: the cell's own proof (:func:`relulab.regions.full_space`)."""
    from relulab import regions

    fn = regions.full_space
    t0, c0 = time.perf_counter(), time.process_time()
    kind = cell[0]
    if kind == "box":
        r = fn(net, box=(torch.as_tensor(cell[1]), torch.as_tensor(cell[2])), neighbours=True,
               time_limit=time_limit, max_regions=max_regions, certify=certify)
        keep = torch.ones(r.count, dtype=torch.bool)
        pats, xs, bounded = r.patterns, r.interior_points, None
        touch = r.touches_boundary.clone()
    else:
        G, c = cell[1], cell[2]
        d = net.input_dim
        r = fn(_cone_net(net, G, c), neighbours=True, time_limit=time_limit, max_regions=max_regions,
               certify=certify)
        keep = (r.patterns[:, :d] == 1).all(1)
        pats = r.patterns[:, d:]
        xs = r.interior_points @ torch.as_tensor(G, dtype=r.interior_points.dtype).T + torch.as_tensor(c)
        bounded = r.bounded
        # a piece touches the cone's walls iff it is adjacent to a region of N' outside the open orthant
        touch = torch.zeros(r.count, dtype=torch.bool)
        e = r.neighbours
        cross = keep[e[:, 0]] != keep[e[:, 1]]
        touch[e[cross].reshape(-1)] = True
    new = torch.full((r.count,), -1, dtype=torch.long)
    new[keep] = torch.arange(int(keep.sum()))
    e = r.neighbours
    e = e[keep[e[:, 0]] & keep[e[:, 1]]]
    pats, xs, touch = pats[keep].long(), xs[keep].to(torch.float64), touch[keep]
    if walls and r.complete:
        # a boundary inside a wall has regions on both sides whose pieces touch that wall
        _wall_check(net, xs[touch], walls)
    grad, err = _gradients(net, xs, pats) if pats.shape[0] else (torch.zeros(0, 0), None)
    return {"patterns": pats.to(torch.int8), "points": xs, "grad": grad, "err": err,
            "bounded": None if bounded is None else bounded[keep], "edges": new[e],
            "complete": bool(r.complete), "certified": bool(r.certified), "stopped_by": r.stopped_by,
            "certificate": str(r.stats.get("certificate", "")),
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}


def _shared_cell_task(shared, cell):
    net, time_limit, max_regions, walls, certify = shared
    return _cell_task(net, cell, time_limit, max_regions, walls, certify)


# ------------------------------------------------------------------ merge
def _wall_check(net: PLNet, pts: torch.Tensor, walls: list[tuple[np.ndarray, float]], chunk: int = 2048) -> None:
    """Raise if some unit's tie set on some region is one of the wall hyperplanes {n . x = t}."""
    if not walls or pts.shape[0] == 0:
        return
    d = net.input_dim
    N = torch.as_tensor(np.stack([w[0] for w in walls]), dtype=torch.float64)  # (W, d), unit normals
    T = torch.as_tensor([w[1] for w in walls], dtype=torch.float64)
    eye = torch.eye(d, dtype=torch.float64)
    for s in range(0, pts.shape[0], chunk):
        x = pts[s:s + chunk]
        tr = net.trace(x, directions=eye.expand(x.shape[0], d, d))
        for P, D in zip(tr.pieces, tr.piece_tangents):  # P (B, u, K), D (B, d, u, K)
            K = P.shape[-1]
            for a in range(K):
                for b in range(a + 1, K):
                    g = P[..., b] - P[..., a]  # (B, u)
                    dg = D[..., b] - D[..., a]  # (B, d, u)
                    ok = torch.isfinite(g)
                    nrm = dg.norm(dim=1)  # (B, u)
                    cos = torch.einsum("bdu,wd->buw", dg, N) / nrm.clamp_min(1e-300)[..., None]
                    parallel = (cos.abs() > 1 - 1e-9) & (nrm[..., None] > 0)
                    # the zero set {g = 0} is {n . x = t}: g(x) = (dg . n)(n . x - t) at the witness
                    offset = (x @ N.T)[:, None, :] - T  # (B, 1, W)
                    pred = torch.einsum("bdu,wd->buw", dg, N) * offset
                    scale = g.abs()[..., None] + nrm[..., None] * (x.abs().max() + T.abs().max() + 1)
                    same = parallel & ((g[..., None] - pred).abs() <= 1e-9 * scale) & ok[..., None]
                    if bool(same.any()):
                        w = int(same.nonzero()[0, 2])
                        raise DegenerateGeometryError(
                            f"a network boundary lies in cell wall {w} (normal {walls[w][0].round(6).tolist()}, "
                            f"offset {walls[w][1]:.6g}): the merge could miss an adjacency; use another seed")


def _components(n: int, edges: np.ndarray) -> int:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if n == 0:
        return 0
    m = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return int(connected_components(m, directed=False)[0])


def _merge(parts: list[dict], rd: bool, net):
    """Regions from the cells' pieces: one per pattern, with the first piece's witness; bounded
    when every piece is; linear regions from the cells' adjacencies and gradients."""
    pats = torch.cat([p["patterns"] for p in parts])
    pts = torch.cat([p["points"] for p in parts])
    offs = np.cumsum([0] + [p["patterns"].shape[0] for p in parts])
    empty = torch.zeros(0, dtype=torch.bool)
    if pats.shape[0] == 0:
        return pats.long(), pts, (empty if rd else None), 0, 0, True
    uniq, gid = torch.unique(pats, dim=0, return_inverse=True)
    R = uniq.shape[0]
    first = torch.full((R,), pats.shape[0], dtype=torch.long).scatter_reduce_(
        0, gid, torch.arange(pats.shape[0]), "amin")
    xw = pts[first]
    bounded = None
    if rd:
        b = torch.cat([p["bounded"] for p in parts])
        bounded = torch.ones(R, dtype=torch.bool).scatter_reduce_(0, gid, b, "amin")
    edges = torch.cat([p["edges"] + int(o) for p, o in zip(parts, offs[:-1])])
    ge = gid[edges.long()] if edges.numel() else torch.zeros(0, 2, dtype=torch.long)
    ge = ge[ge[:, 0] != ge[:, 1]]
    certain = True
    if ge.numel():
        # adjacent regions with equal gradients have one affine map (f is continuous across the facet)
        A = torch.cat([p["grad"] for p in parts if p["grad"].numel()])[first]
        errs = [p["err"] for p in parts if p["grad"].numel()]
        err = None if any(e is None for e in errs) else torch.cat(errs)[first]
        # inside the rounding bound, equality is settled in exact arithmetic (within a work budget)
        same, certain = equal_gradients(net, uniq, A, err, ge)
        ge = ge[same]
    linear = _components(R, ge.numpy())
    return uniq.long(), xw, bounded, R, linear, certain


# ------------------------------------------------------------------ driver
def _run_cells(net, cells, workers, ray, address, time_limit, max_regions, progress, ray_timeout=None, walls=None,
               certify=None):
    from relulab.core.executors import map_tasks

    return map_tasks(_shared_cell_task, cells, (net, time_limit, max_regions, walls, certify), workers=workers,
                     ray=ray, address=address, ray_timeout=ray_timeout, progress=progress, stage="cells")


def _box_tasks(boxes, lo):
    """The cells of the sub-boxes and every cut's whole hyperplane (a superset of the walls: a safe
    check)."""
    d = lo.size
    wall_list = []
    for i in range(d):
        for v in sorted({float(a[i]) for a, _ in boxes} - {float(lo[i])}):
            wall_list.append((np.eye(d)[i], v))
    return [("box", a, b) for a, b in boxes], wall_list


def _moved_cuts(boxes, lo, hi, rng):
    """The same sub-boxes with every interior cut moved by up to 1e-3 of the box's side (each cut
    value consistently in every box that has it, order kept): the tiling stays a tiling."""
    out = [(a.copy(), b.copy()) for a, b in boxes]
    for i in range(lo.size):
        cuts = sorted({float(a[i]) for a, _ in boxes} - {float(lo[i])})
        if not cuts:
            continue
        gaps = np.diff([float(lo[i])] + cuts + [float(hi[i])])
        step = np.minimum(1e-3 * (hi[i] - lo[i]), 0.25 * np.minimum(gaps[:-1], gaps[1:]))
        new = dict(zip(cuts, np.asarray(cuts) + rng.uniform(-1.0, 1.0, len(cuts)) * step))
        for a, b in out:
            a[i] = new.get(float(a[i]), a[i])
            b[i] = new.get(float(b[i]), b[i])
    return out


def _cone_tasks(cones, c):
    """The cells of the cones ``cones`` around the apex ``c`` and every facet hyperplane of every cone
    (spanned by d - 1 generators, through ``c``; as (unit normal, offset), without repeats)."""
    d = c.size
    tasks = [("cone", G, c) for G in cones]
    wall_list = []
    for G in cones:  # each facet hyperplane of each cone: spanned by d-1 generators, through c
        for k in range(d):
            Gk = np.delete(G, k, axis=1)
            n = np.linalg.svd(Gk.T)[2][-1] if d > 1 else np.ones(1)
            n = n / np.linalg.norm(n)
            wall_list.append((n, float(n @ c)))
    wall_list = list({(tuple(np.round(n * np.sign(n[np.argmax(abs(n))]), 12)), round(t * np.sign(
        n[np.argmax(abs(n))]), 12)): (n, t) for n, t in wall_list}.values())
    return tasks, wall_list


def split_full_space(net: PLNet, box=None, *, cells: int | None = None, workers: int | None = None, ray: bool = False,
                     address: str | None = None, ray_timeout: float | None = None, seed: int = 0, walls=None, centre=None,
                     time_limit: float | None = None, max_regions: int | None = None,
                     check_walls: bool = True, balance: bool = True, certify: bool | None = None,
                     progress=None) -> SplitEnumeration:
    """Activation regions of ``net`` over ``box = (lo, hi)`` or all of R^d (``box=None``), enumerated
    in ``cells`` independent cells on ``workers`` local processes (1: in this process) or on Ray
    (``ray=True``; ``address`` joins a cluster, ``ray_timeout`` bounds a local start: see
    :func:`relulab.core.executors.connect_ray`), merged exactly (module docstring). The count,
    ``linear_count`` and (R^d) the bounded/unbounded split equal those of the single-process
    enumeration. ``walls`` (box mode: per-axis cut positions) or ``centre`` (R^d: the apex of the
    cones; best not a vertex of the arrangement) fix the cells; otherwise they are drawn from ``seed`` (box: with
    ``balance``, :func:`balanced_cells`, else the grid of :func:`box_cells`). Over R^d, a cell that
    cannot be settled (a cone wall within rounding of a vertex of the arrangement leaves pieces thinner
    than float64, or a boundary in a wall) makes the cones be redrawn around a moved apex, up to
    ``CENTRE_TRIES`` times (``apex_moves`` says why); the regions do not depend on the apex. Boxes
    likewise move their cuts (by up to 1e-3 of the box's side).
    ``time_limit``/``max_regions`` apply per cell; any cell stopped early makes the result incomplete (and ``linear_count`` None).
    ``certify`` is each cell's proof, as in :func:`relulab.regions.full_space` (``None``: up to its
    work limit; ``True``: always; ``False``: never, and the result is not ``certified``): the merge is
    exact (patterns; equal gradients settled in rational arithmetic), so the split result is certified
    exactly when every cell is and every gradient equality was settled.
    ``progress(done, total, stage="cells")`` is called as cells finish."""
    if not isinstance(net, PLNet):
        raise InvalidInputError(f"net must be a relulab.PLNet, got {type(net).__name__}")
    d = net.input_dim
    workers = workers or (os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidInputError(f"workers must be a positive integer, got {workers!r}")
    cells = cells or 4 * workers
    if isinstance(cells, bool) or not isinstance(cells, int) or cells < 1:
        raise InvalidInputError(f"cells must be a positive integer, got {cells!r}")
    if net.dtype != torch.float64:
        net = net.to(dtype=torch.float64)
    t0 = time.perf_counter()
    if box is not None:
        lo, hi = (np.broadcast_to(np.asarray(torch.as_tensor(v, dtype=torch.float64).cpu()), (d,)).copy() for v in box)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (lo < hi).all()):
            raise InvalidInputError("box needs finite bounds with lo < hi in every coordinate")
        boxes = (balanced_cells(net, lo, hi, cells, seed) if balance and walls is None and cells > 1
                 else box_cells(lo, hi, cells, seed, walls))
        tasks, wall_list = _box_tasks(boxes, lo)
    else:
        # the apex should not be a vertex of the arrangement (bias-free first layers meet at 0): a
        # seeded point near 0 by default; the cone walls may pass through vertices
        c = (np.random.default_rng([seed, 1]).standard_normal(d) * 1e-2 if centre is None
             else np.asarray(torch.as_tensor(centre, dtype=torch.float64)).reshape(-1))
        if c.size != d or not np.isfinite(c).all():
            raise InvalidInputError(f"centre must be {d} finite numbers")
        cones = cone_cells(d, cells, seed)
        tasks, wall_list = _cone_tasks(cones, c)
    moved = []
    for attempt in range(CENTRE_TRIES + 1):
        try:
            parts, used = _run_cells(net, tasks, workers, ray, address, time_limit, max_regions, progress,
                                     ray_timeout, wall_list if check_walls else None, certify)
            break
        except DegenerateGeometryError as e:
            # a cone wall within rounding of a vertex of the arrangement (or along a boundary) makes a
            # cell's pieces thinner than float64 or hides an adjacency; the regions do not depend on
            # the apex, so the cones are redrawn around a moved one
            if attempt == CENTRE_TRIES:
                raise
            moved.append(str(e))
            rng = np.random.default_rng([seed, 2, attempt])
            if box is not None:
                boxes = _moved_cuts(boxes, lo, hi, rng)
                tasks, wall_list = _box_tasks(boxes, lo)
            else:
                c = c + rng.standard_normal(d) * 1e-2 * (1.0 + np.abs(c).max())
                tasks, wall_list = _cone_tasks(cones, c)

    t1, c1 = time.perf_counter(), time.process_time()
    patterns, xw, bounded, count, linear, linear_certain = _merge(parts, box is None, net)
    complete = all(p["complete"] for p in parts)
    t2 = time.perf_counter()
    stopped = next((p["stopped_by"] for p in parts if not p["complete"]), None)
    res = SplitEnumeration(
        count=int(count), linear_count=int(linear) if complete else None, complete=complete, stopped_by=stopped,
        certified=complete and linear_certain and all(p["certified"] for p in parts),
        counts_what="activation regions", domain="box" if box is not None else "R^d", seconds=t2 - t0,
        patterns=patterns, interior_points=xw, bounded=bounded, cells=len(tasks),
        pieces=int(sum(p["patterns"].shape[0] for p in parts)), cell_seconds=[p["seconds"] for p in parts],
        merge_seconds=t2 - t1, merge_cpu_seconds=time.process_time() - c1,
        cell_cpu_seconds=[p["cpu_seconds"] for p in parts], cell_certificates=[p["certificate"] for p in parts], apex_moves=moved,
        executor="ray" if ray else ("local" if used > 1 else "in-process"), workers=used,
        box=None if box is None else (lo.tolist(), hi.tolist()))
    res._net = net
    return res


def check_parallel(split, workers, ray) -> None:
    """:func:`relulab.regions.full_space`'s ``split``, ``workers`` and ``ray``, refused unless each is
    None, a positive integer (``split``, ``workers``), or True / a cluster address (``ray``)."""
    if not (ray is None or isinstance(ray, bool) or (isinstance(ray, str) and ray.strip())):
        raise InvalidInputError(f"ray must be True (a local Ray instance), a cluster address 'HOST:PORT' or "
                                f"None, got {ray!r}")
    for what, v in (("split (cells must be", split), ("workers (workers must be", workers)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise InvalidInputError(f"{what} a positive integer), got {v!r}")


def full_space_split(net: PLNet, box, split, workers, ray, *, max_regions, time_limit, neighbours, audit_samples,
                     memory_budget, progress, method, out, certify) -> SplitEnumeration:
    """:func:`relulab.regions.full_space` with ``split`` / ``workers`` / ``ray``: its arguments checked
    and handed to :func:`split_full_space` (``split`` cells, default ``4 * workers``; ``ray=True``: a
    local Ray instance, ``ray="HOST:PORT"``: that cluster). The options that a merge of cells does not
    give (the neighbour graph, an audit, a streamed Parquet file, a chosen engine, another memory
    budget) are refused rather than ignored."""
    from relulab.regions.space import DEFAULT_MEMORY

    refused = [what for what, used in (("neighbours=True", neighbours), ("audit_samples", audit_samples),
                                       ("out", out is not None), (f"method={method!r}", method != "auto"),
                                       ("memory_budget", memory_budget != DEFAULT_MEMORY)) if used]
    if refused:
        raise InvalidInputError(f"{', '.join(refused)} cannot be combined with split, workers or ray (each cell "
                                "runs the default engine; enumerate in one process for these)")
    check_parallel(split, workers, ray)
    if certify not in (None, True, False):
        raise InvalidInputError(f"certify must be None, True or False, got {certify!r}")
    return split_full_space(net, box, cells=split, workers=workers, ray=bool(ray),
                            address=ray.strip() if isinstance(ray, str) else None, time_limit=time_limit,
                            max_regions=max_regions, certify=certify, progress=progress)
