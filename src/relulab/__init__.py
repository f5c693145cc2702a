"""relulab: exact geometry and loss landscapes of piecewise-linear neural networks.

Everything loads on first use (``relulab.regions``, ``relulab.load``, ...), so ``import relulab`` is
cheap; ``dir(relulab)`` lists what is there.
"""

from relulab._lazy import exports as _exports
from relulab._version import __version__

_EXPORTS = {
    # engines and modules
    "regions": "regions", "kernels": "kernels", "landscape": "landscape", "init": "init",
    "complexity": "complexity", "tropical": "tropical", "combinatorics": "combinatorics",
    "experiments": "experiments", "dynamics": "dynamics",
    "linear_models": "linear_models", "lp_flows": "lp_flows", "convex": "convex",
    "parameterization": "parameterization",
    "core": "core", "nn": "nn", "data": "data", "results": "results", "progress": "progress",
    # model files
    "load": "core.io", "save": "core.io", "build": "core.io", "open_model": "core.io",
    # the network and the errors
    "PLNet": "core.plnet",
    "RelulabError": "core.errors", "UnsupportedLayerError": "core.errors", "DegenerateGeometryError": "core.errors",
    "InvalidInputError": "core.errors", "ModelFileError": "core.errors", "ResourceLimitError": "core.errors",
}
# engines that exist only in some installations are exported when present
_OPTIONAL = ("complexity", "tropical", "combinatorics", "experiments", "dynamics", "linear_models", "lp_flows", "convex",
             "parameterization")

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS, optional=_OPTIONAL)
__all__ += ["__version__"]
