"""Training dynamics and implicit bias: one flow engine (gradient, mirror and preconditioned flows by
an adaptive ODE solver, and gradient descent for comparison) and the univariate regression regimes
of shallow ReLU networks (kernel regime vs adaptive regime, cubic vs linear splines).
"""

import importlib

_EXPORTS = {
    "Potential": "flows", "potential": "flows", "FlowTrajectory": "flows", "flow": "flows",
    "gradient_descent": "flows", "mse_objective": "flows",
    "UnivariateNet": "univariate", "univariate_net": "univariate", "kernel_limit": "univariate",
    "natural_cubic_spline": "univariate", "linear_interpolant": "univariate", "compare_interpolants": "univariate",
    "regime_diagram": "univariate",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"relulab.dynamics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'relulab.dynamics' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
