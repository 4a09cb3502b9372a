"""Fokker-Planck thermodynamics of linear (Ornstein-Uhlenbeck) dynamics (seed 002, first half).

dx = F_t(x) dt + sqrt(2 T_t) dW with F_t(x) = A_t x + b_t, in any dimension: the
Gaussian solution (:func:`solve_moments`), its entropy production, heat, work
and W2 speed (:func:`thermodynamics`), the speed limits (:func:`speed_limit`),
the TUR (:func:`tur`) and the W1 speed (:func:`w1_speed`); driving protocols
(:class:`Protocol`, :func:`geodesic_protocol`, :func:`stiffness_ramp`,
:func:`quench`, :func:`rotational`, :func:`gaussian_path_protocol`); the rotational
forward process of the paper's Fig. 7 in closed form (:class:`RotationalDiffusion`); and a
particle estimator (:func:`simulate_particles`).
"""

from ottokit.thermo._linalg import lyapunov_velocity
from ottokit.thermo._ou import (
    GaussianPath,
    OUSolution,
    Quadratic,
    SpeedLimit,
    Thermodynamics,
    TURBound,
    W1Speed,
    entropy_production_rate,
    gaussian_entropy,
    mean_local_velocity,
    otto_velocity,
    solve_moments,
    speed_limit,
    stationary_covariance,
    thermodynamics,
    tur,
    w1_speed,
    w2_endpoints,
    w2_speed,
)
from ottokit.thermo._particles import ParticleEstimate, simulate_particles
from ottokit.thermo._protocols import (
    BuresGeodesic,
    Protocol,
    gaussian_path_protocol,
    geodesic_protocol,
    quench,
    rotational,
    stiffness_ramp,
)
from ottokit.thermo._rotational import RotationalDiffusion

__all__ = [
    "Protocol",
    "BuresGeodesic",
    "geodesic_protocol",
    "gaussian_path_protocol",
    "stiffness_ramp",
    "quench",
    "rotational",
    "RotationalDiffusion",
    "solve_moments",
    "GaussianPath",
    "OUSolution",
    "stationary_covariance",
    "lyapunov_velocity",
    "otto_velocity",
    "mean_local_velocity",
    "w2_speed",
    "w2_endpoints",
    "w1_speed",
    "W1Speed",
    "gaussian_entropy",
    "entropy_production_rate",
    "thermodynamics",
    "Thermodynamics",
    "speed_limit",
    "SpeedLimit",
    "Quadratic",
    "tur",
    "TURBound",
    "simulate_particles",
    "ParticleEstimate",
]
