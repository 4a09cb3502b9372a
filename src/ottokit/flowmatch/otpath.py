"""The exact optimal-transport path between data and noise (seed 002, "Optimal transport").

The W2 geodesic (McCann interpolation) from the data P_0 to the noise N(0, I)
moves every point on a straight line to its OT image, x_t = (1 - t/tau) y + (t/tau) T(y),
at constant W2 speed v2 = W2(P_0, P_tau)/tau, the minimiser of int v2^2 dt.

* :func:`ot_couple` pairs data samples with noise samples by an exact OT plan
  (POT network simplex; in 1-D the sorted, monotone pairing, which is exact);
  :func:`~ottokit.flowmatch.kernel.ot_path_velocity` regresses the velocity of
  the paired straight lines, as Ikeda, Uda, Okanohara & Ito (arXiv:2407.04495) do.
* :class:`MonotoneVelocity1D` is the exact path in 1-D for Gaussian-mixture
  data: T = Phi^{-1} o F, and the exact velocity of the interpolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import integrate, special
from torch import Tensor

from ottokit._checks import as_array, check_instance, check_real
from ottokit.flowmatch._common import as_points, exact_plan, like_input, scalar_time
from ottokit.flowmatch.distributions import GaussianMixture

__all__ = ["OTCoupling", "ot_couple", "MonotoneVelocity1D"]


@dataclass(frozen=True)
class OTCoupling:
    """Data points and their OT partners: ``noise[i]`` is the image of ``data[i]``."""

    data: Tensor
    noise: Tensor
    w2_squared: float  # mean |data_i - noise_i|^2 = W2^2 between the two clouds
    method: str  # "sorted" (1-D) or "network-simplex"


def ot_couple(data: Any, noise: Any) -> OTCoupling:
    """Exact OT pairing of two equal-size clouds (n, d) for the squared Euclidean cost.

    With uniform weights on n points each, an optimal vertex of the transport
    polytope is a permutation, read off POT's exact plan. In 1-D the monotone
    (sorted) pairing is optimal and is used directly.
    """
    y = as_points(data, "data")
    z = as_points(noise, "noise", dim=y.shape[1]).to(dtype=y.dtype, device=y.device)
    if z.shape[0] != y.shape[0]:
        raise ValueError(f"data and noise need as many points, got {y.shape[0]} and {z.shape[0]}")
    n = y.shape[0]
    if y.shape[1] == 1:
        perm = torch.empty(n, dtype=torch.long, device=y.device)
        perm[torch.argsort(y[:, 0])] = torch.argsort(z[:, 0])
        method = "sorted"
    else:
        plan = exact_plan(y.detach().cpu().numpy(), z.detach().cpu().numpy())
        cols = plan.argmax(axis=1)
        if np.unique(cols).size != n or not np.allclose(plan[np.arange(n), cols], 1.0 / n):
            raise RuntimeError(
                "the exact OT plan is not a permutation; cannot pair points one to one"
            )
        perm = torch.as_tensor(cols, device=y.device)
        method = "network-simplex"
    paired = z[perm]
    w2 = float(((y - paired) ** 2).sum(dim=1).mean())
    return OTCoupling(data=y, noise=paired, w2_squared=w2, method=method)


class MonotoneVelocity1D:
    """Exact OT path from a 1-D Gaussian mixture to N(0, 1) and its velocity.

    T(y) = Phi^{-1}(F(y)) is the monotone rearrangement (F the data CDF), the OT
    map for every convex cost in 1-D. The path x_t = (1 - s) y + s T(y), s = t/tau,
    has velocity nu_t(x) = (T(y) - y)/tau at the y with x_t(y) = x (x_t is strictly
    increasing in y). T is evaluated through log-CDFs (``scipy.special.log_ndtr``,
    ``ndtri_exp``) so the tails stay accurate; y is found by safeguarded Newton
    iterations from a tabulated start, to rounding level.
    """

    def __init__(self, data: GaussianMixture, tau: float = 1.0) -> None:
        hint = "use GaussianMixture.one_d(means, stds)"
        if check_instance(data, GaussianMixture, "data", hint=hint).dim != 1:
            raise ValueError(f"data must be a 1-D GaussianMixture, got dim {data.dim}; {hint}")
        self.data = data
        self.tau = check_real(tau, "tau", gt=0)
        self.dim = 1
        self._mu = data.means[:, 0].numpy()
        self._sd = np.sqrt(data.covs[:, 0, 0].numpy())
        self._log_w = np.log(data.weights.numpy())
        lo = float(np.min(self._mu - 9 * self._sd))
        hi = float(np.max(self._mu + 9 * self._sd))
        self._grid = np.linspace(lo, hi, 4001)
        self._grid_map = self._map(self._grid)

    def _log_pdf(self, y: np.ndarray) -> np.ndarray:
        z = (y[..., None] - self._mu) / self._sd
        return _lse(self._log_w - np.log(self._sd) - 0.5 * math.log(2 * math.pi) - 0.5 * z * z)

    def _map(self, y: np.ndarray) -> np.ndarray:
        z = (y[..., None] - self._mu) / self._sd
        log_cdf = _lse(self._log_w + special.log_ndtr(z))
        log_sf = _lse(self._log_w + special.log_ndtr(-z))
        lower = log_cdf <= math.log(0.5)
        out = np.empty_like(y)
        out[lower] = special.ndtri_exp(log_cdf[lower])
        out[~lower] = -special.ndtri_exp(log_sf[~lower])
        return out

    def _map_slope(self, y: np.ndarray, ty: np.ndarray) -> np.ndarray:
        """T'(y) = p(y) / phi(T(y))."""
        return np.exp(self._log_pdf(y) + 0.5 * ty * ty + 0.5 * math.log(2 * math.pi))

    def transport_map(self, y: Any) -> Any:
        """T(y) = Phi^{-1}(F(y)), elementwise."""
        ya = _numpy(y)
        return _like(self._map(ya), y)

    def inverse_map(self, z: Any) -> Any:
        """T^{-1}(z) = F^{-1}(Phi(z)): the data quantile at the normal level Phi(z), elementwise.

        Found by the same bracketed Newton iterations as the velocity, to rounding level.
        """
        za = np.atleast_1d(as_array(_numpy(z), "z"))  # a NaN level has no quantile
        y, _ = self._invert(1.0, za.ravel())
        return _like(y.reshape(za.shape), z)

    def flow(self, t: Any, y: Any) -> Any:
        """x_t(y) = (1 - t/tau) y + (t/tau) T(y), elementwise."""
        s = _fraction(t, self.tau)
        ya = _numpy(y)
        return _like((1 - s) * ya + s * self._map(ya), y)

    def _invert(self, s: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(y, T(y))`` with (1 - s) y + s T(y) = x, by bracketed Newton iterations."""
        if s == 0.0:
            return x.copy(), self._map(x)
        grid_x = (1 - s) * self._grid + s * self._grid_map
        j = np.clip(np.searchsorted(grid_x, x), 1, grid_x.size - 1)
        lo, hi = self._grid[j - 1].copy(), self._grid[j].copy()
        # outside the table: widen [lo, hi] by doubling steps until it brackets the root
        for side in (x < grid_x[0], x > grid_x[-1]):
            idx = np.flatnonzero(side)
            step = np.full(idx.size, self._grid[-1] - self._grid[0])
            inner = np.where(x[idx] < grid_x[0], self._grid[0], self._grid[-1])
            sign = np.where(x[idx] < grid_x[0], -1.0, 1.0)
            outer = inner + sign * step
            for _ in range(200):
                g = (1 - s) * outer + s * self._map(outer) - x[idx]
                short = sign * g < 0
                if not short.any():
                    break
                inner = np.where(short, outer, inner)
                step = np.where(short, 2 * step, step)
                outer = np.where(short, inner + sign * step, outer)
            lo[idx] = np.minimum(inner, outer)
            hi[idx] = np.maximum(inner, outer)
        y = np.clip(np.interp(x, grid_x, self._grid), lo, hi)
        eps = np.finfo(np.float64).eps
        for _ in range(100):
            ty = self._map(y)
            gy = (1 - s) * y + s * ty - x
            lo = np.where(gy < 0, y, lo)
            hi = np.where(gy > 0, y, hi)
            newton = y - gy / ((1 - s) + s * self._map_slope(y, ty))
            # converged: the residual is at rounding level, or Newton no longer moves y
            done = (np.abs(gy) <= 16 * eps * (1 + np.abs(x) + np.abs(ty))) | (
                np.abs(newton - y) <= 1e-14 * (1 + np.abs(y))
            )
            if done.all():
                return y, ty
            inside = (newton >= lo) & (newton <= hi)
            y = np.where(done, y, np.where(inside, newton, 0.5 * (lo + hi)))
        raise RuntimeError("inverting the OT interpolation did not converge")

    def __call__(self, t: Any, x: Any) -> Any:
        """nu_t(x) = (T(y) - y)/tau with x_t(y) = x; ``x`` of shape (n, 1)."""
        xx = as_points(x, "x", dim=1)
        tt = scalar_time(t, dtype=torch.float64, device="cpu")
        s = _fraction(float(tt), self.tau)
        xa = xx[:, 0].detach().cpu().double().numpy()
        y, ty = self._invert(s, xa)
        v = (ty - y) / self.tau
        out = torch.as_tensor(v, dtype=xx.dtype, device=xx.device)[:, None]
        return like_input(out, x)

    def sample_marginal(self, t: float, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of the interpolated P_t (float64, CPU)."""
        y = self.data.sample(n, generator)[:, 0].numpy()
        s = _fraction(t, self.tau)
        return torch.as_tensor((1 - s) * y + s * self._map(y))[:, None]

    def w2_squared(self) -> float:
        """W2(P_0, N(0, 1))^2 = int (T(y) - y)^2 p(y) dy by quadrature."""

        def f(y: float) -> float:
            ya = np.array([y])
            return float((self._map(ya)[0] - y) ** 2 * np.exp(self._log_pdf(ya)[0]))

        lo, hi = self._grid[0], self._grid[-1]
        cuts = np.linspace(lo, hi, 9)
        total = 0.0
        edges = [-math.inf, *cuts, math.inf]
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            total += integrate.quad(f, a, b, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
        return total


def _lse(a: np.ndarray) -> np.ndarray:
    """log-sum-exp over the last axis (scipy's is slow for the few components here)."""
    top = a.max(axis=-1)
    safe = np.where(np.isfinite(top), top, 0.0)
    return safe + np.log(np.exp(a - safe[..., None]).sum(axis=-1))


def _numpy(y: Any) -> np.ndarray:
    if isinstance(y, Tensor):
        return y.detach().cpu().double().numpy()
    return np.asarray(y, dtype=np.float64)


def _like(v: np.ndarray, ref: Any) -> Any:
    if isinstance(ref, Tensor):
        return torch.as_tensor(v, dtype=ref.dtype, device=ref.device)
    return v


def _fraction(t: Any, tau: float) -> float:
    value = check_real(t, "t")
    slack = 8 * np.finfo(np.float32).eps * tau  # float32 time grids may overshoot by an ulp
    if value < -slack or value > tau + slack:
        raise ValueError(f"t must lie in [0, tau] = [0, {tau:g}], got {value:g}")
    return min(max(value / tau, 0.0), 1.0)
