"""Exact pieces over a unit's dependency cone (sparse rows) against the dense exact tables.

Reference: :func:`relulab.regions._exact.exact_pieces` (dense integer tables of the whole network),
compared as rational numbers for every unit of every max layer, under patterns of points on the
segment, on convolutional, pooling, residual and dense networks."""

from __future__ import annotations

from fractions import Fraction as Fr

import pytest
import torch
from torch import nn

import relulab
from relulab.regions._exact import exact_pieces, exact_tables, exact_unit_pieces


class Res(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(3, 6), nn.Linear(6, 6), nn.Linear(6, 2)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.c(h + torch.relu(self.b(h)))


NETS = {
    "cnn": (lambda: nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(3, 2, 3, stride=2, padding=1), nn.LeakyReLU(0.1), nn.Flatten(),
                                  nn.Linear(2 * 2 * 2, 3)), (1, 8, 8)),
    "avgpool": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                                      nn.Linear(3 * 2 * 2, 4), nn.ReLU(), nn.Linear(4, 1)), (2, 6, 6)),
    "residual": (Res, (3,)),
    "mlp": (lambda: nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 1)), (4,)),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_cone_pieces_equal_the_dense_exact_pieces(name):
    torch.manual_seed(0)
    make, shape = NETS[name]
    net = relulab.PLNet.from_torch(make().double().eval(), shape)
    tabs = exact_tables(net)
    g = torch.Generator().manual_seed(1)
    a = torch.randn(shape, generator=g, dtype=torch.float64)
    b = torch.randn(shape, generator=g, dtype=torch.float64)
    for t in (0.2, 0.7):
        pattern = net.pattern((a + t * (b - a))[None])[0]
        for layer in range(len(net.max_layers)):
            P, e = exact_pieces(net, tabs, a, b, pattern, layer)
            U = P.shape[0]
            units = sorted({0, U - 1, U // 2, U // 3})
            Q, f = exact_unit_pieces(net, a, b, pattern, layer, units)
            for n, u in enumerate(units):
                for k in range(P.shape[1]):
                    for c in range(2):
                        assert Fr(int(P[u, k, c]), 2**e) == Fr(int(Q[n, k, c]), 2**f), (name, layer, u, k, c)


def test_cone_budget_gives_none():
    make, shape = NETS["cnn"]
    net = relulab.PLNet.from_torch(make().double().eval(), shape)
    a, b = torch.zeros(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)
    pattern = net.pattern(a[None])[0]
    assert exact_unit_pieces(net, a, b, pattern, 1, [0], max_entries=5) is None


def test_lazy_cone_pieces_and_their_budget():
    from relulab.regions._exact import ConePieces

    make, shape = NETS["cnn"]
    torch.manual_seed(0)
    net = relulab.PLNet.from_torch(make().double().eval(), shape)
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)
    pattern = net.pattern(a[None])[0]
    P, e = exact_pieces(net, exact_tables(net), a, b, pattern, 1)
    spent = [0]
    lazy = ConePieces(net, a, b, pattern, 1, spent, max_units=3)
    for u in (0, 5, 0, 7):
        # within one unit the differences of pieces are the same rationals up to one power of two
        ref = [Fr(int(P[u, k, c]), 2**e) for k in range(2) for c in range(2)]
        got = [int(lazy[u, k, c]) for k in range(2) for c in range(2)]
        scale = next((Fr(x) / r for x, r in zip(got, ref) if r != 0), None)
        assert scale is None or all(Fr(x) == r * scale for x, r in zip(got, ref))
    assert spent == [3]
    with pytest.raises(RuntimeError):
        lazy[9, 0, 0]


def test_rows_under_no_grad():
    from relulab.regions._exact import affine_rows

    lin = nn.Linear(3, 4).double()
    net = relulab.PLNet.from_torch(nn.Sequential(lin, nn.ReLU()), (3,))
    with torch.no_grad():
        R = affine_rows(net.nodes[1].layer, [2, 0])
    assert torch.equal(R, lin.weight.detach()[[2, 0]])


def test_exact_witness_against_points_on_and_off_walls():
    from relulab.regions._exact import exact_witness

    lin = nn.Linear(2, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        lin.bias.copy_(torch.tensor([0.0, -2.0**-60, 0.0]))  # walls x = 0 and x = 2^-60
    net = relulab.PLNet.from_torch(nn.Sequential(lin, nn.ReLU(), nn.Linear(3, 1).double()), (2,))
    tabs = exact_tables(net)
    # between the walls, on the second wall, and on the wall y = 0
    inside = torch.tensor([2.0**-61, 0.5], dtype=torch.float64)
    assert exact_witness(net, tabs, inside.numpy(), [1, 0, 1])
    assert not exact_witness(net, tabs, inside.numpy(), [1, 1, 1])
    on_wall = torch.tensor([2.0**-60, 0.5], dtype=torch.float64)
    assert not exact_witness(net, tabs, on_wall.numpy(), [1, 0, 1]) and not exact_witness(net, tabs, on_wall.numpy(), [1, 1, 1])
    assert not exact_witness(net, tabs, torch.tensor([1.0, 0.0], dtype=torch.float64).numpy(), [1, 1, 1])
