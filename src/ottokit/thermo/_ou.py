"""Linear (Ornstein-Uhlenbeck) Fokker-Planck thermodynamics in closed form (seed 002).

Convention (the seed's, Boltzmann constant and mobility set to 1)::

    dx = F_t(x) dt + sqrt(2 T_t) dW,            F_t(x) = A_t x + b_t,
    d_t P_t = -div(nu_t P_t),                    nu_t(x) = F_t(x) - T_t grad log P_t(x).

A Gaussian stays Gaussian, P_t = N(m_t, C_t), with

    dm/dt = A m + b,        dC/dt = A C + C A^T + 2 T I,

so for A = -k I the stationary state is N(0, (T/k) I). Everything below follows
from two affine fields at each time:

* the mean local velocity  nu_t(x) = K_t (x - m_t) + dm_t,  K_t = A_t + T_t C_t^-1;
* the Otto (optimal, gradient) velocity  grad phi_t(x) = S_t (x - m_t) + dm_t,
  S_t symmetric with S_t C_t + C_t S_t = dC_t. Both move P_t the same way, and
  grad phi_t is the L2(P_t)-projection of nu_t onto gradients.

From these follow the entropy production rate, the W2 speed (the Bures metric), the split
of Sdot into excess and housekeeping parts, the TUR and the W1 speed, listed with their
sources on the API reference page of :mod:`ottokit.thermo`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.integrate import cumulative_simpson, simpson, solve_ivp
from scipy.linalg import solve_continuous_lyapunov
from scipy.special import erf

from ottokit._checks import as_array, check_instance, check_int, check_real
from ottokit._memory import check_memory
from ottokit.ot import w2_gaussian
from ottokit.thermo._linalg import as_covariance, as_mean, lyapunov_velocity, per_temperature
from ottokit.thermo._protocols import Protocol

__all__ = [
    "GaussianPath",
    "OUSolution",
    "Quadratic",
    "SpeedLimit",
    "TURBound",
    "Thermodynamics",
    "W1Speed",
    "gaussian_entropy",
    "entropy_production_rate",
    "mean_local_velocity",
    "otto_velocity",
    "solve_moments",
    "speed_limit",
    "stationary_covariance",
    "thermodynamics",
    "tur",
    "w1_speed",
    "w2_endpoints",
    "w2_speed",
]


@dataclass(frozen=True)
class GaussianPath:
    """A curve of Gaussians P_t = N(mean_t, cov_t) on a time grid, with its tangent.

    Shapes: ``t`` (n,), ``mean`` (n, d), ``cov`` (n, d, d), ``d_mean`` (n, d),
    ``d_cov`` (n, d, d) (the time derivatives of mean and covariance).
    """

    t: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    d_mean: np.ndarray
    d_cov: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.mean.shape[1])

    @property
    def tau(self) -> float:
        return float(self.t[-1] - self.t[0])


@dataclass(frozen=True)
class OUSolution(GaussianPath):
    """The Gaussian solution of a linear Fokker-Planck equation under a :class:`Protocol`.

    Besides the path, the force and temperature at each output time: ``A``
    (n, d, d), ``b`` (n, d), ``T`` (n,); ``n_rhs`` counts right-hand-side
    evaluations of the moment ODE.
    """

    A: np.ndarray
    b: np.ndarray
    T: np.ndarray
    protocol: Protocol
    n_rhs: int


@dataclass(frozen=True)
class Thermodynamics:
    """Stochastic thermodynamics of an :class:`OUSolution` at its output times (all (n,)).

    ``entropy_production_rate`` Sdot_t = E|nu|^2/T; ``excess_rate`` = v2^2/T and
    ``housekeeping_rate`` = E|nu - grad phi|^2/T, which sum to Sdot (+inf where T = 0
    and something moves); ``mean_squared_velocity`` = E|nu|^2 = T Sdot and
    ``housekeeping_power`` = E|nu - grad phi|^2 = T Sdot - v2^2, their finite
    T-weighted forms (the cost of the non-conservative force in the seed's
    trade-off int T Sdot dt >= int v2^2 dt);
    ``system_entropy`` S_t = -int P log P and its rate ``d_system_entropy``;
    ``heat_rate`` dQ/dt = -E[F . nu], the heat the system takes from the bath
    (the seed's delta Q, so Sdot = dS/dt - (dQ/dt)/T); ``internal_energy`` <U_t>
    with U_t = -x^T A_s x / 2 - b.x (A_s the symmetric part of A) and ``work_rate``
    dW/dt = <d_t U> + <f_nc . nu> (f_nc = A_a x, the non-conservative force), so
    that the first law d<U>/dt = dQ/dt + dW/dt holds.
    """

    t: np.ndarray
    T: np.ndarray
    entropy_production_rate: np.ndarray
    mean_squared_velocity: np.ndarray
    w2_speed: np.ndarray
    excess_rate: np.ndarray
    housekeeping_rate: np.ndarray
    housekeeping_power: np.ndarray
    system_entropy: np.ndarray
    d_system_entropy: np.ndarray
    heat_rate: np.ndarray
    work_rate: np.ndarray
    internal_energy: np.ndarray

    @property
    def entropy_production(self) -> np.ndarray:
        """Cumulative S_tot(t) = int_0^t Sdot dt (Simpson's rule), shape (n,)."""
        return cumulative_simpson(self.entropy_production_rate, x=self.t, initial=0.0)

    @property
    def total_entropy_production(self) -> float:
        """S_tot = int_0^tau Sdot_t dt."""
        return float(simpson(self.entropy_production_rate, x=self.t))


@dataclass(frozen=True)
class SpeedLimit:
    """The seed's finite-time speed limit along one solution.

    S_tot >= int v2^2/T dt >= (int v2 dt)^2 / int T dt >= W2(P_0, P_tau)^2 / int T dt;
    at constant T the last term is W2^2 / (tau T) (Aurell et al. 2012), and the
    geodesic protocol attains it. ``length`` is int v2 dt, the path length in W2.
    """

    entropy_production: float
    excess_entropy_production: float
    length: float
    w2: float
    integrated_temperature: float

    @property
    def length_bound(self) -> float:
        return self.length**2 / self.integrated_temperature

    @property
    def distance_bound(self) -> float:
        return self.w2**2 / self.integrated_temperature


@dataclass(frozen=True)
class W1Speed:
    """Bounds ``lower <= v1(t) <= upper`` on the W1 speed, shape (n,) each.

    ``upper`` = E|grad phi_t| (the Otto velocity moves P_t to P_{t+dt});
    ``lower`` = the largest d_t<f> over the 1-Lipschitz test functions tried.
    In one dimension both are the exact v1 and ``exact`` is True.
    """

    t: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    exact: bool


@dataclass(frozen=True)
class Quadratic:
    """Observable r(x) = x^T Q x / 2 + q . x, with grad r(x) = Q x + q (Q symmetrised)."""

    Q: np.ndarray
    q: np.ndarray

    def __post_init__(self) -> None:
        q_vec = as_mean(self.q, "q")
        mat = np.atleast_2d(as_array(self.Q, "Q", finite=False))
        if mat.shape != (q_vec.shape[0], q_vec.shape[0]) or not np.all(np.isfinite(mat)):
            raise ValueError(
                f"Q must be a finite ({q_vec.shape[0]}, {q_vec.shape[0]}) matrix, "
                f"got shape {mat.shape}"
            )
        object.__setattr__(self, "Q", 0.5 * (mat + mat.T))
        object.__setattr__(self, "q", q_vec)

    def grad(self, x: np.ndarray) -> np.ndarray:
        return x @ self.Q + self.q


@dataclass(frozen=True)
class TURBound:
    """The thermodynamic uncertainty relation for one observable r, all (n,).

    ``d_mean_r`` = d_t<r>, ``mean_grad_sq`` = <|grad r|^2>,
    ``speed`` v_r = |d_t<r>| / sqrt(<|grad r|^2>) <= v2, and
    ``bound`` = (d_t<r>)^2 / (T <|grad r|^2>) <= v2^2/T <= Sdot.
    """

    t: np.ndarray
    d_mean_r: np.ndarray
    mean_grad_sq: np.ndarray
    speed: np.ndarray
    bound: np.ndarray


def stationary_covariance(A: Any, T: float) -> np.ndarray:
    """C_inf solving A C + C A^T + 2 T I = 0 (A Hurwitz): the stationary covariance."""
    a = np.atleast_2d(as_array(A, "A"))
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"A must be a square (d, d) matrix, got shape {a.shape}")
    T = check_real(T, "T", gt=0)
    if np.max(np.linalg.eigvals(a).real) >= 0:
        raise ValueError("A must be stable (all eigenvalues with negative real part)")
    c = solve_continuous_lyapunov(a, -2.0 * T * np.eye(a.shape[0]))
    return 0.5 * (c + c.T)


def _time_grid(t_eval: int | Any, tau: float) -> np.ndarray:
    if np.ndim(t_eval) == 0:
        count = check_int(t_eval, "t_eval", ge=3, hint="a number of output times, or the times")
        return np.linspace(0.0, tau, count)
    t = as_array(t_eval, "t_eval")
    if t.ndim != 1 or t.size < 3 or not np.all(np.diff(t) > 0):
        raise ValueError("t_eval must be an increasing vector of at least 3 times")
    if t[0] < 0 or t[-1] > tau * (1 + 1e-12):
        raise ValueError(f"t_eval must lie in [0, tau] = [0, {tau:g}]; got [{t[0]}, {t[-1]}]")
    return t


def solve_moments(
    protocol: Protocol,
    m0: Any = None,
    C0: Any = None,
    t_eval: int | Any = 201,
    *,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> OUSolution:
    """Integrate dm/dt = A m + b, dC/dt = A C + C A^T + 2 T I from N(m0, C0) over [0, tau].

    ``m0``, ``C0`` default to the protocol's designed start. ``t_eval`` is a
    number of equally spaced output times or the times themselves (in [0, tau]).
    Uses ``scipy.integrate.solve_ivp`` (DOP853); the derivatives ``d_mean``,
    ``d_cov`` are the right-hand side at the solved states.
    """
    check_instance(protocol, Protocol, "protocol")
    rtol, atol = check_real(rtol, "rtol", gt=0), check_real(atol, "atol", gt=0)
    d = protocol.dim
    m0 = protocol.m0 if m0 is None else m0
    C0 = protocol.C0 if C0 is None else C0
    if m0 is None or C0 is None:
        raise ValueError("give the initial state m0, C0 (the protocol does not carry one)")
    m0, C0 = as_mean(m0, "m0", d), as_covariance(C0, "C0", d)
    t = _time_grid(t_eval, protocol.tau)
    eye = np.eye(d)

    def rhs(time: float, y: np.ndarray) -> np.ndarray:
        a, b, temp = protocol.A_at(time, d), protocol.b_at(time, d), protocol.T_at(time)
        m, c = y[:d], y[d:].reshape(d, d)
        dc = a @ c + c @ a.T + 2.0 * temp * eye
        return np.concatenate([a @ m + b, (0.5 * (dc + dc.T)).ravel()])

    sol = solve_ivp(
        rhs,
        (0.0, float(t[-1])),
        np.concatenate([m0, C0.ravel()]),
        method="DOP853",
        t_eval=t,
        rtol=rtol,
        atol=atol,
    )
    if not sol.success:
        raise RuntimeError(f"moment ODE failed for protocol {protocol.name!r}: {sol.message}")
    mean = sol.y[:d].T.copy()
    cov = sol.y[d:].T.reshape(-1, d, d)
    cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
    A = np.stack([protocol.A_at(s, d) for s in t])
    b = np.stack([protocol.b_at(s, d) for s in t])
    T = np.array([protocol.T_at(s) for s in t])
    d_mean = np.einsum("nij,nj->ni", A, mean) + b
    d_cov = A @ cov + cov @ np.swapaxes(A, 1, 2) + 2.0 * T[:, None, None] * eye
    if np.min(np.linalg.eigvalsh(cov)) <= 0:
        raise RuntimeError("the covariance lost positive definiteness; tighten rtol/atol")
    return OUSolution(
        t=t,
        mean=mean,
        cov=cov,
        d_mean=d_mean,
        d_cov=0.5 * (d_cov + np.swapaxes(d_cov, 1, 2)),
        A=A,
        b=b,
        T=T,
        protocol=protocol,
        n_rhs=int(sol.nfev),
    )


def otto_velocity(path: GaussianPath) -> np.ndarray:
    """S_t (n, d, d): the W2-optimal velocity is grad phi_t(x) = S_t (x - m_t) + dm_t."""
    check_instance(path, GaussianPath, "path")
    return lyapunov_velocity(path.cov, path.d_cov)


def w2_speed(path: GaussianPath) -> np.ndarray:
    """v2(t) = lim W2(P_t, P_t+dt)/dt = sqrt(|dm|^2 + tr(S C S)) (Bures metric), (n,)."""
    check_instance(path, GaussianPath, "path")
    s = otto_velocity(path)
    kinetic = np.einsum("ni,ni->n", path.d_mean, path.d_mean) + np.einsum(
        "nij,njk,nki->n", s, path.cov, s
    )
    return np.sqrt(np.clip(kinetic, 0.0, None))


def w2_endpoints(path: GaussianPath) -> float:
    """W2(P_0, P_tau) between the first and last Gaussians of the path."""
    check_instance(path, GaussianPath, "path")
    return float(w2_gaussian(path.mean[0], path.cov[0], path.mean[-1], path.cov[-1]))


def gaussian_entropy(cov: np.ndarray) -> np.ndarray:
    """Differential entropy -int P log P = log det(2 pi e C) / 2 of N(m, C); cov (..., d, d).

    Raises ValueError unless every covariance is symmetric positive definite (a log
    determinant of any other matrix is not an entropy).
    """
    c = as_array(cov, "cov")
    if c.ndim < 2 or c.shape[-1] != c.shape[-2]:
        raise ValueError(f"cov must be a (..., d, d) stack of square matrices, got {c.shape}")
    d = c.shape[-1]
    scale = np.maximum(np.abs(c).max(axis=(-2, -1)), np.finfo(float).tiny)
    if np.any(np.abs(c - np.swapaxes(c, -1, -2)).max(axis=(-2, -1)) > 1e-10 * scale):
        raise ValueError("cov must be symmetric; symmetrise it with (cov + cov.T) / 2")
    smallest = np.linalg.eigvalsh(c)[..., 0]
    if np.any(smallest <= 0):
        k = tuple(int(i) for i in np.unravel_index(int(np.argmin(smallest)), smallest.shape))
        where = f"cov[{', '.join(map(str, k))}]" if k else "cov"
        raise ValueError(
            f"cov must be positive definite; {where} has smallest eigenvalue "
            f"{float(smallest[k]):.3g}"
        )
    return 0.5 * (d * np.log(2.0 * np.pi * np.e) + np.linalg.slogdet(c)[1])


def _mean_abs_affine(a: np.ndarray, s: np.ndarray) -> np.ndarray:
    """E|a + s z| for z ~ N(0, 1), elementwise (the 1-D W1 speed of N(m, sigma^2))."""
    s = np.abs(s)
    out = np.abs(a).astype(float)
    pos = s > 0
    ap, sp = a[pos], s[pos]
    out[pos] = sp * np.sqrt(2.0 / np.pi) * np.exp(-0.5 * (ap / sp) ** 2) + ap * erf(
        ap / (np.sqrt(2.0) * sp)
    )
    return out


def _quadrature(d: int, n_nodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z (k, d) and weights w (k,) for E f(z), z ~ N(0, I_d).

    Tensor Gauss-Hermite for d <= 3; for larger d, 20,000 Monte Carlo draws.
    """
    if d <= 3:
        x, w = hermegauss(n_nodes)
        w = w / w.sum()
        grids = np.meshgrid(*([x] * d), indexing="ij")
        weights = np.meshgrid(*([w] * d), indexing="ij")
        z = np.stack([g.ravel() for g in grids], axis=1)
        return z, np.prod(np.stack([g.ravel() for g in weights], axis=1), axis=1)
    z = np.random.default_rng(seed).standard_normal((20_000, d))
    return z, np.full(len(z), 1.0 / len(z))


def w1_speed(
    path: GaussianPath, *, n_directions: int = 180, n_nodes: int = 48, seed: int = 0
) -> W1Speed:
    """Two-sided estimate of the W1 speed v1(t) = lim W1(P_t, P_t+dt)/dt.

    In one dimension v1 is exact: W1 between 1-D Gaussians is the quantile
    integral E|dm + d(sigma) z|, so v1 = E|dm + dsigma z| in closed form.

    In d dimensions (no closed form), ``upper`` = E|grad phi_t| (the Otto field
    transports P_t to P_{t+dt}, so W1 <= dt E|grad phi| + o(dt)) and ``lower`` is
    the best of two families of 1-Lipschitz test functions f, for which
    d_t<f> <= v1 (Kantorovich-Rubinstein): projections f(x) = e.x on
    ``n_directions`` unit vectors (each a finite difference of the 1-D closed-form
    W1 between projected Gaussians, so a sliced W1 speed), and the radial
    f(x) = |x - m_t| (d_t<f> = E[y^T S y / |y|], y ~ N(0, C)). Expectations in
    d <= 3 use tensor Gauss-Hermite quadrature with ``n_nodes`` per axis.
    The lower bound is tight for translations and isotropic dilations.
    """
    check_instance(path, GaussianPath, "path")
    n_directions = check_int(n_directions, "n_directions", ge=1, example=180)
    n_nodes = check_int(n_nodes, "n_nodes", ge=1, example=48)
    seed = check_int(seed, "seed", ge=0)
    n, d = path.mean.shape
    if 2 <= d <= 3:
        check_memory(
            8 * n_nodes**d * (3 * d + 4),
            what=f"w1_speed's Gauss-Hermite grid of {n_nodes}^{d} nodes",
            knob="lower n_nodes",
        )
    if d == 1:
        sigma = np.sqrt(path.cov[:, 0, 0])
        exact = _mean_abs_affine(path.d_mean[:, 0], path.d_cov[:, 0, 0] / (2.0 * sigma))
        return W1Speed(path.t, exact, exact.copy(), True)
    s = otto_velocity(path)
    chol = np.linalg.cholesky(path.cov)
    z, w = _quadrature(d, n_nodes, seed)
    upper = np.empty(n)
    radial = np.empty(n)
    for i in range(n):
        y = z @ chol[i].T
        u = y @ s[i] + path.d_mean[i]
        upper[i] = w @ np.linalg.norm(u, axis=1)
        r = np.linalg.norm(y, axis=1)
        radial[i] = abs(w @ (np.einsum("kj,jl,kl->k", y, s[i], y) / np.where(r > 0, r, 1.0)))
    if d == 2:
        angles = np.linspace(0.0, np.pi, n_directions, endpoint=False)
        e = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        e = np.random.default_rng(seed).standard_normal((n_directions, d))
        e = np.concatenate([np.eye(d), e / np.linalg.norm(e, axis=1, keepdims=True)])
    proj_mean = path.d_mean @ e.T
    proj_sd = np.sqrt(np.einsum("kj,njl,kl->nk", e, path.cov, e))
    proj_dsd = np.einsum("kj,njl,kl->nk", e, path.d_cov, e) / (2.0 * proj_sd)
    sliced = _mean_abs_affine(proj_mean, proj_dsd).max(axis=1)
    return W1Speed(path.t, np.maximum(sliced, radial), upper, False)


def mean_local_velocity(sol: OUSolution) -> np.ndarray:
    """K_t (n, d, d) with nu_t(x) = K_t (x - m_t) + dm_t, K_t = A_t + T_t C_t^-1."""
    check_instance(sol, OUSolution, "sol")
    return sol.A + sol.T[:, None, None] * np.linalg.inv(sol.cov)


def entropy_production_rate(sol: OUSolution) -> np.ndarray:
    """Sdot_t = E|nu_t|^2 / T_t = (|dm|^2 + tr(K C K^T)) / T, shape (n,)."""
    check_instance(sol, OUSolution, "sol")
    k = mean_local_velocity(sol)
    nu2 = np.einsum("ni,ni->n", sol.d_mean, sol.d_mean) + np.einsum("nij,njk,nik->n", k, sol.cov, k)
    return per_temperature(nu2, sol.T)


def thermodynamics(sol: OUSolution) -> Thermodynamics:
    """Entropy production, W2 speed, heat, work and energy along ``sol`` (closed forms).

    The work rate needs dA/dt and db/dt, taken from the protocol by finite differences.
    """
    check_instance(sol, OUSolution, "sol")
    k = mean_local_velocity(sol)
    s = otto_velocity(sol)
    c, m, dm = sol.cov, sol.mean, sol.d_mean
    kt = np.swapaxes(k, 1, 2)
    dm2 = np.einsum("ni,ni->n", dm, dm)
    nu2 = dm2 + np.einsum("nij,njk,nki->n", k, c, kt)
    v2sq = dm2 + np.einsum("nij,njk,nki->n", s, c, s)
    rot = k - s
    d_a = np.stack([sol.protocol.dA(t) for t in sol.t])
    d_b = np.stack([sol.protocol.db(t) for t in sol.t])
    hk = np.einsum("nij,njk,nik->n", rot, c, rot)
    a_sym = 0.5 * (sol.A + np.swapaxes(sol.A, 1, 2))
    a_anti = sol.A - a_sym
    da_sym = 0.5 * (d_a + np.swapaxes(d_a, 1, 2))
    second = c + np.einsum("ni,nj->nij", m, m)
    heat = -(np.einsum("nij,njk,nki->n", sol.A, c, kt) + dm2)
    work = (
        -0.5 * np.einsum("nij,nji->n", da_sym, second)
        - np.einsum("ni,ni->n", d_b, m)
        + np.einsum("nij,njk,nki->n", a_anti, c, kt)
        + np.einsum("nij,nj,ni->n", a_anti, m, dm)
    )
    energy = -0.5 * np.einsum("nij,nji->n", a_sym, second) - np.einsum("ni,ni->n", sol.b, m)
    d_entropy = 0.5 * np.einsum("nij,nji->n", np.linalg.inv(c), sol.d_cov)
    return Thermodynamics(
        t=sol.t,
        T=sol.T,
        entropy_production_rate=per_temperature(nu2, sol.T),
        mean_squared_velocity=nu2,
        w2_speed=np.sqrt(np.clip(v2sq, 0.0, None)),
        excess_rate=per_temperature(v2sq, sol.T),
        housekeeping_rate=per_temperature(hk, sol.T),
        housekeeping_power=hk,
        system_entropy=gaussian_entropy(c),
        d_system_entropy=d_entropy,
        heat_rate=heat,
        work_rate=work,
        internal_energy=energy,
    )


def speed_limit(sol: OUSolution) -> SpeedLimit:
    """Both sides of S_tot >= (int v2 dt)^2 / int T dt >= W2(P_0, P_tau)^2 / int T dt.

    Time integrals by Simpson's rule on the output times of ``sol``.
    """
    check_instance(sol, OUSolution, "sol")
    v2 = w2_speed(sol)
    return SpeedLimit(
        entropy_production=float(simpson(entropy_production_rate(sol), x=sol.t)),
        excess_entropy_production=float(simpson(per_temperature(v2**2, sol.T), x=sol.t)),
        length=float(simpson(v2, x=sol.t)),
        w2=w2_endpoints(sol),
        integrated_temperature=float(simpson(sol.T, x=sol.t)),
    )


def tur(
    sol: OUSolution,
    observable: Quadratic | Callable[[np.ndarray], np.ndarray],
    *,
    n_samples: int = 20_000,
    seed: int = 0,
) -> TURBound:
    """Both sides of the TUR for an observable r: Sdot >= v2^2/T >= (d_t<r>)^2/(T <|grad r|^2>).

    d_t<r> = int r d_t P = E[grad r . nu_t]. For a :class:`Quadratic` r the
    expectations are closed forms: d_t<r> = tr(Q dC)/2 + (Q m + q).dm and
    <|grad r|^2> = tr(Q C Q) + |Q m + q|^2. Any other observable is given by its
    gradient, a function (N, d) -> (N, d), and averaged over ``n_samples``
    Gaussian draws per time (the same standard normals at every time, ``seed``).
    """
    check_instance(sol, OUSolution, "sol")
    if isinstance(observable, Quadratic):
        q_mat, q_vec = observable.Q, observable.q
        if q_vec.shape[0] != sol.dim:
            raise ValueError(f"observable has dimension {q_vec.shape[0]}, the path {sol.dim}")
        g_mean = sol.mean @ q_mat + q_vec
        d_r = 0.5 * np.einsum("ij,nji->n", q_mat, sol.d_cov) + np.einsum(
            "ni,ni->n", g_mean, sol.d_mean
        )
        g2 = np.einsum("ij,njk,ki->n", q_mat, sol.cov, q_mat) + np.einsum(
            "ni,ni->n", g_mean, g_mean
        )
    elif callable(observable):
        n_samples = check_int(n_samples, "n_samples", ge=1, example=20_000)
        seed = check_int(seed, "seed", ge=0)
        check_memory(
            8 * n_samples * sol.dim * 5,
            what=f"tur with {n_samples} samples in dimension {sol.dim}",
            knob="lower n_samples",
        )
        z = np.random.default_rng(seed).standard_normal((n_samples, sol.dim))
        k = mean_local_velocity(sol)
        chol = np.linalg.cholesky(sol.cov)
        d_r, g2 = np.empty(len(sol.t)), np.empty(len(sol.t))
        for i in range(len(sol.t)):
            y = z @ chol[i].T
            grad = np.asarray(observable(y + sol.mean[i]), dtype=np.float64)
            if grad.shape != y.shape:
                raise ValueError(f"the observable's gradient must return shape {y.shape}")
            d_r[i] = np.mean(np.einsum("kj,kj->k", grad, y @ k[i].T + sol.d_mean[i]))
            g2[i] = np.mean(np.einsum("kj,kj->k", grad, grad))
    else:
        raise TypeError(
            f"observable must be a Quadratic or a gradient function of x, got "
            f"{type(observable).__name__}"
        )
    # a constant r (grad r = 0) has zero speed and a zero bound
    safe = np.where(g2 > 0, g2, 1.0)
    speed = np.where(g2 > 0, np.abs(d_r) / np.sqrt(safe), 0.0)
    return TURBound(sol.t, d_r, g2, speed, per_temperature(speed**2, sol.T))
