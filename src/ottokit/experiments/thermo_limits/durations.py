"""The finite-time limit S_tot >= W2^2/(tau T) across durations tau (equality on the geodesic)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ottokit.experiments._studies import FIGURE_ONLY
from ottokit.experiments.thermo_limits.config import ThermoLimitsConfig
from ottokit.experiments.thermo_limits.inequalities import (
    EQUALITY_RTOL,
    SWEEP,
    Inequality,
    inequality,
    rel,
)
from ottokit.experiments.thermo_limits.protocols import LABELS, protocols_2d
from ottokit.progress import progress_bar
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check
from ottokit.thermo import SpeedLimit, solve_moments, speed_limit

__all__ = ["DurationStudy", "SweepRow", "caption", "checks", "figure", "study"]


@dataclass(frozen=True)
class SweepRow:
    """S_tot and its bound W2^2 / int T dt for one protocol at each duration.

    Attributes:
        tau: the durations.
        S_tot: the total entropy production at each.
        bound: W2(P_0, P_tau)^2 / int T dt at each.
        ratio: S_tot / bound.
    """

    tau: list[float]
    S_tot: list[float]
    bound: list[float]
    ratio: list[float]


@dataclass(frozen=True)
class DurationStudy:
    """The limit S_tot >= W2^2/(tau T) for every 2-D protocol over the durations of the sweep.

    The stationary rotational protocol is left out: P_0 = P_tau, so its bound is 0.

    Attributes:
        taus: the durations.
        rows: per protocol, S_tot, the bound and their ratio at each duration.
        inequalities: S_tot >= bound for every protocol and duration.
        holds: whether every one of them held.
        geodesic_max_relative_gap: max over durations of |S_tot - bound| / S_tot on the
            geodesic (0 up to rounding).
        tau: the experiment's own duration, of the bars in the figure.
        limits: the speed limits of every 2-D protocol at ``tau`` (figure only).
    """

    taus: list[float]
    rows: dict[str, SweepRow]
    inequalities: list[Inequality]
    holds: bool
    geodesic_max_relative_gap: float
    tau: float
    limits: dict[str, SpeedLimit] = field(metadata=FIGURE_ONLY)


def study(config: ThermoLimitsConfig) -> DurationStudy:
    """S_tot and W2^2 / int T dt for every 2-D protocol over the durations of the sweep."""
    rows: dict[str, SweepRow] = {}
    with progress_bar(len(config.tau_scan), "thermo-limits: tau sweep") as bar:
        for tau in config.tau_scan:
            for key, p in protocols_2d(config, tau).items():
                if key == "rotational-stationary":
                    continue  # P_0 = P_tau: the bound is 0 and the ratio undefined
                lim = speed_limit(solve_moments(p, t_eval=config.n_times))
                row = rows.setdefault(key, SweepRow([], [], [], []))
                row.tau.append(tau)
                row.S_tot.append(lim.entropy_production)
                row.bound.append(lim.distance_bound)
                row.ratio.append(lim.entropy_production / lim.distance_bound)
            bar.advance()
    records = [
        inequality(SWEEP, f"{key}, tau = {tau:g}", "S_tot", "W2^2/int T dt", s_tot, bound)
        for key, row in rows.items()
        for tau, s_tot, bound in zip(row.tau, row.S_tot, row.bound, strict=True)
    ]
    geo = rows["geodesic"]
    return DurationStudy(
        taus=list(config.tau_scan),
        rows=rows,
        inequalities=records,
        holds=all(r.holds for r in records),
        geodesic_max_relative_gap=max(
            rel(s, b) for s, b in zip(geo.S_tot, geo.bound, strict=True)
        ),
        tau=config.tau,
        limits={
            key: speed_limit(solve_moments(p, t_eval=config.n_times))
            for key, p in protocols_2d(config, config.tau).items()
        },
    )


def checks(s: DurationStudy) -> list[Check]:
    """The limit at every duration, with equality on the geodesic."""
    return [
        Check(
            "The limit across durations: S_tot >= W2^2/(tau T) for every protocol and tau, "
            "equality on the geodesic",
            s.holds and s.geodesic_max_relative_gap <= EQUALITY_RTOL,
            f"tau in {s.taus}; smallest S_tot/bound per protocol: "
            + "; ".join(f"{k}: {min(v.ratio):.6g}" for k, v in s.rows.items())
            + f"; geodesic: largest relative gap {s.geodesic_max_relative_gap:.1e}",
        )
    ]


def caption(s: DurationStudy) -> str:
    """The figure's caption."""
    return (
        "S_tot against its bounds (int v2 dt)^2/(tau T) and W2(P0,Ptau)^2/(tau T) (left, "
        f"tau = {s.tau:g}); S_tot / bound against the duration tau (right; 1 on the "
        "geodesic)"
    )


def figure(s: DurationStudy, path: Path) -> Path:
    """S_tot and both bounds at tau per protocol (left); S_tot / bound against tau (right)."""
    fig, (a1, a2) = new_figure(1, 2, figsize=(11.5, 4.4))
    keys = list(s.limits)
    x = np.arange(len(keys))
    bars = (
        (r"$S_{tot}$", [s.limits[k].entropy_production for k in keys], "k"),
        (r"$(\int v_2 dt)^2/\int T dt$", [s.limits[k].length_bound for k in keys], "tab:blue"),
        (
            r"$W_2(P_0,P_\tau)^2/\int T dt$",
            [s.limits[k].distance_bound for k in keys],
            "tab:orange",
        ),
    )
    floor = 1e-3
    for j, (label, values, color) in enumerate(bars):
        shown = np.maximum(values, floor)
        a1.bar(x + (j - 1) * 0.27, shown, 0.27, label=label, color=color)
        for xi, v in zip(x, values, strict=True):
            if v < floor:
                a1.text(xi + (j - 1) * 0.27, floor * 1.3, "0", ha="center", fontsize=7)
    a1.set_xticks(
        x, [LABELS[k].replace(", ", ",\n").replace(": ", ":\n") for k in keys], fontsize=7
    )
    a1.set_yscale("log")
    a1.set_ylim(bottom=floor)
    a1.legend(fontsize=8)
    for key, row in s.rows.items():
        a2.loglog(row.tau, row.ratio, "o-", ms=4, label=LABELS[key])
    taus = next(iter(s.rows.values())).tau
    a2.set_xticks(taus, [f"{v:g}" for v in taus])
    a2.minorticks_off()
    a2.axhline(1.0, color="grey", lw=0.8)
    a2.set_xlabel(r"duration $\tau$")
    a2.set_ylabel(r"$S_{tot}\,/\,(W_2^2/\int T dt)$")
    a2.legend(fontsize=7.5)
    return save_figure(fig, path)
