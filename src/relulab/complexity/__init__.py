"""Local complexity of piecewise-linear networks: how densely the boundaries of activation regions
lie near the data (Patel and Montufar, "On the Local Complexity of Linear Regions in Deep ReLU
Networks", 2024), estimated from data with bias-noise smoothing, exact in 2-D, by exact line walks in
any dimension; local region counts and the grokking proxy of Humayun, Balestriero and Baraniuk
("Deep Networks Always Grok and Here is Why", 2024); local rank, total variation, and a tracker that
records all of them through training.
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "unit_gradients": "units",
    "UnitGradients": "units",
    "output_sensitivity": "units",
    "tangent_basis": "units",
    "local_complexity": "lc",
    "exact_lc_2d": "lc",
    "line_lc": "lc",
    "LocalComplexity": "lc",
    "shallow_gaussian_lc": "lc",
    "crofton_constant": "lc",
    "local_counts": "counts",
    "LocalCounts": "counts",
    "grokking_proxy": "counts",
    "ProxyResult": "counts",
    "random_frame": "counts",
    "local_rank": "rank",
    "LocalRank": "rank",
    "total_variation": "rank",
    "TotalVariation": "rank",
    "Tracker": "tracker",
    "log_schedule": "tracker",
    "Density": "densities",
    "gaussian": "densities",
    "uniform_box": "densities",
    "smoothed_data": "densities",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
