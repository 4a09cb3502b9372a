"""JSD along W2 geodesics near q (seed 001 Thm 5.7).

The smallest d^2/dt^2 JSD / W2^2 along McCann interpolations between densities within delta
of q, against delta: Thm 5.7 says it is at least -C delta.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ottokit.experiments.gan_geometry.config import GanGeometryConfig
from ottokit.experiments.gan_geometry.densities import q_1d
from ottokit.graph import grid, grid_density
from ottokit.jko import jsd_geodesic_convexity
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison

__all__ = ["ConvexityStudy", "checks", "comparisons", "figure", "study", "summary"]

NAME = "convexity"
CAPTION = "JSD convexity along W2 geodesics against delta (Thm 5.7)"


@dataclass(frozen=True)
class ConvexityStudy:
    """The observed convexity modulus of JSD against the distance delta from q.

    Attributes:
        delta: the bounds ||rho/q - 1||_inf <= delta on the end points.
        lam: per delta, min over pairs and t of d^2 JSD/dt^2 / W2^2 (the observed lambda).
        lam_entropy: the same for the entropy part int rho log rho (>= 0, McCann).
        fd_rel_error: per delta, the largest relative gap between the analytic d^2 JSD/dt^2
            and its finite difference in t.
    """

    delta: list[float]
    lam: list[float]
    lam_entropy: list[float]
    fd_rel_error: list[float]


def study(config: GanGeometryConfig) -> ConvexityStudy:
    """Random geodesics near q on the 1-D grid, ``convexity_pairs`` per delta."""
    n = config.convexity_nodes
    g = grid(n, 1.0 / n)
    q = grid_density(q_1d, g)
    res = jsd_geodesic_convexity(
        q, g, list(config.convexity_deltas), n_pairs=config.convexity_pairs, seed=config.seed
    )
    return ConvexityStudy(
        delta=[r.delta for r in res],
        lam=[r.lam for r in res],
        lam_entropy=[r.lam_entropy for r in res],
        fd_rel_error=[r.fd_rel_error for r in res],
    )


def checks(s: ConvexityStudy) -> list[Check]:
    """Thm 5.7: lambda >= -C delta (here lambda >= 0 at every delta tested)."""
    return [
        Check(
            "Thm 5.7: JSD lambda-convex along W2 geodesics near q, lambda >= -C delta",
            bool(min(s.lam) >= 0),
            "observed lambda (min d^2 JSD/dt^2 / W2^2 over pairs and t) at delta = "
            + ", ".join(f"{d:g}: {lam:.3g}" for d, lam in zip(s.delta, s.lam, strict=True))
            + "; lambda stays >= 0 at every delta tested, so the bound holds with any C >= 0 "
            "(it decreases with delta, as the -C delta form suggests); entropy part >= 0: "
            + str(min(s.lam_entropy) >= 0),
        )
    ]


def comparisons(s: ConvexityStudy) -> list[Comparison]:
    """None: the seed gives no number for lambda."""
    return []


def summary(s: ConvexityStudy) -> str:
    """One clause of the experiment's summary."""
    return (
        f"JSD's observed lambda is {min(s.lam):.3g}..{max(s.lam):.3g} for delta in "
        f"[{min(s.delta)}, {max(s.delta)}]"
    )


def figure(s: ConvexityStudy, path: Path) -> Path:
    """Observed lambda and its entropy part against delta."""
    fig, ax = new_figure(1, 1, figsize=(5.5, 3.8))
    ax.plot(s.delta, s.lam, "o-", label="JSD: min d^2F/dt^2 / W2^2")
    ax.plot(s.delta, s.lam_entropy, "s--", label="entropy part (>= 0, McCann)")
    ax.axhline(0, color="k", lw=0.7)
    ax.set_xlabel("delta = ||rho/q - 1||_inf")
    ax.set_ylabel("observed lambda")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
