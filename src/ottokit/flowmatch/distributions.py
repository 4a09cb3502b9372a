"""Densities for data sets and perturbed starts, and the chi^2 divergence D0 (seed 002).

The trade-off relation measures the perturbation of the reverse process's start
by D0 = int (P0' - P0)^2 / P0 dx, the chi^2 divergence of the perturbed start P0'
from the unperturbed one P0 (the noise distribution, N(0, I) for every schedule
here). :func:`chi2_divergence` gives it in closed form for Gaussian mixtures and
boxes against a Gaussian; :func:`chi2_quad` integrates any pair of 1-D densities
with ``scipy.integrate.quad``.

Distributions store float64 tensors on the CPU; ``sample`` takes an optional
``torch.Generator`` for reproducible draws.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from scipy import integrate, special
from torch import Tensor

from ottokit._checks import as_array, as_covariance, check_instance, check_int
from ottokit.flowmatch._common import as_float_tensor, as_points, as_weights, check_finite

__all__ = [
    "Distribution",
    "GaussianMixture",
    "Normal",
    "Uniform",
    "standard_normal",
    "chi2_divergence",
    "chi2_quad",
]

_SYM_RTOL = 1e-10


class Distribution(ABC):
    """A probability density on R^dim that can be sampled."""

    dim: int

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` independent draws, shape (n, dim), float64."""

    @abstractmethod
    def log_prob(self, x: Any) -> Tensor:
        """Log-density at points ``x`` of shape (n, dim); returns shape (n,)."""

    def breakpoints(self) -> tuple[float, ...]:
        """Points where the 1-D density is not smooth (quadrature splits there)."""
        return ()

    def cdf(self, x: Any) -> np.ndarray:
        """The 1-D distribution function at the points ``x`` (any shape), float64 NumPy.

        Subclasses with a closed form override this; the 1-D quadrature path of
        :func:`~ottokit.flowmatch.tradeoff` needs it.
        """
        raise ValueError(
            f"{type(self).__name__} has no closed-form CDF; use the sampled estimator "
            "(estimator='samples')"
        )

    def _check_1d(self, what: str) -> None:
        if self.dim != 1:
            raise ValueError(f"{what} needs a 1-D distribution; this one has dim {self.dim}")

    def _points(self, x: Any) -> Tensor:
        return as_points(x, "x", dim=self.dim, dtype=torch.float64, device="cpu")


def _as_covariances(covs: Any, k: int, d: int) -> Tensor:
    c = as_float_tensor(covs, "covs", dtype=torch.float64, device="cpu")
    if c.shape != (k, d, d):
        raise ValueError(f"covs must have shape (K, d, d) = ({k}, {d}, {d}), got {tuple(c.shape)}")
    check_finite(c, "covs")
    asym = (c - c.transpose(1, 2)).abs().amax(dim=(1, 2))
    scale = c.abs().amax(dim=(1, 2)).clamp_min(1e-300)
    for j in range(k):
        if asym[j] > _SYM_RTOL * scale[j]:
            raise ValueError(f"covs[{j}] is not symmetric (max |C - C^T| = {float(asym[j]):.3g})")
    c = 0.5 * (c + c.transpose(1, 2))
    _, info = torch.linalg.cholesky_ex(c)
    for j in range(k):
        if info[j] != 0:
            eig = float(torch.linalg.eigvalsh(c[j]).min())
            raise ValueError(
                f"covs[{j}] is not positive definite (smallest eigenvalue {eig:.3g}); "
                "every covariance must be symmetric positive definite"
            )
    return c


class GaussianMixture(Distribution):
    """sum_k w_k N(mu_k, Sigma_k): ``means`` (K, d), ``covs`` (K, d, d), ``weights`` (K,)."""

    def __init__(self, means: Any, covs: Any, weights: Any = None) -> None:
        self.means = as_points(means, "means", dtype=torch.float64, device="cpu")
        k, self.dim = self.means.shape
        self.covs = _as_covariances(covs, k, self.dim)
        self.weights = (
            torch.full((k,), 1.0 / k, dtype=torch.float64)
            if weights is None
            else as_weights(weights, k)
        )
        self.chol = torch.linalg.cholesky(self.covs)

    @classmethod
    def one_d(cls, means: Any, stds: Any, weights: Any = None) -> GaussianMixture:
        """A 1-D mixture from component means and standard deviations (both length K)."""
        mu = np.atleast_1d(as_array(means, "means", finite=False))
        sd = np.atleast_1d(as_array(stds, "stds", finite=False))
        if mu.ndim != 1 or sd.shape != mu.shape:
            raise ValueError(
                f"means and stds must be vectors of one length, got {mu.shape}, {sd.shape}"
            )
        if not np.all(np.isfinite(sd)) or np.any(sd <= 0):
            raise ValueError(f"stds must be positive and finite, got {sd}")
        return cls(mu[:, None], (sd**2)[:, None, None], weights)

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = check_int(n, "n", ge=1)
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[comp] + torch.einsum("nij,nj->ni", self.chol[comp], z)

    def component_log_prob(self, x: Any) -> Tensor:
        """log N(x; mu_k, Sigma_k), shape (n, K)."""
        xx = self._points(x)
        diff = (xx[None, :, :] - self.means[:, None, :]).transpose(1, 2)  # (K, d, n)
        sol = torch.linalg.solve_triangular(self.chol, diff, upper=False)
        log_det = torch.log(torch.diagonal(self.chol, dim1=1, dim2=2)).sum(dim=1)
        quad = (sol * sol).sum(dim=1)  # (K, n)
        return (-0.5 * quad - log_det[:, None] - 0.5 * self.dim * math.log(2 * math.pi)).T

    def log_prob(self, x: Any) -> Tensor:
        return torch.logsumexp(self.component_log_prob(x) + torch.log(self.weights)[None, :], dim=1)

    def cdf(self, x: Any) -> np.ndarray:
        """sum_k w_k Phi((x - mu_k)/s_k) (1-D only)."""
        self._check_1d("cdf")
        xa = np.asarray(x, dtype=np.float64)[..., None]
        mu, sd = self.means[:, 0].numpy(), np.sqrt(self.covs[:, 0, 0].numpy())
        return (self.weights.numpy() * special.ndtr((xa - mu) / sd)).sum(axis=-1)

    def mean(self) -> Tensor:
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        mu = self.mean()
        centred = self.means - mu
        return torch.einsum("k,kij->ij", self.weights, self.covs) + torch.einsum(
            "k,ki,kj->ij", self.weights, centred, centred
        )

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.n_components}, dim={self.dim})"


class Normal(GaussianMixture):
    """N(mean, cov): a one-component :class:`GaussianMixture`."""

    def __init__(self, mean: Any, cov: Any) -> None:
        mu = as_float_tensor(mean, "mean", dtype=torch.float64, device="cpu").reshape(-1)
        d = mu.shape[0]
        c = cov.detach().cpu().double().numpy() if isinstance(cov, Tensor) else cov
        c = torch.as_tensor(as_covariance(c, "cov", d, sym_rtol=_SYM_RTOL))
        super().__init__(mu[None, :], c[None, :, :], None)

    def __repr__(self) -> str:
        return f"Normal(mean={self.means[0].tolist()}, cov={self.covs[0].tolist()})"


def standard_normal(dim: int) -> Normal:
    """N(0, I) in ``dim`` dimensions: the noise end P_tau of every schedule here."""
    dim = check_int(dim, "dim", ge=1)
    return Normal(torch.zeros(dim, dtype=torch.float64), torch.eye(dim, dtype=torch.float64))


class Uniform(Distribution):
    """The uniform density on the box [low, high] (vectors of length dim)."""

    def __init__(self, low: Any, high: Any) -> None:
        lo = as_float_tensor(low, "low", dtype=torch.float64, device="cpu").reshape(-1)
        hi = as_float_tensor(high, "high", dtype=torch.float64, device="cpu").reshape(-1)
        if lo.shape != hi.shape:
            raise ValueError(
                f"low and high must have one length, got {tuple(lo.shape)}, {tuple(hi.shape)}"
            )
        check_finite(lo, "low")
        check_finite(hi, "high")
        if bool((hi <= lo).any()):
            raise ValueError(
                f"need low < high in every coordinate, got low={lo.tolist()}, high={hi.tolist()}"
            )
        self.low, self.high, self.dim = lo, hi, int(lo.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(int(n), self.dim, generator=generator, dtype=torch.float64)
        return self.low + (self.high - self.low) * u

    def log_prob(self, x: Any) -> Tensor:
        xx = self._points(x)
        inside = ((xx >= self.low) & (xx <= self.high)).all(dim=1)
        log_vol = torch.log(self.high - self.low).sum()
        return torch.where(inside, -log_vol, torch.full_like(log_vol, -math.inf))

    def breakpoints(self) -> tuple[float, ...]:
        return (float(self.low[0]), float(self.high[0])) if self.dim == 1 else ()

    def cdf(self, x: Any) -> np.ndarray:
        """(x - low)/(high - low) clipped to [0, 1] (1-D only)."""
        self._check_1d("cdf")
        lo, hi = float(self.low[0]), float(self.high[0])
        return np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)

    def __repr__(self) -> str:
        return f"Uniform(low={self.low.tolist()}, high={self.high.tolist()})"


def chi2_divergence(p: Distribution, q: Normal | None = None) -> float:
    """chi^2(p || q) = int (p - q)^2 / q dx in closed form; ``q`` defaults to N(0, I).

    * ``p`` a Gaussian mixture: the integrand p^2/q is a sum of Gaussian
      exponentials, int N_j N_k / q = (2 pi)^{d/2} det(A)^{-1/2} exp(c + b^T A^{-1} b / 2)
      with A = S_j^-1 + S_k^-1 - S_q^-1 (+inf when A is not positive definite, e.g.
      N(0, s^2) against N(0, 1) with s^2 >= 2). Shifted mean: e^{|mu|^2} - 1
      (e - 1 for N(1, 1)); shifted variance in 1-D: 1/(s sqrt(2 - s^2)) - 1.
    * ``p`` a box [a, b] and ``q`` with diagonal covariance: a product over
      coordinates of sqrt(2 pi s^2)/(b - a)^2 int_a^b exp((x - m)^2 / 2 s^2) dx,
      with the integral through ``scipy.special.erfi``.
    """
    check_instance(p, Distribution, "p")
    q = standard_normal(p.dim) if q is None else check_instance(q, Distribution, "q")
    if not isinstance(q, GaussianMixture) or q.n_components != 1:
        raise ValueError("chi2_divergence needs a Gaussian q (a Normal); use chi2_quad for others")
    if q.dim != p.dim:
        raise ValueError(
            f"p has dimension {p.dim} but q has dimension {q.dim} (mismatched dimensions)"
        )
    if isinstance(p, GaussianMixture):
        return _chi2_mixture_normal(p, q)
    if isinstance(p, Uniform):
        return _chi2_box_normal(p, q)
    raise ValueError(f"no closed form for {type(p).__name__}; use chi2_quad (1-D)")


def _chi2_mixture_normal(p: GaussianMixture, q: GaussianMixture) -> float:
    d = p.dim
    prec = torch.linalg.inv(p.covs)  # (K, d, d)
    prec_q = torch.linalg.inv(q.covs[0])
    mu, mu_q = p.means, q.means[0]
    pm = torch.einsum("kij,kj->ki", prec, mu)
    mpm = (mu * pm).sum(dim=1)
    log_det = torch.logdet(p.covs)
    log_det_q = float(torch.logdet(q.covs[0]))
    terms = []
    for j in range(p.n_components):
        for k in range(p.n_components):
            a = prec[j] + prec[k] - prec_q
            _, info = torch.linalg.cholesky_ex(a)
            if info != 0:
                return math.inf
            b = pm[j] + pm[k] - prec_q @ mu_q
            c = -0.5 * (mpm[j] + mpm[k] - mu_q @ prec_q @ mu_q)
            c = c - 0.5 * (log_det[j] + log_det[k] - log_det_q) - 0.5 * d * math.log(2 * math.pi)
            log_int = (
                0.5 * d * math.log(2 * math.pi)
                - 0.5 * torch.logdet(a)
                + c
                + 0.5 * b @ torch.linalg.solve(a, b)
            )
            terms.append(torch.log(p.weights[j]) + torch.log(p.weights[k]) + log_int)
    return float(torch.expm1(torch.logsumexp(torch.stack(terms), dim=0)))


def _chi2_box_normal(p: Uniform, q: GaussianMixture) -> float:
    cov = q.covs[0]
    if bool((cov - torch.diag(torch.diagonal(cov))).abs().max() > 0):
        raise ValueError(
            "the box closed form needs a diagonal covariance for q; use chi2_quad (1-D)"
        )
    total = 0.0
    for i in range(p.dim):
        s = math.sqrt(float(cov[i, i]))
        m = float(q.means[0, i])
        a, b = float(p.low[i]), float(p.high[i])
        # int_a^b exp((x - m)^2 / 2 s^2) dx = s sqrt(pi/2) [erfi(u_b) - erfi(u_a)],
        # u = (x - m)/(s sqrt 2)
        span = special.erfi((b - m) / (s * math.sqrt(2))) - special.erfi(
            (a - m) / (s * math.sqrt(2))
        )
        integral = s * math.sqrt(math.pi / 2) * span
        if not math.isfinite(integral):
            return math.inf
        total += math.log(math.sqrt(2 * math.pi) * s * integral) - 2 * math.log(b - a)
    return math.expm1(total)


def chi2_quad(
    p: Distribution, q: Distribution, *, epsabs: float = 1e-12, epsrel: float = 1e-10
) -> float:
    """chi^2(p || q) for 1-D densities by ``scipy.integrate.quad`` over the real line.

    The integrand q (p/q - 1)^2 is evaluated from log-densities (no 0/0 in the
    tails) and the line is split at both densities' breakpoints. Returns +inf
    where p has mass where q has none. Warns if quad reports trouble.
    """
    check_instance(p, Distribution, "p")
    check_instance(q, Distribution, "q")
    if p.dim != 1 or q.dim != 1:
        raise ValueError(f"chi2_quad integrates 1-D densities, got dimensions {p.dim} and {q.dim}")

    def integrand(x: float) -> float:
        pt = torch.tensor([[x]], dtype=torch.float64)
        lp, lq = float(p.log_prob(pt)[0]), float(q.log_prob(pt)[0])
        if lq == -math.inf:
            return 0.0 if lp == -math.inf else math.inf
        u = lp - lq
        if u == 0.0:
            return 0.0
        # log |expm1(u)| without overflow for large u
        log_abs = u + math.log(-math.expm1(-u)) if u > 0 else math.log(-math.expm1(u))
        return math.exp(lq + 2.0 * log_abs)

    cuts = sorted(set(p.breakpoints()) | set(q.breakpoints()))
    edges = [-math.inf, *cuts, math.inf]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", integrate.IntegrationWarning)
            value, _ = integrate.quad(integrand, lo, hi, epsabs=epsabs, epsrel=epsrel, limit=200)
        for w in caught:
            warnings.warn(f"chi2_quad on [{lo}, {hi}]: {w.message}", RuntimeWarning, stacklevel=2)
        total += value
    return total
