"""Learned velocity: an MLP trained by conditional flow matching, checkpointed and resumable.

For any schedule, a training step draws y from the data, eps ~ N(0, I) and
t ~ U(0, tau], forms x_t = m_t y + sigma_t eps, and regresses the network on the
conditional velocity d_m y + d_sigma eps (Lipman et al. 2022): the minimiser of
E|v(t, x_t) - (d_m y + d_sigma eps)|^2 is the marginal velocity nu_t.
``coupling="ot"`` pairs each batch's y and eps by an exact OT plan first
(minibatch OT, Tong et al. 2023).

All randomness of a run (batches, noise, times) comes from one
``torch.Generator`` seeded with ``config.seed``; the network is initialised from
the same seed inside ``torch.random.fork_rng``, so the caller's global RNG is
never touched. Checkpoints hold the model, the optimiser, the step, that
generator's state, the config, the loss history and a fingerprint of the
schedule and data; :func:`train_velocity` resumes from the last one, and on the
CPU the result is bit-identical to an uninterrupted run with the same seed.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ottokit._checks import check_option
from ottokit._progress import progress_bar
from ottokit._torchio import CheckpointError, load_state, save_atomic, torch_threads
from ottokit.flowmatch._common import as_points, exact_plan
from ottokit.flowmatch.schedules import Schedule

__all__ = [
    "SinusoidalTimeEmbedding",
    "VelocityMLP",
    "TrainConfig",
    "TrainResult",
    "CheckpointError",
    "train_velocity",
    "load_checkpoint",
    "CHECKPOINT_NAME",
]

CHECKPOINT_NAME = "last.pt"
_FORMAT = 1
_FINGERPRINT_TIMES = 17


class SinusoidalTimeEmbedding(nn.Module):
    """[sin(f_j s), cos(f_j s)] of s = t/tau, frequencies f_j geometric from 1 to ``max_freq``."""

    def __init__(self, dim: int, tau: float = 1.0, max_freq: float = 1000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"time embedding dimension must be even and >= 2, got {dim}")
        self.tau = float(tau)
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), dim // 2, dtype=torch.float64))
        self.register_buffer("freqs", freqs)

    def forward(self, t: Tensor) -> Tensor:
        arg = (t / self.tau)[:, None] * self.freqs.to(t.dtype)[None, :]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class VelocityMLP(nn.Module):
    """v(t, x): an MLP on [x, embedding(t)] with SiLU activations.

    ``depth`` hidden layers of width ``hidden``. ``t`` may be one time (0-d or
    1 element, as an ODE solver passes it) or one time per row of ``x``.
    """

    def __init__(
        self, dim: int, hidden: int = 128, depth: int = 3, time_dim: int = 32, tau: float = 1.0
    ):
        super().__init__()
        if min(dim, hidden, depth) < 1:
            raise ValueError(f"dim, hidden, depth must be >= 1, got {dim}, {hidden}, {depth}")
        self.dim = dim
        self.embed = SinusoidalTimeEmbedding(time_dim, tau)
        layers: list[nn.Module] = [nn.Linear(dim + time_dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, t: Tensor | float, x: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t.reshape(-1)
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"t has {t.shape[0]} times for {x.shape[0]} points")
        return self.net(torch.cat([x, self.embed(t)], dim=1))


@dataclass(frozen=True)
class TrainConfig:
    """Flow-matching training settings (saved in every checkpoint)."""

    n_steps: int = 5000
    batch_size: int = 256
    lr: float = 1e-3
    hidden: int = 128
    depth: int = 3
    time_dim: int = 32
    checkpoint_every: int = 500
    coupling: Literal["independent", "ot"] = "independent"
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        for name in ("n_steps", "batch_size", "hidden", "depth", "time_dim", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be positive and finite, got {self.lr!r}")
        check_option(self.coupling, ("independent", "ot"), "coupling")
        check_option(self.dtype, ("float32", "float64"), "dtype")

    def resumable_from(self, other: dict[str, Any]) -> list[str]:
        """Fields (other than ``n_steps``) that differ from a saved config."""
        return [
            f.name
            for f in fields(self)
            if f.name != "n_steps" and other.get(f.name) != getattr(self, f.name)
        ]


@dataclass
class TrainResult:
    """A trained velocity and its history."""

    model: VelocityMLP
    losses: Tensor  # (step,) loss of every step since step 0, float64
    step: int
    resumed_from: int | None  # step of the checkpoint resumed from, None for a fresh run
    checkpoint: Path | None  # the last checkpoint written or read


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`train_velocity` (``torch.load(weights_only=True)``)."""
    required = ("model", "optimizer", "step", "generator", "config", "losses")
    return load_state(
        path, what="flow-matching", required=required, fmt=_FORMAT, map_location=map_location
    )


def _fingerprint(schedule: Schedule, data: Tensor) -> Tensor:
    """(m_t, sigma_t) on a fixed grid and data statistics: what a resumed run must share."""
    t = torch.linspace(0.0, schedule.tau, _FINGERPRINT_TIMES, dtype=torch.float64)
    out = schedule(t)
    d = data.detach().cpu().double()
    sizes = torch.tensor([d.shape[0], d.shape[1], schedule.tau], dtype=torch.float64)
    return torch.cat([out.m_t, out.sigma_t, sizes, d.mean(0), d.std(0, correction=0)])


def _single_cpu_thread(fn: Callable[..., TrainResult]) -> Callable[..., TrainResult]:
    """Run ``fn`` with one torch CPU thread (restored afterwards) when training on the CPU."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> TrainResult:
        device = signature.bind(*args, **kwargs).arguments.get("device", "cpu")
        with torch_threads(1, device):
            return fn(*args, **kwargs)

    return wrapper


@_single_cpu_thread
def train_velocity(
    schedule: Schedule,
    data: Any,
    config: TrainConfig | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    *,
    resume: bool | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train a :class:`VelocityMLP` on ``data`` (n, d) by flow matching on ``schedule``.

    Args:
        config: :class:`TrainConfig` (defaults if None).
        checkpoint_dir: where ``last.pt`` is written every ``checkpoint_every``
            steps and at the end (atomically: written aside, then renamed).
        device: ``"cpu"``, ``"cuda"``, ...
        resume: ``None`` resumes when ``checkpoint_dir/last.pt`` exists and starts
            fresh otherwise; ``True`` requires the checkpoint (CheckpointError if
            missing or corrupt); ``False`` starts fresh and overwrites it.
            A resumed run may raise ``n_steps``; every other config field, the
            schedule and the data must match the checkpoint's.
        callback: called as ``callback(step, loss)`` after every step.
    """
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    dtype = getattr(torch, config.dtype)
    y_all = as_points(data, "data").to(dtype=dtype, device=device)
    n_data, dim = y_all.shape
    fingerprint = _fingerprint(schedule, y_all)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = VelocityMLP(dim, config.hidden, config.depth, config.time_dim, schedule.tau)
    model = model.to(dtype=dtype, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    losses: list[float] = []
    step = 0
    resumed_from: int | None = None

    path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume is True or (resume is None and path.exists()):
            state = load_checkpoint(path, map_location=device)
            differ = config.resumable_from(state["config"])
            if differ:
                raise CheckpointError(
                    f"checkpoint {path} was written with a different config: {differ}"
                )
            saved = state.get("fingerprint")
            if (
                saved is None
                or saved.shape != fingerprint.shape
                or not torch.allclose(saved.double(), fingerprint, rtol=1e-10, atol=1e-12)
            ):
                raise CheckpointError(
                    f"checkpoint {path} was written for another schedule or data set"
                )
            if state["step"] > config.n_steps:
                raise CheckpointError(
                    f"checkpoint {path} is at step {state['step']}, past n_steps={config.n_steps}"
                )
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"].cpu())
            losses = state["losses"].tolist()
            step = resumed_from = int(state["step"])
    elif resume:
        raise CheckpointError("resume=True needs a checkpoint_dir")

    def checkpoint() -> None:
        assert path is not None
        save_atomic(
            path,
            {
                "format": _FORMAT,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "generator": generator.get_state(),
                "config": asdict(config),
                "fingerprint": fingerprint,
                "losses": torch.tensor(losses, dtype=torch.float64),
            },
        )

    model.train()
    with progress_bar(config.n_steps, "flow matching") as bar:
        bar.update(completed=step)
        while step < config.n_steps:
            idx = torch.randint(n_data, (config.batch_size,), generator=generator, device=device)
            y = y_all[idx]
            eps = torch.randn(
                config.batch_size, dim, generator=generator, device=device, dtype=dtype
            )
            t = schedule.tau * (
                1.0 - torch.rand(config.batch_size, generator=generator, device=device, dtype=dtype)
            )
            if config.coupling == "ot":
                plan = exact_plan(y.detach().cpu().numpy(), eps.detach().cpu().numpy())
                eps = eps[torch.as_tensor(plan.argmax(axis=1), device=device)]
            # t is drawn inside (0, tau] here, so the schedule's input checks (which cost
            # about a tenth of a small model's step) are skipped
            m_t, sigma_t, d_m_t, d_sigma_t = schedule._evaluate(t)
            x_t = m_t[:, None] * y + sigma_t[:, None] * eps
            target = d_m_t[:, None] * y + d_sigma_t[:, None] * eps
            loss = ((model(t, x_t) - target) ** 2).sum(dim=1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"flow-matching loss is {value} at step {step}; lower lr")
            losses.append(value)
            if path is not None and (step % config.checkpoint_every == 0 or step == config.n_steps):
                checkpoint()
            bar.advance()
            if callback is not None:
                callback(step, value)
    model.eval()
    return TrainResult(
        model=model,
        losses=torch.tensor(losses, dtype=torch.float64),
        step=step,
        resumed_from=resumed_from,
        checkpoint=path,
    )
