"""A generic, checkpointed, resumable GAN trainer (seed 001 §17; seed 003's WGAN-GP models).

:func:`train_gan` alternates ``n_critic`` discriminator steps with one generator
step, for any generator ``G: z -> x`` and discriminator ``D: x -> logits`` (modules),
any :class:`~ottokit.gan.losses.GANLoss` and any torch optimisers. The generator
step is ``g_optimizer.step(closure)`` on a latent batch fixed for that step (and
announced first through ``g_optimizer.set_latents(z)`` when the optimiser has that
method), so a natural-gradient optimiser (seed 001 Algorithm 2) can use the
latents for its pullback metric and re-evaluate the loss.

All randomness of a run (data batches, latents, gradient-penalty interpolation)
comes from one ``torch.Generator`` seeded with ``config.seed``; evaluation uses
its own fixed latents and reference samples, so evaluating never changes the
training trajectory. The networks are initialised by the caller: build them with
:func:`ottokit.gan.nets.build_seeded` for a seed-determined initialisation.
Checkpoints hold both networks, both optimiser states, the step, the generator's
RNG state, the history, the config and an architecture fingerprint; a resumed run
is bit-identical on the CPU to one that was never interrupted.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ottokit import ot
from ottokit._checks import check_option
from ottokit._progress import progress_bar
from ottokit._torchio import CheckpointError, load_state, save_atomic, torch_threads
from ottokit.gan.losses import GANLoss, make_loss
from ottokit.gan.nets import sample_latent

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "GANTrainConfig",
    "GANTrainResult",
    "train_gan",
    "fit_discriminator",
    "load_gan_checkpoint",
    "restore_checkpoint",
]

CHECKPOINT_NAME = "gan_last.pt"
_FORMAT = 1
_EVAL_SEED_OFFSET = 0x5EED_E7A1
# config fields a resumed run may change: they do not alter the trajectory
_RESUMABLE = ("steps", "checkpoint_every", "log_every", "on_nonfinite")
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
        """Fields that differ from a saved config, other than those a resume may change.

        A field missing from ``saved`` (a checkpoint older than the field) counts as its
        default.
        """
        return [
            f.name
            for f in fields(self)
            if f.name not in _RESUMABLE and saved.get(f.name, f.default) != getattr(self, f.name)
        ]


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
    when ``config.ema_decay > 0``, else None.
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

    @property
    def final_w1(self) -> float | None:
        """The last evaluated W_1, or None without evaluations."""
        w = self.history.get("eval_w1")
        return float(w[-1]) if w is not None and w.numel() else None


# ------------------------------------------------------------------ checkpoints


def load_gan_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`train_gan` (``torch.load(weights_only=True)``).

    Raises CheckpointError if the file is missing, unreadable, or not a GAN checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    required = (
        "generator",
        "discriminator",
        "g_optimizer",
        "d_optimizer",
        "step",
        "rng",
        "history",
        "config",
        "fingerprint",
    )
    return load_state(
        path, what="GAN", required=required, fmt=_FORMAT, kind="gan", map_location=map_location
    )


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
        mine = _module_fingerprint(module)
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


def _module_fingerprint(module: nn.Module) -> str:
    parts = [
        f"{k}:{tuple(v.shape)}:{str(v.dtype).removeprefix('torch.')}"
        for k, v in module.state_dict().items()
    ]
    return f"{type(module).__qualname__}[{';'.join(parts)}]"


def _fingerprint(
    generator: nn.Module,
    discriminator: nn.Module,
    loss: Any,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    target: Target,
) -> dict[str, str]:
    if isinstance(target, Tensor):
        t = target.detach().double().flatten(1)
        stats = torch.cat([t.mean(0), t.std(0, correction=0)]).cpu()
        target_desc = f"tensor{tuple(target.shape)}:{stats.sum().item():.12e}"
    else:
        target_desc = f"callable:{getattr(target, '__qualname__', type(target).__qualname__)}"
    return {
        "generator": _module_fingerprint(generator),
        "discriminator": _module_fingerprint(discriminator),
        "loss": repr(loss) if isinstance(loss, GANLoss) else type(loss).__qualname__,
        "g_optimizer": type(g_optimizer).__qualname__,
        "d_optimizer": type(d_optimizer).__qualname__,
        "target": target_desc,
    }


# ------------------------------------------------------------------ validation


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
    x = x.to(device=device, dtype=dtype)
    return x[:, None] if x.ndim == 1 else x


def _accepts_generator(loss: Any) -> bool:
    try:
        params = inspect.signature(loss.discriminator_loss).parameters
    except (TypeError, ValueError):
        return False
    return "generator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


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


# ------------------------------------------------------------------ trainer


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
    resume: bool | Literal["require"] = True,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> GANTrainResult:
    """Train ``generator`` against ``discriminator`` on ``target``; networks are updated in place.

    One step: ``n_critic`` times { draw a data batch and a latent batch, minimise
    ``loss.discriminator_loss(D, real, G(z).detach())`` by one ``d_optimizer`` step },
    then draw latents ``z``, call ``g_optimizer.set_latents(z)`` if it exists, and
    ``g_optimizer.step(closure)`` where ``closure()`` zero-grads the generator's
    parameters, evaluates ``loss.generator_loss(D, G(z))`` on that same ``z``,
    back-propagates into the generator's parameters only, and returns the loss (it
    may be called more than once). Each backward pass accumulates into its own
    network's parameters only (``backward(inputs=...)``), so D's gradients never
    reach G's step and vice versa.

    Args:
        generator: module ``z (n, latent_dim) -> x (n, ...)`` on ``config.device``.
        discriminator: module ``x -> logits (n,)`` on ``config.device``.
        loss: a :class:`~ottokit.gan.losses.GANLoss` or a name for
            :func:`~ottokit.gan.losses.make_loss`.
        target: data ``(n, ...)`` (a 1-D tensor means ``(n, 1)``), sampled with
            replacement by the run's generator; or a callable
            ``(n, torch.Generator) -> (n, ...)`` drawing fresh samples.
        g_optimizer, d_optimizer: any torch optimisers built on the generator's and
            the discriminator's parameters (after moving the networks to the device).
        config: :class:`GANTrainConfig` (defaults if None).
        checkpoint_dir: where ``gan_last.pt`` is written every ``checkpoint_every``
            steps and at the end, atomically, and only from a finite state.
        resume: ``True`` resumes from the checkpoint in ``checkpoint_dir`` if there is
            one; ``"require"`` insists on one (CheckpointError otherwise); ``False``
            starts afresh and overwrites it. A resumed run may raise ``steps``; every
            other setting that shapes the trajectory, the architectures, the loss,
            the optimiser classes and the data must match (CheckpointError).
        callback: ``callback(step, record)`` after every step, with ``record`` holding
            ``g_loss``, ``d_loss``, ``wall_time`` and ``w1`` when evaluated.

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
    if resume not in (True, False, "require"):
        raise ValueError(f"resume must be True, False or 'require', got {resume!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("config.device is 'cuda' but CUDA is not available; use device='cpu'")
    with torch_threads(1, device):
        return _train(
            generator,
            discriminator,
            loss,
            target,
            g_optimizer,
            d_optimizer,
            config,
            device,
            checkpoint_dir,
            resume,
            callback,
        )


def _train(
    G: nn.Module,
    D: nn.Module,
    loss: GANLoss,
    target: Any,
    g_opt: torch.optim.Optimizer,
    d_opt: torch.optim.Optimizer,
    config: GANTrainConfig,
    device: torch.device,
    checkpoint_dir: str | os.PathLike | None,
    resume: bool | str,
    callback: Callable[[int, dict[str, float]], None] | None,
) -> GANTrainResult:
    g_trainable = _trainable(G, "generator")
    d_trainable = _trainable(D, "discriminator")
    shared = {id(p) for p in g_trainable} & {id(p) for p in d_trainable}
    if shared:
        raise ValueError("the generator and the discriminator share parameters; give each its own")
    g_params = _optimizer_params(g_opt, g_trainable, "g_optimizer", "generator")
    d_params = _optimizer_params(d_opt, d_trainable, "d_optimizer", "discriminator")
    if any(not _on_device(p, device) for p in (*g_params, *d_params)):
        raise ValueError(
            f"the networks' parameters must be on config.device={config.device!r}; move them "
            "with .to(device) BEFORE building the optimisers"
        )
    dtype = g_params[0].dtype
    latent_dim = (
        config.latent_dim if config.latent_dim is not None else getattr(G, "latent_dim", None)
    )
    if not isinstance(latent_dim, int):
        raise ValueError(
            "the latent dimension is unknown: set config.latent_dim or give the generator "
            "a latent_dim attribute"
        )
    target = _as_target(target, device, dtype)
    fingerprint = _fingerprint(G, D, loss, g_opt, d_opt, target)
    G_ema: AveragedModel | None = None
    if config.ema_decay > 0:
        G_ema = _averaged(G, config.ema_decay)
    gp_kwargs = _accepts_generator(loss)

    gen = torch.Generator(device=device)
    gen.manual_seed(config.seed)
    history: dict[str, list[float]] = {k: [] for k in (*_STEP_KEYS, *_EVAL_KEYS)}
    step = 0
    resumed_from: int | None = None
    wall = 0.0

    path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if path is None and resume == "require":
        raise CheckpointError("resume='require' needs a checkpoint_dir")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume == "require" or (resume and path.exists()):
            state = load_gan_checkpoint(path, map_location=device)
            differ = config.differences(state["config"])
            if config.lr_schedule == "linear" and state["config"].get("steps") != config.steps:
                differ.append("steps (the linear lr_schedule decays over the total steps)")
            if differ:
                raise CheckpointError(
                    f"checkpoint {path} was written with a different config: {differ}"
                )
            saved_fp = state["fingerprint"]
            bad = [k for k in fingerprint if saved_fp.get(k) != fingerprint[k]]
            if bad:
                detail = "; ".join(
                    f"{k}: saved {saved_fp.get(k)!r}, now {fingerprint[k]!r}" for k in bad
                )
                raise CheckpointError(
                    f"checkpoint {path} was written for another {'/'.join(bad)} ({detail}); "
                    "use another checkpoint_dir or resume=False"
                )
            if state["step"] > config.steps:
                raise CheckpointError(
                    f"checkpoint {path} is at step {state['step']}, past steps={config.steps}"
                )
            G.load_state_dict(state["generator"])
            D.load_state_dict(state["discriminator"])
            if G_ema is not None:
                G_ema.module.load_state_dict(state["generator_ema"])
                G_ema.n_averaged.copy_(state["generator_ema_count"])
            g_opt.load_state_dict(state["g_optimizer"])
            d_opt.load_state_dict(state["d_optimizer"])
            gen.set_state(state["rng"].cpu())
            history = {k: state["history"][k].tolist() for k in history}
            step = resumed_from = int(state["step"])
            wall = float(state.get("wall_time", 0.0))

    def checkpoint() -> None:
        assert path is not None
        save_atomic(
            path,
            {
                "format": _FORMAT,
                "kind": "gan",
                "generator": G.state_dict(),
                "discriminator": D.state_dict(),
                "g_optimizer": g_opt.state_dict(),
                "d_optimizer": d_opt.state_dict(),
                "step": step,
                "rng": gen.get_state(),
                "history": {k: torch.tensor(v, dtype=torch.float64) for k, v in history.items()},
                "config": asdict(config),
                "fingerprint": fingerprint,
                "wall_time": wall,
                **(
                    {}
                    if G_ema is None
                    else {
                        "generator_ema": G_ema.module.state_dict(),
                        "generator_ema_count": G_ema.n_averaged.detach().cpu(),
                    }
                ),
            },
        )

    # evaluation: fixed latents and reference samples from their own generator
    eval_cache: list[Tensor] = []
    evaluating = config.eval_every > 0 and config.eval_metric != "none"

    def evaluate() -> float:
        if not eval_cache:
            eg = torch.Generator(device=device)
            eg.manual_seed(config.seed + _EVAL_SEED_OFFSET)
            n = config.eval_samples
            z_eval = sample_latent(n, latent_dim, config.prior, eg, device, dtype)
            if isinstance(target, Tensor):
                if target.shape[0] <= n:
                    ref = target
                else:
                    ref = target[torch.randperm(target.shape[0], generator=eg, device=device)[:n]]
            else:
                ref = _draw_target(target, n, eg, device, dtype)
            eval_cache.extend([z_eval, ref])
        z_eval, ref = eval_cache
        was_training = G.training
        G.eval()  # no power-iteration updates etc. from evaluation
        try:
            with torch.no_grad():
                x = G(z_eval)
        finally:
            G.train(was_training)
        if not bool(torch.isfinite(x).all()):
            raise _NonFinite("the generated samples are not finite")
        if config.eval_metric == "w_1d" and x[0].numel() != 1:
            raise ValueError(
                f"eval_metric='w_1d' needs 1-D samples, the generator makes {tuple(x.shape[1:])}; "
                "use eval_metric='auto' or 'w1'"
            )
        return _w1(x, ref, config.eval_metric)

    def record_eval() -> float:
        w = evaluate()
        if not math.isfinite(w):
            raise _NonFinite(f"W_1 of the generated samples is {w}")
        history["eval_step"].append(float(step))
        history["eval_w1"].append(w)
        history["eval_wall_time"].append(wall)
        return w

    status: Literal["completed", "diverged"] = "completed"
    message = ""
    diverged_at: int | None = None
    g_first: list[float] = []
    current = step  # the step being computed, for the divergence report

    def closure() -> Tensor:
        first = not g_first
        with torch.enable_grad():
            g_opt.zero_grad(set_to_none=True)
            value = loss.generator_loss(D, G(z))
            if not isinstance(value, Tensor) or value.ndim != 0:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"generator_loss must return a scalar tensor, got {shape}")
            finite = bool(torch.isfinite(value))
            if first and not finite:
                raise _NonFinite(f"generator loss is {float(value.detach())}")
            if finite:  # a later call at a trial point may be non-finite: the optimiser rejects it
                value.backward(inputs=g_params)
        if first:
            g_first.append(float(value.detach()))
        return value

    G.train()
    D.train()
    with progress_bar(config.steps, "GAN training") as bar:
        bar.update(completed=step)
        try:
            if evaluating and step == 0 and not history["eval_step"]:
                record_eval()
            while step < config.steps:
                current = step + 1
                if config.lr_schedule == "linear":
                    _set_lr_factor((g_opt, d_opt), 1.0 - step / config.steps)
                t0 = time.perf_counter()
                d_values: list[float] = []
                for _ in range(config.n_critic):
                    real = _draw_target(target, config.batch_size, gen, device, dtype)
                    z = sample_latent(
                        config.batch_size, latent_dim, config.prior, gen, device, dtype
                    )
                    with torch.no_grad():
                        fake = G(z)
                    if real.shape[1:] != fake.shape[1:]:
                        raise ValueError(
                            f"the generator makes samples of shape {tuple(fake.shape[1:])} but "
                            f"the target's are {tuple(real.shape[1:])}"
                        )
                    d_opt.zero_grad(set_to_none=True)
                    kw = {"generator": gen} if gp_kwargs else {}
                    d_loss = loss.discriminator_loss(D, real, fake, **kw)
                    if not isinstance(d_loss, Tensor) or d_loss.ndim != 0:
                        raise ValueError("discriminator_loss must return a scalar tensor")
                    d_value = float(d_loss.detach())
                    if not math.isfinite(d_value):
                        raise _NonFinite(f"discriminator loss is {d_value}")
                    d_loss.backward(inputs=d_params)
                    d_opt.step()
                    d_values.append(d_value)
                z = sample_latent(config.batch_size, latent_dim, config.prior, gen, device, dtype)
                if callable(getattr(g_opt, "set_latents", None)):
                    g_opt.set_latents(z)
                g_first.clear()
                g_opt.step(closure)
                if not g_first:
                    raise ValueError(
                        "g_optimizer.step(closure) did not call the closure; the generator "
                        "step must evaluate the loss through it"
                    )
                if G_ema is not None:
                    _ema_update(G_ema, G)
                dt = time.perf_counter() - t0
                wall += dt
                step += 1
                g_value, d_mean = g_first[0], sum(d_values) / len(d_values)
                history["g_loss"].append(g_value)
                history["d_loss"].append(d_mean)
                history["step_time"].append(dt)
                history["wall_time"].append(wall)
                record = {"g_loss": g_value, "d_loss": d_mean, "wall_time": wall}
                if evaluating and step % config.eval_every == 0:
                    record["w1"] = record_eval()
                if path is not None and (
                    step % config.checkpoint_every == 0 or step == config.steps
                ):
                    if not _all_finite(G, D):
                        raise _NonFinite("a network parameter is not finite")
                    checkpoint()
                bar.advance()
                if step % config.log_every == 0:
                    text = f"GAN g={g_value:.4g} d={d_mean:.4g}"
                    bar.update(description=text)
                    logger.info("step %d: %s", step, text)
                if callback is not None:
                    callback(step, record)
            if path is None and not _all_finite(G, D):
                raise _NonFinite("a network parameter is not finite")
        except (_NonFinite, FloatingPointError) as err:
            diverged_at = current
            if step >= current > 0:  # found after the step was recorded: drop its records
                step = current - 1
                for k in _STEP_KEYS:
                    del history[k][step:]
                while history["eval_step"] and history["eval_step"][-1] > step:
                    for k in _EVAL_KEYS:
                        history[k].pop()
                wall = history["wall_time"][-1] if history["wall_time"] else 0.0
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
    return GANTrainResult(
        generator=G,
        discriminator=D,
        history={k: torch.tensor(v, dtype=torch.float64) for k, v in history.items()},
        step=step,
        status=status,
        message=message,
        diverged_at=diverged_at,
        resumed_from=resumed_from,
        checkpoint=path,
        wall_time=wall,
        config=config,
        generator_ema=None if G_ema is None else G_ema.module,
    )


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
    ``torch.Generator`` seeded by ``seed``) and takes one ``d_optimizer`` step on
    ``loss.discriminator_loss(D, real, G(z))``. This makes D the critic of *that*
    generator, e.g. of a parameter average (``GANTrainResult.generator_ema``), which the
    discriminator of a GAN run never saw, before D is used for post-processing (DOT,
    DRS, MH-GAN); Azadi et al. (2019) likewise train D further with G fixed before
    rejection sampling. Returns the float64 losses, one per step, each before its step.
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
    kw = {"generator": gen} if _accepts_generator(loss) else {}
    losses = []
    discriminator.train()
    for _ in range(steps):
        real = _draw_target(data, batch_size, gen, device, dtype)
        z = sample_latent(batch_size, latent_dim, prior, gen, device, dtype)
        with torch.no_grad():
            fake = generator(z)
        d_optimizer.zero_grad(set_to_none=True)
        value = loss.discriminator_loss(discriminator, real, fake, **kw)
        if not bool(torch.isfinite(value)):
            raise FloatingPointError(
                f"discriminator loss became {float(value)} after {len(losses)} steps; lower the "
                "learning rate"
            )
        value.backward(inputs=d_params)
        d_optimizer.step()
        losses.append(float(value.detach()))
    return torch.tensor(losses, dtype=torch.float64)
