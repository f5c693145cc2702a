"""Optional extras, imported lazily with an error that names the extra to install."""

from __future__ import annotations

import importlib

from relulab.core.errors import RelulabError

__all__ = ["EXTRAS", "MissingExtraError", "require"]

# top-level module -> the relulab extra that installs it
EXTRAS = {"pyarrow": "parquet", "ray": "ray", "cvxpy": "convex"}


class MissingExtraError(RelulabError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def require(module: str, what: str):
    """Import ``module`` (e.g. ``"pyarrow.parquet"``) or raise :class:`MissingExtraError` saying that
    ``what`` needs the extra providing it."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(top, top)
        raise MissingExtraError(f"{what} needs the optional package {top!r}: pip install 'relulab[{extra}]'") from None
