"""Fig. 6(b) of Ikeda et al.: the exact chain of the shifted-mean row against the paper's bars.

response <= int v_loss^2 dt <= int v2^2 dt per schedule, with int v2^2 dt smallest, and equal
to W2(P0, Ptau)^2 / tau, for OT. Read from Table I's exact chains; nothing is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ottokit.experiments._studies import FIGURE_ONLY
from ottokit.experiments.diffusion_tradeoff.setting import (
    PAPER_KINETIC_BARS,
    PAPER_TABLE_I,
    SCHEDULES,
    Chain,
)
from ottokit.experiments.diffusion_tradeoff.table import TableStudy
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison

__all__ = ["Fig6bStudy", "checks", "comparisons", "figure", "study", "summary"]

NAME = "fig6b"
CAPTION = (
    "Fig. 6(b), shifted mean: response <= int v_loss^2 <= int v2^2 per schedule with the "
    "paper's bars, and the exact v_loss(t) <= v2(t)"
)
FILE = "fig6b.png"


@dataclass(frozen=True)
class Fig6bStudy:
    """The shifted-mean row's chain per schedule.

    Attributes:
        kinetic: per schedule, int v2^2 dt (quadrature).
        response_over_vloss_integral: per schedule, response / int v_loss^2 dt (1 on the OT
            path, where W1(t) is linear).
        chains: per schedule, the exact chain (figure only: Table I records it).
    """

    kinetic: dict[str, float]
    response_over_vloss_integral: dict[str, float]
    chains: dict[str, Chain] = field(metadata=FIGURE_ONLY)


def study(table: TableStudy) -> Fig6bStudy:
    """The shifted-mean row of Table I's exact chains."""
    res = table.exact["shifted mean"]
    return Fig6bStudy(
        kinetic={s: res[s].kinetic for s in SCHEDULES},
        response_over_vloss_integral={
            s: res[s].response / res[s].v_loss_sq_integral for s in SCHEDULES
        },
        chains=res,
    )


def _rel_to_bars(s: Fig6bStudy) -> dict[str, float]:
    return {sched: s.kinetic[sched] / PAPER_KINETIC_BARS[sched] - 1.0 for sched in SCHEDULES}


def checks(s: Fig6bStudy) -> list[Check]:
    """OT's bound is the smallest and its chain the tightest; the bars match the paper's."""
    kin, tight, bars = s.kinetic, s.response_over_vloss_integral, _rel_to_bars(s)
    return [
        Check(
            "OT has the smallest bound, int v2^2 dt = W2(P0, Ptau)^2/tau, and the tightest "
            "chain: on the OT path W1(t) is linear, so response = int v_loss^2 dt",
            kin["OT"] < min(kin["cosine"], kin["cond-OT"])
            and abs(kin["OT"] / s.chains["OT"].w2_bound - 1) < 1e-6
            and abs(tight["OT"] - 1) < 1e-6,
            ", ".join(f"{x}: int v2^2 {kin[x]:.4f}, response/int v_loss^2 {tight[x]:.4f}"
                      for x in SCHEDULES),
        ),
        Check(
            "Fig. 6(b): our int v2^2 dt within 3 % of the paper's bars (read off its figure)",
            all(abs(v) <= 0.03 for v in bars.values()),
            ", ".join(f"{x} {kin[x]:.4f} vs {PAPER_KINETIC_BARS[x]} ({bars[x]:+.1%})"
                      for x in SCHEDULES),
        ),
    ]


def comparisons(s: Fig6bStudy) -> list[Comparison]:
    """Our int v2^2 dt beside the paper's bars."""
    return [
        Comparison(
            f"Fig. 6(b), int v2^2 dt, {x}",
            f"{s.kinetic[x]:.4f}",
            f"{PAPER_KINETIC_BARS[x]}",
            f"read off the paper's bar; quadrature here; int v_loss^2 = "
            f"{s.chains[x].v_loss_sq_integral:.4f}",
        )
        for x in SCHEDULES
    ]


def summary(s: Fig6bStudy) -> str:
    """The exact bounds beside the paper's bars."""
    return (
        "The exact bounds int v2^2 dt are "
        + ", ".join(f"{x} {v:.4f}" for x, v in s.kinetic.items())
        + " (the paper's bars 0.201 / 0.445 / 0.144)."
    )


def figure(s: Fig6bStudy, path: Path) -> Path:
    """The chain per schedule beside the paper's bars (left); v_loss(t) and v2(t) (right)."""
    res = s.chains
    fig, (ax, ax2) = new_figure(1, 2, figsize=(11.0, 4.0))
    x = np.arange(len(SCHEDULES))
    w = 0.2
    ax.bar(x - 1.5 * w, [res[k].response for k in SCHEDULES], w, label="(Delta W1)^2/(tau D0)")
    ax.bar(x - 0.5 * w, [res[k].v_loss_sq_integral for k in SCHEDULES], w,
           label="int v_loss^2 dt")
    ax.bar(x + 0.5 * w, [res[k].kinetic for k in SCHEDULES], w, label="int v2^2 dt")
    ax.bar(x + 1.5 * w, [PAPER_KINETIC_BARS[k] for k in SCHEDULES], w, color="0.6",
           label="paper's int v2^2 bar")
    ax.scatter(x - 1.5 * w, PAPER_TABLE_I["shifted mean"], color="k", marker="_", s=200,
               zorder=3, label="paper's Table I")
    ax.set_xticks(x, SCHEDULES)
    ax.set_title("shifted mean: the chain of Fig. 6(b) (exact)", fontsize=9)
    ax.legend(fontsize=7)
    for k, sched in enumerate(SCHEDULES):
        ax2.plot(res[sched].t_mid, res[sched].v2_mid, "-", color=f"C{k}", label=f"v2, {sched}")
        ax2.plot(res[sched].t_mid, res[sched].v_loss, "--", color=f"C{k}",
                 label=f"v_loss, {sched}")
    ax2.set_xlabel("t")
    ax2.set_title("v_loss(t) <= v2(t)", fontsize=9)
    ax2.legend(fontsize=7)
    return save_figure(fig, path)
