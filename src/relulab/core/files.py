"""Atomic file output: every file relulab writes appears whole or not at all.

A file is written to a temporary name in the destination folder and renamed over the target
(``os.replace`` is atomic on POSIX and Windows within one file system), so a run killed mid-way
never leaves a truncated file where a reader expects a complete one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from relulab.core.errors import InvalidInputError


def _umask() -> int:
    # read without changing it for longer than this call (os.umask only reads by setting)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(tmp: str, path: Path) -> None:
    # mkstemp creates 0600 files; a finished output gets the permissions an ordinary open() would give
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def check_output_path(path, what: str = "output path", suffix: str | None = None) -> Path:
    """The path a writer will really write: non-empty, with ``suffix`` appended when it lacks it
    (so that messages can name the file that exists afterwards), its folder existing."""
    if path is None or str(path).strip() == "":
        raise InvalidInputError(f"{what} must be a non-empty file name")
    p = Path(path)
    if suffix and p.suffix.lower() != suffix.lower():
        p = p.with_name(p.name + suffix)
    if p.exists() and p.is_dir():
        raise InvalidInputError(f"{what} {str(p)!r} is a folder, not a file")
    if not p.parent.exists():
        raise InvalidInputError(f"{what} {str(p)!r}: folder {str(p.parent)!r} does not exist")
    return p


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None):
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``; on any
    error it is removed and ``path`` is left as it was."""
    path = Path(path)
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save(path, writer) -> Path:
    """Call ``writer(tmp_path)`` (for libraries that write by file name, e.g. matplotlib's
    ``savefig`` or safetensors) and rename the result onto ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
