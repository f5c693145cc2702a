"""Experiments at scale: the reproduction registry (every paper experiment as a pure function of a
typed configuration), resumable sweeps on a local process pool or Ray with one Parquet file per task,
split enumeration of one region count over many workers, and a report of any results folder.
"""

import importlib

_EXPORTS = {
    "experiment": "registry", "Experiment": "registry", "Summary": "registry", "get": "registry",
    "names": "registry", "expand_grid": "registry", "ENTRY_MODULES": "registry",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"relulab.experiments.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'relulab.experiments' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
