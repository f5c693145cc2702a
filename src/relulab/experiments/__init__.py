"""Experiments at scale: the reproduction registry (every paper experiment as a pure function of a
typed configuration), resumable sweeps on a local process pool or Ray with one Parquet file per task,
and a report of any results folder (one region count split over many workers is
:func:`relulab.regions.split_full_space`).
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "experiment": "registry", "Experiment": "registry", "Summary": "registry", "get": "registry",
    "names": "registry", "expand_grid": "registry", "ENTRY_MODULES": "registry",
    "reproduce": "reproduction", "listing": "reproduction",
    "load_spec": "sweep", "run_sweep": "sweep", "summarize": "sweep", "SweepResult": "sweep",
    "build_report": "report", "write_report": "report",
    "MissingExtraError": "extras",
}

_MOVED = {"split_full_space": "relulab.regions.split_full_space",
          "SplitEnumeration": "relulab.regions.SplitEnumeration",
          "connect_ray": "relulab.core.executors.connect_ray"}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS, moved=_MOVED)
