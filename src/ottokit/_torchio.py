"""Torch runtime helpers shared by the training code: intra-op threads and checkpoints.

* :func:`torch_threads` sets torch's CPU thread count for a block and restores it. The
  networks trained here are small: extra intra-op threads cost more than they give, and
  on a busy machine they spin-wait.
* :func:`save_atomic` writes a state to a unique temporary name beside the target and
  renames it, so a crash mid-write never leaves a broken file and two writers never
  share a temporary file; :func:`load_state` reads one with
  ``torch.load(weights_only=True)`` (loading never executes code) and checks its keys
  and format version.
* :func:`save_verified` / :func:`load_verified` add a SHA-256 of the serialised
  contents, checked before anything is unpickled, so a flipped bit anywhere in the
  file is refused instead of loaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "load_state",
    "load_verified",
    "save_atomic",
    "save_verified",
    "torch_threads",
]

_VERIFIED_KIND = "ottokit-verified"


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
    """``torch.save`` to ``path`` through a uniquely named temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_verified(path: str | os.PathLike, state: Any) -> str:
    """Save ``state`` with the SHA-256 of its serialised bytes (atomically); return the hash."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    save_atomic(
        path,
        {
            "kind": _VERIFIED_KIND,
            "sha256": digest,
            "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
        },
    )
    return digest


def load_verified(
    path: str | os.PathLike, *, what: str, map_location: Any = "cpu"
) -> dict[str, Any]:
    """Read a file written by :func:`save_verified`; CheckpointError unless its SHA-256 holds.

    Both layers are read with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no {what} checkpoint at {path}")
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable: {err}") from err
    if not isinstance(outer, dict) or outer.get("kind") != _VERIFIED_KIND:
        raise CheckpointError(
            f"checkpoint {path} carries no checksum (written by an older ottokit, or not a "
            f"{what} checkpoint); it cannot be verified: delete it or train afresh"
        )
    payload, digest = outer.get("payload"), outer.get("sha256")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8 or payload.ndim != 1:
        raise CheckpointError(f"checkpoint {path} is corrupt: its payload is not a byte tensor")
    data = payload.numpy().tobytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: SHA-256 {actual[:16]}... does not match the "
            f"stored {str(digest)[:16]}...; delete it or train afresh"
        )
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable: {err}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is not a {what} checkpoint")
    return state


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
