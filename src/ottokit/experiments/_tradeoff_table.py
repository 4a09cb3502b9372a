"""diffusion-tradeoff, part 1: Table I and Fig. 6(b) of Ikeda et al. in the recovered setting.

Data q = 1/2 N(-0.6, 0.3^2) + 1/2 N(0.6, 0.3^2), tau = 1, noise N(0, 1) (REFERENCE.md).
Every cell gets the exact response (quadrature, schedule-independent in 1-D), the
paper's estimator (closed-form velocity for cosine and cond-OT, the OT kernel average
of Eq. G19 for OT, W1 from samples) and our learned velocity, each from samples with a
bootstrap interval and, without sampling, by quadrature of the same velocity. The
spread study varies what the paper does not state (W1 sample count, ODE steps, kernel
bandwidth and pair count) to see which choice moves the cells by the table's +-4 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ottokit.flowmatch import (
    CondOT,
    Cosine,
    Distribution,
    GaussianMixture,
    GaussianMixtureVelocity,
    MonotoneVelocity1D,
    Normal,
    TradeoffResult,
    TrainConfig,
    Uniform,
    ot_path_velocity,
    response_quadrature,
    tradeoff,
    train_velocity,
)
from ottokit.report.figures import new_figure, save_figure

__all__ = [
    "PAPER_TABLE_I",
    "PAPER_KINETIC_BARS",
    "SCHEDULES",
    "KNOWN_ROWS",
    "perturbations_1d",
]

SCHEDULES = ("cosine", "cond-OT", "OT")
# Table I of arXiv:2407.04495 (REFERENCE.md): cosine / cond-OT / OT
PAPER_TABLE_I: dict[str, tuple[float, float, float]] = {
    "shifted mean": (9.1884e-2, 8.7810e-2, 8.5375e-2),
    "shifted variance": (1.078e-1, 1.047e-1, 1.022e-1),
    "Gaussian mixture": (2.764e-2, 2.674e-2, 2.611e-2),
    "uniform": (2.142e-2, 2.068e-2, 2.033e-2),
}
KNOWN_ROWS = ("shifted mean", "shifted variance", "uniform")
# Fig. 6(b) of the paper, bar heights of int v2^2 dt read off the figure (REFERENCE.md)
PAPER_KINETIC_BARS = {"cosine": 0.201, "cond-OT": 0.445, "OT": 0.144}
# our reading of the mixture row's figure: narrow peaks at +-1 of height ~0.49 on a flat
# base ~0.165 at 0, e.g. 0.2935 N(-1, 0.3^2) + 0.2935 N(1, 0.3^2) + 0.413 N(0, 1) -- a guess
_MIXTURE_GUESS = ((-1.0, 1.0, 0.0), (0.3, 0.3, 1.0), (0.2935, 0.2935, 0.413))


def perturbations_1d() -> dict[str, Distribution]:
    """The perturbed starts of Table I (the unperturbed start is N(0, 1)); the mixture row is
    our guess (REFERENCE.md: its setting is not known)."""
    root3 = math.sqrt(3.0)
    means, stds, weights = _MIXTURE_GUESS
    return {
        "shifted mean": Normal([1.0], [[1.0]]),
        "shifted variance": Normal([0.0], [[0.64]]),
        "Gaussian mixture": GaussianMixture.one_d(means, stds, weights),
        "uniform": Uniform([-root3], [root3]),
    }


def _schedule(name: str, tau: float) -> Any:
    return Cosine(tau) if name == "cosine" else CondOT(tau)


@dataclass(frozen=True)
class Estimate:
    """One estimator in one cell: the sampled response, its interval, and the same
    velocity's response by quadrature (no sampling)."""

    response: float
    ci: tuple[float, float]
    quadrature: float
    n_samples: int


@dataclass(frozen=True)
class Cell:
    row: str
    schedule: str
    paper: float
    exact: float
    d0: float
    estimates: dict[str, Estimate]

    @property
    def rel_exact(self) -> float:
        """(exact - paper) / paper."""
        return self.exact / self.paper - 1.0


def _mixture(cfg: Any) -> GaussianMixture:
    return GaussianMixture.one_d([-cfg.mixture_mu, cfg.mixture_mu], [cfg.mixture_std] * 2)


def exact_paths(cfg: Any) -> dict[str, Any]:
    """The exact velocity of each schedule: closed-form mixture velocity, or the monotone map."""
    mix = _mixture(cfg)
    return {
        s: MonotoneVelocity1D(mix, cfg.tau)
        if s == "OT"
        else GaussianMixtureVelocity.of(_schedule(s, cfg.tau), mix)
        for s in SCHEDULES
    }


def kernel_velocity(cfg: Any, n_pairs: int, bandwidth: float, seed: int) -> Any:
    """The paper's OT estimator (Eq. G19): Gaussian-kernel average over straight-line pairs of
    an exact OT plan between ``n_pairs`` data and noise samples."""
    gen = torch.Generator().manual_seed(seed)
    data = _mixture(cfg).sample(n_pairs, gen)
    noise = torch.randn(n_pairs, 1, generator=gen, dtype=torch.float64)
    return ot_path_velocity(data, noise, cfg.tau, bandwidth=bandwidth)


def learned_velocities(cfg: Any) -> dict[str, Any]:
    """Velocity MLPs trained by flow matching (minibatch-OT coupling for OT), no checkpoints."""
    gen = torch.Generator().manual_seed(cfg.seed + 17)
    data = _mixture(cfg).sample(20_000, gen)
    nets = {}
    for s in SCHEDULES:
        tc = TrainConfig(
            n_steps=cfg.train_steps,
            seed=cfg.seed,
            hidden=cfg.train_hidden,
            coupling="ot" if s == "OT" else "independent",
        )
        nets[s] = train_velocity(_schedule(s, cfg.tau), data, tc, device=cfg.device).model.eval()
    return nets


@dataclass(frozen=True)
class TableOne:
    cells: list[Cell]
    exact: dict[str, dict[str, TradeoffResult]]  # row -> schedule -> exact tradeoff
    bandwidth: float
    n_pairs: int


def table_one(cfg: Any, bar: Any) -> TableOne:
    """Every cell: exact, the paper's estimator and the learned velocity."""
    paths = exact_paths(cfg)
    estimators: dict[str, dict[str, Any]] = {
        "paper": {
            "cosine": paths["cosine"],
            "cond-OT": paths["cond-OT"],
            "OT": kernel_velocity(cfg, cfg.n_pairs, cfg.kernel_bandwidth, cfg.seed),
        }
    }
    if cfg.train_steps > 0:
        estimators["learned"] = learned_velocities(cfg)
    bar.advance()
    cells, exact = [], {}
    for row, pert in perturbations_1d().items():
        exact[row] = {}
        for k, s in enumerate(SCHEDULES):
            ex = tradeoff(paths[s], paths[s], pert, n_save=cfg.n_save, n_t=32)
            exact[row][s] = ex
            estimates = {}
            for name, fields in estimators.items():
                v = fields[s]
                sampled = tradeoff(
                    v, paths[s], pert, estimator="samples", n_samples=cfg.n_samples,
                    n_steps=cfg.ode_steps, n_save=2, n_t=4, n_boot=cfg.n_boot,
                    seed=cfg.seed + 101 * k,
                )
                quad = ex.response if v is paths[s] else response_quadrature(
                    v, pert, tau=cfg.tau, flow_map="ode", n_save=2, n_t=2, rtol=1e-8, atol=1e-10
                ).response
                estimates[name] = Estimate(
                    sampled.response, sampled.response_ci, quad, sampled.n_samples
                )
            cells.append(Cell(row, s, PAPER_TABLE_I[row][k], ex.response, ex.d0, estimates))
        bar.advance()
    return TableOne(cells, exact, cfg.kernel_bandwidth, cfg.n_pairs)


@dataclass(frozen=True)
class SpreadStudy:
    """What moves a cell (shifted-mean row unless noted), as (value / exact - 1).

    ``sampling[n]`` per schedule: mean and sd over ``repeats`` independent draws of the
    sampled response with the exact velocity, and how often the three schedules came out
    in the paper's order cosine > cond-OT > OT; ``ode[method][steps]`` per schedule: the
    exact velocity's response with a fixed-step ODE (quadrature, no sampling);
    ``bandwidth[(n_pairs, h)]`` per known row: mean and sd over pair draws of the OT
    kernel estimator's response (quadrature); ``end_time[t_end][row]`` per schedule: the
    exact flow stopped at t_end > 0 instead of the data end (quadrature).
    """

    paper_offsets: dict[str, dict[str, float]]
    sampling: dict[int, dict[str, Any]]
    ode: dict[str, dict[int, dict[str, float]]]
    bandwidth: dict[str, dict[str, Any]]
    end_time: dict[float, dict[str, dict[str, float]]]
    repeats: int


def spread_study(cfg: Any, table: TableOne, bar: Any) -> SpreadStudy:
    paths = exact_paths(cfg)
    perts = perturbations_1d()
    mean_row = perts["shifted mean"]
    exact = {row: table.exact[row]["OT"].response for row in perts}
    offsets = {
        row: {s: PAPER_TABLE_I[row][k] / exact[row] - 1 for k, s in enumerate(SCHEDULES)}
        for row in KNOWN_ROWS
    }
    sampling: dict[int, dict[str, Any]] = {}
    for n in cfg.spread_sample_counts:
        rel = np.array(
            [
                [
                    tradeoff(
                        paths[s], paths[s], mean_row, estimator="samples", n_samples=n,
                        n_steps=cfg.ode_steps, n_save=2, n_t=2, ci="none",
                        seed=cfg.seed + 1000 * r + 7 * k,
                    ).response
                    / exact["shifted mean"]
                    - 1
                    for k, s in enumerate(SCHEDULES)
                ]
                for r in range(cfg.spread_repeats)
            ]
        )
        ordered = np.mean((rel[:, 0] > rel[:, 1]) & (rel[:, 1] > rel[:, 2]))
        sampling[int(n)] = {
            "mean": dict(zip(SCHEDULES, rel.mean(axis=0).tolist(), strict=True)),
            "sd": dict(zip(SCHEDULES, rel.std(axis=0, ddof=1).tolist(), strict=True)),
            "paper_order_fraction": float(ordered),
        }
    bar.advance()
    ode: dict[str, dict[int, dict[str, float]]] = {}
    for method in cfg.spread_methods:
        ode[method] = {}
        for steps in cfg.spread_steps:
            ode[method][int(steps)] = {
                s: response_quadrature(
                    paths[s], mean_row, tau=cfg.tau, flow_map="ode", method=method,
                    n_steps=int(steps),
                ).response
                / exact["shifted mean"]
                - 1
                for s in SCHEDULES
            }
    bar.advance()
    bandwidth: dict[str, dict[str, Any]] = {}
    rows = KNOWN_ROWS if cfg.spread_all_rows else ("shifted mean",)
    for n_pairs in cfg.spread_pairs:
        for h in cfg.spread_bandwidths:
            rel = np.array(
                [
                    [
                        response_quadrature(
                            kernel_velocity(cfg, int(n_pairs), float(h), cfg.seed + 31 * r),
                            perts[row], tau=cfg.tau, flow_map="ode", n_save=2, n_t=2,
                            rtol=1e-7, atol=1e-9,
                        ).response
                        / exact[row]
                        - 1
                        for row in rows
                    ]
                    for r in range(cfg.spread_pair_repeats)
                ]
            )
            bandwidth[f"n_pairs={int(n_pairs)}, h={h:g}"] = {
                "n_pairs": int(n_pairs),
                "h": float(h),
                "mean": dict(zip(rows, rel.mean(axis=0).tolist(), strict=True)),
                "sd": dict(zip(rows, rel.std(axis=0, ddof=1).tolist(), strict=True)),
            }
    end_time = {
        float(t_end): {
            row: {
                s: response_quadrature(
                    paths[s], perts[row], tau=cfg.tau, t_end=float(t_end), n_save=2, n_t=2
                ).response
                / exact[row]
                - 1
                for s in SCHEDULES
            }
            for row in KNOWN_ROWS
        }
        for t_end in cfg.spread_end_times
    }
    bar.advance()
    return SpreadStudy(offsets, sampling, ode, bandwidth, end_time, cfg.spread_repeats)


def fig_table(table: TableOne, path: Any) -> Any:
    """Every cell relative to the paper (value / paper - 1): exact, and the estimators with
    their 95 % intervals."""
    rows = list(PAPER_TABLE_I)
    kinds = list(table.cells[0].estimates)
    fig, axes = new_figure(1, len(rows), figsize=(4.2 * len(rows), 3.8))
    for ax, row in zip(np.atleast_1d(axes), rows, strict=True):
        cells = [c for c in table.cells if c.row == row]
        x = np.arange(len(SCHEDULES))
        ax.axhline(0.0, color="0.5", lw=1, label="paper")
        ax.plot(x, [c.rel_exact for c in cells], "o", color="k", ms=7, label="exact")
        for j, kind in enumerate(kinds, start=1):
            rel = np.array([c.estimates[kind].response / c.paper - 1 for c in cells])
            lo = np.array([c.estimates[kind].ci[0] / c.paper - 1 for c in cells])
            hi = np.array([c.estimates[kind].ci[1] / c.paper - 1 for c in cells])
            quad = [c.estimates[kind].quadrature / c.paper - 1 for c in cells]
            ax.errorbar(x + 0.15 * j, rel, [rel - lo, hi - rel], fmt="s", capsize=3,
                        color=f"C{j}", label=f"{kind}: samples, 95% CI")
            ax.plot(x + 0.15 * j, quad, "x", color=f"C{j}", ms=8,
                    label=f"{kind}: same velocity, quadrature")
        ax.set_xticks(x + 0.1, SCHEDULES)
        guess = " (perturbation guessed)" if row not in KNOWN_ROWS else ""
        ax.set_title(row + guess, fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("value / paper - 1")
    np.atleast_1d(axes)[0].legend(fontsize=6)
    return save_figure(fig, path)


def fig_6b(table: TableOne, path: Any) -> Any:
    """Fig. 6(b) for the mean row: response <= int v_loss^2 <= int v2^2 per schedule with the
    paper's bars beside ours, and the exact v_loss(t) <= v2(t) curves."""
    res = table.exact["shifted mean"]
    fig, (ax, ax2) = new_figure(1, 2, figsize=(11.0, 4.0))
    x = np.arange(len(SCHEDULES))
    w = 0.2
    ax.bar(x - 1.5 * w, [res[s].response for s in SCHEDULES], w, label="(Delta W1)^2/(tau D0)")
    ax.bar(x - 0.5 * w, [res[s].v_loss_sq_integral for s in SCHEDULES], w,
           label="int v_loss^2 dt")
    ax.bar(x + 0.5 * w, [res[s].kinetic for s in SCHEDULES], w, label="int v2^2 dt")
    ax.bar(x + 1.5 * w, [PAPER_KINETIC_BARS[s] for s in SCHEDULES], w, color="0.6",
           label="paper's int v2^2 bar")
    ax.scatter(x - 1.5 * w, PAPER_TABLE_I["shifted mean"], color="k", marker="_", s=200,
               zorder=3, label="paper's Table I")
    ax.set_xticks(x, SCHEDULES)
    ax.set_title("shifted mean: the chain of Fig. 6(b) (exact)", fontsize=9)
    ax.legend(fontsize=7)
    for k, s in enumerate(SCHEDULES):
        ax2.plot(res[s].t_mid, res[s].v2_mid, "-", color=f"C{k}", label=f"v2, {s}")
        ax2.plot(res[s].t_mid, res[s].v_loss, "--", color=f"C{k}", label=f"v_loss, {s}")
    ax2.set_xlabel("t")
    ax2.set_title("v_loss(t) <= v2(t)", fontsize=9)
    ax2.legend(fontsize=7)
    return save_figure(fig, path)


def fig_spread(spread: SpreadStudy, path: Any) -> Any:
    fig, axes = new_figure(1, 4, figsize=(20.0, 4.0))
    ax = axes[0]
    counts = sorted(spread.sampling)
    for k, s in enumerate(SCHEDULES):
        m = [spread.sampling[n]["mean"][s] for n in counts]
        sd = [spread.sampling[n]["sd"][s] for n in counts]
        ax.errorbar(np.array(counts) * (1 + 0.05 * k), m, sd, fmt="o-", label=s, capsize=2)
    for s, off in spread.paper_offsets["shifted mean"].items():
        ax.axhline(off, ls=":", color=f"C{SCHEDULES.index(s)}")
    ax.set_xscale("log")
    ax.set_xlabel("samples per cloud (W1)")
    ax.set_ylabel("response / exact - 1")
    ax.set_title("sampling (exact velocity); dotted: paper", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    for j, (method, by_steps) in enumerate(spread.ode.items()):
        steps = sorted(by_steps)
        for k, s in enumerate(SCHEDULES):
            ax.plot(steps, [by_steps[n][s] for n in steps], ["o-", "s--", "^:"][j % 3],
                    color=f"C{k}", label=f"{method}, {s}")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("ODE steps")
    ax.set_title("ODE steps (quadrature, exact velocity)", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    ax = axes[2]
    by_pairs: dict[int, list[dict[str, Any]]] = {}
    for rec in spread.bandwidth.values():
        by_pairs.setdefault(rec["n_pairs"], []).append(rec)
    for k, (n_pairs, recs) in enumerate(sorted(by_pairs.items())):
        recs = sorted(recs, key=lambda r: r["h"])
        ax.errorbar(
            [r["h"] * (1 + 0.05 * k) for r in recs],
            [r["mean"]["shifted mean"] for r in recs],
            [r["sd"]["shifted mean"] for r in recs],
            fmt="o-",
            capsize=2,
            label=f"{n_pairs} pairs",
        )
    ax.axhline(spread.paper_offsets["shifted mean"]["OT"], ls=":", color="k", label="paper, OT")
    ax.set_xscale("log")
    ax.set_xlabel("kernel bandwidth h")
    ax.set_title("OT kernel estimator (Eq. G19, quadrature)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[3]
    ends = sorted(spread.end_time)
    for k, s in enumerate(SCHEDULES):
        for j, row in enumerate(KNOWN_ROWS):
            ax.plot(ends, [spread.end_time[e][row][s] for e in ends], ["o-", "s--", "^:"][j],
                    color=f"C{k}", label=f"{s}" if j == 0 else None)
            ax.axhline(spread.paper_offsets[row][s], ls=":", lw=0.8, color=f"C{k}")
    ax.set_xscale("log")
    ax.set_xlabel("end time t_end of the reverse ODE")
    ax.set_title("stopping short of the data (quadrature; markers: rows)", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
