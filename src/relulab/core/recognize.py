"""What a network is: the one place where relulab recognizes fully connected (MLP), convolutional and
shallow architectures, and the one ``torch.fx`` tracer the library uses on user modules.

:func:`architecture` reads a :class:`~relulab.core.plnet.PLNet` (or converts a module first) and
returns an :class:`Architecture`: the spec family (``mlp``, ``cnn`` or ``None``), the layer sizes,
the hidden activation and its parameter, the activation after the output layer if any, whether
every affine layer has a bias, and, when the network fits no family, why. Engines and the command
line ask it instead of walking layers themselves, e.g. the infinite-width kernel needs an MLP's
depth and activation, the parameter-space engines a shallow network (see
:meth:`relulab.landscape.ShallowNet.from_plnet`), and model files the spec of a network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx as fx
from torch import nn

from relulab import nn as rnn
from relulab.core.errors import InvalidInputError, UnsupportedLayerError
from relulab.core.layers import AvgPool, Conv, Dense, MaxUnits, Reshape

__all__ = ["Architecture", "architecture", "trace", "input_shape_of", "LEAF_MODULES"]

#: modules traced as one node (their forward() uses operations the converter reads as a whole)
LEAF_MODULES = (rnn.Maxout, rnn.Abs, rnn.GroupMax)

#: activations of one unit per feature with two pieces, a shallow network's choices
TWO_PIECE = ("relu", "leaky_relu", "abs")


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, LEAF_MODULES) or super().is_leaf_module(m, qualname)


def trace(module: nn.Module) -> fx.Graph:
    """The ``torch.fx`` graph of ``module`` with relulab's max-unit modules kept as leaves; every call of
    every submodule is its own node (a module used twice appears twice)."""
    return _Tracer().trace(module)


def input_shape_of(module: nn.Module) -> tuple[int, ...] | None:
    """The per-sample input shape of a module whose first weighted layer is a Linear (or a Maxout):
    ``(in_features,)``; None when it cannot be read off (the first one is a convolution, or none)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, rnn.Maxout)):
            return (m.in_features,)
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            return None
    return None


@dataclass(frozen=True)
class Architecture:
    """An architecture read off a network (see :func:`architecture`).

    ``tokens``: for ``mlp`` the output width of every linear layer (hidden layers, then the output); for
    ``cnn`` the spec tokens ``("conv", C, K, S, P)``, ``("max", K)``, ``("avg", K)``, ``("dense", N)``.
    ``activation`` / ``param``: the hidden activation (relu, leaky_relu with its slope, abs, maxout with
    its rank K), None without hidden layers. ``output_activation`` / ``output_param``: an activation
    applied to the output layer (as relucent's networks end), else None. ``why``: empty when ``family``
    is set, else the first thing that fits no family.

    ``chain``: for a one-dimensional input passed through linear layers, each followed by at most one
    activation of any kind (the MLP grammar without its one-activation rule: maxout layers of different
    ranks, or hidden layers with no activation, also form a chain), one entry per linear layer,
    ``(module path, width, activation or None, its parameter)``, the width counted after the
    activation (a maxout layer's units); the output activation is not part of it. Empty otherwise.
    """

    input_shape: tuple[int, ...]
    family: str | None
    tokens: tuple = ()
    activation: str | None = None
    param: float | int | None = None
    output_activation: str | None = None
    output_param: float | int | None = None
    biased: bool = True
    why: str = ""
    chain: tuple = ()

    @property
    def is_mlp(self) -> bool:
        return self.family == "mlp"

    @property
    def fully_connected(self) -> bool:
        """An MLP, or linear layers only after flattening a multi-dimensional input."""
        return self.is_mlp or (self.family == "cnn" and all(t[0] == "dense" for t in self.tokens))

    @property
    def depth(self) -> int:
        """Number of hidden layers of a fully connected network (0 for a single linear map)."""
        return len(self.tokens) - 1 if self.fully_connected else 0

    @property
    def widths(self) -> tuple[int, ...]:
        """``(input, hidden..., output)`` widths of an MLP."""
        return (*self.input_shape, *self.tokens) if self.is_mlp else ()

    @property
    def is_shallow(self) -> bool:
        """``Linear(d, m)``, one two-piece activation (ReLU, leaky ReLU, abs), ``Linear(m, o)``."""
        return (self.is_mlp and self.depth == 1 and self.activation in TWO_PIECE
                and self.output_activation is None)

    def require_mlp(self, what: str) -> "Architecture":
        """Self if this is fully connected (without output activation), else :class:`UnsupportedLayerError`
        saying that ``what`` needs one and what this network is instead."""
        if self.fully_connected and self.output_activation is None:
            return self
        why = self.why or (f"it applies {self.output_activation} to its output" if self.fully_connected
                           else "it has convolution or pooling layers")
        raise UnsupportedLayerError(f"{what} needs a fully connected network (Linear layers with one activation "
                                    f"kind between them); {why}")

    def spec(self):
        """The :class:`relulab.core.io.ArchSpec` of this architecture, or :class:`InvalidInputError`
        saying why it has none."""
        from relulab.core.io import ArchSpec

        if self.family is None:
            raise _no_spec(self.why)
        if not self.biased:
            raise _no_spec("a layer has no bias")
        return ArchSpec(self.family, self.input_shape, self.tokens, self.activation or "relu", self.param,
                        self.output_activation, self.output_param)


def _no_spec(why: str) -> InvalidInputError:
    return InvalidInputError(f"this network has no architecture spec ({why}); save it as a torch.export "
                             "program instead (a path ending in .pt2)")


def _pair(v, dim: int) -> tuple:
    if isinstance(v, (list, tuple)):
        v = tuple(int(x) for x in v)
        return v * dim if len(v) == 1 else v
    return (int(v),) * dim


def _act_of(layer) -> tuple[str, float | int | None] | None:
    """(kind, parameter) of an activation layer, None for anything else (max-pooling included)."""
    if not isinstance(layer, MaxUnits) or layer.kind == "maxpool":
        return None
    if layer.kind == "leaky_relu":
        return "leaky_relu", float(layer.spec["negative_slope"])
    if layer.kind == "maxout":
        return "maxout", int(layer.spec["k"])
    return layer.kind, None


def _chain(nodes) -> tuple[tuple, str]:
    """The :attr:`Architecture.chain` of a plain list of nodes (reshapes skipped), or ``((), why)``."""
    body = [n for n in nodes if not isinstance(n.layer, Reshape)]
    chain, i = [], 0
    while i < len(body):
        layer = body[i].layer
        if not isinstance(layer, Dense):
            return (), f"layer {i + 1} is {layer.kind}, not a linear layer"
        act = _act_of(body[i + 1].layer) if i + 1 < len(body) else None
        if act is None:
            chain.append((body[i].name, layer.out_shape[0], None, None))
            i += 1
        else:
            chain.append((body[i].name, body[i + 1].layer.out_shape[0], *act))
            i += 2
    return tuple(chain), ""


def architecture(net, input_shape=None) -> Architecture:
    """Recognize the architecture of a :class:`~relulab.core.plnet.PLNet` or an ``nn.Module`` (converted
    first; ``input_shape`` as for :meth:`PLNet.from_torch`, read off a first Linear layer if omitted).

    Layers are read in graph order; reshapes of a 1-D input and flattening before the first linear
    layer of a CNN are structure, not layers. A network that fits neither the MLP nor the CNN grammar
    of architecture specs gets ``family=None`` and ``why``.
    """
    from relulab.core.plnet import PLNet

    if isinstance(net, nn.Module):
        if input_shape is None:
            input_shape = input_shape_of(net)
            if input_shape is None:
                raise InvalidInputError("cannot tell this module's input shape; pass input_shape=")
        net = PLNet.from_torch(net, input_shape)
    if not isinstance(net, PLNet):
        raise InvalidInputError(f"architecture() takes a relulab.PLNet or a torch.nn.Module, got {type(net).__name__}")
    shape = tuple(net.input_shape)

    def none(why: str) -> Architecture:
        return Architecture(shape, None, why=why)

    if any(len(n.inputs) != 1 or n.inputs[0] != i for i, n in enumerate(net.nodes[1:])):
        return none("it is not a plain chain of layers")
    nodes = net.nodes[1:]
    layers = [n.layer for n in nodes]
    acts = [_act_of(x) for x in layers]
    kinds = {a for a in acts if a is not None}
    if not any(isinstance(x, (Dense, Conv)) for x in layers):
        return none("it has no linear layer")
    # the activation after the last affine layer, if any, is the output activation
    last_affine = max(i for i, x in enumerate(layers) if isinstance(x, (Dense, Conv)))
    tail = [x for x in layers[last_affine + 1:] if not isinstance(x, Reshape)]
    out_act = None
    if tail:
        if len(tail) != 1 or _act_of(tail[0]) is None or _act_of(tail[0])[0] == "maxout":
            return none("it does not end with a linear layer, or one followed by a single activation")
        out_act = _act_of(tail[0])
        nodes, layers = nodes[:last_affine + 1], layers[:last_affine + 1]
        acts = acts[:last_affine + 1]
        kinds = {a for a in acts if a is not None}
    chain, why = _chain(nodes) if len(shape) == 1 else ((), "")
    if len(kinds) > 1:
        return Architecture(shape, None, why="it mixes activations", chain=chain)
    kind, param = next(iter(kinds)) if kinds else (None, None)
    biased = all(x.bias is not None for x in layers if isinstance(x, (Dense, Conv)))
    oa, op = out_act if out_act is not None else (None, None)
    if len(shape) == 1:
        if not chain:
            return none(why)
        bare = [k for k, (_, _, act, _) in enumerate(chain[:-1]) if act is None]
        if bare:
            return Architecture(shape, None, why=f"linear layer {bare[0] + 1} is not followed by an activation",
                                chain=chain)
        return Architecture(shape, "mlp", tuple(w for _, w, _, _ in chain), kind, param, oa, op, biased, chain=chain)
    if kind == "maxout":
        return none("maxout is available for mlp specs only")
    tokens: list[tuple] = []
    flat, i = False, 0
    while i < len(layers):
        layer = layers[i]
        last = i == len(layers) - 1
        if isinstance(layer, Conv) and not flat:
            c, dim = layer.conf, layer.dim
            ks = tuple(layer.weight.shape[2:])
            st, pd = _pair(c["stride"], dim), _pair(c["padding"], dim)
            if c["groups"] != 1 or set(_pair(c["dilation"], dim)) != {1} or len(set(ks)) != 1 or \
                    len(set(st)) != 1 or len(set(pd)) != 1:
                return none(f"convolution {i + 1} is not square and ungrouped")
            if last or _act_of(layers[i + 1]) is None:
                return none(f"convolution {i + 1} is not followed by an activation")
            tokens.append(("conv", layer.weight.shape[0], ks[0], st[0], pd[0]))
            i += 2
            continue
        if isinstance(layer, MaxUnits) and layer.kind == "maxpool" and not flat:
            conf, dim = layer.spec["conf"], layer.spec["dim"]
            ks = _pair(conf["kernel_size"], dim)
            st = _pair(conf.get("stride") or conf["kernel_size"], dim)
            if len(set(ks)) != 1 or ks != st or set(_pair(conf.get("padding", 0), dim)) != {0} or \
                    set(_pair(conf.get("dilation", 1), dim)) != {1} or conf.get("ceil_mode"):
                return none(f"max-pool {i + 1} is not a plain square pool with stride equal to its size")
            tokens.append(("max", ks[0]))
        elif isinstance(layer, AvgPool) and not flat:
            conf, dim = layer.conf, layer.dim
            ks = _pair(conf["kernel_size"], dim)
            st = _pair(conf.get("stride") or conf["kernel_size"], dim)
            if len(set(ks)) != 1 or ks != st or set(_pair(conf.get("padding", 0), dim)) != {0} or \
                    conf.get("ceil_mode") or not conf.get("count_include_pad", True) or conf.get("divisor_override"):
                return none(f"average pool {i + 1} is not a plain square pool with stride equal to its size")
            tokens.append(("avg", ks[0]))
        elif isinstance(layer, Reshape) and len(layer.out_shape) == 1 and not flat:
            flat = True
        elif isinstance(layer, Dense) and flat:
            tokens.append(("dense", layer.out_shape[0]))
            if not last:
                if _act_of(layers[i + 1]) is None:
                    return none(f"linear layer {i + 1} is not followed by an activation")
                i += 1
        else:
            return none(f"layer {i + 1} ({layer.kind}) does not fit the cnn grammar")
        i += 1
    if not tokens or tokens[-1][0] != "dense":
        return none("it does not end with a linear layer")
    return Architecture(shape, "cnn", tuple(tokens), kind, param, oa, op, biased)
