"""The comparison harness of the seed-003 experiments (dot-toy, dot-digits).

:func:`compare_methods` post-processes one trained GAN by every method of seed 003 §3.2-3.3
from the same latents, times each the same way and returns a :class:`MethodRuns`. Its
randomness comes from :class:`Streams`: one independent seed per purpose, spawned from the
run's seed by ``np.random.SeedSequence``; the GAN's own from :class:`GANSeeds`. An
experiment keeps only its data, networks and scoring.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from ottokit.dot import (
    Calibrator,
    DOTResult,
    calibrate,
    ddls,
    dot_latent,
    dot_target,
    drs,
    effective_lipschitz,
    mh_gan,
)
from ottokit.experiments._studies import FIGURE_ONLY
from ottokit.gan.nets import build_seeded
from ottokit.gan.train import fit_discriminator
from ottokit.priors import Prior

__all__ = [
    "NAIVE",
    "Calibration",
    "ComparisonConfig",
    "GANSeeds",
    "Lipschitz",
    "MethodRuns",
    "Streams",
    "Transport",
    "compare_methods",
    "fit_frozen",
    "fit_ratio_classifier",
    "npz_key",
    "resolve_device",
    "summarise_seeds",
    "timed",
]

T = TypeVar("T")
NaiveSpace = Literal["target", "latent"]
# the naive D-ascent's method name, by the space it ascends in
NAIVE: dict[str, str] = {"target": "naive", "latent": "naive latent"}


@dataclass(frozen=True)
class GANSeeds:
    """Seeds of the GAN a run trains: the run seed and fixed offsets of it.

    Kept apart from :class:`Streams` so that the trained networks do not depend on how the
    comparison draws: a change to the comparison's streams leaves the GANs, their
    checkpoints and cached networks, and so the verdicts measured on them, as they are.

    Attributes:
        generator: the generator's initial parameters, the training batches and latents, and
            the training set.
        critic: the discriminator's initial parameters.
        critic_fit: further discriminator steps against the frozen generator.
    """

    generator: int
    critic: int
    critic_fit: int

    @classmethod
    def from_seed(cls, seed: int) -> GANSeeds:
        """The GAN seeds of the run seeded ``seed``."""
        return cls(generator=seed, critic=seed + 10_000, critic_fit=seed + 31)


@dataclass(frozen=True)
class Streams:
    """Independent seeds of the comparison's random streams, one per purpose.

    Spawned from ``np.random.SeedSequence(seed)`` in field order (:meth:`from_seed`), so a
    purpose added at the end leaves the others' seeds unchanged. The GAN itself is seeded by
    :class:`GANSeeds`.

    Attributes:
        evaluation: the target sample every method is scored against.
        calibration_real: held-out real samples of the calibration.
        latents: the latents z0 every method starts from.
        lipschitz: the latent pairs behind K_eff and k_eff.
        ratio_init: the initial parameters of a separate classifier for the baselines.
        ratio_fit: its training batches.
        calibration_fake: the generated samples of the calibration.
        drs: DRS's pilot and proposals.
        mh_chains: the real samples MH-GAN's chains start from.
        mh_gan: MH-GAN's proposals and acceptances.
        mh_restarts: fresh generated samples for chains that never moved.
        ddls: the Langevin noise of DDLS.
    """

    evaluation: int
    calibration_real: int
    latents: int
    lipschitz: int
    ratio_init: int
    ratio_fit: int
    calibration_fake: int
    drs: int
    mh_chains: int
    mh_gan: int
    mh_restarts: int
    ddls: int

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        """The streams of the run seeded ``seed`` (32-bit seeds, one per field)."""
        children = np.random.SeedSequence(seed).spawn(len(fields(cls)))
        return cls(*(int(c.generate_state(1)[0]) for c in children))

    def generator(self, purpose: str, device: torch.device) -> torch.Generator:
        """A torch generator on ``device`` seeded with the stream ``purpose``."""
        return torch.Generator(device=device).manual_seed(getattr(self, purpose))


class ComparisonConfig(Protocol):
    """The config fields :func:`compare_methods` reads (both DOT experiments have them)."""

    n_eval: int
    n_calibration: int
    dot_steps: int
    dot_lr: float
    k_pairs: int
    k_factor: float
    drs_percentile: float
    drs_pilot: int
    mh_proposals: int
    ddls_steps: int
    ddls_step: float


@dataclass(frozen=True)
class Lipschitz:
    """The original rule's Lipschitz constants of D on generated samples, and those used.

    Attributes:
        K_eff: max |D(G(z1)) - D(G(z2))| / ||G(z1) - G(z2)|| over the pairs (target space).
        k_eff: max |D(G(z1)) - D(G(z2))| / ||z1 - z2|| (latent space).
        K_used: k_factor x K_eff, the K of target-space DOT.
        k_used: k_factor x k_eff, the K of latent-space DOT and the naive latent ascent.
    """

    K_eff: float
    k_eff: float
    K_used: float
    k_used: float


@dataclass(frozen=True)
class Transport:
    """What one transport (DOT or the naive ascent) did to the generator's samples y0.

    Attributes:
        objective_start: mean objective ||x - y0 + 0.001|| - D(x)/K at x = y0.
        objective_end: the same after the last step.
        mean_D_before: mean of D(y0).
        mean_D_after: mean of D at the transported samples.
        mean_displacement: mean ||x - y0|| over samples (flattened).
        K: the Lipschitz normaliser used.
    """

    objective_start: float
    objective_end: float
    mean_D_before: float
    mean_D_after: float
    mean_displacement: float
    K: float

    @classmethod
    def of(cls, r: DOTResult, D: nn.Module, y0: Tensor) -> Transport:
        """The record of the transport ``r`` of the samples ``y0``, D read before and after."""
        with torch.no_grad():
            d_before = float(D(y0).double().mean())
            d_after = float(D(r.samples).double().mean())
        move = torch.linalg.vector_norm((r.samples - y0).flatten(1).double(), dim=1)
        return cls(
            objective_start=float(r.objective[0]),
            objective_end=float(r.objective[-1]),
            mean_D_before=d_before,
            mean_D_after=d_after,
            mean_displacement=float(move.mean()),
            K=r.K,
        )


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of the baselines' discriminator: logit' = coef logit + intercept."""

    coef: float
    intercept: float


@dataclass(frozen=True)
class MethodRuns:
    """Every method's samples from the same latents z0, each timed the same way.

    ``seconds`` is the wall time of each method's call (CUDA-synchronised), plus the time of
    G(z0) for the methods that start from the generator's samples or latents (the naive
    ascent, both DOTs, DDLS); DRS and MH-GAN draw their own.

    Attributes:
        seconds: wall time per method name.
        K: the Lipschitz constants.
        transports: per transported method (the naive ascent, DOT target, DOT latent).
        calibration: the baselines' calibration.
        drs: DRS's acceptance rate, proposals per sample and samples returned.
        mh_gan: MH-GAN's acceptance rate and the share of chains that never moved.
        ddls: DDLS's mean energy before and after.
        latents: z0 (figure only).
        samples: per method name, its samples (figure only).
    """

    seconds: dict[str, float]
    K: Lipschitz
    transports: dict[str, Transport]
    calibration: Calibration
    drs: dict[str, float]
    mh_gan: dict[str, float]
    ddls: dict[str, float]
    latents: Tensor = field(metadata=FIGURE_ONLY)
    samples: dict[str, Tensor] = field(metadata=FIGURE_ONLY)

    def samples_per_s(self, method: str) -> float:
        """Samples returned per second of ``method``."""
        return self.samples[method].shape[0] / max(self.seconds[method], 1e-9)

    @property
    def starts(self) -> dict[str, Tensor]:
        """The start y0 = G(z0) of each transported method."""
        return {label: self.samples["generator"] for label in self.transports}

    def diagnostics(self) -> dict[str, dict[str, float]]:
        """Per method, what it did (the record's ``diagnostics``)."""
        return {
            **{label: asdict(t) for label, t in self.transports.items()},
            "calibration": asdict(self.calibration),
            "DRS": dict(self.drs),
            "MH-GAN": dict(self.mh_gan),
            "DDLS": dict(self.ddls),
        }


def compare_methods(
    G: nn.Module,
    D: nn.Module,
    prior: Prior,
    cfg: ComparisonConfig,
    streams: Streams,
    *,
    real_calibration: Tensor,
    real_chains: Tensor,
    optimizer: Literal["adam", "sgd"],
    clip: float,
    naive: NaiveSpace,
    ratio: nn.Module | None = None,
    device: torch.device,
    k_repeats: int = 1,
) -> MethodRuns:
    """Post-process the frozen ``G`` by every method of seed 003 §3.2-3.3.

    From ``cfg.n_eval`` latents z0: the generator alone; the naive ascent of D; DOT in target
    and in latent space, each ``cfg.dot_steps`` steps with K = ``cfg.k_factor`` x K_eff
    (k_eff); and the baselines DRS, MH-GAN and DDLS after Platt calibration.

    Args:
        G: the frozen generator.
        D: the frozen discriminator (critic) that DOT and the naive ascent read.
        prior: the generator's latent prior.
        cfg: the experiment's config (the fields of :class:`ComparisonConfig`).
        streams: the run's random streams.
        real_calibration: held-out real samples of the calibration (against
            ``cfg.n_calibration`` generated ones).
        real_chains: the real samples MH-GAN's chains start from, one per chain.
        optimizer: DOT's optimiser, ``"adam"`` (betas (0, 0.9)) or ``"sgd"``.
        clip: target-space samples are clipped to [-clip, clip].
        naive: the space of the naive ascent, ``"target"`` or ``"latent"``.
        ratio: the baselines' discriminator (``D`` when None), e.g. from
            :func:`fit_ratio_classifier`.
        device: where z0 and the generated samples live.
        k_repeats: K_eff and k_eff are the mean of this many maxima, each over
            ``cfg.k_pairs`` pairs (:func:`ottokit.dot.effective_lipschitz`'s ``repeats``).

    Returns:
        The samples, times and diagnostics, with the method names ``"generator"``,
        ``NAIVE[naive]``, ``"DOT target"``, ``"DOT latent"``, ``"DRS"``, ``"MH-GAN"``,
        ``"DDLS"``.
    """
    z0 = prior.sample(
        cfg.n_eval, generator=streams.generator("latents", device), device=device,
        dtype=torch.float32,
    )  # fmt: skip
    with torch.no_grad():
        y0, t_gen = timed(lambda: G(z0), device)
    samples: dict[str, Tensor] = {"generator": y0}
    seconds: dict[str, float] = {"generator": t_gen}
    k_target = effective_lipschitz(
        D, G, prior, cfg.k_pairs, "target", seed=streams.lipschitz, distributed=True,
        repeats=k_repeats,
    )
    k_latent = effective_lipschitz(
        D, G, prior, cfg.k_pairs, "latent", seed=streams.lipschitz, distributed=True,
        repeats=k_repeats,
    )
    K = Lipschitz(k_target, k_latent, cfg.k_factor * k_target, cfg.k_factor * k_latent)

    def target(mode: str) -> Callable[[], Any]:
        return lambda: dot_target(
            D, y0, K.K_used, cfg.dot_steps, cfg.dot_lr, optimizer, clip, mode=mode,
            distributed=True,
        )

    def latent(mode: str) -> Callable[[], Any]:
        return lambda: dot_latent(
            D, G, z0, K.k_used, cfg.dot_steps, cfg.dot_lr, prior,
            optimizer=optimizer, mode=mode, distributed=True,
        )

    calls = {
        NAIVE[naive]: target("naive") if naive == "target" else latent("naive"),
        "DOT target": target("dot"),
        "DOT latent": latent("dot"),
    }
    transports: dict[str, Transport] = {}
    for label, call in calls.items():
        r, wall = timed(call, device)
        samples[label], seconds[label] = r.samples, wall + t_gen
        transports[label] = Transport.of(r, D, y0)
    D_ratio = D if ratio is None else ratio
    fake_z = prior.sample(
        cfg.n_calibration, generator=streams.generator("calibration_fake", device), device=device
    )
    with torch.no_grad():
        cal = calibrate(D_ratio(real_calibration), D_ratio(G(fake_z)), "logistic")
    base = _baselines(G, D_ratio, cal, prior, cfg, streams, z0, real_chains, device)
    samples.update({label: x for label, (x, _, _) in base.items()})
    seconds.update({label: wall for label, (_, wall, _) in base.items()})
    seconds["DDLS"] += t_gen
    return MethodRuns(
        seconds=seconds,
        K=K,
        transports=transports,
        calibration=Calibration(cal.coef, cal.intercept),
        drs=base["DRS"][2],
        mh_gan=base["MH-GAN"][2],
        ddls=base["DDLS"][2],
        latents=z0,
        samples=samples,
    )


def _baselines(
    G: nn.Module,
    D: nn.Module,
    cal: Calibrator,
    prior: Prior,
    cfg: ComparisonConfig,
    streams: Streams,
    z0: Tensor,
    real_chains: Tensor,
    device: torch.device,
) -> dict[str, tuple[Tensor, float, dict[str, float]]]:
    """DRS, MH-GAN and DDLS on the calibrated ``D``: samples, wall time, diagnostics."""
    D_cal = cal.wrap(D)
    r_drs, t_drs = timed(
        lambda: drs(
            D_cal,
            G,
            prior,
            cfg.n_eval,
            percentile=cfg.drs_percentile,
            n_pilot=cfg.drs_pilot,
            seed=streams.drs,
            distributed=True,
        ),
        device,
    )
    r_mh, t_mh = timed(
        lambda: mh_gan(
            D, G, prior, real_chains, cfg.mh_proposals, calibrator=cal, seed=streams.mh_gan,
            distributed=True,
        ),
        device,
    )
    mh_x, stuck = r_mh.samples.clone(), r_mh.from_real
    if bool(stuck.any()):  # never-moved chains restart from a generated sample (Turner et al.)
        restart = streams.generator("mh_restarts", device)
        with torch.no_grad():
            mh_x[stuck] = G(prior.sample(int(stuck.sum()), generator=restart, device=device))
    r_dd, t_dd = timed(
        lambda: ddls(
            D_cal, G, z0, cfg.ddls_step, cfg.ddls_steps, prior, seed=streams.ddls,
            distributed=True,
        ),
        device,
    )
    return {
        "DRS": (
            r_drs.samples,
            t_drs,
            {
                "acceptance_rate": r_drs.acceptance_rate,
                "proposals_per_sample": r_drs.proposals_per_sample,
                "n_returned": int(r_drs.samples.shape[0]),
            },
        ),
        "MH-GAN": (
            mh_x,
            t_mh,
            {
                "acceptance_rate": r_mh.acceptance_rate,
                "never_moved_fraction": float(stuck.double().mean()),
            },
        ),
        "DDLS": (
            r_dd.samples,
            t_dd,
            {"energy_start": float(r_dd.energy[0]), "energy_end": float(r_dd.energy[-1])},
        ),
    }


def fit_ratio_classifier(
    make_net: Callable[[], nn.Module],
    G: Callable[..., Any],
    data: Any,
    lr: float,
    betas: tuple[float, float],
    *,
    steps: int,
    batch_size: int,
    prior: str,
    latent_dim: int,
    streams: Streams,
    device: torch.device,
) -> tuple[nn.Module, dict[str, float]]:
    """A real-vs-generated classifier for the baselines, trained against the frozen ``G``.

    Args:
        make_net: builds the classifier (initialised from the ``ratio_init`` stream).
        G: the frozen generator.
        data: the real training samples.
        lr: Adam's step size.
        betas: Adam's betas.
        steps: training steps with the logistic loss (see :func:`fit_frozen`).
        batch_size: samples per step.
        prior: the generator's latent prior, ``"normal"`` or ``"uniform"``.
        latent_dim: its dimension.
        streams: the run's random streams (``ratio_fit`` draws the batches).
        device: where the classifier trains.

    Returns:
        The frozen classifier and its fit record (as :func:`fit_frozen`).
    """
    net = build_seeded(streams.ratio_init, make_net).to(device)
    fit = fit_frozen(
        net,
        G,
        "ns",
        data,
        lr,
        betas,
        steps=steps,
        batch_size=batch_size,
        prior=prior,
        latent_dim=latent_dim,
        seed=streams.ratio_fit,
        device=device,
    )
    return net, fit


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``; ValueError when CUDA is asked for and not available."""
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use 'cpu'")
    return dev


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """``fn()`` and its wall time (synchronising CUDA so the time is the work's)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def summarise_seeds(values: Iterable[float | None]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one seed), min and max of per-seed values.

    None and non-finite values are left out; all NaN when nothing is left.
    """
    a = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if a.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {"mean": float(a.mean()), "std": std, "min": float(a.min()), "max": float(a.max())}


def npz_key(method: str) -> str:
    """A method name as an .npz key: ``"DOT target"`` -> ``"DOT_target"``."""
    return method.replace(" ", "_").replace("-", "_")


def fit_frozen(
    D: nn.Module,
    G: Callable[..., Any],
    loss: Any,
    data: Any,
    lr: float,
    betas: tuple[float, float],
    *,
    steps: int,
    batch_size: int,
    prior: str,
    latent_dim: int,
    seed: int,
    device: torch.device,
) -> dict[str, float]:
    """Train ``D`` alone against the frozen ``G`` (Adam(lr, betas)), then freeze it.

    Args:
        D: the discriminator to train.
        G: the frozen generator.
        loss: a GAN loss (name or object, see :func:`ottokit.gan.make_loss`).
        data: the real training samples.
        lr: Adam's step size.
        betas: Adam's betas.
        steps: training steps.
        batch_size: samples per step.
        prior: the generator's latent prior, ``"normal"`` or ``"uniform"``.
        latent_dim: its dimension.
        seed: seeds the batches and latents.
        device: where D trains.

    Returns:
        What the run records: steps, the mean loss over the first and the last tenth of the
        steps, and the wall time.
    """
    D.train().requires_grad_(True)
    losses, wall = timed(
        lambda: fit_discriminator(
            D,
            G,
            loss,
            torch.as_tensor(data, dtype=torch.float32, device=device),
            torch.optim.Adam(D.parameters(), lr=lr, betas=tuple(betas)),
            steps=steps,
            batch_size=batch_size,
            prior=prior,  # type: ignore[arg-type]
            latent_dim=latent_dim,
            seed=seed,
        ),
        device,
    )
    D.eval().requires_grad_(False)
    k = max(steps // 10, 1)
    return {
        "steps": steps,
        "loss_first_tenth": float(losses[:k].mean()),
        "loss_last_tenth": float(losses[-k:].mean()),
        "wall_time_s": wall,
    }
