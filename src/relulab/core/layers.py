"""The two kinds of layer a :class:`~relulab.core.plnet.PLNet` is made of.

* :class:`Affine` layers ``z -> L z + b`` (dense, convolution, average pooling, per-channel scaling,
  reshapes). ``L`` stays an operator (a convolution stays a convolution); :meth:`Affine.dense` builds
  the matrix only where asked for.
* :class:`MaxUnits` layers: unit ``j`` outputs ``max_k coef[j, k] * z[index[j, k]]`` over its valid
  pieces. ReLU is ``max(0 * z_j, z_j)``, leaky ReLU ``max(a z_j, z_j)``, absolute value
  ``max(-z_j, z_j)``, maxout of rank K ``max(z_{jK}, ..., z_{jK+K-1})`` and max-pooling the maximum
  over a window. For two-piece units, piece 1 is the ``z > 0`` side, so pattern 1 means "active".

All layers act on flattened batches ``(N, numel)``; ``in_shape``/``out_shape`` are per-sample shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from relulab.nn import Abs, GroupMax

Shape = tuple[int, ...]


def numel(shape: Shape) -> int:
    return int(math.prod(shape))


class Affine:
    """An affine map ``z -> L z + b`` between flattened per-sample tensors."""

    kind = "affine"

    def __init__(self, in_shape: Shape, out_shape: Shape, bias: torch.Tensor | None):
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.bias = None if bias is None else bias.reshape(-1)

    def _linear_shaped(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def linear(self, z: torch.Tensor) -> torch.Tensor:
        """The linear part ``L z`` on a flattened batch ``(N, in_numel) -> (N, out_numel)``."""
        n = z.shape[0]
        return self._linear_shaped(z.reshape(n, *self.in_shape)).reshape(n, numel(self.out_shape))

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        y = self.linear(z)
        return y if self.bias is None else y + self.bias

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The node's value from its input's: ``L z + b`` (see :meth:`Add.forward` for two inputs)."""
        return self(z)

    def tangent(self, t: torch.Tensor) -> torch.Tensor:
        """Derivatives along ``m`` directions: input tangents ``t`` (N, m, in_numel) to ``L t`` (N, m,
        out_numel); the bias does not move."""
        return self.linear(t.reshape(-1, t.shape[-1])).reshape(t.shape[0], t.shape[1], numel(self.out_shape))

    def dense(self, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """The matrix ``L`` (out_numel, in_numel) and bias ``b`` (out_numel,), built by probing."""
        n_in = numel(self.in_shape)
        like = self._like()
        cols = []
        for s in range(0, n_in, chunk):
            m = min(chunk, n_in - s)
            eye = torch.zeros(m, n_in, dtype=like.dtype, device=like.device)
            eye[torch.arange(m), torch.arange(s, s + m)] = 1.0
            cols.append(self.linear(eye))
        W = torch.cat(cols, 0).T.contiguous()
        b = self.bias if self.bias is not None else torch.zeros(W.shape[0], dtype=W.dtype, device=W.device)
        return W, b

    def abs_linear(self, z: torch.Tensor) -> torch.Tensor:
        """``|L| z`` (``|L|`` the entrywise absolute value of the matrix of ``L``) on a flattened batch,
        computed in ``z``'s dtype. For ``z >= 0`` it bounds the magnitudes summed inside ``L z``: the
        scale of its rounding error and of every value the layer can produce from inputs ``|x| <= z``."""
        key = (z.dtype, z.device)
        cached = self.__dict__.setdefault("_abs_cache", {})
        m = cached.get(key)
        if m is None:
            m = cached[key] = self.dense()[0].abs().to(dtype=z.dtype, device=z.device).T.contiguous()
        return z @ m

    def abs_bias(self, like: torch.Tensor) -> torch.Tensor:
        """``|b|`` as a flattened per-sample vector in ``like``'s dtype (zeros without a bias)."""
        n = numel(self.out_shape)
        if self.bias is None:
            return like.new_zeros(n)
        return self.bias.abs().to(dtype=like.dtype, device=like.device).reshape(n)

    def magnitude(self, m: torch.Tensor) -> torch.Tensor:
        """A bound on ``|L z + b|`` (entrywise) over all inputs with ``|z| <= m``: ``|L| m + |b|``."""
        return self.abs_linear(m) + self.abs_bias(m)

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.Tensor)}

    def _like(self) -> torch.Tensor:
        return next(iter(self._tensors().values()), torch.zeros(()))

    def to(self, device=None, dtype=None) -> "Affine":
        for k, v in self._tensors().items():
            setattr(self, k, v.to(device=device, dtype=dtype))
        self.__dict__.pop("_abs_cache", None)
        return self

    def to_module(self) -> nn.Module:
        raise NotImplementedError

    def spec_parameters(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The ``(weight, bias)`` an architecture spec stores for this layer, None for maps without
        parameters (reshapes, average pooling); a layer no spec can express raises."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_shape} -> {self.out_shape})"


class Dense(Affine):
    """``z -> W z + b``."""

    kind = "linear"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__((weight.shape[1],), (weight.shape[0],), bias)
        self.weight = weight

    def _linear_shaped(self, x):
        return x @ self.weight.T

    def linear(self, z):
        return z @ self.weight.T

    def dense(self, chunk: int = 4096):
        b = self.bias if self.bias is not None else self.weight.new_zeros(self.weight.shape[0])
        return self.weight, b

    def abs_linear(self, z):
        return z @ self.weight.abs().to(dtype=z.dtype, device=z.device).T

    def spec_parameters(self):
        return self.weight, self.bias

    def to_module(self):
        m = nn.Linear(self.weight.shape[1], self.weight.shape[0], bias=self.bias is not None)
        m.to(self.weight.dtype)
        with torch.no_grad():
            m.weight.copy_(self.weight)
            if self.bias is not None:
                m.bias.copy_(self.bias)
        return m


class Conv(Affine):
    """A zero-padded 1-D or 2-D convolution, kept as a convolution."""

    def __init__(self, in_shape, weight, bias, stride, padding, dilation, groups):
        self.dim = weight.dim() - 2
        self.weight = weight
        self.conf = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        fn = F.conv1d if self.dim == 1 else F.conv2d
        out = fn(torch.zeros(1, *in_shape, dtype=weight.dtype, device=weight.device), weight, None, **self.conf)
        b = None if bias is None else bias.reshape(-1, *([1] * self.dim)).expand(out.shape[1:]).contiguous()
        super().__init__(in_shape, tuple(out.shape[1:]), b)
        self.kind = f"conv{self.dim}d"
        self.conv_bias = bias

    def _linear_shaped(self, x):
        fn = F.conv1d if self.dim == 1 else F.conv2d
        return fn(x, self.weight, None, **self.conf)

    def abs_linear(self, z):
        # the convolution with |kernel| is |L|: every entry of L is one kernel entry or zero
        fn = F.conv1d if self.dim == 1 else F.conv2d
        n = z.shape[0]
        w = self.weight.abs().to(dtype=z.dtype, device=z.device)
        return fn(z.reshape(n, *self.in_shape), w, None, **self.conf).reshape(n, numel(self.out_shape))

    def spec_parameters(self):
        return self.weight, self.conv_bias

    def to_module(self):
        cls = nn.Conv1d if self.dim == 1 else nn.Conv2d
        w = self.weight
        m = cls(w.shape[1] * self.conf["groups"], w.shape[0], tuple(w.shape[2:]), bias=self.conv_bias is not None,
                **self.conf)
        m.to(w.dtype)
        with torch.no_grad():
            m.weight.copy_(w)
            if self.conv_bias is not None:
                m.bias.copy_(self.conv_bias)
        return m


class ChannelScale(Affine):
    """Per-channel ``z -> s_c z + t_c``; an eval-mode BatchNorm folded to its affine map."""

    kind = "channel"

    def __init__(self, in_shape, scale, shift):
        self.scale = scale
        self.shift = shift
        extra = len(in_shape) - 1
        b = shift.reshape(-1, *([1] * extra)).expand(in_shape).contiguous()
        super().__init__(in_shape, in_shape, b)

    def _linear_shaped(self, x):
        return x * self.scale.reshape(1, -1, *([1] * (len(self.in_shape) - 1)))

    def abs_linear(self, z):
        n = z.shape[0]
        sc = self.scale.abs().to(dtype=z.dtype, device=z.device).reshape(1, -1, *([1] * (len(self.in_shape) - 1)))
        return (z.reshape(n, *self.in_shape) * sc).reshape(n, -1)

    def spec_parameters(self):
        from relulab.core.errors import InvalidInputError

        raise InvalidInputError("batch norm has no architecture spec; save the network as a torch.export "
                                "program instead (a path ending in .pt2)")

    def to_module(self):
        c = self.scale.shape[0]
        cls = nn.BatchNorm1d if len(self.in_shape) <= 2 else nn.BatchNorm2d
        m = cls(c, eps=0.0).to(self.scale.dtype).eval()
        with torch.no_grad():
            m.weight.copy_(self.scale)
            m.bias.copy_(self.shift)
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
        return m


class AvgPool(Affine):
    """1-D or 2-D average pooling (a linear map)."""

    def __init__(self, in_shape, dim, conf, like: torch.Tensor):
        self.dim, self.conf = dim, dict(conf)
        self._ref = like.new_zeros(())
        fn = F.avg_pool1d if dim == 1 else F.avg_pool2d
        out = fn(torch.zeros(1, *in_shape, dtype=like.dtype), **self.conf)
        super().__init__(in_shape, tuple(out.shape[1:]), None)
        self.kind = f"avgpool{dim}d"

    def _linear_shaped(self, x):
        fn = F.avg_pool1d if self.dim == 1 else F.avg_pool2d
        return fn(x, **self.conf)

    def _like(self):
        return self._ref

    def abs_linear(self, z):
        return self.linear(z)  # averaging weights are non-negative: |L| = L

    def to_module(self):
        return (nn.AvgPool1d if self.dim == 1 else nn.AvgPool2d)(**self.conf)


class Reshape(Affine):
    """A change of per-sample shape only (Flatten, Unflatten, view)."""

    kind = "reshape"

    def __init__(self, in_shape, out_shape, like: torch.Tensor):
        if numel(in_shape) != numel(out_shape):
            raise ValueError(f"cannot reshape {in_shape} to {out_shape}")
        super().__init__(in_shape, out_shape, None)
        self._ref = like.new_zeros(())

    def linear(self, z):
        return z

    def abs_linear(self, z):
        return z

    def _linear_shaped(self, x):
        return x.reshape(x.shape[0], *self.out_shape)

    def _like(self):
        return self._ref

    def to_module(self):
        if len(self.out_shape) == 1:
            return nn.Flatten()
        if len(self.in_shape) == 1:
            return nn.Unflatten(1, self.out_shape)
        # (B, *in_shape) -> (B, n) -> (B, *out_shape): Unflatten alone needs a flat input
        return nn.Sequential(nn.Flatten(), nn.Unflatten(1, self.out_shape))


@dataclass
class MaxUnits:
    """A layer of max units: ``y_j = max_k coef[j, k] * z[index[j, k]]`` over valid pieces.

    ``index``, ``coef``, ``valid`` have shape (units, K); the valid pieces of every unit come first.
    ``kind`` is one of relu, leaky_relu, abs, maxout, maxpool; ``spec`` rebuilds the torch module.
    """

    kind: str
    index: torch.Tensor
    coef: torch.Tensor
    valid: torch.Tensor
    in_shape: Shape
    out_shape: Shape
    spec: dict = field(default_factory=dict)

    _diag: bool | None = field(default=None, init=False, repr=False, compare=False)
    _rows: tuple | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def units(self) -> int:
        return self.index.shape[0]

    @property
    def elementwise_units(self) -> bool:
        """Whether every piece of unit j reads input j (ReLU, leaky ReLU, abs): no gathers needed."""
        if self._diag is None:
            ar = torch.arange(self.index.shape[0], device=self.index.device)
            self._diag = bool(self.valid.all()) and self.index.shape[0] == int(math.prod(self.in_shape)) and bool(
                (self.index == ar[:, None]).all())
        return self._diag

    @property
    def n_pieces(self) -> torch.Tensor:
        """Number of valid pieces of each unit, shape (units,)."""
        return self.valid.sum(1)

    def inequality_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(slot, unit)`` of every region-inequality row: unit j contributes n_pieces_j - 1 rows,
        "winner >= k-th other piece" for slot k (cached: the layer's tables do not change)."""
        if self._rows is None or self._rows[0].device != self.index.device:
            K = self.index.shape[1]
            has = torch.arange(max(K - 1, 0), device=self.index.device)[None] < (self.n_pieces - 1)[:, None]
            unit, slot = has.nonzero(as_tuple=True)  # row-major: units in order, slots increasing
            self._rows = (slot, unit)
        return self._rows

    def pieces(self, z: torch.Tensor) -> torch.Tensor:
        """Values of every piece, (N, units, K); invalid pieces are ``-inf``."""
        if self.elementwise_units:
            return z[:, :, None] * self.coef
        p = z[:, self.index] * self.coef
        return p.masked_fill(~self.valid, -math.inf) if not bool(self.valid.all()) else p

    def piece_tangents(self, t: torch.Tensor) -> torch.Tensor:
        """Derivatives of every piece along the directions whose input tangents are ``t`` (N, m, in):
        (N, m, units, K); entries of invalid pieces are meaningless (their pieces are ``-inf``)."""
        if self.elementwise_units:
            return t[..., None] * self.coef
        n, m = t.shape[:2]
        pt = t[:, :, self.index.reshape(-1)].reshape(n, m, *self.index.shape)
        return pt.mul_(self.coef)

    def select(self, z: torch.Tensor, w: torch.Tensor):
        """Outputs for winners ``w`` (N, units): ``(y, idx, cf)`` with ``y = cf * z[idx]``; ``idx``
        is None for elementwise units (it is the identity)."""
        cf = self.coef.expand(w.shape[0], -1, -1).gather(2, w[..., None])[..., 0]
        if self.elementwise_units:
            return z * cf, None, cf
        idx = self.index.expand(w.shape[0], -1, -1).gather(2, w[..., None])[..., 0]
        return z.gather(1, idx) * cf, idx, cf

    def selected_tangent(self, t: torch.Tensor, idx: torch.Tensor | None, cf: torch.Tensor) -> torch.Tensor:
        """Tangents of the outputs for the winners that :meth:`select` gave as ``(idx, cf)``, from input
        tangents ``t`` (N or 1, m, in_numel): (N, m, units); shared tangents (N = 1) are broadcast."""
        if idx is None:  # elementwise: broadcasting batches shared tangents
            return t * cf[:, None, :]
        B = idx.shape[0]
        t = t.expand(B, -1, -1) if t.shape[0] != B else t
        return t.gather(2, idx[:, None, :].expand(B, t.shape[1], -1)) * cf[:, None, :]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.pieces(z).amax(-1)

    def spec_parameters(self) -> None:
        """Max units hold no parameters a spec stores."""
        return None

    def piece_magnitudes(self, m: torch.Tensor) -> torch.Tensor:
        """Bounds ``|coef[j, k]| m[index[j, k]]`` on every piece's magnitude over inputs ``|z| <= m``,
        (N, units, K); invalid pieces are 0."""
        c = self.coef.abs().to(dtype=m.dtype, device=m.device)
        return m[:, self.index] * c * self.valid

    def magnitude(self, m: torch.Tensor) -> torch.Tensor:
        """A bound on ``|y_j|`` over inputs ``|z| <= m``: the largest bound of its pieces."""
        return self.piece_magnitudes(m).amax(-1)

    def to(self, device=None, dtype=None) -> "MaxUnits":
        self.index = self.index.to(device=device)
        self.valid = self.valid.to(device=device)
        self.coef = self.coef.to(device=device, dtype=dtype)
        return self

    def to_module(self) -> nn.Module:
        k = self.kind
        if k == "relu":
            return nn.ReLU()
        if k == "leaky_relu":
            return nn.LeakyReLU(self.spec["negative_slope"])
        if k == "abs":
            return Abs()
        if k == "maxout":
            return GroupMax(self.spec["k"])
        if k == "maxpool":
            return (nn.MaxPool1d if self.spec["dim"] == 1 else nn.MaxPool2d)(**self.spec["conf"])
        raise ValueError(k)

    def __repr__(self) -> str:
        return f"MaxUnits({self.kind}, units={self.units}, K={self.index.shape[1]})"

    @staticmethod
    def elementwise(kind: str, shape: Shape, low: float, like: torch.Tensor, spec: dict | None = None) -> "MaxUnits":
        """Two-piece unit ``max(low * z_j, z_j)`` per coordinate (ReLU: low=0, abs: low=-1)."""
        n = numel(shape)
        ar = torch.arange(n, device=like.device)
        coef = torch.tensor([low, 1.0], dtype=like.dtype, device=like.device).expand(n, 2).contiguous()
        valid = torch.ones(n, 2, dtype=torch.bool, device=like.device)
        return MaxUnits(kind, torch.stack([ar, ar], 1), coef, valid, tuple(shape), tuple(shape), spec or {})

    @staticmethod
    def group_max(shape: Shape, k: int, like: torch.Tensor) -> "MaxUnits":
        """Maxout activation: max over consecutive groups of k along the feature dimension."""
        c = shape[0]
        if c % k:
            raise ValueError(f"feature dimension {c} is not a multiple of the maxout rank {k}")
        rest = numel(shape[1:])
        # unit (g, s) of the output takes features (g*k + r, s) of the input
        g = torch.arange(c // k, device=like.device)[:, None, None]
        r = torch.arange(k, device=like.device)[None, None, :]
        s = torch.arange(rest, device=like.device)[None, :, None]
        index = ((g * k + r) * rest + s).reshape(-1, k)
        coef = torch.ones(index.shape, dtype=like.dtype, device=like.device)
        valid = torch.ones(index.shape, dtype=torch.bool, device=like.device)
        return MaxUnits("maxout", index, coef, valid, tuple(shape), (c // k, *shape[1:]), {"k": k})

    @staticmethod
    def max_pool(shape: Shape, dim: int, conf: dict, like: torch.Tensor) -> "MaxUnits":
        """Max-pooling windows (with padding/dilation/ceil_mode) as index sets into the input."""
        fn = F.max_pool1d if dim == 1 else F.max_pool2d
        out_shape = tuple(fn(torch.zeros(1, *shape), **conf).shape[1:])

        def pair(v):
            return tuple(v) if isinstance(v, (tuple, list)) else (v,) * dim

        ks, st = pair(conf["kernel_size"]), pair(conf["stride"] if conf.get("stride") else conf["kernel_size"])
        pad, dil = pair(conf.get("padding", 0)), pair(conf.get("dilation", 1))
        dev = like.device
        spatial_in, spatial_out = shape[1:], out_shape[1:]
        # per spatial dimension: input coordinate of output position o and kernel offset q
        coords = [
            torch.arange(spatial_out[i], device=dev)[:, None] * st[i] - pad[i]
            + torch.arange(ks[i], device=dev)[None, :] * dil[i]
            for i in range(dim)
        ]
        if dim == 1:
            pos, ok = coords[0], (coords[0] >= 0) & (coords[0] < spatial_in[0])
        else:
            h, w = coords
            pos = (h[:, None, :, None] * spatial_in[1] + w[None, :, None, :]).reshape(
                spatial_out[0] * spatial_out[1], -1)
            okh = (h >= 0) & (h < spatial_in[0])
            okw = (w >= 0) & (w < spatial_in[1])
            ok = (okh[:, None, :, None] & okw[None, :, None, :]).reshape(pos.shape)
        # valid pieces first, so that "the k-th valid piece" is column k
        order = torch.argsort((~ok).to(torch.int8), dim=1, stable=True)
        pos, ok = pos.gather(1, order), ok.gather(1, order)
        pos = torch.where(ok, pos, torch.zeros_like(pos))
        plane = numel(spatial_in)
        chans = torch.arange(shape[0], device=dev)[:, None, None] * plane
        index = (chans + pos[None]).reshape(-1, pos.shape[1])
        valid = ok[None].expand(shape[0], *ok.shape).reshape(index.shape)
        coef = torch.ones(index.shape, dtype=like.dtype, device=dev)
        return MaxUnits("maxpool", index, coef, valid.contiguous(), tuple(shape), out_shape,
                        {"dim": dim, "conf": dict(conf)})


class Add:
    """Sum of two nodes' outputs of equal shape (a residual connection)."""

    kind = "add"

    def __init__(self, shape: Shape):
        self.in_shape = self.out_shape = tuple(shape)

    def to(self, device=None, dtype=None):
        return self

    @staticmethod
    def spec_parameters() -> None:
        return None

    @staticmethod
    def forward(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The node's value from its two inputs' values."""
        return x + y

    @staticmethod
    def tangent(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Derivatives along ``m`` directions from the two inputs' tangents (N, m, numel)."""
        return s + t

    @staticmethod
    def magnitude(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """A bound on ``|x + y|`` given bounds ``a >= |x|`` and ``b >= |y|``."""
        return a + b

    def __repr__(self) -> str:
        return f"Add({self.out_shape})"
