"""Exact conversion between stock torch modules and :class:`~relulab.core.plnet.PLNet`.

Modules are traced with ``torch.fx``; every node must be a supported layer (see
:data:`relulab.core.errors.SUPPORTED_LAYERS`), a reshape, or an addition of two branches.
"""

from __future__ import annotations

import math
import operator

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from relulab import nn as rnn
from relulab.core import limits
from relulab.core.errors import SUPPORTED_LAYERS, InvalidInputError, UnsupportedLayerError
from relulab.core.layers import Add, AvgPool, ChannelScale, Conv, Dense, MaxUnits, Reshape, numel
from relulab.core.plnet import Node, PLNet
from relulab.core.recognize import LEAF_MODULES, trace

_LEAVES = LEAF_MODULES


def _unsupported(what: str, path: str, why: str = "") -> UnsupportedLayerError:
    where = f" at '{path}'" if path else ""
    extra = f" ({why})" if why else ""
    return UnsupportedLayerError(f"{what}{where} is not supported{extra}; relulab supports {SUPPORTED_LAYERS}")


def _conv_conf(m, name: str) -> dict:
    if m.padding_mode != "zeros":
        raise _unsupported(f"{type(m).__name__} with padding_mode={m.padding_mode!r}", name,
                           "only zero padding is affine in the input")
    if isinstance(m.padding, str):
        raise _unsupported(f"{type(m).__name__} with padding={m.padding!r}", name, "give explicit integer padding")
    return dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups)


def _misfit(m: nn.Module, name: str, shape, why: str) -> InvalidInputError:
    where = f" at '{name}'" if name else ""
    return InvalidInputError(f"{type(m).__name__}{where} does not fit its input of per-sample shape {tuple(shape)} "
                             f"({why}); check input_shape")


def _is_stock(m: nn.Module) -> bool:
    """A torch.nn layer (or one of relulab.nn's), as opposed to a user module to be traced."""
    return isinstance(m, _LEAVES) or type(m).__module__.startswith(("torch.nn.", "torch.ao.nn."))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else (prefix or name)


class _Builder:
    def __init__(self, input_shape, dtype, device):
        self.like = torch.zeros((), dtype=dtype, device=device)
        self.nodes = [Node(None, (), "input")]  # type: ignore[arg-type]
        self.shapes = [tuple(input_shape)]

    def add(self, layer, inputs, name) -> int:
        self.nodes.append(Node(layer, tuple(inputs), name))
        self.shapes.append(tuple(layer.out_shape))
        return len(self.nodes) - 1

    def t(self, p, name: str = "", what: str = "parameter"):
        if p is None:
            return None
        _check_param(p, name, what)
        return p.detach().to(device=self.like.device, dtype=self.like.dtype).clone()

    def reshape(self, src, shape, name) -> int:
        shape = tuple(int(s) for s in shape)
        if shape == self.shapes[src]:
            return src
        if numel(shape) != numel(self.shapes[src]):
            raise _unsupported(f"reshape from {self.shapes[src]} to {shape}", name, "it changes the number of features")
        return self.add(Reshape(self.shapes[src], shape, self.like), [src], name)

    def module(self, m: nn.Module, src: int, name: str) -> int:
        shape = self.shapes[src]
        kind = type(m).__name__
        if isinstance(m, nn.Linear):
            if len(shape) != 1:
                raise _unsupported(f"Linear on input of shape {shape}", name, "flatten first")
            if shape[0] != m.in_features:
                raise _misfit(m, name, shape, f"in_features={m.in_features}")
            return self.add(Dense(self.t(m.weight, name, "weight"), self.t(m.bias, name, "bias")), [src], name)
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            want = 2 if isinstance(m, nn.Conv1d) else 3
            if len(shape) != want:
                raise _unsupported(f"{kind} on input of shape {shape}", name,
                                   f"it needs (channels, {'length' if want == 2 else 'height, width'}) per sample")
            conf = _conv_conf(m, name)
            if shape[0] != m.in_channels:
                raise _misfit(m, name, shape, f"in_channels={m.in_channels}")
            try:
                layer = Conv(shape, self.t(m.weight, name, "weight"), self.t(m.bias, name, "bias"), **conf)
            except RuntimeError as e:
                raise _misfit(m, name, shape, str(e).splitlines()[0]) from None
            return self.add(layer, [src], name)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.training or m.running_mean is None:
                raise _unsupported(f"{kind} in training mode", name, "call model.eval() first")
            ok = len(shape) in ((1, 2) if isinstance(m, nn.BatchNorm1d) else (3,))
            if not ok or shape[0] != m.num_features:
                raise _misfit(m, name, shape, f"num_features={m.num_features}")
            # fold in float64 whatever the module's dtype: the folded map is then the module's exact math
            for what in ("running_var", "running_mean", "weight", "bias"):
                if getattr(m, what) is not None:
                    _check_param(getattr(m, what), name, what)
            var, mean = m.running_var.detach().double(), m.running_mean.detach().double()
            scale = (m.weight.detach().double() if m.affine else torch.ones_like(var)) / torch.sqrt(var + m.eps)
            shift = (m.bias.detach().double() if m.affine else torch.zeros_like(mean)) - mean * scale
            return self.add(ChannelScale(shape, self.t(scale, name, "folded scale 1/sqrt(var + eps)"),
                                         self.t(shift, name, "folded shift")), [src], name)
        if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d)):
            dim = 1 if isinstance(m, nn.AvgPool1d) else 2
            conf = dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode,
                        count_include_pad=m.count_include_pad)
            if dim == 2:
                conf["divisor_override"] = m.divisor_override
            self._pool_shape(m, shape, dim, name)
            try:
                layer = AvgPool(shape, dim, conf, self.like)
            except RuntimeError as e:
                raise _misfit(m, name, shape, str(e).splitlines()[0]) from None
            return self.add(layer, [src], name)
        if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
            dim = 1 if isinstance(m, nn.MaxPool1d) else 2
            if m.return_indices:
                raise _unsupported(f"{kind} with return_indices=True", name)
            conf = dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
                        ceil_mode=m.ceil_mode)
            self._pool_shape(m, shape, dim, name)
            try:
                layer = MaxUnits.max_pool(shape, dim, conf, self.like)
            except RuntimeError as e:
                raise _misfit(m, name, shape, str(e).splitlines()[0]) from None
            if not bool(layer.valid.any(1).all()):
                raise _unsupported(f"{kind} with a window that lies wholly in the padding", name,
                                   "torch returns -inf there; reduce padding or dilation")
            return self.add(layer, [src], name)
        if isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise _unsupported(f"Flatten(start_dim={m.start_dim}, end_dim={m.end_dim})", name,
                                   "only Flatten(1, -1) keeps the batch dimension")
            return self.reshape(src, (numel(shape),), name)
        if isinstance(m, nn.Unflatten):
            if m.dim not in (1, -len(shape)):
                raise _unsupported(f"Unflatten(dim={m.dim})", name)
            return self.reshape(src, tuple(m.unflattened_size) + shape[1:], name)
        if isinstance(m, nn.Identity):
            return src
        if isinstance(m, nn.modules.dropout._DropoutNd):
            if m.training and m.p > 0:
                raise _unsupported(f"{kind} in training mode", name, "call model.eval() first")
            return src
        if isinstance(m, nn.ReLU):
            return self.add(MaxUnits.elementwise("relu", shape, 0.0, self.like), [src], name)
        if isinstance(m, nn.LeakyReLU):
            return self.leaky(src, m.negative_slope, name)
        if isinstance(m, rnn.Abs):
            return self.add(MaxUnits.elementwise("abs", shape, -1.0, self.like), [src], name)
        if isinstance(m, rnn.GroupMax):
            return self.group_max(src, m.k, name)
        if isinstance(m, rnn.Maxout):
            if len(shape) != 1:
                raise _unsupported(f"Maxout on input of shape {shape}", name, "flatten first")
            if shape[0] != m.in_features:
                raise _misfit(m, name, shape, f"in_features={m.in_features}")
            lin = self.add(Dense(self.t(m.linear.weight, name + ".linear", "weight"),
                                 self.t(m.linear.bias, name + ".linear", "bias")), [src], name + ".linear")
            return self.group_max(lin, m.k, name)
        if isinstance(m, nn.Sequential):
            # Sequential.forward calls every entry of _modules, the same instance as often as it is listed
            # (named_children() would list a repeated instance once and drop its later calls)
            for child_name, child in m._modules.items():
                if child is not None:
                    src = self.module(child, src, _join(name, child_name))
            return src
        if not _is_stock(m):
            return self.traced(m, src, name)
        raise _unsupported(f"module {kind}", name)

    def traced(self, module: nn.Module, src: int, prefix: str) -> int:
        """Trace a user module with torch.fx and convert its graph; its input is node ``src``."""
        what = type(module).__name__
        try:
            graph = trace(module)
        except Exception as e:  # fx raises many types for data-dependent control flow
            where = f" at '{prefix}'" if prefix else ""
            raise UnsupportedLayerError(
                f"{what}{where} cannot be traced by torch.fx ({type(e).__name__}: {str(e).splitlines()[0]}); "
                f"relulab supports modules whose forward() has no data-dependent control flow, made of "
                f"{SUPPORTED_LAYERS}") from None
        env: dict[fx.Node, int] = {}
        out = None
        placeholders = 0
        batch_sizes: set = set()  # x.size(0) / x.shape[0]: the batch dimension, allowed as view's first size
        shapes: set = set()       # x.shape
        for n in graph.nodes:
            path = _join(prefix, n.target if n.op == "call_module" else n.name)
            if n.op == "placeholder":
                placeholders += 1
                if placeholders > 1:
                    raise _unsupported(f"a second forward() input '{n.target}' of {what}", prefix, "one input tensor only")
                env[n] = src
            elif n.op == "call_module":
                m = module.get_submodule(n.target)  # every call is its own node, repeated instances included
                if isinstance(m, (nn.ReLU, nn.LeakyReLU)) and m.inplace:
                    _check_inplace(n, type(m).__name__, path)
                env[n] = self.module(m, _arg_node(n.args[0], env, path), path)
            elif n.op == "call_function" and n.target in _ADD_FNS and len(n.args) == 2 and not n.kwargs:
                x, y = (_arg_node(a, env, path) for a in n.args)
                if self.shapes[x] != self.shapes[y]:
                    raise _unsupported(f"addition of shapes {self.shapes[x]} and {self.shapes[y]}", path)
                env[n] = self.add(Add(self.shapes[x]), [x, y], path)
            elif (n.op == "call_function" and n.target in _RELU_FNS) or (n.op == "call_method" and n.target == "relu"):
                if n.op == "call_function" and _inplace_flag(n, 1):
                    _check_inplace(n, "relu", path)
                x = _arg_node(n.args[0], env, path)
                env[n] = self.add(MaxUnits.elementwise("relu", self.shapes[x], 0.0, self.like), [x], path)
            elif n.op in ("call_function", "call_method") and (n.target in _ABS_FNS or n.target == "abs"):
                x = _arg_node(n.args[0], env, path)
                env[n] = self.add(MaxUnits.elementwise("abs", self.shapes[x], -1.0, self.like), [x], path)
            elif n.op == "call_function" and n.target is F.leaky_relu:
                if _inplace_flag(n, 2):
                    _check_inplace(n, "leaky_relu", path)
                x = _arg_node(n.args[0], env, path)
                slope = n.args[1] if len(n.args) > 1 else n.kwargs.get("negative_slope", 0.01)
                env[n] = self.leaky(x, slope, path)
            elif (n.op == "call_function" and n.target in _FLATTEN_FNS) or (n.op == "call_method" and n.target == "flatten"):
                x = _arg_node(n.args[0], env, path)
                start = n.args[1] if len(n.args) > 1 else n.kwargs.get("start_dim", 0)
                end = n.args[2] if len(n.args) > 2 else n.kwargs.get("end_dim", -1)
                if start != 1 or end != -1:
                    raise _unsupported(f"flatten(start_dim={start}, end_dim={end})", path, "use start_dim=1")
                env[n] = self.reshape(x, (numel(self.shapes[x]),), path)
            elif n.op == "call_method" and n.target in ("view", "reshape"):
                x = _arg_node(n.args[0], env, path)
                dims = n.args[1:] if not (len(n.args) == 2 and isinstance(n.args[1], (tuple, list))) else n.args[1]
                if not dims or not all(isinstance(d, int) for d in dims[1:]) or not (
                        isinstance(dims[0], int) or dims[0] in batch_sizes):
                    raise _unsupported(f"{n.target} with computed sizes", path, "use x.size(0) or -1 for the batch")
                rest = [int(d) for d in dims[1:]]
                if -1 in rest:
                    known = numel(tuple(d for d in rest if d != -1))
                    rest[rest.index(-1)] = numel(self.shapes[x]) // max(known, 1)
                env[n] = self.reshape(x, rest, path)
            elif n.op == "call_method" and n.target == "size" and n.args[1:] in ((0,),) and not n.kwargs:
                batch_sizes.add(n)
            elif n.op == "call_function" and n.target is getattr and n.args[1:] == ("shape",):
                shapes.add(n)
            elif n.op == "call_function" and n.target is operator.getitem and n.args[0] in shapes and n.args[1] == 0:
                batch_sizes.add(n)
            elif n.op == "output":
                res = n.args[0]
                if not isinstance(res, fx.Node) or res not in env:
                    raise _unsupported(f"a forward() of {what} that returns {type(res).__name__}", prefix,
                                       "return one tensor")
                out = env[res]
            else:
                target = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", repr(n.target))
                raise _unsupported(f"operation {target} ({n.op}) in {what}", path)
        return out

    def _pool_shape(self, m, shape, dim, name) -> None:
        if len(shape) != dim + 1:
            raise _unsupported(f"{type(m).__name__} on input of shape {shape}", name,
                               f"it needs (channels, {'length' if dim == 1 else 'height, width'}) per sample")

    def leaky(self, src, slope, name) -> int:
        if isinstance(slope, complex) or (isinstance(slope, torch.Tensor) and slope.is_complex()):
            raise InvalidInputError(f"LeakyReLU{_at(name)} has a complex slope {slope!r}; slopes are real numbers")
        slope = float(slope)
        if not math.isfinite(slope) or abs(slope) > limits.MAX_SLOPE:
            raise InvalidInputError(f"LeakyReLU(negative_slope={slope!r}){_at(name)}: slopes must be finite with "
                                    f"magnitude at most {limits.MAX_SLOPE:g} (larger ones overflow float64 geometry)")
        if slope >= 1.0:
            if slope == 1.0:
                return src
            raise _unsupported(f"LeakyReLU(negative_slope={slope})", name,
                               "a slope above 1 makes it a minimum, not a maximum, of two lines")
        if 0.0 < abs(slope) < 2.2250738585072014e-308:
            # a*z underflows, so the two pieces tie where they should not: every geometric answer would be noise
            raise _unsupported(f"LeakyReLU(negative_slope={slope!r})", name,
                               "the slope is subnormal in float64; use 0 (ReLU) or a normal number")
        shape = self.shapes[src]
        return self.add(MaxUnits.elementwise("leaky_relu", shape, slope, self.like, {"negative_slope": slope}),
                        [src], name)

    def group_max(self, src, k, name) -> int:
        shape = self.shapes[src]
        if shape[0] % k:
            raise _unsupported(f"GroupMax(k={k}) on {shape[0]} features", name, "features must be a multiple of k")
        return self.add(MaxUnits.group_max(shape, k, self.like), [src], name)


def _at(name: str) -> str:
    return f" at '{name}'" if name else ""


def _check_param(p: torch.Tensor, name: str, what: str) -> None:
    """A parameter must be a dense, materialized tensor of finite real numbers."""
    where = f"{what} of '{name}'" if name else what
    if not isinstance(p, torch.Tensor):
        raise InvalidInputError(f"{where} is a {type(p).__name__}, not a tensor")
    if p.layout != torch.strided:
        raise InvalidInputError(f"{where} is a {str(p.layout).replace('torch.', '')} tensor; relulab needs dense "
                                f"weights (call .to_dense() first)")
    if p.is_meta:
        raise InvalidInputError(f"{where} is on the meta device and holds no values; load real weights first")
    if p.is_complex():
        raise InvalidInputError(f"{where} is complex ({p.dtype}); relulab networks have real weights")
    if not p.is_floating_point():
        raise InvalidInputError(f"{where} has dtype {p.dtype}; expected floating-point weights")
    if not bool(torch.isfinite(p).all()):
        bad = int((~torch.isfinite(p)).sum())
        raise InvalidInputError(f"{where} has {bad} NaN or infinite entr{'y' if bad == 1 else 'ies'}; relulab needs "
                                "finite weights")


def _arg_node(n, env, path):
    if not isinstance(n, fx.Node) or n not in env:
        raise _unsupported(f"a constant argument {n!r}", path, "only tensors flowing from the input are allowed")
    return env[n]


_RELU_FNS = {torch.relu, F.relu}
_ADD_FNS = {operator.add, torch.add}
_FLATTEN_FNS = {torch.flatten}
_ABS_FNS = {torch.abs, operator.abs}


def _check_inplace(n: fx.Node, what: str, path: str) -> None:
    """An in-place op overwrites its input; fine unless the input is read again afterwards."""
    src = n.args[0]
    if not isinstance(src, fx.Node):
        return
    order = {m: i for i, m in enumerate(n.graph.nodes)}
    if any(order[u] > order[n] for u in src.users if u is not n):
        raise _unsupported(f"in-place {what}", path, "its input is used again afterwards, which an in-place op "
                                                     "would have overwritten; use inplace=False")


def _inplace_flag(n: fx.Node, pos: int) -> bool:
    return bool(n.kwargs.get("inplace", n.args[pos] if len(n.args) > pos else False))


def from_torch(module: nn.Module, input_shape, dtype=torch.float64, device=None, verify: bool = True) -> PLNet:
    """Convert ``module`` into an exactly equivalent :class:`PLNet`.

    ``input_shape`` is the shape of one sample (without batch dimension). Stock layers and
    Sequentials convert directly (every listed entry is called, a repeated instance as often as it is
    listed); any other module (at the top or nested) is traced with torch.fx, every call of every
    submodule being a node of its graph. Raises :class:`UnsupportedLayerError` naming the offending
    module, its dotted path and what is supported, and :class:`InvalidInputError` when
    ``input_shape`` does not fit the module or a parameter is not a finite real number.

    With ``verify=True`` (the default) the result is checked against the module itself on probe
    inputs (see :func:`verify`); a conversion that does not compute the module's function raises
    :class:`UnsupportedLayerError` instead of being returned.
    """
    if not isinstance(module, nn.Module):
        raise UnsupportedLayerError(f"expected a torch.nn.Module, got {type(module).__name__}; "
                                    f"relulab supports modules made of {SUPPORTED_LAYERS}")
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    try:
        input_shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise InvalidInputError(f"input_shape must be a tuple of positive integers, got {input_shape!r}") from None
    if not input_shape or any(s < 1 for s in input_shape):
        raise InvalidInputError(f"input_shape must be positive integers, got {input_shape}")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise InvalidInputError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    # built in float64 whatever dtype is asked for: the verification then compares exact maps
    b = _Builder(input_shape, torch.float64, device)
    out = b.module(module, 0, "")
    net = _finish(b, out, input_shape, torch.float64, device)
    if verify:
        from relulab.core.threads import threads_for

        widest = max([net.input_dim] + [numel(n.layer.out_shape) for n in net.nodes[1:]])
        with threads_for((_PROBE_RANDOM + 2 * _PROBE_UNITS) * widest):
            _verify(module, net)
    return net.to(dtype=dtype) if dtype is not None and dtype != torch.float64 else net


# probe inputs of the verification: random ones, and for up to _PROBE_UNITS units two points, one on
# each side of the unit's switching surface
_PROBE_RANDOM = 16
_PROBE_UNITS = 64
_VERIFY_RTOL = 1e-8


def verify(module: nn.Module, net: PLNet, seed: int = 0) -> float:
    """Check that ``net`` computes ``module``'s function; return the largest deviation relative to the
    output scale, or raise :class:`UnsupportedLayerError` naming the discrepancy.

    Probes: standard normal inputs, plus, for every max unit (at most 256, chosen at random, those
    that the random inputs leave on one side first), the two points ``x* -+ h g/|g|`` around the
    first-order crossing ``x* = x - (m / |g|^2) g`` of the unit's switching surface from the random
    input ``x`` nearest to it, where ``m`` is the gap between the unit's best two pieces and ``g`` its
    gradient there; so every probed unit is seen on both sides of its kink. The module runs on a
    float64 copy of itself (its weights are then what ``net`` holds, exactly), and outputs must agree
    to ``1e-8`` times the magnitude bound of :meth:`PLNet.magnitude` (the scale of the rounding errors
    of both evaluations).
    """
    return _verify(module, net, seed)


def _verify(module: nn.Module, net: PLNet, seed: int = 0) -> float:
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.randn(_PROBE_RANDOM, net.input_dim, generator=gen, dtype=torch.float64).to(net.device)
    with torch.no_grad():
        tr = net.trace(x, record=net.n_units > 0)
    near = _crossing_probes(net, x, tr, gen)
    pts = torch.cat([x, near])
    # the module with float64 copies of its floating parameters and buffers: the weights net holds, exactly
    state = {k: v.detach().to(torch.float64) if v.is_floating_point() else v
             for k, v in (*module.named_parameters(), *module.named_buffers())}
    dev = next((v.device for v in state.values()), torch.device("cpu"))
    with torch.no_grad():
        try:
            ref = torch.func.functional_call(module, state, (pts.reshape(-1, *net.input_shape).to(dev),))
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise InvalidInputError(f"the module fails on float64 inputs of shape {net.input_shape} "
                                    f"({type(e).__name__}: {first}); check input_shape") from None
        if not isinstance(ref, torch.Tensor):
            raise UnsupportedLayerError(f"the module returns {type(ref).__name__}; relulab needs one output tensor")
        ref = ref.to(device="cpu", dtype=torch.float64).reshape(pts.shape[0], -1)
        got = torch.cat([tr.output, net.trace(near, record=False).output]) if near.shape[0] else tr.output
        got = got.to(device="cpu", dtype=torch.float64).reshape(pts.shape[0], -1)
        # one bound for all probes (from the largest coordinates): the scale of both evaluations' rounding
        scale = net.magnitude(pts.abs().amax(0, keepdim=True)).to(device="cpu", dtype=torch.float64)
    rtol = _VERIFY_RTOL
    if not bool(torch.isfinite(ref).all()) or not bool(torch.isfinite(scale).all()):
        raise InvalidInputError("the module's outputs overflow float64 on probe inputs of unit scale (its weights "
                                "or slopes are too large to give finite geometry)")
    if ref.shape != got.shape:
        raise UnsupportedLayerError(f"the converted network has {got.shape[1]} outputs but the module has "
                                    f"{ref.shape[1]}; relulab could not convert this module faithfully")
    err = (got - ref).abs()
    scale = scale.expand_as(err)
    rel = err / (scale + torch.finfo(torch.float64).tiny)
    worst = float(rel.max()) if rel.numel() else 0.0
    if not worst <= rtol:
        i, j = (int(v) for v in (rel == rel.max()).nonzero()[0])
        kind = "a random probe" if i < _PROBE_RANDOM else "a probe next to a unit's kink"
        raise UnsupportedLayerError(
            f"the converted network differs from the module: output {j} at {kind} is {float(got[i, j]):.6g}, the "
            f"module gives {float(ref[i, j]):.6g} (difference {float(err[i, j]):.3g}, tolerance "
            f"{rtol * float(scale[i, j]):.3g} at output scale {float(scale[i, j]):.3g}); the module does something "
            f"the converter does not follow (relulab supports {SUPPORTED_LAYERS})")
    return worst


def _crossing_probes(net: PLNet, x: torch.Tensor, tr, gen: torch.Generator) -> torch.Tensor:
    """Points just on both sides of the switching surfaces of (up to _PROBE_UNITS) max units, (2S, d);
    ``tr`` is the recorded trace at the random inputs ``x``."""
    empty = x.new_zeros(0, x.shape[1])
    if net.n_units == 0 or torch.is_inference_mode_enabled():
        return empty
    gaps, layer_of = [], []
    for l, p in enumerate(tr.pieces):
        top = p.topk(2, dim=-1).values if p.shape[-1] > 1 else torch.cat([p, torch.full_like(p, -math.inf)], -1)
        gaps.append(top[..., 0] - top[..., 1])  # (B, units): inf for one-piece units
        layer_of.append(torch.full((p.shape[1],), l, dtype=torch.long))
    gap = torch.cat(gaps, 1)
    layer = torch.cat(layer_of)
    unit = torch.cat([torch.arange(g.shape[1]) for g in gaps])
    pat = tr.pattern
    one_sided = (pat == pat[:1]).all(0).cpu()
    crossable = torch.isfinite(gap).all(0).cpu()
    idx = crossable.nonzero()[:, 0]
    if idx.numel() == 0:
        return empty
    order = torch.randperm(idx.numel(), generator=gen)
    idx = idx[order]
    idx = idx[torch.argsort((~one_sided[idx]).to(torch.int8), stable=True)][:_PROBE_UNITS]
    base = gap[:, idx].argmin(0)  # the random input nearest to each unit's kink (in gap)
    xs = x[base].clone().requires_grad_(True)
    with torch.enable_grad():
        pieces = net.trace(xs, record=True).pieces
        total = xs.new_zeros(())
        rows = torch.arange(idx.numel())
        for l, p in enumerate(pieces):
            sel = (layer[idx] == l).to(p.device)
            if not bool(sel.any()):
                continue
            r = rows.to(p.device)[sel]
            top = p[r, unit[idx].to(p.device)[sel]].topk(2, dim=-1).values
            total = total + (top[:, 0] - top[:, 1]).sum()
        if not total.requires_grad:
            return empty
        (g,) = torch.autograd.grad(total, xs)
        with torch.no_grad():
            m = gap[base, idx].to(xs.device)
    with torch.no_grad():
        gn2 = (g * g).sum(1)
        ok = (gn2 > 0) & torch.isfinite(gn2)
        g, m, x0, gn2 = g[ok], m[ok], xs.detach()[ok], gn2[ok]
        gn = gn2.sqrt()
        tie = x0 - (m / gn2)[:, None] * g
        h = (0.01 * m / gn + 1e-9 * (1 + tie.abs().amax(1)))[:, None] * (g / gn[:, None])
        out = torch.cat([tie - h, tie + h])
    return out[torch.isfinite(out).all(1)]


def _finish(b: _Builder, out: int, input_shape, dtype, device) -> PLNet:
    if out == 0:
        nodes = b.nodes[:1]  # the identity: nothing else is on the path to the output
    else:
        # keep only nodes the output depends on, renumbered in order
        need, stack = set(), [out]
        while stack:
            i = stack.pop()
            if i not in need:
                need.add(i)
                stack.extend(b.nodes[i].inputs)
        keep = sorted(need)
        remap = {old: new for new, old in enumerate(keep)}
        nodes = [Node(b.nodes[i].layer, tuple(remap[j] for j in b.nodes[i].inputs), b.nodes[i].name) for i in keep]
    return PLNet(nodes, input_shape, dtype=dtype, device=b.like.device)


def to_torch(net: PLNet) -> nn.Module:
    """A ``torch.fx.GraphModule`` of stock layers that computes ``net`` exactly."""
    root = nn.Module()
    graph = fx.Graph()
    env = {0: graph.placeholder("x")}
    for i, node in enumerate(net.nodes[1:], start=1):
        layer = node.layer
        if isinstance(layer, Add):
            env[i] = graph.call_function(operator.add, (env[node.inputs[0]], env[node.inputs[1]]))
            continue
        name = f"layer{i}"
        root.add_module(name, layer.to_module())
        env[i] = graph.call_module(name, (env[node.inputs[0]],))
    graph.output(env[len(net.nodes) - 1])
    gm = fx.GraphModule(root, graph, class_name="PLNetModule")
    return gm.to(device=net.device).eval()
