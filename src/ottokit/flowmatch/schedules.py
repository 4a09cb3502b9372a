"""Noise schedules of Gaussian probability paths x_t = m_t y + sigma_t eps (seed 002).

Forward time t runs over [0, tau]: data at t = 0, where (m, sigma) = (1, 0), and
noise at t = tau, where (m, sigma) = (0, 1). (torchcfm and Meta's flow_matching
run time the other way.) A :class:`Schedule` maps times to a
:class:`ScheduleOutput` holding ``m_t``, ``sigma_t`` and their time derivatives
``d_m_t``, ``d_sigma_t``; every schedule checks its end conditions when built.

Times may be floats, NumPy arrays or tensors; tensors keep their dtype and
device, anything else is computed in float64 and returned as NumPy.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ottokit._checks import check_real
from ottokit.flowmatch._common import as_float_tensor, check_finite

__all__ = [
    "ScheduleOutput",
    "Schedule",
    "CondOT",
    "Cosine",
    "ImprovedDDPMCosine",
    "VPLinear",
    "Custom",
]

END_ATOL = 1e-6


@dataclass(frozen=True)
class ScheduleOutput:
    """m_t, sigma_t and their time derivatives at the requested times (same shape)."""

    m_t: Any
    sigma_t: Any
    d_m_t: Any
    d_sigma_t: Any


class Schedule(ABC):
    """A Gaussian path schedule on [0, tau].

    Subclasses implement :meth:`_evaluate` on a validated tensor of times, set
    their parameters, then call ``super().__init__(tau)``, which checks the end
    conditions (m, sigma) = (1, 0) at t = 0 and (0, 1) at t = tau within
    ``end_atol``.
    """

    end_atol: float = END_ATOL

    def __init__(self, tau: float = 1.0) -> None:
        self.tau = check_real(tau, "tau", gt=0)
        self._check_end_conditions()

    @abstractmethod
    def _evaluate(self, t: Tensor) -> ScheduleOutput:
        """The schedule at times ``t`` already inside [0, tau], as tensors."""

    def __call__(self, t: Any) -> ScheduleOutput:
        """Evaluate the schedule at ``t`` (float, array or tensor inside [0, tau])."""
        out = self._evaluate(self._times(t))
        if isinstance(t, Tensor):
            return out
        return ScheduleOutput(
            m_t=out.m_t.detach().cpu().numpy(),
            sigma_t=out.sigma_t.detach().cpu().numpy(),
            d_m_t=out.d_m_t.detach().cpu().numpy(),
            d_sigma_t=out.d_sigma_t.detach().cpu().numpy(),
        )

    def _times(self, t: Any) -> Tensor:
        tt = as_float_tensor(t, "t")
        check_finite(tt, "t")
        # grids such as linspace(0, tau) may overshoot tau by an ulp or two
        slack = 8.0 * torch.finfo(tt.dtype).eps * self.tau
        if tt.numel() and (bool((tt < -slack).any()) or bool((tt > self.tau + slack).any())):
            lo, hi = float(tt.min()), float(tt.max())
            raise ValueError(
                f"t must lie in [0, tau] = [0, {self.tau:g}], got values in [{lo:g}, {hi:g}]"
            )
        return tt.clamp(0.0, self.tau)

    def _check_end_conditions(self) -> None:
        ends = torch.tensor([0.0, self.tau], dtype=torch.float64)
        out = self._evaluate(ends)
        m, sigma = out.m_t, out.sigma_t
        m0, s0, m1, s1 = float(m[0]), float(sigma[0]), float(m[1]), float(sigma[1])
        errors = []
        if not (abs(m0 - 1.0) <= self.end_atol and abs(s0) <= self.end_atol):
            errors.append(f"(m, sigma) at t = 0 is ({m0:.6g}, {s0:.6g}), expected (1, 0)")
        if not (abs(m1) <= self.end_atol and abs(s1 - 1.0) <= self.end_atol):
            errors.append(f"(m, sigma) at t = tau is ({m1:.6g}, {s1:.6g}), expected (0, 1)")
        if errors:
            raise ValueError(
                f"{type(self).__name__} violates the end conditions within "
                f"end_atol={self.end_atol:g}: " + "; ".join(errors)
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tau={self.tau!r})"


class CondOT(Schedule):
    """Conditional optimal transport (Lipman et al. 2022): m_t = 1 - t/tau, sigma_t = t/tau."""

    def _evaluate(self, t: Tensor) -> ScheduleOutput:
        s = t / self.tau
        rate = torch.full_like(t, 1.0 / self.tau)
        return ScheduleOutput(m_t=1.0 - s, sigma_t=s, d_m_t=-rate, d_sigma_t=rate)


class Cosine(Schedule):
    """The seed's cosine schedule: m_t = cos(pi t / 2 tau), sigma_t = sin(pi t / 2 tau)."""

    def _evaluate(self, t: Tensor) -> ScheduleOutput:
        rate = math.pi / (2.0 * self.tau)
        theta = rate * t
        cos, sin = torch.cos(theta), torch.sin(theta)
        return ScheduleOutput(m_t=cos, sigma_t=sin, d_m_t=-rate * sin, d_sigma_t=rate * cos)


class ImprovedDDPMCosine(Schedule):
    """Nichol & Dhariwal's cosine schedule (diffusers ``squaredcos_cap_v2``) in continuous time.

    With s = t/tau and f(s) = cos^2(((s + offset)/(1 + offset)) pi/2), the signal
    level is abar(s) = f(s)/f(0), m_t = sqrt(abar), sigma_t = sqrt(1 - abar).

    End conditions: dividing by f(0) makes abar(0) = 1 exactly (f(0) = 0.99985 for
    offset 0.008). At s = 1 the angle is pi/2, so abar(1) = 0 in exact arithmetic;
    in floating point cos(pi/2) ~ 6e-17, far below the end-condition tolerance,
    and m_t is clipped to [0, 1]. The discrete schedule caps beta at 0.999; the
    continuous one needs no cap (its ``abar`` is the discrete cumulative product
    wherever the cap is inactive). d_sigma_t is +inf at t = 0 (sigma ~ sqrt(t)).
    """

    def __init__(self, tau: float = 1.0, offset: float = 0.008) -> None:
        offset = check_real(offset, "offset", ge=0, example=0.008)
        self.offset = float(offset)
        super().__init__(tau)

    def _evaluate(self, t: Tensor) -> ScheduleOutput:
        rate = math.pi / (2.0 * (1.0 + self.offset) * self.tau)
        theta0 = math.pi / 2.0 * self.offset / (1.0 + self.offset)
        theta = theta0 + rate * t
        cos0 = math.cos(theta0)
        m = (torch.cos(theta) / cos0).clamp(0.0, 1.0)
        # 1 - m^2 = sin(theta - theta0) sin(theta + theta0) / cos0^2, free of cancellation near 0
        one_minus = (torch.sin(theta - theta0) * torch.sin(theta + theta0)).clamp_min(0.0)
        sigma = torch.sqrt(one_minus) / cos0
        d_m = -rate * torch.sin(theta) / cos0
        d_sigma = -m * d_m / sigma
        return ScheduleOutput(m_t=m, sigma_t=sigma, d_m_t=d_m, d_sigma_t=d_sigma)

    def __repr__(self) -> str:
        return f"ImprovedDDPMCosine(tau={self.tau!r}, offset={self.offset!r})"


class VPLinear(Schedule):
    """Variance preserving path with a linear beta (Ho et al. 2020; Song et al. 2021).

    beta(s) = beta_min + s (beta_max - beta_min) per unit s = t/tau;
    m_t = exp(-B(s)/2) with B(s) = int_0^s beta, sigma_t = sqrt(1 - m_t^2).

    The path reaches noise only asymptotically: m_tau = exp(-(beta_min + beta_max)/4)
    (6.6e-3 for the usual 0.1, 20), so this schedule checks its end conditions
    with ``end_atol`` (default 1e-2) instead of 1e-6. d_sigma_t is +inf at t = 0.
    """

    def __init__(
        self,
        tau: float = 1.0,
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        end_atol: float = 1e-2,
    ) -> None:
        beta_min = check_real(beta_min, "beta_min", gt=0, example=0.1)
        beta_max = check_real(beta_max, "beta_max", gt=0, example=20.0)
        if beta_min > beta_max:  # both are > 0 already
            raise ValueError(
                f"need 0 < beta_min <= beta_max, got beta_min={beta_min!r}, beta_max={beta_max!r}"
            )
        end_atol = check_real(end_atol, "end_atol", gt=0)
        self.beta_min, self.beta_max, self.end_atol = (
            float(beta_min),
            float(beta_max),
            float(end_atol),
        )
        super().__init__(tau)

    def _evaluate(self, t: Tensor) -> ScheduleOutput:
        s = t / self.tau
        slope = self.beta_max - self.beta_min
        big_b = self.beta_min * s + 0.5 * slope * s * s
        beta = (self.beta_min + slope * s) / self.tau  # per unit t
        m = torch.exp(-0.5 * big_b)
        sigma = torch.sqrt(-torch.expm1(-big_b))
        d_m = -0.5 * beta * m
        d_sigma = 0.5 * beta * m * m / sigma
        return ScheduleOutput(m_t=m, sigma_t=sigma, d_m_t=d_m, d_sigma_t=d_sigma)

    def __repr__(self) -> str:
        return (
            f"VPLinear(tau={self.tau!r}, beta_min={self.beta_min!r}, "
            f"beta_max={self.beta_max!r}, end_atol={self.end_atol!r})"
        )


class Custom(Schedule):
    """A schedule from two elementwise callables ``m(t)`` and ``sigma(t)`` on tensors.

    Derivatives come from torch autograd, so the callables must be written in
    torch operations and act elementwise (output shape = input shape, or a
    scalar for a constant).
    """

    def __init__(
        self,
        m: Callable[[Tensor], Tensor],
        sigma: Callable[[Tensor], Tensor],
        tau: float = 1.0,
        end_atol: float = END_ATOL,
    ) -> None:
        if not (callable(m) and callable(sigma)):
            raise ValueError("m and sigma must be callables mapping a tensor of times to a tensor")
        end_atol = check_real(end_atol, "end_atol", gt=0)
        self._m, self._sigma, self.end_atol = m, sigma, float(end_atol)
        super().__init__(tau)

    def _evaluate(self, t: Tensor) -> ScheduleOutput:
        with torch.enable_grad():
            tt = t.detach().clone().requires_grad_(True)
            outputs = []
            for name, fn in (("m", self._m), ("sigma", self._sigma)):
                value = fn(tt)
                if not isinstance(value, Tensor):
                    raise ValueError(
                        f"Custom {name}(t) must return a tensor, got {type(value).__name__}"
                    )
                if value.shape != tt.shape:
                    if value.numel() != 1:
                        raise ValueError(
                            f"Custom {name}(t) must act elementwise: input shape "
                            f"{tuple(tt.shape)}, output shape {tuple(value.shape)}"
                        )
                    value = value.reshape(()).expand(tt.shape)
                if value.requires_grad:
                    (grad,) = torch.autograd.grad(value.sum(), tt, allow_unused=True)
                else:
                    grad = None
                grad = torch.zeros_like(tt) if grad is None else grad
                outputs.append((value.detach().to(t.dtype), grad.detach().to(t.dtype)))
        (m, d_m), (sigma, d_sigma) = outputs
        return ScheduleOutput(m_t=m, sigma_t=sigma, d_m_t=d_m, d_sigma_t=d_sigma)

    def __repr__(self) -> str:
        return f"Custom(m={self._m!r}, sigma={self._sigma!r}, tau={self.tau!r})"
