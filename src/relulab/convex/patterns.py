r"""Activation patterns of data: the cells of the central arrangement ``{z : a_i . z = 0}``.

For data ``A`` (n, q) (the inputs, with a column of ones when the hidden layer has a bias), one ReLU
neuron with weights ``z`` is active on the samples ``{i : a_i . z >= 0}``; its diagonal pattern matrix
``D = diag(1[A z >= 0])`` is constant on each open cell of the central hyperplane arrangement
``{z : a_i . z = 0}`` in ``R^q`` and ``(A z)_+ = D A z`` on the cell's closure. The closures cover
``R^q``, so the list of open cells' sign vectors is every pattern the convex programs of Pilanci and
Ergen (ICML 2020) need. For ``n`` vectors in general position in ``R^q`` there are
``2 sum_{k<q} C(n-1, k)`` cells (Cover 1965; :func:`relulab.landscape.cover_count`).

**Exact enumeration through extreme rays.** Restricted to the row space of ``A`` (rank ``r``) every
cell is a pointed cone, so it has an extreme ray: a line where ``r - 1`` independent hyperplanes meet.
The cells whose closure contains a ray ``rho`` are those of the local arrangement of the hyperplanes
through ``rho``, seen in the quotient ``rho^perp``, with the other samples' signs fixed to
``sign(a_i . rho)``. For a ray on exactly ``r - 1`` hyperplanes (general position) that local
arrangement has all ``2^(r-1)`` sign vectors, filled in at once for every such ray; a ray on more
hyperplanes is solved by the same procedure one dimension down. Each ``(r-1)``-subset of the samples
gives one candidate ray (its null vector, batched SVD), so the work is ``C(n, r-1)`` small SVDs and
one sign matrix, with no linear program. Zero tests use a relative tolerance of ``1e-9``.

**Sampling.** When the count bound exceeds a budget, :func:`sample_patterns` draws Gaussian ``z`` and
keeps the distinct sign vectors: a subset of the cells, so a convex program over them is a
restriction (its optimum is an upper bound on the true one, never a certificate).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from relulab.core.errors import InvalidInputError, ResourceLimitError

__all__ = ["arrangement_patterns", "sample_patterns", "pattern_bound"]

_TOL = 1e-9


def pattern_bound(n: int, rank: int) -> int:
    """Cover's count ``2 sum_{k<rank} C(n-1, k)``: the cells of ``n`` hyperplanes in general position through
    the origin of ``R^rank``, an upper bound for any such central arrangement (1 cell when ``n = 0``)."""
    if n == 0 or rank == 0:
        return 1
    return 2 * sum(math.comb(n - 1, k) for k in range(rank))


def _row_space(A: np.ndarray) -> np.ndarray:
    """Coordinates of the rows of ``A`` in an orthonormal basis of its row space (n, r)."""
    if A.size == 0:
        return np.zeros((A.shape[0], 0))
    _, s, Vt = np.linalg.svd(A, full_matrices=False)
    r = int((s > _TOL * max(A.shape) * (s[0] if s.size else 0.0)).sum())
    return A @ Vt[:r].T


def _signs(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    out = np.sign(values).astype(np.int8)
    out[np.abs(values) <= _TOL * scale] = 0
    return out


def _cells(A: np.ndarray, max_cells: int) -> np.ndarray:
    """Sign vectors (C, n) in {-1, +1} of the open cells of the central arrangement of the (nonzero) rows
    of ``A``."""
    n = A.shape[0]
    B = _row_space(A)
    r = B.shape[1]
    if r == 0:
        return np.zeros((1, n), np.int8)
    norms = np.linalg.norm(B, axis=1)
    if r == 1:
        s = np.sign(B[:, 0]).astype(np.int8)
        return np.stack([s, -s])
    if pattern_bound(n, r) > max_cells:
        raise ResourceLimitError(f"the arrangement of {n} samples in rank {r} may have up to "
                                 f"{pattern_bound(n, r):,} cells, more than max_patterns = {max_cells:,}")
    subsets = np.array(list(itertools.combinations(range(n), r - 1)), dtype=np.int64).reshape(-1, r - 1)
    cells = []
    chunk = max(1, 2_000_000 // max(1, n * (r - 1)))
    fills = np.array(list(itertools.product((1, -1), repeat=r - 1)), np.int8)  # (2^(r-1), r-1)
    seen_rays = []
    for start in range(0, len(subsets), chunk):
        sub = subsets[start:start + chunk]
        M = B[sub]  # (K, r-1, r)
        _, s, Vt = np.linalg.svd(M, full_matrices=True)
        full = s[:, -1] > _TOL * np.maximum(s[:, 0], 1e-300) * r
        rho = Vt[full, -1, :]  # (K', r) unit null vectors
        rho = np.concatenate([rho, -rho])
        sig = _signs(rho @ B.T, norms[None, :])  # (2K', n)
        seen_rays.append(np.unique(sig, axis=0))
    rays = np.unique(np.concatenate(seen_rays), axis=0) if seen_rays else np.zeros((0, n), np.int8)
    zeros = (rays == 0).sum(axis=1)
    simple = rays[zeros == r - 1]
    if len(simple):
        zpos = np.nonzero(simple == 0)[1].reshape(len(simple), r - 1)
        filled = np.repeat(simple[:, None, :], len(fills), axis=1)  # (R, F, n)
        rows = np.arange(len(simple))[:, None, None]
        filled[rows, np.arange(len(fills))[None, :, None], zpos[:, None, :]] = fills[None, :, :]
        cells.append(filled.reshape(-1, n))
    for ray in rays[zeros > r - 1]:
        # several hyperplanes through this ray: the cells around it are those of their own arrangement
        # in the quotient by the ray, one dimension down
        Z = np.nonzero(ray == 0)[0]
        local = _cells(B[Z], max_cells)
        block = np.repeat(ray[None, :], len(local), axis=0)
        block[:, Z] = local
        cells.append(block)
    out = np.unique(np.concatenate(cells), axis=0) if cells else np.zeros((0, n), np.int8)
    return out


def arrangement_patterns(A, max_patterns: int = 20_000) -> np.ndarray:
    """All activation patterns of one ReLU neuron on data ``A`` (n, q): the sign vectors (C, n) of the open
    cells of the central arrangement ``{z : a_i . z = 0}``, entries +1 (active) or -1, and 0 for a zero row
    (a sample no weight vector activates strictly). Exact, by the extreme-ray enumeration of the module
    docstring; :class:`ResourceLimitError` when Cover's bound exceeds ``max_patterns``."""
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] < 1 or A.shape[1] < 1:
        raise InvalidInputError(f"A must be an (n, q) matrix with n, q >= 1, got shape {A.shape}")
    n = A.shape[0]
    nonzero = np.linalg.norm(A, axis=1) > 0
    out = np.zeros((0, n), np.int8)
    if nonzero.any():
        inner = _cells(A[nonzero], max_patterns)
        out = np.zeros((len(inner), n), np.int8)
        out[:, nonzero] = inner
    else:
        out = np.zeros((1, n), np.int8)
    return out[np.lexsort(out.T[::-1])]


def sample_patterns(A, samples: int, seed: int = 0) -> np.ndarray:
    """Distinct sign vectors of ``A z`` for ``samples`` standard Gaussian ``z`` (seeded): a subset of
    :func:`arrangement_patterns`, found in proportion to the cells' solid angles."""
    A = np.asarray(A, dtype=np.float64)
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise InvalidInputError(f"samples must be a positive integer, got {samples!r}")
    rng = np.random.default_rng(seed)
    n, q = A.shape
    norms = np.linalg.norm(A, axis=1)
    out = []
    chunk = max(1, 4_000_000 // max(1, n))
    for start in range(0, samples, chunk):
        Z = rng.standard_normal((q, min(chunk, samples - start)))
        V = (A @ Z).T
        s = np.where(V >= 0, 1, -1).astype(np.int8)
        # a sample that lands on a wall (probability zero) is dropped rather than given a side
        ok = (np.abs(V) > _TOL * norms[None, :] * np.linalg.norm(Z, axis=0)[:, None]) | (norms[None, :] == 0)
        s[:, norms == 0] = 0
        out.append(np.unique(s[ok.all(axis=1)], axis=0))
    pats = np.unique(np.concatenate(out), axis=0)
    return pats[np.lexsort(pats.T[::-1])]
