"""2-D toys: the trade-off chain with estimated velocities on a Swiss roll and two peaks.

For each data set and schedule a kernel-regression velocity (the OT kernel average for OT)
is measured against the exact path with the shifted-mean start N((1, 0), I): response,
int v_loss^2 dt, int v2^2 dt, W2^2 / tau and v_loss(t) <= v2(t), with the forward process
and the estimated reverse process at t/tau = 0, 1/3, 2/3, 1 for the figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ottokit.data import swiss_roll, two_peaks
from ottokit.experiments._studies import FIGURE_ONLY
from ottokit.experiments.diffusion_tradeoff.config import DiffusionTradeoffConfig
from ottokit.experiments.diffusion_tradeoff.setting import SCHEDULES, Chain, chain, schedule
from ottokit.flowmatch import (
    ExactVelocity,
    KernelVelocity,
    Normal,
    ot_path_velocity,
    sample_backward,
    tradeoff,
)
from ottokit.ot import w2
from ottokit.progress import progress_bar
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison

__all__ = ["ToyStudy", "checks", "comparisons", "figures", "study", "summary"]

NAME = "toys"
_FRACTIONS = [0.0, 1 / 3, 2 / 3, 1.0]


@dataclass(frozen=True)
class ToyStudy:
    """The chain per 2-D data set and schedule.

    Attributes:
        chains: per data set and schedule, the estimated velocity's chain (2 % tolerance on
            integrated Monte Carlo quantities, 15 % on the sampled v_loss(t)).
        forward: per data set and schedule, samples of P_t at t/tau = 0, 1/3, 2/3, 1.
        reverse: the same times along the estimated reverse process.
    """

    chains: dict[str, dict[str, Chain]]
    forward: dict[str, dict[str, list[np.ndarray]]] = field(metadata=FIGURE_ONLY)
    reverse: dict[str, dict[str, list[np.ndarray]]] = field(metadata=FIGURE_ONLY)


def study(config: DiffusionTradeoffConfig) -> ToyStudy:
    """Every schedule's estimated velocity on each data set."""
    tau = config.tau
    sets = {
        "swiss roll": swiss_roll(config.toy_samples, seed=config.seed),
        "two peaks": two_peaks(config.toy_samples, separation=3.0, std=0.3, seed=config.seed),
    }
    pert = Normal([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
    chains: dict[str, dict[str, Chain]] = {}
    forward: dict[str, dict[str, list[np.ndarray]]] = {}
    reverse: dict[str, dict[str, list[np.ndarray]]] = {}
    with progress_bar(len(sets) * len(SCHEDULES), "diffusion-tradeoff: 2-D toys") as bar:
        for name, arr in sets.items():
            y = torch.as_tensor(arr)
            gen = torch.Generator().manual_seed(config.seed)
            z = torch.randn(y.shape, generator=gen, dtype=torch.float64)
            w2_sq = float(w2(y, z)) ** 2  # P0 and Ptau are shared by the schedules
            chains[name], forward[name], reverse[name] = {}, {}, {}
            for s in SCHEDULES:
                est: Any
                if s == "OT":
                    est = ot_path_velocity(y, z, tau)
                    path = est
                else:
                    est = KernelVelocity(schedule(s, tau), y, z)
                    path = ExactVelocity(schedule(s, tau), y)
                r = tradeoff(
                    est,
                    path,
                    pert,
                    n_samples=config.toy_w1_samples,
                    n_steps=config.toy_ode_steps,
                    n_save=config.n_save,
                    n_x=1024,
                    seed=config.seed,
                    w2_squared_exact=w2_sq,
                    ci="none",
                )
                chains[name][s] = chain(r)
                forward[name][s] = [
                    path.sample_marginal(f * tau, 1000, gen).numpy() for f in _FRACTIONS
                ]
                back = sample_backward(
                    est,
                    torch.randn(1000, 2, generator=gen, dtype=torch.float64),
                    tau,
                    n_steps=config.toy_ode_steps,
                    save_at=_FRACTIONS,
                )
                # saved from t = tau: reorder to t/tau = 0, 1/3, 2/3, 1
                reverse[name][s] = [x.numpy() for x in back.x.flip(0)]
                bar.advance()
    return ToyStudy(chains=chains, forward=forward, reverse=reverse)


def checks(s: ToyStudy) -> list[Check]:
    """The chain with estimated velocities, and v_loss(t) <= v2(t), in 2-D."""
    ineqs = [
        (f"2-D {n} / {sched}", q)
        for n, by_s in s.chains.items()
        for sched, c in by_s.items()
        for q in c.inequalities
    ]
    failed = [(where, q) for where, q in ineqs if not q.holds]
    vloss_ok = {
        f"{n} / {sched}": bool(np.all(np.asarray(c.v_loss) <= 1.05 * np.asarray(c.v2_mid)))
        for n, by_s in s.chains.items()
        for sched, c in by_s.items()
    }
    return [
        Check(
            "2-D toys with estimated velocities (kernel regression): the chain holds (2 % for "
            "integrated Monte Carlo quantities, 15 % for the sampled v_loss(t))",
            not failed,
            f"{len(ineqs) - len(failed)} of {len(ineqs)} hold"
            + (
                f"; e.g. {failed[0][0]} {failed[0][1].name} "
                f"{failed[0][1].lhs:.4g} vs {failed[0][1].rhs:.4g} (estimation error: "
                "the OT path here is the kernel-averaged field itself, whose kinetic energy "
                "falls below its pairs' W2^2 by Jensen's inequality)"
                if failed
                else ""
            ),
        ),
        Check(
            "v_loss(t) <= v2(t) at every time in 2-D (5 % tolerance for the estimates)",
            all(vloss_ok.values()),
            ", ".join(f"{k}: {v}" for k, v in vloss_ok.items()),
        ),
    ]


def comparisons(s: ToyStudy) -> list[Comparison]:
    """None: the paper gives no numbers for these toys."""
    return []


def summary(s: ToyStudy) -> None:
    """None: the checks say all there is."""
    return None


def figures(s: ToyStudy, directory: Path) -> dict[str, Path]:
    """Both processes per data set, and v_loss(t) against v2(t)."""
    return {
        "Swiss roll: forward process (top) and estimated reverse process (bottom) at t/tau = "
        "0, 1/3, 2/3, 1, per schedule": _figure_processes(
            s, "swiss roll", directory / "swiss_roll.png"
        ),
        "Two peaks: forward and estimated reverse processes": _figure_processes(
            s, "two peaks", directory / "two_peaks.png"
        ),
        "v_loss(t) against v2(t) (2-D, shifted-mean perturbation)": _figure_vloss(
            s, directory / "vloss.png"
        ),
    }


def _figure_processes(s: ToyStudy, name: str, path: Path) -> Path:
    fig, axes = new_figure(
        2 * len(SCHEDULES), 4, figsize=(10.0, 2.5 * 2 * len(SCHEDULES)), squeeze=False
    )
    labels = ["0", "1/3", "2/3", "1"]
    for i, sched in enumerate(SCHEDULES):
        for j in range(4):
            for row, clouds, title in (
                (2 * i, s.forward[name][sched], "forward P_t"),
                (2 * i + 1, s.reverse[name][sched], "estimated reverse"),
            ):
                ax = axes[row, j]
                pts = np.asarray(clouds[j])
                ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.5)
                ax.set_xlim(-3.5, 3.5)
                ax.set_ylim(-3.5, 3.5)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{sched}, {title}, t/tau={labels[j]}", fontsize=7)
    return save_figure(fig, path)


def _figure_vloss(s: ToyStudy, path: Path) -> Path:
    fig, axes = new_figure(1, len(s.chains), figsize=(5.0 * len(s.chains), 3.6))
    for ax, (name, by_s) in zip(np.atleast_1d(axes), s.chains.items(), strict=True):
        for k, sched in enumerate(SCHEDULES):
            c = by_s[sched]
            ax.plot(c.t_mid, c.v2_mid, "-", color=f"C{k}", label=f"v2, {sched}")
            ax.plot(c.t_mid, c.v_loss, "--", color=f"C{k}", label=f"v_loss, {sched}")
        ax.set_xlabel("t")
        ax.set_title(name)
        ax.legend(fontsize=7)
    return save_figure(fig, path)
