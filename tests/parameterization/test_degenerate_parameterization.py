"""ReLU parameter symmetries, canonical forms and distances against brute force, a generic optimizer, exact
line walks and sampling."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from clitools import run
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from relulab.core.errors import InvalidInputError
from relulab.parameterization import (balance, canonical, degeneracy_examples, difference_network, permute,
                                      realization_distance, relu_params, rescale, symmetry_distance)


def _random(seed, widths):
    rng = np.random.default_rng(seed)
    return relu_params([(rng.standard_normal((widths[i + 1], widths[i])), rng.standard_normal(widths[i + 1]))
                        for i in range(len(widths) - 1)])


def _group_element(seed, p):
    rng = np.random.default_rng(seed + 1)
    hs = [W.shape[0] for W in p.weights[:-1]]
    return ([rng.uniform(0.1, 10, h) for h in hs], [rng.permutation(h) for h in hs])


@settings(max_examples=6)
@given(seed=st.integers(0, 10**6), widths=st.sampled_from([(2, 3, 1), (3, 4, 2), (2, 3, 3, 1)]))
def test_symmetries_preserve_the_realization_and_the_canonical_form(seed, widths):
    p = _random(seed, widths)
    scales, perms = _group_element(seed, p)
    q = permute(rescale(p, scales), perms)
    x = np.random.default_rng(seed).standard_normal((50, widths[0]))
    np.testing.assert_allclose(p(x), q(x), atol=1e-10)
    cp, cq = canonical(p), canonical(q)
    np.testing.assert_allclose(cp.vector(), cq.vector(), atol=1e-9)
    np.testing.assert_allclose(cp.params(x), p(x), atol=1e-9)
    assert cp.balance_residual < 1e-9
    assert symmetry_distance(p, q).distance < 1e-8
    torch_net = p.to_torch()
    np.testing.assert_allclose(torch_net(torch.tensor(x)).detach().numpy(), p(x), atol=1e-12)
    np.testing.assert_allclose(relu_params(torch_net).vector(), p.vector())


def test_balanced_representative_minimizes_the_norm_over_the_orbit():
    p = _random(3, (3, 4, 3, 2))
    b, zeroed = balance(p)
    assert zeroed == [[], []]
    hs = [4, 3]

    def norm2(s):
        return float((rescale(p, [np.exp(s[:4]), np.exp(s[4:])]).vector() ** 2).sum())

    best = min(minimize(norm2, np.random.default_rng(k).standard_normal(sum(hs)), method="BFGS").fun for k in range(3))
    assert float((b.vector() ** 2).sum()) == pytest.approx(best, rel=1e-8)
    assert float((b.vector() ** 2).sum()) <= best + 1e-9


def test_shallow_distance_is_the_brute_force_minimum_over_permutations():
    p, q = _random(5, (2, 5, 2)), _random(6, (2, 5, 2))
    d = symmetry_distance(p, q)
    bp, _ = balance(p)
    bq, _ = balance(q)
    brute = min(np.linalg.norm(bp.vector() - permute(bq, [np.array(pi)]).vector())
                for pi in itertools.permutations(range(5)))
    assert d.exact and d.distance == pytest.approx(brute, rel=1e-12)
    # a pseudo-metric: symmetric and with the triangle inequality
    r = _random(7, (2, 5, 2))
    assert symmetry_distance(q, p).distance == pytest.approx(d.distance, rel=1e-9)
    assert d.distance <= symmetry_distance(p, r).distance + symmetry_distance(r, q).distance + 1e-12


def test_deep_distance_exhaustive_and_layerwise_bound():
    p, q = _random(8, (2, 4, 3, 1)), _random(9, (2, 4, 3, 1))
    exact = symmetry_distance(p, q)
    bound = symmetry_distance(p, q, max_permutations=1)
    assert exact.exact and not bound.exact
    assert bound.distance >= exact.distance - 1e-12


def _line_reference(p, q, lo, hi):
    """sup |f - g| and max |slope| on [lo, hi] in 1-D from the exact breakpoints of an on_line walk."""
    from relulab import PLNet
    from relulab.regions import on_line

    diff = difference_network(p, q)
    net = PLNet.from_torch(diff.to_torch(), (1,))
    br = on_line(net, torch.tensor([lo], dtype=torch.float64), torch.tensor([hi], dtype=torch.float64)).breakpoints
    ts = np.concatenate([[0.0], np.asarray(br, dtype=np.float64).reshape(-1), [1.0]])
    xs = lo + ts * (hi - lo)
    vals = diff(xs[:, None])[:, 0]
    slopes = np.diff(vals) / np.diff(xs)
    return float(np.abs(vals).max()), float(np.abs(slopes).max())


@pytest.mark.parametrize("seed", [0, 1])
def test_realization_distance_in_1d_against_exact_breakpoints(seed):
    p, q = _random(seed, (1, 4, 3, 1)), _random(seed + 10, (1, 3, 2, 1))
    rd = realization_distance(p, q, (-2.0, 1.5))
    sup, slope = _line_reference(p, q, -2.0, 1.5)
    assert rd.complete and rd.sup == pytest.approx(sup, rel=1e-8, abs=1e-10)
    assert rd.derivative == pytest.approx(slope, rel=1e-8)
    assert rd.w1inf == pytest.approx(max(sup, slope), rel=1e-8)


def test_realization_distance_in_2d_against_sampling():
    p, q = _random(2, (2, 4, 1)), _random(3, (2, 3, 1))
    rd = realization_distance(p, q, (-1.0, 1.0))
    x = np.random.default_rng(0).uniform(-1, 1, (200000, 2))
    sampled = float(np.abs(p(x) - q(x)).max())
    assert sampled <= rd.sup + 1e-12 and sampled >= 0.97 * rd.sup
    assert abs(float(p(rd.argmax[None])[0, 0] - q(rd.argmax[None])[0, 0])) == pytest.approx(rd.sup, rel=1e-7)


def test_degeneracy_examples_show_the_papers_phenomena():
    ex = degeneracy_examples(ns=(1, 16, 256))
    rows = {(r["example"], r["n"]): r for r in ex.rows}
    for n in (1, 16, 256):
        assert rows[("unbalanced", n)]["symmetry_distance"] < 1e-8
        for name in ("unbalanced", "redundant", "dead"):
            assert rows[(name, n)]["sup_distance"] < 1e-12 and rows[(name, n)]["w1inf_distance"] < 1e-12
        assert rows[("w1inf", n)]["sup_distance"] == pytest.approx(min(1.0 / n, 0.5))
        assert rows[("w1inf", n)]["w1inf_distance"] == pytest.approx(1.0)
    for name in ("redundant", "dead"):  # parameters diverge even modulo the symmetries
        assert rows[(name, 256)]["symmetry_distance"] > 10 * rows[(name, 1)]["symmetry_distance"]
    assert rows[("unbalanced", 256)]["parameter_distance"] > 100
    assert rows[("w1inf", 256)]["symmetry_distance"] < 0.01


def test_bad_input():
    p = _random(0, (2, 3, 1))
    with pytest.raises(InvalidInputError, match="widths"):
        symmetry_distance(p, _random(0, (2, 4, 1)))
    with pytest.raises(InvalidInputError, match="scales"):
        rescale(p, [np.array([1.0, -1.0, 1.0])])
    with pytest.raises(InvalidInputError, match="perms"):
        permute(p, [[0, 0, 1]])
    with pytest.raises(InvalidInputError, match="layer 1"):
        relu_params(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)))
    with pytest.raises(InvalidInputError, match="box"):
        realization_distance(p, p, (1.0, -1.0))
    with pytest.raises(InvalidInputError, match="depth"):
        realization_distance(p, _random(0, (2, 3, 3, 1)))


def test_cli_symmetry(capsys):
    code, out, err = run(["symmetry", "--example", "w1inf", "--ns", "2,8", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [r["sup_distance"] for r in rows] == pytest.approx([0.5, 0.125])
    code, out, err = run(["symmetry", "--random", "2,3,1", "--json"], capsys)
    assert code == 0 and json.loads(out)["symmetry_distance"]["distance"] < 0.05
    code, out, err = run(["symmetry", "--ns", "0"], capsys)
    assert code == 1 and "--ns" in err
