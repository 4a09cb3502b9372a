"""JKO scheme in quantile form (seed 001 Def. 5.4, Thm 5.5) and displacement convexity
along W2 geodesics (Thm 5.7): exact W2 of piecewise-linear quantiles against closed forms
and POT, the energy estimate, the minimiser against scipy.optimize, first-order
convergence to the grid flow as tau -> 0, stationarity of q, and second derivatives
along McCann interpolations against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import minimize

from ottokit.functionals import Entropy, FDivergence
from ottokit.graph import WassersteinFlow, grid, solve
from ottokit.graph._edi import grid_density
from ottokit.jko import (
    _grid_edges,
    _levels,
    _newton_step,
    _Profile,
    _QuantileEnergy,
    _reference,
    jko_1d,
    jsd_geodesic_convexity,
    masses_from_quantile,
    mccann_interpolation,
    quantile_energy,
    quantile_from_masses,
    w2_quantile,
)
from ottokit.ot import w_1d

F_NAMES = ["kl", "reverse_kl", "jsd", "chi2", "hellinger"]


def q_fn(x):
    return 1.0 + 2.0 * np.exp(-((x - 0.35) ** 2) / (2 * 0.15**2))


def rho0_fn(x):
    return q_fn(x) * (1.0 + 0.6 * np.cos(np.pi * x))


def problem(n: int, f: str = "kl"):
    g = grid(n, 1.0 / n)
    q = grid_density(q_fn, g)
    return g, FDivergence(f, q), grid_density(rho0_fn, g)


def test_w2_quantile_uniforms_closed_form():
    # U[0, 1] vs U[0.2, 0.5]: W2^2 = int_0^1 (0.7 u - 0.2)^2 du = 0.49/3 - 0.14 + 0.04
    exact = np.sqrt(0.49 / 3 - 0.14 + 0.04)
    x = np.linspace(0.0, 1.0, 2)
    y = np.linspace(0.2, 0.5, 8)  # other levels: the union-of-levels path
    assert w2_quantile(x, y) == pytest.approx(exact, rel=1e-14)
    assert w2_quantile(np.linspace(0, 1, 5), np.linspace(0.2, 0.5, 5)) == pytest.approx(exact)
    assert w2_quantile(y, y) == 0.0


def test_w2_quantile_against_pot():
    rng = np.random.default_rng(0)
    edges = np.linspace(0.0, 2.0, 21)
    a = rng.uniform(0.1, 1.0, 20)
    b = rng.uniform(0.1, 1.0, 20)
    a, b = a / a.sum(), b / b.sum()
    # the histograms' quantiles are piecewise linear with knots at their cumulative masses
    la, lb = np.r_[0, np.cumsum(a)], np.r_[0, np.cumsum(b)]
    la[-1] = lb[-1] = 1.0
    xa = quantile_from_masses(a, edges, la)
    xb = quantile_from_masses(b, edges, lb)
    np.testing.assert_allclose(xa, edges, atol=1e-13)
    exact = w2_quantile(xa, xb, la, lb)
    # equal-weight midpoint "samples" X((k + 1/2)/N) of each measure: POT's 1-D W2 is then the
    # midpoint rule for int |X - Y|^2, accurate to O(N^-2) away from the kinks
    N = 20000
    u = (np.arange(N) + 0.5) / N
    sa, sb = np.interp(u, la, xa), np.interp(u, lb, xb)
    assert w_1d(sa, sb, p=2) == pytest.approx(exact, rel=1e-5)
    # and i.i.d. samples agree to Monte-Carlo accuracy
    ra = np.interp(rng.random(100_000), la, xa)
    rb = np.interp(rng.random(100_000), lb, xb)
    assert w_1d(ra, rb, p=2) == pytest.approx(exact, rel=0.05)


def test_masses_quantile_round_trip():
    rng = np.random.default_rng(1)
    edges = np.linspace(-1.0, 1.0, 31)
    m = rng.uniform(0.2, 1.0, 30)
    m /= m.sum()
    # with the cumulative masses as levels the round trip is exact
    lev = np.r_[0, np.cumsum(m)]
    lev[-1] = 1.0
    x = quantile_from_masses(m, edges, lev)
    np.testing.assert_allclose(masses_from_quantile(x, edges, lev), m, atol=1e-15)
    # X -> masses -> X on its own levels is exact too
    x2 = np.sort(rng.uniform(-1, 1, 12))
    x2[0], x2[-1] = -1.0, 1.0
    lev2 = _levels(11, 11)
    m2 = masses_from_quantile(x2, edges)
    c2 = np.r_[0, np.cumsum(m2)]
    np.testing.assert_allclose(np.interp(edges, x2, lev2), c2, atol=1e-14)
    # with equal levels the CDF error is O(M^-2) for a smooth density
    g = grid(50, 2.0 / 50)
    ms = grid_density(lambda z: 1.0 + 0.8 * np.sin(3 * z), g)
    e = np.linspace(0, 2, 51)
    # the linear reconstruction differs from the histogram by O(h^2): compare against it
    prof = _Profile.from_masses(ms, e, "linear")
    ref = prof.cdf(e[1:])
    errs = []
    for M in [25, 50, 100, 200]:
        xm = quantile_from_masses(ms, e, M, interpolation="linear")
        errs.append(np.abs(np.cumsum(masses_from_quantile(xm, e)) - ref).max())
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders > 1.7), orders


@pytest.mark.parametrize("kind", ["linear", "loglinear"])
def test_profile_cdf_against_quadrature(kind):
    rng = np.random.default_rng(2)
    edges = np.linspace(0.0, 1.0, 9)
    m = rng.uniform(0.1, 1.0, 8)
    m /= m.sum()
    prof = _Profile.from_masses(m, edges, kind)
    x = np.sort(rng.uniform(0, 1, 7))
    for xi in x:
        val, _ = quad(lambda s: float(prof.pdf(np.array(s))), 0.0, xi, points=edges, limit=200)
        assert prof.cdf(np.array(xi)) == pytest.approx(val, rel=1e-10, abs=1e-13)
    assert prof.cdf(np.array(1.0)) == pytest.approx(1.0, rel=1e-14)
    u = np.linspace(0, 1, 33)
    np.testing.assert_allclose(prof.cdf(prof.icdf(u)), u, atol=1e-14)
    h = 1e-6
    np.testing.assert_allclose(
        (prof.pdf(x + h) - prof.pdf(x - h)) / (2 * h), prof.dpdf(x), rtol=1e-5
    )


def test_mccann_interpolation_is_a_constant_speed_geodesic():
    rng = np.random.default_rng(3)
    x0 = np.r_[0, np.sort(rng.uniform(0, 1, 15)), 1]
    x1 = np.r_[0, np.sort(rng.uniform(0, 1, 15)), 1]
    d = w2_quantile(x0, x1)
    ts = np.array([0.0, 0.25, 0.6, 1.0])
    xt = mccann_interpolation(x0, x1, ts)
    assert xt.shape == (4, 17)
    np.testing.assert_allclose(xt[0], x0)
    np.testing.assert_allclose(xt[-1], x1)
    for s, t in [(0.0, 0.25), (0.25, 0.6), (0.6, 1.0), (0.0, 0.6)]:
        a, b = mccann_interpolation(x0, x1, s), mccann_interpolation(x0, x1, t)
        assert w2_quantile(a, b) == pytest.approx((t - s) * d, rel=1e-12)


@pytest.mark.parametrize("f", F_NAMES)
def test_quantile_energy_gradient_hessian_finite_differences(f):
    g, F, r0 = problem(12, f)
    edges = _grid_edges(g)
    gen, prof, _ = _reference(F, edges, "loglinear")
    u = _levels(10, 10)
    en = _QuantileEnergy(gen, prof, u)
    X = _Profile.from_masses(r0, edges, "loglinear").icdf(u)
    X = X + 0.003 * np.sin(np.arange(X.size))
    X[0], X[-1] = 0.0, 1.0
    grad, diag, off = en.grad_hess(X)
    h = 1e-6
    H = np.zeros((9, 9))
    for i in range(9):
        e = np.zeros(11)
        e[i + 1] = h
        fd = (en.value(X + e) - en.value(X - e)) / (2 * h)
        assert fd == pytest.approx(grad[i], rel=1e-5, abs=1e-9)
        gp, _, _ = en.grad_hess(X + e)
        gm, _, _ = en.grad_hess(X - e)
        H[:, i] = (gp - gm) / (2 * h)
    np.testing.assert_allclose(np.diag(H), diag, rtol=1e-4)
    np.testing.assert_allclose(np.diag(H, 1), off, rtol=1e-4)
    np.testing.assert_allclose(np.triu(H, 2), 0.0, atol=1e-12)


@pytest.mark.parametrize("f", F_NAMES)
def test_jko_energy_estimate(f):
    g, F, r0 = problem(40, f)
    res = jko_1d(F, r0, g, tau=2e-3, steps=15)
    assert res.all_converged
    assert res.quantiles.shape == (16, 81)
    assert res.masses.shape == (16, 40)
    np.testing.assert_allclose(res.masses.sum(axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose(res.times, 2e-3 * np.arange(16))
    # strict decrease, and the minimiser beats the previous iterate as a competitor:
    # F_k + W2^2(P_k, P_{k-1}) / (2 tau) <= F_{k-1}
    assert np.all(np.diff(res.energies) < 0)
    assert np.all(res.energies[1:] + res.w2**2 / (2 * res.tau) <= res.energies[:-1] + 1e-15)
    # Thm 5.5 (3): sum W2^2/(2 tau) <= F(P_0) - inf F, inf F = 0
    assert res.energy_inf == 0.0
    assert res.dissipation[-1] <= res.energies[0] - res.energy_inf
    # and it is far from empty: as tau -> 0, sum W2^2/(2 tau) -> (1/2) int |P'|^2 dt, which is
    # half the energy dissipated (De Giorgi's energy identity F_0 - F_T = int |P'|^2 dt)
    ratio = res.dissipation[-1] / (res.energies[0] - res.energies[-1])
    assert 0.45 < ratio < 0.51, ratio
    np.testing.assert_allclose(
        res.w2,
        [w2_quantile(a, b) for a, b in zip(res.quantiles[1:], res.quantiles[:-1], strict=True)],
    )
    assert res.energies[0] == pytest.approx(quantile_energy(F, res.quantiles[0], g))


def test_jko_step_against_scipy_minimize():
    g, F, r0 = problem(10, "jsd")
    edges = _grid_edges(g)
    gen, prof, _ = _reference(F, edges, "loglinear")
    u = _levels(12, 12)
    en = _QuantileEnergy(gen, prof, u)
    X0 = _Profile.from_masses(r0, edges, "loglinear").icdf(u)
    tau = 0.02
    X1, it, ok = _newton_step(en, X0, tau, 50, 1e-12)
    assert ok

    def objective(z):
        x = np.r_[0.0, z, 1.0]
        return en.value(x) + w2_quantile(x, X0) ** 2 / (2 * tau)

    ref = minimize(objective, X0[1:-1], method="BFGS", options={"gtol": 1e-11, "xrtol": 1e-12})
    np.testing.assert_allclose(X1[1:-1], ref.x, atol=1e-6)
    assert objective(X1[1:-1]) <= ref.fun + 1e-14


def test_jko_stationary_at_q():
    g, F, _ = problem(30, "jsd")
    res = jko_1d(F, F.q, g, tau=0.01, steps=5)
    assert res.all_converged
    assert np.abs(res.energies).max() < 1e-15
    np.testing.assert_allclose(res.quantiles, res.quantiles[0][None, :].repeat(6, 0), atol=1e-13)
    assert np.all(res.w2 < 1e-13)


@pytest.mark.parametrize("functional", ["kl", "jsd", "entropy"])
def test_jko_converges_to_grid_flow_first_order(functional):
    n, T = 100, 0.02
    g, F, r0 = problem(n, "kl" if functional == "entropy" else functional)
    if functional == "entropy":
        F = Entropy()
    errs, cdfs = [], []
    for k in [4, 8, 16]:
        res = jko_1d(F, r0, g, tau=T / k, steps=k)
        assert res.all_converged
        # the grid flow from the JKO's own initial masses; compare CDFs at the grid edges
        traj = solve(WassersteinFlow(g, F), res.masses[0], (0, T), [0, T], rtol=1e-11, atol=1e-15)
        cdf = np.cumsum(res.final)
        cdfs.append(cdf)
        errs.append(np.abs(cdf - np.cumsum(traj.final)).max())
    order_grid = np.log2(errs[0] / errs[1]), np.log2(errs[1] / errs[2])
    d1, d2 = np.abs(cdfs[0] - cdfs[1]).max(), np.abs(cdfs[1] - cdfs[2]).max()
    order_self = np.log2(d1 / d2)
    detail = f"JKO {functional}: errors vs grid flow {errs}, orders {order_grid}, self {order_self}"
    assert all(0.8 < o < 1.25 for o in order_grid), detail
    assert 0.8 < order_self < 1.2, detail


def test_jko_entropy_on_cell_centres():
    centres = (np.arange(20) + 0.5) / 10.0  # domain [0, 2]
    r0 = np.linspace(1.0, 3.0, 20)
    r0 /= r0.sum()
    res = jko_1d(Entropy(), r0, centres, tau=0.05, steps=10)
    assert res.energy_inf == pytest.approx(-np.log(2.0))
    assert np.all(np.diff(res.energies) < 0)
    assert res.dissipation[-1] <= res.energies[0] - res.energy_inf
    np.testing.assert_allclose(res.edges, np.linspace(0, 2, 21), atol=1e-14)


def test_jko_validation_errors():
    g, F, r0 = problem(20)
    with pytest.raises(ValueError, match="tau must be a positive"):
        jko_1d(F, r0, g, tau=0.0, steps=3)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        jko_1d(F, r0, g, tau=0.01, steps=0)
    with pytest.raises(ValueError, match="20 node masses"):
        jko_1d(F, np.full(21, 1 / 21), g, tau=0.01, steps=1)
    with pytest.raises(ValueError, match="sum 1"):
        jko_1d(FDivergence("kl", 2 * F.q), r0, g, tau=0.01, steps=1)
    with pytest.raises(ValueError, match="30 nodes but the grid has 20"):
        jko_1d(FDivergence("kl", np.full(30, 1 / 30)), r0, g, tau=0.01, steps=1)
    bad = r0.copy()
    bad[3] = 0.0
    bad /= bad.sum()
    with pytest.raises(ValueError, match="strictly positive"):
        jko_1d(F, bad, g, tau=0.01, steps=1)
    # chi2 needs no logarithm: with linear interpolation a zero mass is allowed
    chi = FDivergence("chi2", F.q)
    assert jko_1d(chi, bad, g, tau=0.01, steps=1, interpolation="linear").all_converged
    with pytest.raises(ValueError, match="interpolation='linear'"):
        jko_1d(chi, bad, g, tau=0.01, steps=1)
    with pytest.raises(TypeError, match="FDivergence"):
        jko_1d("kl", r0, g, tau=0.01, steps=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D grid"):
        jko_1d(F, r0, grid((4, 5), 0.2), tau=0.01, steps=1)
    with pytest.raises(ValueError, match="equally spaced"):
        jko_1d(F, r0, np.r_[0.0, np.cumsum(np.linspace(0.1, 0.2, 19))], tau=0.01, steps=1)
    with pytest.raises(ValueError, match="n_levels"):
        jko_1d(F, r0, g, tau=0.01, steps=1, n_levels=1)
    with pytest.raises(ValueError, match="unknown interpolation"):
        jko_1d(F, r0, g, tau=0.01, steps=1, interpolation="cubic")  # type: ignore[arg-type]


def test_quantile_tools_validation_errors():
    e = np.linspace(0, 1, 5)
    m = np.full(4, 0.25)
    with pytest.raises(ValueError, match="strictly increasing cell edges"):
        quantile_from_masses(m, e[::-1])
    with pytest.raises(ValueError, match="sum to 1"):
        quantile_from_masses(2 * m, e)
    with pytest.raises(ValueError, match="levels must increase"):
        quantile_from_masses(m, e, [0.0, 0.7, 0.5, 1.0])
    with pytest.raises(ValueError, match="strictly positive"):
        quantile_from_masses(np.r_[0.0, 1 / 3, 1 / 3, 1 / 3], e, interpolation="loglinear")
    with pytest.raises(ValueError, match="strictly increasing"):
        masses_from_quantile([0.0, 0.5, 0.4, 1.0], e)
    with pytest.raises(ValueError, match="mass would be lost"):
        masses_from_quantile([-0.5, 0.5, 1.0], e)
    with pytest.raises(ValueError, match="non-decreasing"):
        w2_quantile([0.0, 1.0, 0.5], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="same length"):
        mccann_interpolation([0.0, 1.0], [0.0, 0.5, 1.0], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mccann_interpolation([0.0, 1.0], [0.0, 1.0], 1.5)


def test_kl_displacement_convexity_bound():
    # KL(. || q) with q log-concave, -(log q)'' = 1/sigma^2, is (1/sigma^2)-convex along W2
    # geodesics; log-linear interpolation keeps q log-concave
    sigma = 0.25
    g = grid(60, 1 / 60)
    q = grid_density(lambda x: np.exp(-((x - 0.5) ** 2) / (2 * sigma**2)), g)
    (res,) = jsd_geodesic_convexity(q, g, 0.1, n_pairs=4, seed=1, f="kl", n_t=6)
    assert res.lam >= 1 / sigma**2
    assert res.lam_entropy >= 0.0
    assert res.fd_rel_error < 1e-3
    np.testing.assert_allclose(res.second_entropy, res.second_entropy_fd, rtol=1e-5)


def test_jsd_lambda_against_delta():
    g = grid(60, 1 / 60)
    q = grid_density(q_fn, g)
    deltas = [0.05, 0.1, 0.2]
    out = jsd_geodesic_convexity(q, g, deltas, n_pairs=4, seed=2, n_t=6)
    assert [r.delta for r in out] == deltas
    lams = [r.lam for r in out]
    for r in out:
        # the end points satisfy Assumption 5.6 on the nodes
        assert np.all(r.ratio_dev <= r.delta + 1e-12)
        # McCann: the entropy part is displacement convex; its analytic second derivative
        # agrees with a finite difference of the entropy values
        assert r.lam_entropy >= 0.0
        np.testing.assert_allclose(r.second_entropy, r.second_entropy_fd, rtol=1e-5)
        # the analytic second derivative of JSD agrees with finite differences in t
        assert r.fd_rel_error < 2e-3
        assert np.all(r.w2 > 0)
    assert all(np.isfinite(lams)), f"JSD lambda per delta: {dict(zip(deltas, lams, strict=True))}"


def test_geodesic_convexity_validation_errors():
    g = grid(10, 0.1)
    q = np.full(10, 0.1)
    with pytest.raises(ValueError, match="delta must be < 1"):
        jsd_geodesic_convexity(q, g, 1.5)
    with pytest.raises(ValueError, match="delta must be positive"):
        jsd_geodesic_convexity(q, g, [0.1, -0.1])
    with pytest.raises(ValueError, match="sum to 1"):
        jsd_geodesic_convexity(2 * q, g, 0.1)
    with pytest.raises(ValueError, match="strictly positive"):
        jsd_geodesic_convexity(np.r_[0.0, np.full(9, 1 / 9)], g, 0.1)
    with pytest.raises(ValueError, match="unknown f-divergence"):
        jsd_geodesic_convexity(q, g, 0.1, f="tv")
    with pytest.raises(ValueError, match="n_pairs"):
        jsd_geodesic_convexity(q, g, 0.1, n_pairs=0)
