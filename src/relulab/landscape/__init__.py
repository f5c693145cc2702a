"""Loss landscapes in parameter space: shallow networks, activation regions of the parameter space and
the rank of the parameterization's Jacobian, stationarity at kinks and escape neurons, network
embeddings, Gaussian teacher-student losses and their symmetries, Hessian operators and spectra.

Names load on first use from the submodule ``_EXPORTS`` names.
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "ShallowNet": "shallow", "ACTIVATION_SLOPES": "shallow",
    "parameter_pattern": "parameter_space", "parameterization_jacobian": "parameter_space",
    "jacobian_rank": "parameter_space", "ParameterRegion": "parameter_space", "parameter_region": "parameter_space",
    "region_is_nonempty": "parameter_space", "ParameterArrangement": "parameter_space",
    "enumerate_parameter_regions": "parameter_space", "FullRankGrid": "parameter_space",
    "full_rank_fraction": "parameter_space", "cover_count": "parameter_space",
    "one_sided_derivative": "kink_stationarity", "directional_stationarity": "kink_stationarity",
    "DirectionalStationarityResult": "kink_stationarity", "escape_direction": "kink_stationarity",
    "batched_loss": "kink_stationarity",
    "EmbeddingMap": "network_embedding", "split_neuron": "network_embedding", "add_zero_neuron": "network_embedding",
    "embed": "network_embedding", "check_embedding": "network_embedding", "EmbeddingCheck": "network_embedding",
    "TeacherStudent": "teacher_student", "gaussian_relu_kernel": "teacher_student", "CriticalPoint": "teacher_student",
    "CriticalPointFamily": "teacher_student", "CriticalPointSearch": "teacher_student",
    "polish_critical_point": "teacher_student", "find_critical_point": "teacher_student",
    "find_critical_points": "teacher_student",
    "IsotropyGroup": "symmetry", "isotropy_group": "symmetry", "find_equivalence": "symmetry",
    "apply_permutation": "symmetry", "EigenvalueGroups": "symmetry", "group_eigenvalues": "symmetry",
    "HessianOperator": "hessian", "LanczosDecomposition": "hessian", "lanczos": "hessian",
    "HessianEigenpairs": "hessian", "hessian_eigenpairs": "hessian", "TraceEstimate": "hessian",
    "hessian_trace": "hessian", "SpectralDensity": "hessian", "spectral_density": "hessian", "Inertia": "hessian",
    "hessian_inertia": "hessian", "KinkReport": "hessian", "kink_report": "hessian", "HessianSpectrum": "hessian",
    "hessian_spectrum": "hessian",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
