"""Run a function on several ranks and collect what each rank returns: gloo ranks on the CPU
(processes spawned or forked from this one), or threads of this process whose collectives
are those of ``ottokit.distributed`` done over the threads (seconds cheaper, for code that
needs no ``DistributedDataParallel``)."""

from __future__ import annotations

import datetime
import pickle
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ottokit import distributed as D


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
    start_method: str = "spawn",
) -> list:
    """``[fn(0, *args), ..., fn(world - 1, *args)]``, each in its own gloo process.

    ``fn`` must be a module-level function (it is pickled into spawned children); what it
    returns must be picklable. ``settle``: the ranks meet at a barrier before tearing the
    group down (off for a test whose ranks deliberately call different collectives).
    ``start_method="fork"``: the ranks inherit this process's imported modules (torch and
    its compiler stack, ottokit) instead of importing them again, seconds sooner; only for
    ranks that all reach the rendezvous (a rank that fails before it races its peer's
    connection). _entry runs each rank on one thread, so no OpenMP pool crosses the fork.
    """
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(
            _entry, args=(fn, world, out, args, timeout, settle), nprocs=world, join=True,
            start_method=start_method,
        )
        return [pickle.loads(Path(out, f"rank{r}.pkl").read_bytes()) for r in range(world)]


class _ThreadWorld:
    """The collectives of ``ottokit.distributed`` over ``world`` threads, one per rank.

    Ranks take turns (one holds ``_turn`` while it computes), so torch never runs two ranks'
    operations at once; a collective hands the turn on until every rank has deposited its
    tensor, then each reads all of them in rank order.
    """

    def __init__(self, world: int, timeout: float) -> None:
        self.world = world
        self.barrier = threading.Barrier(world, timeout=timeout)
        self.slots: list[torch.Tensor | None] = [None] * world
        self.turn = threading.Lock()
        self.local = threading.local()

    def rank(self) -> int:
        return self.local.rank

    def exchange(self, t: torch.Tensor) -> list[torch.Tensor]:
        self.slots[self.local.rank] = t.detach().clone()
        self.turn.release()
        try:
            self.barrier.wait()  # every rank has deposited
            parts = [s for s in self.slots if s is not None]
            self.barrier.wait()  # every rank has read: the slots may be reused
        finally:
            self.turn.acquire()
        return parts

    def all_gather_cat(self, t: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.exchange(t)).to(t.device)

    def all_reduce(self, t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        parts = torch.stack(self.exchange(t))
        reduced = {"sum": parts.sum(0), "mean": parts.sum(0) / self.world,
                   "max": parts.amax(0), "min": parts.amin(0)}[op]  # fmt: skip
        return reduced.to(t.device)

    def broadcast(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        return self.exchange(t)[src].to(t.device)


def thread_ranks(
    monkeypatch: Any, fn: Callable[..., Any], *args: Any, world: int = 2, timeout: float = 60.0
) -> list:
    """``[fn(0, *args), ..., fn(world - 1, *args)]``, each rank a thread of this process.

    ``ottokit.distributed`` is patched (through pytest's ``monkeypatch``) so that library code
    sees ``world`` ranks: ``is_distributed``, ``rank``, ``world_size`` and the collectives
    ``all_gather_cat``, ``all_reduce`` and ``broadcast``. ``torch.distributed`` itself is
    not initialised, so ``DistributedDataParallel`` cannot be used here (use
    :func:`run_ranks`). An exception on one rank breaks every rank's collectives and is
    raised here.
    """
    tw = _ThreadWorld(world, timeout)
    for name, value in {
        "is_distributed": lambda: True, "rank": tw.rank, "world_size": lambda: world,
        "all_gather_cat": tw.all_gather_cat, "all_reduce": tw.all_reduce,
        "broadcast": tw.broadcast,
    }.items():  # fmt: skip
        monkeypatch.setattr(D, name, value)
    results: list[Any] = [None] * world
    errors: list[BaseException] = []

    def entry(r: int) -> None:
        tw.local.rank = r
        tw.turn.acquire()
        try:
            results[r] = fn(r, *args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)
            tw.barrier.abort()  # the other ranks stop waiting in their collectives
        finally:
            tw.turn.release()

    threads = [threading.Thread(target=entry, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if first or errors:
        raise (first or errors)[0]
    return results
