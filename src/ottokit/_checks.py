"""Validation at the public boundary: densities, tangent vectors, option strings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["as_density", "as_vector", "check_option"]

MASS_RTOL = 1e-8


def as_vector(x: Any, n: int, name: str) -> np.ndarray:
    """``x`` as a finite float64 vector of length ``n`` (ValueError naming ``name``)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{name} must be a vector of length {n}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        k = int(np.flatnonzero(~np.isfinite(a))[0])
        raise ValueError(f"{name} must be finite; {name}[{k}] = {a[k]}")
    return a


def as_density(
    rho: Any,
    n: int,
    *,
    name: str = "rho",
    positive: bool = True,
    normalize: bool = False,
    check_mass: bool = True,
) -> np.ndarray:
    """Validate a probability vector on ``n`` nodes.

    ``positive=True`` rejects zeros (functionals with a logarithm need rho > 0).
    A total mass off 1 by more than 1e-8 (relative) is an error unless
    ``normalize=True``, which rescales it.
    """
    a = as_vector(rho, n, name)
    if np.any(a < 0):
        k = int(np.argmin(a))
        raise ValueError(f"{name} must be non-negative; {name}[{k}] = {a[k]:.3g}")
    if positive and np.any(a == 0):
        k = int(np.flatnonzero(a == 0)[0])
        raise ValueError(
            f"{name} must be strictly positive (a logarithm is taken); {name}[{k}] = 0. "
            "Add a small floor, e.g. rho + 1e-12, and renormalise."
        )
    total = float(a.sum())
    if total <= 0:
        raise ValueError(f"{name} has zero total mass")
    if normalize:
        return a / total
    if check_mass and abs(total - 1.0) > MASS_RTOL:
        raise ValueError(
            f"{name} must sum to 1 (got {total:.12g}); pass normalize=True to rescale it"
        )
    return a


def check_option(value: str, allowed: Iterable[str], name: str) -> str:
    """``value`` if it is one of ``allowed``, else ValueError listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(repr, allowed))}")
    return value
