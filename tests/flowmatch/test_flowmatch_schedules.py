"""Schedules of Gaussian paths (seed 002): derivatives, end conditions, discrete references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ottokit.flowmatch import (
    CondOT,
    Cosine,
    Custom,
    ImprovedDDPMCosine,
    Schedule,
    ScheduleOutput,
    VPLinear,
    conditional_kinetic_energy,
)

TAU = 1.7


def schedule_id(schedule: Schedule) -> str:
    """The class name: a stable test id (a Custom schedule's repr holds function addresses)."""
    return type(schedule).__name__


def all_schedules(tau: float = TAU) -> list[Schedule]:
    return [
        CondOT(tau),
        Cosine(tau),
        ImprovedDDPMCosine(tau),
        VPLinear(tau),
        Custom(
            lambda t: torch.exp(-3 * t / tau) * (1 - t / tau),
            lambda t: torch.sin(math.pi * t / (2 * tau)) ** 2,
            tau,
        ),
    ]


@pytest.mark.parametrize("schedule", all_schedules(), ids=schedule_id)
def test_derivatives_match_central_differences(schedule: Schedule) -> None:
    t = torch.linspace(0.02, 0.98, 49, dtype=torch.float64) * schedule.tau
    h = 1e-6
    out = schedule(t)
    up, down = schedule(t + h), schedule(t - h)
    fd_m = (up.m_t - down.m_t) / (2 * h)
    fd_s = (up.sigma_t - down.sigma_t) / (2 * h)
    scale = 1 + out.d_m_t.abs().max() + out.d_sigma_t.abs().max()
    assert torch.allclose(out.d_m_t, fd_m, rtol=0, atol=1e-6 * scale)
    assert torch.allclose(out.d_sigma_t, fd_s, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("schedule", all_schedules()[:4], ids=schedule_id)
def test_closed_form_derivatives_match_autograd(schedule: Schedule) -> None:
    t = (torch.linspace(0.03, 0.97, 31, dtype=torch.float64) * schedule.tau).requires_grad_(True)
    out = schedule(t)
    (d_m,) = torch.autograd.grad(out.m_t.sum(), t, retain_graph=True)
    (d_s,) = torch.autograd.grad(out.sigma_t.sum(), t)
    assert torch.allclose(out.d_m_t, d_m, rtol=1e-12, atol=1e-12)
    assert torch.allclose(out.d_sigma_t, d_s, rtol=1e-10, atol=1e-12)


def test_custom_autograd_reproduces_the_seed_cosine() -> None:
    tau = 2.5
    custom = Custom(
        lambda t: torch.cos(math.pi * t / (2 * tau)),
        lambda t: torch.sin(math.pi * t / (2 * tau)),
        tau,
    )
    t = torch.linspace(0, tau, 41, dtype=torch.float64)
    a, b = custom(t), Cosine(tau)(t)
    for name in ("m_t", "sigma_t", "d_m_t", "d_sigma_t"):
        assert torch.allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-14), name


@pytest.mark.parametrize("schedule", all_schedules(), ids=schedule_id)
def test_end_conditions(schedule: Schedule) -> None:
    out = schedule(np.array([0.0, schedule.tau]))
    atol = schedule.end_atol
    assert abs(out.m_t[0] - 1) <= atol and abs(out.sigma_t[0]) <= atol
    assert abs(out.m_t[1]) <= atol and abs(out.sigma_t[1] - 1) <= atol


def test_improved_ddpm_end_values_are_exact_up_to_rounding() -> None:
    out = ImprovedDDPMCosine(1.0)(np.array([0.0, 1.0]))
    assert out.m_t[0] == 1.0 and out.sigma_t[0] == 0.0
    assert out.m_t[1] <= 1e-15 and abs(out.sigma_t[1] - 1.0) <= 1e-15
    assert np.isinf(out.d_sigma_t[0])  # sigma ~ sqrt(t) at the data end


def test_improved_ddpm_matches_discrete_squaredcos_cap_v2() -> None:
    """abar(k/T)/abar(0) equals diffusers' cumulative product wherever beta is not capped."""
    n = 1000

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)]
    cumprod = np.cumprod(1 - np.array(betas))
    uncapped = np.cumprod(np.array(betas) < 0.999).astype(bool)
    assert uncapped.sum() >= n - 2  # only the last step(s) hit the cap
    tau = 3.0
    t = tau * np.arange(1, n + 1) / n
    m = ImprovedDDPMCosine(tau)(t).m_t
    assert np.allclose(m[uncapped] ** 2, cumprod[uncapped], rtol=1e-9, atol=1e-15)


def test_vp_linear_closed_forms() -> None:
    tau, b0, b1 = 2.0, 0.1, 20.0
    sched = VPLinear(tau, b0, b1)
    t = np.linspace(0.01, tau, 50)
    out = sched(t)
    s = t / tau
    beta = (b0 + s * (b1 - b0)) / tau
    assert np.allclose(out.m_t**2 + out.sigma_t**2, 1.0, atol=1e-14)
    assert np.allclose(out.d_m_t / out.m_t, -0.5 * beta, rtol=1e-12)
    assert math.isclose(sched(tau).m_t, math.exp(-(b0 + b1) / 4), rel_tol=1e-12)


def test_numpy_in_numpy_out_and_tensor_dtype_kept() -> None:
    out = CondOT(2.0)(0.5)
    assert isinstance(out.m_t, np.ndarray) and float(out.m_t) == 0.75
    t32 = torch.tensor([0.0, 0.5], dtype=torch.float32)
    out32 = Cosine()(t32)
    assert out32.m_t.dtype == torch.float32 and out32.d_sigma_t.dtype == torch.float32


@pytest.mark.parametrize("schedule", all_schedules(), ids=schedule_id)
def test_every_schedule_returns_its_output_dataclass(schedule: Schedule) -> None:
    """Tensors in: the same ScheduleOutput the trainer reads; NumPy in: the same numbers."""
    t = torch.linspace(0.1, 0.9, 5, dtype=torch.float64) * schedule.tau
    out = schedule(t)
    assert isinstance(out, ScheduleOutput)
    fields = ("m_t", "sigma_t", "d_m_t", "d_sigma_t")
    assert all(isinstance(getattr(out, k), torch.Tensor) for k in fields)
    unchecked = schedule._evaluate(t)
    assert isinstance(unchecked, ScheduleOutput)
    as_numpy = schedule(t.numpy())
    for k in fields:
        assert torch.equal(getattr(out, k), getattr(unchecked, k))
        np.testing.assert_array_equal(getattr(as_numpy, k), getattr(out, k).numpy())


def test_time_grid_overshoot_by_rounding_is_accepted() -> None:
    tau = 0.3
    grid = torch.linspace(0, tau, 7, dtype=torch.float32)
    CondOT(tau)(grid * (1 + 2 * torch.finfo(torch.float32).eps))


@pytest.mark.parametrize("bad_t", [-0.01, 1.01, float("nan"), [0.2, 1.5]])
def test_t_outside_interval_is_rejected(bad_t) -> None:
    with pytest.raises(ValueError, match=r"\bt\b"):
        Cosine(1.0)(np.asarray(bad_t))


@pytest.mark.parametrize(
    ("tau", "error"),
    [
        (0.0, ValueError),
        (-1.0, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ("x", TypeError),
    ],
)
def test_non_positive_tau_is_rejected(tau, error) -> None:
    with pytest.raises(error, match="tau"):
        CondOT(tau)


def test_custom_end_condition_violations_are_named() -> None:
    with pytest.raises(ValueError, match=r"t = tau.*expected \(0, 1\)"):
        Custom(lambda t: 1 - t / 2, lambda t: t)
    with pytest.raises(ValueError, match=r"t = 0.*expected \(1, 0\)"):
        Custom(lambda t: 0.9 * (1 - t), lambda t: t + 0.1 * (1 - t))


def test_custom_rejects_bad_callables() -> None:
    with pytest.raises(ValueError, match="callable"):
        Custom(1.0, lambda t: t)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="elementwise"):
        Custom(lambda t: torch.cat([1 - t, 1 - t]), lambda t: t)


def test_vp_linear_that_does_not_reach_noise_is_rejected() -> None:
    with pytest.raises(ValueError, match="end conditions"):
        VPLinear(1.0, beta_min=0.1, beta_max=1.0)
    with pytest.raises(ValueError, match="beta_min"):
        VPLinear(1.0, beta_min=0.0)


def test_conditional_kinetic_energy_closed_forms() -> None:
    """Shaul et al.: n_d int (d_sigma^2 + d_m^2) dt is 2 n_d / tau for cond-OT and
    (pi^2/4) n_d / tau for the seed's cosine."""
    tau, n_d = 2.0, 7
    assert math.isclose(conditional_kinetic_energy(CondOT(tau), n_d), 2 * n_d / tau, rel_tol=1e-10)
    assert math.isclose(conditional_kinetic_energy(CondOT(tau)), 2 / tau, rel_tol=1e-10)  # d = 1
    assert math.isclose(
        conditional_kinetic_energy(Cosine(tau), n_d), math.pi**2 / 4 * n_d / tau, rel_tol=1e-10
    )
    with pytest.raises(ValueError, match="does not converge"):
        conditional_kinetic_energy(VPLinear(tau), n_d)  # d_sigma^2 ~ 1/t near the data end


def test_schedule_constructors_name_what_is_wrong():
    with pytest.raises(ValueError, match="need 0 < beta_min <= beta_max"):
        VPLinear(beta_min=20.0, beta_max=0.1)
    with pytest.raises(ValueError, match=r"Custom sigma\(t\) must return a tensor, got list"):
        Custom(lambda t: 1.0 - t, lambda t: t.tolist())


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: CondOT(-1.0), ValueError, r"^tau must be a positive number"),
        (
            lambda: ImprovedDDPMCosine(offset=-0.1),
            ValueError,
            r"^offset must be a non-negative number, got -0\.1 \(e\.g\. offset=0\.008\)$",
        ),
        (
            lambda: VPLinear(beta_min=-1.0),
            ValueError,
            r"^beta_min must be a positive number, got -1 \(e\.g\. beta_min=0\.1\)$",
        ),
        (
            lambda: VPLinear(beta_max=-1.0),
            ValueError,
            r"^beta_max must be a positive number, got -1 \(e\.g\. beta_max=20\.0\)$",
        ),
        (lambda: VPLinear(end_atol=0.0), ValueError, r"^end_atol must be a positive number"),
        (
            lambda: Custom(lambda t: 1 - t, lambda t: t, end_atol=0.0),
            ValueError,
            r"^end_atol must be a positive number",
        ),
        (
            lambda: Custom(1.0, lambda t: t),  # type: ignore[arg-type]
            ValueError,
            r"^m and sigma must be callables mapping a tensor of times to a tensor$",
        ),
        (
            lambda: Custom(lambda t: t.tolist(), lambda t: t),
            ValueError,
            r"^Custom m\(t\) must return a tensor, got list$",
        ),
        (
            lambda: Custom(lambda t: 0.5 + 0 * t, lambda t: 0.5 + 0 * t),
            ValueError,
            r"^Custom violates the end conditions within end_atol=1e-06: \(m, sigma\) at t = 0 "
            r"is \(0\.5, 0\.5\), expected \(1, 0\); \(m, sigma\) at t = tau is \(0\.5, 0\.5\), "
            r"expected \(0, 1\)$",
        ),
        (lambda: CondOT()("abc"), TypeError, r"^t must be an array of real numbers"),
    ],
    ids=[
        "tau", "offset", "beta-min", "beta-max", "vp-end-atol", "custom-end-atol",
        "not-callable", "m-not-a-tensor", "both-ends", "t-text",
    ],
)
def test_schedule_guards_name_the_argument(build, error, match) -> None:
    with pytest.raises(error, match=match):
        build()


def test_each_end_condition_is_checked_on_its_own() -> None:
    """A right m with a wrong sigma at t = 0 is refused: both coordinates must be at (1, 0)."""
    with pytest.raises(ValueError, match=r"t = 0 is \(1, 0\.1\), expected \(1, 0\)$"):
        Custom(lambda t: 1 - t, lambda t: 0.1 + 0.9 * t)


def test_end_conditions_hold_within_end_atol_inclusive() -> None:
    """Every end value off by exactly end_atol (a binary fraction, no rounding) is accepted."""
    atol = 0.25
    sched = Custom(lambda t: 1.25 - t, lambda t: 0.25 + t, end_atol=atol)
    out = sched(np.array([0.0, 1.0]))
    assert np.array_equal(out.m_t, [1.25, 0.25]) and np.array_equal(out.sigma_t, [0.25, 1.25])
    with pytest.raises(ValueError, match="end conditions"):
        Custom(lambda t: 1.25 - t, lambda t: 0.25 + t, end_atol=0.2499)


def test_end_conditions_are_checked_in_float64() -> None:
    """cos(pi/2) is 6e-17 in float64 and -4e-8 in float32: a 1e-12 tolerance is honoured."""
    sched = Custom(
        lambda t: torch.cos(math.pi * t / 2), lambda t: torch.sin(math.pi * t / 2), end_atol=1e-12
    )
    assert sched.end_atol == 1e-12


def test_defaults_are_the_unit_horizon_and_the_usual_betas() -> None:
    """tau = 1 everywhere; VP's (beta_min, beta_max) = (0.1, 20) of Song et al. (2021)."""
    t = np.linspace(0.0, 1.0, 11)
    assert Custom(lambda t: 1 - t, lambda t: t).tau == 1.0
    assert ImprovedDDPMCosine().tau == 1.0 and CondOT().tau == 1.0
    vp = VPLinear()
    assert vp.tau == 1.0 and vp.end_atol == 1e-2
    np.testing.assert_array_equal(vp(t).m_t, VPLinear(1.0, 0.1, 20.0)(t).m_t)
    assert math.isclose(vp(1.0).m_t, math.exp(-(0.1 + 20.0) / 4), rel_tol=1e-14)


def test_vp_linear_with_constant_beta() -> None:
    """beta_min = beta_max = b is allowed: m_t = exp(-b s / 2), an OU process at constant rate."""
    tau, b = 2.0, 10.0
    out = VPLinear(tau, b, b)(np.linspace(0.0, tau, 9))
    s = np.linspace(0.0, 1.0, 9)
    np.testing.assert_allclose(out.m_t, np.exp(-0.5 * b * s), rtol=1e-14)
    np.testing.assert_allclose(out.d_m_t, -0.25 * b * np.exp(-0.5 * b * s), rtol=1e-14)


@pytest.mark.parametrize("tau", [0.3, 1000.0])
def test_rounding_overshoot_is_evaluated_at_the_ends(tau: float) -> None:
    """Times a few ulps outside [0, tau] (relative to tau) are the ends themselves."""
    eps = torch.finfo(torch.float64).eps
    t = torch.tensor([-2 * eps * tau, tau * (1 + 2 * eps)], dtype=torch.float64)
    for sched in (CondOT(tau), VPLinear(tau)):
        out, ends = sched(t), sched(torch.tensor([0.0, tau], dtype=torch.float64))
        for k in ("m_t", "sigma_t", "d_m_t"):
            assert torch.equal(getattr(out, k), getattr(ends, k)), (type(sched).__name__, k)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("offset", [0.008, 0.3])
def test_improved_ddpm_m_stays_in_unit_interval(dtype, offset) -> None:
    """m_t = sqrt(abar) lies in [0, 1] even where cos rounds past its ends (float32)."""
    tau = 0.1
    t = torch.linspace(0.0, tau, 101, dtype=dtype)
    m = ImprovedDDPMCosine(tau, offset)(t).m_t
    assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
    assert float(m[0]) == 1.0 and float(m[-1]) <= 1e-15


def test_custom_step_schedule_has_zero_derivatives() -> None:
    """Callables that autograd cannot differentiate in t (a step; a learnable table indexed by
    t) are piecewise constant: their derivative is 0 wherever it exists."""
    step = Custom(lambda t: (t < 0.5).to(t.dtype), lambda t: (t >= 0.5).to(t.dtype))
    levels = torch.linspace(1.0, 0.0, 11, dtype=torch.float64).requires_grad_(True)
    table = Custom(lambda t: levels[torch.round(10 * t).long()], lambda t: 1 - levels.detach()[
        torch.round(10 * t).long()
    ])
    t = torch.tensor([0.1, 0.33, 0.72, 0.9], dtype=torch.float64)
    for sched in (step, table):
        out = sched(t)
        assert torch.equal(out.d_m_t, torch.zeros(4, dtype=torch.float64))
        assert torch.equal(out.d_sigma_t, torch.zeros(4, dtype=torch.float64))
    np.testing.assert_allclose(table(t).m_t.numpy(), [0.9, 0.7, 0.3, 0.1], rtol=1e-14)


def test_custom_broadcasts_a_one_element_output_and_casts_to_the_times_dtype() -> None:
    """A callable returning shape (1,) for a 0-d time, or float32 for float64 times."""
    one = Custom(lambda t: torch.ones(1, dtype=t.dtype) - t, lambda t: t)
    out = one(torch.tensor(0.25, dtype=torch.float64))
    assert out.m_t.shape == () and float(out.m_t) == 0.75 and float(out.d_m_t) == -1.0
    f32 = Custom(lambda t: 1 - t.float(), lambda t: t.float())
    out = f32(torch.tensor([0.25, 0.5], dtype=torch.float64))
    assert out.m_t.dtype == torch.float64 and out.sigma_t.dtype == torch.float64
    assert torch.equal(out.d_m_t, torch.full((2,), -1.0, dtype=torch.float64))


def test_custom_refuses_a_two_element_output_for_other_shapes() -> None:
    sched = Custom(lambda t: (1 - t).reshape(-1)[:2], lambda t: t)
    with pytest.raises(ValueError, match=r"must act elementwise: input shape \(3,\), output"):
        sched(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))


@pytest.mark.parametrize(
    "schedule",
    [CondOT(2.0), Cosine(0.5), ImprovedDDPMCosine(1.5, 0.02), VPLinear(2.0, 0.2, 12.0, 0.05)],
    ids=schedule_id,
)
def test_repr_rebuilds_the_same_schedule(schedule: Schedule) -> None:
    namespace = {c.__name__: c for c in (CondOT, Cosine, ImprovedDDPMCosine, VPLinear)}
    rebuilt = eval(repr(schedule), namespace)  # noqa: S307
    assert type(rebuilt) is type(schedule)
    t = np.linspace(0.05, 0.95, 7) * schedule.tau
    for k in ("m_t", "sigma_t", "d_m_t", "d_sigma_t"):
        np.testing.assert_array_equal(getattr(rebuilt(t), k), getattr(schedule(t), k))
