"""Holonomy of grad phi around square loops in parameter space (seed 001 Prop. 9.8).

The exact section's holonomy vanishes; a learned discriminator's shrinks as its
fine-tuning budget grows. Measured against the loop size on the 1-D affine Gaussian case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ottokit.experiments._studies import fmt_list
from ottokit.experiments.gan_geometry.config import GanGeometryConfig
from ottokit.experiments.gan_geometry.potentials import gaussian_case, learned_potential, unit
from ottokit.gan.connection import holonomy, line_grid
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison

__all__ = ["HolonomyStudy", "checks", "comparisons", "figure", "study", "summary"]

NAME = "holonomy"
CAPTION = "Holonomy of grad phi around square loops against the loop size (Prop. 9.8)"


@dataclass(frozen=True)
class HolonomyStudy:
    """RMS holonomy of grad phi against the side of the loop.

    Attributes:
        sizes: the loops' side lengths.
        exact: RMS holonomy of the exact section, per size.
        learned: per fine-tuning budget (the smallest and the largest), RMS holonomy per size.
        scale: the RMS of grad phi around the smallest loop (the holonomy's natural scale).
    """

    sizes: list[float]
    exact: list[float]
    learned: dict[int, list[float]]
    scale: float


def study(config: GanGeometryConfig) -> HolonomyStudy:
    """Loops of ``holonomy_segments`` segments per side around theta in one parameter plane."""
    model, theta, target = gaussian_case(1)
    e_i, e_j = unit(2, 0), unit(2, 1)
    x = line_grid(-2.0, 4.0, 121).points
    segments = config.holonomy_segments
    exact = [
        holonomy(model, theta, e_i, e_j, s, segments, x).rms for s in config.holonomy_sizes
    ]
    learned = {}
    for budget in (config.curvature_budgets[0], config.curvature_budgets[-1]):
        pot = learned_potential(model, target, 1, budget, config)
        learned[budget] = [
            holonomy(pot, theta, e_i, e_j, s, segments, x).rms for s in config.holonomy_sizes
        ]
    return HolonomyStudy(
        sizes=list(config.holonomy_sizes),
        exact=exact,
        learned=learned,
        scale=holonomy(model, theta, e_i, e_j, config.holonomy_sizes[0], 1, x).scale,
    )


def checks(s: HolonomyStudy) -> list[Check]:
    """Prop. 9.8: zero for the exact section, shrinking with the budget for a learned one."""
    budgets = list(s.learned)
    return [
        Check(
            "Prop. 9.8: holonomy of the exact section vanishes; a learned one's shrinks with "
            "the discriminator's budget",
            bool(
                max(s.exact) <= 1e-12 * max(1.0, s.scale)
                and np.all(np.asarray(s.learned[budgets[-1]]) < np.asarray(s.learned[budgets[0]]))
            ),
            f"RMS holonomy at loop sizes {s.sizes}: exact {fmt_list(s.exact, '.1g')}; "
            + "; ".join(f"{b} steps {fmt_list(v, '.2g')}" for b, v in s.learned.items()),
        )
    ]


def comparisons(s: HolonomyStudy) -> list[Comparison]:
    """None: the seed gives no number for the holonomy."""
    return []


def summary(s: HolonomyStudy) -> str | None:
    """None: the curvature study's clause covers the holonomy."""
    return None


def figure(s: HolonomyStudy, path: Path) -> Path:
    """RMS holonomy against the loop side, exact and learned."""
    fig, ax = new_figure(1, 1, figsize=(5.5, 3.8))
    sizes = np.asarray(s.sizes)
    ax.loglog(sizes, np.maximum(s.exact, 1e-18), "o-", label="exact section")
    for budget, values in s.learned.items():
        ax.loglog(sizes, values, "s-", label=f"learned D, {budget} steps per point")
    ax.set_xlabel("loop side")
    ax.set_ylabel("RMS holonomy of grad phi")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
