"""Test-suite configuration: hypothesis profiles and import paths.

``tests/strategies.py`` is importable both as ``strategies`` and as ``tests.strategies``.
Hypothesis profiles (select with HYPOTHESIS_PROFILE): ``default`` (no deadline: conversions and
Jacobians of random networks vary a lot in cost), ``ci`` (same, derandomized so that runs
repeat), ``thorough`` (for long local runs; scale example counts with RELULAB_EXAMPLES_SCALE).
Torch runs single-threaded in tests unless RELULAB_TEST_THREADS says otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# Tests run many small tensor ops; on a shared machine intra-op threads mostly spin and contend
# (a tiny conv can take 100x longer), so default to one thread unless told otherwise.
torch.set_num_threads(int(os.environ.get("RELULAB_TEST_THREADS", "1")))

_TESTS = Path(__file__).resolve().parent
for p in (str(_TESTS), str(_TESTS.parent)):
    if p not in sys.path:
        sys.path.insert(0, p)

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.register_profile("default", **_COMMON)
settings.register_profile("ci", derandomize=True, **_COMMON)
settings.register_profile("thorough", **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# a real local Ray instance (2 CPUs), started once for the tests that need one and stopped at the end
_RAY_SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="session")
def ray_local():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # workers import relulab from the same sources as the tests
    os.environ["PYTHONPATH"] = _RAY_SRC + os.pathsep + os.environ.get("PYTHONPATH", "")
    from relulab.core.executors import connect_ray

    # the library's own start-up (retried: a loaded CI machine can need more than Ray's 30 s)
    connect_ray(workers=2, ray_timeout=300)
    yield ray
    ray.shutdown()
