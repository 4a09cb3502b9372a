"""The JKO scheme in 1-D quantile form against the grid flow (seed 001 Def. 5.4, Thm 5.5).

Measured: the energy decrease per step, sum W2^2/(2 tau) <= F(P0) - inf F (Thm 5.5 (3)),
and convergence to the grid flow as tau -> 0 with the observed order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ottokit.experiments._studies import fmt_list
from ottokit.experiments.gan_geometry.config import GanGeometryConfig
from ottokit.experiments.gan_geometry.densities import q_wide, rho0_wide
from ottokit.functionals import FDivergence
from ottokit.graph import WassersteinFlow, grid, grid_density, solve
from ottokit.jko import jko_1d
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison

__all__ = ["JKOConvergence", "JKOStudy", "checks", "comparisons", "figure", "study", "summary"]

NAME = "jko"
CAPTION = "JKO against the grid flow as tau -> 0, and the energy per step (Thm 5.5)"


@dataclass(frozen=True)
class JKOConvergence:
    """The JKO scheme of one f-divergence at each tau = T/steps.

    Attributes:
        cdf_error: sup |CDF_JKO - CDF_flow| at T against the grid flow, per tau.
        orders: log2 of successive ratios of ``cdf_error`` (tau halves each time).
        self_convergence_order: the order read from differences of successive JKO
            solutions alone (NaN with fewer than three taus).
        energy_decreases: F(rho_k) decreased at every step, for every tau.
        sum_w2_bound_holds: sum_k W2^2/(2 tau) <= F(P0) - inf F, for every tau.
        sum_w2_over_energy_spent: sum_k W2^2/(2 tau) over F(P0) - F(P_K), per tau.
        energies: F(rho_k) at the smallest tau.
        sum_w2: the running sum of W2^2/(2 tau) at the smallest tau.
        energy_gap: F(P0) - inf F.
        newton_iterations_max: most Newton iterations of one step at the smallest tau.
    """

    cdf_error: list[float]
    orders: list[float]
    self_convergence_order: float
    energy_decreases: bool
    sum_w2_bound_holds: bool
    sum_w2_over_energy_spent: list[float]
    energies: list[float]
    sum_w2: list[float]
    energy_gap: float
    newton_iterations_max: int


@dataclass(frozen=True)
class JKOStudy:
    """JKO against the grid flow on ``nodes`` nodes over [0, T], per f-divergence.

    Attributes:
        nodes: nodes of the 1-D grid.
        T: the time horizon.
        steps: JKO step counts on [0, T], each twice the previous.
        divergences: the measurements per f-divergence.
    """

    nodes: int
    T: float
    steps: list[int]
    divergences: dict[str, JKOConvergence]

    @property
    def taus(self) -> np.ndarray:
        """The JKO step sizes T / steps."""
        return self.T / np.asarray(self.steps, float)


def study(config: GanGeometryConfig) -> JKOStudy:
    """JKO against the grid flow as tau -> 0 (first order expected) and the energy bounds."""
    n, T = config.jko_nodes, config.jko_time
    g = grid(n, 1.0 / n)
    q = grid_density(q_wide, g)
    r0 = grid_density(rho0_wide, g)
    found: dict[str, JKOConvergence] = {}
    for f in config.jko_divergences:
        F = FDivergence(f, q)
        errs, self_diffs, cdfs = [], [], []
        decreasing, bound_ok, ratios = True, True, []
        for k in config.jko_steps:
            res = jko_1d(F, r0, g, tau=T / k, steps=k)
            traj = solve(
                WassersteinFlow(g, F), res.masses[0], (0, T), [0, T], rtol=1e-11, atol=1e-15
            )
            cdf = np.cumsum(res.final)
            errs.append(float(np.abs(cdf - np.cumsum(traj.final)).max()))
            if cdfs:
                self_diffs.append(float(np.abs(cdf - cdfs[-1]).max()))
            cdfs.append(cdf)
            decreasing &= bool(np.all(np.diff(res.energies) < 0))
            spent = res.energies[0] - res.energies[-1]
            bound_ok &= bool(res.dissipation[-1] <= res.energies[0] - res.energy_inf)
            ratios.append(float(res.dissipation[-1] / spent))
        orders = np.log2(np.asarray(errs[:-1]) / np.asarray(errs[1:]))
        found[f] = JKOConvergence(
            cdf_error=errs,
            orders=orders.tolist(),
            self_convergence_order=float(
                np.log2(self_diffs[0] / self_diffs[-1]) / (len(self_diffs) - 1)
            )
            if len(self_diffs) > 1
            else float("nan"),
            energy_decreases=decreasing,
            sum_w2_bound_holds=bound_ok,
            sum_w2_over_energy_spent=ratios,
            energies=res.energies.tolist(),
            sum_w2=res.dissipation.tolist(),
            energy_gap=float(res.energies[0] - res.energy_inf),
            newton_iterations_max=int(res.newton_iterations.max()),
        )
    return JKOStudy(nodes=n, T=T, steps=list(config.jko_steps), divergences=found)


def checks(s: JKOStudy) -> list[Check]:
    """Thm 5.5: energy decrease, the bound on sum W2^2/(2 tau), first-order convergence."""
    fs = s.divergences
    return [
        Check(
            "Thm 5.5: JKO energy decreases every step",
            all(v.energy_decreases for v in fs.values()),
            ", ".join(f"{f}: {v.energy_decreases}" for f, v in fs.items()),
        ),
        Check(
            "Thm 5.5 (3): sum W2^2/(2 tau) <= F(P0) - inf F",
            all(v.sum_w2_bound_holds for v in fs.values()),
            "; ".join(
                f"{f}: sum {v.sum_w2[-1]:.4g} <= {v.energy_gap:.4g}; "
                f"ratio to the energy spent {v.sum_w2_over_energy_spent[-1]:.3f} (-> 1/2)"
                for f, v in fs.items()
            ),
        ),
        Check(
            "JKO converges to the grid flow as tau -> 0, first order",
            all(0.8 <= o <= 1.25 for v in fs.values() for o in v.orders),
            "; ".join(
                f"{f}: sup CDF error {fmt_list(v.cdf_error, '.2g')}"
                f", orders {fmt_list(v.orders, '.2f')}"
                for f, v in fs.items()
            ),
        ),
    ]


def comparisons(s: JKOStudy) -> list[Comparison]:
    """The observed orders for KL beside backward Euler's 1."""
    kl = s.divergences.get("kl")
    orders = ", ".join(f"{o:.2f}" for o in (kl.orders if kl is not None else []))
    return [Comparison("JKO order (KL)", orders, 1, "backward Euler")]


def summary(s: JKOStudy) -> str:
    """One clause of the experiment's summary."""
    return "JKO converges at first order"


def figure(s: JKOStudy, path: Path) -> Path:
    """CDF error against tau (left); F_k and F_0 - sum W2^2/(2 tau) at the smallest tau."""
    fig, (a1, a2) = new_figure(1, 2, figsize=(11, 4))
    taus = s.taus
    for f, v in s.divergences.items():
        a1.loglog(taus, v.cdf_error, "o-", label=f"{f}")
        en = np.asarray(v.energies)
        a2.plot(np.arange(len(en)) * taus[-1], en, ".-", label=f"F_k ({f})")
        a2.plot(
            np.arange(len(en)) * taus[-1],
            en[0] - np.asarray(v.sum_w2),
            "--",
            label=f"F_0 - sum W2^2/(2 tau) ({f})",
        )
    first = next(iter(s.divergences.values())).cdf_error[0]
    a1.loglog(taus, first * taus / taus[0], ":", color="0.5", label="tau^1")
    a1.set_xlabel("tau")
    a1.set_ylabel("sup |CDF_JKO - CDF_flow| at T")
    a1.legend(fontsize=8)
    a2.set_xlabel("t = k tau")
    a2.legend(fontsize=7)
    return save_figure(fig, path)
