"""Result objects of the linear-model engines: JSON-ready dictionaries, short reprs and plots."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from relulab.linear_models import bw_critical_points, bw_train, dropout_flow, global_minimizers  # noqa: E402
from relulab.lp_flows import fisher_rao_flow, random_mdp, state_action_npg  # noqa: E402
from relulab.parameterization import canonical, degeneracy_examples, symmetry_distance  # noqa: E402


def test_results_serialize_and_plot():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((12, 2)), rng.standard_normal((12, 2))
    S0 = np.diag([3.0, 2.0, 1.0])
    p = [(rng.standard_normal((3, 1)), rng.standard_normal(3)), (rng.standard_normal((1, 3)), rng.standard_normal(1))]
    results = [global_minimizers(X, Y, 2), dropout_flow(X, Y, 2, points=40), bw_critical_points(S0, 2),
               bw_train(S0, (2, 3), t_max=5.0, points=10), fisher_rao_flow(np.ones((1, 3)), [1.0], [1.0, 0.5, 0.2]),
               state_action_npg(*random_mdp(2, 2), 0.5, points=30), degeneracy_examples(ns=(1, 4)),
               canonical(p), symmetry_distance(p, p)]
    for r in results:
        text = json.dumps(r.to_dict())
        assert text and len(repr(r).splitlines()) <= 8
        json.dumps(r.to_dict(summary=True))
        if hasattr(r, "plot"):
            fig, ax = plt.subplots()
            assert r.plot(ax=ax) is ax
            plt.close(fig)
