r"""Infinite-width NNGP and NTK of deep fully connected networks, in closed form or by exact quadrature.

Network (depth ``L`` hidden layers of width ``n -> infinity``, linear read-out), NTK parameterization
(Jacot et al. 2018)::

    z^1 = sigma_w / sqrt(d_0) W^1 x + sigma_b b^1,
    z^{l+1} = sigma_w / sqrt(n_l) W^{l+1} phi(z^l) + sigma_b b^{l+1},   f = z^{L+1},

all entries of ``W``, ``b`` iid N(0, 1) and trainable; ``weight_var = sigma_w^2``,
``bias_var = sigma_b^2``. With ``(u, v) ~ N(0, [[Sigma^l(x,x), Sigma^l(x,x')], [., Sigma^l(x',x')]])``
the kernels follow the recursions (Neal 1996; Lee et al. 2018; Jacot et al. 2018; Arora et al. 2019)::

    Sigma^1(x,x')     = sigma_w^2 <x,x'> / d_0 + sigma_b^2
    Sigma^{l+1}(x,x') = sigma_w^2 E[phi(u) phi(v)] + sigma_b^2              (NNGP)
    Sdot^{l+1}(x,x')  = sigma_w^2 E[phi'(u) phi'(v)]
    Theta^1 = Sigma^1,  Theta^{l+1} = Sigma^{l+1} + Sdot^{l+1} Theta^l     (NTK)

and ``nngp = Sigma^{L+1}``, ``ntk = Theta^{L+1}``. Both expectations depend on the variances
``a, b`` and the correlation ``rho = c / sqrt(ab)`` (clipped to [-1, 1]) only: with
``theta = arccos(rho)``,

* ReLU (Cho and Saul 2009, arc-cosine kernels of degree 1 and 0)::

      E[relu(u) relu(v)]   = sqrt(ab) (sin theta + (pi - theta) cos theta) / (2 pi)
      E[relu'(u) relu'(v)] = (pi - theta) / (2 pi)

* leaky ReLU ``phi(z) = max(z, alpha z)`` (``alpha = slope``; ``alpha = -1`` is ``abs``): since
  ``phi(z) = relu(z) - alpha relu(-z)`` and ``(u, -v)`` has correlation ``-rho``,
  ``E[phi phi] = (1 + alpha^2) k(rho) - 2 alpha k(-rho)`` with ``k`` the ReLU kernel above, i.e.::

      E[phi(u) phi(v)]   = sqrt(ab) [(1 + alpha^2)(sin theta + (pi - theta) rho) - 2 alpha (sin theta - theta rho)] / (2 pi)
      E[phi'(u) phi'(v)] = [(1 + alpha^2)(pi - theta) + 2 alpha theta] / (2 pi)

* maxout of rank ``k``: a unit is ``max_r z_r`` over ``k`` pre-activations that are iid copies of the
  same Gaussian field, so ``(u_r, v_r)`` are ``k`` iid pairs and, with ``U = max u_r``,
  ``V = max v_r``::

      E[phi phi]   -> sqrt(ab) g_k(rho),  g_k(rho) = E[U V]                  (standardized pairs)
      E[phi' phi'] -> p_k(rho) = P(argmax_r u_r = argmax_r v_r)

  (the gradient reaches the winning piece only). Price's theorem gives ``g_k' = p_k``, hence
  ``g_k(rho) = mu_k^2 + int_0^rho p_k``, ``mu_k = E[max of k standard normals]``, and
  ``g_k(1) = M_k = E[(max of k standard normals)^2]`` (``M_2 = 1``). ``p_k`` is the bivariate
  Gaussian integral ``k E[H(u, v)^{k-1}]``, ``H(u, v) = P(u_2 <= u, v_2 <= v)``. In the rotated
  coordinates ``u = A a + B b``, ``v = A a - B b`` (``A = cos(theta/2)``, ``B = sin(theta/2)``,
  ``a, b`` iid N(0, 1)) one has ``H = E_y[Phi(a - tan(theta/2) |b - y|)]``, a one-dimensional
  integral in closed form through bivariate normal CDFs (Owen's T function), and ``H`` is analytic
  in ``(a, b)`` for every ``theta``; the outer expectation is a tensor Gauss-Hermite rule whose
  order is doubled until two orders agree to 1e-13. ``p_k`` is then fitted by a Chebyshev series in
  ``theta`` on ``[0, pi]`` (degree doubled until the tail is below 1e-14), ``g_k`` is its exact
  antiderivative, checked against an independent 1-D integral for ``M_k``, and both are tabulated
  for cubic Hermite interpolation in ``theta`` (interpolation error below 1e-13). ``k = 2`` has the
  closed form ``p_2 = 1 - theta / pi``, ``g_2 = rho (1 - theta / pi) + sin(theta) / pi``.

Per-layer variances: every ``sigma_w^2``, ``sigma_b^2`` above may differ between layers; the
recursion for layer ``l + 1`` uses that layer's ``sigma_{w,l+1}^2`` and ``sigma_{b,l+1}^2`` (the
first layer's enter ``Sigma^1``, the read-out's the last step).

Standard parameterization: ``z^{l+1} = W^{l+1} phi(z^l) + b^{l+1}`` with ``W_ij ~ N(0, sigma_w^2 /
n_l)``, ``b ~ N(0, sigma_b^2)``. It defines the same random function, so the NNGP is the same. Its
plain empirical NTK ``J J^T`` diverges linearly in the width. With *width-scaled learning rates*
(weights of a layer with fan-in ``n`` trained at rate ``eta / n``, biases at rate ``eta``) gradient
descent sees the rate-weighted kernel ``sum_l (1/n_{l-1}) J_{W^l} J_{W^l}^T + J_{b^l} J_{b^l}^T``,
which converges (same law of large numbers as above) to::

    Theta_sp^1 = <x,x'> / d_0 + 1,
    Theta_sp^{l+1} = E[phi(u) phi(v)] + 1 + Sdot^{l+1} Theta_sp^l

(``parameterization="standard"``): the NTK-parameterization recursion with every direct weight
term divided by ``sigma_w^2`` and every bias term by ``sigma_b^2`` (a bias contributes 1 even when
initialized at 0). With one global rate ``eta / n`` instead, the first layer and the biases drop out
of the limit (their share is O(1/n)).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from relulab.core.errors import InvalidInputError

__all__ = ["analytic_ntk", "dual_kernels", "maxout_moments", "kernel_of_correlation", "ACTIVATIONS",
           "PARAMETERIZATIONS"]

ACTIVATIONS = ("relu", "leaky_relu", "abs", "maxout")
PARAMETERIZATIONS = ("ntk", "standard")
_TWO_PI = 2.0 * math.pi


# ----------------------------------------------------------------------------- maxout quadrature
def _bvn_cdf(h: np.ndarray, k: np.ndarray, r: float) -> np.ndarray:
    """Phi_2(h, k; r) for |r| < 1 through Owen's T (Owen 1956), vectorized over h, k."""
    from scipy.special import ndtr, owens_t

    h = np.where(h == 0.0, 1e-300, h)  # the formula's limit at 0 is the value at 0+ (same branch)
    k = np.where(k == 0.0, 1e-300, k)
    s = math.sqrt((1.0 - r) * (1.0 + r))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ah = (k - r * h) / (h * s)
        ak = (h - r * k) / (k * s)
    out = 0.5 * ndtr(h) + 0.5 * ndtr(k) - owens_t(h, ah) - owens_t(k, ak)
    return out - np.where(h * k > 0.0, 0.0, 0.5)


def _maxout_p_at(theta: float, k: int, order: int) -> float:
    """P(argmax u = argmax v) for k iid standardized pairs of correlation cos(theta), Gauss-Hermite order ``order``.

    Rotated coordinates ``u = A a + B b``, ``v = A a - B b`` (A = cos(theta/2), B = sin(theta/2)),
    ``t = B / A``. For theta <= pi/2, ``H = P(u_2 <= u, v_2 <= v) = int phi(y) Phi(a - t|b - y|) dy``.
    For theta > pi/2 use ``v' = -v`` (correlation -rho, angle pi - theta): argmax v = argmin v' and
    ``H' = P(u_2 <= u, v'_2 >= v') = int_{y <= b} phi(y) [Phi(a + t'(b - y)) - Phi(a - t'(b - y))] dy``.
    Either way t <= 1, each half-line integral is a bivariate normal CDF, and ``p = k E[H^{k-1}]``.
    """
    from scipy.special import ndtr

    if theta <= 0.0:
        return 1.0
    if theta >= math.pi:
        return 0.0
    mirrored = theta > 0.5 * math.pi
    t = math.tan(0.5 * (math.pi - theta if mirrored else theta))
    x, w = np.polynomial.hermite_e.hermegauss(order)
    w = w / math.sqrt(2.0 * math.pi)
    a, b = x[:, None], np.broadcast_to(x[None, :], (order, order))
    q = math.sqrt(1.0 + t * t)
    if mirrored:
        # P(Y <= b, Z + tY <= a + tb) - P(Y <= b, Z - tY <= a - tb), Y, Z iid N(0, 1)
        H = _bvn_cdf(b, (a + t * b) / q, t / q) - _bvn_cdf(b, (a - t * b) / q, -t / q)
    else:
        # P(Y <= b, Z - tY <= a - tb) + P(Y > b, Z + tY <= a + tb)
        c2 = (a + t * b) / q
        H = _bvn_cdf(b, (a - t * b) / q, -t / q) + ndtr(c2) - _bvn_cdf(b, c2, t / q)
    H = np.clip(H, 0.0, 1.0)
    return float(k * np.sum(w[:, None] * w[None, :] * H ** (k - 1)))


_ORDERS = (40, 56, 80, 112, 160, 224, 320, 448)


def _maxout_p(theta: float, k: int, tol: float = 1e-13) -> float:
    """p_k(theta) by Gauss-Hermite rules of increasing order until two consecutive ones agree to ``tol``."""
    prev = _maxout_p_at(theta, k, _ORDERS[0])
    for order in _ORDERS[1:]:
        cur = _maxout_p_at(theta, k, order)
        if abs(cur - prev) <= tol:
            return cur
        prev = cur
    raise ArithmeticError(f"maxout quadrature did not converge at theta={theta} (k={k})")


def maxout_moments(k: int) -> tuple[float, float]:
    """``(mu_k, M_k)``: mean and second moment of the maximum of ``k`` iid standard normals (1-D quadrature)."""
    from scipy import integrate
    from scipy.special import ndtr

    k = int(k)
    if k < 1:
        raise InvalidInputError(f"maxout rank k must be >= 1, got {k}")
    dens = lambda x: k * math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) * ndtr(x) ** (k - 1)  # noqa: E731
    # the density is below 1e-40 outside [-14, 14 + sqrt(2 log k)]
    lo, hi = -14.0, 14.0 + math.sqrt(2.0 * math.log(k))
    mu = integrate.quad(lambda x: x * dens(x), lo, hi, epsabs=1e-14, epsrel=1e-13, limit=400)[0]
    m2 = integrate.quad(lambda x: x * x * dens(x), lo, hi, epsabs=1e-14, epsrel=1e-13, limit=400)[0]
    return mu, m2


_GRID = 2048  # cubic Hermite cells on [0, pi]


@functools.lru_cache(maxsize=16)
def _maxout_table(k: int, force_quadrature: bool = False) -> np.ndarray:
    """(GRID+1, 4) table over theta in [0, pi]: p_k, dp_k/dtheta, g_k, dg_k/dtheta."""
    from numpy.polynomial import chebyshev as C

    thetas = np.linspace(0.0, math.pi, _GRID + 1)
    if k == 2 and not force_quadrature:
        rho, s = np.cos(thetas), np.sin(thetas)
        p = 1.0 - thetas / math.pi
        g = rho * p + s / math.pi
        return np.stack([p, np.full_like(p, -1.0 / math.pi), g, -p * s], axis=1)
    mu, m2 = maxout_moments(k)
    deg, known = 32, {}
    while True:
        # Chebyshev points of the second kind on [0, pi] (endpoints exact: p(0) = 1, p(pi) = 0); they
        # nest when the degree doubles, so earlier values are reused
        j = np.arange(deg + 1)
        nodes = 0.5 * math.pi * (1.0 - np.cos(np.pi * j / deg))
        vals = []
        for jj, th in zip(j, nodes):
            key = (int(jj) * (256 // deg)) if 256 % deg == 0 else (int(jj), deg)
            if key not in known:
                known[key] = _maxout_p(float(th), k)
            vals.append(known[key])
        coef = C.chebfit(2.0 * nodes / math.pi - 1.0, np.array(vals), deg)
        if np.max(np.abs(coef[-4:])) < 5e-13 or deg >= 256:
            break
        deg *= 2
    if np.max(np.abs(coef[-4:])) >= 1e-11:
        raise ArithmeticError(f"maxout p_k Chebyshev series did not converge (k={k}, tail {np.abs(coef[-4:]).max():.2e})")
    scale = 0.5 * math.pi  # theta = scale * (s + 1), s in [-1, 1]
    s_grid = 2.0 * thetas / math.pi - 1.0
    p = C.chebval(s_grid, coef)
    dp = C.chebval(s_grid, C.chebder(coef)) / scale
    # g(theta) = mu^2 - int_{pi/2}^{theta} p(t) sin(t) dt; p(t) sin(t) as a Chebyshev series in s
    fine = 0.5 * math.pi * (1.0 - np.cos(np.pi * np.arange(4 * deg + 1) / (4 * deg)))
    ps = C.chebfit(2.0 * fine / math.pi - 1.0, C.chebval(2.0 * fine / math.pi - 1.0, coef) * np.sin(fine), 4 * deg)
    anti = C.chebint(ps, lbnd=0.0) * scale  # antiderivative in theta, zero at theta = pi/2 (s = 0)
    g = mu * mu - C.chebval(s_grid, anti)
    dg = -p * np.sin(thetas)
    if abs(g[0] - m2) > 1e-10 * max(1.0, m2):
        raise ArithmeticError(f"maxout kernel check failed: g_k(1) = {g[0]!r} but M_k = {m2!r} (k={k})")
    g[0] = m2
    return np.stack([p, dp, g, dg], axis=1)


def _cubic_pieces(table: np.ndarray, dtype, device) -> tuple[torch.Tensor, ...]:
    """Per-cell cubic coefficients (c0, c1, c2, c3 of g_k, then of p_k) of the Hermite interpolant.

    On cell ``[theta_i, theta_i + h]`` with ``s = (theta - theta_i) / h``, values ``v0, v1`` and
    scaled derivatives ``d0, d1`` (times h): ``f = v0 + d0 s + (3(v1 - v0) - 2 d0 - d1) s^2
    + (2(v0 - v1) + d0 + d1) s^3``.
    """
    h = math.pi / _GRID
    out = []
    for v, d in ((2, 3), (0, 1)):
        v0, v1 = table[:-1, v], table[1:, v]
        d0, d1 = table[:-1, d] * h, table[1:, d] * h
        for c in (v0, d0, 3 * (v1 - v0) - 2 * d0 - d1, 2 * (v0 - v1) + d0 + d1):
            out.append(torch.as_tensor(np.ascontiguousarray(c), dtype=dtype, device=device))
    return tuple(out)


def _hermite_lookup(pieces: tuple[torch.Tensor, ...], theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(g_k, p_k) at theta in [0, pi] by Horner on the cell's cubic (see :func:`_cubic_pieces`)."""
    u = theta * (_GRID / math.pi)
    i = u.floor().clamp_(0, _GRID - 1)
    s = u.sub_(i)
    flat = i.long().reshape(-1)
    out = []
    for c0, c1, c2, c3 in (pieces[:4], pieces[4:]):
        take = lambda c: c.index_select(0, flat).view_as(s)  # noqa: E731  (faster than c[i])
        out.append(take(c3).mul_(s).add_(take(c2)).mul_(s).add_(take(c1)).mul_(s).add_(take(c0)))
    return out[0], out[1]


# ----------------------------------------------------------------------------- dual activations
def _check_activation(activation: str, slope: float, k: int) -> tuple[str, float, int]:
    if activation not in ACTIVATIONS:
        raise InvalidInputError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if activation == "relu":
        slope = 0.0
    elif activation == "abs":
        slope = -1.0
    slope = float(slope)
    if not math.isfinite(slope):
        raise InvalidInputError(f"slope must be finite, got {slope}")
    k = int(k)
    if activation == "maxout" and k < 1:
        raise InvalidInputError(f"maxout rank k must be >= 1, got {k}")
    return activation, slope, k


def _diag_factors(activation: str, slope: float, k: int) -> tuple[float, float]:
    """(E[phi(u)^2] / a, E[phi'(u)^2]) for u ~ N(0, a)."""
    if activation == "maxout":
        return (maxout_moments(k)[1] if k > 1 else 1.0), 1.0
    return 0.5 * (1.0 + slope * slope), 0.5 * (1.0 + slope * slope)


def _dual(rho: torch.Tensor, activation: str, slope: float, k: int, table=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized dual kernels (E[phi(u)phi(v)], E[phi'(u)phi'(v)]) for unit variances, correlation rho.

    Two-piece units (slope ``a``) in the form used throughout: with ``s = sin theta``,
    ``2 pi E[phi phi] = (1 - a)^2 (s + (pi - theta) rho) + 2 a pi rho`` and
    ``2 pi E[phi' phi'] = (1 - a)^2 (pi - theta) + 2 a pi`` (the module-docstring formula regrouped).
    """
    rho = rho.clamp(-1.0, 1.0)
    theta = torch.arccos(rho)
    if activation == "maxout":
        if k == 1:
            return rho.clone(), torch.ones_like(rho)
        if table is None:
            table = _cubic_pieces(_maxout_table(k), rho.dtype, rho.device)
        return _hermite_lookup(table, theta)
    a2 = (1.0 - slope) ** 2
    pm = math.pi - theta
    sin = (1.0 - rho * rho).clamp_(min=0.0).sqrt_()
    kap = (a2 * (sin + pm * rho) + 2.0 * slope * math.pi * rho) / _TWO_PI
    kdot = (a2 * pm + 2.0 * slope * math.pi) / _TWO_PI
    return kap, kdot


def dual_kernels(rho, activation: str = "relu", *, slope: float = 0.01, k: int = 2):
    """Dual activation and its derivative kernel at correlation ``rho`` (unit variances).

    Returns ``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` for ``(u, v)`` standard normal with
    correlation ``rho`` (clipped to [-1, 1]); for maxout, ``phi`` maps ``k`` iid pairs to their
    maxima and ``phi'`` is the indicator of the winning piece (see the module docstring).
    ``rho``: tensor or array-like; float64 unless a floating tensor is given.
    """
    activation, slope, k = _check_activation(activation, slope, k)
    r = rho if isinstance(rho, torch.Tensor) else torch.as_tensor(np.asarray(rho, dtype=np.float64))
    if not r.is_floating_point():
        r = r.to(torch.float64)
    return _dual(r, activation, slope, k)


# ----------------------------------------------------------------------------- recursion
class _Recursion:
    """Elementwise NNGP/NTK recursion given Sigma^1 entries and the per-point diagonals."""

    def __init__(self, depth, activation, slope, k, weight_var, bias_var, parameterization):
        self.depth, self.activation, self.slope, self.k = depth, activation, slope, k
        # per layer 1..depth+1 (index 0 is the first layer, index depth the read-out)
        self.sw2s = _per_layer("weight_var", weight_var, depth, positive=True)
        self.sb2s = _per_layer("bias_var", bias_var, depth, positive=False)
        self.param = parameterization
        self.phi2, self.dphi2 = _diag_factors(activation, slope, k)
        self._tables: dict = {}

    def table(self, like: torch.Tensor):
        if self.activation != "maxout" or self.k == 1:
            return None
        key = (like.dtype, like.device)
        if key not in self._tables:
            self._tables[key] = _cubic_pieces(_maxout_table(self.k), like.dtype, like.device)
        return self._tables[key]

    def first(self, dots: torch.Tensor, d0: int) -> tuple[torch.Tensor, torch.Tensor]:
        sigma = dots * (self.sw2s[0] / d0) + self.sb2s[0]
        theta = dots / d0 + 1.0 if self.param == "standard" else sigma.clone()
        return sigma, theta

    def diagonals(self, sq_norms: torch.Tensor, d0: int) -> list[torch.Tensor]:
        """Sigma^l(x, x) for l = 1..depth (the variances entering layer l's activation)."""
        q = [sq_norms * (self.sw2s[0] / d0) + self.sb2s[0]]
        for l in range(1, self.depth):
            q.append(self.sw2s[l] * self.phi2 * q[-1] + self.sb2s[l])
        return q

    def diag_ntk(self, sq_norms: torch.Tensor, d0: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact diagonals (theta = 0) of the NNGP and NTK."""
        sigma, theta = self.first(sq_norms, d0)
        for l in range(1, self.depth + 1):
            direct = self.phi2 * sigma
            sigma = self.sw2s[l] * direct + self.sb2s[l]
            extra = direct + 1.0 if self.param == "standard" else sigma
            theta = extra + (self.sw2s[l] * self.dphi2) * theta
        return sigma, theta

    def run(self, sigma: torch.Tensor, theta: torch.Tensor, q1: list[torch.Tensor], q2: list[torch.Tensor]):
        """Recursion on a block (overwrites its inputs): sigma, theta hold the layer-1 values; q1, q2
        are the per-layer variances of the row and column points, broadcasting against the block
        ((rows, 1) and (1, cols), or scalars)."""
        table = self.table(sigma)
        two_piece = self.activation != "maxout"
        a = self.slope
        a2 = (1.0 - a) ** 2
        # |rho| within 16 ulps of 1 is 1 up to rounding (identical or antipodal points): scaling by
        # 1 + 16 eps before the clip snaps it, since arccos would turn the rounding into an O(sqrt(eps))
        # angle; elsewhere the scaling is far below the rounding of rho itself
        snap = 1.0 + 16.0 * torch.finfo(sigma.dtype).eps
        one = torch.ones((), dtype=sigma.dtype, device=sigma.device)
        for l in range(self.depth):
            sw2, sb2 = self.sw2s[l + 1], self.sb2s[l + 1]  # the layer this step's activations feed
            s1, s2 = torch.sqrt(q1[l]), torch.sqrt(q2[l])  # per-point standard deviations (broadcasting)
            i1 = torch.where(s1 > 0, 1.0 / torch.where(s1 > 0, s1, torch.ones_like(s1)), torch.zeros_like(s1))
            i2 = torch.where(s2 > 0, 1.0 / torch.where(s2 > 0, s2, torch.ones_like(s2)), torch.zeros_like(s2))
            rho = sigma.mul_(i1).mul_(i2).mul_(snap).clamp_(-1.0, 1.0)  # zero-variance points: correlation 0
            if two_piece:
                pm = torch.arccos(rho).neg_().add_(math.pi)  # pi - theta
                kap = torch.addcmul(one, rho, rho, value=-1.0).clamp_(min=0.0).sqrt_().addcmul_(pm, rho)  # sin + (pi-t) rho
                if a != 0.0:
                    kap.mul_(a2).add_(rho, alpha=2.0 * a * math.pi)
                    pm.mul_(a2).add_(2.0 * a * math.pi)
                direct = kap.mul_(s1).mul_(s2).mul_(1.0 / _TWO_PI)  # E[phi(u) phi(v)]
                kdot = pm.mul_(sw2 / _TWO_PI)  # Sdot
            else:
                kap, kdot = _dual(rho, self.activation, self.slope, self.k, table)
                direct = kap.mul_(s1).mul_(s2)
                kdot = kdot.mul_(sw2)
            if self.param == "standard":
                theta = theta.mul_(kdot).add_(direct).add_(1.0)
                sigma = direct.mul_(sw2).add_(sb2)
            else:
                sigma = direct.mul_(sw2).add_(sb2)
                theta = theta.mul_(kdot).add_(sigma)
        return sigma, theta


def _per_layer(name: str, value, depth: int, positive: bool) -> list[float]:
    """A variance for each of the ``depth + 1`` layers: one number for all, or one per layer."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        values = [float(value)] * (depth + 1)
    else:
        try:
            values = [float(v) for v in value]
        except (TypeError, ValueError):
            raise InvalidInputError(f"{name} must be a number or a sequence of {depth + 1} numbers (one per layer: "
                                    f"{depth} hidden and the read-out), got {value!r}") from None
        if len(values) != depth + 1:
            raise InvalidInputError(f"{name} has {len(values)} entries; a network of depth {depth} has {depth + 1} "
                                    f"layers ({depth} hidden and the read-out), one variance each")
    for i, v in enumerate(values):
        ok = (v > 0 if positive else v >= 0) and math.isfinite(v)
        if not ok:
            raise InvalidInputError(f"{name} of layer {i + 1} must be {'positive' if positive else '>= 0'} and "
                                    f"finite, got {v}")
    return values


def _validate_points(x, name: str, dtype) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except Exception as e:  # noqa: BLE001
            raise InvalidInputError(f"{name} must be a tensor or array of shape (n, d), got {type(x).__name__}") from e
    if x.dim() != 2 or x.shape[1] == 0:
        raise InvalidInputError(f"{name} must have shape (n, d) with d >= 1, got {tuple(x.shape)}")
    if not (x.is_floating_point() or not x.is_complex()):
        raise InvalidInputError(f"{name} must be real")
    x = x.to(dtype)
    if not torch.isfinite(x).all():
        raise InvalidInputError(f"{name} contains non-finite values")
    return x


def analytic_ntk(x1, x2=None, *, depth: int, activation: str = "relu", slope: float = 0.01, k: int = 2,
                 weight_var: float = 2.0, bias_var: float = 0.0, parameterization: str = "ntk",
                 dtype: torch.dtype = torch.float64, block_size: int | None = None):
    r"""Infinite-width NNGP and NTK Gram matrices ``(nngp, ntk)`` of a deep fully connected network.

    ``x1`` (n1, d), ``x2`` (n2, d) or None (then ``x2 = x1`` and only the upper triangle is
    computed, then mirrored). ``depth``: number of hidden layers ``L >= 0`` (``0``: the linear
    model). ``activation``: ``"relu"``, ``"leaky_relu"`` (``phi(z) = max(z, slope z)``; any real
    slope), ``"abs"``, ``"maxout"`` (rank ``k``). ``weight_var = sigma_w^2`` (2.0: He),
    ``bias_var = sigma_b^2``: one number for every layer, or a sequence of ``depth + 1`` numbers,
    one per layer (first hidden layer first, the read-out last): layer ``l`` then uses its own
    ``sigma_{w,l}^2`` and ``sigma_{b,l}^2`` in the recursions of the module docstring (e.g.
    ``weight_var=[1.0, 2.0, 2.0, 1.0]`` for inputs and read-out at variance 1 around He hidden
    layers). ``parameterization``: ``"ntk"`` (Jacot et al.) or ``"standard"``
    (the limit of the standard-parameterization kernel under width-scaled learning rates; the NNGP
    is the same). The recursions are stated in the module docstring.

    Returns two (n1, n2) tensors on ``x1``'s device in ``dtype`` (float64). The work is blocked so
    that memory is the two outputs plus O(``block_size``) temporaries; each block runs all layers
    while in cache. Correlations are clipped to [-1, 1]; diagonal entries of a symmetric Gram are
    set from the exact ``theta = 0`` recursion, and correlations are scaled by ``1 + 16 eps`` before
    the clip, which snaps those within 16 ulps of +-1 (identical or antipodal points) to +-1. A zero-variance point (e.g. ``x = 0`` with
    ``bias_var = 0``) is given correlation 0 with every other point.
    """
    depth = int(depth)
    if depth < 0:
        raise InvalidInputError(f"depth must be >= 0, got {depth}")
    activation, slope, k = _check_activation(activation, slope, k)
    if parameterization not in PARAMETERIZATIONS:
        raise InvalidInputError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
    _per_layer("weight_var", weight_var, depth, positive=True)
    _per_layer("bias_var", bias_var, depth, positive=False)
    if dtype not in (torch.float32, torch.float64):
        raise InvalidInputError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    x1 = _validate_points(x1, "x1", dtype)
    sym = x2 is None
    x2 = x1 if sym else _validate_points(x2, "x2", dtype).to(x1.device)
    if x2.shape[1] != x1.shape[1]:
        raise InvalidInputError(f"x1 and x2 need the same dimension, got {x1.shape[1]} and {x2.shape[1]}")
    n1, n2, d0 = x1.shape[0], x2.shape[0], x1.shape[1]
    rec = _Recursion(depth, activation, slope, k, weight_var, bias_var, parameterization)
    nngp = torch.empty(n1, n2, dtype=dtype, device=x1.device)
    ntk = torch.empty(n1, n2, dtype=dtype, device=x1.device)
    if n1 == 0 or n2 == 0:
        return nngp, ntk
    sq1, sq2 = (x1 * x1).sum(1), (x2 * x2).sum(1)
    q1, q2 = rec.diagonals(sq1, d0), rec.diagonals(sq2, d0)
    if block_size is None:
        # about 2^16 entries per block keeps a layer's temporaries in cache on a CPU
        block_size = 256 if x1.device.type == "cpu" else 4096
    b = max(1, int(block_size))
    from relulab.core.threads import threads_for

    with torch.no_grad(), threads_for(b * b):
        for i0 in range(0, n1, b):
            i1 = min(n1, i0 + b)
            for j0 in range(i0 if sym else 0, n2, b):
                j1 = min(n2, j0 + b)
                dots = x1[i0:i1] @ x2[j0:j1].T
                s, t = rec.first(dots, d0)
                s, t = rec.run(s, t, [q[i0:i1, None] for q in q1], [q[None, j0:j1] for q in q2])
                nngp[i0:i1, j0:j1] = s
                ntk[i0:i1, j0:j1] = t
                if sym and j0 != i0:
                    nngp[j0:j1, i0:i1] = s.T
                    ntk[j0:j1, i0:i1] = t.T
        if sym:
            ds, dt = rec.diag_ntk(sq1, d0)
            nngp.diagonal().copy_(ds)
            ntk.diagonal().copy_(dt)
    return nngp, ntk


def kernel_of_correlation(t, *, d0: int, depth: int, activation: str = "relu", slope: float = 0.01, k: int = 2,
                          weight_var: float = 2.0, bias_var: float = 0.0, parameterization: str = "ntk"):
    """``(nngp(t), ntk(t))`` for two unit-norm inputs in R^{d0} with inner product ``t`` (any shape).

    The same recursion as :func:`analytic_ntk` (same keyword arguments) on the dot-product kernel of
    the unit sphere: ``K_ik = kappa(<x_i, x_k>)`` for unit-norm data. ``t = 1`` gives the diagonal.
    """
    activation, slope, k = _check_activation(activation, slope, k)
    if parameterization not in PARAMETERIZATIONS:
        raise InvalidInputError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
    t = t.to(torch.float64) if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t, dtype=np.float64))
    rec = _Recursion(int(depth), activation, slope, k, weight_var, bias_var, parameterization)
    q = [qq.expand_as(t) for qq in rec.diagonals(torch.ones((), dtype=t.dtype, device=t.device), d0)]
    s, th = rec.first(t.clone(), d0)
    with torch.no_grad():
        return rec.run(s, th, q, q)
