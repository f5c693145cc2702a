"""Local complexity: the density of activation-region boundaries under an input distribution.

Definitions (Patel and Montufar, "On the Local Complexity of Linear Regions in Deep ReLU Networks",
2024). Every hidden max unit k has a unit function ``z_k`` (:mod:`relulab.complexity.units`) whose
zero set ``Z_k`` is the unit's boundary. For an input density p,

    LC_0(f; p) = sum_k int_{Z_k} p dH^{d-1} = sum_k E_{x~p}[ |grad z_k(x)| delta(z_k(x)) ]   (co-area),

and with every hidden bias perturbed by ``N(0, sigma^2)`` noise (``delta`` replaced by the normal
density ``phi_sigma``)

    LC_sigma(f; p) = sum_k E_{x~p}[ |grad z_k(x)| phi_sigma(z_k(x)) ]  ->  LC_0 as sigma -> 0,

which can be estimated on a finite data set. One hidden layer under ``x ~ N(0, I)``:
``z_k = w_k.x + b_k ~ N(b_k, |w_k|^2)`` so ``LC_sigma = sum_k |w_k| N(b_k; 0, sigma^2 + |w_k|^2)``.

Estimators here:

* :func:`local_complexity` -- the smoothed form over data (or samples of a density): value, standard
  error over points, per-layer and per-unit contributions. Unlike the reference script of the paper,
  each unit's own bias is part of ``z`` and the density ``phi_sigma`` is normalized.
* :func:`exact_lc_2d` -- ``LC_0`` for 2-input networks from the exact plane partition: on each region
  every unit is affine, so ``Z_k`` meets the closure of a region only along edges where ``z_k`` (the
  tie of the winner with another piece) vanishes at both ends; the density is integrated in closed
  form along each such edge (each interior edge is seen from both sides, hence a factor 1/2).
* :func:`line_lc` -- an unbiased estimator of ``LC_0`` in any dimension from exact line walks
  (Crofton). Draw ``x0 ~ p`` and a direction ``u`` uniform on the sphere; on the line ``x0 + t u``
  let ``Q = int_R p(x0 + s u) ds``. For a fixed ``u``, ``(y, s) -> y - s u`` maps ``Z x R`` onto
  ``R^d`` with Jacobian ``|n(y).u|``, so
  ``E_{x0~p}[ sum_{y in line cap Z} p(y) / Q ] = int_Z p(y) |n(y).u| dH(y)``; averaging over ``u``
  (``E|n.u| = c_d = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))``, ``2/pi`` for d = 2) gives
  ``E[ (1/c_d) sum_{crossings} p(y)/Q ] = LC_0``. Weighting each crossing by ``1/|n.u|`` instead
  would be unbiased for any one direction but has infinite variance (``E 1/|cos| = inf``), so the
  isotropic average is used and no ``1/|cos|`` appears. Crossings are the exact breakpoints of
  :func:`relulab.regions.on_line` (each unit changing its winner is one crossing); the per-line
  values are i.i.d., so their standard error is the error bar.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from relulab.complexity.densities import Density
from relulab.complexity.units import check_inputs, check_net, unit_gradients, unit_layers
from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.results import Result

__all__ = ["LocalComplexity", "local_complexity", "exact_lc_2d", "line_lc", "crofton_constant",
           "shallow_gaussian_lc"]


@dataclass(repr=False)
class LocalComplexity(Result):
    """A local complexity value.

    ``value`` and ``stderr`` (0 for an exact value); ``method`` ("smoothed", "exact-2d", "lines");
    ``sigma`` the bias-noise scale (0 for ``LC_0``); ``distribution`` in words; ``n`` the points
    (smoothed), regions (exact-2d) or lines (lines) it rests on; ``per_layer`` (L,) and
    ``per_layer_stderr``; ``per_unit`` (U,) the contribution of every unit; ``per_point`` (n,) the
    per-point (or per-line) values whose mean is ``value``; ``exact`` whether ``value`` is exact up to
    rounding (and the stated truncation); ``truncation`` what was cut off (text); ``seconds``.
    """

    value: float
    stderr: float
    method: str
    sigma: float
    distribution: str
    n: int
    per_layer: torch.Tensor
    per_layer_stderr: torch.Tensor | None = None
    per_unit: torch.Tensor | None = None
    per_point: torch.Tensor | None = None
    exact: bool = False
    truncation: str = ""
    counts_what: str = "p-weighted (d-1)-volume of the hidden units' boundaries, summed over units"
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    _summary_fields = ("value", "stderr", "method", "sigma", "distribution", "n", "per_layer",
                       "per_layer_stderr", "exact", "truncation", "counts_what", "seconds", "extra")

    def plot(self, ax=None):
        """Contribution of each max layer, with error bars where there are any."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        y = self.per_layer.detach().cpu().double().numpy()
        err = None if self.per_layer_stderr is None else self.per_layer_stderr.detach().cpu().double().numpy()
        ax.bar(range(len(y)), y, yerr=err, color="tab:blue", capsize=3)
        ax.set_xlabel("max layer")
        ax.set_ylabel("local complexity")
        pm = f" +- {self.stderr:.3g}" if self.stderr else ""
        ax.set_title(f"{self.method}: LC = {self.value:.4g}{pm}" + (f" (sigma {self.sigma:g})" if self.sigma else ""))
        return ax


def _sigma(sigma) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
        raise InvalidInputError(f"sigma must be a positive finite number (the bias-noise scale), got {sigma!r}")
    return float(sigma)


def _count(v, name, low=1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise InvalidInputError(f"{name} must be an integer >= {low}, got {v!r}")
    return v


def _layer_sums(net, per: torch.Tensor) -> torch.Tensor:
    """Sum (n, U) per-unit values within each max layer -> (n, L)."""
    lay = unit_layers(net).to(per.device)
    out = per.new_zeros(per.shape[0], len(net.max_layers))
    return out.index_add_(1, lay, per)


def local_complexity(net, data, sigma: float = 0.1, *, n_samples: int = 1000, seed: int = 0,
                     memory: int = 512 * 2**20, progress=None) -> LocalComplexity:
    """``LC_sigma`` over data: ``(1/n) sum_i sum_k |grad z_k(x_i)| phi_sigma(z_k(x_i))``.

    ``data``: inputs (n, *input_shape) or (n, d) -- the empirical distribution -- or a
    :class:`~relulab.complexity.densities.Density`, of which ``n_samples`` points are drawn (seed
    ``seed``). The standard error is that of the mean over points; per-layer values and their
    standard errors likewise; ``per_unit`` is each unit's mean term.
    """
    t0 = time.perf_counter()
    s = _sigma(sigma)
    check_net(net)
    if isinstance(data, Density):
        data.check_dim(net.input_dim)
        _count(n_samples, "n_samples", 2)
        X = data.sample(n_samples, torch.Generator().manual_seed(seed), net.dtype, net.device)
        what = data.describe()
    else:
        X = check_inputs(net, data, "data")
        what = f"{X.shape[0]} data points"
    ug = unit_gradients(net, X, memory=memory, progress=progress)
    return smoothed_from_units(net, ug, s, what, t0)


def smoothed_from_units(net, ug, s: float, what: str, t0: float) -> LocalComplexity:
    """The smoothed estimate from unit functions and gradients already computed (one pass serves
    several measures)."""
    z = ug.z
    term = torch.where(torch.isfinite(z), ug.grad_norm * torch.exp(-0.5 * (z / s) ** 2), torch.zeros_like(z))
    term = term / (math.sqrt(2 * math.pi) * s)
    per_point = term.sum(1)
    layers = _layer_sums(net, term)
    n = z.shape[0]
    se = float(per_point.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    lse = layers.std(0, unbiased=True) / math.sqrt(n) if n > 1 else torch.full_like(layers[0], float("nan"))
    return LocalComplexity(value=float(per_point.mean()), stderr=se, method="smoothed", sigma=s, distribution=what,
                           n=n, per_layer=layers.mean(0), per_layer_stderr=lse, per_unit=term.mean(0),
                           per_point=per_point, exact=False, seconds=time.perf_counter() - t0)


def shallow_gaussian_lc(weight, bias, sigma: float = 0.0, std: float = 1.0) -> float:
    """Closed form for one hidden layer of two-piece units under ``x ~ N(0, std^2 I)``:
    ``sum_k |w_k| N(b_k; 0, sigma^2 + std^2 |w_k|^2)`` (``sigma = 0``: ``LC_0``)."""
    W = torch.as_tensor(weight).detach().to(torch.float64)
    b = torch.as_tensor(bias).detach().to(torch.float64)
    wn = W.norm(dim=1)
    var = sigma**2 + (std * wn) ** 2
    return float((wn * torch.exp(-0.5 * b * b / var) / torch.sqrt(2 * math.pi * var)).sum())


def crofton_constant(d: int) -> float:
    """``E|u_1|`` for ``u`` uniform on the unit sphere of R^d: ``Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))``."""
    return math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)


def _density_arg(net, density) -> Density:
    check_net(net)
    if not isinstance(density, Density):
        raise InvalidInputError("density must be a relulab.complexity Density (gaussian(...), uniform_box(...), "
                                f"smoothed_data(...)), got {type(density).__name__}")
    density.check_dim(net.input_dim)
    return density.to(net.dtype, net.device)


def exact_lc_2d(net, density, *, rtol: float = 1e-9, time_limit: float | None = None) -> LocalComplexity:
    """Exact ``LC_0`` of a 2-input network under ``density`` (see the module docstring).

    The plane partition covers the density's window (the box of a uniform density; ``+-8`` standard
    deviations around a Gaussian or around the data of a smoothed data set, outside of which the
    density is below ``1e-14`` of its peak: ``truncation`` says so). Units whose tie holds on a whole
    region (a boundary of positive area, e.g. a unit fed only by dead units with zero bias) are not
    counted and are reported in ``extra['degenerate_units']``. A boundary is where a unit's winner ties
    with another piece along an edge of the partition; a unit that touches its tie without changing
    winner along a whole edge (possible only for non-generic weights) is counted there too.
    """
    from relulab import regions

    t0 = time.perf_counter()
    dens = _density_arg(net, density)
    if net.input_dim != 2:
        raise InvalidInputError(f"exact_lc_2d needs a network with 2 inputs, this one has {net.input_dim}; "
                                f"use line_lc or local_complexity")
    lo, hi = dens.window()
    ext = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    part = regions.on_plane(net, extent=ext, time_limit=time_limit)
    if not part.complete:
        raise DegenerateGeometryError("the plane partition stopped before it was complete (time_limit); "
                                      "the exact local complexity needs every region")
    with torch.no_grad():
        V, nv, P = part.polygons.to(net.dtype), part.n_vertices, part.patterns.long()
        R, M = V.shape[0], V.shape[1]
        ar = torch.arange(M, device=V.device)
        valid_v = ar[None] < nv[:, None]
        pts = V[valid_v]  # all vertices, polygon-major
        owner = torch.arange(R, device=V.device)[:, None].expand(R, M)[valid_v]
        tr = net.trace(pts, pattern=P[owner], record=True)
        # per vertex and unit: is the region's winner tied with some other piece (to tolerance)?
        ties = []
        for l, layer in enumerate(net.max_units):
            p = tr.pieces[l]  # (Nv, U_l, K)
            w = P[owner][:, net.layer_slice(l)]
            pw = p.gather(2, w[..., None])
            fin = torch.isfinite(p)
            pf = torch.where(fin, p, torch.zeros_like(p))
            scale = pf.abs().amax(dim=(0, 2)).clamp_min(1e-300)  # size of each unit across the window
            gap = (pw - p).abs() <= rtol * scale[None, :, None]
            other = torch.ones_like(gap)
            other.scatter_(2, w[..., None], False)
            ties.append(gap & other & fin)  # (Nv, U_l, K)
        kmax = max(t.shape[2] for t in ties)
        tie = torch.cat([torch.nn.functional.pad(t, (0, kmax - t.shape[2])) for t in ties], 1)  # (Nv, U, K)
        U, K = tie.shape[1], tie.shape[2]
        # edges (i, i+1 mod n) of each polygon, as indices into the flattened vertex list
        start = torch.cumsum(nv, 0) - nv
        e_ok = valid_v
        i0 = (start[:, None] + ar[None])[e_ok]
        i1 = (start[:, None] + torch.remainder(ar[None] + 1, nv[:, None].clamp_min(1)))[e_ok]
        on = (tie[i0] & tie[i1]).any(-1)  # (E, U): the edge lies on unit u's boundary
        # a unit tied on every vertex of a region has a boundary of positive area there
        eo = owner[i0]
        # the tie with one piece is affine on a region: zero at all its vertices means zero on all of it
        n_tied = torch.zeros(R, U, K, dtype=torch.long, device=V.device).index_add_(0, owner, tie.long())
        degenerate = ((n_tied == nv[:, None, None]) & (nv[:, None, None] >= 3)).any(-1)
        on = on & ~degenerate[eo]
        a, b = pts[i0], pts[i1]
        side = max(ext[1] - ext[0], ext[3] - ext[2])
        btol = 1e-9 * side
        border = torch.zeros(a.shape[0], dtype=torch.bool, device=V.device)
        for c, val in ((0, ext[0]), (0, ext[1]), (1, ext[2]), (1, ext[3])):
            border |= ((a[:, c] - val).abs() <= btol) & ((b[:, c] - val).abs() <= btol)
        on = on & ~border[:, None]
        mass = dens.segment_integrals(a, b)  # (E,)
        per_unit = 0.5 * (on.to(mass.dtype) * mass[:, None]).sum(0)
    layers = _layer_sums(net, per_unit[None])[0]
    trunc = "" if dens.kind == "uniform" else (
        "the plane is cut to +-8 standard deviations around the density's centres (density < 1.3e-14 "
        "of its peak outside)")
    return LocalComplexity(value=float(per_unit.sum()), stderr=0.0, method="exact-2d", sigma=0.0,
                           distribution=dens.describe(), n=part.count, per_layer=layers,
                           per_layer_stderr=torch.zeros_like(layers), per_unit=per_unit, exact=True,
                           truncation=trunc, seconds=time.perf_counter() - t0,
                           extra={"regions": part.count, "boundary_edges": int(on.any(1).sum()),
                                  "degenerate_units": int(degenerate.any(0).sum()), "window": list(ext)})


def line_lc(net, density, n_lines: int = 256, *, seed: int = 0, memory: int = 256 * 2**20,
            progress=None) -> LocalComplexity:
    """Unbiased line-walk estimator of ``LC_0`` under ``density`` in any dimension (module docstring):
    ``n_lines`` lines through points of the density in uniformly random directions, walked exactly
    over the window carrying their mass (Gaussian: ``+-8`` standard deviations around the line's
    closest approach to each centre)."""
    from relulab import regions

    t0 = time.perf_counter()
    dens = _density_arg(net, density)
    _count(n_lines, "n_lines", 2)
    d = net.input_dim
    gen = torch.Generator().manual_seed(seed)
    x0 = dens.sample(n_lines, gen, net.dtype, net.device)
    u = torch.randn(n_lines, d, generator=gen, dtype=torch.float64).to(dtype=net.dtype, device=net.device)
    u = u / u.norm(dim=1, keepdim=True)
    t_lo, t_hi, weight = dens.line_weights(x0, u)
    A = x0 + t_lo[:, None] * u
    B = x0 + t_hi[:, None] * u
    batch = regions.on_line(net, A, B, memory=memory, on_degenerate="raise")
    if progress is not None:
        progress(n_lines, n_lines)
    U = net.n_units
    per_line = torch.zeros(n_lines, dtype=net.dtype, device=net.device)
    per_unit_line = torch.zeros(n_lines, U, dtype=net.dtype, device=net.device)
    deltas = batch.pattern_deltas
    if deltas.numel():
        first = torch.zeros(batch.count, dtype=torch.bool, device=deltas.device)
        first[torch.cumsum(batch.counts, 0) - batch.counts] = True
        deltas = deltas[~first[deltas[:, 0]]]  # changes between one segment's end and the next one's start
    if deltas.numel():
        rows, units = deltas[:, 0], deltas[:, 1]
        seg = batch.segment[rows]
        tau = batch.t0[rows]
        t = t_lo[seg] + tau * (t_hi[seg] - t_lo[seg])
        w = weight(seg, t) / crofton_constant(d)
        per_line.index_add_(0, seg, w)
        per_unit_line.index_put_((seg, units), w, accumulate=True)
    layers = _layer_sums(net, per_unit_line)
    se = float(per_line.std(unbiased=True) / math.sqrt(n_lines))
    trunc = "" if dens.kind == "uniform" else "each line is walked over +-8 standard deviations around the centres"
    return LocalComplexity(value=float(per_line.mean()), stderr=se, method="lines", sigma=0.0,
                           distribution=dens.describe(), n=n_lines, per_layer=layers.mean(0),
                           per_layer_stderr=layers.std(0, unbiased=True) / math.sqrt(n_lines),
                           per_unit=per_unit_line.mean(0), per_point=per_line, exact=False, truncation=trunc,
                           seconds=time.perf_counter() - t0,
                           extra={"crossings": int(deltas.shape[0]), "complete": bool(batch.complete)})
