"""torch.distributed helpers: who am I, which slice is mine, and collectives that say what hung.

Every function works in a single process too (world size 1, rank 0), so library code
calls them unconditionally. A process group is whatever the caller initialised
(``torch.distributed.init_process_group``, e.g. under ``torchrun``); :func:`init_from_env`
does that from the launcher's environment. Collectives move tensors to the backend's
device (CPU for gloo, the current CUDA device for NCCL) and back, and a failure (a
peer that raised, a gloo timeout) becomes a :class:`DistributedError` naming the
collective, this rank and the world size.
"""

from __future__ import annotations

import datetime
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DistributedError",
    "all_gather_cat",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object",
    "check_same",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "launch",
    "launched_by_torchrun",
    "rank",
    "shard_bounds",
    "shard_rows",
    "world_size",
    "wrap_ddp",
]


class DistributedError(RuntimeError):
    """A collective failed: a peer raised or hung, or the ranks disagree."""


def is_distributed() -> bool:
    """Whether a process group is initialised (several ranks may take part)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Whether this is rank 0, the rank that writes run directories and checkpoints."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    """Whether the environment of torch's launcher (``torchrun``) is present."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def init_from_env(device: str = "cpu", timeout_s: float = 300.0) -> bool:
    """Initialise the default process group from torchrun's environment, once.

    The backend is NCCL for a CUDA ``device`` (each rank takes ``cuda:LOCAL_RANK``) and
    gloo otherwise. Returns whether a group is initialised afterwards; without the
    launcher's environment nothing happens.
    """
    if is_distributed():
        return True
    if not launched_by_torchrun():
        return False
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(
        backend="nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s)
    )
    return True


def shard_bounds(n: int, *, exact: bool = False) -> tuple[int, int]:
    """``(start, stop)`` of this rank's contiguous share of ``n`` rows.

    Shares differ by at most one row (the first ``n % world`` ranks take one more).
    ``exact=True`` requires ``n`` to be a multiple of the world size (equal shares, as
    data-parallel gradient averaging needs) and raises ValueError otherwise.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    w, r = world_size(), rank()
    if exact and n % w:
        raise ValueError(
            f"{n} rows cannot be split equally over {w} ranks; use a multiple of {w} "
            "(for training: a global batch size divisible by the number of processes)"
        )
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


def shard_rows(x: Tensor, *, exact: bool = False) -> Tensor:
    """This rank's contiguous share of the rows of ``x`` (all of it in one process)."""
    start, stop = shard_bounds(int(x.shape[0]), exact=exact)
    return x[start:stop]


@contextmanager
def _collective(name: str) -> Iterator[None]:
    try:
        yield
    except DistributedError:
        raise
    except RuntimeError as err:  # gloo/NCCL report timeouts and dead peers as RuntimeError
        raise DistributedError(
            f"collective {name} failed on rank {rank()} of {world_size()}: {err}"
        ) from err


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce(t: Tensor, op: str = "sum") -> Tensor:
    """A new tensor: ``t`` summed (``"sum"``), averaged (``"mean"``) or maximised (``"max"``)
    over the ranks; ``t`` itself in one process. dtype and device follow ``t``."""
    if op not in ("sum", "mean", "max", "min"):
        raise ValueError(f"unknown op {op!r}; allowed: 'sum', 'mean', 'max', 'min'")
    if not is_distributed():
        return t.clone()
    buf = t.detach().to(_comm_device(), copy=True)
    reduce_op = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX,
                 "min": dist.ReduceOp.MIN}[op]
    with _collective(f"all_reduce({op})"):
        dist.all_reduce(buf, op=reduce_op)
    if op == "mean":
        buf /= world_size()
    return buf.to(t.device)


def broadcast(t: Tensor, src: int = 0) -> Tensor:
    """A new tensor holding rank ``src``'s ``t`` on every rank (same shape and dtype)."""
    if not is_distributed():
        return t.clone()
    buf = t.detach().to(_comm_device(), copy=True)
    with _collective(f"broadcast(src={src})"):
        dist.broadcast(buf, src=src)
    return buf.to(t.device)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s picklable ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    with _collective(f"broadcast_object(src={src})"):
        dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_cat(t: Tensor) -> Tensor:
    """Every rank's ``t`` concatenated along dim 0 in rank order (row counts may differ)."""
    if not is_distributed():
        return t.clone()
    dev = _comm_device()
    local = t.detach().to(dev).contiguous()
    sizes = [torch.zeros(1, dtype=torch.int64, device=dev) for _ in range(world_size())]
    with _collective("all_gather(sizes)"):
        dist.all_gather(sizes, torch.tensor([local.shape[0]], dtype=torch.int64, device=dev))
    counts = [int(s.item()) for s in sizes]
    width = max(counts)
    padded = torch.zeros((width, *local.shape[1:]), dtype=local.dtype, device=dev)
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in counts]
    with _collective("all_gather(rows)"):
        dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)]).to(t.device)


_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _fingerprint(value: Any) -> Tensor:
    """Four int64 numbers that change with ``value``'s shape, dtype, bits and their order."""
    if isinstance(value, Tensor):
        t = value.detach()
    elif value is None:
        t = torch.empty(0, dtype=torch.uint8)
    else:  # Python numbers: float64/int64/bool, so no two distinct floats share a checksum
        t = torch.tensor(value, dtype=torch.float64 if isinstance(value, float) else None)
    flat = t.reshape(-1).contiguous()
    if flat.is_complex():
        flat = torch.view_as_real(flat).reshape(-1)
    if flat.dtype != torch.bool:
        flat = flat.view(_INT_OF_SIZE[flat.element_size()])
    bits = flat.to(torch.int64)
    bits = bits ^ (bits >> 29)  # fold the high bits (sign, exponent) into the low ones
    # integer sums wrap modulo 2**64 in any order, so equal tensors give equal checksums;
    # odd position weights make the checksum see a permutation
    pos = torch.arange(1, 2 * bits.numel() + 1, 2, dtype=torch.int64, device=bits.device)
    shape = sum((i + 1) * 1_000_003 * s for i, s in enumerate(t.shape))
    return torch.tensor(
        [t.ndim + 31 * shape, zlib.crc32(str(t.dtype).encode()), int(bits.sum()),
         int((bits * pos).sum())],
        dtype=torch.int64,
    )


def check_same(values: Mapping[str, Any]) -> None:
    """ValueError on every rank when any of ``values`` differs between the ranks.

    ``values`` maps argument names to tensors or numbers that every rank must pass alike
    (e.g. the queries of a sharded evaluation). Each is compared through a checksum of
    its shape, dtype and bits, so equal values always pass and a difference is missed
    only by a checksum collision. Nothing happens in one process.
    """
    if not is_distributed() or not values:
        return
    mine = torch.stack([_fingerprint(v) for v in values.values()])
    # one collective: max of (f, ~f) gives max f and ~min f together
    both = all_reduce(torch.cat([mine, ~mine]), "max")
    differs = (both[: len(mine)] != ~both[len(mine) :]).any(dim=1)
    if bool(differs.any()):
        names = [name for name, bad in zip(values, differs.tolist(), strict=True) if bad]
        raise ValueError(
            f"{', '.join(names)} must be the same on every rank but differ(s) between the "
            f"{world_size()} ranks (seen on rank {rank()}); pass identical values, e.g. "
            "drawn from a generator seeded alike on every rank"
        )


def barrier(name: str = "barrier") -> None:
    """Wait for every rank (nothing in one process)."""
    if is_distributed():
        with _collective(name):
            dist.barrier()


def wrap_ddp(module: nn.Module, device: torch.device | str) -> nn.Module:
    """``module`` under DistributedDataParallel when a group is initialised, else itself.

    Buffers (e.g. spectral-norm power-iteration vectors) are broadcast from rank 0 at
    every forward, as DDP does by default.
    """
    if not is_distributed():
        return module
    device = torch.device(device)
    ids: Sequence[int] | None = [device.index or 0] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def launch(
    module_args: Sequence[str],
    nproc: int,
    *,
    nnodes: str = "1",
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    rdzv_id: str = "ottokit",
) -> None:
    """Run ``python -m ottokit <module_args>`` on ``nproc`` ranks with torch's launcher.

    This is ``torchrun --nproc-per-node nproc [--standalone | --nnodes ... --rdzv-endpoint
    ...] -m ottokit ...`` (``torch.distributed.run``), in this process. A single node
    without ``rdzv_endpoint`` uses a private local rendezvous. Raises
    :class:`DistributedError` naming the first rank that failed and its error.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an integer >= 1, got {nproc!r}")
    argv = ["--nproc-per-node", str(nproc), "--nnodes", nnodes, "--node-rank", str(node_rank)]
    if rdzv_endpoint:
        argv += ["--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint, "--rdzv-id", rdzv_id]
    elif nnodes in ("1", "1:1"):
        argv += ["--standalone"]
    else:
        raise ValueError(
            "several nodes need a rendezvous endpoint, e.g. rdzv_endpoint='host:29400'"
        )
    args = get_args_parser().parse_args([*argv, "--module", "ottokit", *module_args])
    try:
        run(args)
    except ChildFailedError as err:
        failed_rank, failure = err.get_first_failure()
        detail = failure.message
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        text = str(detail).strip().splitlines()
        raise DistributedError(
            f"rank {failed_rank} failed (exit code {failure.exitcode}): "
            + (text[0] if text else "see its output above")
        ) from None
