"""Sizes of the tropical representation of ReLU networks against depth and width.

For the 2-w-...-w-1 ReLU MLP of each width and depth (torch's default initialization under a fixed
seed), the monomials of ``p`` and ``q`` in ``f = p - q`` before reduction (every product expanded,
exact duplicate exponents merged) and after reduction (only monomials strictly maximal somewhere:
the upper-hull vertices of the lifted points, i.e. the linear regions of ``p`` and ``q``), both in
exact rational arithmetic, and the linear regions of ``f`` read off the reduced data. Zhang, Naitzat
and Lim (ICML 2018) bound these sizes; they grow exponentially with depth before reduction, which is
why both conversions run under a monomial budget and a time limit (``None`` = not reached).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from relulab.core.errors import InvalidInputError
from relulab.results import Result


def relu_mlp(inputs: int, width: int, depth: int, seed: int = 0):
    """The PLNet of ``inputs``-``width``-...-``width``-1 (``depth`` hidden ReLU layers), torch default init."""
    import torch
    from torch import nn

    from relulab.core.plnet import PLNet

    torch.manual_seed(int(seed))
    mods, fan = [], inputs
    for _ in range(depth):
        mods += [nn.Linear(fan, width), nn.ReLU()]
        fan = width
    return PLNet.from_torch(nn.Sequential(*mods, nn.Linear(fan, 1)).double(), (inputs,))


@dataclass(repr=False)
class TropicalSizes(Result):
    """Rows per (width, depth): ``raw_p``, ``raw_q`` (monomials before reduction; None when the budget or
    time limit stopped the conversion), ``reduced_p``, ``reduced_q``, ``certified`` (every reduction
    decision proven exactly), ``linear_regions`` of ``f`` from the tropical data (None if not counted),
    ``regions_certified``, ``raw_seconds``, ``reduce_seconds``."""

    inputs: int
    seed: int
    max_monomials: int
    rows: list = field(default_factory=list)
    seconds: float = 0.0

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        for w in sorted({r["width"] for r in self.rows}):
            sub = [r for r in self.rows if r["width"] == w]
            for key, style in (("raw", "x--"), ("reduced", "o-")):
                pts = [(r["depth"], r[f"{key}_p"] + r[f"{key}_q"]) for r in sub if r[f"{key}_p"] is not None]
                if pts:
                    ax.plot(*zip(*pts), style, label=f"width {w}, {key}")
        ax.set_yscale("log")
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel("monomials of p plus q")
        ax.legend(fontsize=8)
        return ax


def tropical_sizes(widths=(2, 3), depths=(1, 2, 3), *, inputs: int = 2, seed: int = 0,
                   max_monomials: int = 200_000, time_limit: float = 60.0, count: bool = True) -> TropicalSizes:
    """Monomials of ``p`` and ``q`` before and after reduction (module docstring) for every width and depth;
    ``count``: also the linear regions of ``f`` from the reduced data (:func:`count_regions`, ``inputs <= 3``)."""
    from relulab.tropical.network import count_regions, from_network

    t0 = time.perf_counter()
    widths, depths = [int(w) for w in widths], [int(d) for d in depths]
    if not widths or not depths or min(widths) < 1 or min(depths) < 1 or not 1 <= inputs <= 8:
        raise InvalidInputError(f"widths and depths must be positive integers and 1 <= inputs <= 8, got widths "
                                f"{widths}, depths {depths}, inputs {inputs}")
    rows = []
    for w in widths:
        for d in depths:
            net = relu_mlp(inputs, w, d, seed)
            raw = from_network(net, exact=True, max_monomials=max_monomials, time_limit=time_limit)
            red = from_network(net, exact=True, reduce=True, max_monomials=max_monomials, time_limit=time_limit)
            row = {"width": w, "depth": d,
                   "raw_p": raw.sizes[0][0] if raw.complete else None, "raw_q": raw.sizes[0][1] if raw.complete else None,
                   "reduced_p": red.sizes[0][0] if red.complete else None,
                   "reduced_q": red.sizes[0][1] if red.complete else None,
                   "certified": bool(red.complete and red.certified), "linear_regions": None,
                   "regions_certified": None, "raw_seconds": raw.seconds, "reduce_seconds": red.seconds,
                   "stopped": raw.stopped_at or red.stopped_at}
            if count and red.complete and inputs <= 3:
                c = count_regions(red.functions[0])
                row["linear_regions"], row["regions_certified"] = int(c.linear_count), bool(c.certified)
            rows.append(row)
    return TropicalSizes(inputs, int(seed), int(max_monomials), rows, time.perf_counter() - t0)


__all__ = ["tropical_sizes", "TropicalSizes", "relu_mlp"]
