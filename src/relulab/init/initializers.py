"""Maxout initialization of torch models (Tseran & Montufar, NeurIPS 2021 and ICML 2023).

Every affine layer (``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d``, the linear part of
:class:`relulab.nn.Maxout`) gets weights ``W_ij ~ N(0, c / fan_in)`` and zero biases, where ``c`` is
chosen from the layer the affine map feeds:

* a maxout unit of rank ``K`` (``Maxout``, or an affine layer followed by ``GroupMax(K)``):
  ``c = 1 / M_K``, ``M_K = E[Xi(N(0,1), K)^2]`` (ICML 2023, Section on parameter initialization);
* the same followed by a max-pool over ``m`` outputs: ``c = 1 / M_{K m}`` (the paper's max-pooling
  initialization for convolutional networks);
* ReLU, leaky ReLU (slope ``a``) and absolute value: ``c = 2``, ``2 / (1 + a^2)``, ``1`` (the same
  rule ``c = 1 / E[a(z)^2]``, which for ReLU is He et al.'s initialization);
* nothing nonlinear (a hidden linear layer, or the output layer): ``c = 1`` (the paper's output layer
  uses ``C = 1``).

The execution order of the layers is read from a ``torch.fx`` trace, so ``nn.Sequential`` models and
traceable custom modules (including functional ``F.relu``) are both understood.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from relulab import nn as rnn
from relulab.core.errors import InvalidInputError, UnsupportedLayerError
from relulab.core.recognize import trace
from relulab.init.constants import _rank, activation_second_moment

__all__ = ["LayerInit", "init_plan", "maxout_"]

_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d)
# modules that neither hold weights to set nor change which nonlinearity an affine layer feeds
_NEUTRAL = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.BatchNorm1d, nn.BatchNorm2d,
            nn.AvgPool1d, nn.AvgPool2d, nn.Softmax, nn.LogSoftmax)
# parameterized modules left as they are (their default identity-like initialization is kept)
_KEEP = (nn.BatchNorm1d, nn.BatchNorm2d)
_RELU_FNS = {torch.relu, F.relu}
_ABS_FNS = {torch.abs}
_NEUTRAL_FNS = {torch.flatten, torch.add, torch.reshape}
_NEUTRAL_METHODS = {"view", "reshape", "flatten", "size", "contiguous", "__add__", "add"}


@dataclass
class _Op:
    """One node of the traced graph, classified."""

    name: str
    role: str  # input, affine, maxout, act, pool, neutral, output, other
    kind: str  # linear / conv1d / conv2d / maxout / groupmax / relu / leaky_relu / abs / maxpool / ...
    path: str = ""
    module: nn.Module | None = None
    k: int = 1
    window: int = 1
    slope: float = 0.0
    args: tuple = ()
    users: tuple = ()


def _window(m) -> int:
    ks = m.kernel_size
    dims = 1 if isinstance(m, nn.MaxPool1d) else 2
    if isinstance(ks, int):
        return ks ** dims
    return int(math.prod(ks))


def _classify_module(m: nn.Module) -> tuple[str, str, dict]:
    if isinstance(m, rnn.Maxout):
        return "maxout", "maxout", {"k": m.k}
    if isinstance(m, nn.Linear):
        return "affine", "linear", {}
    if isinstance(m, nn.Conv1d):
        return "affine", "conv1d", {}
    if isinstance(m, nn.Conv2d):
        return "affine", "conv2d", {}
    if isinstance(m, rnn.GroupMax):
        return "act", "groupmax", {"k": m.k}
    if isinstance(m, nn.ReLU):
        return "act", "relu", {}
    if isinstance(m, nn.LeakyReLU):
        return "act", "leaky_relu", {"slope": float(m.negative_slope)}
    if isinstance(m, rnn.Abs):
        return "act", "abs", {}
    if isinstance(m, _POOLS):
        return "pool", "maxpool", {"window": _window(m)}
    if isinstance(m, _NEUTRAL):
        return "neutral", type(m).__name__.lower(), {}
    return "other", type(m).__name__, {}


def _trace(module: nn.Module) -> list[_Op]:
    """The model's graph in execution order, each node classified (see :class:`_Op`)."""
    if not isinstance(module, nn.Module):
        raise UnsupportedLayerError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if isinstance(module, (*_AFFINE, *_POOLS, rnn.Maxout, rnn.GroupMax, rnn.Abs, nn.ReLU, nn.LeakyReLU)):
        # a lone layer traces into functional calls; wrapped, it stays one recognizable module
        ops = _trace(nn.Sequential(module))
        for op in ops:
            op.path = "" if op.path == "0" else op.path[2:] if op.path.startswith("0.") else op.path
        return ops
    return _classify(module, _trace_graph(module))


def _trace_graph(module: nn.Module) -> fx.Graph:
    try:
        return trace(module)
    except Exception as e:  # fx raises many kinds of errors on data-dependent control flow
        raise UnsupportedLayerError(
            f"{type(module).__name__} cannot be traced by torch.fx ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); relulab.init needs the order of the layers") from None


def _classify(module: nn.Module, graph: fx.Graph) -> list[_Op]:
    mods = dict(module.named_modules())
    ops = []
    for n in graph.nodes:
        args = tuple(a.name for a in n.all_input_nodes)
        users = tuple(u.name for u in n.users)
        if n.op == "placeholder":
            ops.append(_Op(n.name, "input", "input", args=args, users=users))
        elif n.op == "output":
            ops.append(_Op(n.name, "output", "output", args=args, users=users))
        elif n.op == "call_module":
            m = mods[n.target]
            role, kind, extra = _classify_module(m)
            ops.append(_Op(n.name, role, kind, path=str(n.target), module=m, args=args, users=users, **extra))
        elif n.op == "call_function" and n.target in _RELU_FNS:
            ops.append(_Op(n.name, "act", "relu", args=args, users=users))
        elif n.op == "call_function" and n.target is F.leaky_relu:
            slope = n.args[1] if len(n.args) > 1 else n.kwargs.get("negative_slope", 0.01)
            ops.append(_Op(n.name, "act", "leaky_relu", slope=float(slope), args=args, users=users))
        elif (n.op == "call_function" and n.target in _ABS_FNS) or (n.op == "call_method" and n.target == "abs"):
            ops.append(_Op(n.name, "act", "abs", args=args, users=users))
        elif (n.op == "call_function" and (n.target in _NEUTRAL_FNS or getattr(n.target, "__name__", "") in
                                           ("add", "getitem", "getattr"))) or (
                n.op == "call_method" and n.target in _NEUTRAL_METHODS):
            ops.append(_Op(n.name, "neutral", str(getattr(n.target, "__name__", n.target)), args=args, users=users))
        else:
            target = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", repr(n.target))
            ops.append(_Op(n.name, "other", str(target), args=args, users=users))
    return ops


def _next(ops_by_name: dict, name: str) -> list[_Op]:
    """The first non-neutral nodes downstream of ``name``."""
    out, seen, stack = [], set(), list(ops_by_name[name].users)
    while stack:
        u = stack.pop()
        if u in seen:
            continue
        seen.add(u)
        op = ops_by_name[u]
        if op.role == "neutral":
            stack.extend(op.users)
        else:
            out.append(op)
    return out


def _describe(op: _Op) -> str:
    where = f" at '{op.path}'" if op.path else f" (graph node '{op.name}')"
    return f"{op.kind}{where}"


@dataclass
class LayerInit:
    """How :func:`maxout_` initializes one affine layer.

    ``activation``: what the layer feeds (``maxout``, ``relu``, ``leaky_relu``, ``abs``, ``linear`` for a
    hidden linear layer, ``output`` for the last layer); ``rank``: maxout rank (1 otherwise); ``pool``:
    the max-pool window that follows, if any; ``c``: the scale, ``std = sqrt(c / fan_in)``.
    """

    path: str
    kind: str
    activation: str
    rank: int
    pool: int | None
    fan_in: int
    c: float
    std: float
    bias_std: float


def _fan_in(m: nn.Module) -> int:
    w = m.linear.weight if isinstance(m, rnn.Maxout) else m.weight
    return int(w[0].numel())


def init_plan(module: nn.Module, k: int | None = None, *, c: float | None = None, output_c: float = 1.0,
              bias_std: float = 0.0, pool: bool = True) -> list[LayerInit]:
    """The per-layer initialization :func:`maxout_` would apply, in execution order (nothing is changed).

    Raises :class:`~relulab.core.errors.UnsupportedLayerError` for layers it cannot initialize
    meaningfully (parameterized modules other than Linear/Conv1d/Conv2d/Maxout/BatchNorm, affine layers
    feeding an unknown nonlinearity, untraceable models).
    """
    if not isinstance(module, nn.Module):
        raise UnsupportedLayerError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if k is not None:
        k = _rank(k)
    for name, val in (("c", c), ("output_c", output_c)):
        if val is not None and not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
            raise InvalidInputError(f"{name} must be a positive number, got {val!r}")
    if not (isinstance(bias_std, (int, float)) and math.isfinite(bias_std) and bias_std >= 0):
        raise InvalidInputError(f"bias_std must be a non-negative number, got {bias_std!r}")
    for path, m in module.named_modules():
        if isinstance(m, (*_KEEP, *_AFFINE)):
            continue
        if any(True for _ in m.parameters(recurse=False)):
            raise UnsupportedLayerError(
                f"cannot initialize {type(m).__name__} at '{path or type(m).__name__}': relulab.init supports "
                f"Linear, Conv1d, Conv2d, relulab.nn.Maxout (and leaves BatchNorm as is)")
    ops = _trace(module)
    by_name = {op.name: op for op in ops}
    plan = []
    for op in ops:
        if op.role not in ("affine", "maxout"):
            continue
        if op.role == "maxout":
            activation, rank, src = "maxout", op.k, op
        else:
            nxt = _next(by_name, op.name)
            kinds = {(o.role, o.kind, o.k, o.slope) for o in nxt}
            if not nxt or all(o.role == "output" for o in nxt):
                activation, rank, src = "output", 1, None
            elif len(kinds) > 1:
                raise UnsupportedLayerError(
                    f"{_describe(op)} feeds several different layers ({', '.join(sorted(_describe(o) for o in nxt))}); "
                    f"relulab.init cannot choose one scale for it")
            else:
                o = nxt[0]
                if o.role == "affine" or o.role == "maxout":
                    activation, rank, src = "linear", 1, None
                elif o.role == "pool":
                    activation, rank, src = "linear", 1, op  # the pool is found below
                elif o.role == "act" and o.kind == "groupmax":
                    activation, rank, src = "maxout", o.k, o
                elif o.role == "act":
                    activation, rank, src = o.kind, 1, o
                else:
                    raise UnsupportedLayerError(
                        f"{_describe(op)} feeds {_describe(o)}, for which relulab.init has no variance rule; "
                        f"supported nonlinearities: relulab.nn.Maxout, relulab.nn.GroupMax, ReLU, LeakyReLU, "
                        f"relulab.nn.Abs, MaxPool1d/2d")
        window = None
        if pool and src is not None:
            after = _next(by_name, src.name)
            if after and all(o.role == "pool" for o in after) and len({o.window for o in after}) == 1:
                window = after[0].window
        if activation == "maxout" and k is not None:
            rank = k
        slope = src.slope if (src is not None and activation == "leaky_relu") else 0.01
        if activation == "output":
            scale = float(output_c)
        elif c is not None:
            scale = float(c)
        else:
            act = "linear" if activation == "linear" else activation
            scale = 1.0 / activation_second_moment(act, rank if act == "maxout" else 1, window, slope)
        fan_in = _fan_in(op.module)
        kind = "linear" if op.role == "maxout" else op.kind
        path = op.path
        if op.role == "maxout":
            path = f"{path}.linear" if path else "linear"
        plan.append(LayerInit(path=path, kind=kind,
                              activation=activation, rank=rank, pool=window, fan_in=fan_in, c=scale,
                              std=math.sqrt(scale / fan_in), bias_std=float(bias_std)))
    return plan


def maxout_(module: nn.Module, k: int | None = None, *, c: float | None = None, output_c: float = 1.0,
            bias_std: float = 0.0, pool: bool = True, generator: torch.Generator | None = None) -> nn.Module:
    """Initialize ``module`` in place with the maxout initialization; returns ``module``.

    Weights ``N(0, c / fan_in)`` with ``c`` from :func:`init_plan` (``c = 1 / M_K`` for maxout rank
    ``K``, ``1 / M_{K m}`` in front of a max-pool of ``m``), biases zero (or ``N(0, bias_std^2)``).
    ``k`` overrides every detected maxout rank; ``c`` overrides the scale of every hidden layer (``c=2``
    is the naive He initialization); ``output_c`` is the scale of the last layer; ``pool=False``
    ignores max-pooling; ``generator`` makes the draw reproducible.
    """
    plan = init_plan(module, k, c=c, output_c=output_c, bias_std=bias_std, pool=pool)
    mods = dict(module.named_modules())
    with torch.no_grad():
        for entry in plan:
            m = mods[entry.path] if entry.path else module
            m.weight.normal_(0.0, entry.std, generator=generator)
            if m.bias is not None:
                if entry.bias_std > 0:
                    m.bias.normal_(0.0, entry.bias_std, generator=generator)
                else:
                    m.bias.zero_()
    return module
