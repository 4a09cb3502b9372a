"""The protocols of thermo-limits: six 2-D Ornstein-Uhlenbeck protocols and three 1-D
Gaussian paths of diffusion schedules, all with linear forces (so every state is Gaussian)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ottokit.experiments.thermo_limits.config import ThermoLimitsConfig
from ottokit.thermo import (
    Protocol,
    Quadratic,
    gaussian_path_protocol,
    geodesic_protocol,
    quench,
    rotational,
    stiffness_ramp,
)

__all__ = [
    "LABELS",
    "OBSERVABLES_1D",
    "OBSERVABLES_2D",
    "moving_trap",
    "protocols_2d",
    "schedule_protocols",
]

# end points of the geodesic example (2-D)
GEODESIC_M0, GEODESIC_C0 = np.zeros(2), np.diag([1.0, 0.25])
GEODESIC_M1, GEODESIC_C1 = np.array([1.0, 0.5]), np.array([[0.5, 0.2], [0.2, 1.0]])
LABELS = {
    "geodesic": "W2 geodesic",
    "ramp": "stiffness ramp",
    "quench": "sudden quench",
    "rotational": "rotational force",
    "rotational-stationary": "rotational, stationary start",
    "user": "user: moving trap, varying T",
}

# the observables r of the TUR
OBSERVABLES_2D = {
    "|x|^2/2": Quadratic(np.eye(2), np.zeros(2)),
    "x_1": Quadratic(np.zeros((2, 2)), np.array([1.0, 0.0])),
}
OBSERVABLES_1D = {
    "x^2/2": Quadratic(np.eye(1), np.zeros(1)),
    "x": Quadratic(np.zeros((1, 1)), [1.0]),
}


def moving_trap(k: float, T: float, tau: float, shift: Any = (1.0, 0.0)) -> Protocol:
    """A user protocol: U_t = k |x - (t/tau) shift|^2 / 2 at T_t = T (1 + sin(pi t/tau) / 2).

    Starts in equilibrium N(0, T/k I). Built from plain callables, as a user would.
    """
    shift = np.asarray(shift, dtype=float)
    d = shift.shape[0]
    return Protocol(
        A=lambda t: -k * np.eye(d),
        b=lambda t: k * (t / tau) * shift,
        T=lambda t: T * (1.0 + 0.5 * np.sin(np.pi * t / tau)),
        tau=tau,
        name=LABELS["user"],
        m0=np.zeros(d),
        C0=(T / k) * np.eye(d),
    )


def protocols_2d(config: ThermoLimitsConfig, tau: float) -> dict[str, Protocol]:
    """The six 2-D protocols of the experiment, each of duration ``tau``."""
    T, k0, k1 = config.temperature, config.k0, config.k1
    return {
        "geodesic": geodesic_protocol(GEODESIC_M0, GEODESIC_C0, GEODESIC_M1, GEODESIC_C1, tau, T),
        "ramp": stiffness_ramp(k0, k1, tau, T, dim=2),
        "quench": quench(k0, k1, tau, T, dim=2),
        "rotational": rotational(k0, config.omega, tau, T),
        "rotational-stationary": rotational(
            k0, config.omega, tau, T, m0=np.zeros(2), C0=(T / k0) * np.eye(2)
        ),
        "user": moving_trap(k0, T, tau),
    }


def schedule_protocols(config: ThermoLimitsConfig) -> dict[str, Protocol]:
    """1-D Gaussian paths x_t = m_t y + sigma_t eps, y ~ N(0, s0^2), driven by potential forces.

    P_t = N(0, m_t^2 s0^2 + sigma_t^2): data at t = 0, noise N(0, 1) at t = tau
    (the seed's convention). Conditional OT: m = 1 - t/tau, sigma = t/tau; the
    seed's cosine: m = cos(pi t / 2 tau), sigma = sin(pi t / 2 tau); and the W2
    geodesic N(0, s0^2) -> N(0, 1).
    """
    tau, T, s0 = config.tau, config.temperature, config.data_std
    w = np.pi / (2.0 * tau)
    schedules = {
        "cond-OT": (
            lambda t: 1.0 - t / tau,
            lambda t: -1.0 / tau,
            lambda t: t / tau,
            lambda t: 1.0 / tau,
        ),
        "cosine": (
            lambda t: np.cos(w * t),
            lambda t: -w * np.sin(w * t),
            lambda t: np.sin(w * t),
            lambda t: w * np.cos(w * t),
        ),
    }
    out = {}
    for name, (m, dm, sg, dsg) in schedules.items():
        out[name] = gaussian_path_protocol(
            mean=lambda t: np.zeros(1),
            cov=lambda t, m=m, sg=sg: np.array([[m(t) ** 2 * s0**2 + sg(t) ** 2]]),
            d_mean=lambda t: np.zeros(1),
            d_cov=lambda t, m=m, dm=dm, sg=sg, dsg=dsg: np.array(
                [[2.0 * m(t) * dm(t) * s0**2 + 2.0 * sg(t) * dsg(t)]]
            ),
            tau=tau,
            T=T,
            name=f"{name} schedule",
        )
    out["OT geodesic"] = geodesic_protocol([0.0], [[s0**2]], [0.0], [[1.0]], tau, T)
    return out

