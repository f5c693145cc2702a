"""Exact counting: linearity regions of max-pooling layers (vertices and facets of Minkowski sums of
simplices) and the expected complexity of random maxout networks.

References: Escobar, Gallardo, Gonzalez-Anaya, Gonzalez, Montufar, Morales, "Enumeration of
max-pooling responses with generalized permutohedra" (arXiv 2209.14978); Tseran, Montufar, "On the
Expected Complexity of Maxout Networks" (NeurIPS 2021).
"""

_EXPORTS = {
    "pool_windows": "maxpool",
    "count_maxpool": "maxpool",
    "count_argmax_tuples": "maxpool",
    "maxpool_recurrence": "maxpool",
    "MaxPoolCount": "maxpool",
    "expected_breakpoints": "maxout",
    "maxout_bounds": "maxout",
    "maxout_complexity": "maxout",
    "MaxoutComplexity": "maxout",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"relulab.combinatorics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'relulab.combinatorics' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
