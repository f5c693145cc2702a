r"""Empirical neural tangent kernel of any torch model, and NTK spectra.

For a model ``f(theta, x) in R^o`` with trainable parameters ``theta`` (P numbers), the empirical NTK
is ``Theta(x, x') = J(x) J(x')^T in R^{o x o}``, ``J(x) = d f(theta, x) / d theta in R^{o x P}``
(Jacot et al. 2018). With per-parameter learning rates ``eta_p`` gradient descent follows the
weighted kernel ``sum_p eta_p J_p(x) J_p(x')^T``; ``learning_rates`` computes that one.

Three exact ways to compute a Gram block, all in ``torch.func``:

* ``"jacobian"``, Jacobian contraction: per-sample Jacobians ``vmap(jacrev(f))`` of a chunk of
  samples (``c x o x P`` numbers), contracted by one matrix product. Cost about
  ``3 F o n + 2 n1 n2 o^2 P`` (``F``: forward FLOPs per sample).
* ``"ntvp"``, NTK-vector products: for a chunk of ``x2``, the ``c2 o`` rows of ``J(x2)`` come from
  vector-Jacobian products with the basis vectors; pushing each through a Jacobian-vector product
  of ``f(x1)`` gives the columns ``J(x1) J(x2)^T e``. Cost about ``3 F o n1 n2`` (plus the vjps); it
  never forms the contraction, so it wins when a forward pass is cheap next to ``o P`` (many outputs,
  dense layers) and loses for weight-shared layers (convolutions, where ``F >> P``).
* ``"structured"``, for models whose trainable parameters all sit in ``nn.Linear`` layers applied
  once to ``(batch, features)`` inputs: the Jacobian of a layer ``z = W a + b`` is
  ``d f / d W = delta a^T`` with ``delta = d f / d z``, so
  ``Theta(x, x') = sum_l (delta_l(x) delta_l(x')^T) (eta_W <a_l(x), a_l(x')> + eta_b)`` without ever
  forming a Jacobian: cost ``2 n1 n2 o^2 sum_l (in_l + out_l)`` instead of ``2 n1 n2 o^2 sum_l in_l out_l``.

``method="auto"`` takes ``"structured"`` where it applies (it is never slower there), else the
cheaper of ``"jacobian"`` and ``"ntvp"`` by the FLOP estimates above, with ``F`` counted on one
sample by ``torch.utils.flop_counter`` and ``P`` the trainable parameter count; the estimates are
returned in ``NTKResult.cost_estimates``. Work is chunked over samples so that the estimated working
memory (beyond the returned kernel) stays within ``memory_budget``; the estimate counts Jacobian
chunks, the tensors autograd saves per sample (measured on one and two samples through
``saved_tensors_hooks``) times the number of outputs pushed back, and the kernel blocks.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.results import Result

__all__ = ["empirical_ntk", "NTKResult", "ntk_spectrum", "NTKSpectrum", "METHODS"]

METHODS = ("auto", "jacobian", "ntvp", "structured")


# ----------------------------------------------------------------------------- results
@dataclass
class NTKResult(Result):
    """An empirical NTK Gram matrix and how it was computed.

    ``kernel``: (n1, n2) for one output or ``trace_outputs=True``, else (n1, n2, o, o) with
    ``kernel[i, j] = J(x1_i) J(x2_j)^T``. ``estimated_peak_bytes``: estimated working memory beyond
    the kernel itself (``kernel_bytes``). ``cost_estimates``: FLOP estimates of the methods considered.
    """

    kernel: torch.Tensor
    method: str
    n1: int
    n2: int
    n_outputs: int
    n_params: int
    trace_outputs: bool
    chunk_sizes: tuple[int, int]
    estimated_peak_bytes: int
    kernel_bytes: int
    memory_budget: int
    cost_estimates: dict = field(default_factory=dict)
    dtype: str = "torch.float64"
    device: str = "cpu"
    seconds: float = 0.0

    _summary_fields = ("method", "n1", "n2", "n_outputs", "n_params", "trace_outputs", "chunk_sizes",
                       "estimated_peak_bytes", "kernel_bytes", "memory_budget", "cost_estimates", "dtype",
                       "device", "seconds")

    def spectrum(self) -> "NTKSpectrum":
        """Eigenvalues of the kernel (square Gram matrices only), see :func:`ntk_spectrum`."""
        return ntk_spectrum(self)


@dataclass
class NTKSpectrum(Result):
    """Spectrum of a symmetric positive semi-definite kernel matrix.

    ``eigenvalues`` in descending order; ``condition_number = lambda_max / lambda_min``, ``inf`` when
    ``lambda_min <= tol`` with ``tol = size * eps * lambda_max`` (numerically singular);
    ``effective_rank = (sum lambda)^2 / sum lambda^2``.
    """

    eigenvalues: np.ndarray
    lambda_min: float
    lambda_max: float
    condition_number: float
    trace: float
    effective_rank: float
    size: int
    tol: float

    _summary_fields = ("lambda_min", "lambda_max", "condition_number", "trace", "effective_rank", "size", "tol")

    def plot(self, ax=None, **kwargs):
        """Eigenvalues against their rank on a log scale; returns the matplotlib Axes."""
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(5, 3.5))
        ev = np.asarray(self.eigenvalues, dtype=float)
        pos = np.where(ev > 0, ev, np.nan)
        ax.semilogy(np.arange(1, len(ev) + 1), pos, marker=".", lw=1, **kwargs)
        ax.set_xlabel("rank")
        ax.set_ylabel("eigenvalue")
        ax.set_title(f"NTK spectrum (cond = {self.condition_number:.3g})")
        ax.grid(True, which="both", alpha=0.3)
        return ax


def ntk_spectrum(K) -> NTKSpectrum:
    """Spectrum of a kernel matrix: an ``NTKResult``, or a tensor/array of shape (n, n) or
    (n, n, o, o) (read as the (n o) x (n o) matrix with index (sample, output)).

    Eigenvalues by ``torch.linalg.eigvalsh`` in float64 on the symmetrized matrix ``(K + K^T) / 2``.
    """
    if isinstance(K, NTKResult):
        K = K.kernel
    K = torch.as_tensor(K)
    if K.dim() == 4:
        n, n2, o, o2 = K.shape
        if n != n2 or o != o2:
            raise InvalidInputError(f"a 4-D kernel must have shape (n, n, o, o), got {tuple(K.shape)}")
        K = K.permute(0, 2, 1, 3).reshape(n * o, n * o)
    if K.dim() != 2 or K.shape[0] != K.shape[1]:
        raise InvalidInputError(f"ntk_spectrum needs a square kernel matrix, got shape {tuple(K.shape)}")
    K = K.detach().to(torch.float64)
    if not torch.isfinite(K).all():
        raise InvalidInputError("the kernel matrix contains non-finite values")
    size = K.shape[0]
    if size == 0:
        raise InvalidInputError("the kernel matrix is empty")
    ev = torch.linalg.eigvalsh(0.5 * (K + K.T)).flip(0).cpu().numpy()
    lmax, lmin = float(ev[0]), float(ev[-1])
    tol = size * float(np.finfo(np.float64).eps) * max(abs(lmax), abs(lmin))
    cond = lmax / lmin if lmin > tol else math.inf
    s1, s2 = float(ev.sum()), float((ev * ev).sum())
    return NTKSpectrum(eigenvalues=ev, lambda_min=lmin, lambda_max=lmax, condition_number=cond, trace=s1,
                       effective_rank=(s1 * s1 / s2) if s2 > 0 else 0.0, size=size, tol=tol)


# ----------------------------------------------------------------------------- set-up
class _Setup:
    """The functional view of a model: parameters split into differentiated and constant ones."""

    def __init__(self, model, x1, x2, dtype, learning_rates):
        from relulab.core.plnet import PLNet

        self.input_shape = None
        if isinstance(model, PLNet):
            self.input_shape = model.input_shape
            model = model.to_torch()
        if not isinstance(model, nn.Module):
            raise InvalidInputError(f"model must be a torch nn.Module or a relulab PLNet, got {type(model).__name__}")
        for m in model.modules():
            if m.training and isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)):
                raise InvalidInputError(
                    f"model contains {type(m).__name__} in training mode, which couples or randomizes samples; "
                    "call model.eval() first")
        self.module = model
        named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise InvalidInputError("model has no trainable parameters (requires_grad=True)")
        if dtype is None:
            dtypes = {p.dtype for _, p in named}
            if len(dtypes) != 1:
                raise InvalidInputError(f"model parameters have mixed dtypes {sorted(map(str, dtypes))}; pass dtype=")
            dtype = dtypes.pop()
        if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise InvalidInputError(f"dtype must be a floating dtype, got {dtype}")
        self.dtype = dtype
        self.device = named[0][1].device
        lr = dict(learning_rates or {})
        known = {k for k, _ in named}
        unknown = sorted(set(lr) - known)
        if unknown:
            raise InvalidInputError(f"learning_rates names unknown or frozen parameters {unknown}; "
                                    f"trainable ones are {sorted(known)}")
        for k, v in lr.items():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise InvalidInputError(f"learning_rates[{k!r}] must be a finite number >= 0, got {v!r}")
        self.rates = {k: float(lr.get(k, 1.0)) for k, _ in named}
        self.weighted = any(v != 1.0 for v in self.rates.values())
        self.const = {k: p.detach() for k, p in model.named_parameters() if not p.requires_grad or self.rates.get(k, 1.0) == 0.0}
        self.params = {k: p.detach().to(dtype) for k, p in named if self.rates[k] > 0.0}
        self.const = {k: v.to(dtype) if v.is_floating_point() else v for k, v in self.const.items()}
        self.buffers = {k: (b.to(dtype) if b.is_floating_point() else b) for k, b in model.named_buffers()}
        self.scales = {k: math.sqrt(self.rates[k]) for k in self.params}
        # Jacobians are taken with respect to q = theta / sqrt(eta), which weights the kernel by eta
        self.q = {k: (v / self.scales[k] if self.weighted else v) for k, v in self.params.items()}
        self.n_params = sum(v.numel() for v in self.params.values())
        self.x1 = self._inputs(x1, "x1")
        self.sym = x2 is None or x2 is x1
        self.x2 = self.x1 if self.sym else self._inputs(x2, "x2")
        if self.x2.shape[1:] != self.x1.shape[1:]:
            raise InvalidInputError(f"x1 and x2 need the same per-sample shape, got {tuple(self.x1.shape[1:])} "
                                    f"and {tuple(self.x2.shape[1:])}")

    def _inputs(self, x, name) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            try:
                x = torch.as_tensor(np.asarray(x))
            except Exception as e:  # noqa: BLE001
                raise InvalidInputError(f"{name} must be a tensor or array with a leading batch dimension") from e
        if x.dim() < 1 or x.shape[0] == 0:
            raise InvalidInputError(f"{name} must have a leading batch dimension with at least one sample, "
                                    f"got shape {tuple(x.shape)}")
        if self.input_shape is not None and tuple(x.shape[1:]) != tuple(self.input_shape):
            if math.prod(x.shape[1:]) != math.prod(self.input_shape):
                raise InvalidInputError(f"{name} of shape {tuple(x.shape)} does not fit the network's input shape "
                                        f"{tuple(self.input_shape)}")
            x = x.reshape(x.shape[0], *self.input_shape)
        if x.is_complex():
            raise InvalidInputError(f"{name} must be real")
        x = x.to(device=self.device, dtype=self.dtype)
        if not torch.isfinite(x).all():
            raise InvalidInputError(f"{name} contains non-finite values")
        return x

    def forward(self, q, X) -> torch.Tensor:
        """Outputs (c, o) at parameters ``q`` (in the weighted coordinates)."""
        from torch.func import functional_call

        p = {k: v * self.scales[k] for k, v in q.items()} if self.weighted else q
        out = functional_call(self.module, ({**self.const, **p}, self.buffers), (X,))
        if not isinstance(out, torch.Tensor):
            raise InvalidInputError(f"model must return one tensor, got {type(out).__name__}")
        if out.dim() == 0 or out.shape[0] != X.shape[0]:
            raise InvalidInputError(f"model output of shape {tuple(out.shape)} has no batch dimension of size "
                                    f"{X.shape[0]}")
        return out.reshape(X.shape[0], -1)

    def probe(self) -> dict:
        """Outputs per sample, forward FLOPs per sample and autograd-saved bytes per sample."""
        from torch.utils.flop_counter import FlopCounterMode

        x = self.x1[:1]
        with torch.no_grad():
            o = self.forward(self.q, x).shape[1]
        try:
            with FlopCounterMode(display=False) as fc:
                with torch.no_grad():
                    self.forward(self.q, x)
            flops = float(fc.get_total_flops())
        except Exception:  # noqa: BLE001 - counting is advisory only
            flops = 0.0
        if flops <= 0:
            flops = 2.0 * self.n_params
        saved = []
        for b in (1, 2):
            xb = torch.cat([x] * b, 0)
            q = {k: v.detach().requires_grad_(True) for k, v in self.q.items()}
            ptrs = {v.data_ptr() for v in q.values()} | {v.data_ptr() for v in self.params.values()}
            total = [0]

            def pack(t):
                if t.data_ptr() not in ptrs:
                    total[0] += t.numel() * t.element_size()
                return t

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                self.forward(q, xb)
            saved.append(total[0])
        per_sample = max(saved[1] - saved[0], saved[0] // 2, o * _itemsize(self.dtype))
        return {"o": o, "flops": flops, "act_bytes": float(per_sample)}


def _itemsize(dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


# ----------------------------------------------------------------------------- structured (Linear) features
class _Structured:
    """Per-sample layer inputs a_l and output gradients delta_l of every trainable nn.Linear."""

    def __init__(self, setup: _Setup):
        self.s = setup
        self.layers = []  # (module, weight name or None, bias name or None)
        owner = {}
        for mname, m in setup.module.named_modules():
            for pname, _ in m.named_parameters(recurse=False):
                owner[f"{mname}.{pname}" if mname else pname] = (m, pname)
        by_module: dict = {}
        self.ok = True
        for k in setup.params:
            m, pname = owner[k]
            if not isinstance(m, nn.Linear) or pname not in ("weight", "bias"):
                self.ok = False
                return
            by_module.setdefault(id(m), [m, None, None])[1 if pname == "weight" else 2] = k
        self.layers = list(by_module.values())

    def features(self, X):
        """[(a_l (c, in) or None, delta_l (c, o, out))] for the chunk X; None if not applicable."""
        s = self.s
        mods = {id(m): i for i, (m, _, _) in enumerate(self.layers)}
        store: dict = {}
        bad = []

        def hook(module, inputs, output):
            i = mods[id(module)]
            if i in store or inputs[0].dim() != 2 or output.dim() != 2:
                bad.append(i)
                return None
            probe = torch.zeros_like(output, requires_grad=True)
            store[i] = (inputs[0].detach(), probe)
            return output + probe

        handles = [m.register_forward_hook(hook) for m, _, _ in self.layers]
        try:
            with torch.enable_grad():
                out = s.forward(s.q, X)  # q are the weighted coordinates: this evaluates at theta
        finally:
            for h in handles:
                h.remove()
        if bad or len(store) != len(self.layers):
            return None
        probes = [store[i][1] for i in range(len(self.layers))]
        c, o = out.shape
        deltas = [torch.zeros(c, o, p.shape[1], dtype=out.dtype, device=out.device) for p in probes]
        if out.requires_grad:
            for a in range(o):
                g = torch.autograd.grad(out[:, a].sum(), probes, retain_graph=a + 1 < o, allow_unused=True)
                for l, gl in enumerate(g):
                    if gl is not None:
                        deltas[l][:, a] = gl
        return [(store[l][0], deltas[l]) for l in range(len(self.layers))]

    def block(self, F1, F2, trace: bool):
        out = None
        for (m, wname, bname), (a1, d1), (a2, d2) in zip(self.layers, F1, F2):
            eta_w = self.s.rates[wname] if wname in self.s.params else 0.0
            eta_b = self.s.rates[bname] if bname in self.s.params else 0.0
            c1, o, w = d1.shape
            c2 = d2.shape[0]
            mult = a1 @ a2.T if eta_w else torch.zeros(c1, c2, dtype=d1.dtype, device=d1.device)
            if eta_w != 1.0:
                mult = mult * eta_w
            if eta_b:
                mult = mult + eta_b
            if trace:
                term = (d1.reshape(c1, o * w) @ d2.reshape(c2, o * w).T).mul_(mult)
            else:
                term = (d1.reshape(c1 * o, w) @ d2.reshape(c2 * o, w).T).reshape(c1, o, c2, o)
                term.mul_(mult[:, None, :, None])
            out = term if out is None else out.add_(term)
        if not trace:
            out = out.permute(0, 2, 1, 3)
        return out


# ----------------------------------------------------------------------------- Jacobian contraction and NTK-vector products
def _jacobian_features(setup: _Setup, X, out: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample Jacobians (c, o, P) in the weighted coordinates, written into ``out`` if given."""
    from torch.func import jacrev, vmap

    def single(q, x):
        return setup.forward(q, x.unsqueeze(0)).reshape(-1)

    jac = vmap(jacrev(single), in_dims=(None, 0))(setup.q, X)
    c = X.shape[0]
    parts = []
    for k in list(setup.q):
        v = jac.pop(k)
        parts.append(v.reshape(c, v.shape[1], -1))
    if out is None:
        return torch.cat(parts, 2) if len(parts) > 1 else parts[0]
    at = 0
    for v in parts:
        out[:, :, at:at + v.shape[2]].copy_(v)
        at += v.shape[2]
    return out


def _jacobian_block(J1, J2, trace: bool):
    c1, o, P = J1.shape
    c2 = J2.shape[0]
    if trace:
        return J1.reshape(c1, o * P) @ J2.reshape(c2, o * P).T
    return (J1.reshape(c1 * o, P) @ J2.reshape(c2 * o, P).T).reshape(c1, o, c2, o).permute(0, 2, 1, 3)


def _ntvp_block(setup: _Setup, X1, X2, o: int, trace: bool):
    """Theta block by NTK-vector products: vjps of f(X2) with basis vectors, then jvps of f(X1)."""
    from torch.func import jvp, vjp, vmap

    c1, c2 = X1.shape[0], X2.shape[0]
    _, vjp_fn = vjp(lambda q: setup.forward(q, X2), setup.q)
    basis = torch.eye(c2 * o, dtype=setup.dtype, device=setup.device).reshape(c2 * o, c2, o)
    (rows,) = vmap(vjp_fn)(basis)  # rows of J(X2), one per (sample, output)

    def column(v):
        return jvp(lambda q: setup.forward(q, X1), (setup.q,), (v,))[1]

    with warnings.catch_warnings():
        # torch's first forward-mode call loads decompositions through a deprecated torch.jit path
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
        cols = vmap(column)(rows).reshape(c2, o, c1, o)  # [j, b, i, a] = J_a(x1_i) . J_b(x2_j)
    if trace:
        return cols.diagonal(dim1=1, dim2=3).sum(-1).T
    return cols.permute(2, 0, 3, 1)


# ----------------------------------------------------------------------------- planning
def _chunks(n: int) -> list[int]:
    out, c = [], n
    while True:
        out.append(c)
        if c == 1:
            return out
        c = (c + 1) // 2


def _plan(method, info, n1, n2, sym, trace, P, S, budget, b):
    """Chunk sizes and the estimated working bytes (beyond the kernel) for a method; None if even
    chunks of 1 exceed ``budget`` (the working memory left once the kernel is allocated).

    Feature methods (``"jacobian"``, ``"structured"``) work in row panels: the features of ``c1`` rows
    are computed once (in sub-chunks of ``c2``) and kept, column chunks of ``c2`` are contracted
    against the whole panel. When one panel holds every row (``c1 = n1``), every feature is computed
    exactly once; otherwise a column's features are recomputed once per panel, and the panel is
    made as large as the budget allows (about four fifths of it) to keep the number of panels small."""
    o, A = info["o"], info["act_bytes"]
    oo = 1 if trace else o * o
    kblock = lambda c1, c2: 2 * c1 * c2 * oo * b  # noqa: E731 - a block and its permuted or mirrored copy
    if method in ("jacobian", "structured"):
        per = o * P * b if method == "jacobian" else S * b  # stored features per sample
        # computing a chunk's features: saved activations and their o cotangents, the features themselves
        make = lambda c: c * (A + o * A) + c * per  # noqa: E731
        for c2 in _chunks(n2):  # 1. one panel holding every row, the largest column chunk that fits
            cols = 0 if sym else c2 * per
            est = n1 * per + cols + make(min(c2, n1)) + kblock(n1, c2)
            if est <= budget:
                return {"chunks": (n1, c2), "bytes": int(est), "cache": True}
        for c2 in _chunks(n2):  # 2. panels: columns take about a fifth of the budget
            rest = budget - c2 * per - make(c2)
            if rest <= 0:
                continue
            c1 = min(n1, int(rest // (per + 2 * c2 * oo * b)))
            if c1 >= 1 and (c1 >= min(n1, 4 * c2) or c2 == 1):
                est = c1 * per + c2 * per + make(c2) + kblock(c1, c2)
                return {"chunks": (c1, c2), "bytes": int(est), "cache": False}
        return None
    # ntvp: vjp rows c2 o P, jvp activations for c2 o tangents over c1 samples, the block
    best = None
    for c2 in _chunks(n2):
        for c1 in _chunks(n1):
            est = c2 * o * P * b * 2 + c2 * o * A + 2 * c1 * c2 * o * A + 2 * c1 * c2 * o * o * b + kblock(c1, c2)
            if est <= budget:
                if best is None or c1 * c2 > best["chunks"][0] * best["chunks"][1]:
                    best = {"chunks": (c1, c2), "bytes": int(est), "cache": False}
                break
    return best


def _costs(info, n1, n2, sym, trace, P, layer_widths) -> dict:
    o, F = info["o"], info["flops"]
    pairs = n1 * (n1 + 1) / 2 if sym else n1 * n2
    n_all = n1 if sym else n1 + n2
    oo = o if trace else o * o
    costs = {"jacobian": 3 * F * o * n_all + 2 * pairs * oo * P,
             "ntvp": 3 * F * o * (pairs + n2)}
    if layer_widths is not None:
        costs["structured"] = 3 * F * o * n_all + 2 * pairs * sum(oo * w_out + w_in for w_in, w_out in layer_widths)
    return costs


# ----------------------------------------------------------------------------- driver
def empirical_ntk(model, x1, x2=None, *, method: str = "auto", memory_budget: int = 2**31,
                  trace_outputs: bool = False, dtype: torch.dtype | None = None,
                  learning_rates: Mapping[str, float] | None = None, chunk_size: int | None = None) -> NTKResult:
    r"""Empirical NTK Gram matrix ``Theta[i, j] = J(x1_i) J(x2_j)^T`` of a torch model.

    ``model``: an ``nn.Module`` (evaluated as is; BatchNorm/Dropout must be in eval mode) or a
    relulab ``PLNet`` (converted with ``net.to_torch()``; flattened inputs are reshaped to its input
    shape). ``J`` is the Jacobian of the flattened per-sample output (``o`` numbers) with respect to
    every parameter with ``requires_grad`` (P numbers). ``x1`` (n1, ...), ``x2`` (n2, ...) or None
    (the symmetric Gram of ``x1``, computed block-upper-triangular and mirrored).

    ``method``: ``"auto"``, ``"jacobian"``, ``"ntvp"`` or ``"structured"`` (see the module docstring
    for the three methods and the auto rule; all are exact). ``memory_budget`` (bytes, default 2 GiB)
    bounds the returned kernel plus the estimated working memory: a kernel larger than the budget
    raises :class:`~relulab.core.errors.ResourceLimitError` before anything is allocated, and chunk
    sizes are chosen from what the kernel leaves (row panels of Jacobians computed once and kept, see
    ``_plan``); ``chunk_size`` forces the sample chunk (both sides). ``trace_outputs``: return
    ``sum_a Theta[i, j, a, a]`` (n1, n2) instead of the (n1, n2, o, o) kernel; one-output models
    always give (n1, n2). ``dtype``: compute in this dtype (e.g. ``torch.float64``) on copies of
    the parameters; default the parameters' dtype. ``learning_rates``: ``{parameter name: eta}``
    (missing names: 1) for the rate-weighted kernel ``sum_p eta_p J_p J_p^T``.

    Returns an :class:`NTKResult` (``.kernel``, ``.method``, ``.chunk_sizes``,
    ``.estimated_peak_bytes``, ``.cost_estimates``, ...). Device: the parameters' device.
    """
    t0 = time.perf_counter()
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    if not (isinstance(memory_budget, (int, float)) and memory_budget > 0):
        raise InvalidInputError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    if chunk_size is not None and int(chunk_size) < 1:
        raise InvalidInputError(f"chunk_size must be >= 1, got {chunk_size}")
    setup = _Setup(model, x1, x2, dtype, learning_rates)
    info = setup.probe()
    o, P, b = info["o"], setup.n_params, _itemsize(setup.dtype)
    trace = bool(trace_outputs) or o == 1
    n1, n2, sym = setup.x1.shape[0], setup.x2.shape[0], setup.sym

    structured = _Structured(setup) if method in ("auto", "structured") else None
    if structured is not None and structured.ok and structured.features(setup.x1[:1]) is None:
        structured.ok = False
    if method == "structured" and not structured.ok:
        raise InvalidInputError("method='structured' needs every trainable parameter in an nn.Linear layer that is "
                                "called once per forward on a (batch, features) input; use 'jacobian' or 'ntvp'")
    widths = None
    S = 0
    if structured is not None and structured.ok:
        widths = [(m.in_features, m.out_features) for m, _, _ in structured.layers]
        S = sum(w_in + o * w_out for w_in, w_out in widths)
    costs = _costs(info, n1, n2, sym, trace, P, widths)
    budget = int(memory_budget)

    if method == "auto":
        order = ["structured"] if widths is not None else []
        order += sorted(("jacobian", "ntvp"), key=lambda m: costs[m])
    else:
        order = [method]
    shape = (n1, n2) if trace else (n1, n2, o, o)
    kernel_bytes = math.prod(shape) * b
    if kernel_bytes > budget:
        raise ResourceLimitError(
            f"empirical_ntk: the kernel itself ({' x '.join(map(str, shape))} numbers, {_size(kernel_bytes)}) "
            f"exceeds memory_budget = {_size(budget)}; raise memory_budget, use fewer points"
            + ("" if trace else " or trace_outputs=True"))
    work = budget - kernel_bytes
    plan = None
    for m in order:
        plan = _plan(m, info, n1, n2, sym, trace, P, S, work, b)
        if plan is not None:
            method = m
            break
    if plan is None:
        raise ResourceLimitError(
            f"empirical_ntk: memory_budget = {_size(budget)} leaves {_size(work)} beside the kernel "
            f"({_size(kernel_bytes)}), too little for method {order[0]!r} even with one sample per chunk "
            f"(P={P} parameters, {o} outputs); raise memory_budget")
    c1, c2 = plan["chunks"]
    if chunk_size is not None:
        c = int(chunk_size)
        c1, c2 = min(c, n1), min(c, n2)
    if method == "ntvp" and sym:
        c1 = c2 = min(c1, c2)

    K = torch.empty(shape, dtype=setup.dtype, device=setup.device)
    X1, X2 = setup.x1, setup.x2
    mirror = (lambda t: t.transpose(0, 1)) if trace else (lambda t: t.permute(1, 0, 3, 2))  # noqa: E731

    if method == "ntvp":
        rows = [(i, min(n1, i + c1)) for i in range(0, n1, c1)]
        cols = rows if sym else [(j, min(n2, j + c2)) for j in range(0, n2, c2)]
        for bi, (i0, i1) in enumerate(rows):
            for bj, (j0, j1) in enumerate(cols):
                if sym and bj < bi:
                    continue
                with torch.no_grad():
                    blk = _ntvp_block(setup, X1[i0:i1], X2[j0:j1], o, trace)
                K[i0:i1, j0:j1] = blk
                if sym and bj != bi:
                    K[j0:j1, i0:i1] = mirror(blk)
    else:
        _panels(setup, structured if method == "structured" else None, K, X1, X2, sym, trace, o, P, c1, c2, mirror)
    return NTKResult(kernel=K, method=method, n1=n1, n2=n2, n_outputs=o, n_params=P, trace_outputs=trace,
                     chunk_sizes=(c1, c2), estimated_peak_bytes=int(plan["bytes"]), kernel_bytes=kernel_bytes,
                     memory_budget=budget, cost_estimates={k: float(v) for k, v in costs.items()},
                     dtype=str(setup.dtype), device=str(setup.device), seconds=time.perf_counter() - t0)


def _size(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} bytes"


def _panels(setup, structured, K, X1, X2, sym, trace, o, P, c1, c2, mirror):
    """Row panels of ``c1`` samples whose features are computed once and kept; column chunks of ``c2``
    contracted against the whole panel. Symmetric kernels: only columns from the panel's first row on,
    the panel's own columns taken from the panel, the rest mirrored."""
    n1, n2 = X1.shape[0], X2.shape[0]

    def chunks(lo, hi):
        return [(j, min(hi, j + c2)) for j in range(lo, hi, c2)]

    for i0 in range(0, n1, c1):
        i1 = min(n1, i0 + c1)
        if structured is None:  # one (rows, o, P) tensor: one large product per column chunk
            panel = torch.empty(i1 - i0, o, P, dtype=setup.dtype, device=setup.device)
            for s0, s1 in chunks(i0, i1):
                _jacobian_features(setup, X1[s0:s1], out=panel[s0 - i0:s1 - i0])
            parts = [(i0, i1, panel)]
        else:  # structured features stay per sub-chunk
            parts = [(s0, s1, structured.features(X1[s0:s1])) for s0, s1 in chunks(i0, i1)]
        # symmetric: the panel's own columns in the chunks its features were made in (the last one ends at
        # the panel's end, wherever c2 falls), then the columns after it, mirrored; else every column
        inside = chunks(i0, i1) if sym else []
        for j0, j1 in inside + chunks(i1 if sym else 0, n2):
            own = j1 <= i1 and sym
            if not own:
                F2 = _jacobian_features(setup, X2[j0:j1]) if structured is None else structured.features(X2[j0:j1])
            elif structured is None:
                F2 = parts[0][2][j0 - i0:j1 - i0]
            else:
                F2 = next(F for a0, _, F in parts if a0 == j0)
            for r0, r1, F1 in parts:
                with torch.no_grad():
                    blk = _jacobian_block(F1, F2, trace) if structured is None else structured.block(F1, F2, trace)
                K[r0:r1, j0:j1] = blk
                if not own and sym:
                    K[j0:j1, r0:r1] = mirror(blk)
