"""Tropical geometry of piecewise-linear networks: networks as tropical rational functions p - q,
max-plus polynomials and their reduction, Newton polytopes, region counts read off the tropical data,
classification fans of data sets, and the labellings a shallow ReLU network realizes on them.

References: Zhang, Naitzat, Lim, "Tropical geometry of deep neural networks" (ICML 2018); Brandenburg,
Loho, Montufar, "The real tropical geometry of neural networks" (arXiv 2403.11871).
"""

from relulab._lazy import exports as _exports

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
    "relu_classifications": "shallow",
    "ReLUClassifications": "shallow",
    "milp_margin": "shallow",
    "tropical_sizes": "sizes",
    "TropicalSizes": "sizes",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
