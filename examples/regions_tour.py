"""Exact activation regions three ways: along a segment through a CNN, on a 2-D slice, and in all of R^d.

Writes regions_plane.png and regions_line.png into the current folder.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import relulab  # noqa: E402
from relulab.regions import full_space  # noqa: E402
from relulab.regions import on_line, on_plane  # noqa: E402

torch.manual_seed(0)

# 1. A small CNN with max-pooling on 1x12x12 images: the exact breakpoints between two images.
cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                    nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10)).eval()
net = relulab.PLNet.from_torch(cnn, (1, 12, 12))
a, b = torch.rand(2, 1, 12, 12, dtype=torch.float64)
line = on_line(net, a, b)
print(f"segment between two images: {line.count} activation regions, {line.linear_count} linear pieces, "
      f"image curve {line.length_ratio:.3f} times as long as the segment")
fig, ax = plt.subplots(figsize=(7, 3.5))
line.plot(ax=ax)
fig.savefig("regions_line.png", dpi=120, bbox_inches="tight")

# Many segments in one batched call: the counts of 50 random segments.
A, B = torch.rand(2, 50, 1, 12, 12, dtype=torch.float64)
batch = on_line(net, A, B)
print(f"50 segments: {batch.counts.float().mean():.1f} regions on average, {int(batch.count)} in all")

# 2. A 2-input leaky-ReLU classifier: the partition of a square and its exact decision boundary.
clf = nn.Sequential(nn.Linear(2, 24), nn.LeakyReLU(0.1), nn.Linear(24, 24), nn.LeakyReLU(0.1), nn.Linear(24, 3))
net2 = relulab.PLNet.from_torch(clf, (2,))
plane = on_plane(net2, extent=3.0)
print(f"square [-3, 3]^2: {plane.count} activation regions, {plane.linear_count} linear regions, "
      f"decision boundary of {plane.boundary_pieces} straight pieces; areas sum to {float(plane.areas.sum()):.12g}")
fig, ax = plt.subplots(figsize=(6, 6))
plane.plot(ax=ax, color="class")
fig.savefig("regions_plane.png", dpi=120, bbox_inches="tight")

# 3. All of R^4 for a maxout network: every region, with a witness point, boundedness and neighbours.
mx = nn.Sequential(relulab.nn.Maxout(4, 6, 3), relulab.nn.Maxout(6, 6, 2), nn.Linear(6, 1))
full = full_space(relulab.PLNet.from_torch(mx, (4,)), neighbours=True, audit_samples=2000)
print(f"all of R^4: {full.count} activation regions ({int(full.bounded.sum())} bounded), "
      f"{full.neighbours.shape[0]} adjacent pairs, sampling audit found {0 if full.audit is None else len(full.audit)} "
      f"missing patterns")
