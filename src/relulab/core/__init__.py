"""relulab's core: the piecewise-linear network representation, its conversion and errors.

Names load on first use from the submodule ``_EXPORTS`` names, so importing the errors (as the
command line does before any work) does not import torch.
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "PLNet": "plnet", "Trace": "plnet",
    "RelulabError": "errors", "UnsupportedLayerError": "errors", "DegenerateGeometryError": "errors",
    "InvalidInputError": "errors", "ModelFileError": "errors", "ResourceLimitError": "errors",
    "MissingExtraError": "extras",
    # submodules
    "convert": "convert", "errors": "errors", "executors": "executors", "extras": "extras", "files": "files", "io": "io", "layers": "layers", "limits": "limits",
    "plnet": "plnet", "recognize": "recognize", "threads": "threads",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
