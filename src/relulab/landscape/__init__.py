"""Loss landscapes in parameter space: shallow networks, activation regions of the parameter space and
the rank of the parameterization's Jacobian, stationarity at kinks and escape neurons, network
embeddings, Gaussian teacher-student losses and their symmetries, Hessian operators and spectra.

Each name lives in one submodule, listed in ``_MODULES``; a submodule exports what its ``__all__``
lists and loads on first use.
"""

import importlib

_MODULES = ("shallow", "parameter_space", "kink_stationarity", "network_embedding", "teacher_student", "symmetry",
            "hessian")


def _home(name):
    for mod in _MODULES:
        try:
            m = importlib.import_module(f"relulab.landscape.{mod}")
        except ModuleNotFoundError as e:  # a submodule that does not exist yet exports nothing
            if e.name == f"relulab.landscape.{mod}":
                continue
            raise
        if name in getattr(m, "__all__", ()):
            return getattr(m, name)
    return None


def __getattr__(name):
    if not name.startswith("_"):
        obj = _home(name)
        if obj is not None:
            return obj
    raise AttributeError(f"module 'relulab.landscape' has no attribute {name!r}")


def __dir__():
    names = set(globals())
    for mod in _MODULES:
        try:
            names.update(getattr(importlib.import_module(f"relulab.landscape.{mod}"), "__all__", ()))
        except ModuleNotFoundError:
            pass
    return sorted(names)
