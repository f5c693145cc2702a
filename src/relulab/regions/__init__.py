"""Input-space geometry of piecewise-linear networks: exact activation regions on lines, planes and
all of R^d (or a box), and decision boundaries.

Every result names what it counts: *activation regions* (one per realized activation pattern) or
*linear regions* (maximal connected sets on which the function is affine; unions of activation
regions), and the domain (segment, slice, box, or all of R^d).
"""

import importlib

_EXPORTS = {
    "on_line": "line",
    "on_plane": "plane",
    "full_space": "space",
    "FullSpaceRegions": "space",
    "read_regions": "regions_file",
}
__all__ = list(_EXPORTS)

# names that no longer exist, with what replaced them
_RENAMED = {"enumerate": "full_space"}


def __getattr__(name):
    # each engine loads on first use, so one engine's import cost is not everyone's
    home = _EXPORTS.get(name)
    if home is not None:
        return getattr(importlib.import_module(f"relulab.regions.{home}"), name)
    if name in _RENAMED:
        raise AttributeError(f"relulab.regions.{name} is now relulab.regions.{_RENAMED[name]} "
                             f"(same arguments: {_RENAMED[name]}(net, box=None, ...))")
    raise AttributeError(f"module 'relulab.regions' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
