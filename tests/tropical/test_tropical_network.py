"""Tropical representation p - q of networks: values (float64 and exact), reduction, Newton polytopes,
region counts against relulab.regions, budgets and degenerate inputs."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from relulab import PLNet, regions
from relulab.nn import Abs, Maxout
from relulab.tropical import MaxPlus, count_regions, exact_forward, from_network, newton_polytope


def _net(*mods, shape=(2,), seed=0):
    # the modules are built (and drew their weights) before this call: drawn again after seeding,
    # so that the weights depend on the seed alone, not on the tests that ran before
    seq = nn.Sequential(*mods)
    torch.manual_seed(seed)
    for m in seq.modules():
        if m is not seq and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return PLNet.from_torch(seq, shape)


NETS = {
    "relu": lambda: _net(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)),
    "leaky": lambda: _net(nn.Linear(3, 3), nn.LeakyReLU(0.2), nn.Linear(3, 1), shape=(3,)),
    "abs": lambda: _net(nn.Linear(2, 3), Abs(), nn.Linear(3, 2)),
    "maxout": lambda: _net(Maxout(2, 2, 3), nn.Linear(2, 1)),
    "maxpool": lambda: _net(nn.MaxPool1d(2, 1), nn.Flatten(), nn.Linear(3, 1), shape=(1, 4)),
}


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 1)

    def forward(self, x):
        return self.out(x + self.b(torch.relu(self.a(x))))


@pytest.mark.parametrize("name", list(NETS) + ["residual"])
def test_values_float(name):
    if name == "residual":
        torch.manual_seed(3)
        net = PLNet.from_torch(Residual(), (2,))
    else:
        net = NETS[name]()
    T = from_network(net)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, net.input_dim)) * 3
    y = net(torch.tensor(X)).reshape(200, -1).numpy()
    err = np.abs(T(X) - y).max() / max(1.0, np.abs(y).max())
    assert err <= 1e-12


@pytest.mark.parametrize("name", ["relu", "abs", "maxout", "maxpool"])
def test_values_exact(name):
    net = NETS[name]()
    T = from_network(net, exact=True)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = [Fraction(int(v), 7) for v in rng.integers(-20, 20, net.input_dim)]
        want = exact_forward(net, x)
        got = [f(np.array(x, dtype=object)) for f in T.functions]
        assert got == want


def test_exact_forward_is_the_network():
    net = NETS["relu"]()
    x = [Fraction(1, 3), Fraction(-5, 4)]
    assert abs(float(exact_forward(net, x)[0]) - float(net(torch.tensor([1 / 3, -5 / 4]))[0])) < 1e-12


@pytest.mark.parametrize("name", ["relu", "abs", "maxout"])
def test_reduction_keeps_the_function(name):
    net = NETS[name]()
    T, R = from_network(net), from_network(net, reduce=True)
    X = np.random.default_rng(2).standard_normal((300, net.input_dim)) * 5
    assert np.abs(T(X) - R(X)).max() <= 1e-9 * max(1, np.abs(T(X)).max())
    for f, g in zip(T.functions, R.functions):
        assert g.p.size <= f.p.size and g.q.size <= f.q.size
        # reduced monomials are exactly the ones strictly maximal somewhere: each wins at some sample
        # or passed an exact certificate; re-reducing changes nothing (canonical form)
        again = g.p.reduce()
        assert again.size == g.p.size


def test_reduction_exact_small():
    # max(x, y, (x+y)/2) = max(x, y); max(x, y, (x+y)/2 + 1/10) keeps the middle monomial
    base = MaxPlus.monomial([1, 0], 0, True).plus(MaxPlus.monomial([0, 1], 0, True))
    p = base.plus(MaxPlus.monomial([Fraction(1, 2), Fraction(1, 2)], 0, True)).reduce()
    assert p.size == 2 and p.certified
    p = base.plus(MaxPlus.monomial([Fraction(1, 2), Fraction(1, 2)], Fraction(1, 10), True)).reduce()
    assert p.size == 3 and p.certified
    # duplicates merged (larger constant kept)
    p = MaxPlus.monomial([1, 1], 0, True).plus(MaxPlus.monomial([1, 1], 2, True))
    assert p.size == 1 and p.constants[0] == 2


def test_reduction_against_brute_force():
    # monomials kept = those that win at some point of a fine grid (2-D, generic constants)
    rng = np.random.default_rng(4)
    for _ in range(4):
        E = rng.integers(-3, 4, (12, 2)).astype(float)
        c = rng.integers(-5, 5, 12).astype(float) / 2
        red = MaxPlus(E, c).reduce()
        X = np.concatenate([np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
                            for g in (np.linspace(-40, 40, 401), np.linspace(-3, 3, 601))])
        V = X @ red.exponents.T + red.constants
        assert len(np.unique(V.argmax(1))) == red.size
        assert np.allclose(MaxPlus(E, c)(X), red(X))


@pytest.mark.parametrize("name", ["relu", "abs", "maxout"])
def test_region_counts_match_regions_engine(name):
    net = NETS[name]()
    full = regions.full_space
    T = from_network(net, reduce=True, exact=True)
    for o, f in enumerate(T.functions[:1]):
        sub = net if net.output_dim == 1 else None
        if sub is None:
            pytest.skip("linear_count of one output of a vector network is not in the generic engine")
        c = count_regions(f)
        ref = full(sub)
        assert c.linear_count == ref.linear_count
        assert c.boundary_cells == ref.decision_boundary_pieces or ref.decision_boundary_pieces is None
        for piece in c.boundary:  # each piece's point is on {p = q} and the network vanishes there
            x = np.array(piece["point"])
            assert abs(float(net(torch.tensor(x))[0])) <= 1e-9 * (1 + np.abs(x).max())


def test_newton_polytopes_low_dimensional():
    p = MaxPlus(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), np.array([0.0, 1.0, 0.0]))
    N = newton_polytope(p)
    assert N.dim == 1 and N.vertices == [0, 2] and N.facets == 2
    U = newton_polytope(p, lifted=True)
    assert len(U.vertices) == 3  # (1,1) is lifted above the segment: a vertex of the upper hull
    sq = MaxPlus(np.array([[0.0, 0], [1, 0], [0, 1], [1, 1]]), np.zeros(4))
    assert newton_polytope(sq).facets == 4
    assert newton_polytope(sq, lifted=True).facets == 1  # flat lift: one upper facet
    assert newton_polytope(MaxPlus.constant(3.0, 2)).dim == 0


def test_float_counts_refused_unless_asked():
    T = from_network(NETS["maxout"](), reduce=True)
    with pytest.raises(ValueError):
        count_regions(T.functions[0])
    assert count_regions(T.functions[0], allow_float=True).certified is False


def test_budget_gives_incomplete():
    net = _net(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 1))
    T = from_network(net, max_monomials=50)
    assert not T.complete and T.stopped_at and T.functions == []
    with pytest.raises(ValueError):
        T(np.zeros((1, 2)))


def test_zero_weights_and_ties():
    m = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        m[0].weight.zero_()
        m[0].bias.copy_(torch.tensor([1.0, -1.0]))
        m[2].weight.copy_(torch.tensor([[2.0, 3.0]]))
    net = PLNet.from_torch(m, (2,))
    T = from_network(net, reduce=True, exact=True)
    assert T.functions[0](np.array([Fraction(5), Fraction(-3)], dtype=object)) == exact_forward(net, [5, -3])[0]
    assert T.functions[0].p.size == 1 and T.functions[0].q.size == 1
    c = count_regions(T.functions[0])
    assert c.linear_count == 1


def test_upper_facets_are_the_vertices_of_the_tropical_curve():
    # independent count: points of R^2 where three monomials tie above all others (the tropical curve's
    # vertices) are in bijection with the upper facets of the lifted Newton polytope
    import itertools

    rng = np.random.default_rng(7)
    for _ in range(5):
        E = rng.integers(-3, 4, (9, 2)).astype(float)
        c = rng.integers(-6, 7, 9).astype(float) + rng.uniform(0, 0.01, 9)  # generic lift
        red = MaxPlus(E, c).reduce()
        pts = set()
        for a, b, t in itertools.combinations(range(red.size), 3):
            M = np.array([red.exponents[a] - red.exponents[b], red.exponents[a] - red.exponents[t]])
            if abs(np.linalg.det(M)) < 1e-12:
                continue
            x = np.linalg.solve(M, [red.constants[b] - red.constants[a], red.constants[t] - red.constants[a]])
            v = red.exponents @ x + red.constants
            if v[a] >= v.max() - 1e-9:
                pts.add(tuple(np.round(x, 7)))
        assert newton_polytope(red, lifted=True).facets == len(pts)


@pytest.mark.parametrize("name", ["leaky2", "residual"])
def test_region_counts_leaky_and_residual(name):
    if name == "residual":
        torch.manual_seed(3)
        net = PLNet.from_torch(Residual(), (2,))
    else:
        net = _net(nn.Linear(2, 3), nn.LeakyReLU(0.2), nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1), seed=2)
    f = from_network(net, reduce=True, exact=True).functions[0]
    c, ref = count_regions(f), regions.full_space(net)
    assert c.certified and c.linear_count == ref.linear_count
    assert ref.decision_boundary_pieces is None or c.boundary_cells == ref.decision_boundary_pieces


def test_region_count_certificates():
    # every LP decision is re-proven exactly; forcing wrong "empty" answers (a margin above any LP
    # optimum) leaves the count uncertified instead of silently wrong
    from relulab.tropical.network import _exact_farkas, _exact_witness

    f = from_network(NETS["relu"](), reduce=True, exact=True).functions[0]
    good = count_regions(f)
    assert good.certified
    bad = count_regions(f, tol=1.5)
    assert not bad.certified and bad.linear_count >= good.linear_count
    F = Fraction
    A, b = [[F(1)], [F(-1)]], [F(0), F(0)]  # x > 0 and -x > 0: empty; y = (1/2, 1/2) proves it
    assert _exact_farkas(A, b, np.array([0.5, 0.5])) and not _exact_witness(A, b, [0.3])
    A, b = [[F(1)], [F(-1)]], [F(0), F(1)]  # 0 < x < 1: non-empty, no Farkas certificate
    assert _exact_witness(A, b, [0.5]) and not _exact_farkas(A, b, np.array([0.5, 0.5]))
    # on the wall x = 1/3 (projected exactly), 0 < x < 1 holds
    assert _exact_witness(A, b, [0.9], eq=([F(3)], F(-1)))


def test_region_counts_per_output_of_a_vector_network():
    # each output of a 2-output network against full_space of the network followed by e_o^T
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(2, 3), Abs(), nn.Linear(3, 2))
    net = PLNet.from_torch(body, (2,))
    T = from_network(net, reduce=True, exact=True)
    for o in range(2):
        sel = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            sel.weight.copy_(torch.eye(2)[o:o + 1])
        ref = regions.full_space(PLNet.from_torch(nn.Sequential(body, sel), (2,)))
        c = count_regions(T.functions[o])
        assert c.certified and c.linear_count == ref.linear_count
