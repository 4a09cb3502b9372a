"""The speed-accuracy trade-off (seed 002): D0, int v2^2, the 1-D coincidence, the bounds."""

from __future__ import annotations

import math
import re

import numpy as np
import ot
import pytest
import torch
from scipy import integrate, optimize, special, stats

from ottokit._torchio import torch_threads
from ottokit.flowmatch import (
    CondOT,
    Cosine,
    Distribution,
    ExactVelocity,
    GaussianMixture,
    GaussianMixtureVelocity,
    Inequality,
    MonotoneVelocity1D,
    Normal,
    TradeoffResult,
    Uniform,
    VelocityMLP,
    chi2_divergence,
    chi2_quad,
    conditional_kinetic_energy,
    d0_isotropic_fit,
    has_closed_form,
    kinetic_cost,
    kinetic_quadrature,
    perturbation_d0,
    response,
    response_quadrature,
    standard_normal,
    tradeoff,
    w2_lower_bound,
    w2_squared_quadrature,
)
from ottokit.flowmatch.tradeoff import _bootstrap_ci

F64 = torch.float64
N01 = standard_normal(1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors: one intra-op thread is faster and keeps a shared CI machine quiet."""
    with torch_threads(1):
        yield


@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0])
def test_d0_shifted_mean_closed_form_and_quadrature(mu: float) -> None:
    p = Normal([mu], [[1.0]])
    assert math.isclose(chi2_divergence(p), math.expm1(mu**2), rel_tol=1e-12)
    assert math.isclose(chi2_quad(p, N01), math.expm1(mu**2), rel_tol=1e-9)


def test_d0_of_the_paper_shifted_mean_is_e_minus_one() -> None:
    assert math.isclose(perturbation_d0(Normal([1.0], [[1.0]])), math.e - 1, rel_tol=1e-14)


@pytest.mark.parametrize("s", [0.5, 0.8, 1.3])
def test_d0_shifted_variance_closed_form_and_quadrature(s: float) -> None:
    p = Normal([0.0], [[s * s]])
    expected = 1 / (s * math.sqrt(2 - s * s)) - 1
    assert math.isclose(chi2_divergence(p), expected, rel_tol=1e-12)
    assert math.isclose(chi2_quad(p, N01), expected, rel_tol=1e-9)


def test_d0_is_infinite_for_variance_two_or_more() -> None:
    assert chi2_divergence(Normal([0.0], [[2.0]])) == math.inf
    assert chi2_divergence(Normal([0.0, 0.0], [[2.5, 0.0], [0.0, 0.5]])) == math.inf


@pytest.mark.parametrize(
    "p",
    [
        GaussianMixture.one_d([-1.0, 1.0], [0.5, 0.7], [0.3, 0.7]),
        GaussianMixture.one_d([0.0, 0.0], [0.6, 1.2]),
        Uniform([-1.0], [2.0]),
        Uniform([-3.0], [3.0]),
    ],
    ids=repr,
)
def test_d0_mixture_and_uniform_closed_forms_against_quadrature(p: Distribution) -> None:
    assert math.isclose(chi2_divergence(p), chi2_quad(p, N01), rel_tol=1e-8)


def test_d0_against_a_non_standard_gaussian_reference() -> None:
    p, q = Normal([0.3], [[0.5]]), Normal([-0.2], [[2.0]])
    assert math.isclose(chi2_divergence(p, q), chi2_quad(p, q), rel_tol=1e-9)
    box = Uniform([-1.0], [0.5])
    assert math.isclose(chi2_divergence(box, q), chi2_quad(box, q), rel_tol=1e-8)


def _grid_chi2_2d(p_pdf, lim: float = 9.0, n: int = 901) -> float:
    """Reference chi^2(p || N(0, I_2)) by the trapezoid rule on a fine grid (scipy densities)."""
    g = np.linspace(-lim, lim, n)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([xx, yy], axis=-1)
    q = stats.multivariate_normal(np.zeros(2), np.eye(2)).pdf(pts)
    f = (p_pdf(pts) - q) ** 2 / q
    return float(np.trapezoid(np.trapezoid(f, g, axis=1), g))


def test_d0_two_dimensional_closed_forms_against_quadrature() -> None:
    mean, cov = np.array([0.4, -0.3]), np.array([[0.8, 0.3], [0.3, 0.6]])
    ref = _grid_chi2_2d(stats.multivariate_normal(mean, cov).pdf)
    assert math.isclose(chi2_divergence(Normal(mean, cov)), ref, rel_tol=1e-6)
    # a box: chi^2 = int_box p^2 / q - 1, a smooth integrand over the box for dblquad
    (a0, a1), (b0, b1) = (-1.0, -0.5), (1.5, 2.0)
    vol = (b0 - a0) * (b1 - a1)
    q = stats.multivariate_normal(np.zeros(2), np.eye(2))
    inner, _ = integrate.dblquad(
        lambda y, x: 1 / (vol**2 * q.pdf([x, y])), a0, b0, a1, b1, epsabs=1e-12, epsrel=1e-11
    )
    assert math.isclose(chi2_divergence(Uniform([a0, a1], [b0, b1])), inner - 1, rel_tol=1e-9)


class _Triangular(Distribution):
    """Symmetric triangle on [-1, 1]: no closed form here, so D0 falls back to quadrature."""

    dim = 1

    def sample(self, n, generator=None):
        u = torch.rand(n, 2, generator=generator, dtype=F64)
        return (u[:, :1] + u[:, 1:]) - 1.0

    def log_prob(self, x):
        xx = torch.as_tensor(x, dtype=F64)[:, 0]
        dens = (1 - xx.abs()).clamp_min(0)
        return torch.log(dens)

    def breakpoints(self):
        return (-1.0, 0.0, 1.0)


def test_d0_falls_back_to_quadrature_in_1d() -> None:
    tri = stats.triang(c=0.5, loc=-1, scale=2)
    ref = integrate.quad(lambda x: tri.pdf(x) ** 2 / stats.norm.pdf(x), -1, 1, points=[0])[0] - 1
    assert math.isclose(perturbation_d0(_Triangular()), ref, rel_tol=1e-8)
    with pytest.raises(ValueError, match="closed form"):
        chi2_divergence(_Triangular())


def test_d0_bad_input() -> None:
    with pytest.raises(ValueError, match="mismatched dimensions"):
        chi2_divergence(Normal([0.0, 0.0], np.eye(2)), N01)
    with pytest.raises(ValueError, match="1-D"):
        chi2_quad(Normal([0.0, 0.0], np.eye(2)), standard_normal(2))
    with pytest.raises(ValueError, match="low < high"):
        Uniform([1.0], [1.0])


def _kinetic_gaussian_1d(m, dm, s, ds, s0: float = 0.5) -> float:
    """int (d s_t)^2 dt for P_t = N(0, s_t^2), s_t^2 = m^2 s0^2 + s^2: the velocity (d s_t/s_t) x
    is a gradient, so this is int v2^2 dt."""
    f = lambda t: (s0**2 * m(t) * dm(t) + s(t) * ds(t)) ** 2 / (s0**2 * m(t) ** 2 + s(t) ** 2)
    return integrate.quad(f, 0, 1, epsabs=1e-13, epsrel=1e-13)[0]


def test_reference_check_values_by_independent_quadrature() -> None:
    """REFERENCE.md: tau = 1, N(0, 0.5^2) -> N(0, 1): 0.4646 cond-OT, 0.3084 cosine, 0.25 OT."""
    cond_ot = _kinetic_gaussian_1d(lambda t: 1 - t, lambda t: -1.0, lambda t: t, lambda t: 1.0)
    h = math.pi / 2
    cosine = _kinetic_gaussian_1d(
        lambda t: math.cos(h * t),
        lambda t: -h * math.sin(h * t),
        lambda t: math.sin(h * t),
        lambda t: h * math.cos(h * t),
    )
    assert round(cond_ot, 4) == 0.4646 and abs(cond_ot - 0.46460184) < 1e-8
    assert round(cosine, 4) == 0.3084 and abs(cosine - 0.30842514) < 1e-8


@pytest.mark.parametrize(
    ("schedule", "expected"), [(CondOT(), 0.46460184), (Cosine(), 0.30842514)], ids=repr
)
def test_kinetic_cost_reproduces_check_values(schedule, expected: float) -> None:
    path = GaussianMixtureVelocity(schedule, [[0.0]], [[[0.25]]])
    k = kinetic_cost(path, n_t=24, n_x=20_000, seed=0)
    assert abs(k.integral - expected) < 4 * k.integral_stderr
    assert abs(k.integral - expected) < 0.015 * expected
    assert k.integral > 0.25  # above the geodesic's W2^2 / tau


def test_ot_geodesic_attains_the_w2_bound() -> None:
    mono = MonotoneVelocity1D(GaussianMixture.one_d([0.0], [0.5]))
    assert math.isclose(mono.w2_squared(), 0.25, rel_tol=1e-10)
    k = kinetic_cost(mono, n_t=6, n_x=20_000)
    assert abs(k.integral - 0.25) < 0.015 * 0.25
    assert np.allclose(k.v2, 0.5, rtol=0.03)  # constant speed W2 / tau along the geodesic


def test_high_dimensional_limit_of_the_kinetic_cost() -> None:
    """Few data points, growing dimension: int v2^2 -> n_d int (d_sigma^2 + d_m^2) dt
    (Shaul et al. 2023)."""
    g = torch.Generator().manual_seed(0)
    ratios = {}
    for n_d in (100, 1000):
        y = torch.randn(6, n_d, generator=g, dtype=F64)
        y = y / y.norm(dim=1, keepdim=True) * math.sqrt(n_d)  # |y|^2 = n_d like N(0, I) data
        for schedule in (CondOT(2.0), Cosine(2.0)):
            k = kinetic_cost(ExactVelocity(schedule, y), n_t=16, n_x=64, seed=1)
            ratios[n_d, repr(schedule)] = k.integral / conditional_kinetic_energy(schedule, n_d)
    for schedule in (CondOT(2.0), Cosine(2.0)):
        low, high = ratios[100, repr(schedule)], ratios[1000, repr(schedule)]
        assert low < high <= 1.0
        assert high > 0.96


def _mixture_quantile_of_normal(mix: GaussianMixture, z: np.ndarray) -> np.ndarray:
    """F^{-1}(Phi(z)) by bisection on the mixture CDF (scipy), the monotone rearrangement."""
    mu, sd, w = mix.means[:, 0].numpy(), np.sqrt(mix.covs[:, 0, 0].numpy()), mix.weights.numpy()
    target = stats.norm.cdf(z)
    lo, hi = np.full_like(z, -30.0), np.full_like(z, 30.0)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        below = (w * stats.norm.cdf((mid[:, None] - mu) / sd)).sum(1) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def test_exact_responses_coincide_across_schedules_in_1d() -> None:
    """REFERENCE.md: in 1-D the time-tau map of every exact flow is the monotone rearrangement,
    so the exact response (Delta W1)^2 / (tau D0) is the same for every schedule, while the
    bounds int v2^2 dt differ, the OT geodesic's being the smallest."""
    mix = GaussianMixture.one_d([-1.0, 1.2], [0.35, 0.5], [0.45, 0.55])
    g = torch.Generator().manual_seed(5)
    z = torch.randn(1000, 1, generator=g, dtype=F64)
    perturbed = Normal([1.0], [[1.0]])
    zp = perturbed.sample(1000, g)
    d0 = perturbation_d0(perturbed)
    paths = {
        "cosine": GaussianMixtureVelocity.of(Cosine(), mix),
        "cond-ot": GaussianMixtureVelocity.of(CondOT(), mix),
        "ot": MonotoneVelocity1D(mix),
    }
    results = {
        k: response(v, z, zp, tau=1.0, d0=d0, n_steps=80, n_save=11) for k, v in paths.items()
    }
    expected = _mixture_quantile_of_normal(mix, z[:, 0].numpy())
    expected_p = _mixture_quantile_of_normal(mix, zp[:, 0].numpy())
    for name, r in results.items():
        assert np.allclose(r.final[:, 0].numpy(), expected, atol=2e-5), name
        assert np.allclose(r.final_perturbed[:, 0].numpy(), expected_p, atol=2e-5), name
    ref = results["ot"].response
    assert ref > 0
    for name in ("cosine", "cond-ot"):
        assert math.isclose(results[name].response, ref, rel_tol=1e-4), name
    # the paths differ on the way (v_loss curves), not at the end
    assert not np.allclose(results["cosine"].w1, results["ot"].w1, atol=1e-3)
    bounds = {k: kinetic_cost(v, n_t=16, n_x=10_000).integral for k, v in paths.items()}
    w2 = paths["ot"].w2_squared()
    assert math.isclose(bounds["ot"], w2, rel_tol=0.01)
    assert bounds["ot"] < bounds["cosine"] and bounds["ot"] < bounds["cond-ot"]
    assert ref < bounds["ot"]


@pytest.mark.parametrize(
    "perturbed",
    [Normal([1.0], [[1.0]]), Normal([0.0], [[0.5]]), Uniform([-1.5], [1.5])],
    ids=["shifted-mean", "shifted-variance", "uniform"],
)
def test_tradeoff_chain_of_inequalities_holds_for_the_exact_velocity(perturbed) -> None:
    mix = GaussianMixture.one_d([-1.0, 1.2], [0.35, 0.5], [0.45, 0.55])
    path = GaussianMixtureVelocity.of(CondOT(), mix)
    res = tradeoff(
        path, path, perturbed, n_samples=2000, n_steps=100, n_save=21, n_t=16, n_x=8000, seed=3
    )
    assert math.isclose(res.d0, chi2_divergence(perturbed), rel_tol=1e-12)
    assert math.isclose(res.response, res.delta_w1**2 / (res.tau * res.d0), rel_tol=1e-12)
    assert res.response <= res.v_loss_sq_integral <= res.kinetic
    assert res.v_loss.shape == res.v2_mid.shape == (20,)
    assert np.all(res.v_loss <= res.v2_mid)
    names = [i.name for i in res.inequalities()]
    assert len(names) == 5 and all(i.holds for i in res.inequalities()) and res.holds


def test_w2_lower_bound_matches_pot_in_2d() -> None:
    g = torch.Generator().manual_seed(8)
    x = torch.randn(400, 2, generator=g, dtype=F64) * 0.5 + 1.0
    y = torch.randn(400, 2, generator=g, dtype=F64)
    w = ot.unif(400)
    exact = ot.emd2(w, w, ot.dist(x.numpy(), y.numpy()), numItermax=10**7)
    assert math.isclose(w2_lower_bound(x, y, tau=2.0), exact / 2.0, rel_tol=1e-10)


def test_response_in_2d_uses_exact_ot_and_learned_nets_keep_their_dtype() -> None:
    g = torch.Generator().manual_seed(1)
    net = VelocityMLP(2, hidden=8, depth=1, time_dim=4)  # float32 parameters
    z = torch.randn(300, 2, generator=g, dtype=F64)
    zp = z + torch.tensor([0.5, 0.0], dtype=F64)
    r = response(net, z, zp, tau=1.0, d0=math.expm1(0.25), n_steps=10, n_save=3)
    assert r.final.dtype == torch.float32
    assert math.isclose(r.w1_initial, 0.5, rel_tol=1e-6)  # a rigid shift: W1 = |shift|


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_sampled_response_along_the_ot_path_moves_at_constant_speed(tau: float) -> None:
    """Along the OT path every sample moves on a straight line at constant speed and the
    monotone coupling of the two clouds never changes, so W1 is linear in t: v_loss =
    |Delta W1| / (tau sqrt(D0)) on every interval and Cauchy-Schwarz is an equality,
    int v_loss^2 dt = (Delta W1)^2 / (tau D0)."""
    perturbed = TABLE_I_STARTS["shifted-mean"][0]
    g = torch.Generator().manual_seed(3)
    z = torch.randn(400, 1, generator=g, dtype=F64)
    zp = perturbed.sample(400, g)
    d0 = chi2_divergence(perturbed)
    r = response(MonotoneVelocity1D(TABLE_I_DATA, tau=tau), z, zp, tau=tau, d0=d0, n_steps=20,
                 n_save=6)
    np.testing.assert_allclose(r.t, np.linspace(tau, 0.0, 6), rtol=0, atol=1e-12 * tau)
    np.testing.assert_allclose(r.t_mid, 0.5 * (r.t[1:] + r.t[:-1]), rtol=1e-14)
    assert r.w1_initial == r.w1[0] and r.w1_final == r.w1[-1]
    assert math.isclose(r.delta_w1, r.w1[-1] - r.w1[0], rel_tol=1e-14)
    np.testing.assert_allclose(r.v_loss, abs(r.delta_w1) / (tau * math.sqrt(d0)), rtol=1e-9)
    assert math.isclose(r.v_loss_sq_integral, float(np.sum(r.v_loss**2 * 0.2 * tau)),
                        rel_tol=1e-12)
    assert math.isclose(r.response, r.delta_w1**2 / (tau * d0), rel_tol=1e-14)
    assert math.isclose(r.response, r.v_loss_sq_integral, rel_tol=1e-9)


def test_sampled_response_integrators_converge_to_the_rearrangement() -> None:
    """The time-tau map of the exact flow is the monotone rearrangement F^{-1}(Phi(z)): Euler
    approaches it at first order in n_steps, dopri5 to its tolerances (the defaults, a tight
    and a loose pair, and a loose atol alone, each forwarded to the integrator)."""
    perturbed = TABLE_I_STARTS["shifted-mean"][0]
    v = GaussianMixtureVelocity.of(Cosine(), TABLE_I_DATA)
    g = torch.Generator().manual_seed(4)
    z = torch.randn(64, 1, generator=g, dtype=F64)
    zp = perturbed.sample(64, g)
    d0 = chi2_divergence(perturbed)
    exact = _mixture_quantile_of_normal(TABLE_I_DATA, z[:, 0].numpy())

    def error(**kw) -> float:
        r = response(v, z, zp, tau=1.0, d0=d0, n_save=2, **kw)
        return float(np.abs(r.final[:, 0].numpy() - exact).max())

    steps = np.array([8, 16, 32])
    euler = [error(method="euler", n_steps=int(k)) for k in steps]
    order = -np.polyfit(np.log(steps), np.log(euler), 1)[0]
    assert 0.8 < order < 1.2
    assert error(method="dopri5", rtol=1e-10, atol=1e-12) < 1e-9
    assert 1e-10 < error(method="dopri5") < 1e-6
    assert error(method="dopri5", rtol=1e-4, atol=1e-6) > 1e-6
    assert error(method="dopri5", rtol=1e-12, atol=1e-4) > 1e-6  # atol alone loosens it


def test_response_bad_input() -> None:
    z = torch.zeros(10, 1, dtype=F64)
    vel = GaussianMixtureVelocity(CondOT(), [[0.0]], [[[1.0]]])
    with pytest.raises(ValueError, match="d0"):
        response(vel, z, z, tau=1.0, d0=0.0)
    with pytest.raises(ValueError, match="as many samples"):
        response(vel, z, z[:5], tau=1.0, d0=1.0)
    with pytest.raises(ValueError, match="mismatched dimensions"):
        response(vel, z, torch.zeros(10, 2), tau=1.0, d0=1.0)
    with pytest.raises(ValueError, match="tau"):
        response(vel, z, z, tau=-1.0, d0=1.0)
    with pytest.raises(ValueError, match="n_save"):
        response(vel, z, z, tau=1.0, d0=1.0, n_save=1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda v, z: response(v, z, z, tau=-1.0, d0=1.0), "tau must be a positive number"),
        (lambda v, z: response(v, z, z, tau=1.0, d0=-1.0), "d0 must be a positive number"),
        (
            lambda v, z: response(v, z, z, tau=1.0, d0=1.0, n_save=1),
            "n_save must be an integer >= 2, got 1; at least the two ends",
        ),
        (
            lambda v, z: response(v, z, z[:5], tau=1.0, d0=1.0),
            "noise and perturbed need as many samples, got 10 and 5",
        ),
        (lambda v, z: response(v, z[:, 0], z, tau=1.0, d0=1.0), r"noise must have shape \(n, d\)"),
        (
            lambda v, z: response(v, z, z[:, 0], tau=1.0, d0=1.0),
            r"perturbed must have shape \(n, d\)",
        ),
        (lambda v, z: w2_lower_bound(z, z, tau=0.0), "tau must be a positive number"),
        (lambda v, z: w2_lower_bound(z[:, 0], z, tau=1.0), r"data must have shape \(n, d\)"),
        (lambda v, z: w2_lower_bound(z, z[:, 0], tau=1.0), r"noise must have shape \(n, d\)"),
        (
            lambda v, z: w2_lower_bound(z, torch.zeros(10, 2), tau=1.0),
            r"noise has dimension 2, expected 1",
        ),
        (
            lambda v, z: w2_lower_bound(z, z[:4], tau=1.0),
            "data and noise need as many samples, got 10 and 4",
        ),
        (lambda v, z: kinetic_quadrature(v, n_t=0), "n_t must be a positive integer"),
    ],
    ids=[
        "response-tau", "response-d0", "response-n_save", "response-sizes", "response-noise",
        "response-perturbed", "w2-tau", "w2-data", "w2-noise", "w2-dims", "w2-sizes",
        "kinetic-n_t",
    ],
)
def test_response_and_bounds_name_the_bad_argument(call, message) -> None:
    z = torch.zeros(10, 1, dtype=F64)
    vel = GaussianMixtureVelocity(CondOT(), [[0.0]], [[[1.0]]])
    with pytest.raises(ValueError, match="^" + message):
        call(vel, z)


@pytest.mark.parametrize("dim", [1, 2])
def test_bootstrap_interval_of_a_dilation_scales_as_the_square_of_c_minus_one(dim) -> None:
    """If the flow map is the dilation x = c z, W1 of every resampled pair scales by c, so
    each resample's (Delta W1)^2 * scale is (c - 1)^2 scale W1(z_i, zp_j)^2: from c = 2,
    scale = 1 to c = 3, scale = 0.5 the interval grows by exactly 4 * 0.5 = 2. In 2-D (exact
    OT per resample) it is also invariant under a rotation of both clouds."""
    g = torch.Generator().manual_seed(11)
    z = torch.randn(40, dim, generator=g, dtype=F64)
    zp = torch.randn(40, dim, generator=g, dtype=F64) + 0.7
    base = np.array(_bootstrap_ci((z, zp), (2 * z, 2 * zp), 1.0, 0.8, 60, 5))
    grown = np.array(_bootstrap_ci((z, zp), (3 * z, 3 * zp), 0.5, 0.8, 60, 5))
    assert base[0] > 0 and base[1] > base[0]
    np.testing.assert_allclose(grown, 2 * base, rtol=1e-10)
    if dim == 2:
        c, s = math.cos(0.7), math.sin(0.7)
        rot = torch.tensor([[c, -s], [s, c]], dtype=F64)
        turned = _bootstrap_ci((z @ rot, zp @ rot), (2 * z @ rot, 2 * zp @ rot), 1.0, 0.8, 60, 5)
        np.testing.assert_allclose(turned, base, rtol=1e-10)


def test_bootstrap_interval_is_scipys_percentile_interval() -> None:
    """With the flow map x = 2 z every resample's (Delta W1)^2 is W1(z_i, zp_j)^2, whose
    percentile interval scipy.stats.bootstrap computes independently (the two clouds
    resampled apart); at level 0.5 the ends are the quartiles of the resampled values, to
    Monte Carlo error (a 1/6- or 5/6-quantile would sit about a fifth of the width away)."""
    g = torch.Generator().manual_seed(11)
    z = torch.randn(40, 1, generator=g, dtype=F64)
    zp = torch.randn(40, 1, generator=g, dtype=F64) + 0.7
    ours = np.array(_bootstrap_ci((z, zp), (2 * z, 2 * zp), 1.0, 0.5, 10_000, 5))

    def w1_squared(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.abs(np.sort(a, axis=axis) - np.sort(b, axis=axis)).mean(axis=axis) ** 2

    ref = stats.bootstrap(
        (z[:, 0].numpy(), zp[:, 0].numpy()), w1_squared, paired=False, vectorized=True,
        n_resamples=10_000, confidence_level=0.5, method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    width = ref.high - ref.low
    assert width > 0
    np.testing.assert_allclose(ours, [ref.low, ref.high], rtol=0, atol=0.05 * width)


# the recovered setting of Table I (REFERENCE.md): q = 1/2 N(-0.6, 0.3^2) + 1/2 N(0.6, 0.3^2)
TABLE_I_DATA = GaussianMixture.one_d([-0.6, 0.6], [0.3, 0.3])
ROOT3 = math.sqrt(3.0)
# each start with its quantile function written out (scipy.special)
TABLE_I_STARTS = {
    "shifted-mean": (Normal([1.0], [[1.0]]), lambda u: 1.0 + special.ndtri(u)),
    "shifted-variance": (Normal([0.0], [[0.64]]), lambda u: 0.8 * special.ndtri(u)),
    "uniform": (Uniform([-ROOT3], [ROOT3]), lambda u: ROOT3 * (2 * u - 1)),
}


def _mixture_quantile_brentq(mus, sds, u: float) -> float:
    """F^{-1}(u) for an equal-weight two-component 1-D mixture by scipy's brentq on its CDF."""
    (m1, m2), (s1, s2) = mus, sds
    cdf = lambda x: 0.5 * (special.ndtr((x - m1) / s1) + special.ndtr((x - m2) / s2))
    return optimize.brentq(lambda x: cdf(x) - u, -40.0, 40.0, xtol=1e-14, rtol=1e-14)


def _w1_by_quantiles(q1, q2) -> float:
    """W1 = int_0^1 |Q1(u) - Q2(u)| du by scipy.integrate.quad."""
    value, _ = integrate.quad(lambda u: abs(q1(u) - q2(u)), 0.0, 1.0, limit=400, epsabs=1e-11)
    return value


@pytest.mark.parametrize("name", sorted(TABLE_I_STARTS))
def test_quadrature_response_against_an_independent_quantile_computation(name: str) -> None:
    """W1 of the generated pair from quantile functions found by brentq (time-tau map = the
    monotone rearrangement T = F_q^{-1} o Phi), integrated by quad: the response of every
    schedule's exact flow, to 1e-6."""
    perturbed, ppf = TABLE_I_STARTS[name]
    mus, sds = (-0.6, 0.6), (0.3, 0.3)
    data_q = lambda u: _mixture_quantile_brentq(mus, sds, u)
    w1_start = _w1_by_quantiles(special.ndtri, ppf)
    w1_end = _w1_by_quantiles(data_q, lambda u: data_q(special.ndtr(ppf(u))))
    expected = (w1_end - w1_start) ** 2 / chi2_divergence(perturbed)
    for velocity in (
        GaussianMixtureVelocity.of(Cosine(), TABLE_I_DATA),
        GaussianMixtureVelocity.of(CondOT(), TABLE_I_DATA),
        MonotoneVelocity1D(TABLE_I_DATA),
    ):
        r = response_quadrature(velocity, perturbed, tau=1.0, n_save=3, n_t=4)
        assert r.flow_map == "monotone rearrangement"
        assert math.isclose(r.w1_initial, w1_start, rel_tol=1e-7)
        assert math.isclose(r.w1_final, w1_end, rel_tol=1e-6)
        assert math.isclose(r.response, expected, rel_tol=1e-6)


@pytest.mark.parametrize("tau", [0.4, 2.5])
def test_response_and_bounds_on_a_horizon_tau_scale_as_one_over_tau(tau: float) -> None:
    """On [0, tau] the exact flow is the tau = 1 flow run at speed 1/tau (nu^tau(t, x) =
    nu^1(t/tau, x)/tau): the time-tau map and so Delta W1 and D0 do not change, while the
    response (Delta W1)^2/(tau D0), int v_loss^2, int v2^2 and W2^2/tau all scale as 1/tau.
    The response is also checked against brentq quantiles and quad, divided by tau."""
    perturbed, ppf = TABLE_I_STARTS["shifted-mean"]
    mus, sds = (-0.6, 0.6), (0.3, 0.3)
    data_q = lambda u: _mixture_quantile_brentq(mus, sds, u)
    w1_start = _w1_by_quantiles(special.ndtri, ppf)
    w1_end = _w1_by_quantiles(data_q, lambda u: data_q(special.ndtr(ppf(u))))
    expected = (w1_end - w1_start) ** 2 / (tau * chi2_divergence(perturbed))
    unit_path = GaussianMixtureVelocity.of(Cosine(), TABLE_I_DATA)
    path = GaussianMixtureVelocity.of(Cosine(tau=tau), TABLE_I_DATA)
    unit = tradeoff(unit_path, unit_path, perturbed, n_save=5, n_t=8)
    res = tradeoff(path, path, perturbed, n_save=5, n_t=8)
    assert res.estimator == "quadrature" and res.tau == tau
    assert math.isclose(res.response, expected, rel_tol=1e-6)
    assert math.isclose(res.delta_w1, unit.delta_w1, rel_tol=1e-10)
    for name in ("response", "v_loss_sq_integral", "kinetic", "w2_bound"):
        assert math.isclose(getattr(res, name) * tau, getattr(unit, name), rel_tol=1e-8), name
    np.testing.assert_allclose(res.t_mid, tau * unit.t_mid, rtol=1e-12)
    np.testing.assert_allclose(res.v_loss * tau, unit.v_loss, rtol=1e-8)
    quad = response_quadrature(path, perturbed, tau=tau, n_save=3, n_t=4)
    assert quad.tau == tau and quad.d0 == chi2_divergence(perturbed) and quad.n_nodes > 0
    assert math.isclose(quad.response, expected, rel_tol=1e-6)
    # the OT path runs at constant speed W2/tau: every Gauss-Legendre rule on [0, tau], the
    # one-point (midpoint) rule included, gives int v2^2 dt = W2^2/tau
    ot_path = MonotoneVelocity1D(TABLE_I_DATA, tau=tau)
    w2_sq = w2_squared_quadrature(ot_path)
    for n_t in (1, 5):
        k = kinetic_quadrature(ot_path, n_t=n_t)
        assert math.isclose(k.weights.sum(), tau, rel_tol=1e-14)
        assert k.weights.shape == k.energy.shape == k.energy_stderr.shape == (n_t,)
        assert np.all((k.t > 0) & (k.t < tau)) and k.t.shape == (n_t,)
        assert math.isclose(k.integral, w2_sq / tau, rel_tol=1e-8)
        np.testing.assert_allclose(k.energy, w2_sq / tau**2, rtol=1e-8)
        np.testing.assert_array_equal(k.energy_stderr, 0.0)
        assert k.integral_stderr == 0.0
    # the sampled estimator and its bootstrap interval: rk4 on the rescaled step grid makes
    # the same steps, so only rounding separates tau * response from the tau = 1 value
    kw = dict(estimator="samples", n_samples=400, n_steps=10, n_save=3, n_t=4, n_boot=40)
    unit_s = tradeoff(unit_path, unit_path, perturbed, **kw)
    res_s = tradeoff(path, path, perturbed, **kw)
    assert math.isclose(res_s.delta_w1, unit_s.delta_w1, rel_tol=1e-9)
    assert math.isclose(res_s.response * tau, unit_s.response, rel_tol=1e-9)
    np.testing.assert_allclose(np.array(res_s.response_ci) * tau, unit_s.response_ci, rtol=1e-9)


def test_stopping_short_of_the_data_end_keeps_the_curve_and_divides_by_tau() -> None:
    """With t_end > 0 the W1 curve on [t_end, tau] is the full curve's there (same flow map,
    same nodes), int v_loss^2 dt runs over [t_end, tau] (Gauss-Legendre against the midpoint
    sum of a fine grid), and the response still divides by tau; the sampled clouds on the same
    step grid and tradeoff() with either estimator stop there too."""
    perturbed = TABLE_I_STARTS["shifted-mean"][0]
    path = GaussianMixtureVelocity.of(Cosine(2.0), TABLE_I_DATA)
    short = response_quadrature(path, perturbed, tau=2.0, t_end=0.8, n_save=4, n_t=16)
    full = response_quadrature(path, perturbed, tau=2.0, n_save=6, n_t=16)
    np.testing.assert_allclose(short.t, [2.0, 1.6, 1.2, 0.8], rtol=1e-15)
    np.testing.assert_allclose(short.w1, full.w1[:4], rtol=1e-12)
    fine = response_quadrature(path, perturbed, tau=2.0, t_end=0.8, n_save=31, n_t=2)
    midpoint = float(np.sum(fine.v_loss**2) * 1.2 / 30)
    assert math.isclose(short.v_loss_sq_integral, midpoint, rel_tol=2e-4)
    assert math.isclose(short.response, short.delta_w1**2 / (2.0 * short.d0), rel_tol=1e-14)
    g = torch.Generator().manual_seed(3)
    z = torch.randn(64, 1, generator=g, dtype=F64)
    zp = perturbed.sample(64, g)
    cut = response(path, z, zp, tau=2.0, d0=short.d0, t_end=0.8, n_steps=15, n_save=4)
    whole = response(path, z, zp, tau=2.0, d0=short.d0, n_steps=25, n_save=6)  # same steps
    np.testing.assert_allclose(cut.t, short.t, rtol=1e-15)
    np.testing.assert_allclose(cut.w1, whole.w1[:4], rtol=1e-12)
    quad = tradeoff(path, path, perturbed, t_end=0.8, n_save=4, n_t=16)
    assert quad.delta_w1 == short.delta_w1 and quad.v_loss_sq_integral == short.v_loss_sq_integral
    sampled = tradeoff(path, path, perturbed, estimator="samples", n_samples=64, n_steps=15,
                       t_end=0.8, n_save=4, n_t=2, ci="none")
    np.testing.assert_allclose(sampled.t_mid, [1.8, 1.4, 1.0], rtol=1e-14)


def test_quadrature_w1_curve_at_an_intermediate_time_against_quantiles() -> None:
    """At forward time t the reverse processes are F_t^{-1} o Phi of their starts, F_t the CDF
    of the cosine path's marginal mixture N(m mu_k, m^2 s^2 + sigma^2)."""
    perturbed, ppf = TABLE_I_STARTS["shifted-variance"]
    velocity = GaussianMixtureVelocity.of(Cosine(), TABLE_I_DATA)
    r = response_quadrature(velocity, perturbed, tau=1.0, n_save=5, n_t=4)
    t = r.t[2]
    assert math.isclose(t, 0.5, rel_tol=1e-12)
    m, sigma = math.cos(math.pi * t / 2), math.sin(math.pi * t / 2)
    mus = (-0.6 * m, 0.6 * m)
    sds = (math.hypot(0.3 * m, sigma),) * 2
    q_t = lambda u: _mixture_quantile_brentq(mus, sds, u)
    expected = _w1_by_quantiles(q_t, lambda u: q_t(special.ndtr(ppf(u))))
    assert math.isclose(r.w1[2], expected, rel_tol=1e-6)


def test_table_i_exact_response_within_one_percent_of_the_paper() -> None:
    """REFERENCE.md: with the recovered setting the schedule-independent exact response is
    within 1 % of the paper's cond-OT cell in the three known rows."""
    paper = {"shifted-mean": 8.7810e-2, "shifted-variance": 1.047e-1, "uniform": 2.068e-2}
    velocity = MonotoneVelocity1D(TABLE_I_DATA)
    for name, value in paper.items():
        r = response_quadrature(velocity, TABLE_I_STARTS[name][0], tau=1.0, n_save=2, n_t=2)
        assert abs(r.response / value - 1) < 0.01, name


def test_ode_flow_map_matches_the_rearrangement_and_euler_is_first_order() -> None:
    perturbed = TABLE_I_STARTS["shifted-mean"][0]
    velocity = GaussianMixtureVelocity.of(Cosine(), TABLE_I_DATA)
    exact = response_quadrature(velocity, perturbed, tau=1.0, n_save=3, n_t=6)
    tight = response_quadrature(velocity, perturbed, tau=1.0, flow_map="ode", n_save=3, n_t=6)
    assert tight.flow_map.startswith("dopri5")
    assert math.isclose(tight.response, exact.response, rel_tol=1e-7)
    assert math.isclose(tight.v_loss_sq_integral, exact.v_loss_sq_integral, rel_tol=1e-6)
    default = response_quadrature(velocity, perturbed, tau=1.0)  # 21 saved times, t_end = 0
    assert default.t.shape == (21,) and default.t[-1] == 0.0
    assert math.isclose(default.response, exact.response, rel_tol=1e-12)
    rk4 = response_quadrature(velocity, perturbed, tau=1.0, flow_map="ode", method="rk4")
    assert rk4.flow_map == "rk4, 200 steps" and rk4.t.shape == (201,)
    assert math.isclose(rk4.response, exact.response, rel_tol=1e-7)
    # on the step grid: difference quotients at the steps' midpoints, summed over the steps
    np.testing.assert_allclose(rk4.t_mid, rk4.t[:-1] - 0.0025, rtol=0, atol=1e-15)
    assert math.isclose(rk4.v_loss_sq_integral, default.v_loss_sq_integral, rel_tol=1e-4)
    coarse = response_quadrature(velocity, perturbed, tau=1.0, flow_map="ode", method="rk4",
                                 n_steps=20)
    np.testing.assert_allclose(coarse.t_mid, default.t_mid, rtol=0, atol=1e-15)
    np.testing.assert_allclose(coarse.v_loss, default.v_loss, rtol=2e-2)  # O(h^2), h = 0.05
    steps = np.array([8, 16, 32])
    errors = [
        abs(
            response_quadrature(
                velocity, perturbed, tau=1.0, flow_map="ode", method="euler", n_steps=int(k)
            ).response
            - exact.response
        )
        for k in steps
    ]
    order = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 0.85 < order < 1.3


def _mixture_kinetic_by_quad(schedule, mus, sds, n_t: int = 24) -> float:
    """int_0^1 int nu_t(x)^2 p_t(x) dx dt with nu = sum_k pi_k u_k written out here (numpy),
    scipy quad in x at Gauss-Legendre times."""
    nodes, weights = np.polynomial.legendre.leggauss(n_t)
    total = 0.0
    def integrand(x: float, comps: list) -> float:
        dens = np.array([stats.norm.pdf(x, c, math.sqrt(v)) for c, v, _, _ in comps]) / 2
        u = np.array([a + b / v * (x - c) for c, v, a, b in comps])
        p = dens.sum()
        return (dens @ u) ** 2 / p if p > 0 else 0.0

    for tn, wn in zip(0.5 * (nodes + 1), 0.5 * weights, strict=True):
        out = schedule(np.array(tn))
        m, s, dm, ds = (float(v) for v in (out.m_t, out.sigma_t, out.d_m_t, out.d_sigma_t))
        comps = [
            (m * mu, m * m * sd * sd + s * s, dm * mu, m * dm * sd * sd + s * ds)
            for mu, sd in zip(mus, sds, strict=True)
        ]
        value = integrate.quad(integrand, -12, 12, args=(comps,), limit=200, epsabs=1e-12)[0]
        total += wn * value
    return total


def test_kinetic_quadrature_against_scipy_and_the_reference_bars() -> None:
    """REFERENCE.md: int v2^2 dt = 0.1997 cosine, 0.4383 cond-OT, 0.1439 OT (= W2^2) for the
    Table I data."""
    expected = {"cosine": 0.1997, "cond-OT": 0.4383, "OT": 0.1439}  # to 4 digits
    paths = {
        "cosine": GaussianMixtureVelocity.of(Cosine(), TABLE_I_DATA),
        "cond-OT": GaussianMixtureVelocity.of(CondOT(), TABLE_I_DATA),
        "OT": MonotoneVelocity1D(TABLE_I_DATA),
    }
    for name, path in paths.items():
        k = kinetic_quadrature(path, n_t=24)
        assert has_closed_form(path)
        assert abs(k.integral - expected[name]) < 1e-4, name
        assert k.integral_stderr == 0.0
    cond_ot = _mixture_kinetic_by_quad(CondOT(), (-0.6, 0.6), (0.3, 0.3))
    assert math.isclose(kinetic_quadrature(paths["cond-OT"], n_t=24).integral, cond_ot,
                        rel_tol=1e-7)
    assert math.isclose(w2_squared_quadrature(paths["OT"]), paths["OT"].w2_squared(),
                        rel_tol=1e-8)
    # the seed-check values for N(0, 0.5^2) data, by quadrature instead of Monte Carlo
    narrow = GaussianMixture.one_d([0.0], [0.5])
    for schedule, value in ((CondOT(), 0.46460184), (Cosine(), 0.30842514)):
        k = kinetic_quadrature(GaussianMixtureVelocity.of(schedule, narrow), n_t=24)
        assert abs(k.integral - value) < 1e-7


def test_noise_level_quadrature_converges_with_its_order() -> None:
    """Along the OT path int v2^2 dt = W2(P_0, N(0, 1))^2 (tau = 1). For well separated modes
    the flow map bends sharply in z, so the Gauss-Legendre order per piece matters: order 1
    (the midpoint rule) misses by more than 1e-3, order 24 agrees with the map's own W2^2
    (independent adaptive quadrature in y) to its interpolation error."""
    path = MonotoneVelocity1D(GaussianMixture.one_d([-1.0, 1.0], [0.3, 0.3]))
    exact = path.w2_squared()
    for order, low, high in ((1, 1e-3, 0.1), (24, 0.0, 1e-5)):
        kinetic = kinetic_quadrature(path, n_t=8, order=order).integral
        assert low <= abs(kinetic - exact) < high, order
        assert low <= abs(w2_squared_quadrature(path, order=order) - exact) < high, order


def test_quadrature_chain_holds_exactly_and_is_tight_for_ot() -> None:
    """Without sampling error: response <= int v_loss^2 <= int v2^2 and v_loss(t) <= v2(t)
    with no tolerance; on the OT path W1(t) is linear in t, so Cauchy-Schwarz is an equality
    (response = int v_loss^2 dt), the tightest case of the paper's Fig. 6(b)."""
    perturbed = TABLE_I_STARTS["shifted-mean"][0]
    for path in (
        GaussianMixtureVelocity.of(Cosine(), TABLE_I_DATA),
        GaussianMixtureVelocity.of(CondOT(), TABLE_I_DATA),
        MonotoneVelocity1D(TABLE_I_DATA),
    ):
        res = tradeoff(path, path, perturbed, n_save=11, n_t=16)
        assert res.estimator == "quadrature" and res.kinetic_method == "quadrature"
        assert res.flow_map == "monotone rearrangement" and res.n_samples == 0
        assert res.response_ci is None and res.covers(res.response)
        assert res.response <= res.v_loss_sq_integral * (1 + 1e-9) and res.holds
        assert np.all(res.v_loss <= res.v2_mid)
        if isinstance(path, MonotoneVelocity1D):
            assert math.isclose(res.response, res.v_loss_sq_integral, rel_tol=1e-8)
            assert np.allclose(res.v_loss, res.v_loss[0], rtol=1e-8)
        else:
            assert res.v_loss_sq_integral > 1.1 * res.response


def test_sampled_interval_covers_the_exact_value() -> None:
    """The bootstrap interval (95 %) of the sampled response covers the quadrature value in at
    least 8 of 10 seeds (binomial: P(<= 7 | 0.95) = 1.2 %), and is informative: it excludes a
    value 25 % off in most seeds."""
    perturbed = TABLE_I_STARTS["shifted-mean"][0]
    path = GaussianMixtureVelocity.of(CondOT(), TABLE_I_DATA)
    exact = response_quadrature(path, perturbed, tau=1.0, n_save=2, n_t=2).response
    covered, excluded = 0, 0
    for seed in range(10):
        r = tradeoff(
            path, path, perturbed, estimator="samples", n_samples=2000, n_steps=20,
            n_save=2, n_t=4, seed=seed, n_boot=200,
        )
        assert r.estimator == "samples" and r.ci_method == "bootstrap"
        assert r.flow_map == "rk4, 20 steps" and r.n_samples == 2000
        covered += r.covers(exact)
        excluded += not r.covers(1.25 * exact)
    assert covered >= 8
    assert excluded >= 8


def test_repeat_intervals_in_two_dimensions() -> None:
    path = GaussianMixtureVelocity(CondOT(), [[0.0, 0.0]], [[[0.3, 0.0], [0.0, 0.3]]])
    perturbed = Normal([0.5, 0.0], np.eye(2))
    r = tradeoff(
        path, path, perturbed, n_samples=150, n_steps=10, n_save=2, n_t=4, n_x=256, n_repeats=3
    )
    assert r.estimator == "samples" and r.ci_method == "repeats"
    assert r.kinetic_method == "monte carlo"
    assert r.response_repeats is not None and r.response_repeats.shape == (3,)
    assert math.isclose(r.response, float(r.response_repeats.mean()), rel_tol=1e-12)
    assert r.response_ci[0] < r.response < r.response_ci[1]
    # the Student-t interval of the mean of 3 repeats: mean +- t_{0.975, 2} sd / sqrt(3)
    half = stats.t.ppf(0.975, 2) * r.response_repeats.std(ddof=1) / math.sqrt(3)
    np.testing.assert_allclose(r.response_ci, (r.response - half, r.response + half), rtol=1e-12)
    assert len(set(r.response_repeats.tolist())) == 3  # fresh samples for every repeat
    again = tradeoff(
        path, path, perturbed, n_samples=150, n_steps=10, n_save=2, n_t=4, n_x=256, n_repeats=3
    )
    np.testing.assert_array_equal(again.response_repeats, r.response_repeats)


def test_estimator_selection_and_bad_input() -> None:
    path = GaussianMixtureVelocity.of(CondOT(), TABLE_I_DATA)
    # no closed-form CDF: "auto" falls back to samples, "quadrature" refuses
    r = tradeoff(path, path, _Triangular(), n_samples=200, n_steps=5, n_save=2, n_t=2,
                 n_boot=20)
    assert r.estimator == "samples"
    with pytest.raises(ValueError, match="quadrature estimator needs"):
        tradeoff(path, path, _Triangular(), estimator="quadrature")
    with pytest.raises(ValueError, match="estimator"):
        tradeoff(path, path, N01, estimator="exactly")
    with pytest.raises(ValueError, match="ci_level"):
        tradeoff(path, path, N01, ci_level=1.5)
    with pytest.raises(ValueError, match="mismatched dimensions"):
        tradeoff(path, path, standard_normal(2))
    net = VelocityMLP(1, hidden=4, depth=1, time_dim=4)
    with pytest.raises(ValueError, match="no closed-form flow map"):
        response_quadrature(net, N01, tau=1.0, flow_map="closed form")
    with pytest.raises(ValueError, match="t_end"):
        response_quadrature(path, N01, tau=1.0, t_end=1.0)
    with pytest.raises(ValueError, match="closed-form marginals"):
        kinetic_quadrature(net)


def test_d0_isotropic_fit_against_the_closed_form() -> None:
    """Eq. G21: 2 KL of isotropic Gaussian fits. Clouds with exactly known sample moments give
    the closed-form 2 KL(N(m', s'^2 I) || N(m, s^2 I)), checked here against the general
    Gaussian KL formula; and 2 KL = chi^2 to second order in a small perturbation."""
    d, n = 5, 400
    g = torch.Generator().manual_seed(0)

    def cloud(mean: np.ndarray, var: float) -> torch.Tensor:
        x = torch.randn(n, d, generator=g, dtype=F64)
        x = x - x.mean(dim=0)
        x = x / torch.sqrt((x**2).sum(dim=1).mean() / d)  # isotropic fit exactly N(0, I)
        return x * math.sqrt(var) + torch.as_tensor(mean)

    m0, m1 = np.zeros(d), np.array([0.3, -0.1, 0.0, 0.2, 0.05])
    v0, v1 = 1.3, 0.7
    c0, c1 = v0 * np.eye(d), v1 * np.eye(d)
    kl = 0.5 * (np.trace(np.linalg.solve(c0, c1)) + (m1 - m0) @ np.linalg.solve(c0, m1 - m0)
                - d + np.log(np.linalg.det(c0) / np.linalg.det(c1)))
    assert math.isclose(d0_isotropic_fit(cloud(m0, v0), cloud(m1, v1)), 2 * kl, rel_tol=1e-10)
    # a reference with a mean off the origin and a spread below 1, another mean off it
    m2 = np.array([0.1, 0.2, -0.3, 0.0, 0.1])
    kl_back = 0.5 * (np.trace(np.linalg.solve(c1, c0)) + (m2 - m1) @ np.linalg.solve(c1, m2 - m1)
                     - d + np.log(np.linalg.det(c1) / np.linalg.det(c0)))
    ref, pert = cloud(m1, v1), cloud(m2, v0)
    assert math.isclose(d0_isotropic_fit(ref, pert), 2 * kl_back, rel_tol=1e-10)
    # a float32 perturbed cloud is fitted in the reference's float64
    pert32 = pert.float()
    assert d0_isotropic_fit(ref, pert32) == d0_isotropic_fit(ref, pert32.double())
    # small shift delta along e_1: chi^2 = e^{delta^2} - 1 = 2 KL (1 + O(delta^2))
    delta = 0.1
    e1 = np.eye(d)[0] * delta
    fit = d0_isotropic_fit(cloud(m0, 1.0), cloud(e1, 1.0))
    chi2 = chi2_divergence(Normal(e1, np.eye(d)))
    assert math.isclose(fit, delta**2, rel_tol=1e-10)
    assert 0 < chi2 / fit - 1 < delta**2


def test_one_dimensional_cdfs_and_marginals() -> None:
    x = np.linspace(-4.0, 4.0, 17)
    mix = GaussianMixture.one_d([-1.0, 0.5], [0.4, 1.2], [0.3, 0.7])
    expected = 0.3 * stats.norm.cdf(x, -1.0, 0.4) + 0.7 * stats.norm.cdf(x, 0.5, 1.2)
    np.testing.assert_allclose(mix.cdf(x), expected, rtol=1e-13, atol=1e-15)
    box = stats.uniform.cdf(x, -1, 3)
    np.testing.assert_allclose(Uniform([-1.0], [2.0]).cdf(x), box, rtol=1e-14)
    with pytest.raises(ValueError, match="1-D distribution"):
        Normal([0.0, 0.0], np.eye(2)).cdf(x)
    with pytest.raises(ValueError, match="no closed-form CDF"):
        _Triangular().cdf(x)
    marginal = GaussianMixtureVelocity.of(Cosine(), mix).marginal(0.4)
    m, s = math.cos(0.2 * math.pi), math.sin(0.2 * math.pi)
    np.testing.assert_allclose(marginal.means[:, 0].numpy(), [-m, 0.5 * m], rtol=1e-14)
    np.testing.assert_allclose(
        marginal.covs[:, 0, 0].numpy(), [m * m * 0.16 + s * s, m * m * 1.44 + s * s], rtol=1e-14
    )


class _LogTailed(Distribution):
    """F(x) = 1/2 + sign(x) (1 - 1/log(e + |x|)) / 2: its tails decay like 1/log|x|, so
    chi^2 against N(0, 1) is infinite; only the CDF is needed to see it."""

    dim = 1

    def sample(self, n, generator=None):
        raise NotImplementedError

    def log_prob(self, x):
        raise NotImplementedError

    def cdf(self, x):
        x = np.asarray(x, dtype=np.float64)
        return 0.5 + 0.5 * np.sign(x) * (1.0 - 1.0 / np.log(math.e + np.abs(x)))


class _PlaneTriangle(_Triangular):
    """A 2-D start with no closed-form chi^2 (and no 2-D quadrature)."""

    dim = 2


def test_tradeoff_guards_name_what_is_wrong() -> None:
    vel = MonotoneVelocity1D(TABLE_I_DATA)
    with pytest.raises(
        ValueError, match="^the perturbed distribution's tails do not decay; D0 would be infinite$"
    ):
        response_quadrature(vel, _LogTailed(), tau=1.0, d0=1.0)
    with pytest.raises(ValueError, match="quadrature path is 1-D; the perturbed start has dim 2"):
        response_quadrature(vel, Normal([0.5, 0.0], np.eye(2)), tau=1.0, d0=1.0)
    for d0 in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="d0 must be positive and finite"):
            response_quadrature(vel, Normal([0.5], [[1.0]]), tau=1.0, d0=d0)
    with pytest.raises(ValueError, match="n_save must be an integer >= 2, got 1; at least the two"):
        response_quadrature(vel, Normal([0.5], [[1.0]]), tau=1.0, n_save=1)
    with pytest.raises(ValueError, match="no closed form for _PlaneTriangle"):
        perturbation_d0(_PlaneTriangle())
    cloud = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    with pytest.raises(ValueError, match="both clouds need a positive spread"):
        d0_isotropic_fit(cloud, torch.ones(50, 3, dtype=F64))
    with pytest.raises(ValueError, match="needs a Gaussian q"):
        chi2_divergence(Normal([0.5], [[1.0]]), Uniform([-1.0], [1.0]))
    with pytest.raises(ValueError, match="box closed form needs a diagonal covariance"):
        chi2_divergence(Uniform([0.0, 0.0], [1.0, 1.0]), Normal([0.0, 0.0], [[1, 0.5], [0.5, 1]]))


def test_repeat_intervals_need_two_repeats() -> None:
    path = GaussianMixtureVelocity(CondOT(), [[0.0, 0.0]], [[[0.3, 0.0], [0.0, 0.3]]])
    with pytest.raises(ValueError, match="n_repeats must be an integer >= 2, got 1"):
        tradeoff(
            path, path, Normal([0.5, 0.0], np.eye(2)), n_samples=20, n_steps=2, n_save=2, n_t=2,
            n_x=16, n_repeats=1,
        )


def _mixture_quantile_by_log_cdf(mu, sd, w, z: float) -> float:
    """F^{-1}(Phi(z)) by brentq on log F = log Phi(z) (log S = log Phi(-z) above the median),
    so that the tails keep full relative precision (scipy.stats)."""
    if z <= 0:
        f = lambda y: special.logsumexp(np.log(w) + stats.norm.logcdf(y, mu, sd)) - (
            stats.norm.logcdf(z)
        )
    else:
        f = lambda y: stats.norm.logsf(z) - special.logsumexp(
            np.log(w) + stats.norm.logsf(y, mu, sd)
        )
    return optimize.brentq(f, -80.0, 80.0, xtol=1e-13, rtol=1e-15)


def test_mixture_quantile_against_scipy_into_the_tails() -> None:
    """y = F^{-1}(Phi(z)) for an unequal mixture, |z| up to 8 (Phi(-8) = 6e-16)."""
    from ottokit.flowmatch._quantile import mixture_quantile

    mu, sd, w = np.array([-1.5, 0.2, 2.0]), np.array([0.4, 1.3, 0.25]), np.array([0.5, 0.2, 0.3])
    z = np.concatenate([np.linspace(-8.0, 8.0, 17), [0.0, 1e-3, -1e-3]])
    y = mixture_quantile(z, mu, sd, np.log(w))
    ref = np.array([_mixture_quantile_by_log_cdf(mu, sd, w, zi) for zi in z])
    assert np.all(np.abs(y - ref) <= 1e-10 * (1 + np.abs(ref))), np.abs(y - ref).max()
    one = mixture_quantile(z, np.array([0.7]), np.array([2.5]), np.array([0.0]))
    np.testing.assert_allclose(one, 0.7 + 2.5 * z, rtol=1e-13, atol=1e-13)


def test_mixture_quantile_newton_converges_quadratically(monkeypatch) -> None:
    """The safeguarded Newton iteration keeps its quadratic convergence from the moment-matched
    start: at most 10 steps (one ndtri_exp each) for 33 points z in [-8, 8] on three mixtures,
    where a wrong slope, a bisection-only or a misplaced fallback step takes 20 to 80."""
    import ottokit.flowmatch._quantile as quantile

    steps = []

    class CountingSpecial:
        def __getattr__(self, name):
            return getattr(special, name)

        def ndtri_exp(self, x):
            steps.append(1)
            return special.ndtri_exp(x)

    monkeypatch.setattr(quantile, "special", CountingSpecial())
    z = np.linspace(-8.0, 8.0, 33)
    for mu, sd, w in (([-1.5, 0.2, 2.0], [0.4, 1.3, 0.25], [0.5, 0.2, 0.3]),
                      ([-0.6, 0.6], [0.3, 0.3], [0.5, 0.5]),
                      ([-4.0, 4.0], [0.5, 0.5], [0.3, 0.7])):
        steps.clear()
        y = quantile.mixture_quantile(z, np.array(mu), np.array(sd), np.log(w))
        assert 1 <= len(steps) <= 10, (mu, len(steps))
        ref = [_mixture_quantile_by_log_cdf(np.array(mu), np.array(sd), np.array(w), zi)
               for zi in z]
        np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


def test_mixture_quantile_refuses_what_does_not_converge() -> None:
    """A NaN z never meets the stopping rule: after 100 steps the solver says so."""
    from ottokit.flowmatch._quantile import mixture_quantile

    with pytest.raises(RuntimeError, match="^the mixture quantile did not converge$"):
        mixture_quantile(np.array([0.5, np.nan]), np.array([0.0, 1.0]), np.array([1.0, 1.0]),
                         np.log([0.5, 0.5]))


def test_normal_nodes_integrate_gaussian_moments() -> None:
    """E Z^{2k} = (2k - 1)!!, E cos(aZ) = exp(-a^2/2), E exp(aZ) = exp(a^2/2), Z ~ N(0, 1)."""
    from ottokit.flowmatch._quantile import normal_nodes

    for kwargs in ({}, {"order": 8, "max_width": 0.25}):
        z, w = normal_nodes(**kwargs)
        assert z.min() > -12.0 and z.max() < 12.0 and np.all(np.diff(z) > 0)
        for k, moment in ((0, 1.0), (1, 1.0), (2, 3.0), (3, 15.0), (4, 105.0)):
            assert math.isclose(w @ z ** (2 * k), moment, rel_tol=1e-12), (kwargs, k)
        assert abs(w @ z**3) < 1e-14
        assert math.isclose(w @ np.cos(1.7 * z), math.exp(-(1.7**2) / 2), rel_tol=1e-12)
        assert math.isclose(w @ np.exp(1.3 * z), math.exp(1.3**2 / 2), rel_tol=1e-12)
        # Gauss-Legendre of the given order on pieces of at most max_width over [-12, 12]
        order, width = kwargs.get("order", 12), kwargs.get("max_width", 0.5)
        assert len(z) == order * math.ceil(24.0 / width), kwargs


@pytest.mark.parametrize(
    "perturbed",
    [Uniform([-ROOT3], [ROOT3]), GaussianMixture.one_d([-0.4, 1.2], [0.5, 1.1], [0.7, 0.3])],
    ids=["uniform", "mixture"],
)
def test_quantile_nodes_give_w1_and_normal_expectations(perturbed) -> None:
    """With Psi = id, w1_kernel . z = W1(N(0, 1), G) = int |Phi - G| dz (scipy quad over the
    roots of Phi - G), and normal_weights integrate N(0, 1)."""
    from ottokit.flowmatch._quantile import quantile_nodes

    for kwargs in ({}, {"order": 10, "max_width": 0.2}):
        nodes = quantile_nodes(perturbed, **kwargs)
        gap = lambda x: abs(float(special.ndtr(x) - perturbed.cdf(np.asarray(x))))
        w1, _ = integrate.quad(gap, -14.0, 14.0, limit=800, epsabs=1e-13, epsrel=1e-12,
                               points=(-ROOT3, ROOT3, 0.0))
        assert math.isclose(float(nodes.w1_kernel @ nodes.z), w1, rel_tol=1e-9), kwargs
        assert math.isclose(float(nodes.normal_weights.sum()), 1.0, rel_tol=1e-13)
        assert math.isclose(float(nodes.normal_weights @ nodes.z**2), 1.0, rel_tol=1e-12)
        assert nodes.z.shape == nodes.weights.shape == nodes.w1_kernel.shape
    with pytest.raises(ValueError, match=r"^the quadrature path is 1-D; the perturbed start"):
        quantile_nodes(standard_normal(2))


def test_quantile_nodes_find_close_roots_of_phi_minus_g() -> None:
    """For G = (N(-0.55, 0.4^2) + N(0.55, 0.4^2)) / 2, H = Phi - G changes sign at 0 and near
    +-0.167: every piece between them gets its own sign, so the kernel gives W1 = int |H| dz
    (scipy quad split at the roots)."""
    from ottokit.flowmatch._quantile import quantile_nodes

    mix = GaussianMixture.one_d([-0.55, 0.55], [0.4, 0.4])
    big_h = lambda x: float(special.ndtr(x) - mix.cdf(np.asarray(x)))
    root = optimize.brentq(big_h, 0.1, 0.3, xtol=1e-15)
    assert 0.16 < root < 0.17 and big_h(0.5 * root) * big_h(2 * root) < 0
    w1, _ = integrate.quad(lambda x: abs(big_h(x)), -14.0, 14.0, limit=800, epsabs=1e-13,
                           epsrel=1e-12, points=(-root, 0.0, root))
    nodes = quantile_nodes(mix)
    assert math.isclose(float(nodes.w1_kernel @ nodes.z), w1, rel_tol=1e-9)


@pytest.mark.parametrize("shift", [-9.0, 9.0])
def test_quantile_nodes_reach_the_tails_of_a_far_start(shift: float) -> None:
    """A start N(shift, 1) keeps mass beyond [-12, 12] on its own side; the nodes reach its
    tails there, so the kernel gives W1(N(0, 1), N(shift, 1)) = |shift| exactly. The one long
    interval (no root of H) is still cut into pieces of at most max_width: each piece's 12
    Gauss-Legendre weights sum to its width."""
    from ottokit.flowmatch._quantile import quantile_nodes

    nodes = quantile_nodes(Normal([shift], [[1.0]]))
    assert math.isclose(float(nodes.w1_kernel @ nodes.z), abs(shift), rel_tol=1e-12)
    assert math.isclose(float(nodes.normal_weights.sum()), 1.0, rel_tol=1e-13)
    widths = nodes.weights.reshape(-1, 12).sum(axis=1)
    assert widths.max() <= 0.5 * (1 + 1e-12) and nodes.z.max() - nodes.z.min() > 40.0


def test_model_dtype_and_velocity_at_follow_the_network() -> None:
    """A network's own dtype and device; anything without parameters takes the default."""
    from ottokit.flowmatch._quantile import model_dtype, velocity_at

    class Affine(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Parameter(torch.tensor(-2.0, dtype=torch.float32))

        def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            assert t.dtype == x.dtype == torch.float32
            return self.a * x + 0.5

    net = Affine()
    assert model_dtype(net, F64) == (torch.float32, torch.device("cpu"))
    assert model_dtype(torch.nn.ReLU(), F64) == (F64, None)
    assert model_dtype(lambda t, x: x, torch.float16) == (torch.float16, None)
    x = np.array([0.25, -1.0, 3.0])
    v = velocity_at(lambda t, x: (0.5 - 2.0 * x) * t, 0.5, x)  # float64 in, as given
    assert v.dtype == np.float64 and v.shape == (3,)
    np.testing.assert_allclose(velocity_at(net, 0.5, x), -2.0 * x + 0.5, rtol=1e-7)
    np.testing.assert_array_equal(v, 0.5 * (-2.0 * x + 0.5))


def test_closed_form_flows_and_ode_states_agree() -> None:
    """The mixture's rearrangement F_t^{-1}(Phi(z)) and the OT path's (1 - s) T(z) + s z are the
    flows the ODE integrates: dopri5 states at unordered, repeated times and the rk4 grid."""
    from ottokit.flowmatch._quantile import closed_form_flow, mixture_quantile, ode_states

    mix = GaussianMixture.one_d([-0.6, 0.6], [0.3, 0.3])
    z = np.linspace(-3.0, 3.0, 7)
    vel = GaussianMixtureVelocity.of(Cosine(2.0), mix)
    flow = closed_form_flow(vel, z)
    out = Cosine(2.0)(0.8)
    sd = np.sqrt(out.m_t**2 * 0.09 + out.sigma_t**2)
    expect = mixture_quantile(z, out.m_t * np.array([-0.6, 0.6]), np.array([sd, sd]),
                              np.log([0.5, 0.5]))
    np.testing.assert_allclose(flow(0.8), expect, rtol=1e-13)
    np.testing.assert_allclose(flow(2.0), z, atol=1e-12)  # P_tau = N(0, 1)
    times = np.array([0.8, 1.5, 0.8, 2.0])
    t_out, states = ode_states(vel, z, 2.0, times, method="dopri5", n_steps=0, rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_array_equal(t_out, times)
    for t, row in zip(times, states, strict=True):
        np.testing.assert_allclose(row, flow(t), atol=1e-7)
    for rtol, atol in ((1e-12, 1e-3), (1e-3, 1e-12)):  # each tolerance reaches the integrator
        _, loose = ode_states(vel, z, 2.0, times, method="dopri5", n_steps=0, rtol=rtol,
                              atol=atol)
        assert np.abs(loose[0] - flow(0.8)).max() > 1e-5, (rtol, atol)
    t_grid, grid_states = ode_states(vel, z, 2.0, np.array([0.8]), method="rk4", n_steps=60,
                                     rtol=0.0, atol=0.0)
    np.testing.assert_allclose(t_grid, np.linspace(2.0, 0.8, 61), rtol=1e-15)
    assert grid_states.shape == (61, 7)  # a state at every step
    np.testing.assert_allclose(grid_states[-1], flow(0.8), atol=1e-6)
    np.testing.assert_allclose(grid_states[30], flow(t_grid[30]), atol=1e-6)
    np.testing.assert_allclose(grid_states[0], z, atol=0)
    ot_vel = MonotoneVelocity1D(mix, tau=2.0)
    ot_flow = closed_form_flow(ot_vel, z)
    np.testing.assert_allclose(ot_flow(2.0), z, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(ot_flow(3.0), ot_flow(2.0))  # s = t / tau is clipped to 1
    np.testing.assert_allclose(ot_flow(0.0), ot_vel.inverse_map(z), rtol=0, atol=1e-15)
    np.testing.assert_allclose(ot_flow(-1e-9), ot_flow(0.0), rtol=0, atol=0)  # s clipped
    np.testing.assert_allclose(ot_flow(0.5), 0.75 * ot_vel.inverse_map(z) + 0.25 * z, atol=1e-15)
    assert closed_form_flow(ExactVelocity(Cosine(), torch.zeros(2, 1, dtype=F64)), z) is None


class _LinearField(torch.nn.Module):
    """v(t, x) = a x + b as a float32 layer (which refuses float64 points)."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        with torch.no_grad():
            self.layer.weight.fill_(a)
            self.layer.bias.fill_(b)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def test_a_float32_network_is_integrated_in_float32_to_its_rounding_floor() -> None:
    """dx/dt = a x + b from tau back to 0 maps z to (z + b/a) e^{-a tau} - b/a, increasing and
    affine, so W1 between the pushed N(0, 1) and N(mu, 1) is e^{-a tau} |mu|. A float32 network
    flows in float32: dopri5 with its rtol 1e-10 raised to the float32 floor, and rk4."""
    net = _LinearField(0.5, 0.25)
    for method in ("dopri5", "rk4"):
        r = response_quadrature(net, Normal([0.5], [[1.0]]), tau=2.0, flow_map="ode",
                                method=method, n_steps=40, n_save=3, n_t=4)
        assert math.isclose(r.w1_initial, 0.5, rel_tol=1e-6), method
        assert math.isclose(r.w1_final, 0.5 * math.exp(-1.0), rel_tol=1e-4), method


def _result(**fields) -> TradeoffResult:
    base = dict(
        tau=2.0, d0=0.5, w1_initial=0.1, w1_final=0.4, delta_w1=0.3, response=0.09,
        v_loss_sq_integral=0.2, kinetic=1.0, kinetic_stderr=0.0, w2_bound=0.8,
        t_mid=np.array([0.5, 1.5]), v_loss=np.array([0.3, 0.1]), v2_mid=np.array([0.6, 0.2]),
        t_kinetic=np.array([0.5, 1.5]), v2=np.array([0.6, 0.2]), estimator="quadrature",
        flow_map="monotone rearrangement", kinetic_method="quadrature", n_samples=0,
        response_ci=None, ci_method="none", ci_level=0.95, response_repeats=None,
    )
    return TradeoffResult(**{**base, **fields})


def test_inequalities_report_each_link_with_its_sides_and_rtol() -> None:
    """The seed's chain, link by link: (lhs, rhs) as given, lhs <= rhs (1 + rtol), equality
    allowed; v_loss/v2 over the finite ratios only (v_loss = v2 = 0 at a point drops out)."""
    res = _result()
    expect = [
        Inequality("response <= int v_loss^2 dt", 0.09, 0.2, True),
        Inequality("int v_loss^2 dt <= int T S_dot dt", 0.2, 1.0, True),
        Inequality("response <= int v2^2 dt", 0.09, 1.0, True),
        Inequality("W2(P0, Ptau)^2 / tau <= int v2^2 dt", 0.8, 1.0, True),
        Inequality("max_t v_loss(t) / v2(t) <= 1", 0.5, 1.0, True),
    ]
    assert res.inequalities() == expect and res.holds
    tight = _result(response=0.2, v_loss_sq_integral=1.0, w2_bound=1.0,
                    v_loss=np.array([0.6, 0.0]), v2_mid=np.array([0.6, 0.0]))
    assert [i.holds for i in tight.inequalities()] == [True] * 5 and tight.holds
    assert tight.inequalities()[4].lhs == 1.0  # 0/0 at the second point is dropped
    broken = _result(response=0.21, v_loss_sq_integral=0.2, w2_bound=1.02,
                     v_loss=np.array([0.61, 0.1]))
    assert [i.holds for i in broken.inequalities()] == [False, True, True, False, False]
    assert not broken.holds
    assert all(i.holds for i in broken.inequalities(rtol=0.051))
    assert not all(i.holds for i in broken.inequalities(rtol=0.049))
    empty = _result(v_loss=np.array([0.0]), v2_mid=np.array([0.0]))
    last = empty.inequalities()[4]
    assert math.isnan(last.lhs) and not last.holds and not empty.holds


def test_covers_reads_the_interval_or_the_value() -> None:
    """With an interval: its closed range; without one: the value itself to 1e-6."""
    with_ci = _result(response_ci=(0.05, 0.12))
    assert with_ci.covers(0.05) and with_ci.covers(0.12) and with_ci.covers(0.09)
    assert not with_ci.covers(0.0499) and not with_ci.covers(0.1201)
    point = _result()
    assert point.covers(0.09 * (1 + 5e-7)) and not point.covers(0.09 * (1 + 2e-6))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda v: kinetic_cost(lambda t, x: x), TypeError,
         r"^path must be an ottokit\.flowmatch\.velocity\.MarginalPath, got function; a velocity "
         r"that can sample its marginals$"),
        (lambda v: kinetic_cost(v, n_t=0), ValueError, r"^n_t must be a positive integer, got 0$"),
        (lambda v: kinetic_cost(v, n_x=0), ValueError, r"^n_x must be a positive integer, got 0$"),
        (lambda v: kinetic_cost(v, seed=-1), ValueError,
         r"^seed must be a non-negative integer, got -1$"),
        (lambda v: conditional_kinetic_energy(CondOT(), 0), ValueError,
         r"^dim must be a positive integer, got 0$"),
        (lambda v: w2_squared_quadrature(ExactVelocity(CondOT(), torch.zeros(2, 1, dtype=F64))),
         ValueError, r"^quadrature needs a 1-D path with closed-form marginals, got ExactVelocity; "
         r"use kinetic_cost \(Monte Carlo\)$"),
    ],
    ids=["path", "n_t", "n_x", "seed", "dim", "w2-quadrature-closed-form"],
)
def test_kinetic_guards_name_the_argument(call, error, message) -> None:
    vel = GaussianMixtureVelocity(CondOT(), [[0.0]], [[[1.0]]])
    with pytest.raises(error, match=message):
        call(vel)


def test_kinetic_cost_standard_errors_and_seed() -> None:
    """Data N(0, s0^2), cond-OT: nu = (s_t'/s_t) x, so |nu|^2 = (s_t')^2 chi^2_1 and its Monte
    Carlo standard error is sqrt(2) E|nu|^2 / sqrt(n_x); the seed decides the samples; one
    sample has no standard error."""
    s0, n_x = 0.5, 4000
    vel = GaussianMixtureVelocity(CondOT(2.0), [[0.0]], [[[s0**2]]])
    res = kinetic_cost(vel, n_t=4, n_x=n_x, seed=3)
    s = 0.5 * res.t
    m = 1.0 - s
    exact = ((-m * s0**2 + s) / np.sqrt(m**2 * s0**2 + s**2) / 2.0) ** 2  # (d s_t / dt)^2
    np.testing.assert_allclose(res.energy, exact, rtol=6 * math.sqrt(2 / n_x))
    np.testing.assert_allclose(res.energy_stderr, math.sqrt(2 / n_x) * exact, rtol=0.1)
    assert math.isclose(res.integral_stderr, float(np.sqrt(np.sum((res.weights *
                                                                   res.energy_stderr) ** 2))))
    again, other = kinetic_cost(vel, n_t=4, n_x=n_x, seed=3), kinetic_cost(vel, n_t=4, n_x=n_x)
    assert again.integral == res.integral and other.integral != res.integral
    one = kinetic_cost(vel, n_t=2, n_x=1)
    assert np.all(np.isnan(one.energy_stderr)) and math.isnan(one.integral_stderr)


_SHIFTED = Normal([0.5], [[1.0]])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p: tradeoff(p, p, N01, seed=-1), ValueError,
         "seed must be a non-negative integer, got -1"),
        (lambda p: tradeoff(p, p, N01, estimator="exactly"), ValueError,
         "unknown estimator 'exactly'; allowed: 'auto', 'quadrature', 'samples'"),
        (lambda p: tradeoff(p, p, N01, ci="sometimes"), ValueError,
         "unknown ci 'sometimes'; allowed: 'auto', 'bootstrap', 'repeats', 'none'"),
        (lambda p: tradeoff(p, p, N01, ci_level=1.5), ValueError,
         "ci_level must be a number in (0, 1), got 1.5 (e.g. ci_level=0.95)"),
        (lambda p: tradeoff(p, p, N01, ci_level=0.0), ValueError,
         "ci_level must be a number in (0, 1), got 0 (e.g. ci_level=0.95)"),
        (lambda p: tradeoff(p, p, standard_normal(2)), ValueError,
         "the path has dimension 1 but the perturbed start 2 (mismatched dimensions)"),
        (lambda p: tradeoff(p, p, _Triangular(), estimator="quadrature"), ValueError,
         "the quadrature estimator needs a 1-D problem whose perturbed start has a cdf; "
         "use estimator='samples'"),
        (lambda p: tradeoff(p, p, _SHIFTED, estimator="samples", n_samples=1), ValueError,
         "n_samples must be an integer >= 2, got 1 (e.g. n_samples=2000)"),
        (lambda p: tradeoff(p, p, _SHIFTED, estimator="samples", n_samples=8, ci="bootstrap",
                            n_boot=0), ValueError, "n_boot must be a positive integer, got 0"),
        (lambda p: tradeoff(p, p, _SHIFTED, estimator="samples", n_samples=8, ci="repeats",
                            n_repeats=1), ValueError,
         "n_repeats must be an integer >= 2, got 1; ci='repeats' estimates a spread from them"),
        (lambda p: response_quadrature(p, N01, tau=0.0), ValueError,
         "tau must be a positive number, got 0"),
        (lambda p: response_quadrature(p, N01, tau=1.0, flow_map="magic"), ValueError,
         "unknown flow_map 'magic'; allowed: 'auto', 'closed form', 'ode'"),
        (lambda p: response_quadrature(p, N01, tau=1.0, method="euler2"), ValueError,
         "unknown method 'euler2'; allowed: 'rk4', 'dopri5', 'euler', 'midpoint'"),
        (lambda p: response_quadrature(p, N01, tau=1.0, n_t=0), ValueError,
         "n_t must be a positive integer, got 0"),
        (lambda p: response_quadrature(VelocityMLP(1, hidden=4, depth=1, time_dim=4), _SHIFTED,
                                       tau=1.0, flow_map="closed form"), ValueError,
         "no closed-form flow map for VelocityMLP; use flow_map='ode'"),
        (lambda p: perturbation_d0("x"), TypeError,
         "perturbed must be an ottokit.flowmatch.distributions.Distribution, got str"),
        (lambda p: d0_isotropic_fit("abc", torch.zeros(3, 2)), TypeError,
         "reference must be an array of real numbers, got 'abc' of type str (dtype <U3)"),
        (lambda p: d0_isotropic_fit(torch.randn(5, 2), "abc"), TypeError,
         "perturbed must be an array of real numbers, got 'abc' of type str (dtype <U3)"),
        (lambda p: d0_isotropic_fit(torch.randn(5, 2), torch.randn(5, 3)), ValueError,
         "perturbed has dimension 3, expected 2 (mismatched dimensions)"),
        (lambda p: d0_isotropic_fit(torch.ones(5, 2), torch.randn(5, 2)), ValueError,
         "both clouds need a positive spread to fit isotropic Gaussians"),
    ],
    ids=["seed", "estimator", "ci", "ci-level-1.5", "ci-level-0", "dims", "no-cdf",
         "n-samples", "n-boot", "n-repeats", "rq-tau", "rq-flow-map", "rq-method", "rq-n-t",
         "rq-no-closed-form", "d0-type", "fit-ref",
         "fit-perturbed", "fit-dims", "fit-no-spread"],
)
def test_tradeoff_refusals_are_whole_messages(call, error, message) -> None:
    """Each refusal names the argument, what it must be and (where there is one) an example
    or the reason, before any transport or quadrature starts."""
    path = GaussianMixtureVelocity.of(CondOT(), TABLE_I_DATA)
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        call(path)


def test_tradeoff_result_carries_its_quadrature_parts() -> None:
    """A 1-D closed-form path of horizon tau = 2: the result's W1 curve, kinetic cost and W2
    bound are those of response_quadrature, kinetic_quadrature and w2_squared_quadrature with
    the same settings; the ODE flow map, its method and step count reach response_quadrature;
    the estimator asked for is the one used; without samples there is no interval."""
    path = GaussianMixtureVelocity.of(Cosine(2.0), TABLE_I_DATA)
    res = tradeoff(path, path, _SHIFTED, estimator="quadrature", n_save=6, n_t=8)
    rq = response_quadrature(path, _SHIFTED, tau=2.0, n_save=6, n_t=8)
    kq = kinetic_quadrature(path, n_t=8)
    assert res.estimator == "quadrature" and res.kinetic_method == "quadrature"
    assert (res.w1_initial, res.w1_final, res.delta_w1) == (rq.w1_initial, rq.w1_final,
                                                            rq.delta_w1)
    assert res.v_loss_sq_integral == rq.v_loss_sq_integral and res.t_mid.shape == (5,)
    np.testing.assert_array_equal(res.v_loss, rq.v_loss)
    np.testing.assert_array_equal(res.t_kinetic, kq.t)
    np.testing.assert_array_equal(res.v2, kq.v2)
    assert (res.kinetic, res.kinetic_stderr) == (kq.integral, 0.0)
    assert res.w2_bound == w2_squared_quadrature(path) / 2.0
    assert res.ci_method == "none" and res.response_ci is None and res.response_repeats is None
    assert type(res.ci_level) is float and res.ci_level == 0.95
    given = tradeoff(path, path, _SHIFTED, n_save=2, n_t=2, w2_squared_exact=0.3)
    assert given.w2_bound == 0.15  # W2^2 / tau
    ode = tradeoff(path, path, _SHIFTED, flow_map="ode", method="rk4", n_steps=7, n_t=2)
    assert ode.flow_map == "rk4, 7 steps" and ode.t_mid.shape == (7,)
    ode = tradeoff(path, path, _SHIFTED, flow_map="ode", n_save=2, n_t=2)
    assert ode.flow_map == "dopri5 (rtol 1e-10)"
    # the noise axis has Gauss-Legendre pieces of `order` nodes, whichever flow map is used
    from ottokit.flowmatch._quantile import quantile_nodes

    for kw in ({"flow_map": "ode", "method": "rk4", "n_steps": 7}, {"n_t": 1}):
        for order in (8, 12):
            rq = response_quadrature(path, _SHIFTED, tau=2.0, order=order, n_save=2, **kw)
            assert rq.n_nodes == quantile_nodes(_SHIFTED, order=order).z.size, (kw, order)


def test_tradeoff_monte_carlo_parts_match_an_isotropic_gaussian_path() -> None:
    """In 2-D, data N(0, a^2 I) on CondOT with tau = 2 has marginals N(0, s_t^2 I),
    s_t^2 = (1 - t/2)^2 a^2 + (t/2)^2, and the linear velocity v = (s_t'/s_t) x: E|v|^2 =
    2 s_t'^2 and W2(P_0, P_tau)^2 = 2 (1 - a)^2. The Monte Carlo kinetic cost, its standard
    error (|v|^2 / E|v|^2 ~ chi^2_2 / 2, relative sd 1), v2 at the midpoints and the sampled
    W2 bound agree with these; every part is reproducible for a seed and changes with it."""
    a2, n_x = 0.05, 256
    path = GaussianMixtureVelocity(CondOT(2.0), [[0.0, 0.0]], [[[a2, 0.0], [0.0, a2]]])
    pert = Normal([0.5, 0.0], np.eye(2))
    kw = {"n_samples": 400, "n_steps": 5, "n_save": 3, "n_t": 6, "n_x": n_x, "ci": "none"}
    res = tradeoff(path, path, pert, seed=3, **kw)

    def s(t):
        return math.sqrt((1 - t / 2) ** 2 * a2 + (t / 2) ** 2)

    def energy(t):
        return 2.0 * ((-(1 - t / 2) * a2 + t / 2) / (2.0 * s(t))) ** 2

    assert res.kinetic_method == "monte carlo" and res.ci_method == "none"
    assert res.response_ci is None and res.t_kinetic.shape == (6,)
    nodes, weights = np.polynomial.legendre.leggauss(6)
    np.testing.assert_allclose(res.t_kinetic, nodes + 1.0, rtol=1e-14)
    exact = integrate.quad(energy, 0.0, 2.0)[0]
    expected_se = math.sqrt(sum((w * energy(t) / math.sqrt(n_x)) ** 2
                                for t, w in zip(nodes + 1.0, weights, strict=True)))
    assert 0.8 < res.kinetic_stderr / expected_se < 1.25
    assert abs(res.kinetic - exact) < 4 * expected_se
    np.testing.assert_allclose(res.v2_mid, [math.sqrt(energy(t)) for t in res.t_mid], rtol=0.15)
    assert abs(res.w2_bound - (1 - math.sqrt(a2)) ** 2) < 0.15 * (1 - math.sqrt(a2)) ** 2
    again = tradeoff(path, path, pert, seed=3, **kw)
    other = tradeoff(path, path, pert, seed=4, **kw)
    for field in ("kinetic", "kinetic_stderr", "w2_bound", "response"):
        assert getattr(again, field) == getattr(res, field), field
        assert getattr(other, field) != getattr(res, field), field
    np.testing.assert_array_equal(again.v2_mid, res.v2_mid)
    assert np.all(other.v2_mid != res.v2_mid)
    mc = kinetic_cost(path, n_t=6, n_x=2, seed=0)  # two samples already give a standard error
    assert np.all(np.isfinite(mc.energy_stderr)) and np.all(mc.energy_stderr > 0)
    np.testing.assert_allclose(mc.t, nodes + 1.0, rtol=1e-14)


class _NoHorizon:
    """A user's MarginalPath whose horizon tau is 0: refused where it is first used."""

    dim, tau = 1, 0.0

    def __call__(self, t, x):
        return -x

    def sample_marginal(self, t, n, generator=None):
        return torch.randn(n, 1, generator=generator, dtype=F64)


@pytest.mark.parametrize("call", [lambda p: tradeoff(p, p, _SHIFTED), lambda p: kinetic_cost(p)],
                         ids=["tradeoff", "kinetic_cost"])
def test_a_user_path_without_a_horizon_is_refused(call) -> None:
    with pytest.raises(ValueError, match=r"^tau must be a positive number, got 0$"):
        call(_NoHorizon())


def test_tradeoff_on_a_one_dimensional_path_without_closed_form_samples_its_cost() -> None:
    """An empirical data set in 1-D has no closed-form marginals: the kinetic cost is Monte
    Carlo even though the dimension is 1."""
    data = torch.linspace(-1.0, 1.0, 9, dtype=F64)[:, None]
    path = ExactVelocity(CondOT(), data)
    res = tradeoff(path, path, _SHIFTED, estimator="samples", n_samples=32, n_steps=4,
                   n_save=2, n_t=2, n_x=64, ci="none")
    assert res.kinetic_method == "monte carlo" and res.kinetic_stderr > 0
