r"""Shallow univariate ReLU regression: kernel regime against adaptive regime.

The network is

    f(x) = (1 / sqrt(m)) sum_{i=1}^m c_i relu(a_i x + b_i)  [+ u x + v with a skip connection],

initialized with inner weights a_i = +-s_a (random signs), knots k_i = -b_i / a_i drawn from a
distribution on the line (uniform on an interval, or b_i ~ N(0, s_a^2) for Gaussian biases), and
outer weights c_i ~ N(0, s_c^2). Williams, Trager, Panozzo, Silva, Zorin and Bruna (*Gradient
dynamics of shallow univariate ReLU networks*, NeurIPS 2019) show that the two scales s_a, s_c
select the regime of gradient flow on the squared loss: in the *kernel regime* the network moves
little and converges to kernel regression with its tangent kernel at initialization, an interpolant
of minimal weighted curvature (a natural cubic spline for uniform knots and a skip connection), while
in the *adaptive regime* the knots move to the data and the interpolant approaches the linear
spline.

Here every reference interpolant is computed exactly: :func:`kernel_limit` is the t -> infinity
limit of the linearized network under gradient flow, f_0(x) + K(x, X) K(X, X)^+ (y - f_0(X)) with the
tangent kernel K = J J^T of the network at initialization (exact for the linearization, in closed
form); :func:`natural_cubic_spline` and :func:`linear_interpolant` are the two classical limits.
:func:`compare_interpolants` measures sup and L2 distances on the data's hull and
:func:`regime_diagram` sweeps the two scales and the width.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from relulab.core.errors import InvalidInputError
from relulab.results import Result

__all__ = ["UnivariateNet", "univariate_net", "kernel_limit", "knot_trajectory", "natural_cubic_spline",
           "linear_interpolant",
           "compare_interpolants", "Interpolants", "regime_diagram", "RegimeDiagram"]


class UnivariateNet(nn.Module):
    """f(x) = (1/sqrt(m)) sum_i c_i relu(a_i x + b_i) (+ u x + v): inputs (n, 1) or (n,), outputs (n, 1)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, skip: bool = False):
        super().__init__()
        self.a = nn.Parameter(a.clone())
        self.b = nn.Parameter(b.clone())
        self.c = nn.Parameter(c.clone())
        self.skip = bool(skip)
        if self.skip:
            self.u = nn.Parameter(torch.zeros((), dtype=a.dtype))
            self.v = nn.Parameter(torch.zeros((), dtype=a.dtype))

    @property
    def width(self) -> int:
        return self.a.numel()

    def forward(self, x):
        x = x.reshape(-1, 1).to(self.a.dtype)
        h = torch.relu(x * self.a + self.b)
        out = h @ self.c / math.sqrt(self.width)
        if self.skip:
            out = out + self.u * x[:, 0] + self.v
        return out[:, None]

    def knots(self) -> torch.Tensor:
        """Breakpoints -b_i / a_i of the neurons with a_i != 0 and c_i != 0, sorted."""
        keep = (self.a != 0) & (self.c != 0)
        return torch.sort((-self.b[keep] / self.a[keep]).detach()).values


def knot_trajectory(net: UnivariateNet, trajectory) -> np.ndarray:
    """Knot positions -b_i / a_i over time, (T, width), from the parameters a
    :class:`relulab.dynamics.FlowTrajectory` of ``net`` recorded (trainable parameters in the order
    of ``net.parameters()``; a frozen ``a`` or ``b`` keeps its current value); NaN where a_i = 0."""
    if not isinstance(net, UnivariateNet):
        raise InvalidInputError(f"net must be a UnivariateNet, got {type(net).__name__}")
    params = np.asarray(trajectory.params, dtype=np.float64)
    cols, i = {}, 0
    for name, p in net.named_parameters():
        if p.requires_grad:
            cols[name] = slice(i, i + p.numel())
            i += p.numel()
    if params.ndim != 2 or params.shape[1] != i:
        raise InvalidInputError(f"trajectory records {params.shape[-1]} parameters, the net has {i} trainable ones")
    T = params.shape[0]

    def path(name):
        if name in cols:
            return params[:, cols[name]]
        return np.broadcast_to(getattr(net, name).detach().cpu().numpy().astype(np.float64), (T, net.width))

    a, b = path("a"), path("b")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a != 0, -b / a, np.nan)


def univariate_net(width: int, *, inner_scale: float = 1.0, outer_scale: float = 1.0, knots: str = "uniform",
                   knot_range: tuple[float, float] = (-1.0, 1.0), skip: bool = False, seed: int = 0,
                   dtype=torch.float64) -> UnivariateNet:
    """A width-``width`` network initialized as in the module docstring (``knots`` ``"uniform"`` on
    ``knot_range`` or ``"gaussian"``: b_i ~ N(0, inner_scale^2))."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InvalidInputError(f"width must be an integer >= 1, got {width!r}")
    if width > 10**7:
        raise InvalidInputError(f"width must be at most 10^7, got {width}")
    for name, v in (("inner_scale", inner_scale), ("outer_scale", outer_scale)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InvalidInputError(f"{name} must be a finite number > 0, got {v!r}")
    lo, hi = (float(knot_range[0]), float(knot_range[1]))
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InvalidInputError(f"knot_range must be two finite numbers lo < hi, got {knot_range!r}")
    g = torch.Generator().manual_seed(int(seed))
    sign = torch.where(torch.rand(width, generator=g, dtype=dtype) < 0.5, -1.0, 1.0).to(dtype)
    a = inner_scale * sign
    if knots == "uniform":
        k = lo + (hi - lo) * torch.rand(width, generator=g, dtype=dtype)
        b = -a * k
    elif knots == "gaussian":
        b = inner_scale * torch.randn(width, generator=g, dtype=dtype)
    else:
        raise InvalidInputError(f"knots must be 'uniform' or 'gaussian', got {knots!r}")
    c = outer_scale * torch.randn(width, generator=g, dtype=dtype)
    return UnivariateNet(a, b, c, skip=skip)


def _data(x, y):
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.size < 2 or x.size != y.size:
        raise InvalidInputError(f"x and y must be two 1-D arrays of equal length >= 2, got {x.size} and {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InvalidInputError("x and y must be finite")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if (np.diff(x) <= 0).any():
        raise InvalidInputError("x must hold distinct points (an interpolant through repeated x is undefined)")
    return x, y


def natural_cubic_spline(x, y, grid) -> np.ndarray:
    """The natural cubic spline through (x, y) (zero second derivative at the ends, linear beyond),
    the interpolant minimizing the integral of f''(x)^2, evaluated on ``grid``."""
    from scipy.interpolate import CubicSpline

    x, y = _data(x, y)
    grid = np.asarray(grid, dtype=np.float64).reshape(-1)
    s = CubicSpline(x, y, bc_type="natural")
    out = s(grid)
    left, right = grid < x[0], grid > x[-1]
    out[left] = y[0] + s(x[0], 1) * (grid[left] - x[0])
    out[right] = y[-1] + s(x[-1], 1) * (grid[right] - x[-1])
    return out


def linear_interpolant(x, y, grid) -> np.ndarray:
    """The piecewise-linear interpolant of (x, y) (constant beyond the data), on ``grid``."""
    x, y = _data(x, y)
    return np.interp(np.asarray(grid, dtype=np.float64).reshape(-1), x, y)


def _jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from torch.func import functional_call, jacrev, vmap

    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    frozen = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}

    def f(p, xi):
        return functional_call(model, {**frozen, **p}, (xi[None],))[0, 0]

    J = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    return torch.cat([J[k].reshape(x.shape[0], -1) for k in params], dim=1)


def kernel_limit(model: nn.Module, x, y, grid, rcond: float | None = None) -> np.ndarray:
    r"""The t -> infinity limit, on ``grid``, of gradient flow on the squared loss for the network
    linearized at its current (trainable) parameters: f_0(g) + J(g) J(X)^T (J(X) J(X)^T)^+ (y - f_0(X)), with the
    pseudo-inverse cut at ``rcond`` times the largest eigenvalue (default: n eps)."""
    xs, ys = _data(x, y)
    dtype = next(model.parameters()).dtype
    X = torch.as_tensor(xs, dtype=dtype)
    G = torch.as_tensor(np.asarray(grid, dtype=np.float64).reshape(-1), dtype=dtype)
    JX = _jacobian(model, X)
    JG = _jacobian(model, G)
    with torch.no_grad():
        fX = model(X)[:, 0]
        fG = model(G)[:, 0]
    K = JX @ JX.T
    r = torch.as_tensor(ys, dtype=dtype) - fX
    alpha = torch.linalg.lstsq(K, r[:, None], rcond=rcond if rcond is not None else xs.size * 2.2e-16,
                               driver="gelsd").solution[:, 0]
    return (fG + JG @ (JX.T @ alpha)).numpy()


@dataclass
class Interpolants(Result):
    """Sup and L2 distances (on the data's hull [x_min, x_max], L2 normalized by its length) from a
    function given on ``grid`` to the natural cubic spline, the linear interpolant and, when given,
    the kernel limit; ``closest``: the name of the nearest reference in L2."""

    sup: dict
    l2: dict
    closest: str
    grid_points: int

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 3))
        names = list(self.l2)
        ax.bar(names, [self.l2[k] for k in names], color="#4c72b0")
        ax.set_ylabel("L2 distance on the data's hull")
        ax.set_title(f"closest: {self.closest}")
        return ax


def compare_interpolants(values, x, y, grid, kernel: np.ndarray | None = None) -> Interpolants:
    """Distances from ``values`` (a function on ``grid``) to the reference interpolants of (x, y)."""
    xs, ys = _data(x, y)
    g = np.asarray(grid, dtype=np.float64).reshape(-1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size != g.size:
        raise InvalidInputError(f"values must have one entry per grid point ({g.size}), got {v.size}")
    inside = (g >= xs[0]) & (g <= xs[-1])
    if inside.sum() < 2:
        raise InvalidInputError("grid must have at least two points inside the data's hull")
    refs = {"cubic spline": natural_cubic_spline(xs, ys, g), "linear interpolant": linear_interpolant(xs, ys, g)}
    if kernel is not None:
        refs["kernel limit"] = np.asarray(kernel, dtype=np.float64).reshape(-1)
    gi = g[inside]
    sup, l2 = {}, {}
    for name, r in refs.items():
        d = (v - r)[inside]
        sup[name] = float(np.abs(d).max())
        l2[name] = float(math.sqrt(np.trapezoid(d * d, gi) / (gi[-1] - gi[0])))
    return Interpolants(sup=sup, l2=l2, closest=min(l2, key=l2.get), grid_points=int(inside.sum()))


@dataclass
class RegimeDiagram(Result):
    """One row per (width, inner_scale, outer_scale): L2 distances of the trained network to the
    cubic spline, the linear interpolant and its own kernel limit, the final loss, the laziness
    (relative parameter movement) and the knots' mean distance to the nearest data point, at the
    end (``knot_to_data``) and at eleven times along training (``knot_to_data_path`` at
    ``knot_path_steps``; knots inside the data's hull)."""

    rows: list
    x: list
    y: list
    seconds: float
    settings: dict = field(default_factory=dict)

    def plot(self, ax=None):
        """log(L2 to linear / L2 to cubic) over the two scales (largest width): > 0 kernel-like
        (cubic), < 0 adaptive (linear)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4))
        wmax = max(r["width"] for r in self.rows)
        rows = [r for r in self.rows if r["width"] == wmax]
        sa = sorted({r["inner_scale"] for r in rows})
        sc = sorted({r["outer_scale"] for r in rows})
        Z = np.full((len(sc), len(sa)), np.nan)
        for r in rows:
            Z[sc.index(r["outer_scale"]), sa.index(r["inner_scale"])] = math.log10(
                max(r["l2_linear"], 1e-300) / max(r["l2_cubic"], 1e-300))
        lim = np.nanmax(np.abs(Z)) if np.isfinite(Z).any() else 1.0
        im = ax.imshow(Z, origin="lower", cmap="coolwarm", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xticks(range(len(sa)), [f"{s:g}" for s in sa])
        ax.set_yticks(range(len(sc)), [f"{s:g}" for s in sc])
        ax.set_xlabel("inner scale s_a")
        ax.set_ylabel("outer scale s_c")
        ax.set_title(f"log10(L2 to linear / L2 to cubic), width {wmax}", fontsize=9)
        ax.figure.colorbar(im, ax=ax)
        return ax


def regime_diagram(x, y, *, widths=(200,), inner_scales=(0.1, 1.0, 10.0), outer_scales=(0.1, 1.0, 10.0),
                   steps: int = 20000, skip: bool = True, seed: int = 0, grid_points: int = 401,
                   time_limit: float | None = None, progress=None) -> RegimeDiagram:
    """Train each setting by gradient descent on L = 1/(2n) |f(X) - y|^2 for ``steps`` steps of size
    1 / lambda_max (lambda_max the top eigenvalue of the Gauss-Newton matrix J^T J / n at
    initialization; stopping early when the loss falls below 1e-12 of its initial value) and compare
    the trained function with the references on a grid over the data's hull."""
    from relulab.dynamics.flows import gradient_descent, mse_objective

    xs, ys = _data(x, y)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be an integer >= 1, got {steps!r}")
    lo, hi = xs[0], xs[-1]
    grid = np.linspace(lo, hi, grid_points)
    settings = [(w, sa, sc) for w in widths for sa in inner_scales for sc in outer_scales]
    start = _now()
    rows = []
    X = torch.as_tensor(xs)[:, None]
    Y = torch.as_tensor(ys)[:, None]
    for i, (w, sa, sc) in enumerate(settings):
        net = univariate_net(int(w), inner_scale=sa, outer_scale=sc, skip=skip, seed=seed,
                             knot_range=(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)))
        kern = kernel_limit(net, xs, ys, grid)
        J = _jacobian(net, torch.as_tensor(xs))
        lam = float(torch.linalg.eigvalsh(J @ J.T)[-1]) / xs.size
        obj = mse_objective(X, Y)
        loss0 = float(obj(net).detach())
        left = None if time_limit is None else max(0.0, time_limit - (_now() - start))
        tr = gradient_descent(net, obj, lr=1.0 / lam, steps=steps, record_every=max(1, steps // 10),
                              loss_tol=1e-12 * max(loss0, 1e-300), time_limit=left)
        with torch.no_grad():
            vals = net(torch.as_tensor(grid))[:, 0].numpy()
        cmp = compare_interpolants(vals, xs, ys, grid, kernel=kern)
        # mean distance from the knots inside the data's hull to the nearest data point, over time
        gaps = []
        for kn in knot_trajectory(net, tr):
            kn = kn[np.isfinite(kn) & (kn >= lo) & (kn <= hi)]
            gaps.append(float(np.abs(kn[:, None] - xs[None]).min(1).mean()) if kn.size else float("nan"))
        knot_gap = gaps[-1]
        rows.append({"width": int(w), "inner_scale": float(sa), "outer_scale": float(sc),
                     "l2_cubic": cmp.l2["cubic spline"], "l2_linear": cmp.l2["linear interpolant"],
                     "l2_kernel": cmp.l2["kernel limit"], "sup_cubic": cmp.sup["cubic spline"],
                     "sup_linear": cmp.sup["linear interpolant"], "sup_kernel": cmp.sup["kernel limit"],
                     "closest": cmp.closest, "final_loss": float(tr.loss[-1]), "movement": float(tr.movement[-1]),
                     "knot_to_data": knot_gap, "knot_to_data_path": gaps,
                     "knot_path_steps": [int(round(float(t) * lam)) for t in tr.times],
                     "steps": int(round(float(tr.times[-1]) * lam)),
                     "complete": bool(tr.complete)})
        if progress is not None:
            progress(i + 1, len(settings), width=w)
    return RegimeDiagram(rows=rows, x=xs.tolist(), y=ys.tolist(), seconds=_now() - start,
                         settings={"steps": steps, "skip": skip, "seed": seed})


def _now() -> float:
    return time.perf_counter()
