"""Activation patterns of data: exact enumeration against the LP-based arrangement enumeration of
relulab.landscape (an independent code path), Cover's count, and random sampling."""

import numpy as np
import pytest

from relulab.convex import arrangement_patterns, pattern_bound, sample_patterns
from relulab.core.errors import InvalidInputError, ResourceLimitError
from relulab.landscape import cover_count, enumerate_parameter_regions


def _lp_cells(A):
    cells = enumerate_parameter_regions(A, 1, bias=False).cells.numpy()
    return cells[np.lexsort(cells.T[::-1])]


@pytest.mark.parametrize("n,q,seed", [(7, 2, 0), (9, 3, 1), (8, 4, 2), (5, 5, 3), (6, 1, 4)])
def test_generic_data_matches_lp_enumeration_and_cover(n, q, seed):
    A = np.random.default_rng(seed).normal(size=(n, q))
    P = arrangement_patterns(A)
    assert np.array_equal(P, _lp_cells(A))
    assert len(P) == cover_count(n, q) == pattern_bound(n, q)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_degenerate_data_matches_lp_enumeration(seed):
    # integer grid points with a bias column: collinear triples, duplicates; plus antipodal rows and a zero row
    rng = np.random.default_rng(seed)
    X = rng.integers(-2, 3, size=(9, 2)).astype(float)
    A = np.hstack([X, np.ones((9, 1))])
    A = np.vstack([A, -A[:2], A[:1], np.zeros((1, 3))])
    P = arrangement_patterns(A)
    assert np.array_equal(P, _lp_cells(A))
    assert len(P) < pattern_bound(len(A), 3)
    assert (P[:, -1] == 0).all() and set(np.unique(P[:, :-1])) <= {-1, 1}


def test_rank_deficient_data_reduce_to_row_space():
    rng = np.random.default_rng(5)
    A = rng.normal(size=(8, 2)) @ rng.normal(size=(2, 4))  # rank 2 in R^4
    P = arrangement_patterns(A)
    assert len(P) == cover_count(8, 2)
    assert np.array_equal(P, _lp_cells(A))


def test_sampled_patterns_are_a_subset_and_fill_in():
    A = np.random.default_rng(6).normal(size=(10, 3))
    exact = {tuple(r) for r in arrangement_patterns(A)}
    few = sample_patterns(A, 50, seed=0)
    many = sample_patterns(A, 200_000, seed=0)
    assert {tuple(r) for r in few} <= exact and {tuple(r) for r in many} <= exact
    assert len(few) < len(exact)
    assert len(many) >= 0.95 * len(exact)


def test_budget_and_bad_input():
    A = np.random.default_rng(7).normal(size=(40, 4))
    with pytest.raises(ResourceLimitError, match="max_patterns"):
        arrangement_patterns(A, max_patterns=100)
    with pytest.raises(InvalidInputError):
        arrangement_patterns(np.zeros((0, 3)))
    with pytest.raises(InvalidInputError):
        sample_patterns(A, 0)
