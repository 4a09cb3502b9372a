"""Transport samples along a velocity field with ``torchdiffeq.odeint``.

Forward sampling integrates dx/dt = nu_t(x) from t = 0 (data) to t = tau
(noise); backward sampling integrates the same ODE from tau down to 0, which is
the seed's reverse process dx/dt~ = -nu_{tau - t~}(x) in reversed time
t~ = tau - t. Any callable ``v(t, x)`` works: an exact, estimated or learned
velocity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torchdiffeq import odeint

from ottokit._checks import check_int, check_option, check_real, options
from ottokit.flowmatch._common import as_points

__all__ = ["SampleTrajectory", "integrate", "sample_forward", "sample_backward", "METHODS"]

Method = Literal["rk4", "dopri5", "euler", "midpoint"]
METHODS: tuple[str, ...] = options(Method)
_FIXED = ("rk4", "euler", "midpoint")


@dataclass(frozen=True)
class SampleTrajectory:
    """Samples saved along an integration.

    Attributes:
        t: (S,) the saved (forward) times, in integration order.
        x: (S, n, d) the samples at those times.
        n_evals: number of velocity evaluations.
        method: the torchdiffeq method used.
    """

    t: Tensor
    x: Tensor
    n_evals: int
    method: str

    @property
    def final(self) -> Tensor:
        """The samples at the last saved time, (n, d)."""
        return self.x[-1]


class _Counted:
    def __init__(self, velocity: Callable[[Tensor, Tensor], Any]) -> None:
        self.velocity, self.n = velocity, 0

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        self.n += 1
        return self.velocity(t, x)


def integrate(
    velocity: Callable[[Tensor, Tensor], Any],
    x0: Any,
    t0: float,
    t1: float,
    *,
    method: Method = "rk4",
    n_steps: int = 100,
    save_at: Sequence[float] | None = None,
    rtol: float = 1e-7,
    atol: float = 1e-9,
) -> SampleTrajectory:
    """Solve dx/dt = velocity(t, x) from ``t0`` to ``t1`` (either direction) for samples ``x0``.

    Args:
        velocity: callable ``v(t, x)``, t a 0-d tensor, x (n, d).
        x0: (n, d) starting samples; a tensor keeps its dtype and device.
        method: ``"rk4"`` (fixed step, 3/8 rule), ``"euler"``, ``"midpoint"`` or
            ``"dopri5"`` (adaptive, ``rtol``/``atol``).
        n_steps: number of equal steps for the fixed-step methods.
        save_at: fractions in [0, 1] of the way from t0 to t1 at which to save
            (default: the two ends); repeats collapse. Fixed-step methods snap them to
            the step grid.
    Runs under ``torch.no_grad()``.
    """
    check_option(method, Method, "method")
    n_steps = check_int(n_steps, "n_steps", ge=1, example=100)
    x = as_points(x0, "x0")
    t0, t1 = check_real(t0, "t0"), check_real(t1, "t1")
    if t0 == t1:
        raise ValueError(f"t0 and t1 must differ, got t0 = t1 = {t0:g}")
    fractions = [0.0, 1.0] if save_at is None else [float(f) for f in save_at]
    if not fractions or any(not (0.0 <= f <= 1.0) for f in fractions):
        raise ValueError(f"save_at must be fractions in [0, 1], got {save_at!r}")
    if any(b < a for a, b in zip(fractions[:-1], fractions[1:], strict=True)):
        raise ValueError(f"save_at must be increasing, got {save_at!r}")
    fractions = sorted(set(fractions))
    func = _Counted(velocity)
    keep_first = fractions[0] == 0.0
    if method in _FIXED:
        index = sorted({0, *(round(f * n_steps) for f in fractions)})
        grid = torch.linspace(float(t0), float(t1), n_steps + 1, dtype=x.dtype, device=x.device)
        grid = grid[: index[-1] + 1]
        t_save = grid[index]
        # torchdiffeq calls this with the requested (un-negated) times in either direction
        opts: dict[str, Any] = {
            "options": {"grid_constructor": lambda _f, _y0, t: grid.to(t.dtype)}
        }
    else:
        span = float(t1) - float(t0)
        t_save = torch.tensor(
            [float(t0)] + [float(t0) + f * span for f in fractions if f > 0.0],
            dtype=x.dtype,
            device=x.device,
        )
        # the velocity may be undefined beyond the last saved time: step_t makes the
        # last step land on it instead of stepping past it, and an explicit first step replaces
        # torchdiffeq's initial-step probe, which may evaluate far outside
        options = {"step_t": t_save[-1:], "first_step": abs(span) / 100}
        opts = {"rtol": rtol, "atol": atol, "options": options}
    with torch.no_grad():
        xs = odeint(func, x, t_save, method=method, **opts)
    if not keep_first:
        t_save, xs = t_save[1:], xs[1:]
    if not bool(torch.isfinite(xs).all()):
        raise FloatingPointError(
            "the integration produced NaN or inf; reduce the step or check the velocity"
        )
    return SampleTrajectory(t=t_save, x=xs, n_evals=func.n, method=method)


def sample_forward(
    velocity: Callable[[Tensor, Tensor], Any],
    x0: Any,
    tau: float,
    *,
    t_start: float = 0.0,
    **kwargs: Any,
) -> SampleTrajectory:
    """Push data-side samples from ``t_start`` (default 0) to the noise end t = tau."""
    tau = check_real(tau, "tau", gt=0)
    return integrate(velocity, x0, t_start, tau, **kwargs)


def sample_backward(
    velocity: Callable[[Tensor, Tensor], Any],
    x_tau: Any,
    tau: float,
    *,
    t_end: float = 0.0,
    **kwargs: Any,
) -> SampleTrajectory:
    """Pull noise samples from t = tau back to ``t_end`` (default 0, the data end)."""
    tau = check_real(tau, "tau", gt=0)
    return integrate(velocity, x_tau, tau, t_end, **kwargs)
