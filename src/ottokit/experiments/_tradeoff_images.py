"""diffusion-tradeoff, part 4: a Fig. 8 analogue, learned flow-matching models on images.

The paper measures the trade-off with pretrained latent flow-matching models (latent
dimension 4096, CelebA-HQ and LSUN bedrooms), which cannot be downloaded here. We
train our own velocity MLPs on scikit-learn's 8 x 8 digits (pixels in [-1, 1],
n_d = 64) for the cond-OT and cosine schedules and the minibatch-OT coupling, then
measure per dimension the response eta = (Delta W1)^2/(tau D0) and the bound
c2 = tau E|u_theta|^2 (Eq. G20; along the generated path, time-averaged), with D0 from
the paper's recipe, 2 KL of isotropic Gaussian fits of the two starts (Eq. G21). The
perturbed start is N(0, s^2 I) (our choice; the paper's is not known), drawn as s z
from the same z. W1 between the generated clouds is exact OT in R^64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ottokit.data import digits
from ottokit.flowmatch import (
    CondOT,
    Cosine,
    TrainConfig,
    d0_isotropic_fit,
    integrate,
    train_velocity,
)
from ottokit.ot import w1
from ottokit.report.figures import new_figure, save_figure

__all__ = ["PAPER_FIG8", "ImageRun", "image_study"]

# Fig. 8 of arXiv:2407.04495, CelebA-HQ, read off the figure (REFERENCE.md / issue 13)
PAPER_FIG8 = {"eta_per_dim": 0.72, "c2_per_dim": 1.12, "n_d": 4096}
COUPLINGS = {
    "cond-OT": (CondOT, "independent"),
    "cosine": (Cosine, "independent"),
    "minibatch-OT": (CondOT, "ot"),
}


@dataclass(frozen=True)
class ImageRun:
    """One trained model: eta and c2 per dimension, D0 (Eq. G21) and the exact chi^2."""

    coupling: str
    repeat: int
    eta_per_dim: float
    c2_per_dim: float
    d0: float
    w1_initial: float
    w1_final: float
    final_loss: float


def image_study(cfg: Any, bar: Any) -> tuple[list[ImageRun], float]:
    """Train ``image_repeats`` models per coupling and measure each; returns the runs and the
    exact chi^2 of the perturbed start (for comparison with Eq. G21's D0)."""
    images, _ = digits("all")
    x = torch.as_tensor(images.reshape(len(images), -1))
    n_d, tau, s = x.shape[1], cfg.tau, cfg.image_scale
    chi2 = (1.0 / (s * math.sqrt(2.0 - s * s))) ** n_d - 1.0
    runs = []
    for name in cfg.image_couplings:
        schedule_cls, coupling = COUPLINGS[name]
        for r in range(cfg.image_repeats):
            tc = TrainConfig(
                n_steps=cfg.image_train_steps,
                batch_size=cfg.image_batch,
                hidden=cfg.image_hidden,
                coupling=coupling,
                seed=cfg.seed + r,
            )
            res = train_velocity(schedule_cls(tau), x, tc, device=cfg.device)
            model = res.model.eval()
            gen = torch.Generator().manual_seed(cfg.seed + 1000 + r)
            z = torch.randn(cfg.image_samples, n_d, generator=gen)
            runs.append(_measure(name, r, model, z, s, tau, cfg, float(res.losses[-50:].mean())))
            bar.advance()
    return runs, chi2


def _measure(
    name: str, r: int, model: Any, z: torch.Tensor, s: float, tau: float, cfg: Any, loss: float
) -> ImageRun:
    n, n_d = z.shape
    zp = s * z
    steps = cfg.image_ode_steps
    traj = integrate(
        model, torch.cat([z, zp]).to(cfg.device), tau, 0.0, method="rk4", n_steps=steps,
        save_at=list(np.linspace(0.0, 1.0, steps + 1)),
    )
    with torch.no_grad():
        energy = [
            float((model(t, xs[:n]) ** 2).sum(dim=1).mean())
            for t, xs in zip(traj.t, traj.x, strict=True)
        ]
    # c2 = tau E_{t ~ U(0, tau)} E|u|^2 = int_0^tau E|u_t|^2 dt (trapezoid on the step grid)
    c2 = float(np.trapezoid(energy[::-1], traj.t.cpu().double().numpy()[::-1]))
    d0 = d0_isotropic_fit(z.double(), zp.double())
    start = z.double().numpy(), zp.double().numpy()
    end = traj.final[:n].double().cpu().numpy(), traj.final[n:].double().cpu().numpy()
    w_start, w_end = float(w1(*start)), float(w1(*end))
    eta = (w_end - w_start) ** 2 / (tau * d0)
    return ImageRun(name, r, eta / n_d, c2 / n_d, d0, w_start, w_end, loss)


def summarise(runs: list[ImageRun]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation over repeats, per coupling."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r.coupling for r in runs):
        rs = [r for r in runs if r.coupling == name]
        for key in ("eta_per_dim", "c2_per_dim", "d0", "w1_initial", "w1_final"):
            vals = np.array([getattr(r, key) for r in rs])
            out.setdefault(name, {})[key] = float(vals.mean())
            out[name][key + "_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        out[name]["bound_holds"] = float(all(r.eta_per_dim <= r.c2_per_dim for r in rs))
    return out


def fig_images(summary: dict[str, dict[str, float]], path: Any) -> Any:
    names = list(summary)
    fig, axes = new_figure(1, 2, figsize=(10.0, 3.8))
    x = np.arange(len(names))
    for ax, key, label, paper in (
        (axes[0], "eta_per_dim", "eta / n_d", PAPER_FIG8["eta_per_dim"]),
        (axes[1], "c2_per_dim", "c2 / n_d = tau E|u|^2 / n_d", PAPER_FIG8["c2_per_dim"]),
    ):
        ax.bar(x, [summary[n][key] for n in names],
               yerr=[summary[n][key + "_sd"] for n in names], capsize=3,
               label="digits 8x8, n_d = 64 (mean +- sd, repeats)")
        ax.axhline(paper, color="0.4", ls="--", label="CelebA-HQ latent, n_d = 4096 (paper)")
        ax.set_xticks(x, names)
        ax.set_title(label, fontsize=9)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    return save_figure(fig, path)
