"""Targets q and initial densities rho0 of the grid studies (smooth, bounded below)."""

from __future__ import annotations

import numpy as np

__all__ = ["q_1d", "q_2d", "q_wide", "rho0_1d", "rho0_2d", "rho0_wide"]


def q_1d(x: np.ndarray) -> np.ndarray:
    """Target on [0, 1]: a Gaussian bump on a constant (smooth, bounded below)."""
    return 1.0 + 3.0 * np.exp(-((x - 0.3) ** 2) / (2 * 0.08**2))


def rho0_1d(x: np.ndarray) -> np.ndarray:
    """rho0 / q = 1 + cos(pi x) / 2: smooth, no flux through the walls at t = 0."""
    return q_1d(x) * (1.0 + 0.5 * np.cos(np.pi * x))


def q_wide(x: np.ndarray) -> np.ndarray:
    """A wider bump for the JKO study: the Lagrangian and grid discretisations then agree to
    well below the time-stepping error, so the order in tau is visible."""
    return 1.0 + 2.0 * np.exp(-((x - 0.35) ** 2) / (2 * 0.15**2))


def rho0_wide(x: np.ndarray) -> np.ndarray:
    """rho0 / q = 1 + 0.6 cos(pi x) for the JKO study."""
    return q_wide(x) * (1.0 + 0.6 * np.cos(np.pi * x))


def q_2d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Target on [0, 1]^2: a Gaussian bump on a constant."""
    return 1.0 + 2.0 * np.exp(-((x - 0.4) ** 2 + (y - 0.6) ** 2) / (2 * 0.2**2))


def rho0_2d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """rho0 / q = 1 + cos(pi x) cos(pi y) / 2: no flux through the walls at t = 0."""
    return q_2d(x, y) * (1.0 + 0.5 * np.cos(np.pi * x) * np.cos(np.pi * y))
