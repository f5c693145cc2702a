"""Expected complexity of random maxout networks (Tseran, Montufar, "On the Expected Complexity of
Maxout Networks", NeurIPS 2021), beside exact counts of sampled networks.

Bounds (the paper's upper bounds on expected region and decision-boundary counts; leading terms for
``n_0 <= N``): a network with ``N`` rank-``K`` maxout units in all, input dimension ``n_0``, whose
biases have conditional densities bounded by ``C_bias`` and whose pre-activation pieces have gradient
moments bounded by ``C_grad``, satisfies over a cube ``C``

* ``E[# activation regions in C] <= (T K N)^{n_0} C(K n_0, 2 n_0) vol(C) / n_0!`` with ``T = 2^5 C_grad C_bias``;
* ``E[# pieces of the decision boundary in C] <=
  T'^{n_0} (2 K N)^{n_0 - 1} C(K (n_0 - 1), 2 (n_0 - 1)) vol(C) / (n_0 - 1)!`` with ``T' = 2^4 C_grad C_bias``.

Status of these expressions: the theorem statements themselves could not be consulted while this was
written; the expressions agree with the formulas the authors publish beside the paper. They are
upper bounds, and :func:`maxout_complexity` prints them next to exact counts of sampled networks
(regions and decision-boundary pieces in the cube), which the tests check lie below them.

For Gaussian biases ``N(0, sigma_b^2)``, ``C_bias = 1 / (sigma_b sqrt(2 pi))``. ``C_grad`` is estimated
from the sampled networks (the largest mean gradient norm of any piece over sample points; marked as
an estimate).

Exact expectation along a line (derived here; one layer of ``N`` rank-``K`` units with i.i.d.
``N(0, sigma_w^2)`` weights and ``N(0, sigma_b^2)`` biases). On ``x(t) = a + t u`` each piece is a line
``v(t) = alpha + beta t`` with ``(v(t), beta)`` jointly Gaussian: ``s_v^2 = sigma_w^2 |x(t)|^2 + sigma_b^2``,
``s_b^2 = sigma_w^2 |u|^2``, ``cov = sigma_w^2 x(t) . u``; pieces are independent. A breakpoint at ``t`` is a
crossing of the top two pieces; by the Kac-Rice formula its density is
``C(K, 2) E[|beta_1 - beta_2| delta(v_1 - v_2) 1{v_k <= v_1 for k > 2}]``. Given ``v_1 = v_2 = v`` the slope
difference is ``N(0, 2 (s_b^2 - cov^2 / s_v^2))`` whatever ``v``, so the density is
``C(K, 2) (2 / sqrt(pi)) sqrt(s_b^2 s_v^2 - cov^2) / s_v^2 * I_K``, ``I_K = int phi(z)^2 Phi(z)^{K-2} dz``
(for ``K = 2`` this is the Cauchy density of the root of a Gaussian line). Units are independent and
a.s. never break at the same ``t``, so ``E[breakpoints on [0, 1]] = N int_0^1 density dt`` (quadrature).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from relulab.core.errors import InvalidInputError
from relulab.results import Result


def _check_k(k):
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 2:
        raise InvalidInputError(f"k (maxout rank) must be an integer >= 2, got {k!r}")
    return int(k)


def expected_breakpoints(a, b, units: int, k: int, sigma_w: float = 1.0, sigma_b: float = 1.0) -> float:
    """Exact expected number of breakpoints on the segment ``[a, b]`` of one layer of ``units`` rank-``k``
    maxout units with i.i.d. ``N(0, sigma_w^2)`` weights and ``N(0, sigma_b^2)`` biases (module docstring)."""
    from scipy import integrate, stats

    k = _check_k(k)
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise InvalidInputError(f"a and b must have the same length, got {a.shape} and {b.shape}")
    if not (sigma_w > 0 and sigma_b >= 0 and units >= 1 and math.isfinite(sigma_w) and math.isfinite(sigma_b)):
        raise InvalidInputError("need finite sigma_w > 0, sigma_b >= 0 and units >= 1")
    if sigma_b == 0:
        u0 = b - a
        t_near = float(np.clip(-(a @ u0) / max(float(u0 @ u0), 1e-300), 0.0, 1.0))
        if not np.any(a + t_near * u0):
            raise InvalidInputError("with sigma_b = 0 every piece vanishes at the origin, which the segment "
                                    "passes through: all pieces tie there; give a segment that avoids it")
    u = b - a
    IK = integrate.quad(lambda z: stats.norm.pdf(z) ** 2 * stats.norm.cdf(z) ** (k - 2), -np.inf, np.inf,
                        epsabs=1e-13, epsrel=1e-12)[0]
    sb2 = sigma_w ** 2 * float(u @ u)

    def dens(t):
        x = a + t * u
        sv2 = sigma_w ** 2 * float(x @ x) + sigma_b ** 2
        cov = sigma_w ** 2 * float(x @ u)
        return math.sqrt(max(sb2 * sv2 - cov ** 2, 0.0)) / sv2

    val = integrate.quad(dens, 0.0, 1.0, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    return units * math.comb(k, 2) * (2.0 / math.sqrt(math.pi)) * IK * val


def maxout_bounds(widths, k: int, n_in: int, c_bias: float, c_grad: float, side: float) -> dict:
    """Tseran-Montufar upper bounds (module docstring) on a cube of side ``side`` in ``R^{n_in}``."""
    k = _check_k(k)
    N = int(sum(widths))
    vol = float(side) ** n_in
    T = 2 ** 5 * c_bias * c_grad
    regions = (T * k * N) ** n_in * math.comb(k * n_in, 2 * n_in) * vol / math.factorial(n_in)
    T2 = 2 ** 4 * c_bias * c_grad
    m = n_in - 1
    boundary = T2 ** n_in * (2 * k * N) ** m * math.comb(k * m, 2 * m) * vol / math.factorial(m)
    return {"regions": regions, "decision_boundary": boundary, "N": N, "T": T}


def _mean_ci(v) -> tuple[float, float, float]:
    from scipy import stats

    v = np.asarray(v, dtype=np.float64)
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - h, m + h


@dataclass(repr=False)
class MaxoutComplexity(Result):
    """Measured complexity of random maxout networks beside the expectations and bounds.

    ``line_mean``/``line_ci``: breakpoints along the segment (exact per network, ``regions.on_line``),
    mean and 95% t-interval over seeds; ``line_expected``: the exact expectation (one layer only, else
    None). ``box_mean``/``box_ci``: activation regions in the cube (exact per network, full-space engine
    on the box; only for ``n_in <= 2``); ``boundary_mean``/``boundary_ci``: pieces of the decision
    boundary ``{f = 0}`` in the cube (pairs region / boundary piece, from the same engine);
    ``bounds``: the Tseran-Montufar bounds with ``c_bias`` (exact) and ``c_grad`` (estimated from the
    samples: the ``n_0``-th moment of the piece gradients over the seeds, largest over probe points
    and pieces; an estimate, not a bound).
    """

    widths: tuple
    k: int
    n_in: int
    seeds: int
    sigma_w: float
    sigma_b: float
    segment: tuple
    line_counts: list
    line_mean: float
    line_ci: tuple
    line_expected: float | None
    box_side: float
    box_counts: list = field(default_factory=list)
    box_mean: float | None = None
    box_ci: tuple | None = None
    boundary_counts: list = field(default_factory=list)
    boundary_mean: float | None = None
    boundary_ci: tuple | None = None
    c_bias: float = 0.0
    c_grad: float = 0.0
    bounds: dict = field(default_factory=dict)
    seconds: float = 0.0

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3))
        ax.hist(self.line_counts, bins=15, alpha=0.7)
        if self.line_expected is not None:
            ax.axvline(self.line_expected, color="k", ls="--", label="exact expectation")
            ax.legend()
        ax.set_xlabel("breakpoints on the segment")
        return ax


def random_maxout_net(widths, k: int, n_in: int, sigma_w: float, sigma_b: float, seed: int, out: int = 1):
    """A PLNet of maxout layers (widths), then a linear output, with i.i.d. Gaussian parameters;
    ``sigma_w`` is scaled by ``1/sqrt(fan_in)``."""
    import torch
    from torch import nn

    from relulab import PLNet
    from relulab.nn import Maxout

    g = torch.Generator().manual_seed(int(seed))
    mods, fan = [], n_in
    for w in widths:
        m = Maxout(fan, int(w), k)
        with torch.no_grad():
            m.linear.weight.copy_(torch.randn(m.linear.weight.shape, generator=g) * sigma_w / math.sqrt(fan))
            m.linear.bias.copy_(torch.randn(m.linear.bias.shape, generator=g) * sigma_b)
        mods.append(m)
        fan = int(w)
    lin = nn.Linear(fan, out)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) / math.sqrt(fan))
        lin.bias.copy_(torch.randn(lin.bias.shape, generator=g) * sigma_b)
    mods.append(lin)
    return PLNet.from_torch(nn.Sequential(*mods).double(), (n_in,))


def maxout_complexity(widths, k: int, *, n_in: int = 2, seeds: int = 20, sigma_w: float = 1.0,
                      sigma_b: float = 1.0, segment=None, box_side: float = 2.0, box: bool = True,
                      seed0: int = 0) -> MaxoutComplexity:
    """Exact counts over ``seeds`` random maxout networks (widths, rank k, Gaussian parameters with
    weight std ``sigma_w / sqrt(fan_in)``) beside the exact line expectation and the bounds.

    ``segment``: (a, b) in R^{n_in} (default from ``-1`` to ``+1`` along the diagonal);
    ``box``: also count regions in the cube ``[-box_side/2, box_side/2]^{n_in}`` (``n_in <= 2``).
    """
    import torch

    from relulab import regions

    t0 = time.perf_counter()
    k = _check_k(k)
    widths = tuple(int(w) for w in widths)
    if not widths or min(widths) < 1:
        raise InvalidInputError(f"widths must be positive integers, got {widths!r}")
    if seeds < 1:
        raise InvalidInputError(f"seeds must be >= 1, got {seeds}")
    if not (math.isfinite(sigma_w) and sigma_w > 0 and math.isfinite(sigma_b) and sigma_b > 0):
        raise InvalidInputError(f"sigma_w and sigma_b must be positive and finite (the bias density enters the "
                                f"bounds), got {sigma_w}, {sigma_b}")
    if segment is None:
        a, b = -np.ones(n_in) / math.sqrt(n_in), np.ones(n_in) / math.sqrt(n_in)
    else:
        a, b = (np.asarray(v, dtype=np.float64).reshape(-1) for v in segment)
        if a.shape != (n_in,) or b.shape != (n_in,):
            raise InvalidInputError(f"segment ends must have {n_in} coordinates")
    full = regions.full_space
    line, boxc, dbc, grads = [], [], [], []
    rng = np.random.default_rng(seed0)
    probe = torch.tensor(rng.uniform(-box_side / 2, box_side / 2, (256, n_in)))
    for s in range(seeds):
        net = random_maxout_net(widths, k, n_in, sigma_w, sigma_b, seed0 + s)
        res = regions.on_line(net, torch.tensor(a), torch.tensor(b))
        # breakpoints of the activation pattern (all units); the count is of intervals
        line.append(int(res.count) - 1)
        if box and n_in <= 2:
            half = box_side / 2
            fr = full(net, box=(-half, half))
            boxc.append(int(fr.count))
            if fr.decision_boundary_pieces is not None:
                dbc.append(int(fr.decision_boundary_pieces))
        tr = net.trace(probe, directions=torch.eye(n_in, dtype=torch.float64))
        # |grad| of every pre-activation piece of every maxout unit at every probe point
        grads.append(torch.cat([pt.norm(dim=1).reshape(pt.shape[0], -1) for pt in tr.piece_tangents
                                if pt is not None], 1).cpu().numpy())
    lm, lo, hi = _mean_ci(line)
    expected = expected_breakpoints(a, b, widths[0], k, sigma_w / math.sqrt(n_in), sigma_b) if len(widths) == 1 else None
    c_bias = 1.0 / (sigma_b * math.sqrt(2 * math.pi)) if sigma_b > 0 else float("inf")
    # C_grad bounds (E ||grad zeta(x)||^t)^(1/t) for every piece, point and t <= n_0; the moments grow
    # with t, so the t = n_0 moment over the seeds, maximized over points and pieces, estimates it
    G = np.stack(grads)  # (seeds, points, pieces)
    c_grad = float((G ** n_in).mean(0).max() ** (1.0 / n_in)) if G.size else 0.0
    bm = bci = dbm = dbci = None
    if boxc:
        bm, blo, bhi = _mean_ci(boxc)
        bci = (blo, bhi)
    if dbc and len(dbc) == len(boxc):
        dbm, dlo, dhi = _mean_ci(dbc)
        dbci = (dlo, dhi)
    else:
        dbc = []
    return MaxoutComplexity(widths, k, n_in, seeds, sigma_w, sigma_b, (a.tolist(), b.tolist()), line, lm, (lo, hi),
                            expected, box_side, boxc, bm, bci, dbc, dbm, dbci, c_bias, c_grad,
                            maxout_bounds(widths, k, n_in, c_bias, c_grad, box_side), time.perf_counter() - t0)


__all__ = ["expected_breakpoints", "maxout_bounds", "maxout_complexity", "MaxoutComplexity", "random_maxout_net"]
