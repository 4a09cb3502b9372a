"""Linear Fokker-Planck thermodynamics (seed 002) against independent references.

References: the matrix exponential and ``scipy.linalg.solve_continuous_lyapunov``
for the moments, a finite-volume Fokker-Planck solver on a fine 1-D grid
(``scipy.sparse.linalg.expm_multiply``) for Sdot and the W1 speed, finite
differences of W2 between Gaussians for the W2 speed, the McCann interpolation
for the geodesic protocol, and Euler-Maruyama particles for the moments.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad, simpson
from scipy.linalg import expm, solve_continuous_lyapunov
from scipy.sparse.linalg import expm_multiply
from scipy.stats import multivariate_normal, norm

from ottokit import ot as okot
from ottokit import thermo
from ottokit._memory import MemoryEstimateError

T_EPS = 1e-10  # relative slack for inequalities between closed forms


def _random_spd(rng: np.random.Generator, d: int, low: float = 0.2) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + low * np.eye(d)


def _constant_protocol(A, b, T, tau, m0=None, C0=None) -> thermo.Protocol:
    return thermo.Protocol(A=np.asarray(A), b=np.asarray(b), T=T, tau=tau, m0=m0, C0=C0)


def test_moments_match_the_matrix_exponential():
    rng = np.random.default_rng(0)
    A = np.array([[-1.0, 0.8, 0.0], [-0.5, -0.7, 0.3], [0.2, 0.0, -1.5]])
    b, T = np.array([0.3, -0.2, 1.0]), 0.7
    m0, C0 = rng.standard_normal(3), _random_spd(rng, 3)
    sol = thermo.solve_moments(_constant_protocol(A, b, T, 2.0), m0, C0, t_eval=9)
    c_inf = solve_continuous_lyapunov(A, -2 * T * np.eye(3))
    for t, m, c in zip(sol.t, sol.mean, sol.cov, strict=True):
        e = expm(A * t)
        m_exact = e @ m0 + np.linalg.solve(A, (e - np.eye(3)) @ b)
        c_exact = c_inf + e @ (C0 - c_inf) @ e.T
        np.testing.assert_allclose(m, m_exact, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(c, c_exact, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(thermo.stationary_covariance(A, T), c_inf, rtol=1e-12)


def test_harmonic_trap_relaxes_to_T_over_k():
    """The convention: dx = -k x dt + sqrt(2T) dW has stationary state N(0, T/k)."""
    k, T = 2.5, 0.8
    p = thermo.quench(1.0, k, tau=12.0, T=T, dim=2)
    sol = thermo.solve_moments(p, t_eval=5)
    np.testing.assert_allclose(sol.cov[-1], T / k * np.eye(2), rtol=1e-9)
    np.testing.assert_allclose(thermo.stationary_covariance(-k * np.eye(2), T), T / k * np.eye(2))


def test_particles_reproduce_the_moments():
    p = thermo.rotational(1.0, 2.0, tau=1.0, T=0.5)
    est = thermo.simulate_particles(p, 40_000, 500, n_out=6, seed=3)
    sol = thermo.solve_moments(p, t_eval=est.t)
    # 1/sqrt(N) ~ 0.005; Euler-Maruyama bias O(dt) ~ 0.002
    np.testing.assert_allclose(est.mean, sol.mean, atol=0.03)
    np.testing.assert_allclose(est.cov, sol.cov, atol=0.03)


def test_fokker_planck_pde_on_a_grid():
    """Finite volumes for d_t P = -d_x[(a x + c) P - T d_x P]; Sdot = int J^2/(P T), v1 by CDFs."""
    a, c, T = -2.0, 0.5, 0.7
    m0, v0 = 1.0, 0.25
    edges = np.linspace(-6.0, 7.0, 1201)
    h = edges[1] - edges[0]
    x = 0.5 * (edges[1:] + edges[:-1])
    faces = edges[1:-1]
    drift = a * faces + c
    n = len(x)
    # J_{i+1/2} = drift (P_i + P_{i+1}) / 2 - T (P_{i+1} - P_i) / h, no flux at the ends
    j_lo = sp.diags([0.5 * drift + T / h], [0], shape=(n - 1, n)) + sp.diags(
        [0.5 * drift - T / h], [1], shape=(n - 1, n)
    )
    div = (sp.eye(n, n - 1, k=-1) - sp.eye(n, n - 1)) / h
    generator = (div @ j_lo).tocsr()
    p0 = norm.pdf(x, m0, np.sqrt(v0))
    p0 /= p0.sum() * h
    times = np.array([0.1, 0.3, 0.6])
    delta = 1e-3

    protocol = _constant_protocol([[a]], [c], T, 1.0, [m0], [[v0]])
    sol = thermo.solve_moments(protocol, t_eval=np.concatenate([[0.0], times, [1.0]]))
    th = thermo.thermodynamics(sol)
    w1 = thermo.w1_speed(sol)
    # the semigroup property: each window starts from the last state, not again from p0
    state, t_state = p0, 0.0
    for i, t in enumerate(times, start=1):
        early = expm_multiply(
            generator, state, start=0.0, stop=t - delta - t_state, num=2, endpoint=True
        )[-1]
        before, p, after = expm_multiply(
            generator, early, start=0.0, stop=2 * delta, num=3, endpoint=True
        )
        state, t_state = after, t + delta
        mean = np.sum(x * p) * h
        var = np.sum((x - mean) ** 2 * p) * h
        flux = j_lo @ p
        p_face = 0.5 * (p[1:] + p[:-1])
        inside = p_face > 0  # far tails underflow to 0, where the flux is 0 too
        sdot = np.sum(flux[inside] ** 2 / (p_face[inside] * T)) * h
        cdf_lo, cdf_hi = np.cumsum(before) * h, np.cumsum(after) * h
        v1 = np.sum(np.abs(cdf_hi - cdf_lo)) * h / (2 * delta)  # W1 = int |F - G| dx in 1-D
        assert mean == pytest.approx(sol.mean[i, 0], rel=1e-4)
        assert var == pytest.approx(sol.cov[i, 0, 0], rel=1e-4)
        assert sdot == pytest.approx(th.entropy_production_rate[i], rel=1e-3)
        assert v1 == pytest.approx(w1.upper[i], rel=1e-3)
        assert w1.exact and w1.lower[i] == w1.upper[i]


def test_w2_speed_is_the_metric_derivative_of_w2():
    p = thermo.rotational(1.0, 2.0, tau=1.0, T=1.0)
    t = np.array([0.2, 0.5, 0.8])
    h = 1e-3
    grid = np.sort(np.concatenate([[0.0], t - h, t, t + h, [1.0]]))
    sol = thermo.solve_moments(p, t_eval=grid)
    v2 = thermo.w2_speed(sol)
    for s in t:
        i, lo, hi = (int(np.argmin(np.abs(grid - u))) for u in (s, s - h, s + h))
        fd = okot.w2_gaussian(sol.mean[lo], sol.cov[lo], sol.mean[hi], sol.cov[hi]) / (2 * h)
        assert v2[i] == pytest.approx(fd, rel=1e-5)


def test_w1_speed_1d_against_quantile_w1():
    protocol = thermo.stiffness_ramp(1.0, 3.0, tau=1.0, T=0.5, dim=1, center=[0.2])
    h = 1e-3
    grid = np.array([0.0, 0.4 - h, 0.4, 0.4 + h, 1.0])
    sol = thermo.solve_moments(protocol, [1.0], [[0.3]], t_eval=grid)
    z = norm.ppf((np.arange(200_000) + 0.5) / 200_000)
    lo = sol.mean[1, 0] + np.sqrt(sol.cov[1, 0, 0]) * z
    hi = sol.mean[3, 0] + np.sqrt(sol.cov[3, 0, 0]) * z
    fd = okot.w_1d(lo, hi, 1) / (2 * h)
    w1 = thermo.w1_speed(sol)
    assert w1.upper[2] == pytest.approx(fd, rel=1e-3)
    assert w1.upper[2] < thermo.w2_speed(sol)[2]


def test_w1_speed_bounds_in_2d():
    for p in (
        thermo.rotational(1.0, 2.0, 1.0),
        thermo.geodesic_protocol(
            [0, 0], np.diag([1.0, 0.25]), [1.0, 0.5], [[0.5, 0.2], [0.2, 1.0]], 1.0
        ),
    ):
        sol = thermo.solve_moments(p, t_eval=21)
        w1 = thermo.w1_speed(sol)
        assert not w1.exact
        assert np.all(w1.lower <= w1.upper * (1 + 1e-6))
        assert np.all(w1.upper <= thermo.w2_speed(sol) * (1 + T_EPS))
    # an isotropic dilation: the radial test function |x - m| attains the upper bound
    sol = thermo.solve_moments(thermo.stiffness_ramp(1.0, 4.0, 1.0, dim=2), t_eval=11)
    w1 = thermo.w1_speed(sol)
    np.testing.assert_allclose(w1.lower[1:], w1.upper[1:], rtol=1e-8)
    # a pure translation: v1 = v2 = |dm|
    g = thermo.geodesic_protocol([0, 0], np.eye(2), [3.0, 4.0], np.eye(2), tau=2.0)
    sol = thermo.solve_moments(g, t_eval=5)
    w1 = thermo.w1_speed(sol)
    np.testing.assert_allclose(w1.upper, 2.5, rtol=1e-9)
    np.testing.assert_allclose(w1.lower, 2.5, rtol=1e-5)  # the best of 180 directions
    np.testing.assert_allclose(thermo.w2_speed(sol), 2.5, rtol=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rotation=st.floats(0.0, 3.0), symmetric=st.booleans())
def test_speed_limit_and_its_equality_case(seed, rotation, symmetric):
    rng = np.random.default_rng(seed)
    d = 2
    s = rng.standard_normal((d, d))
    A = -(s @ s.T) - 0.3 * np.eye(d)
    if not symmetric:
        A = A + rotation * np.array([[0.0, -1.0], [1.0, 0.0]])
    T = float(rng.uniform(0.2, 2.0))
    p = _constant_protocol(A, rng.standard_normal(d), T, 1.0)
    sol = thermo.solve_moments(p, rng.standard_normal(d), _random_spd(rng, d), t_eval=11)
    th = thermo.thermodynamics(sol)
    sdot, excess = th.entropy_production_rate, th.excess_rate
    scale = sdot.max()
    assert np.all(sdot >= excess - T_EPS * scale)
    np.testing.assert_allclose(excess + th.housekeeping_rate, sdot, rtol=1e-10, atol=1e-12)
    if symmetric or rotation == 0.0:
        assert th.housekeeping_rate.max() <= 1e-10 * scale
    elif rotation > 0.1:
        assert np.all(sdot - excess > 1e-6 * scale)
    lim = thermo.speed_limit(sol)
    assert lim.entropy_production >= lim.length_bound * (1 - T_EPS)
    assert lim.length_bound >= lim.distance_bound * (1 - T_EPS)


def test_rotational_force_from_its_stationary_state():
    k, omega, T = 1.5, 2.0, 0.8
    p = thermo.rotational(k, omega, 1.0, T, m0=[0.0, 0.0], C0=T / k * np.eye(2))
    th = thermo.thermodynamics(thermo.solve_moments(p, t_eval=5))
    np.testing.assert_allclose(th.w2_speed, 0.0, atol=1e-12)
    np.testing.assert_allclose(th.entropy_production_rate, 2 * omega**2 / k, rtol=1e-10)
    # steady state: no change of S or <U>; the heat given to the bath is the work of the rotation
    np.testing.assert_allclose(th.d_system_entropy, 0.0, atol=1e-12)
    np.testing.assert_allclose(-th.heat_rate, T * th.entropy_production_rate, rtol=1e-10)
    np.testing.assert_allclose(th.work_rate, -th.heat_rate, rtol=1e-10)


def test_geodesic_protocol_attains_the_minimum():
    m0, C0 = np.array([0.0, 0.0]), np.diag([1.0, 0.25])
    m1, C1 = np.array([1.0, 0.5]), np.array([[0.5, 0.2], [0.2, 1.0]])
    tau, T = 0.7, 1.3
    p = thermo.geodesic_protocol(m0, C0, m1, C1, tau, T)
    sol = thermo.solve_moments(p, t_eval=101)
    geodesic = thermo.BuresGeodesic(m0, C0, m1, C1)
    for t, m, c in zip(sol.t, sol.mean, sol.cov, strict=True):
        np.testing.assert_allclose(m, geodesic.mean(t / tau), atol=1e-9)
        np.testing.assert_allclose(c, geodesic.cov(t / tau), atol=1e-9)
    np.testing.assert_allclose(sol.cov[-1], C1, atol=1e-9)
    w2 = okot.w2_gaussian(m0, C0, m1, C1)
    th = thermo.thermodynamics(sol)
    np.testing.assert_allclose(th.w2_speed, w2 / tau, rtol=1e-9)
    np.testing.assert_allclose(th.entropy_production_rate, th.excess_rate, rtol=1e-9)
    lim = thermo.speed_limit(sol)
    assert lim.entropy_production == pytest.approx(w2**2 / (tau * T), rel=1e-9)
    assert lim.distance_bound == pytest.approx(w2**2 / (tau * T), rel=1e-12)

    # the straight line between the covariances has the same ends and costs more
    line = thermo.gaussian_path_protocol(
        mean=lambda t: m0 + (m1 - m0) * t / tau,
        cov=lambda t: C0 + (C1 - C0) * t / tau,
        d_mean=lambda t: (m1 - m0) / tau,
        d_cov=lambda t: (C1 - C0) / tau,
        tau=tau,
        T=T,
    )
    line_sol = thermo.solve_moments(line, t_eval=101)
    np.testing.assert_allclose(line_sol.cov[-1], C1, atol=1e-9)
    line_lim = thermo.speed_limit(line_sol)
    assert line_lim.entropy_production > lim.entropy_production * (1 + 1e-3)


def test_time_dependent_temperature_bound():
    temperature = lambda t: 1.0 + 0.8 * np.sin(np.pi * t)  # noqa: E731
    p = thermo.geodesic_protocol([0.0], [[1.0]], [2.0], [[0.25]], tau=1.0, T=temperature)
    sol = thermo.solve_moments(p, t_eval=201)
    th = thermo.thermodynamics(sol)
    np.testing.assert_allclose(th.entropy_production_rate, th.excess_rate, rtol=1e-9)
    lim = thermo.speed_limit(sol)
    w2 = okot.w2_gaussian(0.0, 1.0, 2.0, 0.25)
    assert lim.integrated_temperature == pytest.approx(1.0 + 1.6 / np.pi, rel=1e-6)
    # constant speed: S_tot = (W2/tau)^2 int dt/T > W2^2 / int T dt (Cauchy-Schwarz)
    expected = w2**2 * quad(lambda t: 1.0 / temperature(t), 0.0, 1.0, epsabs=1e-13)[0]
    assert lim.entropy_production == pytest.approx(expected, rel=1e-6)
    assert lim.entropy_production > lim.distance_bound * 1.01


def test_tur_closed_form_against_finite_differences_and_monte_carlo():
    p = thermo.rotational(1.0, 2.0, tau=1.0, T=0.7)
    sol = thermo.solve_moments(p, t_eval=401)
    th = thermo.thermodynamics(sol)
    r = thermo.Quadratic(np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([0.3, -1.0]))
    closed = thermo.tur(sol, r)
    second = sol.cov + np.einsum("ni,nj->nij", sol.mean, sol.mean)
    mean_r = 0.5 * np.einsum("ij,nji->n", r.Q, second) + sol.mean @ r.q
    np.testing.assert_allclose(
        closed.d_mean_r[5:-5], np.gradient(mean_r, sol.t)[5:-5], rtol=1e-4, atol=1e-4
    )
    # Monte Carlo on every 40th time (the same standard normals at each time)
    coarse = thermo.solve_moments(p, t_eval=11)
    mc = thermo.tur(coarse, r.grad, n_samples=100_000, seed=1)
    np.testing.assert_allclose(mc.d_mean_r, closed.d_mean_r[::40], atol=0.05)
    np.testing.assert_allclose(mc.mean_grad_sq, closed.mean_grad_sq[::40], rtol=0.02)
    assert np.all(closed.bound <= th.excess_rate * (1 + T_EPS))
    assert np.all(closed.speed <= th.w2_speed * (1 + T_EPS))
    assert np.all(th.excess_rate <= th.entropy_production_rate * (1 + T_EPS))


def test_tur_for_a_non_quadratic_observable():
    """r(x) = sin(x_1) + x_2^3/3: d_t<r> = E[grad r . nu] against finite differences of <r>."""
    p = thermo.geodesic_protocol(
        [0, 0], np.diag([1.0, 0.25]), [1, 0.5], [[0.5, 0.2], [0.2, 1.0]], 1.0
    )
    t = np.array([0.0, 0.5 - 1e-3, 0.5, 0.5 + 1e-3, 1.0])
    sol = thermo.solve_moments(p, t_eval=t)
    grad = lambda x: np.stack([np.cos(x[:, 0]), x[:, 1] ** 2], axis=1)  # noqa: E731
    bound = thermo.tur(sol, grad, n_samples=200_000, seed=0)
    z = np.random.default_rng(5).standard_normal((200_000, 2))

    def mean_r(i: int) -> float:
        x = sol.mean[i] + z @ np.linalg.cholesky(sol.cov[i]).T
        return float(np.mean(np.sin(x[:, 0]) + x[:, 1] ** 3 / 3))

    fd = (mean_r(3) - mean_r(1)) / 2e-3
    assert bound.d_mean_r[2] == pytest.approx(fd, abs=0.02)
    assert bound.bound[2] <= thermo.w2_speed(sol)[2] ** 2 * 1.01


def test_second_law_first_law_and_entropy():
    rng = np.random.default_rng(4)
    protocols = [
        thermo.stiffness_ramp(1.0, 3.0, 1.0, 0.8, dim=2, center=[0.5, -0.5]),
        thermo.rotational(1.0, 1.5, 1.0, 0.6),
        thermo.Protocol(
            A=lambda t: np.array([[-1.0 - t, 0.4 * t], [-0.4 * t, -2.0]]),
            b=lambda t: np.array([np.sin(3 * t), t]),
            T=lambda t: 1.0 + 0.5 * t,
            tau=1.0,
            m0=rng.standard_normal(2),
            C0=_random_spd(rng, 2),
        ),
    ]
    for p in protocols:
        sol = thermo.solve_moments(p, t_eval=1601)
        th = thermo.thermodynamics(sol)
        # second law as an identity: Sdot = dS/dt - Qdot / T
        np.testing.assert_allclose(
            th.entropy_production_rate, th.d_system_entropy - th.heat_rate / th.T, rtol=1e-9
        )
        # first law: d<U>/dt = Wdot + Qdot (numerical derivative of <U>)
        inner = slice(2, -2)
        np.testing.assert_allclose(
            np.gradient(th.internal_energy, sol.t)[inner],
            (th.work_rate + th.heat_rate)[inner],
            rtol=1e-4,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            np.gradient(th.system_entropy, sol.t)[inner], th.d_system_entropy[inner], atol=1e-5
        )
    ref = multivariate_normal(np.zeros(2), sol.cov[-1]).entropy()
    assert th.system_entropy[-1] == pytest.approx(ref, rel=1e-12)


def test_particle_estimator_converges_to_the_closed_form():
    p = thermo.geodesic_protocol(
        [0, 0], np.diag([1.0, 0.25]), [1, 0.5], [[0.5, 0.2], [0.2, 1.0]], 1.0
    )
    errors = []
    for n in (300, 30_000):
        est = thermo.simulate_particles(p, n, 400, n_out=21, seed=7)
        th = thermo.thermodynamics(thermo.solve_moments(p, t_eval=est.t))
        err_s = np.sqrt(
            np.mean((est.entropy_production_rate / th.entropy_production_rate - 1) ** 2)
        )
        err_v = np.sqrt(np.mean((est.w2_speed / th.w2_speed - 1) ** 2))
        errors.append((err_s, err_v))
    (s_small, v_small), (s_large, v_large) = errors
    # a factor 100 in N: about 10 in the error; the time step adds ~0.3 % bias
    assert s_large < 0.04 and v_large < 0.03
    assert s_large < s_small / 3 and v_large < v_small / 3


def test_rotational_diffusion_moments_closed_form_against_the_ode():
    """Closed-form moments (M_t = e^Lambda R(theta), c_t by quadrature) against the OU moment
    ODE solved by solve_moments from a Gaussian start, and dc/dt = 2 H c + 2 T."""
    proc = thermo.RotationalDiffusion(h=1.1, g=3.0, T_fin=0.5, tau=1.0)
    m0, C0 = np.array([1.0, -0.5]), np.array([[0.3, 0.1], [0.1, 0.2]])
    t = np.linspace(0.0, 1.0, 11)
    sol = thermo.solve_moments(proc.protocol(), m0, C0, t_eval=t)
    mean, cov = proc.moments(m0, C0, t)
    np.testing.assert_allclose(mean, sol.mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cov, sol.cov, rtol=0, atol=1e-9)
    h = 1e-5
    for s in (0.2, 0.6, 0.9):
        dc = (proc.variance(s + h) - proc.variance(s - h)) / (2 * h)
        assert abs(dc - (2 * proc.H(s) * proc.variance(s) + 2 * proc.temperature(s))) < 1e-8
    assert proc.variance(0.0) == 0.0
    # g = 0: no rotation; the mean only shrinks by e^{int H} = e^{-h/2 - T_fin/3} at tau
    still = thermo.RotationalDiffusion(g=0.0)
    np.testing.assert_allclose(still.propagator(1.0), np.exp(-0.55 - 0.5 / 3) * np.eye(2),
                               rtol=1e-14)
    assert abs(proc.angle(1.0) - 1.5) < 1e-15  # int_0^1 3 (1 - t) dt


def test_rotational_diffusion_conditional_moments_against_particles():
    """From a point y the state is N(M_t y, c_t I); Euler-Maruyama particles agree within the
    statistical error (N = 40,000: ~0.01) plus the O(dt) bias."""
    proc = thermo.RotationalDiffusion(h=1.1, g=5.0, T_fin=0.5, tau=1.0)
    y = np.array([0.8, 0.6])
    est = thermo.simulate_particles(
        proc.protocol(), 40_000, 400, m0=y, C0=1e-12 * np.eye(2), n_out=5, seed=2
    )
    mean, cov = proc.moments(y, np.zeros((2, 2)), est.t)
    np.testing.assert_allclose(est.mean, mean, atol=0.01)
    np.testing.assert_allclose(est.cov, cov, atol=0.01)
    assert np.max(np.abs(cov[-1] - proc.variance(1.0) * np.eye(2))) < 1e-15


def test_rotational_part_costs_housekeeping_power():
    """T Sdot = v2^2 + E|nu - grad phi|^2: the rotation's share is zero for g = 0 and grows with
    g; with T_0 = 0 the entropy production rate is infinite at t = 0 but T Sdot is not."""
    m0, C0 = np.array([0.5, 0.0]), np.diag([0.6, 0.2])
    powers = {}
    for g in (0.0, 3.0, 5.0):
        proc = thermo.RotationalDiffusion(g=g)
        th = thermo.thermodynamics(thermo.solve_moments(proc.protocol(), m0, C0, t_eval=41))
        np.testing.assert_allclose(
            th.mean_squared_velocity, th.w2_speed**2 + th.housekeeping_power, rtol=1e-9
        )
        assert th.T[0] == 0 and np.isinf(th.entropy_production_rate[0])
        assert np.all(np.isfinite(th.entropy_production_rate[1:]))
        powers[g] = float(simpson(th.housekeeping_power, x=th.t))
    assert powers[0.0] < 1e-9 < powers[3.0] < powers[5.0]


def test_zero_temperature_is_allowed_and_divides_to_infinity():
    from ottokit.thermo._linalg import per_temperature

    p = thermo.Protocol(A=-np.eye(1), b=np.zeros(1), T=lambda t: t, tau=1.0)
    assert p.T_at(0.0) == 0.0
    np.testing.assert_array_equal(
        per_temperature(np.array([1.0, 0.0, 2.0]), np.array([0.0, 0.0, 4.0])), [np.inf, 0.0, 0.5]
    )


def test_bad_input():
    with pytest.raises(ValueError, match="tau must be a positive"):
        _constant_protocol([[-1.0]], [0.0], 1.0, 0.0)
    with pytest.raises(ValueError, match="temperature must be positive"):
        _constant_protocol([[-1.0]], [0.0], -1.0, 1.0)
    with pytest.raises(ValueError, match="temperature must be positive"):
        thermo.Protocol(A=-np.eye(1), b=np.zeros(1), T=lambda t: 1.0 - 2 * t, tau=1.0)
    with pytest.raises(ValueError, match="square"):
        _constant_protocol(np.zeros((2, 3)), [0.0, 0.0], 1.0, 1.0)
    with pytest.raises(ValueError, match=r"b\(0\) must be a vector of shape \(2,\)"):
        _constant_protocol(-np.eye(2), [0.0], 1.0, 1.0)
    with pytest.raises(ValueError, match="must be finite"):
        _constant_protocol([[np.nan]], [0.0], 1.0, 1.0)
    with pytest.raises(ValueError, match="k0 must be a positive"):
        thermo.stiffness_ramp(0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="T must be a positive"):
        thermo.quench(1.0, 2.0, 1.0, T=0.0)
    with pytest.raises(ValueError, match="C1 must be positive definite"):
        thermo.geodesic_protocol([0, 0], np.eye(2), [0, 0], [[1.0, 2.0], [2.0, 1.0]], 1.0)
    p = _constant_protocol(-np.eye(2), np.zeros(2), 1.0, 1.0)
    with pytest.raises(ValueError, match="give the initial state"):
        thermo.solve_moments(p)
    with pytest.raises(ValueError, match=r"m0 must be a vector of shape \(2,\)"):
        thermo.solve_moments(p, [0.0], np.eye(2))
    with pytest.raises(ValueError, match="C0 must be positive definite"):
        thermo.solve_moments(p, [0.0, 0.0], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="C0 must be finite"):
        thermo.solve_moments(p, [0.0, 0.0], np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match=r"t_eval must lie in \[0, tau\]"):
        thermo.solve_moments(p, [0.0, 0.0], np.eye(2), t_eval=[0.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="n_particles"):
        thermo.simulate_particles(p, 3, m0=[0.0, 0.0], C0=np.eye(2))
    with pytest.raises(ValueError, match="s must lie in"):
        thermo.BuresGeodesic([0.0], [[1.0]], [1.0], [[2.0]]).cov(1.5)
    with pytest.raises(ValueError, match="Q must be a finite"):
        thermo.Quadratic(np.eye(3), np.zeros(2))


def test_w1_speed_lower_bound_from_one_direction_and_its_default_seed():
    # a translation by dm = (2, 2, 2) per unit time: the projection on a unit direction e
    # is a 1-Lipschitz test function with speed |e . dm| <= |dm| = 2 sqrt(3) (the radial one
    # gives 0), so one direction already bounds v1 from below; in 3-D the directions are
    # random, drawn with seed 0 unless told otherwise, and another seed draws other ones
    g = thermo.geodesic_protocol(np.zeros(3), np.eye(3), [4.0, 4.0, 4.0], np.eye(3), tau=2.0)
    sol = thermo.solve_moments(g, t_eval=3)
    one = thermo.w1_speed(sol, n_directions=1, n_nodes=8)
    assert np.all(one.lower <= 2 * np.sqrt(3) * (1 + 1e-9)) and np.all(one.lower > 0)
    default = thermo.w1_speed(sol, n_directions=3, n_nodes=8).lower
    np.testing.assert_array_equal(default, thermo.w1_speed(sol, n_directions=3, n_nodes=8,
                                                           seed=0).lower)
    other = thermo.w1_speed(sol, n_directions=3, n_nodes=8, seed=1).lower
    assert not np.allclose(other, default, rtol=1e-6)


def test_w1_speed_reports_its_times_and_finds_an_axis_translation_with_two_directions():
    # 2-D directions are the half-circle angles k pi / n (pi itself is 0 reversed): with two,
    # the axes, a translation along the second axis at speed 2 is found exactly; the bounds
    # come with the path's times, and exact is True only in one dimension
    g = thermo.geodesic_protocol([0, 0], np.eye(2), [0.0, 4.0], np.eye(2), tau=2.0)
    sol = thermo.solve_moments(g, t_eval=3)
    w1 = thermo.w1_speed(sol, n_directions=2, n_nodes=1)
    np.testing.assert_allclose(w1.lower, 2.0, rtol=1e-12)
    np.testing.assert_array_equal(w1.t, sol.t)
    assert w1.exact is False
    one_d = thermo.solve_moments(thermo.geodesic_protocol([0], [[1.0]], [1.0], [[4.0]], 1.0),
                                 t_eval=3)
    w1_1d = thermo.w1_speed(one_d)
    np.testing.assert_array_equal(w1_1d.t, one_d.t)
    assert w1_1d.exact is True


def test_quadratic_observable_normalises_its_parts_and_names_the_bad_one():
    # r(x) = x^T Q x / 2 + q . x in d = 1 from scalars: q becomes the vector (d,), Q its
    # symmetric part as a float64 matrix, and grad r(x) = Q x + q
    r = thermo.Quadratic(2, 0.5)
    assert r.q.shape == (1,) and r.q.dtype == np.float64
    np.testing.assert_array_equal(r.Q, [[2.0]])
    np.testing.assert_array_equal(r.grad(np.array([[1.5], [-1.0]])), [[3.5], [-1.5]])
    with pytest.raises(
        ValueError, match=r"^q must be finite \(no NaN or inf\), got \[0\.0, nan\]$"
    ):
        thermo.Quadratic(np.eye(2), [0.0, np.nan])
    shape = r"^q must be a vector of shape \(d,\), got shape \(2, 2\)$"
    with pytest.raises(ValueError, match=shape):
        thermo.Quadratic(np.eye(2), np.eye(2))
    with pytest.raises(TypeError, match=r"^Q must be an array of real numbers, got 'identity'"):
        thermo.Quadratic("identity", np.zeros(2))


def test_gaussian_entropy_matches_scipy_and_refuses_non_spd():
    rng = np.random.default_rng(3)
    covs = []
    for _ in range(4):
        a = rng.normal(size=(3, 3))
        covs.append(a @ a.T + 0.1 * np.eye(3))
    expected = [multivariate_normal(np.zeros(3), c).entropy() for c in covs]
    np.testing.assert_allclose(thermo.gaussian_entropy(np.stack(covs)), expected, rtol=1e-12)
    # a negative-definite matrix has det > 0 in even dimension: the sign must not be dropped
    with pytest.raises(ValueError, match=r"cov must be positive definite; cov\[1\]"):
        thermo.gaussian_entropy(np.stack([covs[0], -covs[1]]))


def test_hopeless_quadrature_and_particle_counts_are_refused(monkeypatch):
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "1G")
    path = thermo.solve_moments(thermo.rotational(1.0, 0.5, 1.0), t_eval=5)
    with pytest.raises(MemoryEstimateError, match=r"10000\^2 nodes.*lower n_nodes"):
        thermo.w1_speed(path, n_nodes=10_000)
    with pytest.raises(MemoryEstimateError, match="lower n_particles or n_steps"):
        thermo.simulate_particles(thermo.stiffness_ramp(1.0, 2.0, 1.0), 10**9)


def test_quench_entropy_production_at_temperature_2_5_is_the_closed_form():
    """After a quench k0 -> k1 at temperature T, c(t) = T/k1 + (T/k0 - T/k1) e^{-2 k1 t} per
    axis, nu = (T/c - k1) x, so Sdot = d (T/c - k1)^2 c / T and S_tot = d [c/c_end - 1 -
    log(c/c_end)]_0^tau / 2 in closed form (both vanish at T/c = k1, and scale with T only
    through c)."""
    k0, k1, T, d, tau = 1.0, 3.0, 2.5, 2, 0.8
    sol = thermo.solve_moments(thermo.quench(k0, k1, tau=tau, T=T, dim=d), t_eval=41)
    c = T / k1 + (T / k0 - T / k1) * np.exp(-2 * k1 * sol.t)
    np.testing.assert_allclose(sol.cov[:, 0, 0], c, rtol=1e-9)
    th = thermo.thermodynamics(sol)
    np.testing.assert_allclose(th.entropy_production_rate, d * (T / c - k1) ** 2 * c / T, rtol=1e-8)
    ratio = c * k1 / T
    stot = 0.5 * d * ((ratio[0] - 1 - np.log(ratio[0])) - (ratio[-1] - 1 - np.log(ratio[-1])))
    assert th.total_entropy_production == pytest.approx(stot, rel=1e-5)
    np.testing.assert_allclose(th.T, T, rtol=0, atol=0)


def _two_d_solution():
    return thermo.solve_moments(thermo.rotational(1.0, 2.0, tau=1.0, T=0.7), t_eval=5)


def _nan_late(value, t):
    return np.full_like(np.asarray(value, dtype=float), np.nan) if t > 0.75 else value


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: thermo.solve_moments(thermo.quench(1.0, 2.0, 1.0, dim=2), m0=[np.nan, 0.0]),
         ValueError, r"m0 must be finite \(no NaN or inf\)"),
        (lambda: thermo.solve_moments(thermo.quench(1.0, 2.0, 1.0), t_eval=[0.0, 0.5]),
         ValueError, "increasing vector of at least 3 times"),
        (lambda: thermo.solve_moments(thermo.quench(1.0, 2.0, 1.0), t_eval=[0.0, 0.6, 0.3]),
         ValueError, "^t_eval must be an increasing vector of at least 3 times$"),
        (lambda: thermo.solve_moments(thermo.quench(1.0, 2.0, 1.0), t_eval=[0.0, 0.5, 0.5, 1]),
         ValueError, "^t_eval must be an increasing vector of at least 3 times$"),
        (lambda: thermo.solve_moments(thermo.quench(1.0, 2.0, 1.0), t_eval=[0.0, np.nan, 1.0]),
         ValueError, r"^t_eval must be finite \(no NaN or inf\); t_eval\[1\] = nan$"),
        (lambda: thermo.simulate_particles(_constant_protocol(-np.eye(1), [0.0], 1.0, 1.0), 8),
         ValueError, "give the initial state m0, C0"),
        (lambda: thermo.Protocol(A=lambda t: _nan_late(-np.eye(1), t), b=[0.0], T=1.0, tau=1.0),
         ValueError, r"A\(1\) must be finite"),
        (lambda: thermo.Protocol(A=-np.eye(1), b=lambda t: _nan_late([0.0], t), T=1.0, tau=1.0),
         ValueError, r"b\(1\) must be finite"),
        (lambda: thermo.Protocol(A=-np.eye(2), b=np.zeros(2), T=lambda t: [1.0, 2.0], tau=1.0),
         ValueError, r"T\(0\) must be a scalar temperature, got shape \(2,\)"),
        (lambda: thermo.stationary_covariance(np.ones((2, 3)), 1.0),
         ValueError, r"A must be a square \(d, d\) matrix"),
        (lambda: thermo.stationary_covariance([[0.5, 0.0], [0.0, -1.0]], 1.0),
         ValueError, "A must be stable"),
        (lambda: thermo.gaussian_entropy(np.ones(3)), ValueError, r"\(\.\.\., d, d\) stack"),
        (lambda: thermo.gaussian_entropy([[1.0, 0.5], [0.0, 1.0]]),
         ValueError, "cov must be symmetric"),
        (lambda: thermo.tur(_two_d_solution(), thermo.Quadratic(np.eye(3), np.zeros(3))),
         ValueError, "observable has dimension 3, the path 2"),
        (lambda: thermo.tur(_two_d_solution(), lambda x: x[:, :1], n_samples=16),
         ValueError, r"gradient must return shape \(16, 2\)"),
        (lambda: thermo.tur(_two_d_solution(), "x ** 2"), TypeError, "observable must be a Quad"),
    ],
    ids=[
        "m0-nan", "two-times", "unsorted-times", "repeated-time", "nan-time", "no-start", "A-nan",
        "b-nan", "T-vector", "A-not-square", "A-unstable", "cov-vector", "cov-asymmetric", "Q-dim",
        "grad-shape", "observable-str",
    ],
)
def test_bad_input_names_what_is_wrong(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_zero_temperature_collapse_loses_definiteness_and_raises():
    """At T = 0 the trap -50 x shrinks C0 = I to e^{-100 t} I, below the smallest double by
    t = 8: the covariance is no longer positive definite and no entropy is defined."""
    p = thermo.Protocol(A=-50.0 * np.eye(1), b=[0.0], T=lambda t: 0.0, tau=8.0)
    with pytest.raises(RuntimeError, match="lost positive definiteness"):
        thermo.solve_moments(p, [0.0], [[1.0]], t_eval=5)


@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
def test_a_moment_ode_that_blows_up_inside_the_horizon_raises():
    """A(t) = 1/(1/2 - t)^2 gives m(t) = m0 exp(1/(1/2 - t) - 2), infinite at t = 1/2 < tau."""
    p = thermo.Protocol(A=lambda t: [[1.0 / (0.5 - t) ** 2]], b=[0.0], T=1.0, tau=0.8)
    with pytest.raises(RuntimeError, match="moment ODE failed for protocol 'user'"):
        thermo.solve_moments(p, [1.0], [[1.0]], t_eval=3, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: thermo.RotationalDiffusion(h=np.nan), "h must be finite, got nan"),
        (lambda: thermo.RotationalDiffusion(T_fin=0.0), "T_fin must be positive and finite"),
        (lambda: thermo.RotationalDiffusion(tau=2.0).temperature(2.5), r"\[0, tau\] = \[0, 2\]"),
        (lambda: thermo.RotationalDiffusion().moments([0, 0], np.eye(3), 0.5), r"\(2, 2\)"),
        (lambda: thermo.RotationalDiffusion().moments([0, 0], [[1, 2], [2, 1]], 0.5), "semi-def"),
    ],
    ids=["h-nan", "T_fin-zero", "t-beyond-tau", "C0-shape", "C0-indefinite"],
)
def test_rotational_diffusion_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_w1_speed_closed_forms_in_two_to_four_dimensions():
    """Cases with a closed-form v1: a stretch of one axis is one-dimensional (v1 = |d sigma|
    sqrt(2/pi), which the projection on that axis attains); an isotropic dilation of N(0, c I)
    has v1 = |s| sqrt(c) E|z| with E|z| the chi mean; a translation has v1 = |dm|."""
    tau, T = 0.5, 1.7
    p = thermo.geodesic_protocol([0, 0], np.diag([1.0, 0.25]), [0, 0], np.diag([4.0, 0.25]),
                                 tau=tau, T=T)
    w1 = thermo.w1_speed(thermo.solve_moments(p, t_eval=3))
    exact = np.sqrt(2 / np.pi) / tau  # sigma_1 goes from 1 to 2 in time tau
    np.testing.assert_allclose(w1.lower, exact, rtol=1e-12)
    # the upper bound E|grad phi| = E|s_1 y_1| is exact too, up to Gauss-Hermite's error on |y_1|
    np.testing.assert_allclose(w1.upper, exact, rtol=0.02)
    assert np.all(w1.upper >= w1.lower)

    chi_mean = {3: 2 * np.sqrt(2 / np.pi), 4: 3 * np.sqrt(np.pi / 2) / 2}
    # d = 3: tensor Gauss-Hermite, within 1e-3 at 24 nodes per axis (an odd count puts a node
    # at the centre, where |y| = 0); d = 4: 20,000 Monte Carlo draws, whose relative standard
    # error sd(|z|) / E|z| / sqrt(20,000) is below 0.003 (4 standard errors allowed)
    for d, n_nodes, rtol in ((3, 24, 1e-3), (3, 15, 6e-3), (4, 2, 0.012)):
        sol = thermo.solve_moments(thermo.stiffness_ramp(1.0, 4.0, 1.0, T=0.6, dim=d), t_eval=3)
        w1 = thermo.w1_speed(sol, n_nodes=n_nodes, seed=1)
        c = sol.cov[1:, 0, 0]
        expected = np.abs(sol.d_cov[1:, 0, 0] / (2 * c)) * np.sqrt(c) * chi_mean[d]
        np.testing.assert_allclose(w1.upper[1:], expected, rtol=rtol)  # odd n: a node at 0
        np.testing.assert_allclose(w1.lower[1:], w1.upper[1:], rtol=1e-12)
        again = thermo.w1_speed(sol, n_nodes=n_nodes, seed=1)
        np.testing.assert_array_equal(again.upper, w1.upper)  # the seed fixes the draws

    # a translation along an axis: the axis directions among the tried ones attain |dm|
    g = thermo.geodesic_protocol([0, 0, 0], np.eye(3), [0, 0, 2.0], np.eye(3), tau=0.5, T=0.4)
    w1 = thermo.w1_speed(thermo.solve_moments(g, t_eval=3), n_directions=7, n_nodes=8, seed=3)
    np.testing.assert_allclose(w1.lower, 4.0, rtol=1e-12)
    np.testing.assert_allclose(w1.upper, 4.0, rtol=1e-12)
    # in 3-D random directions are normalised: no test function steeper than 1-Lipschitz
    sol = thermo.solve_moments(thermo.geodesic_protocol(
        [0, 0, 0], np.eye(3), [1.0, -0.5, 0.3], np.diag([2.0, 0.5, 1.0]), tau=1.0), t_eval=5)
    w1 = thermo.w1_speed(sol, n_directions=200, n_nodes=16, seed=1)
    assert np.all(w1.lower <= w1.upper * (1 + 1e-3))
    assert np.all(w1.upper <= thermo.w2_speed(sol) * (1 + 1e-3))

    # nothing moves: v1 = 0 exactly (1-D, where the closed form divides by d sigma)
    w1 = thermo.w1_speed(thermo.solve_moments(thermo.quench(2.0, 2.0, 1.0, T=0.3), t_eval=5))
    assert w1.exact
    np.testing.assert_array_equal(w1.lower, 0.0)
    np.testing.assert_array_equal(w1.upper, 0.0)


def test_tur_is_saturated_by_the_otto_potential():
    """For r = phi_t, the Otto potential at one time (Q = S_t, q = dm_t - S_t m_t),
    d_t<r> = E[grad phi . nu] = E|grad phi|^2 = v2^2: the TUR is an equality there, even
    under a rotational force where Sdot > v2^2 / T; a constant r has zero speed and bound."""
    T = 0.7
    sol = thermo.solve_moments(thermo.rotational(1.0, 2.0, tau=1.0, T=T), t_eval=5)
    th = thermo.thermodynamics(sol)
    s = thermo.otto_velocity(sol)
    i = 2
    phi = thermo.Quadratic(s[i], sol.d_mean[i] - s[i] @ sol.mean[i])
    bound = thermo.tur(sol, phi)
    v2 = th.w2_speed[i]
    assert bound.d_mean_r[i] == pytest.approx(v2**2, rel=1e-10)
    assert bound.mean_grad_sq[i] == pytest.approx(v2**2, rel=1e-10)
    assert bound.speed[i] == pytest.approx(v2, rel=1e-10)
    assert bound.bound[i] == pytest.approx(v2**2 / T, rel=1e-10)
    assert bound.bound[i] < th.entropy_production_rate[i] * 0.9
    assert np.all(bound.speed <= th.w2_speed * (1 + T_EPS))
    # Q enters only through its symmetric part
    skew = thermo.Quadratic(s[i] + np.array([[0.0, 0.7], [-0.7, 0.0]]), phi.q)
    np.testing.assert_allclose(thermo.tur(sol, skew).speed, bound.speed, rtol=1e-12)
    flat = thermo.tur(sol, thermo.Quadratic(np.zeros((2, 2)), np.zeros(2)))
    np.testing.assert_array_equal(flat.speed, 0.0)
    np.testing.assert_array_equal(flat.bound, 0.0)
    with pytest.raises(ValueError, match="^Q must be a finite"):
        thermo.Quadratic([[1.0, np.nan], [0.0, 1.0]], np.zeros(2))


def test_speed_limit_parts_at_temperature_0_6():
    """In the rotating steady state nothing moves (v2 = 0, W2 = 0) but S_tot = 2 omega^2 tau / k;
    along the geodesic S_tot = int v2^2/T dt = (int v2 dt)^2 / (tau T) = W2^2 / (tau T)."""
    k, omega, T, tau = 1.5, 2.0, 0.6, 0.8
    p = thermo.rotational(k, omega, tau, T, m0=[0.0, 0.0], C0=T / k * np.eye(2))
    sol = thermo.solve_moments(p, t_eval=9)
    lim = thermo.speed_limit(sol)
    assert lim.entropy_production == pytest.approx(2 * omega**2 * tau / k, rel=1e-10)
    np.testing.assert_allclose(thermo.entropy_production_rate(sol), 2 * omega**2 / k, rtol=1e-10)
    assert abs(lim.excess_entropy_production) < 1e-20
    assert abs(lim.length) < 1e-10 and abs(lim.w2) < 1e-10
    assert lim.integrated_temperature == pytest.approx(T * tau, rel=1e-12)

    m0, C0 = np.array([0.0, 0.0]), np.diag([1.0, 0.25])
    m1, C1 = np.array([1.0, 0.5]), np.array([[0.5, 0.2], [0.2, 1.0]])
    sol = thermo.solve_moments(thermo.geodesic_protocol(m0, C0, m1, C1, tau, T), t_eval=9)
    lim = thermo.speed_limit(sol)
    w2 = okot.w2_gaussian(m0, C0, m1, C1)
    assert lim.w2 == pytest.approx(w2, rel=1e-12)
    assert lim.length == pytest.approx(w2, rel=1e-9)
    assert lim.excess_entropy_production == pytest.approx(w2**2 / (tau * T), rel=1e-9)
    assert lim.length_bound == pytest.approx(w2**2 / (tau * T), rel=1e-9)


def test_entropy_production_functions_agree_and_accumulate_in_closed_form():
    """entropy_production_rate(sol) is thermodynamics(sol)'s rate (a rotating, relaxing state
    at T = 1.8); after a quench the cumulative S_tot(t) is the closed form
    d [g(c_0 k1/T) - g(c_t k1/T)] / 2 with g(r) = r - 1 - log r at every output time."""
    sol = thermo.solve_moments(thermo.rotational(1.0, 1.5, 1.0, T=1.8), t_eval=7)
    np.testing.assert_allclose(
        thermo.entropy_production_rate(sol),
        thermo.thermodynamics(sol).entropy_production_rate,
        rtol=1e-12,
    )
    k = thermo.mean_local_velocity(sol)
    np.testing.assert_allclose(k, sol.A + 1.8 * np.linalg.inv(sol.cov), rtol=1e-12)

    k0, k1, T, d = 1.0, 3.0, 2.5, 2
    sol = thermo.solve_moments(thermo.quench(k0, k1, tau=0.8, T=T, dim=d), t_eval=81)
    th = thermo.thermodynamics(sol)
    ratio = sol.cov[:, 0, 0] * k1 / T
    g = ratio - 1 - np.log(ratio)
    # Simpson's rule with step 0.01 on a rate that decays like e^{-6 t}
    np.testing.assert_allclose(th.entropy_production, 0.5 * d * (g[0] - g), rtol=1e-4, atol=1e-9)
    assert th.entropy_production[-1] == pytest.approx(th.total_entropy_production, rel=1e-6)


def test_gaussian_entropy_guards_are_relative_to_the_scale():
    """Symmetry is judged relative to the largest entry (rounding at scale 1e6 is accepted, a
    relative asymmetry of 1e-8 at scale 1e-6 is not); a singular covariance has no entropy."""
    c = 1e6 * np.array([[2.0, 0.5], [0.5, 1.0]])
    rounded = c + np.array([[0.0, 1e-6], [0.0, 0.0]])
    expected = multivariate_normal(np.zeros(2), c).entropy()
    assert thermo.gaussian_entropy(rounded) == pytest.approx(expected, rel=1e-12)
    small = 1e-6 * np.array([[2.0, 0.5 + 1e-8], [0.5, 1.0]])
    with pytest.raises(ValueError, match="^cov must be symmetric"):
        thermo.gaussian_entropy(small)
    with pytest.raises(ValueError, match="^cov must be positive definite; cov has smallest"):
        thermo.gaussian_entropy(np.diag([1.0, 0.0]))


def test_moment_guards_fire_at_their_boundaries():
    p = thermo.quench(1.0, 2.0, 1.0, T=0.5)
    with pytest.raises(ValueError, match=r"^t_eval must lie in \[0, tau\] = \[0, 1\]; "
                                         r"got \[-0.1, 1.0\]$"):
        thermo.solve_moments(p, t_eval=[-0.1, 0.5, 1.0])
    with pytest.raises(TypeError, match="^protocol must be an ottokit.thermo.Protocol, got str$"):
        thermo.solve_moments("quench")
    with pytest.raises(ValueError, match="^t_eval must be an integer >= 3, got 2; a number of "
                                         "output times, or the times$"):
        thermo.solve_moments(p, t_eval=2)
    assert len(thermo.solve_moments(p, t_eval=3).t) == 3
    with pytest.raises(ValueError, match="^rtol must be"):
        thermo.solve_moments(p, rtol=0.0)
    with pytest.raises(ValueError, match="^atol must be"):
        thermo.solve_moments(p, atol=0.0)
    # a marginally stable A (an eigenvalue 0) has no stationary state
    with pytest.raises(ValueError, match="^A must be stable"):
        thermo.stationary_covariance([[0.0, 0.0], [0.0, -1.0]], 1.0)
    with pytest.raises(ValueError, match="T must be a positive"):
        thermo.stationary_covariance(-np.eye(2), 0.0)
    with pytest.raises(ValueError, match="A must be finite"):
        thermo.stationary_covariance([[-1.0, np.nan], [0.0, -1.0]], 1.0)


def test_rotational_diffusion_with_tau_2_5_against_the_moment_ode():
    """tau != 1 and h, g, T_fin away from the paper's values: the closed forms (Lambda_t,
    theta_t, c_t by Gauss-Legendre) against the OU moment ODE of the same process, started
    from the Gaussian the protocol carries; H, G and T at the ends of [0, tau]."""
    tau, h, g, t_fin = 2.5, 0.7, 1.3, 0.9
    proc = thermo.RotationalDiffusion(h=h, g=g, T_fin=t_fin, tau=tau)
    m0, C0 = np.array([0.4, 1.0]), np.array([[0.5, -0.1], [-0.1, 0.3]])
    t = np.linspace(0.0, tau, 6)
    sol = thermo.solve_moments(proc.protocol(m0, C0), t_eval=t)
    mean, cov = proc.moments(m0, C0, t)
    np.testing.assert_allclose(mean, sol.mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cov, sol.cov, rtol=0, atol=1e-9)
    # int_0^tau H = -h tau / 2 - T_fin tau / 3, int_0^tau G = g tau / 2
    assert proc.log_scale(tau) == pytest.approx(-h * tau / 2 - t_fin * tau / 3, rel=1e-14)
    assert proc.angle(tau) == pytest.approx(g * tau / 2, rel=1e-14)
    assert proc.temperature(tau) == pytest.approx(t_fin, rel=1e-14)
    assert proc.temperature(0.5 * tau) == pytest.approx(t_fin / 4, rel=1e-14)
    assert proc.H(0.0) == pytest.approx(-h, rel=1e-14)
    assert proc.H(tau) == pytest.approx(-t_fin, rel=1e-14)
    assert proc.G(0.0) == pytest.approx(g, rel=1e-14) and proc.G(tau) == 0.0
    np.testing.assert_allclose(proc.A(tau / 2), [[-h / 2 - t_fin / 4, -g / 2],
                                                 [g / 2, -h / 2 - t_fin / 4]], rtol=1e-14)
    # the propagator at tau: e^{Lambda} times the rotation by theta
    th, lam = g * tau / 2, -h * tau / 2 - t_fin * tau / 3
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    np.testing.assert_allclose(proc.propagator(tau), np.exp(lam) * rot, rtol=1e-13)
    # broadcasting over a (2, 3) array of times
    grid = t[:6].reshape(2, 3)
    assert proc.propagator(grid).shape == (2, 3, 2, 2) and proc.variance(grid).shape == (2, 3)
    np.testing.assert_allclose(proc.variance(grid).ravel(), proc.variance(t), rtol=1e-14)
    assert "g = 1.3" in proc.protocol().name


def test_rotational_diffusion_times_and_start_are_checked():
    proc = thermo.RotationalDiffusion(tau=2.0)
    # rounding beyond the ends is clipped; anything more is refused
    assert proc.temperature(2.0 * (1 + 1e-13)) == proc.T_fin
    # the slack is relative to tau: 1.5e-12 beyond tau = 2 is rounding (under 1e-12 tau)
    assert proc.angle(2.0 + 1.5e-12) == proc.angle(2.0)
    # parameters are stored as floats, so equal processes hash alike whatever the input type
    as_arrays = thermo.RotationalDiffusion(h=np.array(1.1), g=np.array(3.0),
                                           T_fin=np.array(0.5), tau=np.array(2.0))
    assert len({as_arrays, thermo.RotationalDiffusion(1.1, 3.0, 0.5, 2.0)}) == 1
    assert proc.variance(-1e-13) == 0.0
    with pytest.raises(ValueError, match=r"t must lie in \[0, tau\]"):
        proc.H(-0.01)
    with pytest.raises(ValueError, match=r"t must lie in \[0, tau\]"):
        proc.angle(np.nan)
    with pytest.raises(ValueError, match="tau must be positive and finite"):
        thermo.RotationalDiffusion(tau=-1.0)
    with pytest.raises(ValueError, match="g must be finite"):
        thermo.RotationalDiffusion(g=np.inf)
    with pytest.raises(ValueError, match="^C0 must be symmetric"):
        proc.moments([0.0, 0.0], [[1.0, 0.2], [0.0, 1.0]], 0.5)
    with pytest.raises(ValueError, match="^C0 must be a finite"):
        proc.moments([0.0, 0.0], [[1.0, np.nan], [np.nan, 1.0]], 0.5)
    with pytest.raises(ValueError, match=r"m0 must be a vector of shape \(2,\)"):
        proc.moments([0.0, 0.0, 0.0], np.eye(2), 0.5)


def test_protocol_derivatives_are_exact_for_quadratic_schedules():
    """dA, db are second-order finite differences (one-sided at 0 and tau): exact, up to
    rounding, for A(t), b(t) quadratic in t; tau = 2.5 so that h scales with tau."""
    tau = 2.5
    a0, a1, a2 = np.array([[-1.0, 0.3], [0.1, -2.0]]), np.array([[0.5, -0.2], [0.4, 0.1]]), 0.3
    p = thermo.Protocol(
        A=lambda t: a0 + a1 * t + a2 * t**2 * np.eye(2),
        b=lambda t: np.array([t**2, -3.0 * t]),
        T=0.4,
        tau=tau,
    )
    for t in (0.0, 1e-7, 0.7, tau - 1e-7, tau):
        np.testing.assert_allclose(p.dA(t), a1 + 2 * a2 * t * np.eye(2), rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(p.db(t), [2 * t, -3.0], rtol=1e-7, atol=1e-8)
    x = np.array([[1.0, 2.0], [-0.5, 0.25], [0.0, 3.0]])
    t = 1.2
    np.testing.assert_allclose(p.force(t, x), x @ p.A_at(t).T + p.b_at(t), rtol=1e-15)
    np.testing.assert_allclose(p.force(t, x)[0], p.A_at(t) @ x[0] + [t**2, -3.0 * t], rtol=1e-14)
    assert p.dim == 2 and p.b_at(t).shape == (2,)



@pytest.mark.parametrize("tau", [3.0, 1e-3])
def test_protocol_derivatives_are_second_order_for_smooth_schedules(tau):
    """For A(t) = e^{-t/tau} A0 and b(t) = sin(2 t/tau) b0 (not polynomial, so the step size
    matters) dA and db match the exact derivatives to O((h/tau)^2) with h = 1e-5 tau, at the
    ends (one-sided) and inside; tau = 1e-3 checks that the step scales with tau."""
    a0, b0 = np.array([[-1.0, 0.5], [0.2, -2.0]]), np.array([1.0, -0.5])
    p = thermo.Protocol(A=lambda t: np.exp(-t / tau) * a0,
                        b=lambda t: np.sin(2 * t / tau) * b0, T=1.0, tau=tau)
    for t in np.array([0.0, 3e-6, 0.37, 1 - 3e-6, 1.0]) * tau:
        np.testing.assert_allclose(p.dA(t), -np.exp(-t / tau) * a0 / tau, rtol=1e-8,
                                   atol=1e-10 / tau)
        np.testing.assert_allclose(p.db(t), 2 * np.cos(2 * t / tau) * b0 / tau, rtol=1e-8,
                                   atol=1e-9 / tau)


def test_constant_protocol_parts_are_checked_with_their_names():
    for kwargs, match in (
        ({"A": np.full((1, 1), np.nan)}, r"^A must be finite \(no NaN or inf\)"),
        ({"b": [np.inf]}, r"^b must be finite \(no NaN or inf\)"),
        ({"T": np.nan}, r"^T must be finite \(no NaN or inf\)"),
        ({"T": -1.0}, r"^the temperature must be positive \(or zero: no noise\); T\(0\) = -1"),
        ({"A": -np.eye(2)}, r"^b\(0\) must be a vector of shape \(2,\), got shape \(1,\)$"),
        ({"tau": 0.0}, "^tau must be a positive number, got 0$"),
        ({"m0": [0.0, 0.0], "C0": np.eye(1)}, r"^m0 must be a vector of shape \(1,\)"),
        ({"m0": [0.0], "C0": np.eye(2)}, r"^C0 must be a \(1, 1\) matrix"),
    ):
        with pytest.raises(ValueError, match=match):
            thermo.Protocol(**{"A": -np.eye(1), "b": [0.0], "T": 1.0, "tau": 1.0, **kwargs})
    # A(t) keeps the shape of A(0) at the times checked on construction
    with pytest.raises(ValueError, match=r"^A\(0\.5\) must be a square \(d, d\) matrix, "
                                         r"got shape \(3, 3\)$"):
        thermo.Protocol(A=lambda t: -np.eye(3) if t == 0.5 else -np.eye(2), b=np.zeros(2),
                        T=1.0, tau=1.0)
    # tau, m0 and C0 are stored as the float (arrays) they were checked to be
    p = thermo.Protocol(A=-np.eye(1), b=[0.0], T=1.0, tau=np.int64(2), m0=[1], C0=[[2]])
    assert type(p.tau) is float and p.tau == 2.0
    # so are A(t) and b(t) from callables that return integers
    ints = thermo.Protocol(A=lambda t: np.array([[-2, 1], [0, -3]]), b=lambda t: np.array([1, 0]),
                           T=1.0, tau=1.0)
    assert ints.A_at(0.5).dtype == np.float64 and ints.b_at(0.5).dtype == np.float64
    # a one-element temperature array is that scalar temperature
    one = thermo.Protocol(A=-np.eye(1), b=[0.0], T=lambda t: np.array([[0.7]]), tau=1.0)
    assert one.T_at(0.3) == 0.7
    for value, expected in ((p.m0, [1.0]), (p.C0, [[2.0]])):
        assert isinstance(value, np.ndarray) and value.dtype == np.float64
        np.testing.assert_array_equal(value, expected)

def test_protocol_guards_fire():
    mid = lambda t: np.full((1, 1), np.nan) if 0.4 < t < 0.6 else -np.eye(1)  # noqa: E731
    with pytest.raises(ValueError, match=r"A\(0.5\) must be finite"):
        thermo.Protocol(A=mid, b=[0.0], T=1.0, tau=1.0)
    p = _constant_protocol(-np.eye(2), np.zeros(2), 1.0, 1.0)
    with pytest.raises(ValueError, match=r"A\(0\) must be a square \(d, d\) matrix, got shape"):
        p.A_at(0.0, 3)
    with pytest.raises(ValueError, match=r"A\(0\) must be a square"):
        thermo.Protocol(A=np.ones((2, 2, 2)), b=np.zeros(2), T=1.0, tau=1.0)
    with pytest.raises(ValueError, match="^the temperature must be positive"):
        thermo.Protocol(A=-np.eye(1), b=[0.0], T=lambda t: np.inf, tau=1.0)
    with pytest.raises(ValueError, match="m0 must be finite"):
        _constant_protocol(-np.eye(1), [0.0], 1.0, 1.0, m0=[np.nan], C0=[[1.0]])
    with pytest.raises(ValueError, match="C0 must be positive definite"):
        _constant_protocol(-np.eye(1), [0.0], 1.0, 1.0, m0=[0.0], C0=[[-1.0]])
    g = thermo.BuresGeodesic([0.0], [[1.0]], [1.0], [[2.0]])
    with pytest.raises(ValueError, match=r"s must lie in \[0, 1\]"):
        g.mean(-0.01)
    assert g.mean(1 + 1e-13)[0] == pytest.approx(1.0, rel=1e-15)
    for call, match in (
        (lambda: thermo.stiffness_ramp(1.0, -1.0, 1.0), "k1 must be a positive"),
        (lambda: thermo.stiffness_ramp(1.0, 2.0, 0.0), "tau must be a positive"),
        (lambda: thermo.stiffness_ramp(1.0, 2.0, 1.0, T=-1.0), "T must be a positive"),
        (lambda: thermo.stiffness_ramp(1.0, 2.0, 1.0, dim=0), "^dim must be a positive integer"),
        (lambda: thermo.stiffness_ramp(1.0, 2.0, 1.0, dim=2, center=[0.0]), "center must be"),
        (lambda: thermo.quench(0.0, 2.0, 1.0), "k0 must be a positive"),
        (lambda: thermo.quench(1.0, 0.0, 1.0), "k1 must be a positive"),
        (lambda: thermo.quench(1.0, 2.0, -1.0), "tau must be a positive"),
        (lambda: thermo.quench(1.0, 2.0, 1.0, dim=0), "^dim must be a positive integer"),
        (lambda: thermo.rotational(0.0, 1.0, 1.0), "k must be a positive"),
        (lambda: thermo.rotational(1.0, np.nan, 1.0), "omega must be"),
        (lambda: thermo.rotational(1.0, 1.0, 0.0), "tau must be a positive"),
        (lambda: thermo.rotational(1.0, 1.0, 1.0, T=0.0), "T must be a positive"),
        (lambda: thermo.geodesic_protocol([0.0], [[1.0]], [1.0], [[1.0]], tau=0.0),
         "tau must be a positive"),
        (lambda: thermo.geodesic_protocol([0.0], [[1.0]], [1.0], [[1.0]], 1.0, T=0.0),
         "T must be a positive"),
    ):
        with pytest.raises(ValueError, match=match):
            call()


def test_stiffness_ramp_and_quench_away_from_unit_parameters():
    """The ramp k_t = k0 + (k1 - k0) t / tau with tau = 2 around a centre, starting in
    equilibrium N(c, T / k0 I); from k0 = 2 the quench relaxes as
    T/k1 + (T/k0 - T/k1) e^{-2 k1 t}."""
    k0, k1, tau, T = 2.0, 5.0, 2.0, 0.3
    c = np.array([0.5, -1.0, 2.0])
    p = thermo.stiffness_ramp(k0, k1, tau, T=T, dim=3, center=c)
    for t, k in ((0.0, k0), (0.5, 2.75), (tau, k1)):
        np.testing.assert_allclose(p.A_at(t), -k * np.eye(3), rtol=1e-14)
        np.testing.assert_allclose(p.b_at(t), k * c, rtol=1e-14)
        assert p.T_at(t) == T
    np.testing.assert_allclose(p.m0, c)
    np.testing.assert_allclose(p.C0, T / k0 * np.eye(3), rtol=1e-14)
    # equilibrium at the start: nothing moves yet, so Sdot(0) = 0
    th = thermo.thermodynamics(thermo.solve_moments(p, t_eval=5))
    assert th.entropy_production_rate[0] < 1e-20 and th.entropy_production_rate[-1] > 1e-3

    q = thermo.quench(k0, k1, tau=0.6, T=T, dim=2)
    sol = thermo.solve_moments(q, t_eval=7)
    c_t = T / k1 + (T / k0 - T / k1) * np.exp(-2 * k1 * sol.t)
    np.testing.assert_allclose(sol.cov[:, 1, 1], c_t, rtol=1e-9)
    np.testing.assert_allclose(sol.mean, 0.0, atol=0)
    assert q.dim == 2 and q.tau == 0.6



def test_protocol_builders_default_to_unit_temperature_and_name_their_protocols():
    """Without T the builders work at T = 1: the quench relaxes to N(0, 1/k1 I), the ramp
    starts from N(c, 1/k0 I), the rotational force (T = 1) from its documented default
    N((1, 0), diag(1, 0.25)), and along a
    prescribed path (given as plain lists) Sdot = v2^2 / 1; each protocol carries the name the
    experiment summaries show; a path protocol's tau is checked like every protocol's."""
    q = thermo.quench(2.0, 4.0, tau=5.0, dim=2)
    np.testing.assert_allclose(q.C0, 0.5 * np.eye(2), rtol=1e-15)
    np.testing.assert_allclose(thermo.solve_moments(q, t_eval=3).cov[-1], 0.25 * np.eye(2),
                               rtol=1e-8)
    ramp = thermo.stiffness_ramp(4.0, 1.0, tau=2.0, center=[0.5])
    np.testing.assert_allclose(ramp.C0, [[0.25]], rtol=1e-15)
    rot = thermo.rotational(1.0, 2.0, tau=1.0)
    assert rot.T_at(0.5) == 1.0
    np.testing.assert_array_equal(rot.m0, [1.0, 0.0])
    np.testing.assert_array_equal(rot.C0, np.diag([1.0, 0.25]))
    path = thermo.gaussian_path_protocol(
        mean=lambda t: [t, 0.0], cov=lambda t: np.diag([1.0 + t, 1.0]),
        d_mean=lambda t: [1.0, 0.0], d_cov=lambda t: np.diag([1.0, 0.0]), tau=1.5)
    sol = thermo.solve_moments(path, t_eval=4)
    np.testing.assert_allclose(sol.mean[:, 0], sol.t, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(sol.cov[:, 0, 0], 1.0 + sol.t, rtol=1e-8)
    th = thermo.thermodynamics(sol)
    np.testing.assert_allclose(th.T, 1.0, rtol=0, atol=0)
    np.testing.assert_allclose(th.entropy_production_rate, th.w2_speed**2, rtol=1e-8)
    geo = thermo.geodesic_protocol([0.0], [[1.0]], [1.0], [[2.0]], tau=1.0)
    assert geo.T_at(0.3) == 1.0
    names = [p.name for p in (q, ramp, rot, path, geo)]
    assert names == ["sudden quench", "stiffness ramp", "rotational force", "gaussian path",
                     "W2 geodesic"]
    with pytest.raises(ValueError, match="^tau must be a positive"):
        thermo.gaussian_path_protocol(lambda t: [0.0], lambda t: [[1.0]], lambda t: [0.0],
                                      lambda t: [[0.0]], tau=0.0)


def test_bures_geodesic_is_a_constant_speed_geodesic_between_its_ends():
    """N(m_s, C_s) starts at N(m0, C0), ends at N(m1, C1) and is a constant-speed geodesic:
    W2(P_0, P_s) = s W2(P_0, P_1) and W2(P_s, P_1) = (1 - s) W2(P_0, P_1) (the means away from
    0, so that a shifted path is seen); the geodesic protocol at tau = 0.6 arrives at N(m1, C1)."""
    m0, C0 = np.array([0.7, -1.2]), np.array([[1.0, 0.3], [0.3, 0.4]])
    m1, C1 = np.array([-0.4, 0.9]), np.array([[0.3, -0.1], [-0.1, 1.5]])
    geo = thermo.BuresGeodesic(m0, C0, m1, C1)
    w2 = okot.w2_gaussian(m0, C0, m1, C1)
    np.testing.assert_allclose(geo.mean(0.0), m0, rtol=1e-15)
    np.testing.assert_allclose(geo.cov(0.0), C0, rtol=1e-13)
    np.testing.assert_allclose(geo.mean(1.0), m1, rtol=1e-15)
    np.testing.assert_allclose(geo.cov(1.0), C1, rtol=1e-12)
    for s in (0.25, 0.6):
        ms, cs = geo.mean(s), geo.cov(s)
        assert okot.w2_gaussian(m0, C0, ms, cs) == pytest.approx(s * w2, rel=1e-9)
        assert okot.w2_gaussian(ms, cs, m1, C1) == pytest.approx((1 - s) * w2, rel=1e-9)
    sol = thermo.solve_moments(thermo.geodesic_protocol(m0, C0, m1, C1, tau=0.6, T=0.9),
                               t_eval=5)
    np.testing.assert_allclose(sol.mean[-1], m1, atol=1e-8)
    np.testing.assert_allclose(sol.cov[-1], C1, atol=1e-8)
    # s within round-off of [0, 1] is the end point itself
    np.testing.assert_array_equal(geo.mean(-1e-13), m0)
    np.testing.assert_array_equal(geo.mean(1 + 1e-13), m1)
    for args, match in (
        ((m0, np.eye(3), m1, C1), r"^C0 must be a \(2, 2\) matrix"),
        ((m0, -C0, m1, C1), "^C0 must be positive definite"),
        ((m0, C0, [0.0], C1), r"^m1 must be a vector of shape \(2,\)"),
        ((m0, C0, m1, np.eye(3)), r"^C1 must be a \(2, 2\) matrix"),
    ):
        with pytest.raises(ValueError, match=match):
            thermo.BuresGeodesic(*args)

def test_gaussian_path_protocol_with_a_varying_temperature_and_the_geodesic_tangent():
    """The potential force of gaussian_path_protocol moves the state along the prescribed path
    also when T varies (and tau = 1.6), with Sdot = v2^2 / T; the geodesic's d_cov is the
    derivative of its cov and velocity_matrix solves S C + C S = dC (per unit s)."""
    m0, C0 = np.array([0.0, 1.0]), np.diag([1.0, 0.25])
    m1, C1 = np.array([1.0, 0.5]), np.array([[0.5, 0.2], [0.2, 1.0]])
    geo = thermo.BuresGeodesic(m0, C0, m1, C1)
    h = 1e-6
    for s in (0.0 + h, 0.3, 1.0 - h):
        fd = (geo.cov(s + h) - geo.cov(s - h)) / (2 * h)
        np.testing.assert_allclose(geo.d_cov(s), fd, rtol=1e-7, atol=1e-8)
        vel = geo.velocity_matrix(s)
        c = geo.cov(s)
        np.testing.assert_allclose(vel @ c + c @ vel, geo.d_cov(s), atol=1e-12)
        np.testing.assert_allclose(geo.d_mean(s), m1 - m0)
    tau = 1.6
    temperature = lambda t: 0.5 + 0.3 * t  # noqa: E731
    p = thermo.gaussian_path_protocol(
        mean=lambda t: geo.mean(t / tau),
        cov=lambda t: geo.cov(t / tau),
        d_mean=lambda t: geo.d_mean(t / tau) / tau,
        d_cov=lambda t: geo.d_cov(t / tau) / tau,
        tau=tau,
        T=temperature,
    )
    sol = thermo.solve_moments(p, t_eval=5)
    for t, m, c in zip(sol.t, sol.mean, sol.cov, strict=True):
        np.testing.assert_allclose(m, geo.mean(t / tau), atol=1e-9)
        np.testing.assert_allclose(c, geo.cov(t / tau), atol=1e-9)
    th = thermo.thermodynamics(sol)
    np.testing.assert_allclose(th.T, temperature(sol.t), rtol=1e-15)
    np.testing.assert_allclose(th.entropy_production_rate, th.excess_rate, rtol=1e-9)
    np.testing.assert_allclose(th.w2_speed, okot.w2_gaussian(m0, C0, m1, C1) / tau, rtol=1e-9)


def _varying_protocol(tau: float = 0.8) -> thermo.Protocol:
    return thermo.Protocol(
        A=lambda t: np.array([[-1.0 - t, 0.9], [-0.4 * t - 0.6, -2.0]]),
        b=lambda t: np.array([np.sin(3 * t), 1.0 + t]),
        T=lambda t: 0.6 + 0.5 * t,
        tau=tau,
        m0=[1.5, -0.5],
        C0=[[0.4, 0.1], [0.1, 0.2]],
    )


def test_particle_moments_follow_the_euler_maruyama_recursion():
    """The ensemble's moments follow the scheme's own moment recursion exactly in expectation,
    m <- (I + A dt) m + b dt, C <- (I + A dt) C (I + A dt)^T + 2 T dt I (no O(dt) bias), so the
    sample moments differ from it only by Monte Carlo error: sd(m_i) = sqrt(C_ii / N) and
    sd(C_ij) = sqrt((C_ii C_jj + C_ij^2) / N) for Gaussian particles; 5 sd are allowed."""
    p = _varying_protocol()
    n, n_steps = 16_000, 40
    est = thermo.simulate_particles(p, n, n_steps, n_out=5, seed=11)
    dt = p.tau / n_steps
    assert est.dt == pytest.approx(dt, rel=1e-15) and est.n_particles == n
    np.testing.assert_allclose(est.t, np.linspace(0.0, p.tau, 5), rtol=1e-14)
    m, c = np.array([1.5, -0.5]), np.array([[0.4, 0.1], [0.1, 0.2]])
    out = 0
    for step in range(n_steps + 1):
        if step % 10 == 0:
            sd_m = np.sqrt(np.diag(c) / n)
            sd_c = np.sqrt((np.outer(np.diag(c), np.diag(c)) + c**2) / n)
            assert np.all(np.abs(est.mean[out] - m) <= 5 * sd_m)
            assert np.all(np.abs(est.cov[out] - c) <= 5 * sd_c)
            out += 1
        t = step * dt
        step_matrix = np.eye(2) + p.A_at(t) * dt
        m = step_matrix @ m + p.b_at(t) * dt
        c = step_matrix @ c @ step_matrix.T + 2 * p.T_at(t) * dt * np.eye(2)


def test_particle_estimates_are_the_closed_forms_of_the_fitted_gaussian():
    """With the moment-matching score, nu_i = K (x_i - m) + A m + b with K = A + T C^-1 (m, C
    the sample moments), so the particle averages are exactly the OU closed forms at the fitted
    Gaussian: Sdot = (|A m + b|^2 + tr(K C K^T)) / T and v2 the Bures speed of dm = A m + b,
    dC = A C + C A^T + 2 T I (S from scipy's Lyapunov solver)."""
    p = _varying_protocol()
    est = thermo.simulate_particles(p, 500, 20, n_out=3, seed=4)
    for t, m, c, sdot, v2 in zip(est.t, est.mean, est.cov, est.entropy_production_rate,
                                 est.w2_speed, strict=True):
        a, temp = p.A_at(t), p.T_at(t)
        dm = a @ m + p.b_at(t)
        k = a + temp * np.linalg.inv(c)
        assert sdot == pytest.approx((dm @ dm + np.trace(k @ c @ k.T)) / temp, rel=1e-10)
        s = solve_continuous_lyapunov(c, a @ c + c @ a.T + 2 * temp * np.eye(2))
        assert v2 == pytest.approx(np.sqrt(dm @ dm + np.trace(s @ c @ s)), rel=1e-10)


def test_particle_guards_fire(monkeypatch):
    p = _varying_protocol()
    for kwargs, match in (
        ({"n_particles": 5}, "^n_particles must be .* >= 6, got 5; a covariance estimate needs"),
        ({"n_particles": 6, "n_steps": 0}, r"^n_steps must be .*\(e\.g\. n_steps=1000\)"),
        ({"n_particles": 6, "n_out": 1}, r"^n_out must be .*\(e\.g\. n_out=51\)"),
        ({"n_particles": 6, "seed": -1}, "^seed must be"),
        ({"n_particles": 6, "m0": [0.0]}, r"m0 must be a vector of shape \(2,\)"),
        ({"n_particles": 6, "C0": -np.eye(2)}, "C0 must be positive definite"),
    ):
        with pytest.raises(ValueError, match=match):
            thermo.simulate_particles(p, **kwargs)
    with pytest.raises(TypeError, match="^protocol must be"):
        thermo.simulate_particles("rotational", 10)
    # the smallest allowed ensemble, 2 d + 2 particles, runs, and so does a single step
    assert thermo.simulate_particles(p, 6, 1, n_out=2).mean.shape == (2, 2)
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "1M")
    with pytest.raises(MemoryEstimateError,
                       match="^simulate_particles with 100000 particles over 10 steps needs"):
        thermo.simulate_particles(p, 100_000, 10)



def test_start_and_protocol_shapes_are_checked_with_their_names():
    """A missing half of the start (m0 without C0, or C0 without m0), a C0 of the wrong size,
    and an A(t) that changes shape between the times the Protocol checks on construction
    (0, tau/2, tau) are refused with messages naming what to fix."""
    no_start = _constant_protocol(-np.eye(2), np.zeros(2), 1.0, 1.0)
    missing = r"^give the initial state m0, C0 \(the protocol does not carry one\)$"
    for start in ({"m0": [0.0, 0.0]}, {"C0": np.eye(2)}):
        with pytest.raises(ValueError, match=missing):
            thermo.simulate_particles(no_start, 6, 2, **start)
    with pytest.raises(ValueError, match=r"^C0 must be a \(2, 2\) matrix \(a covariance\), "
                                         r"got shape \(3, 3\)$"):
        thermo.simulate_particles(_varying_protocol(), 6, 2, C0=np.eye(3))
    reshaping = thermo.Protocol(
        A=lambda t: -np.eye(3) if 0.15 < t < 0.35 else -np.eye(2), b=np.zeros(2), T=1.0,
        tau=1.0, m0=np.zeros(2), C0=np.eye(2))
    with pytest.raises(ValueError, match=r"^A\(0\.2\) must be a square \(d, d\) matrix, "
                                         r"got shape \(3, 3\)$"):
        thermo.simulate_particles(reshaping, 6, 10)
    # the derivatives check each part against the protocol's dimension d = 2 too
    with pytest.raises(ValueError, match=r"^A\(0\.2\d*\) must be a square \(d, d\) matrix"):
        reshaping.dA(0.2)
    np.testing.assert_array_equal(reshaping.db(0.2), np.zeros(2))


def test_particle_runs_are_reproducible_by_seed_and_report_their_settings():
    """One seed gives the same ensemble (bit for bit), another seed another one; the estimate
    carries the settings it was made with."""
    p = _varying_protocol()
    first, again = (thermo.simulate_particles(p, 50, 8, n_out=3, seed=5) for _ in range(2))
    other = thermo.simulate_particles(p, 50, 8, n_out=3, seed=6)
    for field in ("mean", "cov", "entropy_production_rate", "w2_speed"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
        assert np.all(getattr(first, field) != getattr(other, field))
    assert (first.n_particles, first.n_steps, first.seed, other.seed) == (50, 8, 5, 6)
    assert first.dt == pytest.approx(p.tau / 8, rel=1e-15)


@pytest.mark.parametrize(("n", "n_steps", "d"), [(6, 1, 2), (9, 4, 3)])
def test_particle_memory_estimate_is_refused_exactly_beyond_the_limit(monkeypatch, n, n_steps, d):
    """The documented estimate 8 (6 N d + (n_steps + 1)(d^2 + d + 1)) bytes: a limit of exactly
    that many bytes lets the run go, one byte less refuses it, naming the knob to turn."""
    p = thermo.quench(1.0, 2.0, tau=1.0, dim=d)
    need = 8 * (6 * n * d + (n_steps + 1) * (d * d + d + 1))
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", str(need))
    assert thermo.simulate_particles(p, n, n_steps, n_out=2).mean.shape == (2, d)
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", str(need - 1))
    with pytest.raises(MemoryEstimateError, match=rf"^simulate_particles with {n} particles over "
                       rf"{n_steps} steps needs .*; lower n_particles or n_steps \(or set "):
        thermo.simulate_particles(p, n, n_steps, n_out=2)


def test_gaussian_state_guards_name_the_argument():
    """The Lyapunov solver wants two (n, d, d) stacks of one shape, and a mean of no fixed
    dimension must still be a vector."""
    shape = r"^cov and d_cov must be \(n, d, d\) stacks of one shape, got "
    with pytest.raises(ValueError, match=shape + r"\(2, 2\), \(2, 2\)$"):
        thermo.lyapunov_velocity(np.eye(2), np.eye(2))
    with pytest.raises(ValueError, match=shape + r"\(1, 2, 2\), \(1, 3, 3\)$"):
        thermo.lyapunov_velocity(np.eye(2)[None], np.eye(3)[None])
    with pytest.raises(ValueError, match=shape + r"\(1, 2, 3\), \(1, 2, 3\)$"):
        thermo.lyapunov_velocity(np.ones((1, 2, 3)), np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match=r"^m0 must be a vector of shape \(d,\), got shape "
                                         r"\(2, 2\)$"):
        thermo.BuresGeodesic(np.zeros((2, 2)), np.eye(2), [0.0, 0.0], np.eye(2))

def test_otto_velocity_against_scipy_lyapunov_and_w2_speed_against_bures():
    """S solving S C + C S = dC for a batch of 3-D covariances, against
    scipy.linalg.solve_continuous_lyapunov, and v2^2 = |dm|^2 + tr(S C S), the Bures metric."""
    rng = np.random.default_rng(8)
    cov = np.stack([_random_spd(rng, 3, low=0.05 * (i + 1)) for i in range(4)])
    sym = rng.standard_normal((4, 3, 3))
    d_cov = sym + np.swapaxes(sym, 1, 2)
    d_mean = rng.standard_normal((4, 3))
    path = thermo.GaussianPath(np.arange(4.0), rng.standard_normal((4, 3)), cov, d_mean, d_cov)
    s = thermo.otto_velocity(path)
    for i in range(4):
        np.testing.assert_allclose(s[i], solve_continuous_lyapunov(cov[i], d_cov[i]),
                                   rtol=1e-9, atol=1e-12)
    v2 = np.sqrt(np.sum(d_mean**2, axis=1) + np.einsum("nij,njk,nki->n", s, cov, s))
    np.testing.assert_allclose(thermo.w2_speed(path), v2, rtol=1e-12)
    assert path.dim == 3 and path.tau == 3.0
    assert thermo.w2_endpoints(path) == pytest.approx(
        okot.w2_gaussian(path.mean[0], cov[0], path.mean[-1], cov[-1]), rel=1e-12
    )
    bad = thermo.GaussianPath(path.t, path.mean, cov, d_mean, d_cov[:, :2, :2])
    with pytest.raises(ValueError, match="^cov and d_cov must be"):
        thermo.otto_velocity(bad)
    with pytest.raises(ValueError, match=r"m0 must be a vector of shape \(d,\)"):
        thermo.BuresGeodesic([[0.0, 0.0]], np.eye(2), [0.0, 0.0], np.eye(2))
    with pytest.raises(TypeError, match="^path must be"):
        thermo.w2_speed(cov)


def test_tur_speed_is_scale_invariant_and_its_sampling_is_seeded(monkeypatch):
    """v_r = |d_t<r>| / sqrt(<|grad r|^2>) does not change when r is scaled (here to
    <|grad r|^2> < 1); the Monte Carlo estimate for a gradient function is fixed by its seed."""
    sol = thermo.solve_moments(thermo.rotational(1.0, 2.0, tau=1.0, T=0.7), t_eval=5)
    s = thermo.otto_velocity(sol)
    phi = thermo.Quadratic(s[2], sol.d_mean[2] - s[2] @ sol.mean[2])
    small = thermo.Quadratic(0.05 * phi.Q, 0.05 * phi.q)
    ref, scaled = thermo.tur(sol, phi), thermo.tur(sol, small)
    assert np.all(scaled.mean_grad_sq < 0.1)
    np.testing.assert_allclose(scaled.speed, ref.speed, rtol=1e-12)
    np.testing.assert_allclose(scaled.bound, ref.bound, rtol=1e-12)
    np.testing.assert_array_equal(ref.t, sol.t)
    first = thermo.tur(sol, small.grad, n_samples=2000, seed=3)
    again = thermo.tur(sol, small.grad, n_samples=2000, seed=3)
    other = thermo.tur(sol, small.grad, n_samples=2000, seed=4)
    np.testing.assert_array_equal(first.d_mean_r, again.d_mean_r)
    assert np.all(first.d_mean_r != other.d_mean_r)
    # one sample is a (noisy) estimate too: grad r . nu at that sample
    one = thermo.tur(sol, small.grad, n_samples=1, seed=3)
    y = np.random.default_rng(3).standard_normal((1, 2)) @ np.linalg.cholesky(sol.cov[2]).T
    nu = thermo.mean_local_velocity(sol)[2] @ y[0] + sol.d_mean[2]
    assert one.d_mean_r[2] == pytest.approx(small.grad(y + sol.mean[2])[0] @ nu, rel=1e-12)
    for kwargs, match in (({"n_samples": 0}, r"^n_samples must be .*\(e\.g\. n_samples=20000\)"),
                          ({"seed": -1}, "^seed must be")):
        with pytest.raises(ValueError, match=match):
            thermo.tur(sol, phi.grad, **kwargs)
    with pytest.raises(TypeError, match="^sol must be"):
        thermo.tur(sol.cov, phi)
    with pytest.raises(TypeError, match="got str$"):
        thermo.tur(sol, "x ** 2")
    # the working set is five (n_samples, d) float64 arrays: 400 kB for 5,000 samples in 2-D
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "400000")
    thermo.tur(sol, phi.grad, n_samples=5000)
    with pytest.raises(
        MemoryEstimateError,
        match=r"^tur with 6000 samples in dimension 2 needs about .*; lower n_samples \(or set",
    ):
        thermo.tur(sol, phi.grad, n_samples=6000)


@pytest.mark.parametrize(
    ("function", "name"),
    [
        (thermo.otto_velocity, "path"), (thermo.w2_speed, "path"), (thermo.w2_endpoints, "path"),
        (thermo.w1_speed, "path"), (thermo.mean_local_velocity, "sol"),
        (thermo.entropy_production_rate, "sol"), (thermo.thermodynamics, "sol"),
        (thermo.speed_limit, "sol"),
    ],
)
def test_path_functions_name_a_wrong_argument(function, name):
    """A bare GaussianPath has no force or temperature: the thermodynamic functions refuse it."""
    sol = _two_d_solution()
    bare = thermo.GaussianPath(sol.t, sol.mean, sol.cov, sol.d_mean, sol.d_cov)
    with pytest.raises(TypeError, match=f"^{name} must be"):
        function(sol.cov)
    if name == "sol":
        with pytest.raises(TypeError, match="^sol must be .*OUSolution, got GaussianPath"):
            function(bare)


def test_w1_speed_guards_and_working_set(monkeypatch):
    """Equally spaced directions in 2-D start at angle 0, so an odd count still contains the
    stretched axis; the quadrature's working set is n_nodes^d (3 d + 4) float64 numbers."""
    p = thermo.geodesic_protocol([0, 0], np.diag([1.0, 0.25]), [0, 0], np.diag([4.0, 0.25]),
                                 tau=0.5, T=1.7)
    sol = thermo.solve_moments(p, t_eval=3)
    w1 = thermo.w1_speed(sol, n_directions=7)
    np.testing.assert_allclose(w1.lower, np.sqrt(2 / np.pi) / 0.5, rtol=1e-12)
    for kwargs, match in (
        ({"n_directions": 0}, r"^n_directions must be .*\(e\.g\. n_directions=180\)"),
        ({"n_nodes": 0}, r"^n_nodes must be .*\(e\.g\. n_nodes=48\)"),
        ({"seed": -1}, "^seed must be"),
    ):
        with pytest.raises(ValueError, match=match):
            thermo.w1_speed(sol, **kwargs)
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "200000")  # 8 * 50^2 * (3 * 2 + 4) bytes
    thermo.w1_speed(sol, n_nodes=50)
    grid_message = r"^w1_speed's Gauss-Hermite grid of 55\^2 nodes needs .*; lower n_nodes"
    with pytest.raises(MemoryEstimateError, match=grid_message):
        thermo.w1_speed(sol, n_nodes=55)
    sol3 = thermo.solve_moments(thermo.stiffness_ramp(1.0, 2.0, 1.0, dim=3), t_eval=3)
    thermo.w1_speed(sol3, n_nodes=11)  # 8 * 11^3 * 13 bytes
    with pytest.raises(MemoryEstimateError, match=r"grid of 13\^3 nodes"):
        thermo.w1_speed(sol3, n_nodes=13)


def test_w1_speed_1d_when_mean_and_width_move_alike():
    """Along the 1-D geodesic from N(0, 1) to N(0.6, 0.5^2) in tau = 1.5, the quantiles move
    at dm + d(sigma) z with dm = 0.4 and d(sigma) = -1/3: v1 = E|dm + d(sigma) z|, here with
    |dm / d(sigma)| near 1 and |d(sigma)| < 1, against quadrature and against
    W1(P_0, P_tau) / tau (constant speed along a geodesic)."""
    tau, dm, dsigma = 1.5, 0.4, -1.0 / 3.0
    p = thermo.geodesic_protocol([0.0], [[1.0]], [0.6], [[0.25]], tau=tau, T=0.8)
    sol = thermo.solve_moments(p, t_eval=5)
    w1 = thermo.w1_speed(sol)
    expected = quad(lambda z: abs(dm + dsigma * z) * norm.pdf(z), -12, 12, points=[1.2],
                    epsabs=1e-13)[0]
    np.testing.assert_allclose(w1.upper, expected, rtol=1e-8)
    z = norm.ppf((np.arange(100_000) + 0.5) / 100_000)
    w1_ends = okot.w_1d(z, 0.6 + 0.5 * z, 1)
    np.testing.assert_allclose(w1.lower, w1_ends / tau, rtol=1e-4)


def test_solve_moments_checks_its_start_and_the_protocol_with_their_names():
    """solve_moments refuses half a start, a C0 of the wrong size, a non-numeric m0 and an A(t)
    that changes shape inside the horizon, naming what to fix; its n_rhs counts the solver's
    right-hand-side evaluations (more of them at a tighter tolerance)."""
    no_start = _constant_protocol(-np.eye(2), np.zeros(2), 1.0, 1.0)
    missing = r"^give the initial state m0, C0 \(the protocol does not carry one\)$"
    for start in ({"m0": [0.0, 0.0]}, {"C0": np.eye(2)}):
        with pytest.raises(ValueError, match=missing):
            thermo.solve_moments(no_start, **start)
    with pytest.raises(ValueError, match=r"^C0 must be a \(2, 2\) matrix \(a covariance\), "
                                         r"got shape \(3, 3\)$"):
        thermo.solve_moments(no_start, [0.0, 0.0], np.eye(3))
    with pytest.raises(TypeError, match="^m0 must be an array of real numbers"):
        thermo.solve_moments(no_start, ["a", "b"], np.eye(2))
    reshaping = thermo.Protocol(
        A=lambda t: -np.eye(3) if 0.15 < t < 0.35 else -np.eye(2), b=np.zeros(2), T=1.0,
        tau=1.0, m0=np.zeros(2), C0=np.eye(2))
    with pytest.raises(ValueError, match=r"^A\(0\.[1-3]\d*\) must be a square \(d, d\) matrix, "
                                         r"got shape \(3, 3\)$"):
        thermo.solve_moments(reshaping)
    calls = []

    def trap(t: float) -> np.ndarray:
        calls.append(t)
        return -np.eye(2)

    counted = thermo.Protocol(A=trap, b=np.zeros(2), T=1.0, tau=1.0)
    loose = thermo.solve_moments(counted, [1.0, 0.0], np.eye(2), t_eval=3, rtol=1e-4, atol=1e-6)
    tight = thermo.solve_moments(counted, [1.0, 0.0], np.eye(2), t_eval=3)
    assert isinstance(loose.n_rhs, int) and 0 < loose.n_rhs < tight.n_rhs
    assert len(calls) >= loose.n_rhs + tight.n_rhs


def test_a_lost_definiteness_says_how_to_fix_it():
    p = thermo.Protocol(A=-50.0 * np.eye(1), b=[0.0], T=lambda t: 0.0, tau=8.0)
    with pytest.raises(RuntimeError, match="^the covariance lost positive definiteness; "
                                           "tighten rtol/atol$"):
        thermo.solve_moments(p, [0.0], [[1.0]], t_eval=5)


def test_gaussian_entropy_checks_each_matrix_of_a_stack_on_its_own_scale():
    """Stacks of any depth: each covariance's symmetry is judged relative to its own size, a
    non-square stack and an asymmetric member are refused, and the first non-positive-definite
    member is named by its full index."""
    rng = np.random.default_rng(3)
    g = rng.standard_normal((2, 3, 2, 5))
    covs = g @ np.swapaxes(g, -1, -2) / 5 + 0.1 * np.eye(2)
    expect = [[0.5 * (2 * np.log(2 * np.pi * np.e) + np.linalg.slogdet(c)[1]) for c in row]
              for row in covs]
    np.testing.assert_allclose(thermo.gaussian_entropy(covs), expect, rtol=1e-13)
    # a 1e-7 asymmetry is rounding on a 1e6-sized matrix, beside a small exact one
    big = 1e6 * np.eye(2)
    big[0, 1] += 1e-7
    assert np.all(np.isfinite(thermo.gaussian_entropy(np.stack([big, 1e-3 * np.eye(2)]))))
    # ... while a 1e-9 asymmetry on a 1e-3-sized matrix is not, even beside a large one
    small = 1e-3 * np.eye(2)
    small[0, 1] += 1e-9
    symmetric = r"^cov must be symmetric; symmetrise it with \(cov \+ cov\.T\) / 2$"
    with pytest.raises(ValueError, match=symmetric):
        thermo.gaussian_entropy(np.stack([1e6 * np.eye(2), small]))
    with pytest.raises(ValueError, match=symmetric):
        thermo.gaussian_entropy(np.stack([np.eye(2), [[1.0, 0.5], [0.0, 1.0]]]))
    # the tolerance itself, |C - C^T| = 1e-10 max|C|, is accepted
    assert np.isfinite(thermo.gaussian_entropy([[1.0, 1e-10], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"^cov must be a \(\.\.\., d, d\) stack of square "
                                         r"matrices, got \(2, 3, 4\)$"):
        thermo.gaussian_entropy(np.zeros((2, 3, 4)))
    bad = covs.copy()
    bad[1, 0] = [[1.0, 0.0], [0.0, -2.0]]
    with pytest.raises(ValueError, match=r"^cov must be positive definite; cov\[1, 0\] has "
                                         r"smallest eigenvalue -2$"):
        thermo.gaussian_entropy(bad)
    with pytest.raises(TypeError, match="^cov must be an array of real numbers"):
        thermo.gaussian_entropy([["a", "b"], ["c", "d"]])


def test_lyapunov_velocity_names_its_inputs_and_is_exactly_symmetric():
    rng = np.random.default_rng(5)
    g = rng.standard_normal((4, 3, 3))
    cov = g @ np.swapaxes(g, 1, 2) + np.eye(3)
    d_cov = rng.standard_normal((4, 3, 3))
    d_cov = d_cov + np.swapaxes(d_cov, 1, 2)
    s = thermo.lyapunov_velocity(cov, d_cov)
    np.testing.assert_array_equal(s, np.swapaxes(s, 1, 2))
    np.testing.assert_allclose(s @ cov + cov @ s, d_cov, atol=1e-12)
    for which, name in ((0, "cov"), (1, "d_cov")):
        args = [cov, d_cov]
        args[which] = np.where(np.eye(3, dtype=bool), np.nan, args[which])
        with pytest.raises(ValueError, match=rf"^{name} must be finite \(no NaN or inf\); "
                                             rf"{name}\[0, 0, 0\] = nan$"):
            thermo.lyapunov_velocity(*args)


def test_w1_speed_beyond_three_dimensions_needs_no_quadrature_grid(monkeypatch):
    """From d = 4 on the expectations are 20,000 Monte Carlo draws, not a 48^d Gauss-Hermite grid
    (679 MB at d = 4), so a 64 MB limit lets the default n_nodes run; at d = 3 the grid
    (48^3 nodes, 11.5 MB) is refused under 8 MB."""
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "64M")
    path = thermo.solve_moments(thermo.quench(1.0, 2.0, 1.0, dim=4), t_eval=3)
    speed = thermo.w1_speed(path, n_directions=8)
    assert np.all(speed.lower <= speed.upper + 1e-12) and np.all(speed.upper > 0)
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "8M")
    with pytest.raises(MemoryEstimateError, match="^w1_speed's Gauss-Hermite grid of 48\\^3"):
        thermo.w1_speed(thermo.solve_moments(thermo.quench(1.0, 2.0, 1.0, dim=3), t_eval=3))
