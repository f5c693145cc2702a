"""Tropical geometry of piecewise-linear networks: networks as tropical rational functions p - q,
max-plus polynomials and their reduction, Newton polytopes, region counts read off the tropical data,
and classification fans of data sets.

References: Zhang, Naitzat, Lim, "Tropical geometry of deep neural networks" (ICML 2018); Brandenburg,
Loho, Montufar, "The real tropical geometry of neural networks" (arXiv 2403.11871).
"""

_EXPORTS = {
    "MaxPlus": "polynomial",
    "TropicalRational": "network",
    "TropicalNetwork": "network",
    "from_network": "network",
    "exact_forward": "network",
    "newton_polytope": "network",
    "NewtonPolytope": "network",
    "count_regions": "network",
    "TropicalRegionCount": "network",
    "classification_fan": "fan",
    "ClassificationFan": "fan",
    "cover_count": "fan",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"relulab.tropical.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'relulab.tropical' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
