"""The high-dimensional limit int v2^2 dt ~ n_d int (d_sigma^2 + d_m^2) dt (Shaul et al. 2023).

At a fixed number of data points the exact path's kinetic cost approaches n_d times the
conditional kinetic energy of the schedule as the dimension n_d grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ottokit.experiments.diffusion_tradeoff.config import DiffusionTradeoffConfig
from ottokit.experiments.diffusion_tradeoff.setting import schedule
from ottokit.flowmatch import ExactVelocity, conditional_kinetic_energy, kinetic_cost
from ottokit.progress import progress_bar
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison

__all__ = [
    "HighDimRow",
    "HighDimStudy",
    "checks",
    "comparisons",
    "figure",
    "study",
    "summary",
]

NAME = "highdim"
CAPTION = "High-dimensional limit: int v2^2 dt / (n_d int (d_sigma^2 + d_m^2) dt) against n_d"
FILE = "highdim.png"
_SCHEDULES = ("cosine", "cond-OT")


@dataclass(frozen=True)
class HighDimRow:
    """One dimension.

    Attributes:
        dim: the dimension n_d.
        kinetic, stderr: int v2^2 dt of the exact path (Monte Carlo) and its standard error.
        n_d_int: n_d int (d_sigma^2 + d_m^2) dt.
        ratio: kinetic / n_d_int.
    """

    dim: int
    kinetic: float
    stderr: float
    n_d_int: float
    ratio: float


@dataclass(frozen=True)
class HighDimStudy:
    """Attributes: rows: per schedule, one row per dimension."""

    rows: dict[str, list[HighDimRow]]


def study(config: DiffusionTradeoffConfig) -> HighDimStudy:
    """The ratio per schedule and dimension, on ``highdim_points`` Gaussian data points."""
    rows: dict[str, list[HighDimRow]] = {}
    with progress_bar(len(_SCHEDULES), "diffusion-tradeoff: high dimension") as bar:
        for s in _SCHEDULES:
            sched = schedule(s, config.tau)
            rows[s] = []
            for d in config.highdim_dims:
                gen = torch.Generator().manual_seed(config.seed)
                data = torch.randn(config.highdim_points, d, generator=gen, dtype=torch.float64)
                kin = kinetic_cost(ExactVelocity(sched, data), n_t=24, n_x=512, seed=config.seed)
                approx = conditional_kinetic_energy(sched, d)
                rows[s].append(
                    HighDimRow(d, kin.integral, kin.integral_stderr, approx, kin.integral / approx)
                )
            bar.advance()
    return HighDimStudy(rows)


def checks(s: HighDimStudy) -> list[Check]:
    """The ratio approaches 1 as n_d grows, within 10 % at the largest n_d."""
    first = {k: rows[0].ratio for k, rows in s.rows.items()}
    last = {k: rows[-1].ratio for k, rows in s.rows.items()}
    return [
        Check(
            "High dimension: int v2^2 dt -> n_d int (d_sigma^2 + d_m^2) dt (ratio -> 1 as n_d "
            "grows at fixed data count; within 10 % at the largest n_d)",
            all(abs(last[k] - 1) < abs(first[k] - 1) and abs(last[k] - 1) <= 0.1 for k in s.rows),
            ", ".join(
                f"{k}: ratio {first[k]:.3f} at n_d={rows[0].dim} -> {last[k]:.3f} "
                f"at n_d={rows[-1].dim}"
                for k, rows in s.rows.items()
            ),
        )
    ]


def comparisons(s: HighDimStudy) -> list[Comparison]:
    """None: the paper gives no numbers for the limit."""
    return []


def summary(s: HighDimStudy) -> None:
    """None: the check says all there is."""
    return None


def figure(s: HighDimStudy, path: Path) -> Path:
    """The ratio against n_d per schedule."""
    fig, ax = new_figure()
    for k, rows in s.rows.items():
        ax.semilogx([r.dim for r in rows], [r.ratio for r in rows], "o-", label=k)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("dimension n_d (data count fixed)")
    ax.set_ylabel("int v2^2 / (n_d int (d_sigma^2 + d_m^2))")
    ax.legend()
    return save_figure(fig, path)
