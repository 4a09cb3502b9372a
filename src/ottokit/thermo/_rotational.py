"""The rotational forward process of Fig. 7 of Ikeda, Uda, Okanohara & Ito (arXiv:2407.04495).

A linear force with a non-conservative (rotational) part on R^2,

    dx = A_t x dt + sqrt(2 T_t) dW,   A_t = [[H_t, -G_t], [G_t, H_t]] = H_t I + G_t J,
    H_t = -h (1 - t/tau) - T_t,   G_t = g (1 - t/tau),   T_t = T_fin (t/tau)^2.

The A_t commute (J^2 = -I), so from x_0 = y the state is Gaussian in closed form:
mean M_t y with M_t = e^{Lambda_t} R(theta_t), Lambda_t = int_0^t H, theta_t = int_0^t G,
and isotropic covariance c_t I with c_t = 2 int_0^t e^{2 (Lambda_t - Lambda_s)} T_s ds
(dc/dt = 2 H c + 2 T, the seed's noise sqrt(2T)). :meth:`RotationalDiffusion.protocol`
is the same process as a :class:`~ottokit.thermo.Protocol`, so the OU closed forms
(:func:`~ottokit.thermo.solve_moments`, :func:`~ottokit.thermo.thermodynamics`) and the
particle estimator apply unchanged; their ``housekeeping_power`` E|nu - grad phi|^2 is the
part of T Sdot that the rotation costs beyond v2^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ottokit.thermo._linalg import as_mean
from ottokit.thermo._protocols import Protocol

__all__ = ["RotationalDiffusion"]

_J = np.array([[0.0, -1.0], [1.0, 0.0]])
_GL_NODES = 48  # Gauss-Legendre nodes for c_t; the integrand is smooth (exp of a cubic)


def _finite(value: float, name: str, *, positive: bool = False) -> float:
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0):
        kind = "positive and finite" if positive else "finite"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return v


@dataclass(frozen=True)
class RotationalDiffusion:
    """Fig. 7's forward process with strength ``h``, rotation ``g`` and final temperature
    ``T_fin`` on [0, tau] (the paper's h = 1.1, T_fin = 0.5, g in {0, 3, 5}).

    Time arguments are floats or arrays in [0, tau]; results broadcast over them.
    """

    h: float = 1.1
    g: float = 0.0
    T_fin: float = 0.5
    tau: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "h", _finite(self.h, "h"))
        object.__setattr__(self, "g", _finite(self.g, "g"))
        object.__setattr__(self, "T_fin", _finite(self.T_fin, "T_fin", positive=True))
        object.__setattr__(self, "tau", _finite(self.tau, "tau", positive=True))

    def _times(self, t: Any) -> np.ndarray:
        tt = np.asarray(t, dtype=np.float64)
        slack = 1e-12 * self.tau
        if not np.all(np.isfinite(tt)) or np.any(tt < -slack) or np.any(tt > self.tau + slack):
            raise ValueError(f"t must lie in [0, tau] = [0, {self.tau:g}], got {t!r}")
        return np.clip(tt, 0.0, self.tau)

    def temperature(self, t: Any) -> np.ndarray:
        """T_t = T_fin (t/tau)^2."""
        s = self._times(t) / self.tau
        return self.T_fin * s * s

    def H(self, t: Any) -> np.ndarray:
        """H_t = -h (1 - t/tau) - T_t, the isotropic (conservative) rate."""
        return -self.h * (1.0 - self._times(t) / self.tau) - self.temperature(t)

    def G(self, t: Any) -> np.ndarray:
        """G_t = g (1 - t/tau), the rotation rate."""
        return self.g * (1.0 - self._times(t) / self.tau)

    def A(self, t: float) -> np.ndarray:
        """A_t = H_t I + G_t J, shape (2, 2)."""
        return float(self.H(t)) * np.eye(2) + float(self.G(t)) * _J

    def log_scale(self, t: Any) -> np.ndarray:
        """Lambda_t = int_0^t H = -h (t - t^2/2 tau) - T_fin t^3 / (3 tau^2)."""
        tt = self._times(t)
        return -self.h * (tt - tt * tt / (2 * self.tau)) - self.T_fin * tt**3 / (3 * self.tau**2)

    def angle(self, t: Any) -> np.ndarray:
        """theta_t = int_0^t G = g (t - t^2 / 2 tau)."""
        tt = self._times(t)
        return self.g * (tt - tt * tt / (2 * self.tau))

    def propagator(self, t: Any) -> np.ndarray:
        """M_t = e^{Lambda_t} R(theta_t), shape t.shape + (2, 2): the mean of x_t is M_t y."""
        lam, theta = self.log_scale(t), self.angle(t)
        c, s = np.cos(theta), np.sin(theta)
        rot = np.stack([np.stack([c, -s], axis=-1), np.stack([s, c], axis=-1)], axis=-2)
        return np.exp(lam)[..., None, None] * rot

    def variance(self, t: Any) -> np.ndarray:
        """c_t = 2 int_0^t e^{2 (Lambda_t - Lambda_s)} T_s ds (Gauss-Legendre), t.shape."""
        tt = self._times(t)
        x, w = np.polynomial.legendre.leggauss(_GL_NODES)
        s = 0.5 * tt[..., None] * (x + 1.0)
        integrand = np.exp(2 * (self.log_scale(tt)[..., None] - self.log_scale(s)))
        integrand = integrand * self.temperature(s)
        return tt * (integrand @ w)

    def moments(self, m0: Any, C0: Any, t: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean M_t m0 and covariance M_t C0 M_t^T + c_t I of x_t from x_0 ~ N(m0, C0).

        ``C0`` may be singular (0 for a point start y = m0: the conditional moments).
        """
        m0 = as_mean(m0, "m0", 2)
        C0 = np.asarray(C0, dtype=np.float64)
        if C0.shape != (2, 2) or not np.all(np.isfinite(C0)):
            raise ValueError(f"C0 must be a finite (2, 2) matrix, got shape {C0.shape}")
        if not np.allclose(C0, C0.T) or np.linalg.eigvalsh(0.5 * (C0 + C0.T))[0] < -1e-12:
            raise ValueError("C0 must be symmetric positive semi-definite")
        m = self.propagator(t)
        mean = m @ m0
        cov = m @ C0 @ np.swapaxes(m, -1, -2) + self.variance(t)[..., None, None] * np.eye(2)
        return mean, cov

    def protocol(self, m0: Any = None, C0: Any = None) -> Protocol:
        """The process as a :class:`Protocol`: F_t(x) = A_t x, temperature T_t (0 at t = 0)."""
        return Protocol(
            A=self.A,
            b=np.zeros(2),
            T=lambda t: float(self.temperature(t)),
            tau=self.tau,
            name=f"rotational diffusion (g = {self.g:g})",
            m0=m0,
            C0=C0,
        )
