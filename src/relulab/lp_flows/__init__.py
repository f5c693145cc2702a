"""Fisher-Rao gradient flows of linear programs, their entropic-regularization identity and linear
convergence rate, and state-action natural policy gradients of small Markov decision processes
(Muller, Cayci and Montufar).
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "LinearProgram": "fisher_rao", "linear_program": "fisher_rao", "lp_geometry": "fisher_rao",
    "LPGeometry": "fisher_rao", "entropic_solution": "fisher_rao", "fisher_rao_flow": "fisher_rao",
    "FisherRaoFlow": "fisher_rao",
    "MDP": "mdp", "finite_mdp": "mdp", "occupancy_program": "mdp", "policy_occupancy": "mdp", "value_iteration": "mdp",
    "state_action_npg": "mdp", "NPGResult": "mdp", "random_mdp": "mdp",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
