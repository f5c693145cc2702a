"""Input densities for local complexity: an isotropic Gaussian, the uniform density on a box, and a
data set smoothed by ``N(0, r^2 I)`` (a Gaussian mixture with one component per point).

Besides sampling, each density gives what the exact estimators need in closed form: its integral
along a segment in the plane (:meth:`Density.segment_integrals`, for the exact 2-D local complexity)
and, for a line ``x0 + t u`` (``|u| = 1``), the ratio ``p(x0 + t u) / Q`` with
``Q = int_R p(x0 + s u) ds`` together with the range of ``t`` that carries the line's mass
(:meth:`Density.line_weights`, for the line estimator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from relulab.core.errors import InvalidInputError

__all__ = ["Density", "gaussian", "uniform_box", "smoothed_data"]

# half-width of the window kept around a Gaussian, in standard deviations: the density outside is
# below exp(-TAIL^2 / 2) ~ 1e-14 of its peak
TAIL = 8.0


def _positive(v, name) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise InvalidInputError(f"{name} must be a positive finite number, got {v!r}")
    return float(v)


def _vec(v, name, d=None) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
    if d is not None and t.numel() == 1:
        t = t.expand(d).clone()
    if d is not None and t.numel() != d:
        raise InvalidInputError(f"{name} has {t.numel()} entries, expected {d}")
    if not bool(torch.isfinite(t).all()):
        raise InvalidInputError(f"{name} has non-finite entries")
    return t


def _Phi(x):
    return 0.5 * torch.special.erfc(-x / math.sqrt(2.0))


@dataclass
class Density:
    """``kind`` "gaussian" (``center`` (d,), ``scale`` the standard deviation), "uniform" (box ``lo``,
    ``hi``) or "smoothed_data" (``points`` (n, d), ``scale`` = r)."""

    kind: str
    dim: int
    center: torch.Tensor | None = None
    scale: float = 0.0
    lo: torch.Tensor | None = None
    hi: torch.Tensor | None = None
    points: torch.Tensor | None = None

    def describe(self) -> str:
        if self.kind == "gaussian":
            return f"N(mean, {self.scale:g}^2 I) in R^{self.dim}"
        if self.kind == "uniform":
            return f"uniform on a box in R^{self.dim}"
        return f"{self.points.shape[0]} points smoothed by N(0, {self.scale:g}^2 I)"

    def to(self, dtype, device):
        f = {k: (v.to(dtype=dtype, device=device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return Density(**f)

    def check_dim(self, d: int) -> None:
        if d != self.dim:
            raise InvalidInputError(f"the density lives in R^{self.dim}, the network has {d} inputs")

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, gen: torch.Generator, dtype=torch.float64, device=None) -> torch.Tensor:
        d = self.dim
        if self.kind == "gaussian":
            x = torch.randn(n, d, generator=gen, dtype=torch.float64) * self.scale + self.center.double().cpu()
        elif self.kind == "uniform":
            lo, hi = self.lo.double().cpu(), self.hi.double().cpu()
            x = lo + (hi - lo) * torch.rand(n, d, generator=gen, dtype=torch.float64)
        else:
            pts = self.points.double().cpu()
            i = torch.randint(pts.shape[0], (n,), generator=gen)
            x = pts[i] + self.scale * torch.randn(n, d, generator=gen, dtype=torch.float64)
        return x.to(dtype=dtype, device=device)

    # ------------------------------------------------------------------ 2-D closed forms
    def window(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A box holding all but a negligible part of the mass (the box itself when uniform)."""
        if self.kind == "uniform":
            return self.lo, self.hi
        if self.kind == "gaussian":
            return self.center - TAIL * self.scale, self.center + TAIL * self.scale
        return self.points.min(0).values - TAIL * self.scale, self.points.max(0).values + TAIL * self.scale

    def segment_integrals(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``int_{[a, b]} p ds`` (arc length) for segments (E, d), in closed form.

        Isotropic Gaussian ``N(mu, s^2 I)``: along the segment ``|x - mu|^2 = h^2 + (v - v*)^2`` with
        ``h`` the distance from ``mu`` to the segment's line and ``v`` arc length, so the integral is
        ``phi_s(h)^(d-1)`` times ``Phi((v1 - v*)/s) - Phi((v0 - v*)/s)`` (``phi_s`` the 1-D normal
        density). Uniform: length / volume (segments inside the box)."""
        e = b - a
        L = e.norm(dim=1)
        if self.kind == "uniform":
            return L / float(torch.prod(self.hi - self.lo))
        centers = self.center[None] if self.kind == "gaussian" else self.points
        s = self.scale
        u = e / L.clamp_min(1e-300)[:, None]
        out = torch.zeros_like(L)
        chunk = max(1, int(2**22 // max(1, centers.shape[0])))
        for i in range(0, a.shape[0], chunk):
            aa, uu, LL = a[i:i + chunk], u[i:i + chunk], L[i:i + chunk]
            r = aa[:, None, :] - centers[None]  # (E, C, d)
            vstar = -(r * uu[:, None, :]).sum(-1)  # arc position of the foot of the perpendicular
            h2 = (r * r).sum(-1) - vstar**2
            dens = torch.exp(-h2.clamp_min(0) / (2 * s * s)) / (math.sqrt(2 * math.pi) * s) ** (self.dim - 1)
            prob = _Phi((LL[:, None] - vstar) / s) - _Phi(-vstar / s)
            out[i:i + chunk] = (dens * prob).mean(1)
        return torch.where(L > 0, out, torch.zeros_like(out))

    # ------------------------------------------------------------------ lines
    def line_weights(self, x0: torch.Tensor, u: torch.Tensor):
        """For lines ``x0 + t u`` (S, d), unit ``u``: ``(t_lo, t_hi, weight)``, the window of ``t``
        carrying the line's mass and ``weight(s_index, t)`` = ``p(x0 + t u) / int_R p(x0 + s u) ds``."""
        if self.kind == "uniform":
            lo, hi = self.lo[None], self.hi[None]
            with torch.no_grad():
                safe = torch.where(u.abs() > 0, u, torch.full_like(u, 1e-300))
                t1, t2 = (lo - x0) / safe, (hi - x0) / safe
                tmin = torch.where(u.abs() > 0, torch.minimum(t1, t2), torch.full_like(u, -math.inf)).amax(1)
                tmax = torch.where(u.abs() > 0, torch.maximum(t1, t2), torch.full_like(u, math.inf)).amin(1)
            length = (tmax - tmin).clamp_min(0)

            def weight(idx, t):
                inside = (t >= tmin[idx]) & (t <= tmax[idx])
                return torch.where(inside, 1.0 / length[idx].clamp_min(1e-300), torch.zeros_like(t))

            return tmin, tmax, weight
        centers = self.center[None] if self.kind == "gaussian" else self.points
        s = self.scale
        # (S, C) tables from inner products, never an (S, C, d) array
        tstar = u @ centers.T - (x0 * u).sum(1, keepdim=True)  # arc position of each centre's foot
        h2 = (centers * centers).sum(1)[None] - 2 * x0 @ centers.T + (x0 * x0).sum(1, keepdim=True) - tstar**2
        logq = -h2.clamp_min(0) / (2 * s * s)  # log of each component's mass on the line, up to a constant
        wq = torch.softmax(logq, dim=1)  # component weights given the line
        keep = wq > 1e-16
        big = torch.full_like(tstar, math.inf)
        t_lo = torch.where(keep, tstar, big).amin(1) - TAIL * s
        t_hi = torch.where(keep, tstar, -big).amax(1) + TAIL * s

        def weight(idx, t):
            out = torch.empty_like(t)
            step = max(1, int(2**22 // max(1, tstar.shape[1])))
            for i in range(0, t.shape[0], step):
                j = idx[i:i + step]
                z = (t[i:i + step, None] - tstar[j]) / s
                out[i:i + step] = (wq[j] * torch.exp(-0.5 * z * z)).sum(1)
            return out / (math.sqrt(2 * math.pi) * s)

        return t_lo, t_hi, weight


def gaussian(mean, std: float, dim: int | None = None) -> Density:
    """``N(mean, std^2 I)``; ``mean`` a vector (or a number repeated ``dim`` times)."""
    s = _positive(std, "std")
    m = _vec(mean, "mean", dim)
    return Density("gaussian", m.numel(), center=m, scale=s)


def uniform_box(lo, hi, dim: int | None = None) -> Density:
    """The uniform density on the box ``lo <= x <= hi``."""
    lo_ = _vec(lo, "lo", dim)
    hi_ = _vec(hi, "hi", lo_.numel() if dim is None else dim)
    if lo_.numel() != hi_.numel() or not bool((hi_ > lo_).all()):
        raise InvalidInputError("box needs lo < hi in every coordinate (and equal lengths)")
    return Density("uniform", lo_.numel(), lo=lo_, hi=hi_)


def smoothed_data(points, r: float) -> Density:
    """The empirical distribution of ``points`` (n, d) convolved with ``N(0, r^2 I)``."""
    rr = _positive(r, "r")
    p = torch.as_tensor(points, dtype=torch.float64)
    if p.dim() != 2 or p.shape[0] < 1:
        raise InvalidInputError(f"points must be an (n, d) array with n >= 1, got shape {tuple(p.shape)}")
    if not bool(torch.isfinite(p).all()):
        raise InvalidInputError("points have non-finite entries")
    return Density("smoothed_data", p.shape[1], points=p, scale=rr)
