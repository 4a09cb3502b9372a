"""The Euler-Maruyama particle estimator of Sdot_t and v2(t) beside the closed form.

Ensembles of growing size N on the geodesic and the rotational protocol; the relative RMS
error over time should fall like N^-1/2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ottokit.experiments._studies import FIGURE_ONLY
from ottokit.experiments.thermo_limits.config import ThermoLimitsConfig
from ottokit.experiments.thermo_limits.protocols import LABELS, protocols_2d
from ottokit.progress import progress_bar
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check
from ottokit.thermo import (
    OUSolution,
    ParticleEstimate,
    Thermodynamics,
    simulate_particles,
    solve_moments,
    thermodynamics,
)

__all__ = [
    "CAPTION",
    "PARTICLE_CASES",
    "ParticleConvergence",
    "ParticleStudy",
    "checks",
    "figure",
    "study",
    "summary",
]

PARTICLE_CASES = ("geodesic", "rotational")
CAPTION = (
    "Closed form (lines) and Euler-Maruyama particle estimates (markers) of Sdot_t and "
    "v2(t); relative RMS error against the number of particles N"
)


@dataclass(frozen=True)
class ParticleConvergence:
    """The particle estimator's error against N on one protocol.

    Attributes:
        n_particles: the ensemble sizes N, increasing.
        repeats: independent ensembles per N (the error is their root mean square).
        rel_rms_error_Sdot: relative RMS error over t of the estimated Sdot_t, per N.
        rel_rms_error_v2: the same for v2(t).
        slope_Sdot: least-squares slope of log error against log N (None for one N).
        slope_v2: the same for v2.
        n_steps: Euler-Maruyama steps over [0, tau].
        dt: the step.
    """

    n_particles: list[int]
    repeats: list[int]
    rel_rms_error_Sdot: list[float]
    rel_rms_error_v2: list[float]
    slope_Sdot: float | None
    slope_v2: float | None
    n_steps: int
    dt: float


@dataclass(frozen=True)
class ParticleStudy:
    """Particle estimates beside the closed form on the protocols of ``PARTICLE_CASES``.

    Attributes:
        protocols: the error against N per protocol.
        estimates: per protocol and N, the first ensemble's estimate (figure only).
        references: per protocol, the closed form at the estimates' times (figure only).
    """

    protocols: dict[str, ParticleConvergence]
    estimates: dict[str, dict[int, ParticleEstimate]] = field(metadata=FIGURE_ONLY)
    references: dict[str, tuple[OUSolution, Thermodynamics]] = field(metadata=FIGURE_ONLY)


def _errors(est: ParticleEstimate, th: Thermodynamics) -> tuple[float, float]:
    """Relative RMS errors over time of the particle Sdot and v2 against the closed form."""
    e_s = np.sqrt(np.mean((est.entropy_production_rate - th.entropy_production_rate) ** 2))
    e_v = np.sqrt(np.mean((est.w2_speed - th.w2_speed) ** 2))
    return (
        float(e_s / np.sqrt(np.mean(th.entropy_production_rate**2))),
        float(e_v / np.sqrt(np.mean(th.w2_speed**2))),
    )


def study(config: ThermoLimitsConfig) -> ParticleStudy:
    """Euler-Maruyama ensembles of growing size beside the closed form.

    The error at each N is the root mean square over ``min(8, N_max / 4N)``
    independent ensembles (at least one), so the small-N points of the
    convergence plot are not single draws.
    """
    counts = sorted(int(n) for n in config.particle_counts)
    protocols = protocols_2d(config, config.tau)
    estimates: dict[str, dict[int, ParticleEstimate]] = {}
    references: dict[str, tuple[OUSolution, Thermodynamics]] = {}
    found: dict[str, ParticleConvergence] = {}
    repeats = {n: int(min(8, max(1, counts[-1] // (4 * n)))) for n in counts}
    with progress_bar(
        sum(repeats.values()) * len(PARTICLE_CASES), "thermo-limits: particles"
    ) as bar:
        for key in PARTICLE_CASES:
            p = protocols[key]
            estimates[key] = {}
            err_s, err_v = [], []
            for j, n in enumerate(counts):
                sq = np.zeros(2)
                for rep in range(repeats[n]):
                    est = simulate_particles(
                        p,
                        n,
                        config.particle_steps,
                        n_out=config.particle_outputs,
                        seed=config.seed + 1000 * j + rep,
                    )
                    if key not in references:
                        ref = solve_moments(p, t_eval=est.t)
                        references[key] = (ref, thermodynamics(ref))
                    sq += np.square(_errors(est, references[key][1]))
                    if rep == 0:
                        estimates[key][n] = est
                    bar.advance()
                e_s, e_v = np.sqrt(sq / repeats[n])
                err_s.append(float(e_s))
                err_v.append(float(e_v))
            fit = len(counts) >= 2
            found[key] = ParticleConvergence(
                n_particles=counts,
                repeats=[repeats[n] for n in counts],
                rel_rms_error_Sdot=err_s,
                rel_rms_error_v2=err_v,
                slope_Sdot=float(np.polyfit(np.log(counts), np.log(err_s), 1)[0])
                if fit
                else None,
                slope_v2=float(np.polyfit(np.log(counts), np.log(err_v), 1)[0]) if fit else None,
                n_steps=config.particle_steps,
                dt=estimates[key][counts[0]].dt,
            )
    return ParticleStudy(found, estimates, references)


def checks(s: ParticleStudy) -> list[Check]:
    """The error falls with N, at a slope near -1/2 when three or more N are given."""
    counts = s.protocols[PARTICLE_CASES[0]].n_particles
    slopes_ok = len(counts) < 3 or all(
        -0.8 <= slope <= -0.3 for v in s.protocols.values() for slope in (v.slope_Sdot, v.slope_v2)
    )
    decreasing = all(
        e[-1] < e[0]
        for v in s.protocols.values()
        for e in (v.rel_rms_error_Sdot, v.rel_rms_error_v2)
    )
    return [
        Check(
            "The particle estimator converges to the closed form (error ~ N^-1/2)",
            decreasing and slopes_ok,
            "; ".join(
                f"{k}: relative RMS error of Sdot "
                + ", ".join(f"{e:.2e}" for e in v.rel_rms_error_Sdot)
                + f" (slope {v.slope_Sdot:.2f}), of v2 "
                + ", ".join(f"{e:.2e}" for e in v.rel_rms_error_v2)
                + f" (slope {v.slope_v2:.2f}) at N = {counts}"
                for k, v in s.protocols.items()
            ),
            kind="software",
        )
    ]


def summary(s: ParticleStudy) -> str:
    """The particles' part of the experiment's summary."""
    return (
        "The particle estimator (Gaussian-fit score) converges at about N^-1/2: "
        + "; ".join(
            f"{k}: relative error of Sdot {v.rel_rms_error_Sdot[0]:.2g} -> "
            f"{v.rel_rms_error_Sdot[-1]:.2g} for N = {v.n_particles[0]:,} -> "
            f"{v.n_particles[-1]:,}"
            for k, v in s.protocols.items()
        )
        + "."
    )


def figure(s: ParticleStudy, path: Path) -> Path:
    """Estimates beside the closed form (Sdot, v2) and the error against N, per protocol."""
    fig, axes = new_figure(2, 3, figsize=(13.5, 7.2), squeeze=False)
    for row, key in enumerate(s.estimates):
        ref, th = s.references[key]
        counts = sorted(s.estimates[key])
        shown = [counts[0], counts[-1]] if len(counts) > 1 else counts
        for col, (name, label) in enumerate(
            (("entropy_production_rate", r"$\dot S_t$"), ("w2_speed", r"$v_2(t)$"))
        ):
            ax = axes[row, col]
            ax.plot(ref.t, getattr(th, name), "k", lw=2, label="closed form")
            for n, marker in zip(shown, ("x", "o"), strict=False):
                est = s.estimates[key][n]
                label_n = f"particles, N = {n:,}"
                ax.plot(est.t, getattr(est, name), marker, ms=4, mfc="none", label=label_n)
            ax.set_title(f"{LABELS[key]}: {label}", fontsize=10)
            ax.set_xlabel("t")
            ax.legend(fontsize=7.5)
        err = s.protocols[key]
        ax = axes[row, 2]
        n = np.array(err.n_particles, float)
        ax.loglog(n, err.rel_rms_error_Sdot, "o-", label=r"$\dot S$")
        ax.loglog(n, err.rel_rms_error_v2, "s-", label=r"$v_2$")
        ax.loglog(
            n,
            err.rel_rms_error_Sdot[0] * np.sqrt(n[0] / n),
            ":",
            color="grey",
            label=r"$\propto N^{-1/2}$",
        )
        ax.set_xlabel("particles N")
        ax.set_ylabel("relative RMS error over t")
        ax.set_title(f"{LABELS[key]}: error", fontsize=10)
        ax.legend(fontsize=7.5)
    return save_figure(fig, path)
