"""Small two-dimensional toy data sets, generated in code (no downloads), deterministic given a seed.

Every generator returns a :class:`Dataset` with float64 inputs ``x`` (n, 2) and integer labels ``y``
(n,), balanced over the classes. Two dimensions keep every region and decision boundary drawable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from relulab.core import limits
from relulab.core.errors import InvalidInputError
from relulab.results import Result

__all__ = ["Dataset", "spirals", "moons", "circles", "xor", "make", "DATASETS", "load_array"]


@dataclass
class Dataset(Result):
    """Inputs ``x`` (n, d) float64, labels ``y`` (n,) long, and how they were made."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    n_classes: int
    params: dict = field(default_factory=dict)

    _summary_fields = ("name", "n_classes", "params")

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def box(self, margin: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
        """The bounding box of the inputs, widened by ``margin`` times its size on every side."""
        lo, hi = self.x.min(0).values, self.x.max(0).values
        pad = margin * (hi - lo).clamp_min(1e-12)
        return lo - pad, hi + pad

    def summary(self) -> dict:
        return {"name": self.name, "n": self.n, "dim": int(self.x.shape[1]), "n_classes": self.n_classes,
                "params": dict(self.params)}


def _check(n: int, noise: float, max_points: int | None = None) -> None:
    if int(n) < 2:
        raise InvalidInputError(f"n must be at least 2, got {n}")
    limits.check(int(n), limits.pick(max_points, limits.MAX_POINTS, "max_points"), "number of points n",
                 "max_points=, relulab.core.limits.MAX_POINTS")
    if not (math.isfinite(noise) and noise >= 0):
        raise InvalidInputError(f"noise must be a finite number >= 0, got {noise}")


def _split(n: int) -> tuple[int, int]:
    return n - n // 2, n // 2


def _finish(name, parts, gen, noise, params) -> Dataset:
    x = torch.cat([p for p, _ in parts])
    y = torch.cat([torch.full((p.shape[0],), c, dtype=torch.long) for p, c in parts])
    x = x + noise * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    return Dataset(name, x, y, len(parts), params)


def spirals(n: int = 400, noise: float = 0.04, turns: float = 1.25, seed: int = 0,
            max_points: int | None = None) -> Dataset:
    """Two interleaved spirals: class c at angle ``t + c*pi``, radius ``t / (2 pi turns)``, with
    ``t = 2 pi turns sqrt(u)``, ``u ~ U(0, 1)`` (uniform density along the arm), plus Gaussian noise."""
    _check(n, noise, max_points)
    gen = torch.Generator().manual_seed(int(seed))
    parts = []
    for c, m in enumerate(_split(int(n))):
        t = 2 * math.pi * turns * torch.sqrt(torch.rand(m, generator=gen, dtype=torch.float64))
        r = t / (2 * math.pi * turns)
        a = t + c * math.pi
        parts.append((torch.stack([r * torch.cos(a), r * torch.sin(a)], 1), c))
    return _finish("spirals", parts, gen, noise, {"n": int(n), "noise": noise, "turns": turns, "seed": int(seed)})


def moons(n: int = 400, noise: float = 0.1, seed: int = 0, max_points: int | None = None) -> Dataset:
    """Two interleaving half circles: ``(cos t, sin t)`` and ``(1 - cos t, 0.5 - sin t)``, t ~ U(0, pi)."""
    _check(n, noise, max_points)
    gen = torch.Generator().manual_seed(int(seed))
    m0, m1 = _split(int(n))
    t0 = math.pi * torch.rand(m0, generator=gen, dtype=torch.float64)
    t1 = math.pi * torch.rand(m1, generator=gen, dtype=torch.float64)
    parts = [(torch.stack([torch.cos(t0), torch.sin(t0)], 1), 0),
             (torch.stack([1 - torch.cos(t1), 0.5 - torch.sin(t1)], 1), 1)]
    return _finish("moons", parts, gen, noise, {"n": int(n), "noise": noise, "seed": int(seed)})


def circles(n: int = 400, noise: float = 0.05, factor: float = 0.5, seed: int = 0,
            max_points: int | None = None) -> Dataset:
    """Two concentric circles of radii 1 (class 0) and ``factor`` (class 1)."""
    _check(n, noise, max_points)
    if not 0 < factor < 1:
        raise InvalidInputError(f"factor must lie in (0, 1), got {factor}")
    gen = torch.Generator().manual_seed(int(seed))
    parts = []
    for c, (m, r) in enumerate(zip(_split(int(n)), (1.0, factor))):
        t = 2 * math.pi * torch.rand(m, generator=gen, dtype=torch.float64)
        parts.append((r * torch.stack([torch.cos(t), torch.sin(t)], 1), c))
    return _finish("circles", parts, gen, noise, {"n": int(n), "noise": noise, "factor": factor, "seed": int(seed)})


def xor(n: int = 400, noise: float = 0.0, seed: int = 0, max_points: int | None = None) -> Dataset:
    """Points uniform in [-1, 1]^2, labelled by whether their coordinates have the same sign."""
    _check(n, noise, max_points)
    gen = torch.Generator().manual_seed(int(seed))
    x = 2 * torch.rand(int(n), 2, generator=gen, dtype=torch.float64) - 1
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    x = x + noise * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    return Dataset("xor", x, y, 2, {"n": int(n), "noise": noise, "seed": int(seed)})


DATASETS = {"spirals": spirals, "moons": moons, "circles": circles, "xor": xor}


def make(name: str, **kwargs) -> Dataset:
    """A data set by name (one of :data:`DATASETS`); ``n`` above ``max_points`` (default
    :data:`relulab.core.limits.MAX_POINTS`) raises :class:`~relulab.core.errors.ResourceLimitError`."""
    if name not in DATASETS:
        raise InvalidInputError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](**kwargs)


# ---------------------------------------------------------------------- arrays from files
def load_array(path, max_bytes: int | None = None):
    """A numeric array from a ``.npy`` file (never unpickled) or a ``.csv`` file, as float64 numpy.

    Sizes are checked before anything is allocated: only regular files are read (a FIFO would block,
    ``/dev/zero`` never ends); an ``.npy`` header's shape times its item size must equal the bytes that
    follow it and, like a CSV file's size, stay within ``max_bytes`` (default
    :data:`relulab.core.limits.MAX_FILE_BYTES`), else :class:`~relulab.core.errors.ResourceLimitError`.
    Object, structured (record) and non-numeric dtypes raise :class:`InvalidInputError`.
    """
    import numpy as np

    limit = limits.pick(max_bytes, limits.MAX_FILE_BYTES, "max_bytes")
    text = str(path)
    size = limits.file_size(text, limit, InvalidInputError)
    if text.endswith(".csv"):
        try:
            arr = np.loadtxt(text, delimiter=",", dtype=np.float64, ndmin=2)
        except (OSError, ValueError) as e:
            raise InvalidInputError(f"{text}: not a numeric CSV file ({str(e).splitlines()[0] if str(e) else e})") \
                from None
        return arr
    try:
        with open(text, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = f.tell()
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise InvalidInputError(f"{text}: not a readable .npy array ({str(e).splitlines()[0] if str(e) else e})") \
            from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biuf":
        raise InvalidInputError(f"{text}: holds {'records' if dtype.fields is not None else 'values'} of dtype "
                                f"{dtype}; expected plain numbers (integer or floating point)")
    count = 1
    for s in shape:
        count *= int(s)
    declared = count * dtype.itemsize
    limits.check(declared, limit, f"{text}: bytes its header declares (shape {shape})",
                 "max_bytes=, relulab.core.limits.MAX_FILE_BYTES")
    if declared != size - offset:
        raise InvalidInputError(f"{text}: its header declares shape {shape} of {dtype} ({declared:,} bytes) but "
                                f"{size - offset:,} bytes follow; truncated or corrupt .npy file")
    try:
        arr = np.load(text, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"{text}: not a readable .npy array ({e})") from None
    return np.asarray(arr, dtype=np.float64)
