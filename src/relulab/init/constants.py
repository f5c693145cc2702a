"""Constants of maxout initialization: moments of Gaussian and chi-squared order statistics.

Notation of Tseran & Montufar, "Expected Gradients of Maxout Networks and Consequences to Parameter
Initialization" (ICML 2023): for a sample of size ``K``, ``Xi(D, K)`` is the largest and
``xi(D, K)`` the smallest order statistic of ``K`` iid draws from ``D``. The paper's constants are

* ``M = E[Xi(N(0,1), K)^2]``: second moment of the largest of ``K`` standard normals. Weights drawn
  ``N(0, c / fan_in)`` with ``c = 1 / M`` keep the expected squared activation length constant
  (the maxout analogue of He initialization, already used in Tseran & Montufar, "On the Expected
  Complexity of Maxout Networks", NeurIPS 2021) and, by the ICML 2023 analysis, keep the expected
  squared gradient ``E||J u||^2`` constant across depth in wide networks.
* ``S = E[xi(chi2_1, K)]`` and ``L = E[Xi(chi2_1, K)]``: expected smallest and largest of ``K``
  chi-squared variables with one degree of freedom. They give the lower and upper bounds
  ``(C n_L / n_0) (c S)^(L-1) <= E||J_N(x) u||^2 <= (C n_L / n_0) (c L)^(L-1)`` that follow from the
  paper's Theorem 1 (stochastic-order bounds on the input-output Jacobian).
* ``S2 = E[xi(chi2_1, K)^2]``, ``L2 = E[Xi(chi2_1, K)^2]``: second moments, which enter the bounds on
  ``E||J u||^4``.
* Maxout followed by max-pooling over ``m`` outputs is a maximum over ``K m`` pieces; the paper's
  convolutional experiments initialize the layer in front of a pooling layer with ``c = 1 / M_{K m}``
  (``K = 5``, 2x2 pooling: ``c = 1 / M_20 = 0.26573``).

Every constant is a one-dimensional integral against an order-statistic density, e.g.
``E[g(Xi(N(0,1), K))] = int g(x) K phi(x) Phi(x)^(K-1) dx``; with ``T = |G|`` (density ``2 phi``, cdf
``erf(t / sqrt 2)``) the chi-squared order statistics are ``Xi(chi2_1, K) = max_k T_k^2`` and
``xi(chi2_1, K) = min_k T_k^2``. The integrals are evaluated by adaptive Gauss-Kronrod quadrature
(``scipy.integrate.quad``, relative tolerance 1e-13) on sub-intervals placed around the bulk of the
density; each value carries the summed QUADPACK error estimate.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import integrate, special

from relulab.core.errors import InvalidInputError
from relulab.results import Result

__all__ = [
    "MaxoutConstants",
    "ConstantsTable",
    "maxout_constants",
    "constants_table",
    "recommended_c",
    "gaussian_max_moment",
    "chi2_order_moment",
    "activation_second_moment",
]

_XMAX = 40.0  # phi(40) ~ 1e-348 underflows: the densities vanish beyond |x| = 40 in double precision
_EPSREL = 1e-13
_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------------------
# validation

def _rank(k, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) and not (
            isinstance(k, float) and k.is_integer()):
        raise InvalidInputError(f"{name} must be a positive integer (the maxout rank), got {k!r}")
    k = int(k)
    if k < 1:
        raise InvalidInputError(f"{name} must be a positive integer (the maxout rank), got {k}")
    return k


def _pool_size(pool) -> int | None:
    """A pooling window given as an int (number of pooled outputs) or a kernel-size tuple."""
    if pool is None:
        return None
    if isinstance(pool, (tuple, list)):
        sizes = [_rank(p, "pool") for p in pool]
        return int(math.prod(sizes)) if sizes else None
    return _rank(pool, "pool")


def _power(p) -> float:
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise InvalidInputError(f"p must be a non-negative number (the moment order), got {p!r}") from None
    if not math.isfinite(p) or p < 0:
        raise InvalidInputError(f"p must be a non-negative number (the moment order), got {p}")
    return p


# ---------------------------------------------------------------------------------------------
# quadrature

def _quad(f: Callable[[float], float], edges) -> tuple[float, float]:
    """``int f`` over consecutive ``edges``: value and summed error estimate.

    A first coarse pass fixes the magnitude, so that the absolute tolerance of the fine pass is
    relative to the whole integral (sub-intervals in the far tails contribute ~0 and must not be
    asked for relative accuracy).
    """
    edges = np.unique(np.asarray(edges, dtype=float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        rough = sum(abs(integrate.quad(f, a, b, epsrel=1e-6, epsabs=0.0, limit=100)[0])
                    for a, b in zip(edges[:-1], edges[1:]))
        tol = max(rough, 1e-300) * 1e-15
        total, err = 0.0, 0.0
        for a, b in zip(edges[:-1], edges[1:]):
            v, e = integrate.quad(f, a, b, epsrel=_EPSREL, epsabs=tol, limit=400)
            total += v
            err += e
    return total, err + 4.0 * np.finfo(float).eps * abs(total) * len(edges)


def _around(center: float, width: float, lo: float, hi: float) -> list[float]:
    pts = [center + width * s for s in (-12, -6, -3, -1.5, 0, 1.5, 3, 6, 12)]
    return [lo] + [p for p in pts if lo < p < hi] + [hi]


def _log_phi(x: float) -> float:
    return -0.5 * x * x - _LOG_SQRT_2PI


@functools.lru_cache(maxsize=None)
def _gauss_max_edges(n: int) -> tuple[float, ...]:
    center = 0.0 if n == 1 else float(special.ndtri(1.0 - 1.0 / (n + 1.0)))
    width = 1.0 if n < 3 else 1.0 / math.sqrt(2.0 * math.log(n))
    return tuple(_around(center, width, -_XMAX, _XMAX))


def _gauss_max_expect(g: Callable[[float], float], n: int) -> tuple[float, float]:
    """``E[g(max of n iid N(0,1))] = int g(x) n phi(x) Phi(x)^(n-1) dx``."""
    logn = math.log(n)

    def f(x):
        return g(x) * math.exp(logn + _log_phi(x) + (n - 1) * float(special.log_ndtr(x)))

    return _quad(f, _gauss_max_edges(n))


@functools.lru_cache(maxsize=None)
def _abs_edges(n: int, which: str) -> tuple[float, ...]:
    if which == "max":  # median of max |G|: erf(t / sqrt 2)^n = 1/2
        center = _SQRT2 * float(special.erfinv(2.0 ** (-1.0 / n)))
        width = max(0.25, 1.0 / math.sqrt(2.0 * math.log(n + 1.0)))
        return tuple(_around(center, width, 0.0, _XMAX))
    # median of min |G|: erfc(t / sqrt 2)^n = 1/2; its spread is of the same order as the median
    center = _SQRT2 * float(special.erfcinv(2.0 ** (-1.0 / n)))
    pts = [center * s for s in (0.25, 0.5, 1, 2, 4, 8, 16)] + [1.0, 3.0, 6.0, 10.0]
    return tuple([0.0] + sorted(p for p in pts if 0.0 < p < _XMAX) + [_XMAX])


def _abs_order_expect(g: Callable[[float], float], n: int, which: str) -> tuple[float, float]:
    """``E[g(T)]`` for ``T`` the largest / smallest of ``n`` iid ``|N(0,1)|``.

    ``|G|`` has density ``2 phi(t)`` and cdf ``erf(t / sqrt 2)`` on ``t > 0``, so the largest has density
    ``2 n phi(t) erf(t/sqrt 2)^(n-1)`` and the smallest ``2 n phi(t) erfc(t/sqrt 2)^(n-1)``.
    """
    log2n = math.log(2.0 * n)

    if which == "max":
        def logF(t):
            return math.log(special.erf(t / _SQRT2)) if t < 1.0 else math.log1p(-special.erfc(t / _SQRT2))
    else:
        def logF(t):  # log erfc(t / sqrt 2) = log 2 + log Phi(-t), stable in the far tail
            return math.log(2.0) + float(special.log_ndtr(-t))

    def f(t):
        if t <= 0.0:
            return 0.0 if (which == "max" and n > 1) else g(0.0) * math.exp(log2n + _log_phi(0.0))
        return g(t) * math.exp(log2n + _log_phi(t) + (n - 1) * logF(t))

    return _quad(f, _abs_edges(n, which))


# ---------------------------------------------------------------------------------------------
# public scalar functions

@functools.lru_cache(maxsize=None)
def _gaussian_max_moment(k: int, p: float, which: str) -> tuple[float, float]:
    if p == 0:
        return 1.0, 0.0
    sign = 1.0 if which == "max" else -1.0  # min of G_k = -(max of -G_k)
    ip = int(p)
    return _gauss_max_expect(lambda x: (sign * x) ** ip, k)


def gaussian_max_moment(k: int, p: float = 2, which: str = "max", *, with_error: bool = False):
    """``E[Xi(N(0,1), k)^p]`` (``which="max"``) or ``E[xi(N(0,1), k)^p]`` (``which="min"``).

    ``E[g(Xi)] = int g(x) k phi(x) Phi(x)^(k-1) dx``. Integer ``p`` only (signed moments); with
    ``with_error=True`` returns ``(value, quadrature_error_estimate)``.
    """
    k = _rank(k)
    p = _power(p)
    if not p.is_integer():
        raise InvalidInputError(f"p must be an integer for Gaussian order statistics, got {p}")
    if which not in ("max", "min"):
        raise InvalidInputError(f"which must be 'max' or 'min', got {which!r}")
    v, e = _gaussian_max_moment(k, p, which)
    return (v, e) if with_error else v


@functools.lru_cache(maxsize=None)
def _chi2_order_moment(k: int, p: float, which: str) -> tuple[float, float]:
    if p == 0:
        return 1.0, 0.0
    if k == 1:  # E[(chi2_1)^p] = 2^p Gamma(p + 1/2) / Gamma(1/2)
        return math.exp(p * math.log(2.0) + special.gammaln(p + 0.5) - special.gammaln(0.5)), 0.0
    return _abs_order_expect(lambda t: t ** (2.0 * p), k, which)


def chi2_order_moment(k: int, p: float = 1, which: str = "max", *, with_error: bool = False):
    """``E[Xi(chi2_1, k)^p]`` (largest, ``which="max"``) or ``E[xi(chi2_1, k)^p]`` (smallest).

    With ``T = |G|``, ``Xi(chi2_1, k) = (max_k T_k)^2``; any real ``p >= 0``.
    """
    k = _rank(k)
    p = _power(p)
    if which not in ("max", "min"):
        raise InvalidInputError(f"which must be 'max' or 'min', got {which!r}")
    v, e = _chi2_order_moment(k, p, which)
    return (v, e) if with_error else v


_ACTIVATIONS = ("maxout", "linear", "relu", "leaky_relu", "abs")


@functools.lru_cache(maxsize=None)
def _activation_second_moment(activation: str, k: int, m: int, slope: float) -> tuple[float, float]:
    if activation in ("maxout", "linear"):
        return _gaussian_max_moment(k * m, 2.0, "max")
    if activation == "abs":  # max of m |G|, squared: the largest of m chi2_1
        return _chi2_order_moment(m, 1.0, "max")
    if activation == "relu":
        slope = 0.0
    # max over a window of a monotone activation is the activation of the max: phi(Xi(N(0,1), m))
    return _gauss_max_expect(lambda x: x * x if x >= 0 else slope * slope * x * x, m)


def activation_second_moment(activation: str = "maxout", k: int = 1, pool=None, negative_slope: float = 0.01,
                             *, with_error: bool = False):
    """``E[a(z)^2]`` for one unit whose pre-activations ``z`` are iid ``N(0, 1)``, optionally max-pooled.

    ``maxout`` of rank ``k``: ``M_k = E[Xi(N(0,1), k)^2]``; ``linear`` is rank 1; ``relu``: ``1/2``;
    ``leaky_relu``: ``(1 + a^2)/2``; ``abs``: ``1``. With a max-pool over ``pool`` outputs the unit is
    the maximum of the pooled activations, e.g. ``M_{k * pool}`` for maxout. Weights ``N(0, c/fan_in)``
    with ``c = 1 / E[a(z)^2]`` keep the expected squared activation length (NeurIPS 2021, ICML 2023;
    for ReLU this is He et al.'s ``c = 2``).
    """
    if activation not in _ACTIVATIONS:
        raise InvalidInputError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}")
    k = _rank(k)
    if activation != "maxout" and k != 1:
        raise InvalidInputError(f"k={k} is only meaningful for activation='maxout'")
    m = _pool_size(pool) or 1
    slope = float(negative_slope)
    if activation == "leaky_relu" and not (math.isfinite(slope) and abs(slope) < 1.0):
        raise InvalidInputError(f"negative_slope must lie in (-1, 1), got {negative_slope}")
    v, e = _activation_second_moment(activation, k, m, slope if activation == "leaky_relu" else 0.0)
    return (v, e) if with_error else v


def recommended_c(k: int | None = None, pool=None, activation: str = "maxout",
                  negative_slope: float = 0.01) -> float:
    """The weight-variance scale ``c`` of the paper's initialization ``W_ij ~ N(0, c / fan_in)``.

    ``c = 1 / M_K`` for maxout of rank ``K`` (ICML 2023, Section on parameter initialization), and
    ``c = 1 / M_{K m}`` when the layer is followed by max-pooling over ``m`` outputs; other activations
    as in :func:`activation_second_moment` (``k`` is then not used).
    """
    if k is None:
        if activation == "maxout":
            raise InvalidInputError("recommended_c needs the maxout rank k")
        k = 1
    return 1.0 / activation_second_moment(activation, k, pool, negative_slope)


# ---------------------------------------------------------------------------------------------
# the constants as a result

@dataclass
class MaxoutConstants(Result):
    """The constants of a rank-``k`` maxout layer (optionally followed by a max-pool of ``pool``).

    ``n = k * pool`` is the number of Gaussian pieces the unit maximizes over. Fields:
    ``mean = E[Xi(N(0,1), n)]``, ``M = E[Xi(N(0,1), n)^2]``, ``S = E[xi(chi2_1, n)]``,
    ``L = E[Xi(chi2_1, n)]``, ``S2 = E[xi(chi2_1, n)^2]``, ``L2 = E[Xi(chi2_1, n)^2]``,
    ``c = 1 / M`` (recommended ``Var(W_ij) = c / fan_in``), ``c_lower = 1 / S`` and ``c_upper = 1 / L``
    (the scales at which the lower, resp. upper, bound on ``E||J u||^2`` is constant in depth), and
    ``errors``: the quadrature error estimate of each integral.
    """

    k: int
    pool: int | None
    n: int
    mean: float
    M: float
    S: float
    L: float
    S2: float
    L2: float
    c: float
    c_lower: float
    c_upper: float
    errors: dict = field(default_factory=dict)

    def row(self) -> str:
        name = f"{self.k}" if self.pool is None else f"{self.k}x{self.pool}"
        return (f"{name:>6} {self.mean:14.11f} {self.M:14.11f} {self.S:14.11f} {self.L:14.11f} "
                f"{self.S2:14.11f} {self.L2:14.11f} {self.c:14.11f}")


def maxout_constants(k: int, pool=None) -> MaxoutConstants:
    """All constants of Tseran & Montufar (ICML 2023) for maxout rank ``k`` (see module docstring).

    ``pool``: the size of a max-pooling window that follows the maxout layer (an int, or a kernel-size
    tuple whose product is taken); the constants are then those of ``n = k * pool`` pieces.
    """
    k = _rank(k)
    m = _pool_size(pool)
    n = k * (m or 1)
    mean, e_mean = _gaussian_max_moment(n, 1.0, "max")
    M, e_M = _gaussian_max_moment(n, 2.0, "max")
    S, e_S = _chi2_order_moment(n, 1.0, "min")
    L, e_L = _chi2_order_moment(n, 1.0, "max")
    S2, e_S2 = _chi2_order_moment(n, 2.0, "min")
    L2, e_L2 = _chi2_order_moment(n, 2.0, "max")
    errors = {"mean": e_mean, "M": e_M, "S": e_S, "L": e_L, "S2": e_S2, "L2": e_L2,
              "c": e_M / (M * M), "c_lower": e_S / (S * S), "c_upper": e_L / (L * L)}
    return MaxoutConstants(k=k, pool=m, n=n, mean=mean, M=M, S=S, L=L, S2=S2, L2=L2, c=1.0 / M,
                           c_lower=1.0 / S, c_upper=1.0 / L, errors=errors)


@dataclass
class ConstantsTable(Result):
    """Constants for several ranks (rows are :class:`MaxoutConstants`)."""

    rows: list

    def to_text(self) -> str:
        head = (f"{'K':>6} {'E[Xi]':>14} {'M=E[Xi^2]':>14} {'S=E[xi chi2]':>14} {'L=E[Xi chi2]':>14} "
                f"{'E[xi chi2 ^2]':>14} {'E[Xi chi2 ^2]':>14} {'c=1/M':>14}")
        return "\n".join([head] + [r.row() for r in self.rows])

    def plot(self, ax=None):
        """``M``, ``S``, ``L`` against the rank (log scale)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        ns = [r.n for r in self.rows]
        for name in ("M", "S", "L"):
            ax.plot(ns, [getattr(r, name) for r in self.rows], marker="o", label=name)
        ax.set_yscale("log")
        ax.set_xlabel("pieces per unit (K, or K x pool)")
        ax.set_ylabel("constant")
        ax.legend()
        return ax


def constants_table(ks=range(2, 11), pool=None) -> ConstantsTable:
    """:func:`maxout_constants` for every rank in ``ks`` (same ``pool`` for all)."""
    return ConstantsTable(rows=[maxout_constants(k, pool) for k in ks])
