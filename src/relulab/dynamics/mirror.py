r"""Implicit bias of mirror flow for wide shallow univariate networks.

Liang and Montufar (*Implicit bias of mirror flow for shallow neural networks in univariate
regression*, ICLR 2025) train

    f(x; theta) = sum_{k=1}^n a_k sigma(w_k x - b_k) + d,      sigma = relu or |.|,

from input weights w_k and biases b_k drawn from a distribution mu (here: w_k = +-1 with equal
probability, b_k uniform on an interval) and output weights and bias a_k = d = 0, by mirror flow
d grad Phi(theta) / dt = -grad L(theta) on the squared loss, with a separable potential

    Phi(theta) = sum_k phi(theta_k - hat theta_k)                      (unscaled), or
    Phi(theta) = n^{-2} sum_k phi(n (theta_k - hat theta_k))           (scaled),

hat theta the initialization, phi strictly convex with phi'(0) = 0 (x^2, |x|^3 + x^2, x^4 + x^2, ...).
This is :class:`relulab.dynamics.Potential` with scale 1 and scale n (the width).

Why the limit is a variational problem: with a = 0 at the start, df/dw_k = a_k sigma' x vanishes, so
the input layer moves by O(1/n^2) while a_k = alpha_k / n moves by O(1/n) - the flow is lazy and
effectively acts on the linear model a -> f. Mirror flow on an under-determined linear least-squares
problem converges to the interpolant minimizing the Bregman divergence D_Phi(theta, hat theta),
which for phi'(0) = 0 is Phi(theta) - Phi(hat theta). Writing alpha_k = n a_k,

* unscaled: Phi(theta) - Phi(hat theta) = phi''(0) / 2 sum_k a_k^2 + o(1/n): the same problem as for
  gradient flow, and as n -> infinity the interpolant of minimal E_mu[alpha(w, b)^2] among
  f(x) = E_mu[alpha(w, b) sigma(w x - b)] - kernel regression with the kernel
  K(x, x') = E_mu[sigma(w x - b) sigma(w x' - b)] (the kernel regime);
* scaled: Phi(theta) - Phi(hat theta) = n^{-1} (1/n) sum_k phi(alpha_k): the interpolant of minimal
  E_mu[phi(alpha(w, b))], a convex problem that is quadratic (an RKHS norm) only for quadratic phi.
  The flow is still lazy (parameters move O(1/n)) but is *not* in the kernel regime. For absolute
  value networks sigma(w x - b) = |x - b/w| and f''(x) = 2 alpha(x) p(x) (p the knot density), so the
  bias is min integral phi(f''(x) / (2 p(x))) p(x) dx over interpolants: the parameter
  initialization weighs curvature by location, the potential weighs its magnitudes.

In both cases the output bias d carries a penalty n times heavier than the a_k (it is one parameter
against n) and vanishes in the limit.

:func:`mirror_limit` solves the limit problem on an exact quadrature of mu (Gauss-Legendre on the
pieces between the data's knots, where every feature is smooth) through its dual: by Lagrange
duality alpha = (phi')^{-1}(S^T lambda) with S_ij = sigma(w_j x_i - b_j), and lambda in R^N solves
the smooth convex dual min_lambda sum_j q_j phi*(S^T lambda)_j - lambda . y by damped Newton.
:func:`mirror_bias` trains networks of growing width by mirror descent (small steps of the flow;
explicit adaptive ODE solvers also work, see :func:`relulab.dynamics.flow`) and measures their
distance to the limit.

Where our reading of the paper is an assumption: the scaled potential is implemented exactly as
Phi(theta) = n^{-2} sum_k phi(n (theta_k - hat theta_k)) for *all* parameters (input and output
layer), the network has no 1/sqrt(n) factor, and input weights are +-1; the limit problem above is
derived for these choices (and checked numerically against trained networks and a generic
constrained solver), not transcribed from the paper's theorems.
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

__all__ = ["ShallowNet", "shallow_net", "mirror_limit", "MirrorLimit", "mirror_bias", "MirrorBias", "train_mirror"]

_ACTIVATIONS = ("relu", "abs")


def _sigma(z: torch.Tensor, activation: str) -> torch.Tensor:
    return torch.relu(z) if activation == "relu" else z.abs()


def _check_activation(activation: str) -> str:
    if activation not in _ACTIVATIONS:
        raise InvalidInputError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    return activation


def _check_range(bias_range) -> tuple[float, float]:
    try:
        lo, hi = float(bias_range[0]), float(bias_range[1])
    except (TypeError, ValueError, IndexError):
        raise InvalidInputError(f"bias_range must be two numbers lo < hi, got {bias_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InvalidInputError(f"bias_range must be two finite numbers lo < hi, got {bias_range!r}")
    return lo, hi


class ShallowNet(nn.Module):
    """f(x) = sum_k a_k sigma(w_k x - b_k) + d (standard parameterization, no 1/sqrt(n) factor);
    inputs (N,) or (N, 1), outputs (N, 1)."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor, a: torch.Tensor, d: torch.Tensor, activation: str = "relu"):
        super().__init__()
        self.activation = _check_activation(activation)
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(b.clone())
        self.a = nn.Parameter(a.clone())
        self.d = nn.Parameter(d.clone().reshape(()))

    @property
    def width(self) -> int:
        return self.w.numel()

    def forward(self, x):
        x = x.reshape(-1, 1).to(self.w.dtype)
        return (_sigma(x * self.w - self.b, self.activation) @ self.a + self.d)[:, None]


def shallow_net(width: int, *, activation: str = "relu", bias_range=(-2.0, 2.0), init: str = "random",
                seed: int = 0, dtype=torch.float64) -> ShallowNet:
    """The initialization of the module docstring: w_k = +-1, b_k ~ U(bias_range), a = d = 0
    (``init="random"``), or its stratified version (``"stratified"``: b_k at the midpoints of n equal
    cells of the range, signs alternating), whose features are a midpoint quadrature of mu, so the
    width-n network's distance to the limit is not dominated by the O(n^-1/2) sampling noise of
    random features."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InvalidInputError(f"width must be an integer >= 1, got {width!r}")
    if width > 10**7:
        raise InvalidInputError(f"width must be at most 10^7, got {width}")
    lo, hi = _check_range(bias_range)
    g = torch.Generator().manual_seed(int(seed))
    if init == "random":
        w = torch.where(torch.rand(width, generator=g, dtype=dtype) < 0.5, -1.0, 1.0).to(dtype)
        b = lo + (hi - lo) * torch.rand(width, generator=g, dtype=dtype)
    elif init == "stratified":
        k = torch.arange(width, dtype=dtype)
        w = torch.where(k % 2 == 0, 1.0, -1.0).to(dtype)
        b = lo + (hi - lo) * (k + 0.5) / width
    else:
        raise InvalidInputError(f"init must be 'random' or 'stratified', got {init!r}")
    zero = torch.zeros(width, dtype=dtype)
    return ShallowNet(w, b, zero, torch.zeros((), dtype=dtype), activation)


# ============================================================================ the limit problem
def _inverse_derivative(pot, s: np.ndarray) -> np.ndarray:
    """(phi')^{-1}(s) elementwise: safeguarded Newton on the strictly increasing phi'."""
    t = torch.as_tensor(s, dtype=torch.float64)
    d0 = float(pot.d2phi(torch.zeros(1, dtype=torch.float64))[0])
    u = t / d0
    lo = torch.full_like(t, -1.0)
    hi = torch.full_like(t, 1.0)
    for _ in range(200):  # bracket: phi'(lo) <= s <= phi'(hi)
        bad_lo = pot.derivative(lo) > t
        bad_hi = pot.derivative(hi) < t
        if not bool(bad_lo.any() or bad_hi.any()):
            break
        lo = torch.where(bad_lo, 2 * lo, lo)
        hi = torch.where(bad_hi, 2 * hi, hi)
    u = u.clamp(lo, hi)
    for _ in range(200):
        r = pot.derivative(u) - t
        lo = torch.where(r < 0, u, lo)
        hi = torch.where(r > 0, u, hi)
        nu = u - r / pot.d2phi(u)
        outside = (nu <= lo) | (nu >= hi)
        nu = torch.where(outside, 0.5 * (lo + hi), nu)
        if bool(((nu - u).abs() <= 1e-14 * (1 + u.abs())).all()):
            u = nu
            break
        u = nu
    return u.numpy()


def _quadrature(x: np.ndarray, bias_range, activation: str, nodes: int):
    """Nodes (w_j, b_j) and weights q_j (summing to 1) of mu = (+-1 equally) x U(bias_range), exact
    for integrands smooth between the kinks b = w x_i."""
    lo, hi = bias_range
    ws = (1.0,) if activation == "abs" else (1.0, -1.0)  # |x - b| = |-x + b|: one sign suffices
    gx, gw = np.polynomial.legendre.leggauss(nodes)
    W, B, Q = [], [], []
    for w in ws:
        cuts = np.unique(np.concatenate([[lo, hi], np.clip(w * x, lo, hi)]))
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b - a <= 0:
                continue
            B.append(0.5 * (b - a) * gx + 0.5 * (a + b))
            Q.append(0.5 * (b - a) * gw / (hi - lo) / len(ws))
            W.append(np.full(nodes, w))
    return np.concatenate(W), np.concatenate(B), np.concatenate(Q)


def _evaluate(g, xs, lam, pot, activation, bias_range, nodes, chunk: int = 256):
    """f(g) = E_mu[alpha sigma(w g - b)] with alpha(w, b) = (phi')^{-1}(sum_i lam_i sigma(w x_i - b)),
    by Gauss-Legendre on the pieces between the kinks of the data *and* of g, where the integrand is
    smooth (quadrature on the data's pieces alone would lose accuracy at the kink b = w g)."""
    lo, hi = bias_range
    ws = (1.0,) if activation == "abs" else (1.0, -1.0)
    gx, gw = np.polynomial.legendre.leggauss(nodes)
    out = np.zeros(g.size)
    for w in ws:
        base = np.unique(np.concatenate([[lo, hi], np.clip(w * xs, lo, hi)]))
        for c in range(0, g.size, chunk):
            gc = g[c:c + chunk]
            cuts = np.sort(np.concatenate([np.broadcast_to(base, (gc.size, base.size)),
                                           np.clip(w * gc, lo, hi)[:, None]], axis=1), axis=1)
            a, b = cuts[:, :-1, None], cuts[:, 1:, None]
            bn = 0.5 * (b - a) * gx + 0.5 * (a + b)  # (G, P, m)
            qn = 0.5 * (b - a) * gw / (hi - lo) / len(ws)
            sarg = _sigma(torch.as_tensor(w * xs[None, None, None, :] - bn[..., None]), activation).numpy() @ lam
            al = _inverse_derivative(pot, sarg)
            feat = _sigma(torch.as_tensor(w * gc[:, None, None] - bn), activation).numpy()
            out[c:c + chunk] += (qn * al * feat).sum(axis=(1, 2))
    return out


@dataclass
class MirrorLimit(Result):
    """The solution of the limit problem: ``values`` on ``grid``, the coefficient density ``alpha``
    at the quadrature nodes (``w``, ``b``, weights ``q``), the cost E_mu[phi(alpha)], the largest
    interpolation residual and the dual Newton iterations."""

    grid: np.ndarray
    values: np.ndarray
    w: np.ndarray
    b: np.ndarray
    q: np.ndarray
    alpha: np.ndarray
    cost: float
    residual: float
    iterations: int
    potential: str
    activation: str

    _summary_fields = ("potential", "activation", "cost", "residual", "iterations")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 3))
        ax.plot(self.grid, self.values)
        ax.set_title(f"limit of mirror flow ({self.potential}, {self.activation})", fontsize=9)
        ax.set_xlabel("x")
        return ax


def mirror_limit(x, y, grid, *, potential="x^2", activation: str = "relu", bias_range=(-2.0, 2.0),
                 nodes: int = 32, tol: float = 1e-12, max_iterations: int = 100) -> MirrorLimit:
    r"""Solve min E_mu[phi(alpha(w, b))] subject to E_mu[alpha(w, b) sigma(w x_i - b)] = y_i (the
    width -> infinity limit of mirror flow with the *scaled* potential phi; pass ``"quadratic"`` for
    the unscaled potentials and gradient flow, whose limits all coincide), and evaluate
    f(g) = E_mu[alpha sigma(w g - b)] on ``grid``. ``nodes``: Gauss-Legendre nodes per piece between
    consecutive kinks. Raises when the data cannot be interpolated by the features (for example two
    data points with no knot between them and a ReLU on one side) or Newton fails to converge."""
    from relulab.dynamics.flows import potential as _get_potential

    pot = _get_potential(potential)
    activation = _check_activation(activation)
    lo, hi = _check_range(bias_range)
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    if xs.size < 1 or xs.size != ys.size:
        raise InvalidInputError(f"x and y must be 1-D arrays of equal length >= 1, got {xs.size} and {ys.size}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise InvalidInputError("x and y must be finite")
    if np.unique(xs).size != xs.size:
        raise InvalidInputError("x must hold distinct points")
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 2 <= nodes <= 4096:
        raise InvalidInputError(f"nodes must be an integer in [2, 4096], got {nodes!r}")
    g = np.asarray(grid, dtype=np.float64).reshape(-1)
    if not np.isfinite(g).all():
        raise InvalidInputError("grid must be finite")
    w, b, q = _quadrature(xs, (lo, hi), activation, nodes)
    S = _sigma(torch.as_tensor(xs[:, None] * w[None] - b[None]), activation).numpy()  # (N, M)
    lam = np.zeros(xs.size)
    t = 1.0

    def dual(lam):
        s = lam @ S
        al = _inverse_derivative(pot, s)
        phi = pot.phi(torch.as_tensor(al)).numpy()
        # phi*(s) = s alpha - phi(alpha) at alpha = (phi')^{-1}(s)
        return float(q @ (s * al - phi) - lam @ ys), al

    val, al = dual(lam)
    it = 0
    for it in range(1, max_iterations + 1):
        grad = S @ (q * al) - ys
        if float(np.abs(grad).max()) <= tol * (1 + float(np.abs(ys).max())):
            break
        if it > 1 and t < 1e-12:  # no decrease left at machine precision
            break
        curv = q / pot.d2phi(torch.as_tensor(al)).numpy()
        H = (S * curv) @ S.T
        try:
            step = np.linalg.solve(H + 1e-14 * np.trace(H) / xs.size * np.eye(xs.size), grad)
        except np.linalg.LinAlgError:
            raise InvalidInputError("the features cannot interpolate these data (singular dual Hessian)") from None
        t = 1.0
        while t > 1e-12:
            nval, nal = dual(lam - t * step)
            if nval <= val - 1e-4 * t * float(grad @ step) or nval <= val:
                break
            t *= 0.5
        if t > 1e-12:
            lam, val, al = lam - t * step, nval, nal
    residual = float(np.abs(S @ (q * al) - ys).max())
    if not residual <= 1e-6 * (1 + float(np.abs(ys).max())):
        raise InvalidInputError(f"the limit problem did not reach interpolation (residual {residual:.3g} after "
                                f"{it} Newton steps): are the data interpolable by knots in bias_range?")
    values = _evaluate(g, xs, lam, pot, activation, (lo, hi), nodes)
    cost = float(q @ pot.phi(torch.as_tensor(al)).numpy())
    return MirrorLimit(grid=g, values=values, w=w, b=b, q=q, alpha=al, cost=cost, residual=residual,
                       iterations=it, potential=pot.name, activation=activation)


# ============================================================================ training
_NUMPY_DERIVATIVES = {  # (phi', phi'') of the built-in potentials, for the vectorized inner loop
    "quadratic": (lambda u: u, lambda u: np.ones_like(u)),
    "x^2": (lambda u: 2.0 * u, lambda u: np.full_like(u, 2.0)),
    "|x|^3+x^2": (lambda u: 3.0 * u * np.abs(u) + 2.0 * u, lambda u: 6.0 * np.abs(u) + 2.0),
    "x^4+x^2": (lambda u: 4.0 * u**3 + 2.0 * u, lambda u: 12.0 * u * u + 2.0),
    "cosh-entropy": (np.arcsinh, lambda u: 1.0 / np.sqrt(1.0 + u * u)),
}


def _inverse_step(pot):
    """u = (phi')^{-1}(s), warm-started at the previous u (the dual variable moves little per step):
    Newton to machine precision, the safeguarded solver when Newton does not settle."""
    maps = _NUMPY_DERIVATIVES.get(pot.name)
    if pot.name == "quadratic":
        return lambda s, u: s
    if pot.name == "x^2":
        return lambda s, u: 0.5 * s

    def inv(s, u):
        if maps is not None:
            d1, d2 = maps
            for _ in range(8):
                step = (d1(u) - s) / d2(u)
                u = u - step
                if float(np.abs(step).max(initial=0.0)) <= 1e-15 * (1.0 + float(np.abs(u).max(initial=0.0))):
                    return u
        return _inverse_derivative(pot, s)

    return inv


def train_mirror(net: ShallowNet, x, y, *, potential="x^2", scaled: bool = False, steps: int = 20000,
                 momentum: float = 0.0, adapt_every: int = 0, rel_loss_tol: float = 1e-14,
                 time_limit: float | None = None) -> dict:
    r"""Mirror descent on L = 1/(2N) sum_i (f(x_i) - y_i)^2 for a :class:`ShallowNet`, with Phi
    centred at the current parameters (scale omega = the width when ``scaled``), in the dual
    coordinates s = phi'(omega (theta - theta_0)):

        v_k = s_k + momentum (s_k - s_{k-1}),   s_{k+1} = v_k - lr_k omega grad L(theta(v_k)),
        theta(s) = theta_0 + (phi')^{-1}(s) / omega.

    ``momentum = 0`` is plain mirror descent (the iteration of
    :func:`relulab.dynamics.gradient_descent` with a potential, written out for this network: closed
    -form gradients and inverse mirror maps, vectorized over the neurons); ``momentum > 0`` is its
    Nesterov-accelerated form. Both keep s_k in the span of the loss gradients seen so far - the
    property that makes the limit the Bregman-divergence minimizer among interpolants for the
    (lazy, almost linear) model - while momentum needs about sqrt(kappa) instead of kappa steps.
    lr_k = 1 / lambda_max of the preconditioned Gauss-Newton matrix J diag(1/phi''(u)) J^T / N,
    recomputed every ``adapt_every`` steps (0: only at the start). Stops after ``steps`` steps or
    when the loss falls to ``rel_loss_tol`` times its initial value; the network is left at the last
    iterate. Returns steps, lr (the last), loss0, loss, movement |theta - theta_0| / |theta_0|,
    converged, seconds."""
    from relulab.dynamics.flows import potential as _get_potential

    if not isinstance(net, ShallowNet):
        raise InvalidInputError(f"net must be a ShallowNet, got {type(net).__name__}")
    for name, v in (("steps", steps), ("adapt_every", adapt_every)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidInputError(f"{name} must be an integer >= 0, got {v!r}")
    if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        raise InvalidInputError(f"momentum must be a number in [0, 1), got {momentum!r}")
    pot = _get_potential(potential)
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    if xs.size < 1 or xs.size != ys.size or not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise InvalidInputError("x and y must be finite 1-D arrays of equal length >= 1")
    start = time.perf_counter()
    N = xs.size
    relu = net.activation == "relu"
    n = net.width
    centre = np.concatenate([p.detach().cpu().numpy().astype(np.float64).reshape(-1)
                             for p in (net.w, net.b, net.a, net.d)])
    omega = float(n) if scaled else 1.0
    d2 = _NUMPY_DERIVATIVES.get(pot.name, (None, lambda u: pot.d2phi(torch.as_tensor(u)).numpy()))[1]
    inv = _inverse_step(pot)

    def forward(theta):
        w, b, a, d = theta[:n], theta[n:2 * n], theta[2 * n:3 * n], theta[3 * n]
        z = xs[:, None] * w - b
        return z, (np.maximum(z, 0.0) if relu else np.abs(z)), a, d

    def step_size(theta, u):
        z, S, a, _ = forward(theta)
        Ja = ((z > 0) if relu else np.sign(z)) * a
        J = np.concatenate([Ja * xs[:, None], -Ja, S, np.ones((N, 1))], axis=1)
        return N / float(np.linalg.eigvalsh((J / d2(u)) @ J.T)[-1])

    s = np.zeros(centre.size)
    s_prev = s
    u = np.zeros(centre.size)
    theta = centre.copy()
    lr = step_size(theta, u)
    loss0 = loss = None
    k = 0
    for k in range(steps + 1):
        v = s + momentum * (s - s_prev) if momentum else s
        uv = inv(v, u)
        theta_v = centre + uv / omega
        z, S, a, d = forward(theta_v)
        r = S @ a + d - ys
        if k == 0:
            loss0 = loss = 0.5 * float(r @ r) / N
        if not math.isfinite(float(r @ r)):
            raise InvalidInputError("the loss became non-finite (step size too large)")
        if k == steps or loss <= rel_loss_tol * loss0:
            break
        if time_limit is not None and time.perf_counter() - start > time_limit:
            break
        if adapt_every and k % adapt_every == 0 and k > 0:
            lr = step_size(theta_v, uv)
        r = r / N
        Gz = ((z > 0) if relu else np.sign(z)) * (r[:, None] * a)
        grad = np.concatenate([xs @ Gz, -Gz.sum(0), S.T @ r, [r.sum()]])
        s_prev, s = s, v - lr * omega * grad
        u = inv(s, uv)
        theta = centre + u / omega
        _, S, a, d = forward(theta)
        r = S @ a + d - ys
        loss = 0.5 * float(r @ r) / N
    with torch.no_grad():
        for p, vals in zip((net.w, net.b, net.a), (theta[:n], theta[n:2 * n], theta[2 * n:3 * n])):
            p.copy_(torch.as_tensor(vals, dtype=p.dtype))
        net.d.fill_(float(theta[3 * n]))
    norm0 = float(np.linalg.norm(centre))
    return {"steps": k, "lr": float(lr), "loss0": loss0, "loss": loss,
            "movement": float(np.linalg.norm(theta - centre)) / (norm0 if norm0 > 0 else 1.0),
            "converged": loss <= rel_loss_tol * loss0, "seconds": time.perf_counter() - start}


def _distances(values, ref, grid, lo, hi):
    inside = (grid >= lo) & (grid <= hi)
    d = (np.asarray(values) - np.asarray(ref))[inside]
    gi = grid[inside]
    return float(np.abs(d).max()), float(math.sqrt(np.trapezoid(d * d, gi) / (gi[-1] - gi[0])))


@dataclass
class MirrorBias(Result):
    """One row per (potential, scaled, width): sup and L2 distances (on the data's hull) from the trained
    network to the limit of *its* flow (``sup_limit``, ``l2_limit``) and to the kernel (gradient
    flow) limit (``sup_kernel``, ``l2_kernel``), the laziness |theta - theta_0| / |theta_0|, the final
    relative loss and whether the loss tolerance was met."""

    rows: list
    x: list
    y: list
    activation: str
    seconds: float
    settings: dict = field(default_factory=dict)

    def plot(self, ax=None):
        """Sup distance to the limit of each flow against width (log-log), one line per potential."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        keys = sorted({(r["potential"], r["scaled"]) for r in self.rows})
        for name, scaled in keys:
            sub = sorted((r for r in self.rows if r["potential"] == name and r["scaled"] == scaled),
                         key=lambda r: r["width"])
            lab = f"{name}{' scaled' if scaled else ''}"
            line, = ax.plot([r["width"] for r in sub], [r["sup_limit"] for r in sub], "o-", label=lab)
            if scaled:
                ax.plot([r["width"] for r in sub], [r["sup_kernel"] for r in sub], "x:", color=line.get_color(),
                        label=f"{lab}: to kernel limit")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width n")
        ax.set_ylabel("sup distance on the data's hull")
        ax.set_title(f"mirror flow vs its width-limit ({self.activation})", fontsize=9)
        ax.legend(fontsize=7)
        return ax


def mirror_bias(x, y, *, widths=(50, 200, 800), potentials=("x^2", "|x|^3+x^2", "x^4+x^2"),
                scaled=(False, True), activation: str = "relu", bias_range=(-2.0, 2.0), init: str = "stratified",
                steps: int = 20000, momentum: float = 0.99, rel_loss_tol: float = 1e-12, seed: int = 0,
                grid_points: int = 401, nodes: int = 32, time_limit: float | None = None,
                progress=None) -> MirrorBias:
    """Train :func:`shallow_net` networks (``init``) by :func:`train_mirror` (``momentum``, step
    adapted every 100 steps) for each potential (unscaled and/or scaled) and width, and compare each
    with the solution of its limit problem (:func:`mirror_limit`: the quadratic problem for unscaled
    potentials, phi itself for scaled ones) and with the kernel limit. Each run stops after ``steps``
    steps or at ``rel_loss_tol`` times its initial loss (``converged`` in the row)."""
    activation = _check_activation(activation)
    lo, hi = _check_range(bias_range)
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be an integer >= 1, got {steps!r}")
    if not scaled or not potentials or not widths:
        raise InvalidInputError("widths, potentials and scaled must each hold at least one value")
    grid = np.linspace(xs.min(), xs.max(), grid_points)
    start = time.perf_counter()
    kernel = mirror_limit(xs, ys, grid, potential="quadratic", activation=activation, bias_range=(lo, hi),
                          nodes=nodes).values
    limits = {}
    settings = [(p, s, int(wd)) for p in potentials for s in scaled for wd in widths]
    rows = []
    for i, (name, sc, wd) in enumerate(settings):
        if (name, sc) not in limits:
            limits[(name, sc)] = kernel if not sc else mirror_limit(
                xs, ys, grid, potential=name, activation=activation, bias_range=(lo, hi), nodes=nodes).values
        net = shallow_net(wd, activation=activation, bias_range=(lo, hi), init=init, seed=seed)
        left = None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - start))
        tr = train_mirror(net, xs, ys, potential=name, scaled=sc, steps=steps, momentum=momentum, adapt_every=100,
                          rel_loss_tol=rel_loss_tol, time_limit=left)
        with torch.no_grad():
            vals = net(torch.as_tensor(grid))[:, 0].numpy()
        sup_l, l2_l = _distances(vals, limits[(name, sc)], grid, xs.min(), xs.max())
        sup_k, l2_k = _distances(vals, kernel, grid, xs.min(), xs.max())
        rows.append({"potential": name, "scaled": bool(sc), "width": wd, "sup_limit": sup_l, "l2_limit": l2_l,
                     "sup_kernel": sup_k, "l2_kernel": l2_k, "movement": tr["movement"],
                     "relative_loss": tr["loss"] / tr["loss0"] if tr["loss0"] > 0 else 0.0,
                     "converged": bool(tr["converged"]), "steps": tr["steps"]})
        if progress is not None:
            progress(i + 1, len(settings), width=wd)
    return MirrorBias(rows=rows, x=xs.tolist(), y=ys.tolist(), activation=activation,
                      seconds=time.perf_counter() - start,
                      settings={"steps": steps, "seed": seed, "bias_range": [lo, hi], "nodes": nodes, "init": init,
                                "momentum": momentum})
