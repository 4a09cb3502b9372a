"""gan-optimizers: the seed's §17 experiment — generator optimisers on a 1-D Gaussian GAN.

Seed 001 §17: a GAN learns a 1-D Gaussian; the generator maps a 16-dimensional latent
through a 32-unit hidden layer to one output, the discriminator maps 1 -> 32 -> 1.
Four generator optimisers are compared: SGD, Adam, the natural gradient with the
pullback metric (Algorithm 2, small damping) and the natural gradient with heavy-ball
momentum mu = 0.85 (Prop. 16.1). The seed's figures show the generator loss against
the step and the final generated density; it states that Adam trains more stably than
SGD and natural gradient with momentum more stably than plain natural gradient.

Here every optimiser runs from the same initial networks on several seeds, with the
same discriminator optimiser (Adam) and the non-saturating loss; the generated
distribution is measured by the exact W1 to the target (``ottokit.ot.w_1d``) during
training. "Stability" is measured by the variance of the generator loss over the last
20% of the steps (the seed's Figure 1 quantity) and, as a second reading, by the
spread of W1 over the last 20% of the evaluations. The seed gives no learning rates,
target parameters or step counts; ours are configuration fields. Heavy-ball momentum
with the same step size eta moves 1/(1 - mu) = 6.7 times further per step in the long
run, so a fifth optimiser, momentum with the step eta (1 - mu), separates the effect of
averaging the directions from that of a larger step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from scipy.stats import gaussian_kde, norm

from ottokit._config import (
    ConfigError,
    ValidatedConfig,
    check_config_memory,
    device_param,
    param,
    seed_param,
)
from ottokit.experiments._registry import Experiment, register
from ottokit.experiments._studies import FIGURE_ONLY, study_metrics
from ottokit.gan.natural_gradient import NaturalGradient
from ottokit.gan.nets import (
    Activation,
    MLPDiscriminator,
    MLPGenerator,
    build_seeded,
    sample_latent,
)
from ottokit.gan.solvers import SolverName
from ottokit.gan.train import GANTrainConfig, train_gan
from ottokit.ot import w_1d
from ottokit.progress import progress_bar
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison, Result

__all__ = ["GanOptimizersConfig", "OPTIMIZERS", "OptimizersStudy", "checks", "run", "study"]

SEED_FILE = "001_96bdb96a0e2ca5da.txt"
CLAIM = (
    "Training a 1-D Gaussian GAN (G: 16 -> 32 -> 1, D: 1 -> 32 -> 1), Adam is more stable "
    "than SGD, and the natural gradient with momentum (mu = 0.85, the discretised "
    "damped geodesic equation, Prop. 16.1) is more stable than the plain natural gradient "
    "with the pullback metric (Algorithm 2) (§17, Figures 1-2)."
)
OptimizerName = Literal["sgd", "adam", "natural", "natural-momentum", "natural-momentum-matched"]
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
LABELS = {
    "sgd": "SGD",
    "adam": "Adam",
    "natural": "natural gradient",
    "natural-momentum": "natural gradient + momentum",
    "natural-momentum-matched": "NG + momentum, step x (1 - mu)",
}
COLORS = {
    "sgd": "tab:gray",
    "adam": "tab:blue",
    "natural": "tab:orange",
    "natural-momentum": "tab:red",
    "natural-momentum-matched": "tab:purple",
}


@dataclass
class GanOptimizersConfig(ValidatedConfig):
    """Settings of the §17 comparison (architecture as in the seed; the rest is ours)."""

    target_mean: float = param(2.0, doc="mean of the 1-D Gaussian target")
    target_std: float = param(0.5, doc="standard deviation of the 1-D Gaussian target", gt=0)
    latent_dim: int = param(16, doc="latent dimension of the generator (seed: 16)", ge=1)
    hidden: int = param(32, doc="hidden units of G and D (seed: 32)", ge=1)
    activation: Activation = param("tanh", doc="activation of both networks")
    steps: int = param(1500, doc="generator steps per run", ge=10)
    batch_size: int = param(256, doc="samples per batch (data and latents)", ge=1)
    n_seeds: int = param(5, doc="seeds per optimiser (all optimisers share the seeds)", ge=1)
    lr_sgd: float = param(0.05, doc="step size of SGD", gt=0)
    lr_adam: float = param(2e-3, doc="step size of Adam", gt=0)
    lr_natural: float = param(0.02, doc="step size of the natural gradients", gt=0)
    damping: float = param(1e-3, doc="damping added to the pullback metric", ge=0)
    momentum: float = param(0.85, doc="heavy-ball momentum mu of the natural gradient", ge=0, lt=1)
    natural_solver: SolverName = param(
        "auto", doc="linear solver of the natural gradient (woodbury needs damping > 0)"
    )
    lr_d: float = param(5e-3, doc="step size of the discriminator's Adam", gt=0)
    d_betas: tuple[float, float] = param(
        (0.5, 0.999), doc="Adam betas of the discriminator", ge=0, lt=1
    )
    eval_every: int = param(50, doc="measure W1 to the target every this many steps", ge=1)
    eval_samples: int = param(4000, doc="generated samples per W1 evaluation", ge=2)
    final_samples: int = param(
        20_000, doc="samples of the final density and its W1 (seed Fig. 2)", ge=2
    )
    stable_fraction: float = param(
        0.2, doc='"last 20% of the steps": the tail where stability is measured', gt=0, le=1
    )
    lr_scales: tuple[float, ...] = param(
        (1.0,),
        doc="every optimiser's step multiplied by each of these (must contain 1)",
        gt=0,
        distinct=True,
        example="0.5,1,2",
    )
    checkpoint_every: int = param(500, doc="checkpoint every this many steps", ge=1)
    seed: int = seed_param()
    device: str = device_param()
    optimizers: tuple[OptimizerName, ...] = param(
        OPTIMIZERS, doc="generator optimisers compared", distinct=True, example="sgd,adam"
    )

    def check(self) -> None:
        """Constraints between fields, and the memory of the largest sample."""
        if 1.0 not in self.lr_scales:
            raise ConfigError.for_key(
                "lr_scales", self.lr_scales, "a list of positive numbers containing 1", "0.5,1,2"
            )
        if self.natural_solver == "woodbury" and self.damping == 0:
            raise ConfigError.for_key(
                "damping", self.damping, "> 0 with natural_solver = woodbury", 1e-3
            )
        if self.eval_every > self.steps:
            raise ConfigError.for_key(
                "eval_every",
                self.eval_every,
                f"<= steps = {self.steps} (W1 is measured at step 0 and every eval_every steps)",
                max(1, self.steps // 20),
            )
        key = max(("batch_size", "eval_samples", "final_samples"), key=lambda k: getattr(self, k))
        size = getattr(self, key)
        # latents, hidden activations and outputs in float64, a few copies (sort, KDE)
        check_config_memory(
            key,
            size,
            8.0 * 4 * size * (self.latent_dim + self.hidden + 2),
            what=f"{size} samples through a {self.latent_dim} -> {self.hidden} -> 1 generator",
            knob=f"lower {key}",
        )

    @classmethod
    def quick(cls) -> GanOptimizersConfig:
        return cls(steps=1000, n_seeds=5, eval_every=50)

    @classmethod
    def paper(cls) -> GanOptimizersConfig:
        return cls(
            steps=5000,
            n_seeds=10,
            eval_every=100,
            checkpoint_every=1000,
            lr_scales=(0.5, 1.0, 2.0),
        )


def _make_optimizer(
    name: str, G: torch.nn.Module, config: GanOptimizersConfig, seed: int, scale: float = 1.0
):
    params = [p for p in G.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=scale * config.lr_sgd)
    if name == "adam":
        return torch.optim.Adam(params, lr=scale * config.lr_adam)
    # heavy ball multiplies the long-run step by 1/(1 - mu); "matched" divides it back out
    matched = name == "natural-momentum-matched"
    return NaturalGradient(
        params,
        G,
        lr=scale * config.lr_natural * ((1.0 - config.momentum) if matched else 1.0),
        damping=config.damping,
        momentum=config.momentum if name.startswith("natural-momentum") else 0.0,
        solver=config.natural_solver,
        seed=seed,
    )


def _train_one(
    name: str, seed: int, config: GanOptimizersConfig, out: Path, scale: float = 1.0
) -> dict[str, Any]:
    device = torch.device(config.device)
    G = build_seeded(
        seed,
        lambda: MLPGenerator(config.latent_dim, (config.hidden,), 1, activation=config.activation),
    ).to(device)
    D = build_seeded(
        seed + 10_000, lambda: MLPDiscriminator(1, (config.hidden,), activation=config.activation)
    ).to(device)
    mean, std = config.target_mean, config.target_std

    def target(n: int, gen: torch.Generator) -> torch.Tensor:
        return mean + std * torch.randn(n, 1, generator=gen, device=gen.device)

    train_config = GANTrainConfig(
        steps=config.steps,
        batch_size=config.batch_size,
        eval_every=config.eval_every,
        eval_samples=config.eval_samples,
        checkpoint_every=config.checkpoint_every,
        seed=seed,
        device=config.device,
        log_every=max(1, config.steps // 20),
    )
    result = train_gan(
        G,
        D,
        "ns",
        target,
        g_optimizer=_make_optimizer(name, G, config, seed, scale),
        d_optimizer=torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.d_betas),
        config=train_config,
        checkpoint_dir=out
        / "checkpoints"
        / (f"{name}-seed{seed}" + ("" if scale == 1.0 else f"-lr{scale:g}")),
        cache={
            "target": ("normal", mean, std),
            "label": f"gan-optimizers {name} seed {seed}"
            + ("" if scale == 1.0 else f" lr x{scale:g}"),
        },
    )
    h = {k: v.detach().cpu().numpy() for k, v in result.history.items()}
    with torch.no_grad():
        gen = torch.Generator(device=device).manual_seed(seed + 20_000)
        z = sample_latent(config.final_samples, config.latent_dim, generator=gen, device=device)
        x = result.generator(z).reshape(-1).double().cpu().numpy()
    rng = np.random.default_rng(seed + 30_000)
    y = rng.normal(mean, std, config.final_samples)
    return {
        "status": result.status,
        "message": result.message,
        "g_loss": h["g_loss"],
        "d_loss": h["d_loss"],
        "step_time": h["step_time"],
        "wall_time": h["wall_time"],
        "eval_step": h["eval_step"],
        "eval_w1": h["eval_w1"],
        "eval_wall_time": h["eval_wall_time"],
        "final_samples": x,
        "final_w1": float(w_1d(x, y)) if np.all(np.isfinite(x)) else float("nan"),
    }


def _tail(a: np.ndarray, fraction: float) -> np.ndarray:
    k = max(2, int(round(fraction * len(a))))
    return a[-k:]


def _summarise(runs: list[dict[str, Any]], config: GanOptimizersConfig) -> dict[str, Any]:
    ok = [r for r in runs if r["status"] == "completed"]
    fw = np.array([r["final_w1"] for r in ok]) if ok else np.array([np.nan])
    var = np.array([np.var(_tail(r["g_loss"], config.stable_fraction)) for r in ok])
    w1_spread = np.array([np.std(_tail(r["eval_w1"], config.stable_fraction)) for r in ok])
    step_ms = np.array([1e3 * np.median(r["step_time"]) for r in ok])
    return {
        "completed": len(ok),
        "diverged": len(runs) - len(ok),
        "messages": [r["message"] for r in runs if r["status"] != "completed"],
        "final_w1": fw.tolist(),
        "final_w1_median": float(np.median(fw)),
        "final_w1_iqr": [float(np.percentile(fw, 25)), float(np.percentile(fw, 75))],
        "loss_var_last": var.tolist(),
        "loss_var_last_median": float(np.median(var)) if var.size else float("nan"),
        "w1_std_last": w1_spread.tolist(),
        "w1_std_last_median": float(np.median(w1_spread)) if w1_spread.size else float("nan"),
        "step_ms_median": float(np.median(step_ms)) if step_ms.size else float("nan"),
    }


@dataclass(frozen=True)
class OptimizersStudy:
    """Every optimiser over the seeds (and step-size scales): loss stability and W1.

    Attributes:
        config: steps, seeds, target and step sizes, as run.
        optimizers: per optimiser at the configured step sizes, over seeds: runs completed
            and diverged, final W1 (all, median, IQR), generator-loss variance and W1 spread
            over the last ``stable_fraction`` of training, median time per step.
        lr_sensitivity: the same per step-size scale other than 1.
        runs: per optimiser, each seed's histories and final samples (figures only).
    """

    config: dict[str, Any]
    optimizers: dict[str, dict[str, Any]]
    lr_sensitivity: dict[str, dict[str, dict[str, Any]]]
    runs: dict[str, list[dict[str, Any]]] = field(metadata=FIGURE_ONLY)

    @property
    def n_seeds(self) -> int:
        """Seeds per optimiser."""
        return int(self.config["n_seeds"])


def study(config: GanOptimizersConfig, out: Path) -> OptimizersStudy:
    """Train every optimiser on every seed (and step-size scale); checkpoints go under
    ``out``."""
    seeds = [config.seed + k for k in range(config.n_seeds)]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in config.optimizers}
    scaled: dict[float, dict[str, list[dict[str, Any]]]] = {
        sc: {name: [] for name in config.optimizers} for sc in config.lr_scales if sc != 1.0
    }
    jobs = [(name, s, sc) for sc in config.lr_scales for s in seeds for name in config.optimizers]
    with progress_bar(len(jobs), "gan-optimizers") as bar:
        for name, s, sc in jobs:
            r = _train_one(name, s, config, out, sc)
            if sc == 1.0:
                runs[name].append(r)
            else:
                r.pop("final_samples")
                scaled[sc][name].append(r)
            bar.advance()
    return OptimizersStudy(
        config={
            "steps": config.steps,
            "n_seeds": config.n_seeds,
            "target": [config.target_mean, config.target_std],
            "lr": {
                "sgd": config.lr_sgd,
                "adam": config.lr_adam,
                "natural": config.lr_natural,
                "damping": config.damping,
                "momentum": config.momentum,
            },
        },
        optimizers={name: _summarise(rs, config) for name, rs in runs.items()},
        lr_sensitivity={
            f"{sc:g}": {name: _summarise(rs, config) for name, rs in by.items()}
            for sc, by in scaled.items()
        },
        runs=runs,
    )


def checks(s: OptimizersStudy) -> list[Check]:
    """The seed's two stability claims (and the matched-step control), read two ways."""
    summary = s.optimizers
    found: list[Check] = []

    def compare(a: str, b: str, key: str, what: str) -> None:
        if a not in summary or b not in summary:
            return
        va, vb = summary[a][key], summary[b][key]
        holds = bool(np.isfinite(va) and np.isfinite(vb) and va < vb)
        found.append(
            Check(
                f"{LABELS[a]} more stable than {LABELS[b]} ({what})",
                holds,
                f"median over {s.n_seeds} seeds: {va:.3g} ({LABELS[a]}) vs {vb:.3g} "
                f"({LABELS[b]}); diverged runs: {summary[a]['diverged']} vs "
                f"{summary[b]['diverged']}",
            )
        )

    loss_var = "generator-loss variance, last 20%"
    compare("adam", "sgd", "loss_var_last_median", loss_var)
    compare("natural-momentum", "natural", "loss_var_last_median", loss_var)
    compare("adam", "sgd", "w1_std_last_median", "spread of W1, last 20%")
    compare("natural-momentum", "natural", "w1_std_last_median", "spread of W1, last 20%")
    compare("natural-momentum-matched", "natural", "loss_var_last_median", loss_var)
    compare("natural-momentum-matched", "natural", "w1_std_last_median", "spread of W1, last 20%")
    return found


def comparisons(s: OptimizersStudy) -> list[Comparison]:
    """Final W1, loss variance and step time per optimiser (and step-size scale)."""
    rows = [
        Comparison(
            f"{LABELS[n]}: final W1 (median [IQR]) / loss var (last 20%) / ms per step",
            f"{v['final_w1_median']:.3g} [{v['final_w1_iqr'][0]:.3g}, {v['final_w1_iqr'][1]:.3g}]"
            f" / {v['loss_var_last_median']:.3g} / {v['step_ms_median']:.3g}",
            "figure only",
            f"{v['completed']} of {s.n_seeds} runs completed",
        )
        for n, v in s.optimizers.items()
    ]
    for sc, summ in s.lr_sensitivity.items():
        rows += [
            Comparison(
                f"{LABELS[n]}, learning rate x {sc}: final W1 / loss var (last 20%)",
                f"{v['final_w1_median']:.3g} / {v['loss_var_last_median']:.3g}",
                "figure only",
                f"{v['completed']} of {s.n_seeds} runs completed",
            )
            for n, v in summ.items()
        ]
    return rows


def summary(s: OptimizersStudy) -> str:
    """Final W1, loss variance and step time per optimiser, and the verdicts per scale."""
    summ = s.optimizers
    mean, std = s.config["target"]
    order = sorted(summ, key=lambda n: summ[n]["final_w1_median"])
    text = (
        f"{s.n_seeds} seeds x {len(summ)} optimisers, {s.config['steps']} steps, "
        f"target N({mean}, {std}^2). Final W1 (median): "
        + ", ".join(f"{LABELS[n]} {summ[n]['final_w1_median']:.3g}" for n in order)
        + ". Generator-loss variance over the last 20% (median): "
        + ", ".join(f"{LABELS[n]} {summ[n]['loss_var_last_median']:.3g}" for n in summ)
        + ". Time per GAN step (median): "
        + ", ".join(f"{LABELS[n]} {summ[n]['step_ms_median']:.2f} ms" for n in summ)
        + "."
    )
    for sc, by in s.lr_sensitivity.items():
        verdicts = []
        for a, b in (("adam", "sgd"), ("natural-momentum", "natural")):
            if a in by and b in by:
                va, vb = by[a]["loss_var_last_median"], by[b]["loss_var_last_median"]
                verdicts.append(f"{LABELS[a]} {'<' if va < vb else '>='} {LABELS[b]}")
        text += f" With every step x {sc}: loss variance " + ", ".join(verdicts) + "."
    return text


def run(config: GanOptimizersConfig, out: Path) -> Result:
    """Train every optimiser and check the seed's stability claims."""
    out = Path(out)
    figdir = out / "figures"
    s = study(config, out)
    figures = {
        "Generator loss against the step (median over seeds, band: 25-75%) — seed Fig. 1": (
            _figure_loss(s.runs, figdir / "generator_loss.png")
        ),
        "Final generated density against the target (one line per seed) — seed Fig. 2": (
            _figure_density(s.runs, config, figdir / "final_density.png")
        ),
        "W1 to the target against the step and against wall time": _figure_w1(
            s.runs, figdir / "w1.png"
        ),
    }
    return Result(
        experiment="gan-optimizers",
        seed_file=SEED_FILE,
        claim=CLAIM,
        run_dir=out,
        metrics=study_metrics(s),
        figures={caption: str(path.relative_to(out)) for caption, path in figures.items()},
        checks=checks(s),
        comparisons=comparisons(s),
        summary=summary(s),
    )


def _band(ax: Any, x: np.ndarray, curves: list[np.ndarray], color: str, label: str) -> None:
    n = min(len(c) for c in curves)
    a = np.stack([c[:n] for c in curves])
    lo, med, hi = np.nanpercentile(a, [25, 50, 75], axis=0)
    ax.plot(x[:n], med, color=color, lw=1.4, label=label)
    ax.fill_between(x[:n], lo, hi, color=color, alpha=0.2, lw=0)


def _figure_loss(runs: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    fig, ax = new_figure(1, 1, figsize=(7.5, 4.2))
    for name, rs in runs.items():
        ok = [r["g_loss"] for r in rs if len(r["g_loss"])]
        if ok:
            _band(ax, np.arange(1, max(len(c) for c in ok) + 1), ok, COLORS[name], LABELS[name])
    ax.axhline(np.log(2), color="k", lw=0.8, ls=":", label="log 2 (D = 1/2)")
    ax.set_xlabel("generator step")
    ax.set_ylabel("generator loss  -log D(G(z))")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _figure_density(
    runs: dict[str, list[dict[str, Any]]], config: GanOptimizersConfig, path: Path
) -> Path:
    fig, axes = new_figure(1, len(runs), figsize=(3.6 * len(runs), 3.4), squeeze=False)
    m, s = config.target_mean, config.target_std
    grid = np.linspace(m - 4 * s, m + 4 * s, 400)
    for ax, (name, rs) in zip(axes[0], runs.items(), strict=True):
        ax.fill_between(grid, norm.pdf(grid, m, s), color="0.85", label="target")
        for r in rs:
            x = r["final_samples"]
            if np.all(np.isfinite(x)) and np.std(x) > 1e-8:
                ax.plot(grid, gaussian_kde(x[:5000])(grid), color=COLORS[name], lw=0.9, alpha=0.8)
        ax.set_title(LABELS[name], fontsize=10)
        ax.set_xlabel("x")
    axes[0, 0].legend(fontsize=8)
    return save_figure(fig, path)


def _figure_w1(runs: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    fig, (a1, a2) = new_figure(1, 2, figsize=(11, 4))
    for name, rs in runs.items():
        ok = [r for r in rs if len(r["eval_w1"])]
        if not ok:
            continue
        _band(a1, ok[0]["eval_step"], [r["eval_w1"] for r in ok], COLORS[name], LABELS[name])
        for k, r in enumerate(ok):
            a2.plot(
                r["eval_wall_time"],
                r["eval_w1"],
                color=COLORS[name],
                lw=0.8,
                alpha=0.7,
                label=LABELS[name] if k == 0 else None,
            )
    for ax in (a1, a2):
        ax.set_yscale("log")
        ax.set_ylabel("W1 to the target")
    a1.set_xlabel("generator step")
    a2.set_xlabel("training wall time [s]")
    a1.legend(fontsize=8)
    return save_figure(fig, path)


register(
    Experiment(
        name="gan-optimizers",
        seed_id="001",
        seed_file=SEED_FILE,
        title="§17: SGD, Adam, natural gradient (pullback metric) and natural gradient with "
        "momentum on a 1-D Gaussian GAN; loss, final density, W1 against step and time",
        config_cls=GanOptimizersConfig,
        run=run,
        distributed=True,
    )
)
