"""Moments of input-output Jacobian-vector products and curve length distortion of maxout networks.

Tseran & Montufar, "Expected Gradients of Maxout Networks and Consequences to Parameter
Initialization" (ICML 2023), Theorem 1: for a fully-connected network with rank-``K`` maxout layers
of widths ``n_1, ..., n_{L-1}``, a linear output layer of width ``n_L``, weights iid Gaussian with
variance ``c / n_{l-1}`` (hidden) and ``C / n_{L-1}`` (output), biases independent of the weights, any
input ``x`` and any fixed unit vector ``u``, in stochastic order

    (C / n_0) chi2_{n_L} prod_{l=1}^{L-1} (c / n_l) sum_{i=1}^{n_l} xi_{l,i}(chi2_1, K)
        <= ||J_N(x) u||^2 <=
    (C / n_0) chi2_{n_L} prod_{l=1}^{L-1} (c / n_l) sum_{i=1}^{n_l} Xi_{l,i}(chi2_1, K),

all factors independent (``xi``/``Xi``: smallest/largest of ``K`` iid ``chi2_1``). The reason: unit
``i`` of layer ``l`` passes the direction ``v`` on as ``w_{i,k*} . v``, whose square lies between the
smallest and largest of the ``K`` iid ``(w_{i,k} . v)^2``, whichever piece ``k*`` wins. Taking
expectations of increasing functions gives the paper's moment bounds, e.g.

    (C n_L / n_0) (c S)^{L-1} <= E||J_N(x) u||^2 <= (C n_L / n_0) (c L)^{L-1},

with ``S = E[xi(chi2_1, K)]``, ``L = E[Xi(chi2_1, K)]``; the same bounds hold for ``E||J u||^{2t}``
with ``t``-th moments of the bounding variables (``t = 2``: the fourth moment; ``t = 1/2``: the
expected norm, hence the expected length distortion of a curve). Here every Gaussian layer counts
with its own variance ``sigma_l^2``; a linear layer is the case ``K = 1`` (``chi2``).

With zero biases and ``u = x / |x|`` the map is positively homogeneous, ``J(x) x = N(x)``, and every
layer multiplies the expected squared length by exactly ``sigma_l^2 n_l M_K``; this is the quantity the
paper's initialization ``c = 1 / M_K`` keeps constant (in wide networks the propagated direction
aligns with the activation, which is why the recommendation holds for generic ``u``).

Monte Carlo estimates use exact per-sample Jacobian-vector products (``torch.func.jvp``) through the
model's traced graph, batched, with intermediate outputs recorded after every max layer.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.fx as fx
from scipy import special
from torch import nn

from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.init.constants import _abs_edges, _chi2_order_moment, _gaussian_max_moment, _rank
from relulab.init.initializers import _classify, _Op, _trace_graph
from relulab.results import Result

__all__ = [
    "GradientMoments",
    "CurveLengthDistortion",
    "gradient_moments",
    "curve_length_distortion",
    "jacobian_moment_bounds",
    "aligned_moment",
    "expected_gradient_bounds",
]


# =============================================================================================
# moments of the bounding variables

def _gl_rule(n: int = 64):
    x, w = np.polynomial.legendre.leggauss(n)
    return x, w


@functools.lru_cache(maxsize=None)
def _abs_order_rule(k: int, which: str) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``t`` and weights (density included) for ``E[g(T)]``, ``T`` the max/min of ``k`` iid ``|G|``."""
    edges = np.asarray(_abs_edges(k, which), dtype=float)
    x, w = _gl_rule(64)
    ts, ws = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        ts.append(0.5 * (b - a) * x + 0.5 * (a + b))
        ws.append(0.5 * (b - a) * w)
    t, w = np.concatenate(ts), np.concatenate(ws)
    logphi = -0.5 * t * t - 0.5 * math.log(2 * math.pi)
    if which == "max":
        logF = np.log(special.erf(t / math.sqrt(2.0)))
    else:
        logF = math.log(2.0) + special.log_ndtr(-t)
    dens = np.exp(math.log(2.0 * k) + logphi + (k - 1) * logF)
    return t, w * dens


def _laplace_minus_one(k: int, which: str, s: np.ndarray) -> np.ndarray:
    """``E[exp(-s Y)] - 1`` for ``Y`` the max/min of ``k`` iid ``chi2_1`` (accurate for small ``s``)."""
    t, w = _abs_order_rule(k, which)
    return np.expm1(-np.outer(s, t * t)) @ w


@functools.lru_cache(maxsize=None)
def _sqrt_sum_mean(k: int, n: int, which: str) -> float:
    """``E[sqrt(Y_1 + ... + Y_n)]``, ``Y_i`` iid max/min of ``k`` ``chi2_1``.

    ``sqrt(y) = (1 / (2 sqrt(pi))) int_0^inf (1 - exp(-s y)) s^{-3/2} ds``, so with the Laplace
    transform ``phi(s) = E[exp(-s Y)]``: ``E[sqrt(sum)] = (1/(2 sqrt pi)) int (1 - phi(s)^n) s^{-3/2} ds``,
    integrated over ``v = log s`` by Gauss-Legendre panels. For ``k = 1`` the sum is ``chi2_n``:
    ``sqrt(2) Gamma((n+1)/2) / Gamma(n/2)``.
    """
    if k == 1:
        return math.exp(0.5 * math.log(2.0) + special.gammaln((n + 1) / 2.0) - special.gammaln(n / 2.0))
    return _sqrt_sum_laplace(k, n, which)


def _sqrt_sum_laplace(k: int, n: int, which: str) -> float:
    x, w = _gl_rule(48)
    V = 70.0
    edges = np.linspace(-V, V, 57)
    vs = np.concatenate([0.5 * (b - a) * x + 0.5 * (a + b) for a, b in zip(edges[:-1], edges[1:])])
    ws = np.concatenate([0.5 * (b - a) * w for a, b in zip(edges[:-1], edges[1:])])
    psi = _laplace_minus_one(k, which, np.exp(vs))
    with np.errstate(divide="ignore"):  # psi = -1 where phi(s) underflows: then 1 - phi^n = 1 exactly
        integrand = -np.expm1(n * np.log1p(psi)) * np.exp(-0.5 * vs)
    mean_y = _chi2_order_moment(k, 1.0, which)[0]
    # tails beyond |v| = V: (1 - phi^n) ~ n E[Y] s on the left and ~ 1 on the right
    tails = 2.0 * n * mean_y * math.exp(-0.5 * V) + 2.0 * math.exp(-0.5 * V)
    return float(integrand @ ws + tails) / (2.0 * math.sqrt(math.pi))


@functools.lru_cache(maxsize=None)
def _sum_moment(k: int, n: int, t: float, which: str) -> float:
    """``E[(Y_1 + ... + Y_n)^t]`` for ``Y_i`` iid max/min of ``k`` ``chi2_1``; ``t`` a positive integer or 1/2."""
    if t == 0.5:
        return _sqrt_sum_mean(k, n, which)
    if not float(t).is_integer() or t < 1:
        raise InvalidInputError(f"moment order t must be a positive integer or 1/2, got {t}")
    t = int(t)
    if k == 1:  # chi2_n: E[X^t] = n (n + 2) ... (n + 2t - 2)
        return float(math.prod(n + 2 * j for j in range(t)))
    mu = [1.0] + [_chi2_order_moment(k, float(r), which)[0] for r in range(1, t + 1)]
    # cumulants of one Y from its moments, scaled by n for the sum, back to moments
    kappa = [0.0] * (t + 1)
    for r in range(1, t + 1):
        kappa[r] = mu[r] - sum(math.comb(r - 1, j - 1) * kappa[j] * mu[r - j] for j in range(1, r))
    m = [1.0] + [0.0] * t
    for r in range(1, t + 1):
        m[r] = sum(math.comb(r - 1, j - 1) * n * kappa[j] * m[r - j] for j in range(1, r + 1))
    return m[t]


def _check_layers(layers) -> list[tuple[int, int, float]]:
    out = []
    for i, layer in enumerate(layers):
        try:
            n, k, var = layer
        except (TypeError, ValueError):
            raise InvalidInputError(f"layers[{i}] must be (width, rank, weight_variance), got {layer!r}") from None
        n, k = _rank(n, f"layers[{i}] width"), _rank(k, f"layers[{i}] rank")
        var = float(var)
        if not (math.isfinite(var) and var > 0):
            raise InvalidInputError(f"layers[{i}] weight variance must be positive, got {var}")
        out.append((n, k, var))
    return out


def jacobian_moment_bounds(layers, t: float = 1) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on ``E||J u||^{2t}`` after each layer, from the stochastic order of Theorem 1 (ICML 2023).

    ``layers``: ``[(width n_l, rank K_l, weight variance sigma_l^2), ...]`` from the input on (a linear
    layer has ``K = 1``). Returns arrays ``(lower, upper)`` with entry ``l`` equal to
    ``prod_{j <= l} sigma_j^{2t} E[(sum_{i <= n_j} Y_{j,i})^t]``, ``Y = xi(chi2_1, K_j)`` (lower) or
    ``Xi(chi2_1, K_j)`` (upper). ``t = 1`` gives ``prod sigma_j^2 n_j S_{K_j}`` and
    ``prod sigma_j^2 n_j L_{K_j}``; ``t = 2`` the fourth moment; ``t = 1/2`` the expected norm.
    """
    layers = _check_layers(layers)
    t = float(t)
    lo, hi = [], []
    a, b = 1.0, 1.0
    for n, k, var in layers:
        a *= var ** t * _sum_moment(k, n, t, "min")
        b *= var ** t * _sum_moment(k, n, t, "max")
        lo.append(a)
        hi.append(b)
    return np.asarray(lo), np.asarray(hi)


def aligned_moment(layers) -> np.ndarray:
    """``E||J u||^2`` after each layer for ``u = x / |x|`` and zero biases: ``prod sigma_j^2 n_j M_{K_j}``.

    Exact for Gaussian weights (positive homogeneity: ``J(x) x = N(x)``, and each layer scales the
    squared length by ``sigma^2 sum_i Xi_i(N(0,1), K)^2`` independently of the past).
    """
    layers = _check_layers(layers)
    out, a = [], 1.0
    for n, k, var in layers:
        a *= var * n * _gaussian_max_moment(k, 2.0, "max")[0]
        out.append(a)
    return np.asarray(out)


def expected_gradient_bounds(n_in: int, widths, k: int, c: float | None = None, C: float = 1.0,
                             n_out: int = 1) -> dict:
    """The paper's bounds on ``E||J_N(x) u||^2`` for the network ``n_in -> widths (maxout rank k) -> n_out``.

    Weights ``N(0, c / fan_in)`` (``c = 1 / M_k`` when ``None``), output weights ``N(0, C / fan_in)``.
    Returns ``{"lower": (C n_out / n_in) (c S)^{L-1}, "upper": (C n_out / n_in) (c L)^{L-1},
    "aligned": (C n_out / n_in) (c M)^{L-1}}`` (``L - 1 = len(widths)``).
    """
    k = _rank(k)
    n_in = _rank(n_in, "n_in")
    n_out = _rank(n_out, "n_out")
    widths = [_rank(w, "width") for w in widths]
    M = _gaussian_max_moment(k, 2.0, "max")[0]
    c = 1.0 / M if c is None else float(c)
    fans = [n_in] + widths
    layers = [(w, k, c / f) for w, f in zip(widths, fans[:-1])] + [(n_out, 1, C / fans[-1])]
    lo, hi = jacobian_moment_bounds(layers, 1)
    return {"lower": float(lo[-1]), "upper": float(hi[-1]), "aligned": float(aligned_moment(layers)[-1]),
            "c": c}


# =============================================================================================
# probing a model: exact Jacobian-vector products at every depth

class _Capture(fx.Interpreter):
    def __init__(self, gm, names):
        super().__init__(gm)
        self.names = set(names)
        self.captured = {}

    def run_node(self, n):
        out = super().run_node(n)
        if n.name in self.names:
            self.captured[n.name] = out
        return out


@dataclass
class _Structure:
    names: list          # graph nodes recorded, in order
    labels: list         # their module paths (or node names)
    factors: list        # per record: list of (affine path, width, rank) for the Theorem-1 chain
    valid: list          # per record: whether Theorem 1 applies up to it


def _label(path: str, name: str) -> str:
    # paths are relative to the wrapper nn.Sequential(model); report them relative to the model
    if path == "0":
        return name
    return path[2:] if path.startswith("0.") else (path or name)


def _records(ops: list[_Op]) -> list[_Op]:
    """The graph nodes whose outputs are measured: every max layer (activations, max-pools, maxout
    modules) in execution order, then the output if it is not one of them."""
    by_name = {op.name: op for op in ops}
    out_op = next(op for op in ops if op.role == "output")
    if len(out_op.args) != 1:
        raise InvalidInputError("the model must return one tensor")
    record = [op for op in ops if op.role in ("act", "pool", "maxout")]
    final = by_name[out_op.args[0]]
    if final not in record and final.role != "input":
        record.append(final)
    if not record:
        raise InvalidInputError("the model computes nothing from its input")
    return record


def _structure(records: list[_Op], net) -> _Structure:
    """Records and the Theorem-1 chain up to each, from :func:`relulab.core.recognize.architecture` of the
    model's PLNet ``net`` (None when it does not convert): Theorem 1 applies to a chain of linear layers each
    followed by a maxout layer (any rank, ``GroupMax`` included) or by nothing (rank 1), on inputs of one
    dimension; the chain's activated layers are the records before the output, in order."""
    from relulab.core.recognize import architecture

    names, labels = [op.name for op in records], [_label(op.path, op.name) for op in records]
    arch = architecture(net) if net is not None else None
    chain = arch.chain if arch is not None and arch.output_activation is None else ()
    ends = [i for i, (_, _, act, _) in enumerate(chain) if act is not None]  # chain entry of each max layer
    if not chain or len(ends) + 1 != len(records) or chain[-1][2] is not None:
        return _Structure(names, labels, [[] for _ in records], [False] * len(records))
    factors, valid = [], []
    for stop in ends + [len(chain) - 1]:
        part = chain[:stop + 1]
        factors.append([(path, width, int(p) if act == "maxout" else 1) for path, width, act, p in part])
        valid.append(all(act in (None, "maxout") for _, _, act, _ in part))
    return _Structure(names, labels, factors, valid)


class _Probe:
    """One model prepared for batched jvp with outputs recorded after every max layer, and its affine maps
    as :class:`~relulab.core.plnet.PLNet` reads them (None when it does not convert: no bounds then)."""

    def __init__(self, module: nn.Module, shape, dtype, device):
        from relulab.core.errors import RelulabError
        from relulab.core.plnet import PLNet

        root = nn.Sequential(module)  # a lone layer then stays one recognizable module
        root = root.to(device=device, dtype=dtype).eval()
        for p in root.parameters():
            p.requires_grad_(False)
        graph = _trace_graph(root)
        self.gm = fx.GraphModule(root, graph)
        try:
            self.net = (PLNet.from_torch(root, shape, dtype=torch.float64, device=device, verify=False)
                        if len(shape) == 1 else None)
        except RelulabError:
            self.net = None
        self.structure = _structure(_records(_classify(root, graph)), self.net)

    def jvp(self, x: torch.Tensor, u: torch.Tensor) -> list[torch.Tensor]:
        names = self.structure.names

        def f(z):
            interp = _Capture(self.gm, names)
            interp.run(z)
            return tuple(interp.captured[nm] for nm in names)

        with torch.no_grad():
            _, tangents = torch.func.jvp(f, (x,), (u,))
        return list(tangents)

    def weight_stats(self) -> dict:
        """Sum of squared weights, count and whether the bias is zero, for every chain layer (the affine
        maps the network computes, read off its PLNet)."""
        stats = {}
        layers = {} if self.net is None else {n.name: n.layer for n in self.net.nodes[1:]}
        for factors in self.structure.factors:
            for path, _, _ in factors:
                if path in stats:
                    continue
                m = layers[path]
                zero_bias = m.bias is None or bool((m.bias == 0).all())
                stats[path] = (float((m.weight.double() ** 2).sum()), m.weight.numel(), zero_bias)
        return stats


def _is_factory(model) -> bool:
    if isinstance(model, nn.Module):
        return False
    if callable(model):
        return True
    raise InvalidInputError(f"model must be a torch.nn.Module or a callable returning one, got {type(model).__name__}")


def _infer_input_shape(module: nn.Module, input_shape, x):
    if input_shape is not None:
        shape = (int(input_shape),) if isinstance(input_shape, int) else tuple(int(s) for s in input_shape)
        if not shape or any(s < 1 for s in shape):
            raise InvalidInputError(f"input_shape must be positive integers, got {input_shape}")
        return shape
    if x is not None:
        x = torch.as_tensor(x)
        return tuple(x.shape) if x.dim() == 1 else tuple(x.shape[1:])
    from relulab.core.recognize import input_shape_of

    shape = input_shape_of(module)
    if shape is None:
        raise InvalidInputError("input_shape is required (it cannot be read off this model); give input_shape or x")
    return shape


class _Models:
    """Iterates over the initializations to average over: one fixed module, or fresh draws of a factory."""

    def __init__(self, model, n_inits, seed, device):
        self.factory = _is_factory(model)
        if n_inits is None:
            n_inits = 16 if self.factory else 1
        if isinstance(n_inits, bool) or not isinstance(n_inits, int) or n_inits < 1:
            raise InvalidInputError(f"n_inits must be a positive integer, got {n_inits!r}")
        if not self.factory and n_inits != 1:
            raise InvalidInputError("n_inits > 1 needs a model factory (a callable returning a freshly "
                                    "initialized module); a fixed module has one initialization")
        self.model, self.n_inits, self.seed, self.device = model, n_inits, int(seed), torch.device(device)

    def first(self) -> nn.Module:
        return self.get(0)

    def get(self, i: int) -> nn.Module:
        if not self.factory:
            return copy.deepcopy(self.model)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed * 1_000_003 + i)
            m = self.model()
        if not isinstance(m, nn.Module):
            raise InvalidInputError(f"the model factory must return a torch.nn.Module, got {type(m).__name__}")
        return m


def _as_batch(v, shape, dtype, device, name) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=dtype, device=device)
    d = math.prod(shape)
    if v.numel() % d:
        raise InvalidInputError(f"{name} of shape {tuple(v.shape)} does not hold samples of shape {shape}")
    return v.reshape(-1, *shape)


def _mean_se(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over (inits, samples) and its standard error; samples of one init are correlated, so the
    error comes from the spread of the per-init means when there are several inits."""
    n_inits, n = values.shape[:2]
    mean = values.mean(axis=(0, 1))
    if n_inits >= 2:
        se = values.mean(axis=1).std(axis=0, ddof=1) / math.sqrt(n_inits)
    else:
        se = values[0].std(axis=0, ddof=1) / math.sqrt(max(n, 1)) if n > 1 else np.full_like(mean, np.nan)
    return mean, se


def _realized_layers(struct: _Structure, stats: dict) -> tuple[list, bool]:
    """Per record: the chain ``[(width, rank, realized weight variance)]``; and whether all biases are zero."""
    var = {p: s / max(c, 1) for p, (s, c, _) in stats.items()}
    zero = all(z for (_, _, z) in stats.values())
    return [[(w, k, var[p]) for p, w, k in f] for f in struct.factors], zero


def _bounds_per_depth(struct: _Structure, layers_per_depth: list, t: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = [], []
    for ok, layers in zip(struct.valid, layers_per_depth):
        if ok and layers:
            a, b = jacobian_moment_bounds(layers, t)
            lo.append(a[-1])
            hi.append(b[-1])
        else:
            lo.append(math.nan)
            hi.append(math.nan)
    return np.asarray(lo), np.asarray(hi)


def _plot_depth(ax, depths, mean, se, lower, upper, extra, ylabel, title):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    depths = np.asarray(depths)
    mean, se = np.asarray(mean, float), np.asarray(se, float)
    ax.errorbar(depths, mean, yerr=np.nan_to_num(2 * se), marker="o", ms=3, capsize=2, label="Monte Carlo (2 SE)")
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    if np.isfinite(lower).any():
        ax.plot(depths, lower, "k--", lw=1, label="lower bound")
        ax.plot(depths, upper, "k:", lw=1, label="upper bound")
        ax.fill_between(depths, lower, upper, color="0.9", zorder=0)
    for label, values, style in extra:
        values = np.asarray(values, float)
        if np.isfinite(values).any():
            ax.plot(depths, values, style, lw=1, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("depth (max layers)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


# =============================================================================================
# gradient moments

@dataclass
class GradientMoments(Result):
    """Monte Carlo moments of ``||J u||`` across depth, with the bounds of Theorem 1 (ICML 2023).

    Entry ``l`` refers to the map from the input to the output of the ``l``-th max layer (the last entry
    is the model output). ``sq_*``: ``E||J u||^2``; ``fourth_*``: ``E||J u||^4``; ``norm_*``: ``E||J u||``.
    ``*_lower``/``*_upper``: bounds from the stochastic order of Theorem 1 evaluated at the realized
    per-layer weight variances (``NaN`` where the model up to that depth is not a chain of Gaussian
    Linear / maxout layers). ``sq_aligned``: the exact value for ``u = x / |x|`` with zero biases,
    ``prod sigma^2 n M_K`` (``NaN`` with nonzero biases). ``*_se``: standard errors (between
    initializations when there are several).
    """

    depths: list
    labels: list
    widths: list
    input_dim: int
    directions: str
    n_inits: int
    n_samples: int
    sq_mean: np.ndarray
    sq_se: np.ndarray
    fourth_mean: np.ndarray
    fourth_se: np.ndarray
    norm_mean: np.ndarray
    norm_se: np.ndarray
    sq_lower: np.ndarray
    sq_upper: np.ndarray
    fourth_lower: np.ndarray
    fourth_upper: np.ndarray
    norm_lower: np.ndarray
    norm_upper: np.ndarray
    sq_aligned: np.ndarray
    bounds_apply: list
    weight_variances: dict = field(default_factory=dict)
    samples: np.ndarray | None = None

    _summary_fields = ("depths", "widths", "input_dim", "directions", "n_inits", "n_samples", "sq_mean",
                       "sq_se", "sq_lower", "sq_upper", "sq_aligned")

    def within_bounds(self, n_se: float = 4.0, moment: str = "sq") -> np.ndarray:
        """Per depth: whether the estimate lies in ``[lower - n_se SE, upper + n_se SE]`` (True where no bound)."""
        mean, se = getattr(self, f"{moment}_mean"), getattr(self, f"{moment}_se")
        lo, hi = getattr(self, f"{moment}_lower"), getattr(self, f"{moment}_upper")
        ok = (mean >= lo - n_se * se) & (mean <= hi + n_se * se)
        return np.where(np.isfinite(lo), ok, True)

    def plot(self, ax=None, moment: str = "sq"):
        """Estimate vs depth (log scale) with the bounds and, for ``sq``, the aligned-direction value."""
        names = {"sq": "E||J u||^2", "fourth": "E||J u||^4", "norm": "E||J u||"}
        extra = [("aligned u, zero bias", self.sq_aligned, "r-.")] if moment == "sq" else []
        return _plot_depth(ax, self.depths, getattr(self, f"{moment}_mean"), getattr(self, f"{moment}_se"),
                           getattr(self, f"{moment}_lower"), getattr(self, f"{moment}_upper"), extra,
                           names[moment], f"input-output Jacobian, u {self.directions}")


def gradient_moments(model, input_shape=None, *, x=None, directions="random", n_samples: int = 4096,
                     n_inits: int | None = None, batch_size: int = 8192, seed: int = 0,
                     dtype=torch.float64, device=None, return_samples: bool = False) -> GradientMoments:
    """Monte Carlo moments of ``||J_N(x) u||`` at every depth, with the paper's bounds alongside.

    ``model``: an ``nn.Module`` (one fixed initialization: the average is over inputs and directions)
    or a zero-argument callable returning a freshly initialized module (``n_inits`` draws, default 16,
    each seeded from ``seed``), e.g. ``lambda: relulab.init.maxout_(make_net())``.
    ``x``: inputs ``(B, *input_shape)`` or one input (cycled); default ``x ~ N(0, I)``.
    ``directions``: ``"random"`` (uniform on the unit sphere), ``"aligned"`` (``u = x / |x|``) or a
    tensor of directions (normalized, cycled). ``n_samples``: total number of (x, u) pairs, split
    evenly over the initializations. Each sample is one exact ``torch.func.jvp`` (batched).
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise InvalidInputError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = torch.device(device) if device is not None else (
        x.device if isinstance(x, torch.Tensor) else torch.device("cpu"))
    models = _Models(model, n_inits, seed, device)
    first = models.first()
    shape = _infer_input_shape(first, input_shape, x)
    d = math.prod(shape)
    mode = directions if isinstance(directions, str) else "given"
    if isinstance(directions, str) and directions not in ("random", "aligned"):
        raise InvalidInputError(f"directions must be 'random', 'aligned' or a tensor, got {directions!r}")
    gen = torch.Generator(device=device).manual_seed(int(seed))
    xs = None if x is None else _as_batch(x, shape, dtype, device, "x")
    us = None
    if mode == "given":
        us = _as_batch(directions, shape, dtype, device, "directions")
        norms = us.reshape(us.shape[0], -1).norm(dim=1)
        if (norms == 0).any():
            raise InvalidInputError("directions must be nonzero")
        us = us / norms.reshape(-1, *([1] * len(shape)))
    per = -(-n_samples // models.n_inits)
    sq_all, stats_all, struct, widths = [], {}, None, None
    offset = 0
    for i in range(models.n_inits):
        probe = _Probe(first if i == 0 else models.get(i), shape, dtype, device)
        if struct is None:
            struct = probe.structure
        elif len(probe.structure.names) != len(struct.names):
            raise InvalidInputError("the model factory returned models of different structure")
        for path, (s, c, z) in probe.weight_stats().items():
            s0, c0, z0 = stats_all.get(path, (0.0, 0, True))
            stats_all[path] = (s0 + s, c0 + c, z0 and z)
        rows = []
        for start in range(0, per, batch_size):
            b = min(batch_size, per - start)
            idx = torch.arange(offset + start, offset + start + b, device=device)
            if xs is None:
                xb = torch.randn((b, *shape), generator=gen, dtype=dtype, device=device)
            else:
                xb = xs[idx % xs.shape[0]]
            if mode == "random":
                ub = torch.randn((b, *shape), generator=gen, dtype=dtype, device=device)
            elif mode == "aligned":
                ub = xb.clone()
            else:
                ub = us[idx % us.shape[0]]
            un = ub.reshape(b, -1).norm(dim=1)
            if (un == 0).any():
                raise InvalidInputError("directions='aligned' needs nonzero inputs")
            ub = ub / un.reshape(-1, *([1] * len(shape)))
            tangents = probe.jvp(xb, ub)
            if widths is None:
                widths = [int(t[0].numel()) for t in tangents]
            rows.append(torch.stack([t.reshape(b, -1).pow(2).sum(1) for t in tangents], dim=1).double().cpu())
        offset += per
        sq_all.append(torch.cat(rows).numpy())
    sq = np.stack(sq_all)  # (inits, per, depths)
    sq_mean, sq_se = _mean_se(sq)
    fourth_mean, fourth_se = _mean_se(sq ** 2)
    norm_mean, norm_se = _mean_se(np.sqrt(sq))
    layers, zero_bias = _realized_layers(struct, stats_all)
    valid = list(struct.valid)
    sq_lo, sq_hi = _bounds_per_depth(struct, layers, 1)
    f_lo, f_hi = _bounds_per_depth(struct, layers, 2)
    n_lo, n_hi = _bounds_per_depth(struct, layers, 0.5)
    aligned = np.asarray([aligned_moment(ly)[-1] if (ok and ly and zero_bias) else math.nan
                          for ok, ly in zip(valid, layers)])
    return GradientMoments(
        depths=list(range(1, len(struct.names) + 1)), labels=list(struct.labels), widths=widths, input_dim=d,
        directions=mode, n_inits=models.n_inits, n_samples=int(sq.shape[0] * sq.shape[1]),
        sq_mean=sq_mean, sq_se=sq_se, fourth_mean=fourth_mean, fourth_se=fourth_se, norm_mean=norm_mean,
        norm_se=norm_se, sq_lower=sq_lo, sq_upper=sq_hi, fourth_lower=f_lo, fourth_upper=f_hi,
        norm_lower=n_lo, norm_upper=n_hi, sq_aligned=aligned, bounds_apply=valid,
        weight_variances={p: s / max(c, 1) for p, (s, c, _) in stats_all.items()},
        samples=sq.reshape(-1, sq.shape[-1]) if return_samples else None)


# =============================================================================================
# curve length distortion

@dataclass
class CurveLengthDistortion(Result):
    """Expected length of the image of a curve at every depth, relative to the curve's length.

    ``distortion_mean``: Monte Carlo mean of ``len(N_l(gamma)) / len(gamma)``; ``length_mean``: mean
    image length. ``lower``/``upper``: bounds on the expected distortion from the stochastic order of
    Theorem 1 at ``t = 1/2`` (``E sqrt`` of the bounding variables; the curve is independent of the
    weights), ``upper_jensen``: the looser ``sqrt`` of the bound on ``E||J u||^2`` (the form of the
    paper's curve-length corollary, via Jensen's inequality). ``method``: ``"exact"`` (segments cut at
    the exact breakpoints of ``relulab.regions.on_line``; the image of each piece is a segment) or
    ``"quadrature"`` (midpoint rule for ``int ||J(gamma(t)) gamma'(t)|| dt`` with ``n_points`` nodes; on a
    piecewise-linear network the error comes only from the pieces cut by a breakpoint).
    """

    depths: list
    labels: list
    widths: list
    curve: str
    method: str
    n_points: int
    n_inits: int
    n_curves: int
    input_length: float
    length_mean: np.ndarray
    length_se: np.ndarray
    distortion_mean: np.ndarray
    distortion_se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    upper_jensen: np.ndarray
    bounds_apply: list

    _summary_fields = ("depths", "widths", "curve", "method", "distortion_mean", "distortion_se", "lower",
                       "upper", "upper_jensen")

    def plot(self, ax=None):
        """Expected distortion vs depth with the bounds."""
        return _plot_depth(ax, self.depths, self.distortion_mean, self.distortion_se, self.lower, self.upper,
                           [("Jensen bound", self.upper_jensen, "g-.")], "E[len(image)] / len(curve)",
                           f"length distortion of a {self.curve} ({self.method})")


def _on_line():
    try:
        from relulab.regions import on_line
    except (ImportError, AttributeError):
        return None
    return on_line


def curve_length_distortion(model, input_shape=None, *, curve: str = "segment", n_curves: int = 32,
                            n_points: int = 1024, n_inits: int | None = None, endpoints=None,
                            radius: float | None = None, method: str = "auto", batch_size: int = 16384,
                            seed: int = 0, dtype=torch.float64, device=None) -> CurveLengthDistortion:
    """Expected length distortion of a segment or circle through the network, at every depth.

    ``curve="segment"``: from ``a`` to ``b``, both ``N(0, I)`` (or ``endpoints=(a, b)`` fixed);
    ``curve="circle"``: centre ``N(0, I)``, radius ``radius`` (default ``sqrt(input_dim)``) in a random
    2-plane. ``method``: ``"exact"`` (segments only; needs ``relulab.regions.on_line``),
    ``"quadrature"``, or ``"auto"`` (exact when available for segments). ``model``/``n_inits`` as in
    :func:`gradient_moments`.
    """
    if curve not in ("segment", "circle"):
        raise InvalidInputError(f"curve must be 'segment' or 'circle', got {curve!r}")
    if method not in ("auto", "exact", "quadrature"):
        raise InvalidInputError(f"method must be 'auto', 'exact' or 'quadrature', got {method!r}")
    for name, val, lo in (("n_curves", n_curves, 1), ("n_points", n_points, 1), ("batch_size", batch_size, 1)):
        if isinstance(val, bool) or not isinstance(val, int) or val < lo:
            raise InvalidInputError(f"{name} must be a positive integer, got {val!r}")
    on_line = _on_line()
    if method == "exact" and (curve != "segment" or on_line is None):
        raise InvalidInputError("method='exact' needs curve='segment' and relulab.regions.on_line"
                                + ("" if on_line is not None else " (not available in this installation)"))
    exact = method in ("exact", "auto") and curve == "segment" and on_line is not None
    device = torch.device(device) if device is not None else torch.device("cpu")
    models = _Models(model, n_inits, seed, device)
    first = models.first()
    shape = _infer_input_shape(first, input_shape, None)
    d = math.prod(shape)
    if curve == "circle" and d < 2:
        raise InvalidInputError("a circle needs an input of dimension >= 2")
    gen = torch.Generator(device=device).manual_seed(int(seed))
    fixed = None
    if endpoints is not None:
        if curve != "segment":
            raise InvalidInputError("endpoints are for curve='segment'")
        try:
            a, b = (_as_batch(e, shape, dtype, device, "endpoints")[0] for e in endpoints)
        except (TypeError, ValueError):
            raise InvalidInputError("endpoints must be a pair (a, b) of inputs") from None
        if torch.equal(a, b):
            raise InvalidInputError("the segment's endpoints coincide")
        fixed = (a, b)
    r = math.sqrt(d) if radius is None else float(radius)
    if not (math.isfinite(r) and r > 0):
        raise InvalidInputError(f"radius must be positive, got {radius!r}")
    nc = 1 if fixed is not None else n_curves  # a fixed segment is measured once per initialization
    per_init = []
    struct, widths, stats_all, in_len = None, None, {}, []
    for i in range(models.n_inits):
        module = first if i == 0 else models.get(i)
        probe = _Probe(module, shape, dtype, device)
        struct = struct or probe.structure
        for path, (s_, c_, z_) in probe.weight_stats().items():
            s0, c0, z0 = stats_all.get(path, (0.0, 0, True))
            stats_all[path] = (s0 + s_, c0 + c_, z0 and z_)
        if curve == "segment":
            if fixed is not None:
                A, B = fixed[0][None], fixed[1][None]
            else:
                A = torch.randn((nc, *shape), generator=gen, dtype=dtype, device=device)
                B = torch.randn((nc, *shape), generator=gen, dtype=dtype, device=device)
            lens = (B - A).reshape(nc, -1).norm(dim=1)
            if exact:
                seg, ts, wts = _exact_nodes(on_line, module, shape, A, B, dtype, device)
            else:
                ts = ((torch.arange(n_points, dtype=dtype, device=device) + 0.5) / n_points).repeat(nc)
                seg = torch.arange(nc, device=device).repeat_interleave(n_points)
                wts = torch.full_like(ts, 1.0 / n_points)
            view = (-1, *([1] * len(shape)))
            pts = A[seg] + ts.reshape(view) * (B - A)[seg]
            tans = (B - A)[seg]
        else:
            centers = torch.randn((nc, d), generator=gen, dtype=dtype, device=device)
            e1 = torch.randn((nc, d), generator=gen, dtype=dtype, device=device)
            e1 = e1 / e1.norm(dim=1, keepdim=True)
            e2 = torch.randn((nc, d), generator=gen, dtype=dtype, device=device)
            e2 = e2 - (e2 * e1).sum(1, keepdim=True) * e1
            e2 = e2 / e2.norm(dim=1, keepdim=True)
            ts = ((torch.arange(n_points, dtype=dtype, device=device) + 0.5) / n_points).repeat(nc)
            seg = torch.arange(nc, device=device).repeat_interleave(n_points)
            wts = torch.full_like(ts, 1.0 / n_points)
            ang = (2 * math.pi * ts)[:, None]
            pts = centers[seg] + r * (torch.cos(ang) * e1[seg] + torch.sin(ang) * e2[seg])
            tans = 2 * math.pi * r * (-torch.sin(ang) * e1[seg] + torch.cos(ang) * e2[seg])
            pts, tans = pts.reshape(-1, *shape), tans.reshape(-1, *shape)
            lens = torch.full((nc,), 2 * math.pi * r, dtype=dtype, device=device)
        in_len.extend(lens.double().cpu().tolist())
        acc = None
        for s in range(0, pts.shape[0], batch_size):
            tangents = probe.jvp(pts[s:s + batch_size], tans[s:s + batch_size])
            if widths is None:
                widths = [int(t[0].numel()) for t in tangents]
            w, sg = wts[s:s + batch_size], seg[s:s + batch_size]
            part = torch.zeros(nc, len(tangents), dtype=dtype, device=device)
            norms = torch.stack([t.reshape(t.shape[0], -1).norm(dim=1) for t in tangents], dim=1)
            part.index_add_(0, sg, norms * w[:, None])
            acc = part if acc is None else acc + part
        acc = acc.double().cpu()
        per_init.append(torch.stack([acc, acc / lens.double().cpu()[:, None]], dim=1).numpy())
    vals = np.stack(per_init)  # (inits, curves, 2, depths)
    length_mean, length_se = _mean_se(vals[:, :, 0])
    dist_mean, dist_se = _mean_se(vals[:, :, 1])
    layers, _ = _realized_layers(struct, stats_all)
    lo, hi = _bounds_per_depth(struct, layers, 0.5)
    _, sq_hi = _bounds_per_depth(struct, layers, 1)
    return CurveLengthDistortion(
        depths=list(range(1, len(struct.names) + 1)), labels=list(struct.labels), widths=widths, curve=curve,
        method="exact" if exact else "quadrature", n_points=n_points, n_inits=models.n_inits,
        n_curves=nc, input_length=float(np.mean(in_len)), length_mean=length_mean, length_se=length_se,
        distortion_mean=dist_mean, distortion_se=dist_se, lower=lo, upper=hi, upper_jensen=np.sqrt(sq_hi),
        bounds_apply=list(struct.valid))


def _exact_nodes(on_line, module, shape, A, B, dtype, device):
    """Pieces of the segments ``A[s] -> B[s]`` on which every layer is affine, from the exact breakpoints
    of ``relulab.regions.on_line``: segment index, midpoint ``t`` and length of every piece."""
    from relulab.core.plnet import PLNet

    net = PLNet.from_torch(module, shape, dtype=dtype, device=device)
    S = A.shape[0]
    res = on_line(net, A.reshape(S, -1), B.reshape(S, -1)) if S > 1 else None
    if res is not None and all(hasattr(res, f) for f in ("segment", "t0", "t1")):
        if hasattr(res, "complete") and not res.complete:
            raise DegenerateGeometryError("the exact line walk did not finish")
        t0 = torch.as_tensor(res.t0, dtype=dtype, device=device)
        t1 = torch.as_tensor(res.t1, dtype=dtype, device=device)
        seg = torch.as_tensor(res.segment, device=device).long()
        return seg, 0.5 * (t0 + t1), t1 - t0
    segs, mids, wts = [], [], []
    for s in range(S):
        part = on_line(net, A[s].reshape(-1), B[s].reshape(-1))
        bp = torch.as_tensor(part.breakpoints, dtype=dtype, device=device).reshape(-1)
        edges = torch.cat([bp.new_zeros(1), bp, bp.new_ones(1)])
        mids.append(0.5 * (edges[1:] + edges[:-1]))
        wts.append(edges[1:] - edges[:-1])
        segs.append(torch.full((len(bp) + 1,), s, dtype=torch.long, device=device))
    return torch.cat(segs), torch.cat(mids), torch.cat(wts)
