"""The picture of a two-input region result (full space, box or a split count): every region in a
random colour on a grid, found by each grid point's region index."""

from __future__ import annotations

import numpy as np
import torch

from relulab.core.errors import InvalidInputError


def plot_regions(res, region_index, ax=None, extent=None, resolution: int = 300, seed: int = 0,
                 witnesses: bool = True, suffix: str = ""):
    """Draw ``res`` (``count``, ``box``, ``domain``, ``interior_points``, ``_net``) on ``ax``.

    ``extent`` (x0, x1, y0, y1) defaults to the box, or in R^2 to a window 1.5 times the 90%
    quantile of the witnesses' coordinates. ``region_index(points)`` gives each grid point's region
    (-1: none, e.g. a point on a wall, drawn white). ``witnesses``: the witnesses as dots;
    ``suffix`` ends the title. Returns the Axes."""
    import matplotlib.pyplot as plt

    net = res._net
    if net.input_dim != 2:
        raise InvalidInputError(f"plot needs a network with 2 inputs, this one has {net.input_dim}")
    if extent is None:
        if res.box is not None:
            (x0, y0), (x1, y1) = res.box
        else:
            pts = res.interior_points
            q = pts.abs().quantile(0.9, dim=0) if res.count else torch.ones(2)
            x1, y1 = (1.5 * q + 1e-9).tolist()
            x0, y0 = -x1, -y1
        extent = (x0, x1, y0, y1)
    x0, x1, y0, y1 = extent
    gx, gy = torch.meshgrid(torch.linspace(x0, x1, resolution, dtype=torch.float64),
                            torch.linspace(y0, y1, resolution, dtype=torch.float64), indexing="xy")
    idx = torch.as_tensor(region_index(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)))
    idx = idx.reshape(resolution, resolution).cpu().numpy()
    colours = np.random.default_rng(seed).random((max(1, res.count), 3)) * 0.7 + 0.3
    img = np.where(idx[..., None] >= 0, colours[np.maximum(idx, 0)], 1.0)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(img, origin="lower", extent=extent, interpolation="nearest")
    if witnesses:
        pts = res.interior_points.cpu()
        inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
        ax.plot(pts[inside, 0], pts[inside, 1], "k.", ms=2)
    where = "a box" if res.domain == "box" else "R^2 (window)"
    ax.set_title(f"{res.count} activation regions over {where}{suffix}")
    return ax
