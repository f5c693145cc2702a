"""Local complexity of piecewise-linear networks: how densely the boundaries of activation regions
lie near the data (Patel and Montufar, "On the Local Complexity of Linear Regions in Deep ReLU
Networks", 2024), estimated from data with bias-noise smoothing, exact in 2-D, by exact line walks in
any dimension; local region counts and the grokking proxy of Humayun, Balestriero and Baraniuk
("Deep Networks Always Grok and Here is Why", 2024); local rank, total variation, and a tracker that
records all of them through training.
"""

_EXPORTS = {
    "unit_gradients": "units",
    "UnitGradients": "units",
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
    "output_sensitivity": "units",
    "Tracker": "tracker",
    "log_schedule": "tracker",
    "Density": "densities",
    "gaussian": "densities",
    "uniform_box": "densities",
    "smoothed_data": "densities",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    # submodules load on first use, so importing the package stays light
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"relulab.complexity.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'relulab.complexity' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
