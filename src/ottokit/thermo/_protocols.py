"""Driving protocols for the linear Fokker-Planck equation (seed 002, first half).

A :class:`Protocol` is a linear force F_t(x) = A_t x + b_t and a temperature T_t
on t in [0, tau], with the initial Gaussian N(m0, C0) it is meant to start from.
Builders:

* :func:`geodesic_protocol` -- drives N(m0, C0) along the W2 geodesic (McCann
  interpolation) to N(m1, C1) at constant speed; its entropy production is the
  minimum, S_tot = W2^2 / (tau T) (Aurell et al. 2012; the seed's
  "minimum entropy production").
* :func:`gaussian_path_protocol` -- drives any prescribed Gaussian path (the
  geodesic, or a diffusion-model schedule) with a potential force.
* :func:`stiffness_ramp`, :func:`quench` -- a harmonic trap whose stiffness is
  ramped linearly or switched suddenly.
* :func:`rotational` -- a non-potential (rotational) force in two dimensions.
* ``Protocol(A, b, T, tau, ...)`` -- a user's own callables (or constants).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ottokit._checks import as_array, check_int, check_real
from ottokit.thermo._linalg import as_covariance, as_mean, lyapunov_velocity, sqrtm_spd

__all__ = [
    "BuresGeodesic",
    "Protocol",
    "gaussian_path_protocol",
    "geodesic_protocol",
    "quench",
    "rotational",
    "stiffness_ramp",
]

MatrixFn = Callable[[float], np.ndarray]
VectorFn = Callable[[float], np.ndarray]
ScalarFn = Callable[[float], float]


def _constant(value: Any) -> Callable[[float], Any]:
    return lambda t: value


@dataclass(frozen=True)
class Protocol:
    """Force F_t(x) = A(t) x + b(t) and temperature T(t) >= 0 on t in [0, tau].

    The Langevin equation is dx = F_t(x) dt + sqrt(2 T_t) dW (seed 002, with
    k_B = mobility = 1). ``A``, ``b`` and ``T`` are callables of t; constants
    are accepted and wrapped. T may vanish at some times (no noise there); rates
    divided by T, such as Sdot = E|nu|^2/T, are then +inf where anything moves.
    ``m0``, ``C0`` is the Gaussian the protocol is designed to start from (needed
    by :func:`~ottokit.thermo.solve_moments` when no initial state is passed
    there). The force is a gradient (a potential force) exactly when A(t) is
    symmetric.
    """

    A: MatrixFn
    b: VectorFn
    T: ScalarFn
    tau: float
    name: str = "user"
    m0: np.ndarray | None = None
    C0: np.ndarray | None = None

    def __post_init__(self) -> None:
        for field_name in ("A", "b", "T"):
            value = getattr(self, field_name)
            if not callable(value):
                object.__setattr__(self, field_name, _constant(as_array(value, field_name)))
        object.__setattr__(self, "tau", check_real(self.tau, "tau", gt=0))
        a0 = self.A_at(0.0)
        d = a0.shape[0]
        for t in (0.0, 0.5 * self.tau, self.tau):
            self.A_at(t, d)
            self.b_at(t, d)
            self.T_at(t)
        if self.m0 is not None:
            object.__setattr__(self, "m0", as_mean(self.m0, "m0", d))
        if self.C0 is not None:
            object.__setattr__(self, "C0", as_covariance(self.C0, "C0", d))

    @property
    def dim(self) -> int:
        return int(np.atleast_2d(np.asarray(self.A(0.0))).shape[0])

    def A_at(self, t: float, dim: int | None = None) -> np.ndarray:
        """A(t) as a finite (d, d) float64 matrix."""
        a = np.atleast_2d(np.asarray(self.A(float(t)), dtype=np.float64))
        if a.ndim != 2 or a.shape[0] != a.shape[1] or (dim is not None and a.shape[0] != dim):
            raise ValueError(f"A({t:g}) must be a square (d, d) matrix, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"A({t:g}) must be finite, got {a.tolist()}")
        return a

    def b_at(self, t: float, dim: int | None = None) -> np.ndarray:
        """b(t) as a finite (d,) float64 vector."""
        d = self.A_at(t).shape[0] if dim is None else dim
        b = np.atleast_1d(np.asarray(self.b(float(t)), dtype=np.float64))
        if b.shape != (d,):
            raise ValueError(f"b({t:g}) must be a vector of shape ({d},), got shape {b.shape}")
        if not np.all(np.isfinite(b)):
            raise ValueError(f"b({t:g}) must be finite, got {b.tolist()}")
        return b

    def T_at(self, t: float) -> float:
        """T(t), checked to be a finite number >= 0 (0: no noise at that time)."""
        value = np.asarray(self.T(float(t)), dtype=np.float64)
        if value.size != 1:
            raise ValueError(f"T({t:g}) must be a scalar temperature, got shape {value.shape}")
        temperature = float(value.reshape(()))
        if not (np.isfinite(temperature) and temperature >= 0):
            raise ValueError(
                f"the temperature must be positive (or zero: no noise); T({t:g}) = {temperature}"
            )
        return temperature

    def force(self, t: float, x: np.ndarray) -> np.ndarray:
        """F_t(x) = A(t) x + b(t) for points ``x`` of shape (N, d)."""
        return x @ self.A_at(t).T + self.b_at(t)

    def dA(self, t: float) -> np.ndarray:
        """dA/dt by second-order finite differences (one-sided at the ends of [0, tau])."""
        d = self.dim
        return _derivative(lambda s: self.A_at(s, d), float(t), self.tau)

    def db(self, t: float) -> np.ndarray:
        """db/dt by second-order finite differences (one-sided at the ends of [0, tau])."""
        d = self.dim
        return _derivative(lambda s: self.b_at(s, d), float(t), self.tau)


def _derivative(f: Callable[[float], np.ndarray], t: float, tau: float) -> np.ndarray:
    h = 1e-5 * tau
    if t - h < 0.0:
        return (-3.0 * f(t) + 4.0 * f(t + h) - f(t + 2 * h)) / (2 * h)
    if t + h > tau:
        return (3.0 * f(t) - 4.0 * f(t - h) + f(t - 2 * h)) / (2 * h)
    return (f(t + h) - f(t - h)) / (2 * h)


def _temperature_fn(T: float | ScalarFn) -> ScalarFn:
    if callable(T):
        return T
    return _constant(check_real(T, "T", gt=0))


class BuresGeodesic:
    """The W2 geodesic (McCann interpolation) between N(m0, C0) and N(m1, C1).

    With the optimal map x -> m1 + M (x - m0),
    M = C0^-1/2 (C0^1/2 C1 C0^1/2)^1/2 C0^-1/2, the geodesic at s in [0, 1] is
    N(m_s, C_s), m_s = (1 - s) m0 + s m1, C_s = M_s C0 M_s, M_s = (1 - s) I + s M.
    Its velocity field is the gradient u_s(x) = (M - I) M_s^-1 (x - m_s) + m1 - m0
    (per unit s; symmetric since M and M_s commute).
    """

    def __init__(self, m0: Any, C0: Any, m1: Any, C1: Any) -> None:
        self.m0 = as_mean(m0, "m0")
        d = self.m0.shape[0]
        self.C0 = as_covariance(C0, "C0", d)
        self.m1 = as_mean(m1, "m1", d)
        self.C1 = as_covariance(C1, "C1", d)
        root = sqrtm_spd(self.C0)
        inv_root = np.linalg.inv(root)
        m = inv_root @ sqrtm_spd(root @ self.C1 @ root) @ inv_root
        self.map = 0.5 * (m + m.T)
        self.dim = d

    def _check_s(self, s: float) -> float:
        s = float(s)
        if not (-1e-12 <= s <= 1 + 1e-12):
            raise ValueError(f"s must lie in [0, 1], got {s}")
        return min(max(s, 0.0), 1.0)

    def M(self, s: float) -> np.ndarray:
        s = self._check_s(s)
        return (1.0 - s) * np.eye(self.dim) + s * self.map

    def mean(self, s: float) -> np.ndarray:
        s = self._check_s(s)
        return (1.0 - s) * self.m0 + s * self.m1

    def cov(self, s: float) -> np.ndarray:
        ms = self.M(s)
        return ms @ self.C0 @ ms

    def d_mean(self, s: float) -> np.ndarray:
        return self.m1 - self.m0

    def d_cov(self, s: float) -> np.ndarray:
        ms, dm = self.M(s), self.map - np.eye(self.dim)
        return dm @ self.C0 @ ms + ms @ self.C0 @ dm

    def velocity_matrix(self, s: float) -> np.ndarray:
        """S_s = (M - I) M_s^-1, so that u_s(x) = S_s (x - m_s) + (m1 - m0)."""
        return (self.map - np.eye(self.dim)) @ np.linalg.inv(self.M(s))


def gaussian_path_protocol(
    mean: VectorFn,
    cov: MatrixFn,
    d_mean: VectorFn,
    d_cov: MatrixFn,
    tau: float,
    T: float | ScalarFn = 1.0,
    name: str = "gaussian path",
) -> Protocol:
    """The potential force that moves N(m_t, C_t) along a prescribed Gaussian path.

    The mean local velocity must be the gradient field nu_t(x) = S_t (x - m_t) + dm_t,
    with S_t symmetric solving S_t C_t + C_t S_t = dC_t; since
    nu = A x + b + T C^-1 (x - m), the force is A_t = S_t - T_t C_t^-1 (symmetric)
    and b_t = dm_t - A_t m_t. Along the path Sdot_t = v2(t)^2 / T_t, the equality
    case of the seed's speed limit. ``mean``, ``cov``, ``d_mean``, ``d_cov`` are
    callables of t in [0, tau]; the protocol starts from N(mean(0), cov(0)).
    """
    temperature = _temperature_fn(T)

    @lru_cache(maxsize=16)  # b(t) needs A(t) at the same t
    def A(t: float) -> np.ndarray:
        c = np.asarray(cov(t), dtype=float)
        s = lyapunov_velocity(c[None], np.asarray(d_cov(t), dtype=float)[None])[0]
        a = s - float(temperature(t)) * np.linalg.inv(c)
        a = 0.5 * (a + a.T)
        a.setflags(write=False)
        return a

    def b(t: float) -> np.ndarray:
        return d_mean(t) - A(t) @ mean(t)

    return Protocol(A, b, temperature, tau, name=name, m0=mean(0.0), C0=cov(0.0))


def geodesic_protocol(
    m0: Any, C0: Any, m1: Any, C1: Any, tau: float, T: float | ScalarFn = 1.0
) -> Protocol:
    """Drive N(m0, C0) to N(m1, C1) in time tau along the W2 geodesic at constant speed.

    v2(t) = W2(P_0, P_tau) / tau for all t, and at constant temperature
    S_tot = W2^2 / (tau T), the minimum over all protocols with these end points
    (seed 002, "minimum entropy production"; Aurell et al. 2012).
    """
    tau = check_real(tau, "tau", gt=0)
    g = BuresGeodesic(m0, C0, m1, C1)
    temperature = _temperature_fn(T)
    d_mean = g.d_mean(0.0) / tau

    @lru_cache(maxsize=16)  # b(t) needs A(t) at the same t
    def A(t: float) -> np.ndarray:
        # nu_t(x) = S_t (x - m_t) + dm_t with S_t = (M - I) M_s^-1 / tau, s = t / tau
        s = t / tau
        a = g.velocity_matrix(s) / tau - float(temperature(t)) * np.linalg.inv(g.cov(s))
        a = 0.5 * (a + a.T)
        a.setflags(write=False)
        return a

    def b(t: float) -> np.ndarray:
        return d_mean - A(t) @ g.mean(t / tau)

    return Protocol(A, b, temperature, tau, name="W2 geodesic", m0=g.m0, C0=g.C0)


def stiffness_ramp(
    k0: float,
    k1: float,
    tau: float,
    T: float = 1.0,
    dim: int = 1,
    center: Any = None,
) -> Protocol:
    """Harmonic trap U_t(x) = k_t |x - c|^2 / 2, k_t = k0 + (k1 - k0) t / tau.

    Starts in equilibrium, N(c, T / k0 I); at the end the state lags behind
    N(c, T / k1 I) unless tau is long.
    """
    k0, k1 = check_real(k0, "k0", gt=0), check_real(k1, "k1", gt=0)
    tau, T = check_real(tau, "tau", gt=0), check_real(T, "T", gt=0)
    dim = check_int(dim, "dim", ge=1)
    c = np.zeros(dim) if center is None else as_mean(center, "center", dim)
    eye = np.eye(dim)

    def k(t: float) -> float:
        return k0 + (k1 - k0) * t / tau

    return Protocol(
        A=lambda t: -k(t) * eye,
        b=lambda t: k(t) * c,
        T=_constant(T),
        tau=tau,
        name="stiffness ramp",
        m0=c,
        C0=(T / k0) * eye,
    )


def quench(k0: float, k1: float, tau: float, T: float = 1.0, dim: int = 1) -> Protocol:
    """Sudden quench: the stiffness jumps from k0 to k1 at t = 0, then the state relaxes.

    Starts in equilibrium of the old trap, N(0, T / k0 I), under the constant force
    F(x) = -k1 x. The jump itself costs the work <U_1 - U_0> = (k1 - k0) d T / (2 k0)
    at t = 0 but produces no entropy (P does not change during it); the rates on
    [0, tau] describe the relaxation that follows.
    """
    k0, k1 = check_real(k0, "k0", gt=0), check_real(k1, "k1", gt=0)
    tau, T = check_real(tau, "tau", gt=0), check_real(T, "T", gt=0)
    dim = check_int(dim, "dim", ge=1)
    eye = np.eye(dim)
    return Protocol(
        A=-k1 * eye,
        b=np.zeros(dim),
        T=T,
        tau=tau,
        name="sudden quench",
        m0=np.zeros(dim),
        C0=(T / k0) * eye,
    )


def rotational(
    k: float, omega: float, tau: float, T: float = 1.0, m0: Any = None, C0: Any = None
) -> Protocol:
    """Non-potential force in 2-D: F(x) = A x, A = [[-k, -omega], [omega, -k]].

    The part omega [[0, -1], [1, 0]] x is a rotation, not a gradient, so the mean
    local velocity has a divergence-free part: Sdot > v2^2 / T strictly whenever
    omega != 0 (even in the stationary state N(0, T/k I), where v2 = 0 but
    Sdot = 2 omega^2 / k). Default start: N((1, 0), diag(1, 0.25)) (not stationary).
    """
    k, tau, T = (check_real(v, n, gt=0) for v, n in ((k, "k"), (tau, "tau"), (T, "T")))
    omega = check_real(omega, "omega")
    a = np.array([[-k, -omega], [omega, -k]])
    return Protocol(
        A=a,
        b=np.zeros(2),
        T=T,
        tau=tau,
        name="rotational force",
        m0=np.array([1.0, 0.0]) if m0 is None else m0,
        C0=np.diag([1.0, 0.25]) if C0 is None else C0,
    )
