"""Exact activation regions of a piecewise-linear network on a 2-D slice of its input space.

The slice is ``S = {origin + s u + t v : s0 <= s <= s1, t0 <= t <= t1}``. Restricted to S, every
pre-activation is a continuous piecewise-affine function of ``(s, t)``, and the activation regions
that meet S with positive area partition it into convex polygons.

Algorithm: layer-by-layer refinement (Hanin & Rolnick 2019; SplineCam, Humayun et al. 2023). Start
with the rectangle. On a polygon on which the winners of max layers ``< l`` are fixed, every piece
``g_k`` of every unit of max layer ``l`` is one affine function of ``(s, t)``. A unit whose winner is
not the same piece on the whole polygon splits it into the cells ``{g_k >= g_j for all j}`` of the
upper envelope of its pieces: a two-piece unit (ReLU, leaky ReLU, abs) cuts along the line
``g_1 = g_0``; a maxout / max-pool unit clips one copy of the polygon per piece by ``K - 1``
half-planes and keeps the cells with area. Polygons are cut together (padded vertex arrays,
vectorized Sutherland-Hodgman clipping) in rounds: each round every polygon is cut by its next
candidate unit (a unit that crossed its layer-``l`` ancestor; the others are decided once for the
ancestor, most by a disc test). Within a round a polygon first decides its next few two-piece lines
on its circumscribed disc and is cut by the first line the disc leaves open (in a line arrangement
most lines miss most cells). Chunks of polygons go depth first through the layers, so memory stays
bounded.

The pieces' affine maps: the slice map ``(s, t) -> origin + s u + t v`` is folded into the first
affine layer; for chain networks every polygon then carries the affine maps of the next max layer's
input, and the winners of layer l give those of layer l + 1 through one affine segment (the output
maps come out the same way). Where one dense layer joins two two-piece layers, a polygon's maps are
its ancestor's product with the units that crossed the ancestor zeroed, plus the polygon's own terms
of those units (a low-rank correction: a few units cross each ancestor). Networks with residual additions get them from a forward pass with
tangents along ``u`` and ``v`` at an interior point under the polygon's pattern (:meth:`PLNet.trace`).

Tolerance (scale-aware): for the pieces of a unit on a polygon, in the form
``g_k(s, t) = g_k(c) + ds g_k (s - c_s) + dt g_k (t - c_t)`` about the slice centre ``c``,
``scale = max_k |g_k(c)| + |ds g_k| (s1 - s0) + |dt g_k| (t1 - t0)`` (the size of the unit across the
slice) and ``tol = rtol * scale``. A vertex where ``|g_k - g_j| <= tol`` is taken to lie on the tie
line (it is kept on both sides), so a line through an existing vertex (concurrent lines), a line
along an existing edge (duplicate, scaled or opposite neurons) and a unit constant on a polygon never
produce slivers; two pieces that agree within ``tol`` across the slice extent are one piece (the
lowest index wins, as in :meth:`PLNet.pattern`). Regions narrower than about ``tol`` (in value units)
are merged into a neighbour: below what float64 resolves, they have zero area in exact arithmetic
except in near-degenerate configurations. Affine maps of neighbouring polygons count as equal (for
``linear_count``) within ``100 rtol`` of the output's size across the slice.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from relulab.core.budgets import check_budget
from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.core.layers import Affine, Dense
from relulab.core.plnet import Node, PLNet
from relulab.core.threads import threads_for
from relulab.progress import notify
from relulab.results import RegionResult

__all__ = ["on_plane", "PlanePartition"]

_N_EXTENT_EDGES = 4  # edge labels 0..3: bottom, right, top, left side of the slice rectangle
_BLOCK = 1 << 22  # elements per temporary tensor in chunked passes
_CHUNK = 1 << 24  # elements of the per-polygon tables of one chunk of polygons refined together
_LOW_RANK = True  # children's maps from their parent's and their own units' terms (chain networks)
_DISC_AHEAD = 16  # lines per polygon and round tested on its disc


# ====================================================================== result
@dataclass(kw_only=True)
class PlanePartition(RegionResult):
    """The partition of a 2-D slice of input space into activation regions.

    Coordinates ``(s, t)`` are slice coordinates: the input point is ``origin + s u + t v``; areas
    are in ``(s, t)`` units (multiply by ``sqrt(|u|^2 |v|^2 - (u.v)^2)`` for input-space area).

    * ``count``: activation regions (realized activation patterns) meeting the slice with positive
      area; one convex polygon each. With ``complete=False`` the polygons are a coarsening (each is
      a union of activation regions), ``count`` is a lower bound and unresolved pattern entries are -1.
    * ``polygons`` (count, M, 2): vertices in counter-clockwise order, padded by repeating the last
      vertex (so shoelace formulas and bounding boxes work on the padded array); ``n_vertices``
      (count,) the true lengths; ``polygon(i)`` one polygon unpadded.
    * ``areas`` (count,), ``patterns`` (count, n_units) (a small integer dtype; ``.long()`` for
      :meth:`PLNet.trace`).
    * ``maps`` (count, n_out, 3): the network's output on polygon i is
      ``maps[i, :, 0] + maps[i, :, 1] s + maps[i, :, 2] t``.
    * ``adjacency`` (E, 2): pairs of polygons sharing an edge of positive length.
    * ``linear_count``: linear regions of the function restricted to the slice, i.e. connected
      components (through shared edges) of polygons whose affine maps on the slice coincide (within
      ``100 rtol`` of the output's size); ``linear_labels`` (count,) the component of each polygon.
      Two regions with different input-space maps can agree on the slice, so this can be smaller
      than the number of input-space linear regions met.
    * ``boundary`` (B, 2, 2): decision-boundary segments inside the slice. Classes are the argmax of
      the outputs (ties to the lowest index), or ``out > 0`` for a scalar output; the boundary is
      where the class changes: inside a polygon the segments where the top two outputs tie (the
      zero line of a scalar output), and edges of polygons where the class differs on the two sides.
      ``boundary_polygon`` (B,) the polygon each segment lies in (on), ``boundary_classes`` (B, 2)
      the classes on its two sides. ``boundary_pieces``: maximal straight pieces (collinear
      segments joined end to end).
    * ``layer_counts``: polygons after each max layer; ``seconds``: wall time.
    * ``certified``: the partition (every pattern, hence ``count``) is proven equal to the exact one
      (exact rational arithmetic on the float64 weights and slice): by the filtered certificate of
      :mod:`relulab.regions._plane_cert`, or taken from the exact refinement;
      ``stopped_by``: ``"max_regions"`` or ``"time_limit"`` when ``complete`` is False.
    """

    boundary_pieces: int | None
    extent: tuple
    n_units: int
    n_outputs: int
    layer_counts: list
    origin: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    polygons: torch.Tensor
    n_vertices: torch.Tensor
    areas: torch.Tensor
    patterns: torch.Tensor
    maps: torch.Tensor | None = None
    adjacency: torch.Tensor | None = None
    linear_labels: torch.Tensor | None = None
    boundary: torch.Tensor | None = None
    boundary_polygon: torch.Tensor | None = None
    boundary_classes: torch.Tensor | None = None
    rtol: float = 1e-12
    counts_what: str = "activation regions meeting the slice with positive area (one convex polygon each)"

    _summary_fields = ("domain", "count", "linear_count", "boundary_pieces", "complete", "stopped_by",
                       "certified", "extent", "n_units", "n_outputs", "seconds", "layer_counts", "rtol",
                       "counts_what")

    def to_dict(self, summary: bool = False) -> dict:
        d = super().to_dict(summary=summary)
        if not summary:
            d["total_area"] = float(self.areas.sum())
        return d

    # ------------------------------------------------------------------ geometry helpers
    def polygon(self, i: int) -> torch.Tensor:
        """Vertices (n_i, 2) of polygon ``i`` in (s, t), counter-clockwise."""
        return self.polygons[i, : int(self.n_vertices[i])]

    @property
    def centroids(self) -> torch.Tensor:
        """Area centroids (count, 2) in (s, t)."""
        return _centroids(self.polygons)

    def to_input(self, st) -> torch.Tensor:
        """Input-space points ``origin + s u + t v`` for (N, 2) slice coordinates."""
        st = torch.as_tensor(st, dtype=self.u.dtype, device=self.u.device)
        return self.origin + st[..., :1] * self.u + st[..., 1:2] * self.v

    def locate(self, net: PLNet, st) -> torch.Tensor:
        """Index of the polygon whose pattern ``net.pattern`` gives at each (N, 2) slice point, or -1
        (outside the slice, on a boundary whose tie-break pattern has no area, or an unresolved
        pattern of an incomplete partition)."""
        st = torch.as_tensor(st, dtype=self.u.dtype, device=self.u.device).reshape(-1, 2)
        pat = net.pattern(self.to_input(st))
        lookup = self.__dict__.get("_lookup")
        if lookup is None:  # a plain attribute, not a field: kept out of to_dict
            lookup = {bytes(row): i for i, row in enumerate(self.patterns.cpu().to(torch.int16).numpy())}
            self.__dict__["_lookup"] = lookup
        keys = pat.to(torch.int16).cpu().numpy()
        idx = torch.tensor([lookup.get(bytes(r), -1) for r in keys], dtype=torch.long)
        s0, s1, t0, t1 = self.extent
        inside = (st[:, 0] >= s0) & (st[:, 0] <= s1) & (st[:, 1] >= t0) & (st[:, 1] <= t1)
        return torch.where(inside.cpu(), idx, torch.full_like(idx, -1))

    def evaluate(self, st, index) -> torch.Tensor:
        """The affine map of polygon ``index`` (N,) evaluated at (N, 2) slice points, (N, n_out)."""
        if self.maps is None:
            raise InvalidInputError("the partition is incomplete: polygons carry no affine maps")
        st = torch.as_tensor(st, dtype=self.maps.dtype, device=self.maps.device).reshape(-1, 2)
        m = self.maps[torch.as_tensor(index, device=self.maps.device)]
        return m[..., 0] + m[..., 1] * st[:, :1] + m[..., 2] * st[:, 1:2]

    # ------------------------------------------------------------------ picture
    def plot(self, ax=None, color: str = "pattern", output: int = 0, boundary: bool = True,
             edgecolor="k", linewidth: float = 0.2, cmap=None, boundary_color="red",
             boundary_width: float = 1.5, alpha: float = 1.0):
        """Draw the polygons and the decision boundary on ``ax`` (a new figure if None); saves nothing.

        ``color``: "pattern" (a hash of the activation pattern), "linear" (linear region), "value"
        (output ``output`` at the centroid), "class" (argmax class at the centroid) or "none".
        """
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection, PolyCollection

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 6))
        verts = self.polygons.detach().cpu().numpy()
        P = verts.shape[0]
        kw = dict(edgecolors=edgecolor, linewidths=linewidth, alpha=alpha)
        if color == "none":
            coll = PolyCollection(verts, facecolors="none", **kw)
        else:
            if color == "pattern":
                g = torch.Generator().manual_seed(0)
                w = torch.randint(1, 2**31 - 1, (self.patterns.shape[1],), generator=g)
                key = (self.patterns.cpu().long() + 1) @ w if self.patterns.shape[1] else torch.zeros(P, dtype=torch.long)
                vals = ((key * 2654435761) % 1000003).double() / 1000003.0
                cm = cmap or "tab20"
            elif color == "linear":
                if self.linear_labels is None:
                    raise InvalidInputError("color='linear' needs a complete partition")
                lab = self.linear_labels.cpu().long()
                vals = ((lab * 2654435761) % 1000003).double() / 1000003.0
                cm = cmap or "tab20"
            elif color in ("value", "class"):
                if self.maps is None:
                    raise InvalidInputError(f"color={color!r} needs a complete partition")
                c = self.centroids
                out = self.maps[..., 0] + self.maps[..., 1] * c[:, :1] + self.maps[..., 2] * c[:, 1:2]
                if color == "value":
                    vals = out[:, output].cpu()
                    cm = cmap or "viridis"
                else:
                    vals = (out[:, 0] > 0).long() if out.shape[1] == 1 else out.argmax(1)
                    vals = vals.cpu().double()
                    cm = cmap or "tab10"
            else:
                raise InvalidInputError(
                    f"color={color!r}: expected 'pattern', 'linear', 'value', 'class' or 'none'")
            coll = PolyCollection(verts, array=vals.numpy(), cmap=cm, **kw)
        ax.add_collection(coll)
        if boundary and self.boundary is not None and self.boundary.shape[0]:
            ax.add_collection(LineCollection(self.boundary.cpu().numpy(), colors=boundary_color,
                                             linewidths=boundary_width))
        s0, s1, t0, t1 = self.extent
        ax.set_xlim(s0, s1)
        ax.set_ylim(t0, t1)
        ax.set_aspect("equal")
        ax.set_xlabel("s")
        ax.set_ylabel("t")
        ax.set_title(f"{self.count} activation regions" + ("" if self.complete else " (incomplete)"))
        return ax


# ====================================================================== arguments
def _vector(x, name, d, dev, dt) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise InvalidInputError(f"{name} must be a real vector, got dtype {t.dtype}")
    t = t.to(device=dev, dtype=dt).reshape(-1)
    if t.numel() != d:
        raise InvalidInputError(f"{name} has {t.numel()} entries; the network has {d} inputs")
    if not bool(torch.isfinite(t).all()):
        raise InvalidInputError(f"{name} has non-finite entries")
    return t


def _extent(extent) -> tuple[float, float, float, float]:
    if isinstance(extent, (int, float)) or (isinstance(extent, torch.Tensor) and extent.numel() == 1):
        r = float(extent)
        if not (math.isfinite(r) and r > 0):
            raise InvalidInputError(f"extent={extent!r}: a scalar extent must be a positive half-width")
        return (-r, r, -r, r)
    try:
        e = tuple(float(x) for x in extent)
    except TypeError:
        raise InvalidInputError(f"extent={extent!r}: give (s_min, s_max, t_min, t_max) or a half-width r") from None
    if len(e) != 4 or not all(math.isfinite(x) for x in e) or not (e[0] < e[1] and e[2] < e[3]):
        raise InvalidInputError(f"extent={extent!r}: need four finite numbers with s_min < s_max, t_min < t_max")
    return e


def _restrict(net: PLNet, origin, u, v) -> PLNet:
    """The network as a function of (s, t): the slice map folded into the first affine layer.

    ``L(origin + s u + t v) + b = (L origin + b) + s L u + t L v``, so when the input feeds one affine
    layer only, that layer becomes a Dense map from R^2 (no d-dimensional work per polygon).
    """
    users = [i for i, nd in enumerate(net.nodes) if 0 in nd.inputs]
    if len(net.nodes) > 1 and users == [1] and isinstance(net.nodes[1].layer, Affine):
        first = net.nodes[1]
        L = first.layer
        cols = L.linear(torch.stack([u, v]))  # (2, out)
        lay = Dense(cols.T.contiguous(), L(origin[None])[0])
        lay.out_shape = tuple(L.out_shape)
        nodes = [Node(None, (), "input"), Node(lay, (0,), first.name)] + list(net.nodes[2:])  # type: ignore[arg-type]
    else:
        lay = Dense(torch.stack([u, v], 1).contiguous(), origin.clone())
        lay.out_shape = tuple(net.input_shape)
        nodes = [Node(None, (), "input"), Node(lay, (0,), "slice")]  # type: ignore[arg-type]
        nodes += [Node(nd.layer, tuple(j + 1 for j in nd.inputs), nd.name) for nd in net.nodes[1:]]
    return PLNet(nodes, (2,), dtype=net.dtype, device=net.device)


# ====================================================================== polygon kernels
def _pad_repeat(V: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Fill slots >= n with the last vertex."""
    M = V.shape[1]
    if M == 0:
        return V
    ar = torch.arange(M, device=V.device)
    idx = torch.minimum(ar[None], (n[:, None] - 1).clamp(min=0))
    return V.gather(1, idx[..., None].expand(-1, -1, V.shape[2]))


def _areas(V: torch.Tensor) -> torch.Tensor:
    """Signed (counter-clockwise positive) areas of repeat-padded polygons."""
    if V.shape[1] == 0:
        return V.new_zeros(V.shape[0])
    W = V - V[:, :1]
    Wn = W.roll(-1, 1)
    return 0.5 * (W[..., 0] * Wn[..., 1] - Wn[..., 0] * W[..., 1]).sum(1)


def _centroids(V: torch.Tensor) -> torch.Tensor:
    """Area centroids of repeat-padded polygons."""
    o = V[:, :1]
    W = V - o
    Wn = W.roll(-1, 1)
    cr = W[..., 0] * Wn[..., 1] - Wn[..., 0] * W[..., 1]
    a = cr.sum(1)
    c = ((W + Wn) * cr[..., None]).sum(1) / (3.0 * a[:, None])
    return c + o[:, 0]


def _means(V: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Vertex means (interior points of convex polygons with positive area)."""
    ar = torch.arange(V.shape[1], device=V.device)
    m = (ar[None] < n[:, None]).to(V.dtype) / n[:, None].to(V.dtype)  # weights first: no overflow near 1e308
    return (V * m[..., None]).sum(1)


def _global_line(D, ref):
    """An affine function in local form about ``ref`` (A, 3) as the line ``a s + b t + c`` (A, 3)."""
    return torch.stack([D[:, 1], D[:, 2], D[:, 0] - D[:, 1] * ref[:, 0] - D[:, 2] * ref[:, 1]], 1)


def _cut(V, n, E, d, tol, new_label, cutline, sides=(1,)):
    """The parts ``{side * d >= 0}`` of each convex polygon (Sutherland-Hodgman, vectorized).

    ``V`` (A, M, 5): per vertex ``(s, t)`` and the line ``(a, b, c)`` of the edge leaving it;
    ``cutline`` (A, 3) the cut as such a line. A new vertex is the intersection of the two *lines*
    (Cramer's rule), not an interpolation between the edge's ends: its error is relative to its own
    coordinates, not to the edge's length, so tiny regions far inside a huge slice stay resolved.

    ``d`` (A, M): an affine function at the vertices; ``|d| <= tol`` counts as on the line (the
    vertex is kept on both sides, no intersection is made next to it). ``E`` (A, M): label of the
    edge leaving each vertex; edges along the cut get ``new_label`` (A,). For each side returns the
    clipped polygons, their lengths, labels, and whether some vertex was strictly inside (else the
    part has no area). Intersection points are computed once, so both sides share them exactly.
    """
    A, M, _ = V.shape
    ar = torch.arange(M, device=V.device)
    valid = ar[None] < n[:, None]
    nxt = torch.where(ar[None] + 1 < n[:, None], ar[None] + 1, torch.zeros_like(ar)[None])
    tol = tol if tol.dim() == 2 else tol[:, None]
    s = (d > tol).to(torch.int8) - (d < -tol).to(torch.int8)
    s_n = s.gather(1, nxt)
    cross = valid & ((s * s_n) < 0)
    d_n = d.gather(1, nxt)
    V_n = V.gather(1, nxt[..., None].expand(A, M, V.shape[2]))
    w = torch.where(cross, d / torch.where(cross, d - d_n, torch.ones_like(d)), torch.zeros_like(d))
    P, Pn = V[..., :2], V_n[..., :2]
    X = P + w[..., None] * (Pn - P)
    a, b, c = V[..., 2], V[..., 3], V[..., 4]
    a2, b2, c2 = (cutline[:, None, k] for k in range(3))
    det = a * b2 - b * a2
    sd = torch.where(det != 0, det, torch.ones_like(det))
    Xl = torch.stack([(b * c2 - c * b2) / sd, (c * a2 - a * c2) / sd], -1)
    slack = 1e-9 * (P.abs() + Pn.abs())
    inside = ((Xl >= torch.minimum(P, Pn) - slack) & (Xl <= torch.maximum(P, Pn) + slack)).all(-1)
    X = torch.where((cross & (det != 0) & inside)[..., None], Xl, X)
    lines = V[..., 2:]
    cut = cutline[:, None, :]
    out = []
    for side in sides:
        ss, sn = (s, s_n) if side > 0 else (-s, -s_n)
        keep = valid & (ss >= 0)
        leaves = sn < 0  # the boundary walks on along the cut after this vertex / crossing
        # candidates in boundary order: vertex i (slot 2i), then its edge's crossing (slot 2i + 1)
        pts = V.new_empty(A, M, 2, 5)
        pts[:, :, 0, :2] = P
        pts[:, :, 1, :2] = X
        pts[:, :, 0, 2:] = torch.where((leaves & ~cross)[..., None], cut, lines)
        pts[:, :, 1, 2:] = torch.where(leaves[..., None], cut, lines)
        labs = torch.stack([torch.where(leaves & ~cross, new_label[:, None], E),
                            torch.where(leaves, new_label[:, None], E)], 2).reshape(A, 2 * M)
        emit = torch.stack([keep, cross], 2).reshape(A, 2 * M)
        # output slot k reads the (k+1)-th emitted candidate; slots past the end repeat the last one
        cs = emit.long().cumsum(1)
        n2 = cs[:, -1] if M else cs.new_zeros(A)
        M2 = int(n2.max()) if A else 0
        k = torch.minimum(torch.arange(1, M2 + 1, device=V.device)[None], n2[:, None].clamp(min=1))
        src = torch.searchsorted(cs, k).clamp(max=max(2 * M - 1, 0))
        V2 = pts.reshape(A, 2 * M, 5).gather(1, src[..., None].expand(A, M2, 5))
        E2 = torch.where(torch.arange(M2, device=V.device)[None] < n2[:, None], labs.gather(1, src), -1)
        out.append((V2, n2, E2, (valid & (ss > 0)).any(1)))
    return out


def _clip(V, n, E, d, tol, new_label, cutline):
    return _cut(V, n, E, d, tol, new_label, cutline)[0]


def _pad_cols(V, E, M):
    """Repeat-pad vertices (and -1-pad labels) to M columns."""
    m = V.shape[1]
    if m >= M:
        return V, E
    if m == 0:
        return V.new_zeros(V.shape[0], M, V.shape[2]), E.new_full((E.shape[0], M), -1)
    return (torch.cat([V, V[:, -1:].expand(-1, M - m, -1)], 1),
            torch.cat([E, E.new_full((E.shape[0], M - m), -1)], 1))


class _Work:
    """Growable buffers of the polygons being refined within one layer."""

    def __init__(self, V, n, E, lp, par):
        self.N = V.shape[0]
        self.V, self.n, self.E, self.lp, self.par = V.clone(), n.clone(), E.clone(), lp.clone(), par.clone()
        self.ptr = torch.zeros_like(self.n)
        self.alive = torch.ones_like(self.n, dtype=torch.bool)

    def discs(self, ref, rho, idx=None):
        """Set the circumscribed discs of polygons ``idx`` (all when None)."""
        if idx is None:
            self.ref, self.rho = ref.clone(), rho.clone()
            return
        if self.ref.shape[0] < self.V.shape[0]:
            grow = self.V.shape[0] - self.ref.shape[0]
            self.ref = torch.cat([self.ref, self.ref.new_zeros(grow, 2)])
            self.rho = torch.cat([self.rho, self.rho.new_zeros(grow)])
        self.ref[idx], self.rho[idx] = ref, rho

    def cols(self, M):
        if M > self.V.shape[1]:
            self.V, self.E = _pad_cols(self.V, self.E, M)

    def put(self, idx, V, n, E):
        self.cols(V.shape[1])
        V, E = _pad_cols(V, E, self.V.shape[1])
        self.V[idx], self.n[idx], self.E[idx] = V, n, E

    def append(self, V, n, E, lp, par, ptr) -> torch.Tensor:
        k = V.shape[0]
        need = self.N + k
        if need > self.V.shape[0]:
            cap = max(need, 2 * self.V.shape[0])
            grow = cap - self.V.shape[0]
            self.V = torch.cat([self.V, self.V.new_zeros(grow, *self.V.shape[1:])])
            self.E = torch.cat([self.E, self.E.new_full((grow, self.E.shape[1]), -1)])
            self.n = torch.cat([self.n, self.n.new_zeros(grow)])
            self.lp = torch.cat([self.lp, self.lp.new_full((grow, self.lp.shape[1]), -1)])
            self.par = torch.cat([self.par, self.par.new_zeros(grow)])
            self.ptr = torch.cat([self.ptr, self.ptr.new_zeros(grow)])
            self.alive = torch.cat([self.alive, self.alive.new_zeros(grow)])
        self.cols(V.shape[1])
        V, E = _pad_cols(V, E, self.V.shape[1])
        sl = slice(self.N, need)
        self.V[sl], self.n[sl], self.E[sl], self.lp[sl], self.par[sl], self.ptr[sl] = V, n, E, lp, par, ptr
        self.alive[sl] = True
        self.N = need
        return torch.arange(sl.start, sl.stop, device=self.n.device)

    def result(self):
        keep = self.alive[: self.N].nonzero(as_tuple=True)[0]
        # index_select: row gathers of small integer tables are many times faster than indexing
        return _shrink(tuple(x.index_select(0, keep) for x in (self.V, self.n, self.E, self.lp, self.par)))


def _cat_polys(parts):
    """Concatenate (V, n, E, *extra) tuples of polygon sets with different paddings."""
    parts = [p for p in parts if p[0].shape[0]]
    if not parts:
        return None
    M = max(p[0].shape[1] for p in parts)
    out_V, out_E = [], []
    for p in parts:
        V, n, E = p[0], p[1], p[2]
        if V.shape[1] < M:
            V = torch.cat([V, V[:, -1:].expand(-1, M - V.shape[1], -1)], 1)
            E = torch.cat([E, E.new_full((E.shape[0], M - E.shape[1]), -1)], 1)
        out_V.append(V)
        out_E.append(E)
    extras = [torch.cat([p[k] for p in parts]) for k in range(3, len(parts[0]))]
    return (torch.cat(out_V), torch.cat([p[1] for p in parts]), torch.cat(out_E), *extras)


def _shrink(polys):
    """Drop padding columns beyond the longest polygon."""
    V, n, E = polys[0], polys[1], polys[2]
    M = int(n.max()) if n.numel() else 0
    if M < V.shape[1]:
        return (V[:, :M], n, E[:, :M], *polys[3:])
    return polys


def _eval_affine(coef, ref, V):
    """Affine functions ``c0 + cs (s - s_ref) + ct (t - t_ref)`` at vertices.

    ``coef`` (A, ..., 3), ``ref`` (A, 2), ``V`` (A, M, 2) -> (A, M, ...)."""
    ds = V[..., 0] - ref[:, None, 0]
    dt = V[..., 1] - ref[:, None, 1]
    extra = coef.dim() - 2
    shp = (coef.shape[0], 1, *coef.shape[1:-1])
    c = coef.reshape(shp + (3,))
    ds = ds.reshape(ds.shape + (1,) * extra)
    dt = dt.reshape(dt.shape + (1,) * extra)
    return c[..., 0] + ds * c[..., 1] + dt * c[..., 2]


def _envelope(vals, valid, tol):
    """Status of the upper envelope of K affine pieces on convex polygons.

    ``vals`` (..., M, K) piece values at the vertices, ``valid`` (..., K), ``tol`` (...).
    A piece wins the whole polygon iff it is >= every other valid piece at every vertex (within tol).
    Returns (crossing, winner): crossing when no piece wins the whole polygon; winner the piece with
    the largest worst-case margin (lowest index among equals).
    """
    K = vals.shape[-1]
    vm = vals.masked_fill(~valid[..., None, :], -math.inf)
    if K == 1:
        return torch.zeros(vals.shape[:-2], dtype=torch.bool, device=vals.device), torch.zeros(
            vals.shape[:-2], dtype=torch.long, device=vals.device)
    top = vm.topk(2, dim=-1)
    kk = torch.arange(K, device=vals.device)
    other = torch.where(kk == top.indices[..., :1], top.values[..., 1:2], top.values[..., :1])
    tol = tol[..., None] if tol.dim() == vals.dim() - 2 else tol  # per polygon or per vertex
    margin = (vm - other + tol[..., None]).amin(-2).masked_fill(~valid, -math.inf)
    best = margin.max(-1)
    crossing = best.values < 0
    return crossing, margin.argmax(-1)


def _dedupe(coef, valid, tol, span):
    """Drop pieces that equal a lower-index valid piece within tol across the slice extent.

    ``coef`` (..., K, 3) in local form, ``valid`` (..., K), ``tol`` (...)."""
    K = coef.shape[-2]
    if K == 1:
        return valid
    diff = coef[..., :, None, :] - coef[..., None, :, :]  # (..., K, K, 3)
    size = diff[..., 0].abs() + diff[..., 1].abs() * span[0] + diff[..., 2].abs() * span[1]
    same = (size <= tol[..., None, None]) & valid[..., None, :]
    lower = torch.ones(K, K, dtype=torch.bool, device=coef.device).tril(-1)  # j < k
    dup = (same & lower).any(-1)
    return valid & ~dup


def _dedupe_rel(coef, valid, rtol):
    """Drop pieces whose coefficients equal a lower-index valid piece's to ``rtol`` of their size
    (coefficient by coefficient: the same function, whatever the slice's extent)."""
    K = coef.shape[-2]
    if K == 1:
        return valid
    a, b = coef[..., :, None, :], coef[..., None, :, :]
    same = ((a - b).abs() <= rtol * (a.abs() + b.abs())).all(-1) & valid[..., None, :]
    lower = torch.ones(K, K, dtype=torch.bool, device=coef.device).tril(-1)  # j < k
    return valid & ~(same & lower).any(-1)


def _vtol(absc, ref, V, rtol):
    """Per-vertex tolerance for an affine function in local form about ``ref`` whose coefficients
    are bounded by ``absc`` (A, ..., 3): ``rtol`` times the magnitudes that meet in its value at
    the vertex, ``|c0| + |cs| (|s - s_ref| + |s|) + |ct| (|t - t_ref| + |t|)`` (the last terms for
    the vertex's own rounding). Relative to the geometry compared, not to the slice's size.
    Returns (A, M, ...)."""
    ds = (V[..., 0] - ref[:, None, 0]).abs() + V[..., 0].abs()
    dt = (V[..., 1] - ref[:, None, 1]).abs() + V[..., 1].abs()
    extra = absc.dim() - 2
    c = absc.reshape((absc.shape[0], 1, *absc.shape[1:-1]) + (3,))
    ds = ds.reshape(ds.shape + (1,) * extra)
    dt = dt.reshape(dt.shape + (1,) * extra)
    return rtol * (c[..., 0] + ds * c[..., 1] + dt * c[..., 2])


class _Overflow(Exception):
    """A float64 intermediate value of the refinement is not finite."""


def _scale(coef, valid, span):
    size = coef[..., 0].abs() + coef[..., 1].abs() * span[0] + coef[..., 2].abs() * span[1]
    return size.masked_fill(~valid, 0.0).amax(-1)


# ====================================================================== refinement
class _Budget:
    def __init__(self, max_regions, time_limit, t0):
        self.max_regions, self.time_limit, self.t0 = max_regions, time_limit, t0

    stopped_by = None

    def exceeded(self, total: int) -> bool:
        if self.max_regions is not None and total > self.max_regions:
            self.stopped_by = "max_regions"
            return True
        if self.time_limit is not None and time.perf_counter() - self.t0 > self.time_limit:
            self.stopped_by = "time_limit"
            return True
        return False


def _disc_sides(D, Dabs, ref, rho, centre, rtol):
    """Which side of its line ``D`` (local form about ``centre``) each polygon lies on, decided from
    its circumscribed disc (vertex mean ``ref``, radius ``rho``) where that is sure: the line misses
    the disc by more than the largest tolerance of the vertex test. ``D``, ``Dabs`` (..., 3), ``ref``
    (A, 2), ``rho`` (A,) with A the leading size of ``D``. Returns (value at ref, sure)."""
    off = ref - centre
    if D.dim() == 3:
        off, rho_ = off[:, None], rho[:, None]
        ra = ref[:, None]
    else:
        rho_, ra = rho, ref
    # (sums over the two slice coordinates written out: reductions over a dimension of size 2 are slow)
    dref = torch.addcmul(torch.addcmul(D[..., 0], D[..., 1], off[..., 0]), D[..., 2], off[..., 1])
    # bounds |s - c_s| + |s| (and for t) over the polygon's vertices
    reach = off.abs() + ra.abs() + 2 * rho_[..., None]
    tmax = torch.addcmul(torch.addcmul(Dabs[..., 0], Dabs[..., 1], reach[..., 0]), Dabs[..., 2],
                         reach[..., 1]).mul_(rtol)
    # |ds D| + |dt D| >= the gradient's length: a disc of radius rho is inside its reach
    sure = dref.abs() > (Dabs[..., 1] + Dabs[..., 2]) * rho_ + tmax
    if not bool(torch.isfinite(dref).all() & torch.isfinite(tmax).all()):
        raise _Overflow
    return dref, sure


def _line_rows(Zc, coef, relu):
    """``rows(p, u)``: the tie lines ``D = c1 z - c0 z`` of two-piece units ``u`` on polygons ``p``
    (local form, from the maps ``Zc`` (A, U, 3)) and ``|c1 z| + |c0 z|`` (bounds D's rounding)."""
    def rows(p, u):
        z = Zc[p, u]
        if relu:
            return z, z.abs()
        d0, d1 = z * coef[u, 0][..., None], z * coef[u, 1][..., None]
        return d1 - d0, d1.abs() + d0.abs()
    return rows


def _disc_sides_maps(Zc, coef, relu, ref, rho, centre, rtol):
    """:func:`_disc_sides` for every two-piece unit of every polygon at once, from the maps ``Zc``
    (A, U, 3) (a view of (3, A, U) memory): with ``x = (1, ref - centre)`` and
    ``b = (rtol, rho + rtol reach_s, rho + rtol reach_t)`` (per polygon), the value at ``ref`` is
    ``(c1 - c0) (z . x)`` and the test's bound is ``(|c0| + |c1|) (|z| . b)`` (two batched products:
    one pass over the maps each, instead of a dozen elementwise passes). It bounds the other form's
    terms: ``|c1 z - c0 z| <= |c1 z| + |c0 z| = (|c0| + |c1|) |z|``; the factor ``1 + 1e-9`` covers
    the rounding of the bound itself. A filter only: pairs it leaves are tested at the vertices."""
    off = ref - centre
    x = torch.stack([torch.ones_like(off[:, 0]), off[:, 0], off[:, 1]], 1)[:, None]  # (A, 1, 3)
    zt = Zc.permute(0, 2, 1)  # (A, 3, U)
    dref = torch.bmm(x, zt)[:, 0]  # (A, U)
    reach = off.abs() + ref.abs() + 2 * rho[:, None]
    b = torch.stack([torch.full_like(rho, rtol), rho + rtol * reach[:, 0], rho + rtol * reach[:, 1]], 1)
    bound = torch.bmm(b[:, None].mul_(1 + 1e-9), zt.abs())[:, 0]
    if not relu:
        dref.mul_(coef[:, 1] - coef[:, 0])
        bound.mul_(coef[:, 0].abs() + coef[:, 1].abs())
    sure = dref.abs() > bound
    if not bool(torch.isfinite(dref.abs().amax() + bound.amax())):
        raise _Overflow
    return dref, sure


def _discs(V, n):
    """Vertex means (A, 2) and the radius (A,) of the disc about them holding every vertex."""
    ref = _means(V[..., :2], n)
    rel = V[..., :2] - ref[:, None]
    return ref, torch.hypot(rel[..., 0], rel[..., 1]).amax(1)


def _layer_coefs(rnet: PLNet, l: int, ref, pat, eye2):
    """Pieces of max layer l on each polygon, as local affine functions (P, U, K, 3) at ``ref``."""
    forced = pat.long().clone()
    forced[:, rnet.unit_offsets[l]:] = -1
    tr = rnet.trace(ref, directions=eye2, pattern=forced, upto=l)
    val, tan = tr.pieces[l], tr.piece_tangents[l]
    layer = rnet.max_units[l]
    valid = layer.valid
    coef = torch.stack([val, tan[:, 0], tan[:, 1]], -1)
    return torch.where(valid[None, :, :, None], coef, torch.zeros_like(coef))


class _Stop(Exception):
    """A budget ran out; the partial partition has been collected."""


def _segments(rnet: PLNet):
    """For a chain network (every node reads the one before): the affine layers before each max
    layer and after the last one; None for other graphs (residual additions)."""
    if not all(nd.inputs == (i - 1,) for i, nd in enumerate(rnet.nodes) if i > 0):
        return None
    segs, cur = [], []
    for nd in rnet.nodes[1:]:
        if isinstance(nd.layer, Affine):
            cur.append(nd.layer)
        else:
            segs.append(cur)
            cur = []
    segs.append(cur)
    return segs


def _affine_maps(layers, Z):
    """Push affine maps of (s, t) through affine layers: Z (C, w, 3) = (value at the slice centre,
    d/ds, d/dt) of every feature. The three columns go through each layer as one batch (3C rows)."""
    C = Z.shape[0]
    z = Z.permute(2, 0, 1).reshape(3 * C, -1)  # free when Z is a view of (3, C, w) memory
    for lay in layers:
        z = lay.linear(z)
        if lay.bias is not None:
            z[:C] += lay.bias
    # a (C, w, 3) view of (3, C, w) memory: each column's values are contiguous for the next layer
    return z.reshape(3, C, -1).permute(1, 2, 0)


def _single_dense(layers):
    """The one Dense layer of an affine segment, or None (several layers, a convolution, ...)."""
    return layers[0] if len(layers) == 1 and isinstance(layers[0], Dense) else None


def _winner_coef(layer, w):
    """The coefficient ``coef[j, w[:, j]]`` of each row's winner (rows, U) of an elementwise layer."""
    c = layer.coef
    if c.shape[1] == 2:
        return torch.where(w == 1, c[:, 1], c[:, 0])
    return c.gather(1, w.long().T.contiguous()).T


def _low_rank_pays(pairs: int, parents: int, children: int, units: int) -> bool:
    """Whether children's maps from their parents' plus corrections beat one product per child: the
    corrections (a sparse product and the gather of the parents' rows) cost several multiply-adds of a
    matrix product per element."""
    return 8 * pairs + parents * units < children * units


def _children_maps(base, parent, q, j, y, weight_t):
    """Maps of child rows from their parents' maps and low-rank corrections.

    ``base`` (3, A, w): ``L (c_b * z) + b`` per parent, the next layer applied to the parent's
    features with the coefficient of every unit that varies among its children set to 0;
    ``parent`` (C,) each child's parent; pairs ``(q, j)`` (Q,): child ``q`` has the nonzero term
    ``y`` (Q, 3) from varying unit ``j`` (sorted by child, then unit). Returns (3, C, w):
    ``base[parent] + S L^T`` with ``S`` (3C, U) the sparse matrix of the terms ``y`` (one sparse
    product: each term costs one row of ``L^T``, and no (Q, w) temporaries are built). Each child's
    map is a sum of the same products as ``L (c * z) + b`` with its own coefficients, in another
    order: the same rounding-error bound."""
    C = parent.numel()
    out = base.index_select(1, parent)
    if not q.numel():
        return out
    Q = q.numel()
    start = torch.zeros(C + 1, dtype=torch.long, device=q.device)
    start[1:] = torch.bincount(q, minlength=C).cumsum(0)
    crow = torch.cat([start[:-1], start[:-1] + Q, start + 2 * Q])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse")
        S = torch.sparse_csr_tensor(crow, j.repeat(3), y.T.reshape(-1), (3 * C, weight_t.shape[0]))
        flat = out.view(3 * C, -1)
        return torch.addmm(flat, S, weight_t).view(3, C, -1)


def _refine(rnet: PLNet, ext, rtol: float, budget: _Budget, pdtype, progress=None):
    """Refine the slice rectangle through every max layer.

    Depth first: a chunk of polygons is cut by layer l, and its pieces go on through the later layers
    before the next chunk starts, so memory stays bounded. For chain networks every polygon carries
    the affine maps (in (s, t)) of the next max layer's input, pushed through one affine segment per
    layer (each layer's maps cost one layer's work); otherwise the pieces come from a forward pass
    (:meth:`PLNet.trace`) with the polygon's pattern. Returns polygons, lengths, edge labels,
    patterns, completeness, per-layer counts, (chain networks) output maps at the slice centre, and
    for a complete partition each polygon's ancestors (P, L): the index of the polygon it lay in when
    layer l began (polygons sharing it share the winners of the layers before l).
    """
    dev, dt = rnet.device, rnet.dtype
    s0, s1, t0, t1 = ext
    centre = torch.tensor([s0 / 2 + s1 / 2, t0 / 2 + t1 / 2], dtype=dt, device=dev)  # no overflow
    eye2 = torch.eye(2, dtype=dt, device=dev)
    L = len(rnet.max_units)
    segs = _segments(rnet)
    widths = [2] + [int(torch.tensor(nd.layer.out_shape).prod()) for nd in rnet.nodes[1:]]
    wmax = max(widths)
    state = {"label": _N_EXTENT_EDGES, "live": 1, "done": 0, "ids": [0] * L}
    outs, partial = [], []
    ranges = []  # (label base, layer, units, pieces, two-piece) of each chunk: edges' constraints
    layer_counts = [0] * L

    def process(l, V, n, E, pat, Z, anc):
        if l == L:
            outs.append((V, n, E, pat, Z, anc))
            state["done"] += V.shape[0]
            notify(progress, state["done"], None, regions=state["done"])
            return
        layer = rnet.max_units[l]
        sl = rnet.layer_slice(l)
        U, K = layer.units, layer.index.shape[1]
        two = K == 2 and bool(layer.valid.all())
        relu = two and bool((layer.coef[:, 0] == 0).all()) and bool((layer.coef[:, 1] == 1).all())
        P0 = V.shape[0]
        base = state["ids"][l]  # this call's polygons are ancestors base .. base + P0 - 1 of layer l
        state["ids"][l] += P0
        csize = max(1, _CHUNK // (U * K * 3 + 4 * wmax + 4 * V.shape[1]))
        for c0 in range(0, P0, csize):
            c1 = min(P0, c0 + csize)
            Vp, np_, Ep, patp = V[c0:c1], n[c0:c1], E[c0:c1], pat[c0:c1]
            A0 = c1 - c0
            if budget.exceeded(state["live"]):
                partial.append((V[c0:], n[c0:], E[c0:], pat[c0:]))
                raise _Stop
            ref = _means(Vp[..., :2], np_)
            cen = centre.expand(A0, 2)
            fast = Z is not None and two and layer.elementwise_units
            if fast:
                # two pieces c0 z, c1 z of feature j: D = c1 z - c0 z straight from the maps, formed for
                # the (polygon, unit) pairs that need it only (the same float operations as through
                # the pieces' table, which is never built)
                Zc = Z[c0:c1]
                coef = None
            elif Z is not None:
                Zc = Z[c0:c1]
                if layer.elementwise_units:  # piece k of unit j reads feature j: no gather
                    coef = Zc[:, :, None, :] * layer.coef[None, :, :, None]  # (A0, U, K, 3)
                else:
                    coef = Zc[:, layer.index] * layer.coef[None, :, :, None]
                if not bool(layer.valid.all()):
                    coef = coef.masked_fill(~layer.valid[None, :, :, None], 0.0)
            else:
                coef = _layer_coefs(rnet, l, ref, patp, eye2)  # local, at ref
                off = (centre - ref)[:, None, None, :]
                coef = torch.cat([coef[..., :1] + (coef[..., 1:] * off).sum(-1, keepdim=True), coef[..., 1:]], -1)
            valid = layer.valid[None].expand(A0, U, K)
            if not two and not bool(torch.isfinite(coef).all()):  # two pieces: dref and tmax below
                raise _Overflow
            lbase = state["label"]
            state["label"] += A0 * U * K * K
            ranges.append((lbase, l, U, K, two))
            crossing = torch.zeros(A0, U, dtype=torch.bool, device=dev)
            lp = torch.full((A0, U), -1, dtype=pdtype, device=dev)
            if two:
                if fast:
                    rows = _line_rows(Zc, layer.coef, relu)
                else:
                    D = coef[:, :, 1] - coef[:, :, 0]  # (A0, U, 3)
                    Dabs = coef[:, :, 1].abs() + coef[:, :, 0].abs()  # bounds the rounding of D

                    def rows(p, u, D=D, Dabs=Dabs):
                        return D[p, u], Dabs[p, u]
                # a unit cannot cross a polygon whose circumscribed disc (about its vertex mean)
                # it misses by more than the largest vertex tolerance; only the others are tested
                # at the vertices
                ref, rho = _discs(Vp, np_)
                if fast:
                    dref, sure = _disc_sides_maps(Zc, layer.coef, relu, ref, rho, centre, rtol)
                else:
                    dref, sure = _disc_sides(D, Dabs, ref, rho, centre, rtol)
                lp = torch.where(sure, (dref > 0).to(pdtype), lp)
                q, w = (~sure).nonzero(as_tuple=True)
                sub = max(1, _BLOCK // max(1, Vp.shape[1]))
                for a in range(0, q.numel(), sub):
                    qa, wa = q[a:a + sub], w[a:a + sub]
                    Dq, Dq_abs = rows(qa, wa)
                    dv = _eval_affine(Dq, cen[qa], Vp[qa])  # (Q, M)
                    tv = _vtol(Dq_abs, cen[qa], Vp[qa], rtol)
                    mx, mn = dv.amax(1), dv.amin(1)
                    cr = (dv > tv).any(1) & (dv < -tv).any(1)
                    crossing[qa, wa] = cr
                    lp[qa, wa] = torch.where(cr, torch.full_like(mx, -1), (mn > -mx).to(mx.dtype)).to(pdtype)
            else:
                valid = _dedupe_rel(coef, valid, rtol)
                cabs = coef.abs().amax(-2)  # (A0, U, 3): bounds every piece's coefficients
                sub = max(1, _BLOCK // max(1, Vp.shape[1] * U * K))
                for a in range(0, A0, sub):
                    b = min(A0, a + sub)
                    vals = _eval_affine(coef[a:b], cen[a:b], Vp[a:b])  # (B, M, U, K)
                    tv = 2 * _vtol(cabs[a:b], cen[a:b], Vp[a:b], rtol)  # (B, M, U)
                    if not bool(torch.isfinite(vals).all()):
                        raise _Overflow
                    cr, win = _envelope(vals.transpose(1, 2), valid[a:b], tv.transpose(1, 2))
                    win = win.to(pdtype)
                    crossing[a:b] = cr
                    lp[a:b] = torch.where(cr, torch.full_like(win, -1), win)
            ncand = crossing.sum(1)
            cmax = int(ncand.max()) if A0 else 0
            cand = torch.full((A0, max(cmax, 1)), -1, dtype=torch.long, device=dev)
            if cmax:
                r, uu = crossing.nonzero(as_tuple=True)
                start = ncand.cumsum(0) - ncand
                cand[r, torch.arange(r.numel(), device=dev) - start[r]] = uu
            W = _Work(Vp, np_, Ep, lp, torch.arange(A0, device=dev))
            if two:
                W.discs(*_discs(Vp, np_))
            act = (ncand > 0).nonzero(as_tuple=True)[0]
            while act.numel():
                if budget.exceeded(state["live"]):
                    Vd, nd, Ed, ld, pd = W.result()
                    full = patp.index_select(0, pd)
                    full[:, sl] = ld
                    partial.extend([(Vd, nd, Ed, full), (V[c1:], n[c1:], E[c1:], pat[c1:])])
                    raise _Stop
                pw, qw = W.par[act], W.ptr[act]
                new_idx = act[:0]
                todo = act
                if two:
                    # most polygons lie on one side of most of their next lines: decided from their
                    # discs, a few lines at a time, up to the first line the disc leaves open (the
                    # same decisions, in the same order, as one line per round)
                    B = min(_DISC_AHEAD, cand.shape[1])
                    ks = qw[:, None] + torch.arange(B, device=dev)
                    inb = ks < ncand[pw][:, None]
                    units = cand[pw[:, None], ks.clamp(max=cand.shape[1] - 1)]
                    dref, sure = _disc_sides(*rows(pw[:, None], units), W.ref[act], W.rho[act], centre, rtol)
                    sure &= inb
                    open_ = ~sure
                    nsure = torch.where(open_.any(1), open_.to(torch.int8).argmax(1), B)
                    r, b = (sure & (torch.arange(B, device=dev) < nsure[:, None])).nonzero(as_tuple=True)
                    W.lp[act[r], units[r, b]] = (dref[r, b] > 0).to(pdtype)
                    qn = qw + nsure
                    at = nsure.clamp(max=B - 1)
                    has = (nsure < B) & inb.gather(1, at[:, None])[:, 0]  # an open line to test
                    W.ptr[act] = qn + has.to(qn.dtype)
                    rest = has.nonzero(as_tuple=True)[0]
                    todo, pw, qw, unit = act[rest], pw[rest], qn[rest], units[rest, at[rest]]
                else:
                    unit = cand[pw, qw]
                    W.ptr[act] = qw + 1
                Mw = int(W.n[todo].max()) if todo.numel() else 0
                Vw, nw, Ew = W.V[todo, :Mw], W.n[todo], W.E[todo, :Mw]
                ca = centre.expand(todo.numel(), 2)
                if two and todo.numel():
                    Du, Du_abs = rows(pw, unit)
                    d = _eval_affine(Du, ca, Vw)
                    tl = _vtol(Du_abs, ca, Vw, rtol)  # (A, M)
                    mx, mn = d.amax(1), d.amin(1)
                    split = (d > tl).any(1) & (d < -tl).any(1)
                    ns = ~split
                    W.lp[todo[ns], unit[ns]] = (mn[ns] > -mx[ns]).to(pdtype)
                    if bool(split.any()):
                        sp = split.nonzero(as_tuple=True)[0]
                        ia, us = todo[sp], unit[sp]
                        lab = lbase + pw[sp] * U + us
                        cl = _global_line(Du[sp], ca[sp])
                        (Vp1, n1, E1, _), (Vm1, m1, F1, _) = _cut(Vw[sp], nw[sp], Ew[sp], d[sp], tl[sp], lab, cl,
                                                                 sides=(1, -1))
                        l0 = W.lp.index_select(0, ia)
                        l0[torch.arange(ia.numel(), device=dev), us] = 0
                        W.lp[ia, us] = 1
                        W.put(ia, Vp1, n1, E1)
                        new_idx = W.append(Vm1, m1, F1, l0, pw[sp], qw[sp] + 1)
                        W.discs(*_discs(Vp1, n1), ia)
                        W.discs(*_discs(Vm1, m1), new_idx)
                        state["live"] += int(sp.numel())
                elif not two:
                    cf = coef[pw, unit]  # (A, K, 3)
                    vd = valid[pw, unit]  # (A, K)
                    ab = cabs[pw, unit]  # (A, 3)
                    tl = 2 * _vtol(ab, ca, Vw, rtol)  # (A, M)
                    cr, win = _envelope(_eval_affine(cf, ca, Vw), vd, tl)
                    ns = ~cr
                    W.lp[act[ns], unit[ns]] = win[ns].to(pdtype)
                    if bool(cr.any()):
                        ci = cr.nonzero(as_tuple=True)[0]
                        kbase = lbase + (pw[ci] * U + unit[ci]) * (K * K)
                        cidx, cV, cn, cE, ck = _cells(Vw[ci], nw[ci], Ew[ci], cf[ci], vd[ci], ca[ci], ab[ci], rtol,
                                                      kbase)
                        src = act[ci][cidx]
                        lc = W.lp.index_select(0, src)
                        lc[torch.arange(cidx.numel(), device=dev), unit[ci][cidx]] = ck.to(pdtype)
                        W.alive[act[ci]] = False
                        new_idx = W.append(cV, cn, cE, lc, W.par[src], W.ptr[src])
                        state["live"] += int(cidx.numel()) - int(ci.numel())
                act = torch.cat([act, new_idx])
                act = act[W.alive[act] & (W.ptr[act] < ncand[W.par[act]])]
            Vd, nd, Ed, ld, pd = W.result()
            full = patp.index_select(0, pd)  # the parents' rows: -1 (undecided) from this layer on
            full[:, sl] = ld
            layer_counts[l] += Vd.shape[0]
            Znext = None
            if segs is not None:
                # each piece's winners give the layer's output maps; push them to the next max layer
                dense = _single_dense(segs[l + 1])
                low = Z is not None and two and layer.elementwise_units and dense is not None and _LOW_RANK
                kids = ncand[pd]  # units that crossed each child's parent
                if low and _low_rank_pays(int(kids.sum()), A0, pd.numel(), U):
                    # children differ from their parent only in the units that crossed it: one product
                    # per parent with those units' terms zeroed, plus each child's own terms
                    cz = layer.coef.to(Zc.dtype)
                    if relu:  # lp is -1 exactly where the unit crosses
                        cb = (lp == 1).to(Zc.dtype)
                    else:
                        cb = torch.where(crossing, 0.0, torch.where(lp == 1, cz[:, 1], cz[:, 0]))  # (A0, U)
                    Yb = (Zc.permute(2, 0, 1) * cb[None]).permute(1, 2, 0)
                    Zb = _affine_maps([dense], Yb).permute(2, 0, 1)  # (3, A0, w) memory
                    # (child, crossing unit) pairs from the parents' candidate lists, by child then unit
                    q = torch.repeat_interleave(torch.arange(pd.numel(), device=dev), kids)
                    j = cand[pd][torch.arange(cand.shape[1], device=dev)[None] < kids[:, None]]
                    cw = torch.where(ld[q, j] == 1, cz[j, 1], cz[j, 0])  # each child's coefficients
                    nz = (cw != 0).nonzero(as_tuple=True)[0]
                    q, j, cw = q[nz], j[nz], cw[nz]
                    y = Zc[pd[q], j] * cw[:, None]  # (Q, 3)
                    Znext = _children_maps(Zb, pd, q, j, y, dense.weight.T.contiguous()).permute(1, 2, 0)
                else:
                    if Z is not None and layer.elementwise_units:  # winner k of unit j reads feature j
                        # written straight into the (3, C, U) layout the next layer's product reads
                        Y = Zc.permute(2, 0, 1).index_select(1, pd)
                        Y = Y.mul_(_winner_coef(layer, ld)[None]).permute(1, 2, 0)
                    else:
                        Y = coef[pd[:, None], torch.arange(U, device=dev)[None], ld.long()]  # (C, U, 3)
                    Znext = _affine_maps(segs[l + 1], Y)
            del coef, W
            try:
                process(l + 1, Vd, nd, Ed, full, Znext,
                        torch.cat([anc[c0:c1][pd], (base + c0 + pd)[:, None]], 1))
            except _Stop:
                partial.append((V[c1:], n[c1:], E[c1:], pat[c1:]))
                raise

    # each vertex carries the line a s + b t + c = 0 of the edge leaving it
    V = torch.tensor([[[s0, t0, 0, 1, -t0], [s1, t0, 1, 0, -s1], [s1, t1, 0, 1, -t1], [s0, t1, 1, 0, -s0]]],
                     dtype=dt, device=dev)
    n = torch.tensor([4], device=dev)
    E = torch.arange(4, device=dev)[None]
    pat = torch.full((1, rnet.n_units), -1, dtype=pdtype, device=dev)
    Z = None
    if segs is not None:
        Z = _affine_maps(segs[0], torch.stack([centre, eye2[0], eye2[1]], -1)[None])
    try:
        process(0, V, n, E, pat, Z, torch.zeros(1, 0, dtype=torch.long, device=dev))
        complete = True
    except _Stop:
        complete = False
    parts = [o[:4] for o in outs] + partial
    V, n, E, pat = _shrink(_cat_polys(parts))
    V = V[..., :2].contiguous()
    maps = tree = None
    if complete and segs is not None and L:
        maps = (torch.cat([o[4] for o in outs]), centre)
    if complete:
        tree = torch.cat([o[5] for o in outs]) if outs else None
    return V, n, E, pat, complete, layer_counts, maps, ranges, tree


def _cells(V, n, E, coef, valid, ref, absc, rtol, lab_base):
    """Split each polygon into the cells ``{g_k >= g_j for all valid j}`` of its pieces.

    Returns (source polygon index, V, n, E, piece) for the cells with positive area.
    """
    A, K = coef.shape[0], coef.shape[1]
    dev = V.device
    src = torch.arange(A, device=dev).repeat_interleave(K)
    kk = torch.arange(K, device=dev).repeat(A)
    alive = valid.reshape(-1)
    Vc, nc, Ec = V[src], n[src], E[src]
    for j in range(K):
        idx = alive.nonzero(as_tuple=True)[0]
        if not idx.numel():
            break
        s_, k_ = src[idx], kk[idx]
        skip = (k_ == j) | ~valid[s_, j]
        diff = coef[s_, k_] - coef[s_, j]  # (C, 3)
        d = _eval_affine(diff, ref[s_], Vc[idx])
        d = torch.where(skip[:, None], torch.ones_like(d), d)
        t = torch.where(skip[:, None], torch.zeros_like(d), 2 * _vtol(absc[s_], ref[s_], Vc[idx], rtol))
        lab = lab_base[s_] + torch.minimum(k_, torch.full_like(k_, j)) * K + torch.maximum(k_, torch.full_like(k_, j))
        V2, n2, E2, strict = _clip(Vc[idx], nc[idx], Ec[idx], d, t, lab, _global_line(diff, ref[s_]))
        Mx = max(Vc.shape[1], V2.shape[1])
        if Vc.shape[1] < Mx:
            Vc = torch.cat([Vc, Vc[:, -1:].expand(-1, Mx - Vc.shape[1], -1)], 1)
            Ec = torch.cat([Ec, Ec.new_full((Ec.shape[0], Mx - Ec.shape[1]), -1)], 1)
        if V2.shape[1] < Mx:
            V2 = torch.cat([V2, V2[:, -1:].expand(-1, Mx - V2.shape[1], -1)], 1) if V2.shape[1] else V2.new_zeros(
                V2.shape[0], Mx, V2.shape[2])
            E2 = torch.cat([E2, E2.new_full((E2.shape[0], Mx - E2.shape[1]), -1)], 1)
        Vc = Vc.index_put((idx,), V2)
        Ec = Ec.index_put((idx,), E2)
        nc = nc.index_put((idx,), n2)
        alive = alive.index_put((idx,), alive[idx] & (strict | skip) & (n2 >= 3))
    keep = alive.nonzero(as_tuple=True)[0]
    Vk, nk, Ek = Vc[keep], nc[keep], Ec[keep]
    if Vk.shape[0]:
        M = int(nk.max())
        Vk, Ek = Vk[:, :M], Ek[:, :M]
    return src[keep], Vk, nk, Ek, kk[keep]


# ====================================================================== exact refinement
# The same layer-by-layer refinement in exact integer arithmetic, for certificates: a polygon is the
# cyclic list of its edge lines ``a s + b t + c >= 0`` (integers; the interior on the non-negative
# side), each vertex the intersection of two consecutive lines in homogeneous integer coordinates.
# New vertices are always intersections of two *lines* (never interpolations between vertices), so
# numbers grow with the depth of the network only, not with the number of cuts.
def _cross(l1, l2):
    x = l1[1] * l2[2] - l1[2] * l2[1]
    y = l1[2] * l2[0] - l1[0] * l2[2]
    w = l1[0] * l2[1] - l1[1] * l2[0]
    return (x, y, w) if w > 0 else (-x, -y, -w)


def _vertices(lines):
    return [_cross(lines[i - 1], lines[i]) for i in range(len(lines))]


def _side(h, verts):
    out = []
    for x, y, w in verts:
        v = h[0] * x + h[1] * y + h[2] * w
        out.append((v > 0) - (v < 0))
    return out


def _exact_clip(lines, labels, verts, sg, h, lab):
    """The part ``{h >= 0}`` of a convex polygon (None if it has no area), from the vertex signs."""
    n = len(lines)
    if not any(s < 0 for s in sg):
        return lines, labels, verts
    if not any(s > 0 for s in sg):
        return None
    i = next(k for k in range(n) if sg[k] < 0)
    r0 = i
    while sg[(r0 - 1) % n] <= 0:
        r0 = (r0 - 1) % n
    r1 = i
    while sg[(r1 + 1) % n] <= 0:
        r1 = (r1 + 1) % n
    keep = n - (r1 - r0) % n  # edges r1, r1 + 1, ..., r0 - 1 (those leaving the run or outside it)
    idx = [(r1 + k) % n for k in range(keep)]
    nl = [lines[k] for k in idx] + [h]
    return nl, [labels[k] for k in idx] + [lab], _vertices(nl)


def _exact_refine(net, origin, u, v, ext, deadline, pdtype):
    """Exact activation regions of the slice, as float polygons (V, n, E, patterns); None when the
    network is not a chain of affine and max layers. Raises ``_Stop`` past ``deadline``."""
    from relulab.regions._exact import dyadic, exact_affine, exact_chain

    tabs = exact_chain(net)
    if tabs is None:
        return None
    Z, e = dyadic(torch.stack([origin, u, v], 1))  # input maps: x = origin + s u + t v
    s0, s1, t0, t1 = ext
    (p_s0, q_s0), (p_s1, q_s1), (p_t0, q_t0), (p_t1, q_t1) = (x.as_integer_ratio() for x in ext)
    rect = [(0, q_t0, -p_t0), (-q_s1, 0, p_s1), (0, -q_t1, p_t1), (q_s0, 0, -p_s0)]
    polys = [(rect, [0, 1, 2, 3], _vertices(rect), [])]  # lines, labels, vertices, winners
    label = [_N_EXTENT_EDGES]
    n_units = net.n_units
    # per polygon: its maps at the current layer
    items = [(polys[0], Z, e)]
    for tab in tabs:
        if tab[0] == "affine":
            items = [(p, *exact_affine(tab, Zp, ep)) for p, Zp, ep in items]
            continue
        _, index, coef, ec, valid = tab
        Uu, K = index.shape
        idx_l, cf_l = index.tolist(), coef.tolist()
        ks_l = [[k for k in range(K) if valid[uu, k]] for uu in range(Uu)]
        out = []
        for (lines, labels, verts, wins), Zp, ep in items:
            if deadline is not None and time.perf_counter() > deadline:
                raise _Stop
            rows = Zp.tolist()
            parts = [(lines, labels, verts, [])]
            for uu in range(Uu):
                kk, g = [], []
                for k in ks_l[uu]:  # identical pieces: the lowest index stands for them (PLNet.pattern)
                    r, c = rows[idx_l[uu][k]], cf_l[uu][k]
                    gk = (c * r[1], c * r[2], c * r[0])
                    if gk not in g:
                        g.append(gk)
                        kk.append(k)
                base = label[0]
                label[0] += K * K
                if len(kk) == 1:
                    parts = [(pl, pb, pv, pw + kk) for pl, pb, pv, pw in parts]
                    continue
                new = []
                if len(kk) == 2:  # one line: each part lies on one side or is split in two
                    h = tuple(a - b for a, b in zip(g[1], g[0]))
                    hm = tuple(-a for a in h)
                    for pl, pb, pv, pw in parts:
                        sg = _side(h, pv)
                        if min(sg) >= 0:
                            new.append((pl, pb, pv, pw + [kk[1]]))
                        elif max(sg) <= 0:
                            new.append((pl, pb, pv, pw + [kk[0]]))
                        else:
                            new.append((*_exact_clip(pl, pb, pv, sg, h, base), pw + [kk[1]]))
                            new.append((*_exact_clip(pl, pb, pv, [-x for x in sg], hm, base), pw + [kk[0]]))
                    parts = new
                    continue
                for pl, pb, pv, pw in parts:
                    for a, k in enumerate(kk):
                        cell = (pl, pb, pv)
                        for b, j in enumerate(kk):
                            if j == k:
                                continue
                            h = tuple(x - y for x, y in zip(g[a], g[b]))
                            cell = _exact_clip(*cell, _side(h, cell[2]), h, base + min(k, j) * K + max(k, j))
                            if cell is None:
                                break
                        if cell is not None:
                            new.append((*cell, pw + [k]))
                parts = new
            for pl, pb, pv, pw in parts:
                Zn = np.empty((Uu, 3), dtype=object)
                Zn[:] = [[cf_l[uu][w] * x for x in rows[idx_l[uu][w]]] for uu, w in enumerate(pw)]
                out.append(((pl, pb, pv, wins + pw), Zn, ep + ec))
        items = out
    P = len(items)
    M = max(len(p[0][0]) for p in items)
    V = torch.zeros(P, M, 2, dtype=torch.float64)
    E = torch.full((P, M), -1, dtype=torch.long)
    n = torch.zeros(P, dtype=torch.long)
    pat = torch.full((P, n_units), -1, dtype=pdtype)
    for i, ((lines, labels, verts, wins), _, _) in enumerate(items):
        m = len(lines)
        pts = [(x / w, y / w) for x, y, w in verts]
        pts += [pts[-1]] * (M - m)
        V[i] = torch.tensor(pts, dtype=torch.float64)
        # the float engine labels the edge *leaving* vertex i: edge i runs from vertex i to i + 1
        E[i, :m] = torch.tensor(labels)
        n[i] = m
        if wins:
            pat[i] = torch.tensor(wins, dtype=pdtype)
    return V, n, E, pat


# ====================================================================== after refinement
def _maps(rnet: PLNet, V, n, pat, eye2):
    """Output affine maps (P, O, 3) in global (s, t) form, and their values/tangents at vertex means."""
    P = V.shape[0]
    ref = _means(V, n)
    widths = [int(torch.tensor(nd.layer.out_shape).prod()) for nd in rnet.nodes[1:]] or [2]
    cs = max(1, _BLOCK // (3 * max(widths)))
    outs, tans = [], []
    for a in range(0, P, cs):
        tr = rnet.trace(ref[a:a + cs], directions=eye2, pattern=pat[a:a + cs].long(), record=False)
        outs.append(tr.output)
        tans.append(tr.output_tangent)
    out = torch.cat(outs)
    tan = torch.cat(tans)  # (P, 2, O)
    local = torch.stack([out, tan[:, 0], tan[:, 1]], -1)  # (P, O, 3) around ref
    glob = local.clone()
    glob[..., 0] = out - tan[:, 0] * ref[:, :1] - tan[:, 1] * ref[:, 1:2]
    return glob, local, ref


def _edges(V, n, E):
    """Valid edges: polygon index, start, end, label (extent edges excluded)."""
    P, M, _ = V.shape
    ar = torch.arange(M, device=V.device)
    valid = (ar[None] < n[:, None]) & (E >= _N_EXTENT_EDGES)
    nxt = torch.where(ar[None] + 1 < n[:, None], ar[None] + 1, torch.zeros_like(ar)[None])
    B = V.gather(1, nxt[..., None].expand(P, M, 2))
    p, j = valid.nonzero(as_tuple=True)
    return p, V[p, j], B[p, j], E[p, j]


def _adjacency(V, n, E, len_tol):
    """Edge-adjacent polygon pairs, from the cut-line labels carried by every edge.

    Edges with one label lie on one line; along it the polygons on each side tile it, so the
    elementary intervals between consecutive endpoints each have one polygon per side.
    Returns pairs (plus, minus), and per interval: its line point, direction, positions.
    """
    dev, dt = V.device, V.dtype
    p, a, b, lab = _edges(V, n, E)
    empty = torch.zeros(0, dtype=torch.long, device=dev)
    if not p.numel():
        return empty, empty, None
    order = torch.argsort(lab, stable=True)
    p, a, b, lab = p[order], a[order], b[order], lab[order]
    _, grp, cnt = torch.unique_consecutive(lab, return_inverse=True, return_counts=True)
    G = cnt.numel()
    e = b - a
    ln = e.norm(dim=1)
    gmax = torch.zeros(G, dtype=dt, device=dev).scatter_reduce(0, grp, ln, "amax", include_self=False)
    ids = torch.arange(p.numel(), device=dev)
    pick = torch.full((G,), p.numel(), dtype=torch.long, device=dev).scatter_reduce(
        0, grp, torch.where(ln == gmax[grp], ids, torch.full_like(ids, p.numel())), "amin", include_self=True)
    c = e[pick] / gmax[:, None].clamp_min(torch.finfo(dt).tiny)
    r = a[pick]
    cg, rg = c[grp], r[grp]
    pa = ((a - rg) * cg).sum(1)
    pb = ((b - rg) * cg).sum(1)
    side = torch.where(pb >= pa, 1, -1)
    lo, hi = torch.minimum(pa, pb), torch.maximum(pa, pb)
    Ne = p.numel()
    # events: end (type 0) before start (type 1) at equal positions
    ev_g = torch.cat([grp, grp])
    ev_x = torch.cat([hi, lo])
    ev_t = torch.cat([torch.zeros(Ne, dtype=torch.long, device=dev), torch.ones(Ne, dtype=torch.long, device=dev)])
    ev_e = torch.cat([ids, ids])
    o = torch.argsort(ev_x, stable=True)  # the ends come first in ev_*: they stay before equal starts
    o = o[torch.argsort(ev_g[o], stable=True)]
    ev_g, ev_x, ev_t, ev_e = ev_g[o], ev_x[o], ev_t[o], ev_e[o]
    k = torch.arange(2 * Ne, device=dev)
    end_at = torch.empty(Ne, dtype=torch.long, device=dev)
    is_end = ev_t == 0
    end_at[ev_e[is_end]] = k[is_end]
    found = []
    for sgn in (1, -1):
        st = (ev_t == 1) & (side[ev_e] == sgn)
        last = torch.cummax(torch.where(st, k, torch.full_like(k, -1)), 0).values
        ok = last >= 0
        eid = ev_e[last.clamp(min=0)]
        ok &= end_at[eid] > k
        found.append((ok, eid))
    (okp, ep), (okm, em) = found
    nxt_ok = torch.zeros_like(okp)
    nxt_ok[:-1] = (ev_g[1:] == ev_g[:-1]) & (ev_x[1:] - ev_x[:-1] > len_tol)
    good = okp & okm & nxt_ok
    kk = k[good]
    ep, em = ep[good], em[good]
    info = {"plus": p[ep], "minus": p[em], "c": cg[ep], "r": rg[ep],
            "x0": ev_x[kk], "x1": ev_x[kk + 1]}
    return p[ep], p[em], info


def _components(P, i, j, same, dev):
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ii, jj = i[same].cpu().numpy(), j[same].cpu().numpy()
    g = coo_matrix((np.ones(ii.size), (ii, jj)), shape=(P, P))
    k, labels = connected_components(g, directed=False)
    return int(k), torch.as_tensor(labels, dtype=torch.long, device=dev)


def _class_pieces(local):
    """Class functions (P, K, 3): the outputs, or (0, out) for a scalar output (class = out > 0)."""
    if local.shape[1] == 1:
        return torch.cat([torch.zeros_like(local), local], 1)
    return local


def _boundary(V, n, local, ref, adj_info, ext, rtol):
    """Decision-boundary segments: ties of the top classes inside polygons, and polygon edges across
    which the class changes. Returns segments (B, 2, 2), polygon (B,), classes (B, 2), directions (B, 2)."""
    dev, dt = V.device, V.dtype
    span = _safe_span(ext)
    size = max(span)
    g = _class_pieces(local)  # (P, K, 3) around ref
    P, K = g.shape[0], g.shape[1]
    valid = torch.ones(P, K, dtype=torch.bool, device=dev)
    tol = rtol * _scale(g, valid, span)
    valid = _dedupe(g, valid, tol, span)
    segs, polys, cls, dirs = [], [], [], []
    pa_, pb_ = torch.triu_indices(K, K, 1, device=dev)
    npair = pa_.numel()
    cs = max(1, _BLOCK // max(1, V.shape[1] * K * max(1, npair)))
    for a0 in range(0, P, cs):
        sl = slice(a0, min(P, a0 + cs))
        Vb, gb, vb, tb, rb = V[sl], g[sl], valid[sl], tol[sl], ref[sl]
        vals = _eval_affine(gb, rb, Vb)  # (A, M, K)
        cr, _ = _envelope(vals, vb, tb)
        ci = cr.nonzero(as_tuple=True)[0]
        if not ci.numel():
            continue
        Vb, gb, vb, tb, rb, vals = Vb[ci], gb[ci], vb[ci], tb[ci], rb[ci], vals[ci]
        h = gb[:, pa_] - gb[:, pb_]  # (C, npair, 3)
        hv = vals[:, :, pa_] - vals[:, :, pb_]  # (C, M, npair)
        trans = (hv.amax(1) > tb[:, None]) & (hv.amin(1) < -tb[:, None]) & vb[:, pa_] & vb[:, pb_]
        q, w = trans.nonzero(as_tuple=True)
        if not q.numel():
            continue
        hq = h[q, w]  # (Q, 3)
        grad = hq[:, 1:]
        gn = grad.norm(dim=1)
        foot = rb[q] - (hq[:, 0] / gn**2)[:, None] * grad
        dirv = torch.stack([-grad[:, 1], grad[:, 0]], 1) / gn[:, None]
        # polygon edges: cross(e_j, p - V_j) >= 0
        Vq = Vb[q]
        ej = Vq.roll(-1, 1) - Vq
        alpha_e = ej[..., 0] * (foot[:, None, 1] - Vq[..., 1]) - ej[..., 1] * (foot[:, None, 0] - Vq[..., 0])
        beta_e = ej[..., 0] * dirv[:, None, 1] - ej[..., 1] * dirv[:, None, 0]
        # other classes: g_a - g_c >= -tol
        ga = gb[q, pa_[w]]  # (Q, 3)
        qc = ga[:, None, :] - gb[q]  # (Q, K, 3)
        alpha_c = qc[..., 0] + ((foot - rb[q]) [:, None, :] * qc[..., 1:]).sum(-1) + tb[q][:, None]
        beta_c = (qc[..., 1:] * dirv[:, None, :]).sum(-1)
        kk = torch.arange(K, device=dev)
        use_c = vb[q] & (kk[None] != pa_[w][:, None]) & (kk[None] != pb_[w][:, None])
        alpha_c = torch.where(use_c, alpha_c, torch.ones_like(alpha_c))
        beta_c = torch.where(use_c, beta_c, torch.zeros_like(beta_c))
        alpha = torch.cat([alpha_e, alpha_c], 1)
        beta = torch.cat([beta_e, beta_c], 1)
        tau = -alpha / torch.where(beta == 0, torch.ones_like(beta), beta)
        inf = torch.full_like(tau, math.inf)
        lo = torch.where(beta > 0, tau, -inf).amax(1)
        hi = torch.where(beta < 0, tau, inf).amin(1)
        feas = ~((beta == 0) & (alpha < 0)).any(1) & (hi - lo > 10 * rtol * size)
        if not bool(feas.any()):
            continue
        f = feas.nonzero(as_tuple=True)[0]
        A_ = foot[f] + lo[f, None] * dirv[f]
        B_ = foot[f] + hi[f, None] * dirv[f]
        segs.append(torch.stack([A_, B_], 1))
        polys.append(a0 + ci[q[f]])
        cls.append(torch.stack([pa_[w[f]], pb_[w[f]]], 1))
        dirs.append(dirv[f])
    # edges across which the class changes (ties along a polygon edge)
    if adj_info is not None and adj_info["plus"].numel():
        ip, im = adj_info["plus"], adj_info["minus"]
        c, r, x0, x1 = adj_info["c"], adj_info["r"], adj_info["x0"], adj_info["x1"]
        mid = r + (0.5 * (x0 + x1))[:, None] * c
        nrm = torch.stack([-c[:, 1], c[:, 0]], 1)  # into the plus polygon

        def side_class(ix, direction):
            gi = g[ix]  # (I, K, 3)
            val = gi[..., 0] + ((mid - ref[ix])[:, None, :] * gi[..., 1:]).sum(-1)
            der = (gi[..., 1:] * direction[:, None, :]).sum(-1)
            vv = valid[ix]
            val = val.masked_fill(~vv, -math.inf)
            top = val.max(1).values
            cand = vv & (val >= top[:, None] - tol[ix][:, None])
            return der.masked_fill(~cand, -math.inf).argmax(1)

        cp, cm = side_class(ip, nrm), side_class(im, -nrm)
        diff = (cp != cm).nonzero(as_tuple=True)[0]
        if diff.numel():
            ipd, cpd, cmd = ip[diff], cp[diff], cm[diff]
            e0 = r[diff] + x0[diff, None] * c[diff]
            e1 = r[diff] + x1[diff, None] * c[diff]
            gi = g[ipd]
            ar = torch.arange(diff.numel(), device=dev)
            hdiff = gi[ar, cpd] - gi[ar, cmd]  # (I, 3)

            def at(pt):
                return hdiff[:, 0] + ((pt - ref[ipd]) * hdiff[:, 1:]).sum(-1)

            tie = (at(e0).abs() <= tol[ipd]) & (at(e1).abs() <= tol[ipd])
            if bool(tie.any()):
                segs.append(torch.stack([e0[tie], e1[tie]], 1))
                polys.append(ipd[tie])
                cls.append(torch.stack([torch.minimum(cpd, cmd), torch.maximum(cpd, cmd)], 1)[tie])
                dirs.append(c[diff][tie])
    if not segs:
        return (V.new_zeros(0, 2, 2), torch.zeros(0, dtype=torch.long, device=dev),
                torch.zeros(0, 2, dtype=torch.long, device=dev), V.new_zeros(0, 2))
    return torch.cat(segs), torch.cat(polys), torch.cat(cls), torch.cat(dirs)


def _straight_pieces(segs, dirs, size, rtol) -> int:
    """Number of maximal straight pieces: collinear segments that touch end to end are one piece."""
    if not segs.shape[0]:
        return 0
    dev = segs.device
    theta = torch.atan2(dirs[:, 1], dirs[:, 0]) % math.pi
    ttol = 1e3 * rtol
    theta = torch.where(theta > math.pi - ttol, theta - math.pi, theta)
    c = torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    nrm = torch.stack([-c[:, 1], c[:, 0]], 1)
    mid = segs.mean(1)
    rho = (mid * nrm).sum(1)
    o = torch.argsort(theta)
    th = theta[o]
    gid = torch.zeros_like(o)
    gid[1:] = (th[1:] - th[:-1] > ttol).long().cumsum(0)
    # within each direction class, group by offset
    g_of = torch.empty_like(gid)
    g_of[o] = gid
    o2 = torch.argsort(rho, stable=True)
    o2 = o2[torch.argsort(g_of[o2], stable=True)]
    g2, r2 = g_of[o2], rho[o2]
    new = torch.ones_like(o2, dtype=torch.bool)
    new[1:] = (g2[1:] != g2[:-1]) | (r2[1:] - r2[:-1] > 1e3 * rtol * size)
    line = new.long().cumsum(0) - 1
    L = int(line[-1]) + 1
    # positions along each line's first direction
    first = torch.zeros(L, dtype=torch.long, device=dev).scatter_reduce(
        0, line, torch.arange(line.numel(), device=dev), "amin", include_self=False)
    cl = c[o2][first][line]
    x0 = (segs[o2, 0] * cl).sum(1)
    x1 = (segs[o2, 1] * cl).sum(1)
    lo, hi = torch.minimum(x0, x1), torch.maximum(x0, x1)
    o3 = torch.argsort(lo, stable=True)
    o3 = o3[torch.argsort(line[o3], stable=True)]
    ln, lo, hi = line[o3], lo[o3], hi[o3]
    # running max of hi within each line: on ranks of hi, offset by line (integers: no overflow)
    N = hi.numel()
    sh, oh = torch.sort(hi)
    rank = torch.empty_like(oh)
    rank[oh] = torch.arange(N, device=dev)
    run = sh[torch.cummax(ln * N + rank, 0).values - ln * N]
    start = torch.ones_like(ln, dtype=torch.bool)
    start[1:] = (ln[1:] != ln[:-1]) | (lo[1:] > run[:-1] + 1e3 * rtol * size)
    return int(start.sum())


def _sorted_rows(p: torch.Tensor) -> torch.Tensor:
    """Rows of a pattern matrix in lexicographic order (to compare pattern sets)."""
    p = p.long()
    for j in range(p.shape[1] - 1, -1, -1):
        p = p[torch.argsort(p[:, j], stable=True)]
    return p


def _safe_span(ext):
    """A finite stand-in for the slice's side lengths (``s1 - s0`` overflows near 1e308)."""
    return (max(abs(ext[0]), abs(ext[1])), max(abs(ext[2]), abs(ext[3])))


# ====================================================================== entry point
_CERTIFY_WORK = 25_000  # regions x units up to which the default checks the partition exactly


def on_plane(net: PLNet, origin=None, u=None, v=None, extent=(-1, 1, -1, 1), *, max_regions: int | None = None,
             time_limit: float | None = None, rtol: float = 1e-12, certify: bool | None = None,
             progress=None) -> PlanePartition:
    """Partition the slice ``{origin + s u + t v : (s, t) in extent}`` into activation regions.

    Exact layer-by-layer polygon refinement (see the module docstring for the method and the
    tolerance ``rtol``). ``extent`` is ``(s_min, s_max, t_min, t_max)`` or a half-width ``r``
    (meaning ``(-r, r, -r, r)``). For a 2-input network ``origin``, ``u`` and ``v`` default to
    ``0``, ``e1`` and ``e2``; otherwise ``u`` and ``v`` are required (``origin`` defaults to 0).
    ``max_regions`` / ``time_limit`` (seconds): stop once the partition has more polygons / the time
    is spent, returning ``complete=False`` with the coarser partition reached so far.

    Certification (``certify``): the float64 refinement decides each vertex's side within ``rtol``
    of the magnitudes meeting in the value at that vertex (never relative to the slice's size). A
    complete partition is then proven exact by a filtered certificate
    (:mod:`relulab.regions._plane_cert`): each polygon is shown to be the closure of its pattern's
    region (its edge lines' exact intersection points satisfy every constraint of the pattern) and
    the region across each of its edges is shown to be listed; every sign is decided in float64
    under a proven rounding bound, and a polygon whose signs the bound cannot settle is checked in
    exact integer arithmetic. It costs about as much again as the refinement (1.1x its CPU time on
    a 2-200-200-200-1 net with 102,237 regions).
    When the certificate finds the float partition wrong (regions thinner than ``rtol`` merged)
    or cannot decide (exactly degenerate geometry: three lines through a point on an edge,
    coincident lines), the same refinement in exact integer arithmetic gives the result (chains of
    affine and max layers, up to ``count * n_units <= 25,000``); a partition found wrong where
    that is out of reach raises :class:`DegenerateGeometryError`, an undecided one is returned with
    ``certified=False``. ``certify=None`` (default) certifies complete partitions; ``True`` also
    refines exactly whatever the certificate leaves (raises :class:`InvalidInputError` for
    networks with residual additions then); ``False`` never certifies. A float64 overflow (e.g.
    extents near 1e308) is settled exactly where certification is allowed, else raises
    :class:`DegenerateGeometryError`.

    ``progress``: a callback ``progress(done, total, **info)`` (:mod:`relulab.progress`), called as
    polygons are finished with ``done`` = finished regions so far and ``total`` None.

    Raises :class:`DegenerateGeometryError` if ``u`` or ``v`` is zero or they are parallel (the
    slice is not 2-dimensional), :class:`InvalidInputError` for malformed arguments.
    """
    if not isinstance(net, PLNet):
        raise InvalidInputError(f"net must be a relulab.PLNet (use PLNet.from_torch), got {type(net).__name__}")
    t_start = time.perf_counter()
    dev, dt = net.device, net.dtype
    d = net.input_dim
    if (u is None or v is None) and d != 2:
        raise InvalidInputError(f"the network has {d} inputs: give the slice directions u and v "
                                f"(they default to e1, e2 only for 2-input networks)")
    eye = torch.eye(d, dtype=dt, device=dev)
    origin = torch.zeros(d, dtype=dt, device=dev) if origin is None else _vector(origin, "origin", d, dev, dt)
    u = eye[0] if u is None else _vector(u, "u", d, dev, dt)
    v = eye[1] if v is None else _vector(v, "v", d, dev, dt)
    uu, vv, uv = float(u @ u), float(v @ v), float(u @ v)
    if uu == 0.0 or vv == 0.0:
        raise DegenerateGeometryError(f"slice direction {'u' if uu == 0.0 else 'v'} is zero: the slice is not 2-dimensional")
    if uu * vv - uv * uv <= 1e-24 * uu * vv:
        raise DegenerateGeometryError("slice directions u and v are parallel (linearly dependent): "
                                      "the slice is not 2-dimensional; give two independent directions")
    ext = _extent(extent)
    check_budget(max_regions, time_limit)
    if isinstance(rtol, bool) or not (isinstance(rtol, (int, float)) and 0 <= rtol < 1e-3):
        raise InvalidInputError(f"rtol={rtol!r}: expected a small non-negative number (default 1e-12)")
    if certify not in (None, True, False):
        raise InvalidInputError(f"certify={certify!r}: expected None (automatic), True or False")

    rnet = _restrict(net, origin, u, v)
    kmax = max([m.index.shape[1] for m in rnet.max_units] or [1])
    pdtype = torch.int8 if kmax <= 127 else (torch.int16 if kmax <= 32767 else torch.int32)
    budget = _Budget(max_regions, time_limit, t_start)
    deadline = None if time_limit is None else t_start + float(time_limit)
    certified = False
    # the refinement's tensor operations are small (a few polygons x units x pieces each): on one
    # thread they do not wait on others, which under load costs several times their work
    per_op = 128 * sum(m.units * m.index.shape[1] for m in rnet.max_units)
    with torch.no_grad(), threads_for(per_op):
        ranges = []
        try:
            V, n, E, pat, complete, layer_counts, outmaps, ranges, tree = _refine(rnet, ext, float(rtol), budget, pdtype,
                                                                            progress)
            overflow = not bool(torch.isfinite(V).all())
        except _Overflow:
            overflow = True
        if overflow and certify is False:
            raise DegenerateGeometryError(
                f"float64 overflow: the network's values on the slice of extent {ext} are not finite in "
                f"float64; use a smaller extent, or certify=None/True to settle it in exact arithmetic")
        outcome = None
        if not overflow and complete and certify is not False:
            from relulab.regions._plane_cert import certify_partition

            notify(progress, int(V.shape[0]), None, regions=int(V.shape[0]), stage="certifying")
            outcome = certify_partition(net, origin, u, v, ext, pat, E, ranges, deadline=deadline, tree=tree)
            certified = outcome.ok is True
        small = int(V.shape[0]) * max(1, net.n_units) <= _CERTIFY_WORK if not overflow else True
        want = overflow or (certify is True and not certified) or (
            outcome is not None and outcome.ok is not True and small)
        if want:
            try:
                exact = _exact_refine(net, origin, u, v, ext, deadline, pdtype)
            except _Stop:
                exact = None
                if overflow or (outcome is not None and outcome.ok is False):
                    budget.stopped_by = "time_limit"
                    raise DegenerateGeometryError(
                        ("float64 overflow on this slice" if overflow else
                         f"float64 cannot decide this slice ({outcome.reason})")
                        + " and the exact refinement ran past time_limit") from None
            if exact is None and (certify is True or overflow):
                raise (InvalidInputError if not overflow else DegenerateGeometryError)(
                    "exact certification handles chains of affine and max layers only (this network has "
                    "residual additions)" + (", and float64 overflows on this slice" if overflow else ""))
            if exact is not None:
                certified = True
                same = (not overflow and exact[3].shape == pat.shape and
                        torch.equal(_sorted_rows(exact[3]), _sorted_rows(pat.cpu())))
                if not same:
                    V, n, E, pat = (x.to(dev) for x in exact)
                    V = V.to(dt)
                    complete, outmaps = True, None
                    budget.stopped_by = None
                    layer_counts = [-1] * len(rnet.max_units)
        if not certified and outcome is not None and outcome.ok is False:
            raise DegenerateGeometryError(
                f"float64 cannot decide the regions of this slice ({outcome.reason}) and the exact refinement "
                f"is out of reach (residual network, or over {_CERTIFY_WORK:,} regions x units); try a smaller "
                f"extent or a larger rtol")
        areas = _areas(V)
        res = dict(domain="plane", count=int(V.shape[0]), linear_count=None, boundary_pieces=None,
                   complete=complete, stopped_by=None if complete else budget.stopped_by, certified=certified,
                   extent=ext, n_units=net.n_units, n_outputs=net.output_dim,
                   seconds=0.0, layer_counts=layer_counts, origin=origin, u=u, v=v, polygons=V,
                   n_vertices=n, areas=areas, patterns=pat, rtol=float(rtol))
        aux = 100 * float(rtol)  # adjacency, boundary and map comparisons: looser than vertex decisions
        try:
            if complete:
                _describe_partition(res, rnet, V, n, E, pat, ext, outmaps, aux, dt, dev)
        except InvalidInputError:
            # the network's values on the slice overflow float64 (the count above is exact): its
            # affine maps, adjacency, linear count and boundary cannot be given in float64
            if not overflow:
                raise
    res["seconds"] = time.perf_counter() - t_start
    return PlanePartition(**res)


def _describe_partition(res, rnet, V, n, E, pat, ext, outmaps, aux, dt, dev):
    """Affine maps, adjacency, linear regions and decision boundary of a complete partition."""
    eye2 = torch.eye(2, dtype=dt, device=dev)
    if outmaps is not None:
        mc, centre = outmaps
        ref = _means(V, n)
        glob, local = mc.clone(), mc.clone()
        glob[..., 0] = mc[..., 0] - mc[..., 1] * centre[0] - mc[..., 2] * centre[1]
        off = ref - centre
        local[..., 0] = mc[..., 0] + mc[..., 1] * off[:, :1] + mc[..., 2] * off[:, 1:]
    else:
        glob, local, ref = _maps(rnet, V, n, pat, eye2)
    span = _safe_span(ext)
    size = max(span)
    ip, im, info = _adjacency(V, n, E, 10 * aux * size)
    adj = torch.stack([ip, im], 1)
    # equal maps on the slice: compare around the slice centre, relative to the output scale
    if outmaps is not None:
        cen = outmaps[0]
    else:
        mid = torch.tensor([ext[0] / 2 + ext[1] / 2, ext[2] / 2 + ext[3] / 2], dtype=dt, device=dev)
        cen = glob.clone()
        cen[..., 0] = glob[..., 0] + glob[..., 1] * mid[0] + glob[..., 2] * mid[1]
    scl = (cen[..., 0].abs() + cen[..., 1].abs() * span[0] + cen[..., 2].abs() * span[1]).amax()
    dm = cen[ip] - cen[im]
    dsz = (dm[..., 0].abs() + dm[..., 1].abs() * span[0] + dm[..., 2].abs() * span[1]).amax(-1) \
        if ip.numel() else dm.new_zeros(0)
    same = dsz <= aux * 1e2 * float(scl)
    k, labels = _components(V.shape[0], ip, im, same, dev)
    segs, bpoly, bcls, bdir = _boundary(V, n, local, ref, info, ext, aux)
    res.update(maps=glob, adjacency=adj, linear_labels=labels, linear_count=k, boundary=segs,
               boundary_polygon=bpoly, boundary_classes=bcls,
               boundary_pieces=_straight_pieces(segs, bdir, size, aux))
