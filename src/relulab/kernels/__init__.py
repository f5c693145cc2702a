"""Neural tangent kernels: empirical (any torch model), analytic infinite-width NNGP/NTK of deep
fully connected networks, spectra, and data-separation bounds for the smallest NTK eigenvalue.

Names load on first use from the submodule ``_EXPORTS`` names (scipy and torch.func are only needed
by some of them).
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "empirical_ntk": "empirical", "NTKResult": "empirical", "ntk_spectrum": "empirical", "NTKSpectrum": "empirical",
    "METHODS": "empirical",
    "analytic_ntk": "analytic", "dual_kernels": "analytic", "maxout_moments": "analytic",
    "kernel_of_correlation": "analytic", "ACTIVATIONS": "analytic", "PARAMETERIZATIONS": "analytic",
    "separation": "geometry", "Separation": "geometry", "ntk_eigenvalue_bounds": "geometry",
    "EigenvalueBounds": "geometry",
    "NTKMLP": "convergence", "width_convergence": "convergence", "WidthConvergence": "convergence",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
