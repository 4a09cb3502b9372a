"""diffusion-tradeoff, part 3: Fig. 7 of Ikeda et al., a non-conservative force on a Swiss roll.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from scipy.integrate import simpson

from ottokit.data import swiss_roll
from ottokit.flowmatch import (
    RotationalVelocity,
    integrate,
    kinetic_cost,
    ot_couple,
    ot_path_velocity,
)
from ottokit.ot import w1
from ottokit.report.figures import new_figure, save_figure
from ottokit.thermo import RotationalDiffusion, solve_moments, thermodynamics

__all__ = ["PAPER_FIG7", "RotationCase", "rotation_study"]

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
    samples: tuple[np.ndarray, np.ndarray]


def _gaussian_proxy(process: RotationalDiffusion, data: np.ndarray) -> dict[str, float]:
    sol = solve_moments(process.protocol(), data.mean(axis=0), np.cov(data.T), t_eval=401)
    th = thermodynamics(sol)
    return {
        "t_sdot": float(simpson(th.mean_squared_velocity, x=th.t)),
        "v2_sq": float(simpson(th.w2_speed**2, x=th.t)),
        "housekeeping": float(simpson(th.housekeeping_power, x=th.t)),
    }


def _run_once(
    velocity: Any, z: torch.Tensor, scale: float, tau: float, d0: float, cfg: Any, adaptive: bool
) -> tuple[float, float, float, float, torch.Tensor]:
    """Transport z and s z back to the data end; W1 at both ends and int E|nu|^2 along z's path."""
    n = z.shape[0]
    gl_x, gl_w = np.polynomial.legendre.leggauss(cfg.rotation_kinetic_nodes)
    t_gl = _T_END + 0.5 * (tau - _T_END) * (gl_x + 1.0)
    fractions = sorted({0.0, 1.0, *((tau - t_gl) / (tau - _T_END)).tolist()})
    kw = (
        {"method": "dopri5", "rtol": cfg.rotation_rtol, "atol": 1e-3 * cfg.rotation_rtol}
        if adaptive
        else {"method": "rk4", "n_steps": cfg.rotation_ode_steps}
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


def rotation_study(cfg: Any, bar: Any) -> list[RotationCase]:
    tau, s = cfg.tau, cfg.rotation_scale
    d0 = (1.0 / (s * math.sqrt(2.0 - s * s))) ** 2 - 1.0  # chi^2(N(0, s^2 I) || N(0, I)), 2-D
    data = swiss_roll(cfg.rotation_data, seed=cfg.seed)
    y = torch.as_tensor(data)
    cases = []
    specs: list[tuple[str, float | None]] = [(f"g = {g:g}", float(g)) for g in cfg.rotation_g]
    specs.append(("OT", None))
    for name, g in specs:
        if g is None:
            gen = torch.Generator().manual_seed(cfg.seed + 3)
            noise = torch.randn(y.shape, generator=gen, dtype=torch.float64)
            velocity: Any = ot_path_velocity(y, noise, tau, bandwidth=cfg.rotation_ot_bandwidth)
            forward = ot_couple(y, noise).w2_squared / tau
            end_var, gaussian = 1.0, None
        else:
            process = RotationalDiffusion(h=cfg.rotation_h, g=g, T_fin=cfg.rotation_T_fin, tau=tau)
            velocity = RotationalVelocity(process, y)
            forward = kinetic_cost(velocity, n_t=16, n_x=2000, seed=cfg.seed).integral
            end = velocity.sample_marginal(tau, 20_000, torch.Generator().manual_seed(cfg.seed))
            end_var, gaussian = float(end.var(dim=0).mean()), _gaussian_proxy(process, data)
        values, first = [], None
        for r in range(cfg.rotation_repeats):
            gen = torch.Generator().manual_seed(cfg.seed + 7919 * (r + 1))
            z = torch.randn(cfg.rotation_samples, 2, generator=gen, dtype=torch.float64)
            out = _run_once(velocity, z, s, tau, d0, cfg, adaptive=g is not None)
            values.append(out[0])
            first = first or out
        mean = float(np.mean(values))
        half = float(
            stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
        )
        n = cfg.rotation_samples
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
    return cases


def fig_rotation(cases: list[RotationCase], data: np.ndarray, path: Any) -> Any:
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
