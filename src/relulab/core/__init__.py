"""relulab's core: the piecewise-linear network representation, its conversion and errors."""

from relulab.core.errors import (
    DegenerateGeometryError,
    InvalidInputError,
    ModelFileError,
    RelulabError,
    ResourceLimitError,
    UnsupportedLayerError,
)
from relulab.core.plnet import PLNet, Trace

__all__ = ["PLNet", "Trace", "RelulabError", "UnsupportedLayerError", "DegenerateGeometryError",
           "InvalidInputError", "ModelFileError", "ResourceLimitError"]
