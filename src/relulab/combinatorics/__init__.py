"""Exact counting: linearity regions of max-pooling layers (vertices and facets of Minkowski sums of
simplices) and the expected complexity of random maxout networks.

References: Escobar, Gallardo, Gonzalez-Anaya, Gonzalez, Montufar, Morales, "Enumeration of
max-pooling responses with generalized permutohedra" (arXiv 2209.14978); Tseran, Montufar, "On the
Expected Complexity of Maxout Networks" (NeurIPS 2021).
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "pool_windows": "maxpool",
    "count_maxpool": "maxpool",
    "count_argmax_tuples": "maxpool",
    "count_maxpool_layer": "maxpool",
    "maxpool_recurrence": "maxpool",
    "chain_vertex_count": "maxpool",
    "pool1d_facet_count": "maxpool",
    "pool1d_vertex_count": "maxpool",
    "pool1d_generating_function": "maxpool",
    "three_by_n_vertex_count": "maxpool",
    "MaxPoolCount": "maxpool",
    "maxpool_table": "maxpool",
    "MaxPoolTable": "maxpool",
    "brute_force_tuples": "maxpool",
    "brute_force_orders": "maxpool",
    "expected_breakpoints": "maxout",
    "maxout_bounds": "maxout",
    "maxout_complexity": "maxout",
    "MaxoutComplexity": "maxout",
    "random_maxout_net": "maxout",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
