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

Which regime a run is in follows from the flow of one unit. Its knot k_i = -b_i / a_i moves at

    dk_i/dt = (c_i / (sqrt(m) a_i)) (1/n) sum_{j: unit active at x_j} r_j (1 + k_i x_j),  r = f(X) - y,

so knots travel when the outer weight is large against the inner one, while the kernel (whose size
sets how fast the residual is fitted) is of order s_a^2 + s_c^2 (derived here from the gradient
flow; the paper's text was not available to us, only its abstract: the regimes "depend both on the
relative magnitude of initialization of weights in different layers and the asymptotic behavior of
initialization coefficients in the limit of large network widths"). Measured (``relulab dynamics
univariate``): small s_a under s_c >= s_a, or both scales small, is adaptive (curvature mass at the
data, the linear spline); s_a = 10 is lazy and sits on its kernel limit; the width moves the border
(wider is lazier at fixed scales). A unit's knot stops where the bracket vanishes, which between two
data points happens at k = -sum r_j / sum r_j x_j: on convex (or concave) stretches of data, where
every convex interpolant has the same total curvature, knots settle there, off the data. Data of
alternating curvature (:func:`alternating_data`) force each change of slope onto its data point, and
there the adaptive regime's limit is the linear interpolant. Symmetric initialization
(``symmetric=True``) starts from f_0 = 0 so that no random initial function is left in the result.
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

__all__ = ["UnivariateNet", "univariate_net", "alternating_data", "univariate_data", "kernel_limit", "knot_trajectory",
           "knot_mass_near_data", "natural_cubic_spline", "linear_interpolant",
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
                   knot_range: tuple[float, float] = (-1.0, 1.0), skip: bool = False, symmetric: bool = False,
                   seed: int = 0, dtype=torch.float64) -> UnivariateNet:
    """A width-``width`` network initialized as in the module docstring (``knots`` ``"uniform"`` on
    ``knot_range`` or ``"gaussian"``: b_i ~ N(0, inner_scale^2)). With ``symmetric`` (even width) the
    second half of the units copies the first with c_i negated, so the initial function is exactly 0:
    the trained function is then compared with the interpolants without a random offset f_0 of size
    s_a s_c, which otherwise stays in every lazy solution."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InvalidInputError(f"width must be an integer >= 1, got {width!r}")
    if symmetric and width % 2:
        raise InvalidInputError(f"width must be even with symmetric=True, got {width}")
    if width > 10**7:
        raise InvalidInputError(f"width must be at most 10^7, got {width}")
    for name, v in (("inner_scale", inner_scale), ("outer_scale", outer_scale)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InvalidInputError(f"{name} must be a finite number > 0, got {v!r}")
    lo, hi = (float(knot_range[0]), float(knot_range[1]))
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InvalidInputError(f"knot_range must be two finite numbers lo < hi, got {knot_range!r}")
    g = torch.Generator().manual_seed(int(seed))
    h = width // 2 if symmetric else width
    sign = torch.where(torch.rand(h, generator=g, dtype=dtype) < 0.5, -1.0, 1.0).to(dtype)
    a = inner_scale * sign
    if knots == "uniform":
        k = lo + (hi - lo) * torch.rand(h, generator=g, dtype=dtype)
        b = -a * k
    elif knots == "gaussian":
        b = inner_scale * torch.randn(h, generator=g, dtype=dtype)
    else:
        raise InvalidInputError(f"knots must be 'uniform' or 'gaussian', got {knots!r}")
    c = outer_scale * torch.randn(h, generator=g, dtype=dtype)
    if symmetric:
        a, b, c = torch.cat([a, a]), torch.cat([b, b]), torch.cat([c, -c])
    return UnivariateNet(a, b, c, skip=skip)


def alternating_data(points: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``points`` data points on [-1, 1], evenly spaced up to a jitter of 12% of the spacing, with values
    of alternating sign and magnitude uniform in [0.25, 0.75].

    On such data every discrete second difference changes sign from one point to the next, so the
    linear interpolant is the *unique* interpolant of least total curvature int |f''| (also with
    any positive weight, e.g. int |f''(x)| sqrt(1 + x^2) dx, the path norm sum_i |c_i| |(a_i, b_i)| of
    a network in function space): each change of slope is forced to sit at its data point. The
    adaptive regime, whose bias is such a curvature norm, then has one identifiable limit. On convex
    or concave stretches of data the least-curvature interpolants are not unique (any convex
    interpolant has the same int |f''|) and the weighted norm moves knots off the data."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 3:
        raise InvalidInputError(f"points must be an integer >= 3, got {points!r}")
    rng = np.random.default_rng(seed)
    h = 2.0 / (points - 1)
    x = np.linspace(-1.0, 1.0, points) + 0.12 * h * rng.uniform(-1, 1, points)
    x = np.clip(x, -1.0, 1.0)
    y = np.where(np.arange(points) % 2 == 0, 1.0, -1.0) * rng.uniform(0.25, 0.75, points)
    return x, y


def univariate_data(kind: str = "alternating", points: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The regime diagram's data: ``"alternating"`` (:func:`alternating_data`) or ``"random"``
    (x ~ U(-1, 1) sorted, y ~ N(0, 1/4))."""
    if kind == "alternating":
        return alternating_data(points, seed)
    if kind != "random":
        raise InvalidInputError(f"kind must be 'alternating' or 'random', got {kind!r}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise InvalidInputError(f"points must be an integer >= 2, got {points!r}")
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1, 1, points))
    return x, rng.normal(0, 0.5, points)


def knot_mass_near_data(net: UnivariateNet, x, radius: float = 0.02) -> tuple[float, float]:
    """(fraction, baseline): the fraction of the network's curvature mass inside the data's hull that
    sits within ``radius`` times the hull's length of a data point, and the fraction of the hull those
    neighbourhoods cover (what a uniform spread of knots would give). A unit's curvature mass is its
    change of slope |c_i a_i| / sqrt(m) at its knot -b_i / a_i; a linear spline with knots at the
    data has fraction 1."""
    if not isinstance(net, UnivariateNet):
        raise InvalidInputError(f"net must be a UnivariateNet, got {type(net).__name__}")
    xs = np.sort(np.asarray(x, dtype=np.float64).reshape(-1))
    if xs.size < 2 or not np.isfinite(xs).all():
        raise InvalidInputError("x must hold at least two finite points")
    if not (isinstance(radius, (int, float)) and 0 < radius < 0.5):
        raise InvalidInputError(f"radius must be in (0, 0.5), got {radius!r}")
    a, b, c = (t.detach().cpu().numpy().astype(np.float64) for t in (net.a, net.b, net.c))
    keep = a != 0
    kn = -b[keep] / a[keep]
    jump = np.abs(c[keep] * a[keep]) / math.sqrt(net.width)
    lo, hi = xs[0], xs[-1]
    r = radius * (hi - lo)
    inside = (kn >= lo) & (kn <= hi)
    total = jump[inside].sum()
    near = np.abs(kn[:, None] - xs[None]).min(1) <= r
    frac = float(jump[inside & near].sum() / total) if total > 0 else float("nan")
    # covered length of the union of the neighbourhoods, clipped to the hull
    ivs = np.stack([np.clip(xs - r, lo, hi), np.clip(xs + r, lo, hi)], 1)
    covered, end = 0.0, lo
    for s0, s1 in ivs:
        s0 = max(s0, end)
        if s1 > s0:
            covered += s1 - s0
            end = s1
    return frac, float(covered / (hi - lo))


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
    (relative parameter movement), the fraction of curvature mass near the data (``mass_near_data``,
    against ``mass_near_baseline`` for uniformly spread knots) and the knots' mean distance to the
    nearest data point, at the end (``knot_to_data``) and at each step-size update along training
    (``knot_to_data_path`` at ``knot_path_steps``; knots inside the data's hull)."""

    rows: list
    x: list
    y: list
    seconds: float
    settings: dict = field(default_factory=dict)

    def plot(self, ax=None):
        """log10(L2 to the linear interpolant / L2 to the own kernel limit) over the two scales
        (largest width): > 0 kernel regime, < 0 adaptive regime (linear spline)."""
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
                max(r["l2_linear"], 1e-300) / max(r["l2_kernel"], 1e-300))
        lim = np.nanmax(np.abs(Z)) if np.isfinite(Z).any() else 1.0
        im = ax.imshow(Z, origin="lower", cmap="coolwarm", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xticks(range(len(sa)), [f"{s:g}" for s in sa])
        ax.set_yticks(range(len(sc)), [f"{s:g}" for s in sc])
        ax.set_xlabel("inner scale s_a")
        ax.set_ylabel("outer scale s_c")
        ax.set_title(f"log10(L2 to linear / L2 to kernel limit), width {wmax}", fontsize=9)
        ax.figure.colorbar(im, ax=ax)
        return ax


def regime_diagram(x, y, *, widths=(200,), inner_scales=(0.1, 1.0, 10.0), outer_scales=(0.1, 1.0, 10.0),
                   steps: int = 20000, skip: bool = True, symmetric: bool = True, lr_updates: int = 20,
                   seed: int = 0, grid_points: int = 401, radius: float = 0.02, time_limit: float | None = None,
                   progress=None) -> RegimeDiagram:
    """Train each setting by gradient descent on L = 1/(2n) |f(X) - y|^2 for ``steps`` steps of size
    1 / lambda_max (lambda_max the top eigenvalue of the Gauss-Newton matrix J^T J / n, re-estimated
    ``lr_updates`` times along the run because it grows as the adaptive regime moves the units;
    stopping early when the loss falls below 1e-12 of its initial value) and compare the trained
    function with the references on a grid over the data's hull. ``symmetric`` starts from the zero
    function (:func:`univariate_net`). Each row also holds the fraction of curvature mass within
    ``radius`` (times the hull's length) of a data point and its uniform baseline
    (:func:`knot_mass_near_data`)."""
    from relulab.dynamics.flows import gradient_descent, mse_objective

    xs, ys = _data(x, y)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(lr_updates, bool) or not isinstance(lr_updates, int) or lr_updates < 1:
        raise InvalidInputError(f"lr_updates must be an integer >= 1, got {lr_updates!r}")
    lo, hi = xs[0], xs[-1]
    grid = np.linspace(lo, hi, grid_points)
    settings = [(w, sa, sc) for w in widths for sa in inner_scales for sc in outer_scales]
    start = _now()
    rows = []
    X = torch.as_tensor(xs)[:, None]
    Y = torch.as_tensor(ys)[:, None]
    Xt = torch.as_tensor(xs)
    chunks = [steps // lr_updates + (1 if i < steps % lr_updates else 0) for i in range(lr_updates)]
    chunks = [c for c in chunks if c > 0]
    for i, (w, sa, sc) in enumerate(settings):
        cpu0 = time.process_time()
        net = univariate_net(int(w), inner_scale=sa, outer_scale=sc, skip=skip, seed=seed, symmetric=symmetric,
                             knot_range=(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)))
        kern = kernel_limit(net, xs, ys, grid)
        theta0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).clone()
        obj = mse_objective(X, Y)
        loss0 = float(obj(net).detach())
        done, t_steps, gaps, loss, complete = 0, [0], [], loss0, True

        def gap():
            kn = net.knots().numpy()
            kn = kn[(kn >= lo) & (kn <= hi)]
            return float(np.abs(kn[:, None] - xs[None]).min(1).mean()) if kn.size else float("nan")

        gaps.append(gap())
        for n_steps in chunks:
            J = _jacobian(net, Xt)
            lam = float(torch.linalg.eigvalsh(J @ J.T)[-1]) / xs.size
            left = None if time_limit is None else max(0.0, time_limit - (_now() - start))
            tr = gradient_descent(net, obj, lr=1.0 / lam, steps=n_steps, record_every=n_steps,
                                  loss_tol=1e-12 * max(loss0, 1e-300), time_limit=left)
            done += int(round(float(tr.times[-1]) * lam))
            loss = float(tr.loss[-1])
            t_steps.append(done)
            gaps.append(gap())
            if tr.stopped_by == "converged":
                break
            if not tr.complete:
                complete = False
                break
        with torch.no_grad():
            vals = net(torch.as_tensor(grid))[:, 0].numpy()
        cmp = compare_interpolants(vals, xs, ys, grid, kernel=kern)
        theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        movement = float((theta - theta0).norm() / max(float(theta0.norm()), 1e-300))
        near, base = knot_mass_near_data(net, xs, radius)
        rows.append({"width": int(w), "inner_scale": float(sa), "outer_scale": float(sc),
                     "l2_cubic": cmp.l2["cubic spline"], "l2_linear": cmp.l2["linear interpolant"],
                     "l2_kernel": cmp.l2["kernel limit"], "sup_cubic": cmp.sup["cubic spline"],
                     "sup_linear": cmp.sup["linear interpolant"], "sup_kernel": cmp.sup["kernel limit"],
                     "closest": cmp.closest, "final_loss": loss, "movement": movement,
                     "mass_near_data": near, "mass_near_baseline": base,
                     "knot_to_data": gaps[-1], "knot_to_data_path": gaps, "knot_path_steps": t_steps,
                     "steps": done, "complete": complete, "cpu_seconds": time.process_time() - cpu0})
        if progress is not None:
            progress(i + 1, len(settings), width=w)
    return RegimeDiagram(rows=rows, x=xs.tolist(), y=ys.tolist(), seconds=_now() - start,
                         settings={"steps": steps, "skip": skip, "symmetric": symmetric, "lr_updates": lr_updates,
                                   "seed": seed, "radius": radius})


def _now() -> float:
    return time.perf_counter()
