"""Validation and small linear algebra for Gaussian states (means, covariances)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ottokit._checks import as_array, as_covariance

__all__ = ["as_covariance", "as_mean", "lyapunov_velocity", "per_temperature", "sqrtm_spd"]


def as_mean(m: Any, name: str, dim: int | None = None) -> np.ndarray:
    """``m`` as a finite float64 vector (of length ``dim`` if given)."""
    v = np.atleast_1d(as_array(m, name, finite=False))
    if v.ndim != 1 or (dim is not None and v.shape[0] != dim):
        want = f"({dim},)" if dim is not None else "(d,)"
        raise ValueError(f"{name} must be a vector of shape {want}, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite (no NaN or inf), got {v.tolist()}")
    return v


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
    cov, d_cov = as_array(cov, "cov"), as_array(d_cov, "d_cov")
    if cov.ndim != 3 or cov.shape[1] != cov.shape[2] or d_cov.shape != cov.shape:
        raise ValueError(
            f"cov and d_cov must be (n, d, d) stacks of one shape, got {cov.shape}, {d_cov.shape}"
        )
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
