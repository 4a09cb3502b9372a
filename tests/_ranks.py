"""Run a function on several gloo ranks on the CPU (torch.multiprocessing.spawn) and collect
what each rank returns."""

from __future__ import annotations

import datetime
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(
    rank: int,
    fn: Callable[..., Any],
    world: int,
    out: str,
    args: tuple,
    timeout: float,
    settle: bool,
) -> None:
    torch.set_num_threads(1)
    # a rendezvous file, not a TCP port picked in advance: another test's processes can
    # never take it between the pick and the bind
    dist.init_process_group(
        "gloo",
        init_method=f"file://{Path(out, 'rendezvous')}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=timeout),
    )
    try:
        result = fn(rank, *args)
        Path(out, f"rank{rank}.pkl").write_bytes(pickle.dumps(result))
        if settle:
            # every rank's work is finished before any rank tears gloo down: a rank that
            # destroys the group while its peer still has work in flight can abort the peer
            dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ranks(
    fn: Callable[..., Any],
    *args: Any,
    world: int = 2,
    timeout: float = 60.0,
    settle: bool = True,
) -> list:
    """``[fn(0, *args), ..., fn(world - 1, *args)]``, each in its own gloo process.

    ``fn`` must be a module-level function (it is pickled into the children); what it
    returns must be picklable. ``settle``: the ranks meet at a barrier before tearing the
    group down (off for a test whose ranks deliberately call different collectives).
    """
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(
            _entry, args=(fn, world, out, args, timeout, settle), nprocs=world, join=True
        )
        return [pickle.loads(Path(out, f"rank{r}.pkl").read_bytes()) for r in range(world)]
