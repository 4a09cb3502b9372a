"""Velocity estimated by Gaussian-kernel (Nadaraya-Watson) regression over sample pairs.

Given pairs (y_i, eps_i) of data and noise samples, a schedule moves each pair
along x_t^i = m_t y_i + sigma_t eps_i with velocity u_t^i = d_m y_i + d_sigma eps_i.
The marginal velocity nu_t(x) = E[u_t | x_t = x] is estimated by

    nu_hat_t(x) = sum_i K_h(x - x_t^i) u_t^i / sum_i K_h(x - x_t^i),  K_h Gaussian,

which converges to nu_t as pairs grow and h shrinks. With independent pairs this
is the "estimated velocity (kernel regression)" for any schedule; with pairs
from an exact OT plan and the conditional-OT (straight line) schedule it is the
velocity of the exact OT path, as in Ikeda, Uda, Okanohara & Ito
(arXiv:2407.04495).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from ottokit._checks import check_instance, check_int, check_option, check_real, options
from ottokit.flowmatch._common import (
    as_points,
    gaussian_softmax_mean,
    like_input,
    scalar_time,
)
from ottokit.flowmatch.otpath import ot_couple
from ottokit.flowmatch.schedules import CondOT, Schedule

__all__ = ["KernelVelocity", "ot_path_velocity", "COUPLINGS"]

Coupling = Literal["independent", "ot"]
COUPLINGS: tuple[str, ...] = options(Coupling)


class KernelVelocity:
    """Nadaraya-Watson estimate of the marginal velocity from (data, noise) pairs.

    Args:
        schedule: the path's schedule.
        data: (n, d) data samples.
        noise: (n, d) noise samples, paired with ``data`` row by row.
        bandwidth: kernel width h; ``None`` uses Scott's rule at each time,
            h_t = s_t n^{-1/(d+4)} with s_t^2 the mean per-coordinate variance of
            the x_t^i.
        coupling: ``"independent"`` keeps the rows' pairing; ``"ot"`` first
            re-pairs the noise by an exact OT plan (:func:`ot_couple`).
        query_chunk: block size of the queries in the streaming softmax.
        data_chunk: block size of the pairs in the streaming softmax.
    """

    def __init__(
        self,
        schedule: Schedule,
        data: Any,
        noise: Any,
        *,
        bandwidth: float | None = None,
        coupling: Coupling = "independent",
        query_chunk: int = 1024,
        data_chunk: int = 4096,
    ) -> None:
        check_instance(schedule, Schedule, "schedule")
        check_option(coupling, Coupling, "coupling")
        y = as_points(data, "data")
        z = as_points(noise, "noise", dim=y.shape[1]).to(dtype=y.dtype, device=y.device)
        if z.shape[0] != y.shape[0]:
            raise ValueError(
                f"data and noise need as many points, got {y.shape[0]} and {z.shape[0]}"
            )
        if coupling == "ot":
            z = ot_couple(y, z).noise
        if bandwidth is not None:
            bandwidth = check_real(bandwidth, "bandwidth", gt=0, hint="or None for Scott's rule")
        self.schedule, self.data, self.noise = schedule, y, z
        self.bandwidth, self.coupling = bandwidth, coupling
        self.query_chunk = check_int(query_chunk, "query_chunk", ge=1, example=1024)
        self.data_chunk = check_int(data_chunk, "data_chunk", ge=1, example=4096)

    @property
    def tau(self) -> float:
        return self.schedule.tau

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    def pairs(self, t: Any, like: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(x_t^i, u_t^i)`` for all pairs at time ``t``."""
        dtype = like.dtype if like is not None else self.data.dtype
        device = like.device if like is not None else self.data.device
        tt = scalar_time(t, dtype=dtype, device=device)
        out = self.schedule(tt)
        if not (math.isfinite(float(out.d_m_t)) and math.isfinite(float(out.d_sigma_t))):
            raise ValueError(
                f"the schedule's derivatives are not finite at t = {float(tt):g}; "
                "evaluate at a slightly later time"
            )
        y = self.data.to(dtype=dtype, device=device)
        z = self.noise.to(dtype=dtype, device=device)
        return out.m_t * y + out.sigma_t * z, out.d_m_t * y + out.d_sigma_t * z

    def bandwidth_at(self, t: Any) -> float:
        """The kernel width used at time ``t``."""
        if self.bandwidth is not None:
            return float(self.bandwidth)
        x_t, _ = self.pairs(t)
        return _scott(x_t)

    def __call__(self, t: Any, x: Any) -> Any:
        """nu_hat_t(x), shape (n, d)."""
        xx = as_points(x, "x", dim=self.dim)
        centers, values = self.pairs(t, like=xx)
        h = float(self.bandwidth) if self.bandwidth is not None else _scott(centers)
        inv = 1.0 / (h * h)
        log_w = xx.new_zeros(centers.shape[0])
        mean, _ = gaussian_softmax_mean(
            xx,
            centers,
            values,
            log_w,
            inv,
            0.5 * inv,
            query_chunk=self.query_chunk,
            data_chunk=self.data_chunk,
        )
        return like_input(mean, x)

    def sample_marginal(self, t: float, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` of the interpolated points x_t^i, drawn with replacement."""
        x_t, _ = self.pairs(t)
        idx = torch.randint(x_t.shape[0], (int(n),), generator=generator)
        return x_t[idx.to(x_t.device)]


def ot_path_velocity(
    data: Any, noise: Any, tau: float = 1.0, *, bandwidth: float | None = None
) -> KernelVelocity:
    """Velocity of the exact OT path: straight lines between OT-paired samples, kernel-regressed.

    The same object as ``KernelVelocity(CondOT(tau), data, noise, coupling="ot")``.
    """
    return KernelVelocity(CondOT(tau), data, noise, bandwidth=bandwidth, coupling="ot")


def _scott(points: Tensor) -> float:
    n, d = points.shape
    spread = float(points.var(dim=0).mean().sqrt()) if n > 1 else 1.0
    spread = spread if spread > 0 else 1.0
    return spread * n ** (-1.0 / (d + 4))
