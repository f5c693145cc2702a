"""Training dynamics and implicit bias: one flow engine (gradient, mirror and preconditioned flows by
an adaptive ODE solver, and gradient descent for comparison) and the univariate regression regimes
of shallow ReLU networks (kernel regime vs adaptive regime, cubic vs linear splines).
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "Potential": "flows", "potential": "flows", "FlowTrajectory": "flows", "flow": "flows",
    "gradient_descent": "flows", "mse_objective": "flows", "natural_gradient": "flows",
    "UnivariateNet": "univariate", "univariate_net": "univariate", "kernel_limit": "univariate",
    "knot_trajectory": "univariate", "alternating_data": "univariate", "univariate_data": "univariate", "knot_mass_near_data": "univariate",
    "natural_cubic_spline": "univariate", "linear_interpolant": "univariate", "compare_interpolants": "univariate",
    "Interpolants": "univariate", "regime_diagram": "univariate", "RegimeDiagram": "univariate",
    "ShallowNet": "mirror", "shallow_net": "mirror", "mirror_limit": "mirror", "MirrorLimit": "mirror",
    "train_mirror": "mirror", "mirror_bias": "mirror", "MirrorBias": "mirror",
    "SignalNoiseData": "benign", "signal_noise_data": "benign", "linear_test_error": "benign",
    "max_margin": "benign", "MaxMargin": "benign", "train_hinge": "benign", "network_snr": "benign", "network_test_error": "benign",
    "predicted_error": "benign", "benign_diagram": "benign", "BenignDiagram": "benign",
    "Teacher": "gd_kernels", "abs_teacher": "gd_kernels", "kernel_ridge": "gd_kernels",
    "population_loss": "gd_kernels", "train_student": "gd_kernels", "gd_vs_kernels": "gd_kernels",
    "GDvsKernels": "gd_kernels",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
