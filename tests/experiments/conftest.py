"""A real local Ray instance (2 CPUs), started once for the experiments tests and stopped at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="session")
def ray_local():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # workers import relulab from the same sources as the tests
    os.environ["PYTHONPATH"] = SRC + os.pathsep + os.environ.get("PYTHONPATH", "")
    for attempt in range(3):
        try:
            ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            break
        except Exception:  # Ray gives its raylet 30 s to register; a loaded machine can take longer
            ray.shutdown()
            if attempt == 2:
                raise
    yield ray
    ray.shutdown()
