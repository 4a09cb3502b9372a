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
