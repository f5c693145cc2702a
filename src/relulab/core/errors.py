"""The library's error hierarchy: every error relulab raises derives from :class:`RelulabError`."""

from __future__ import annotations


class RelulabError(Exception):
    """Base class of every error raised by relulab."""


class UnsupportedLayerError(RelulabError, TypeError):
    """A module, function or mode that has no exact piecewise-linear representation in relulab."""


class DegenerateGeometryError(RelulabError, ArithmeticError):
    """The geometry is degenerate in a way the requested computation cannot resolve exactly."""


class InvalidInputError(RelulabError, ValueError):
    """An argument (shape, dtype, range, option) that the function does not accept."""


class ModelFileError(RelulabError, OSError):
    """A model file that is missing, corrupt, truncated, of an unknown format or mismatched."""


SUPPORTED_LAYERS = (
    "Linear, Conv1d/Conv2d (zero padding), BatchNorm1d/2d (eval mode), AvgPool1d/2d, "
    "Flatten, Unflatten, Identity, Dropout (eval mode), ReLU, LeakyReLU (slope < 1), "
    "relulab.nn.Abs, relulab.nn.Maxout, relulab.nn.GroupMax, MaxPool1d/2d, "
    "and residual additions x + f(x)"
)


class ResourceLimitError(RelulabError, MemoryError):
    """A computation or a file would exceed a size, memory or time budget; raised before the memory is
    allocated, naming the budget and how to raise it."""
