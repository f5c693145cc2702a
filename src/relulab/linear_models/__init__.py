"""Linear networks with exact answers: Dropout and DropConnect on shallow linear networks (expected
objectives, minimizers, Hessians and convergence rates; Senen-Cerda and Sanders) and deep linear
generative models trained with the Bures-Wasserstein distance (critical points, Morse indices, flows;
Brechet, Papagiannouli, An and Montufar).
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "decay_rate": "dropout", "whiten": "dropout", "expected_loss": "dropout", "induced_regularizer": "dropout",
    "enumerate_masks": "dropout",
    "monte_carlo_loss": "dropout", "MonteCarloEstimate": "dropout", "global_minimizers": "dropout",
    "DropoutMinimum": "dropout", "dropout_hessian": "dropout", "dropout_flow": "dropout", "DropoutFlow": "dropout",
    "bures_wasserstein": "bures", "bw_loss": "bures", "bw_gradient": "bures", "bw_hessian": "bures",
    "bw_critical_points": "bures", "BWCriticalPoints": "bures", "bw_train": "bures", "BWTrajectory": "bures",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
