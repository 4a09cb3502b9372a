"""Toy data sets, generated in the package (nothing is downloaded).

Each generator returns a float64 NumPy array of shape (n, d), seeded by ``seed``.
The 2-D sets follow the conventions of the works the seeds reproduce:
``gaussians_grid`` (25 Gaussians on a 5 x 5 grid, spacing 2, std 0.05, divided by
2.828) and ``swiss_roll`` (noise 0.25, divided by 7.5) as in the DOT code
(seed 003); ``gaussians_ring`` the 8-Gaussian ring of the GAN literature.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "swiss_roll",
    "gaussians_grid",
    "gaussians_ring",
    "two_peaks",
    "gaussian_mixture_1d",
]


def _check_n(n: int) -> int:
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)


def swiss_roll(n: int, *, noise: float = 0.25, scale: float = 7.5, seed: int = 0) -> np.ndarray:
    """2-D Swiss roll: scikit-learn's ``make_swiss_roll`` in the x-z plane, divided by ``scale``."""
    from sklearn.datasets import make_swiss_roll

    x, _ = make_swiss_roll(_check_n(n), noise=noise, random_state=seed)
    return x[:, [0, 2]] / scale


def gaussians_grid(
    n: int,
    *,
    side: int = 5,
    spacing: float = 2.0,
    std: float = 0.05,
    scale: float = 2.828,
    seed: int = 0,
) -> np.ndarray:
    """``side**2`` Gaussians on a centred square grid (the DOT paper's 25 Gaussians)."""
    rng = np.random.default_rng(seed)
    ticks = (np.arange(side) - (side - 1) / 2) * spacing
    centres = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)
    k = rng.integers(0, len(centres), _check_n(n))
    return (centres[k] + std * rng.standard_normal((n, 2))) / scale


def gaussians_ring(
    n: int, *, modes: int = 8, radius: float = 2.0, std: float = 0.02, seed: int = 0
) -> np.ndarray:
    """``modes`` Gaussians evenly spaced on a circle of ``radius``."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(modes) / modes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    k = rng.integers(0, modes, _check_n(n))
    return centres[k] + std * rng.standard_normal((n, 2))


def two_peaks(
    n: int, *, separation: float = 2.0, std: float = 0.3, dim: int = 2, seed: int = 0
) -> np.ndarray:
    """Equal mixture of two isotropic Gaussians at ``+-separation/2`` along the first axis."""
    rng = np.random.default_rng(seed)
    n = _check_n(n)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    x = std * rng.standard_normal((n, dim))
    x[:, 0] += sign * separation / 2
    return x


def gaussian_mixture_1d(
    n: int,
    means: tuple[float, ...],
    stds: tuple[float, ...],
    weights: tuple[float, ...] | None = None,
    *,
    seed: int = 0,
) -> np.ndarray:
    """Samples (n, 1) of a 1-D Gaussian mixture."""
    rng = np.random.default_rng(seed)
    m, s = np.asarray(means, float), np.asarray(stds, float)
    if m.shape != s.shape or m.ndim != 1 or m.size == 0:
        raise ValueError("means and stds must be non-empty sequences of equal length")
    if np.any(s <= 0):
        raise ValueError("stds must be positive")
    w = np.full(m.size, 1.0 / m.size) if weights is None else np.asarray(weights, float)
    if w.shape != m.shape or np.any(w < 0) or abs(w.sum() - 1) > 1e-9:
        raise ValueError("weights must be non-negative, one per component, and sum to 1")
    k = rng.choice(m.size, size=_check_n(n), p=w)
    return (m[k] + s[k] * rng.standard_normal(n))[:, None]
