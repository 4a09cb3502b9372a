"""Discrete connection, curvature and holonomy of the discriminator potential.

Seed 001 §6, §9.2 (Def. 9.4, Lemmas 9.6-9.7, Prop. 9.8) and §10 (Algorithm 1). A generator
with flat parameters theta defines P_theta; a *potential* (section) assigns to it a function
phi_theta(x) on data space, in the exact JSD case phi_theta = log q - log rho_theta. Three
estimates: :class:`GaussianAffineModel` (closed form), :class:`KDEPotential` (a KDE of
G_theta(z_k) with fixed latent draws) and :class:`LearnedPotential` (a discriminator
fine-tuned at each theta, warm-started along a path).

Seed Def. 9.4 / Algorithm 1, with directions e_i, e_j and step Delta > 0::

    A_hat_theta(u)(x) = (grad_x phi_hat_{theta + Delta u}(x) - grad_x phi_hat_theta(x)) / Delta,
    F_hat = A_hat_{theta+Delta e_i}(e_j) - A_hat_theta(e_j) - A_hat_{theta+Delta e_j}(e_i)
            + A_hat_theta(e_i).

For a single-valued section F_hat telescopes to rounding; :func:`curvature` with
``connection="autograd"`` and :func:`curvature_exact` are non-telescoping checks of flatness,
and a learned potential's F_hat measures its path dependence (its lag behind the generator).
:func:`holonomy` returns g(end) - g(start) around a square loop. Why, and how to read the
estimates, is on the API reference page of :mod:`ottokit.gan` ("Connection, curvature and
holonomy"). All computations are in float64 torch tensors; x is an (n, d) set of points
(:func:`line_grid`, :func:`square_grid`).
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp
from torch.nn.functional import softplus
from torch.nn.utils import parameters_to_vector

from ottokit._checks import as_array, check_int, check_option, check_real
from ottokit._memory import check_memory

__all__ = [
    "DT",
    "Potential",
    "SectionPotential",
    "FunctionPotential",
    "GaussianAffineModel",
    "KDEPotential",
    "LearnedPotential",
    "ModuleGenerator",
    "Grid",
    "HolonomyResult",
    "gaussian_logpdf",
    "gaussian_mixture_logpdf",
    "line_grid",
    "square_grid",
    "connection",
    "connection_autograd",
    "curvature",
    "curvature_terms",
    "curvature_exact",
    "curvature_heatmap",
    "holonomy",
]

DT = torch.float64
UNIT_TOL = 1e-8
PARALLEL_TOL = 1e-6

LogDensity = Callable[[Tensor], Tensor]
Connection = Literal["difference", "autograd"]
OptimizerName = Literal["adam", "sgd"]
Bandwidth = Literal["scott"]


def _as_tensor(a: Any, name: str) -> Tensor:
    t = torch.as_tensor(a if isinstance(a, Tensor) else as_array(a, name, finite=False), dtype=DT)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    return t


def _check_theta(theta: Any, n: int, name: str = "theta") -> Tensor:
    t = _as_tensor(theta, name)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(
            f"{name} must be a flat parameter vector of length {n}, got shape {tuple(t.shape)}; "
            "flatten with torch.nn.utils.parameters_to_vector"
        )
    return t


def _check_direction(e: Any, n: int, name: str) -> Tensor:
    t = _check_theta(e, n, name)
    norm = float(torch.linalg.vector_norm(t))
    if abs(norm - 1.0) > UNIT_TOL:
        raise ValueError(
            f"{name} must be a unit vector (Algorithm 1 step 2), got norm {norm:.6g}; "
            f"pass {name} / {name}.norm()"
        )
    return t


def _check_pair(e_i: Any, e_j: Any, n: int) -> tuple[Tensor, Tensor]:
    a, b = _check_direction(e_i, n, "e_i"), _check_direction(e_j, n, "e_j")
    cos = abs(float(a @ b))
    if cos > 1.0 - PARALLEL_TOL:
        raise ValueError(
            f"e_i and e_j are parallel (|cos| = {cos:.8f}); they must span a plane -- use "
            "orthonormal directions (coordinate vectors or a QR of random vectors)"
        )
    return a, b


def _check_x(x: Any, dim: int) -> Tensor:
    t = _as_tensor(x, "x")
    if t.ndim == 1 and dim == 1:
        t = t.reshape(-1, 1)
    if t.ndim != 2 or t.shape[1] != dim or t.shape[0] == 0:
        raise ValueError(
            f"x must be an (n, {dim}) array of points in data space (dimension {dim}), got shape "
            f"{tuple(t.shape)}; build one with line_grid or square_grid"
        )
    return t


def _sq_matrix(a: Any, dim: int, name: str) -> Tensor:
    t = _as_tensor(a, name)
    if t.shape != (dim, dim):
        raise ValueError(f"{name} must be {dim} x {dim}, got shape {tuple(t.shape)}")
    return t


def gaussian_logpdf(mean: Any, cov: Any) -> LogDensity:
    """``x -> log N(x; mean, cov)`` for (n, d) points, differentiable (closed form, Cholesky)."""
    m = _as_tensor(mean, "mean").reshape(-1)
    d = m.shape[0]
    C = _sq_matrix(cov, d, "cov")
    try:
        L = torch.linalg.cholesky(C)
    except RuntimeError as exc:
        raise ValueError("cov must be symmetric positive definite") from exc
    P = torch.cholesky_inverse(L)
    const = -0.5 * d * math.log(2 * math.pi) - torch.log(torch.diagonal(L)).sum()

    def logpdf(x: Tensor) -> Tensor:
        r = x - m
        return const - 0.5 * ((r @ P) * r).sum(-1)

    return logpdf


def gaussian_mixture_logpdf(weights: Any, means: Any, covs: Any) -> LogDensity:
    """``x -> log sum_k w_k N(x; m_k, C_k)``.

    ``weights`` (K,) positive, summing to 1; ``means`` (K, d); ``covs`` (K, d, d) or (K,) variances.
    """
    w = _as_tensor(weights, "weights").reshape(-1)
    if (w <= 0).any() or abs(float(w.sum()) - 1.0) > 1e-10:
        raise ValueError("weights must be positive and sum to 1")
    M = _as_tensor(means, "means")
    if M.ndim == 1:
        M = M.reshape(-1, 1)
    if M.shape[0] != w.shape[0]:
        raise ValueError(f"means must have {w.shape[0]} rows (one per weight), got {M.shape[0]}")
    d = M.shape[1]
    C = _as_tensor(covs, "covs")
    if C.ndim == 1:
        C = C.reshape(-1, 1, 1) * torch.eye(d, dtype=DT)
    comps = [gaussian_logpdf(M[k], C[k]) for k in range(w.shape[0])]
    logw = torch.log(w)

    def logpdf(x: Tensor) -> Tensor:
        return torch.logsumexp(
            torch.stack([lw + f(x) for lw, f in zip(logw, comps, strict=True)]), 0
        )

    return logpdf


class Potential(ABC):
    """A (possibly path-dependent) estimate phi_hat_theta(x) of the discriminator potential.

    ``n_params`` is the length of the flat generator parameter theta, ``dim`` the data dimension.
    """

    n_params: int
    dim: int

    @abstractmethod
    def grad_along(self, path: Sequence[Tensor], x: Tensor) -> Tensor:
        """grad_x phi_hat at each point of ``path`` (visited in order), shape (len(path), n, dim).

        For a single-valued section each point is independent of the others; a learned potential
        fine-tunes at each point starting from the previous point's discriminator.
        """

    def check_theta(self, theta: Tensor) -> None:
        """Raise ValueError if theta is not an admissible parameter (hook; default accepts all)."""
        return None


class SectionPotential(Potential):
    """A single-valued section: phi_hat_theta(x) = ``value(theta, x)``, a torch function of both."""

    @abstractmethod
    def value(self, theta: Tensor, x: Tensor) -> Tensor:
        """phi_hat_theta at the (n, dim) points x, shape (n,)."""

    def grad_x(self, theta: Tensor, x: Tensor) -> Tensor:
        """grad_x phi_hat_theta(x), (n, dim); composable with ``torch.func`` transforms in theta."""
        return grad(lambda xx: self.value(theta, xx).sum())(x)

    def grad_along(self, path: Sequence[Tensor], x: Tensor) -> Tensor:
        return torch.stack([self.grad_x(p, x) for p in path])


class FunctionPotential(SectionPotential):
    """Wrap any differentiable ``fn(theta, x) -> (n,)`` as a single-valued section."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], n_params: int, dim: int) -> None:
        if not callable(fn):
            raise TypeError("fn must be callable (theta, x) -> values of shape (n,)")
        self.fn = fn
        self.n_params = check_int(n_params, "n_params", ge=1)
        self.dim = check_int(dim, "dim", ge=1)

    def value(self, theta: Tensor, x: Tensor) -> Tensor:
        return self.fn(theta, x)


class GaussianAffineModel(SectionPotential):
    """Exact section for the affine generator x = A z + b, z ~ N(0, I_d), d = 1 or 2 (case (a)).

    theta = (vec(A) row-major, b), length d^2 + d; rho_theta = N(b, Sigma), Sigma = A A^T
    (A full rank). phi_theta(x) = log q(x) - log rho_theta(x), the logit of the optimal JSD
    discriminator (seed §10), and

        grad_x phi_theta(x) = grad log q(x) + Sigma^{-1} (x - b).

    The determinant and inverse of A are written out elementwise (d <= 2) rather than with
    ``torch.linalg.solve``/``slogdet``: nested forward-mode derivatives of those two are wrong in
    current torch (pytorch/pytorch#192540, #196697), and :func:`curvature_exact` needs them.
    """

    def __init__(self, dim: int, target_logpdf: LogDensity) -> None:
        self.dim = check_int(dim, "dim", ge=1)
        if self.dim > 2:
            raise ValueError(f"dim must be 1 or 2, got {dim}")
        if not callable(target_logpdf):
            raise TypeError("target_logpdf must be callable x (n, d) -> log q(x) (n,)")
        self.target_logpdf = target_logpdf
        self.n_params = self.dim * self.dim + self.dim

    def theta_from(self, A: Any, b: Any) -> Tensor:
        """Flat theta from A (d x d) and b (d,)."""
        A_t = _sq_matrix(A, self.dim, "A")
        b_t = _as_tensor(b, "b").reshape(-1)
        if b_t.shape[0] != self.dim:
            raise ValueError(f"b must have length {self.dim}, got {b_t.shape[0]}")
        theta = torch.cat([A_t.reshape(-1), b_t])
        self.check_theta(theta)
        return theta

    def split(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        d = self.dim
        return theta[: d * d].reshape(d, d), theta[d * d :]

    def check_theta(self, theta: Tensor) -> None:
        A, _ = self.split(theta)
        s = torch.linalg.svdvals(A)
        if float(s[0]) == 0.0 or float(s[-1]) <= 1e-10 * float(s[0]):
            raise ValueError("A must be full rank (rho_theta = N(b, A A^T) needs a density)")

    def _det_inv(self, A: Tensor) -> tuple[Tensor, Tensor]:
        if self.dim == 1:
            det = A[0, 0]
            return det, (1.0 / det).reshape(1, 1)
        det = A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]
        adj = torch.stack([torch.stack([A[1, 1], -A[0, 1]]), torch.stack([-A[1, 0], A[0, 0]])])
        return det, adj / det

    def sample(self, theta: Tensor, z: Tensor) -> Tensor:
        """Generator G_theta(z) = z A^T + b for latent rows z (n, d)."""
        A, b = self.split(theta)
        return z @ A.T + b

    def log_density(self, theta: Tensor, x: Tensor) -> Tensor:
        """log rho_theta(x) = -|A^{-1}(x-b)|^2/2 - log|det A| - d log(2 pi)/2."""
        A, b = self.split(theta)
        det, A_inv = self._det_inv(A)
        y = (x - b) @ A_inv.T
        return (
            -0.5 * (y * y).sum(-1)
            - torch.log(torch.abs(det))
            - 0.5 * self.dim * math.log(2 * math.pi)
        )

    def value(self, theta: Tensor, x: Tensor) -> Tensor:
        return self.target_logpdf(x) - self.log_density(theta, x)

    def connection_closed_form(self, theta: Tensor, u: Tensor, x: Tensor) -> Tensor:
        """A_theta(u)(x) = d/dt grad_x phi_{theta + t u}(x) at t = 0, by hand.

        With u = (dA, db): d[Sigma^{-1}(x - b)] = -Sigma^{-1} dSigma Sigma^{-1} (x - b)
        - Sigma^{-1} db, dSigma = dA A^T + A dA^T (grad log q does not depend on theta).
        """
        A, b = self.split(theta)
        dA, db = self.split(u)
        S_inv = torch.linalg.inv(A @ A.T)
        dS = dA @ A.T + A @ dA.T
        r = (x - b) @ S_inv  # rows Sigma^{-1}(x - b) (Sigma symmetric)
        return -(r @ dS @ S_inv) - db @ S_inv


class KDEPotential(SectionPotential):
    """phi_hat_theta(x) = log q(x) - log KDE_theta(x) with common random numbers (case (b)).

    KDE_theta(x) = (1/N) sum_k N(x; G_theta(z_k), h^2 I) with the latent draws z_k fixed once, so
    the estimate is a single-valued (and smooth) function of theta. ``bandwidth`` is a fixed
    h > 0 or ``"scott"``: h = s * N^{-1/(d+4)} with s the mean per-coordinate standard deviation
    of the samples at theta (still a function of theta alone).
    """

    def __init__(
        self,
        generator: Callable[[Tensor, Tensor], Tensor],
        z: Any,
        target_logpdf: LogDensity,
        bandwidth: float | str = "scott",
        *,
        n_params: int | None = None,
        dim: int | None = None,
    ) -> None:
        self.generator, self.n_params, self.dim = _generator_meta(generator, n_params, dim)
        if not callable(target_logpdf):
            raise TypeError("target_logpdf must be callable x (n, d) -> log q(x) (n,)")
        self.target_logpdf = target_logpdf
        self.z = _as_tensor(z, "z")
        if self.z.ndim != 2 or self.z.shape[0] < 2:
            raise ValueError(
                f"z must be an (N, latent_dim) array with N >= 2, got {tuple(self.z.shape)}"
            )
        if isinstance(bandwidth, str):
            check_option(bandwidth, Bandwidth, "bandwidth")
            self.bandwidth: float | str = bandwidth
        else:
            self.bandwidth = check_real(bandwidth, "bandwidth", gt=0, hint="e.g. 0.2 or 'scott'")

    def _h(self, samples: Tensor) -> Tensor | float:
        if self.bandwidth == "scott":
            n, d = samples.shape
            return samples.std(dim=0, correction=1).mean() * n ** (-1.0 / (d + 4))
        return float(self.bandwidth)

    def log_kde(self, theta: Tensor, x: Tensor) -> Tensor:
        """log KDE_theta(x) for (n, dim) points x."""
        s = self.generator(theta, self.z)
        h = self._h(s)
        d2 = ((x[:, None, :] - s[None, :, :]) ** 2).sum(-1)
        n, d = s.shape
        log_h = torch.log(torch.as_tensor(h, dtype=x.dtype))
        return (
            torch.logsumexp(-0.5 * d2 / h**2, dim=1)
            - math.log(n)
            - d * log_h
            - 0.5 * d * math.log(2 * math.pi)
        )

    def value(self, theta: Tensor, x: Tensor) -> Tensor:
        return self.target_logpdf(x) - self.log_kde(theta, x)


class ModuleGenerator:
    """A generator ``nn.Module`` z -> x as a function of its flat parameter vector.

    ``gen(theta, z)`` evaluates the module with the parameters ``theta`` (same layout as
    ``torch.nn.utils.parameters_to_vector(module.parameters())``) via ``functional_call``;
    ``theta0`` is the module's current parameter vector (float64).
    """

    def __init__(self, module: nn.Module, dim: int) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError("module must be a torch.nn.Module")
        self.module = module.to(DT)
        self._spec = [(k, v.shape) for k, v in module.named_parameters()]
        self.theta0 = parameters_to_vector(module.parameters()).detach().clone()
        self.n_params = int(self.theta0.numel())
        self.dim = check_int(dim, "dim", ge=1)

    def __call__(self, theta: Tensor, z: Tensor) -> Tensor:
        params, k = {}, 0
        for key, shape in self._spec:
            params[key] = theta[k : k + shape.numel()].reshape(shape)
            k += shape.numel()
        return functional_call(self.module, params, (z,))


def _carried(generator: Any, name: str) -> Any:
    """``n_params`` or ``dim`` as the generator carries it (GaussianAffineModel.sample,
    ModuleGenerator), else None."""
    owner = getattr(generator, "__self__", None)
    if isinstance(owner, GaussianAffineModel):
        return getattr(owner, name)
    return getattr(generator, name, None)


def _generator_meta(generator: Any, n_params: int | None, dim: int | None) -> tuple[Any, int, int]:
    if not callable(generator):
        raise TypeError("generator must be callable (theta, z) -> samples (N, dim)")
    n_params = _carried(generator, "n_params") if n_params is None else n_params
    dim = _carried(generator, "dim") if dim is None else dim
    if n_params is None or dim is None:
        raise ValueError(
            "pass n_params (length of theta) and dim (data dimension): the generator does not "
            "carry them (ModuleGenerator and GaussianAffineModel.sample do)"
        )
    return generator, check_int(n_params, "n_params", ge=1), check_int(dim, "dim", ge=1)


class LearnedPotential(Potential):
    """Logit of a discriminator fine-tuned along a path of generator parameters (case (c)).

    At the first point of a path the discriminator starts from ``discriminator`` (copied; the
    original is never modified) and is fine-tuned for ``n_init_steps`` steps; at every later point
    it starts from the previous point's discriminator (warm start) and takes ``n_steps`` steps.
    Each step is a full-batch step of the non-saturating JSD loss

        L_D = mean softplus(-D(real)) + mean softplus(D(G_theta(z)))

    on the fixed samples ``real`` and fixed latent draws ``z`` (common random numbers), with a
    fresh optimiser at each point, so the whole procedure is deterministic: two paths that start
    at the same theta give bit-identical first estimates, and any difference at a shared end point
    is path dependence (hysteresis), not sampling noise. The optimal logit of this loss on the
    population is log q - log rho_theta (seed §10).
    """

    def __init__(
        self,
        generator: Callable[[Tensor, Tensor], Tensor],
        discriminator: nn.Module,
        real: Any,
        z: Any,
        *,
        n_steps: int,
        lr: float = 0.1,
        optimizer: OptimizerName = "sgd",
        n_init_steps: int | None = None,
        n_params: int | None = None,
    ) -> None:
        real_t = _as_tensor(real, "real")
        if real_t.ndim == 1:
            real_t = real_t.reshape(-1, 1)
        if real_t.ndim != 2 or real_t.shape[0] < 2:
            raise ValueError(
                f"real must be an (N, dim) array of target samples, got {tuple(real_t.shape)}"
            )
        # the generator's own dimension where it carries one, so that a mismatch is caught
        carried_dim = _carried(generator, "dim") if callable(generator) else None
        self.generator, self.n_params, self.dim = _generator_meta(
            generator, n_params, real_t.shape[1] if carried_dim is None else carried_dim
        )
        if self.dim != real_t.shape[1]:
            raise ValueError(
                f"real has dimension {real_t.shape[1]} but the generator has {self.dim}"
            )
        if not isinstance(discriminator, nn.Module):
            raise TypeError("discriminator must be a torch.nn.Module x (n, dim) -> logit")
        self.discriminator = copy.deepcopy(discriminator).to(DT)
        self.real = real_t
        self.z = _as_tensor(z, "z")
        if self.z.ndim != 2:
            raise ValueError(f"z must be an (N, latent_dim) array, got {tuple(self.z.shape)}")
        self.n_steps = check_int(n_steps, "n_steps", ge=0)
        self.n_init_steps = (
            self.n_steps if n_init_steps is None else check_int(n_init_steps, "n_init_steps", ge=0)
        )
        self.lr = check_real(lr, "lr", gt=0, hint="use e.g. 0.1 (sgd) or 0.01 (adam)")
        self.optimizer = check_option(optimizer, OptimizerName, "optimizer")

    def _logit(self, D: nn.Module, x: Tensor) -> Tensor:
        out = D(x)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != (x.shape[0],):
            raise ValueError(
                f"discriminator must map (n, dim) to n logits, got shape {tuple(out.shape)}"
            )
        return out

    def loss(self, D: nn.Module, theta: Tensor) -> Tensor:
        """Non-saturating JSD discriminator loss at generator parameters theta."""
        with torch.no_grad():
            fake = self.generator(theta, self.z)
        return softplus(-self._logit(D, self.real)).mean() + softplus(self._logit(D, fake)).mean()

    def fine_tune(self, D: nn.Module, theta: Tensor, steps: int) -> nn.Module:
        """``steps`` full-batch optimiser steps on :meth:`loss` (in place; returns D)."""
        if steps == 0:
            return D
        params = list(D.parameters())
        opt: torch.optim.Optimizer
        if self.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=self.lr)
        else:
            opt = torch.optim.SGD(params, lr=self.lr)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            self.loss(D, theta).backward()
            opt.step()
        return D

    def _initial(self, theta: Tensor) -> nn.Module:
        """Discriminator fine-tuned for ``n_init_steps`` at theta from the initial one (cached:
        both paths of :func:`curvature` start at the same theta; the result is deterministic)."""
        cache = getattr(self, "_init_cache", None)
        if cache is not None and torch.equal(cache[0], theta):
            return copy.deepcopy(cache[1])
        D = copy.deepcopy(self.discriminator)
        with torch.enable_grad():
            self.fine_tune(D, theta, self.n_init_steps)
        self._init_cache = (theta.detach().clone(), copy.deepcopy(D))
        return D

    def discriminators_along(self, path: Sequence[Tensor]) -> list[nn.Module]:
        """The fine-tuned discriminator at each point of ``path`` (independent copies)."""
        if len(path) == 0:
            return []
        D = self._initial(path[0])
        out = [copy.deepcopy(D)]
        for p in path[1:]:
            with torch.enable_grad():
                self.fine_tune(D, p, self.n_steps)
            out.append(copy.deepcopy(D))
        return out

    def grad_x_of(self, D: nn.Module, x: Tensor) -> Tensor:
        """grad_x of the logit of D at the points x, (n, dim)."""
        xx = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            g = torch.autograd.grad(self._logit(D, xx).sum(), xx)[0]
        return g.detach()

    def grad_along(self, path: Sequence[Tensor], x: Tensor) -> Tensor:
        return torch.stack([self.grad_x_of(D, x) for D in self.discriminators_along(path)])


@dataclass(frozen=True)
class Grid:
    """Evaluation points ``points`` (m, d) with ``shape`` for reshaping and the 1-D ``axes``."""

    points: Tensor
    shape: tuple[int, ...]
    axes: tuple[np.ndarray, ...]


def line_grid(lo: float, hi: float, n: int) -> Grid:
    """n equally spaced points on [lo, hi] as an (n, 1) array (1-D heat maps)."""
    n, lo, hi = check_int(n, "n", ge=2), check_real(lo, "lo"), check_real(hi, "hi")
    if not hi > lo:
        raise ValueError(f"need lo < hi, got lo={lo}, hi={hi}")
    ax = np.linspace(lo, hi, n)
    return Grid(torch.as_tensor(ax, dtype=DT).reshape(-1, 1), (n,), (ax,))


def square_grid(lo: float, hi: float, n: int) -> Grid:
    """n x n grid on [lo, hi]^2 as (n*n, 2) points, row-major ('ij': first axis varies slowest)."""
    n, lo, hi = check_int(n, "n", ge=2), check_real(lo, "lo"), check_real(hi, "hi")
    if not hi > lo:
        raise ValueError(f"need lo < hi, got lo={lo}, hi={hi}")
    check_memory(8 * 8 * n * n, what=f"a {n} x {n} square grid", knob="lower n")
    ax = np.linspace(lo, hi, n)
    X, Y = np.meshgrid(ax, ax, indexing="ij")
    pts = torch.as_tensor(np.stack([X.ravel(), Y.ravel()], axis=1), dtype=DT)
    return Grid(pts, (n, n), (ax, ax))


def _check_potential(potential: Any) -> Potential:
    if not isinstance(potential, Potential):
        raise TypeError(
            "potential must be a Potential (GaussianAffineModel, KDEPotential, LearnedPotential, "
            f"FunctionPotential), got {type(potential).__name__}"
        )
    return potential


def _common(potential: Any, theta: Any, x: Any) -> tuple[Potential, Tensor, Tensor]:
    pot = _check_potential(potential)
    th = _check_theta(theta, pot.n_params)
    pot.check_theta(th)
    return pot, th, _check_x(x, pot.dim)


def connection(potential: Potential, theta: Any, direction: Any, delta: float, x: Any) -> Tensor:
    """A_hat_theta(u)(x) = (grad_x phi_hat_{theta+Delta u}(x) - grad_x phi_hat_theta(x)) / Delta.

    Seed Def. 9.4 / Algorithm 1 step 6; ``direction`` u is a unit vector of length n_params,
    ``delta`` > 0, ``x`` (n, dim). Returns (n, dim). For a learned potential the discriminator at
    theta + Delta u is warm-started from the one at theta (path theta -> theta + Delta u).
    Consistency (Lemma 9.6): |A_hat - A| = O(Delta) for an exact section.
    """
    pot, th, xx = _common(potential, theta, x)
    u = _check_direction(direction, pot.n_params, "direction")
    d = check_real(delta, "delta", gt=0, hint="use a small positive step such as 1e-3")
    g = pot.grad_along([th, th + d * u], xx)
    return (g[1] - g[0]) / d


def connection_autograd(potential: SectionPotential, theta: Any, direction: Any, x: Any) -> Tensor:
    """Exact connection A_theta(u)(x) = grad_x d/dt phi_{theta + t u}(x) |_{t=0} (seed Def. 6.3).

    Forward-mode (``torch.func.jvp``) derivative in theta of grad_x phi; single-valued sections
    only.
    """
    pot, th, xx = _common(potential, theta, x)
    if not isinstance(pot, SectionPotential):
        raise TypeError("connection_autograd needs a single-valued SectionPotential")
    u = _check_direction(direction, pot.n_params, "direction")
    return _A(pot, th, u, xx)


def _A(pot: SectionPotential, th: Tensor, u: Tensor, x: Tensor) -> Tensor:
    return jvp(lambda t: pot.grad_x(t, x), (th,), (u,))[1]


def curvature_terms(
    potential: Potential,
    theta: Any,
    e_i: Any,
    e_j: Any,
    delta: float,
    x: Any,
    *,
    connection: Connection = "difference",
) -> dict[str, Tensor]:
    """The four connection terms of Algorithm 1 step 6 and the path-wise corner gradients.

    Path 1 is theta -> theta+De_i -> c, path 2 is theta -> theta+De_j -> c, c = theta+De_i+De_j.
    Returns tensors (n, dim) under the keys ``A_i`` = A_hat_theta(e_i), ``A_j`` = A_hat_theta(e_j)
    (from paths 1 and 2), ``A_j_at_i`` = A_hat_{theta+De_i}(e_j), ``A_i_at_j`` =
    A_hat_{theta+De_j}(e_i), and ``grad_corner_1``, ``grad_corner_2`` (grad_x phi_hat at c reached
    along each path). ``connection="autograd"`` (single-valued sections only) replaces each
    difference quotient by the exact connection at its base point (no corner terms then).
    """
    pot, th, xx = _common(potential, theta, x)
    a, b = _check_pair(e_i, e_j, pot.n_params)
    d = check_real(delta, "delta", gt=0, hint="use a small positive step such as 1e-3")
    check_option(connection, Connection, "connection")
    p_i, p_j = th + d * a, th + d * b
    if connection == "autograd":
        if not isinstance(pot, SectionPotential):
            raise TypeError("connection='autograd' needs a single-valued SectionPotential")
        return {
            "A_i": _A(pot, th, a, xx),
            "A_j": _A(pot, th, b, xx),
            "A_j_at_i": _A(pot, p_i, b, xx),
            "A_i_at_j": _A(pot, p_j, a, xx),
        }
    g1 = pot.grad_along([th, p_i, p_i + d * b], xx)
    g2 = pot.grad_along([th, p_j, p_j + d * a], xx)
    return {
        "A_i": (g1[1] - g1[0]) / d,
        "A_j_at_i": (g1[2] - g1[1]) / d,
        "A_j": (g2[1] - g2[0]) / d,
        "A_i_at_j": (g2[2] - g2[1]) / d,
        "grad_corner_1": g1[2],
        "grad_corner_2": g2[2],
    }


def curvature(
    potential: Potential,
    theta: Any,
    e_i: Any,
    e_j: Any,
    delta: float,
    x: Any,
    *,
    connection: Connection = "difference",
) -> Tensor:
    """F_hat_theta(e_i, e_j)(x) of seed Def. 9.4 / Algorithm 1 steps 3-7, shape (n, dim).

    F_hat = A_hat_{theta+De_i}(e_j) - A_hat_theta(e_j) - A_hat_{theta+De_j}(e_i) + A_hat_theta(e_i),
    each A_hat taken along its own path (see :func:`curvature_terms`). For a single-valued section
    the terms telescope and F_hat is rounding; for a learned potential
    F_hat = (grad phi_hat^(1)(c) - grad phi_hat^(2)(c)) / Delta (path dependence). F_hat ~ Delta * F
    for a smooth connection; ``connection="autograd"`` gives the non-telescoping O(Delta^2)
    variant (module docstring).
    """
    t = curvature_terms(potential, theta, e_i, e_j, delta, x, connection=connection)
    return t["A_j_at_i"] - t["A_j"] - t["A_i_at_j"] + t["A_i"]


def curvature_exact(potential: SectionPotential, theta: Any, e_i: Any, e_j: Any, x: Any) -> Tensor:
    """The curvature 2-form F_theta(e_i, e_j)(x) = d_i A(e_j) - d_j A(e_i) (seed Def. 6.3).

    Computed for a single-valued section with nested forward-mode derivatives in the two orders,
    jvp_i(jvp_j(grad_x phi)) - jvp_j(jvp_i(grad_x phi)): two different computation graphs whose
    difference is zero only because mixed partials commute (Schwarz) -- the section of seed
    Def. 6.1 is flat, so the result is rounding. Shape (n, dim).
    """
    pot, th, xx = _common(potential, theta, x)
    if not isinstance(pot, SectionPotential):
        raise TypeError("curvature_exact needs a single-valued SectionPotential")
    a, b = _check_pair(e_i, e_j, pot.n_params)
    dA_ij = jvp(lambda t: _A(pot, t, b, xx), (th,), (a,))[1]
    dA_ji = jvp(lambda t: _A(pot, t, a, xx), (th,), (b,))[1]
    return dA_ij - dA_ji


def curvature_heatmap(
    potential: Potential,
    theta: Any,
    e_i: Any,
    e_j: Any,
    delta: float,
    grid: Grid,
    *,
    connection: Connection = "difference",
) -> dict[str, Any]:
    """Heat-map data for Algorithm 1 step 8: |F_hat(x)| on a line or a 2-D grid (no plotting).

    Returns ``{"axes": grid.axes, "abs_F": ndarray of grid.shape (Euclidean norm over the data
    dimension), "F": ndarray (m, dim)}``.
    """
    if not isinstance(grid, Grid):
        raise TypeError("grid must be a Grid from line_grid or square_grid")
    F = curvature(potential, theta, e_i, e_j, delta, grid.points, connection=connection)
    F_np = F.detach().cpu().numpy()
    return {
        "axes": grid.axes,
        "abs_F": np.linalg.norm(F_np, axis=1).reshape(grid.shape),
        "F": F_np,
    }


@dataclass(frozen=True)
class HolonomyResult:
    """Transport defect around a square loop (seed Def. 9.4, Prop. 9.8).

    ``field`` = sum_k A_hat_k Delta s = grad phi_hat(end) - grad phi_hat(start), (n, dim);
    ``rms`` and ``max_abs`` are the root-mean-square and the maximum of |field(x)| over the
    points; ``scale`` is the RMS of |grad phi_hat(start)| (for relative statements); ``path`` holds
    the 4 * n_segments + 1 loop points.
    """

    field: Tensor
    rms: float
    max_abs: float
    scale: float
    path: Tensor


def holonomy(
    potential: Potential,
    theta: Any,
    e_i: Any,
    e_j: Any,
    size: float,
    n_segments: int,
    x: Any,
) -> HolonomyResult:
    """Transport of grad_x phi_hat around the square loop of side ``size`` in span{e_i, e_j}.

    The loop theta -> +size e_i -> +size e_j -> -size e_i -> -size e_j is cut into ``n_segments``
    steps of length Delta s = size / n_segments per side; points are reached by accumulating the
    steps (so a single-valued section returns rounding, not an exact 0). Because the connection
    acts by translation on the fibre, prod(I + A_hat Delta s) reduces to sum_k A_hat_k Delta s
    (module docstring); a learned potential is fine-tuned sequentially around the loop.
    """
    pot, th, xx = _common(potential, theta, x)
    a, b = _check_pair(e_i, e_j, pot.n_params)
    s = check_real(size, "size", gt=0, hint="use the side length of the loop, e.g. 0.1")
    m = check_int(n_segments, "n_segments", ge=1)
    ds = s / m
    path = [th]
    for step in (a, b, -a, -b):
        for _ in range(m):
            path.append(path[-1] + ds * step)
    g = pot.grad_along(path, xx)
    A_terms = (g[1:] - g[:-1]) / ds
    field = (A_terms * ds).sum(0)
    norms = torch.linalg.vector_norm(field, dim=1)
    scale = torch.linalg.vector_norm(g[0], dim=1)
    return HolonomyResult(
        field=field,
        rms=float(norms.pow(2).mean().sqrt()),
        max_abs=float(norms.max()),
        scale=float(scale.pow(2).mean().sqrt()),
        path=torch.stack(path),
    )
