r"""Fisher-Rao gradient flows of linear programs and their linear convergence.

Muller, Cayci and Montufar, *Fisher-Rao gradient flows of linear programs and state-action natural
policy gradients* (2024). For the linear program max c^T x over P = {x >= 0, A x = b}, the Fisher-Rao
(Shahshahani) metric g_x(u, v) = sum_i u_i v_i / x_i on the relative interior of P gives the flow

    dx/dt = D (c - A^T nu),   A D A^T nu = A D c,   D = diag(x),

(the metric gradient of c^T x projected onto ker A). Writing log x = log x0 + t c - A^T lambda(t) shows
(differentiate the optimality condition) that the flow is the entropic-regularization path

    x(t) = argmax_{x in P} t c^T x - KL(x | x0),   KL(x | x0) = sum x_i log(x_i / x0_i) - x_i + x0_i,

so the suboptimality obeys c^T x* - c^T x(t) <= KL(x* | x0) / t for every t (the regularization error
bound) and, as the paper proves, converges *linearly*. Along the path, at a non-degenerate unique
optimal vertex with basis B, log x_j(t) = t r_j + O(1) for the non-basic j, where
r_j = c_j - c_B^T A_B^{-1} A_j < 0 are the reduced costs, and c^T x* - c^T x(t) = -sum_j r_j x_j(t); the
rate is therefore Delta = min_j |r_j|, the smallest decrease of the objective per unit of the entering
coordinate along an edge leaving the optimal vertex. :func:`fisher_rao_flow` integrates the flow in
log coordinates with :func:`scipy.integrate.solve_ivp`, measures the rate and puts it beside Delta;
:func:`entropic_solution` solves the entropic program independently (its convex dual by damped Newton
steps along the path in t, or by cvxpy with an exponential-cone solver).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.linear_models import decay_rate
from relulab.results import Result

__all__ = ["LinearProgram", "linear_program", "lp_geometry", "LPGeometry", "entropic_solution",
           "fisher_rao_flow", "FisherRaoFlow"]


# ---------------------------------------------------------------------------------------------- the program
@dataclass
class LinearProgram:
    """max c^T x s.t. x >= 0, A x = b with A of full row rank (redundant rows removed), known to be feasible
    with a strictly positive point and bounded."""

    A: np.ndarray
    b: np.ndarray
    c: np.ndarray


def _vec(v, name, n=None):
    try:
        a = np.array(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{name} must be a real vector: {e}") from None
    if a.size == 0:
        raise InvalidInputError(f"{name} must not be empty")
    if n is not None and a.size != n:
        raise InvalidInputError(f"{name} must have {n} entries, got {a.size}")
    if not np.isfinite(a).all():
        raise InvalidInputError(f"{name} must be finite")
    return a


def linear_program(A, b, c) -> LinearProgram:
    """Check and normalize max c^T x over {x >= 0, A x = b}: shapes, feasibility and boundedness (HiGHS),
    a strictly positive feasible point (the flow lives in the interior of the orthant), and full row rank
    (dependent rows, consistent by feasibility, are replaced by an orthonormal basis of the row space)."""
    from scipy.optimize import linprog

    try:
        A = np.array(A, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"A must be a real matrix: {e}") from None
    if A.ndim == 1:
        A = A[None, :]
    if A.ndim != 2 or A.size == 0:
        raise InvalidInputError(f"A must be a non-empty 2-D matrix, got shape {A.shape}")
    if not np.isfinite(A).all():
        raise InvalidInputError("A must be finite")
    m, n = A.shape
    b = _vec(b, "b", m)
    c = _vec(c, "c", n)
    res = linprog(-c, A_eq=A, b_eq=b, bounds=[(0, None)] * n, method="highs")
    if res.status == 2:
        raise InvalidInputError("A, b: the linear program is infeasible (no x >= 0 with A x = b)")
    if res.status == 3:
        raise InvalidInputError("c: the linear program is unbounded (c^T x has no maximum over x >= 0, A x = b)")
    if res.status != 0:
        raise DegenerateGeometryError(f"HiGHS could not solve the linear program: {res.message}")
    # a strictly positive point: max s with x >= s, s <= 1
    pos = linprog(np.r_[np.zeros(n), -1.0], A_eq=np.c_[A, np.zeros(m)], b_eq=b,
                  A_ub=np.c_[-np.eye(n), np.ones(n)], b_ub=np.zeros(n), bounds=[(0, None)] * n + [(None, 1.0)],
                  method="highs")
    if pos.status != 0 or -pos.fun <= 1e-9:
        raise InvalidInputError("A, b: no feasible point has every x_i > 0; the Fisher-Rao flow needs the polytope "
                                "to meet the open orthant (drop the coordinates forced to zero)")
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    rank = int((s > 1e-12 * s[0]).sum())
    if rank < m:
        A, b = Vt[:rank], (U[:, :rank].T @ b) / s[:rank]
    return LinearProgram(A=A, b=b, c=c)


# ---------------------------------------------------------------------------------------------- geometry
@dataclass
class LPGeometry(Result):
    """The optimal vertex and the rate it dictates. ``x_star``, ``optimum`` = c^T x*; ``basis``: indices of
    the positive coordinates; ``reduced_costs``: r_j for the non-basic j; ``rate``: Delta = min_j |r_j|
    (None when the optimum is degenerate or not unique, with ``reason``)."""

    x_star: np.ndarray
    optimum: float
    basis: list
    reduced_costs: dict
    rate: float | None
    reason: str


def lp_geometry(A, b, c) -> LPGeometry:
    """Optimal vertex (HiGHS), its basis and reduced costs, and the linear rate Delta (module docstring)."""
    from scipy.optimize import linprog

    lp = A if isinstance(A, LinearProgram) else linear_program(A, b, c)
    A, b, c = lp.A, lp.b, lp.c
    m, n = A.shape
    res = linprog(-c, A_eq=A, b_eq=b, bounds=[(0, None)] * n, method="highs")
    x = np.clip(res.x, 0, None)
    scale = max(1.0, float(np.abs(x).max()))
    B = [int(j) for j in np.nonzero(x > 1e-9 * scale)[0]]
    N = [j for j in range(n) if j not in B]
    reason, rate, rc = "", None, {}
    if len(B) != m or np.linalg.matrix_rank(A[:, B]) < m:
        reason = f"degenerate optimal vertex ({len(B)} positive coordinates, {m} constraints)"
    else:
        y = np.linalg.solve(A[:, B].T, c[B])
        rc = {j: float(c[j] - A[:, j] @ y) for j in N}
        tol = 1e-9 * max(1.0, float(np.abs(c).max()))
        if any(v > tol for v in rc.values()):
            reason = "the vertex HiGHS returned is not optimal to the reduced-cost tolerance"
        elif any(abs(v) <= tol for v in rc.values()):
            reason = "the optimum is not unique (a zero reduced cost)"
        else:
            rate = float(min(-v for v in rc.values())) if rc else math.inf
    return LPGeometry(x_star=x, optimum=float(c @ x), basis=B, reduced_costs=rc, rate=rate, reason=reason)


# ---------------------------------------------------------------------------------------------- entropic path
def _positive_start(lp: LinearProgram, x0):
    A, b = lp.A, lp.b
    if x0 is None:
        # the maximum-entropy point argmin KL(x | 1) over the polytope: x = exp(-A^T nu), damped Newton on
        # the dual from nu = 0 (globally convergent: the dual is strictly convex and, with a positive feasible
        # point, coercive)
        ok, nu = _newton(A, b, np.zeros(A.shape[1]), np.zeros(A.shape[0]), max(1.0, float(np.abs(b).max())),
                         iters=500)
        if not ok:
            raise DegenerateGeometryError("the maximum-entropy starting point did not converge; pass x0")
        return np.exp(-A.T @ nu)
    x0 = _vec(x0, "x0", A.shape[1])
    if (x0 <= 0).any():
        raise InvalidInputError("x0 must be strictly positive (the flow lives in the open orthant)")
    if float(np.abs(A @ x0 - b).max()) > 1e-8 * max(1.0, float(np.abs(b).max())):
        raise InvalidInputError(f"x0 must satisfy A x0 = b; the residual is {float(np.abs(A @ x0 - b).max()):.3g}")
    return x0


def _entropic(lp: LinearProgram, t: float, x0: np.ndarray):
    """argmax t c^T x - KL(x | x0) over the polytope through its dual: x(nu) = x0 exp(t c - A^T nu)
    minimizes phi(nu) = sum x(nu) + b^T nu (strictly convex). nu = 0 is optimal at t = 0 (x0 is feasible);
    damped Newton steps follow the path in t, halving the t-step whenever Newton does not converge."""
    A, b, c = lp.A, lp.b, lp.c
    logx0 = np.log(x0)
    nu = np.zeros(A.shape[0])
    bscale = max(1.0, float(np.abs(b).max()))
    t_done, step = 0.0, max(t, 1e-300)
    while t_done < t:
        t_try = min(t, t_done + step)
        ok, nu_try = _newton(A, b, logx0 + t_try * c, nu, bscale)
        if ok:
            t_done, nu = t_try, nu_try
            step *= 2.0
        else:
            step /= 4.0
            if step < 1e-12 * max(t, 1.0):
                raise DegenerateGeometryError(f"the entropic program at t = {t:g} did not converge")
    x = np.exp(logx0 + t * c - A.T @ nu)
    if float(np.abs(A @ x - b).max()) > 1e-9 * bscale:
        raise DegenerateGeometryError(f"the entropic program at t = {t:g} did not converge (residual "
                                      f"{float(np.abs(A @ x - b).max()):.3g})")
    return x


def _newton(A, b, base, nu, bscale, iters: int = 60):
    def phi(v):
        e = base - A.T @ v
        if e.max() > 700:
            return math.inf, None
        x = np.exp(e)
        return float(x.sum() + b @ v), x

    f, x = phi(nu)
    if x is None:
        return False, nu
    for _ in range(iters):
        g = b - A @ x
        if float(np.abs(g).max()) <= 1e-12 * bscale:
            return True, nu
        H = (A * x) @ A.T
        try:
            d = -np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            return False, nu
        s, dec = 1.0, float(g @ d)
        while True:
            f2, x2 = phi(nu + s * d)
            if x2 is not None and f2 <= f + 1e-4 * s * dec + 1e-15 * abs(f):
                break
            s *= 0.5
            if s < 1e-10:
                return float(np.abs(g).max()) <= 1e-10 * bscale, nu
        nu, f, x = nu + s * d, f2, x2
    return float(np.abs(b - A @ x).max()) <= 1e-10 * bscale, nu


def entropic_solution(A, b, c, t: float, *, x0=None, method: str = "newton") -> np.ndarray:
    """x(t) = argmax_{x >= 0, A x = b} t c^T x - KL(x | x0) (``x0`` default: the maximum-entropy point).
    ``method='newton'``: the convex dual by damped Newton steps continued in t; ``'cvxpy'``: the primal with cvxpy
    and an exponential-cone solver (Clarabel, else SCS; the ``convex`` extra)."""
    lp = A if isinstance(A, LinearProgram) else linear_program(A, b, c)
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise InvalidInputError(f"t must be a number >= 0, got {t!r}") from None
    if not (t >= 0 and math.isfinite(t)):
        raise InvalidInputError(f"t must be a finite number >= 0, got {t!r}")
    x0 = _positive_start(lp, x0)
    if method == "newton":
        return _entropic(lp, t, x0)
    if method != "cvxpy":
        raise InvalidInputError(f"method must be 'newton' or 'cvxpy', got {method!r}")
    try:
        import cvxpy as cp
    except ImportError:
        raise InvalidInputError("method='cvxpy' needs the 'convex' extra: pip install 'relulab[convex]'") from None
    x = cp.Variable(lp.A.shape[1], nonneg=True)
    prob = cp.Problem(cp.Maximize(t * lp.c @ x - cp.sum(cp.kl_div(x, x0))), [lp.A @ x == lp.b])
    solvers = [s for s in ("CLARABEL", "SCS") if s in cp.installed_solvers()]
    if not solvers:
        raise InvalidInputError("method='cvxpy' needs an exponential-cone solver (Clarabel or SCS)")
    kwargs = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9} if solvers[0] == "CLARABEL" else {"eps": 1e-9}
    prob.solve(solver=solvers[0], **kwargs)
    if prob.status != "optimal" or x.value is None:
        raise DegenerateGeometryError(f"cvxpy ({solvers[0]}) did not solve the entropic program: {prob.status}")
    return np.asarray(x.value, dtype=np.float64)


# ---------------------------------------------------------------------------------------------- the flow
@dataclass
class FisherRaoFlow(Result):
    """The Fisher-Rao gradient flow of a linear program.

    ``times``, ``x`` (points on the path, one row per time), ``gaps`` = c^T x* - c^T x(t) (computed as
    -sum_N r_j x_j(t), equal on the polytope and accurate to the last digits, when the optimal vertex is
    non-degenerate);
    ``measured_rate``: slope of -log gap fitted over the last third of the run above the rounding floor;
    ``predicted_rate``: Delta from the LP's geometry (:func:`lp_geometry`; None when undefined);
    ``kl_bound_holds``: gap(t) <= KL(x* | x0) / t at every recorded t > 0; ``entropic_error``: the largest
    |x_flow(t) - x_entropic(t)| at the checked times (NaN when not checked); ``constraint_error``:
    max |A x(t) - b| along the run.
    """

    times: np.ndarray
    x: np.ndarray
    gaps: np.ndarray
    optimum: float
    x_star: np.ndarray
    measured_rate: float
    predicted_rate: float | None
    rate_reason: str
    kl_bound_holds: bool
    kl_x_star: float
    entropic_error: float
    constraint_error: float
    fit_window: tuple
    complete: bool
    seconds: float

    _summary_fields = ("optimum", "x_star", "measured_rate", "predicted_rate", "rate_reason", "kl_bound_holds",
                       "kl_x_star", "entropic_error", "constraint_error", "fit_window", "complete", "seconds")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        g = np.maximum(self.gaps, 1e-300)
        ax.semilogy(self.times, g, label="c^T x* - c^T x(t)")
        t = self.times[self.times > 0]
        ax.semilogy(t, self.kl_x_star / t, ":", label="KL(x*|x0) / t")
        if self.predicted_rate and np.isfinite(self.fit_window[0]):
            i0 = int(np.searchsorted(self.times, self.fit_window[0]))
            ax.semilogy(self.times, g[i0] * np.exp(-self.predicted_rate * (self.times - self.times[i0])), "--",
                        label=f"exp(-Delta t), Delta = {self.predicted_rate:.3g}")
        ax.set_ylim(max(g.min(), 1e-16), g.max() * 10)
        ax.set_xlabel("t")
        ax.set_ylabel("suboptimality")
        ax.legend()
        return ax


def fisher_rao_flow(A, b, c, *, x0=None, t_max: float | None = None, points: int = 200, rtol: float = 1e-10,
                    check_entropic: int = 3) -> FisherRaoFlow:
    """Integrate the Fisher-Rao gradient flow of max c^T x over {x >= 0, A x = b} from ``x0`` (default the
    maximum-entropy point) to ``t_max`` (default 60 / Delta), in log coordinates
    (d log x / dt = c - A^T nu), by :func:`scipy.integrate.solve_ivp` (LSODA); compare with the
    entropic solutions at ``check_entropic`` times and with the LP's rate (module docstring)."""
    from scipy.integrate import solve_ivp

    t0 = time.perf_counter()
    lp = A if isinstance(A, LinearProgram) else linear_program(A, b, c)
    geo = lp_geometry(lp, None, None)
    x0 = _positive_start(lp, x0)
    A, b, c = lp.A, lp.b, lp.c
    if t_max is None:
        if geo.rate is None or not math.isfinite(geo.rate):
            raise InvalidInputError(f"t_max: no default ({geo.reason or 'every coordinate is basic'}); give t_max")
        t_max = 60.0 / geo.rate
    try:
        t_max = float(t_max)
    except (TypeError, ValueError):
        raise InvalidInputError(f"t_max must be a number > 0, got {t_max!r}") from None
    if not (t_max > 0 and math.isfinite(t_max)):
        raise InvalidInputError(f"t_max must be a finite number > 0, got {t_max!r}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise InvalidInputError(f"points must be an integer >= 2, got {points!r}")

    def rhs(_t, y):
        x = np.exp(y)
        nu = np.linalg.solve((A * x) @ A.T, A @ (x * c))
        return c - A.T @ nu

    times = np.linspace(0.0, t_max, points + 1)
    sol = solve_ivp(rhs, (0.0, t_max), np.log(x0), method="LSODA", t_eval=times, rtol=rtol, atol=1e-12)
    X = np.exp(sol.y.T)
    times = sol.t
    if geo.rate is not None and geo.reduced_costs:
        # on the polytope c^T x* - c^T x = -sum_N r_j x_j; the non-basic x_j carry full relative accuracy in
        # log coordinates, where the difference of two nearly equal objective values would lose it
        N = np.array(list(geo.reduced_costs))
        gaps = -(X[:, N] @ np.array([geo.reduced_costs[j] for j in N]))
    else:
        gaps = geo.optimum - X @ c
    with np.errstate(divide="ignore"):
        xs = geo.x_star
        kl = float(np.sum(np.where(xs > 0, xs * np.log(np.where(xs > 0, xs, 1) / x0), 0.0) - xs + x0))
    slack = 1e-9 * max(1.0, abs(geo.optimum))
    kl_ok = bool(np.all(gaps[times > 0] <= kl / times[times > 0] + slack))
    ent_err = math.nan
    if check_entropic:
        idx = np.unique(np.linspace(1, len(times) - 1, int(check_entropic)).astype(int))
        ent_err = max(float(np.abs(_entropic(lp, float(times[i]), x0) - X[i]).max()) for i in idx)
    floor = (1e-250 if geo.rate is not None else 1e-11) * max(1.0, abs(geo.optimum))
    rate, window = decay_rate(times, gaps, floor)
    return FisherRaoFlow(times=times, x=X, gaps=gaps, optimum=geo.optimum, x_star=geo.x_star, measured_rate=rate,
                         predicted_rate=geo.rate, rate_reason=geo.reason, kl_bound_holds=kl_ok, kl_x_star=kl,
                         entropic_error=ent_err, constraint_error=float(np.abs(X @ A.T - b).max()),
                         fit_window=window, complete=bool(sol.status == 0), seconds=time.perf_counter() - t0)
