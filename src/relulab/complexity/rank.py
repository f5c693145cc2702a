"""Local rank of the feature map and total variation of the network over data.

* :func:`local_rank` -- at each point, the Jacobian ``J`` of the feature map (the output of the last
  max layer) with respect to the input: its numerical rank ``#{s_i > tol}`` with
  ``tol = max(s) * max(shape) * eps`` (the LAPACK/NumPy convention, ``eps`` of the network's dtype)
  unless ``tol`` is given, and its effective rank ``exp(H(s / sum s))`` (Roy and Vetterli 2007).
  Patel and Montufar relate low local rank (learned low-dimensional features) to low local complexity.
* :func:`total_variation` -- ``E_x |grad f(x)|`` (Frobenius norm of the Jacobian) over the data with
  its standard error, and beside it an LC-based bound on the total variation of the *gradient*:
  crossing unit k's boundary changes ``grad f`` by a rank-one matrix of norm
  ``|df/dy_k| |dc_k| |grad z_k|`` (:func:`relulab.complexity.units.output_sensitivity`), so the
  p-weighted total variation of ``grad f``, in its bias-smoothed form
  ``TV_sigma(grad f) = sum_k E[ |grad z_k| phi_sigma(z_k) |df/dy_k| |dc_k| ]``, is at most
  ``G * LC_sigma`` with ``G = max_{x, k} |df/dy_k(x)| |dc_k|`` over the data (both estimated on the
  same points, so the inequality holds for the estimates exactly).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from relulab.complexity.units import check_inputs, output_sensitivity, unit_gradients
from relulab.core.errors import InvalidInputError
from relulab.results import Result

__all__ = ["LocalRank", "local_rank", "TotalVariation", "total_variation"]


@dataclass(repr=False)
class LocalRank(Result):
    """``ranks`` (n,) numerical ranks, ``effective_ranks`` (n,), ``singular_values`` (n, k),
    ``tolerances`` (n,) the thresholds used, ``tolerance_rule`` in words, ``mean_rank``,
    ``mean_effective_rank``, ``max_rank`` (min of d and the feature width)."""

    mean_rank: float
    mean_effective_rank: float
    max_rank: int
    ranks: torch.Tensor
    effective_ranks: torch.Tensor
    singular_values: torch.Tensor
    tolerances: torch.Tensor
    tolerance_rule: str
    seconds: float = 0.0

    _summary_fields = ("mean_rank", "mean_effective_rank", "max_rank", "tolerance_rule", "seconds")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        ax.hist(self.ranks.cpu().numpy(), bins=30, color="tab:green", alpha=0.7, label="numerical rank")
        ax.hist(self.effective_ranks.cpu().numpy(), bins=30, color="tab:purple", alpha=0.5, label="effective rank")
        ax.set_xlabel("rank of the feature Jacobian")
        ax.set_ylabel("points")
        ax.legend()
        return ax


def local_rank(net, x, tol: float | None = None, memory: int = 512 * 2**20) -> LocalRank:
    """Numerical and effective rank of the feature map's Jacobian at every point (module docstring)."""
    t0 = time.perf_counter()
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0
                            or not math.isfinite(tol)):
        raise InvalidInputError(f"tol must be a non-negative finite number or None, got {tol!r}")
    X = check_inputs(net, x, "x")
    ug = unit_gradients(net, X, gradients=False, features=True, memory=memory)
    return rank_from_features(net, ug.features, tol, t0)


def rank_from_features(net, F, tol, t0) -> LocalRank:
    """Ranks from feature Jacobians (n, r, n_feat) in an orthonormal tangent basis (rows are
    coordinates in that basis, so the singular values are those of the input-space Jacobians)."""
    s = torch.linalg.svdvals(F)
    eps = torch.finfo(net.dtype).eps
    if tol is None:
        tols = s.amax(1) * max(F.shape[1], F.shape[2], net.input_dim) * eps
        rule = "max(s) * max(d, width, basis) * eps(dtype)"
    else:
        tols = torch.full((s.shape[0],), float(tol), dtype=s.dtype, device=s.device)
        rule = f"absolute {tol:g}"
    ranks = (s > tols[:, None]).sum(1)
    p = s / s.sum(1, keepdim=True).clamp_min(1e-300)
    H = -(torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))).sum(1)
    eff = torch.where(s.sum(1) > 0, torch.exp(H), torch.zeros_like(H))
    return LocalRank(mean_rank=float(ranks.double().mean()), mean_effective_rank=float(eff.mean()),
                     max_rank=min(net.input_dim, F.shape[2]), ranks=ranks, effective_ranks=eff, singular_values=s,
                     tolerances=tols, tolerance_rule=rule, seconds=time.perf_counter() - t0)


@dataclass(repr=False)
class TotalVariation(Result):
    """``value = E|grad f|`` over the points and its ``stderr``; ``gradient_tv`` the bias-smoothed
    p-weighted total variation of ``grad f`` (with ``gradient_tv_stderr``), ``lc`` the ``LC_sigma`` on
    the same points, ``jump_bound`` ``G``, and ``bound = G * lc`` (>= ``gradient_tv``)."""

    value: float
    stderr: float
    gradient_tv: float
    gradient_tv_stderr: float
    lc: float
    jump_bound: float
    bound: float
    sigma: float
    n: int
    seconds: float = 0.0


def total_variation(net, x, sigma: float = 0.1, memory: int = 512 * 2**20) -> TotalVariation:
    """``E|grad f|`` over the points and the LC-based bound beside it (module docstring)."""
    from relulab.complexity.lc import _sigma

    t0 = time.perf_counter()
    s = _sigma(sigma)
    X = check_inputs(net, x, "x")
    n = X.shape[0]
    ug = unit_gradients(net, X, outputs=True, memory=memory)
    gnorm = ug.output_grad.flatten(1).norm(dim=1)
    sens, dc = output_sensitivity(net, X, memory=memory)
    dens = torch.where(torch.isfinite(ug.z), torch.exp(-0.5 * (ug.z / s) ** 2), torch.zeros_like(ug.z))
    dens = dens / (math.sqrt(2 * math.pi) * s)
    lc_pt = (ug.grad_norm * dens).sum(1)
    jump = sens * dc
    tv_pt = (ug.grad_norm * dens * jump).sum(1)
    G = float(jump.max()) if jump.numel() else 0.0

    def se(v):
        return float(v.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")

    lc = float(lc_pt.mean())
    return TotalVariation(value=float(gnorm.mean()), stderr=se(gnorm), gradient_tv=float(tv_pt.mean()),
                          gradient_tv_stderr=se(tv_pt), lc=lc, jump_bound=G, bound=G * lc, sigma=s, n=n,
                          seconds=time.perf_counter() - t0)
