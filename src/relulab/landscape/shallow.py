r"""Shallow networks as first-class objects of the parameter-space engines.

    f(x) = sum_j a_j sigma(w_j . x + b_j) + c,        sigma(z) = max(z, alpha z),

with ``alpha = 0`` (ReLU), ``0 < alpha < 1`` (leaky ReLU) or ``alpha = -1`` (absolute value); ``m`` hidden
neurons, inputs in R^d, ``o`` outputs. The squared loss on finite data is
``L = 1/(2n) sum_i |f(x_i) - y_i|^2``. Parameters flatten as ``W`` row by row (neuron by neuron), then
``b``, then ``a`` row by row, then ``c``, keeping only the trainable blocks: ``trainable="all"``, or
``"first"`` (``W`` and ``b`` only, output weights fixed, the setting of Karhadkar, Murray, Tseran and
Montufar for activation regions in parameter space).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from relulab.core.errors import InvalidInputError, UnsupportedLayerError
from relulab.results import Result

__all__ = ["ShallowNet", "ACTIVATION_SLOPES"]

ACTIVATION_SLOPES = {"relu": 0.0, "abs": -1.0}


def _tensor(x, name, dtype=None, device=None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) and dtype is None:
        dtype = torch.float64  # lists and arrays: float64, the library's default for geometry
    try:
        # lists straight to the target dtype: through float32 first, 1.1 would become 1.100000023841858
        t = torch.as_tensor(x, device=device) if isinstance(x, torch.Tensor) else torch.as_tensor(
            x, dtype=dtype if dtype is not None and dtype.is_floating_point else torch.float64, device=device)
    except (TypeError, ValueError, RuntimeError) as e:
        raise InvalidInputError(f"{name} must be a tensor or array of numbers: {e}") from None
    if not (t.is_floating_point()):
        t = t.to(torch.float64 if dtype is None else dtype)
    elif dtype is not None:
        t = t.to(dtype)
    if not bool(torch.isfinite(t).all()):
        raise InvalidInputError(f"{name} must be finite")
    return t


@dataclass
class ShallowNet(Result):
    """``f(x) = a^T sigma(W x + b) + c`` (see the module docstring). ``W`` (m, d), ``a`` (m, o), ``b`` (m,)
    or None (no hidden bias), ``c`` (o,) or None (no output bias). ``alpha`` is set from ``activation``
    (relu 0, abs -1) unless ``activation="leaky_relu"``, which needs ``0 < alpha < 1`` (default 0.01)."""

    W: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor | None = None
    c: torch.Tensor | None = None
    activation: str = "relu"
    alpha: float | None = None
    trainable: str = "all"

    _summary_fields = ("activation", "alpha", "trainable")

    def __post_init__(self):
        W = _tensor(self.W, "W")
        if W.dim() != 2 or W.shape[0] < 1 or W.shape[1] < 1:
            raise InvalidInputError(f"W must be an (m, d) matrix with m, d >= 1, got shape {tuple(W.shape)}")
        m = W.shape[0]
        a = _tensor(self.a, "a", W.dtype, W.device)
        if a.dim() == 1:
            a = a[:, None]
        if a.dim() != 2 or a.shape[0] != m:
            raise InvalidInputError(f"a must have shape ({m},) or ({m}, o), got {tuple(a.shape)}")
        b = None if self.b is None else _tensor(self.b, "b", W.dtype, W.device).reshape(-1)
        if b is not None and b.numel() != m:
            raise InvalidInputError(f"b must have {m} entries (one per neuron), got {b.numel()}")
        c = None if self.c is None else _tensor(self.c, "c", W.dtype, W.device).reshape(-1)
        if c is not None and c.numel() != a.shape[1]:
            raise InvalidInputError(f"c must have {a.shape[1]} entries (one per output), got {c.numel()}")
        if self.activation not in ("relu", "leaky_relu", "abs"):
            raise InvalidInputError(f"activation must be 'relu', 'leaky_relu' or 'abs', got {self.activation!r}")
        if self.activation == "leaky_relu":
            alpha = 0.01 if self.alpha is None else float(self.alpha)
            if not 0.0 < alpha < 1.0:
                raise InvalidInputError(f"alpha (the leaky slope) must be in (0, 1), got {alpha}")
        else:
            alpha = ACTIVATION_SLOPES[self.activation]
            if self.alpha is not None and float(self.alpha) != alpha:
                raise InvalidInputError(f"activation {self.activation!r} has slope {alpha}, got alpha={self.alpha}")
        if self.trainable not in ("all", "first"):
            raise InvalidInputError(f"trainable must be 'all' or 'first', got {self.trainable!r}")
        self.W, self.a, self.b, self.c, self.alpha = W, a, b, c, alpha

    # ---------------------------------------------------------------- construction
    @classmethod
    def random(cls, d: int, m: int, o: int = 1, activation: str = "relu", alpha: float | None = None,
               bias: bool = True, output_bias: bool = False, trainable: str = "all", seed: int = 0,
               dtype=torch.float64, device=None) -> "ShallowNet":
        """He-style initialization: ``W ~ N(0, 2/d)``, ``b ~ N(0, 1)`` scaled like W, ``a ~ N(0, 1/m)``."""
        for name, v in (("d", d), ("m", m), ("o", o)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {v!r}")
        g = torch.Generator().manual_seed(int(seed))
        W = torch.randn(m, d, generator=g, dtype=torch.float64) * (2.0 / d) ** 0.5
        b = torch.randn(m, generator=g, dtype=torch.float64) * (2.0 / d) ** 0.5 if bias else None
        a = torch.randn(m, o, generator=g, dtype=torch.float64) / m ** 0.5
        c = torch.randn(o, generator=g, dtype=torch.float64) / m ** 0.5 if output_bias else None

        def put(t):
            return None if t is None else t.to(dtype=dtype, device=device)

        return cls(put(W), put(a), put(b), put(c), activation, alpha, trainable)

    @property
    def m(self) -> int:
        return int(self.W.shape[0])

    @property
    def d(self) -> int:
        return int(self.W.shape[1])

    @property
    def o(self) -> int:
        return int(self.a.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.W.dtype

    @property
    def device(self) -> torch.device:
        return self.W.device

    # ---------------------------------------------------------------- evaluation
    def _inputs(self, X) -> torch.Tensor:
        X = _tensor(X, "X", self.dtype, self.device)
        if X.dim() == 1 and X.numel() == self.d:
            X = X[None]
        if X.dim() != 2 or X.shape[1] != self.d:
            raise InvalidInputError(f"X must have shape (n, {self.d}), got {tuple(X.shape)}")
        return X

    def preactivations(self, X) -> torch.Tensor:
        """``Z = X W^T + b``, shape (n, m)."""
        X = self._inputs(X)
        Z = X @ self.W.T
        return Z if self.b is None else Z + self.b

    def signs(self, X) -> torch.Tensor:
        """Sign of every pre-activation, (n, m) int8 in {-1, 0, +1}; 0 exactly on a kink."""
        return torch.sign(self.preactivations(X)).to(torch.int8)

    def sigma(self, Z: torch.Tensor) -> torch.Tensor:
        return torch.where(Z > 0, Z, self.alpha * Z)

    def __call__(self, X) -> torch.Tensor:
        """``f(X)``, shape (n, o)."""
        out = self.sigma(self.preactivations(X)) @ self.a
        return out if self.c is None else out + self.c

    def loss(self, X, Y) -> torch.Tensor:
        """``L = 1/(2n) sum_i |f(x_i) - y_i|^2``; ``Y`` (n, o), or (n,) when o = 1."""
        X = self._inputs(X)
        Y = _tensor(Y, "Y", self.dtype, self.device)
        if Y.dim() == 1 and self.o == 1:
            Y = Y[:, None]
        if Y.shape != (X.shape[0], self.o):
            raise InvalidInputError(f"Y must have shape ({X.shape[0]}, {self.o}), got {tuple(Y.shape)}")
        R = self(X) - Y
        return 0.5 * (R * R).sum() / X.shape[0]

    # ---------------------------------------------------------------- parameters
    def _blocks(self) -> list[tuple[str, torch.Tensor]]:
        blocks = [("W", self.W)] + ([("b", self.b)] if self.b is not None else [])
        if self.trainable == "all":
            blocks += [("a", self.a)] + ([("c", self.c)] if self.c is not None else [])
        return blocks

    @property
    def n_parameters(self) -> int:
        return sum(t.numel() for _, t in self._blocks())

    def parameter_slices(self) -> dict[str, slice]:
        """Where each trainable block sits in :meth:`parameters_vector`."""
        out, i = {}, 0
        for name, t in self._blocks():
            out[name] = slice(i, i + t.numel())
            i += t.numel()
        return out

    def parameters_vector(self) -> torch.Tensor:
        """The trainable parameters as one vector: W (row-major), b, then (trainable="all") a, c."""
        return torch.cat([t.reshape(-1) for _, t in self._blocks()])

    def with_parameters(self, theta) -> "ShallowNet":
        """The same network with its trainable blocks read from ``theta`` (as :meth:`parameters_vector`)."""
        theta = _tensor(theta, "theta", self.dtype, self.device).reshape(-1)
        if theta.numel() != self.n_parameters:
            raise InvalidInputError(f"theta must have {self.n_parameters} entries, got {theta.numel()}")
        new = {}
        for name, s in self.parameter_slices().items():
            new[name] = theta[s].reshape(getattr(self, name).shape).clone()
        return replace(self, **new)

    # ---------------------------------------------------------------- conversion
    def _activation_module(self) -> nn.Module:
        from relulab.nn import Abs

        return {"relu": nn.ReLU, "abs": Abs}.get(self.activation, lambda: nn.LeakyReLU(self.alpha))()

    def to_torch(self) -> nn.Sequential:
        """``nn.Sequential(Linear(d, m), activation, Linear(m, o))`` with these parameters (same dtype)."""
        first = nn.Linear(self.d, self.m, bias=self.b is not None, dtype=self.dtype, device=self.device)
        last = nn.Linear(self.m, self.o, bias=self.c is not None, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            first.weight.copy_(self.W)
            last.weight.copy_(self.a.T)
            if self.b is not None:
                first.bias.copy_(self.b)
            if self.c is not None:
                last.bias.copy_(self.c)
        return nn.Sequential(first, self._activation_module(), last).eval()

    def to_plnet(self):
        """The exact :class:`relulab.PLNet` of this network."""
        from relulab.core.plnet import PLNet

        return PLNet.from_torch(self.to_torch(), (self.d,), dtype=self.dtype)

    @classmethod
    def from_plnet(cls, net, trainable: str = "all") -> "ShallowNet":
        """Read a :class:`relulab.PLNet` that is exactly ``Linear(d, m)``, ReLU | leaky ReLU | abs,
        ``Linear(m, o)`` (reshapes of a 1-D input allowed) into a ShallowNet with the same parameters
        and dtype; :class:`UnsupportedLayerError` saying what the network is otherwise (the architecture
        comes from :func:`relulab.core.recognize.architecture`)."""
        from relulab.core.recognize import architecture

        arch = architecture(net)
        if not arch.is_shallow:
            if not arch.is_mlp:
                why = arch.why
            elif arch.output_activation is not None:
                why = f"it applies {arch.output_activation} to its output"
            elif arch.depth != 1:
                why = f"it has {arch.depth} hidden layers"
            else:
                why = f"its activation is {arch.activation}"
            raise UnsupportedLayerError(f"a shallow network is Linear(d, m), then ReLU, LeakyReLU or Abs, then "
                                        f"Linear(m, o); this one is not: {why}")
        first, last = (n.layer for n in net.nodes[1:] if n.layer.kind == "linear")
        t = (lambda p: None if p is None else p.detach().clone())
        return cls(t(first.weight), t(last.weight).T.contiguous(), t(first.bias), t(last.bias), arch.activation,
                   arch.param, trainable)

    @classmethod
    def from_torch(cls, module: nn.Module, trainable: str = "all") -> "ShallowNet":
        """Read a torch module computing ``Linear(d, m)``, ReLU | LeakyReLU | Abs, ``Linear(m, o)`` (an
        ``nn.Sequential`` or any module :meth:`relulab.PLNet.from_torch` converts, functional ``F.relu``
        included) into a ShallowNet in the module's dtype: converted exactly, then read by
        :meth:`from_plnet` (the one architecture recognizer)."""
        from relulab.core.plnet import PLNet
        from relulab.core.recognize import input_shape_of

        if not isinstance(module, nn.Module):
            raise InvalidInputError(f"ShallowNet.from_torch needs a torch nn.Module, got {type(module).__name__}")
        shape = input_shape_of(module)
        if shape is None:
            raise UnsupportedLayerError("ShallowNet.from_torch: a shallow network starts with nn.Linear(d, m); "
                                        f"{type(module).__name__} has none first")
        dtypes = {p.dtype for p in module.parameters()}
        dtype = dtypes.pop() if len(dtypes) == 1 else torch.float64
        return cls.from_plnet(PLNet.from_torch(module, shape, dtype=dtype), trainable)
