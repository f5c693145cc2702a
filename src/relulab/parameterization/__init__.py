"""Degenerate parameterizations of ReLU networks (Berner, Elbrachter, Grohs and Jentzen): the symmetry
group (permutations and positive rescalings), canonical balanced representatives, distances between
parameters modulo symmetries, exact distances between realizations on a box, and the examples where
realizations converge while parameters do not.
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "ReluParams": "symmetries", "relu_params": "symmetries", "rescale": "symmetries", "permute": "symmetries",
    "balance": "symmetries", "canonical": "symmetries", "CanonicalForm": "symmetries",
    "symmetry_distance": "symmetries", "SymmetryDistance": "symmetries",
    "difference_network": "realization", "realization_distance": "realization",
    "RealizationDistance": "realization", "degeneracy_examples": "realization", "DegeneracyExamples": "realization",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
