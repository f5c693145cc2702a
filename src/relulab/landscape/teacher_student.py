"""Gaussian teacher-student problem for two-layer ReLU networks, in closed form.

Student f(x) = sum_i a_i relu(w_i . x) (i = 1..k, rows of W), teacher f*(x) = sum_j b_j relu(v_j . x)
(j = 1..d', rows of V); the output weights a, b are fixed (ones by default, as in Safran and Shamir,
"Spurious local minima are common in two-layer ReLU neural networks", ICML 2018, and Arjevani and
Field, "Analytic characterization of the Hessian in shallow ReLU models: a tale of symmetry",
NeurIPS 2020). With x ~ N(0, I_d) the population loss

    L(W) = 1/2 E (f(x) - f*(x))^2 = 1/2 a^T K(W, W) a - a^T K(W, V) b + 1/2 b^T K(V, V) b

is a closed form in the kernel (Cho and Saul's arc-cosine kernel of degree one)

    K(w, v) = E relu(w.x) relu(v.x) = |w| |v| (sin t + (pi - t) cos t) / (2 pi),  t = angle(w, v).

Its derivatives, with u = w/|w|, n = v/|v|, p = unit part of n orthogonal to u, q = unit part of u
orthogonal to n:

    d/dw K        = (|v| sin t u + (pi - t) v) / (2 pi)
    d2/dw2 K      = |v| sin t / (2 pi |w|) (I - u u^T + p p^T)
    d2/dw dv K    = ((pi - t) I + sin t (u n^T + p q^T)) / (2 pi)

so that grad_i L = a_i (sum_j a_j dK(w_i, w_j) - sum_j b_j dK(w_i, v_j)) (the j = i term is w_i / 2),
the diagonal Hessian blocks are a_i^2 I / 2 + a_i (sum_{j != i} a_j d2K/dw2(w_i, w_j) - sum_j b_j
d2K/dw2(w_i, v_j)) and the off-diagonal blocks a_i a_j d2K/dw dv(w_i, w_j).

Geometry at the kinks. K = w.v / 2 + |w||v| (sin t - t cos t) / (2 pi) and sin t - t cos t = t^3/3 +
O(t^5) near t = 0, (pi - t)^3 / 3 + ... near t = pi; since t is Lipschitz in (w, v) away from w = 0
and v = 0, K is C^2 (not C^3) across parallel and antiparallel pairs, and the formulas above extend
continuously there (the sin t terms vanish). So parallel and antiparallel rows need no one-sided
choice: the values returned are the exact gradient and Hessian. A zero student row is a true kink
(K is positively homogeneous of degree one in w): the loss is returned, the gradient and Hessian raise
:class:`~relulab.core.errors.DegenerateGeometryError`. Zero teacher rows contribute nothing.

Angles are computed as t = 2 atan2(|u - n|, |u + n|) (and sin t = |u - n||u + n| / 2), accurate to
rounding for all t, unlike arccos(u.n) near t = 0 and pi, which loses half the digits; this is what
lets Newton's method drive the gradient to 1e-12 near the teacher.

Critical points: :func:`polish_critical_point` (Levenberg-Marquardt on grad L = 0 with the exact
Hessian), :func:`find_critical_point` (adaptive gradient descent, i.e. the gradient flow discretized
with Armijo step control, then polishing) and :func:`find_critical_points` (many seeded random starts
over worker processes, grouped into families up to the problem's permutation symmetry, with loss,
Hessian spectrum, index and isotropy group, see :mod:`relulab.landscape.symmetry`).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.core.threads import threads_for
from relulab.results import Result

__all__ = ["TeacherStudent", "gaussian_relu_kernel", "CriticalPoint", "CriticalPointFamily",
           "CriticalPointSearch", "polish_critical_point", "find_critical_point", "find_critical_points"]

_TWO_PI = 2.0 * math.pi


# ----------------------------------------------------------------------------------------------------
# closed forms
# ----------------------------------------------------------------------------------------------------

def _unit_rows(X: torch.Tensor):
    """Row norms and unit rows (zero rows stay zero)."""
    r = torch.linalg.vector_norm(X, dim=-1)
    U = X / torch.where(r > 0, r, torch.ones_like(r)).unsqueeze(-1)
    return r, U


def _angles(U: torch.Tensor, N: torch.Tensor, need_perp: bool = False):
    """Angle t, cos t, sin t between unit rows U (B,k,d) and N (B,m,d), all pairs (B,k,m).

    With ``need_perp`` also P (B,k,m,d): the unit vector along the part of n_j orthogonal to u_i
    (zero where that part vanishes). Half-angle form: |u - n| = 2 sin(t/2), |u + n| = 2 cos(t/2).
    """
    diff = N.unsqueeze(-3) - U.unsqueeze(-2)                   # n_j - u_i
    a = torch.linalg.vector_norm(diff, dim=-1)
    s = torch.linalg.vector_norm(N.unsqueeze(-3) + U.unsqueeze(-2), dim=-1)
    t = 2.0 * torch.atan2(a, s)
    sin = 0.5 * a * s
    cos = 0.25 * (s * s - a * a)
    if not need_perp:
        return t, cos, sin, None
    # n - (u.n) u = diff - (u.diff) u: no cancellation of the O(1) parts for nearly parallel pairs
    p = diff - (diff * U.unsqueeze(-2)).sum(-1, keepdim=True) * U.unsqueeze(-2)
    pn = torch.linalg.vector_norm(p, dim=-1, keepdim=True)
    P = torch.where(pn > 0, p / torch.where(pn > 0, pn, torch.ones_like(pn)), torch.zeros_like(p))
    return t, cos, sin, P


def _kernel_from(r1, r2, t, cos, sin):
    return r1.unsqueeze(-1) * r2.unsqueeze(-2) * (sin + (math.pi - t) * cos) / _TWO_PI


def gaussian_relu_kernel(W, V=None) -> torch.Tensor:
    """K[i, j] = E_{x ~ N(0, I)} relu(w_i . x) relu(v_j . x) = |w_i||v_j| (sin t + (pi - t) cos t) / (2 pi).

    ``W`` (..., k, d), ``V`` (..., m, d) (default ``V = W``); returns (..., k, m). Zero rows give zero.
    """
    W = _as_tensor(W, "W")
    V = W if V is None else _as_tensor(V, "V", like=W)
    if W.shape[-1] != V.shape[-1]:
        raise InvalidInputError(f"W and V must have the same number of columns, got {W.shape[-1]} and {V.shape[-1]}")
    rw, U = _unit_rows(W)
    rv, N = _unit_rows(V)
    t, cos, sin, _ = _angles(U, N)
    return _kernel_from(rw, rv, t, cos, sin)


def _as_tensor(x, name, like: torch.Tensor | None = None, dtype=None, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"{name} must be a real matrix (tensor, array or nested list): {e}") from None
    if like is not None:
        dtype, device = like.dtype, like.device
    if dtype is None:
        dtype = t.dtype if t.is_floating_point() else torch.float64
    if not (dtype.is_floating_point and not dtype.is_complex):
        raise InvalidInputError(f"{name} must be real floating point, got {dtype}")
    t = t.to(dtype=dtype, device=device if device is not None else t.device)
    if t.dim() < 2:
        raise InvalidInputError(f"{name} must have shape (..., rows, d), got {tuple(t.shape)}")
    return t


@dataclass
class TeacherStudent(Result):
    """The Gaussian teacher-student problem L(W) = 1/2 E (a . relu(W x) - b . relu(V x))^2, x ~ N(0, I_d).

    ``V`` (d', d) teacher rows (default via :meth:`identity`: V = I_d); ``k`` student neurons;
    ``a`` (k,), ``b`` (d',) fixed output weights (default ones). W has shape (k, d) or a batch
    (B, k, d); flattened parameters are W.flatten() (row-major, neuron by neuron) as in ShallowNet.
    All computations are closed forms in the dtype and on the device of ``V`` (float64 by default).
    """

    V: torch.Tensor
    k: int
    a: torch.Tensor | None = None
    b: torch.Tensor | None = None

    _summary_fields = ("k", "d", "d_teacher")

    def __post_init__(self):
        V = _as_tensor(self.V, "V")
        if V.dim() != 2 or V.shape[0] < 1 or V.shape[1] < 1:
            raise InvalidInputError(f"V must be a non-empty (d', d) matrix, got shape {tuple(V.shape)}")
        if not bool(torch.isfinite(V).all()):
            raise InvalidInputError("V must be finite")
        self.V = V
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise InvalidInputError(f"k (student neurons) must be a positive integer, got {self.k!r}")
        self.k = int(self.k)
        for name, n in (("a", self.k), ("b", V.shape[0])):
            x = getattr(self, name)
            if x is None:
                x = torch.ones(n, dtype=V.dtype, device=V.device)
            else:
                x = torch.as_tensor(x).to(dtype=V.dtype, device=V.device).reshape(-1)
                if x.numel() != n:
                    raise InvalidInputError(f"{name} must have {n} entries, got {x.numel()}")
                if not bool(torch.isfinite(x).all()):
                    raise InvalidInputError(f"{name} must be finite")
            setattr(self, name, x)

    @classmethod
    def identity(cls, d: int, k: int | None = None, *, a=None, b=None, dtype=torch.float64, device=None):
        """The standard problem of the papers: teacher V = I_d, k = d student neurons unless given."""
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise InvalidInputError(f"d must be a positive integer, got {d!r}")
        return cls(V=torch.eye(int(d), dtype=dtype, device=device), k=int(d) if k is None else k, a=a, b=b)

    @property
    def d(self) -> int:
        return int(self.V.shape[1])

    @property
    def d_teacher(self) -> int:
        return int(self.V.shape[0])

    @property
    def n_parameters(self) -> int:
        return self.k * self.d

    # -- input handling ---------------------------------------------------------------------------
    def _batch(self, W):
        W = _as_tensor(W, "W", like=self.V)
        if W.shape[-2:] != (self.k, self.d):
            raise InvalidInputError(f"W must have shape (..., {self.k}, {self.d}) for this problem, got {tuple(W.shape)}")
        lead = W.shape[:-2]
        return W.reshape(-1, self.k, self.d), lead

    # -- core (batched, no validation) ------------------------------------------------------------
    def _core(self, W: torch.Tensor, order: int):
        """Loss (B,), gradient (B,k,d) if order >= 1, Hessian (B,kd,kd) if order >= 2; and a mask of
        batch entries with a zero (or non-finite) student row, where derivatives are undefined."""
        B, k, d = W.shape
        a, b = self.a, self.b
        rw, U = _unit_rows(W)
        rv, N = _unit_rows(self.V.expand(B, -1, -1))
        bad = ~(rw > 0).all(-1) | ~torch.isfinite(W).flatten(1).all(-1)
        need = order >= 2
        ts, cs, ss, Ps = _angles(U, U, need)            # student-student (B,k,k)
        tt, ct, st, Pt = _angles(U, N, need)            # student-teacher (B,k,d')
        eye = torch.eye(k, dtype=torch.bool, device=W.device)
        # the diagonal is exactly t = 0 (K(w, w) = |w|^2 / 2); enforce it against rounding
        ts = ts.masked_fill(eye, 0.0)
        ss = ss.masked_fill(eye, 0.0)
        cs = cs.masked_fill(eye, 1.0)
        Kss = _kernel_from(rw, rw, ts, cs, ss)
        Kst = _kernel_from(rw, rv, tt, ct, st)
        Ktt = gaussian_relu_kernel(self.V)
        loss = 0.5 * torch.einsum("i,bij,j->b", a, Kss, a) - torch.einsum("i,bij,j->b", a, Kst, b) \
            + 0.5 * (b @ Ktt @ b)
        if order < 1:
            return loss, None, None, bad
        # coefficients of u_i: sum_j a_j |w_j| sin t_ij - sum_j b_j |v_j| sin t'_ij
        cs_coef = a * rw.unsqueeze(-2) * ss               # (B,k,k): a_j |w_j| sin t_ij
        ct_coef = -(b * rv.unsqueeze(-2)) * st            # (B,k,d')
        c_u = cs_coef.sum(-1) + ct_coef.sum(-1)           # (B,k)
        G = c_u.unsqueeze(-1) * U + ((math.pi - ts) * a) @ W - ((math.pi - tt) * b) @ self.V
        G = G * (a / _TWO_PI).unsqueeze(-1)
        if order < 2:
            return loss, G, None, bad
        # Hessian, as (B, k, d, k, d)
        I = torch.eye(d, dtype=W.dtype, device=W.device)
        aa = a.unsqueeze(-1) * a                           # (k,k)
        H = torch.einsum("zij,ab->ziajb", aa * (math.pi - ts) / _TWO_PI, I)
        coef = aa * ss / _TWO_PI
        H = H + torch.einsum("zij,zia,zjb->ziajb", coef, U, U)
        H = H + torch.einsum("zij,zija,zjib->ziajb", coef, Ps, Ps)
        # diagonal blocks: a_i / (2 pi |w_i|) [ (sum_j c_ij) (I - u u^T) + sum_j c_ij p_ij p_ij^T ];
        # the general formula above already gave a_i^2 I / 2 there (t_ii = 0)
        inv = torch.where(rw > 0, 1.0 / torch.where(rw > 0, rw, torch.ones_like(rw)), torch.zeros_like(rw))
        scale = a * inv / _TWO_PI                          # (B,k)
        proj = I - U.unsqueeze(-1) * U.unsqueeze(-2)       # (B,k,d,d)
        D = c_u.unsqueeze(-1).unsqueeze(-1) * proj
        D = D + torch.einsum("zij,zija,zijc->ziac", cs_coef, Ps, Ps) + torch.einsum("zij,zija,zijc->ziac", ct_coef, Pt, Pt)
        D = D * scale.unsqueeze(-1).unsqueeze(-1)
        idx = torch.arange(k, device=W.device)
        H[:, idx, :, idx, :] += D.transpose(0, 1)
        H = H.reshape(B, k * d, k * d)
        H = 0.5 * (H + H.transpose(-1, -2))              # exact symmetry (rounding only)
        return loss, G, H, bad

    def _checked(self, W, order):
        Wb, lead = self._batch(W)
        loss, G, H, bad = self._core(Wb, order)
        if order >= 1 and bool(bad.any()):
            rows = torch.nonzero(~(torch.linalg.vector_norm(Wb, dim=-1) > 0))
            raise DegenerateGeometryError(
                "the loss is not differentiable at a zero student row (K(w, v) is positively homogeneous "
                f"of degree one in w); zero rows (batch, row): {rows.tolist()[:8]}")
        return Wb, lead, loss, G, H

    # -- public -----------------------------------------------------------------------------------
    def loss(self, W) -> torch.Tensor:
        """Population loss L(W) (scalar, or (B,) for a batch). Defined for every W (zero rows included)."""
        Wb, lead = self._batch(W)
        return self._core(Wb, 0)[0].reshape(lead)

    def gradient(self, W) -> torch.Tensor:
        """dL/dW, same shape as W. Raises DegenerateGeometryError at a zero student row."""
        _, lead, _, G, _ = self._checked(W, 1)
        return G.reshape(*lead, self.k, self.d)

    def hessian(self, W) -> torch.Tensor:
        """d2L/dW2 as a (kd, kd) matrix in W.flatten() order (or (B, kd, kd)). Exact (C^2) at parallel and
        antiparallel pairs; raises DegenerateGeometryError at a zero student row."""
        _, lead, _, _, H = self._checked(W, 2)
        n = self.k * self.d
        return H.reshape(*lead, n, n)

    def loss_gradient_hessian(self, W):
        """(loss, gradient, Hessian) sharing one evaluation of the pairwise geometry."""
        _, lead, loss, G, H = self._checked(W, 2)
        n = self.k * self.d
        return loss.reshape(lead), G.reshape(*lead, self.k, self.d), H.reshape(*lead, n, n)

    def predict(self, W, X) -> torch.Tensor:
        """Student outputs a . relu(W x) for the rows x of X (n, d) (for sampling checks and plots)."""
        W = _as_tensor(W, "W", like=self.V)
        X = _as_tensor(X, "X", like=self.V)
        return torch.relu(X @ W.transpose(-1, -2)) @ self.a

    def teacher(self, X) -> torch.Tensor:
        """Teacher outputs b . relu(V x) for the rows x of X (n, d)."""
        X = _as_tensor(X, "X", like=self.V)
        return torch.relu(X @ self.V.T) @ self.b

    def random_point(self, seed: int = 0, scale: float = 1.0, n: int | None = None) -> torch.Tensor:
        """W with i.i.d. N(0, scale^2 / d) entries (rows of norm about ``scale``); a batch when ``n``."""
        g = torch.Generator().manual_seed(int(seed))
        shape = (self.k, self.d) if n is None else (int(n), self.k, self.d)
        W = torch.randn(shape, generator=g, dtype=torch.float64) * (float(scale) / math.sqrt(self.d))
        return W.to(dtype=self.V.dtype, device=self.V.device)

    def symmetry_colors(self):
        """Colors of rows and columns for the permutation symmetry of L: (row_colors (k,), col_colors (d,)).

        L(P W Q^T) = L(W) for row permutations P preserving a, and for coordinate permutations Q that
        map the teacher function to itself. Here Q is allowed to mix coordinates with equal color when
        every nonzero teacher row is a multiple of a coordinate vector (V = I_d: every Q); the color of a
        coordinate is the multiset of (sign c, b |c|) over teacher rows c e_i on it. Other teachers:
        every coordinate has its own color (only row permutations).
        """
        a = self.a.detach().cpu().numpy()
        row_colors = np.unique(a, return_inverse=True)[1].reshape(-1)
        V = self.V.detach().cpu().numpy()
        b = self.b.detach().cpu().numpy()
        nz = V != 0
        rows = nz.any(1)
        if rows.any() and (nz[rows].sum(1) == 1).all():
            keys = [[] for _ in range(self.d)]
            for j in np.nonzero(rows)[0]:
                i = int(np.nonzero(nz[j])[0][0])
                keys[i].append((float(np.sign(V[j, i])), float(b[j] * abs(V[j, i]))))
            keys = [tuple(sorted(x)) for x in keys]
            uniq = sorted(set(keys))
            col_colors = np.array([uniq.index(x) for x in keys], dtype=np.int64)
        elif not rows.any():
            col_colors = np.zeros(self.d, dtype=np.int64)
        else:
            col_colors = np.arange(self.d, dtype=np.int64)
        return row_colors.astype(np.int64), col_colors

    def global_minimum(self) -> torch.Tensor | None:
        """W = V (loss 0) when k = d' and a = b; else None (the global minimum is then not this obvious)."""
        if self.k == self.d_teacher and bool(torch.equal(self.a, self.b)):
            return self.V.clone()
        return None


# ----------------------------------------------------------------------------------------------------
# critical points
# ----------------------------------------------------------------------------------------------------

_TARGETS = ("minima", "any")


@dataclass
class CriticalPoint(Result):
    """A critical point W of L with its loss, gradient norm and Hessian spectrum.

    ``kind``: "global minimum" (no negative eigenvalue and loss <= loss_tol), "spurious minimum" (all
    eigenvalues > eig_tol, loss > loss_tol), "saddle" (a negative eigenvalue; ``index`` = how many),
    "degenerate" (no negative but some |eigenvalue| <= eig_tol and loss > loss_tol: the second-order
    test is inconclusive), or "not converged". eig_tol = 1e-8 max(1, max |eigenvalue|).
    """

    W: torch.Tensor
    loss: float
    grad_norm: float
    eigenvalues: torch.Tensor
    n_negative: int
    n_zero: int
    kind: str
    converged: bool
    status: str
    flow_iterations: int = 0
    newton_iterations: int = 0
    escapes: int = 0
    start: int | None = None

    _summary_fields = ("loss", "grad_norm", "n_negative", "n_zero", "kind", "converged", "status",
                       "flow_iterations", "newton_iterations", "escapes", "start")

    @property
    def index(self) -> int:
        """Morse index: number of negative Hessian eigenvalues."""
        return self.n_negative

    @property
    def eig_min(self) -> float:
        return float(self.eigenvalues[0]) if self.eigenvalues.numel() else float("nan")

    @property
    def eig_max(self) -> float:
        return float(self.eigenvalues[-1]) if self.eigenvalues.numel() else float("nan")


def _eig_counts(ev: torch.Tensor):
    tol = 1e-8 * max(1.0, float(ev.abs().max())) if ev.numel() else 0.0
    return int((ev < -tol).sum()), int((ev.abs() <= tol).sum())


def _kind(loss, n_neg, n_zero, converged, loss_tol):
    if not converged:
        return "not converged"
    if n_neg > 0:
        return "saddle"
    if loss <= loss_tol:
        return "global minimum"
    return "degenerate" if n_zero > 0 else "spurious minimum"


def _flow(problem: TeacherStudent, W, active, switch_gtol, max_iter, deadline, collapse):
    """Adaptive gradient descent (Armijo-controlled Euler steps of the gradient flow), batched.

    Per batch entry the step grows by 1.2 after an accepted step and halves after a rejected one.
    Stops an entry at |grad| <= switch_gtol, or on a plateau (|grad| <= 1e-3 that did not halve in the
    last 500 steps: sublinear convergence to a degenerate critical point, left to the polishing);
    flags entries whose smallest row norm falls below ``collapse`` (a neuron dying at w = 0, where L
    is not differentiable)."""
    B = W.shape[0]
    W = W.clone()
    iters = torch.zeros(B, dtype=torch.long, device=W.device)
    collapsed = torch.zeros(B, dtype=torch.bool, device=W.device)
    L, G, _, bad = problem._core(W, 1)
    gn = G.flatten(1).norm(dim=1)
    # a safe first step: 1 / (a rough bound on the largest Hessian eigenvalue, sum |a_i| max|a| / 2)
    amax = float(problem.a.abs().max())
    eta = torch.full((B,), 1.0 / max(1e-12, 0.5 * amax * float(problem.a.abs().sum())), dtype=W.dtype, device=W.device)
    collapsed |= bad
    plateau = torch.zeros(B, dtype=torch.bool, device=W.device)
    checkpoint = gn.clone()
    act = active & ~collapsed & (gn > switch_gtol)
    for step in range(1, max_iter + 1):
        if not bool(act.any()) or (deadline is not None and time.time() > deadline):
            break
        idx = torch.nonzero(act).reshape(-1)
        e = eta[idx]
        Wt = W[idx] - e.view(-1, 1, 1) * G[idx]
        Lt, Gt, _, badt = problem._core(Wt, 1)
        gni = gn[idx]
        ok = (Lt <= L[idx] - 1e-4 * e * gni * gni) & ~badt & torch.isfinite(Lt)
        okx = ok.view(-1, 1, 1)
        W[idx] = torch.where(okx, Wt, W[idx])
        G[idx] = torch.where(okx, Gt, G[idx])
        L[idx] = torch.where(ok, Lt, L[idx])
        gn[idx] = torch.where(ok, Gt.flatten(1).norm(dim=1), gni)
        eta[idx] = torch.where(ok, e * 1.2, e * 0.5)
        iters[idx] += 1
        rmin = torch.linalg.vector_norm(W[idx], dim=-1).min(-1).values
        collapsed[idx] |= rmin < collapse
        if step % 500 == 0:
            plateau |= (gn <= 1e-3) & (gn > 0.5 * checkpoint)
            checkpoint = gn.clone()
        act = active & ~collapsed & ~plateau & (gn > switch_gtol) & (eta > 1e-300)
    return W, iters, collapsed


def _polish(problem: TeacherStudent, W, active, gtol, max_iter, deadline):
    """Levenberg-Marquardt on the equations grad L(W) = 0 with the exact Hessian H (symmetric), batched.

    Step: delta = -Q diag(l / (l^2 + mu)) Q^T g from H = Q diag(l) Q^T (Newton's step as mu -> 0, a
    gradient-like step on |g|^2 / 2 for large mu); accepted when |g|^2 decreases by at least 1e-4 of
    the decrease predicted by the linear model g + H delta; mu shrinks after good steps (so the final
    iterations are Newton steps, quadratically convergent at a nondegenerate critical point) and grows
    after poor ones. Works for minima and saddles alike and stays stable at singular H."""
    B, k, d = W.shape
    n = k * d
    W = W.clone()
    iters = torch.zeros(B, dtype=torch.long, device=W.device)
    stalled = torch.zeros(B, dtype=torch.bool, device=W.device)
    L, G, H, bad = problem._core(W, 2)
    g = G.reshape(B, n)
    lam, Q = torch.linalg.eigh(H)
    gn = g.norm(dim=1)
    mu = (1e-6 * lam.abs().max(dim=1).values ** 2).clamp_min(1e-300)
    act = active & ~bad & (gn > gtol)
    eps = torch.finfo(W.dtype).eps
    for _ in range(max_iter):
        if not bool(act.any()) or (deadline is not None and time.time() > deadline):
            break
        idx = torch.nonzero(act).reshape(-1)
        li, Qi, gi, mi = lam[idx], Q[idx], g[idx], mu[idx]
        gq = (Qi.transpose(1, 2) @ gi.unsqueeze(-1)).squeeze(-1)
        dq = -li / (li * li + mi.unsqueeze(-1)) * gq
        step = (Qi @ dq.unsqueeze(-1)).squeeze(-1)
        res = gq + li * dq
        pred = 0.5 * (gq * gq).sum(1) - 0.5 * (res * res).sum(1)
        Wt = W[idx] + step.view(-1, k, d)
        Lt, Gt, Ht, badt = problem._core(Wt, 2)
        gt = Gt.reshape(-1, n)
        actual = 0.5 * (gi * gi).sum(1) - 0.5 * (gt * gt).sum(1)
        rho = actual / pred.clamp_min(1e-300)
        ok = (rho > 1e-4) & ~badt & torch.isfinite(gt).all(1)
        # rounding floor: a rejected step far below the size of W cannot make progress
        tiny = step.norm(dim=1) <= 8 * eps * W[idx].flatten(1).norm(dim=1)
        okx = ok.view(-1, 1, 1)
        W[idx] = torch.where(okx, Wt, W[idx])
        g[idx] = torch.where(ok.view(-1, 1), gt, gi)
        L[idx] = torch.where(ok, Lt, L[idx])
        if bool(ok.any()):
            acc = idx[ok]
            la, Qa = torch.linalg.eigh(Ht[ok])
            lam[acc], Q[acc] = la, Qa
        mu[idx] = torch.where(ok & (rho > 0.75), mi / 10, torch.where(ok & (rho > 0.25), mi, mi * 4)).clamp_min(1e-300)
        iters[idx] += 1
        gn[idx] = g[idx].norm(dim=1)
        stalled[idx] |= ~ok & tiny
        act = active & ~bad & (gn > gtol) & ~stalled
    return W, L, gn, lam, Q, iters, stalled | bad


def _run_batch(problem: TeacherStudent, W0, **kw):
    """Flow, polish, and (target "minima") escape saddles along the most negative eigenvector; returns
    one plain dict per batch entry. The Hessians are (kd x kd) per entry: small operations, or any on a
    busy machine, run on one thread (core.threads)."""
    B, k, d = W0.shape
    with threads_for(B * (k * d) ** 2):
        return _run_batch_threads(problem, W0, **kw)


def _run_batch_threads(problem: TeacherStudent, W0, *, target, gtol, switch_gtol, max_flow_iters,
                       max_newton_iters, max_escapes, deadline, flow=True, starts=None):
    B, k, d = W0.shape
    W = W0.clone()
    dev = W.device
    scale = max(1.0, float(torch.linalg.vector_norm(problem.V, dim=1).max()))
    collapse = 1e-6 * scale
    flow_it = torch.zeros(B, dtype=torch.long, device=dev)
    newton_it = torch.zeros(B, dtype=torch.long, device=W.device)
    escapes = torch.zeros(B, dtype=torch.long, device=W.device)
    active = torch.ones(B, dtype=torch.bool, device=W.device)
    status = ["" for _ in range(B)]
    out = [None] * B
    while bool(active.any()):
        if flow:
            W, it, coll = _flow(problem, W, active, switch_gtol, max_flow_iters, deadline, collapse)
            flow_it += it
            for i in torch.nonzero(active & coll).reshape(-1).tolist():
                status[i] = "collapsed neuron (a row of W tends to 0, where L is not differentiable)"
                active[i] = False
        W, L, gn, lam, Q, it, stall = _polish(problem, W, active, gtol, max_newton_iters, deadline)
        newton_it += it
        again = torch.zeros(B, dtype=torch.bool, device=W.device)
        for i in torch.nonzero(active).reshape(-1).tolist():
            ev = lam[i]
            conv = bool(gn[i] <= gtol)
            n_neg, n_zero = _eig_counts(ev)
            if conv and target == "minima" and n_neg > 0 and int(escapes[i]) < max_escapes and flow:
                q = Q[i][:, 0].reshape(k, d)
                eps_ = 1e-3 * max(1.0, float(W[i].norm()))
                cand = torch.stack([W[i] + eps_ * q, W[i] - eps_ * q])
                lc = problem._core(cand, 0)[0]
                W[i] = cand[int(torch.argmin(lc))]
                escapes[i] += 1
                again[i] = True
                continue
            if conv:
                status[i] = "converged"
            elif deadline is not None and time.time() > deadline:
                status[i] = "time limit"
            elif bool(stall[i]):
                status[i] = f"stalled at gradient norm {float(gn[i]):.3g} (float64 rounding floor)"
            else:
                status[i] = f"iteration limit at gradient norm {float(gn[i]):.3g}"
            out[i] = dict(W=W[i].detach().cpu().numpy(), loss=float(L[i]), grad_norm=float(gn[i]),
                          eigenvalues=ev.detach().cpu().numpy(), n_negative=n_neg, n_zero=n_zero,
                          converged=conv, status=status[i])
        active = again
    for i in range(B):
        if out[i] is None:  # failed in the flow
            Li = float(problem._core(W[i:i + 1], 0)[0][0])
            out[i] = dict(W=W[i].detach().cpu().numpy(), loss=Li, grad_norm=float("nan"),
                          eigenvalues=np.zeros(0), n_negative=0, n_zero=0, converged=False, status=status[i])
        out[i].update(flow_iterations=int(flow_it[i]), newton_iterations=int(newton_it[i]), escapes=int(escapes[i]),
                      start=None if starts is None else int(starts[i]))
    return out


def _to_point(problem, r, loss_tol) -> CriticalPoint:
    W = torch.as_tensor(r["W"]).to(dtype=problem.V.dtype, device=problem.V.device)
    ev = torch.as_tensor(r["eigenvalues"]).to(dtype=problem.V.dtype)
    return CriticalPoint(W=W, loss=r["loss"], grad_norm=r["grad_norm"], eigenvalues=ev, n_negative=r["n_negative"],
                         n_zero=r["n_zero"], kind=_kind(r["loss"], r["n_negative"], r["n_zero"], r["converged"], loss_tol),
                         converged=r["converged"], status=r["status"], flow_iterations=r["flow_iterations"],
                         newton_iterations=r["newton_iterations"], escapes=r["escapes"], start=r["start"])


def _check_target(target):
    if target not in _TARGETS:
        raise InvalidInputError(f"target must be one of {_TARGETS}, got {target!r}")


def _positive(name, x, integer=False):
    if integer:
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0:
            raise InvalidInputError(f"{name} must be a non-negative integer, got {x!r}")
        return int(x)
    x = float(x)
    if not (x > 0 and math.isfinite(x)):
        raise InvalidInputError(f"{name} must be a positive finite number, got {x!r}")
    return x


def polish_critical_point(problem: TeacherStudent, W, *, gtol: float = 1e-12, max_iter: int = 60,
                          loss_tol: float = 1e-10) -> CriticalPoint:
    """Newton-type polishing of a nearby critical point (any index) to |grad L|_F <= gtol.

    Levenberg-Marquardt on grad L = 0 with the exact Hessian (see ``_polish``); ``converged`` is False
    (with the reason in ``status``) if the float64 rounding floor or ``max_iter`` stops it first. The
    eigenvalues are those of the exact Hessian at the returned point.
    """
    gtol = _positive("gtol", gtol)
    max_iter = _positive("max_iter", max_iter, integer=True)
    Wb, _ = problem._batch(W)
    if Wb.shape[0] != 1:
        raise InvalidInputError("polish_critical_point takes one W of shape (k, d)")
    problem._checked(Wb, 1)  # zero rows: DegenerateGeometryError
    r = _run_batch(problem, Wb, target="any", gtol=gtol, switch_gtol=gtol, max_flow_iters=0,
                   max_newton_iters=max_iter, max_escapes=0, deadline=None, flow=False)[0]
    return _to_point(problem, r, loss_tol)


def find_critical_point(problem: TeacherStudent, W0=None, *, seed: int = 0, init_scale: float = 1.0,
                        target: str = "minima", gtol: float = 1e-12, switch_gtol: float = 1e-6,
                        max_flow_iters: int = 10000, max_newton_iters: int = 60, max_escapes: int = 3,
                        loss_tol: float = 1e-10) -> CriticalPoint:
    """Gradient flow from W0 (default: :meth:`TeacherStudent.random_point` (seed, init_scale)) until
    |grad| <= switch_gtol, then Newton polishing to |grad| <= gtol. With target "minima", a polished
    saddle is left along its most negative curvature direction and the flow resumes (at most
    ``max_escapes`` times); with "any" the first critical point reached is returned."""
    _check_target(target)
    W0 = problem.random_point(seed, _positive("init_scale", init_scale)) if W0 is None else W0
    Wb, _ = problem._batch(W0)
    if Wb.shape[0] != 1:
        raise InvalidInputError("find_critical_point takes one W0 of shape (k, d); see find_critical_points")
    r = _run_batch(problem, Wb, target=target, gtol=_positive("gtol", gtol), switch_gtol=_positive("switch_gtol", switch_gtol),
                   max_flow_iters=_positive("max_flow_iters", max_flow_iters, True),
                   max_newton_iters=_positive("max_newton_iters", max_newton_iters, True),
                   max_escapes=_positive("max_escapes", max_escapes, True), deadline=None)[0]
    return _to_point(problem, r, loss_tol)


# ----------------------------------------------------------------------------------------------------
# many starts, families
# ----------------------------------------------------------------------------------------------------

@dataclass
class CriticalPointFamily(Result):
    """Critical points found, equal up to the problem's permutation symmetry (see
    :meth:`TeacherStudent.symmetry_colors`): one representative ``W`` (rows and columns listed in the
    order of the isotropy search's first leaf, which makes block structure visible), how many starts
    reached the family (``count``, ``starts``), loss, gradient norm of the representative, Hessian
    spectrum summary (smallest / largest eigenvalue, number negative = Morse index, number ~ 0,
    ``eigenvalue_groups`` = [[value, multiplicity], ...]) and the isotropy group (order, description)
    of the representative."""

    family: int
    kind: str
    loss: float
    count: int
    starts: list
    W: torch.Tensor
    grad_norm: float
    eig_min: float
    eig_max: float
    n_negative: int
    n_zero: int
    isotropy_order: int
    isotropy: str
    isotropy_complete: bool
    eigenvalue_groups: list
    isolated: bool = True

    # isolated is False for a family of degenerate critical points (some Hessian eigenvalue ~ 0, as on
    # the manifolds of critical points of overparameterized problems) merged by loss and index, whose
    # members need not be related by symmetry; isotropy_order is 0 when the isotropy group could not be determined (entries ambiguous at every
    # tolerance tried); isotropy then says so
    _summary_fields = ("family", "kind", "loss", "count", "grad_norm", "eig_min", "eig_max", "n_negative",
                       "isotropy_order", "isotropy")

    @property
    def index(self) -> int:
        return self.n_negative


@dataclass
class CriticalPointSearch(Result):
    """Result of :func:`find_critical_points`: families sorted by loss, failures (start, status), counts,
    wall time, and the settings used. ``complete`` is False when the time limit cut the run short."""

    d: int
    k: int
    d_teacher: int
    n_starts: int
    seed: int
    workers: int
    chunk_size: int
    families: list
    failures: list
    n_converged: int
    complete: bool
    seconds: float
    settings: dict = field(default_factory=dict)

    _summary_fields = ("d", "k", "d_teacher", "n_starts", "seed", "n_converged", "complete", "seconds")

    def to_dict(self, summary: bool = False) -> dict:
        out = super().to_dict(summary=summary)
        if summary:
            out["families"] = [f.to_dict(summary=True) for f in self.families]
            out["n_failed"] = len(self.failures)
        return out

    def table(self) -> str:
        head = (f"{'family':>6} {'kind':<17} {'loss':>14} {'count':>6} {'isotropy (order)':<34} "
                f"{'eig min':>11} {'eig max':>10} {'#neg':>5}")
        lines = [head]
        for f in self.families:
            iso = f"{f.isotropy} ({f.isotropy_order})"
            kind = f.kind + ("" if f.isolated else "*")
            loss = 0.0 if abs(f.loss) < 5e-11 else f.loss  # rounding-level values print as 0
            lines.append(f"{f.family:>6} {kind:<17} {loss:>14.10f} {f.count:>6} {iso:<34.34} "
                         f"{f.eig_min:>11.3e} {f.eig_max:>10.4f} {f.n_negative:>5}")
        if any(not f.isolated for f in self.families):
            lines.append("* non-isolated critical points (Hessian eigenvalues ~ 0), merged by loss and index")
        lines.append(f"{self.n_converged} of {self.n_starts} starts converged; {len(self.failures)} failed")
        return "\n".join(lines)

    def plot(self, ax=None):
        """Loss of each family against how often it was reached (marker area ~ isotropy order, log)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        for f in self.families:
            ax.scatter([f.loss], [f.count], s=20 + 20 * math.log10(max(1, f.isotropy_order)),
                       marker="o" if f.n_negative == 0 else "x")
            ax.annotate(f.isotropy, (f.loss, f.count), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("loss")
        ax.set_ylabel("starts reaching the family")
        ax.set_title(f"critical points, d = {self.d}, k = {self.k} ({self.n_starts} starts)")
        return ax


def _start_seed(seed: int, start: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(start)]).generate_state(1, dtype=np.uint64)[0] % (2 ** 63))


def _chunk_worker(payload):
    """Runs in a worker process (or in-process): one chunk of starts, batched."""
    threads = payload.get("threads")
    if threads:
        torch.set_num_threads(threads)
    deadline = payload["deadline"]
    problem = TeacherStudent(V=torch.as_tensor(payload["V"]), k=payload["k"], a=torch.as_tensor(payload["a"]),
                             b=torch.as_tensor(payload["b"]))
    starts = payload["starts"]
    if deadline is not None and time.time() > deadline:
        return [dict(start=s, skipped=True) for s in starts]
    if payload.get("W0") is not None:
        W0 = torch.as_tensor(payload["W0"]).to(dtype=problem.V.dtype)
    else:
        W0 = torch.stack([problem.random_point(_start_seed(payload["seed"], s), payload["init_scale"]) for s in starts])
    return _run_batch(problem, W0, deadline=deadline, starts=starts, **payload["opts"])


def _equivalent(find_equivalence, W1, W2, tol, row_colors, col_colors) -> bool:
    # entries that chain at tol (DegenerateGeometryError) are retried at finer tolerances
    for t in (tol, tol * 1e-2, tol * 1e-4):
        try:
            return find_equivalence(W1, W2, tol=t, row_colors=row_colors, col_colors=col_colors) is not None
        except DegenerateGeometryError:
            continue
    return False


def _isotropy(isotropy_group, W, tol, row_colors, col_colors):
    scale = max(1.0, float(np.abs(W).max()))
    for t in ((tol,) if tol is not None else (None, 1e-9 * scale, 1e-11 * scale)):
        try:
            return isotropy_group(W, tol=t, row_colors=row_colors, col_colors=col_colors)
        except DegenerateGeometryError:
            continue
    return None


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _bytes_per_start(problem: TeacherStudent) -> int:
    """Kept per start until the grouping: the point (k d), its Hessian eigenvalues (k d) and a
    result record with its start index (a generous 1 KiB of Python objects)."""
    kd = problem.k * problem.d
    return 8 * (2 * kd) + 1024


def find_critical_points(problem: TeacherStudent, n_starts: int = 100, *, seed: int = 0, workers: int | None = None,
                         chunk_size: int = 8, init_scale: float = 1.0, target: str = "minima", gtol: float = 1e-12,
                         switch_gtol: float = 1e-6, max_flow_iters: int = 10000, max_newton_iters: int = 60,
                         max_escapes: int = 3, loss_tol: float = 1e-10, tol: float | None = None,
                         time_limit: float | None = None, initial_points=None,
                         merge_degenerate: bool = True, memory_budget: float = 2 * 2**30,
                         progress=None) -> CriticalPointSearch:
    """Critical points of L from ``n_starts`` random starts, grouped into families up to symmetry.

    Start s is W0 = N(0, init_scale^2 / d) entries from a generator seeded by (seed, s). Starts run in
    chunks of ``chunk_size`` as one batched tensor computation each (see :func:`find_critical_point`
    for the flow / polish / saddle-escape steps), spread over ``workers`` processes (default: every
    available core; each worker uses one torch thread). Results depend on (seed, n_starts, chunk_size)
    only, not on ``workers``. Points are in one family when some (P, Q) in the problem's symmetry group
    maps one onto the other within ``tol`` (default 1e-6 max|W|) after their losses and Hessian spectra
    agree (with ``merge_degenerate``, points with Hessian eigenvalues ~ 0, which lie on continua of
    critical points, are grouped by loss and index instead and flagged ``isolated=False``); each family
    gets its isotropy group (:func:`relulab.landscape.symmetry.isotropy_group`
    restricted to that symmetry group) and eigenvalue multiplicities. ``time_limit`` (seconds): chunks
    not finished by then are reported as failures and ``complete`` is False. ``initial_points`` (n, k, d):
    start from these instead (``n_starts`` is then n; start s is initial_points[s]).
    ``progress``: called as ``progress(done, n_starts, converged=...)`` after each chunk of starts.
    ``memory_budget`` (bytes, default 2 GiB): every start's outcome (its point, Hessian spectrum and
    bookkeeping) is kept until the grouping; a number of starts whose outcomes would not fit raises
    :class:`~relulab.core.errors.ResourceLimitError` before any is run.
    """
    from relulab.landscape.symmetry import find_equivalence, group_eigenvalues, isotropy_group

    _check_target(target)
    init = None
    if initial_points is not None:
        init, _ = problem._batch(initial_points)
        init = init.detach().cpu().numpy()
        n_starts = init.shape[0]
    n_starts = _positive("n_starts", n_starts, integer=True)
    memory_budget = _positive("memory_budget", memory_budget)
    need = n_starts * _bytes_per_start(problem)
    if need > memory_budget:
        from relulab.core.errors import ResourceLimitError

        raise ResourceLimitError(
            f"find_critical_points: n_starts={n_starts} keeps about {need / 2**30:.3g} GiB of outcomes "
            f"({_bytes_per_start(problem)} bytes per start), more than memory_budget = "
            f"{memory_budget / 2**30:.3g} GiB; use fewer starts (at most "
            f"{int(memory_budget // _bytes_per_start(problem))}) or raise memory_budget")
    chunk_size = max(1, _positive("chunk_size", chunk_size, integer=True))
    workers = _default_workers() if workers is None else _positive("workers", workers, integer=True)
    if workers < 1:
        raise InvalidInputError("workers must be at least 1")
    opts = dict(target=target, gtol=_positive("gtol", gtol), switch_gtol=_positive("switch_gtol", switch_gtol),
                max_flow_iters=_positive("max_flow_iters", max_flow_iters, True),
                max_newton_iters=_positive("max_newton_iters", max_newton_iters, True),
                max_escapes=_positive("max_escapes", max_escapes, True))
    t0 = time.time()
    deadline = None if time_limit is None else t0 + _positive("time_limit", time_limit)
    base = dict(V=problem.V.detach().cpu().numpy(), k=problem.k, a=problem.a.detach().cpu().numpy(),
                b=problem.b.detach().cpu().numpy(), seed=int(seed), init_scale=_positive("init_scale", init_scale),
                opts=opts, deadline=deadline)
    chunks = [list(range(i, min(n_starts, i + chunk_size))) for i in range(0, n_starts, chunk_size)]
    results = []
    n_proc = min(workers, len(chunks))
    payloads = [dict(base, starts=c, W0=None if init is None else init[c[0]:c[-1] + 1]) for c in chunks]
    def report(out):
        results.extend(out)
        if progress is not None:
            progress(len(results), n_starts, converged=sum(bool(r.get("converged")) for r in results))

    if n_proc <= 1:
        for pl in payloads:
            report(_chunk_worker(pl))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # fork where available (as torch's DataLoader does): no re-import of torch and no need for a
        # __main__ guard in user scripts; workers switch to one thread before any computation, so no
        # inherited OpenMP pool is used. Elsewhere spawn.
        method = "fork" if "fork" in mp.get_all_start_methods() and sys.platform.startswith("linux") else "spawn"
        with ProcessPoolExecutor(max_workers=n_proc, mp_context=mp.get_context(method)) as ex:
            for out in ex.map(_chunk_worker, [dict(pl, threads=1) for pl in payloads]):
                report(out)
    results.sort(key=lambda r: r["start"])

    row_colors, col_colors = problem.symmetry_colors()
    families: list[dict] = []
    failures = []
    n_conv = 0
    complete = True
    for r in results:
        if r.get("skipped"):
            failures.append(dict(start=r["start"], status="time limit (not started)"))
            complete = False
            continue
        if not r["converged"]:
            failures.append(dict(start=r["start"], status=r["status"], loss=r["loss"], grad_norm=r["grad_norm"]))
            if r["status"] == "time limit":
                complete = False
            continue
        n_conv += 1
        W, ev = r["W"], r["eigenvalues"]
        if merge_degenerate and r["n_zero"] > 0:
            for f in families:
                if not f["isolated"] and f["n_negative"] == r["n_negative"] \
                        and abs(f["loss"] - r["loss"]) <= 1e-9 * max(1.0, abs(r["loss"])):
                    f["starts"].append(r["start"])
                    if r["grad_norm"] < f["grad_norm"]:
                        f.update(W=W, ev=ev, grad_norm=r["grad_norm"], loss=r["loss"], n_zero=r["n_zero"])
                    break
            else:
                families.append(dict(W=W, ev=ev, loss=r["loss"], grad_norm=r["grad_norm"], starts=[r["start"]],
                                     n_negative=r["n_negative"], n_zero=r["n_zero"], isolated=False))
            continue
        scale = max(1.0, float(np.abs(W).max()))
        gtol_w = 1e-6 * scale if tol is None else float(tol)
        etol = 1e-6 * max(1.0, float(np.abs(ev).max()))
        for f in families:
            if not f["isolated"] or abs(f["loss"] - r["loss"]) > 1e-9 * max(1.0, abs(r["loss"])) or f["ev"].shape != ev.shape \
                    or float(np.abs(f["ev"] - ev).max()) > etol:
                continue
            if _equivalent(find_equivalence, f["W"], W, gtol_w, row_colors, col_colors):
                f["starts"].append(r["start"])
                if r["grad_norm"] < f["grad_norm"]:  # keep the best-polished member as representative
                    f.update(W=W, ev=ev, grad_norm=r["grad_norm"], loss=r["loss"], n_negative=r["n_negative"],
                             n_zero=r["n_zero"])
                break
        else:
            families.append(dict(W=W, ev=ev, loss=r["loss"], grad_norm=r["grad_norm"], starts=[r["start"]],
                                 n_negative=r["n_negative"], n_zero=r["n_zero"], isolated=True))
    families.sort(key=lambda f: (f["loss"], f["starts"][0]))
    out = []
    for i, f in enumerate(families):
        iso = _isotropy(isotropy_group, f["W"], tol, row_colors, col_colors)
        W = torch.as_tensor(f["W"]).to(dtype=problem.V.dtype, device=problem.V.device)
        if iso is None:
            iso_order, iso_desc, iso_complete = 0, "undetermined (entries ambiguous at every tolerance tried)", False
        else:
            iso_order, iso_desc, iso_complete = iso.order, iso.description, iso.complete
            order = iso.canonical_order
            W = W[torch.as_tensor(order[0])][:, torch.as_tensor(order[1])]
        groups = group_eigenvalues(f["ev"])
        out.append(CriticalPointFamily(
            family=i, kind=_kind(f["loss"], f["n_negative"], f["n_zero"], True, loss_tol), loss=f["loss"],
            count=len(f["starts"]), starts=f["starts"], W=W, grad_norm=f["grad_norm"], eig_min=float(f["ev"][0]),
            eig_max=float(f["ev"][-1]), n_negative=f["n_negative"], n_zero=f["n_zero"], isotropy_order=iso_order,
            isotropy=iso_desc, isotropy_complete=iso_complete,
            eigenvalue_groups=[[v, m] for v, m in zip(groups.values, groups.multiplicities)], isolated=f["isolated"]))
    settings = dict(opts, init_scale=init_scale, loss_tol=loss_tol, tol=tol, time_limit=time_limit,
                    merge_degenerate=merge_degenerate)
    return CriticalPointSearch(d=problem.d, k=problem.k, d_teacher=problem.d_teacher, n_starts=n_starts, seed=int(seed),
                               workers=n_proc if n_proc > 0 else 1, chunk_size=chunk_size, families=out,
                               failures=failures, n_converged=n_conv, complete=complete,
                               seconds=time.time() - t0, settings=settings)
