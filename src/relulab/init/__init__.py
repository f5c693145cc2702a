"""Maxout initialization, its constants, and the moments of input-output gradients.

From Tseran & Montufar, "Expected Gradients of Maxout Networks and Consequences to Parameter
Initialization" (ICML 2023) and "On the Expected Complexity of Maxout Networks" (NeurIPS 2021):

* :func:`maxout_constants`: ``M = E[Xi(N(0,1), K)^2]``, ``S = E[xi(chi2_1, K)]``, ``L = E[Xi(chi2_1, K)]``
  and related moments of order statistics, by quadrature; the recommended scale ``c = 1 / M``.
* :func:`maxout_`: initialize a torch model in place, ``W ~ N(0, c / fan_in)`` per layer.
* :func:`gradient_moments`: Monte Carlo ``E||J u||^2``, ``E||J u||^4``, ``E||J u||`` across depth with
  the bounds of the paper's Theorem 1; :func:`curve_length_distortion`: expected length of the image
  of a segment or circle across depth.
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "maxout_constants": "constants", "constants_table": "constants", "recommended_c": "constants",
    "gaussian_max_moment": "constants", "chi2_order_moment": "constants", "activation_second_moment": "constants",
    "MaxoutConstants": "constants", "ConstantsTable": "constants",
    "maxout_": "initializers", "init_plan": "initializers", "LayerInit": "initializers",
    "gradient_moments": "moments", "curve_length_distortion": "moments", "jacobian_moment_bounds": "moments",
    "aligned_moment": "moments", "expected_gradient_bounds": "moments", "GradientMoments": "moments",
    "CurveLengthDistortion": "moments",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
