"""The speed-accuracy trade-off of diffusion models (seed 002).

Ikeda, Uda, Okanohara & Ito, arXiv:2407.04495. Forward process: d_t P_t = -div(nu_t P_t),
data P_0 at t = 0, noise P_tau at t = tau.
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

Two estimators, ``"quadrature"`` (1-D, no samples) and ``"samples"`` (any dimension, with a
bootstrap or repeat interval); the API reference page of :mod:`ottokit.flowmatch` compares them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Self, get_args

import numpy as np
import torch
from scipy import integrate, stats
from torch import Tensor

from ottokit._checks import check_instance, check_int, check_option, check_real
from ottokit.flowmatch._common import (
    as_points,
    w1_distance,
    w2_squared,
)
from ottokit.flowmatch._quantile import (
    closed_form_flow,
    model_dtype,
    normal_nodes,
    ode_states,
    quantile_nodes,
    velocity_at,
)
from ottokit.flowmatch.distributions import (
    Distribution,
    chi2_divergence,
    chi2_quad,
    standard_normal,
)
from ottokit.flowmatch.sample import METHODS
from ottokit.flowmatch.sample import integrate as integrate_ode
from ottokit.flowmatch.schedules import Schedule
from ottokit.flowmatch.velocity import MarginalPath

__all__ = [
    "Inequality",
    "KineticResult",
    "ResponseResult",
    "QuadratureResponse",
    "TradeoffResult",
    "Estimator",
    "ESTIMATORS",
    "CIMethod",
    "CI_METHODS",
    "perturbation_d0",
    "d0_isotropic_fit",
    "kinetic_cost",
    "kinetic_quadrature",
    "has_closed_form",
    "w2_squared_quadrature",
    "conditional_kinetic_energy",
    "response",
    "response_quadrature",
    "w2_lower_bound",
    "tradeoff",
]

Estimator = Literal["auto", "quadrature", "samples"]
ESTIMATORS: tuple[str, ...] = get_args(Estimator)
FlowMapOption = Literal["auto", "closed form", "ode"]
FLOW_MAPS: tuple[str, ...] = get_args(FlowMapOption)
CIMethod = Literal["auto", "bootstrap", "repeats", "none"]
CI_METHODS: tuple[str, ...] = get_args(CIMethod)
_FIXED_STEP = ("rk4", "euler", "midpoint")


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
class _W1Response:
    """W1 between the two reverse processes at saved times, and the response it gives.

    The fields that :class:`ResponseResult` and :class:`QuadratureResponse` share (each
    documents them).
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

    @classmethod
    def _of_w1(
        cls,
        tau: float,
        d0: float,
        t: np.ndarray,
        w1: np.ndarray,
        t_mid: np.ndarray,
        v_loss: np.ndarray,
        v_loss_sq_integral: float,
        **rest: Any,
    ) -> Self:
        """The result whose ends, Delta W1 and response are read from ``w1``."""
        delta = float(w1[-1] - w1[0])
        return cls(
            tau=tau,
            d0=d0,
            t=t,
            w1=w1,
            w1_initial=float(w1[0]),
            w1_final=float(w1[-1]),
            delta_w1=delta,
            response=delta**2 / (tau * d0),
            t_mid=t_mid,
            v_loss=v_loss,
            v_loss_sq_integral=v_loss_sq_integral,
            **rest,
        )


@dataclass(frozen=True)
class ResponseResult(_W1Response):
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

    final: Tensor
    final_perturbed: Tensor

    @property
    def n_samples(self) -> int:
        return int(self.final.shape[0])


@dataclass(frozen=True)
class QuadratureResponse(_W1Response):
    """The 1-D response without samples (the ``"quadrature"`` estimator).

    Attributes:
        tau, d0, t, w1, w1_initial, w1_final, delta_w1, response, t_mid, v_loss:
            as in :class:`ResponseResult`; ``t`` runs from tau down to ``t_end``.
            With a closed-form or adaptive flow map, v_loss at ``t_mid`` is the exact
            |dW1/dt| / sqrt(D0); with a fixed-step ODE ``t`` is the step grid and v_loss
            the difference quotient on it, as for samples.
        v_loss_sq_integral: int v_loss^2 dt (Gauss-Legendre in t, or the step grid's sum).
        flow_map: ``"monotone rearrangement"`` (closed-form marginals) or the ODE used,
            e.g. ``"dopri5 (rtol 1e-10)"`` or ``"rk4, 20 steps"``.
        n_nodes: quadrature nodes over the noise level.
    """

    flow_map: str
    n_nodes: int


@dataclass(frozen=True)
class TradeoffResult:
    """The response, its bounds and the speeds (see the module docstring for definitions).

    Attributes:
        tau, d0, w1_initial, w1_final, delta_w1, response: as in :class:`ResponseResult`
            (with ``ci="repeats"``, ``response`` is the mean over the repeats).
        v_loss_sq_integral: int v_loss^2 dt on the response grid.
        kinetic, kinetic_stderr: int T S_dot dt = int E|nu_t|^2 dt of the exact path
            (= int v2^2 dt) and its Monte Carlo standard error (0 for quadrature).
        w2_bound: W2(P_0, P_tau)^2 / tau.
        t_mid, v_loss, v2_mid: v_loss and v2 at the response grid's midpoints.
        t_kinetic, v2: v2 at the Gauss-Legendre nodes.
        estimator: ``"quadrature"`` or ``"samples"``, the path that computed the response.
        flow_map: how the reverse flow was evaluated (``"monotone rearrangement"``,
            ``"dopri5 (rtol 1e-10)"``, ``"rk4, 200 steps"``, ...).
        kinetic_method: ``"quadrature"`` or ``"monte carlo"``.
        n_samples: samples per cloud (0 for quadrature).
        response_ci: (low, high) confidence interval of ``response`` at ``ci_level``,
            None for quadrature and for ``ci="none"``.
        ci_method: ``"bootstrap"``, ``"repeats"`` or ``"none"``.
        response_repeats: the responses of the repeats (``ci="repeats"``), else None.
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
    estimator: str
    flow_map: str
    kinetic_method: str
    n_samples: int
    response_ci: tuple[float, float] | None
    ci_method: str
    ci_level: float
    response_repeats: np.ndarray | None

    def covers(self, value: float) -> bool:
        """Whether the confidence interval holds ``value`` (without one: equality to 1e-6)."""
        if self.response_ci is None:
            return math.isclose(self.response, value, rel_tol=1e-6)
        return self.response_ci[0] <= value <= self.response_ci[1]

    def inequalities(self, rtol: float = 0.0) -> list[Inequality]:
        """The seed's inequalities, each ``lhs <= rhs * (1 + rtol)``."""

        def ineq(name: str, lhs: float, rhs: float) -> Inequality:
            return Inequality(name, float(lhs), float(rhs), bool(lhs <= rhs * (1.0 + rtol)))

        with np.errstate(invalid="ignore"):  # 0/0 where both speeds vanish: no constraint
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


def d0_isotropic_fit(reference: Any, perturbed: Any) -> float:
    """D0 ~ 2 KL(N(m', s'^2 I) || N(m, s^2 I)) of isotropic Gaussians fitted to two clouds.

    The paper's Eq. G21 for high-dimensional starts, where chi^2 is out of reach: each
    cloud (n, d) is fitted by its mean and one variance s^2 = E|x - m|^2 / d, and
    2 KL = d s'^2/s^2 + |m' - m|^2/s^2 - d - d log(s'^2/s^2), which is chi^2 to second
    order in the perturbation (chi^2 = 2 KL + O(delta^3)).
    """
    x = as_points(reference, "reference")
    y = as_points(perturbed, "perturbed", dim=x.shape[1]).to(x.dtype)
    d = x.shape[1]
    m, mp = x.mean(dim=0), y.mean(dim=0)
    var = float(((x - m) ** 2).sum(dim=1).mean()) / d
    var_p = float(((y - mp) ** 2).sum(dim=1).mean()) / d
    if not (var > 0 and var_p > 0):
        raise ValueError("both clouds need a positive spread to fit isotropic Gaussians")
    ratio = var_p / var
    shift = float(((mp - m) ** 2).sum()) / var
    return float(d * (ratio - 1.0 - math.log(ratio)) + shift)


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


def kinetic_quadrature(path: Any, *, n_t: int = 32, order: int = 12) -> KineticResult:
    """int_0^tau E_{P_t} nu_t^2 dt for a 1-D path with closed-form marginals, by quadrature.

    ``path`` is a 1-D :class:`~ottokit.flowmatch.velocity.GaussianMixtureVelocity` or
    :class:`~ottokit.flowmatch.otpath.MonotoneVelocity1D`. E_{P_t} nu_t^2 =
    int nu_t(Psi_t(z))^2 phi(z) dz with Psi_t the monotone rearrangement of N(0, 1) onto
    P_t (Gauss-Legendre in z on [-12, 12]), then Gauss-Legendre in t; the standard
    errors are 0.
    """
    n_t = check_int(n_t, "n_t", ge=1)
    _require_closed_form(path)
    tau = check_real(path.tau, "tau", gt=0)
    nodes, w = np.polynomial.legendre.leggauss(n_t)
    t = 0.5 * tau * (nodes + 1.0)
    w = 0.5 * tau * w
    energy = _quadrature_energies(path, t, order=order)
    return KineticResult(
        t=t,
        weights=w,
        energy=energy,
        energy_stderr=np.zeros_like(energy),
        integral=float(w @ energy),
        integral_stderr=0.0,
    )


def has_closed_form(path: Any) -> bool:
    """Whether ``path`` is a 1-D velocity whose marginals (and flow maps) are closed-form."""
    return closed_form_flow(path, np.zeros(1)) is not None


def _require_closed_form(path: Any) -> None:
    if not has_closed_form(path):
        raise ValueError(
            f"quadrature needs a 1-D path with closed-form marginals, got "
            f"{type(path).__name__}; use kinetic_cost (Monte Carlo)"
        )


def _quadrature_energies(path: Any, times: np.ndarray, *, order: int = 12) -> np.ndarray:
    _require_closed_form(path)
    z, phi_w = normal_nodes(order=order)
    flow = closed_form_flow(path, z)
    return np.array([phi_w @ velocity_at(path, tj, flow(tj)) ** 2 for tj in times])


def w2_squared_quadrature(path: Any, *, order: int = 12) -> float:
    """W2(P_0, N(0, 1))^2 = E (Psi_0(Z) - Z)^2 for a 1-D path with closed-form marginals."""
    _require_closed_form(path)
    z, phi_w = normal_nodes(order=order)
    return float(phi_w @ (closed_form_flow(path, z)(0.0) - z) ** 2)


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
    dtype, device = model_dtype(velocity, z.dtype)
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
    return ResponseResult._of_w1(
        tau,
        float(d0),
        t,
        w1,
        0.5 * (t[1:] + t[:-1]),
        v_loss,
        float(np.sum(v_loss**2 * dt)),
        final=traj.final[:n],
        final_perturbed=traj.final[n:],
    )


def w2_lower_bound(data: Any, noise: Any, tau: float) -> float:
    """W2(P_0, P_tau)^2 / tau from equal-size samples (exact OT; sorted in 1-D)."""
    tau = check_real(tau, "tau", gt=0)
    y = as_points(data, "data")
    z = as_points(noise, "noise", dim=y.shape[1])  # w2_squared computes in float64
    if z.shape[0] != y.shape[0]:
        raise ValueError(f"data and noise need as many samples, got {y.shape[0]} and {z.shape[0]}")
    return w2_squared(y, z) / tau


def _check_d0(d0: float) -> float:
    if not (math.isfinite(d0) and d0 > 0):
        raise ValueError(f"d0 must be positive and finite, got {d0!r}")
    return float(d0)


def response_quadrature(
    velocity: Any,
    perturbed: Distribution,
    *,
    tau: float,
    d0: float | None = None,
    t_end: float = 0.0,
    flow_map: FlowMapOption = "auto",
    method: str = "dopri5",
    n_steps: int = 200,
    n_save: int = 21,
    n_t: int = 32,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    order: int = 12,
) -> QuadratureResponse:
    """The 1-D response of ``velocity`` to the perturbed start, without samples.

    The reverse flow map Psi_t of the noise level z is the monotone rearrangement of
    N(0, 1) onto P_t when the velocity's marginals are closed-form (``flow_map=
    "closed form"``: a 1-D Gaussian-mixture velocity for any schedule, or the OT path),
    or the ODE dx/dt = v(t, x) integrated from tau on the quadrature nodes (``"ode"``:
    any velocity, e.g. a kernel estimate or a network; ``method="dopri5"`` with
    ``rtol``/``atol``, or a fixed-step method with ``n_steps``). ``"auto"`` takes the
    closed form where there is one. Then W1(t) = -int sign(H) h Psi_t dz and
    dW1/dt = -int sign(H) h v(t, Psi_t) dz (see :mod:`ottokit.flowmatch._quantile`).

    Args:
        perturbed: the perturbed start, a 1-D distribution with a ``cdf``.
        d0: chi^2 of the perturbed start (default: :func:`perturbation_d0`).
        n_save: times on the W1 curve (adaptive and closed-form flow maps).
        n_t: Gauss-Legendre times for int v_loss^2 dt.
        order: Gauss-Legendre nodes per piece of the noise axis.
    """
    tau = check_real(tau, "tau", gt=0)
    check_option(flow_map, FLOW_MAPS, "flow_map")
    check_option(method, METHODS, "method")
    n_save = check_int(n_save, "n_save", ge=2, hint="at least the two ends")
    n_t = check_int(n_t, "n_t", ge=1)
    if not 0.0 <= t_end < tau:
        raise ValueError(f"t_end must lie in [0, tau) = [0, {tau:g}), got {t_end!r}")
    d0 = perturbation_d0(perturbed) if d0 is None else _check_d0(d0)
    nodes = quantile_nodes(perturbed, order=order)
    kernel = nodes.w1_kernel
    closed = None if flow_map == "ode" else closed_form_flow(velocity, nodes.z)
    if flow_map == "closed form" and closed is None:
        raise ValueError(
            f"no closed-form flow map for {type(velocity).__name__}; use flow_map='ode'"
        )
    grid = np.linspace(tau, t_end, n_save)
    gl_x, gl_w = np.polynomial.legendre.leggauss(n_t)
    t_gl = t_end + 0.5 * (tau - t_end) * (gl_x + 1.0)
    w_gl = 0.5 * (tau - t_end) * gl_w
    scale = 1.0 / math.sqrt(d0)

    def w1_rate(t: float, psi: np.ndarray) -> float:
        return float(kernel @ velocity_at(velocity, t, psi))

    if closed is None and method in _FIXED_STEP:
        times, states = ode_states(
            velocity, nodes.z, tau, grid, method=method, n_steps=n_steps, rtol=rtol, atol=atol
        )
        w1 = states @ kernel
        dt = np.abs(np.diff(times))
        v_loss = np.abs(np.diff(w1)) / dt * scale
        return QuadratureResponse._of_w1(
            tau, d0, times, w1, 0.5 * (times[1:] + times[:-1]), v_loss,
            float(np.sum(v_loss**2 * dt)),
            flow_map=f"{method}, {n_steps} steps", n_nodes=int(nodes.z.size),
        )
    t_mid = 0.5 * (grid[1:] + grid[:-1])
    wanted = np.concatenate([grid, t_mid, t_gl])
    if closed is None:
        _, states = ode_states(
            velocity, nodes.z, tau, wanted, method=method, n_steps=n_steps, rtol=rtol, atol=atol
        )
        label = f"{method} (rtol {rtol:g})"
    else:
        states = np.stack([closed(t) for t in wanted])
        label = "monotone rearrangement"
    psi_grid, psi_mid, psi_gl = np.split(states, [grid.size, grid.size + t_mid.size])
    w1 = psi_grid @ kernel
    v_loss = np.array([abs(w1_rate(t, p)) for t, p in zip(t_mid, psi_mid, strict=True)]) * scale
    v_gl = np.array([w1_rate(t, p) for t, p in zip(t_gl, psi_gl, strict=True)]) * scale
    return QuadratureResponse._of_w1(
        tau, d0, grid, w1, t_mid, v_loss, float(w_gl @ v_gl**2),
        flow_map=label, n_nodes=int(nodes.z.size),
    )


def _has_cdf(dist: Distribution) -> bool:
    if dist.dim != 1:
        return False
    try:
        dist.cdf(np.zeros(1))
    except ValueError:
        return False
    return True


def _bootstrap_ci(
    start: tuple[Tensor, Tensor],
    end: tuple[Tensor, Tensor],
    scale: float,
    level: float,
    n_boot: int,
    seed: int,
) -> tuple[float, float]:
    """Percentile interval of (W1(end) - W1(start))^2 * scale over bootstrap resamples.

    The two clouds are resampled independently (they are independent draws), and each
    resampled index keeps its start and end point together (the end is the image of the
    start under the flow), so no integration is repeated.
    """
    rng = np.random.default_rng(seed)
    z, zp = (c.detach().cpu().double().numpy() for c in start)
    x, xp = (c.detach().cpu().double().numpy() for c in end)
    n = z.shape[0]
    values = np.empty(n_boot)
    if z.shape[1] == 1:
        for b0 in range(0, n_boot, 64):
            k = min(64, n_boot - b0)
            i, j = rng.integers(n, size=(2, k, n))

            def w1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
                return np.abs(np.sort(a, axis=1) - np.sort(b, axis=1)).mean(axis=1)

            delta = w1(x[i, 0], xp[j, 0]) - w1(z[i, 0], zp[j, 0])
            values[b0 : b0 + k] = delta**2 * scale
    else:
        for b in range(n_boot):
            i, j = rng.integers(n, size=(2, n))
            delta = w1_distance(torch.as_tensor(x[i]), torch.as_tensor(xp[j])) - w1_distance(
                torch.as_tensor(z[i]), torch.as_tensor(zp[j])
            )
            values[b] = delta**2 * scale
    alpha = 1.0 - level
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _sampled(
    velocity: Any,
    perturbed: Distribution,
    dim: int,
    n_samples: int,
    seed: int,
    common: dict[str, Any],
    *,
    n_save: int,
    ci: str,
    ci_level: float,
    n_boot: int,
    n_repeats: int,
) -> tuple[ResponseResult, float, tuple[float, float] | None, np.ndarray | None]:
    """The sampled response, its value (the repeats' mean for ``ci="repeats"``), its
    interval and the repeats' values."""

    def draw(gen: torch.Generator) -> tuple[Tensor, Tensor]:
        z = torch.randn(n_samples, dim, generator=gen, dtype=torch.float64)
        return z, perturbed.sample(n_samples, gen)

    z, zp = draw(torch.Generator().manual_seed(seed))
    resp = response(velocity, z, zp, n_save=n_save, **common)
    scale = 1.0 / (common["tau"] * common["d0"])
    if ci == "bootstrap":
        n_boot = check_int(n_boot, "n_boot", ge=1)
        interval = _bootstrap_ci(
            (z, zp), (resp.final, resp.final_perturbed), scale, ci_level, n_boot, seed
        )
        return resp, resp.response, interval, None
    if ci == "repeats":
        n_repeats = check_int(
            n_repeats, "n_repeats", ge=2, hint="ci='repeats' estimates a spread from them"
        )
        values = [resp.response]
        for r in range(1, n_repeats):
            zr, zpr = draw(torch.Generator().manual_seed(seed + 7919 * r))
            values.append(response(velocity, zr, zpr, n_save=2, **common).response)
        repeats = np.array(values)
        mean = float(repeats.mean())
        half = stats.t.ppf(0.5 + ci_level / 2, n_repeats - 1) * repeats.std(ddof=1)
        half /= math.sqrt(n_repeats)
        return resp, mean, (mean - half, mean + half), repeats
    return resp, resp.response, None, None


def tradeoff(
    velocity: Any,
    path: MarginalPath,
    perturbed: Distribution,
    *,
    estimator: Estimator = "auto",
    n_samples: int = 2000,
    method: str | None = None,
    n_steps: int = 200,
    n_save: int = 21,
    n_t: int = 32,
    n_x: int = 4096,
    seed: int = 0,
    t_end: float = 0.0,
    w2_squared_exact: float | None = None,
    flow_map: FlowMapOption = "auto",
    ci: CIMethod = "auto",
    ci_level: float = 0.95,
    n_boot: int = 400,
    n_repeats: int = 5,
) -> TradeoffResult:
    """Response and bounds for one schedule and one perturbation.

    Args:
        velocity: the field that transports the two starts backwards (the exact
            velocity, or an estimated or learned one).
        path: the exact path (velocity with ``sample_marginal``) whose kinetic
            cost int E|nu_t|^2 dt = int v2^2 dt bounds the response; by quadrature
            when its 1-D marginals are closed-form (:func:`has_closed_form`), else
            Monte Carlo with ``n_x`` samples at ``n_t`` Gauss-Legendre times.
        perturbed: the perturbed start P~^dag_0; the unperturbed start is N(0, I).
        estimator: ``"quadrature"`` (1-D with a perturbed ``cdf``: no samples, see
            :func:`response_quadrature`), ``"samples"`` (any dimension: ``n_samples`` per
            cloud, transported by ``method`` with ``n_steps``), or ``"auto"``, which takes
            quadrature wherever it applies.
        method: ODE method; default ``"dopri5"`` (rtol 1e-10) for quadrature with an ODE
            flow map and ``"rk4"`` for samples.
        flow_map: quadrature only, see :func:`response_quadrature`.
        w2_squared_exact: W2(P_0, P_tau)^2 when known; otherwise by quadrature for a
            closed-form 1-D path, else from ``n_samples`` samples of P_0 and P_tau by exact OT.
        ci: the samples' confidence interval for the response: ``"bootstrap"`` (percentile,
            ``n_boot`` resamples of the transported clouds; in d > 1 each resample solves
            two exact OT problems), ``"repeats"`` (``n_repeats`` independent runs with fresh
            samples, Student-t interval of their mean, which becomes ``response``),
            ``"none"``, or ``"auto"``: bootstrap in 1-D, repeats otherwise.
        ci_level: the interval's confidence level.
    """
    tau = check_real(path.tau, "tau", gt=0)
    seed = check_int(seed, "seed", ge=0)
    check_option(estimator, ESTIMATORS, "estimator")
    check_option(ci, CI_METHODS, "ci")
    ci_level = check_real(ci_level, "ci_level", gt=0, lt=1, example=0.95)
    if path.dim != perturbed.dim:
        raise ValueError(
            f"the path has dimension {path.dim} but the perturbed start {perturbed.dim} "
            "(mismatched dimensions)"
        )
    quadrature_ok = path.dim == 1 and _has_cdf(perturbed)
    if estimator == "quadrature" and not quadrature_ok:
        raise ValueError(
            "the quadrature estimator needs a 1-D problem whose perturbed start has a cdf; "
            "use estimator='samples'"
        )
    use_quadrature = estimator == "quadrature" or (estimator == "auto" and quadrature_ok)
    d0 = perturbation_d0(perturbed)
    closed_path = path.dim == 1 and has_closed_form(path)
    if closed_path:
        kin = kinetic_quadrature(path, n_t=n_t)
        kinetic_method = "quadrature"
    else:
        kin = kinetic_cost(path, n_t=n_t, n_x=n_x, seed=seed + 1)
        kinetic_method = "monte carlo"
    ci_method, response_ci, repeats = "none", None, None
    if use_quadrature:
        resp: Any = response_quadrature(
            velocity,
            perturbed,
            tau=tau,
            d0=d0,
            t_end=t_end,
            flow_map=flow_map,
            method=method or "dopri5",
            n_steps=n_steps,
            n_save=n_save,
            n_t=n_t,
        )
        flow_label, n_used, value = resp.flow_map, 0, resp.response
    else:
        method = method or "rk4"
        n_samples = check_int(n_samples, "n_samples", ge=2, example=2000)
        ci_method = ci if ci != "auto" else ("bootstrap" if path.dim == 1 else "repeats")
        resp, value, response_ci, repeats = _sampled(
            velocity,
            perturbed,
            path.dim,
            n_samples,
            seed,
            {"tau": tau, "d0": d0, "method": method, "n_steps": n_steps, "t_end": t_end},
            n_save=n_save,
            ci=ci_method,
            ci_level=ci_level,
            n_boot=n_boot,
            n_repeats=n_repeats,
        )
        flow_label, n_used = f"{method}, {n_steps} steps", n_samples
    if closed_path:
        v2_mid = np.sqrt(_quadrature_energies(path, resp.t_mid))
    else:
        v2_mid = np.sqrt(
            _energies(path, resp.t_mid, n_x, torch.Generator().manual_seed(seed + 2))[0]
        )
    if w2_squared_exact is not None:
        w2 = float(w2_squared_exact) / tau
    elif closed_path:
        w2 = w2_squared_quadrature(path) / tau
    else:
        generator = torch.Generator().manual_seed(seed + 3)
        w2 = w2_lower_bound(
            path.sample_marginal(0.0, max(n_samples, 2), generator),
            path.sample_marginal(tau, max(n_samples, 2), generator),
            tau,
        )
    return TradeoffResult(
        tau=tau,
        d0=d0,
        w1_initial=resp.w1_initial,
        w1_final=resp.w1_final,
        delta_w1=resp.delta_w1,
        response=value,
        v_loss_sq_integral=resp.v_loss_sq_integral,
        kinetic=kin.integral,
        kinetic_stderr=kin.integral_stderr,
        w2_bound=w2,
        t_mid=resp.t_mid,
        v_loss=resp.v_loss,
        v2_mid=v2_mid,
        t_kinetic=kin.t,
        v2=kin.v2,
        estimator="quadrature" if use_quadrature else "samples",
        flow_map=flow_label,
        kinetic_method=kinetic_method,
        n_samples=n_used,
        response_ci=response_ci,
        ci_method=ci_method,
        ci_level=float(ci_level),
        response_repeats=repeats,
    )
