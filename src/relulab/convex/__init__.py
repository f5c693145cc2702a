"""Convex programs of two-layer ReLU networks with weight decay, with and without batch normalization
(Pilanci and Ergen, "Neural Networks are Convex Regularizers", ICML 2020; Ergen, Sahiner, Ozturkler,
Pauly, Mardani and Pilanci, "Demystifying Batch Normalization in ReLU Networks", ICLR 2022): the group
lasso over the activation patterns of the data, the optimal network rebuilt from its solution,
certificates of global optimality by a duality gap, and random-start gradient descent beside them.
Conventions: a hidden bias regularized like a weight (default), none, or unpenalized hidden and output
biases (``bias="free"``); vector outputs through a convex (doubly nonnegative) relaxation of Sahiner,
Ergen, Pauly and Pilanci's copositive program, with an exact dual certificate (:mod:`relulab.convex.vector`).
Solving needs the ``convex`` extra (cvxpy with Clarabel or SCS).
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "solve": "program",
    "ConvexSolution": "program",
    "certify": "program",
    "Certificate": "program",
    "objective": "program",
    "dual_bound": "program",
    "features": "program",
    "arrangement_patterns": "patterns",
    "sample_patterns": "patterns",
    "pattern_bound": "patterns",
    "solve_vector": "vector",
    "dual_bound_vector": "vector",
    "cone_spectral_norms": "vector",
    "gd_runs": "descent",
    "compare_gd": "descent",
    "GDComparison": "descent",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
