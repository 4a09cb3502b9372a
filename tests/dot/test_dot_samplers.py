"""The baselines of seed 003 §3.2-3.3: DRS, MH-GAN (with calibration) and DDLS.

Known answers: with G(z) = z, z ~ N(0, 1) (so p_G = N(0, 1)) and the target q = N(mu, s^2),
s < 1, the exact logit D*(x) = log q(x)/p_G(x) is bounded above by D*(x*), x* = mu/(1 - s^2).
Then exact DRS is rejection sampling of q with acceptance 1/M = exp(-D*(x*)), and MH-GAN is an
independence Metropolis-Hastings chain with stationary law q whose acceptance rate at
stationarity is E_{x~q, x'~p_G} min(1, w(x')/w(x)), w = q/p_G. For DDLS with D(G(z)) = a.z and
a N(0, I) prior, the stationary law p_Z exp(D o G) is N(a, I); the unadjusted chain's is
N(a, I/(1 - eps/4)) (Ornstein-Uhlenbeck discretised by Euler-Maruyama).
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from ottokit.dot import (
    ProbabilityOutputWarning,
    calibrate,
    ddls,
    drs,
    drs_acceptance,
    mh_gan,
)
from ottokit.priors import Prior

MU, S = 0.5, 0.8
X_STAR = MU / (1 - S**2)


def log_ratio(x: torch.Tensor) -> torch.Tensor:
    """D*(x) = log N(x; mu, s^2) - log N(x; 0, 1) for x of shape (n, 1)."""
    v = x[:, 0]
    return -((v - MU) ** 2) / (2 * S**2) + v**2 / 2 - math.log(S)


LOG_M = float(log_ratio(torch.tensor([[X_STAR]], dtype=torch.float64)))
IDENTITY = lambda z: z
PRIOR1 = Prior("normal", (1,))


def ks_p(samples: torch.Tensor, loc: float, scale: float) -> float:
    return float(stats.kstest(samples.reshape(-1).numpy(), stats.norm(loc, scale).cdf).pvalue)


def test_drs_exact_with_true_bound_samples_the_target():
    res = drs(
        log_ratio,
        IDENTITY,
        PRIOR1,
        3000,
        mode="exact",
        log_bound=LOG_M,
        seed=0,
        dtype=torch.float64,
    )
    assert res.samples.shape == (3000, 1) and res.n_pilot == 0 and res.n_bound_updates == 0
    assert ks_p(res.samples, MU, S) > 0.01
    raw = torch.randn(3000, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert ks_p(raw, MU, S) < 1e-6  # the test has power: p_G itself is rejected
    rate = 1 / math.exp(LOG_M)  # rejection sampling accepts with probability 1/M
    sd = math.sqrt(rate * (1 - rate) / res.n_proposals)
    assert abs(res.acceptance_rate - rate) < 5 * sd
    assert res.proposals_per_sample == pytest.approx(res.n_proposals / 3000)
    torch.testing.assert_close(res.samples, res.latents)  # G = identity


def test_drs_exact_with_pilot_bound_is_close_to_the_target():
    res = drs(
        log_ratio, IDENTITY, PRIOR1, 2000, mode="exact", n_pilot=20000, seed=2, dtype=torch.float64
    )
    assert res.log_M <= LOG_M + 1e-12 and res.log_M > LOG_M - 0.01  # max of the pilot
    assert ks_p(res.samples, MU, S) > 0.01


def test_drs_acceptance_matches_independent_formula():
    d = torch.tensor([-3.0, -1.0, 0.0, 0.7, 1.0], dtype=torch.float64)
    log_m, gamma, eps = 1.0, -0.4, 1e-6
    dn = d.numpy()
    F = dn - log_m - np.log(1 - np.exp(dn - log_m - eps))
    expected = 1 / (1 + np.exp(-(F - gamma)))
    got = drs_acceptance(d, log_m, mode="shifted", gamma=gamma, eps=eps)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(
        drs_acceptance(d, log_m, mode="exact").numpy(), np.exp(dn - log_m), rtol=1e-12
    )


def test_drs_shifted_gamma_is_the_pilot_percentile():
    n_pilot = 4000
    res = drs(
        log_ratio,
        IDENTITY,
        PRIOR1,
        500,
        n_pilot=n_pilot,
        batch_size=n_pilot,
        percentile=80.0,
        seed=3,
        dtype=torch.float64,
    )
    pilot = PRIOR1.sample(n_pilot, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    d = log_ratio(pilot).numpy()
    log_m = d.max()
    F = d - log_m - np.log(1 - np.exp(d - log_m - 1e-6))
    assert res.gamma == pytest.approx(np.percentile(F, 80.0), rel=1e-10)
    assert res.log_M >= log_m and (res.n_bound_updates > 0 or res.log_M == log_m)
    assert 0 < res.acceptance_rate < 1 and res.samples.shape == (500, 1)
    assert float(res.samples.mean()) > 0.25  # accepted samples lean towards q (mean 0.5)


def _stationary_acceptance(n: int = 2_000_000) -> float:
    rng = np.random.default_rng(123)
    x = rng.normal(MU, S, n)
    xp = rng.normal(0.0, 1.0, n)
    lw = lambda v: -((v - MU) ** 2) / (2 * S**2) + v**2 / 2
    return float(np.minimum(1.0, np.exp(lw(xp) - lw(x))).mean())


def test_mh_gan_from_real_data_stays_at_target_with_the_right_acceptance():
    x_real = MU + S * torch.randn(
        3000, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    res = mh_gan(log_ratio, IDENTITY, PRIOR1, x_real, n_proposals=20, seed=5)
    assert ks_p(res.samples, MU, S) > 0.01
    assert res.acceptance_rate == pytest.approx(_stationary_acceptance(), abs=0.01)
    assert res.n_proposals == 3000 * 20 and res.proposals_per_sample == 20
    moved = ~res.from_real
    torch.testing.assert_close(res.latents[moved], res.samples[moved])
    assert bool(torch.isnan(res.latents[res.from_real]).all())


def test_mh_gan_converges_from_a_wrong_start():
    """Independence sampler with w <= M: TV after K steps <= (1 - 1/M)^K (here < 1e-14)."""
    start = torch.full((3000, 1), -2.0, dtype=torch.float64)
    res = mh_gan(log_ratio, IDENTITY, PRIOR1, start, n_proposals=40, seed=6)
    assert ks_p(res.samples, MU, S) > 0.01
    assert not bool(res.from_real.any())


def test_calibrated_mh_gan_recovers_target_from_miscalibrated_D():
    """D_raw = 2 D* + 1: logistic calibration must map it back to D* (slope 1/2, offset -1/2)."""
    gen = torch.Generator().manual_seed(7)
    D_raw = lambda x: 2.0 * log_ratio(x) + 1.0
    real = MU + S * torch.randn(20000, 1, generator=gen, dtype=torch.float64)
    fake = torch.randn(10000, 1, generator=gen, dtype=torch.float64)
    cal = calibrate(D_raw(real), D_raw(fake), "logistic")
    assert cal.coef == pytest.approx(0.5, abs=0.05)
    assert cal.intercept == pytest.approx(-0.5, abs=0.05)
    start = torch.full((2000, 1), 2.0, dtype=torch.float64)
    res = mh_gan(D_raw, IDENTITY, PRIOR1, start, n_proposals=40, calibrator=cal, seed=8)
    assert ks_p(res.samples, MU, S) > 0.01
    uncal = mh_gan(D_raw, IDENTITY, PRIOR1, start, n_proposals=40, seed=8)
    assert ks_p(uncal.samples, MU, S) < 1e-4  # without calibration the chain targets p_G w^2
    # the wrapped calibrated D is the log density ratio, differentiable in x
    wrapped = cal.wrap(D_raw)
    x = torch.linspace(-1.0, 2.0, 7, dtype=torch.float64)[:, None].requires_grad_(True)
    out = wrapped(x)
    torch.testing.assert_close(out, cal.coef * D_raw(x) + cal.intercept)
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_true,) = torch.autograd.grad(log_ratio(x).sum(), x)
    torch.testing.assert_close(g, g_true, atol=0.1, rtol=0.05)
    with pytest.raises(TypeError, match="callable"):
        cal.wrap(3.0)


def test_isotonic_calibration_is_monotone_and_close_to_the_true_odds():
    gen = torch.Generator().manual_seed(9)
    D_raw = lambda x: 2.0 * log_ratio(x) + 1.0
    real = MU + S * torch.randn(20000, 1, generator=gen, dtype=torch.float64)
    fake = torch.randn(20000, 1, generator=gen, dtype=torch.float64)
    cal = calibrate(D_raw(real), D_raw(fake), "isotonic")
    grid = torch.linspace(-1.0, 1.5, 60, dtype=torch.float64)[:, None]
    raw = D_raw(grid)
    order = torch.argsort(raw)
    prob = cal(raw)[order]
    assert bool((prob[1:] >= prob[:-1]).all())  # order-preserving in the raw logit
    err = (cal.logit(raw) - log_ratio(grid)).abs()
    assert float(err.max()) < 0.3


A = torch.tensor([1.0, -0.5], dtype=torch.float64)
LINEAR_D = lambda x: x @ A  # D(G(z)) = a.z with G = identity: stationary N(a, I)


def test_ddls_mala_leaves_the_stationary_law_invariant():
    gen = torch.Generator().manual_seed(10)
    z0 = A + torch.randn(3000, 2, generator=gen, dtype=torch.float64)
    res = ddls(LINEAR_D, IDENTITY, z0, step_size=0.5, n_steps=30, mala=True, seed=11)
    for j in range(2):
        assert ks_p(res.latents[:, j], float(A[j]), 1.0) > 0.01
    assert 0.5 < res.acceptance_rate < 1.0
    assert res.n_grad_evals == 31 and res.energy.shape == (31,)


def test_ddls_mala_converges_from_a_point_and_ula_has_its_known_bias():
    eps = 0.4
    z0 = torch.zeros(4000, 2, dtype=torch.float64)
    mala = ddls(LINEAR_D, IDENTITY, z0, step_size=eps, n_steps=120, mala=True, seed=12)
    ula = ddls(LINEAR_D, IDENTITY, z0, step_size=eps, n_steps=120, seed=12)
    for j in range(2):
        assert ks_p(mala.latents[:, j], float(A[j]), 1.0) > 0.01
    var_mala = float(mala.latents.var(0).mean())
    var_ula = float(ula.latents.var(0).mean())
    assert var_mala == pytest.approx(1.0, abs=0.06)
    assert var_ula == pytest.approx(1 / (1 - eps / 4), abs=0.06)  # 1.111: ULA's Euler bias
    torch.testing.assert_close(ula.latents.mean(0), A, atol=0.08, rtol=0)
    assert ula.acceptance_rate == 1.0


def test_ddls_uniform_prior_with_zero_D_keeps_uniform():
    zero = lambda x: torch.zeros(x.shape[0], dtype=x.dtype)
    z0 = (
        2 * torch.rand(3000, 2, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
        - 1
    )
    unif = stats.uniform(-1, 2).cdf
    for mala in (True, False):
        res = ddls(zero, IDENTITY, z0, 0.3, 20, prior="uniform", mala=mala, seed=14)
        assert float(res.latents.abs().max()) <= 1.0
        for j in range(2):
            assert stats.kstest(res.latents[:, j].numpy(), unif).pvalue > 0.01
        assert not torch.equal(res.latents, z0)


def test_sampler_errors():
    x1 = torch.zeros(5, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        drs(log_ratio, IDENTITY, PRIOR1, 0)
    with pytest.raises(ValueError, match=r"percentile must be a number in \(0, 100\)"):
        drs(log_ratio, IDENTITY, PRIOR1, 10, percentile=100)
    with pytest.raises(ValueError, match="eps must be a positive number"):
        drs(log_ratio, IDENTITY, PRIOR1, 10, eps=0.0)
    with pytest.raises(ValueError, match="unknown mode"):
        drs(log_ratio, IDENTITY, PRIOR1, 10, mode="soft")
    with pytest.warns(UserWarning, match="max_proposals"):
        short = drs(
            log_ratio,
            IDENTITY,
            PRIOR1,
            100,
            mode="exact",
            log_bound=LOG_M,
            max_proposals=50,
            seed=0,
            dtype=torch.float64,
        )
    assert short.samples.shape[0] < 100 and short.n_proposals == 50
    with pytest.raises(ValueError, match=r"x_real has per-sample shape \(2,\).*G outputs \(1,\)"):
        mh_gan(log_ratio, IDENTITY, PRIOR1, torch.zeros(4, 2, dtype=torch.float64), 3)
    with pytest.raises(ValueError, match="empty batch"):
        mh_gan(log_ratio, IDENTITY, PRIOR1, torch.zeros(0, 1), 3)
    with pytest.raises(ValueError, match="unknown method"):
        calibrate([0.0, 1.0], [0.0, -1.0], "platt")
    with pytest.raises(ValueError, match="at least 2 logits"):
        calibrate([0.0], [0.0, -1.0])
    with pytest.raises(ValueError, match="step_size must be a positive number"):
        ddls(log_ratio, IDENTITY, x1, 0.0, 5)
    with pytest.raises(ValueError, match="outside the uniform prior's support"):
        ddls(log_ratio, IDENTITY, x1 + 2.0, 0.1, 5, prior="uniform")
    with pytest.raises(ValueError, match="empty batch"):
        ddls(log_ratio, IDENTITY, torch.zeros(0, 1), 0.1, 5)


def test_calibrate_and_mh_gan_name_what_is_wrong():
    real = np.linspace(-1.0, 2.0, 8)
    with pytest.raises(ValueError, match="fake_logits must be finite"):
        calibrate(real, np.r_[real[:-1] - 1.0, np.nan])
    D = torch.nn.Linear(2, 1).double()
    x_real = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match="calibrator must be a Calibrator, a callable"):
        mh_gan(D, lambda z: z, "normal", x_real, 4, calibrator="logistic", latent_dim=2)


def test_drs_acceptance_with_a_larger_eps_and_logits_above_the_bound():
    """Below the bound: Azadi's F with eps = 0.1 and gamma = 0.3. Above it (a logit larger than
    the D_M passed): exact mode accepts surely, and both modes stay finite and monotone in D."""
    log_m, gamma, eps = 1.0, 0.3, 0.1
    below = torch.tensor([-3.0, -1.0, 0.0, 0.9], dtype=torch.float64)
    dn = below.numpy()
    F = dn - log_m - np.log(1 - np.exp(dn - log_m - eps))
    got = drs_acceptance(below, log_m, mode="shifted", gamma=gamma, eps=eps)
    np.testing.assert_allclose(got.numpy(), 1 / (1 + np.exp(-(F - gamma))), rtol=1e-12)
    d = torch.tensor([-2.0, 0.5, 1.0, 1.2, 1.5, 3.0], dtype=torch.float64)
    exact = drs_acceptance(d, log_m, mode="exact")
    np.testing.assert_allclose(exact.numpy(), np.minimum(1.0, np.exp(d.numpy() - log_m)),
                               rtol=1e-12)
    for mode in ("exact", "shifted"):
        p = drs_acceptance(d, log_m, mode=mode, gamma=gamma, eps=eps)
        assert bool(torch.isfinite(p).all()) and bool(((p >= 0) & (p <= 1)).all())
        assert bool((p[1:] >= p[:-1]).all())


def test_ddls_uniform_prior_reflects_at_the_faces():
    """One ULA step with a drift (eps/2) grad D much larger than the noise sqrt(eps): the
    proposal z0 + drift is folded into [-1, 1] by mirror reflection, 2.5 -> -0.5,
    -1.25 -> -0.75 and 5.5 -> 0.5 (three reflections); MALA rejects every such proposal."""
    eps = 1e-8
    drift = torch.tensor([2.5, -1.25, 5.5], dtype=torch.float64)
    c = 2 * drift / eps
    D = lambda x: x @ c
    z0 = torch.zeros(40, 3, dtype=torch.float64)
    ula = ddls(D, IDENTITY, z0, eps, 1, prior="uniform", seed=15)
    expected = torch.tensor([-0.5, -0.75, 0.5], dtype=torch.float64).expand(40, 3)
    torch.testing.assert_close(ula.latents, expected, rtol=0, atol=1e-3)
    mala = ddls(D, IDENTITY, z0, eps, 3, prior="uniform", mala=True, seed=15)
    assert mala.acceptance_rate == 0.0
    torch.testing.assert_close(mala.latents, z0, rtol=0, atol=0)


def test_drs_acceptance_defaults_are_azadis_shifted_rule():
    """Default: shifted mode, gamma = 0 (acceptance 1/2 where F = 0), eps = 1e-6."""
    d = torch.tensor([-3.0, -1.0, 0.0, 0.7], dtype=torch.float64)
    log_m = 1.0
    dn = d.numpy()
    F = dn - log_m - np.log(1 - np.exp(dn - log_m - 1e-6))
    np.testing.assert_allclose(drs_acceptance(d, log_m).numpy(), 1 / (1 + np.exp(-F)), rtol=1e-12)
    with pytest.raises(ValueError, match="unknown mode 'soft'"):
        drs_acceptance(d, log_m, mode="soft")
    with pytest.raises(TypeError, match="logits must be a torch.Tensor, got list"):
        drs_acceptance([0.0, 1.0], log_m)
    with pytest.raises(ValueError, match=r"log_M must be a number, got nan"):
        drs_acceptance(d, math.nan)


def test_mh_gan_with_a_calibration_callable_is_the_chain_of_the_calibrated_logit():
    """A callable calibrator s = (D_raw - 1)/2 undoes D_raw = 2 D* + 1: the same chain as D*."""
    D_raw = lambda x: 2.0 * log_ratio(x) + 1.0
    start = torch.full((500, 1), 2.0, dtype=torch.float64)
    cal = mh_gan(D_raw, IDENTITY, PRIOR1, start, n_proposals=10, seed=9,
                 calibrator=lambda d: (d - 1.0) / 2.0)
    true = mh_gan(log_ratio, IDENTITY, PRIOR1, start, n_proposals=10, seed=9)
    torch.testing.assert_close(cal.samples, true.samples, rtol=0, atol=0)
    assert cal.acceptance_rate == true.acceptance_rate and 0 < cal.acceptance_rate < 1


def test_mh_gan_checks_the_state_shape_on_the_first_proposal():
    with pytest.raises(ValueError, match=r"x_real has per-sample shape \(2,\).*G outputs \(1,\)"):
        mh_gan(log_ratio, IDENTITY, PRIOR1, torch.zeros(4, 2, dtype=torch.float64), 1)


def test_mh_gan_default_chain_length_and_its_guard():
    """K = 640 proposals per chain by default (Turner et al.); K must be at least 1."""
    x_real = torch.zeros(2, 1, dtype=torch.float64)
    res = mh_gan(log_ratio, IDENTITY, PRIOR1, x_real, seed=10)
    assert res.proposals_per_sample == 640.0 and res.n_proposals == 2 * 640
    assert not bool(res.from_real.any())  # (1 - 1/M)^640 of staying put: nil
    with pytest.raises(ValueError, match="n_proposals must be a positive integer"):
        mh_gan(log_ratio, IDENTITY, PRIOR1, x_real, 0)


def test_mh_gan_seed_reproduces_the_chain_and_the_latent_size_comes_from_G():
    """The same seed gives the same chain, another seed another one; a Linear generator's
    input size is the latent size when the prior is named without latent_dim."""
    x_real = torch.zeros(50, 1, dtype=torch.float64)
    runs = [mh_gan(log_ratio, IDENTITY, PRIOR1, x_real, 5, seed=s) for s in (11, 11, 12)]
    torch.testing.assert_close(runs[0].samples, runs[1].samples, rtol=0, atol=0)
    assert not torch.equal(runs[0].samples, runs[2].samples)
    G = torch.nn.Linear(3, 1).double()
    res = mh_gan(log_ratio, G, "normal", x_real, 5, seed=13)
    assert res.latents.shape == (50, 3)
    named = mh_gan(log_ratio, IDENTITY, "normal", x_real, 5, seed=11, latent_dim=1)
    torch.testing.assert_close(named.samples, runs[0].samples, rtol=0, atol=0)


def test_mh_gan_names_its_bad_arguments():
    with pytest.raises(ValueError, match="x_real is an empty batch"):
        mh_gan(log_ratio, IDENTITY, PRIOR1, torch.zeros(0, 1), 3)
    message = r"^calibrator must be a Calibrator, a callable logits -> log-odds, or None$"
    with pytest.raises(TypeError, match=message):
        mh_gan(log_ratio, IDENTITY, PRIOR1, torch.zeros(2, 1), 3, calibrator=2.0)


def test_mh_gan_names_real_data_that_D_cannot_take():
    D = torch.nn.Linear(2, 1).double()
    message = r"x_real has per-sample shape \(3,\) but D expects \(2,\)"
    with pytest.raises(ValueError, match=message):
        mh_gan(D, lambda z: z, PRIOR1, torch.zeros(4, 3, dtype=torch.float64), 2)


def test_mh_gan_names_generated_samples_that_D_cannot_take():
    """x_real chains into D but G's samples do not (G returns float32 for a float64 D): the
    error names G's output, not the real data."""
    D = torch.nn.Linear(1, 1).double()
    G = lambda z: z.float()
    with pytest.raises(ValueError, match=r"^G's output has per-sample shape \(1,\) but D expects"):
        mh_gan(D, G, PRIOR1, torch.zeros(4, 1, dtype=torch.float64), 2, seed=0)


def test_mh_gan_probes_D_before_calling_it_a_probability():
    """A logit D with values in [0, 1] on the real batch, unbounded far from it: no warning
    (a sigmoid D, bounded everywhere, does warn)."""
    D = lambda x: 0.5 + 0.05 * x[:, 0]
    x_real = torch.linspace(-1.0, 1.0, 16, dtype=torch.float64)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        mh_gan(D, IDENTITY, PRIOR1, x_real, 2, seed=0)
    with pytest.warns(ProbabilityOutputWarning):
        mh_gan(lambda x: torch.sigmoid(x[:, 0]), IDENTITY, PRIOR1, x_real, 2, seed=0)


def test_mh_gan_acceptance_rate_counts_moves_exactly():
    """Constant D: alpha = 1, every proposal accepted; real logits 1e6 above every proposal's:
    alpha = exp(-1e6), none accepted and the chains keep the real data."""
    x_real = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64)[:, None]
    flat = mh_gan(lambda x: torch.zeros(x.shape[0], dtype=x.dtype), IDENTITY, PRIOR1, x_real, 4,
                  seed=1)
    assert flat.acceptance_rate == 1.0 and not bool(flat.from_real.any())
    moved = flat.latents[:, 0]
    assert bool((moved.float().double() != moved).any())  # float64 draws of the prior
    far = mh_gan(lambda x: x[:, 0], IDENTITY, PRIOR1, x_real + 1e6, 4, seed=1)
    assert far.acceptance_rate == 0.0 and bool(far.from_real.all())
    torch.testing.assert_close(far.samples, x_real + 1e6, rtol=0, atol=0)


def test_mh_gan_wall_time_is_the_elapsed_time():
    t0 = time.perf_counter()
    res = mh_gan(lambda x: x[:, 0], IDENTITY, PRIOR1, torch.zeros(4, 1, dtype=torch.float64), 3,
                 seed=0)
    elapsed = time.perf_counter() - t0
    assert 0.0 < res.wall_time <= elapsed


def test_ddls_guards_name_the_argument():
    D = lambda x: x[:, 0]
    with pytest.raises(ValueError, match=r"^z0 is an empty batch"):
        ddls(D, IDENTITY, torch.zeros(0, 1), 0.1, 5)
    with pytest.raises(ValueError, match=r"^z0\[0\] lies outside the uniform prior's support"):
        ddls(D, IDENTITY, torch.full((2, 1), 2.0), 0.1, 5, prior="uniform")
    with pytest.raises(ValueError, match=r"^n_steps must be a non-negative integer, got -1$"):
        ddls(D, IDENTITY, torch.zeros(2, 1), 0.1, -1)
    with pytest.raises(ValueError, match=r"^step_size must be a positive number, got -0\.1$"):
        ddls(D, IDENTITY, torch.zeros(2, 1), -0.1, 1)


@pytest.mark.parametrize("mala", [False, True])
def test_ddls_energy_history_is_the_closed_form(mala):
    """E(z) = |z|^2/2 - D(G(z)) under the normal prior, averaged over the chains, before the
    first step and after each; with no step the start is returned with acceptance 1."""
    z0 = torch.randn(7, 2, generator=torch.Generator().manual_seed(30), dtype=torch.float64)
    energy = lambda z: float((0.5 * (z**2).sum(1) - LINEAR_D(z)).mean())
    res = ddls(LINEAR_D, IDENTITY, z0, 0.3, 2, mala=mala, seed=31)
    assert res.energy.shape == (3,) and res.n_grad_evals == 3 and res.step_size == 0.3
    assert float(res.energy[0]) == pytest.approx(energy(z0), rel=1e-12)
    assert float(res.energy[-1]) == pytest.approx(energy(res.latents), rel=1e-12)
    torch.testing.assert_close(res.samples, res.latents, rtol=0, atol=0)  # G = identity
    still = ddls(LINEAR_D, IDENTITY, z0, 0.3, 0, mala=mala, seed=31)
    torch.testing.assert_close(still.latents, z0, rtol=0, atol=0)
    assert still.acceptance_rate == 1.0 and still.energy.shape == (1,)
    assert float(still.energy[0]) == pytest.approx(energy(z0), rel=1e-12)
    uniform = ddls(LINEAR_D, IDENTITY, 0.5 * z0.clamp(-1, 1), 0.3, 0, prior="uniform")
    assert float(uniform.energy[0]) == pytest.approx(
        float(-LINEAR_D(0.5 * z0.clamp(-1, 1)).mean()), rel=1e-12)  # no prior term


def test_ddls_noise_is_drawn_in_the_latents_dtype():
    """D = 0, z0 = 0, eps = 1/4: one ULA step is z1 = sqrt(eps) xi = xi / 2, so the noise is
    read off exactly; float64 latents get float64 noise (not float32 values), and its law is
    N(0, 1)."""
    zero = lambda x: torch.zeros(x.shape[0], dtype=x.dtype)
    res = ddls(zero, IDENTITY, torch.zeros(2000, 1, dtype=torch.float64), 0.25, 1, seed=32)
    xi = 2.0 * res.latents[:, 0]
    assert res.latents.dtype == torch.float64
    assert bool((xi.float().double() != xi).any())
    assert ks_p(xi, 0.0, 1.0) > 0.01


def test_ddls_wall_time_is_the_elapsed_time():
    t0 = time.perf_counter()
    res = ddls(LINEAR_D, IDENTITY, torch.zeros(4, 2, dtype=torch.float64), 0.1, 2, seed=0)
    elapsed = time.perf_counter() - t0
    assert 0.0 < res.wall_time <= elapsed


def _drs_reference(n_samples, *, mode, percentile, eps, n_pilot, log_bound, batch_size,
                   max_proposals, seed):
    """Azadi's algorithm written out on the toy (G = identity, D = D*), numpy formulas for F
    and the acceptance, the proposals and uniforms read from the same seeded stream."""
    gen = torch.Generator().manual_seed(seed)
    draw = lambda n: PRIOR1.sample(n, generator=gen, dtype=torch.float64)
    F = lambda d, m: d - m - np.log(1 - np.exp(np.minimum(d - m, 0.0) - eps))
    gamma, used = None, 0
    if mode == "shifted" or log_bound is None:
        pilot = np.concatenate([log_ratio(draw(min(batch_size, n_pilot - i))).numpy()
                                for i in range(0, n_pilot, batch_size)])
        used = n_pilot
        log_m = float(pilot.max()) if log_bound is None else log_bound
        if mode == "shifted":
            gamma = float(np.percentile(F(pilot, log_m), percentile))
    else:
        log_m = log_bound
    kept, n_prop, n_upd = [], 0, 0
    while sum(map(len, kept)) < n_samples and n_prop < max_proposals:
        b = min(batch_size, max_proposals - n_prop)
        z = draw(b)
        d = log_ratio(z).numpy()
        n_prop += b
        if d.max() > log_m:
            log_m, n_upd = float(d.max()), n_upd + 1
        if mode == "exact":
            p = np.exp(np.minimum(d - log_m, 0.0))
        else:
            p = 1 / (1 + np.exp(-(F(d, log_m) - gamma)))
        u = torch.rand(b, generator=gen, dtype=torch.float64).numpy()
        kept.append(z[torch.from_numpy(u < p)])
    acc = torch.cat(kept)
    return dict(samples=acc[:n_samples], n_accepted=len(acc), n_proposals=n_prop, n_pilot=used,
                log_M=log_m, gamma=gamma, n_bound_updates=n_upd)


@pytest.mark.parametrize(
    "kw",
    [
        dict(mode="shifted", percentile=70.0, eps=0.1, n_pilot=50, log_bound=None, batch_size=16,
             max_proposals=10_000),
        dict(mode="shifted", percentile=90.0, eps=1e-3, n_pilot=40, log_bound=LOG_M + 0.5,
             batch_size=64, max_proposals=10_000),
        dict(mode="exact", percentile=95.0, eps=0.5, n_pilot=3, log_bound=None, batch_size=5,
             max_proposals=10_000),
        dict(mode="exact", percentile=95.0, eps=1e-6, n_pilot=10, log_bound=LOG_M, batch_size=1,
             max_proposals=10_000),
    ],
    ids=["pilot-in-batches", "shifted-with-bound", "exact-small-pilot", "one-per-batch"],
)
def test_drs_matches_the_algorithm_written_out(kw):
    """Pilot in several batches (the last one short), a bound raised by later logits, eps and
    percentile away from their defaults (exact mode ignores eps: p = exp(D - D_M), not
    Azadi's sigmoid(F) that tends to it as eps -> 0), a given bound in shifted mode (used for
    F, a pilot still drawn for gamma): every field equals the reference's, and a run that gets
    all its samples does not warn."""
    ref = _drs_reference(60, seed=33, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = drs(log_ratio, IDENTITY, PRIOR1, 60, seed=33, dtype=torch.float64, **kw)
    torch.testing.assert_close(res.samples, ref["samples"], rtol=0, atol=0)
    torch.testing.assert_close(res.latents, ref["samples"], rtol=0, atol=0)
    assert res.n_proposals == ref["n_proposals"] and res.n_pilot == ref["n_pilot"]
    assert res.acceptance_rate == ref["n_accepted"] / ref["n_proposals"]
    assert res.proposals_per_sample == (ref["n_pilot"] + ref["n_proposals"]) / 60
    assert res.log_M == ref["log_M"] and res.n_bound_updates == ref["n_bound_updates"]
    assert res.mode == kw["mode"]
    if ref["gamma"] is None:
        assert res.gamma is None
    else:
        assert res.gamma == pytest.approx(ref["gamma"], rel=1e-12)


def test_drs_defaults_are_azadis_and_max_proposals_is_1000_per_sample():
    """Defaults: shifted mode, the 95th percentile, eps 1e-6, a 10,000-proposal pilot in
    batches of 1024. With a bound far above every logit (exact mode) nothing is accepted: the
    default budget of 1000 proposals per wanted sample runs out with a warning and an empty
    (0, 1) result."""
    default = drs(log_ratio, IDENTITY, PRIOR1, 40, seed=34, dtype=torch.float64)
    ref = _drs_reference(40, mode="shifted", percentile=95.0, eps=1e-6, n_pilot=10_000,
                         log_bound=None, batch_size=1024, max_proposals=40_000, seed=34)
    torch.testing.assert_close(default.samples, ref["samples"], rtol=0, atol=0)
    assert default.n_pilot == 10_000 and default.gamma == pytest.approx(ref["gamma"], rel=1e-12)
    message = (r"^DRS accepted 0 of 2 samples within max_proposals=2000; raise max_proposals or "
               r"lower the percentile$")
    with pytest.warns(UserWarning, match=message):
        none = drs(log_ratio, IDENTITY, PRIOR1, 2, mode="exact", log_bound=LOG_M + 50.0, seed=35,
                   dtype=torch.float64)
    assert none.samples.shape == (0, 1) and none.latents.shape == (0, 1)
    assert none.samples.dtype == torch.float64 and none.latents.dtype == torch.float64
    assert none.n_proposals == 2000 and none.acceptance_rate == 0.0 and none.n_pilot == 0
    assert none.proposals_per_sample == 2000.0 and none.log_M == LOG_M + 50.0


def test_drs_guards_name_the_argument():
    for kw, message in [
        (dict(n_pilot=0), r"^n_pilot must be a positive integer, got 0$"),
        (dict(batch_size=0), r"^batch_size must be a positive integer, got 0$"),
        (dict(max_proposals=0), r"^max_proposals must be a positive integer, got 0$"),
        (dict(log_bound=math.nan), r"^log_bound must be a number, got nan"),
        (dict(percentile=0.0), r"^percentile must be a number in \(0, 100\), got 0; Azadi et al. "
                               r"use 95$"),
        (dict(eps=-1.0), r"^eps must be a positive number, got -1$"),
    ]:
        with pytest.raises(ValueError, match=message):
            drs(log_ratio, IDENTITY, PRIOR1, 3, **kw)
    with pytest.raises(ValueError, match=r"^n_samples must be a positive integer, got 0$"):
        drs(log_ratio, IDENTITY, PRIOR1, 0)
    G = torch.nn.Linear(1, 2).double()
    with pytest.raises(ValueError, match=r"^G's output has per-sample shape \(2,\) but D expects"):
        drs(torch.nn.Linear(3, 1).double(), G, PRIOR1, 3, seed=0)


def test_drs_wall_time_is_the_elapsed_time():
    t0 = time.perf_counter()
    res = drs(log_ratio, IDENTITY, PRIOR1, 3, n_pilot=10, seed=0, dtype=torch.float64)
    elapsed = time.perf_counter() - t0
    assert 0.0 < res.wall_time <= elapsed


def test_logistic_calibration_is_balanced_platt_scaling():
    """Equal class weights whatever the counts: the fit equals scikit-learn's
    class_weight="balanced" logistic regression (weights n / (2 n_class)), and the calibrated
    probability is sigmoid(coef d + intercept)."""
    from sklearn.linear_model import LogisticRegression

    gen = torch.Generator().manual_seed(36)
    real = MU + S * torch.randn(30, 1, generator=gen, dtype=torch.float64)
    fake = torch.randn(90, 1, generator=gen, dtype=torch.float64)
    r, f = log_ratio(real), log_ratio(fake)
    cal = calibrate(r, f[:, None])  # a (n, 1) column is a vector of logits too
    x = torch.cat([r, f]).numpy()[:, None]
    y = np.r_[np.ones(30), np.zeros(90)]
    ref = LogisticRegression(C=1e6, class_weight="balanced", max_iter=1000, tol=1e-10).fit(x, y)
    assert cal.method == "logistic"
    # lbfgs stops at its default tol 1e-4 in calibrate; unbalanced weights would move the
    # intercept by log(30/90) = -1.1
    assert cal.coef == pytest.approx(float(ref.coef_[0, 0]), abs=2e-3)
    assert cal.intercept == pytest.approx(float(ref.intercept_[0]), abs=2e-3)
    d = torch.linspace(-2.0, 1.0, 5, dtype=torch.float64)
    torch.testing.assert_close(cal(d), torch.sigmoid(cal.coef * d + cal.intercept))
    np.testing.assert_allclose(cal.model.predict_proba(d.numpy()[:, None])[:, 1], cal(d).numpy(),
                               rtol=1e-12)  # the fitted estimator is kept


def test_isotonic_calibration_clips_outside_the_fitted_range():
    """Separated classes: the isotonic map is 0 below and 1 above the fitted logits; outside
    their range it keeps the boundary value, and the log-odds are clipped at
    +-log((1 - 1e-6)/1e-6). The output keeps the input's shape and dtype."""
    cal = calibrate(np.linspace(0.5, 1.0, 6), np.linspace(-1.0, -0.5, 6), "isotonic")
    d = torch.tensor([[-5.0, -0.75, 0.75], [5.0, 0.6, -0.6]], dtype=torch.float32)
    out = cal.logit(d)
    big = math.log((1 - 1e-6) / 1e-6)
    expected = torch.tensor([[-big, -big, big], [big, big, -big]], dtype=torch.float32)
    assert out.shape == (2, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=0)
    assert cal.coef is None and cal.intercept is None and cal.method == "isotonic"


def test_calibration_guards_name_the_argument():
    with pytest.raises(ValueError, match=r"^real_logits must be a vector of at least 2 logits, "
                                         r"got shape \(1, 2\)$"):
        calibrate([[1.0, 2.0]], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"^fake_logits must be a vector of at least 2 logits, "
                                         r"got shape \(1,\)$"):
        calibrate([1.0, 2.0], [0.0])
    with pytest.raises(ValueError, match=r"^real_logits must be finite$"):
        calibrate([1.0, math.inf], [0.0, 1.0])
    with pytest.raises(TypeError, match=r"^real_logits must be an array of real numbers"):
        calibrate("abc", [0.0, 1.0])
    cal = calibrate([1.0, 2.0, 0.5], [0.0, -1.0, 0.7])
    with pytest.raises(TypeError, match=r"^discriminator must be a callable x -> logits, got "
                                        r"float$"):
        cal.wrap(3.0)
    from ottokit.dot.samplers import CalibratedDiscriminator

    with pytest.raises(TypeError, match=r"^calibrator must be an ottokit\.dot\.samplers\."
                                        r"Calibrator, got int; see calibrate\(\)$"):
        CalibratedDiscriminator(lambda x: x[:, 0], 3)


def test_ddls_names_the_network_that_fails_on_moved_latents_or_at_the_start():
    """G or D that take z0 but refuse a point the chain reaches: the error names z or G(z);
    at the start it names z0 or G(z0)."""

    def box_only(x):
        if bool((x.abs() > 1).any()):
            raise ValueError("input outside [-1, 1]^d")
        return x

    z0 = torch.zeros(3, 1, dtype=torch.float64)
    D = lambda x: 100.0 * box_only(x)[:, 0]  # drift (eps/2) 100 = 5 per step out of the box
    with pytest.raises(ValueError, match=r"^G\(z\) has per-sample shape \(1,\) but D expects"):
        ddls(D, IDENTITY, z0, 0.1, 2, seed=0)
    with pytest.raises(ValueError, match=r"^G could not take z of per-sample shape \(1,\)"):
        ddls(lambda x: 100.0 * x[:, 0], box_only, z0, 0.1, 2, seed=0)
    G = torch.nn.Linear(1, 2).double()
    with pytest.raises(ValueError, match=r"^G\(z0\) has per-sample shape \(2,\) but D expects "
                                         r"\(3,\)"):
        ddls(torch.nn.Linear(3, 1).double(), G, z0, 0.1, 2)
    with pytest.raises(ValueError, match=r"^G could not take z0 of per-sample shape \(1,\) "
                                         r"\(G expects \(2,\)\)"):
        ddls(torch.nn.Linear(3, 1).double(), torch.nn.Linear(2, 3).double(), z0, 0.1, 2)


def test_drs_probes_D_before_calling_it_a_probability():
    """A logit D with values in [0, 1] on the pilot but unbounded far from it: no warning; a
    sigmoid D, bounded everywhere, warns."""
    D = lambda x: 0.5 + 0.05 * x[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        drs(D, IDENTITY, PRIOR1, 2, n_pilot=20, batch_size=8, seed=0, dtype=torch.float64)
    with pytest.warns(ProbabilityOutputWarning):
        drs(lambda x: torch.sigmoid(x[:, 0]), IDENTITY, PRIOR1, 2, n_pilot=20, batch_size=8,
            seed=0, dtype=torch.float64)


def test_ddls_probes_D_on_the_generated_batch():
    D = lambda x: 0.5 + 0.05 * x[:, 0]
    z0 = torch.linspace(-1.0, 1.0, 16, dtype=torch.float64)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        ddls(D, IDENTITY, z0, 0.1, 1, seed=0)
    with pytest.warns(ProbabilityOutputWarning):
        ddls(lambda x: torch.sigmoid(x[:, 0]), IDENTITY, z0, 0.1, 1, seed=0)


def _mala_stationary_acceptance(eps: float, n: int = 200_000) -> float:
    """E min(1, pi(z') q(z|z') / (pi(z) q(z'|z))) for pi = N(A, I), z ~ pi and the Langevin
    proposal z' = z + (eps/2) grad log pi(z) + sqrt(eps) xi, by Monte Carlo in numpy."""
    rng = np.random.default_rng(37)
    a = A.numpy()
    z = a + rng.standard_normal((n, 2))
    zp = z - 0.5 * eps * (z - a) + math.sqrt(eps) * rng.standard_normal((n, 2))
    log_pi = lambda v: -0.5 * ((v - a) ** 2).sum(1)
    log_q = lambda to, frm: -((to - frm + 0.5 * eps * (frm - a)) ** 2).sum(1) / (2 * eps)
    log_alpha = log_pi(zp) - log_pi(z) + log_q(z, zp) - log_q(zp, z)
    return float(np.minimum(1.0, np.exp(log_alpha)).mean())


def test_ddls_mala_with_a_large_step_is_exact_and_accepts_at_the_mh_rate():
    """eps = 1.5, where ULA's stationary variance would be 1/(1 - eps/4) = 1.6: MALA keeps
    N(a, I) and accepts at the Metropolis-Hastings rate of the Langevin proposal."""
    eps = 1.5
    z0 = A + torch.randn(2000, 2, generator=torch.Generator().manual_seed(38), dtype=torch.float64)
    res = ddls(LINEAR_D, IDENTITY, z0, eps, 10, mala=True, seed=39)
    # 2000 chains: sd 0.022 of a mean, 0.032 of a variance; 20,000 decisions: sd 0.0035
    torch.testing.assert_close(res.latents.mean(0), A, atol=0.09, rtol=0)
    torch.testing.assert_close(res.latents.var(0), torch.ones(2, dtype=torch.float64), atol=0.13,
                               rtol=0)
    assert res.acceptance_rate == pytest.approx(_mala_stationary_acceptance(eps), abs=0.015)


def test_drs_latents_follow_the_networks():
    """Without latent_dim the latent size is G's Linear input size; without dtype the latents
    take the parameters' dtype (G's, else D's); a named prior with a lambda G needs
    latent_dim."""
    torch.manual_seed(40)
    D64 = torch.nn.Linear(1, 1).double()
    res = drs(D64, torch.nn.Linear(3, 1).double(), "normal", 4, n_pilot=16, seed=0)
    assert res.latents.shape == (4, 3) and res.latents.dtype == torch.float64
    res = drs(D64, IDENTITY, PRIOR1, 4, n_pilot=16, seed=0)
    assert res.latents.dtype == torch.float64 and res.samples.dtype == torch.float64
    res = drs(log_ratio, IDENTITY, "normal", 4, n_pilot=16, latent_dim=1, seed=0,
              dtype=torch.float64)
    assert res.latents.shape == (4, 1)


def test_drs_a_logit_equal_to_the_bound_does_not_raise_it():
    """D_M bounds D from above, equality included: a constant D equal to the given bound is
    accepted surely in exact mode and never counts as a bound update."""
    flat = lambda x: torch.full((x.shape[0],), 0.3, dtype=x.dtype)
    res = drs(flat, IDENTITY, PRIOR1, 5, mode="exact", log_bound=0.3, batch_size=8, seed=0,
              dtype=torch.float64)
    assert res.n_bound_updates == 0 and res.log_M == 0.3
    assert res.acceptance_rate == 1.0 and res.n_proposals == 8


@pytest.mark.parametrize("mala", [False, True])
def test_ddls_seed_reproduces_the_chain(mala):
    z0 = torch.zeros(20, 2, dtype=torch.float64)
    runs = [ddls(LINEAR_D, IDENTITY, z0, 0.3, 3, mala=mala, seed=s) for s in (41, 41, 42)]
    torch.testing.assert_close(runs[0].latents, runs[1].latents, rtol=0, atol=0)
    assert not torch.equal(runs[0].latents, runs[2].latents)
    gen = torch.Generator().manual_seed(41)
    torch.testing.assert_close(ddls(LINEAR_D, IDENTITY, z0, 0.3, 3, mala=mala, seed=gen).latents,
                               runs[0].latents, rtol=0, atol=0)


def test_isotonic_calibration_balances_the_classes():
    """Three times more generated than real logits: with equal class weights the isotonic
    odds still estimate p_X/p_G (unweighted, they would be off by log 3 = 1.1)."""
    gen = torch.Generator().manual_seed(42)
    real = MU + S * torch.randn(4000, 1, generator=gen, dtype=torch.float64)
    fake = torch.randn(12000, 1, generator=gen, dtype=torch.float64)
    cal = calibrate(log_ratio(real), log_ratio(fake), "isotonic")
    grid = torch.linspace(-0.5, 1.0, 30, dtype=torch.float64)[:, None]
    err = (cal.logit(log_ratio(grid)) - log_ratio(grid)).abs()
    assert float(err.max()) < 0.4
