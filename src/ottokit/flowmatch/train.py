"""Learned velocity: an MLP trained by conditional flow matching, checkpointed and resumable.

For any schedule, a training step (:func:`velocity_step`) draws y from the data,
eps ~ N(0, I) and t ~ U(0, tau], forms x_t = m_t y + sigma_t eps, and regresses the
network on the conditional velocity d_m y + d_sigma eps (Lipman et al. 2022): the
minimiser of E|v(t, x_t) - (d_m y + d_sigma eps)|^2 is the marginal velocity nu_t.
``coupling="ot"`` pairs each batch's y and eps by an exact OT plan first (minibatch
OT, Tong et al. 2023).

All randomness of a run comes from one ``torch.Generator`` seeded with
``config.seed``; the network is initialised from the same seed inside
``torch.random.fork_rng``, so the caller's global RNG is never touched. State,
checkpoints (with a fingerprint of the schedule and data), the resume rule and data
parallelism come from :mod:`ottokit.engine`; on the CPU a resumed run is
bit-identical to an uninterrupted one with the same seed.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ottokit import distributed
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
    local_rows,
    module_fingerprint,
    read_for_resume,
    save_checkpoint,
)
from ottokit.engine import (
    load_checkpoint as _load_engine_checkpoint,
)
from ottokit.flowmatch._common import as_points, exact_plan
from ottokit.flowmatch.schedules import Schedule
from ottokit.progress import progress_bar

__all__ = [
    "SinusoidalTimeEmbedding",
    "VelocityMLP",
    "TrainConfig",
    "TrainResult",
    "CheckpointError",
    "train_velocity",
    "velocity_step",
    "load_checkpoint",
    "CHECKPOINT_NAME",
]

_KIND = "velocity"
CHECKPOINT_NAME = checkpoint_path(".", _KIND).name
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
        """Fields (other than ``n_steps`` and ``checkpoint_every``) that differ from a
        saved config."""
        return differing_fields(other, self, ("n_steps", "checkpoint_every"))


@dataclass
class TrainResult:
    """A trained velocity and its history."""

    model: VelocityMLP
    losses: Tensor  # (step,) loss of every step since step 0, float64
    step: int
    resumed_from: int | None  # step of the checkpoint resumed from, None for a fresh run
    checkpoint: Path | None  # the last checkpoint written or read
    cached: bool = False  # restored from the cache of trained networks instead of trained


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint written by :func:`train_velocity` (a file or its directory).

    Returns a flat dict: ``model`` and ``optimizer`` (state dicts), ``step``,
    ``generator`` (the run's RNG state), ``losses`` (float64), ``config``,
    ``fingerprint`` and ``world_size``. Raises CheckpointError if the file is missing,
    fails its SHA-256, or is not a sound flow-matching checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"no flow-matching checkpoint at {path}")
    ck = _load_engine_checkpoint(path, _KIND, map_location=map_location)
    st = ck["state"]
    return {
        "model": st["networks"]["model"],
        "optimizer": st["optimizers"]["model"],
        "step": st["step"],
        "generator": st["rng"],
        "losses": st["history"]["loss"],
        "config": ck["config"],
        "fingerprint": ck["fingerprint"],
        "world_size": ck["world_size"],
    }


def _fingerprint(schedule: Schedule, data: Tensor, model: nn.Module) -> dict[str, str]:
    """(m_t, sigma_t) on a fixed grid, the data and the architecture: what a resumed run
    must share."""
    t = torch.linspace(0.0, schedule.tau, _FINGERPRINT_TIMES, dtype=torch.float64)
    out = schedule(t)
    values = torch.cat([out.m_t, out.sigma_t, torch.tensor([schedule.tau], dtype=torch.float64)])
    rounded = ",".join(f"{v:.12e}" for v in values.tolist())
    return {
        "schedule": f"{type(schedule).__qualname__}:"
        + hashlib.sha256(rounded.encode()).hexdigest(),
        "data": data_fingerprint(data),
        "model": module_fingerprint(model),
    }


def velocity_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    y: Tensor,
    eps: Tensor,
    t: Tensor,
) -> float:
    """One flow-matching step on the batch ``(y, eps, t)``; the loss before the step.

    The loss is ``mean_i |v(t_i, x_t,i) - (d_m y_i + d_sigma eps_i)|^2`` with
    ``x_t = m_t y + sigma_t eps``; under data parallelism the returned value is the
    global batch's mean (``model`` is then a DistributedDataParallel wrapper).
    """
    # t is drawn inside (0, tau] by the caller, so the schedule's input checks (which
    # cost about a tenth of a small model's step) are skipped
    out = schedule._evaluate(t)
    x_t = out.m_t[:, None] * y + out.sigma_t[:, None] * eps
    target = out.d_m_t[:, None] * y + out.d_sigma_t[:, None] * eps
    loss = ((model(t, x_t) - target) ** 2).sum(dim=1).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    value = loss.detach()
    if distributed.is_distributed():
        value = distributed.all_reduce(value, "mean")
    return float(value)


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
    resume: Resume = "auto",
    callback: Callable[[int, float], None] | None = None,
    cache: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train a :class:`VelocityMLP` on ``data`` (n, d) by flow matching on ``schedule``.

    Under an initialised ``torch.distributed`` process group every rank draws the
    global batch of ``config.batch_size`` rows (data indices, noise, times) from the
    run's stream and takes :func:`velocity_step` on its slice under
    DistributedDataParallel; only rank 0 writes the checkpoint. The batch size must be
    a multiple of the world size; the result equals a single-process run with the same
    batch size up to the order of the reductions.

    Args:
        config: :class:`TrainConfig` (defaults if None).
        checkpoint_dir: where ``velocity.pt`` is written every ``checkpoint_every``
            steps and at the end (atomically, verified by SHA-256).
        device: ``"cpu"``, ``"cuda"``, ...
        resume: ``"auto"`` resumes when the checkpoint exists and starts fresh
            otherwise; ``"require"`` insists on it (CheckpointError if missing or
            corrupt); ``"never"`` starts fresh and replaces it. A resumed run may raise
            ``n_steps``; every other config field, the schedule and the data must
            match the checkpoint's.
        callback: called as ``callback(step, loss)`` after every step.
        cache: use the cache of trained networks (:mod:`ottokit.cache`) with this
            mapping added to the key (what the trainer cannot see itself; the schedule,
            data, config and initial state are hashed anyway); ``result.cached`` says
            whether the model was restored from it. None: no cache. A ``"label"`` entry
            names the run in ``ottokit cache list`` and the report.
    """
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    check_resume(resume)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    dtype = getattr(torch, config.dtype)
    y_all = as_points(data, "data").to(dtype=dtype, device=device)
    n_data, dim = y_all.shape
    rows = local_rows(config.batch_size)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = VelocityMLP(dim, config.hidden, config.depth, config.time_dim, schedule.tau)
    model = model.to(dtype=dtype, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = torch.Generator(device=device)
    rng.manual_seed(config.seed)
    state = TrainState(
        step=0,
        rng=rng,
        networks={"model": model},
        optimizers={"model": optimizer},
        history={"loss": []},
    )
    fingerprint = _fingerprint(schedule, y_all, model)
    resumed_from: int | None = None

    path = checkpoint_path(checkpoint_dir, _KIND) if checkpoint_dir is not None else None
    stored = TrainingCache.for_run(
        _KIND,
        cache,
        config={k: v for k, v in asdict(config).items() if k != "checkpoint_every"},
        fingerprint=fingerprint,
        state=state,
        label=str(
            (cache or {}).get(
                "label", f"velocity {type(schedule).__name__} {config.n_steps} steps"
            )
        ),
    )

    def fits(ck: dict[str, Any], source: Path) -> None:
        differ = config.resumable_from(ck["config"])
        if differ:
            raise CheckpointError(
                f"checkpoint {source} was written with a different config: {differ}"
            )
        if ck["fingerprint"] != fingerprint:
            bad = [k for k in fingerprint if ck["fingerprint"].get(k) != fingerprint[k]]
            raise CheckpointError(
                f"checkpoint {source} was written for another schedule or data set "
                f"({bad} differ)"
            )
        if ck["state"]["step"] > config.n_steps:
            raise CheckpointError(
                f"checkpoint {source} is at step {ck['state']['step']}, past "
                f"n_steps={config.n_steps}"
            )

    ck = read_for_resume(path, resume, _KIND, what="flow-matching")
    cached = False
    if ck is not None:
        assert path is not None
        fits(ck, path)
        state.load_state_dict(ck["state"])
        resumed_from = state.step
    elif stored is not None:
        hit = stored.lookup()
        if hit is not None:
            try:
                fits(hit, stored.path)
                state.load_state_dict(hit["state"])
                cached = True
            except CheckpointError as err:
                stored.reject(str(err))
        if cached and path is not None:
            save_checkpoint(path, _KIND, state, asdict(config), fingerprint)

    model_train = distributed.wrap_ddp(model, device)
    model.train()
    with progress_bar(config.n_steps, "flow matching") as bar:
        bar.update(completed=state.step)
        while state.step < config.n_steps:
            n = config.batch_size
            idx = torch.randint(n_data, (n,), generator=rng, device=device)
            y = y_all[idx]
            eps = torch.randn(n, dim, generator=rng, device=device, dtype=dtype)
            t = schedule.tau * (1.0 - torch.rand(n, generator=rng, device=device, dtype=dtype))
            if config.coupling == "ot":
                plan = exact_plan(y.detach().cpu().numpy(), eps.detach().cpu().numpy())
                eps = eps[torch.as_tensor(plan.argmax(axis=1), device=device)]
            value = velocity_step(model_train, optimizer, schedule, y[rows], eps[rows], t[rows])
            state.step += 1
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"flow-matching loss is {value} at step {state.step}; lower lr"
                )
            state.history["loss"].append(value)
            if path is not None and (
                state.step % config.checkpoint_every == 0 or state.step == config.n_steps
            ):
                save_checkpoint(path, _KIND, state, asdict(config), fingerprint)
            bar.advance()
            if callback is not None:
                callback(state.step, value)
    if stored is not None and not cached:
        stored.store(state, asdict(config), fingerprint)
    model.eval()
    return TrainResult(
        model=model,
        losses=torch.tensor(state.history["loss"], dtype=torch.float64),
        step=state.step,
        resumed_from=resumed_from,
        checkpoint=path,
        cached=cached,
    )
