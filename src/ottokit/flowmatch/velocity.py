"""Exact marginal velocities of Gaussian probability paths (seed 002; REFERENCE.md).

For x_t = m_t y + sigma_t eps with y ~ P_0 and eps ~ N(0, I), the marginal P_t
obeys the continuity equation d_t P_t = -div(nu_t P_t) with

    nu_t(x) = E[d_m y + d_sigma eps | x_t = x]
            = (d_sigma/sigma) x + (d_m - m d_sigma/sigma) ybar_t(x),

ybar_t(x) = E[y | x_t = x] the posterior mean. By Tweedie's formula
m ybar = x + sigma^2 grad log P_t, so

    nu_t = grad[(d_m/2m)|x|^2 + (d_m sigma^2/m - sigma d_sigma) log P_t]

is a gradient field: its kinetic energy E|nu_t|^2 is the squared W2 speed v2(t)^2
(the equality case T S_dot = v2^2 of the seed's speed limit).

:class:`ExactVelocity` does this for an empirical data set with a chunked,
streaming log-sum-exp; :class:`GaussianMixtureVelocity` in closed form for a
Gaussian mixture. Both are callables ``v(t, x)`` (one time per call) as
``torchdiffeq.odeint`` expects, and both can sample their marginal P_t.
``ExactVelocity(..., sharded=True)`` takes one share of the data set per
torch.distributed rank and combines the shares with collectives.

:class:`RotationalVelocity` is the mean local velocity of the paper's rotational
forward process (Fig. 7) over a data set, which is not a gradient.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from ottokit._checks import check_instance, check_int
from ottokit.distributed import (
    all_gather_cat,
    all_reduce,
    broadcast,
    check_same,
    rank,
    world_size,
)
from ottokit.flowmatch._common import (
    as_points,
    as_weights,
    gaussian_softmax_mean,
    like_input,
    scalar_time,
)
from ottokit.flowmatch.distributions import GaussianMixture
from ottokit.flowmatch.schedules import Schedule
from ottokit.thermo import RotationalDiffusion

__all__ = [
    "VelocityField",
    "MarginalPath",
    "ExactVelocity",
    "GaussianMixtureVelocity",
    "RotationalVelocity",
]


@runtime_checkable
class VelocityField(Protocol):
    """Anything called as ``v(t, x)`` with a single time ``t`` and points ``x`` (n, d)."""

    def __call__(self, t: Any, x: Any) -> Any: ...


@runtime_checkable
class MarginalPath(Protocol):
    """A velocity field that knows its horizon ``tau`` and can sample its marginal P_t."""

    tau: float
    dim: int

    def __call__(self, t: Any, x: Any) -> Any: ...

    def sample_marginal(
        self, t: float, n: int, generator: torch.Generator | None = None
    ) -> Tensor: ...


def _finite_rates(out: Any, t: float, need_d_sigma: bool = True) -> None:
    bad = not math.isfinite(float(out.d_m_t)) or (
        need_d_sigma and not math.isfinite(float(out.d_sigma_t))
    )
    if bad:
        raise ValueError(
            f"the schedule's derivatives are not finite at t = {t:g} "
            f"(d_m = {float(out.d_m_t)}, d_sigma = {float(out.d_sigma_t)}); "
            "the velocity is undefined there, evaluate at a slightly later time"
        )


class ExactVelocity:
    """Exact marginal velocity of a Gaussian path started at an empirical data set.

    Args:
        schedule: the path's :class:`~ottokit.flowmatch.schedules.Schedule`.
        data: (N, d) data points y_k; with ``sharded=True``, this rank's share of them.
        weights: (N,) probability weights w_k (default uniform); with ``sharded=True``,
            the weights of this rank's share, all ranks' shares summing to 1.
        sharded: the data set is split across the ranks of the initialised process group
            (``torch.distributed``), each rank holding one share (any sizes, empty
            included; e.g. ``ottokit.distributed.shard_rows(data)``). Every evaluation is
            then a collective: all ranks call it with the same ``t`` and queries (checked;
            a ValueError otherwise) and all get the velocity of the whole data set. Each
            rank's log-sum-exp and posterior mean are combined by a max-stabilised
            all-reduce, so the data set need not fit one device. Sharded evaluations do
            not propagate gradients to the queries (refused when asked). Without a
            process group, the same as ``sharded=False``.
        query_chunk: block size of the queries in the streaming log-sum-exp.
        data_chunk: block size of the data points in the streaming log-sum-exp; memory
            is O(query_chunk * data_chunk) for any number of queries and data points.

    The posterior over data points given x_t = x has weights proportional to
    w_k exp(-|x - m y_k|^2 / 2 sigma^2). Computation follows the dtype and
    device of the query points (float64 advised near t = 0, where the logits
    scale as 1/sigma^2).

    Limits. At t = tau (m = 0) the posterior is the prior and ybar is the data
    mean; the formula needs no special case. At t = 0 (sigma = 0) P_0 is the
    empirical measure: ybar_0(x) is the data point nearest to x (the
    sigma -> 0 limit of the posterior), and since x_0 = y does not depend on
    eps, E[eps | x_0] = 0, so nu_0(x) = d_m ybar_0(x) (finite even when
    d_sigma(0) = inf, as for VP schedules).
    """

    def __init__(
        self,
        schedule: Schedule,
        data: Any,
        weights: Any = None,
        *,
        sharded: bool = False,
        query_chunk: int = 1024,
        data_chunk: int = 4096,
    ) -> None:
        self.schedule = check_instance(schedule, Schedule, "schedule")
        if not isinstance(sharded, bool):
            raise TypeError(f"sharded must be True or False, got {type(sharded).__name__}")
        self.sharded = sharded
        self.data = as_points(data, "data", allow_empty=sharded)
        n = self.data.shape[0]
        if sharded:
            check_same({"the data's dimension d": self.data.shape[1]})
            n_total = int(all_reduce(torch.tensor(n, dtype=torch.int64), "sum"))
            if n_total == 0:
                raise ValueError("data is empty on every rank; give the ranks the data set")
        if weights is None:
            w = torch.full((n,), 1.0 / (n_total if sharded else n), dtype=torch.float64)
        else:
            w = as_weights(weights, n, sharded=sharded)
        keep = w > 0  # zero-weight points never contribute; dropping them keeps every logit finite
        self.data = self.data[keep.to(self.data.device)]
        total = w[keep].sum()
        self.weights = (w[keep] / (all_reduce(total, "sum") if sharded else total)).to(
            self.data.device
        )
        self.query_chunk = check_int(query_chunk, "query_chunk", ge=1, example=1024)
        self.data_chunk = check_int(data_chunk, "data_chunk", ge=1, example=4096)
        self._cache: dict[tuple[torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}

    @property
    def tau(self) -> float:
        return self.schedule.tau

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    def _data_like(self, x: Tensor) -> tuple[Tensor, Tensor]:
        key = (x.dtype, x.device)
        if key not in self._cache:
            self._cache[key] = (
                self.data.to(dtype=x.dtype, device=x.device),
                torch.log(self.weights).to(dtype=x.dtype, device=x.device),
            )
        return self._cache[key]

    def _posterior(self, t: Any, x: Any) -> tuple[Tensor, Tensor, Tensor, Any]:
        xx = as_points(x, "x", dim=self.dim)
        tt = scalar_time(t, dtype=xx.dtype, device=xx.device)
        if self.sharded:
            if torch.is_grad_enabled() and xx.requires_grad:
                raise ValueError(
                    "a sharded ExactVelocity does not propagate gradients (its all-reduce "
                    "detaches them); pass x.detach() or evaluate under torch.no_grad()"
                )
            check_same({"t": tt, "x": xx})
        out = self.schedule(tt)
        y, log_w = self._data_like(xx)
        m, sigma = out.m_t, out.sigma_t
        chunks = {"query_chunk": self.query_chunk, "data_chunk": self.data_chunk}
        if float(sigma) == 0.0:
            # zero temperature: the nearest m y_k, i.e. argmax of m <x, y> - m^2 |y|^2 / 2
            ybar, lse = gaussian_softmax_mean(xx, y, y, log_w, m, 0.5 * m * m, hard=True, **chunks)
        else:
            inv_var = 1.0 / (sigma * sigma)
            ybar, lse = gaussian_softmax_mean(
                xx, y, y, log_w, m * inv_var, 0.5 * m * m * inv_var, **chunks
            )
        if self.sharded:
            ybar, lse = _combine_shards(ybar, lse, hard=float(sigma) == 0.0)
        return xx, ybar, lse, out

    def posterior_mean(self, t: Any, x: Any) -> Any:
        """ybar_t(x) = E[y | x_t = x], shape (n, d)."""
        _, ybar, _, _ = self._posterior(t, x)
        return like_input(ybar, x)

    def __call__(self, t: Any, x: Any) -> Any:
        """nu_t(x), shape (n, d): d_m ybar + d_sigma (x - m ybar)/sigma."""
        xx, ybar, _, out = self._posterior(t, x)
        if float(out.sigma_t) == 0.0:
            _finite_rates(out, float(t), need_d_sigma=False)
            return like_input(out.d_m_t * ybar, x)
        _finite_rates(out, float(t))
        eps_hat = (xx - out.m_t * ybar) / out.sigma_t
        return like_input(out.d_m_t * ybar + out.d_sigma_t * eps_hat, x)

    def log_density(self, t: Any, x: Any) -> Any:
        """log P_t(x) of the Gaussian-smoothed data, shape (n,); needs sigma_t > 0."""
        xx, _, lse, out = self._posterior(t, x)
        sigma = out.sigma_t
        if float(sigma) == 0.0:
            raise ValueError("P_0 is the empirical measure (no density); evaluate at t > 0")
        sq = (xx * xx).sum(dim=1)
        d = xx.shape[1]
        value = lse - 0.5 * sq / sigma**2 - 0.5 * d * torch.log(2 * math.pi * sigma**2)
        return like_input(value, x)

    def sample_marginal(self, t: float, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of P_t: x = m_t y + sigma_t eps with y resampled by weight.

        Sharded: a collective; every rank returns the same draws. Rank 0's ``generator``
        picks each draw's shard and its noise, the owning rank's picks the data point.
        """
        out = self.schedule(torch.tensor(float(t), dtype=torch.float64))
        if self.sharded:
            y, eps = self._sharded_draws(int(n), generator)
        else:
            idx = torch.multinomial(
                self.weights.cpu(), int(n), replacement=True, generator=generator
            )
            eps = torch.randn(int(n), self.dim, generator=generator, dtype=torch.float64)
            y = self.data.cpu().double()[idx]
        return (out.m_t * y + out.sigma_t * eps).to(dtype=self.data.dtype, device=self.data.device)

    def _sharded_draws(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(y, eps) for ``n`` draws from the sharded data set, the same on every rank."""
        w = self.weights.cpu()
        mass = all_gather_cat(w.sum().reshape(1))  # each shard's share of the probability
        owner = torch.multinomial(mass, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        owner, eps = broadcast(owner), broadcast(eps)
        mine = int((owner == rank()).sum())
        idx = (
            torch.multinomial(w, mine, replacement=True, generator=generator)
            if mine
            else torch.zeros(0, dtype=torch.int64)
        )
        y = torch.empty(n, self.dim, dtype=torch.float64)
        # the gather lists the draws by owning rank; a stable sort of owner does the same
        mine_y = self.data[idx.to(self.data.device)].cpu().double()
        y[torch.argsort(owner, stable=True)] = all_gather_cat(mine_y)
        return y, eps


def _combine_shards(ybar: Tensor, lse: Tensor, *, hard: bool) -> tuple[Tensor, Tensor]:
    """The whole data set's posterior mean and log-sum-exp from every rank's share of them.

    With L_r = logsumexp over rank r's share and M = max_r L_r, the total is
    M + log sum_r exp(L_r - M) and the mean is sum_r exp(L_r - M) ybar_r / sum_r exp(L_r - M);
    a share with negligible weight (or none) gets exp(L_r - M) = 0. ``hard``: the arg-max
    point of the best share (the lowest rank among exact ties).
    """
    m = all_reduce(lse, "max")
    if hard:
        mine = torch.where(lse == m, float(rank()), float(world_size()))
        winner = all_reduce(mine, "min") == rank()
        return all_reduce(torch.where(winner[:, None], ybar, 0.0), "sum"), m
    scale = torch.exp(lse - m)
    # an empty share's mean is 0/0: where() drops it along with every zero scale
    part = torch.where(scale[:, None] > 0, ybar * scale[:, None], 0.0)
    total = all_reduce(torch.cat([part, scale[:, None]], dim=1), "sum")
    return total[:, :-1] / total[:, -1:], m + torch.log(total[:, -1])


class GaussianMixtureVelocity:
    """Closed-form marginal velocity of a Gaussian path started at a Gaussian mixture.

    Data P_0 = sum_k w_k N(mu_k, Sigma_k). At time t the marginal is again a
    mixture, P_t = sum_k w_k N(m mu_k, C_k) with C_k = m^2 Sigma_k + sigma^2 I.
    Given component k, (y, eps, x_t) is jointly Gaussian with Cov(y, x_t) = m Sigma_k
    and Cov(eps, x_t) = sigma I, so

        u_k(x) = E[d_m y + d_sigma eps | x, k] = d_m mu_k + (1/2) dC_k/dt C_k^{-1} (x - m mu_k),

    with (1/2) dC_k/dt = m d_m Sigma_k + sigma d_sigma I. Each u_k transports its
    own component (C_k and dC_k/dt commute, so the covariance ODE
    dC/dt = A C + C A^T holds with A = (1/2) dC/dt C^{-1}), and the marginal velocity
    is the posterior-weighted field nu_t(x) = sum_k pi_k(x) u_k(x) with
    pi_k = w_k N_k(x)/P_t(x): then d_t P_t = sum_k w_k d_t N_k = -div(nu_t P_t).

    Args:
        schedule: the path's schedule.
        means: (K, d); covs: (K, d, d) symmetric positive definite; weights: (K,)
            (default uniform).
    """

    def __init__(self, schedule: Schedule, means: Any, covs: Any, weights: Any = None) -> None:
        self.schedule = check_instance(schedule, Schedule, "schedule")
        self.mixture = GaussianMixture(means, covs, weights)
        # Sigma_k = U_k diag(lam_k) U_k^T, so C_k = U_k diag(m^2 lam_k + sigma^2) U_k^T:
        # one eigendecomposition here, no factorisation per time step
        self._eigvals, self._eigvecs = torch.linalg.eigh(self.mixture.covs)

    @classmethod
    def of(cls, schedule: Schedule, mixture: GaussianMixture) -> GaussianMixtureVelocity:
        """The velocity for an existing :class:`GaussianMixture` data distribution."""
        return cls(schedule, mixture.means, mixture.covs, mixture.weights)

    @property
    def tau(self) -> float:
        return self.schedule.tau

    @property
    def dim(self) -> int:
        return self.mixture.dim

    def _evaluate(self, t: Any, x: Any, *, velocity: bool) -> tuple[Tensor, Tensor | None]:
        """``(log(w_k N_k(x)), u_k(x))``, shapes (K, n) and (K, n, d) (None unless asked)."""
        xx = as_points(x, "x", dim=self.dim)
        tt = scalar_time(t, dtype=xx.dtype, device=xx.device)
        out = self.schedule(tt)
        if velocity:
            _finite_rates(out, float(tt))
        cast = {"dtype": xx.dtype, "device": xx.device}
        means = self.mixture.means.to(**cast)
        lam, vecs = self._eigvals.to(**cast), self._eigvecs.to(**cast)
        c_eig = out.m_t**2 * lam + out.sigma_t**2  # eigenvalues of C_k, (K, d)
        # coordinates of x - m mu_k in the eigenbasis of Sigma_k, (K, n, d)
        z = torch.einsum("kji,knj->kni", vecs, xx[None, :, :] - out.m_t * means[:, None, :])
        log_n = -0.5 * ((z * z) / c_eig[:, None, :]).sum(dim=2)
        log_n = log_n - 0.5 * torch.log(2 * math.pi * c_eig).sum(dim=1)[:, None]
        log_w = torch.log(self.mixture.weights).to(**cast)
        if not velocity:
            return log_n + log_w[:, None], None
        rate = (out.m_t * out.d_m_t * lam + out.sigma_t * out.d_sigma_t) / c_eig  # (1/2) C' C^-1
        u = out.d_m_t * means[:, None, :] + torch.einsum("kij,knj->kni", vecs, z * rate[:, None, :])
        return log_n + log_w[:, None], u

    def marginal(self, t: float) -> GaussianMixture:
        """P_t = sum_k w_k N(m_t mu_k, m_t^2 Sigma_k + sigma_t^2 I), a :class:`GaussianMixture`."""
        out = self.schedule(torch.tensor(float(t), dtype=torch.float64))
        eye = torch.eye(self.dim, dtype=torch.float64)
        covs = out.m_t**2 * self.mixture.covs + out.sigma_t**2 * eye
        return GaussianMixture(out.m_t * self.mixture.means, covs, self.mixture.weights)

    def log_density(self, t: Any, x: Any) -> Any:
        """log P_t(x), shape (n,)."""
        log_terms, _ = self._evaluate(t, x, velocity=False)
        return like_input(torch.logsumexp(log_terms, dim=0), x)

    def density(self, t: Any, x: Any) -> Any:
        """P_t(x), shape (n,)."""
        value = self.log_density(t, x)
        return value.exp() if isinstance(value, Tensor) else np.exp(value)

    def responsibilities(self, t: Any, x: Any) -> Any:
        """Posterior component probabilities pi_k(x) at time t, shape (n, K)."""
        log_terms, _ = self._evaluate(t, x, velocity=False)
        return like_input(torch.softmax(log_terms, dim=0).T, x)

    def __call__(self, t: Any, x: Any) -> Any:
        """nu_t(x) = sum_k pi_k(x) u_k(x), shape (n, d)."""
        log_terms, u = self._evaluate(t, x, velocity=True)
        pi = torch.softmax(log_terms, dim=0)  # (K, n)
        return like_input((pi[:, :, None] * u).sum(dim=0), x)

    def sample_marginal(self, t: float, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of P_t = law of m_t y + sigma_t eps (float64, CPU)."""
        out = self.schedule(torch.tensor(float(t), dtype=torch.float64))
        y = self.mixture.sample(n, generator)
        eps = torch.randn(int(n), self.dim, generator=generator, dtype=torch.float64)
        return out.m_t * y + out.sigma_t * eps


class RotationalVelocity:
    """Mean local velocity of Fig. 7's rotational diffusion started at an empirical data set.

    For the forward process of :class:`~ottokit.thermo.RotationalDiffusion` from the data
    y_k (weights w_k), P_t = sum_k w_k N(M_t y_k, c_t I) and

        nu_t(x) = A_t x - T_t grad log P_t(x) = A_t x + T_t (x - M_t ybar_t(x)) / c_t,

    ybar_t(x) the posterior mean of y given x_t = x. With M_t = e^Lambda R(theta),
    |M y|^2 = e^{2 Lambda} |y|^2 and <x, M y> = e^Lambda <R^T x, y>, so the posterior is
    :class:`ExactVelocity`'s with m = e^Lambda and sigma^2 = c_t at the query R(theta)^T x.
    nu_t moves P_t like the Fokker-Planck current (so E|nu_t|^2 = T_t Sdot_t), and it is
    not a gradient when g != 0. At t = 0 the noise is off (T_0 = c_0 = 0) and
    nu_0(x) = A_0 x; near t = 0 the score term is stiff (T_t / c_t ~ 3 / 2t) off the data.
    """

    def __init__(
        self,
        process: RotationalDiffusion,
        data: Any,
        weights: Any = None,
        *,
        query_chunk: int = 1024,
        data_chunk: int = 4096,
    ) -> None:
        self.process = check_instance(process, RotationalDiffusion, "process")
        self.data = as_points(data, "data", dim=2)
        n = self.data.shape[0]
        w = torch.full((n,), 1.0 / n, dtype=torch.float64) if weights is None else as_weights(
            weights, n
        )
        keep = w > 0
        self.data = self.data[keep.to(self.data.device)]
        self.weights = (w[keep] / w[keep].sum()).to(self.data.device)
        self.query_chunk = check_int(query_chunk, "query_chunk", ge=1)
        self.data_chunk = check_int(data_chunk, "data_chunk", ge=1)

    @property
    def tau(self) -> float:
        return self.process.tau

    @property
    def dim(self) -> int:
        return 2

    def _coefficients(self, t: float) -> tuple[float, float, float, float, np.ndarray]:
        p = self.process
        return (
            float(np.exp(p.log_scale(t))),
            float(p.angle(t)),
            float(p.variance(t)),
            float(p.temperature(t)),
            p.A(t),
        )

    def posterior_mean(self, t: Any, x: Any) -> Any:
        """ybar_t(x) = E[y | x_t = x], shape (n, 2); needs t > 0."""
        xx = as_points(x, "x", dim=2)
        scale, theta, var, _, _ = self._coefficients(float(t))
        if var == 0.0:
            raise ValueError("the posterior is singular at t = 0; evaluate at t > 0")
        return like_input(self._ybar(xx, scale, theta, var), x)

    def _ybar(self, xx: Tensor, scale: float, theta: float, var: float) -> Tensor:
        c, s = math.cos(theta), math.sin(theta)
        rot = torch.tensor([[c, -s], [s, c]], dtype=xx.dtype, device=xx.device)
        y = self.data.to(dtype=xx.dtype, device=xx.device)
        log_w = torch.log(self.weights).to(dtype=xx.dtype, device=xx.device)
        ybar, _ = gaussian_softmax_mean(
            xx @ rot,  # rows R^T x
            y,
            y,
            log_w,
            scale / var,
            0.5 * scale * scale / var,
            query_chunk=self.query_chunk,
            data_chunk=self.data_chunk,
        )
        return ybar

    def __call__(self, t: Any, x: Any) -> Any:
        """nu_t(x), shape (n, 2)."""
        xx = as_points(x, "x", dim=2)
        tt = float(scalar_time(t, dtype=torch.float64, device="cpu"))
        scale, theta, var, temperature, a = self._coefficients(tt)
        a_t = torch.as_tensor(a, dtype=xx.dtype, device=xx.device)
        drift = xx @ a_t.T
        if var == 0.0:
            return like_input(drift, x)
        mean = self._ybar(xx, scale, theta, var) @ torch.as_tensor(
            self.process.propagator(tt), dtype=xx.dtype, device=xx.device
        ).T
        return like_input(drift + (temperature / var) * (xx - mean), x)

    def sample_marginal(self, t: float, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of P_t: x = M_t y + sqrt(c_t) eps, y resampled by weight (float64)."""
        m = torch.as_tensor(self.process.propagator(float(t)), dtype=torch.float64)
        var = float(self.process.variance(float(t)))
        idx = torch.multinomial(self.weights.cpu(), int(n), replacement=True, generator=generator)
        eps = torch.randn(int(n), 2, generator=generator, dtype=torch.float64)
        return self.data.cpu().double()[idx] @ m.T + math.sqrt(var) * eps
