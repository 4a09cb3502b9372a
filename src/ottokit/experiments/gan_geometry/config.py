"""Settings of the gan-geometry studies (sizes; the mathematics is fixed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from ottokit._config import (
    ConfigError,
    ValidatedConfig,
    check_config_memory,
    device_param,
    param,
    seed_param,
)
from ottokit.experiments._graph_sizes import heat_flow_bytes

__all__ = ["DIVERGENCES", "DT", "Divergence", "GanGeometryConfig"]

Divergence = Literal["kl", "reverse_kl", "jsd", "chi2", "hellinger"]
DIVERGENCES: tuple[str, ...] = get_args(Divergence)
DT = torch.float64  # the dtype of every study that uses torch


@dataclass
class GanGeometryConfig(ValidatedConfig):
    """Settings of the gan-geometry studies (sizes; the mathematics is fixed)."""

    divergences: tuple[Divergence, ...] = param(
        DIVERGENCES, doc="f-divergences of the EDI study", distinct=True, example="kl,jsd"
    )
    edi_sizes: tuple[int, ...] = param(
        (25, 50, 100, 200),
        doc="1-D grid sizes of the EDI study (its order needs two)",
        ge=4,
        min_items=2,
        increasing=True,
    )
    edi_sizes_2d: tuple[int, ...] = param(
        (16, 32),
        doc="side n of the n x n grids of the 2-D EDI study",
        ge=4,
        min_items=2,
        increasing=True,
    )
    edi_times: tuple[float, ...] = param(
        (0.0, 0.005, 0.02, 0.05),
        doc="times at which the EDI residual is measured (the 2-D study uses the first three)",
        ge=0,
        min_items=2,
        increasing=True,
    )
    flow_snapshots: tuple[float, ...] = param(
        (0.0, 0.002, 0.01, 0.05),
        doc="times of the flow snapshots in the figure",
        ge=0,
        min_items=2,
        increasing=True,
    )
    jko_divergences: tuple[Divergence, ...] = param(
        ("kl", "jsd"), doc="f-divergences of the JKO study", distinct=True
    )
    jko_nodes: int = param(100, doc="nodes of the 1-D grid of the JKO study", ge=4)
    jko_time: float = param(0.02, doc="time horizon T of the JKO study", gt=0)
    jko_steps: tuple[int, ...] = param(
        (4, 8, 16),
        doc="JKO step counts on [0, T], each twice the previous (tau halves)",
        ge=1,
        min_items=2,
        increasing=True,
    )
    convexity_nodes: int = param(100, doc="nodes of the 1-D grid of the JSD study", ge=4)
    convexity_deltas: tuple[float, ...] = param(
        (0.025, 0.05, 0.1, 0.2, 0.4),
        doc="distances delta from q of the JSD convexity study (rho = q (1 + delta s))",
        gt=0,
        lt=1,
        increasing=True,
    )
    convexity_pairs: int = param(8, doc="random geodesics per delta", ge=1)
    concentration_sizes: tuple[int, ...] = param(
        (16, 64, 256, 1024, 4096),
        doc="Monte-Carlo sizes N of the pullback-metric estimate",
        ge=1,
        min_items=2,
        increasing=True,
    )
    concentration_repeats: int = param(10, doc="independent estimates per N", ge=1)
    concentration_reference: int = param(
        100_000, doc="latents of the reference metric (more than the largest N)", ge=2
    )
    concentration_dampings: tuple[float, ...] = param(
        (1e-3, 1e-1), doc="dampings lambda of the natural-gradient vector", gt=0, distinct=True
    )
    game_steps: int = param(600, doc="GAN training steps of the game-Jacobian study", ge=1)
    game_every: int = param(50, doc="game Jacobian every this many steps (<= game_steps)", ge=1)
    game_batch: int = param(128, doc="real and latent samples the game Jacobian uses", ge=1)
    curvature_deltas: tuple[float, ...] = param(
        (0.2, 0.1, 0.05),
        doc="parameter steps Delta of the curvature estimate, decreasing",
        gt=0,
        min_items=2,
    )
    curvature_budgets: tuple[int, ...] = param(
        (10, 40, 160),
        doc="fine-tuning steps of the learned discriminators per point, increasing",
        ge=1,
        min_items=2,
        increasing=True,
    )
    curvature_samples: int = param(
        512, doc="real and latent samples the learned discriminators train on", ge=2
    )
    mlp_budget: int = param(200, doc="fine-tuning steps of the MLP discriminator", ge=1)
    init_steps: int = param(
        2000, doc="fine-tuning of the discriminator at the first point of a path", ge=0
    )
    converged_steps: int = param(
        4000, doc="further steps that define a discriminator's converged value", ge=1
    )
    holonomy_sizes: tuple[float, ...] = param(
        (0.05, 0.1, 0.2, 0.4), doc="side lengths of the holonomy loops", gt=0, increasing=True
    )
    holonomy_segments: int = param(4, doc="segments per side of a holonomy loop", ge=1)
    heatmap_points: int = param(41, doc="points per axis of the 2-D heat maps", ge=2)
    seed: int = seed_param()
    device: str = device_param()

    def check(self) -> None:
        """Orders read from halvings, time grids the EDI differences fit in, and memory."""
        if any(b != 2 * a for a, b in zip(self.jko_steps, self.jko_steps[1:], strict=False)):
            raise ConfigError.for_key(
                "jko_steps",
                self.jko_steps,
                "a list with each item twice the previous (the order is read from successive "
                "halvings of tau)",
                "4,8,16",
            )
        deltas = self.curvature_deltas
        if any(not b < a for a, b in zip(deltas, deltas[1:], strict=False)):
            raise ConfigError.for_key(
                "curvature_deltas",
                self.curvature_deltas,
                "a strictly decreasing list (F_hat is compared at the smallest and largest)",
                "0.2,0.1,0.05",
            )
        times = self.edi_times
        gap = min(b - a for a, b in zip(times, times[1:], strict=False))
        if gap <= 2e-4 * (times[-1] - times[0]):
            raise ConfigError.for_key(
                "edi_times",
                times,
                "a list of times more than 2e-4 of their span apart (dF/dt is a centred "
                "difference with step 1e-4 of the span)",
                "0,0.005,0.02,0.05",
            )
        if self.game_every > self.game_steps:
            raise ConfigError.for_key(
                "game_every", self.game_every, f"<= game_steps = {self.game_steps}", 50
            )
        if self.concentration_reference <= max(self.concentration_sizes):
            raise ConfigError.for_key(
                "concentration_reference",
                self.concentration_reference,
                f"> the largest concentration_sizes = {max(self.concentration_sizes)} (the "
                "reference must be the better estimate)",
                100_000,
            )
        n1, n2 = self.edi_sizes[-1], self.edi_sizes_2d[-1]
        check_config_memory(
            "edi_sizes_2d",
            self.edi_sizes_2d,
            heat_flow_bytes(n2 * n2, 2 * n2 * (n2 - 1)) + heat_flow_bytes(n1, n1),
            what=f"the EDI flows on a {n2} x {n2} grid",
            knob="lower edi_sizes_2d",
        )
        n = max(self.concentration_sizes)
        check_config_memory(
            "concentration_sizes",
            self.concentration_sizes,
            # per-sample Jacobians of the 16 -> 32 -> 1 generator (577 parameters), float64
            3 * 8.0 * 577 * n,
            what=f"the pullback metric from {n} samples",
            knob="lower concentration_sizes",
        )
        check_config_memory(
            "heatmap_points",
            self.heatmap_points,
            # positions, gradients and curvature per point of the grid, several copies
            2048.0 * self.heatmap_points**2,
            what=f"curvature heat maps on {self.heatmap_points}^2 points",
            knob="lower heatmap_points",
        )

    @classmethod
    def quick(cls) -> GanGeometryConfig:
        return cls()

    @classmethod
    def paper(cls) -> GanGeometryConfig:
        return cls(
            edi_sizes=(25, 50, 100, 200, 400),
            edi_sizes_2d=(16, 32, 64),
            jko_steps=(4, 8, 16, 32),
            convexity_pairs=32,
            concentration_sizes=(16, 64, 256, 1024, 4096, 16384),
            concentration_repeats=20,
            game_steps=2000,
            game_every=100,
            curvature_budgets=(5, 10, 20, 40, 80, 160),
            curvature_samples=1024,
            heatmap_points=61,
        )
