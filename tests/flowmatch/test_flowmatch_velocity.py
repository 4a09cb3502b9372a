"""Exact, closed-form, kernel-regressed and OT-path velocities, and ODE transport (seed 002)."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading

import numpy as np
import ot
import pytest
import torch
from scipy import stats

import ottokit.flowmatch._common as common_module
import ottokit.flowmatch.velocity as velocity_module
from ottokit._memory import MemoryEstimateError
from ottokit.flowmatch import (
    CondOT,
    Cosine,
    Custom,
    ExactVelocity,
    GaussianMixture,
    GaussianMixtureVelocity,
    ImprovedDDPMCosine,
    KernelVelocity,
    MonotoneVelocity1D,
    RotationalVelocity,
    SampleTrajectory,
    Uniform,
    VPLinear,
    integrate,
    ot_couple,
    ot_path_velocity,
    sample_backward,
    sample_forward,
)
from ottokit.thermo import RotationalDiffusion

F64 = torch.float64


def brute_force_velocity(
    schedule, data: np.ndarray, weights: np.ndarray, t: float, x: np.ndarray
) -> np.ndarray:
    """nu_t(x) from REFERENCE.md, one query and one data point at a time."""
    out = schedule(t)
    m, s, dm, ds = (float(v) for v in (out.m_t, out.sigma_t, out.d_m_t, out.d_sigma_t))
    result = np.empty_like(x)
    for i, xi in enumerate(x):
        logs = [
            math.log(wk) - sum((xi[j] - m * yk[j]) ** 2 for j in range(len(xi))) / (2 * s * s)
            for yk, wk in zip(data, weights, strict=True)
        ]
        top = max(logs)
        post = [math.exp(v - top) for v in logs]
        total = sum(post)
        ybar = sum(p * yk for p, yk in zip(post, data, strict=True)) / total
        result[i] = (ds / s) * xi + (dm - m * ds / s) * ybar
    return result


@pytest.fixture(scope="module")
def cloud() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    data = torch.randn(40, 3, generator=g, dtype=F64) * torch.tensor([1.0, 0.5, 2.0], dtype=F64)
    w = torch.rand(40, generator=g, dtype=F64) + 0.1
    return data, w / w.sum()


@pytest.mark.parametrize(
    "schedule", [CondOT(1.0), Cosine(2.0), ImprovedDDPMCosine(1.0), VPLinear(1.0)], ids=repr
)
@pytest.mark.parametrize("frac", [0.05, 0.4, 0.9, 1.0])
def test_exact_velocity_matches_brute_force_loop(cloud, schedule, frac) -> None:
    data, w = cloud
    x = torch.randn(9, 3, generator=torch.Generator().manual_seed(5), dtype=F64) * 1.5
    t = frac * schedule.tau
    v = ExactVelocity(schedule, data, w, query_chunk=4, data_chunk=7)(t, x)
    ref = brute_force_velocity(schedule, data.numpy(), w.numpy(), t, x.numpy())
    assert np.allclose(v.numpy(), ref, rtol=1e-9, atol=1e-9)


def test_exact_velocity_at_t0_is_dm_times_nearest_point(cloud) -> None:
    data, w = cloud
    sched = Cosine(1.0)
    x = data[:5] + 1e-3
    v = ExactVelocity(sched, data, w)(0.0, x)
    assert torch.allclose(v, float(sched(0.0).d_m_t) * data[:5], atol=1e-15)
    v_cond = ExactVelocity(CondOT(2.0), data, w)(0.0, x)
    assert torch.allclose(v_cond, -0.5 * data[:5], atol=1e-15)


def test_exact_velocity_posterior_mean_at_noise_end_is_data_mean(cloud) -> None:
    data, w = cloud
    x = torch.randn(6, 3, dtype=F64)
    ybar = ExactVelocity(CondOT(), data, w).posterior_mean(1.0, x)
    assert torch.allclose(ybar, (w @ data).expand(6, 3), atol=1e-13)


def test_chunked_matches_unchunked_and_float32_follows_input() -> None:
    g = torch.Generator().manual_seed(11)
    data = torch.randn(1000, 2, generator=g, dtype=F64)
    x = torch.randn(200, 2, generator=g, dtype=F64)
    one_block = ExactVelocity(Cosine(), data, query_chunk=10**6, data_chunk=10**6)
    small = ExactVelocity(Cosine(), data, query_chunk=37, data_chunk=101)
    for t in (0.01, 0.3, 0.99):
        assert torch.allclose(one_block(t, x), small(t, x), rtol=1e-11, atol=1e-11)
        assert torch.allclose(
            one_block.log_density(t, x), small.log_density(t, x), rtol=1e-12, atol=1e-11
        )
    v32 = small(0.3, x.float())
    assert v32.dtype == torch.float32
    assert torch.allclose(v32.double(), small(0.3, x), atol=1e-4)
    as_numpy = small(0.3, x.numpy())
    assert isinstance(as_numpy, np.ndarray) and np.allclose(as_numpy, small(0.3, x).numpy())


def test_chunked_exact_velocity_runs_in_bounded_memory() -> None:
    """2e4 data x 2e3 queries: a dense logit matrix alone is 320 MB in float64."""
    script = textwrap.dedent(
        """
        import resource, torch
        from ottokit.flowmatch import ExactVelocity, CondOT
        g = torch.Generator().manual_seed(0)
        data = torch.randn(20000, 2, generator=g, dtype=torch.float64)
        x = torch.randn(2000, 2, generator=g, dtype=torch.float64)
        v = ExactVelocity(CondOT(), data, query_chunk=256, data_chunk=1024)
        v(0.5, x[:10])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = v(0.5, x)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert torch.isfinite(out).all()
        print((after - before) / 1024)
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    growth_mb = float(res.stdout.strip().splitlines()[-1])
    assert growth_mb < 40.0, f"peak memory grew by {growth_mb:.1f} MB"


def _continuity_residual(log_density, velocity, t: float, x: torch.Tensor, ht=1e-4, hx=1e-4):
    """d_t P + div(nu P) by central differences, and the scale of d_t P."""
    p = lambda tt, xx: torch.exp(log_density(tt, xx))
    dpdt = (p(t + ht, x) - p(t - ht, x)) / (2 * ht)
    div = torch.zeros_like(dpdt)
    for j in range(x.shape[1]):
        e = torch.zeros_like(x)
        e[:, j] = hx
        flux_up = velocity(t, x + e)[:, j] * p(t, x + e)
        flux_dn = velocity(t, x - e)[:, j] * p(t, x - e)
        div += (flux_up - flux_dn) / (2 * hx)
    return dpdt + div, dpdt.abs().max()


@pytest.mark.parametrize("schedule", [CondOT(1.0), Cosine(1.5), VPLinear(1.0)], ids=repr)
def test_gaussian_mixture_velocity_satisfies_continuity_equation_1d(schedule) -> None:
    vel = GaussianMixtureVelocity(
        schedule, [[-1.0], [0.5], [2.0]], [[[0.3]], [[0.05]], [[0.6]]], [0.3, 0.2, 0.5]
    )
    x = torch.linspace(-4, 4, 161, dtype=F64)[:, None]
    for frac in (0.1, 0.5, 0.9):
        res, scale = _continuity_residual(vel.log_density, vel, frac * schedule.tau, x)
        assert res.abs().max() <= 1e-6 * scale


def test_gaussian_mixture_velocity_satisfies_continuity_equation_2d() -> None:
    means = [[-1.0, 0.5], [1.5, -0.5]]
    covs = [[[0.4, 0.15], [0.15, 0.2]], [[0.1, -0.05], [-0.05, 0.3]]]
    vel = GaussianMixtureVelocity(Cosine(1.0), means, covs, [0.4, 0.6])
    g = torch.linspace(-3, 3, 25, dtype=F64)
    x = torch.cartesian_prod(g, g)
    for t in (0.2, 0.6):
        res, scale = _continuity_residual(vel.log_density, vel, t, x)
        assert res.abs().max() <= 1e-6 * scale


def test_empirical_exact_velocity_satisfies_continuity_equation(cloud) -> None:
    data, w = cloud
    vel = ExactVelocity(CondOT(), data[:, :2], w)
    g = torch.linspace(-3, 3, 15, dtype=F64)
    x = torch.cartesian_prod(g, g)
    res, scale = _continuity_residual(vel.log_density, vel, 0.5, x)
    assert res.abs().max() <= 1e-6 * scale


@pytest.mark.parametrize("kind", ["mixture", "empirical"])
def test_marginal_velocity_is_a_gradient_field(cloud, kind) -> None:
    """Tweedie: nu_t = grad[(d_m/2m)|x|^2 + (d_m sigma^2/m - sigma d_sigma) log P_t], so the
    Jacobian of nu_t is symmetric."""
    if kind == "mixture":
        vel = GaussianMixtureVelocity(
            CondOT(),
            [[-1.0, 0.5], [1.5, -0.5]],
            [[[0.4, 0.15], [0.15, 0.2]], [[0.1, -0.05], [-0.05, 0.3]]],
        )
    else:
        vel = ExactVelocity(Cosine(), cloud[0][:, :2], cloud[1])
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(2), dtype=F64).requires_grad_(
        True
    )
    for t in (0.3, 0.7):
        v = vel(torch.tensor(t, dtype=F64), x)
        # rows are independent, so the gradient of a column sum is that row's Jacobian row
        rows = [torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0] for i in range(2)]
        jac = torch.stack(rows, dim=1)  # (n, i, j) = d nu_i / d x_j
        assert jac.abs().max() > 0.1
        assert (jac - jac.transpose(1, 2)).abs().max() < 1e-10 * (1 + jac.abs().max())


def test_single_gaussian_velocity_closed_form() -> None:
    """Data N(0, s0^2): P_t = N(0, s_t^2), s_t^2 = m^2 s0^2 + sigma^2, nu = (d s_t / s_t) x."""
    s0, t = 0.5, 0.3
    vel = GaussianMixtureVelocity(CondOT(), [[0.0]], [[[s0**2]]])
    x = torch.linspace(-2, 2, 9, dtype=F64)[:, None]
    m, s = 1 - t, t
    s2 = m**2 * s0**2 + s**2
    assert torch.allclose(vel(t, x), (-m * s0**2 + s) / s2 * x, atol=1e-14)
    assert torch.allclose(
        vel.log_density(t, x)[:, 0] if vel.log_density(t, x).ndim > 1 else vel.log_density(t, x),
        -0.5 * x[:, 0] ** 2 / s2 - 0.5 * math.log(2 * math.pi * s2),
        atol=1e-14,
    )


def test_gaussian_mixture_velocity_refuses_infinite_schedule_rates() -> None:
    vel = GaussianMixtureVelocity(VPLinear(), [[0.0]], [[[1.0]]])
    with pytest.raises(ValueError, match="not finite"):
        vel(0.0, torch.zeros(2, 1, dtype=F64))


def _gaussianity(x: torch.Tensor, seed: int) -> tuple[float, float, float, float]:
    """|mean|, |cov - I|, W1(x, fresh N(0, I)) and the W1 of two fresh N(0, I) samples."""
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(x.shape, generator=g, dtype=F64).numpy()
    z2 = torch.randn(x.shape, generator=g, dtype=F64).numpy()
    xn = x.numpy()
    n = x.shape[0]
    w = ot.unif(n)
    w1 = ot.emd2(w, w, ot.dist(xn, z1, metric="euclidean"), numItermax=10**7)
    w1_ref = ot.emd2(w, w, ot.dist(z2, z1, metric="euclidean"), numItermax=10**7)
    cov = np.cov(xn.T)
    return (
        float(np.abs(xn.mean(0)).max()),
        float(np.abs(cov - np.eye(x.shape[1])).max()),
        w1,
        w1_ref,
    )


def test_empirical_exact_velocity_transports_data_to_noise() -> None:
    """From P_t0 (t0 = 0.02 tau; P_0 itself is atomic), the exact flow ends at N(0, I)."""
    g = torch.Generator().manual_seed(7)
    angle = torch.rand(64, generator=g, dtype=F64) * 2 * math.pi
    data = torch.stack([2 * torch.cos(angle), torch.sin(angle)], dim=1) + 1.0  # an off-centre ring
    vel = ExactVelocity(CondOT(), data)
    x0 = vel.sample_marginal(0.02, 1000, g)
    end = sample_forward(vel, x0, 1.0, t_start=0.02, n_steps=60).final
    mean_err, cov_err, w1, w1_ref = _gaussianity(end, seed=1)
    assert mean_err < 0.1 and cov_err < 0.15
    assert w1 < 1.5 * w1_ref
    # and backwards: noise lands on the data points
    back = sample_backward(
        vel, torch.randn(300, 2, generator=g, dtype=F64), 1.0, t_end=0.0, n_steps=200
    ).final
    nearest = torch.cdist(back, data).min(dim=1).values
    assert float(nearest.max()) < 1e-2


def test_gaussian_mixture_flow_from_data_ends_at_noise_and_round_trips() -> None:
    mix = GaussianMixture([[-2.0, 0.0], [2.0, 1.0]], [np.eye(2) * 0.1, np.eye(2) * 0.3])
    vel = GaussianMixtureVelocity.of(Cosine(), mix)
    g = torch.Generator().manual_seed(4)
    y = mix.sample(1000, g)
    fwd = sample_forward(vel, y, 1.0, n_steps=100, save_at=[0, 1 / 3, 2 / 3, 1])
    assert isinstance(fwd, SampleTrajectory) and fwd.n_evals == 4 * 100
    assert fwd.x.shape == (4, 1000, 2)
    assert torch.allclose(fwd.t, torch.tensor([0.0, 0.33, 0.67, 1.0], dtype=F64))
    mean_err, cov_err, w1, w1_ref = _gaussianity(fwd.final, seed=2)
    assert mean_err < 0.1 and cov_err < 0.15 and w1 < 1.5 * w1_ref
    back = sample_backward(vel, fwd.final, 1.0, n_steps=100).final
    assert torch.allclose(back, y, atol=1e-6)


def test_rk4_converges_at_fourth_order_and_matches_dopri5() -> None:
    vel = GaussianMixtureVelocity(Cosine(), [[-1.0], [1.0]], [[[0.1]], [[0.2]]])
    x0 = torch.linspace(-2, 2, 21, dtype=F64)[:, None]
    ref = integrate(vel, x0, 1.0, 0.0, method="dopri5", rtol=1e-10, atol=1e-10).final
    errors = [
        float((integrate(vel, x0, 1.0, 0.0, n_steps=n).final - ref).abs().max())
        for n in (8, 16, 32, 64)
    ]
    order = np.polyfit(np.log([8, 16, 32, 64]), np.log(errors), 1)[0]
    assert -4.6 < order < -3.4, errors
    assert errors[-1] < 1e-6


def test_integrate_rejects_bad_options() -> None:
    vel = GaussianMixtureVelocity(CondOT(), [[0.0]], [[[1.0]]])
    x = torch.zeros(3, 1, dtype=F64)
    with pytest.raises(ValueError, match="method"):
        integrate(vel, x, 0.0, 1.0, method="rk45")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="save_at"):
        integrate(vel, x, 0.0, 1.0, save_at=[0.5, 0.2])
    with pytest.raises(ValueError, match="x0"):
        integrate(vel, x[:, 0], 0.0, 1.0)


def test_monotone_velocity_1d_is_the_exact_ot_path() -> None:
    """For N(0, 1/4) data T(y) = 2y; for a mixture the flow's time-tau map is T = Phi^-1 o F."""
    half = MonotoneVelocity1D(GaussianMixture.one_d([0.0], [0.5]))
    y = torch.linspace(-2, 2, 11, dtype=F64)[:, None]
    assert torch.allclose(half.transport_map(y), 2 * y, atol=1e-12)
    assert math.isclose(half.w2_squared(), 0.25, rel_tol=1e-10)
    x = torch.linspace(-3, 3, 13, dtype=F64)[:, None]
    assert torch.allclose(half(0.3, x), x / 1.3, atol=1e-12)  # x = (1 + s) y, nu = y

    mix = GaussianMixture.one_d([-1.5, 1.0], [0.4, 0.6], [0.4, 0.6])
    mono = MonotoneVelocity1D(mix, tau=2.0)
    y = mix.sample(400, torch.Generator().manual_seed(0))
    end = sample_forward(mono, y, 2.0, n_steps=100).final
    assert torch.allclose(end, mono.transport_map(y), atol=1e-6)
    assert torch.allclose(mono.flow(2.0, y), mono.transport_map(y), atol=0)


def test_the_ot_path_guards_fire(monkeypatch) -> None:
    """A plan that is not a permutation (POT stopped before a vertex) cannot pair points one to
    one, and a transport map that returns NaN (a broken quantile table) cannot be inverted: both
    are refused, not turned into a pairing or a velocity."""
    import ottokit.flowmatch.otpath as otpath_module

    g = torch.Generator().manual_seed(9)
    data = torch.randn(6, 2, generator=g, dtype=F64)
    noise = torch.randn(6, 2, generator=g, dtype=F64)
    monkeypatch.setattr(otpath_module, "exact_plan", lambda a, b: np.full((6, 6), 1.0 / 36))
    with pytest.raises(RuntimeError, match="^the exact OT plan is not a permutation; cannot pair "
                                           "points one to one$"):
        ot_couple(data, noise)
    mono = MonotoneVelocity1D(GaussianMixture.one_d([-0.6, 0.6], [0.3, 0.3]))
    monkeypatch.setattr(mono, "_map", lambda y: np.full_like(y, np.nan))
    with pytest.raises(RuntimeError, match="^inverting the OT interpolation did not converge$"):
        mono.inverse_map(np.array([0.3]))
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"^z must be finite \(no NaN or inf\); z\[1\] = nan$"):
        mono.inverse_map(np.array([0.3, np.nan]))
    median = mono.inverse_map(torch.tensor([0.0], dtype=F64))  # a symmetric mixture's median
    assert isinstance(median, torch.Tensor) and abs(float(median[0])) < 1e-12


def test_ot_couple_is_the_exact_optimal_pairing() -> None:
    g = torch.Generator().manual_seed(9)
    data = torch.randn(300, 2, generator=g, dtype=F64) * 0.5 + 1
    noise = torch.randn(300, 2, generator=g, dtype=F64)
    pairs = ot_couple(data, noise)
    w = ot.unif(300)
    exact = ot.emd2(w, w, ot.dist(data.numpy(), noise.numpy()), numItermax=10**7)
    assert math.isclose(pairs.w2_squared, exact, rel_tol=1e-10)
    assert torch.equal(pairs.noise.sort(dim=0).values, noise.sort(dim=0).values)  # a permutation
    assert pairs.w2_squared < float(((data - noise) ** 2).sum(1).mean())
    one_d = ot_couple(data[:, :1], noise[:, :1])
    assert one_d.method == "sorted"
    exact_1d = ot.emd2(w, w, ot.dist(data[:, :1].numpy(), noise[:, :1].numpy()), numItermax=10**7)
    assert math.isclose(one_d.w2_squared, exact_1d, rel_tol=1e-10)


def test_kernel_regression_approaches_the_exact_velocity() -> None:
    g = torch.Generator().manual_seed(21)
    mix = GaussianMixture.one_d([0.0], [0.5])
    data, noise = mix.sample(20000, g), torch.randn(20000, 1, generator=g, dtype=F64)
    x = torch.linspace(-1.0, 1.0, 41, dtype=F64)[:, None]
    # independent pairs: u given x_t is noisy, so about 20000 * h * p(x) pairs average it
    indep = KernelVelocity(Cosine(), data, noise, bandwidth=0.1)
    exact = GaussianMixtureVelocity.of(Cosine(), mix)
    for t in (0.3, 0.7):
        err = indep(t, x) - exact(t, x)
        assert float(err.pow(2).mean().sqrt()) < 0.04 and float(err.abs().max()) < 0.08
    # OT pairs: u is a function of x_t, only the kernel's smoothing remains
    ot_vel = ot_path_velocity(data, noise, bandwidth=0.05)
    mono = MonotoneVelocity1D(mix)
    for t in (0.2, 0.5, 0.8):
        assert float((ot_vel(t, x) - mono(t, x)).abs().max()) < 0.06
    assert ot_vel.bandwidth_at(0.5) == 0.05
    scott = KernelVelocity(CondOT(), data[:500], noise[:500])
    assert 0 < scott.bandwidth_at(0.5) < 1


class TestBadInput:
    def test_data_with_nan_or_wrong_shape(self) -> None:
        bad = torch.zeros(5, 2)
        bad[3, 1] = float("nan")
        with pytest.raises(ValueError, match=r"data.*finite"):
            ExactVelocity(CondOT(), bad)
        with pytest.raises(ValueError, match=r"data.*\(n, d\)"):
            ExactVelocity(CondOT(), torch.zeros(5))
        with pytest.raises(ValueError, match=r"data.*\(n, d\)"):
            ExactVelocity(CondOT(), torch.zeros(0, 2))

    def test_mismatched_dimensions(self) -> None:
        vel = ExactVelocity(CondOT(), torch.zeros(5, 2))
        with pytest.raises(ValueError, match="mismatched dimensions"):
            vel(0.5, torch.zeros(3, 3))
        with pytest.raises(ValueError, match="mismatched dimensions"):
            GaussianMixtureVelocity(CondOT(), [[0.0, 0.0]], [np.eye(2)])(0.5, np.zeros((2, 1)))
        with pytest.raises(ValueError, match="covs must have shape"):
            GaussianMixtureVelocity(CondOT(), [[0.0, 0.0]], [np.eye(3)])
        with pytest.raises(ValueError, match="mismatched dimensions"):
            KernelVelocity(CondOT(), torch.zeros(4, 2), torch.zeros(4, 3))
        with pytest.raises(ValueError, match="as many points"):
            KernelVelocity(CondOT(), torch.zeros(4, 2), torch.zeros(5, 2))

    def test_covariance_not_positive_definite_or_not_symmetric(self) -> None:
        with pytest.raises(ValueError, match=r"covs\[1\] is not positive definite"):
            GaussianMixtureVelocity(
                CondOT(), [[0.0, 0.0], [1.0, 1.0]], [np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]
            )
        with pytest.raises(ValueError, match=r"covs\[0\] is not symmetric"):
            GaussianMixture([[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]])

    @pytest.mark.parametrize(
        ("weights", "message"),
        [
            ([0.5, 0.7, -0.2], "non-negative"),
            ([0.3, 0.3, 0.3], "sum to 1"),
            ([0.5, float("nan"), 0.5], "finite"),
        ],
    )
    def test_bad_weights(self, weights, message) -> None:
        with pytest.raises(ValueError, match=rf"weights.*{message}|{message}.*weights"):
            ExactVelocity(CondOT(), torch.zeros(3, 1), weights)
        with pytest.raises(ValueError, match=rf"weights.*{message}|{message}.*weights"):
            GaussianMixture([[0.0], [1.0], [2.0]], [[[1.0]]] * 3, weights)

    def test_time_outside_interval_and_non_scalar_time(self) -> None:
        vel = ExactVelocity(CondOT(2.0), torch.zeros(3, 1))
        with pytest.raises(ValueError, match=r"t must lie in \[0, tau\]"):
            vel(2.5, torch.zeros(2, 1))
        with pytest.raises(ValueError, match="single time"):
            vel(torch.tensor([0.1, 0.2]), torch.zeros(2, 1))
        with pytest.raises(ValueError, match="t must lie"):
            MonotoneVelocity1D(GaussianMixture.one_d([0.0], [1.0]))(1.5, torch.zeros(2, 1))

    def test_unknown_coupling_and_non_schedule(self) -> None:
        with pytest.raises(ValueError, match="coupling"):
            KernelVelocity(CondOT(), torch.zeros(3, 1), torch.zeros(3, 1), coupling="sinkhorn")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Schedule"):
            ExactVelocity("cosine", torch.zeros(3, 1))  # type: ignore[arg-type]


def test_hopeless_velocity_blocks_and_ot_couplings_are_refused(monkeypatch) -> None:
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "1G")
    g = torch.Generator().manual_seed(0)
    data = torch.randn(100_000, 2, generator=g, dtype=F64)
    huge = ExactVelocity(Cosine(), data, query_chunk=10**6, data_chunk=10**6)
    with pytest.raises(MemoryEstimateError, match="100000 queries x 100000 data points"):
        huge(0.5, data)
    small = ExactVelocity(Cosine(), data[:1000], query_chunk=10**6, data_chunk=10**6)
    assert small(0.5, data[:10]).shape == (10, 2)  # the block is 10 x 1000, whatever the knobs
    with pytest.raises(MemoryEstimateError, match="exact OT between 100000 and 100000 points"):
        KernelVelocity(Cosine(), data, data.flip(0), coupling="ot")


def _rotational_log_density(vel: RotationalVelocity):
    """log P_t(x) of sum_k w_k N(M_t y_k, c_t I), written out from the closed-form moments."""

    def log_density(t: float, x: torch.Tensor) -> torch.Tensor:
        m = torch.as_tensor(vel.process.propagator(t), dtype=F64)
        c = float(vel.process.variance(t))
        centers = vel.data @ m.T
        sq = ((x[:, None, :] - centers[None]) ** 2).sum(-1)
        log_terms = torch.log(vel.weights)[None] - sq / (2 * c) - math.log(2 * math.pi * c)
        return torch.logsumexp(log_terms, dim=1)

    return log_density


@pytest.mark.parametrize("g", [0.0, 3.0])
def test_rotational_velocity_satisfies_continuity_equation(cloud, g: float) -> None:
    vel = RotationalVelocity(RotationalDiffusion(h=1.1, g=g, T_fin=0.5), cloud[0][:, :2], cloud[1])
    grid = torch.linspace(-2.0, 2.0, 11, dtype=F64)
    x = torch.cartesian_prod(grid, grid)
    for t in (0.4, 0.8):
        res, scale = _continuity_residual(_rotational_log_density(vel), vel, t, x, ht=1e-5)
        assert res.abs().max() <= 1e-5 * scale
    np.testing.assert_allclose(
        vel.sample_marginal(0.6, 20_000, torch.Generator().manual_seed(0)).mean(0).numpy(),
        (vel.weights @ vel.data @ torch.as_tensor(vel.process.propagator(0.6)).T).numpy(),
        atol=0.02,
    )


def test_rotational_velocity_is_a_gradient_only_without_rotation(cloud) -> None:
    """g = 0: a potential force, nu_t is a gradient (symmetric Jacobian); g != 0: the curl of
    nu_t is 2 G_t far from the data, where the score is that of one Gaussian."""
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(2), dtype=F64)

    def curl(vel: RotationalVelocity) -> torch.Tensor:
        xr = x.clone().requires_grad_(True)
        v = vel(0.5, xr)
        rows = [torch.autograd.grad(v[:, i].sum(), xr, retain_graph=True)[0] for i in range(2)]
        return rows[1][:, 0] - rows[0][:, 1]  # d nu_y / dx - d nu_x / dy

    flat = RotationalVelocity(RotationalDiffusion(g=0.0), cloud[0][:, :2], cloud[1])
    assert curl(flat).abs().max() < 1e-10
    process = RotationalDiffusion(g=3.0)
    assert curl(RotationalVelocity(process, cloud[0][:, :2], cloud[1])).abs().min() > 0.1
    # one data point: P_t is one isotropic Gaussian, its score is a gradient, curl = 2 G_t
    single = curl(RotationalVelocity(process, cloud[0][:1, :2]))
    np.testing.assert_allclose(single.numpy(), 2 * process.G(0.5), rtol=1e-12)


def _cloud(n: int = 12, dim: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _explode(t, x):
    return torch.where(t > 0.5, torch.full_like(x, math.inf), -x)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ExactVelocity(CondOT(), _cloud(), sharded=1), TypeError, "sharded must be True"),
        (
            lambda: ExactVelocity(CondOT(), _cloud(2), [-0.25, 1.25], sharded=True),
            ValueError,
            r"weights must be non-negative; weights\[0\] = -0.25",
        ),
        (
            lambda: ExactVelocity(CondOT(), torch.zeros(0, 2, dtype=torch.float64), sharded=True),
            ValueError,
            "data is empty on every rank",
        ),
        (
            lambda: ExactVelocity(CondOT(), _cloud(), sharded=True)(
                0.5, _cloud(3, seed=1).requires_grad_(True)
            ),
            ValueError,
            "does not propagate gradients",
        ),
        (
            lambda: ExactVelocity(CondOT(), _cloud()).log_density(0.0, _cloud(3)),
            ValueError,
            "P_0 is the empirical measure",
        ),
        (
            lambda: RotationalVelocity(RotationalDiffusion(g=3.0), _cloud()).posterior_mean(
                0.0, _cloud(3)
            ),
            ValueError,
            "the posterior is singular at t = 0",
        ),
        (
            lambda: KernelVelocity(VPLinear(), _cloud(), _cloud(seed=2)).pairs(0.0),
            ValueError,
            "derivatives are not finite at t = 0",
        ),
        (
            lambda: MonotoneVelocity1D(GaussianMixture(_cloud(2), torch.eye(2).repeat(2, 1, 1))),
            ValueError,
            "data must be a 1-D GaussianMixture, got dim 2",
        ),
        (lambda: ot_couple(_cloud(5), _cloud(4)), ValueError, "as many points, got 5 and 4"),
        (
            lambda: integrate(lambda t, x: -x, _cloud(3), 0.0, 1.0, save_at=[0.0, 1.5]),
            ValueError,
            r"save_at must be fractions in \[0, 1\]",
        ),
        (lambda: integrate(lambda t, x: -x, _cloud(3), 0.3, 0.3), ValueError, "t0 and t1 must"),
        (
            lambda: integrate(_explode, _cloud(3), 0.0, 1.0, n_steps=4),
            FloatingPointError,
            "the integration produced NaN or inf",
        ),
    ],
    ids=[
        "sharded-int", "sharded-negative-weight", "sharded-empty", "sharded-grad",
        "log-density-t0", "rotational-t0", "kernel-vp-t0", "monotone-2d", "ot-couple-sizes",
        "save-at", "t0-equals-t1", "integrate-inf",
    ],
)
def test_bad_input_names_what_is_wrong(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: GaussianMixture.one_d([0.0, 1.0], [1.0]), "means and stds must be vectors"),
        (lambda: GaussianMixture.one_d([0.0, 1.0], [1.0, 0.0]), "stds must be positive and fin"),
        (lambda: Uniform([0.0, 0.0], [1.0]), "low and high must have one length"),
    ],
    ids=["one-d-lengths", "one-d-zero-std", "uniform-lengths"],
)
def test_distributions_name_what_is_wrong(call, match):
    with pytest.raises(ValueError, match=match):
        call()


class _ThreadRanks:
    """A world of ``n`` ranks as ``n`` threads of this process, with the collectives of
    ``ottokit.distributed`` that the sharded ExactVelocity calls (exchange, then reduce)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.barrier = threading.Barrier(n, timeout=60)
        self.slots: list[torch.Tensor | None] = [None] * n
        self.local = threading.local()

    def rank(self) -> int:
        return self.local.rank

    def world_size(self) -> int:
        return self.n

    def _exchange(self, t):
        self.slots[self.rank()] = t.detach().clone() if isinstance(t, torch.Tensor) else t
        self.barrier.wait()
        got = list(self.slots)
        self.barrier.wait()
        return got

    def all_reduce(self, t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        both = torch.stack(self._exchange(t))
        return {"sum": both.sum(0), "max": both.amax(0), "min": both.amin(0)}[op]

    def all_gather_cat(self, t: torch.Tensor) -> torch.Tensor:
        return torch.cat(self._exchange(t))

    def broadcast(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        return self._exchange(t)[src].clone()

    def check_same(self, values) -> None:
        every = self._exchange({k: torch.as_tensor(v) for k, v in values.items()})
        names = [
            k for k, v in values.items()
            if not all(torch.equal(torch.as_tensor(v), other[k]) for other in every)
        ]
        if names:
            raise ValueError(f"{', '.join(names)} must be the same on every rank")

    def run(self, monkeypatch, fn) -> list:
        for name in ("rank", "world_size", "all_reduce", "all_gather_cat", "broadcast",
                     "check_same"):
            monkeypatch.setattr(velocity_module, name, getattr(self, name))
        monkeypatch.setattr(common_module, "all_reduce", self.all_reduce)  # the weights' sum
        results: list = [None] * self.n
        errors: list[BaseException] = []

        def work(r: int) -> None:
            self.local.rank = r
            try:
                results[r] = fn(r)
            except BaseException as err:  # noqa: BLE001 - re-raised below
                errors.append(err)
                self.barrier.abort()

        threads = [threading.Thread(target=work, args=(r,)) for r in range(self.n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise errors[0]
        return results


def _two_clusters() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A near cluster (rank 0's share) and one 40 away (rank 1's), unequal weights."""
    g = torch.Generator().manual_seed(11)
    near = torch.randn(29, 2, generator=g, dtype=F64) * torch.tensor([1.0, 0.5], dtype=F64)
    far = 0.3 * torch.randn(8, 2, generator=g, dtype=F64) + 40.0
    w = torch.rand(37, generator=g, dtype=F64) + 0.05
    x = torch.cat([
        1.5 * torch.randn(12, 2, generator=g, dtype=F64),
        far[:3] + 0.1 * torch.randn(3, 2, generator=g, dtype=F64),
        torch.tensor([[20.0, 20.0], [1.0, 39.0]], dtype=F64),
    ])
    return torch.cat([near, far]), w / w.sum(), x


@pytest.mark.parametrize("case", ["weighted", "uniform-uneven", "uniform-empty-share"])
def test_sharded_velocity_on_two_ranks_equals_the_whole_data_set(monkeypatch, case) -> None:
    """The max-stabilised combination of the shares' log-sum-exp and posterior means gives
    the unsharded velocity, posterior mean and log-density, at t = 0 (arg-max) and t = tau
    too, also where one share's weight underflows to 0 (t = 0.02, far queries)."""
    data, w, x = _two_clusters()
    if case == "weighted":
        shares = [(data[:29], w[:29]), (data[29:], w[29:])]
        ref = ExactVelocity(CondOT(1.7), data, w)
    elif case == "uniform-uneven":  # 29 and 8 points: each weighs 1/37, not 1/(2 n_rank)
        shares = [(data[:29], None), (data[29:], None)]
        ref = ExactVelocity(CondOT(1.7), data)
    else:
        shares = [(data, None), (data[:0], None)]
        ref = ExactVelocity(CondOT(1.7), data)
    times = (0.0, 0.02 * 1.7, 0.85, 1.7)

    def evaluate(r: int) -> dict:
        v = ExactVelocity(CondOT(1.7), *shares[r], sharded=True, data_chunk=7)
        out = {f"v{t}": v(t, x) for t in times}
        out.update({f"ybar{t}": v.posterior_mean(t, x) for t in times})
        out.update({f"logp{t}": v.log_density(t, x) for t in times[1:]})
        return out

    for got in _ThreadRanks(2).run(monkeypatch, evaluate):
        for key, value in got.items():
            t = float(key.lstrip("vybarlogp"))
            name = key.rstrip("0123456789.")
            expect = getattr(ref, {"v": "__call__", "ybar": "posterior_mean",
                                   "logp": "log_density"}[name])(t, x)
            torch.testing.assert_close(value, expect, rtol=1e-12, atol=1e-12 * (1 + 40 * 40))


@pytest.mark.parametrize(("t", "shift", "name"), [((0.5, 0.5), (0.0, 1.0), "x"),
                                                  ((0.5, 0.25), (0.0, 0.0), "t")])
def test_sharded_evaluation_names_what_differs_between_ranks(monkeypatch, t, shift, name):
    data, w, x = _two_clusters()

    def evaluate(r: int) -> None:
        v = ExactVelocity(CondOT(), data[r::2], w[r::2], sharded=True)
        v(t[r], x + shift[r])

    with pytest.raises(ValueError, match=rf"^{name} must be the same on every rank"):
        _ThreadRanks(2).run(monkeypatch, evaluate)


def test_unsharded_velocity_on_every_rank_is_the_plain_one(monkeypatch) -> None:
    """Without sharded=True each rank holds the whole data set: no collective combines them."""
    data, w, x = _two_clusters()
    ref = ExactVelocity(Cosine(), data, w)
    got = _ThreadRanks(2).run(
        monkeypatch, lambda r: ExactVelocity(Cosine(), data, w).log_density(0.5, x)
    )
    for g in got:
        torch.testing.assert_close(g, ref.log_density(0.5, x), rtol=1e-14, atol=1e-14)


def test_sharded_data_of_different_dimensions_is_refused(monkeypatch) -> None:
    with pytest.raises(ValueError, match=r"^the data's dimension d must be the same on every"):
        _ThreadRanks(2).run(
            monkeypatch, lambda r: ExactVelocity(CondOT(), _cloud(4, dim=2 + r), sharded=True)
        )


def test_sharded_arg_max_ties_go_to_the_lowest_rank(monkeypatch) -> None:
    """At t = 0 a query equidistant from a point on each rank gets rank 0's point, the one
    the unsharded arg-max takes (the first of the concatenated data set)."""
    a, b = torch.tensor([[1.0, 0.0]], dtype=F64), torch.tensor([[-1.0, 0.0]], dtype=F64)
    x = torch.zeros(1, 2, dtype=F64)
    got = _ThreadRanks(2).run(
        monkeypatch,
        lambda r: ExactVelocity(CondOT(), a if r == 0 else b, [0.5], sharded=True)
        .posterior_mean(0.0, x),
    )
    expect = ExactVelocity(CondOT(), torch.cat([a, b])).posterior_mean(0.0, x)
    assert torch.equal(expect, a)
    assert all(torch.equal(g, a) for g in got)


@pytest.mark.parametrize("t", [0.0, 0.6])
def test_sharded_draws_agree_across_ranks_and_follow_the_weights(monkeypatch, t) -> None:
    """Every rank returns the same draws of m_t y + sigma_t eps, y a data point drawn with
    its weight wherever it lives (chi-square), eps standard normal."""
    data, w, _ = _two_clusters()
    n = 6000
    def draw(r: int) -> torch.Tensor:
        v = ExactVelocity(
            CondOT(1.0), data[:29] if r == 0 else data[29:], w[:29] if r == 0 else w[29:],
            sharded=True,
        )
        return v.sample_marginal(t, n, torch.Generator().manual_seed(5 + r))

    draws = _ThreadRanks(2).run(monkeypatch, draw)
    assert torch.equal(draws[0], draws[1]) and draws[0].dtype == F64
    assert torch.equal(_ThreadRanks(2).run(monkeypatch, draw)[0], draws[0])  # the seeds decide
    m, sigma = 1.0 - t, t
    if t == 0.0:
        hit = (draws[0][:, None, :] == data[None, :, :]).all(dim=2)
        assert torch.equal(hit.sum(dim=1), torch.ones(n, dtype=torch.int64))
        assert stats.chisquare(hit.sum(dim=0).numpy(), n * w.numpy()).pvalue > 1e-3
    else:
        # the far cluster (|y| ~ 57) is told from the near one by its norm
        far = draws[0].norm(dim=1) > 0.5 * m * 40 * math.sqrt(2)
        p = float(w[29:].sum())
        assert abs(float(far.double().mean()) - p) < 5 * math.sqrt(p * (1 - p) / n)
        mean = float(w @ data[:, 0]) * m
        assert abs(float(draws[0][:, 0].mean()) - mean) < 5 * math.sqrt(
            float(w @ (m * data[:, 0] - mean) ** 2) + sigma**2
        ) / math.sqrt(n)


def test_gaussian_mixture_density_and_responsibilities_against_scipy() -> None:
    """P_t = sum_k w_k N(m mu_k, m^2 s_k^2 + sigma^2) and pi_k = w_k N_k / P_t (scipy.stats)."""
    mu, sd, w = np.array([-1.0, 0.5, 2.0]), np.array([0.5, 0.2, 0.8]), np.array([0.3, 0.2, 0.5])
    sched = Cosine(2.0)
    vel = GaussianMixtureVelocity(sched, mu[:, None], (sd**2)[:, None, None], w)
    t, x = 0.7, np.linspace(-3.0, 3.0, 13)
    out = sched(t)
    scale = np.sqrt(out.m_t**2 * sd**2 + out.sigma_t**2)
    terms = w * stats.norm.pdf(x[:, None], out.m_t * mu, scale)  # (n, K)
    dens = vel.density(t, x[:, None])
    assert isinstance(dens, np.ndarray)
    np.testing.assert_allclose(dens, terms.sum(axis=1), rtol=1e-12)
    dens_t = vel.density(torch.tensor(t, dtype=F64), torch.as_tensor(x[:, None]))
    np.testing.assert_allclose(dens_t.numpy(), terms.sum(axis=1), rtol=1e-12)
    resp = vel.responsibilities(t, x[:, None])
    assert resp.shape == (13, 3)
    np.testing.assert_allclose(resp, terms / terms.sum(axis=1, keepdims=True), rtol=1e-11)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: ExactVelocity(CondOT(), _cloud(), query_chunk=0),
            ValueError,
            r"^query_chunk must be a positive integer, got 0 \(e\.g\. query_chunk=1024\)$",
        ),
        (
            lambda: ExactVelocity(CondOT(), _cloud(), data_chunk=0),
            ValueError,
            r"^data_chunk must be a positive integer, got 0 \(e\.g\. data_chunk=4096\)$",
        ),
        (
            lambda: RotationalVelocity(RotationalDiffusion(g=3.0), _cloud(), query_chunk=0),
            ValueError,
            r"^query_chunk must be a positive integer",
        ),
        (
            lambda: RotationalVelocity(RotationalDiffusion(g=3.0), _cloud(), data_chunk=0),
            ValueError,
            r"^data_chunk must be a positive integer",
        ),
        (lambda: ExactVelocity("x", _cloud()), TypeError, r"^schedule must be an ottokit"),
        (
            lambda: ExactVelocity(CondOT(), _cloud(), sharded=1),
            TypeError,
            r"^sharded must be True or False, got int$",
        ),
        (
            lambda: ExactVelocity(CondOT(), torch.zeros(0, 2, dtype=F64)),
            ValueError,
            r"^data must have shape \(n, d\) with n, d >= 1, got \(0, 2\)$",
        ),
        (
            lambda: ExactVelocity(CondOT(), torch.zeros(0, 2, dtype=F64), sharded=True),
            ValueError,
            r"^data is empty on every rank; give the ranks the data set$",
        ),
        (
            lambda: GaussianMixtureVelocity("x", [[0.0]], [[[1.0]]]),
            TypeError,
            r"^schedule must be an ottokit",
        ),
        (lambda: RotationalVelocity("x", _cloud()), TypeError, r"^process must be an ottokit"),
        (
            lambda: ExactVelocity(CondOT(), _cloud())(torch.tensor([0.1, 0.2]), _cloud(3)),
            ValueError,
            r"^t must be a single time",
        ),
        (
            lambda: ExactVelocity(CondOT(), _cloud(), sharded=True)(
                0.5, _cloud(3, seed=1).requires_grad_(True)
            ),
            ValueError,
            r"^a sharded ExactVelocity does not propagate gradients \(its all-reduce detaches "
            r"them\); pass x\.detach\(\) or evaluate under torch\.no_grad\(\)$",
        ),
        (
            lambda: ExactVelocity(CondOT(), _cloud())(0.5, _cloud(3, dim=3)),
            ValueError,
            r"^x has dimension 3, expected 2",
        ),
        (
            lambda: ExactVelocity(
                Custom(lambda t: 1 - t, lambda t: t + t * (1 - t) * torch.abs(t - 0.5) ** 0.5),
                _cloud(),
            )(0.5, _cloud(3)),
            ValueError,
            r"^the schedule's derivatives are not finite at t = 0\.5 \(d_m = -1\.0, "
            r"d_sigma = nan\)",
        ),
        (
            lambda: ExactVelocity(
                Custom(lambda t: 1 - torch.sqrt(t), lambda t: torch.sqrt(t)), _cloud()
            )(0.0, _cloud(3)),
            ValueError,
            r"^the schedule's derivatives are not finite at t = 0 \(d_m = -inf, d_sigma = inf\);"
            r" the velocity is undefined there, evaluate at a slightly later time$",
        ),
    ],
    ids=[
        "query-chunk", "data-chunk", "rot-query-chunk", "rot-data-chunk", "exact-schedule",
        "sharded-int", "data-empty", "sharded-empty",
        "mixture-schedule", "rot-process", "two-times", "sharded-grad", "x-3d",
        "nan-d-sigma-inside", "infinite-d-m-at-t0",
    ],
)
def test_velocity_guards_name_the_argument(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_exact_velocity_at_t0_needs_no_finite_d_sigma() -> None:
    """VP has d_sigma(0) = inf, but x_0 = y carries no noise: nu_0 = d_m(0) ybar_0, finite."""
    data = _cloud(6)
    sched = VPLinear(2.0)
    x = data + 1e-3
    v = ExactVelocity(sched, data)(0.0, x)
    torch.testing.assert_close(v, float(sched(0.0).d_m_t) * data, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("kind", ["exact", "rotational"])
def test_zero_weight_points_are_no_part_of_the_data(kind) -> None:
    """Points of weight 0 change nothing: not the arg-max at t = 0 (even when nearest), not the
    posterior, not the draws; the other weights need not be renormalised by the caller. With
    one data point per block, a block of a 0-weight point alone would have no finite logit."""
    data = _cloud(8)
    w = torch.tensor([0.0, 0.25, 0.0, 0.25, 0.125, 0.125, 0.0, 0.25], dtype=F64)
    keep = w > 0
    x = torch.cat([data[:1] + 1e-3, _cloud(5, seed=3)])  # the first query sits on a 0-weight point
    if kind == "exact":
        full = ExactVelocity(Cosine(), data, w, data_chunk=1)
        sub = ExactVelocity(Cosine(), data[keep], w[keep])
        times = (0.0, 0.3, 1.0)
    else:
        process = RotationalDiffusion(g=3.0)
        full = RotationalVelocity(process, data, w, data_chunk=1)
        sub = RotationalVelocity(process, data[keep], w[keep])
        times = (0.3, 0.9)
    for t in times:
        torch.testing.assert_close(full(t, x), sub(t, x), rtol=1e-13, atol=1e-13)
    draws = full.sample_marginal(0.0, 500, torch.Generator().manual_seed(1))
    hit = (draws[:, None, :] == data[None, :, :]).all(dim=2)
    assert torch.equal(hit.sum(dim=1), torch.ones(500, dtype=torch.int64))
    assert int(hit[:, ~keep].sum()) == 0


def _log_mixture_density(means: np.ndarray, var: float, w: np.ndarray, x: np.ndarray):
    """log sum_k w_k N(x; means_k, var I), brute force over k (scipy.stats)."""
    logs = np.stack([
        math.log(wk) + stats.multivariate_normal(mk, var * np.eye(len(mk))).logpdf(x)
        for mk, wk in zip(means, w, strict=True)
    ])
    return np.logaddexp.reduce(logs, axis=0)


def test_exact_log_density_is_the_smoothed_empirical_measure(cloud) -> None:
    """log P_t(x) = log sum_k w_k N(x; m y_k, sigma^2 I), a distinct value at every query."""
    data, w = cloud
    sched = Cosine(2.0)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(8), dtype=F64)
    for t in (0.1, 1.0, 2.0):
        out = sched(t)
        ref = _log_mixture_density(
            float(out.m_t) * data.numpy(), float(out.sigma_t) ** 2, w.numpy(), x.numpy()
        )
        got = ExactVelocity(sched, data, w, data_chunk=9).log_density(t, x)
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)
        uniform = np.full(len(data), 1 / len(data))
        ref_u = _log_mixture_density(
            float(out.m_t) * data.numpy(), float(out.sigma_t) ** 2, uniform, x.numpy()
        )
        got_u = ExactVelocity(sched, data).log_density(t, x)
        np.testing.assert_allclose(got_u.numpy(), ref_u, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"^P_0 is the empirical measure \(no density\); "
                       r"evaluate at t > 0$"):
        ExactVelocity(sched, data, w).log_density(0.0, x)


def test_mixture_marginal_and_log_density_at_the_data_end() -> None:
    """marginal(t) = sum_k w_k N(m mu_k, m^2 Sigma_k + sigma^2 I) in 2-D with unequal weights;
    at t = 0 the density is the data's, even for VP where the velocity is undefined."""
    means = [[-1.0, 0.5], [1.5, -0.5]]
    covs = [[[0.4, 0.15], [0.15, 0.2]], [[0.1, -0.05], [-0.05, 0.3]]]
    w = [0.3, 0.7]
    vel = GaussianMixtureVelocity(VPLinear(1.5), means, covs, w)
    x = torch.randn(9, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    out = VPLinear(1.5)(0.6)
    marg = vel.marginal(0.6)
    eye = torch.eye(2, dtype=F64)
    expect_covs = out.m_t**2 * torch.tensor(covs, dtype=F64) + out.sigma_t**2 * eye
    torch.testing.assert_close(marg.covs, expect_covs, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(marg.weights, torch.tensor(w, dtype=F64), rtol=0, atol=0)
    torch.testing.assert_close(marg.log_prob(x), vel.log_density(0.6, x), rtol=1e-12, atol=1e-12)
    data_density = GaussianMixture(means, covs, w).log_prob(x)
    torch.testing.assert_close(vel.log_density(0.0, x), data_density, rtol=1e-12, atol=1e-12)


def _rotational_brute_posterior(process, data, w, t, x):
    """E[y | x_t = x] with P(y_k | x) proportional to w_k N(x; M_t y_k, c_t I) (NumPy)."""
    big_m, var = process.propagator(t), float(process.variance(t))
    mean = data @ big_m.T
    logits = np.log(w)[None, :] - ((x[:, None, :] - mean[None, :, :]) ** 2).sum(-1) / (2 * var)
    post = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (post / post.sum(axis=1, keepdims=True)) @ data


def test_rotational_posterior_mean_and_float32_queries(cloud) -> None:
    """The rotated posterior mean against a brute-force softmax; NumPy in, NumPy out; float32
    queries get a float32 velocity close to the float64 one; nu_0(x) = A_0 x."""
    process = RotationalDiffusion(g=3.0)
    data, w = cloud[0][:, :2], cloud[1]
    vel = RotationalVelocity(process, data, w, query_chunk=5, data_chunk=7)
    x = 1.5 * torch.randn(11, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    for t in (0.2, 0.7):
        ref = _rotational_brute_posterior(process, data.numpy(), w.numpy(), t, x.numpy())
        got = vel.posterior_mean(t, x.numpy())
        assert isinstance(got, np.ndarray)
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-11)
    assert isinstance(vel.posterior_mean(0.2, x), torch.Tensor)
    v32 = vel(0.5, x.float())
    assert v32.dtype == torch.float32
    torch.testing.assert_close(v32.double(), vel(0.5, x), rtol=1e-4, atol=1e-4)
    at0 = vel(0.0, x.numpy())
    assert isinstance(at0, np.ndarray)
    np.testing.assert_allclose(at0, x.numpy() @ process.A(0.0).T, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(vel(torch.tensor(0.0, dtype=F64), x.float()),
                               (x @ torch.as_tensor(process.A(0.0)).T).float())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: RotationalVelocity(RotationalDiffusion(g=3.0), _cloud(dim=3)),
         r"^data has dimension 3, expected 2"),
        (lambda: RotationalVelocity(RotationalDiffusion(g=3.0), _cloud())(0.5, _cloud(dim=3)),
         r"^x has dimension 3, expected 2"),
        (lambda: RotationalVelocity(RotationalDiffusion(g=3.0), _cloud()).posterior_mean(
            0.5, _cloud(dim=3)), r"^x has dimension 3, expected 2"),
        (lambda: RotationalVelocity(RotationalDiffusion(g=3.0), _cloud()).posterior_mean(
            0.0, _cloud()), r"^the posterior is singular at t = 0; evaluate at t > 0$"),
    ],
    ids=["data-3d", "call-3d", "posterior-3d", "posterior-t0"],
)
def test_rotational_velocity_is_planar(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_rotational_draws_are_reproducible_and_have_the_marginal_moments(cloud) -> None:
    """x = M_t y + sqrt(c_t) eps: mean M_t E y and covariance M_t Cov(y) M_t^T + c_t I
    (5 standard errors), the same draws for the same generator seed."""
    process = RotationalDiffusion(g=3.0)
    data, w = cloud[0][:, :2], cloud[1]
    vel = RotationalVelocity(process, data, w)
    n, t = 20000, 0.5
    draws = vel.sample_marginal(t, n, torch.Generator().manual_seed(3))
    again = vel.sample_marginal(t, n, torch.Generator().manual_seed(3))
    assert torch.equal(draws, again) and draws.dtype == F64
    other = vel.sample_marginal(t, n, torch.Generator().manual_seed(4))
    assert not torch.equal(draws, other)
    big_m, var = process.propagator(t), float(process.variance(t))
    mean_y = w.numpy() @ data.numpy()
    cov_y = (w.numpy()[:, None] * (data.numpy() - mean_y)).T @ (data.numpy() - mean_y)
    cov = big_m @ cov_y @ big_m.T + var * np.eye(2)
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(draws.numpy().mean(0) - big_m @ mean_y) < 5 * se)
    emp = np.cov(draws.numpy().T)
    assert np.all(np.abs(emp - cov) < 5 * np.sqrt(2.0 / n) * np.sqrt(np.outer(np.diag(cov),
                                                                              np.diag(cov))))


def test_exact_draws_are_reproducible_and_pure_noise_at_tau() -> None:
    """The generator decides the draws; at t = tau (m = cos(pi/2)) they are the noise alone,
    whatever the data (to float64 rounding of m, even for data 1000 away)."""
    near = _cloud(5)
    far = _cloud(5, seed=1) + 1000.0
    g = lambda: torch.Generator().manual_seed(9)
    sched = Cosine(1.3)
    a = ExactVelocity(sched, near).sample_marginal(0.4, 300, g())
    assert torch.equal(a, ExactVelocity(sched, near).sample_marginal(0.4, 300, g()))
    assert not torch.equal(a, ExactVelocity(sched, near).sample_marginal(0.4, 300))
    end_near = ExactVelocity(sched, near).sample_marginal(1.3, 300, g())
    end_far = ExactVelocity(sched, far).sample_marginal(1.3, 300, g())
    torch.testing.assert_close(end_near, end_far, rtol=0, atol=1e-12)
    assert abs(float(end_near.mean())) < 5 / math.sqrt(600)
    f32 = ExactVelocity(sched, near.float()).sample_marginal(0.4, 10, g())
    assert f32.dtype == torch.float32  # the data's dtype


def test_exact_velocity_follows_the_queries_dtype_not_the_times(cloud) -> None:
    """A float32 time with float64 queries is computed in float64 (the queries' dtype), by the
    exact velocity of a data set and of a mixture."""
    data, w = cloud
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    t32 = torch.tensor(0.3, dtype=torch.float32)
    covs = 0.2 * torch.eye(3, dtype=F64).repeat(4, 1, 1)
    mixture = GaussianMixtureVelocity(Cosine(), data[:4], covs, w[:4] / w[:4].sum())
    for vel in (ExactVelocity(Cosine(), data, w), mixture):
        got = vel(t32, x)
        assert got.dtype == F64
        torch.testing.assert_close(got, vel(float(t32), x), rtol=1e-15, atol=1e-15)
    with pytest.raises(ValueError, match=r"^x has dimension 2, expected 3"):
        mixture(0.3, x[:, :2])


def test_mixture_draws_are_reproducible_with_the_marginal_law() -> None:
    """The generator decides the draws; their mean and variance are P_t's; at t = tau they are
    the noise alone whatever the data (to float64 rounding of m, data 1000 away)."""
    g = lambda: torch.Generator().manual_seed(9)
    sched = Cosine(1.3)
    vel = GaussianMixtureVelocity(sched, [[-1.0], [2.0]], [[[0.25]], [[0.5]]], [0.4, 0.6])
    a = vel.sample_marginal(0.4, 20000, g())
    assert torch.equal(a, vel.sample_marginal(0.4, 20000, g())) and a.dtype == F64
    assert not torch.equal(a, vel.sample_marginal(0.4, 20000))
    out = sched(0.4)
    mean = out.m_t * (0.4 * -1.0 + 0.6 * 2.0)
    var = out.m_t**2 * (0.4 * (0.25 + 1.0) + 0.6 * (0.5 + 4.0)) + out.sigma_t**2 - mean**2
    assert abs(float(a.mean()) - mean) < 5 * math.sqrt(var / 20000)
    assert abs(float(a.var()) - var) < 5 * var * math.sqrt(2 / 20000) * 1.5
    far = GaussianMixtureVelocity(sched, [[1000.0]], [[[1.0]]])
    near = GaussianMixtureVelocity(sched, [[0.0]], [[[1.0]]])
    torch.testing.assert_close(far.sample_marginal(1.3, 300, g()),
                               near.sample_marginal(1.3, 300, g()), rtol=0, atol=1e-12)


def test_exact_velocity_at_t0_takes_the_nearest_scaled_point() -> None:
    """At t = 0 with m_0 = 1.25 (allowed within end_atol = 0.25) P_0 is the law of m_0 y: the
    posterior is the point whose m_0 y_k is nearest x, not the y_k nearest x."""
    sched = Custom(lambda t: 1.25 - 1.25 * t, lambda t: t, end_atol=0.25)
    data = torch.tensor([[1.0], [2.0]], dtype=F64)
    x = torch.tensor([[1.6]], dtype=F64)  # |1.6 - 1.25| < |1.6 - 2.5|, but |1.6 - 2| < |1.6 - 1|
    vel = ExactVelocity(sched, data)
    assert torch.equal(vel.posterior_mean(0.0, x), data[:1])
    torch.testing.assert_close(vel(0.0, x), -1.25 * data[:1], rtol=1e-15, atol=0)


def test_weights_near_one_are_normalised_exactly(cloud) -> None:
    """Weights summing to 1 within the accepted 1e-6 are divided by their sum: the density
    is that of the normalised weights."""
    data, w = cloud
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    near = ExactVelocity(Cosine(), data, w * (1 + 5e-7)).log_density(0.5, x)
    torch.testing.assert_close(near, ExactVelocity(Cosine(), data, w).log_density(0.5, x),
                               rtol=1e-14, atol=1e-14)


def test_sharded_draws_with_an_empty_share_and_pure_noise_at_tau(monkeypatch) -> None:
    """A rank holding no data draws nothing itself; at t = tau (m = 0) the draws are
    N(0, I) noise, independent draw by draw."""
    data, _, _ = _two_clusters()
    n = 4000

    def draw(r: int) -> tuple[torch.Tensor, torch.Tensor]:
        v = ExactVelocity(CondOT(1.0), data if r == 0 else data[:0], sharded=True)
        gen = torch.Generator().manual_seed(2 + r)
        return v.sample_marginal(0.0, n, gen), v.sample_marginal(1.0, n, gen)

    (at0, at1), (again0, again1) = _ThreadRanks(2).run(monkeypatch, draw)
    assert torch.equal(at0, again0) and torch.equal(at1, again1)
    hit = (at0[:, None, :] == data[None, :, :]).all(dim=2)
    assert torch.equal(hit.sum(dim=1), torch.ones(n, dtype=torch.int64))
    assert float(at1.mean(0).abs().max()) < 5 / math.sqrt(n)
    assert float((at1.var(0) - 1).abs().max()) < 5 * math.sqrt(2 / n)


def test_mixture_density_is_differentiable_and_responsibilities_follow_the_input() -> None:
    """d P_t / dx = P_t d log P_t / dx (autograd through the density; N(0, s_t^2): -x/s_t^2);
    responsibilities return tensors for tensors, and at t = 0 are the data's, even for VP."""
    vel = GaussianMixtureVelocity(CondOT(), [[0.0]], [[[0.25]]])
    x = torch.linspace(-1.0, 1.0, 5, dtype=F64)[:, None].requires_grad_(True)
    p = vel.density(0.3, x)
    (grad,) = torch.autograd.grad(p.sum(), x)
    s2 = 0.7**2 * 0.25 + 0.3**2
    torch.testing.assert_close(grad[:, 0], -x[:, 0].detach() / s2 * p.detach(), rtol=1e-12,
                               atol=1e-15)
    mix = GaussianMixtureVelocity(VPLinear(), [[-1.0], [1.0]], [[[0.2]], [[0.5]]], [0.3, 0.7])
    xs = torch.linspace(-2.0, 2.0, 7, dtype=F64)[:, None]
    resp = mix.responsibilities(0.0, xs)
    assert isinstance(resp, torch.Tensor) and resp.shape == (7, 2)
    terms = np.array([0.3, 0.7]) * stats.norm.pdf(xs.numpy(), [-1.0, 1.0], np.sqrt([0.2, 0.5]))
    np.testing.assert_allclose(resp.numpy(), terms / terms.sum(1, keepdims=True), rtol=1e-12)
