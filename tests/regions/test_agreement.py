"""The three region engines agree where their domains meet, for every activation.

* a 2-input network: ``full_space`` over a box and ``on_plane`` over the same rectangle list the same
  activation patterns (both count full-dimensional regions only), hence the same count; the polygons'
  patterns are realized at their interior points;
* a segment inside that box: every interval ``on_line`` reports has a pattern that the 2-D engines list,
  and the regions the line meets are consecutive along it.
These are independent algorithms (interval walk, polygon clipping, convex-cell refinement with
witnesses), so agreement is a cross-check of each against the others.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import relulab
from relulab import nn as rnn
from relulab.regions import full_space
from relulab.regions import on_line, on_plane

ACTS = {
    "relu": lambda w: [nn.Linear(w[0], w[1]), nn.ReLU()],
    "leaky": lambda w: [nn.Linear(w[0], w[1]), nn.LeakyReLU(0.3)],
    "abs": lambda w: [nn.Linear(w[0], w[1]), rnn.Abs()],
    "maxout": lambda w: [rnn.Maxout(w[0], w[1], 3)],
    "maxpool": lambda w: [nn.Linear(w[0], 2 * w[1]), nn.ReLU(), nn.Unflatten(1, (1, 2 * w[1])),
                          nn.MaxPool1d(2), nn.Flatten()],
}


def build(act: str, widths, seed: int) -> relulab.PLNet:
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-2], widths[1:-1]):
        layers += ACTS[act]((a, b))
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return relulab.PLNet.from_torch(nn.Sequential(*layers).double().eval(), (widths[0],))


def patterns(t) -> set:
    return {tuple(r) for r in t.long().tolist()}


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(ACTS)), st.lists(st.integers(2, 5), min_size=1, max_size=2),
       st.integers(0, 2**16), st.floats(0.3, 3.0))
def test_box_plane_and_line_agree(act, hidden, seed, r):
    net = build(act, [2, *hidden, 2], seed)
    box = full_space(net, (torch.tensor([-r, -0.5 * r]), torch.tensor([r, 1.5 * r])))
    plane = on_plane(net, extent=(-r, r, -0.5 * r, 1.5 * r))
    assert box.complete and plane.complete
    assert box.count == plane.count
    assert patterns(box.patterns) == patterns(plane.patterns)
    assert float(plane.areas.sum()) == pytest.approx(2 * r * 2 * r, rel=1e-9)
    # a segment across the box, corner to corner: its regions are among the box's
    a, b = torch.tensor([-r, -0.5 * r], dtype=torch.float64), torch.tensor([r, 1.5 * r], dtype=torch.float64)
    line = on_line(net, a + 0.01 * (b - a), b - 0.02 * (b - a))
    assert patterns(line.patterns) <= patterns(box.patterns)
    # the whole space has at least as many regions as the box, and all of the box's
    full = full_space(net)
    assert patterns(box.patterns) <= patterns(full.patterns)
