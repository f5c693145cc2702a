"""The region engines on a CUDA network give the CPU's answers (skipped without a CUDA device).

Reference: the same engine on the CPU copy of the network. Counts, certificates and patterns must be
identical; the result tensors live on the network's device.
"""

from __future__ import annotations

import pytest
import torch
import relulab
from relulab.regions import full_space, on_line, on_plane

from test_full_space import mlp

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _net(widths, seed, device):
    return relulab.PLNet.from_torch(mlp(widths, seed=seed), (widths[0],)).to(device)


def _rows(t):
    return sorted(map(tuple, t.cpu().tolist()))


@pytest.mark.parametrize("method", ["vertex", "facet"])
@pytest.mark.parametrize("widths", [[3, 8, 8, 1], [6, 8, 6, 1]])
def test_full_space_on_cuda_equals_cpu(widths, method):
    cpu, gpu = _net(widths, 1, "cpu"), _net(widths, 1, "cuda")
    a, b = full_space(cpu, method=method), full_space(gpu, method=method)
    assert (b.count, b.linear_count, b.complete, b.certified) == (a.count, a.linear_count, a.complete, a.certified)
    assert b.patterns.device.type == "cuda"
    assert _rows(b.patterns) == _rows(a.patterns)


def test_plane_and_line_on_cuda_equal_cpu():
    cpu, gpu = _net([2, 64, 64, 1], 2, "cpu"), _net([2, 64, 64, 1], 2, "cuda")
    a, b = on_plane(cpu, extent=2.0), on_plane(gpu, extent=2.0)
    assert (b.count, b.certified) == (a.count, a.certified)
    assert torch.allclose(b.areas.cpu().sort().values, a.areas.sort().values, rtol=1e-9, atol=1e-12)
    x0, x1 = torch.tensor([-2.0, -1.0], dtype=torch.float64), torch.tensor([2.0, 1.5], dtype=torch.float64)
    la, lb = on_line(cpu, x0, x1), on_line(gpu, x0.cuda(), x1.cuda())
    assert (lb.count, lb.certified) == (la.count, la.certified)
    assert torch.allclose(lb.breakpoints.cpu(), la.breakpoints, rtol=0, atol=1e-12)
