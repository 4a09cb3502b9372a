"""The energy-dissipation equality along f-divergence W2 flows (seed 001 Thm 5.2, eq. 5.1).

The flows run on 1-D and 2-D grids (a grid with weights 1/h^2 is a graph). Along each
computed trajectory dF/dt is compared with -int rho |grad phi|^2. The relative residual is
measured against the grid size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ottokit.experiments.gan_geometry.config import GanGeometryConfig
from ottokit.experiments.gan_geometry.densities import q_1d, q_2d, rho0_1d, rho0_2d
from ottokit.functionals import FDivergence
from ottokit.graph import WassersteinFlow, edi_check, grid, grid_density, observed_order, solve
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison

__all__ = ["EDIConvergence", "EDIStudy", "checks", "comparisons", "figure", "study", "summary"]

NAME = "edi"
CAPTION = "EDI residual against the grid, and JSD/KL flows toward q (Thm 5.2)"


@dataclass(frozen=True)
class EDIConvergence:
    """The EDI residual of one f-divergence flow against the 1-D grid.

    Attributes:
        max_rel_error: per grid size, max over the times of |dF/dt + D| / D, D the dissipation.
        order: observed order of ``max_rel_error`` in the grid spacing h.
        time_differencing_error: on the finest grid, the largest relative error of dF/dt
            read from a difference of F (the part of the residual due to the time step).
    """

    max_rel_error: list[float]
    order: float
    time_differencing_error: float


@dataclass(frozen=True)
class EDIStudy:
    """EDI residuals against the grid for every f, and one trajectory per f for the figure.

    Attributes:
        sizes: node counts n of the 1-D grids (h = 1/n).
        times: times at which the residual is measured.
        divergences: the 1-D residuals per f-divergence.
        sizes_2d: sides n of the n x n grids of the 2-D JSD flow.
        max_rel_error_2d: the 2-D JSD residual per side.
        order_2d: its observed order in h.
        x: nodes of the finest 1-D grid.
        q: the target density there (per unit length).
        t: times of the snapshots.
        rho: per f, the densities (per unit length) at the snapshot times, shape (t, x).
        energy: per f, F_f(rho_t) at the snapshot times.
    """

    sizes: list[int]
    times: list[float]
    divergences: dict[str, EDIConvergence]
    sizes_2d: list[int]
    max_rel_error_2d: list[float]
    order_2d: float
    x: list[float]
    q: list[float]
    t: list[float]
    rho: dict[str, list[list[float]]]
    energy: dict[str, list[float]]

    @property
    def finest(self) -> dict[str, float]:
        """The residual on the finest 1-D grid, per f."""
        return {f: v.max_rel_error[-1] for f, v in self.divergences.items()}


def study(config: GanGeometryConfig) -> EDIStudy:
    """EDI residual against grid size for every f (1-D) and JSD in 2-D; one trajectory kept."""
    times = np.asarray(config.edi_times)
    rates: dict[str, EDIConvergence] = {}
    for f in config.divergences:
        errs = []
        for n in config.edi_sizes:
            g = grid(n, 1.0 / n)
            flow = WassersteinFlow(g, FDivergence(f, grid_density(q_1d, g)))
            rep = edi_check(flow, grid_density(rho0_1d, g), times)
            errs.append(rep.max_rel_error)
        h = 1.0 / np.asarray(config.edi_sizes, dtype=float)
        rates[f] = EDIConvergence(
            max_rel_error=errs,
            order=observed_order(h, np.asarray(errs)),
            time_differencing_error=float(rep.rel_error_discrete.max()),
        )
    errs2 = []
    for n in config.edi_sizes_2d:
        g = grid((n, n), 1.0 / n)
        flow = WassersteinFlow(g, FDivergence("jsd", grid_density(q_2d, g)))
        rep = edi_check(flow, grid_density(rho0_2d, g), times[:3], method="radau")
        errs2.append(rep.max_rel_error)
    n = config.edi_sizes[-1]
    g = grid(n, 1.0 / n)
    q = grid_density(q_1d, g)
    r0 = grid_density(rho0_1d, g)
    snaps = np.asarray(config.flow_snapshots)
    rho, energy = {}, {}
    for f in config.divergences:
        traj = solve(WassersteinFlow(g, FDivergence(f, q)), r0, (0.0, snaps[-1]), snaps, rtol=1e-9)
        rho[f] = (traj.rho * n).tolist()
        energy[f] = traj.energy.tolist()
    return EDIStudy(
        sizes=list(config.edi_sizes),
        times=times.tolist(),
        divergences=rates,
        sizes_2d=list(config.edi_sizes_2d),
        max_rel_error_2d=errs2,
        order_2d=observed_order(1.0 / np.asarray(config.edi_sizes_2d, float), np.asarray(errs2)),
        x=g.positions[:, 0].tolist(),
        q=(q * n).tolist(),
        t=snaps.tolist(),
        rho=rho,
        energy=energy,
    )


def checks(s: EDIStudy) -> list[Check]:
    """Thm 5.2: the residual is at most 1e-3 on the finest grid and shrinks with the grid."""
    finest = s.finest
    shrinking = all(np.all(np.diff(v.max_rel_error) < 0) for v in s.divergences.values())
    return [
        Check(
            "Thm 5.2 (EDI): |dF/dt + int rho|grad phi|^2| / int rho|grad phi|^2 <= 1e-3 on the "
            "finest grid and shrinking with the grid",
            bool(max(finest.values()) <= 1e-3 and shrinking),
            f"finest 1-D grid (n = {s.sizes[-1]}): "
            + ", ".join(
                f"{f} {e:.2g} (order {s.divergences[f].order:.2f})" for f, e in finest.items()
            )
            + f"; 2-D JSD {s.max_rel_error_2d} (order {s.order_2d:.2f})",
        )
    ]


def comparisons(s: EDIStudy) -> list[Comparison]:
    """The JSD residual on the finest grid beside the issue's bound."""
    return [
        Comparison(
            "EDI relative error, JSD, finest 1-D grid",
            f"{s.finest.get('jsd', float('nan')):.2g}",
            "<= 1e-3 (issue)",
        )
    ]


def summary(s: EDIStudy) -> str:
    """One clause of the experiment's summary."""
    order = np.mean([v.order for v in s.divergences.values()])
    return (
        f"EDI residuals fall at order {order:.2f} with the grid "
        f"(finest: {max(s.finest.values()):.2g})"
    )


def figure(s: EDIStudy, path: Path) -> Path:
    """Residual against h per f (left); the JSD (or first) flow's snapshots toward q (right)."""
    fig, (a1, a2) = new_figure(1, 2, figsize=(11, 4))
    h = 1.0 / np.asarray(s.sizes, float)
    for f, v in s.divergences.items():
        a1.loglog(h, v.max_rel_error, "o-", label=f"{f} (order {v.order:.2f})")
    h2 = 1.0 / np.asarray(s.sizes_2d, float)
    a1.loglog(h2, s.max_rel_error_2d, "s--", color="k", label="jsd, 2-D")
    first = next(iter(s.divergences.values())).max_rel_error[0]
    a1.loglog(h, 0.5 * first * (h / h[0]) ** 2, ":", color="0.5", label="h^2")
    a1.set_xlabel("grid spacing h")
    a1.set_ylabel("max relative EDI residual")
    a1.legend(fontsize=7)
    x = np.asarray(s.x)
    a2.plot(x, s.q, color="k", lw=2, label="q")
    key = "jsd" if "jsd" in s.rho else next(iter(s.rho))
    for k, t in enumerate(s.t):
        a2.plot(x, s.rho[key][k], lw=1, label=f"{key}, t = {t:g}")
    a2.set_xlabel("x")
    a2.set_ylabel("density")
    a2.legend(fontsize=7)
    return save_figure(fig, path)
