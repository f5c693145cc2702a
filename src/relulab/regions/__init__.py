"""Input-space geometry of piecewise-linear networks: exact activation regions on lines, planes and
all of R^d (or a box), one count split over many workers, and decision boundaries.

Every result names what it counts: *activation regions* (one per realized activation pattern) or
*linear regions* (maximal connected sets on which the function is affine; unions of activation
regions), and the domain (segment, slice, box, or all of R^d).
"""

from relulab._lazy import exports as _exports

_EXPORTS = {
    "on_line": "line",
    "on_plane": "plane",
    "full_space": "space",
    "FullSpaceRegions": "space",
    "read_regions": "regions_file",
    "split_full_space": "split",
    "SplitEnumeration": "split",
}

# names that no longer exist here, with what replaced them
_MOVED = {"enumerate": "relulab.regions.full_space (same arguments: full_space(net, box=None, ...))"}

__getattr__, __dir__, __all__ = _exports(__name__, _EXPORTS, moved=_MOVED)
