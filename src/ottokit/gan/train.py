"""A checkpointed, resumable, data-parallel GAN trainer (seed 001 §17; seed 003's models).

:func:`train_gan` alternates ``n_critic`` critic steps with one generator step, for
any generator ``G: z -> x``, discriminator ``D: x -> logits``,
:class:`~ottokit.gan.losses.GANLoss` and torch optimisers. The steps are the pure
functions :func:`critic_step` and :func:`generator_step`; the state, checkpoints,
the resume rule and data parallelism come from :mod:`ottokit.engine`. The generator
step is ``g_optimizer.step(closure)`` on latents fixed for that step (announced first
through ``g_optimizer.set_latents(z)`` when the optimiser has it), so a
natural-gradient optimiser (seed 001 Algorithm 2) can use them for its metric.

All randomness of a run (data batches, latents, gradient-penalty interpolation) comes
from one ``torch.Generator`` seeded with ``config.seed``; evaluation uses its own fixed
latents and reference samples, so evaluating never changes the trajectory. A resumed
run is bit-identical on the CPU to one that was never interrupted. Under an
initialised process group both networks run under DistributedDataParallel and each
rank trains on its slice of the global batch, drawn from the same stream.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ottokit import distributed, ot
from ottokit._checks import check_option
from ottokit._torchio import torch_threads
from ottokit.engine import (
    CheckpointError,
    Resume,
    TrainingCache,
    TrainState,
    check_resume,
    checkpoint_path,
    data_fingerprint,
    differing_fields,
    load_checkpoint,
    local_rows,
    module_fingerprint,
    read_for_resume,
    save_checkpoint,
)
from ottokit.gan.losses import GANLoss, Shard, make_loss
from ottokit.gan.nets import sample_latent
from ottokit.progress import progress_bar

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "GANTrainConfig",
    "GANTrainResult",
    "critic_step",
    "fit_discriminator",
    "generator_step",
    "load_gan_checkpoint",
    "restore_checkpoint",
    "train_gan",
]

_KIND = "gan"
CHECKPOINT_NAME = checkpoint_path(".", _KIND).name
_EVAL_SEED_OFFSET = 0x5EED_E7A1
# config fields a resumed run may change: they do not alter the trajectory
_RESUMABLE = ("steps", "checkpoint_every", "log_every", "on_nonfinite")
# config fields that do not change a completed run's final state
_NOT_IN_CACHE_KEY = ("checkpoint_every", "log_every", "on_nonfinite")
_STEP_KEYS = ("g_loss", "d_loss", "step_time", "wall_time")
_EVAL_KEYS = ("eval_step", "eval_w1", "eval_wall_time")

logger = logging.getLogger(__name__)

Target = Tensor | Callable[[int, torch.Generator], Tensor]


def _averaged(generator: nn.Module, decay: float) -> AveragedModel:
    """torch's exponential-moving-average wrapper of ``generator`` (parameters averaged)."""
    avg = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
    return avg.requires_grad_(False).eval()


@torch.no_grad()
def _ema_update(average: AveragedModel, model: nn.Module) -> None:
    """One EMA step of the parameters (the first call copies them); buffers are copied."""
    average.update_parameters(model)
    for b_avg, b in zip(average.module.buffers(), model.buffers(), strict=True):
        b_avg.copy_(b)


def _set_lr_factor(optimizers: tuple[torch.optim.Optimizer, ...], factor: float) -> None:
    """Set every parameter group's ``lr`` to ``factor`` times its ``initial_lr``."""
    for opt in optimizers:
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor


def _positive_int(value: Any, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class GANTrainConfig:
    """GAN training settings (saved in every checkpoint).

    Attributes:
        steps: number of generator steps (one step = ``n_critic`` D steps + one G step).
        batch_size: samples per batch, for data and latents alike.
        n_critic: discriminator steps per generator step (5 is usual for WGAN-GP).
        eval_every: evaluate W_1 every this many steps (and at step 0); 0 never.
        eval_samples: generated and target samples per evaluation.
        eval_metric: ``"auto"`` (``ottokit.ot.w_1d`` for 1-D samples, exact
            ``ottokit.ot.w1`` on flattened samples otherwise), ``"w1"``, ``"w_1d"``, or
            ``"none"`` (no evaluation).
        checkpoint_every: write a checkpoint every this many steps (and at the end).
        seed: seeds the run's ``torch.Generator`` (not the networks' initialisation).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; the networks (and so the
            optimisers' parameters) must already be there.
        prior: latent distribution, ``"normal"`` N(0, I) or ``"uniform"`` on [-1, 1]^d.
        latent_dim: latent dimension; ``None`` reads ``generator.latent_dim``.
        log_every: refresh the progress bar and log the losses every this many steps.
        on_nonfinite: ``"stop"`` returns a result with ``status="diverged"``;
            ``"raise"`` raises FloatingPointError. Either way no checkpoint is written
            from a non-finite state.
        lr_schedule: ``"constant"`` keeps the optimisers' learning rates;
            ``"linear"`` scales every parameter group's initial rate by
            ``1 - k / steps`` during step ``k + 1`` (k = 0, ..., steps - 1), the linear
            decay to zero of Gulrajani et al.'s WGAN-GP runs. The initial rate is kept
            as the group's ``initial_lr`` (as torch's schedulers do), so it survives a
            checkpoint; a resumed linear-schedule run cannot change ``steps``.
        ema_decay: ``0`` (off) or a decay ``beta`` in (0, 1): keep an exponential moving
            average of the generator's parameters, ``theta_ema <- beta theta_ema +
            (1 - beta) theta`` after every generator step (buffers copied), started from
            the generator after its first step (Yazici et al. 2019, "The unusual
            effectiveness of averaging in GAN training"; ``torch.optim.swa_utils``'s
            ``AveragedModel``). It does not change the training trajectory; it
            is returned as ``GANTrainResult.generator_ema`` and checkpointed.
    """

    steps: int = 1000
    batch_size: int = 64
    n_critic: int = 1
    eval_every: int = 100
    eval_samples: int = 1000
    eval_metric: Literal["auto", "w1", "w_1d", "none"] = "auto"
    checkpoint_every: int = 100
    seed: int = 0
    device: str = "cpu"
    prior: Literal["normal", "uniform"] = "normal"
    latent_dim: int | None = None
    log_every: int = 50
    on_nonfinite: Literal["stop", "raise"] = "stop"
    lr_schedule: Literal["constant", "linear"] = "constant"
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "n_critic",
            "eval_samples",
            "checkpoint_every",
            "log_every",
        ):
            _positive_int(getattr(self, name), name)
        _positive_int(self.eval_every, "eval_every (0 to never evaluate)", minimum=0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        if self.latent_dim is not None:
            _positive_int(self.latent_dim, "latent_dim (or None to read generator.latent_dim)")
        check_option(self.eval_metric, ("auto", "w1", "w_1d", "none"), "eval_metric")
        check_option(self.prior, ("normal", "uniform"), "prior")
        check_option(self.on_nonfinite, ("stop", "raise"), "on_nonfinite")
        check_option(self.lr_schedule, ("constant", "linear"), "lr_schedule")
        if (
            isinstance(self.ema_decay, bool)
            or not isinstance(self.ema_decay, int | float)
            or not 0 <= self.ema_decay < 1
        ):
            raise ValueError(
                f"ema_decay must be 0 (no average) or a number in (0, 1) such as 0.995, got "
                f"{self.ema_decay!r}"
            )
        if not isinstance(self.device, str):
            raise ValueError(
                f"device must be a string such as 'cpu' or 'cuda', got {self.device!r}"
            )
        try:
            torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"device {self.device!r} is not a torch device: {err}") from err

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Fields that differ from a saved config, other than those a resume may change."""
        return differing_fields(saved, self, _RESUMABLE)


@dataclass
class GANTrainResult:
    """The outcome of :func:`train_gan`.

    ``history`` holds float64 tensors: per step ``g_loss`` (generator loss on the
    step's latents, before the step), ``d_loss`` (mean of the ``n_critic``
    discriminator losses, each before its step), ``step_time`` (seconds) and
    ``wall_time`` (cumulative training seconds, evaluation and checkpoint writing
    excluded, continued across resumes); per evaluation ``eval_step``, ``eval_w1``
    and ``eval_wall_time``. ``status`` is ``"completed"`` or ``"diverged"``; after a
    divergence ``step`` is the last completed step, ``diverged_at`` the step that
    produced a non-finite value, and the networks hold the state at that moment (the
    last good state is in ``checkpoint``; see :func:`restore_checkpoint`).
    ``generator_ema`` is the parameter average of the generator (a copy of its module)
    when ``config.ema_decay > 0``, else None. ``cached`` says the final state was
    restored from the cache of trained networks instead of trained. ``step_info``
    holds, per generator step of this call, the optimiser's ``last_step_info`` when it
    publishes one (e.g. :class:`~ottokit.gan.NaturalGradient`); its numeric fields are
    also in ``history``
    as ``"g_opt.<field>"``, which checkpoints carry across resumes.
    """

    generator: nn.Module
    discriminator: nn.Module
    history: dict[str, Tensor]
    step: int
    status: Literal["completed", "diverged"] = "completed"
    message: str = ""
    diverged_at: int | None = None
    resumed_from: int | None = None
    checkpoint: Path | None = None
    wall_time: float = 0.0
    config: GANTrainConfig | None = field(default=None, repr=False)
    generator_ema: nn.Module | None = field(default=None, repr=False)
    step_info: list[Any] = field(default_factory=list, repr=False)
    cached: bool = False

    @property
    def final_w1(self) -> float | None:
        """The last evaluated W_1, or None without evaluations."""
        w = self.history.get("eval_w1")
        return float(w[-1]) if w is not None and w.numel() else None


def load_gan_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint written by :func:`train_gan` (a file or its directory).

    Returns a flat dict: ``step``, ``generator``, ``discriminator`` (state dicts),
    ``g_optimizer``, ``d_optimizer``, ``history`` (float64 tensors), ``wall_time``,
    ``config``, ``fingerprint``, ``world_size`` and, for a run with ``ema_decay > 0``,
    ``generator_ema`` and ``generator_ema_count``. Raises CheckpointError if the file is
    missing, fails its SHA-256, or is not a sound GAN checkpoint (see
    :func:`ottokit.engine.load_checkpoint`).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    ck = load_checkpoint(path, _KIND, map_location=map_location)
    st = ck["state"]
    flat = {
        "step": st["step"],
        "generator": st["networks"]["generator"],
        "discriminator": st["networks"]["discriminator"],
        "g_optimizer": st["optimizers"]["generator"],
        "d_optimizer": st["optimizers"]["discriminator"],
        "rng": st["rng"],
        "history": st["history"],
        "wall_time": st["wall_time"],
        "config": ck["config"],
        "fingerprint": ck["fingerprint"],
        "world_size": ck["world_size"],
    }
    if "generator" in st["averages"]:
        flat["generator_ema"] = st["averages"]["generator"]["module"]
        flat["generator_ema_count"] = st["averages"]["generator"]["count"]
    return flat


def restore_checkpoint(
    path: str | os.PathLike,
    generator: nn.Module,
    discriminator: nn.Module,
    g_optimizer: torch.optim.Optimizer | None = None,
    d_optimizer: torch.optim.Optimizer | None = None,
    map_location: Any = "cpu",
    *,
    generator_ema: nn.Module | None = None,
) -> dict[str, Any]:
    """Load a checkpoint's states into the networks (and optimisers); return the checkpoint.

    ``generator_ema`` (a module of the generator's architecture) receives the generator
    average of a run with ``ema_decay > 0``. CheckpointError if the networks'
    architecture differs from the checkpoint's, or an average is asked of a checkpoint
    without one.
    """
    state = load_gan_checkpoint(path, map_location=map_location)
    pairs: list[tuple[str, nn.Module, str]] = [
        ("generator", generator, "generator"),
        ("discriminator", discriminator, "discriminator"),
    ]
    if generator_ema is not None:
        if "generator_ema" not in state:
            raise CheckpointError(
                f"checkpoint {path} holds no generator average (it was trained with "
                "ema_decay = 0); leave generator_ema out"
            )
        pairs.append(("generator_ema", generator_ema, "generator"))
    for name, module, arch in pairs:
        mine = module_fingerprint(module)
        if state["fingerprint"].get(arch) != mine:
            raise CheckpointError(
                f"checkpoint {path} holds a different {arch} architecture:\n"
                f"  saved: {state['fingerprint'].get(arch)}\n  given: {mine}"
            )
        module.load_state_dict(state[name])
    if g_optimizer is not None:
        g_optimizer.load_state_dict(state["g_optimizer"])
    if d_optimizer is not None:
        d_optimizer.load_state_dict(state["d_optimizer"])
    return state


def _fingerprint(
    generator: nn.Module,
    discriminator: nn.Module,
    loss: Any,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    target: Target,
) -> dict[str, str]:
    return {
        "generator": module_fingerprint(generator),
        "discriminator": module_fingerprint(discriminator),
        "loss": repr(loss) if isinstance(loss, GANLoss) else type(loss).__qualname__,
        "g_optimizer": type(g_optimizer).__qualname__,
        "d_optimizer": type(d_optimizer).__qualname__,
        "target": data_fingerprint(target),
    }


def _trainable(module: Any, name: str) -> list[nn.Parameter]:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError(
            f"the {name} has no trainable parameters (requires_grad=False everywhere); "
            f"call {name}.requires_grad_(True) before training"
        )
    return params


def _optimizer_params(
    optimizer: Any, owner: list[nn.Parameter], name: str, module_name: str
) -> list[Tensor]:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"{name} must be a torch.optim.Optimizer instance, got {type(optimizer).__name__}; "
            f"e.g. torch.optim.Adam({module_name}.parameters(), lr=1e-3)"
        )
    params = [p for group in optimizer.param_groups for p in group["params"]]
    ids = {id(p) for p in owner}
    foreign = [p for p in params if id(p) not in ids]
    if foreign:
        raise ValueError(
            f"{name} holds {len(foreign)} parameter(s) that are not trainable parameters of "
            f"the {module_name} (a parameter of the other network, or one with "
            f"requires_grad=False); build it from {module_name}.parameters()"
        )
    if not params:
        raise ValueError(f"{name} holds no parameters")
    return params


def _as_target(target: Any, device: torch.device, dtype: torch.dtype) -> Target:
    if isinstance(target, Tensor):
        if target.ndim == 0 or target.shape[0] == 0:
            raise ValueError(
                f"target data must be a non-empty (n, ...) tensor, got shape {tuple(target.shape)}"
            )
        data = target.detach().to(device=device, dtype=dtype)
        if data.ndim == 1:
            data = data[:, None]
        if not torch.isfinite(data).all():
            raise ValueError("target data must be finite (no NaN or inf)")
        return data
    if callable(target):
        return target
    raise TypeError(
        "target must be a tensor of data (n, ...) or a callable (n, torch.Generator) -> "
        f"Tensor, got {type(target).__name__}"
    )


def _draw_target(
    target: Target, n: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype
) -> Tensor:
    if isinstance(target, Tensor):
        idx = torch.randint(target.shape[0], (n,), generator=gen, device=device)
        return target[idx]
    x = target(n, gen)
    if not isinstance(x, Tensor) or x.ndim == 0 or x.shape[0] != n:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"target({n}, generator) must return a tensor with {n} rows, got {got}")
    if not bool(torch.isfinite(x).all()):
        # bad data, not a divergence of the networks (the losses or W_1 would blame them)
        raise ValueError(f"target({n}, generator) returned non-finite values (NaN or inf)")
    x = x.to(device=device, dtype=dtype)
    return x[:, None] if x.ndim == 1 else x


def _accepts(loss: Any, keyword: str) -> bool:
    """Whether ``loss.discriminator_loss`` takes the keyword argument ``keyword``."""
    try:
        params = inspect.signature(loss.discriminator_loss).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _accepts_generator(loss: Any) -> bool:
    return _accepts(loss, "generator")


def _on_device(t: Tensor, device: torch.device) -> bool:
    return t.device.type == device.type and (device.index is None or t.device.index == device.index)


def _all_finite(*modules: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for m in modules for p in m.parameters())


class _NonFinite(Exception):
    """A non-finite loss inside the generator's closure (stops the optimiser's step)."""


def _w1(x: Tensor, y: Tensor, metric: str) -> float:
    xs = x.detach().flatten(1).double().cpu().numpy()
    ys = y.detach().flatten(1).double().cpu().numpy()
    if metric == "w_1d" or (metric == "auto" and xs.shape[1] == 1):
        return float(ot.w_1d(xs, ys))
    return float(ot.w1(xs, ys))


def critic_step(
    D: nn.Module,
    loss: GANLoss,
    real: Tensor,
    fake: Tensor,
    optimizer: torch.optim.Optimizer,
    params: list[Tensor],
    *,
    generator: torch.Generator | None = None,
    shard: Shard | None = None,
) -> float:
    """One discriminator step on ``loss.discriminator_loss(D, real, fake)``; its value before.

    ``generator`` and ``shard`` go to losses that draw random numbers (the gradient
    penalty). The value is the global batch's mean under data parallelism, so every
    rank sees the same number; a non-finite value raises before any update.
    """
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            f"the generator makes samples of shape {tuple(fake.shape[1:])} but the target's "
            f"are {tuple(real.shape[1:])}"
        )
    optimizer.zero_grad(set_to_none=True)
    kw: dict[str, Any] = {}
    if generator is not None:
        kw["generator"] = generator
    if shard is not None:
        kw["shard"] = shard
    value = loss.discriminator_loss(D, real, fake, **kw)
    if not isinstance(value, Tensor) or value.ndim != 0:
        raise ValueError("discriminator_loss must return a scalar tensor")
    mean = float(distributed.all_reduce(value.detach(), "mean"))
    if not math.isfinite(mean):
        raise _NonFinite(f"discriminator loss is {mean}")
    value.backward(inputs=params)
    optimizer.step()
    return mean


def generator_step(
    G: nn.Module,
    D: nn.Module,
    loss: GANLoss,
    z: Tensor,
    optimizer: torch.optim.Optimizer,
    params: list[Tensor],
) -> float:
    """One ``optimizer.step(closure)`` on ``loss.generator_loss(D, G(z))``; its value before.

    The closure zero-grads the generator's parameters, evaluates the loss at the current
    parameters on the fixed ``z``, back-propagates into ``params`` only and returns the
    loss (the global batch's mean under data parallelism); an optimiser may call it
    more than once (a natural gradient's safeguard does). A non-finite loss at the
    starting point raises; at a trial point it is returned for the optimiser to reject.
    """
    first: list[float] = []

    def closure() -> Tensor:
        with torch.enable_grad():
            optimizer.zero_grad(set_to_none=True)
            value = loss.generator_loss(D, G(z))
            if not isinstance(value, Tensor) or value.ndim != 0:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"generator_loss must return a scalar tensor, got {shape}")
            reported = (
                distributed.all_reduce(value.detach(), "mean")
                if distributed.is_distributed()
                else value
            )
            finite = bool(torch.isfinite(reported))
            if not first and not finite:
                raise _NonFinite(f"generator loss is {float(reported.detach())}")
            if finite:  # a later call at a trial point may be non-finite: the optimiser rejects it
                value.backward(inputs=params)
        if not first:
            first.append(float(reported.detach()))
        return reported

    if callable(getattr(optimizer, "set_latents", None)):
        optimizer.set_latents(z)
    optimizer.step(closure)
    if not first:
        raise ValueError(
            "g_optimizer.step(closure) did not call the closure; the generator step must "
            "evaluate the loss through it"
        )
    return first[0]


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    loss: GANLoss | str,
    target: Target,
    *,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    config: GANTrainConfig | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: Resume = "auto",
    callback: Callable[[int, dict[str, float]], None] | None = None,
    cache: Mapping[str, Any] | None = None,
) -> GANTrainResult:
    """Train ``generator`` against ``discriminator`` on ``target``; networks are updated in place.

    One step: ``n_critic`` times { draw a data batch and a latent batch and take a
    :func:`critic_step` on ``loss.discriminator_loss(D, real, G(z).detach())`` }, then
    draw latents ``z`` and take a :func:`generator_step`. Each backward pass
    accumulates into its own network's parameters only (``backward(inputs=...)``), so
    D's gradients never reach G's step and vice versa.

    Under an initialised ``torch.distributed`` process group (e.g. started by
    ``torchrun``), every rank draws the global batch of ``config.batch_size`` rows from
    the run's stream and trains on its slice (the batch size must be a multiple of the
    world size); both networks run under DistributedDataParallel, losses and history
    are global means, and only rank 0 writes the checkpoint. The result equals a
    single-process run with the same batch size up to the order of the reductions.

    Args:
        generator: module ``z (n, latent_dim) -> x (n, ...)`` on ``config.device``.
        discriminator: module ``x -> logits (n,)`` on ``config.device``.
        loss: a :class:`~ottokit.gan.losses.GANLoss` or a name for
            :func:`~ottokit.gan.losses.make_loss`.
        target: data ``(n, ...)`` (a 1-D tensor means ``(n, 1)``), sampled with
            replacement by the run's generator; or a callable
            ``(n, torch.Generator) -> (n, ...)`` drawing fresh samples.
        g_optimizer: any torch optimiser built on the generator's parameters (after
            moving the networks to the device).
        d_optimizer: any torch optimiser built on the discriminator's parameters.
        config: :class:`GANTrainConfig` (defaults if None).
        checkpoint_dir: where ``gan.pt`` is written every ``checkpoint_every`` steps and
            at the end, atomically, verified by SHA-256, and only from a finite state.
        resume: ``"auto"`` resumes from the checkpoint in ``checkpoint_dir`` if there is
            one; ``"require"`` insists on one (CheckpointError otherwise); ``"never"``
            starts afresh and replaces it. A resumed run may raise ``steps``; every
            other setting that shapes the trajectory, the architectures, the loss, the
            optimiser classes and the data must match (CheckpointError).
        callback: ``callback(step, record)`` after every step, with ``record`` holding
            ``g_loss``, ``d_loss``, ``wall_time`` and ``w1`` when evaluated.
        cache: use the cache of trained networks (:mod:`ottokit.cache`): a mapping of
            whatever determines the run that the trainer cannot see itself (e.g. the
            parameters of a sampling ``target``; a data tensor, the networks' initial
            weights, the optimisers' settings and the config are hashed anyway). A run
            that was trained before from the same state is restored from the cache
            instead (``result.cached``); a completed run is stored. None: no cache. A
            ``"label"`` entry names the run in ``ottokit cache list`` and the report.

    Returns:
        :class:`GANTrainResult`; ``status="diverged"`` if a loss or a parameter became
        non-finite (with ``config.on_nonfinite="stop"``).
    """
    config = GANTrainConfig() if config is None else config
    if not isinstance(config, GANTrainConfig):
        raise TypeError(f"config must be a GANTrainConfig, got {type(config).__name__}")
    if isinstance(loss, str):
        loss = make_loss(loss)
    if not (
        callable(getattr(loss, "discriminator_loss", None))
        and callable(getattr(loss, "generator_loss", None))
    ):
        raise TypeError(
            f"loss must be a GANLoss (or a loss name such as 'ns'), got {type(loss).__name__}"
        )
    check_resume(resume)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("config.device is 'cuda' but CUDA is not available; use device='cpu'")
    with torch_threads(1, device):
        return _Run(
            generator, discriminator, loss, target, g_optimizer, d_optimizer, config, device
        ).train(checkpoint_dir, resume, callback, cache)


class _Run:
    """One call of :func:`train_gan`: validated inputs, the state and the loop."""

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        loss: GANLoss,
        target: Any,
        g_opt: torch.optim.Optimizer,
        d_opt: torch.optim.Optimizer,
        config: GANTrainConfig,
        device: torch.device,
    ) -> None:
        g_trainable = _trainable(G, "generator")
        d_trainable = _trainable(D, "discriminator")
        if {id(p) for p in g_trainable} & {id(p) for p in d_trainable}:
            raise ValueError(
                "the generator and the discriminator share parameters; give each its own"
            )
        self.g_params = _optimizer_params(g_opt, g_trainable, "g_optimizer", "generator")
        self.d_params = _optimizer_params(d_opt, d_trainable, "d_optimizer", "discriminator")
        if any(not _on_device(p, device) for p in (*self.g_params, *self.d_params)):
            raise ValueError(
                f"the networks' parameters must be on config.device={config.device!r}; move "
                "them with .to(device) BEFORE building the optimisers"
            )
        self.dtype = self.g_params[0].dtype
        latent_dim = (
            config.latent_dim if config.latent_dim is not None else getattr(G, "latent_dim", None)
        )
        if not isinstance(latent_dim, int):
            raise ValueError(
                "the latent dimension is unknown: set config.latent_dim or give the generator "
                "a latent_dim attribute"
            )
        self.latent_dim = latent_dim
        self.G, self.D, self.loss, self.config, self.device = G, D, loss, config, device
        self.g_opt, self.d_opt = g_opt, d_opt
        self.target = _as_target(target, device, self.dtype)
        self.fingerprint = _fingerprint(G, D, loss, g_opt, d_opt, self.target)
        self.rows = local_rows(config.batch_size)
        self.shard: Shard | None = None
        if distributed.world_size() > 1:
            self.shard = (self.rows.start, self.rows.stop, config.batch_size)
        self.gp_kwargs = _accepts_generator(loss)
        if self.shard is not None and self.gp_kwargs and not _accepts(loss, "shard"):
            raise ValueError(
                f"the loss {type(loss).__name__} draws random numbers (it takes generator=) "
                "but does not take shard=(start, stop, n); data-parallel training needs it "
                "to draw for the global batch (see ottokit.gan.losses.GANLoss)"
            )
        rng = torch.Generator(device=device)
        rng.manual_seed(config.seed)
        self.state = TrainState(
            step=0,
            rng=rng,
            networks={"generator": G, "discriminator": D},
            optimizers={"generator": g_opt, "discriminator": d_opt},
            averages={"generator": _averaged(G, config.ema_decay)} if config.ema_decay else {},
            history={k: [] for k in (*_STEP_KEYS, *_EVAL_KEYS)},
        )
        self.eval_cache: list[Tensor] = []
        self.step_info: list[Any] = []

    def restore(self, path: Path, ck: dict[str, Any]) -> int:
        """Load the checkpoint ``ck`` read from ``path`` into the state after checking it
        fits this run."""
        differ = self.config.differences(ck["config"])
        if self.config.lr_schedule == "linear" and ck["config"].get("steps") != self.config.steps:
            differ.append("steps (the linear lr_schedule decays over the total steps)")
        if differ:
            raise CheckpointError(
                f"checkpoint {path} was written with a different config: {differ}"
            )
        saved_fp = ck["fingerprint"]
        bad = [k for k in self.fingerprint if saved_fp.get(k) != self.fingerprint[k]]
        if bad:
            detail = "; ".join(
                f"{k}: saved {saved_fp.get(k)!r}, now {self.fingerprint[k]!r}" for k in bad
            )
            raise CheckpointError(
                f"checkpoint {path} was written for another {'/'.join(bad)} ({detail}); "
                "use another checkpoint_dir or resume='never'"
            )
        saved = ck["state"]
        if saved["step"] > self.config.steps:
            raise CheckpointError(
                f"checkpoint {path} is at step {saved['step']}, past steps={self.config.steps}"
            )
        self.state.load_state_dict(saved)
        return self.state.step

    def checkpoint(self, path: Path) -> None:
        if not _all_finite(self.G, self.D):
            raise _NonFinite("a network parameter is not finite")
        save_checkpoint(path, _KIND, self.state, asdict(self.config), self.fingerprint)

    def draw_global(self, n: int) -> tuple[Tensor, Tensor]:
        """A data batch and a latent batch of the global size, from the run's stream."""
        real = _draw_target(self.target, n, self.state.rng, self.device, self.dtype)
        z = self.latents(n, self.state.rng)
        return real, z

    def latents(self, n: int, rng: torch.Generator) -> Tensor:
        return sample_latent(n, self.latent_dim, self.config.prior, rng, self.device, self.dtype)

    def evaluate(self) -> float:
        """W_1 between generated and reference samples, both fixed for the whole run."""
        config = self.config
        if not self.eval_cache:
            eg = torch.Generator(device=self.device)
            eg.manual_seed(config.seed + _EVAL_SEED_OFFSET)
            n = config.eval_samples
            z_eval = self.latents(n, eg)
            if isinstance(self.target, Tensor):
                if self.target.shape[0] <= n:
                    ref = self.target
                else:
                    perm = torch.randperm(self.target.shape[0], generator=eg, device=self.device)
                    ref = self.target[perm[:n]]
            else:
                ref = _draw_target(self.target, n, eg, self.device, self.dtype)
            self.eval_cache.extend([z_eval, ref])
        z_eval, ref = self.eval_cache
        was_training = self.G.training
        self.G.eval()  # no power-iteration updates etc. from evaluation
        try:
            with torch.no_grad():
                x = self.G(z_eval)
        finally:
            self.G.train(was_training)
        if not bool(torch.isfinite(x).all()):
            raise _NonFinite("the generated samples are not finite")
        if config.eval_metric == "w_1d" and x[0].numel() != 1:
            raise ValueError(
                f"eval_metric='w_1d' needs 1-D samples, the generator makes {tuple(x.shape[1:])}; "
                "use eval_metric='auto' or 'w1'"
            )
        w = _w1(x, ref, config.eval_metric)
        if not math.isfinite(w):
            raise _NonFinite(f"W_1 of the generated samples is {w}")
        h = self.state.history
        h["eval_step"].append(float(self.state.step))
        h["eval_w1"].append(w)
        h["eval_wall_time"].append(self.state.wall_time)
        return w

    def step(self, G_train: nn.Module, D_train: nn.Module) -> tuple[float, float]:
        """One training step: ``n_critic`` critic steps, then one generator step."""
        config, rows = self.config, self.rows
        if config.lr_schedule == "linear":
            _set_lr_factor((self.g_opt, self.d_opt), 1.0 - self.state.step / config.steps)
        d_values = []
        for _ in range(config.n_critic):
            real, z = self.draw_global(config.batch_size)
            with torch.no_grad():
                fake = self.G(z[rows])
            d_values.append(
                critic_step(
                    D_train,
                    self.loss,
                    real[rows],
                    fake,
                    self.d_opt,
                    self.d_params,
                    generator=self.state.rng if self.gp_kwargs else None,
                    shard=self.shard,
                )
            )
        z = self.latents(config.batch_size, self.state.rng)
        g_value = generator_step(G_train, self.D, self.loss, z[rows], self.g_opt, self.g_params)
        if "generator" in self.state.averages:
            _ema_update(self.state.averages["generator"], self.G)
        self.record_step_info()
        return g_value, sum(d_values) / len(d_values)

    def record_step_info(self) -> None:
        info = getattr(self.g_opt, "last_step_info", None)
        if info is None or not dataclasses.is_dataclass(info):
            return
        self.step_info.append(info)
        h = self.state.history
        for f in dataclasses.fields(info):
            value = getattr(info, f.name)
            if isinstance(value, bool | int | float) and value is not None:
                h.setdefault(f"g_opt.{f.name}", [math.nan] * (self.state.step)).append(float(value))

    def train(
        self,
        checkpoint_dir: str | os.PathLike | None,
        resume: Resume,
        callback: Callable[[int, dict[str, float]], None] | None,
        cache: Mapping[str, Any] | None,
    ) -> GANTrainResult:
        config, state = self.config, self.state
        path = checkpoint_path(checkpoint_dir, _KIND) if checkpoint_dir is not None else None
        stored = TrainingCache.for_run(
            _KIND,
            cache,
            config={k: v for k, v in asdict(config).items() if k not in _NOT_IN_CACHE_KEY},
            fingerprint=self.fingerprint,
            state=state,
            label=str((cache or {}).get("label", f"GAN {config.steps} steps, seed {config.seed}")),
        )
        ck = read_for_resume(path, resume, _KIND, what="GAN")
        resumed_from = None if ck is None else self.restore(path, ck)
        cached = False
        if ck is None and stored is not None:
            hit = stored.lookup()
            if hit is not None:
                try:
                    self.restore(stored.path, hit)
                    cached = True
                except CheckpointError as err:
                    stored.reject(str(err))
            if cached and path is not None:
                save_checkpoint(path, _KIND, state, asdict(config), self.fingerprint)
        G_train = distributed.wrap_ddp(self.G, self.device)
        D_train = distributed.wrap_ddp(self.D, self.device)
        evaluating = config.eval_every > 0 and config.eval_metric != "none"
        status: Literal["completed", "diverged"] = "completed"
        message = ""
        diverged_at: int | None = None
        current = state.step
        self.G.train()
        self.D.train()
        with progress_bar(config.steps, "GAN training") as bar:
            bar.update(completed=state.step)
            try:
                if evaluating and state.step == 0 and not state.history["eval_step"]:
                    self.evaluate()
                while state.step < config.steps:
                    current = state.step + 1
                    t0 = time.perf_counter()
                    g_value, d_mean = self.step(G_train, D_train)
                    dt = time.perf_counter() - t0
                    state.wall_time += dt
                    state.step += 1
                    h = state.history
                    h["g_loss"].append(g_value)
                    h["d_loss"].append(d_mean)
                    h["step_time"].append(dt)
                    h["wall_time"].append(state.wall_time)
                    record = {"g_loss": g_value, "d_loss": d_mean, "wall_time": state.wall_time}
                    if evaluating and state.step % config.eval_every == 0:
                        record["w1"] = self.evaluate()
                    if path is not None and (
                        state.step % config.checkpoint_every == 0 or state.step == config.steps
                    ):
                        self.checkpoint(path)
                    bar.advance()
                    if state.step % config.log_every == 0:
                        text = f"GAN g={g_value:.4g} d={d_mean:.4g}"
                        bar.update(description=text)
                        logger.info("step %d: %s", state.step, text)
                    if callback is not None:
                        callback(state.step, record)
                if path is None and not _all_finite(self.G, self.D):
                    raise _NonFinite("a network parameter is not finite")
            except (_NonFinite, FloatingPointError) as err:
                diverged_at = current
                if state.step >= current > 0:  # found after the step was recorded
                    self.rollback(current - 1)
                message = (
                    f"training diverged at step {diverged_at}: {err}; "
                    + (
                        f"the last good checkpoint is {path}"
                        if path is not None and path.exists()
                        else "no checkpoint was written"
                    )
                    + ". Lower the learning rates or use a gradient penalty / spectral norm."
                )
                if config.on_nonfinite == "raise":
                    raise FloatingPointError(message) from err
                status = "diverged"
                logger.warning(message)
        if stored is not None and not cached and status == "completed":
            stored.store(state, asdict(config), self.fingerprint)
        average = state.averages.get("generator")
        return GANTrainResult(
            generator=self.G,
            discriminator=self.D,
            history={k: torch.tensor(v, dtype=torch.float64) for k, v in state.history.items()},
            step=state.step,
            status=status,
            message=message,
            diverged_at=diverged_at,
            resumed_from=resumed_from,
            checkpoint=path,
            wall_time=state.wall_time,
            config=config,
            generator_ema=None if average is None else average.module,
            step_info=self.step_info,
            cached=cached,
        )

    def rollback(self, step: int) -> None:
        """Drop the records of steps after ``step`` (a divergence found after recording)."""
        state = self.state
        state.step = step
        for k, values in state.history.items():
            if k not in _EVAL_KEYS:
                del values[step:]
        h = state.history
        while h["eval_step"] and h["eval_step"][-1] > step:
            for k in _EVAL_KEYS:
                h[k].pop()
        state.wall_time = h["wall_time"][-1] if h["wall_time"] else 0.0


def fit_discriminator(
    discriminator: nn.Module,
    generator: Callable[[Tensor], Tensor],
    loss: GANLoss | str,
    target: Target,
    d_optimizer: torch.optim.Optimizer,
    *,
    steps: int,
    batch_size: int = 64,
    prior: Literal["normal", "uniform"] = "normal",
    latent_dim: int | None = None,
    seed: int = 0,
) -> Tensor:
    """Train ``discriminator`` alone against a frozen ``generator``; return its losses.

    Each of ``steps`` steps draws a data batch and a latent batch (from a
    ``torch.Generator`` seeded by ``seed``) and takes one :func:`critic_step` on
    ``loss.discriminator_loss(D, real, G(z))``. This makes D the critic of *that*
    generator, e.g. of a parameter average (``GANTrainResult.generator_ema``), which the
    discriminator of a GAN run never saw, before D is used for post-processing (DOT,
    DRS, MH-GAN); Azadi et al. (2019) likewise train D further with G fixed before
    rejection sampling. Under a process group D runs under DistributedDataParallel on
    each rank's slice of the global batch. Returns the float64 losses, one per step,
    each before its step.
    """
    if isinstance(loss, str):
        loss = make_loss(loss)
    _positive_int(steps, "steps")
    _positive_int(batch_size, "batch_size")
    check_option(prior, ("normal", "uniform"), "prior")
    d_trainable = _trainable(discriminator, "discriminator")
    d_params = _optimizer_params(d_optimizer, d_trainable, "d_optimizer", "discriminator")
    if not callable(generator):
        raise TypeError(f"generator must be a callable z -> x, got {type(generator).__name__}")
    latent_dim = latent_dim if latent_dim is not None else getattr(generator, "latent_dim", None)
    if not isinstance(latent_dim, int):
        raise ValueError("the latent dimension is unknown: pass latent_dim")
    device, dtype = d_params[0].device, d_params[0].dtype
    data = _as_target(target, device, dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    rows = local_rows(batch_size)
    shard = (rows.start, rows.stop, batch_size) if distributed.world_size() > 1 else None
    draws = _accepts_generator(loss)
    D_train = distributed.wrap_ddp(discriminator, device)
    losses = []
    discriminator.train()
    for _ in range(steps):
        real = _draw_target(data, batch_size, gen, device, dtype)
        z = sample_latent(batch_size, latent_dim, prior, gen, device, dtype)
        with torch.no_grad():
            fake = generator(z[rows])
        try:
            value = critic_step(
                D_train,
                loss,
                real[rows],
                fake,
                d_optimizer,
                d_params,
                generator=gen if draws else None,
                shard=shard,
            )
        except _NonFinite as err:
            raise FloatingPointError(
                f"{err} after {len(losses)} steps; lower the learning rate"
            ) from None
        losses.append(value)
    return torch.tensor(losses, dtype=torch.float64)
