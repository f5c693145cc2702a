r"""Finite networks approaching their infinite-width kernel.

In the NTK parameterization (Jacot, Gabriel, Hongler 2018) a fully connected network computes
``z^{l+1} = sigma_w / sqrt(n_l) W^{l+1} phi(z^l) + sigma_b b^{l+1}`` with ``W, b ~ N(0, 1)``, and its
empirical NTK converges to the analytic one of :func:`relulab.kernels.analytic_ntk` as the width grows,
with fluctuations of order ``1 / sqrt(width)`` (Hanin and Nica 2019 for the finite-width corrections).
:func:`width_convergence` measures that: the relative Frobenius error
``|Theta_width - Theta_inf|_F / |Theta_inf|_F`` over seeds, for a list of widths, and the slope of
``log error`` against ``log width`` (about -1/2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from relulab.core.errors import InvalidInputError
from relulab.results import Result

__all__ = ["NTKMLP", "width_convergence", "WidthConvergence"]


class NTKMLP(nn.Module):
    """A fully connected network in NTK (or standard) parameterization with iid N(0, 1) parameters.

    ``depth`` hidden layers of ``width`` units, one output; ``activation`` relu, leaky_relu (``slope``),
    abs or maxout (rank ``k``); ``weight_var = sigma_w^2``, ``bias_var = sigma_b^2``, one number for
    every layer or one per layer (``depth + 1`` numbers, read-out last), as in
    :func:`relulab.kernels.analytic_ntk`. In the standard parameterization the same scales multiply
    the initial parameters instead of the forward pass.
    """

    def __init__(self, d0: int, width: int, depth: int, activation: str = "relu", *, slope: float = 0.01,
                 k: int = 2, weight_var=2.0, bias_var=0.0, parameterization: str = "ntk",
                 seed: int = 0, dtype=torch.float64, device=None):
        from relulab.kernels.analytic import _per_layer

        super().__init__()
        if activation not in ("relu", "leaky_relu", "abs", "maxout"):
            raise InvalidInputError(f"activation must be relu, leaky_relu, abs or maxout, got {activation!r}")
        if parameterization not in ("ntk", "standard"):
            raise InvalidInputError(f"parameterization must be 'ntk' or 'standard', got {parameterization!r}")
        if min(d0, width) < 1 or depth < 0:
            raise InvalidInputError(f"need d0 >= 1, width >= 1, depth >= 0; got {d0}, {width}, {depth}")
        g = torch.Generator().manual_seed(int(seed))
        self.activation, self.k, self.parameterization = activation, int(k), parameterization
        self.slope = {"relu": 0.0, "abs": -1.0}.get(activation, float(slope))
        self.sws = [math.sqrt(v) for v in _per_layer("weight_var", weight_var, depth, positive=True)]
        self.sbs = [math.sqrt(v) for v in _per_layer("bias_var", bias_var, depth, positive=False)]
        dims = [d0] + [width] * depth + [1]
        self.fans = dims[:-1]
        self.W, self.b = nn.ParameterList(), nn.ParameterList()
        for i in range(depth + 1):
            out = dims[i + 1] * (self.k if activation == "maxout" and i < depth else 1)
            ws, bs = (1.0, 1.0) if parameterization == "ntk" else (self.sws[i] / math.sqrt(dims[i]), self.sbs[i])
            W = torch.randn(out, dims[i], generator=g, dtype=torch.float64) * ws
            b = torch.randn(out, generator=g, dtype=torch.float64) * bs
            self.W.append(nn.Parameter(W.to(dtype=dtype, device=device)))
            self.b.append(nn.Parameter(b.to(dtype=dtype, device=device)))

    def forward(self, x):
        h = x.reshape(x.shape[0], -1)
        last = len(self.W) - 1
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            if self.parameterization == "ntk":
                z = (self.sws[i] / math.sqrt(self.fans[i])) * (h @ W.T) + self.sbs[i] * b
            else:
                z = h @ W.T + b
            if i == last:
                return z
            if self.activation == "maxout":
                h = z.reshape(z.shape[0], -1, self.k).amax(-1)
            else:
                h = torch.where(z > 0, z, self.slope * z)


@dataclass
class WidthConvergence(Result):
    """Relative error of empirical NTKs against the infinite-width kernel, per width.

    ``errors`` (len(widths), seeds): ``|Theta - Theta_inf|_F / |Theta_inf|_F``; ``mean``/``std`` over
    seeds; ``slope``: least-squares slope of log(mean error) against log(width) (about -0.5 expected).
    """

    widths: list
    errors: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    slope: float
    settings: dict = field(default_factory=dict)

    _summary_fields = ("widths", "mean", "std", "slope", "settings")

    def plot(self, ax=None):
        """Mean error against width (log-log) with one-standard-deviation bars and a width^-1/2 guide."""
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(5, 3.5))
        w = np.asarray(self.widths, dtype=float)
        ax.errorbar(w, self.mean, yerr=self.std, marker="o", capsize=3, label=f"measured (slope {self.slope:.2f})")
        ax.plot(w, self.mean[0] * np.sqrt(w[0] / w), ls="--", color="grey", label="width$^{-1/2}$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_ylabel("relative error of the empirical NTK")
        ax.legend(fontsize=8)
        return ax


def width_convergence(X, widths=(64, 256, 1024), *, depth: int = 2, activation: str = "relu", slope: float = 0.01,
                      k: int = 2, weight_var: float = 2.0, bias_var: float = 0.0, seeds: int = 3) -> WidthConvergence:
    """Empirical NTKs of :class:`NTKMLP` networks of growing ``widths`` (``seeds`` draws each) against
    :func:`relulab.kernels.analytic_ntk` on the inputs ``X`` (n, d)."""
    from relulab.kernels.analytic import analytic_ntk
    from relulab.kernels.empirical import empirical_ntk

    X = torch.as_tensor(X)
    if X.dim() != 2 or X.shape[0] < 1:
        raise InvalidInputError(f"X must have shape (n, d), got {tuple(X.shape)}")
    X = X.to(torch.float64)
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1 or seeds < 1:
        raise InvalidInputError("need at least two positive widths and seeds >= 1")
    kw = dict(depth=depth, activation=activation, slope=slope, k=k, weight_var=weight_var, bias_var=bias_var)
    _, ref = analytic_ntk(X, **kw)
    scale = float(ref.norm())
    errors = np.empty((len(widths), seeds))
    for i, w in enumerate(widths):
        for s in range(seeds):
            net = NTKMLP(X.shape[1], w, depth, activation, slope=slope, k=k, weight_var=weight_var,
                         bias_var=bias_var, seed=1000 * i + s, device=X.device)
            K = empirical_ntk(net, X).kernel
            errors[i, s] = float((K - ref).norm()) / scale
    mean, std = errors.mean(1), errors.std(1)
    fit = float(np.polyfit(np.log(widths), np.log(mean), 1)[0])
    return WidthConvergence(widths=widths, errors=errors, mean=mean, std=std, slope=fit,
                            settings={**kw, "seeds": seeds, "n": int(X.shape[0]), "d": int(X.shape[1])})
