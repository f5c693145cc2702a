"""Experiments at scale: the reproduction registry (every paper experiment as a pure function of a
typed configuration), resumable sweeps on a local process pool or Ray with one Parquet file per task,
split enumeration of one region count over many workers, and a report of any results folder.
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "experiment": "registry", "Experiment": "registry", "Summary": "registry", "get": "registry",
    "names": "registry", "expand_grid": "registry", "ENTRY_MODULES": "registry",
    "reproduce": "reproduction", "listing": "reproduction",
    "load_spec": "sweep", "run_sweep": "sweep", "connect_ray": "sweep", "summarize": "sweep", "SweepResult": "sweep",
    "split_full_space": "split", "SplitEnumeration": "split",
    "build_report": "report", "write_report": "report",
    "MissingExtraError": "extras",
}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS)
