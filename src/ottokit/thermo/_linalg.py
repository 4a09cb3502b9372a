"""Validation and small linear algebra for Gaussian states (means, covariances)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_covariance", "as_mean", "lyapunov_velocity", "per_temperature", "sqrtm_spd"]


def as_mean(m: Any, name: str, dim: int | None = None) -> np.ndarray:
    """``m`` as a finite float64 vector (of length ``dim`` if given)."""
    v = np.atleast_1d(np.asarray(m, dtype=np.float64))
    if v.ndim != 1 or (dim is not None and v.shape[0] != dim):
        want = f"({dim},)" if dim is not None else "(d,)"
        raise ValueError(f"{name} must be a vector of shape {want}, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite (no NaN or inf), got {v.tolist()}")
    return v


def as_covariance(c: Any, name: str, dim: int | None = None) -> np.ndarray:
    """``c`` as a symmetric positive-definite float64 matrix (a scalar is a 1 x 1 variance)."""
    a = np.asarray(c, dtype=np.float64)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or (dim is not None and a.shape[0] != dim):
        want = f"({dim}, {dim})" if dim is not None else "square"
        raise ValueError(f"{name} must be a {want} covariance matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (no NaN or inf), got {a.tolist()}")
    scale = max(float(np.abs(a).max()), np.finfo(float).tiny)
    if np.abs(a - a.T).max() > 1e-10 * scale:
        raise ValueError(f"{name} must be symmetric, got {a.tolist()}")
    a = 0.5 * (a + a.T)
    smallest = float(np.linalg.eigvalsh(a)[0])
    if smallest <= 0:
        raise ValueError(
            f"{name} must be positive definite; its smallest eigenvalue is {smallest:.3g}"
        )
    return a


def sqrtm_spd(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def lyapunov_velocity(cov: np.ndarray, d_cov: np.ndarray) -> np.ndarray:
    """Symmetric S with S C + C S = dC, batched over a leading axis: (n, d, d) -> (n, d, d).

    The Gaussian tangent vector (dm, dC) at N(m, C) is moved by the gradient field
    S (x - m) + dm, the minimal-kinetic-energy (Otto) velocity; solved in the
    eigenbasis C = Q diag(l) Q^T as S = Q [(Q^T dC Q)_ij / (l_i + l_j)] Q^T.
    """
    lam, q = np.linalg.eigh(cov)
    rotated = np.einsum("nki,nkl,nlj->nij", q, d_cov, q)
    s = rotated / (lam[:, :, None] + lam[:, None, :])
    s = np.einsum("nik,nkl,njl->nij", q, s, q)
    return 0.5 * (s + np.swapaxes(s, 1, 2))


def per_temperature(x: np.ndarray, temperature: np.ndarray) -> np.ndarray:
    """x / T elementwise, where a vanishing temperature gives +inf (0 where x = 0 too).

    Entropy production E|nu|^2 / T diverges where the noise is switched off (T = 0)
    and the probability current is not zero; it is 0 where nothing moves.
    """
    x = np.asarray(x, dtype=np.float64)
    temperature = np.broadcast_to(np.asarray(temperature, dtype=np.float64), x.shape)
    out = np.where(x > 0, np.inf, 0.0)
    return np.divide(x, temperature, out=out, where=temperature > 0)
