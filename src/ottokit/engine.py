"""One training engine for every ottokit trainer: state, checkpoints, resume, data parallelism.

A run is a :class:`TrainState` (step, the run's random stream, networks, optimisers,
parameter averages, history, wall time) advanced by pure step functions that the
trainers define (critic, generator and velocity steps). The engine owns what they
share:

* one checkpoint format (:func:`save_checkpoint`, :func:`load_checkpoint`): the state,
  the config, a fingerprint of the networks, config and data, the world size, and a
  SHA-256 of the contents that is verified before anything is used; loading refuses
  non-finite weights, wrong shapes or types, and a step outside the run;
* one resume rule, :data:`Resume`: ``"auto"`` (resume when a checkpoint exists),
  ``"require"`` (a checkpoint must exist) and ``"never"`` (start afresh, replace it);
* data parallelism: under an initialised process group every rank draws the global
  batch from the same seeded stream and trains on its slice (:func:`local_rows`), the
  networks run under ``DistributedDataParallel``, and only rank 0 writes checkpoints.
  The state is identical on every rank, so a checkpoint resumes under any world size
  that divides the global batch (the same global batch, reduced in another order).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from ottokit import __version__, cache, distributed
from ottokit._torchio import CheckpointError, load_verified, save_verified

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "RESUME_MODES",
    "Resume",
    "TrainState",
    "TrainingCache",
    "check_resume",
    "checkpoint_path",
    "data_fingerprint",
    "differing_fields",
    "load_checkpoint",
    "local_rows",
    "module_fingerprint",
    "read_for_resume",
    "resume_from",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 2
Resume = Literal["auto", "require", "never"]
RESUME_MODES: tuple[str, ...] = get_args(Resume)


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped.

    Attributes:
        step: completed steps.
        rng: the run's random stream (data batches, latents, noise, times); identical
            on every rank of a data-parallel run.
        networks: the trained modules by name (the plain modules, never DDP wrappers).
        optimizers: their optimisers by name.
        averages: parameter averages (EMA) by name.
        history: per-step and per-evaluation records, name -> list of floats.
        wall_time: training seconds so far, continued across resumes.
    """

    step: int
    rng: torch.Generator
    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    averages: dict[str, AveragedModel] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    wall_time: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        """The state as tensors and plain values (what a checkpoint stores)."""
        return {
            "step": int(self.step),
            "rng": self.rng.get_state(),
            "networks": {k: m.state_dict() for k, m in self.networks.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "averages": {
                k: {"module": a.module.state_dict(), "count": a.n_averaged.detach().cpu()}
                for k, a in self.averages.items()
            },
            "history": {k: torch.tensor(v, dtype=torch.float64) for k, v in self.history.items()},
            "wall_time": float(self.wall_time),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` in place (networks, optimisers, averages, RNG)."""
        for k, m in self.networks.items():
            m.load_state_dict(state["networks"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, a in self.averages.items():
            a.module.load_state_dict(state["averages"][k]["module"])
            a.n_averaged.copy_(state["averages"][k]["count"])
        self.rng.set_state(state["rng"].cpu())
        saved = {k: v.tolist() for k, v in state["history"].items()}
        missing = [k for k in self.history if k not in saved]
        if missing:
            raise CheckpointError(f"the checkpoint's history lacks {missing}")
        self.history = saved
        self.step = int(state["step"])
        self.wall_time = float(state["wall_time"])


def checkpoint_path(directory: str | Path, kind: str) -> Path:
    """Where a ``kind`` run (``"gan"``, ``"velocity"``) keeps its last checkpoint."""
    return Path(directory) / f"{kind}.pt"


def module_fingerprint(module: nn.Module) -> str:
    """The architecture of ``module``: class, and name, shape and dtype of each state entry."""
    parts = [
        f"{k}:{tuple(v.shape)}:{str(v.dtype).removeprefix('torch.')}"
        for k, v in module.state_dict().items()
    ]
    return f"{type(module).__qualname__}[{';'.join(parts)}]"


def data_fingerprint(data: Tensor | Callable[..., Any]) -> str:
    """SHA-256 of a data tensor's float64 values and shape, or the name of a sampler."""
    if isinstance(data, Tensor):
        values = data.detach().to("cpu", torch.float64).contiguous()
        digest = hashlib.sha256(values.numpy().tobytes()).hexdigest()
        return f"tensor{tuple(data.shape)}:sha256={digest}"
    return f"callable:{getattr(data, '__qualname__', type(data).__qualname__)}"


def local_rows(n_global: int) -> slice:
    """This rank's rows of a global batch of ``n_global`` (all of them in one process).

    Data-parallel training averages equal shares, so ``n_global`` must be a multiple
    of the world size (ValueError otherwise).
    """
    start, stop = distributed.shard_bounds(n_global, exact=True)
    return slice(start, stop)


def check_resume(resume: Any) -> None:
    """ValueError unless ``resume`` is one of :data:`RESUME_MODES`."""
    if isinstance(resume, bool) or resume not in RESUME_MODES:
        hint = (
            "; True/False meant different things in different trainers and are no longer "
            "accepted: 'auto' resumes when a checkpoint exists, 'require' insists on one"
            if isinstance(resume, bool)
            else ""
        )
        raise ValueError(f"resume must be one of {RESUME_MODES}, got {resume!r}{hint}")


def resume_from(path: Path | None, resume: Resume, what: str = "") -> bool:
    """Whether to load ``path`` under the resume rule.

    ``"require"`` without a checkpoint directory or without a checkpoint in it raises
    CheckpointError (``what`` names the kind of run in the message).
    """
    check_resume(resume)
    if resume == "never":
        return False
    if path is None:
        if resume == "require":
            raise CheckpointError("resume='require' needs a checkpoint_dir")
        return False
    if resume == "require" and not path.is_file():
        raise CheckpointError(
            f"resume='require' but there is no {what + ' ' if what else ''}checkpoint at {path}"
        )
    return path.is_file()


def read_for_resume(
    path: Path | None, resume: Resume, kind: str, *, what: str = ""
) -> dict[str, Any] | None:
    """The verified checkpoint to resume from under the resume rule, or None to start afresh.

    Rank 0 decides and reads (only it needs the file) and sends the outcome to every
    rank, so all ranks resume from the same state or fail with the same
    CheckpointError.
    """
    check_resume(resume)
    outcome: tuple[str, Any] = ("ok", None)
    if distributed.is_main_process():
        try:
            if resume_from(path, resume, what):
                assert path is not None
                outcome = ("ok", load_checkpoint(path, kind))
        except CheckpointError as err:
            outcome = ("error", str(err))
    outcome = distributed.broadcast_object(outcome)
    if outcome[0] == "error":
        raise CheckpointError(outcome[1])
    return outcome[1]


class TrainingCache:
    """The cache entry of one training run (see :mod:`ottokit.cache`).

    ``material`` is everything that determines the run's final state besides the
    source code: config, fingerprint, initial state, world size, the caller's additions.
    """

    def __init__(self, kind: str, material: Mapping[str, Any], label: str) -> None:
        self.kind, self.label = kind, label
        self.key, self.path = cache.training_entry(kind, material, label)

    @classmethod
    def for_run(
        cls,
        kind: str,
        extra: Mapping[str, Any] | None,
        *,
        config: Mapping[str, Any],
        fingerprint: Mapping[str, str],
        state: TrainState,
        label: str,
    ) -> TrainingCache | None:
        """The entry for a run about to start from ``state``; None when the caller asked
        for no caching (``extra`` None) or the cache is off."""
        if extra is None or not cache.enabled():
            return None
        material = {
            "config": dict(config),
            "fingerprint": dict(fingerprint),
            "initial_state": cache.digest(state.state_dict()),
            "world_size": distributed.world_size(),
            "caller": dict(extra),
        }
        return cls(kind, material, label)

    def lookup(self) -> dict[str, Any] | None:
        """The verified final checkpoint, or None (a damaged entry is deleted)."""
        outcome = None
        if distributed.is_main_process() and self.path.is_file():
            try:
                outcome = load_checkpoint(self.path, self.kind)
            except CheckpointError as err:
                cache.discard(self.path, str(err))
        outcome = distributed.broadcast_object(outcome)
        cache.log_event("training", self.label, self.key, outcome is not None)
        return outcome

    def reject(self, reason: str) -> None:
        """Delete an entry that does not fit the run after all."""
        if distributed.is_main_process():
            cache.discard(self.path, reason)

    def store(
        self, state: TrainState, config: Mapping[str, Any], fingerprint: Mapping[str, str]
    ) -> None:
        """Keep the final state of a completed run."""
        save_checkpoint(self.path, self.kind, state, config, fingerprint)
        if distributed.is_main_process():
            cache.write_label(self.path.with_suffix(".json"), self.label, "training")


def save_checkpoint(
    path: Path,
    kind: str,
    state: TrainState,
    config: Mapping[str, Any],
    fingerprint: Mapping[str, str],
) -> None:
    """Write ``state`` (rank 0 only; every rank waits for it) in the verified format."""
    if distributed.is_main_process():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_verified(
            path,
            {
                "format": CHECKPOINT_FORMAT,
                "kind": kind,
                "version": __version__,
                "world_size": distributed.world_size(),
                "state": state.state_dict(),
                "config": dict(config),
                "fingerprint": dict(fingerprint),
            },
        )
    distributed.barrier(f"checkpoint {path.name}")


def load_checkpoint(
    path: str | Path,
    kind: str,
    *,
    networks: Mapping[str, nn.Module] | None = None,
    map_location: Any = "cpu",
) -> dict[str, Any]:
    """Read and verify a ``kind`` checkpoint.

    Raises CheckpointError if the file is missing, fails its SHA-256, has another
    format or kind, lacks a part, holds a step or history that is not a run's, or
    holds non-finite weights; with ``networks``, also if a saved network's entries
    differ from the given module's in name, shape or dtype.
    """
    path = Path(path)
    ck = load_verified(path, what=kind, map_location=map_location)
    if ck.get("format") != CHECKPOINT_FORMAT or ck.get("kind") != kind:
        raise CheckpointError(
            f"checkpoint {path} is a {ck.get('kind')!r} checkpoint of format "
            f"{ck.get('format')!r}; expected a {kind!r} checkpoint of format {CHECKPOINT_FORMAT}"
        )
    missing = [k for k in ("state", "config", "fingerprint", "world_size") if k not in ck]
    state = ck.get("state")
    if not missing and isinstance(state, dict):
        missing = [
            f"state.{k}"
            for k in ("step", "rng", "networks", "optimizers", "averages", "history", "wall_time")
            if k not in state
        ]
    if missing or not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is not a {kind} checkpoint (missing {missing})")
    _check_contents(path, state, networks)
    return ck


def _check_contents(
    path: Path, state: dict[str, Any], networks: Mapping[str, nn.Module] | None
) -> None:
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"checkpoint {path} holds step={step!r}, not a step count")
    if not isinstance(state["rng"], Tensor) or state["rng"].dtype != torch.uint8:
        raise CheckpointError(f"checkpoint {path} holds no random-generator state")
    wall = state["wall_time"]
    if not isinstance(wall, float | int) or not math.isfinite(wall) or wall < 0:
        raise CheckpointError(f"checkpoint {path} holds wall_time={wall!r}")
    for key, values in state["history"].items():
        if not isinstance(values, Tensor) or values.ndim != 1:
            raise CheckpointError(f"checkpoint {path}: history[{key!r}] is not a 1-D tensor")
    groups: list[tuple[str, Mapping[str, Any]]] = list(state["networks"].items())
    groups += [(f"average {k}", a["module"]) for k, a in state["averages"].items()]
    for name, entries in groups:
        for key, value in entries.items():
            if not isinstance(value, Tensor):
                raise CheckpointError(f"checkpoint {path}: {name}.{key} is not a tensor")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise CheckpointError(
                    f"checkpoint {path}: {name}.{key} holds non-finite values; it cannot "
                    "come from a finite training state (use an earlier checkpoint or retrain)"
                )
    for name, module in (networks or {}).items():
        saved = state["networks"].get(name)
        if saved is None:
            raise CheckpointError(f"checkpoint {path} holds no {name}")
        _check_layout(path, name, saved, module.state_dict())
        if name in state["averages"]:
            _check_layout(path, f"{name} average", state["averages"][name]["module"],
                          module.state_dict())


def _check_layout(
    path: Path, name: str, saved: Mapping[str, Tensor], given: Mapping[str, Tensor]
) -> None:
    def layout(d: Mapping[str, Tensor]) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
        return [(k, tuple(v.shape), v.dtype) for k, v in d.items()]

    a, b = layout(saved), layout(given)
    if a != b:
        diff = next(
            (f"{x} vs {y}" for x, y in zip(a, b, strict=False) if x != y),
            f"{len(a)} vs {len(b)} entries",
        )
        raise CheckpointError(
            f"checkpoint {path} holds a different {name} architecture (saved vs given: {diff})"
        )


def differing_fields(saved: Mapping[str, Any], config: Any, may_change: Iterable[str]) -> list[str]:
    """Fields of the dataclass ``config`` that differ from a saved config (as a dict),
    other than those a resume may change; a field missing from ``saved`` (a checkpoint
    older than the field) counts as its default."""
    skip = set(may_change)
    out = []
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        value = getattr(config, f.name)
        saved_value = saved.get(f.name, default)
        if isinstance(value, tuple) and isinstance(saved_value, list):
            saved_value = tuple(saved_value)
        if saved_value != value:
            out.append(f.name)
    return out
