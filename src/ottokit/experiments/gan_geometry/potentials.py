"""The generators and discriminator potentials of the curvature and holonomy studies.

An affine Gaussian generator G_theta(z) = A z + b against a Gaussian target q has the exact
section phi = log(q/rho_theta); learned discriminators approximate it by fine-tuning along
parameter paths (seed 001 Def. 9.4, Algorithm 1).
"""

from __future__ import annotations

import torch
from torch import nn

from ottokit.experiments.gan_geometry.config import DT, GanGeometryConfig
from ottokit.gan.connection import GaussianAffineModel, LearnedPotential, gaussian_logpdf
from ottokit.gan.nets import MLPDiscriminator, build_seeded

__all__ = ["QuadraticLogit", "gaussian_case", "learned_potential", "unit"]


class QuadraticLogit(nn.Module):
    """logit(x) = c + b.x + x^T C x: the exact family of log(q/rho) for two Gaussians."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.zeros((), dtype=DT))
        self.b = nn.Parameter(torch.zeros(dim, dtype=DT))
        self.C = nn.Parameter(torch.zeros(dim, dim, dtype=DT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c + x @ self.b + ((x @ self.C) * x).sum(-1)


def gaussian_case(
    dim: int,
) -> tuple[GaussianAffineModel, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The affine model, its parameters theta and the target's (mean, covariance), 1-D or 2-D."""
    if dim == 1:
        logq = gaussian_logpdf(torch.tensor([1.0], dtype=DT), torch.tensor([[0.64]], dtype=DT))
        model = GaussianAffineModel(1, logq)
        theta = model.theta_from([[1.2]], [0.3])
        return model, theta, (torch.tensor([1.0], dtype=DT), torch.tensor([[0.64]], dtype=DT))
    mean = torch.tensor([1.0, -0.5], dtype=DT)
    cov = torch.tensor([[0.6, 0.2], [0.2, 0.4]], dtype=DT)
    model = GaussianAffineModel(2, gaussian_logpdf(mean, cov))
    theta = model.theta_from([[0.9, 0.1], [-0.2, 0.7]], [0.2, 0.1])
    return model, theta, (mean, cov)


def unit(n: int, k: int) -> torch.Tensor:
    """The k-th coordinate direction of R^n."""
    e = torch.zeros(n, dtype=DT)
    e[k] = 1.0
    return e


def learned_potential(
    model: GaussianAffineModel,
    target: tuple[torch.Tensor, torch.Tensor],
    dim: int,
    budget: int,
    config: GanGeometryConfig,
    kind: str = "quadratic",
) -> LearnedPotential:
    """A discriminator potential fine-tuned ``budget`` steps per point of a path.

    Args:
        model: the affine Gaussian generator.
        target: the target's (mean, covariance).
        dim: the data dimension.
        budget: fine-tuning steps per point.
        config: its seed, sample count and initial fine-tuning are used.
        kind: ``"quadratic"`` (:class:`QuadraticLogit`, SGD) or ``"mlp"`` (a 32 x 32 MLP,
            Adam); both train on ``config.curvature_samples`` real and latent samples.

    Returns:
        The learned potential.
    """
    gen = torch.Generator().manual_seed(config.seed + 7)
    mean, cov = target
    L = torch.linalg.cholesky(cov)
    real = mean + torch.randn(config.curvature_samples, dim, generator=gen, dtype=DT) @ L.T
    z = torch.randn(config.curvature_samples, dim, generator=gen, dtype=DT)
    if kind == "quadratic":
        D: nn.Module = QuadraticLogit(dim)
        lr, opt = 0.1, "sgd"
    else:
        D = build_seeded(config.seed + 8, lambda: MLPDiscriminator(dim, (32, 32))).to(DT)
        lr, opt = 0.01, "adam"
    return LearnedPotential(
        model.sample,
        D,
        real,
        z,
        n_steps=budget,
        n_init_steps=config.init_steps,
        lr=lr,
        optimizer=opt,
    )
