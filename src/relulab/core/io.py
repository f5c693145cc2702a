"""Model files: reading networks from disk into a :class:`~relulab.core.plnet.PLNet`, and writing them.

Three formats, recognised by their bytes rather than their names:

* a ``torch.export`` program (``.pt2``): the graph is translated op by op into stock torch layers and
  then converted exactly; its input shape comes from the example input stored with the program;
* a ``safetensors`` file holding the weights of an architecture spec (see :func:`parse_arch`); the spec
  may be stored in the file's metadata under ``relulab_arch``, as :func:`save` does;
* a weights-only torch state dict (``torch.save(model.state_dict(), ...)``), read with
  ``torch.load(..., weights_only=True)``, together with an architecture spec.

Nothing is ever unpickled beyond tensors and plain containers: ``.pt2`` archives that carry pickled
payloads, custom objects or symbolic expressions outside a small grammar are refused before torch reads
them. Every problem with a file raises :class:`~relulab.core.errors.ModelFileError` with one line that
names the file and says what was expected.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from relulab import nn as rnn
from relulab.core import limits
from relulab.core.errors import InvalidInputError, ModelFileError, RelulabError, SUPPORTED_LAYERS, \
    UnsupportedLayerError
from relulab.core.plnet import PLNet
from relulab.core.recognize import _pair

__all__ = ["ArchSpec", "ModelFile", "build", "load", "open_model", "parse_arch", "save", "infer_arch",
           "parse_shape", "ARCH_GRAMMAR"]

ARCH_GRAMMAR = ("mlp:IN-H1-...-OUT[:ACT][:out=OUTACT] or cnn:CxHxW-TOKEN-...-OUT[:ACT][:out=OUTACT] (tokens "
                "cNkK[sS][pP] conv, mK max-pool, aK avg-pool, N linear); ACT is relu, leaky_relu[:SLOPE], abs or "
                "maxout:K (mlp only); out=OUTACT (relu, leaky_relu[:SLOPE] or abs) is applied to the output layer")
FORMATS = "a torch.export program (.pt2), a safetensors file or a weights-only torch state dict (.pt/.pth)"
METADATA_KEY = "relulab_arch"


# ====================================================================== architecture specs
@dataclass(frozen=True)
class ArchSpec:
    """A parsed architecture spec such as ``mlp:2-64-64-1:relu`` or ``cnn:1x8x8-c4k3-m2-10:relu``.

    ``str(spec)`` is the canonical spelling; :meth:`module` builds the ``nn.Sequential`` whose
    ``state_dict`` keys are what weight files for this spec must contain.
    """

    family: str
    input_shape: tuple[int, ...]
    tokens: tuple  # mlp: output widths; cnn: ("conv", C, K, S, P) / ("max", K) / ("avg", K) / ("dense", N)
    activation: str = "relu"
    param: float | int | None = None
    output_activation: str | None = None  # applied to the output layer (relu, leaky_relu or abs), or None
    output_param: float | None = None

    def __str__(self) -> str:
        act = _act_str(self.activation, self.param)
        if self.family == "mlp":
            body = "-".join(str(n) for n in (*self.input_shape, *self.tokens))
        else:
            body = "-".join(["x".join(map(str, self.input_shape)), *(_cnn_token_str(t) for t in self.tokens)])
        out = "" if self.output_activation is None else ":out=" + _act_str(self.output_activation, self.output_param)
        return f"{self.family}:{body}:{act}{out}"

    def _act(self, kind: str | None = None, param=None) -> nn.Module:
        kind, param = (self.activation, self.param) if kind is None else (kind, param)
        if kind == "relu":
            return nn.ReLU()
        if kind == "leaky_relu":
            return nn.LeakyReLU(float(param))
        if kind == "abs":
            return rnn.Abs()
        raise AssertionError(kind)

    def _output_act(self) -> list[nn.Module]:
        return [] if self.output_activation is None else [self._act(self.output_activation, self.output_param)]

    def module(self, seed: int | None = None) -> nn.Sequential:
        """A freshly initialised ``nn.Sequential`` (torch's default initialisation; ``seed`` fixes it)."""
        ctx = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with ctx:
            if seed is not None:
                torch.manual_seed(int(seed))
            return self._mlp() if self.family == "mlp" else self._cnn()

    def _mlp(self) -> nn.Sequential:
        widths = (self.input_shape[0], *self.tokens)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            if self.activation == "maxout" and not last:
                layers.append(rnn.Maxout(a, b, int(self.param)))
                continue
            layers.append(nn.Linear(a, b))
            if not last:
                layers.append(self._act())
        return nn.Sequential(*layers, *self._output_act())

    def _cnn(self) -> nn.Sequential:
        dim = len(self.input_shape) - 1
        conv, maxp, avgp = ((nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d) if dim == 1 else
                            (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))
        layers: list[nn.Module] = []
        shape = self.input_shape
        flat = False
        for i, tok in enumerate(self.tokens):
            last = i == len(self.tokens) - 1
            if tok[0] == "conv":
                _, c, k, s, p = tok
                layers += [conv(shape[0], c, k, stride=s, padding=p), self._act()]
            elif tok[0] == "max":
                layers.append(maxp(tok[1]))
            elif tok[0] == "avg":
                layers.append(avgp(tok[1]))
            else:
                if not flat:
                    layers.append(nn.Flatten())
                    flat = True
                layers.append(nn.Linear(math.prod(shape), tok[1]))
                if not last:
                    layers.append(self._act())
            if tok[0] != "dense":
                with torch.no_grad():
                    try:
                        shape = tuple(nn.Sequential(*layers[-2:] if tok[0] == "conv" else layers[-1:])(
                            torch.zeros(1, *shape)).shape[1:])
                    except RuntimeError as e:
                        raise InvalidInputError(f"architecture spec {self}: token {_cnn_token_str(tok)} does not fit "
                                                f"an input of shape {shape} ({str(e).splitlines()[0]})") from None
            else:
                shape = (tok[1],)
        return nn.Sequential(*layers, *self._output_act())


def _act_str(kind: str, param) -> str:
    if kind == "leaky_relu":
        return f"{kind}:{param!r}"
    if kind == "maxout":
        return f"{kind}:{param}"
    return kind


def _cnn_token_str(t) -> str:
    if t[0] == "conv":
        _, c, k, s, p = t
        return f"c{c}k{k}" + (f"s{s}" if s != 1 else "") + (f"p{p}" if p != 0 else "")
    return {"max": "m", "avg": "a"}.get(t[0], "") + str(t[1])


_CONV_TOKEN = re.compile(r"c(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?")


def _sizes(spec: ArchSpec) -> tuple[int, int]:
    """(parameters, largest number of features per sample) of the network a spec describes, by
    arithmetic on its sizes (nothing is allocated); stops at the first layer whose output is empty."""
    if spec.family == "mlp":
        widths = (spec.input_shape[0], *spec.tokens)
        k = int(spec.param) if spec.activation == "maxout" else 1
        params = feats = widths[0]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            kk = k if i < len(widths) - 2 else 1
            params += a * b * kk + b * kk
            feats = max(feats, b * kk)
        return params - widths[0], feats
    shape = list(spec.input_shape)
    params, feats = 0, math.prod(shape)
    for tok in spec.tokens:
        if tok[0] == "conv":
            _, c, k, s, p = tok
            params += shape[0] * c * k ** (len(shape) - 1) + c
            shape = [c] + [(n + 2 * p - k) // s + 1 for n in shape[1:]]
        elif tok[0] in ("max", "avg"):
            shape = [shape[0]] + [n // tok[1] for n in shape[1:]]
        else:
            params += math.prod(shape) * tok[1] + tok[1]
            shape = [tok[1]]
        if min(shape) < 1:
            break
        feats = max(feats, math.prod(shape))
    return params, feats


def parse_arch(spec: str | ArchSpec, max_parameters: int | None = None) -> ArchSpec:
    """Parse an architecture spec; raise :class:`InvalidInputError` naming the grammar on failure.

    ``mlp:2-64-64-1:relu`` is ``Linear(2,64), ReLU, Linear(64,64), ReLU, Linear(64,1)``;
    ``maxout:K`` replaces each hidden Linear+activation by ``relulab.nn.Maxout(., ., K)``;
    ``cnn:1x8x8-c4k3p1-m2-16-10:relu`` is ``Conv2d(1,4,3,padding=1), ReLU, MaxPool2d(2), Flatten,
    Linear(64,16), ReLU, Linear(16,10)``; a last field ``out=ACT`` applies ACT to the output layer too:
    ``mlp:2-8-1:relu:out=relu`` ends ``Linear(8,1), ReLU`` (the convention of networks that end with
    an activation, as relucent's do).

    The network's parameter count and its widest layer are worked out from the sizes before anything
    is built: more than ``max_parameters`` (default :data:`relulab.core.limits.MAX_PARAMETERS`)
    parameters or :data:`relulab.core.limits.MAX_FEATURES` features per sample raise
    :class:`ResourceLimitError`.
    """
    if isinstance(spec, ArchSpec):
        _check_sizes(spec, max_parameters)
        return spec
    if not isinstance(spec, str):
        raise InvalidInputError(f"architecture spec must be a string like 'mlp:2-64-64-1:relu', got {type(spec).__name__}")

    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(f"architecture spec {spec!r}: {why}; expected {ARCH_GRAMMAR}")

    parts = [p.strip() for p in spec.strip().split(":")]
    family = parts[0].lower()
    if family not in ("mlp", "cnn"):
        raise bad(f"unknown family {parts[0]!r}")
    if len(parts) < 2 or not parts[1]:
        raise bad("no layer sizes")
    # an activation of the output layer: the fields from "out=" on
    outs = [i for i, p in enumerate(parts) if p.lower().startswith("out=")]
    out_act = out_param = None
    if outs:
        j = outs[0]
        if len(outs) > 1:
            raise bad("one out= activation at most")
        if not parts[j][4:].strip():
            raise bad("out= needs an activation, e.g. out=relu")
        out_act, out_param = _parse_act([parts[j][4:].strip(), *parts[j + 1:]], bad, "out=")
        if out_act == "maxout":
            raise bad("the output activation is relu, leaky_relu[:SLOPE] or abs")
        parts = parts[:j]
    act, param = _parse_act(parts[2:], bad, "")
    items = [t.strip().lower() for t in parts[1].split("-")]
    if family == "mlp":
        if not all(t.isdigit() and int(t) > 0 for t in items) or len(items) < 2:
            raise bad("mlp sizes must be at least two positive integers joined by '-'")
        sizes = [int(t) for t in items]
        return _check_sizes(ArchSpec("mlp", (sizes[0],), tuple(sizes[1:]), act, param, out_act, out_param),
                            max_parameters)
    if act == "maxout":
        raise bad("maxout is available for mlp specs only")
    try:
        input_shape = tuple(int(s) for s in items[0].split("x"))
    except ValueError:
        raise bad(f"input shape {items[0]!r} is not CxL or CxHxW") from None
    if len(input_shape) not in (2, 3) or min(input_shape) < 1:
        raise bad(f"input shape {items[0]!r} is not CxL or CxHxW")
    tokens: list[tuple] = []
    for t in items[1:]:
        m = _CONV_TOKEN.fullmatch(t)
        if m:
            c, k = int(m[1]), int(m[2])
            s, p = int(m[3]) if m[3] else 1, int(m[4]) if m[4] else 0
            if tokens and tokens[-1][0] == "dense":
                raise bad(f"convolution {t!r} after a linear layer")
            if min(c, k, s) < 1:
                raise bad(f"token {t!r} needs positive sizes")
            tokens.append(("conv", c, k, s, p))
        elif re.fullmatch(r"[ma]\d+", t) and int(t[1:]) > 0:
            if tokens and tokens[-1][0] == "dense":
                raise bad(f"pooling {t!r} after a linear layer")
            tokens.append(("max" if t[0] == "m" else "avg", int(t[1:])))
        elif t.isdigit() and int(t) > 0:
            tokens.append(("dense", int(t)))
        else:
            raise bad(f"unknown token {t!r}")
    if not tokens or tokens[-1][0] != "dense":
        raise bad("a cnn spec ends with the output size (a linear layer)")
    out = _check_sizes(ArchSpec("cnn", input_shape, tuple(tokens), act, param, out_act, out_param), max_parameters)
    out.module()  # shape check of every token, with a clear message
    return out


def _parse_act(fields: list, bad, what: str) -> tuple[str, float | int | None]:
    """``ACT[:PARAM]`` from the fields after the sizes (or after ``out=``): (kind, parameter)."""
    act = fields[0].lower() if fields and fields[0] else "relu"
    rest = fields[1:]
    param: float | int | None = None
    if act in ("relu", "abs"):
        if rest:
            raise bad(f"{what}{act} takes no parameter")
    elif act in ("leaky_relu", "leakyrelu", "leaky"):
        act = "leaky_relu"
        if len(rest) > 1:
            raise bad(f"{what}leaky_relu takes one slope")
        try:
            param = float(rest[0]) if rest else 0.01
        except ValueError:
            raise bad(f"slope {rest[0]!r} is not a number") from None
        if not (math.isfinite(param) and param < 1):
            raise bad(f"leaky_relu slope must be below 1, got {param}")
        if abs(param) > limits.MAX_SLOPE:
            raise bad(f"leaky_relu slope must have magnitude at most {limits.MAX_SLOPE:g}, got {param}")
    elif act == "maxout":
        if len(rest) != 1 or not rest[0].isdigit() or int(rest[0]) < 1:
            raise bad("maxout needs its rank, e.g. maxout:2")
        param = int(rest[0])
    else:
        raise bad(f"unknown activation {fields[0]!r}")
    return act, param


def _check_sizes(spec: ArchSpec, max_parameters: int | None) -> ArchSpec:
    params, feats = _sizes(spec)
    limits.check(params, limits.pick(max_parameters, limits.MAX_PARAMETERS, "max_parameters"),
                 f"architecture spec {spec}: number of parameters",
                 "max_parameters=, relulab.core.limits.MAX_PARAMETERS")
    limits.check(feats, limits.MAX_FEATURES, f"architecture spec {spec}: features per sample of its widest layer",
                 "relulab.core.limits.MAX_FEATURES")
    return spec


def build(arch: str | ArchSpec, seed: int | None = None, max_parameters: int | None = None) -> nn.Sequential:
    """The torch module an architecture spec describes, freshly initialised (see :func:`parse_arch`)."""
    return parse_arch(arch, max_parameters=max_parameters).module(seed=seed)


def parse_shape(text) -> tuple[int, ...]:
    """``"1x28x28"``, ``"2"``, ``"3,32,32"`` or a sequence of ints -> a per-sample shape tuple."""
    if isinstance(text, int):
        text = (text,)
    if isinstance(text, str):
        items = [t for t in re.split(r"[x,\s]+", text.strip().lower()) if t]
    else:
        items = list(text)
    try:
        shape = tuple(int(s) for s in items)
    except (TypeError, ValueError):
        raise InvalidInputError(f"input shape {text!r}: expected positive integers like 2 or 1x28x28") from None
    if not shape or min(shape) < 1:
        raise InvalidInputError(f"input shape {text!r}: expected positive integers like 2 or 1x28x28")
    limits.check(math.prod(shape), limits.MAX_FEATURES, f"input shape {text!r}: features per sample",
                 "relulab.core.limits.MAX_FEATURES")
    return shape


# ====================================================================== loading
@dataclass
class ModelFile:
    """A network read from a file, with what the file said about it."""

    net: PLNet
    path: str
    format: str  # "torch.export", "safetensors" or "torch"
    arch: str | None = None
    metadata: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"file": self.path, "format": self.format, "arch": self.arch, **self.net.describe()}


def load(path, arch: str | None = None, input_shape=None, dtype=torch.float64, device=None,
         max_bytes: int | None = None) -> PLNet:
    """Read a model file into an exact :class:`PLNet` (see the module docstring for the formats).

    ``arch`` is the architecture spec of a weights file (not needed when the file's metadata has one);
    ``input_shape`` is checked against the file's. Raises :class:`ModelFileError` for a missing,
    corrupt, truncated, unknown or mismatched file and :class:`UnsupportedLayerError` for an exported
    program with an operation that has no exact piecewise-linear form.

    Sizes are checked before anything is read: the file, the uncompressed sizes its zip members declare
    and the tensor storages a torch file declares must fit the file and ``max_bytes`` (default
    :data:`relulab.core.limits.MAX_FILE_BYTES`), else :class:`ResourceLimitError`; only regular files
    are read (a FIFO or a device is refused).
    """
    return open_model(path, arch=arch, input_shape=input_shape, dtype=dtype, device=device, max_bytes=max_bytes).net


def open_model(path, arch: str | None = None, input_shape=None, dtype=torch.float64, device=None,
               max_bytes: int | None = None) -> ModelFile:
    """Like :func:`load`, and also say which format the file had and which spec described it."""
    p = Path(path)
    limit = limits.pick(max_bytes, limits.MAX_FILE_BYTES, "max_bytes")
    fmt = _sniff(p, limit)
    want = parse_shape(input_shape) if input_shape is not None else None
    if fmt == "pt2":
        if arch is not None:
            raise InvalidInputError(f"{p}: a torch.export program carries its own architecture; "
                                    "an architecture spec is only for weight files")
        net = _load_pt2(p, want, dtype, device)
        return ModelFile(net, str(p), "torch.export")
    if fmt == "safetensors":
        tensors, meta = _read_safetensors(p)
    else:
        tensors, meta = _read_torch(p, limit)
    spec_text = arch if arch is not None else meta.get(METADATA_KEY)
    if not spec_text:
        raise ModelFileError(f"{p}: this {'safetensors' if fmt == 'safetensors' else 'torch'} file holds weights only; "
                             "give its architecture spec (arch=..., CLI --arch), e.g. mlp:2-64-64-1:relu")
    try:
        spec = parse_arch(spec_text)
    except InvalidInputError as e:
        if arch is not None:
            raise
        raise ModelFileError(f"{p}: its metadata names an invalid architecture ({e})") from None
    if want is not None and want != spec.input_shape:
        raise ModelFileError(f"{p}: {spec} takes inputs of shape {_shape_str(spec.input_shape)}, "
                             f"not {_shape_str(want)}")
    module = spec.module().to(torch.float64)
    _fill(module, tensors, p, spec)
    net = PLNet.from_torch(module.eval(), spec.input_shape, dtype=dtype, device=device)
    return ModelFile(net, str(p), "safetensors" if fmt == "safetensors" else "torch", str(spec),
                     {k: v for k, v in meta.items() if isinstance(v, str)})


def _shape_str(shape) -> str:
    return "x".join(map(str, shape))


def _sniff(p: Path, limit: int) -> str:
    """The file's format from its first bytes: 'pt2', 'safetensors' or 'torch'; sizes checked on the way."""
    size = limits.file_size(p, limit, ModelFileError, FORMATS)
    if size == 0:
        raise ModelFileError(f"{p}: is empty; expected {FORMATS}")
    try:
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise ModelFileError(f"{p}: cannot be read ({e.strerror or e})") from None
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(p) as z:
                infos = z.infolist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, zlib.error) as e:
            raise ModelFileError(f"{p}: corrupt or truncated archive ({e}); expected {FORMATS}") from None
        names = [i.filename for i in infos]
        # declared sizes, before anything is decompressed: a small archive may claim gigabytes
        limits.check(sum(i.file_size for i in infos), limit, f"{p}: uncompressed size of the archive in bytes",
                     "max_bytes=, relulab.core.limits.MAX_FILE_BYTES")
        rel = {n.split("/", 1)[1] if "/" in n else n for n in names}
        if "archive_format" in rel or any(r.startswith("models/") for r in rel) \
                or "serialized_exported_program.json" in rel:
            return "pt2"
        if "data.pkl" in rel:
            return "torch"
        raise ModelFileError(f"{p}: a zip archive that is neither a torch.export program nor a torch.save file; "
                             f"expected {FORMATS}")
    if len(head) >= 9 and head[8:9] == b"{":
        n = int.from_bytes(head[:8], "little")
        if 8 + n <= size:
            return "safetensors"
        raise ModelFileError(f"{p}: truncated safetensors file (its header alone needs {8 + n} bytes, "
                             f"the file has {size})")
    if head[:1] == b"\x80":  # a pickle protocol marker: the legacy torch.save format
        return "torch"
    raise ModelFileError(f"{p}: not a model file; expected {FORMATS}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _read_safetensors(p: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error type for every malformed file
        raise ModelFileError(f"{p}: corrupt or truncated safetensors file ({_first_line(e)})") from None
    return tensors, meta


_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def _read_torch(p: Path, limit: int) -> tuple[dict, dict]:
    import pickle

    _check_storages(p, limit)
    try:
        with _quiet():
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(f"{p}: holds Python objects other than tensors, which relulab refuses to unpickle; "
                             "save model.state_dict() instead, or use safetensors") from None
    except Exception as e:
        raise ModelFileError(f"{p}: corrupt or truncated torch file ({_first_line(e)})") from None
    if not isinstance(obj, Mapping):
        raise ModelFileError(f"{p}: holds a {type(obj).__name__}, not a state dict (a mapping of names to tensors)")
    meta = {k: v for k, v in obj.items() if k == METADATA_KEY and isinstance(v, str)}
    sd = {k: v for k, v in obj.items() if k != METADATA_KEY}
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        inner = [k for k in _STATE_DICT_KEYS if isinstance(obj.get(k), Mapping)
                 and all(isinstance(v, torch.Tensor) for v in obj[k].values())]
        if not inner:
            raise ModelFileError(f"{p}: not a state dict (a mapping of names to tensors); its keys are "
                                 f"{_few(sorted(map(str, obj)))}")
        sd = dict(obj[inner[0]])
        if isinstance(obj.get(METADATA_KEY), str):
            meta[METADATA_KEY] = obj[METADATA_KEY]
    return sd, meta


_ITEMSIZE = {"Double": 8, "Float": 4, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1,
             "Byte": 1, "Bool": 1, "ComplexDouble": 16, "ComplexFloat": 8, "Untyped": 1}


def _declared_storages(data: bytes, start: int = 0, per_key: dict | None = None) -> tuple[int, int]:
    """Bytes of the tensor storages that one pickle declares (also by storage key into ``per_key``),
    and where the pickle ends, read by walking its
    opcodes (``pickletools.genops``: nothing is executed or imported).

    torch writes each storage as the persistent id ``('storage', <torch XStorage>, key, location,
    numel, ...)``; a small stack model of literals, memo and tuple opcodes rebuilds those tuples.
    """
    import pickletools

    mark = object()
    stack: list = []
    memo: dict = {}
    total = 0
    stream = io.BytesIO(data)
    stream.seek(start)
    end = start
    for op, arg, pos in pickletools.genops(stream):
        name = op.name
        end = stream.tell()
        if name == "MARK":
            stack.append(mark)
        elif name in ("GLOBAL", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                      "BINSTRING", "STRING", "BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG",
                      "NONE", "NEWTRUE", "NEWFALSE", "BINFLOAT", "FLOAT"):
            stack.append(arg)
        elif name == "STACK_GLOBAL":
            b, a = (stack.pop() if stack else None), (stack.pop() if stack else None)
            stack.append(f"{a} {b}")
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            k = int(name[-1])
            items = stack[-k:] if len(stack) >= k else []
            del stack[-k:]
            stack.append(tuple(items))
        elif name in ("TUPLE", "LIST", "DICT", "FROZENSET", "APPENDS", "SETITEMS", "ADDITEMS", "OBJ", "INST",
                      "POP_MARK"):
            i = max((j for j, v in enumerate(stack) if v is mark), default=-1)
            items = stack[i + 1:] if i >= 0 else []
            del stack[max(i, 0):]
            if name == "TUPLE":
                stack.append(tuple(items))
            elif name not in ("POP_MARK", "APPENDS", "SETITEMS", "ADDITEMS"):
                stack.append(None)
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = stack[-1] if stack else None
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo.get(arg))
        elif name in ("BINPERSID", "PERSID"):
            pid = stack.pop() if name == "BINPERSID" and stack else arg
            if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[4], int):
                kind = str(pid[1]).rsplit(" ", 1)[-1].removesuffix("Storage")
                nbytes = max(int(pid[4]), 0) * _ITEMSIZE.get(kind, 16)
                total += nbytes
                if per_key is not None:
                    per_key[str(pid[2])] = max(per_key.get(str(pid[2]), 0), nbytes)
            stack.append(None)
        elif name == "POP":
            if stack:
                stack.pop()
        elif name == "STOP":
            break
        elif name not in ("PROTO", "FRAME"):
            # REDUCE, BUILD, NEWOBJ, ... consume what they build from; their result is opaque here
            if name in ("REDUCE", "NEWOBJ", "BUILD", "SETITEM", "APPEND"):
                del stack[-2:]
            elif name == "NEWOBJ_EX":
                del stack[-3:]
            stack.append(None)
    return total, end


def _check_storages(p: Path, limit: int) -> None:
    """Refuse a torch file whose tensors declare more bytes than the file holds or than ``limit``
    (torch allocates a storage at its declared size before reading its bytes)."""
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                infos = z.infolist()
                pkl = [i for i in infos if i.filename.endswith("data.pkl")]
                if not pkl:
                    return
                per_key: dict = {}
                declared, _ = _declared_storages(z.read(pkl[0]), per_key=per_key)
                records = [i for i in infos if "/data/" in i.filename or i.filename.startswith("data/")]
                available = sum(i.file_size for i in records)
                # torch reads a storage's record whole: one that unpacks to more than its tensor
                # declares (a deflated bomb) is refused before torch allocates it
                oversized = [(i.filename.rsplit("/", 1)[-1], i.file_size) for i in records
                             if per_key and i.file_size > per_key.get(i.filename.rsplit("/", 1)[-1], 0)]
        else:
            oversized = []
            data = p.read_bytes()
            declared, pos = 0, 0
            for _ in range(4):  # magic number, protocol, system info, then the object with the storages
                try:
                    n, pos = _declared_storages(data, pos)
                except ValueError:  # not torch's layout: torch.load says what it is
                    break
                declared += n
            available = len(data)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, NotImplementedError, zlib.error) as e:
        raise ModelFileError(f"{p}: corrupt or truncated torch file ({_first_line(e)})") from None
    if oversized:
        key, size = oversized[0]
        raise ModelFileError(f"{p}: storage record {key} unpacks to {size:,} bytes but its tensor declares "
                             f"{per_key.get(key, 0):,}; corrupt or crafted torch file")
    limits.check(declared, limit, f"{p}: bytes of the tensors it declares", "max_bytes=, "
                 "relulab.core.limits.MAX_FILE_BYTES")
    if declared > available:
        raise ModelFileError(f"{p}: its tensors declare {declared:,} bytes but the file holds {available:,}; "
                             "corrupt or truncated torch file")


def _few(items, n: int = 4) -> str:
    items = list(items)
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _fill(module: nn.Module, tensors: dict, p: Path, spec: ArchSpec) -> None:
    """Copy a file's tensors into the spec's module, checking names, shapes, dtypes and finiteness."""
    expected = module.state_dict()
    keys = set(tensors)
    if keys != set(expected):
        # one common prefix, as DataParallel ("module.") or a wrapper ("model.") leaves
        common = {k.split(".", 1)[0] + "." for k in keys if "." in k}
        if len(common) == 1:
            pre = next(iter(common))
            stripped = {k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)}
            if len(stripped) == len(tensors) and set(stripped) == set(expected):
                tensors, keys = stripped, set(stripped)
    missing, extra = sorted(set(expected) - keys), sorted(keys - set(expected))
    if missing or extra:
        what = []
        if missing:
            what.append(f"missing {_few(missing)}")
        if extra:
            what.append(f"unexpected {_few(extra)}")
        raise ModelFileError(f"{p} does not match {spec}: {'; '.join(what)}")
    for k, e in expected.items():
        t = tensors[k]
        if tuple(t.shape) != tuple(e.shape):
            raise ModelFileError(f"{p} does not match {spec}: {k} has shape {tuple(t.shape)}, "
                                 f"expected {tuple(e.shape)}")
        if not isinstance(t, torch.Tensor) or t.layout != torch.strided:
            kind = str(t.layout).replace("torch.", "") if isinstance(t, torch.Tensor) else type(t).__name__
            raise ModelFileError(f"{p}: {k} is a {kind} tensor; expected dense weights")
        if t.is_meta:
            raise ModelFileError(f"{p}: {k} is a meta tensor without values; expected stored weights")
        if not t.is_floating_point():
            raise ModelFileError(f"{p}: {k} has dtype {t.dtype}; expected floating-point weights")
        if not bool(torch.isfinite(t).all()):
            raise ModelFileError(f"{p}: {k} contains NaN or infinite values")
    with torch.no_grad():
        for k, e in expected.items():
            e.copy_(tensors[k])


# ---------------------------------------------------------------------- torch.export programs
_SAFE_EXPR_NAMES = {
    "Symbol", "Integer", "Rational", "Float", "positive", "negative", "nonnegative", "nonpositive", "integer",
    "real", "finite", "True", "False", "Max", "Min", "FloorDiv", "CeilDiv", "Mod", "PythonMod", "IntTrueDiv",
    "FloatTrueDiv", "TruncToInt", "ToFloat", "CleanDiv", "ModularIndexing", "Abs", "Eq", "Ne", "Lt", "Le", "Gt",
    "Ge", "And", "Or", "Not", "oo", "zoo", "nan", "floor", "ceiling", "PowByNatural", "FloatPow", "Identity",
    "RoundToInt", "RoundDecimal", "Piecewise", "int_oo",
}
_EXPR_TOKEN = re.compile(r"\s+|\d+(?:\.\d+)?(?:e[+-]?\d+)?|'[A-Za-z]+\d*'|[A-Za-z][A-Za-z0-9]*|\*\*|//|[-+*/%(),<>=!]=?")


def _safe_expr(s: str) -> bool:
    """Symbolic shape expressions are parsed by sympy (which evaluates Python); allow only a tiny grammar."""
    pos = 0
    while pos < len(s):
        m = _EXPR_TOKEN.match(s, pos)
        if not m:
            return False
        tok = m.group(0)
        if tok[0].isalpha() and tok not in _SAFE_EXPR_NAMES and not re.fullmatch(r"[a-z]+\d+", tok):
            return False
        pos = m.end()
    return True


def _pt2_prescan(p: Path) -> torch.Tensor | None:
    """Refuse archives that would make torch unpickle anything; return the stored example input."""
    def refuse(why: str) -> ModelFileError:
        return ModelFileError(f"{p}: refused torch.export archive: {why}")

    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
            roots = {n.split("/", 1)[0] for n in names}
            if len(roots) != 1:
                raise refuse("expected one top-level folder")
            root = next(iter(roots)) + "/"
            rel = {n[len(root):]: n for n in names if n.startswith(root)}
            if "models/model.json" not in rel or "archive_format" not in rel:
                raise refuse("an old or unknown layout (no models/model.json); re-export it with a current torch")
            for r, full in rel.items():
                if r.startswith("data/constants/") and r.split("/")[-1].startswith(("custom_obj", "opaque_obj")):
                    raise refuse(f"it carries a Python object ({r})")
                if r.endswith("_config.json") and (r.startswith("data/weights/") or r.startswith("data/constants/")):
                    try:
                        cfg = json.loads(z.read(full)).get("config", {})
                    except (ValueError, AttributeError):
                        raise refuse(f"{r} is not valid JSON") from None
                    for name, entry in cfg.items():
                        if not isinstance(entry, dict) or entry.get("use_pickle"):
                            raise refuse(f"{name} is stored as a pickle")
                        if r.startswith("data/constants/") and not str(entry.get("path_name", "")).startswith("tensor_"):
                            raise refuse(f"{name} is not a tensor")
            try:
                program = json.loads(z.read(rel["models/model.json"]))
            except ValueError:
                raise refuse("models/model.json is not valid JSON") from None
            bad = _unsafe_entries(program)
            if bad:
                raise refuse(bad)
            example = None
            if "data/sample_inputs/model.pt" in rel:
                raw = z.read(rel["data/sample_inputs/model.pt"])
                if raw:
                    try:
                        with _quiet():
                            args = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
                    except Exception:
                        raise refuse("its example inputs are not plain tensors") from None
                    example = _first_tensor(args)
            return example
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, NotImplementedError, zlib.error) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"{p}: corrupt or truncated torch.export archive ({_first_line(e)})") from None


def _unsafe_entries(obj) -> str | None:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "expr_str" and isinstance(v, str) and not _safe_expr(v):
                    return f"symbolic expression {v[:40]!r} outside the shape grammar"
                if k == "target" and isinstance(v, str) and not v.startswith(("torch.ops.", "_operator.")):
                    return f"operation {v[:60]!r} is not a torch operator"
                stack.append(v)
        elif isinstance(o, list):
            stack.extend(o)
    return None


def _first_tensor(args) -> torch.Tensor | None:
    if isinstance(args, torch.Tensor):
        return args
    if isinstance(args, (tuple, list)):
        for a in args:
            t = _first_tensor(a)
            if t is not None:
                return t
    if isinstance(args, dict):
        for a in args.values():
            t = _first_tensor(a)
            if t is not None:
                return t
    return None


@contextlib.contextmanager
def _quiet():
    # torch.export logs warnings for files it cannot read; relulab reports one error line instead
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(before)


def _load_pt2(p: Path, want, dtype, device) -> PLNet:
    example = _pt2_prescan(p)
    try:
        with _quiet():
            ep = torch.export.load(str(p))
            gm = ep.module()
    except RelulabError:
        raise
    except Exception as e:
        raise ModelFileError(f"{p}: cannot read the torch.export program ({type(e).__name__}: {_first_line(e)})") from None
    user_inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(user_inputs) != 1:
        raise UnsupportedLayerError(f"{p}: the exported program takes {len(user_inputs)} inputs; relulab needs one tensor")
    val = user_inputs[0].meta.get("val")
    if example is None and val is not None:
        shape = [int(s) if not isinstance(s, torch.SymInt) else 2 for s in val.shape]
        example = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(val.dtype)
    if example is None or example.dim() < 2:
        raise ModelFileError(f"{p}: the exported program has no batched example input to take the input shape from; "
                             "export it with a batch dimension first")
    shape = tuple(example.shape[1:])
    if want is not None and want != shape:
        raise ModelFileError(f"{p}: the exported program takes inputs of shape {_shape_str(shape)}, "
                             f"not {_shape_str(want)}")
    with _quiet():
        try:
            module = _stock_module(gm, p)
        except RelulabError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as e:
            raise UnsupportedLayerError(f"{p}: an operation with arguments relulab does not understand "
                                        f"({type(e).__name__}: {_first_line(e)})") from None
        net = PLNet.from_torch(module, shape, dtype=dtype, device=device)
    # the translation is checked against the exported program itself on its example input
    with torch.no_grad(), _quiet():
        try:
            ref = gm(example)
        except Exception as e:
            raise ModelFileError(f"{p}: the exported program fails on its own example input ({_first_line(e)})") from None
    if isinstance(ref, (tuple, list)):
        ref = ref[0]
    got = net(example.to(torch.float64)).to(torch.float64).cpu()
    ref = ref.to(torch.float64).reshape(got.shape)
    tol = (1e-4 if example.dtype != torch.float64 else 1e-9) * (1.0 + float(ref.abs().max()))
    err = float((got - ref).abs().max())
    if not err <= tol:
        raise ModelFileError(f"{p}: the converted network differs from the exported program by {err:.3g} "
                             f"on its example input")
    return net


def _stock_module(gm: torch.fx.GraphModule, p: Path) -> torch.fx.GraphModule:
    """Translate an exported (ATen-level) graph into a ``GraphModule`` of stock layers.

    Each ATen call becomes the torch module with the same semantics (``aten.linear`` -> ``nn.Linear``,
    ``aten.max_pool2d`` -> ``nn.MaxPool2d``, ...); reshapes keep the batch dimension symbolic, and the
    ``reshape(B, n/k, k) -> amax(dim=2)`` pattern that maxout exports to becomes ``GroupMax(k)``.
    """
    import operator

    import torch.fx as fx

    graph = fx.Graph()
    root = nn.Module()
    env: dict = {}       # old node -> new node
    const: dict = {}     # old node -> constant tensor (parameters, buffers, folded constants)
    tuples: dict = {}    # old node -> new node for element 0 of a tuple result
    reshaped: dict = {}  # old reshape node -> old source node (for the maxout pattern)
    x_new = size_new = None

    def unsupported(n, what: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(f"{p}: {what} (node {n.name}) has no exact piecewise-linear form in relulab; "
                                     f"relulab supports {SUPPORTED_LAYERS}")

    def shape_of(n) -> tuple:
        v = n.meta.get("val") if hasattr(n, "meta") else None
        if v is None or not hasattr(v, "shape"):
            raise unsupported(n, "a value of unknown shape")
        return tuple(v.shape)

    def tensor_in(n, a):
        if a in env:
            return env[a]
        raise unsupported(n, f"{_opname(n)} on a constant or unsupported value")

    def cvalue(n, a, optional=False):
        if a is None and optional:
            return None
        if isinstance(a, fx.Node) and a in const:
            return const[a]
        raise unsupported(n, f"{_opname(n)} with a weight computed from the input")

    def add_module(n, mod: nn.Module, src):
        name = re.sub(r"\W", "_", n.name)
        root.add_module(name, mod)
        return graph.call_module(name, (src,))

    def kw(n) -> dict:
        pair = n.normalized_arguments(gm, normalize_to_only_use_kwargs=True)
        if pair is None:
            raise unsupported(n, _opname(n))
        return dict(pair.kwargs)

    foldable = {"aten.t", "aten.permute", "aten.transpose", "aten.view", "aten.reshape", "aten.clone",
                "aten.detach", "aten._to_copy", "aten.contiguous", "aten.unsqueeze", "aten.squeeze",
                "aten.lift_fresh_copy", "aten.alias"}
    identity = {"aten.clone", "aten.detach", "aten.alias", "aten.contiguous", "aten.lift_fresh_copy"}
    reshapes = {"aten.view", "aten.reshape", "aten._unsafe_view", "aten.flatten", "aten.unflatten",
                "aten.squeeze", "aten.unsqueeze"}
    skip = {"aten._assert_tensor_metadata", "aten._assert_scalar", "aten.sym_constrain_range_for_size",
            "aten.sym_constrain_range", "aten._assert_async"}

    for n in gm.graph.nodes:
        if n.op == "placeholder":
            x_new = graph.placeholder("x")
            size_new = graph.call_method("size", (x_new, 0))
            env[n] = x_new
            continue
        if n.op == "get_attr":
            obj = gm
            for part in n.target.split("."):
                obj = getattr(obj, part)
            if isinstance(obj, torch.Tensor):
                # float64 copies: exact for stored float32/16 weights, and batch norm folds in float64
                const[n] = obj.detach().to(torch.float64) if obj.is_floating_point() else obj.detach()
            continue
        if n.op == "call_module":
            if not n.users:  # the guard function torch.export attaches
                continue
            raise unsupported(n, f"submodule {n.target}")
        if n.op == "output":
            outs = n.args[0]
            outs = outs if isinstance(outs, (tuple, list)) else (outs,)
            if len(outs) != 1 or outs[0] not in env:
                raise UnsupportedLayerError(f"{p}: the exported program returns {len(outs)} values; relulab needs "
                                            "one output tensor")
            graph.output(env[outs[0]])
            continue
        if n.op != "call_function":
            raise unsupported(n, f"a {n.op} node")
        if n.target is operator.getitem:
            src, idx = n.args
            if src in tuples and idx == 0:
                env[n] = tuples[src]
                continue
            if src in tuples and not n.users:
                continue
            raise unsupported(n, f"element {idx} of {getattr(src, 'name', src)}")
        op = _opname(n)
        if op in skip or (op == "aten.sym_size" and n.args[1:] in ((0,), [0])):
            continue
        tensor_args = [a for a in n.all_input_nodes]
        if op in foldable and tensor_args and all(a in const for a in tensor_args):
            args = torch.fx.node.map_arg(n.args, lambda a: const[a])
            kwargs = torch.fx.node.map_arg(n.kwargs, lambda a: const[a])
            const[n] = n.target(*args, **kwargs)
            continue
        if op == "aten.sym_size":
            raise unsupported(n, "the size of a non-batch dimension")
        a = kw(n)
        if op == "aten.linear":
            w, b = cvalue(n, a["weight"]), cvalue(n, a.get("bias"), optional=True)
            mod = nn.Linear(w.shape[1], w.shape[0], bias=b is not None).to(w.dtype)
            _copy(mod, w, b)
            env[n] = add_module(n, mod, tensor_in(n, a["input"]))
        elif op in ("aten.addmm", "aten.mm"):
            if op == "aten.addmm" and (a.get("beta", 1) != 1 or a.get("alpha", 1) != 1):
                raise unsupported(n, "addmm with beta or alpha other than 1")
            w = cvalue(n, a["mat2"]).T.contiguous()
            b = cvalue(n, a.get("input", a.get("self"))) if op == "aten.addmm" else None
            if b is not None and b.dim() > 1:
                raise unsupported(n, "addmm with a per-sample bias")
            mod = nn.Linear(w.shape[1], w.shape[0], bias=b is not None).to(w.dtype)
            _copy(mod, w, b)
            env[n] = add_module(n, mod, tensor_in(n, a["mat1"]))
        elif op in ("aten.conv1d", "aten.conv2d", "aten.convolution"):
            w, b = cvalue(n, a["weight"]), cvalue(n, a.get("bias"), optional=True)
            dim = w.dim() - 2
            if op == "aten.convolution" and a.get("transposed"):
                raise unsupported(n, "a transposed convolution")
            if dim not in (1, 2):
                raise unsupported(n, f"a {dim}-D convolution")
            pad = a.get("padding", 0)
            dil = _pair(a.get("dilation", 1), dim)
            if isinstance(pad, str):
                k = w.shape[2:]
                if pad == "valid":
                    pad = 0
                elif pad == "same" and all((d * (kk - 1)) % 2 == 0 for d, kk in zip(dil, k)):
                    pad = tuple(d * (kk - 1) // 2 for d, kk in zip(dil, k))
                else:
                    raise unsupported(n, f"padding={pad!r} with an even kernel")
            cls = nn.Conv1d if dim == 1 else nn.Conv2d
            groups = int(a.get("groups", 1))
            mod = cls(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=_pair(a.get("stride", 1), dim),
                      padding=_pair(pad, dim), dilation=dil, groups=groups, bias=b is not None).to(w.dtype)
            _copy(mod, w, b)
            env[n] = add_module(n, mod, tensor_in(n, a["input"]))
        elif op in ("aten.batch_norm", "aten._native_batch_norm_legit_no_training"):
            if a.get("training", False):
                raise unsupported(n, "batch norm in training mode")
            mean, var = cvalue(n, a["running_mean"]), cvalue(n, a["running_var"])
            w, b = cvalue(n, a.get("weight"), optional=True), cvalue(n, a.get("bias"), optional=True)
            nd = len(shape_of(n))
            cls = nn.BatchNorm1d if nd <= 3 else nn.BatchNorm2d
            mod = cls(mean.shape[0], eps=float(a["eps"]), affine=w is not None).to(mean.dtype).eval()
            with torch.no_grad():
                mod.running_mean.copy_(mean)
                mod.running_var.copy_(var)
                if w is not None:
                    mod.weight.copy_(w)
                    mod.bias.copy_(b if b is not None else torch.zeros_like(w))
            new = add_module(n, mod, tensor_in(n, a["input"]))
            if op == "aten.batch_norm":
                env[n] = new
            else:
                tuples[n] = new
        elif op in ("aten.relu", "aten.relu_"):
            env[n] = add_module(n, nn.ReLU(), tensor_in(n, a.get("input", a.get("self"))))
        elif op in ("aten.leaky_relu", "aten.leaky_relu_"):
            slope = float(a.get("negative_slope", 0.01))
            env[n] = add_module(n, nn.LeakyReLU(slope), tensor_in(n, a.get("input", a.get("self"))))
        elif op == "aten.abs":
            env[n] = add_module(n, rnn.Abs(), tensor_in(n, a.get("input", a.get("self"))))
        elif op in ("aten.max_pool1d", "aten.max_pool2d", "aten.max_pool2d_with_indices"):
            dim = 1 if op == "aten.max_pool1d" else 2
            ks = _pair(a["kernel_size"], dim)
            st = _pair(a.get("stride") or ks, dim)
            cls = nn.MaxPool1d if dim == 1 else nn.MaxPool2d
            mod = cls(ks, st, padding=_pair(a.get("padding", 0), dim), dilation=_pair(a.get("dilation", 1), dim),
                      ceil_mode=bool(a.get("ceil_mode", False)))
            new = add_module(n, mod, tensor_in(n, a.get("input", a.get("self"))))
            if op.endswith("with_indices"):
                tuples[n] = new
            else:
                env[n] = new
        elif op in ("aten.avg_pool1d", "aten.avg_pool2d"):
            dim = 1 if op == "aten.avg_pool1d" else 2
            ks = _pair(a["kernel_size"], dim)
            st = _pair(a.get("stride") or ks, dim)
            conf = dict(padding=_pair(a.get("padding", 0), dim), ceil_mode=bool(a.get("ceil_mode", False)),
                        count_include_pad=bool(a.get("count_include_pad", True)))
            if dim == 2:
                conf["divisor_override"] = a.get("divisor_override")
            elif a.get("divisor_override") is not None:
                raise unsupported(n, "avg_pool1d with divisor_override")
            mod = (nn.AvgPool1d if dim == 1 else nn.AvgPool2d)(ks, st, **conf)
            env[n] = add_module(n, mod, tensor_in(n, a.get("input", a.get("self"))))
        elif op in reshapes:
            src = n.all_input_nodes[0]
            s_in, s_out = shape_of(src), shape_of(n)
            if len(s_out) < 1 or len(s_in) < 1 or not _same_dim(s_in[0], s_out[0]) or \
                    math.prod(s_in[1:]) != math.prod(s_out[1:]):
                raise unsupported(n, f"a reshape from {_shape_text(s_in)} to {_shape_text(s_out)} that mixes the "
                                     "batch dimension")
            env[n] = graph.call_method("view", (tensor_in(n, src), size_new, *[int(s) for s in s_out[1:]]))
            reshaped[n] = src
        elif op == "aten.amax":
            src = a.get("self", a.get("input"))
            dims = a.get("dim") or []
            dims = [dims] if isinstance(dims, int) else list(dims)
            if src in reshaped and not a.get("keepdim", False) and len(dims) == 1:
                s_in, s_mid = shape_of(reshaped[src]), shape_of(src)
                d = dims[0] % len(s_mid)
                k = int(s_mid[2]) if len(s_mid) >= 3 else 0
                if d == 2 and k >= 1 and tuple(s_in[1:]) and int(s_in[1]) == int(s_mid[1]) * k and \
                        tuple(s_in[2:]) == tuple(s_mid[3:]):
                    env[n] = add_module(n, rnn.GroupMax(k), tensor_in(n, reshaped[src]))
                    continue
            raise unsupported(n, "a maximum over anything but consecutive feature groups (maxout)")
        elif op == "aten.add":
            x1, x2 = a.get("self", a.get("input")), a.get("other")
            if a.get("alpha", 1) != 1:
                raise unsupported(n, "add with alpha other than 1")
            if not (isinstance(x1, fx.Node) and isinstance(x2, fx.Node)) or x1 not in env or x2 not in env:
                raise unsupported(n, "adding a constant to a hidden value (use a bias)")
            env[n] = graph.call_function(operator.add, (env[x1], env[x2]))
        elif op in ("aten.dropout", "aten.feature_dropout", "aten.alpha_dropout"):
            if a.get("train", False) and float(a.get("p", 0)) > 0:
                raise unsupported(n, "dropout in training mode")
            env[n] = tensor_in(n, a.get("input"))
        elif op in identity:
            env[n] = tensor_in(n, n.all_input_nodes[0])
        else:
            raise unsupported(n, f"operation {op}")
    if x_new is None:
        raise UnsupportedLayerError(f"{p}: the exported program takes no input tensor")
    out = fx.GraphModule(root, graph, class_name="ExportedPLModule")
    out.graph.eliminate_dead_code()  # e.g. the reshape that a maxout's GroupMax replaced
    out.recompile()
    return out.eval()


def _opname(n) -> str:
    t = n.target
    if isinstance(t, torch._ops.OpOverload):
        ns, name = t._schema.name.split("::")
        return f"{ns}.{name}"
    if isinstance(t, torch._ops.OpOverloadPacket):
        return str(t).replace("::", ".")
    return getattr(t, "__name__", str(t))


def _same_dim(a, b) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return str(a) == str(b)


def _shape_text(s) -> str:
    return "(" + ", ".join(str(d) for d in s) + ")"


def _copy(mod: nn.Module, w: torch.Tensor, b: torch.Tensor | None) -> None:
    with torch.no_grad():
        mod.weight.copy_(w)
        if b is not None:
            mod.bias.copy_(b)


# ====================================================================== saving
def infer_arch(net: PLNet) -> ArchSpec:
    """The architecture spec of a plain MLP or CNN ``PLNet`` (an activation after the output layer
    included); :class:`InvalidInputError` if it has none (see :func:`relulab.core.recognize.architecture`)."""
    from relulab.core.recognize import architecture

    return architecture(net).spec()


def _weighted(net: PLNet) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    return [p for n in net.nodes[1:] if (p := n.layer.spec_parameters()) is not None]


def save(model, path, arch: str | None = None, input_shape=None) -> Path:
    """Write a network (``nn.Module`` or :class:`PLNet`) to ``path``.

    A path ending in ``.pt2`` gets a ``torch.export`` program (any supported network, batch dimension
    dynamic). Any other path gets a safetensors file with the weights of an architecture spec and the
    spec in its metadata (key ``relulab_arch``), so that ``relulab.load(path)`` needs no arguments;
    ``arch`` defaults to the spec inferred from the network (plain MLPs and CNNs). The saved network is
    checked to compute the same function before the file is written. Returns the path.
    """
    from safetensors.torch import save_file

    from relulab import __version__

    path = Path(path)
    shape = parse_shape(input_shape) if input_shape is not None else None
    spec = parse_arch(arch) if arch is not None else None
    if isinstance(model, PLNet):
        net = model
        if shape is not None and shape != net.input_shape:
            raise InvalidInputError(f"input_shape {shape} differs from the network's {net.input_shape}")
    elif isinstance(model, nn.Module):
        if shape is None:
            shape = spec.input_shape if spec is not None else _guess_input_shape(model)
        net = PLNet.from_torch(model, shape)
    else:
        raise InvalidInputError(f"save() takes an nn.Module or a relulab.PLNet, got {type(model).__name__}")
    if path.suffix == ".pt2":
        if spec is not None:
            raise InvalidInputError("a torch.export program carries its own architecture; drop arch= for .pt2 paths")
        _save_pt2(net, path, model if isinstance(model, nn.Module) else None)
        return path
    spec = spec if spec is not None else infer_arch(net)
    src = _weighted(net)
    dtype = src[0][0].dtype if src else torch.float32
    if isinstance(model, nn.Module):
        params = [q for q in model.parameters() if q.is_floating_point()]
        dtype = params[0].dtype if params else dtype
    target = spec.module().to(torch.float64)
    dst = [m for m in target.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    if len(dst) != len(src) or any(tuple(m.weight.shape) != tuple(w.shape) for m, (w, _) in zip(dst, src)):
        raise InvalidInputError(f"architecture {spec} does not describe this network (its layers have weight shapes "
                                f"{[tuple(w.shape) for w, _ in src]})")
    with torch.no_grad():
        for m, (w, b) in zip(dst, src):
            m.weight.copy_(w)
            if b is not None:
                m.bias.copy_(b.reshape(-1))
            elif m.bias is not None:
                m.bias.zero_()
    check = PLNet.from_torch(target.eval(), spec.input_shape)
    x = torch.randn(64, *spec.input_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y0, y1 = net(x).to(torch.float64).cpu(), check(x)
    if y0.shape != y1.shape or not float((y0 - y1).abs().max()) <= 1e-9 * (1 + float(y0.abs().max())):
        raise InvalidInputError(f"architecture {spec} does not describe this network (their outputs differ)")
    tensors = {k: v.detach().to(dtype).contiguous().cpu() for k, v in target.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={METADATA_KEY: str(spec), "relulab_version": __version__})
    return path


def _guess_input_shape(model: nn.Module) -> tuple[int, ...]:
    from relulab.core.recognize import input_shape_of

    shape = input_shape_of(model)
    if shape is None:
        raise InvalidInputError("cannot tell this module's input shape; pass input_shape=")
    return shape


def _save_pt2(net: PLNet, path: Path, module: nn.Module | None = None) -> None:
    # the user's own module keeps its names and dtype; a PLNet is written exactly (in its dtype)
    module = (module if module is not None else net.to_torch()).eval()
    params = [q for q in module.parameters() if q.is_floating_point()]
    dtype = params[0].dtype if params else net.dtype
    x = torch.randn(3, *net.input_shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    try:
        with _quiet():
            ep = torch.export.export(module, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception:
        with _quiet():
            ep = torch.export.export(module, (x,))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(ep, str(path))
