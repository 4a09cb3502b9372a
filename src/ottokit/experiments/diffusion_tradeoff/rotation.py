"""Fig. 7 of Ikeda et al.: a non-conservative (rotational) forward process on a Swiss roll.

Forward process (stated in the paper): dx = A_t x dt + sqrt(2 T_t) dW with
A_t = [[H, -G], [G, H]], H_t = -h (1 - t/tau) - T_t, G_t = g (1 - t/tau),
T_t = T_fin (t/tau)^2, h = 1.1, T_fin = 0.5, g in {0, 3, 5}, plus the OT path. The
paper's Swiss-roll data and its score network are not known: we use ottokit's Swiss
roll and the exact mean local velocity over it (:class:`~ottokit.flowmatch.RotationalVelocity`).
Our reading of the perturbation: both reverse processes start from the noise of the
diffusion model, N(0, I) and the perturbed N(0, s^2 I), s = 0.9 (paired draws z and s z,
which makes the start's W1 exact), so D0 = chi^2 = (1/(s sqrt(2 - s^2)))^2 - 1.
With this process P_tau is not N(0, I), so the generated unperturbed path is not the
forward path reversed: the bound that holds is int E|nu|^2 dt along the generated path,
and the forward path's int T Sdot dt is reported beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from scipy.integrate import simpson

from ottokit.data import swiss_roll
from ottokit.experiments._studies import FIGURE_ONLY
from ottokit.experiments.diffusion_tradeoff.config import DiffusionTradeoffConfig
from ottokit.flowmatch import (
    RotationalVelocity,
    integrate,
    kinetic_cost,
    ot_couple,
    ot_path_velocity,
)
from ottokit.ot import w1
from ottokit.progress import progress_bar
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison
from ottokit.thermo import RotationalDiffusion, solve_moments, thermodynamics

__all__ = [
    "PAPER_FIG7",
    "RotationCase",
    "RotationStudy",
    "checks",
    "comparisons",
    "figure",
    "study",
    "summary",
]

NAME = "fig7"
CAPTION = (
    "Fig. 7: rotational forward process on a Swiss roll, responses beside the paper's, and "
    "generated samples"
)
FILE = "fig7.png"

# Fig. 7 of arXiv:2407.04495 (REFERENCE.md): the response per force
PAPER_FIG7 = {"g = 0": 9.301e-2, "g = 3": 3.430e-1, "g = 5": 5.615e-1, "OT": 7.221e-6}
_T_END = 1e-3  # the score term is stiff near t = 0 (T/c ~ 3/2t); stop just short of it


@dataclass(frozen=True)
class RotationCase:
    """One forward process of Fig. 7.

    Attributes:
        response, ci, repeats: mean (Delta W1)^2/(tau D0) over independent draws, its
            Student-t interval and the draws' values.
        w1_initial, w1_final: W1 of the first draw at t = tau and at the data end.
        kinetic_generated: int E|nu_t|^2 dt along the generated unperturbed path (the
            bound that holds for our starts).
        kinetic_forward: int E_{P_t}|nu_t|^2 dt = int T Sdot dt of the forward path
            (Monte Carlo; = W2^2/tau for OT).
        end_variance: per-coordinate variance of P_tau (1 would be the start N(0, I)).
        gaussian: for the Gaussian fitted to the data, int T Sdot dt, int v2^2 dt and the
            housekeeping part int E|nu - grad phi|^2 dt the rotation costs (closed forms);
            None for OT.
        samples: generated unperturbed and perturbed points (first draw), for the figure.
    """

    name: str
    g: float | None
    paper: float
    response: float
    ci: tuple[float, float]
    repeats: list[float]
    w1_initial: float
    w1_final: float
    kinetic_generated: float
    kinetic_forward: float
    end_variance: float
    gaussian: dict[str, float] | None
    samples: tuple[np.ndarray, np.ndarray] = field(metadata=FIGURE_ONLY)


@dataclass(frozen=True)
class RotationStudy:
    """Fig. 7's forward processes.

    Attributes:
        cases: one per rotation strength g, then the OT path.
        data: the Swiss roll the processes start from (figure only).
    """

    cases: list[RotationCase]
    data: np.ndarray = field(metadata=FIGURE_ONLY)


def _gaussian_proxy(process: RotationalDiffusion, data: np.ndarray) -> dict[str, float]:
    sol = solve_moments(process.protocol(), data.mean(axis=0), np.cov(data.T), t_eval=401)
    th = thermodynamics(sol)
    return {
        "t_sdot": float(simpson(th.mean_squared_velocity, x=th.t)),
        "v2_sq": float(simpson(th.w2_speed**2, x=th.t)),
        "housekeeping": float(simpson(th.housekeeping_power, x=th.t)),
    }


def _run_once(
    velocity: Any,
    z: torch.Tensor,
    scale: float,
    tau: float,
    d0: float,
    config: DiffusionTradeoffConfig,
    adaptive: bool,
) -> tuple[float, float, float, float, torch.Tensor]:
    """Transport z and s z back to the data end; W1 at both ends and int E|nu|^2 along z's path."""
    n = z.shape[0]
    gl_x, gl_w = np.polynomial.legendre.leggauss(config.rotation_kinetic_nodes)
    t_gl = _T_END + 0.5 * (tau - _T_END) * (gl_x + 1.0)
    fractions = sorted({0.0, 1.0, *((tau - t_gl) / (tau - _T_END)).tolist()})
    kw = (
        {"method": "dopri5", "rtol": config.rotation_rtol, "atol": 1e-3 * config.rotation_rtol}
        if adaptive
        else {"method": "rk4", "n_steps": config.rotation_ode_steps}
    )
    traj = integrate(velocity, torch.cat([z, scale * z]), tau, _T_END, save_at=fractions, **kw)
    times = traj.t.double().numpy()
    energy = []
    for tj in t_gl:
        j = int(np.argmin(np.abs(times - tj)))
        v = velocity(torch.tensor(float(times[j]), dtype=torch.float64), traj.x[j, :n])
        energy.append(float((torch.as_tensor(v) ** 2).sum(dim=1).mean()))
    kinetic = 0.5 * (tau - _T_END) * float(gl_w @ np.array(energy))
    start, end = traj.x[0], traj.x[-1]
    w_start = float(w1(start[:n].numpy(), start[n:].numpy()))
    w_end = float(w1(end[:n].numpy(), end[n:].numpy()))
    return (w_end - w_start) ** 2 / (tau * d0), w_start, w_end, kinetic, end


def study(config: DiffusionTradeoffConfig) -> RotationStudy:
    """Each forward process: responses over independent draws, bounds and the Gaussian fit."""
    tau, s = config.tau, config.rotation_scale
    d0 = (1.0 / (s * math.sqrt(2.0 - s * s))) ** 2 - 1.0  # chi^2(N(0, s^2 I) || N(0, I)), 2-D
    data = swiss_roll(config.rotation_data, seed=config.seed)
    y = torch.as_tensor(data)
    cases = []
    specs: list[tuple[str, float | None]] = [(f"g = {g:g}", float(g)) for g in config.rotation_g]
    specs.append(("OT", None))
    with progress_bar(len(specs), "diffusion-tradeoff: Fig. 7") as bar:
        for name, g in specs:
            if g is None:
                gen = torch.Generator().manual_seed(config.seed + 3)
                noise = torch.randn(y.shape, generator=gen, dtype=torch.float64)
                velocity: Any = ot_path_velocity(
                    y, noise, tau, bandwidth=config.rotation_ot_bandwidth
                )
                forward = ot_couple(y, noise).w2_squared / tau
                end_var, gaussian = 1.0, None
            else:
                process = RotationalDiffusion(
                    h=config.rotation_h, g=g, T_fin=config.rotation_T_fin, tau=tau
                )
                velocity = RotationalVelocity(process, y)
                forward = kinetic_cost(velocity, n_t=16, n_x=2000, seed=config.seed).integral
                end = velocity.sample_marginal(
                    tau, 20_000, torch.Generator().manual_seed(config.seed)
                )
                end_var, gaussian = float(end.var(dim=0).mean()), _gaussian_proxy(process, data)
            values, first = [], None
            for r in range(config.rotation_repeats):
                gen = torch.Generator().manual_seed(config.seed + 7919 * (r + 1))
                z = torch.randn(config.rotation_samples, 2, generator=gen, dtype=torch.float64)
                out = _run_once(velocity, z, s, tau, d0, config, adaptive=g is not None)
                values.append(out[0])
                first = first or out
            mean = float(np.mean(values))
            t_975 = stats.t.ppf(0.975, len(values) - 1)
            half = float(t_975 * np.std(values, ddof=1) / math.sqrt(len(values)))
            n = config.rotation_samples
            cases.append(
                RotationCase(
                    name=name,
                    g=g,
                    paper=PAPER_FIG7.get(name, math.nan),
                    response=mean,
                    ci=(mean - half, mean + half),
                    repeats=[float(v) for v in values],
                    w1_initial=first[1],
                    w1_final=first[2],
                    kinetic_generated=first[3],
                    kinetic_forward=float(forward),
                    end_variance=end_var,
                    gaussian=gaussian,
                    samples=(first[4][:n].numpy(), first[4][n:].numpy()),
                )
            )
            bar.advance()
    return RotationStudy(cases, data)


def _g_cases(s: RotationStudy) -> list[RotationCase]:
    return [c for c in s.cases if c.g is not None]


def checks(s: RotationStudy) -> list[Check]:
    """The bound along the generated path, and the paper's trends with g."""
    rotation = s.cases
    g_cases = _g_cases(s)
    ot_case = {c.name: c for c in rotation}["OT"]
    grows = all(a.response < b.response for a, b in zip(g_cases[:-1], g_cases[1:], strict=True))
    hk = [c.gaussian["housekeeping"] for c in g_cases if c.gaussian is not None]
    hk_ok = hk[0] < 1e-6 * max(hk[-1], 1e-300) and all(
        a < b for a, b in zip(hk[:-1], hk[1:], strict=True)
    )
    return [
        Check(
            "Fig. 7: the response is bounded by int E|nu|^2 dt along the generated path "
            "(the theorem with the transporting field, non-conservative included)",
            all(c.response <= c.kinetic_generated for c in rotation),
            ", ".join(f"{c.name}: {c.response:.3g} <= {c.kinetic_generated:.3g}"
                      for c in rotation),
        ),
        Check(
            "Fig. 7 (paper): the response grows with the rotation g",
            grows,
            ", ".join(f"{c.name}: {c.response:.3g} [{c.ci[0]:.3g}, {c.ci[1]:.3g}]"
                      for c in g_cases),
        ),
        Check(
            "Fig. 7 (paper): the OT response is near zero (here: below 10 % of g = 0's)",
            ot_case.response < 0.1 * g_cases[0].response,
            f"OT {ot_case.response:.3g} vs g = 0 {g_cases[0].response:.3g}; paper 7.2e-6",
        ),
        Check(
            "The rotation costs housekeeping entropy production, E|nu - grad phi|^2 = T Sdot - "
            "v2^2: zero for g = 0 and growing with g (Gaussian fit of the data, closed form)",
            hk_ok,
            ", ".join(f"{c.name}: {c.gaussian['housekeeping']:.4g}"
                      for c in g_cases if c.gaussian is not None),
        ),
    ]


def comparisons(s: RotationStudy) -> list[Comparison]:
    """Each response beside the paper's."""
    return [
        Comparison(
            f"Fig. 7, response, {c.name}",
            f"{c.response:.4g} [{c.ci[0]:.3g}, {c.ci[1]:.3g}]",
            f"{c.paper:.4g}",
            f"our Swiss roll and exact velocity; int E|nu|^2 generated "
            f"{c.kinetic_generated:.3g}, forward int T Sdot {c.kinetic_forward:.3g}; "
            f"Var P_tau {c.end_variance:.2f}",
        )
        for c in s.cases
    ]


def summary(s: RotationStudy) -> str:
    """Our responses beside the paper's, the bound and the housekeeping cost against g."""
    rotation = s.cases
    g_cases = _g_cases(s)
    rot = {c.name: c for c in rotation}
    grows = all(a.response < b.response for a, b in zip(g_cases[:-1], g_cases[1:], strict=True))
    return (
        "Fig. 7 (our Swiss roll, exact velocity, paired starts N(0, I) and N(0, 0.81 I)): "
        + ", ".join(f"{c.name} {c.response:.3g} (paper {c.paper:.3g})" for c in rotation)
        + "; the bound int E|nu|^2 dt grows with g ("
        + ", ".join(f"{c.kinetic_generated:.3g}" for c in g_cases)
        + ") and so does the rotation's housekeeping cost (Gaussian fit: "
        + ", ".join(f"{c.gaussian['housekeeping']:.3g}" for c in g_cases if c.gaussian)
        + ("), and the response grows too. " if grows else
           "), but the response with the exact velocity does not follow: a rotation moves both "
           "generated clouds alike and W1 does not see it. ")
        + "The paper's values and its near-zero OT value "
        f"({rot['OT'].paper:.1g}; ours {rot['OT'].response:.3g}) are not reproduced; its "
        "data, score network and starts differ from ours, and P_tau of this process is not "
        f"N(0, I) (variance {g_cases[0].end_variance:.2f} per coordinate)."
    )


def figure(s: RotationStudy, path: Path) -> Path:
    """Responses beside the paper's and the bound (left); generated samples per process."""
    cases, data = s.cases, s.data
    fig, axes = new_figure(1, len(cases) + 1, figsize=(3.4 * (len(cases) + 1), 3.6))
    ax = axes[0]
    x = np.arange(len(cases))
    ours = np.array([c.response for c in cases])
    err = np.array([[c.response - c.ci[0], c.ci[1] - c.response] for c in cases]).T
    ax.bar(x - 0.2, ours, 0.4, yerr=np.clip(err, 0, None), capsize=2, label="ours (95% CI)")
    ax.bar(x + 0.2, [c.paper for c in cases], 0.4, color="0.6", label="paper")
    ax.plot(x, [c.kinetic_generated for c in cases], "k_", ms=14, label="int E|nu|^2 (generated)")
    ax.set_yscale("log")
    ax.set_xticks(x, [c.name for c in cases], fontsize=8)
    ax.set_title("response (Delta W1)^2/(tau D0)", fontsize=9)
    ax.legend(fontsize=6)
    for ax, c in zip(axes[1:], cases, strict=True):
        ax.scatter(data[:, 0], data[:, 1], s=1, color="0.8", label="data")
        a, b = c.samples
        ax.scatter(a[:, 0], a[:, 1], s=1, alpha=0.5, label="from N(0, I)")
        ax.scatter(b[:, 0], b[:, 1], s=1, alpha=0.5, label="from N(0, s^2 I)")
        ax.set_title(f"{c.name}: generated", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(fontsize=6, markerscale=4)
    return save_figure(fig, path)
