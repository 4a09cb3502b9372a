"""JKO scheme in quantile form (seed 001 Def. 5.4, Thm 5.5) and displacement convexity
along W2 geodesics (Thm 5.7): exact W2 of piecewise-linear quantiles against closed forms
and POT, the energy estimate, the minimiser against scipy.optimize, first-order
convergence to the grid flow as tau -> 0, stationarity of q, and second derivatives
along McCann interpolations against finite differences."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import minimize, minimize_scalar
from scipy.stats import norm

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


def _grid01(n: int):
    return grid(n, 1.0 / n)


_Q10 = np.full(10, 0.1)
_KL10 = FDivergence("kl", _Q10)
_E4 = np.linspace(0.0, 1.0, 5)
_M4 = np.full(4, 0.25)

# every public guard fires, with the whole message (it names the argument and says how to fix it)
GUARDS = {
    "edges text": (lambda: quantile_from_masses(_M4, "abcd"), TypeError,
                   "edges must be an array of real numbers, got 'abcd' of type str (dtype <U4)"),
    "one edge": (lambda: quantile_from_masses([1.0], [0.0]), ValueError,
                 "edges must be at least 2 strictly increasing cell edges"),
    "repeated edge": (lambda: quantile_from_masses(_M4, [0, 0.5, 0.5, 0.75, 1]), ValueError,
                      "edges must be at least 2 strictly increasing cell edges"),
    "masses length": (lambda: quantile_from_masses(np.full(3, 1 / 3), _E4), ValueError,
                      "masses must be a vector of length 4, got shape (3,)"),
    "zero levels": (lambda: quantile_from_masses(_M4, _E4, 0), ValueError,
                    "levels must be a positive integer, got 0; a number of cells, or an array "
                    "of levels"),
    "levels text": (lambda: quantile_from_masses(_M4, _E4, ["a", "b"]), TypeError,
                    "levels must be an array of real numbers, got ['a', 'b'] of type list "
                    "(dtype <U1)"),
    "one level": (lambda: quantile_from_masses(_M4, _E4, [0.0]), ValueError,
                  "levels must hold at least 2 levels, got 1"),
    "levels from 0.1": (lambda: quantile_from_masses(_M4, _E4, [0.1, 0.5, 1.0]), ValueError,
                        "levels must increase strictly from 0 to 1, got [0.1, ..., 1.0]"),
    "levels to 0.9": (lambda: quantile_from_masses(_M4, _E4, [0.0, 0.5, 0.9]), ValueError,
                      "levels must increase strictly from 0 to 1, got [0.0, ..., 0.9]"),
    "repeated level": (lambda: quantile_from_masses(_M4, _E4, [0.0, 0.5, 0.5, 1.0]), ValueError,
                       "levels must increase strictly from 0 to 1, got [0.0, ..., 1.0]"),
    "interpolation": (lambda: quantile_from_masses(_M4, _E4, 4, "cubic"), ValueError,
                      "unknown interpolation 'cubic'; allowed: 'histogram', 'linear', "
                      "'loglinear'"),
    "X text": (lambda: masses_from_quantile("abc", _E4), TypeError,
               "X must be an array of real numbers, got 'abc' of type str (dtype <U3)"),
    "X repeated knot": (lambda: masses_from_quantile([0, 0.5, 0.6, 0.6, 1], _E4), ValueError,
                        "X must be strictly increasing (a quantile function); X[3] - X[2] = 0"),
    "X levels": (lambda: masses_from_quantile([0, 0.5, 1], _E4, 5), ValueError,
                 "levels has 6 entries but X has 3"),
    "X left of edges": (lambda: masses_from_quantile([-0.5, 0.2, 0.6, 1.0], _E4), ValueError,
                        "X spans [-0.5, 1], outside the edges [0, 1]; mass would be lost"),
    "X right of edges": (lambda: masses_from_quantile([0.0, 0.3, 0.5, 1.5], _E4), ValueError,
                         "X spans [0, 1.5], outside the edges [0, 1]; mass would be lost"),
    "w2 one knot": (lambda: w2_quantile([0.5], [0.0, 1.0]), ValueError,
                    "X must be a vector of at least 2 quantile knots"),
    "w2 X decreasing": (lambda: w2_quantile([0, 0.5, 0.6, 0.5, 1], [0, 1]), ValueError,
                        "X must be non-decreasing (a quantile function); X[3] - X[2] = -0.1"),
    "w2 Y decreasing": (lambda: w2_quantile([0, 1], [0, 0.6, 0.5, 1]), ValueError,
                        "Y must be non-decreasing (a quantile function); Y[2] - Y[1] = -0.1"),
    "w2 levels_x": (lambda: w2_quantile([0, 0.5, 1], [0, 1], [0, 0.7, 0.5, 1]), ValueError,
                    "levels_x must increase strictly from 0 to 1, got [0.0, ..., 1.0]"),
    "w2 levels_y": (lambda: w2_quantile([0, 1], [0, 0.5, 1], None, [0, 0.7, 0.5, 1]),
                    ValueError, "levels_y must increase strictly from 0 to 1, got [0.0, ..., 1.0]"),
    "w2 one level per knot": (lambda: w2_quantile([0, 0.5, 1], [0, 1], 3), ValueError,
                              "each of X, Y needs one level per knot"),
    "McCann X0": (lambda: mccann_interpolation([1, 0], [0, 1], 0.5), ValueError,
                  "X0 must be non-decreasing (a quantile function); X0[1] - X0[0] = -1"),
    "McCann X1": (lambda: mccann_interpolation([0, 1], [1, 0], 0.5), ValueError,
                  "X1 must be non-decreasing (a quantile function); X1[1] - X1[0] = -1"),
    "McCann t text": (lambda: mccann_interpolation([0, 1], [0, 1], "abc"), TypeError,
                      "t must be an array of real numbers, got 'abc' of type str (dtype <U3)"),
    "McCann t < 0": (lambda: mccann_interpolation([0, 1], [0, 1], -0.1), ValueError,
                     "t must lie in [0, 1], got -0.1"),
    "energy X repeated": (lambda: quantile_energy(_KL10, [0, 0.5, 0.5, 1], _grid01(10)),
                          ValueError,
                          "X must be strictly increasing (a quantile function); X[2] - X[1] = 0"),
    "energy X short": (lambda: quantile_energy(_KL10, [0.1, 0.5, 1], _grid01(10)), ValueError,
                       "X must run over the grid's domain, from X[0] = 0 to X[-1] = 1, got "
                       "[0.1, 1]"),
    "energy X long": (lambda: quantile_energy(_KL10, [0, 0.5, 1.2], _grid01(10)), ValueError,
                      "X must run over the grid's domain, from X[0] = 0 to X[-1] = 1, got "
                      "[0, 1.2]"),
    "energy interpolation": (lambda: quantile_energy(_KL10, [0, 1], _grid01(10), "cubic"),
                             ValueError,
                             "unknown interpolation 'cubic'; allowed: 'linear', 'loglinear'"),
    "grid text": (lambda: jko_1d(_KL10, _Q10, "abc", 0.1, 1), TypeError,
                  "grid must be an array of real numbers, got 'abc' of type str (dtype <U3)"),
    "one centre": (lambda: jko_1d(_KL10, _Q10, [0.5], 0.1, 1), ValueError,
                   "grid must be a 1-D ottokit.graph.grid(n, h) or a vector of at least 2 "
                   "cell centres"),
    "centres matrix": (lambda: jko_1d(_KL10, _Q10, np.zeros((3, 3)), 0.1, 1), ValueError,
                       "grid must be a 1-D ottokit.graph.grid(n, h) or a vector of at least 2 "
                       "cell centres"),
    "equal centres": (lambda: jko_1d(_KL10, _Q10, [0.5, 0.5, 0.5], 0.1, 1), ValueError,
                      "cell centres must be strictly increasing and equally spaced"),
    "tau": (lambda: jko_1d(_KL10, _Q10, _grid01(10), 0, 1), ValueError,
            "tau must be a positive number, got 0 (e.g. tau=0.001)"),
    "max_iter": (lambda: jko_1d(_KL10, _Q10, _grid01(10), 0.1, 1, max_iter=0), ValueError,
                 "max_iter must be a positive integer, got 0 (e.g. max_iter=50)"),
    "xtol": (lambda: jko_1d(_KL10, _Q10, _grid01(10), 0.1, 1, xtol=0), ValueError,
             "xtol must be a positive number, got 0 (e.g. xtol=1e-10)"),
    "n_levels": (lambda: jko_1d(_KL10, _Q10, _grid01(10), 0.1, 1, n_levels=1), ValueError,
                 "n_levels must be an integer >= 2, got 1"),
    "rho0 text": (lambda: jko_1d(_KL10, "abc", _grid01(10), 0.1, 1), TypeError,
                  "rho0 must be an array of real numbers, got 'abc' of type str (dtype <U3)"),
    "rho0 mass": (lambda: jko_1d(_KL10, 2 * _Q10, _grid01(10), 0.1, 1), ValueError,
                  "rho0 must sum to 1 (got 2); pass normalize=True to rescale it"),
    "rho0 zero, f'": (lambda: jko_1d(_KL10, np.r_[0.2, 0.2, 0.2, 0, 0.2, 0.2, 0, 0, 0, 0],
                                     _grid01(10), 0.1, 1), ValueError,
                      "rho0 must be strictly positive (f' takes a logarithm or a negative "
                      "power); rho0[3] = 0"),
    "rho0 zero, loglinear": (lambda: jko_1d(FDivergence("chi2", _Q10),
                                            np.r_[0.2, 0.2, 0.2, 0, 0.2, 0.2, 0, 0, 0, 0],
                                            _grid01(10), 0.1, 1), ValueError,
                             "rho0 must be strictly positive (interpolation='loglinear' takes "
                             "a logarithm; use interpolation='linear'); rho0[3] = 0"),
    "functional": (lambda: jko_1d("kl", _Q10, _grid01(10), 0.1, 1), TypeError,
                   "functional must be an ottokit.functionals.FDivergence (or Entropy()), got "
                   "str"),
    "q nodes": (lambda: jko_1d(FDivergence("kl", np.full(5, 0.2)), _Q10, _grid01(10), 0.1, 1),
                ValueError,
                "the f-divergence's q lives on 5 nodes but the grid has 10; build q on the "
                "same grid"),
    "q mass": (lambda: jko_1d(FDivergence("kl", 2 * _Q10), _Q10, _grid01(10), 0.1, 1),
               ValueError,
               "q must be a probability vector of node masses (sum 1), got sum 2; divide q by "
               "its sum"),
    "convexity q text": (lambda: jsd_geodesic_convexity("abc", _grid01(10), 0.1), TypeError,
                         "q must be an array of real numbers, got 'abc' of type str "
                         "(dtype <U3)"),
    "convexity q zero": (lambda: jsd_geodesic_convexity(np.r_[0.0, np.full(9, 1 / 9)],
                                                        _grid01(10), 0.1), ValueError,
                         "q must be strictly positive node masses; min q = 0"),
    "convexity q mass": (lambda: jsd_geodesic_convexity(2 * _Q10, _grid01(10), 0.1),
                         ValueError, "q must sum to 1, got 2; divide q by its sum"),
    "delta text": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), "abc"), TypeError,
                   "delta must be an array of real numbers, got 'abc' of type str (dtype <U3)"),
    "no delta": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), []), ValueError,
                 "delta must be positive (and < 1), got []"),
    "delta 0": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), 0.0), ValueError,
                "delta must be positive (and < 1), got 0.0"),
    "delta 1": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), 1.0), ValueError,
                "delta must be < 1 so that rho = q (1 + delta s) > 0, got 1.0"),
    "n_pairs": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), 0.1, n_pairs=0), ValueError,
                "n_pairs must be a positive integer, got 0"),
    "seed": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), 0.1, seed=-1), ValueError,
             "seed must be a non-negative integer, got -1"),
    "n_t": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), 0.1, n_t=1), ValueError,
            "n_t must be an integer >= 2, got 1"),
    "n_modes": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), 0.1, n_modes=0), ValueError,
                "n_modes must be a positive integer, got 0"),
    "convexity n_levels": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), 0.1, n_levels=1),
                           ValueError, "n_levels must be an integer >= 2, got 1"),
    "fd_step 0": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), 0.1, fd_step=0),
                  ValueError, "fd_step must be a number in (0, 0.1), got 0 (e.g. fd_step=0.001)"),
    "fd_step 0.1": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), 0.1, fd_step=0.1),
                    ValueError,
                    "fd_step must be a number in (0, 0.1), got 0.1 (e.g. fd_step=0.001)"),
    "generator": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), 0.1, f="tv"), ValueError,
                  "unknown f-divergence 'tv'; allowed: kl, reverse_kl, jsd, chi2, reverse_chi2, "
                  "hellinger"),
    "convexity interpolation": (lambda: jsd_geodesic_convexity(_Q10, _grid01(10), 0.1,
                                                               interpolation="cubic"),
                                ValueError,
                                "unknown interpolation 'cubic'; allowed: 'linear', 'loglinear'"),
}


@pytest.mark.parametrize("case", list(GUARDS))
def test_guards_fire_with_their_messages(case):
    call, exc, message = GUARDS[case]
    with pytest.raises(exc, match="^" + re.escape(message) + "$"):
        call()


def test_quantiles_at_the_smallest_sizes():
    # one cell, two levels: the uniform measure on [0, 2] has X(u) = 2u
    np.testing.assert_array_equal(quantile_from_masses([1.0], [0.0, 2.0], [0.0, 1.0]), [0, 2])
    np.testing.assert_allclose(masses_from_quantile([0.0, 2.0], [0.0, 2.0]), [1.0], atol=0)
    # two cell centres (domain [0, 2]): the entropy of the two-piece uniform quantile measure
    x = np.array([0.0, 0.6, 2.0])
    exact = 0.5 * np.log(0.5 / 0.6) + 0.5 * np.log(0.5 / 1.4)
    assert quantile_energy(Entropy(), x, [0.5, 1.5]) == pytest.approx(exact, rel=1e-14)
    # end knots within rounding of the domain ends are taken as the ends
    wobble = x + np.array([1e-12, 0.0, -1e-12])
    assert quantile_energy(Entropy(), wobble, [0.5, 1.5]) == pytest.approx(exact, rel=1e-14)


def test_histogram_quantile_of_empty_end_cells():
    # mass 1/2 on [1, 2] and on [2, 3]: the left-continuous inverse inf{x : F(x) >= u} over the
    # domain [0, 4], with X(0) at the domain's left end
    x = quantile_from_masses([0.0, 0.5, 0.5, 0.0], np.arange(5.0), 4)
    np.testing.assert_allclose(x, [0.0, 1.5, 2.0, 2.5, 3.0], rtol=0, atol=1e-15)
    # default levels: one per cell
    np.testing.assert_allclose(quantile_from_masses(_M4, 2 * _E4), 2 * _E4, atol=1e-15)


@pytest.mark.parametrize("interpolation", ["histogram", "linear", "loglinear"])
def test_quantile_depends_on_the_normalised_masses_only(interpolation):
    # masses off 1 within the mass tolerance are the same measure
    rng = np.random.default_rng(4)
    m = rng.uniform(0.2, 1.0, 9)
    m /= m.sum()
    edges = np.cumsum(np.r_[0.0, rng.uniform(0.5, 1.5, 9)])
    x = quantile_from_masses(m, edges, 13, interpolation)
    x_off = quantile_from_masses(m * (1 + 5e-9), edges, 13, interpolation)
    np.testing.assert_allclose(x_off, x, rtol=0, atol=1e-14)
    assert x[0] == edges[0] and x[-1] == edges[-1]


@pytest.mark.parametrize("interpolation", ["linear", "loglinear"])
def test_quantile_inverts_the_interpolated_density_on_uneven_cells(interpolation):
    # independent reference: node densities m_i / width_i at the cell centres, (log-)linear in
    # between, constant on the end half-cells, normalised; its CDF by quadrature at X(u) is u
    rng = np.random.default_rng(5)
    widths = rng.uniform(0.5, 2.0, 6)
    edges = np.r_[0.0, np.cumsum(widths)]
    m = rng.uniform(0.2, 1.0, 6)
    m /= m.sum()
    centres = 0.5 * (edges[:-1] + edges[1:])
    dens = m / widths
    if interpolation == "linear":
        def rho(z):
            return np.interp(z, centres, dens)
    else:
        def rho(z):
            return np.exp(np.interp(z, centres, np.log(dens)))
    pts = list(centres) + list(edges)
    total = quad(rho, edges[0], edges[-1], points=pts, limit=200)[0]
    u = np.linspace(0.0, 1.0, 9)
    x = quantile_from_masses(m, edges, u, interpolation)
    for ui, xi in zip(u[1:-1], x[1:-1], strict=True):
        cdf = quad(rho, edges[0], xi, points=[p for p in pts if p < xi], limit=200)[0] / total
        assert cdf == pytest.approx(ui, abs=1e-11)


def test_masses_of_a_uniform_measure_on_a_sub_interval():
    # U[0.3, 0.6] on ten cells of [0, 1]: a third in each of cells 3, 4, 5
    m = masses_from_quantile([0.3, 0.6], np.linspace(0.0, 1.0, 11))
    np.testing.assert_allclose(m, np.r_[0, 0, 0, 1, 1, 1, 0, 0, 0, 0] / 3, atol=1e-15)


def test_masses_from_quantile_end_tolerance_is_relative_to_the_domain():
    # edges on [100, 102]: an end knot off by 0.9e-9 of the length is rounding, 1.5e-9 is not
    edges = np.linspace(100.0, 102.0, 5)
    inside = masses_from_quantile([100.0 - 1.8e-9, 101.0, 102.0 + 1.8e-9], edges)
    np.testing.assert_allclose(inside, _M4, atol=1e-8)
    with pytest.raises(ValueError, match="mass would be lost"):
        masses_from_quantile([100.0 - 3e-9, 101.0, 102.0], edges)
    with pytest.raises(ValueError, match="mass would be lost"):
        masses_from_quantile([100.0, 101.0, 102.0 + 3e-9], edges)


def test_w2_between_a_dirac_and_a_uniform():
    # a flat quantile function is an atom: W2^2(delta_c, U[0, 1]) = 1/3 - c + c^2
    for c in [0.0, 0.3, 2.0]:
        exact = np.sqrt(1 / 3 - c + c * c)
        assert w2_quantile([c, c], [0.0, 1.0]) == pytest.approx(exact, rel=1e-14)
        assert w2_quantile([c, c, c], [0.0, 0.5, 1.0]) == pytest.approx(exact, rel=1e-14)


def test_mccann_interpolation_of_gaussians():
    # the quantiles of N(m, s^2) are m + s z(u): the geodesic stays Gaussian with mean and
    # standard deviation interpolated linearly
    z = norm.ppf(np.linspace(0.01, 0.99, 21))
    m0, s0, m1, s1 = -1.0, 0.5, 2.0, 1.5
    x0, x1 = m0 + s0 * z, m1 + s1 * z
    ts = np.array([0.0, 0.3, 0.75, 1.0])
    xt = mccann_interpolation(x0, x1, ts)
    for t, row in zip(ts, xt, strict=True):
        ref = (1 - t) * m0 + t * m1 + ((1 - t) * s0 + t * s1) * z
        np.testing.assert_allclose(row, ref, rtol=0, atol=1e-14)
        np.testing.assert_allclose(mccann_interpolation(x0, x1, t), ref, rtol=0, atol=1e-14)
        assert w2_quantile(x0, row) == pytest.approx(t * w2_quantile(x0, x1), rel=1e-12, abs=1e-15)


def test_interpolated_quantile_ends_where_the_mass_ends():
    # an empty last cell: the linear density vanishes from the last centre on
    edges = np.linspace(0.0, 3.0, 4)
    x = quantile_from_masses([0.5, 0.5, 0.0], edges, 4, "linear")
    assert x[0] == 0.0
    assert x[-1] == pytest.approx(2.5, abs=1e-12)
    # an empty first cell: X(0) is the domain's left end, X(1) its right end
    x = quantile_from_masses([0.0, 0.5, 0.5], edges, 4, "linear")
    assert x[0] == 0.0 and x[-1] == 3.0
    assert np.all(np.diff(x[1:]) > 0) and x[1] > 0.5


def test_entropy_jko_keeps_the_uniform_density():
    # the uniform density minimises the entropy on [1, 3]: every step returns it exactly,
    # after one Newton iteration whose step is zero
    centres = np.array([1.25, 1.75, 2.25, 2.75])
    res = jko_1d(Entropy(), np.full(4, 0.25), centres, tau=0.1, steps=2, n_levels=4)
    np.testing.assert_array_equal(res.quantiles, np.tile(np.linspace(1.0, 3.0, 5), (3, 1)))
    np.testing.assert_array_equal(res.newton_iterations, [1, 1])
    assert res.all_converged
    np.testing.assert_array_equal(res.w2, 0.0)
    assert res.energy_inf == pytest.approx(-np.log(2.0), rel=1e-15)
    np.testing.assert_allclose(res.energies, res.energy_inf, rtol=1e-15)


@pytest.mark.parametrize("functional", ["kl", "entropy"])
def test_jko_is_affine_covariant(functional):
    # x -> c + s x maps JKO(tau) on [0, 1] to JKO(s^2 tau) on [c, c + s]: quantiles map, W2
    # scales by s, W2^2 / tau and the f-divergence are invariant, the entropy drops by log s
    c, s, tau = 3.0, 2.5, 4e-3
    n = 12
    g, F, r0 = problem(n)
    if functional == "entropy":
        F = Entropy()
    centres = c + s * (np.arange(n) + 0.5) / n
    ref = jko_1d(F, r0, g, tau=tau, steps=3)
    res = jko_1d(F, r0, centres, tau=s * s * tau, steps=3)
    assert ref.all_converged and res.all_converged
    np.testing.assert_allclose(res.quantiles, c + s * ref.quantiles, rtol=0, atol=1e-11)
    np.testing.assert_allclose(res.w2, s * ref.w2, rtol=1e-8)
    np.testing.assert_allclose(res.dissipation, ref.dissipation, rtol=1e-8)
    shift = np.log(s) if functional == "entropy" else 0.0
    np.testing.assert_allclose(res.energies, ref.energies - shift, rtol=1e-10, atol=1e-13)
    assert res.energy_inf == pytest.approx(ref.energy_inf - shift, rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("functional", ["kl", "entropy"])
def test_jko_newton_stops_by_its_documented_rule(functional):
    # xtol: stop when a full Newton step moves no knot more than xtol times the domain length.
    # The iterates after k iterations are the results with max_iter = k; on [1, 3] (L = 2) the
    # rule is checked at xtol just above and just below the step of iteration k
    n, L = 8, 2.0
    _, F, r0 = problem(n)
    if functional == "entropy":
        F = Entropy()
    centres = 1.0 + L * (np.arange(n) + 0.5) / n
    iterates = [jko_1d(F, r0, centres, 0.01, 1, max_iter=k, xtol=1e-300) for k in range(1, 5)]
    X = [iterates[0].quantiles[0]] + [r.quantiles[1] for r in iterates]
    steps = [np.abs(b - a).max() for a, b in zip(X[:-1], X[1:], strict=True)]
    assert not any(r.converged[0] for r in iterates[:3])
    np.testing.assert_array_equal([r.newton_iterations[0] for r in iterates], [1, 2, 3, 4])
    k = 2  # steps of iterations k - 1, k, k + 1 a decade apart at least, above rounding
    assert steps[k] < 0.1 * steps[k - 1] < 0.01 * steps[k - 2] and steps[k - 1] > 1e-11
    above = jko_1d(F, r0, centres, 0.01, 1, xtol=1.05 * steps[k - 1] / L)
    assert above.newton_iterations[0] == k and above.all_converged
    np.testing.assert_allclose(above.quantiles[1], X[k], rtol=0, atol=1e-15)
    below = jko_1d(F, r0, centres, 0.01, 1, xtol=0.95 * steps[k - 1] / L)
    assert below.newton_iterations[0] == k + 1 and below.all_converged
    # one iteration fewer than it needs: flagged, with the iterate reached
    short = jko_1d(F, r0, centres, 0.01, 1, max_iter=k, xtol=0.95 * steps[k - 1] / L)
    assert short.newton_iterations[0] == k and not short.converged[0]
    np.testing.assert_allclose(short.quantiles[1], X[k], rtol=0, atol=1e-15)


def test_damped_newton_strictly_decreases_the_step_objective_when_the_full_step_fails():
    # mass moved across the domain (x ~ 0.1 -> 0.85) under the reverse chi^2 with tau = 1: the
    # full Newton step overshoots, so only the Armijo-damped iterates decrease the step objective
    # F(P) + W2^2(P, P_prev) / (2 tau); after m iterations (max_iter = m, not yet converged) the
    # objective must fall strictly with m
    n = 40
    x = (np.arange(n) + 0.5) / n
    q = np.exp(-(((x - 0.85) / 0.05) ** 2) / 2) + 1e-3
    r0 = np.exp(-(((x - 0.1) / 0.05) ** 2) / 2) + 1e-3
    F, tau = FDivergence("reverse_chi2", q / q.sum()), 1.0
    objective = []
    for m in range(1, 31):
        res = jko_1d(F, r0 / r0.sum(), _grid01(n), tau, 1, max_iter=m)
        assert not res.converged[0]
        objective.append(res.energies[1] + res.w2[0] ** 2 / (2 * tau))
    assert np.all(np.diff(objective) < 0)
    assert objective[-1] < res.energies[0]


def _step_objective(F, g, X_prev, tau):
    a, b = X_prev[0], X_prev[-1]

    def phi(z):
        x = np.r_[a, z, b]
        if np.any(np.diff(x) <= 0):
            return np.inf
        return quantile_energy(F, x, g) + w2_quantile(x, X_prev) ** 2 / (2 * tau)

    return phi


@pytest.mark.parametrize("n_levels", [3, None])
def test_first_newton_iteration_is_the_newton_step_of_the_objective(n_levels):
    # one iteration from X_prev is X_prev - H^{-1} grad of F[X] + W2^2(X, X_prev) / (2 tau),
    # with grad and H by central differences of the public energy and distance
    g, F, r0 = problem(6, "jsd")
    tau = 0.05
    one = jko_1d(F, r0, g, tau, 1, max_iter=1, n_levels=n_levels)
    X0 = one.quantiles[0]
    phi = _step_objective(F, g, X0, tau)
    z = X0[1:-1]
    d, h = z.size, 1e-4
    grad = np.array([(phi(z + h * e) - phi(z - h * e)) / (2 * h) for e in np.eye(d)])
    H = np.empty((d, d))
    for i, ei in enumerate(np.eye(d)):
        for j, ej in enumerate(np.eye(d)):
            H[i, j] = (
                phi(z + h * ei + h * ej) - phi(z + h * ei - h * ej)
                - phi(z - h * ei + h * ej) + phi(z - h * ei - h * ej)
            ) / (4 * h * h)
    newton = z - np.linalg.solve(H, grad)
    np.testing.assert_allclose(one.quantiles[1][1:-1], newton, rtol=0, atol=1e-7)
    assert np.abs(newton - z).max() > 1e-3  # a real step


def test_jko_step_with_an_indefinite_hessian():
    # far from q with a long step the Hessian of the step objective is indefinite at the start
    # (the solver regularises it); the step still reaches the minimiser
    n = 6
    g = grid(n, 1 / n)
    q = grid_density(lambda x: 1 + 2 * np.exp(-((x - 0.3) ** 2) / (2 * 0.08**2)), g)
    r0 = grid_density(lambda x: np.exp(-((x - 0.8) ** 2) / (2 * 0.08**2)) + 1e-2, g)
    F = FDivergence("kl", q)
    res = jko_1d(F, r0, g, tau=1.0, steps=1)
    assert res.all_converged
    phi = _step_objective(F, g, res.quantiles[0], 1.0)
    with np.errstate(invalid="ignore"):  # difference quotients across the ordering barrier
        ref = minimize(phi, res.quantiles[0][1:-1], method="BFGS", options={"gtol": 1e-9})
    assert phi(res.quantiles[1][1:-1]) <= ref.fun + 1e-13
    np.testing.assert_allclose(res.quantiles[1][1:-1], ref.x, atol=1e-5)


def test_jko_with_one_interior_knot_against_a_scalar_minimiser():
    g, F, r0 = problem(10, "jsd")
    res = jko_1d(F, r0, g, tau=0.05, steps=1, n_levels=2)
    assert res.all_converged and res.newton_iterations[0] >= 1
    phi = _step_objective(F, g, res.quantiles[0], 0.05)
    ref = minimize_scalar(lambda z: phi(np.array([z])), bounds=(0.01, 0.99), method="bounded",
                          options={"xatol": 1e-12})
    assert res.quantiles[1][1] == pytest.approx(ref.x, abs=1e-7)
    assert abs(res.quantiles[1][1] - res.quantiles[0][1]) > 1e-3


def test_jko_result_fields():
    g, F, r0 = problem(10, "jsd")
    tau = 0.02
    res = jko_1d(F, r0, g, tau=tau, steps=3, n_levels=14)
    np.testing.assert_array_equal(res.levels, np.linspace(0.0, 1.0, 15))
    assert res.info == {"interpolation": "loglinear", "n_levels": 14, "generator": "jsd"}
    assert res.newton_iterations.dtype.kind == "i" and np.all(res.newton_iterations >= 1)
    np.testing.assert_array_equal(
        res.dissipation, np.r_[0.0, np.cumsum(res.w2**2) / (2 * tau)]
    )
    for x, m in zip(res.quantiles, res.masses, strict=True):
        np.testing.assert_array_equal(m, masses_from_quantile(x, res.edges, res.levels))
    np.testing.assert_array_equal(res.final, res.masses[-1])
    # the default tolerance leaves the quantiles as accurate as a much tighter solve
    tight = jko_1d(F, r0, g, tau=tau, steps=3, n_levels=14, xtol=1e-14)
    np.testing.assert_allclose(res.quantiles, tight.quantiles, rtol=0, atol=1e-10)
    again = jko_1d(F, r0, g, tau=tau, steps=3, n_levels=14, max_iter=50, xtol=1e-10)
    np.testing.assert_array_equal(res.quantiles, again.quantiles)


def test_convexity_statistics_follow_their_definitions():
    g = grid(10, 0.1)
    q = grid_density(q_fn, g)
    (res,) = jsd_geodesic_convexity(q, g, 0.2, n_pairs=3, seed=4, n_t=5, n_modes=2)
    np.testing.assert_array_equal(res.t, np.linspace(0.0, 1.0, 5))
    assert res.second.shape == res.second_fd.shape == res.second_entropy.shape == (3, 5)
    w2sq = res.w2[:, None] ** 2
    assert res.lam == np.min(res.second / w2sq)
    assert res.lam_entropy == np.min(res.second_entropy / w2sq)
    assert res.fd_rel_error == np.max(np.abs(res.second - res.second_fd) / np.abs(res.second))
    # the end points are q (1 + delta s) with max |s| = 1 and sum q s = 0: the bound is attained
    np.testing.assert_allclose(res.ratio_dev, 0.2, rtol=1e-12)
    # the same seed draws the same pairs; another seed other ones
    (same,) = jsd_geodesic_convexity(q, g, 0.2, n_pairs=3, seed=4, n_t=5, n_modes=2)
    np.testing.assert_array_equal(same.second, res.second)
    (other,) = jsd_geodesic_convexity(q, g, 0.2, n_pairs=3, seed=5, n_t=5, n_modes=2)
    assert np.abs(other.w2 - res.w2).max() > 1e-3 * res.w2.max()
    # one mode, one pair, two times, two levels: the smallest problem runs
    (tiny,) = jsd_geodesic_convexity(q, g, 0.2, n_pairs=1, n_t=2, n_modes=1, n_levels=2)
    assert tiny.second.shape == (1, 2) and np.all(np.isfinite(tiny.second))


def test_convexity_defaults_are_the_documented_ones():
    g = grid(6, 1 / 6)
    q = grid_density(q_fn, g)
    (dflt,) = jsd_geodesic_convexity(q, g, 0.1)
    (expl,) = jsd_geodesic_convexity(q, g, 0.1, 8, 0, f="jsd", n_levels=12, n_t=11, n_modes=4,
                                     interpolation="loglinear", fd_step=1e-3)
    assert dflt.second.shape == (8, 11)
    np.testing.assert_array_equal(dflt.second, expl.second)
    np.testing.assert_array_equal(dflt.w2, expl.w2)


def test_convexity_w2_converges_in_n_levels():
    # the pairs' W2 between M-level piecewise-linear quantiles converges at second order in M
    g = grid(8, 1 / 8)
    q = grid_density(q_fn, g)
    w2 = [jsd_geodesic_convexity(q, g, 0.3, n_pairs=1, n_t=2, n_levels=m)[0].w2[0]
          for m in (16, 32, 64, 128)]
    d = np.abs(np.diff(w2))
    orders = np.log2(d[:-1] / d[1:])
    assert np.all((orders > 1.5) & (orders < 2.5)), orders


def test_loglinear_and_linear_agree_for_nearly_uniform_masses():
    # log-slopes of 1e-9 per cell (the series branches of the closed forms): log-linear and
    # linear interpolation of the densities differ by O(1e-18), far below rounding
    rng = np.random.default_rng(6)
    m = 1.0 + 1e-9 * rng.uniform(-1.0, 1.0, 12)
    m /= m.sum()
    edges = np.linspace(0.0, 3.0, 13)
    u = np.linspace(0.0, 1.0, 29)
    x_log = quantile_from_masses(m, edges, u, "loglinear")
    x_lin = quantile_from_masses(m, edges, u, "linear")
    np.testing.assert_allclose(x_log, x_lin, rtol=0, atol=2e-15)


def test_energy_end_tolerance_is_relative_to_the_domain():
    # domain [1, 3] (L = 2): end knots off by 0.75e-9 L are rounding, by 1.5e-9 L they are not
    centres = 1.0 + 2.0 * (np.arange(4) + 0.5) / 4
    x = np.array([1.0, 1.7, 2.2, 3.0])
    exact = quantile_energy(Entropy(), x, centres)
    assert exact == pytest.approx(np.sum(np.log((1 / 3) / np.diff(x))) / 3, rel=1e-14)
    near = x + np.array([-1.5e-9, 0.0, 0.0, 1.5e-9])
    assert quantile_energy(Entropy(), near, centres) == exact
    for off in ([-3e-9, 0, 0, 0], [0, 0, 0, 3e-9]):
        with pytest.raises(ValueError, match="must run over the grid's domain"):
            quantile_energy(Entropy(), x + np.array(off), centres)


def test_equal_spacing_tolerance_is_relative():
    # rounding-level jitter of the centres is accepted, a relative 1e-8 is not, at any scale
    for h in (1e-3, 1e3):
        c = h * (np.arange(6) + 0.5)
        r0 = np.full(6, 1 / 6)
        jko_1d(Entropy(), r0, c * (1 + 1e-13 * np.r_[0, 1, -1, 1, -1, 0]), 1e-3 * h * h, 1)
        bumped = c.copy()
        bumped[3] += 1e-8 * h
        with pytest.raises(ValueError, match="equally spaced"):
            jko_1d(Entropy(), r0, bumped, 1e-3 * h * h, 1)


def test_jko_far_from_q_backtracks_and_converges_given_the_iterations():
    """JSD is displacement convex only near q (seed 001, Thm 5.7): from a narrow peak at 0.2
    towards q centred at 0.7 with tau = 10, the damped Newton iteration has to backtrack by
    repeated halving and needs hundreds of iterations. With the default 50 it stops, flagged as
    not converged; given 2000 it converges, to a state whose JKO objective
    F[rho_1] + W2^2(rho_0, rho_1) / (2 tau) is below F[rho_0]."""
    x = np.linspace(0.0, 1.0, 40)
    q = np.exp(-(((x - 0.7) / 0.15) ** 2))
    r0 = np.exp(-(((x - 0.2) / 0.02) ** 2)) + 1e-9
    F = FDivergence("jsd", q / q.sum())
    short = jko_1d(F, r0 / r0.sum(), x, tau=10.0, steps=1)
    assert short.newton_iterations[0] == 50 and not short.all_converged
    res = jko_1d(F, r0 / r0.sum(), x, tau=10.0, steps=1, max_iter=2000)
    assert res.all_converged and 100 < res.newton_iterations[0] < 2000
    w2 = w2_quantile(res.quantiles[0], res.quantiles[1])
    assert res.energies[1] + w2**2 / 20.0 < res.energies[0]
