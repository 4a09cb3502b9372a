"""Helpers shared by the seed-003 experiments (dot-toy, dot-digits)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from ottokit.gan.train import fit_discriminator

__all__ = [
    "fit_frozen",
    "npz_key",
    "resolve_device",
    "summarise_seeds",
    "timed",
]

T = TypeVar("T")


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

    Returns what the run records: steps, the mean loss over the first and the last tenth
    of the steps, and the wall time.
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
