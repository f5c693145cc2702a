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


def file_size(path, limit: int, error: type, expected: str = "") -> int:
    """The size of a regular file within ``limit`` bytes, or ``error`` (an exception class) for a
    missing file, a directory, or anything that is not a regular file (a FIFO would block a reader,
    a device like /dev/zero has no end); :class:`ResourceLimitError` above the limit."""
    import os
    import stat

    tail = f"; expected {expected}" if expected else ""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file{tail}") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e}){tail}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a directory{tail}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: is not a regular file (a pipe, socket or device){tail}")
    check(st.st_size, limit, f"{path}: file size in bytes", "max_bytes=, relulab.core.limits.MAX_FILE_BYTES")
    return st.st_size
