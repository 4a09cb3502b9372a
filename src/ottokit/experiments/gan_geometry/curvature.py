"""Connection and curvature of the discriminator potential (seed 001 Def. 9.4, Algorithm 1).

The exact section log(q/rho_theta) of an affine Gaussian generator is flat; learned
discriminators fine-tuned along parameter paths carry a curvature F_hat that tracks their
error (Lemmas 9.6-9.7). Shown as |F_hat| on a 1-D line and heat maps on a 2-D grid.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from ottokit.experiments._studies import fmt_list
from ottokit.experiments.gan_geometry.config import GanGeometryConfig
from ottokit.experiments.gan_geometry.potentials import gaussian_case, learned_potential, unit
from ottokit.gan.connection import (
    GaussianAffineModel,
    LearnedPotential,
    curvature,
    curvature_exact,
    line_grid,
    square_grid,
)
from ottokit.graph import observed_order
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison

__all__ = [
    "CurvatureStudy",
    "ExactSection",
    "Heatmap",
    "LearnedCurvature",
    "MLPCurvature",
    "checks",
    "comparisons",
    "figure",
    "study",
    "summary",
]

NAME = "curvature"
CAPTION = "|F_hat(x)| of learned discriminators (1-D line, 2-D grid) beside their lag"


@dataclass(frozen=True)
class ExactSection:
    """Curvature of the exact section log(q/rho_theta) on one grid of points x.

    Attributes:
        grad_scale: max over x of |grad_x phi|.
        algorithm1_max_abs: max |F_hat| from Algorithm 1, per Delta.
        autograd_max_abs: max |F_hat| with exact (autograd) connections, per Delta.
        autograd_order: observed order of ``autograd_max_abs`` in Delta.
        two_form_max_abs: max |F| of the exact curvature 2-form.
    """

    grad_scale: float
    algorithm1_max_abs: list[float]
    autograd_max_abs: list[float]
    autograd_order: float
    two_form_max_abs: float


@dataclass(frozen=True)
class LearnedCurvature:
    """|F_hat| of a quadratic-logit discriminator fine-tuned ``budget`` steps per point.

    Attributes:
        budget: fine-tuning steps per point.
        mean_abs_F: mean over x of |F_hat|, per Delta.
        abs_F: |F_hat(x)| at the smallest Delta.
        lag: |grad phi_hat - grad phi_hat converged| at the corner reached along path 1.
        error: |grad phi_hat - grad log(q/rho)| there.
        mean_lag: mean over x of ``lag``.
        mean_error: mean over x of ``error``.
        spearman_F_lag: Spearman correlation over x of ``abs_F`` with ``lag``.
        spearman_F_error: the same with ``error``.
    """

    budget: int
    mean_abs_F: list[float]
    abs_F: list[float]
    lag: list[float]
    error: list[float]
    mean_lag: float
    mean_error: float
    spearman_F_lag: float
    spearman_F_error: float


@dataclass(frozen=True)
class MLPCurvature:
    """|F_hat| of an MLP discriminator (the realistic case) at the smallest Delta.

    Attributes:
        budget: fine-tuning steps per point.
        abs_F: |F_hat(x)|.
        mean_abs_F: its mean over x.
        mean_lag: mean over x of the lag (see :class:`LearnedCurvature`).
        mean_error: mean over x of the error.
        spearman_F_lag: Spearman correlation over x of |F_hat| with the lag.
        spearman_F_error: the same with the error.
    """

    budget: int
    abs_F: list[float]
    mean_abs_F: float
    mean_lag: float
    mean_error: float
    spearman_F_lag: float
    spearman_F_error: float


@dataclass(frozen=True)
class Heatmap:
    """|F_hat|, lag and error over a 2-D square grid at the smallest Delta.

    Attributes:
        axis: the grid's coordinates along each axis.
        budget: fine-tuning steps per point of the learned discriminator.
        delta: Delta.
        exact_abs_F: |F_hat| of the exact section (Algorithm 1), shape (axis, axis).
        learned_abs_F: |F_hat| of the learned discriminator.
        lag: its lag.
        error: its error.
        spearman_F_lag: Spearman correlation over the grid of |F_hat| with the lag.
    """

    axis: list[float]
    budget: int
    delta: float
    exact_abs_F: list[list[float]]
    learned_abs_F: list[list[float]]
    lag: list[list[float]]
    error: list[list[float]]
    spearman_F_lag: float


@dataclass(frozen=True)
class CurvatureStudy:
    """Curvature of exact and learned discriminator potentials.

    Attributes:
        deltas: the parameter steps Delta, decreasing.
        exact: the exact section on a 1-D line ("1d") and a 2-D grid ("2d").
        x: the points of the 1-D line of the learned discriminators.
        learned: one quadratic-logit discriminator per budget, increasing.
        mlp: an MLP discriminator.
        heatmap: the 2-D heat maps.
    """

    deltas: list[float]
    exact: dict[str, ExactSection]
    x: list[float]
    learned: list[LearnedCurvature]
    mlp: MLPCurvature
    heatmap: Heatmap


def _lag_and_error(
    pot: LearnedPotential,
    model: GaussianAffineModel,
    theta: torch.Tensor,
    e_i: torch.Tensor,
    e_j: torch.Tensor,
    delta: float,
    x: torch.Tensor,
    converged_steps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """At the corner reached along path 1: |grad phi_hat - grad phi_hat converged| (lag) and
    |grad phi_hat - grad phi_exact| (error)."""
    c = theta + delta * e_i + delta * e_j
    Ds = pot.discriminators_along([theta, theta + delta * e_i, c])
    D_corner = Ds[-1]
    g_hat = pot.grad_x_of(D_corner, x)
    D_conv = copy.deepcopy(D_corner)
    with torch.enable_grad():
        pot.fine_tune(D_conv, c, converged_steps)
    g_conv = pot.grad_x_of(D_conv, x)
    g_exact = model.grad_x(c, x)
    lag = torch.linalg.vector_norm(g_hat - g_conv, dim=1).numpy()
    err = torch.linalg.vector_norm(g_hat - g_exact, dim=1).numpy()
    return lag, err


def _exact(config: GanGeometryConfig, dim: int) -> ExactSection:
    """Algorithm 1, the non-telescoping autograd variant and the 2-form on the exact section."""
    model, theta, _ = gaussian_case(dim)
    n = model.n_params
    e_i, e_j = unit(n, 0), unit(n, n - 1)
    pts = line_grid(-2.0, 4.0, 61).points if dim == 1 else square_grid(-2.0, 3.0, 21).points
    scale = float(torch.linalg.vector_norm(model.grad_x(theta, pts), dim=1).max())
    alg1, auto = [], []
    for d in config.curvature_deltas:
        alg1.append(float(curvature(model, theta, e_i, e_j, d, pts).abs().max()))
        F_auto = curvature(model, theta, e_i, e_j, d, pts, connection="autograd")
        auto.append(float(F_auto.abs().max()))
    return ExactSection(
        grad_scale=scale,
        algorithm1_max_abs=alg1,
        autograd_max_abs=auto,
        autograd_order=observed_order(np.asarray(config.curvature_deltas), np.asarray(auto)),
        two_form_max_abs=float(curvature_exact(model, theta, e_i, e_j, pts).abs().max()),
    )


def study(config: GanGeometryConfig) -> CurvatureStudy:
    """The exact section, learned discriminators on a 1-D line, and 2-D heat maps."""
    exact = {f"{dim}d": _exact(config, dim) for dim in (1, 2)}

    model, theta, target = gaussian_case(1)
    e_i, e_j = unit(2, 0), unit(2, 1)
    line = line_grid(-2.0, 4.0, 121)
    d0 = config.curvature_deltas[-1]
    learned = []
    for budget in config.curvature_budgets:
        pot = learned_potential(model, target, 1, budget, config)
        mean_abs_F = [
            float(curvature(pot, theta, e_i, e_j, d, line.points).abs().mean())
            for d in config.curvature_deltas
        ]
        F = curvature(pot, theta, e_i, e_j, d0, line.points).abs()[:, 0].numpy()
        lag, err = _lag_and_error(
            pot, model, theta, e_i, e_j, d0, line.points, config.converged_steps
        )
        learned.append(
            LearnedCurvature(
                budget=budget,
                mean_abs_F=mean_abs_F,
                abs_F=F.tolist(),
                lag=lag.tolist(),
                error=err.tolist(),
                mean_lag=float(lag.mean()),
                mean_error=float(err.mean()),
                spearman_F_lag=float(spearmanr(F, lag).statistic),
                spearman_F_error=float(spearmanr(F, err).statistic),
            )
        )
    pot = learned_potential(model, target, 1, config.mlp_budget, config, kind="mlp")
    F_mlp = curvature(pot, theta, e_i, e_j, d0, line.points).abs()
    lag, err = _lag_and_error(pot, model, theta, e_i, e_j, d0, line.points, config.converged_steps)
    mlp = MLPCurvature(
        budget=config.mlp_budget,
        abs_F=F_mlp[:, 0].tolist(),
        mean_abs_F=float(F_mlp.mean()),
        mean_lag=float(lag.mean()),
        mean_error=float(err.mean()),
        spearman_F_lag=float(spearmanr(F_mlp[:, 0].numpy(), lag).statistic),
        spearman_F_error=float(spearmanr(F_mlp[:, 0].numpy(), err).statistic),
    )
    return CurvatureStudy(
        deltas=list(config.curvature_deltas),
        exact=exact,
        x=line.axes[0].tolist(),
        learned=learned,
        mlp=mlp,
        heatmap=_heatmap(config),
    )


def _heatmap(config: GanGeometryConfig) -> Heatmap:
    """Exact (Algorithm 1) and learned (quadratic family, middle budget) |F_hat| in 2-D."""
    model, theta, target = gaussian_case(2)
    n = model.n_params
    sq = square_grid(-2.0, 3.0, config.heatmap_points)
    a, b = unit(n, 0), unit(n, n - 1)
    d0 = config.curvature_deltas[-1]
    budget = config.curvature_budgets[len(config.curvature_budgets) // 2]
    pot = learned_potential(model, target, 2, budget, config)
    F_exact = curvature(model, theta, a, b, d0, sq.points)
    F_learned = curvature(pot, theta, a, b, d0, sq.points)
    lag, err = _lag_and_error(pot, model, theta, a, b, d0, sq.points, config.converged_steps)
    abs_F = torch.linalg.vector_norm(F_learned, dim=1)
    return Heatmap(
        axis=sq.axes[0].tolist(),
        budget=budget,
        delta=d0,
        exact_abs_F=torch.linalg.vector_norm(F_exact, dim=1).reshape(sq.shape).tolist(),
        learned_abs_F=abs_F.reshape(sq.shape).tolist(),
        lag=lag.reshape(sq.shape).tolist(),
        error=err.reshape(sq.shape).tolist(),
        spearman_F_lag=float(spearmanr(abs_F.numpy(), lag).statistic),
    )


def checks(s: CurvatureStudy) -> list[Check]:
    """The exact section is flat; a learned one's F_hat tracks its error, not Delta."""
    flat = all(
        max(v.algorithm1_max_abs) <= 1e-10 * v.grad_scale and v.two_form_max_abs <= 1e-10
        for v in s.exact.values()
    )
    rows, mlp = s.learned, s.mlp
    shrink = [r.mean_abs_F[-1] / r.mean_abs_F[0] for r in rows]
    dr = s.deltas[-1] / s.deltas[0]
    return [
        Check(
            "The exact section log(q/rho_theta) is flat: Algorithm 1 gives F_hat = O(Delta)",
            flat,
            "; ".join(
                f"{k}: Algorithm 1 max|F_hat| {fmt_list(v.algorithm1_max_abs, '.1g')} "
                f"(|grad phi| up to {v.grad_scale:.3g}); with exact connections "
                f"{fmt_list(v.autograd_max_abs, '.2g')} (order {v.autograd_order:.2f} in "
                f"Delta); the 2-form {v.two_form_max_abs:.1g}"
                for k, v in s.exact.items()
            )
            + ". Algorithm 1's four difference quotients share their end points, so for any "
            "single-valued section they telescope to exactly 0.",
        ),
        Check(
            "Lemmas 9.6-9.7: a learned discriminator's curvature tracks its error",
            bool(min(r.spearman_F_error for r in rows) > 0.5),
            "Spearman correlation over x of |F_hat| with the discriminator's error "
            "|grad phi_hat - grad log(q/rho)|: "
            + ", ".join(f"{r.budget} steps: {r.spearman_F_error:.2f}" for r in rows)
            + "; with its lag (distance to its own converged value): "
            + ", ".join(f"{r.spearman_F_lag:.2f}" for r in rows)
            + "; mean |F_hat| "
            + ", ".join(f"{r.mean_abs_F[-1]:.2g}" for r in rows)
            + " vs mean error "
            + ", ".join(f"{r.mean_error:.2g}" for r in rows)
            + " vs mean lag "
            + ", ".join(f"{r.mean_lag:.2g}" for r in rows)
            + f"; MLP discriminator ({mlp.budget} steps): mean |F_hat| "
            f"{mlp.mean_abs_F:.2g}, error {mlp.mean_error:.2g}",
        ),
        Check(
            "Lemma 9.7 as stated: ||F_hat - F|| <= C(Delta + eps), so F_hat shrinks with Delta",
            bool(all(x < 0.5 * (1 + dr) for x in shrink)),
            f"mean |F_hat| at Delta = {s.deltas[-1]} over Delta = {s.deltas[0]}: "
            + ", ".join(f"{r.budget} steps: {x:.2f}" for r, x in zip(rows, shrink, strict=True))
            + ". F_hat = (path-1 minus path-2 corner estimate)/Delta: the lag's O(Delta) path "
            "dependence divided by Delta is O(1), and a static error (finite samples) "
            "telescopes away; the bound holds only with eps read as lag/Delta.",
        ),
    ]


def comparisons(s: CurvatureStudy) -> list[Comparison]:
    """None: the seed gives no number for the curvature."""
    return []


def summary(s: CurvatureStudy) -> str:
    """One clause of the experiment's summary."""
    return (
        "Algorithm 1 returns exactly 0 for the exact section (it telescopes) and for learned "
        "discriminators measures their lag, independent of Delta"
    )


def figure(s: CurvatureStudy, path: Path) -> Path:
    """|F_hat(x)| and lag on the 1-D line; exact |F_hat|, learned |F_hat| and error in 2-D."""
    fig, axes = new_figure(1, 4, figsize=(18, 4))
    x = np.asarray(s.x)
    for r in s.learned:
        (line,) = axes[0].semilogy(
            x, np.maximum(r.abs_F, 1e-16), lw=1.2, label=f"|F_hat|, {r.budget} steps"
        )
        axes[0].semilogy(x, np.maximum(r.lag, 1e-16), ":", color=line.get_color(), lw=1)
    axes[0].set_title("1-D: |F_hat(x)| (solid) and lag (dotted)", fontsize=10)
    axes[0].set_xlabel("x")
    axes[0].legend(fontsize=7)
    h = s.heatmap
    ext = [h.axis[0], h.axis[-1], h.axis[0], h.axis[-1]]
    for ax, values, title in (
        (axes[1], h.exact_abs_F, "exact section: |F_hat| (Algorithm 1)"),
        (axes[2], h.learned_abs_F, f"learned D ({h.budget} steps): |F_hat|"),
        (axes[3], h.error, "learned D: error |grad phi_hat - grad log(q/rho)|"),
    ):
        im = ax.imshow(np.asarray(values).T, origin="lower", extent=ext, cmap="viridis")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x1")
    return save_figure(fig, path)
