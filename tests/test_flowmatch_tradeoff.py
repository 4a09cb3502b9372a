"""The speed-accuracy trade-off (seed 002): D0, int v2^2, the 1-D coincidence, the bounds."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch
from scipy import integrate, stats

from ottokit.flowmatch import (
    CondOT,
    Cosine,
    Distribution,
    ExactVelocity,
    GaussianMixture,
    GaussianMixtureVelocity,
    MonotoneVelocity1D,
    Normal,
    Uniform,
    VelocityMLP,
    chi2_divergence,
    chi2_quad,
    conditional_kinetic_energy,
    kinetic_cost,
    perturbation_d0,
    response,
    standard_normal,
    tradeoff,
    w2_lower_bound,
)

F64 = torch.float64
N01 = standard_normal(1)


# --- D0 = chi^2 of the perturbed start -------------------------------------------------


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


# --- int v2^2 dt: REFERENCE.md check values ---------------------------------------------


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


# --- the 1-D coincidence of exact responses -----------------------------------------------


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


# --- the whole chain ------------------------------------------------------------------------


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
