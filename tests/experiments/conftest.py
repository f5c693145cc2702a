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
    from relulab.experiments.sweep import connect_ray

    # the library's own start-up (retried: a loaded CI machine can need more than Ray's 30 s)
    connect_ray(workers=2, ray_timeout=300)
    yield ray
    ray.shutdown()
