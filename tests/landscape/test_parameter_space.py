"""Activation regions in parameter space: Jacobian, rank, LP non-emptiness, arrangement counts, zero loss."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import jacrev

import relulab.landscape as L
from relulab.core.errors import DegenerateGeometryError, InvalidInputError
from relulab.landscape.parameter_space import (
    cover_count, enumerate_parameter_regions, full_rank_fraction, jacobian_rank, parameter_pattern,
    parameter_region, parameterization_jacobian, region_is_nonempty)
from relulab.landscape.shallow import ShallowNet

ACTS = [("relu", None), ("leaky_relu", 0.2), ("abs", None)]


def _net(d, m, o=1, act="relu", alpha=None, bias=True, output_bias=False, trainable="first", seed=0):
    return ShallowNet.random(d, m, o, activation=act, alpha=alpha, bias=bias, output_bias=output_bias,
                             trainable=trainable, seed=seed)


def _ref_jacobian(net, X):
    return jacrev(lambda th: net.with_parameters(th)(X).reshape(-1))(net.parameters_vector())


def _X(n, d, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------------------------------ Jacobian
@pytest.mark.parametrize("act,alpha", ACTS)
@pytest.mark.parametrize("trainable", ["first", "all"])
@pytest.mark.parametrize("bias,output_bias,o", [(True, False, 1), (False, True, 2), (True, True, 3)])
def test_jacobian_matches_autograd(act, alpha, trainable, bias, output_bias, o):
    net = _net(3, 5, o, act, alpha, bias, output_bias, trainable, seed=3)
    X = _X(7, 3)
    J = parameterization_jacobian(net, X)
    assert J.shape == (7 * o, net.n_parameters)
    torch.testing.assert_close(J, _ref_jacobian(net, X), rtol=0, atol=1e-12)


def test_jacobian_matches_finite_differences_and_is_constant_on_region():
    net = _net(4, 6, 2, trainable="first", seed=5)
    X = _X(9, 4, seed=1)
    theta = net.parameters_vector()
    Z = net.preactivations(X)
    # a step small enough not to cross any kink keeps the pattern: f is exactly linear there
    h = 0.1 * float(Z.abs().min()) / (float(X.abs().max()) + 1)
    J = parameterization_jacobian(net, X)
    E = torch.eye(theta.numel(), dtype=theta.dtype)
    fd = torch.stack([(net.with_parameters(theta + h * e)(X) - net.with_parameters(theta - h * e)(X)).reshape(-1)
                      / (2 * h) for e in E], dim=1)
    torch.testing.assert_close(J, fd, rtol=1e-7, atol=1e-7)
    # f(theta) = J theta + c on the region (outputs linear in (W, b) with fixed a)
    torch.testing.assert_close(J @ theta, net(X).reshape(-1), rtol=1e-12, atol=1e-12)
    moved = net.with_parameters(theta + h * torch.randn(theta.shape, dtype=theta.dtype,
                                                        generator=torch.Generator().manual_seed(0)) / 10)
    assert torch.equal(parameter_pattern(moved, X), parameter_pattern(net, X))
    torch.testing.assert_close(parameterization_jacobian(moved, X), J)


def test_pattern_shape_and_kinks():
    net = _net(2, 3, seed=0)
    X = _X(4, 2)
    S = parameter_pattern(net, X)
    assert S.shape == (3, 4) and S.dtype == torch.int8
    assert torch.equal(S, torch.sign(net.preactivations(X)).T.to(torch.int8))
    # a sample exactly on neuron 0's kink: no Jacobian unless a side is chosen
    W = net.W.clone()
    X2 = X.clone()
    X2[0] = torch.tensor([1.0, 0.0], dtype=torch.float64)
    W[0] = torch.tensor([-net.b[0].item(), 3.0], dtype=torch.float64)
    kinked = ShallowNet(W, net.a, net.b, trainable="first")
    assert parameter_pattern(kinked, X2)[0, 0] == 0
    with pytest.raises(DegenerateGeometryError):
        parameterization_jacobian(kinked, X2)
    S2 = parameter_pattern(kinked, X2).clone()
    S2[0, 0] = 1
    J = parameterization_jacobian(kinked, X2, pattern=S2)
    assert J.shape == (4, 9)
    with pytest.raises(InvalidInputError):
        parameterization_jacobian(kinked, X2, pattern=torch.full((3, 4), 2))
    with pytest.raises(InvalidInputError):
        parameterization_jacobian(kinked, X2, pattern=torch.ones(2, 4))


def test_zero_input_without_bias_has_zero_rows():
    net = _net(2, 3, bias=False, seed=1)
    X = _X(4, 2)
    X[2] = 0
    J = parameterization_jacobian(net, X)  # the 0 entries at x = 0 are not kinks of the parameterization
    assert bool((J[2] == 0).all())
    torch.testing.assert_close(J, _ref_jacobian(net, X))


# ------------------------------------------------------------------------------------------ rank
def test_rank_matches_dense_reference():
    for seed, (d, m, n) in enumerate([(2, 3, 5), (3, 4, 20), (1, 5, 12), (4, 2, 6)]):
        net = _net(d, m, seed=seed)
        X = _X(n, d, seed)
        ref = np.linalg.matrix_rank(_ref_jacobian(net, X).numpy())
        assert jacobian_rank(net, X) == ref


def test_rank_closed_cases():
    d, n = 3, 7
    X = _X(n, d)
    net = _net(d, 1, seed=0)
    all_on = torch.ones(1, n, dtype=torch.int8)
    # one neuron, every sample active: J = a [X, 1]
    assert jacobian_rank(net, X, pattern=all_on) == np.linalg.matrix_rank(np.c_[X.numpy(), np.ones(n)]) == 4
    assert jacobian_rank(net, X, pattern=-all_on) == 0  # all inactive ReLU: J = 0
    # rank is invariant to rescaling the data (relative tolerance)
    assert jacobian_rank(net, 1e6 * X, pattern=all_on) == jacobian_rank(net, 1e-6 * X, pattern=all_on) == 4
    # m (d + 1) < n: never full rank, whatever the pattern
    net = _net(2, 3, seed=2)
    X = _X(10, 2)
    for s in range(5):
        S = torch.randint(0, 2, (3, 10), generator=torch.Generator().manual_seed(s)).to(torch.int8) * 2 - 1
        assert jacobian_rank(net, X, pattern=S) <= 9
    # duplicated samples give duplicated rows
    Xd = torch.cat([X[:3], X[:3]])
    assert jacobian_rank(_net(2, 8, seed=0), Xd) <= 3


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 9), st.integers(1, 2), st.sampled_from(ACTS),
       st.booleans(), st.sampled_from(["first", "all"]), st.integers(0, 10_000))
def test_jacobian_and_rank_random(d, m, n, o, act, bias, trainable, seed):
    net = _net(d, m, o, act[0], act[1], bias, False, trainable, seed)
    X = _X(n, d, seed)
    if (net.preactivations(X) == 0).any():
        return
    J = parameterization_jacobian(net, X)
    Jr = _ref_jacobian(net, X)
    torch.testing.assert_close(J, Jr, rtol=0, atol=1e-12)
    assert jacobian_rank(net, X) == np.linalg.matrix_rank(Jr.numpy())


# ------------------------------------------------------------------------------------------ LP non-emptiness
def _sampled_rows(X, bias, k=20000, seed=0):
    g = np.random.default_rng(seed)
    Xt = np.c_[X, np.ones(len(X))] if bias else np.asarray(X)
    V = g.standard_normal((k, Xt.shape[1]))
    return {tuple(r) for r in np.sign(V @ Xt.T).astype(int)}


def test_nonempty_vs_sampling_and_contradictions():
    X = _X(6, 2, seed=4).numpy()
    seen = _sampled_rows(X, True)
    rows = torch.tensor(sorted(seen), dtype=torch.int8)
    assert region_is_nonempty(X, rows, bias=True)  # all sampled rows at once, as an m-neuron pattern
    batch = rows[:, None, :]
    assert bool(region_is_nonempty(X, batch).all())
    # exhaustive: every sign vector is feasible iff it is one of the arrangement's cells
    cells = {tuple(c) for c in enumerate_parameter_regions(X, 1).cells.tolist()}
    assert seen <= cells
    allv = torch.tensor(list(itertools.product([-1, 1], repeat=6)), dtype=torch.int8)[:, None, :]
    verdict = region_is_nonempty(X, allv)
    assert {tuple(v[0]) for v, ok in zip(allv.tolist(), verdict.tolist()) if ok} == cells
    # the same point twice with opposite signs is empty; with equal signs it is fine
    Xd = np.r_[X[:3], X[:1]]
    assert not region_is_nonempty(Xd, [[1, 1, 1, -1]])
    assert region_is_nonempty(Xd, [[1, -1, 1, 1]]) == ((1, -1, 1) in {r[:3] for r in cells})
    # x and -x without bias must have opposite signs; x = 0 without bias has sign 0 only
    Xa = np.array([[1.0, 2.0], [-1.0, -2.0], [0.0, 0.0]])
    assert not region_is_nonempty(Xa, [[1, 1, 0]], bias=False)
    assert region_is_nonempty(Xa, [[1, -1, 0]], bias=False)
    assert not region_is_nonempty(Xa, [[1, -1, 1]], bias=False)
    # a 0 entry at a nonzero point asks for the face xt . v = 0 (lower-dimensional, still an LP)
    assert region_is_nonempty(Xa, [[0, 0, 0]], bias=False)
    assert not region_is_nonempty(np.array([[1.0, 0], [2.0, 0]]), [[0, 1]], bias=False)


def test_region_of_product_needs_every_neuron():
    X = np.array([[0.0], [1.0], [2.0]])
    good, bad = [1, 1, -1], [1, -1, 1]  # thresholds on a line: (+, -, +) is not realizable
    assert region_is_nonempty(X, [good, good])
    assert not region_is_nonempty(X, [good, bad])
    assert not region_is_nonempty(X, [bad])


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.integers(1, 7), st.booleans(), st.integers(0, 10_000))
def test_sampled_patterns_are_nonempty(d, n, bias, seed):
    X = _X(n, d, seed).numpy()
    if seed % 3 == 0 and n > 1:
        X[-1] = X[0]  # duplicated data
    rows = sorted(_sampled_rows(X, bias, k=500, seed=seed))
    rows = [r for r in rows if 0 not in r]
    P = torch.tensor(rows, dtype=torch.int8)[:, None, :]
    assert bool(region_is_nonempty(X, P, bias=bias).all())
    # negating one entry of a duplicated pair is always empty
    if seed % 3 == 0 and n > 1:
        r = list(rows[0])
        r[-1] = -r[0]
        assert not region_is_nonempty(X, [r], bias=bias)


# ------------------------------------------------------------------------------------------ enumeration
@pytest.mark.parametrize("n,d", [(1, 1), (4, 1), (6, 2), (9, 2), (8, 3), (10, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_enumeration_general_position_matches_cover(n, d, bias):
    X = _X(n, d, seed=n + d)
    A = enumerate_parameter_regions(X, m=2, bias=bias)
    q = d + 1 if bias else d
    assert A.complete and A.n_cells == cover_count(n, q) == A.general_position_count
    assert A.n_regions == A.n_cells ** 2
    # every witness lies strictly in its cell, and cells are distinct
    Xt = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], 1) if bias else X
    assert torch.equal(torch.sign(A.witnesses @ Xt.T).to(torch.int8), A.cells)
    assert len({tuple(c) for c in A.cells.tolist()}) == A.n_cells


def test_enumeration_by_hand_degenerate():
    X = _X(5, 2, seed=1)
    # one duplicated point: the same hyperplane twice
    A = enumerate_parameter_regions(torch.cat([X, X[:1]]), 1)
    assert A.n_cells == cover_count(5, 3)
    assert bool((A.cells[:, 0] == A.cells[:, 5]).all())
    # a point at the origin without bias: its sign is always 0 and it splits nothing
    A = enumerate_parameter_regions(torch.cat([X, torch.zeros(1, 2, dtype=X.dtype)]), 1, bias=False)
    assert A.n_cells == cover_count(5, 2) == 10 and bool((A.cells[:, 5] == 0).all())
    # antipodal points without bias: one hyperplane, opposite signs
    A = enumerate_parameter_regions(torch.cat([X, -X[:2]]), 1, bias=False)
    assert A.n_cells == 10 and bool((A.cells[:, 5] == -A.cells[:, 0]).all())
    # three collinear points in the plane with bias: three planes through one line of R^3 -> 6 cells (not 8)
    C = torch.tensor([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]], dtype=torch.float64)
    assert enumerate_parameter_regions(C, 1).n_cells == 6
    assert cover_count(3, 3) == 8
    # points on a line with bias: 2n threshold patterns (two orientations, n + 1 gaps, minus 2 repeats)
    T = torch.tensor([[-1.0], [0.0], [0.5], [3.0]], dtype=torch.float64)
    A = enumerate_parameter_regions(T, 1)
    expect = set()
    for k in range(5):
        up = tuple([-1] * k + [1] * (4 - k))
        expect |= {up, tuple(-v for v in up)}
    assert {tuple(c) for c in A.cells.tolist()} == expect and A.n_cells == 8
    # lazy products
    A = enumerate_parameter_regions(T, 3)
    pats = list(A.patterns(limit=10))
    assert len(pats) == 10 and pats[0].shape == (3, 4)
    assert A.n_regions == 8 ** 3 and sum(1 for _ in A.patterns()) == 512


def test_enumeration_budget_and_validation():
    X = _X(12, 3)
    A = enumerate_parameter_regions(X, 1, max_cells=20)
    assert not A.complete and A.hyperplanes_done < 12
    with pytest.raises(InvalidInputError):
        enumerate_parameter_regions(X, 0)
    with pytest.raises(InvalidInputError):
        enumerate_parameter_regions(np.zeros(3), 1)
    json.dumps(A.to_dict())


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.booleans(), st.integers(0, 10_000), st.integers(0, 2))
def test_enumeration_random_vs_sampling(d, n, bias, seed, dup):
    X = _X(n, d, seed).numpy()
    if dup and n > 2:
        X[1] = X[0] if dup == 1 else 2.5 * X[0]  # duplicate or collinear with the origin
    A = enumerate_parameter_regions(X, 1, bias=bias)
    cells = {tuple(c) for c in A.cells.tolist()}
    q = d + 1 if bias else d
    assert A.n_cells <= cover_count(n, q)
    assert {r for r in _sampled_rows(X, bias, k=3000, seed=seed) if 0 not in r} <= cells
    # exact: the LP accepts a sign vector iff it is an enumerated cell
    allv = torch.tensor(list(itertools.product([-1, 1], repeat=n)), dtype=torch.int8)[:, None, :]
    ok = region_is_nonempty(X, allv, bias=bias)
    assert {tuple(v[0]) for v, k in zip(allv.tolist(), ok.tolist()) if k} == cells


# ------------------------------------------------------------------------------------------ zero loss
def test_global_minimum_of_own_outputs():
    net = _net(3, 6, 2, seed=7)
    X = _X(5, 3, seed=2)
    R = parameter_region(net, X, net(X))
    assert R.nonempty and R.full_rank and R.rank == 10 and R.has_global_minimum
    assert R.zero_loss_dimension == net.n_parameters - 10
    wit = net.with_parameters(R.global_minimum)
    assert float(wit.loss(X, net(X))) < 1e-16
    assert torch.equal(parameter_pattern(wit, X), R.pattern)
    json.dumps(R.to_dict())
    # trainable="all": the fixed-output test is a sufficient condition
    net_all = _net(3, 6, 2, seed=7, trainable="all")
    R = parameter_region(net_all, X, net_all(X))
    assert R.has_global_minimum and R.zero_loss_dimension is None
    assert float(net_all.with_parameters(R.global_minimum).loss(X, net_all(X))) < 1e-16


def test_global_minimum_by_hand_single_neuron():
    # f(x) = w x + b on the all-active region; zero loss needs w x_i + b = y_i > 0
    net = ShallowNet([[1.0]], [1.0], [1.0], trainable="first")
    X = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    on = [[1, 1]]
    R = parameter_region(net, X, [1.0, 2.0], pattern=on)
    assert R.has_global_minimum and R.zero_loss_dimension == 0
    torch.testing.assert_close(R.global_minimum, torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert parameter_region(net, X, [1.0, -1.0], pattern=on).has_global_minimum is False
    assert parameter_region(net, X, [0.0, 1.0], pattern=on).has_global_minimum is False  # on the boundary
    # all inactive: J = 0, zero loss only for zero targets
    assert parameter_region(net, X, [0.0, 0.0], pattern=[[-1, -1]]).has_global_minimum is True
    assert parameter_region(net, X, [0.0, 1.0], pattern=[[-1, -1]]).has_global_minimum is False
    # empty region: no minimum
    R = parameter_region(net, torch.tensor([[1.0], [1.0]], dtype=torch.float64), [1.0, 1.0], pattern=[[1, -1]])
    assert not R.nonempty and R.has_global_minimum is False
    with pytest.raises(InvalidInputError):
        parameter_region(net, X, [1.0, 2.0, 3.0])


def test_underparameterized_has_no_global_minimum():
    net = _net(2, 2, seed=1)  # 6 parameters, 9 samples
    X = _X(9, 2, seed=3)
    Y = torch.randn(9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    R = parameter_region(net, X, Y)
    assert not R.full_rank and R.has_global_minimum is False


# ------------------------------------------------------------------------------------------ phase transition
def test_full_rank_fraction_workers_and_bounds():
    kw = dict(d_values=[1, 3], n_values=[3, 8, 13], m_values=[2, 5], samples=150, seed=4)
    g1 = full_rank_fraction(workers=1, **kw)
    g2 = full_rank_fraction(workers=2, **kw)
    assert np.array_equal(g1.full_rank, g2.full_rank)
    assert g1.fraction.shape == (2, 3, 2)
    assert np.all((g1.low <= g1.fraction) & (g1.fraction <= g1.high))
    for a, d in enumerate(kw["d_values"]):
        for b, n in enumerate(kw["n_values"]):
            for c, m in enumerate(kw["m_values"]):
                if m * (d + 1) < n:
                    assert g1.full_rank[a, b, c] == 0
    assert g1.fraction[1, 0, 1] > 0.9  # 20 parameters per sample for 3 samples
    assert not np.array_equal(g1.full_rank, full_rank_fraction(workers=1, **dict(kw, seed=5)).full_rank)
    json.dumps(g1.to_dict())
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    first = g1.plot()
    assert isinstance(first, Axes) and first.get_title().startswith("d = 1")  # one Axes, like every plot()
    fig = first.figure
    assert len([a for a in fig.axes if a.get_title().startswith("d = ")]) == len(kw["d_values"])
    _, one = plt.subplots()
    with pytest.raises(InvalidInputError, match="one Axes per input dimension"):
        g1.plot(ax=one)  # one Axes for several d would silently drop all but the first
    plt.close("all")


def test_full_rank_fraction_and_parameter_region_report_progress():
    from relulab.progress import Recorder

    kw = dict(d_values=[1], n_values=[3, 8], m_values=[1, 4], samples=300, seed=1, workers=1)
    rec = Recorder()
    g = full_rank_fraction(progress=rec, **kw)
    assert np.array_equal(g.full_rank, full_rank_fraction(**kw).full_rank)  # reporting changes nothing
    # the cells with m = 1 (2 parameters per row, n >= 3 rows) are decided without sampling: 2 sampled
    # cells of 300 draws, each in 3 chunks of at most 128
    done = [c[0] for c in rec.calls]
    assert done[0] == 0 and done[-1] == 600 and done == sorted(done) and len(done) == 1 + 2 * 3
    assert all(c[1] == 600 for c in rec.calls)
    assert rec.calls[0][2]["cells"] == 2 and rec.calls[-1][2]["cells"] == 4
    g2 = full_rank_fraction(progress=(rec2 := Recorder()), **dict(kw, workers=2))
    assert np.array_equal(g2.full_rank, g.full_rank) and rec2.calls[-1][:2] == (600, 600)

    net, X = _net(2, 3, seed=2), _X(5, 2)
    for Y, steps in ((None, 2), (net(X).detach(), 3)):
        rec = Recorder()
        res = parameter_region(net, X, Y, progress=rec)
        assert [c[0] for c in rec.calls] == list(range(steps + 1)) and all(c[1] == steps for c in rec.calls)
        assert rec.calls[-1][2]["stage"] == "done" and res.rank == parameter_region(net, X, Y).rank


def test_full_rank_fraction_matches_single_point_rank():
    # one chunk replayed through the public per-network path gives the same count
    from relulab.landscape import parameter_space as ps
    task = dict(cell=0, d=2, n=6, m=3, size=40, bias=True, alpha=0.0, rtol=None, entropy=[0, 2, 6, 3, 0])
    _, k = ps._rank_task(task)
    rng = np.random.default_rng(np.random.SeedSequence(task["entropy"]))
    X = rng.standard_normal((40, 6, 2))
    W = rng.standard_normal((40, 3, 2)) * 1.0
    b = rng.standard_normal((40, 3)) * 1.0
    a = rng.choice(np.array([-1.0, 1.0]), size=(40, 3, 1))
    full = sum(jacobian_rank(ShallowNet(W[s], a[s], b[s], trainable="first"), X[s]) == 6 for s in range(40))
    assert k == full


def test_full_rank_fraction_paper_preset_replayed_by_hand():
    """The paper's samplers (X ~ U[0, 1], PyTorch's nn.Linear default for W and b, v ~ N(0, 1)) replayed
    with the same generator through the per-network path give the same count."""
    from relulab.landscape import parameter_space as ps

    d, n, m, B = 2, 7, 3, 40
    g = full_rank_fraction([d], [n], [m], samples=B, seed=3, workers=1, preset="paper")
    explicit = full_rank_fraction([d], [n], [m], samples=B, seed=3, workers=1, data="uniform", init="torch",
                                  output_weights="normal")
    assert g.samplers == {"data": "uniform", "init": "torch", "output_weights": "normal"} == explicit.samplers
    assert g.full_rank[0, 0, 0] == explicit.full_rank[0, 0, 0]
    rng = np.random.default_rng(np.random.SeedSequence([3, d, n, m, 0]))
    X = rng.random((B, n, d))
    bound = 1 / math.sqrt(d)
    W = rng.uniform(-bound, bound, (B, m, d))
    b = rng.uniform(-bound, bound, (B, m))
    a = rng.standard_normal((B, m, 1))
    full = sum(jacobian_rank(ShallowNet(W[s], a[s], b[s], trainable="first"), X[s]) == n for s in range(B))
    assert g.full_rank[0, 0, 0] == full
    # a different distribution is a different experiment: the default draws give another count here
    default = full_rank_fraction([d], [n], [m], samples=B, seed=3, workers=1)
    assert default.samplers == ps.PRESETS["default"]
    assert 0 < full < B and default.full_rank[0, 0, 0] != full
    # an explicit sampler overrides the preset's
    mixed = full_rank_fraction([d], [n], [m], samples=B, seed=3, workers=1, preset="paper", output_weights="sign")
    assert mixed.samplers["output_weights"] == "sign" and mixed.samplers["data"] == "uniform"


def _identical_points(rng, shape):
    """Every sample the same point: rank at most 1 per neuron pattern, never n >= 2 (a callable sampler)."""
    B, n, d = shape
    return np.repeat(rng.random((B, 1, d)), n, axis=1)


def test_full_rank_fraction_callable_data_and_validation():
    g = full_rank_fraction([2], [4], [6], samples=30, workers=2, data=_identical_points)
    assert g.full_rank[0, 0, 0] == 0 and g.samplers["data"] == "_identical_points"
    assert full_rank_fraction([2], [4], [6], samples=30, workers=1).full_rank[0, 0, 0] > 0
    for kw, what in ((dict(preset="iclr"), "preset"), (dict(data="cauchy"), "data"), (dict(init="xavier"), "init"),
                     (dict(output_weights="ones"), "output_weights")):
        with pytest.raises(InvalidInputError, match=what):
            full_rank_fraction([2], [4], [6], samples=4, workers=1, **kw)
    with pytest.raises(InvalidInputError, match="shape"):
        full_rank_fraction([2], [4], [6], samples=4, workers=1, data=lambda rng, shape: np.zeros(3))


def test_validation_and_exports():
    with pytest.raises(InvalidInputError):
        full_rank_fraction([0], [3], [2])
    with pytest.raises(InvalidInputError):
        full_rank_fraction([2], [3], [2], activation="tanh")
    with pytest.raises(InvalidInputError):
        full_rank_fraction([2], [3], [2], workers=0)
    with pytest.raises(InvalidInputError):
        parameterization_jacobian("net", np.zeros((2, 2)))
    assert L.full_rank_fraction is full_rank_fraction and L.ParameterRegion is not None


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 8), st.integers(1, 2), st.sampled_from(ACTS),
       st.booleans(), st.integers(0, 10_000), st.sampled_from([1e-4, 1.0, 1e4]))
def test_zero_loss_of_reachable_targets_any_scale(d, m, n, o, act, bias, seed, scale):
    net = _net(d, m, o, act[0], act[1], bias, seed % 2 == 0, "first", seed)
    X = scale * _X(n, d, seed)
    if (net.preactivations(X) == 0).any():
        return
    Y = net(X)  # zero loss at the point itself, inside its own region
    R = parameter_region(net, X, Y)
    assert R.nonempty and R.has_global_minimum
    assert R.zero_loss_dimension == net.n_parameters - R.rank
    wit = net.with_parameters(R.global_minimum)
    assert torch.equal(parameter_pattern(wit, X), R.pattern)
    torch.testing.assert_close(wit(X), Y, rtol=1e-6, atol=1e-6 * float(Y.abs().max()))


def test_neuron_cells_closed_form_matches_the_lp_arrangement():
    from relulab.landscape.parameter_space import _neuron_cells

    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 9):
        X = rng.standard_normal((n, 1))
        closed = {tuple(r) for r in _neuron_cells(X, True, 10_000).tolist()}
        lp = {tuple(r) for r in enumerate_parameter_regions(torch.as_tensor(X), 1).cells.tolist()}
        assert closed == lp and len(closed) == 2 * n


def test_count_measure_matches_exhaustive_regions():
    # the sampler draws each neuron's cell uniformly: its full-rank frequency must match the exact fraction
    # over every one of the cells^m regions of the same data set, ranks by numpy's matrix_rank
    from relulab.landscape import parameter_space as ps

    d, n, m, B = 1, 4, 3, 3000
    task = dict(cell=0, d=d, n=n, m=m, size=B, bias=True, alpha=0.0, rtol=None, entropy=[7, d, n, m, 0],
                measure="count", max_cells=1000)
    _, k = ps._rank_task(task)
    X = np.random.default_rng(np.random.SeedSequence(task["entropy"])).standard_normal((n, d))
    cells = ps._neuron_cells(X, True, 1000)
    Xt = np.concatenate([X, np.ones((n, 1))], 1)
    full = 0
    for combo in itertools.product(range(len(cells)), repeat=m):
        J = np.concatenate([(cells[c] > 0)[:, None] * Xt for c in combo], 1)  # a_j = 1: ranks do not change
        full += np.linalg.matrix_rank(J) == n
    p = full / len(cells) ** m
    assert 0.05 < p < 0.95  # a cell where the test can tell samplers apart
    assert abs(k / B - p) < 4 * np.sqrt(p * (1 - p) / B) + 1e-9


def test_count_measure_grid_and_budget():
    g = full_rank_fraction([1], [6], [4], samples=64, measure="count", workers=1)
    assert g.measure == "count" and 0 <= g.fraction[0, 0, 0] <= 1
    with pytest.raises(InvalidInputError, match="measure"):
        full_rank_fraction([1], [6], [4], samples=8, measure="uniform")
    with pytest.raises(InvalidInputError, match="max_cells"):
        full_rank_fraction([3], [40], [16], samples=8, measure="count", max_cells=50, workers=1)
