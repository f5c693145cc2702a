"""The registered reproductions of the linear-model engines: quick grids run for real and agree."""

from __future__ import annotations

import pytest

from relulab.experiments.reproduction import reproduce


@pytest.mark.parametrize("name", ["senen-cerda-dropout-rate", "brechet-bures-critical-points",
                                  "muller-fisher-rao-rate", "berner-degenerate-parameterization"])
def test_quick_reproduction_runs_and_compares(name):
    doc = reproduce(name, quick=True)
    assert not doc["failures"], doc["failures"]
    assert doc["rows"] and doc["comparison"]
    if doc.get("verdict") is not None:
        assert doc["verdict"] == "agrees"
