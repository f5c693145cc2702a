"""Local region counts around data points, exact, and the grokking proxy beside them.

* :func:`local_counts` -- the number of activation regions meeting a neighbourhood of each point:
  a segment ``[x - r u, x + r u]`` (exact line walk, :func:`relulab.regions.on_line`, all points in
  one batch), a square ``x + [-r, r] u + [-r, r] v``, a disc ``|s u + t v| <= r`` or a diamond
  (cross-polytope) ``|s| + |t| <= r`` in a 2-D subspace (exact plane partition,
  :func:`relulab.regions.on_plane`; regions met with positive area), or the cube ``x + [-r, r]^d`` in
  all of R^d for small d (exact full-space enumeration over a box). Directions are random
  orthonormal per point (seeded) unless given. 2-D neighbourhoods also give ``units_crossing``: the
  units whose boundary meets the neighbourhood (units whose winner is not the same on all the
  regions met -- exact, since the neighbourhood is convex).
* :func:`grokking_proxy` -- the local-complexity proxy of Humayun, Balestriero and Baraniuk ("Deep
  Networks Always Grok and Here is Why", 2024): around each point a frame of ``n_vertices``
  vertices ``x +- r v_i`` with ``v_1..v_{n/2}`` random orthonormal directions shared by all points
  (the vertices of a cross-polytope, i.e. an l1 ball of radius r in an (n/2)-dimensional subspace),
  the centre optionally added; a unit counts when its sign (two-piece units: ``sign z``; units with
  more pieces: the winner) is not the same at every vertex. The authors' defaults: 50 vertices
  (MNIST MLP; 40 for their CIFAR-10 runs), no centre, pre-activations of every Linear layer --
  which in their MLP script includes the output layer (``include_output=True`` reproduces that).
  It is a *proxy*: a boundary can enter and leave the polytope between vertices (deeper units bend),
  and the polytope is a frame-dependent neighbourhood, so it can differ from the exact
  ``units_crossing`` of the same diamond even for one layer only through the frame.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from relulab.complexity.units import check_inputs, unit_gradients, unit_layers
from relulab.core.errors import InvalidInputError
from relulab.results import RegionResult, Result

__all__ = ["LocalCounts", "local_counts", "ProxyResult", "grokking_proxy", "random_frame"]

_SHAPES = ("segment", "square", "disc", "diamond", "cube")


@dataclass(kw_only=True, repr=False)
class LocalCounts(RegionResult):
    """Activation regions meeting a neighbourhood of radius ``radius`` of each point.

    ``counts`` (n,) per point; ``count`` their sum and ``mean`` their mean; ``shape`` the
    neighbourhood; ``units_crossing`` (n,) for 2-D neighbourhoods (units whose boundary meets it),
    else None; ``complete``/``stopped_by`` from the engines' budgets (an incomplete count is a lower
    bound); ``directions`` (n, k, d) the subspace of each neighbourhood (None for the cube)."""

    counts: torch.Tensor
    mean: float
    shape: str
    radius: float
    units_crossing: torch.Tensor | None = None
    directions: torch.Tensor | None = None

    _summary_fields = ("count", "mean", "shape", "radius", "complete", "stopped_by", "counts_what", "domain",
                       "seconds")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        c = self.counts.detach().cpu().numpy()
        ax.hist(c, bins=min(50, max(5, int(c.max() - c.min() + 1))), color="tab:blue")
        ax.set_xlabel(f"activation regions meeting the {self.shape} (radius {self.radius:g})")
        ax.set_ylabel("points")
        ax.set_title(f"mean {self.mean:.3g} regions per point")
        return ax


@dataclass(repr=False)
class ProxyResult(Result):
    """The grokking proxy (a proxy, not an exact count): ``counts`` (n,) units whose sign is not the
    same at every vertex of the frame around each point, ``per_layer`` (n, L) (plus one column for
    the output layer when ``include_output``), ``value`` the mean over points with its ``stderr``;
    the frame parameters ``n_vertices``, ``radius``, ``include_centroid``, ``frame`` (k, d)."""

    value: float
    stderr: float
    counts: torch.Tensor
    per_layer: torch.Tensor
    n_vertices: int
    radius: float
    include_centroid: bool
    include_output: bool
    frame: torch.Tensor
    label: str = "proxy of local complexity (Humayun, Balestriero, Baraniuk 2024): units changing sign over a frame"
    seconds: float = 0.0

    _summary_fields = ("value", "stderr", "n_vertices", "radius", "include_centroid", "include_output", "label",
                       "seconds")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        c = self.counts.detach().cpu().numpy()
        ax.hist(c, bins=30, color="tab:orange")
        ax.set_xlabel(f"units changing sign over {self.n_vertices} vertices (radius {self.radius:g})")
        ax.set_ylabel("points")
        ax.set_title(f"proxy: mean {self.value:.3g}")
        return ax


def _radius(radius) -> float:
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not math.isfinite(radius) or radius <= 0:
        raise InvalidInputError(f"radius must be a positive finite number, got {radius!r}")
    return float(radius)


def random_frame(k: int, d: int, gen: torch.Generator, dtype=torch.float64, device=None) -> torch.Tensor:
    """``k`` orthonormal rows in R^d, Haar-distributed (QR of a Gaussian matrix, signs fixed)."""
    if k > d:
        raise InvalidInputError(f"a frame of {k} orthonormal directions needs d >= {k}, the input has d = {d}")
    G = torch.randn(d, k, generator=gen, dtype=torch.float64)
    Q, R = torch.linalg.qr(G)
    Q = Q * torch.sign(torch.diagonal(R)).where(torch.diagonal(R) != 0, torch.ones(k, dtype=torch.float64))[None]
    return Q.T.contiguous().to(dtype=dtype, device=device)


def _directions(directions, n, k, d, gen, net) -> torch.Tensor:
    if directions is None:
        return torch.stack([random_frame(k, d, gen, net.dtype, net.device) for _ in range(n)]) if n else \
            torch.zeros(0, k, d, dtype=net.dtype, device=net.device)
    D = torch.as_tensor(directions).to(dtype=net.dtype, device=net.device)
    if D.dim() == 2:
        D = D[None].expand(n, -1, -1)
    if D.dim() != 3 or D.shape[1] != k or D.shape[2] != d or D.shape[0] != n:
        raise InvalidInputError(f"directions must have shape ({k}, {d}) or ({n}, {k}, {d}), got {tuple(D.shape)}")
    if not bool(torch.isfinite(D).all()):
        raise InvalidInputError("directions have non-finite entries")
    G = D @ D.transpose(1, 2)
    if not bool(torch.allclose(G, torch.eye(k, dtype=D.dtype, device=D.device).expand_as(G), atol=1e-8)):
        raise InvalidInputError("directions must be orthonormal (rows of unit length, pairwise orthogonal)")
    return D


def _meets(part, shape: str, r: float) -> torch.Tensor:
    """Which polygons of a plane partition meet the disc / diamond of radius r at the origin with positive area."""
    V, nv = part.polygons, part.n_vertices
    M = V.shape[1]
    ar = torch.arange(M, device=V.device)
    ok = ar[None] < nv[:, None]
    nxt = torch.remainder(ar[None] + 1, nv[:, None].clamp_min(1))
    W = V.gather(1, nxt[..., None].expand(-1, -1, 2))
    e = W - V
    tol = 1e-12 * r
    if shape == "disc":
        # distance from the origin to each edge; the origin inside the polygon (counter-clockwise) if
        # it is on the left of every edge
        L2 = (e * e).sum(-1).clamp_min(1e-300)
        t = (-(V * e).sum(-1) / L2).clamp(0, 1)
        q = V + t[..., None] * e
        dist = torch.where(ok, q.norm(dim=-1), torch.full_like(t, math.inf)).amin(1)
        cross = e[..., 0] * (-V[..., 1]) - e[..., 1] * (-V[..., 0])
        inside = torch.where(ok, cross >= 0, torch.ones_like(ok)).all(1)
        return inside | (dist < r - tol)
    # diamond |s| + |t| <= r: separating axes are the diamond's two normals and the polygon's edge normals
    inf = torch.full(V.shape[:2], math.inf, dtype=V.dtype, device=V.device)
    sep = torch.zeros(V.shape[0], dtype=torch.bool, device=V.device)
    for a in (torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0])):
        a = a.to(V)
        proj = (V * a).sum(-1)
        lo = torch.where(ok, proj, inf).amin(1)
        hi = torch.where(ok, proj, -inf).amax(1)
        sep |= (lo >= r - tol) | (hi <= -r + tol)
    nrm = torch.stack([e[..., 1], -e[..., 0]], -1)  # outward normals of a counter-clockwise polygon
    proj_poly = (V * nrm).sum(-1)  # the polygon lies on the side <= this value
    proj_dia = r * (nrm[..., 0].abs().maximum(nrm[..., 1].abs()))  # max over the diamond of n . y
    min_dia = -proj_dia
    real = ok & ((e * e).sum(-1) > 0)
    sep |= (real & (min_dia >= proj_poly - tol * nrm.norm(dim=-1))).any(1)
    return ~sep


def local_counts(net, x, radius: float, *, shape: str = "square", directions=None, seed: int = 0,
                 max_regions: int | None = None, time_limit: float | None = None, progress=None) -> LocalCounts:
    """Exact activation-region counts in a neighbourhood of every point (see the module docstring).

    ``shape``: "segment", "square", "disc", "diamond" (2-D) or "cube" (all of R^d, small d).
    ``directions``: (k, d) or (n, k, d) orthonormal rows (k = 1 for a segment, 2 for the 2-D shapes);
    default random per point from ``seed``. ``max_regions``/``time_limit`` are per neighbourhood.
    """
    from relulab import regions

    t0 = time.perf_counter()
    r = _radius(radius)
    if shape not in _SHAPES:
        raise InvalidInputError(f"shape must be one of {', '.join(_SHAPES)}, got {shape!r}")
    X = check_inputs(net, x, "x")
    n, d = X.shape
    gen = torch.Generator().manual_seed(seed)
    budget = {"max_regions": max_regions, "time_limit": time_limit}
    units = None
    D = None
    stopped = None
    complete = True
    if shape == "segment":
        D = _directions(directions, n, 1, d, gen, net)
        u = D[:, 0]
        batch = regions.on_line(net, X - r * u, X + r * u, **budget)
        counts = batch.counts.clone().long()
        complete = bool(batch.complete)
        domain, what = "segment", "activation regions met by the segment [x - r u, x + r u]"
        if progress is not None:
            progress(n, n)
    elif shape == "cube":
        if d > 6:
            raise InvalidInputError(f"shape='cube' enumerates regions in all of R^d and is meant for small d "
                                    f"(d <= 6); the input has d = {d}: use a segment or a 2-D shape")
        full = regions.full_space
        counts = torch.zeros(n, dtype=torch.long)
        for i in range(n):
            res = full(net, (X[i] - r, X[i] + r), **budget)
            counts[i] = res.count
            if not res.complete:
                complete, stopped = False, getattr(res, "stopped_by", None) or "budget"
            if progress is not None:
                progress(i + 1, n)
        domain, what = "box", "activation regions meeting the cube x + [-r, r]^d (positive volume)"
    else:
        if d < 2:
            raise InvalidInputError(f"shape={shape!r} needs an input of dimension >= 2, the input has d = {d}")
        D = _directions(directions, n, 2, d, gen, net)
        counts = torch.zeros(n, dtype=torch.long)
        units = torch.zeros(n, dtype=torch.long)
        for i in range(n):
            part = regions.on_plane(net, X[i], D[i, 0], D[i, 1], r, **budget)
            keep = torch.ones(part.count, dtype=torch.bool) if shape == "square" else _meets(part, shape, r).cpu()
            counts[i] = int(keep.sum())
            pats = part.patterns[keep.to(part.patterns.device)]
            units[i] = int((pats != pats[:1]).any(0).sum()) if pats.shape[0] else 0
            if not part.complete:
                complete, stopped = False, "max_regions" if max_regions is not None else "time_limit"
            if progress is not None:
                progress(i + 1, n)
        domain = {"square": "square in a 2-D slice", "disc": "disc in a 2-D slice",
                  "diamond": "cross-polytope in a 2-D slice"}[shape]
        what = f"activation regions meeting the {shape} with positive area"
    if not complete and stopped is None:
        stopped = "max_regions" if max_regions is not None else "time_limit"
    return LocalCounts(count=int(counts.sum()), counts=counts, mean=float(counts.double().mean()) if n else 0.0,
                       shape=shape, radius=r, units_crossing=units, directions=D, complete=complete,
                       stopped_by=stopped, certified=False, counts_what=what, domain=domain,
                       seconds=time.perf_counter() - t0)


def grokking_proxy(net, x, radius: float, *, n_vertices: int = 50, include_centroid: bool = False,
                   include_output: bool = False, frame=None, seed: int = 0, memory: int = 256 * 2**20) -> ProxyResult:
    """The grokking proxy of local complexity (see the module docstring), for every point of ``x``.

    ``n_vertices`` even, ``2 <= n_vertices <= 2 d``; ``frame`` (n_vertices/2, d) orthonormal rows to
    use instead of a random one (shared by all points, as in the authors' code).
    """
    t0 = time.perf_counter()
    r = _radius(radius)
    X = check_inputs(net, x, "x")
    n, d = X.shape
    if isinstance(n_vertices, bool) or not isinstance(n_vertices, int) or n_vertices < 2 or n_vertices % 2:
        raise InvalidInputError(f"n_vertices must be an even integer >= 2, got {n_vertices!r}")
    k = n_vertices // 2
    if frame is None:
        F = random_frame(k, d, torch.Generator().manual_seed(seed), net.dtype, net.device)
    else:
        F = _directions(frame, 1, k, d, None, net)[0]
    V = torch.cat([X[:, None] + r * F[None], X[:, None] - r * F[None]], 1)  # (n, 2k, d)
    if include_centroid:
        V = torch.cat([V, X[:, None]], 1)
    nv = V.shape[1]
    ug = unit_gradients(net, V.reshape(-1, d), gradients=False, memory=memory)
    lay = unit_layers(net)
    two = torch.cat([torch.full((m.units,), bool(m.elementwise_units and m.index.shape[1] == 2))
                     for m in net.max_units]).to(X.device)
    key = torch.where(two[None], torch.sign(ug.z), ug.active.to(ug.z.dtype)).reshape(n, nv, -1)
    changed = (key != key[:, :1]).any(1)  # (n, U)
    L = len(net.max_layers)
    per_layer = torch.zeros(n, L + int(include_output), dtype=torch.long, device=X.device)
    per_layer[:, :L].index_add_(1, lay.to(X.device), changed.long())
    if include_output:
        with torch.no_grad():
            out = net(V.reshape(-1, d)).reshape(n, nv, -1)
        s = torch.sign(out)
        per_layer[:, L] = (s != s[:, :1]).any(1).sum(1)
    counts = per_layer.sum(1)
    se = float(counts.double().std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return ProxyResult(value=float(counts.double().mean()), stderr=se, counts=counts, per_layer=per_layer,
                       n_vertices=n_vertices, radius=r, include_centroid=bool(include_centroid),
                       include_output=bool(include_output), frame=F, seconds=time.perf_counter() - t0)
