"""Particle estimator: Euler-Maruyama Langevin ensembles and their Sdot and v2 (seed 002).

The ensemble follows dx = F_t(x) dt + sqrt(2 T_t) dW with the Euler-Maruyama
step x <- x + F_t(x) dt + sqrt(2 T_t dt) xi (NumPy, seeded). At each output time
the estimator uses only the particles and the known force:

* the score grad log P_t is replaced by that of the Gaussian fitted to the
  particles (sample mean m^ and covariance C^): -C^^-1 (x - m^) (a moment-matching
  score estimator, exact in the limit for Ornstein-Uhlenbeck processes, whose
  states are Gaussian);
* nu^_i = F_t(x_i) + T_t C^^-1 (x_i - m^) at each particle, and
  Sdot^ = (1/N) sum_i |nu^_i|^2 / T_t;
* v2 is the Bures speed of the fitted Gaussian moved by nu^: dm^ = mean_i nu^_i,
  dC^ = mean_i [nu^_i (x_i - m^)^T + (x_i - m^) nu^_i^T] (the continuity equation
  for the second moments), S^ from S^ C^ + C^ S^ = dC^, v2^2 = |dm^|^2 + tr(S^ C^ S^).

The statistical error falls like N^-1/2; the time step adds a bias O(dt).
Before the run its estimated memory, 8 (6 N d + (n_steps + 1)(d^2 + d + 1)) bytes
(six ensemble-sized arrays and the protocol A, b, T tabulated at every step), is
checked against the available memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ottokit._checks import check_instance, check_int
from ottokit._memory import check_memory
from ottokit.thermo._linalg import as_covariance, as_mean, lyapunov_velocity, per_temperature
from ottokit.thermo._protocols import Protocol

__all__ = ["ParticleEstimate", "simulate_particles"]


@dataclass(frozen=True)
class ParticleEstimate:
    """Ensemble estimates at the output times ``t`` (k,).

    ``mean`` (k, d) and ``cov`` (k, d, d) are the sample moments;
    ``entropy_production_rate`` and ``w2_speed`` (k,) the estimates of Sdot_t and
    v2(t) described in the module docstring.
    """

    t: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    entropy_production_rate: np.ndarray
    w2_speed: np.ndarray
    n_particles: int
    n_steps: int
    dt: float
    seed: int


def _estimate(x: np.ndarray, force: np.ndarray, temperature: float) -> tuple[Any, ...]:
    m = x.mean(axis=0)
    y = x - m
    c = y.T @ y / len(x)
    nu = force + temperature * np.linalg.solve(c, y.T).T
    sdot = float(per_temperature(np.mean(np.einsum("kj,kj->k", nu, nu)), temperature))
    dm = nu.mean(axis=0)
    cross = nu.T @ y / len(x)
    s = lyapunov_velocity(c[None], (cross + cross.T)[None])[0]
    v2 = float(np.sqrt(max(dm @ dm + np.trace(s @ c @ s), 0.0)))
    return m, c, sdot, v2


def simulate_particles(
    protocol: Protocol,
    n_particles: int,
    n_steps: int = 1000,
    *,
    m0: Any = None,
    C0: Any = None,
    n_out: int = 51,
    seed: int = 0,
) -> ParticleEstimate:
    """Simulate ``n_particles`` Langevin particles over [0, tau] and estimate Sdot and v2.

    Particles start from N(m0, C0) (the protocol's designed start by default) and
    take ``n_steps`` Euler-Maruyama steps; estimates are made at ``n_out`` equally
    spaced output times (rounded to the step grid).
    """
    check_instance(protocol, Protocol, "protocol")
    d = protocol.dim
    n = check_int(n_particles, "n_particles", ge=2 * d + 2, hint="a covariance estimate needs them")
    n_steps = check_int(n_steps, "n_steps", ge=1, example=1000)
    n_out = check_int(n_out, "n_out", ge=2, example=51)
    seed = check_int(seed, "seed", ge=0)
    check_memory(
        8 * (n * d * 6 + (n_steps + 1) * (d * d + d + 1)),
        what=f"simulate_particles with {n} particles over {n_steps} steps",
        knob="lower n_particles or n_steps",
    )
    m0 = protocol.m0 if m0 is None else m0
    C0 = protocol.C0 if C0 is None else C0
    if m0 is None or C0 is None:
        raise ValueError("give the initial state m0, C0 (the protocol does not carry one)")
    m0, C0 = as_mean(m0, "m0", d), as_covariance(C0, "C0", d)
    dt = protocol.tau / n_steps
    out_steps = np.unique(np.round(np.linspace(0, n_steps, n_out)).astype(int))
    out_set = set(out_steps.tolist())
    rng = np.random.default_rng(seed)
    x = m0 + rng.standard_normal((n, d)) @ np.linalg.cholesky(C0).T

    # the protocol at every step time, evaluated (and validated) once
    times = np.arange(n_steps + 1) * dt
    a_t, b_t = np.empty((len(times), d, d)), np.empty((len(times), d))
    for i, t in enumerate(times):  # A then b at the same t: path protocols cache A(t)
        a_t[i], b_t[i] = protocol.A_at(t, d), protocol.b_at(t, d)
    temp_t = np.array([protocol.T_at(t) for t in times])
    rows = []
    for step in range(n_steps + 1):
        force = x @ a_t[step].T + b_t[step]
        if step in out_set:
            rows.append(_estimate(x, force, temp_t[step]))
        if step == n_steps:
            break
        x = x + force * dt + np.sqrt(2.0 * temp_t[step] * dt) * rng.standard_normal((n, d))
    mean, cov, sdot, v2 = (np.array(col) for col in zip(*rows, strict=True))
    return ParticleEstimate(
        t=out_steps * dt,
        mean=mean,
        cov=cov,
        entropy_production_rate=sdot,
        w2_speed=v2,
        n_particles=n,
        n_steps=n_steps,
        dt=dt,
        seed=seed,
    )
