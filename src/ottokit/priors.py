"""Latent priors p_Z of push-forward generators (seed 001 §12, seed 003 §1.3).

One :class:`Prior` serves the GAN trainer (:func:`ottokit.gan.nets.sample_latent`) and
discriminator optimal transport (:mod:`ottokit.dot`): the standard normal N(0, I) or the
uniform distribution on the cube [-1, 1]^d, with its sampler, log-density and support check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from ottokit._checks import check_option

__all__ = ["Prior", "PriorName", "PRIORS", "as_prior"]

PriorName = Literal["normal", "uniform"]
PRIORS: tuple[str, ...] = get_args(PriorName)


@dataclass(frozen=True)
class Prior:
    """Latent prior p_Z: standard normal N(0, I) or uniform on [-1, 1]^d.

    Attributes:
        kind: ``"normal"`` or ``"uniform"``.
        shape: the shape of one latent (``(d,)`` for a vector latent).
    """

    kind: PriorName
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        check_option(self.kind, PRIORS, "prior")
        if len(self.shape) == 0 or any(int(s) <= 0 for s in self.shape):
            raise ValueError(
                f"prior shape must be a non-empty tuple of positive sizes, got {self.shape}"
            )

    @property
    def dim(self) -> int:
        """Number of latent coordinates."""
        return math.prod(self.shape)

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """``n >= 0`` independent latents, shape ``(n, *shape)``.

        The draw uses ``generator`` and lives on its device unless ``device`` is given;
        ``dtype`` defaults to torch's default dtype.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        size = (n, *self.shape)
        if self.kind == "normal":
            return torch.randn(size, generator=generator, device=device, dtype=dtype)
        return 2.0 * torch.rand(size, generator=generator, device=device, dtype=dtype) - 1.0

    def log_prob(self, z: Tensor) -> Tensor:
        """log p_Z(z) per sample, shape (n,); -inf outside the uniform prior's support."""
        flat = z.reshape(z.shape[0], -1)
        d = flat.shape[1]
        if self.kind == "normal":
            return -0.5 * (flat * flat).sum(1) - 0.5 * d * math.log(2 * math.pi)
        inside = (flat.abs() <= 1.0).all(1)
        out = torch.full_like(flat[:, 0], -d * math.log(2.0))
        return torch.where(inside, out, torch.full_like(out, -math.inf))

    def check_support(self, z: Tensor, name: str) -> None:
        """ValueError when a latent is non-finite or outside [-1, 1]^d (uniform prior)."""
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"{name} must be finite; it contains NaN or inf")
        if self.kind == "uniform":
            flat = z.reshape(z.shape[0], -1)
            bad = (flat.abs() > 1.0).any(1)
            if bool(bad.any()):
                i = int(torch.nonzero(bad)[0, 0])
                m = float(flat[i].abs().max())
                raise ValueError(
                    f"{name}[{i}] lies outside the uniform prior's support [-1, 1]^d "
                    f"(max |coordinate| = {m:.4g}); clamp the latents to [-1, 1] or use "
                    "prior='normal'"
                )


def as_prior(prior: Prior | str, shape: int | tuple[int, ...] | None = None) -> Prior:
    """A :class:`Prior` from itself or from a name (``"normal"``/``"uniform"``) and a shape."""
    if isinstance(prior, Prior):
        if shape is not None and _shape_tuple(shape) != prior.shape:
            raise ValueError(
                f"prior has latent shape {prior.shape} but latents of shape "
                f"{_shape_tuple(shape)} were given"
            )
        return prior
    if not isinstance(prior, str):
        raise TypeError(f"prior must be a Prior or one of {PRIORS}, got {type(prior).__name__}")
    check_option(prior, PRIORS, "prior")
    if shape is None:
        raise ValueError(
            f"prior={prior!r} needs the latent shape; pass latent_dim=... (or a Prior instance, "
            "e.g. Prior('normal', (d,)))"
        )
    return Prior(prior, _shape_tuple(shape))  # type: ignore[arg-type]


def _shape_tuple(shape: int | tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(s) for s in shape)
