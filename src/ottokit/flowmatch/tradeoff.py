"""The speed-accuracy trade-off of diffusion models (seed 002; Ikeda, Uda, Okanohara & Ito,
arXiv:2407.04495).

Forward process: d_t P_t = -div(nu_t P_t), data P_0 at t = 0, noise P_tau at t = tau.
Reverse process P^dag_{t~} = P_{tau - t~}, and a perturbed reverse process
P~^dag driven by the *same* field, d_{t~} P~^dag = div(nu_{tau - t~} P~^dag), started
from a perturbed noise distribution P~^dag_0 instead of P^dag_0 = P_tau = N(0, I).
The seed's definitions, implemented here:

* D0 = int (P^dag_0 - P~^dag_0)^2 / P^dag_0 dx = chi^2(P~^dag_0 || N(0, I)) (time independent);
* Delta W1 = W1(p, q) - W1(P^dag_0, P~^dag_0), with p = P^dag_tau, q = P~^dag_tau the two
  generated distributions ("W1(final pair) - W1(initial pair)");
* the response (Delta W1)^2 / (tau D0);
* v_loss(t) = |d_t W1(P~^dag_{tau-t}, P^dag_{tau-t})| / sqrt(D0);
* T S_dot_t = int |nu_t|^2 P_t dx = E|nu_t|^2, and v2(t)^2, the squared W2 speed; for
  the exact marginal velocity of a Gaussian path nu_t is a gradient (Tweedie, see
  :mod:`ottokit.flowmatch.velocity`), so the two coincide: v2(t) = sqrt(E|nu_t|^2).

The seed's chain of inequalities, every link reported by :meth:`TradeoffResult.inequalities`:

    (Delta W1)^2/(tau D0) <= int v_loss^2 dt <= int T S_dot dt = int v2^2 dt,
    v_loss(t) <= v2(t),        int v2^2 dt >= W2(P_0, P_tau)^2 / tau.

W1 between the transported samples is exact: sorted samples in 1-D, POT's
network simplex otherwise. Use >= 2,000 samples: the sampling bias of W1 shrinks
like n^{-1/2} in 1-D but only like n^{-1/d} for d >= 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import integrate
from torch import Tensor, nn

from ottokit._checks import check_instance, check_int, check_real
from ottokit.flowmatch._common import (
    as_points,
    w1_distance,
    w2_squared,
)
from ottokit.flowmatch.distributions import (
    Distribution,
    chi2_divergence,
    chi2_quad,
    standard_normal,
)
from ottokit.flowmatch.sample import integrate as integrate_ode
from ottokit.flowmatch.schedules import Schedule
from ottokit.flowmatch.velocity import MarginalPath

__all__ = [
    "Inequality",
    "KineticResult",
    "ResponseResult",
    "TradeoffResult",
    "perturbation_d0",
    "kinetic_cost",
    "conditional_kinetic_energy",
    "response",
    "w2_lower_bound",
    "tradeoff",
]


@dataclass(frozen=True)
class Inequality:
    """One inequality of the seed with its two sides: ``lhs <= rhs``."""

    name: str
    lhs: float
    rhs: float
    holds: bool


@dataclass(frozen=True)
class KineticResult:
    """int_0^tau E_{P_t}|nu_t|^2 dt by Gauss-Legendre in t and Monte Carlo in x.

    Attributes:
        t, weights: the quadrature nodes and weights on [0, tau].
        energy: E|nu_t|^2 at the nodes (= T S_dot_t; = v2(t)^2 for an exact velocity).
        energy_stderr: Monte Carlo standard errors of ``energy``.
        integral, integral_stderr: the quadrature and its Monte Carlo standard error.
    """

    t: np.ndarray
    weights: np.ndarray
    energy: np.ndarray
    energy_stderr: np.ndarray
    integral: float
    integral_stderr: float

    @property
    def v2(self) -> np.ndarray:
        """sqrt(E|nu_t|^2) at the nodes: the W2 speed when nu is the exact (gradient) velocity."""
        return np.sqrt(self.energy)


@dataclass(frozen=True)
class ResponseResult:
    """Two sample clouds transported backwards (noise -> data) by one velocity field.

    Attributes:
        tau, d0: horizon and chi^2 perturbation D0.
        t: (S,) forward times of the saved states, from tau down to ``t_end``.
        w1: (S,) W1 between the two clouds at those times.
        w1_initial, w1_final, delta_w1: W1 at the start (t = tau) and the end, and
            their difference Delta W1 = w1_final - w1_initial.
        response: (Delta W1)^2 / (tau D0).
        t_mid, v_loss: interval midpoints and |Delta W1_i / Delta t_i| / sqrt(D0) there.
        v_loss_sq_integral: sum_i v_loss_i^2 |Delta t_i| (>= response by Cauchy-Schwarz
            when t_end = 0, exactly, also at the discrete level).
        final, final_perturbed: the transported clouds at ``t_end``.
    """

    tau: float
    d0: float
    t: np.ndarray
    w1: np.ndarray
    w1_initial: float
    w1_final: float
    delta_w1: float
    response: float
    t_mid: np.ndarray
    v_loss: np.ndarray
    v_loss_sq_integral: float
    final: Tensor
    final_perturbed: Tensor

    @property
    def n_samples(self) -> int:
        return int(self.final.shape[0])


@dataclass(frozen=True)
class TradeoffResult:
    """The response, its bounds and the speeds (see the module docstring for definitions).

    Attributes:
        tau, d0, w1_initial, w1_final, delta_w1, response: as in :class:`ResponseResult`.
        v_loss_sq_integral: int v_loss^2 dt on the response grid.
        kinetic, kinetic_stderr: int T S_dot dt = int E|nu_t|^2 dt of the exact path
            (= int v2^2 dt) and its Monte Carlo standard error.
        w2_bound: W2(P_0, P_tau)^2 / tau.
        t_mid, v_loss, v2_mid: v_loss and v2 at the response grid's midpoints.
        t_kinetic, v2: v2 at the Gauss-Legendre nodes.
    """

    tau: float
    d0: float
    w1_initial: float
    w1_final: float
    delta_w1: float
    response: float
    v_loss_sq_integral: float
    kinetic: float
    kinetic_stderr: float
    w2_bound: float
    t_mid: np.ndarray
    v_loss: np.ndarray
    v2_mid: np.ndarray
    t_kinetic: np.ndarray
    v2: np.ndarray

    def inequalities(self, rtol: float = 0.0) -> list[Inequality]:
        """The seed's inequalities, each ``lhs <= rhs * (1 + rtol)``."""

        def ineq(name: str, lhs: float, rhs: float) -> Inequality:
            return Inequality(name, float(lhs), float(rhs), bool(lhs <= rhs * (1.0 + rtol)))

        ratio = self.v_loss / self.v2_mid
        ratio = ratio[np.isfinite(ratio)]
        return [
            ineq("response <= int v_loss^2 dt", self.response, self.v_loss_sq_integral),
            ineq("int v_loss^2 dt <= int T S_dot dt", self.v_loss_sq_integral, self.kinetic),
            ineq("response <= int v2^2 dt", self.response, self.kinetic),
            ineq("W2(P0, Ptau)^2 / tau <= int v2^2 dt", self.w2_bound, self.kinetic),
            ineq(
                "max_t v_loss(t) / v2(t) <= 1", float(ratio.max()) if ratio.size else math.nan, 1.0
            ),
        ]

    @property
    def holds(self) -> bool:
        """Whether every inequality holds (no tolerance)."""
        return all(i.holds for i in self.inequalities())


def perturbation_d0(perturbed: Distribution) -> float:
    """D0 = chi^2(perturbed || N(0, I)): closed form when one exists, else quadrature (1-D)."""
    check_instance(perturbed, Distribution, "perturbed")
    try:
        return chi2_divergence(perturbed)
    except ValueError:
        if perturbed.dim != 1:
            raise
        return chi2_quad(perturbed, standard_normal(1))


def kinetic_cost(
    path: MarginalPath, *, n_t: int = 32, n_x: int = 4096, seed: int = 0
) -> KineticResult:
    """int_0^tau E_{P_t}|nu_t|^2 dt for a path that can sample its marginals.

    Gauss-Legendre nodes never touch t = 0 or tau, where some schedules have
    infinite derivatives. At each node, ``n_x`` fresh samples of P_t.
    """
    check_instance(path, MarginalPath, "path", hint="a velocity that can sample its marginals")
    n_t = check_int(n_t, "n_t", ge=1)
    n_x = check_int(n_x, "n_x", ge=1)
    seed = check_int(seed, "seed", ge=0)
    tau = check_real(path.tau, "tau", gt=0)
    nodes, w = np.polynomial.legendre.leggauss(n_t)
    t = 0.5 * tau * (nodes + 1.0)
    w = 0.5 * tau * w
    generator = torch.Generator().manual_seed(seed)
    energy, stderr = _energies(path, t, n_x, generator)
    return KineticResult(
        t=t,
        weights=w,
        energy=energy,
        energy_stderr=stderr,
        integral=float(w @ energy),
        integral_stderr=float(np.sqrt(np.sum((w * stderr) ** 2))),
    )


def _energies(
    path: MarginalPath, times: np.ndarray, n_x: int, generator: torch.Generator
) -> tuple[np.ndarray, np.ndarray]:
    energy = np.empty(len(times))
    stderr = np.empty(len(times))
    for j, tj in enumerate(times):
        x = path.sample_marginal(float(tj), n_x, generator)
        v = path(torch.tensor(float(tj), dtype=x.dtype), x)
        sq = (torch.as_tensor(v) ** 2).sum(dim=1).double()
        energy[j] = float(sq.mean())
        stderr[j] = float(sq.std() / math.sqrt(n_x)) if n_x > 1 else math.nan
    return energy, stderr


def conditional_kinetic_energy(schedule: Schedule, dim: int = 1) -> float:
    """n_d int_0^tau (d_sigma^2 + d_m^2) dt by quadrature: the high-dimensional limit of
    int v2^2 dt (Shaul et al. 2023), 2 n_d/tau for cond-OT and (pi^2/4) n_d/tau for the
    seed's cosine. Raises ValueError if the integral diverges (VP schedules: d_sigma^2 ~ 1/t).
    """
    dim = check_int(dim, "dim", ge=1)

    def f(t: float) -> float:
        out = schedule(np.array(t))
        return float(out.d_sigma_t) ** 2 + float(out.d_m_t) ** 2

    res = integrate.quad(f, 0.0, schedule.tau, epsabs=1e-12, epsrel=1e-10, limit=200, full_output=1)
    value = res[0]
    if len(res) > 3 or not math.isfinite(value):  # quad appends a message when it fails
        raise ValueError(f"int (d_sigma^2 + d_m^2) dt does not converge for {schedule!r}")
    return dim * value


def _model_dtype(velocity: Any, default: torch.dtype) -> tuple[torch.dtype, torch.device | None]:
    if isinstance(velocity, nn.Module):
        p = next(velocity.parameters(), None)
        if p is not None:
            return p.dtype, p.device
    return default, None


def response(
    velocity: Any,
    noise: Any,
    perturbed: Any,
    *,
    tau: float,
    d0: float,
    method: str = "rk4",
    n_steps: int = 200,
    n_save: int = 21,
    t_end: float = 0.0,
    rtol: float = 1e-7,
    atol: float = 1e-9,
) -> ResponseResult:
    """Transport ``noise`` and ``perturbed`` (equal-size clouds, (n, d)) from t = tau back to
    ``t_end`` with the same ``velocity`` and measure W1 between them at ``n_save`` times.

    ``d0`` is the chi^2 divergence of the perturbed start (:func:`perturbation_d0`).
    ``t_end > 0`` stops short of the data end (for velocities singular at t = 0, such
    as an empirical data set's); the response still divides by ``tau``.
    """
    tau = check_real(tau, "tau", gt=0)
    d0 = check_real(d0, "d0", gt=0)
    n_save = check_int(n_save, "n_save", ge=2, hint="at least the two ends")
    z = as_points(noise, "noise")
    zp = as_points(perturbed, "perturbed", dim=z.shape[1])
    if zp.shape[0] != z.shape[0]:
        raise ValueError(
            f"noise and perturbed need as many samples, got {z.shape[0]} and {zp.shape[0]}"
        )
    dtype, device = _model_dtype(velocity, z.dtype)
    both = torch.cat([z, zp.to(z.dtype)]).to(dtype=dtype, device=device or z.device)
    fractions = list(np.linspace(0.0, 1.0, n_save))
    traj = integrate_ode(
        velocity,
        both,
        tau,
        t_end,
        method=method,
        n_steps=n_steps,
        save_at=fractions,
        rtol=rtol,
        atol=atol,
    )
    n = z.shape[0]
    w1 = np.array([w1_distance(xs[:n], xs[n:]) for xs in traj.x])
    t = traj.t.detach().cpu().double().numpy()
    dt = np.abs(np.diff(t))
    v_loss = np.abs(np.diff(w1)) / dt / math.sqrt(d0)
    delta = float(w1[-1] - w1[0])
    return ResponseResult(
        tau=tau,
        d0=float(d0),
        t=t,
        w1=w1,
        w1_initial=float(w1[0]),
        w1_final=float(w1[-1]),
        delta_w1=delta,
        response=delta**2 / (tau * d0),
        t_mid=0.5 * (t[1:] + t[:-1]),
        v_loss=v_loss,
        v_loss_sq_integral=float(np.sum(v_loss**2 * dt)),
        final=traj.final[:n],
        final_perturbed=traj.final[n:],
    )


def w2_lower_bound(data: Any, noise: Any, tau: float) -> float:
    """W2(P_0, P_tau)^2 / tau from equal-size samples (exact OT; sorted in 1-D)."""
    tau = check_real(tau, "tau", gt=0)
    y = as_points(data, "data")
    z = as_points(noise, "noise", dim=y.shape[1]).to(y.dtype)
    if z.shape[0] != y.shape[0]:
        raise ValueError(f"data and noise need as many samples, got {y.shape[0]} and {z.shape[0]}")
    return w2_squared(y, z) / tau


def tradeoff(
    velocity: Any,
    path: MarginalPath,
    perturbed: Distribution,
    *,
    n_samples: int = 2000,
    method: str = "rk4",
    n_steps: int = 200,
    n_save: int = 21,
    n_t: int = 32,
    n_x: int = 4096,
    seed: int = 0,
    t_end: float = 0.0,
    w2_squared_exact: float | None = None,
) -> TradeoffResult:
    """Response and bounds for one schedule and one perturbation.

    Args:
        velocity: the field that transports the two clouds backwards (the exact
            velocity, or an estimated or learned one).
        path: the exact path (velocity with ``sample_marginal``) whose kinetic
            cost int E|nu_t|^2 dt = int v2^2 dt bounds the response.
        perturbed: the perturbed start P~^dag_0; the unperturbed start is N(0, I).
        n_samples: samples per cloud (>= 2,000 for the W1 estimates).
        w2_squared_exact: W2(P_0, P_tau)^2 when known in closed form; otherwise it
            is estimated from ``n_samples`` samples of P_0 and P_tau by exact OT.
    """
    tau = check_real(path.tau, "tau", gt=0)
    n_samples = check_int(n_samples, "n_samples", ge=2, example=2000)
    generator = torch.Generator().manual_seed(check_int(seed, "seed", ge=0))
    d0 = perturbation_d0(perturbed)
    z = torch.randn(n_samples, path.dim, generator=generator, dtype=torch.float64)
    zp = perturbed.sample(n_samples, generator)
    resp = response(
        velocity, z, zp, tau=tau, d0=d0, method=method, n_steps=n_steps, n_save=n_save, t_end=t_end
    )
    kin = kinetic_cost(path, n_t=n_t, n_x=n_x, seed=seed + 1)
    v2_mid = np.sqrt(_energies(path, resp.t_mid, n_x, torch.Generator().manual_seed(seed + 2))[0])
    if w2_squared_exact is None:
        w2 = w2_lower_bound(
            path.sample_marginal(0.0, n_samples, generator),
            path.sample_marginal(tau, n_samples, generator),
            tau,
        )
    else:
        w2 = float(w2_squared_exact) / tau
    return TradeoffResult(
        tau=tau,
        d0=d0,
        w1_initial=resp.w1_initial,
        w1_final=resp.w1_final,
        delta_w1=resp.delta_w1,
        response=resp.response,
        v_loss_sq_integral=resp.v_loss_sq_integral,
        kinetic=kin.integral,
        kinetic_stderr=kin.integral_stderr,
        w2_bound=w2,
        t_mid=resp.t_mid,
        v_loss=resp.v_loss,
        v2_mid=v2_mid,
        t_kinetic=kin.t,
        v2=kin.v2,
    )
