"""Size limits checked before relulab allocates memory for what a file or a spec declares.

Every reader compares the sizes an input *declares* (zip members' uncompressed sizes, tensor storages
in a torch file, an ``.npy`` header's shape, an architecture spec's parameter count, a data set's
number of points) with these limits and with the file's actual size before reading or building
anything, and raises :class:`~relulab.core.errors.ResourceLimitError` naming the size and the limit.

The values below are the defaults; each reader also takes a keyword override (``max_bytes=``,
``max_parameters=``, ``max_points=``), and assigning a new value here changes the default for the
whole process, e.g. ``relulab.core.limits.MAX_FILE_BYTES = 16 * 2**30``.
"""

from __future__ import annotations

from relulab.core.errors import ResourceLimitError

#: bytes a model or data file may hold or unpack to (the sum of a zip archive's declared member sizes)
MAX_FILE_BYTES = 4 * 2**30
#: parameters of a network built from an architecture spec
MAX_PARAMETERS = 50_000_000
#: features per sample of any layer of a network built from an architecture spec
MAX_FEATURES = 50_000_000
#: points of a generated data set
MAX_POINTS = 10_000_000
#: magnitude of a leaky ReLU slope: beyond it piece values overflow float64 on inputs of ordinary scale
MAX_SLOPE = 1e6


def check(count: int, limit: int, what: str, knob: str) -> None:
    """Raise :class:`ResourceLimitError` if ``count`` exceeds ``limit``; ``knob`` says how to raise it."""
    if count > limit:
        raise ResourceLimitError(f"{what}: {count:,} exceeds the limit of {limit:,} ({knob})")


def pick(value: int | None, default: int, name: str) -> int:
    """A keyword override, or the module default when ``None``; it must be a positive integer."""
    if value is None:
        return int(default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        from relulab.core.errors import InvalidInputError

        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return value
