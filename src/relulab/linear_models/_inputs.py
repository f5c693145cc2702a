"""Argument checks shared by the linear-model engines (private to this package)."""

from __future__ import annotations

import numpy as np
import torch

from relulab.core.errors import InvalidInputError


def matrix(value, name: str, *, rows: int | None = None, cols: int | None = None, allow_empty: bool = False) -> np.ndarray:
    """``value`` as a finite float64 2-D array, its shape checked; errors name ``name``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{name} must be a real matrix: {e}") from None
    if a.ndim == 1 and rows is None and cols is not None and cols == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise InvalidInputError(f"{name} must be a 2-D matrix, got shape {a.shape}")
    if not allow_empty and a.size == 0:
        raise InvalidInputError(f"{name} must not be empty, got shape {a.shape}")
    if rows is not None and a.shape[0] != rows:
        raise InvalidInputError(f"{name} must have {rows} rows, got shape {a.shape}")
    if cols is not None and a.shape[1] != cols:
        raise InvalidInputError(f"{name} must have {cols} columns, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InvalidInputError(f"{name} must be finite (it holds NaN or inf)")
    return a


def covariance(value, name: str, *, definite: bool = False, tol: float = 1e-10) -> np.ndarray:
    """A symmetric positive semi-definite (``definite=True``: positive definite) matrix, symmetrized."""
    a = matrix(value, name)
    n = a.shape[0]
    if a.shape != (n, n):
        raise InvalidInputError(f"{name} must be square, got shape {a.shape}")
    scale = max(float(np.abs(a).max()), 1e-300)
    if float(np.abs(a - a.T).max()) > 1e-8 * scale:
        raise InvalidInputError(f"{name} must be symmetric")
    a = 0.5 * (a + a.T)
    lam = np.linalg.eigvalsh(a)
    if lam[0] < -tol * scale:
        raise InvalidInputError(f"{name} must be positive semi-definite; its smallest eigenvalue is {lam[0]:.3g}")
    if definite and lam[0] <= tol * scale:
        raise InvalidInputError(f"{name} must be positive definite (full rank); its smallest eigenvalue is "
                                f"{lam[0]:.3g}")
    return a


def probability(value, name: str, *, open_low: bool = True) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number in (0, 1], got {value!r}") from None
    if not (0.0 < p <= 1.0):
        raise InvalidInputError(f"{name} must be in (0, 1], got {value!r}")
    return p


def positive_int(value, name: str, hi: int = 10**6) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (1 <= int(value) <= hi):
        raise InvalidInputError(f"{name} must be an integer in [1, {hi}], got {value!r}")
    return int(value)


def positive_float(value, name: str, *, allow_zero: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}") from None
    if not np.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise InvalidInputError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return x


def psd_sqrt(a: np.ndarray) -> np.ndarray:
    """The PSD square root of a symmetric PSD matrix (negative rounding clipped)."""
    lam, u = np.linalg.eigh(a)
    return (u * np.sqrt(np.clip(lam, 0.0, None))) @ u.T
