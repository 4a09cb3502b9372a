"""Quadrature over the noise level z for 1-D responses: the exact path of ``tradeoff``.

In 1-D every flow map is increasing, so both reverse processes are push-forwards
of their starts, N(0, 1) and the perturbed G, by one map Psi_t (the image at forward
time t of the noise level z at t = tau). With H = Phi - G and h = H' = phi - g,

    W1(Psi_t # N(0, 1), Psi_t # G) = int |H(z)| Psi_t'(z) dz = -int sign(H) h Psi_t dz,
    d/dt W1 = -int sign(H(z)) h(z) nu_t(Psi_t(z)) dz,

by parts and d_t Psi_t = nu_t(Psi_t) (the quantile identity W1 = int |F^-1 - G^-1| du
after the change of variable u = Phi(z)). Also E_{P_t} nu_t^2 = int nu_t(Psi_t(z))^2 phi dz.
The z-axis is cut at the roots of H and at G's breakpoints; every piece gets
Gauss-Legendre nodes, so each integrand is smooth where it is integrated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import optimize, special
from torch import nn

from ottokit.flowmatch.distributions import Distribution
from ottokit.flowmatch.otpath import MonotoneVelocity1D, _lse
from ottokit.flowmatch.sample import integrate
from ottokit.flowmatch.velocity import GaussianMixtureVelocity

__all__: list[str] = []

FlowMap = Callable[[float], np.ndarray]
_TAIL = 1e-18  # mass left out beyond the integration range
_NORMAL_HALF_WIDTH = 12.0  # phi(12) ~ 1e-32


@dataclass(frozen=True)
class QuantileNodes:
    """Nodes ``z`` and weights for integrals over the noise level (all shape (K,)).

    ``w1_kernel`` = -sign(H) h w, so that W1 = w1_kernel . Psi(z);
    ``normal_weights`` = phi(z) w, so that E f(Z) = normal_weights . f(z), Z ~ N(0, 1).
    """

    z: np.ndarray
    weights: np.ndarray
    w1_kernel: np.ndarray
    normal_weights: np.ndarray


def model_dtype(velocity: Any, default: torch.dtype) -> tuple[torch.dtype, torch.device | None]:
    """The dtype and device of a network's parameters (``default``, None for anything else)."""
    if isinstance(velocity, nn.Module):
        p = next(velocity.parameters(), None)
        if p is not None:
            return p.dtype, p.device
    return default, None


def _tail_point(cdf: Callable[[float], float], sign: float) -> float:
    """A point beyond which the distribution has less than ``_TAIL`` mass on side ``sign``."""
    x = sign
    for _ in range(80):
        mass = cdf(x) if sign < 0 else 1.0 - cdf(x)
        if mass <= _TAIL:
            return x
        x *= 2.0
    raise ValueError("the perturbed distribution's tails do not decay; D0 would be infinite")


def quantile_nodes(perturbed: Distribution, *, order: int = 12, max_width: float = 0.5):
    """Gauss-Legendre nodes on pieces of at most ``max_width`` between the cuts of H = Phi - G."""
    if perturbed.dim != 1:
        raise ValueError(f"the quadrature path is 1-D; the perturbed start has dim {perturbed.dim}")

    def cdf(x: float) -> float:
        return float(perturbed.cdf(np.asarray(x)))

    lo = min(-_NORMAL_HALF_WIDTH, _tail_point(cdf, -1.0))
    hi = max(_NORMAL_HALF_WIDTH, _tail_point(cdf, 1.0))

    def big_h(z: Any) -> Any:
        return special.ndtr(z) - perturbed.cdf(z)

    grid = np.linspace(lo, hi, 16_001)
    values = big_h(grid)
    sign = np.where(np.abs(values) > 1e-14, np.sign(values), 0.0)
    nonzero = np.flatnonzero(sign)
    cuts = {lo, hi, *(b for b in perturbed.breakpoints() if lo < b < hi)}
    for i, j in zip(nonzero[:-1], nonzero[1:], strict=True):
        if sign[i] != sign[j]:
            cuts.add(optimize.brentq(big_h, grid[i], grid[j], xtol=1e-15, rtol=1e-15))
    edges = np.array(sorted(cuts))
    gl_x, gl_w = np.polynomial.legendre.leggauss(order)
    z_parts, w_parts, s_parts = [], [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        side = float(np.sign(big_h(0.5 * (a + b))))
        pieces = np.linspace(a, b, max(1, math.ceil((b - a) / max_width)) + 1)
        for c, d in zip(pieces[:-1], pieces[1:], strict=True):
            z_parts.append(0.5 * (d - c) * gl_x + 0.5 * (c + d))
            w_parts.append(0.5 * (d - c) * gl_w)
            s_parts.append(np.full(order, side))
    z = np.concatenate(z_parts)
    w = np.concatenate(w_parts)
    phi = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    g = np.exp(perturbed.log_prob(torch.as_tensor(z[:, None])).numpy())
    return QuantileNodes(
        z=z, weights=w, w1_kernel=-np.concatenate(s_parts) * (phi - g) * w, normal_weights=phi * w
    )


def normal_nodes(*, order: int = 12, max_width: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights phi(z) w for E f(Z), Z ~ N(0, 1), on [-12, 12] (Gauss-Legendre)."""
    n_pieces = math.ceil(2 * _NORMAL_HALF_WIDTH / max_width)
    edges = np.linspace(-_NORMAL_HALF_WIDTH, _NORMAL_HALF_WIDTH, n_pieces + 1)
    gl_x, gl_w = np.polynomial.legendre.leggauss(order)
    half = 0.5 * np.diff(edges)
    z = (half[:, None] * gl_x + 0.5 * (edges[1:] + edges[:-1])[:, None]).ravel()
    w = (half[:, None] * gl_w).ravel()
    return z, w * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def closed_form_flow(velocity: Any, z: np.ndarray) -> FlowMap | None:
    """t -> Psi_t(z) for velocities whose marginals are known, else None.

    * :class:`MonotoneVelocity1D` (the OT path): Psi_t(z) = (1 - s) F^-1(Phi(z)) + s z, s = t/tau;
    * a 1-D :class:`GaussianMixtureVelocity` (any schedule): Psi_t(z) = F_t^-1(Phi(z)), the
      monotone rearrangement of N(0, 1) onto the mixture P_t.
    """
    if isinstance(velocity, MonotoneVelocity1D):
        quantile = velocity.inverse_map(z)
        tau = velocity.tau

        def ot_flow(t: float) -> np.ndarray:
            s = min(max(float(t) / tau, 0.0), 1.0)
            return (1.0 - s) * quantile + s * z

        return ot_flow
    if isinstance(velocity, GaussianMixtureVelocity) and velocity.dim == 1:
        mu = velocity.mixture.means[:, 0].numpy()
        var = velocity.mixture.covs[:, 0, 0].numpy()
        log_w = np.log(velocity.mixture.weights.numpy())

        def mixture_flow(t: float) -> np.ndarray:
            out = velocity.schedule(np.array(float(t)))
            m, sigma = float(out.m_t), float(out.sigma_t)
            return mixture_quantile(z, m * mu, np.sqrt(m * m * var + sigma * sigma), log_w)

        return mixture_flow
    return None


def mixture_quantile(z: np.ndarray, mu: np.ndarray, sd: np.ndarray, log_w: np.ndarray):
    """y with F(y) = Phi(z) for the 1-D mixture sum_k w_k N(mu_k, sd_k^2), elementwise in z.

    The root lies between min_k and max_k of mu_k + sd_k z (there every term of F is
    below, resp. above, Phi(z)); safeguarded Newton on Phi^-1(F(y)) = z, with F taken
    through log-CDFs on each side of the median so the tails keep full precision.
    """
    z = np.asarray(z, dtype=np.float64)
    ends = mu + sd * z[:, None]
    lo, hi = ends.min(axis=1), ends.max(axis=1)
    w = np.exp(log_w)
    mean = w @ mu
    y = np.clip(mean + z * np.sqrt(w @ (sd**2 + mu**2) - mean**2), lo, hi)
    lower = z <= 0
    for _ in range(100):
        u = (y[:, None] - mu) / sd
        log_pdf = _lse(log_w - np.log(sd) - 0.5 * u * u - 0.5 * math.log(2 * math.pi))
        log_cdf = _lse(log_w + special.log_ndtr(np.where(lower[:, None], u, -u)))
        ty = special.ndtri_exp(np.minimum(log_cdf, 0.0))
        ty = np.where(lower, ty, -ty)
        g = ty - z
        lo = np.where(g < 0, y, lo)
        hi = np.where(g > 0, y, hi)
        slope = np.exp(log_pdf + 0.5 * ty * ty + 0.5 * math.log(2 * math.pi))
        newton = y - g / slope
        done = np.abs(g) <= 1e-13 * (1.0 + np.abs(z))
        if done.all():
            return y
        inside = (newton > lo) & (newton < hi)
        y = np.where(done, y, np.where(inside, newton, 0.5 * (lo + hi)))
    raise RuntimeError("the mixture quantile did not converge")


def ode_states(
    velocity: Any,
    z: np.ndarray,
    tau: float,
    times: np.ndarray,
    *,
    method: str,
    n_steps: int,
    rtol: float,
    atol: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Psi_t(z) by integrating dx/dt = v(t, x) from t = tau down to ``times.min()``.

    Returns ``(t, Psi)``, Psi of shape (len(t), K). With the adaptive ``dopri5``, ``t``
    is ``times`` itself (any order, repeats allowed) and the states are aligned with it;
    ``rtol`` and ``atol`` are raised to 100 eps of the velocity's dtype (1.2e-5 for a
    float32 network). Fixed-step methods cannot stop between steps, so ``t`` is their
    whole step grid from tau down.
    """
    dtype, device = model_dtype(velocity, torch.float64)
    x0 = torch.as_tensor(z[:, None], dtype=dtype, device=device or "cpu")
    times = np.asarray(times, dtype=np.float64)
    t_end = float(times.min())
    span = tau - t_end
    if method == "dopri5":
        # a float32 network cannot be integrated below its own rounding level
        floor = 100.0 * torch.finfo(dtype).eps
        rtol, atol = max(rtol, floor), max(atol, floor)
        fractions = np.clip((tau - times) / span, 0.0, 1.0)
        unique = np.unique(fractions)
        traj = integrate(
            velocity, x0, tau, t_end, method=method, save_at=list(unique), rtol=rtol, atol=atol
        )
        states = traj.x[:, :, 0].detach().cpu().double().numpy()
        return times, states[np.searchsorted(unique, fractions)]
    traj = integrate(
        velocity,
        x0,
        tau,
        t_end,
        method=method,
        n_steps=n_steps,
        save_at=list(np.linspace(0.0, 1.0, n_steps + 1)),
    )
    t_out = np.linspace(tau, t_end, n_steps + 1)
    return t_out, traj.x[:, :, 0].detach().cpu().double().numpy()


def velocity_at(velocity: Any, t: float, x: np.ndarray) -> np.ndarray:
    """v(t, x) for 1-D points ``x`` (K,), as float64 NumPy (networks in their own dtype)."""
    dtype, device = model_dtype(velocity, torch.float64)
    xt = torch.as_tensor(x[:, None], dtype=dtype, device=device or "cpu")
    tt = torch.tensor(float(t), dtype=dtype, device=xt.device)
    with torch.no_grad():
        v = velocity(tt, xt)
    return torch.as_tensor(v).detach().cpu().double().numpy().reshape(-1)
