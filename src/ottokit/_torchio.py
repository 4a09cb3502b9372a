"""Torch runtime helpers shared by the training code: intra-op threads and checkpoints.

* :func:`torch_threads` sets torch's CPU thread count for a block and restores it. The
  networks trained here are small: extra intra-op threads cost more than they give, and
  on a busy machine they spin-wait (20x slower steps were measured on 2 shared cores).
* :func:`save_atomic` writes a state aside and renames it, so a crash mid-write never
  leaves a broken file; :func:`load_state` reads one with ``torch.load(weights_only=True)``
  (loading never executes code) and checks its keys and format version.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "torch_threads", "save_atomic", "load_state"]


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not match this run."""


@contextmanager
def torch_threads(n: int | None, device: Any = "cpu") -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (restored afterwards).

    Nothing changes when ``n`` is None or < 1, or when ``device`` is not the CPU.
    """
    if n is None or n < 1 or torch.device(device).type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def save_atomic(path: str | os.PathLike, state: Any) -> None:
    """``torch.save`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(
    path: str | os.PathLike,
    *,
    what: str,
    required: Iterable[str],
    fmt: int,
    kind: str | None = None,
    map_location: Any = "cpu",
) -> dict[str, Any]:
    """Read a ``what`` checkpoint written by :func:`save_atomic`.

    Raises :class:`CheckpointError` if the file is missing or unreadable, lacks one of
    the ``required`` keys (or its ``"kind"`` is not ``kind``), or has another format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no {what} checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable: {err}") from err
    need = set(required) | {"format"} | ({"kind"} if kind is not None else set())
    if (
        not isinstance(state, dict)
        or not need <= set(state)
        or (kind is not None and state["kind"] != kind)
    ):
        missing = sorted(need - set(state)) if isinstance(state, dict) else sorted(need)
        raise CheckpointError(f"checkpoint {path} is not a {what} checkpoint (missing {missing})")
    if state["format"] != fmt:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}, expected {fmt}")
    return state
