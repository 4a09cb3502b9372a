"""dot-digits: discriminator optimal transport on 8 x 8 digit images (seed 003 §3.2).

Seed 003 reports that DOT in image space fails ("画像空間で直接最適輸送をやろうとすると失敗する",
blamed on high dimension and the manifold hypothesis) and that pulling it back to the
latent space works: D o G is read as the Kantorovich potential of D_W(G^{-1} p_X, p_Z) and
each latent moves to

    T(z_y) = argmin_z ||z - z_y + 0.001|| - D(G(z)) / k_eff,

improving IS/FID on CIFAR-10, STL-10 and ImageNet (the seed's table, reproduced in the
comparisons). Its comment 2 says that for images DOT is only slightly better than the naive
ascent of D. This experiment tests the same statements at a scale a CPU trains in minutes:
scikit-learn's 8 x 8 digits in [-1, 1], a small convolutional GAN with a spectrally
normalised discriminator and the hinge loss, and the digits-feature FID-like and IS-like
scores of :mod:`ottokit.metrics` (NOT Inception metrics: only the direction of a change can
be compared with the seed's table). Methods: the generator alone, naive latent D-ascent,
DOT in latent space, DOT in image space, DRS, MH-GAN and DDLS (the last three on the
Platt-calibrated discriminator).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ottokit._config import validate_config
from ottokit.data import digits
from ottokit.dot import dot_latent
from ottokit.experiments._dot_common import (
    GANSeeds,
    Lipschitz,
    Streams,
    compare_methods,
    fit_frozen,
    fit_ratio_classifier,
    npz_key,
    resolve_device,
    summarise_seeds,
)
from ottokit.experiments._registry import Experiment, register
from ottokit.experiments._studies import FIGURE_ONLY, study_metrics
from ottokit.experiments.dot_digits.config import (
    DIGITS_TEST,
    DIGITS_TRAIN,
    METHODS,
    DotDigitsConfig,
    LossName,
)
from ottokit.gan.losses import make_loss
from ottokit.gan.nets import ConvDiscriminator8, ConvGenerator8, build_seeded
from ottokit.gan.train import GANTrainConfig, train_gan
from ottokit.metrics import DigitsFeatures, digits_fid, digits_is, digits_precision_recall
from ottokit.priors import Prior
from ottokit.progress import progress_bar
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison, Result

__all__ = [
    "DIGITS_TEST",
    "DIGITS_TRAIN",
    "METHODS",
    "SEED_TABLE",
    "DigitsRun",
    "DotDigitsConfig",
    "DotDigitsStudy",
    "LossName",
    "run",
]

SEED_FILE = "003_2d1dd43e5c2336b5.txt"
CLAIM = (
    "For images, DOT must run in the latent space (in image space it fails); there it "
    "improves IS and FID over the generator alone (CIFAR-10 7.85/21.53 -> 8.50/19.71, "
    "STL-10 9.29/45.79 -> 10.30/40.51, ImageNet 36.40/43.34 -> 37.61/42.35), but only "
    "slightly more than the naive ascent of D (seed 003 §3.2, comment 2)."
)
# seed 003 §3.2 table: IS / FID, generator alone -> after DOT (latent space)
SEED_TABLE: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "CIFAR-10": ((7.85, 21.53), (8.50, 19.71)),
    "STL-10": ((9.29, 45.79), (10.30, 40.51)),
    "ImageNet": ((36.40, 43.34), (37.61, 42.35)),
}


def _score(x: Tensor, reference: np.ndarray, feats: DigitsFeatures) -> dict[str, float]:
    """FID-like and IS-like scores and k-NN precision/recall in the digits CNN's features."""
    imgs = x.detach().cpu().float().numpy()
    pr = digits_precision_recall(imgs, reference, feats)
    return {
        "fid": digits_fid(imgs, reference, feats),
        "is": digits_is(imgs, feats)[0],
        "precision": pr.precision,
        "recall": pr.recall,
    }


def _train(
    cfg: DotDigitsConfig,
    seed: int,
    data: np.ndarray,
    out: Path,
    dev: torch.device,
) -> tuple[nn.Module, nn.Module, nn.Module, dict[str, Any]]:
    """Train one GAN; return (the generator to post-process, D, the last iterate, info)."""
    seeds = GANSeeds.from_seed(seed)
    G = build_seeded(seeds.generator, lambda: ConvGenerator8(cfg.latent_dim, cfg.g_width)).to(dev)
    D = build_seeded(seeds.critic, lambda: ConvDiscriminator8(cfg.d_width, True)).to(dev)
    g_opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    d_opt = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    tc = GANTrainConfig(
        steps=cfg.train_steps,
        batch_size=cfg.batch_size,
        n_critic=cfg.n_critic,
        eval_every=0,
        eval_metric="none",
        checkpoint_every=max(cfg.train_steps // 5, 1),
        seed=seeds.generator,
        device=str(dev),
        prior="normal",
        log_every=max(cfg.train_steps // 20, 1),
        ema_decay=float(cfg.ema_decay),
    )
    res = train_gan(
        G,
        D,
        make_loss(cfg.loss),
        torch.as_tensor(data),
        g_optimizer=g_opt,
        d_optimizer=d_opt,
        config=tc,
        checkpoint_dir=out / "checkpoints" / f"digits-seed{seed}",
        cache={"label": f"dot-digits GAN seed {seed}"},
    )
    if res.status != "completed":
        raise RuntimeError(f"GAN training on digits (seed {seed}) diverged: {res.message}")
    G_use = G if res.generator_ema is None else res.generator_ema
    for net in (G, G_use):
        net.eval()
        net.requires_grad_(False)
    info: dict[str, Any] = {
        "train_wall_time_s": res.wall_time,
        "final_d_loss": float(res.history["d_loss"][-1]),
    }
    if cfg.critic_steps > 0:
        info["critic_fit"] = fit_frozen(
            D,
            G_use,
            make_loss(cfg.loss),
            data,
            cfg.lr,
            tuple(cfg.betas),
            steps=cfg.critic_steps,
            batch_size=cfg.batch_size,
            prior="normal",
            latent_dim=cfg.latent_dim,
            seed=seeds.critic_fit,
            device=dev,
        )
    D.eval().requires_grad_(False)
    return G_use, D, G, info


@dataclass(frozen=True)
class DigitsRun:
    """One GAN trained on the digits, and every method's scores on it.

    Attributes:
        seed: the run seed (its random streams are ``Streams.from_seed(seed)``).
        scores: per method, FID-like, IS-like, precision, recall and samples per second.
        K: the Lipschitz constants of DOT.
        diagnostics: per method, what it did (see :meth:`MethodRuns.diagnostics`), and the
            baselines' classifier fit when ``ratio_steps > 0``.
        sweep: per (lr, steps) cell of the latent-DOT sweep, its scores, the mean rise of D
            and the mean image and latent displacements.
        train: training wall time, final loss, the critic's further fit and the last
            iterate's scores.
        images: the first 64 images of every method (figure only).
    """

    seed: int
    scores: dict[str, dict[str, float]]
    K: Lipschitz
    diagnostics: dict[str, dict[str, Any]]
    sweep: list[dict[str, float]]
    train: dict[str, Any]
    images: dict[str, np.ndarray] = field(metadata=FIGURE_ONLY)


def _sweep(
    cfg: DotDigitsConfig,
    D: nn.Module,
    G: nn.Module,
    prior: Prior,
    z0: Tensor,
    y0: Tensor,
    k_used: float,
    x_test: np.ndarray,
    feats: DigitsFeatures,
) -> list[dict[str, float]]:
    """Latent DOT from the same z0 for every (lr, steps) of ``sweep_lrs`` x ``sweep_steps``."""
    cells = []
    with torch.no_grad():
        d0 = D(y0).double()
    for lr in cfg.sweep_lrs:
        for n_steps in cfg.sweep_steps:
            r = dot_latent(
                D, G, z0, k_used, n_steps, lr, prior, optimizer="sgd", distributed=True
            )
            with torch.no_grad():
                rise = float((D(r.samples).double() - d0).mean())
            image_move = torch.linalg.vector_norm((r.samples - y0).flatten(1).double(), dim=1)
            latent_move = torch.linalg.vector_norm((r.latents - z0).flatten(1).double(), dim=1)
            cells.append(
                {
                    "lr": float(lr),
                    "steps": int(n_steps),
                    **_score(r.samples, x_test, feats),
                    "mean_D_rise": rise,
                    "mean_image_displacement": float(image_move.mean()),
                    "mean_latent_displacement": float(latent_move.mean()),
                }
            )
    return cells


def run_one(
    cfg: DotDigitsConfig,
    seed: int,
    out: Path,
    dev: torch.device,
    feats: DigitsFeatures,
    x_train: np.ndarray,
    x_test: np.ndarray,
) -> tuple[DigitsRun, dict[str, np.ndarray]]:
    """Train one GAN on the digits and score every post-processing method on it.

    Returns the run and every method's images (for the run's .npz file).
    """
    streams = Streams.from_seed(seed)
    G, D, G_last, info = _train(cfg, seed, x_train, out, dev)
    prior = Prior("normal", (cfg.latent_dim,))
    ratio, extra = None, {}
    if cfg.ratio_steps > 0:
        ratio, extra["ratio_fit"] = fit_ratio_classifier(
            lambda: ConvDiscriminator8(cfg.d_width, True),
            G,
            x_train,
            cfg.lr,
            tuple(cfg.betas),
            steps=cfg.ratio_steps,
            batch_size=cfg.batch_size,
            prior="normal",
            latent_dim=cfg.latent_dim,
            streams=streams,
            device=dev,
        )
    chains = x_test[np.random.default_rng(streams.mh_chains).integers(0, len(x_test), cfg.n_eval)]
    runs = compare_methods(
        G,
        D,
        prior,
        cfg,
        streams,
        real_calibration=torch.as_tensor(x_test[: cfg.n_calibration], device=dev),
        real_chains=torch.as_tensor(chains, device=dev),
        optimizer="sgd",
        clip=1.0,
        naive="latent",
        ratio=ratio,
        device=dev,
    )
    z0, y0 = runs.latents, runs.samples["generator"]
    if G_last is not G:
        with torch.no_grad():
            info["last_iterate"] = _score(G_last(z0), x_test, feats)
    images = {k: v.detach().cpu().float().numpy() for k, v in runs.samples.items()}
    scores = {}
    for label in METHODS:
        scores[label] = _score(runs.samples[label], x_test, feats)
        scores[label]["samples_per_s"] = runs.samples_per_s(label)
    record = DigitsRun(
        seed=seed,
        scores=scores,
        K=runs.K,
        diagnostics={**runs.diagnostics(), **extra},
        sweep=_sweep(cfg, D, G, prior, z0, y0, runs.K.k_used, x_test, feats),
        train=info,
        images={k: v[:64] for k, v in images.items()},
    )
    return record, images


@dataclass(frozen=True)
class DotDigitsStudy:
    """Every seed's run, summarised over seeds, beside the real data's own scores.

    Attributes:
        table: per method and score, mean/std/min/max over seeds.
        table_rows: the same as one row per method.
        runs: one per seed.
        sweep: per (lr, steps) cell of the latent-DOT sweep, its values over seeds.
        real_floor: FID-like of the test split against the training split, IS-like of the
            test split.
        last_iterate: the last iterate's scores over seeds (None without an average).
        features_accuracy: test accuracy of the digits CNN whose features score.
        seeds: the run seeds.
        k_factor: K = k_factor x k_eff (K_eff).
        real_images: 64 test digits (figure only).
    """

    table: dict[str, dict[str, dict[str, float]]]
    table_rows: list[dict[str, Any]]
    runs: list[DigitsRun]
    sweep: list[dict[str, Any]]
    real_floor: dict[str, float]
    last_iterate: dict[str, dict[str, float]] | None
    features_accuracy: float
    seeds: list[int]
    k_factor: float
    real_images: np.ndarray = field(metadata=FIGURE_ONLY)

    def per_seed(self, method: str, key: str) -> list[float]:
        """One score of one method, per seed."""
        return [r.scores[method][key] for r in self.runs]


def _aggregate_sweep(runs: list[DigitsRun]) -> list[dict[str, Any]]:
    """Mean/std over seeds of every (lr, steps) cell of the latent-DOT sweep."""
    rows = []
    for i, cell in enumerate(runs[0].sweep):
        row: dict[str, Any] = {"lr": cell["lr"], "steps": cell["steps"]}
        for key in cell:
            if key not in ("lr", "steps"):
                row[key] = summarise_seeds([r.sweep[i][key] for r in runs])
        rows.append(row)
    return rows


def study(config: DotDigitsConfig, out: Path, dev: torch.device) -> DotDigitsStudy:
    """One run per seed (images saved under ``out/samples``), summarised over seeds."""
    feats = DigitsFeatures(
        cache_dir=out / "features", device=dev, seed=0, epochs=config.features_epochs
    )
    x_train, _ = digits("train")
    x_test, _ = digits("test")
    seeds = [config.seed + s for s in config.seeds]
    runs = []
    with progress_bar(len(seeds), "dot-digits") as bar:
        for s in seeds:
            bar.update(description=f"dot-digits: seed {s}")
            rec, images = run_one(config, s, out, dev, feats, x_train, x_test)
            (out / "samples").mkdir(parents=True, exist_ok=True)
            np.savez_compressed(
                out / "samples" / f"digits-seed{s}.npz",
                **{npz_key(k): v for k, v in images.items()},
            )
            runs.append(rec)
            bar.advance()
    table = {
        m: {k: summarise_seeds([r.scores[m][k] for r in runs]) for k in runs[0].scores[m]}
        for m in METHODS
    }
    last = [r.train["last_iterate"] for r in runs if "last_iterate" in r.train]
    return DotDigitsStudy(
        table=table,
        table_rows=[{"method": m, **table[m]} for m in METHODS],
        runs=runs,
        sweep=_aggregate_sweep(runs),
        real_floor={
            "fid_test_vs_train": digits_fid(x_test, x_train, feats),
            "is_test": digits_is(x_test, feats)[0],
        },
        last_iterate={k: summarise_seeds([x[k] for x in last]) for k in last[0]} if last else None,
        features_accuracy=feats.accuracy,
        seeds=seeds,
        k_factor=config.k_factor,
        real_images=x_test[:64],
    )


def _seq(v: list[float]) -> str:
    return "[" + ", ".join(f"{x:.2f}" for x in v) + "]"


def checks(s: DotDigitsStudy) -> list[Check]:
    """Seed 003's image claims: latent DOT improves the generator and beats the naive ascent;
    image-space DOT fails."""
    g_fid, g_is = s.per_seed("generator", "fid"), s.per_seed("generator", "is")
    l_fid, l_is = s.per_seed("DOT latent", "fid"), s.per_seed("DOT latent", "is")
    n_fid, n_is = s.per_seed("naive latent", "fid"), s.per_seed("naive latent", "is")
    t_fid = s.per_seed("DOT target", "fid")
    latent_improves = np.mean(l_fid) < np.mean(g_fid) and np.mean(l_is) > np.mean(g_is)
    gap = (np.mean(n_fid) - np.mean(l_fid)) / np.mean(n_fid)
    target_fails = np.mean(t_fid) >= np.mean(g_fid) and np.mean(l_fid) < np.mean(t_fid)
    return [
        Check(
            "Seed 003 table: latent DOT improves the generator's scores (FID-like down and "
            "IS-like up, mean over seeds)",
            bool(latent_improves),
            f"FID-like generator {_seq(g_fid)} -> DOT latent {_seq(l_fid)}; IS-like generator "
            f"{_seq(g_is)} -> DOT latent {_seq(l_is)}",
        ),
        Check(
            "Seed 003 comment 2: for images DOT (latent) is better than the naive D-ascent "
            "(lower FID-like, mean over seeds), if only slightly",
            bool(np.mean(l_fid) < np.mean(n_fid)),
            f"FID-like DOT latent {_seq(l_fid)} vs naive latent {_seq(n_fid)} (relative gap "
            f"{100 * gap:.1f}% of naive); IS-like {_seq(l_is)} vs {_seq(n_is)}",
        ),
        Check(
            "Seed 003 §3.2: DOT in image space fails (FID-like not better than the generator) "
            "while latent DOT does better than image-space DOT",
            bool(target_fails),
            f"FID-like generator {_seq(g_fid)}, DOT target (image space) {_seq(t_fid)}, DOT "
            f"latent {_seq(l_fid)}",
        ),
    ]


def comparisons(s: DotDigitsStudy) -> list[Comparison]:
    """The seed's IS/FID table beside ours, and each sweep cell beside the original rule."""
    table, floor = s.table, s.real_floor
    rows = [
        Comparison(
            f"{name}: IS / FID, generator -> DOT",
            "(seed's data set, not run here)",
            f"{a[0]:.2f}/{a[1]:.2f} -> {b[0]:.2f}/{b[1]:.2f}",
            "Inception IS / FID, seed 003 §3.2",
        )
        for name, (a, b) in SEED_TABLE.items()
    ]
    g, d = table["generator"], table["DOT latent"]
    rows.append(
        Comparison(
            "digits 8x8 (ours): IS-like / FID-like, generator -> DOT latent (mean ± std over "
            f"{len(s.seeds)} seeds)",
            f"{g['is']['mean']:.2f}±{g['is']['std']:.2f} / "
            f"{g['fid']['mean']:.2f}±{g['fid']['std']:.2f} -> "
            f"{d['is']['mean']:.2f}±{d['is']['std']:.2f} / "
            f"{d['fid']['mean']:.2f}±{d['fid']['std']:.2f}",
            None,
            f"digits-CNN features, not Inception; real test vs train: IS-like "
            f"{floor['is_test']:.2f}, FID-like {floor['fid_test_vs_train']:.2f}",
        )
    )
    rows += [
        Comparison(
            f"sweep: latent DOT, SGD lr {row['lr']:g}, {row['steps']} steps: IS-like / "
            "FID-like (generator -> DOT latent, mean over seeds)",
            f"{g['is']['mean']:.2f} / {g['fid']['mean']:.2f}"
            f" -> {row['is']['mean']:.2f} / {row['fid']['mean']:.2f}",
            "SGD lr 0.01, 10-100 updates (original rule)",
            f"mean D rise {row['mean_D_rise']['mean']:.3f}, image moved "
            f"{row['mean_image_displacement']['mean']:.3f}, latent moved "
            f"{row['mean_latent_displacement']['mean']:.3f} (L2, mean)",
        )
        for row in s.sweep
    ]
    return rows


def summary(s: DotDigitsStudy, config: DotDigitsConfig, n_hold: int, n_checks: int) -> str:
    """The settings, every method's scores, the real data's, and the sweep's best cell."""
    last = s.last_iterate
    last_sentence = (
        ""
        if last is None
        else f"The generator is the parameter average (EMA decay {config.ema_decay}); the "
        f"last iterate scores {last['is']['mean']:.2f} / "
        f"{last['fid']['mean']:.2f} ± {last['fid']['std']:.2f}. "
    )
    floor = s.real_floor
    return (
        f"Conv GAN (latent {config.latent_dim}, widths {config.g_width}/{config.d_width}, "
        f"{config.loss} loss, SN discriminator, Adam lr {config.lr}, {config.train_steps} "
        f"steps), seeds {s.seeds}. "
        + last_sentence
        + "IS-like / FID-like (mean over seeds): "
        + "; ".join(
            f"{m} {s.table[m]['is']['mean']:.2f} / {s.table[m]['fid']['mean']:.2f}"
            for m in METHODS
        )
        + f". Real test vs train: {floor['is_test']:.2f} / {floor['fid_test_vs_train']:.2f}. "
        + _sweep_sentence(s.sweep, s.table["generator"]["fid"]["mean"])
        + f"{n_hold} of {n_checks} checks hold."
    )


def run(config: DotDigitsConfig, out: Path) -> Result:
    """Train, transport, score and check the seed's image claims; see the module docstring."""
    if not isinstance(config, DotDigitsConfig):
        raise TypeError(f"config must be a DotDigitsConfig, got {type(config).__name__}")
    validate_config(config)
    out = Path(out)
    dev = resolve_device(config.device)
    started = time.perf_counter()
    s = study(config, out, dev)
    figs = out / "figures"
    figures = {
        f"Digits (seed {s.runs[0].seed}): real, generator, and the same latents after each "
        "method": str(_fig_grids(s.runs[0], s.real_images, figs / "grids.png")),
        "FID-like and IS-like per method (mean ± std over seeds)": str(
            _fig_bars(s.table, figs / "scores.png")
        ),
    }
    if s.sweep:
        figures["Latent DOT sweep: FID-like against the number of SGD steps per learning rate"] = (
            str(_fig_sweep(s.sweep, s.table["generator"]["fid"]["mean"], figs / "sweep.png"))
        )
    found = checks(s)
    return Result(
        experiment="dot-digits",
        seed_file=SEED_FILE,
        claim=CLAIM,
        run_dir=out,
        metrics={**study_metrics(s), "wall_time_s": time.perf_counter() - started},
        figures=figures,
        checks=found,
        comparisons=comparisons(s),
        summary=summary(s, config, sum(c.holds for c in found), len(found)),
    )


def _sweep_sentence(rows: list[dict[str, Any]], g_fid: float) -> str:
    """What the sweep shows: the best cell, and how many cells beat the generator."""
    if not rows:
        return ""
    best = min(rows, key=lambda r: r["fid"]["mean"])
    n_better = sum(r["fid"]["mean"] < g_fid for r in rows)
    return (
        f"Latent-DOT sweep: {n_better} of {len(rows)} (lr, steps) cells lower the FID-like "
        f"score below the generator's {g_fid:.2f}; best lr {best['lr']:g}, {best['steps']} "
        f"steps: {best['fid']['mean']:.2f}. "
    )


def _fig_sweep(rows: list[dict[str, Any]], g_fid: float, path: Path) -> Path:
    fig, ax = new_figure(1, 1, figsize=(5.0, 3.6))
    for i, lr in enumerate(sorted({r["lr"] for r in rows})):
        cells = sorted((r for r in rows if r["lr"] == lr), key=lambda r: r["steps"])
        ax.errorbar(
            [c["steps"] for c in cells],
            [c["fid"]["mean"] for c in cells],
            yerr=[c["fid"]["std"] for c in cells],
            marker="o",
            color=f"C{i}",
            label=f"SGD lr {lr:g}",
        )
    ax.axhline(g_fid, color="0.4", linestyle="--", label="generator alone")
    ax.set_xscale("log")
    ax.set_xlabel("latent DOT steps")
    ax.set_ylabel("FID-like (lower is better)")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _grid(images: np.ndarray, n: int = 8) -> np.ndarray:
    k = min(len(images), n * n)
    tiles = np.zeros((n * n, 10, 10))  # a mid-grey frame around each 8 x 8 image
    tiles[:, 1:9, 1:9] = -1.0
    tiles[:k, 1:9, 1:9] = images[:k, 0]
    rows = [np.concatenate(list(tiles[r * n : (r + 1) * n]), axis=1) for r in range(n)]
    return np.concatenate(rows, axis=0)


def _fig_grids(rec: DigitsRun, real: np.ndarray, path: Path) -> Path:
    """64 real test digits and, from the same latents, 64 images of each method."""
    panels = [("real (test)", real)] + [(m, rec.images[m]) for m in METHODS]
    fig, axes = new_figure(2, 4, figsize=(13.0, 7.0), squeeze=False)
    for ax, (label, imgs) in zip(axes.ravel(), panels, strict=True):
        ax.imshow(_grid(np.asarray(imgs)), cmap="gray_r", vmin=-1, vmax=1)
        m = rec.scores.get(label)
        ax.set_title(
            label if m is None else f"{label}: IS {m['is']:.2f}, FID {m['fid']:.1f}", fontsize=8
        )
        ax.set_xticks([])
        ax.set_yticks([])
    return save_figure(fig, path)


def _fig_bars(table: dict[str, Any], path: Path) -> Path:
    fig, axes = new_figure(1, 2, figsize=(10.0, 3.6))
    for ax, key, label in (
        (axes[0], "fid", "FID-like (lower is better)"),
        (axes[1], "is", "IS-like (higher is better)"),
    ):  # noqa: E501
        ax.bar(
            range(len(METHODS)),
            [table[m][key]["mean"] for m in METHODS],
            yerr=[table[m][key]["std"] for m in METHODS],
            color=[f"C{i}" for i in range(len(METHODS))],
        )
        ax.set_xticks(range(len(METHODS)), METHODS, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(label)
    return save_figure(fig, path)


register(
    Experiment(
        name="dot-digits",
        seed_id="003",
        seed_file=SEED_FILE,
        title="Latent-space discriminator optimal transport on 8x8 digits (IS-like / FID-like), "
        "with image-space DOT, naive D-ascent, DRS, MH-GAN and DDLS",
        config_cls=DotDigitsConfig,
        run=run,
        distributed=True,
    )
)
